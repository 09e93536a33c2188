//! `preset = "postern"`: another Postern's `/v1/messages/batch` with its API key, so gateways
//! chain. Messages handed to the link queue for a batcher that keeps at most
//! [`REQUESTS_IN_FLIGHT`] requests open and sends whatever has queued meanwhile as the next
//! batch (up to `batch`): one message alone goes at once, a burst goes in few requests. Each
//! item's `callback_url` points back here; the remote signs its status callbacks with its
//! `api.callback_secret` (`X-Postern-Signature: sha256=<hex HMAC-SHA256 of the body>`), which
//! is this connector's `callback_secret_env`. The remote's message id is the remote id.
//!
//! A batch carries an `Idempotency-Key` made of its messages' ids, so a batch sent again
//! after a lost answer is answered from the remote's record, not sent twice; a message that
//! goes again in a different batch (after a timeout) may reach the remote twice.

use super::{refused, same_secret, unbuildable, HttpLink};
use crate::connector::{DeliveryError, ErrorClass, ErrorKind, Outcome, PeerRequest, PeerResponse};
use crate::model::{Body, Content, Message, State};
use bytes::Bytes;
use http_body_util::Full;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::sync::{Arc, Weak};
use tokio::sync::{mpsc, oneshot, Semaphore};

/// Batch requests open at once.
const REQUESTS_IN_FLIGHT: usize = 4;

struct Item {
    id: String,
    json: Value,
    reply: oneshot::Sender<Outcome>,
}

/// The queue in front of the batch requests.
pub(super) struct Batcher {
    tx: mpsc::Sender<Item>,
}

impl Batcher {
    pub(super) fn start(link: Weak<HttpLink>, max: usize) -> Batcher {
        let (tx, mut rx) = mpsc::channel::<Item>(max.max(1) * REQUESTS_IN_FLIGHT * 2);
        let open = Arc::new(Semaphore::new(REQUESTS_IN_FLIGHT));
        tokio::spawn(async move {
            loop {
                let Ok(permit) = open.clone().acquire_owned().await else { return };
                let mut items = Vec::with_capacity(max);
                if rx.recv_many(&mut items, max).await == 0 {
                    return;
                }
                let Some(link) = link.upgrade() else { return };
                tokio::spawn(async move {
                    post(&link, items).await;
                    drop(permit);
                });
            }
        });
        Batcher { tx }
    }
}

fn down(message: &str) -> Outcome {
    Outcome::TempFail { error: DeliveryError::new(ErrorClass::Temporary, ErrorKind::LinkDown, message), retry_after: None }
}

/// The batch item for `msg`.
fn item(link: &HttpLink, msg: &Message) -> Result<Value, Outcome> {
    let mut v = json!({"to": msg.envelope.to.to_string(), "client_ref": msg.id.to_string()});
    if let Some(from) = link.sender(msg) {
        v["from"] = from.into();
    }
    if let Some(cb) = link.callback_url("status") {
        v["callback_url"] = cb.into();
    }
    match &msg.envelope.content {
        Content::Sms(s) => match &s.body {
            Body::Text(t) => v["text"] = t.as_str().into(),
            Body::Binary { data, data_coding } => {
                v["binary"] = hex::encode(data).into();
                v["data_coding"] = (*data_coding).into();
            }
        },
        Content::Email(e) if e.attachments.is_empty() => {
            v["channel"] = "email".into();
            v["subject"] = e.subject.as_str().into();
            v["text"] = json!(e.text);
            v["html"] = json!(e.html);
            v["cc"] = json!(e.cc);
            v["bcc"] = json!(e.bcc);
            v["reply_to"] = json!(e.reply_to);
        }
        Content::Chat(c) => {
            v["channel"] = "xmpp".into();
            v["text"] = c.text.as_str().into();
        }
        Content::Email(_) => {
            return Err(Outcome::PermFail {
                error: DeliveryError::new(ErrorClass::Permanent, ErrorKind::Unencodable, "attachments do not go through a postern link")
                    .with_code("attachments_unsupported"),
            })
        }
    }
    Ok(v)
}

