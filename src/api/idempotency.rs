//! `Idempotency-Key` on the creating endpoints (`POST /v1/messages`, `/v1/messages/batch`, and
//! with a weaker promise, see [`around`], `/v1/templates` and `/v1/webhooks`; a blob is named by
//! its bytes, so uploading it again changes nothing anyway):
//! the same key with the same request within 24 hours gets the first answer again (with
//! `Idempotent-Replayed: true`) and creates nothing; the same key with another request is
//! `409 idempotency_key_reused`; the same key while its first request is still being answered is
//! `409 idempotency_key_in_use`. The answer is stored in the same outbox write as the messages
//! it names, so a client that retries after a crash (Postern's or its own) gets the ids of what
//! was stored, never a second copy. Refused requests store nothing (retrying them is refused
//! again the same way). Keys are swept once they are older than the window.

use super::error::ApiError;
use super::{Api, Resp};
use crate::model::{now_ms, Millis};
use crate::outbox::Changes;
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::Request;
use hyper::StatusCode;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashSet;

/// The records collection keys live in.
const COLLECTION: &str = "idempotency";
/// How long a key is remembered.
pub const WINDOW_MS: Millis = 24 * 3600 * 1000;
/// Longest key.
const MAX_KEY: usize = 255;

/// What is kept for a key.
#[derive(Serialize, Deserialize)]
struct Stored {
    /// SHA-256 of the method, path and body.
    fingerprint: String,
    at: Millis,
    status: u16,
    body: String,
}

/// Keys whose first request is being answered.
#[derive(Default)]
pub struct InUse(Mutex<HashSet<String>>);

/// A key being answered: holds it in use until dropped.
pub(super) struct Claim<'a> {
    api: &'a Api,
    key: String,
    fingerprint: String,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        self.api.idempotency.0.lock().remove(&self.key);
    }
}

/// The request's `Idempotency-Key` (owned: the body is read after).
pub(super) fn key_of(req: &Request<Incoming>) -> Option<HeaderValue> {
    req.headers().get("idempotency-key").cloned()
}

/// What to do with a request that has a key.
pub(super) enum Begin<'a> {
    /// A new key: answer, and [`Claim::store`] the answer with what is created.
    Fresh(Claim<'a>),
    /// Seen: this is the first answer.
    Replay(Resp),
}

/// Look a request's key up.
pub(super) fn begin<'a>(api: &'a Api, v: &HeaderValue, what: &str, body: &[u8]) -> Result<Begin<'a>, ApiError> {
    let key = v
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= MAX_KEY && k.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| {
            ApiError::bad_request("invalid_field", format!("Idempotency-Key is 1-{MAX_KEY} visible ASCII characters")).field("Idempotency-Key")
        })?
        .to_string();
    let mut h = Sha256::new();
    h.update(what.as_bytes());
    h.update([0]);
    h.update(body);
    let fingerprint = hex::encode(h.finalize());
    if !api.idempotency.0.lock().insert(key.clone()) {
        return Err(ApiError::new(StatusCode::CONFLICT, "idempotency_key_in_use", "a request with this Idempotency-Key is being answered; retry later")
            .field("Idempotency-Key")
            .retry_after(1));
    }
    let claim = Claim { api, key, fingerprint };
    let stored = api
        .hub
        .outbox
        .get_record(COLLECTION, &claim.key)
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable", e.to_string()))?
        .and_then(|b| serde_json::from_slice::<Stored>(&b).ok())
        .filter(|s| now_ms() - s.at < WINDOW_MS);
    match stored {
        None => Ok(Begin::Fresh(claim)),
        Some(s) if s.fingerprint == claim.fingerprint => {
            let status = StatusCode::from_u16(s.status).unwrap_or(StatusCode::OK);
            let mut r = super::text_response(status, s.body, "application/json");
            r.headers_mut().insert("idempotent-replayed", hyper::header::HeaderValue::from_static("true"));
            Ok(Begin::Replay(r))
        }
        Some(_) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "idempotency_key_reused",
            "this Idempotency-Key was used with another request in the last 24 hours",
        )
        .field("Idempotency-Key")),
    }
}

impl Claim<'_> {
    /// Keep `body` as the key's answer, in `changes` (the write that creates what it names).
    pub fn store(&self, status: StatusCode, body: &str, changes: &mut Changes) {
        let s = Stored { fingerprint: self.fingerprint.clone(), at: now_ms(), status: status.as_u16(), body: body.to_string() };
        if let Ok(v) = serde_json::to_vec(&s) {
            changes.put_record(COLLECTION, &self.key, v);
        }
    }
}

/// For a creating endpoint whose creation is a write of its own (templates, webhooks): with a
/// key, the first answer again for the same request, `409` for another; otherwise `create`
/// runs and its 2xx answer is kept (written after the creation: a crash between the two leaves
/// the key free, and a retry creates again: a template is refused as existing, a webhook
/// endpoint would be made twice).
pub(super) async fn around<F, Fut>(api: &Api, key: Option<&HeaderValue>, what: &str, body: bytes::Bytes, create: F) -> Result<Resp, ApiError>
where
    F: FnOnce(bytes::Bytes) -> Fut,
    Fut: std::future::Future<Output = Result<(StatusCode, serde_json::Value), ApiError>>,
{
    let claim = match key.map(|h| begin(api, h, what, &body)).transpose()? {
        Some(Begin::Replay(r)) => return Ok(r),
        Some(Begin::Fresh(c)) => Some(c),
        None => None,
    };
    let (status, v) = create(body).await?;
    let text = v.to_string();
    if let (Some(c), true) = (&claim, status.is_success()) {
        let mut ops = Changes::new();
        c.store(status, &text, &mut ops);
        api.hub.outbox.write(0, ops, vec![], 0).await?;
    }
    Ok(super::text_response(status, text, "application/json"))
}

/// Remove the keys older than the window; how many.
pub async fn sweep(outbox: &crate::outbox::Outbox) -> Result<usize, crate::outbox::OutboxError> {
    let now = now_ms();
    let mut n = 0;
    for (key, bytes) in outbox.records(COLLECTION)? {
        let old = serde_json::from_slice::<Stored>(&bytes).map_or(true, |s| now - s.at >= WINDOW_MS);
        if old {
            outbox.delete_record(COLLECTION, &key).await?;
            n += 1;
        }
    }
    Ok(n)
}
