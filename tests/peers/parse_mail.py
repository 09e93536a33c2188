"""Parse a saved mail with Python's `email` package; print a JSON summary (for the tests)."""
import email, email.policy, hashlib, json, sys

m = email.message_from_bytes(open(sys.argv[1], "rb").read(), policy=email.policy.default)
parts, attachments = [], []
text = html = None
for p in m.walk():
    parts.append(p.get_content_type())
    if p.is_attachment():
        data = p.get_payload(decode=True)
        attachments.append({"filename": p.get_filename(), "content_type": p.get_content_type(),
                            "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)})
    elif p.get_content_type() == "text/plain":
        text = p.get_content()
    elif p.get_content_type() == "text/html":
        html = p.get_content()
rcpts = open(sys.argv[1][:-4] + ".rcpts").read().split("\n")
print(json.dumps({"subject": str(m["subject"]), "from": str(m["from"]), "to": str(m["to"]),
                  "cc": m["cc"] and str(m["cc"]), "bcc": m["bcc"] and str(m["bcc"]),
                  "reply_to": m["reply-to"] and str(m["reply-to"]), "rcpts": rcpts,
                  "message_id": str(m["message-id"]), "parts": parts, "text": text, "html": html,
                  "attachments": attachments}))