pub(super) async fn send(link: &HttpLink, msg: &Message) -> Outcome {
    let json = match item(link, msg) {
        Ok(v) => v,
        Err(o) => return o,
    };
    let Some(batcher) = link.batcher.get() else { return down("the link has not started") };
    let (reply, answer) = oneshot::channel();
    if batcher.tx.send(Item { id: msg.id.to_string(), json, reply }).await.is_err() {
        return down("the link has stopped");
    }
    answer.await.unwrap_or_else(|_| down("the link has stopped"))
}

/// Send one batch and answer each of its items.
async fn post(link: &HttpLink, items: Vec<Item>) {
    let mut key = Sha256::new();
    for i in &items {
        key.update(i.id.as_bytes());
        key.update(b",");
    }
    let (replies, jsons): (Vec<_>, Vec<_>) = items.into_iter().map(|i| (i.reply, i.json)).unzip();
    let body = json!({"messages": jsons}).to_string();
    let req = link
        .request("POST", &format!("{}/v1/messages/batch", link.base()))
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {}", link.token.as_deref().unwrap_or("")))
        .header("idempotency-key", format!("postern-{}", hex::encode(&key.finalize()[..16])))
        .body(Full::new(Bytes::from(body)));
    let outcomes: Vec<Outcome> = match req {
        Err(e) => replies.iter().map(|_| unbuildable(&e)).collect(),
        Ok(req) => match link.call(req).await {
            Err(o) => replies.iter().map(|_| o.clone()).collect(),
            Ok((status, headers, body)) => {
                let v: Value = serde_json::from_slice(&body).unwrap_or_default();
                match v["results"].as_array() {
                    Some(results) if status.is_success() || status.as_u16() == 422 => {
                        (0..replies.len()).map(|i| outcome_of(results.iter().find(|r| r["index"] == i))).collect()
                    }
                    _ => {
                        let o = refused(status, &headers, v["error"]["message"].as_str().unwrap_or(""));
                        replies.iter().map(|_| o.clone()).collect()
                    }
                }
            }
        },
    };
    for (reply, o) in replies.into_iter().zip(outcomes) {
        let _ = reply.send(o);
    }
}

/// One item's outcome from the remote's batch answer.
fn outcome_of(result: Option<&Value>) -> Outcome {
    let Some(r) = result else {
        let e = DeliveryError::new(ErrorClass::Unknown, ErrorKind::LinkError, "the remote's answer does not cover this message").with_code("bad_answer");
        return Outcome::TempFail { error: e, retry_after: None };
    };
    if let Some(id) = r["messages"][0]["id"].as_str() {
        return Outcome::Submitted { remote_ids: vec![id.to_string()] };
    }
    let err = if r["error"].is_object() { &r["error"] } else { &r["rejected"][0]["error"] };
    let code = err["code"].as_str().unwrap_or("rejected");
    let e = DeliveryError::new(ErrorClass::Permanent, ErrorKind::Rejected, err["message"].as_str().unwrap_or("refused by the remote"))
        .with_code(format!("remote_{code}"));
    Outcome::PermFail { error: e }
}

/// A status callback from the remote, signed with the shared secret.
pub(super) async fn status(link: &HttpLink, req: &PeerRequest) -> PeerResponse {
    let Some(secret) = &link.callback_secret else {
        return link.refuse(401, "no_secret", "this connector has no callback_secret_env to check receipts with");
    };
    let expected = format!("sha256={}", crate::connector::http::sign(secret.as_bytes(), &req.body));
    if !req.header("x-postern-signature").is_some_and(|g| same_secret(g.as_bytes(), expected.as_bytes())) {
        return link.refuse(401, "bad_signature", "X-Postern-Signature is missing or does not match");
    }
    let v: Value = match serde_json::from_slice(&req.body) {
        Ok(v) => v,
        Err(e) => return link.refuse(400, "bad_json", e.to_string()),
    };
    let (Some(id), Some(word)) = (v["id"].as_str(), v["state"].as_str()) else {
        return link.refuse(400, "missing_field", "id and state are required");
    };
    let state = match word {
        "delivered" => State::Delivered,
        "undelivered" => State::Undelivered,
        "expired" => State::Expired,
        "failed" | "canceled" => State::Failed,
        // queued, scheduled, sending, submitted: progress on the remote.
        _ => return PeerResponse::ok(),
    };
    let error = match v["error"]["code"].as_str() {
        Some(c) => Some(format!("remote_{c}")),
        None => (word == "canceled").then(|| "remote_canceled".to_string()),
    };
    link.settle(id.to_string(), state, error).await
}
