"""Send one mail with Python's smtplib (a real, independent SMTP client) and print the outcome
as JSON: {"ok": true} or {"ok": false, "code": 550, "error": "..."}.

Reads a JSON spec on stdin: host, port, from, to (list), subject, text, pad (extra body bytes),
cafile (STARTTLS with this CA when given), raw (send this message text as it is instead), attachments ([{filename, content_type, hex}]),
headers ({name: value}, e.g. In-Reply-To).
"""
import json, smtplib, ssl, sys
from email.message import EmailMessage

spec = json.load(sys.stdin)
msg = EmailMessage()
msg["From"] = spec["from"]
msg["To"] = ", ".join(spec["to"])
msg["Subject"] = spec.get("subject", "")
for name, value in spec.get("headers", {}).items():
    msg[name] = value
msg.set_content(spec.get("text", "") + "x" * spec.get("pad", 0))
for a in spec.get("attachments", []):
    maintype, subtype = a["content_type"].split("/")
    msg.add_attachment(bytes.fromhex(a["hex"]), maintype=maintype, subtype=subtype, filename=a["filename"])
out = {"ok": True}
try:
    with smtplib.SMTP(spec["host"], spec["port"], timeout=10) as s:
        s.ehlo()
        if spec.get("cafile"):
            s.starttls(context=ssl.create_default_context(cafile=spec["cafile"]))
            s.ehlo()
            out["tls"] = True
        if spec.get("login"):
            user, password = spec["login"]
            if spec.get("mechanism") == "LOGIN":
                s.user, s.password = user, password
                s.auth("LOGIN", s.auth_login, initial_response_ok=False)
            else:
                s.login(user, password)
            out["auth"] = True
        if spec.get("raw"):
            s.sendmail(spec["from"], spec["to"], spec["raw"].encode())
        else:
            s.send_message(msg)
except smtplib.SMTPAuthenticationError as e:
    out = {"ok": False, "code": e.smtp_code, "error": e.smtp_error.decode()}
except smtplib.SMTPRecipientsRefused as e:
    code, text = list(e.recipients.values())[0]
    out = {"ok": False, "code": code, "error": text.decode()}
except smtplib.SMTPResponseException as e:
    out = {"ok": False, "code": e.smtp_code, "error": e.smtp_error.decode()}
print(json.dumps(out))
