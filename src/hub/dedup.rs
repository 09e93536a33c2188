//! Inbound de-duplication. A peer whose ack was lost sends the message again: an SMSC
//! re-sends a `deliver_sm` whose `deliver_sm_resp` it never read, a mail client re-sends after
//! a dropped `250`, a modem's SIM still holds a message stored just before a crash. Each
//! received message leaves a fingerprint in the outbox (`records`, collection
//! `inbound-seen`), written in the same commit as the message; one arriving with a
//! fingerprint still fresh is answered as stored and not stored again.
//!
//! The fingerprint is the connector, sender and the peer's own id for the message when the
//! connector has one (kept [`ID_WINDOW_MS`]); else the connector, sender, recipient and
//! content (kept `outbox.inbound_dedup_s`: the same text from the same number within that
//! window is taken for a re-send). Fingerprints are swept hourly.

use crate::model::{now_ms, MessageId};
use crate::outbox::{Changes, Outbox};
use sha2::{Digest, Sha256};

const COLLECTION: &str = "inbound-seen";
/// How long a message named by the peer's own id is remembered.
pub const ID_WINDOW_MS: i64 = 86_400_000;

/// What a received message is recognised by.
pub struct Fingerprint {
    key: String,
    window_ms: i64,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Seen {
    /// The message stored (empty for an MO part).
    id: String,
    at: i64,
    window_ms: i64,
}

impl Fingerprint {
    /// By the peer's own id for the message.
    pub fn by_id(connector: &str, from: &str, peer_id: &str) -> Fingerprint {
        Fingerprint { key: digest(&[b"id", connector.as_bytes(), from.as_bytes(), peer_id.as_bytes()]), window_ms: ID_WINDOW_MS }
    }
    /// By what it says (`fields`: recipient, content, …), for `window_s`; none when 0.
    pub fn by_content(connector: &str, from: &str, fields: &[&[u8]], window_s: u64) -> Option<Fingerprint> {
        if window_s == 0 {
            return None;
        }
        let mut all: Vec<&[u8]> = vec![b"content", connector.as_bytes(), from.as_bytes()];
        all.extend_from_slice(fields);
        Some(Fingerprint { key: digest(&all), window_ms: window_s as i64 * 1000 })
    }

    /// The message stored under this fingerprint, if it is still fresh (`Some("")` for a
    /// part). A store that cannot be read counts as "not seen": storing twice beats losing.
    pub fn seen(&self, outbox: &Outbox) -> Option<String> {
        let bytes = outbox.get_record(COLLECTION, &self.key).ok()??;
        let s: Seen = serde_json::from_slice(&bytes).ok()?;
        (now_ms() - s.at < self.window_ms).then_some(s.id)
    }

    /// Remember it (with the message `id`, if any) in `changes`.
    pub fn remember(&self, id: Option<MessageId>, changes: &mut Changes) {
        let seen = Seen { id: id.map(|i| i.to_string()).unwrap_or_default(), at: now_ms(), window_ms: self.window_ms };
        changes.put_record(COLLECTION, &self.key, serde_json::to_vec(&seen).unwrap_or_default());
    }
}

fn digest(fields: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for f in fields {
        h.update((f.len() as u32).to_le_bytes());
        h.update(f);
    }
    hex::encode(&h.finalize()[..16])
}

/// Remove fingerprints past their window; how many went.
pub async fn sweep(outbox: &Outbox) -> Result<usize, crate::outbox::OutboxError> {
    let now = now_ms();
    let mut n = 0;
    for (key, bytes) in outbox.records(COLLECTION)? {
        let old = serde_json::from_slice::<Seen>(&bytes).map_or(true, |s| now - s.at >= s.window_ms);
        if old {
            outbox.delete_record(COLLECTION, &key).await?;
            n += 1;
        }
    }
    Ok(n)
}
