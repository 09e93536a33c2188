"""A real SMTP server for the email tests (aiosmtpd, run in a venv by the test).

Usage: smtp_server.py OUT_DIR [CERT KEY]
Prints the port it listens on (127.0.0.1), then serves until stdin closes. Each message is
saved as OUT_DIR/<n>.eml. Recipients decide the answer: `reject…@` gets 550, `later…@` gets
451 the first time and is accepted after. With CERT and KEY it offers STARTTLS and requires it.
"""
import asyncio, os, ssl, sys
from aiosmtpd.controller import Controller

out = sys.argv[1]
deferred = set()
count = 0


class Handler:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@")[0]
        if local.startswith("reject"):
            return "550 5.1.1 no such user"
        if local.startswith("later") and address not in deferred:
            deferred.add(address)
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        global count
        count += 1
        with open(os.path.join(out, f"{count}.eml"), "wb") as f:
            f.write(envelope.original_content or envelope.content)
        with open(os.path.join(out, f"{count}.rcpts"), "w") as f:
            f.write("\n".join(envelope.rcpt_tos))
        return "250 OK queued"


kw = {}
if len(sys.argv) > 3:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(sys.argv[2], sys.argv[3])
    kw = {"tls_context": ctx, "require_starttls": True}
# A free port (aiosmtpd's Controller cannot start on port 0: it connects to its own port).
import socket
probe = socket.socket()
probe.bind(("127.0.0.1", 0))
port = probe.getsockname()[1]
probe.close()
c = Controller(Handler(), hostname="127.0.0.1", port=port, **kw)
c.start()
print(port, flush=True)
sys.stdin.read()
c.stop()
