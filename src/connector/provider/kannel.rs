//! `preset = "kannel"`: Kannel's `sendsms` (a GET to smsbox's `/cgi-bin/sendsms` with the
//! sendsms user's name and password). Kannel answers no id of its own, so the message's id is
//! the remote id and goes in the `dlr-url`, which Kannel calls with `%d` (1 delivered, 2
//! undelivered, 4 queued on the SMSC, 8 the SMSC took it, 16 the SMSC refused it) and `%A`
//! (the SMSC's reply). Kannel splits long texts itself (its `max-messages`) and reports the
//! first final receipt of any part. The receipt URL carries the connector's secret as `t`.
//! Inbound: an `sms-service` whose `get-url` is `…/inbound?t=SECRET&from=%p&to=%P&text=%a`.

use super::{refused, same_secret, text_of, unbuildable, HttpLink};
use crate::codec::segment::Coding;
use crate::connector::{Outcome, PeerRequest, PeerResponse};
use crate::model::{Message, State};
use bytes::Bytes;
use http_body_util::Full;

/// The `sendsms` URL for `msg`.
fn url(link: &HttpLink, msg: &Message, text: &str) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("username", link.cfg.username.as_deref().unwrap_or(""));
    q.append_pair("password", link.password.as_deref().unwrap_or(""));
    q.append_pair("to", &msg.envelope.to.to_string());
    if let Some(from) = link.sender(msg) {
        q.append_pair("from", &from);
    }
    q.append_pair("text", text);
    q.append_pair("charset", "UTF-8");
    let ucs2 = msg.sms().is_some_and(|s| s.coding == Coding::Ucs2);
    q.append_pair("coding", if ucs2 { "2" } else { "0" });
    if let (Some(dlr), Some(secret)) = (link.callback_url("dlr"), &link.callback_secret) {
        let mut back = form_urlencoded::Serializer::new(String::new());
        back.append_pair("t", secret);
        back.append_pair("id", &msg.id.to_string());
        // Kannel expands these escapes when it calls back; they go in as they are.
        q.append_pair("dlr-url", &format!("{dlr}?{}&type=%d&reply=%A", back.finish()));
        q.append_pair("dlr-mask", "27");
    }
    format!("{}/cgi-bin/sendsms?{}", link.base(), q.finish())
}

pub(super) async fn send(link: &HttpLink, msg: &Message) -> Outcome {
    let text = match text_of(msg) {
        Ok(t) => t,
        Err(o) => return o,
    };
    let req = match link.request("GET", &url(link, msg, text)).body(Full::new(Bytes::new())) {
        Ok(r) => r,
        Err(e) => return unbuildable(e),
    };
    match link.call(req).await {
        Err(o) => o,
        // "0: Accepted for delivery" or "3: Queued for later delivery".
        Ok((status, _, _)) if status.is_success() => Outcome::Submitted { remote_ids: vec![msg.id.to_string()] },
        Ok((status, headers, body)) => refused(status, &headers, String::from_utf8_lossy(&body).trim()),
    }
}

/// Whether the request carries the connector's secret as `t`.
fn authentic(link: &HttpLink, params: &[(String, String)]) -> bool {
    let given = params.iter().find(|(k, _)| k == "t").map(|(_, v)| v.as_bytes());
    matches!((given, &link.callback_secret), (Some(g), Some(s)) if same_secret(g, s.as_bytes()))
}

/// `GET …/dlr?t=&id=&type=%d&reply=%A`.
pub(super) async fn dlr(link: &HttpLink, req: &PeerRequest) -> PeerResponse {
    let p = req.params();
    if !authentic(link, &p) {
        return link.refuse(401, "bad_token", "the receipt URL's token is missing or wrong");
    }
    let get = |k: &str| p.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let (Some(id), Some(kind)) = (get("id"), get("type")) else {
        return link.refuse(400, "missing_field", "id and type are required");
    };
    let state = match kind.parse::<u8>() {
        Ok(1) => State::Delivered,
        Ok(2) => State::Undelivered,
        Ok(16) => State::Failed,
        // 4 (queued on the SMSC) and 8 (the SMSC took it) are progress.
        Ok(4 | 8) => return PeerResponse::ok(),
        _ => return link.refuse(400, "bad_type", format!("type {kind:?} is not a Kannel receipt type")),
    };
    let error = get("reply").filter(|r| !r.is_empty() && state != State::Delivered).map(str::to_string);
    link.settle(id.to_string(), state, error).await
}

/// `GET …/inbound?t=&from=%p&to=%P&text=%a`: an MO through Kannel.
pub(super) async fn inbound(link: &HttpLink, req: &PeerRequest) -> PeerResponse {
    let p = req.params();
    if !authentic(link, &p) {
        return link.refuse(401, "bad_token", "the inbound URL's token is missing or wrong");
    }
    let get = |k: &str| p.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let (Some(from), Some(to)) = (get("from"), get("to")) else {
        return link.refuse(400, "missing_field", "from and to are required");
    };
    let text = get("text").unwrap_or_default();
    match link.receive(from, to, text, serde_json::json!({"provider": "kannel"}), None).await {
        // Kannel sends a text answer back as a reply SMS: an empty one sends nothing.
        Ok(()) => PeerResponse { status: 200, content_type: "text/plain", body: String::new() },
        Err(r) => r,
    }
}
