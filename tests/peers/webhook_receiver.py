"""A webhook receiver that checks each delivery with the Standard Webhooks reference library
(`standardwebhooks`, PyPI) and records it.

usage: webhook_receiver.py OUT_JSONL SECRET FAIL_FIRST [FAIL_SECONDS]
Prints its port. Paths: /ok answers 500 for the first FAIL_FIRST requests (and during the first
FAIL_SECONDS seconds), then 204; /gone answers 410. Each request to /ok is one JSON line in
OUT_JSONL: {"id", "verified", "status", "type", "message", "state"}.
"""
import json, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from standardwebhooks.webhooks import Webhook

out, secret, fail_first = sys.argv[1], sys.argv[2], int(sys.argv[3])
fail_until = time.time() + (float(sys.argv[4]) if len(sys.argv) > 4 else 0)
wh = Webhook(secret)
lock = threading.Lock()
seen = [0]

class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        if self.path == "/gone":
            self.send_response(410); self.send_header("content-length", "0"); self.end_headers(); return
        try:
            payload = wh.verify(body, {k.lower(): v for k, v in self.headers.items()})
            verified = True
        except Exception:
            payload, verified = json.loads(body), False
        with lock:
            seen[0] += 1
            status = 500 if seen[0] <= fail_first or time.time() < fail_until else 204
            with open(out, "a") as f:
                f.write(json.dumps({"id": self.headers.get("webhook-id"), "verified": verified, "status": status,
                                    "type": payload.get("type"), "message": payload["data"].get("id"),
                                    "state": payload["data"].get("state")}) + "\n")
        self.send_response(status)
        self.send_header("content-length", "0")
        self.end_headers()

srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
print(srv.server_address[1], flush=True)
srv.serve_forever()
