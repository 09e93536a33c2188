"""Send mails into an SMTP server from several threads with Python's smtplib, one session per
thread, each mail with a unique subject; print each subject (flushed) once its DATA got 250.
Stops at the first failure of a thread (the server was killed): what is printed is exactly
what was acknowledged.

usage: smtp_flood.py HOST PORT RCPT THREADS PER_THREAD
"""
import smtplib, sys, threading
from email.message import EmailMessage

host, port, rcpt, threads, per = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
lock = threading.Lock()

def run(t):
    try:
        with smtplib.SMTP(host, port, timeout=10) as s:
            for i in range(per):
                m = EmailMessage()
                m["From"], m["To"], m["Subject"] = "flood@ops.example", rcpt, f"m{t}-{i}"
                m.set_content("crash test")
                s.send_message(m)
                with lock:
                    print(f"m{t}-{i}", flush=True)
    except Exception:
        pass

ts = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
for x in ts: x.start()
for x in ts: x.join()
