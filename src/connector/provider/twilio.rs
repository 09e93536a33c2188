//! `preset = "twilio"`: Twilio's Messages API — a form POST to
//! `{url}/2010-04-01/Accounts/{sid}/Messages.json` with basic auth (account SID, auth token),
//! `StatusCallback` pointing back here. The answer's `sid` is the remote id; an error answer's
//! `code` (21211, 21610, …) is kept as `twilio_<code>`. Status callbacks and inbound messages
//! are form POSTs checked by `X-Twilio-Signature`: base64 HMAC-SHA1, keyed by the auth token,
//! of the URL Twilio called followed by each form parameter's name and value, sorted by name.

use super::{refused, text_of, unbuildable, HttpLink};
use crate::connector::{Outcome, PeerRequest, PeerResponse};
use crate::model::{Message, State};
use base64::Engine;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use http_body_util::Full;

/// Twilio's signature of a request to `url` with form parameters `params`.
pub fn signature(token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let mut mac = <Hmac<sha1::Sha1> as Mac>::new_from_slice(token.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(url.as_bytes());
    for (k, v) in sorted {
        mac.update(k.as_bytes());
        mac.update(v.as_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

pub(super) async fn send(link: &HttpLink, msg: &Message) -> Outcome {
    let text = match text_of(msg) {
        Ok(t) => t,
        Err(o) => return o,
    };
    let sid = link.cfg.username.as_deref().unwrap_or("");
    let form = {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("To", &msg.envelope.to.to_string());
        if let Some(from) = link.sender(msg) {
            form.append_pair("From", &from);
        }
        form.append_pair("Body", text);
        if let Some(cb) = link.callback_url("status") {
            form.append_pair("StatusCallback", &cb);
        }
        form.finish()
    };
    let auth = base64::engine::general_purpose::STANDARD
        .encode(format!("{sid}:{}", link.password.as_deref().unwrap_or("")));
    let url = format!("{}/2010-04-01/Accounts/{sid}/Messages.json", link.base());
    let req = link
        .request("POST", &url)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("authorization", format!("Basic {auth}"))
        .body(Full::new(Bytes::from(form)));
    let req = match req {
        Ok(r) => r,
        Err(e) => return unbuildable(e),
    };
    match link.call(req).await {
        Err(o) => o,
        Ok((status, headers, body)) => {
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            if status.is_success() {
                match v["sid"].as_str() {
                    Some(sid) => Outcome::Submitted {
                        remote_ids: vec![sid.to_string()],
                    },
                    // Taken, but with no id no receipt can find it.
                    None => Outcome::Submitted {
                        remote_ids: Vec::new(),
                    },
                }
            } else {
                let mut out = refused(status, &headers, v["message"].as_str().unwrap_or(""));
                if let (Some(code), Outcome::PermFail { error } | Outcome::TempFail { error, .. }) =
                    (v["code"].as_u64(), &mut out)
                {
                    error.code = format!("twilio_{code}");
                }
                out
            }
        }
    }
}

/// Whether `req` (a form POST to `…/{what}`) carries Twilio's signature for it.
fn authentic(link: &HttpLink, req: &PeerRequest, what: &str) -> bool {
    let (Some(token), Some(mut url), Some(given)) = (
        &link.password,
        link.callback_url(what),
        req.header("x-twilio-signature"),
    ) else {
        return false;
    };
    if !req.query.is_empty() {
        url = format!("{url}?{}", req.query);
    }
    super::same_secret(
        signature(token, &url, &req.form()).as_bytes(),
        given.as_bytes(),
    )
}

/// A status callback: `MessageSid`, `MessageStatus`, `ErrorCode`.
pub(super) async fn status(link: &HttpLink, req: &PeerRequest) -> PeerResponse {
    if !authentic(link, req, "status") {
        return link.refuse(
            403,
            "bad_signature",
            "X-Twilio-Signature is missing or does not match",
        );
    }
    let p = req.form();
    let get = |k: &str| p.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let (Some(sid), Some(word)) = (get("MessageSid"), get("MessageStatus")) else {
        return link.refuse(
            400,
            "missing_field",
            "MessageSid and MessageStatus are required",
        );
    };
    let state = match word {
        "delivered" | "read" => State::Delivered,
        "undelivered" => State::Undelivered,
        "failed" => State::Failed,
        // accepted, scheduled, queued, sending, sent: progress.
        "accepted"
        | "scheduled"
        | "queued"
        | "sending"
        | "sent"
        | "canceled"
        | "partially_delivered" => {
            return PeerResponse::ok();
        }
        other => {
            return link.refuse(
                400,
                "bad_status",
                format!("MessageStatus {other:?} is not one of Twilio's"),
            )
        }
    };
    let error = get("ErrorCode")
        .filter(|c| !c.is_empty())
        .map(|c| format!("twilio_{c}"));
    link.settle(sid.to_string(), state, error).await
}

/// An incoming message (the number's "A message comes in" webhook): `From`, `To`, `Body`.
pub(super) async fn inbound(link: &HttpLink, req: &PeerRequest) -> PeerResponse {
    if !authentic(link, req, "inbound") {
        return link.refuse(
            403,
            "bad_signature",
            "X-Twilio-Signature is missing or does not match",
        );
    }
    let p = req.form();
    let get = |k: &str| p.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let (Some(from), Some(to)) = (get("From"), get("To")) else {
        return link.refuse(400, "missing_field", "From and To are required");
    };
    let meta = serde_json::json!({"provider": "twilio", "message_sid": get("MessageSid"), "num_media": get("NumMedia")});
    match link
        .receive(from, to, get("Body").unwrap_or_default(), meta, get("MessageSid"))
        .await
    {
        // An empty TwiML answer: no reply from Twilio's side.
        Ok(()) => PeerResponse {
            status: 200,
            content_type: "text/xml",
            body: "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>".into(),
        },
        Err(r) => r,
    }
}
