"""An XMPP user for the XMPP link's tests, on slixmpp (PyPI): logs in to a Prosody on loopback
with STARTTLS, records every chat message it gets, answers XEP-0184 receipt requests (the
plugin's auto_ack), and sends the messages it is told to on stdin.

usage: xmpp_peer.py JID PASSWORD PORT CA_FILE OUT_JSONL
Prints "online" once logged in. Each stdin line is {"to", "body"}: a chat message asking for a
receipt. OUT_JSONL gets {"kind": "message", "from", "id", "body"} per message and
{"kind": "receipt", "id"} per receipt received.
"""
import asyncio, json, sys, threading
import slixmpp

jid, password, port, ca, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
lock = threading.Lock()


def record(v):
    with lock:
        with open(out, "a") as f:
            f.write(json.dumps(v) + "\n")


class Peer(slixmpp.ClientXMPP):
    def __init__(self):
        super().__init__(jid, password)
        self.add_event_handler("session_start", self.start)
        self.add_event_handler("message", self.on_message)
        self.add_event_handler("receipt_received", lambda m: record({"kind": "receipt", "id": m["receipt"]}))

    async def start(self, _):
        self.send_presence()
        print("online", flush=True)

    def on_message(self, msg):
        if msg["type"] in ("chat", "normal") and msg["body"]:
            record({"kind": "message", "from": str(msg["from"].bare), "id": msg["id"], "body": msg["body"]})


peer = Peer()
peer.register_plugin("xep_0030")
peer.register_plugin("xep_0184")
peer.plugin["xep_0184"].auto_ack = True
peer.plugin["xep_0184"].auto_request = True
peer.ca_certs = ca


def commands():
    for line in sys.stdin:
        v = json.loads(line)
        peer.loop.call_soon_threadsafe(lambda v=v: peer.send_message(mto=v["to"], mbody=v["body"], mtype="chat"))


threading.Thread(target=commands, daemon=True).start()
peer.connect(address=("127.0.0.1", port), force_starttls=True)
peer.process(forever=True)
