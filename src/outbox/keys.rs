//! Key layouts of the outbox column families. All integers are big-endian so that RocksDB's
//! byte order is time order.

use super::writer::Key;
use crate::model::{MessageId, Millis};

pub const CF_MSG: &str = "msg";
pub const CF_DUE: &str = "due";
pub const CF_REMOTE: &str = "remote";
pub const CF_EVENTS: &str = "events";
pub const CF_PARTS: &str = "parts";
pub const CF_BLOBS: &str = "blobs";
pub const CF_BLOB_REFS: &str = "blob_refs";
pub const CF_RECORDS: &str = "records";
pub const CF_HOOKS: &str = "hooks";
pub const ALL_CFS: [&str; 9] = [CF_MSG, CF_DUE, CF_REMOTE, CF_EVENTS, CF_PARTS, CF_BLOBS, CF_BLOB_REFS, CF_RECORDS, CF_HOOKS];

/// `records`: collection ‖ 0 ‖ id.
pub fn record_key(collection: &str, id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(collection.len() + 1 + id.len());
    k.extend_from_slice(collection.as_bytes());
    k.push(0);
    k.extend_from_slice(id.as_bytes());
    k
}

/// `blob_refs`: digest ‖ message id -> nothing: one entry per message that refers to a blob.
pub fn blob_ref_key(digest: &[u8; 32], id: MessageId) -> [u8; 40] {
    let mut k = [0u8; 40];
    k[..32].copy_from_slice(digest);
    k[32..].copy_from_slice(&id.0.to_be_bytes());
    k
}

/// `msg`: id.
pub fn msg_key(id: MessageId) -> [u8; 8] {
    id.to_be_bytes()
}

fn time_be(t: Millis) -> [u8; 8] {
    // Shift so that negative times (never expected) still sort before positive ones.
    ((t as u64) ^ (1 << 63)).to_be_bytes()
}

fn time_from_be(b: &[u8]) -> Option<Millis> {
    Some((u64::from_be_bytes(b.get(..8)?.try_into().ok()?) ^ (1 << 63)) as i64)
}

/// `due`: shard ‖ due time ‖ id. A range scan up to now finds work; the first later key sets the
/// next wake-up.
pub fn due_key(shard: u32, due: Millis, id: MessageId) -> [u8; 20] {
    let mut k = [0u8; 20];
    k[..4].copy_from_slice(&shard.to_be_bytes());
    k[4..12].copy_from_slice(&time_be(due));
    k[12..].copy_from_slice(&id.to_be_bytes());
    k
}

/// Bounds of one shard's schedule: keys in `[due_prefix(s), due_prefix(s+1))`.
pub fn due_prefix(shard: u32) -> [u8; 4] {
    shard.to_be_bytes()
}

/// Upper bound (exclusive) of a shard's keys due at or before `t`.
pub fn due_upto(shard: u32, t: Millis) -> [u8; 12] {
    let mut k = [0u8; 12];
    k[..4].copy_from_slice(&shard.to_be_bytes());
    k[4..].copy_from_slice(&time_be(t.saturating_add(1)));
    k
}

/// Lower bound (inclusive) of a shard's keys due at or after `t`.
pub fn due_from(shard: u32, t: Millis) -> [u8; 12] {
    due_upto(shard, t.saturating_sub(1))
}

/// Split a due key into (shard, due, id).
pub fn parse_due_key(k: &[u8]) -> Option<(u32, Millis, MessageId)> {
    if k.len() != 20 {
        return None;
    }
    let shard = u32::from_be_bytes(k[..4].try_into().ok()?);
    Some((
        shard,
        time_from_be(&k[4..12])?,
        MessageId::from_be_slice(&k[12..])?,
    ))
}

/// `remote`: connector ‖ 0x00 ‖ remote id -> message id ‖ part index.
pub fn remote_key(connector: &str, remote_id: &str) -> Key {
    let mut k = Key::with_capacity(connector.len() + 1 + remote_id.len());
    k.extend_from_slice(connector.as_bytes());
    k.push(0);
    k.extend_from_slice(remote_id.as_bytes());
    k
}

pub fn remote_value(id: MessageId, part: u16) -> [u8; 10] {
    let mut v = [0u8; 10];
    v[..8].copy_from_slice(&id.to_be_bytes());
    v[8..].copy_from_slice(&part.to_be_bytes());
    v
}

pub fn parse_remote_value(v: &[u8]) -> Option<(MessageId, u16)> {
    if v.len() != 10 {
        return None;
    }
    Some((
        MessageId::from_be_slice(&v[..8])?,
        u16::from_be_bytes([v[8], v[9]]),
    ))
}

/// `events`: next attempt time ‖ event id.
pub fn event_key(at: Millis, event: MessageId) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&time_be(at));
    k[8..].copy_from_slice(&event.to_be_bytes());
    k
}

pub fn parse_event_key(k: &[u8]) -> Option<(Millis, MessageId)> {
    if k.len() != 16 {
        return None;
    }
    Some((time_from_be(&k[..8])?, MessageId::from_be_slice(&k[8..])?))
}

pub fn event_upto(t: Millis) -> [u8; 8] {
    time_be(t.saturating_add(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_keys_sort_by_time() {
        let a = due_key(1, 1000, MessageId(9));
        let b = due_key(1, 1001, MessageId(1));
        assert!(a < b);
        assert!(a.as_slice() < due_upto(1, 1000).as_slice());
        assert!(b.as_slice() >= due_upto(1, 1000).as_slice());
        assert_eq!(parse_due_key(&a), Some((1, 1000, MessageId(9))));
        assert!(due_key(2, 0, MessageId(0)).as_slice() > due_upto(1, i64::MAX - 1).as_slice());
    }
}

/// `parts`: connector ‖ 0x00 ‖ sender ‖ 0x00 ‖ receiver ‖ 0x00 ‖ reference ‖ total ‖ seq -> a
/// held part of a concatenated MO message (acked to its peer, the rest not yet in).
pub fn part_key(connector: &str, sender: &str, receiver: &str, reference: u16, total: u8, seq: u8) -> Key {
    let mut k = remote_key(connector, sender);
    k.push(0);
    k.extend_from_slice(receiver.as_bytes());
    k.push(0);
    k.extend_from_slice(&reference.to_be_bytes());
    k.push(total);
    k.push(seq);
    k
}
