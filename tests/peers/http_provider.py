"""An HTTP SMS provider for the `type = "http"` connector's tests, answering in the shapes of
Twilio's documented Messages API (this is not Twilio: no such server runs on loopback), plus
a made-up JSON API for the generic preset. Callbacks to Postern are signed with the official
`twilio` library's RequestValidator, so Postern's check is tested against Twilio's own code.

usage: http_provider.py OUT_JSONL ACCOUNT_SID AUTH_TOKEN
Prints its port. Each request it gets is one JSON line in OUT_JSONL.

Twilio: POST /2010-04-01/Accounts/{sid}/Messages.json (form, basic auth sid:token)
  -> 201 {"sid": "SM…", "status": "queued", …}; 401 {"code": 20003} on bad auth;
  To ending 0000 -> 400 {"code": 21211, "message": "The 'To' number … is not a valid phone number."};
  To ending 9999 -> 429 with Retry-After: 1 on the first try;
  then callbacks "sent" and "delivered" (To ending 8888: "undelivered", ErrorCode 30003)
  to the message's StatusCallback.
POST /_test/inbound {"url", "From", "To", "Body", "MessageSid"?, "bad_signature"?} -> posts a signed inbound
  message to url and answers {"status", "body"} of Postern's answer.
Mastodon (shapes from docs.joinmastodon.org): POST /api/v1/statuses {"status", "visibility"}
  (Bearer social-token) -> 200 {"id", "content", "visibility", …}; more than 500 characters ->
  422 {"error": "Validation failed: Text character limit of 500 exceeded"}; a repeated
  Idempotency-Key -> the first status again.
X (shapes from docs.x.com, API v2): POST /2/tweets {"text"} -> 201 {"data": {"id", "text",
  "edit_history_tweet_ids"}}; text containing "ratelimit" -> 429 with x-rate-limit-reset on
  the first try; POST /2/dm_conversations/with/{id}/messages -> 201 {"data":
  {"dm_conversation_id", "dm_event_id"}}; a bad token -> 401 {"title": "Unauthorized", …}.
Generic: POST /generic/send {"to", "text", "cb"} -> 200 {"data": {"id": "G<n>"}}, then posts
  {"ref": id, "state": "DLVRD"} to cb (text "fail" -> {"state": "NOPE", "err": "E42"}).
"""
import base64, itertools, json, sys, threading, time, urllib.parse, urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from twilio.request_validator import RequestValidator

out, sid, token = sys.argv[1], sys.argv[2], sys.argv[3]
validator = RequestValidator(token)
lock = threading.Lock()
counter = itertools.count(1)
throttled = set()
statuses = {}


def record(entry):
    with lock:
        with open(out, "a") as f:
            f.write(json.dumps(entry) + "\n")


