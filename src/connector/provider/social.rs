//! `preset = "mastodon"` and `preset = "x"`: alerts out as social posts (channel `social`),
//! with the account's bearer token. The address says where a post goes: an audience
//! (`public`, `unlisted`, `followers`), a handle (`@user@instance`: a mention, sent direct
//! on Mastodon), or `dm:<account id>` (an X direct message). The post's id is the remote id;
//! there are no receipts. Both APIs answer 429 with their reset time when a rate limit is
//! reached (`Retry-After`, X's `x-rate-limit-reset`), which is honoured.
//!
//! Mastodon: `POST {url}/api/v1/statuses` `{"status", "visibility"}` with `Idempotency-Key`
//! set to the message's id (a post retried after a lost answer is not posted twice).
//! X: `POST {url}/2/tweets` `{"text"}`, or `POST {url}/2/dm_conversations/with/{id}/messages`.

use super::{refused, unbuildable, HttpLink};
use crate::connector::{DeliveryError, ErrorClass, ErrorKind, Outcome};
use crate::model::{Content, Message};
use bytes::Bytes;
use http_body_util::Full;
use serde_json::{json, Value};

fn unsupported(message: impl Into<String>) -> Outcome {
    Outcome::PermFail { error: DeliveryError::new(ErrorClass::Permanent, ErrorKind::Unencodable, message).with_code("unsupported_address") }
}

/// The post's text: a chat message's.
fn text(msg: &Message) -> Result<&str, Outcome> {
    match &msg.envelope.content {
        Content::Chat(c) => Ok(&c.text),
        _ => Err(Outcome::PermFail {
            error: DeliveryError::new(ErrorClass::Permanent, ErrorKind::WrongLink, "a social link posts social messages only").with_code("wrong_content"),
        }),
    }
}

/// POST `body` as JSON to `path`; the remote id at `pointer` in a successful answer.
async fn post(link: &HttpLink, path: &str, body: Value, idempotency: Option<String>, pointer: &str) -> Outcome {
    let mut req = link
        .request("POST", &format!("{}{path}", link.base()))
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {}", link.token.as_deref().unwrap_or("")));
    if let Some(k) = idempotency {
        req = req.header("idempotency-key", k);
    }
    let req = match req.body(Full::new(Bytes::from(body.to_string()))) {
        Ok(r) => r,
        Err(e) => return unbuildable(e),
    };
    match link.call(req).await {
        Err(o) => o,
        Ok((status, headers, body)) => {
            let v: Value = serde_json::from_slice(&body).unwrap_or_default();
            if status.is_success() {
                let id = match v.pointer(pointer) {
                    Some(Value::String(s)) => vec![s.clone()],
                    _ => Vec::new(),
                };
                Outcome::Submitted { remote_ids: id }
            } else {
                // Mastodon says {"error"}, X {"detail"} or {"title"}.
                let detail = v["error"].as_str().or(v["detail"].as_str()).or(v["title"].as_str()).unwrap_or("");
                refused(status, &headers, detail)
            }
        }
    }
}

pub(super) async fn mastodon(link: &HttpLink, msg: &Message) -> Outcome {
    let text = match text(msg) {
        Ok(t) => t,
        Err(o) => return o,
    };
    let to = msg.envelope.to.as_str();
    let (status, visibility) = match to {
        "public" => (text.to_string(), "public"),
        "unlisted" => (text.to_string(), "unlisted"),
        "followers" => (text.to_string(), "private"),
        _ if to.starts_with('@') => (format!("{to} {text}"), "direct"),
        _ => return unsupported(format!("Mastodon cannot post to {to:?}: use an audience or @user@instance")),
    };
    post(link, "/api/v1/statuses", json!({"status": status, "visibility": visibility}), Some(msg.id.to_string()), "/id").await
}

pub(super) async fn x(link: &HttpLink, msg: &Message) -> Outcome {
    let text = match text(msg) {
        Ok(t) => t,
        Err(o) => return o,
    };
    let to = msg.envelope.to.as_str();
    match to {
        "public" => post(link, "/2/tweets", json!({"text": text}), None, "/data/id").await,
        _ if to.starts_with('@') => post(link, "/2/tweets", json!({"text": format!("{to} {text}")}), None, "/data/id").await,
        _ if to.starts_with("dm:") => {
            let path = format!("/2/dm_conversations/with/{}/messages", &to[3..]);
            post(link, &path, json!({"text": text}), None, "/data/dm_event_id").await
        }
        _ => unsupported(format!("X has no {to:?} audience: use public, @handle or dm:<account id>")),
    }
}