def post_form(url, params, signature=None):
    data = urllib.parse.urlencode(params).encode()
    req = urllib.request.Request(url, data=data, method="POST")
    req.add_header("content-type", "application/x-www-form-urlencoded")
    req.add_header("x-twilio-signature", signature or validator.compute_signature(url, params))
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def post_json(url, value):
    req = urllib.request.Request(url, data=json.dumps(value).encode(), method="POST")
    req.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def callbacks(url, msid, to):
    time.sleep(0.05)
    final = ("undelivered", "30003") if to.endswith("8888") else ("delivered", None)
    for status, code in (("sent", None), final):
        params = {"MessageSid": msid, "MessageStatus": status, "AccountSid": sid, "To": to}
        if code:
            params["ErrorCode"] = code
        for _ in range(20):  # Twilio retries a callback that fails
            got, _ = post_form(url, params)
            record({"callback": status, "sid": msid, "answer": got})
            if got == 200:
                break
            time.sleep(0.2)


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def answer(self, status, value, headers=()):
        body = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        path = self.path
        if path == f"/2010-04-01/Accounts/{sid}/Messages.json":
            form = dict(urllib.parse.parse_qsl(body.decode()))
            auth = self.headers.get("authorization", "")
            record({"path": path, "form": form, "auth": auth})
            if auth != "Basic " + base64.b64encode(f"{sid}:{token}".encode()).decode():
                return self.answer(401, {"code": 20003, "message": "Authenticate", "more_info": "https://www.twilio.com/docs/errors/20003", "status": 401})
            to = form.get("To", "")
            if to.endswith("0000"):
                return self.answer(400, {"code": 21211, "message": f"The 'To' number {to} is not a valid phone number.", "more_info": "https://www.twilio.com/docs/errors/21211", "status": 400})
            if to.endswith("9999") and to not in throttled:
                throttled.add(to)
                return self.answer(429, {"code": 20429, "message": "Too Many Requests", "more_info": "https://www.twilio.com/docs/errors/20429", "status": 429}, [("Retry-After", "1")])
            msid = "SM%032x" % next(counter)
            self.answer(201, {"sid": msid, "account_sid": sid, "to": to, "from": form.get("From"), "body": form.get("Body"),
                              "status": "queued", "num_segments": "1", "direction": "outbound-api", "error_code": None,
                              "error_message": None, "uri": f"/2010-04-01/Accounts/{sid}/Messages/{msid}.json"})
            if form.get("StatusCallback"):
                threading.Thread(target=callbacks, args=(form["StatusCallback"], msid, to), daemon=True).start()
        elif path == "/api/v1/statuses":
            v = json.loads(body)
            key = self.headers.get("idempotency-key")
            record({"path": path, "json": v, "auth": self.headers.get("authorization"), "idempotency_key": key})
            if self.headers.get("authorization") != "Bearer social-token":
                return self.answer(401, {"error": "The access token is invalid"})
            if len(v.get("status", "")) > 500:
                return self.answer(422, {"error": "Validation failed: Text character limit of 500 exceeded"})
            if key not in statuses:
                statuses[key] = {"id": str(110000000000000000 + next(counter)), "content": "<p>%s</p>" % v["status"],
                                 "visibility": v.get("visibility", "public"), "created_at": "2026-12-06T09:00:00.000Z"}
            self.answer(200, statuses[key])
        elif path == "/2/tweets" or (path.startswith("/2/dm_conversations/with/") and path.endswith("/messages")):
            v = json.loads(body)
            record({"path": path, "json": v, "auth": self.headers.get("authorization")})
            if self.headers.get("authorization") != "Bearer social-token":
                return self.answer(401, {"title": "Unauthorized", "type": "about:blank", "status": 401, "detail": "Unauthorized"})
            if "ratelimit" in v.get("text", "") and v["text"] not in throttled:
                throttled.add(v["text"])
                return self.answer(429, {"title": "Too Many Requests", "detail": "Too Many Requests", "type": "about:blank", "status": 429},
                                   [("x-rate-limit-reset", str(int(time.time()) + 1))])
            n = str(1860000000000000000 + next(counter))
            if path == "/2/tweets":
                self.answer(201, {"data": {"id": n, "text": v["text"], "edit_history_tweet_ids": [n]}})
            else:
                self.answer(201, {"data": {"dm_conversation_id": "1-2", "dm_event_id": n}})
        elif path == "/_test/inbound":
            v = json.loads(body)
            params = {"MessageSid": v.get("MessageSid") or "SM%032x" % next(counter), "AccountSid": sid, "From": v["From"], "To": v["To"], "Body": v["Body"], "NumMedia": "0"}
            sig = "bm90IGEgc2lnbmF0dXJl" if v.get("bad_signature") else None
            status, text = post_form(v["url"], params, sig)
            self.answer(200, {"status": status, "body": text})
        elif path == "/generic/send":
            v = json.loads(body)
            record({"path": path, "json": v, "auth": self.headers.get("authorization"), "x-api": self.headers.get("x-api")})
            gid = "G%d" % next(counter)
            self.answer(200, {"data": {"id": gid}})
            receipt = {"ref": gid, "state": "NOPE", "err": "E42"} if v.get("text") == "fail" else {"ref": gid, "state": "DLVRD"}
            threading.Thread(target=lambda: record({"receipt": gid, "answer": post_json(v["cb"], receipt)}), daemon=True).start()
        else:
            self.answer(404, {"code": 20404, "message": "not found"})


srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
print(srv.server_address[1], flush=True)
srv.serve_forever()
