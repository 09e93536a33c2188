//! A set of changes the hub asks the store to make in one atomic write, said by meaning (store
//! this message, schedule it, expect a receipt for that remote id, owe that callback). Only this
//! module and the outbox's own readers know which column family and key each one is: the hub
//! never builds a key.

use super::keys;
use super::writer::{Cf, Op};
use crate::model::{Message, MessageId, Millis};

/// Changes committed together (one RocksDB write batch).
#[derive(Debug, Default)]
pub struct Changes(pub(super) Vec<Op>);

/// Where an owed callback is kept (its time and a sequence number), to settle it by.
pub type EventKey = Vec<u8>;

impl Changes {
    pub fn new() -> Changes {
        Changes(Vec::new())
    }
    pub fn with_capacity(n: usize) -> Changes {
        Changes(Vec::with_capacity(n))
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// Add another set after these.
    pub fn extend(&mut self, other: Changes) {
        self.0.extend(other.0)
    }
    /// Store (or replace) a message.
    pub fn store(&mut self, msg: &Message) {
        self.0.push(Op::put(Cf::Msg, keys::msg_key(msg.id), msg.encode()));
    }
    /// Make message `id` due on `shard` at `due`.
    pub fn schedule(&mut self, shard: u32, due: Millis, id: MessageId) {
        self.0.push(Op::put(Cf::Due, keys::due_key(shard, due, id), Vec::new()));
    }
    /// Take the schedule entry of `msg` (due at its `due_at`) off `shard`.
    pub fn unschedule(&mut self, shard: u32, msg: &Message) {
        self.0.push(Op::delete(Cf::Due, keys::due_key(shard, msg.delivery.due_at, msg.id)));
    }
    /// A receipt from `connector` for `remote_id` will settle part `part` of message `id`.
    pub fn expect_receipt(&mut self, connector: &str, remote_id: &str, id: MessageId, part: u16) {
        self.0.push(Op::put(
            Cf::Remote,
            keys::remote_key(connector, remote_id),
            &keys::remote_value(id, part)[..],
        ));
    }
    /// No receipt is expected any more for `remote_id` on `connector`.
    pub fn forget_receipt(&mut self, connector: &str, remote_id: &str) {
        self.0.push(Op::delete(Cf::Remote, keys::remote_key(connector, remote_id)));
    }
    /// A callback (its encoded event) is owed from `at`; `seq` orders those of one instant.
    pub fn owe_callback(&mut self, at: Millis, seq: MessageId, event: Vec<u8>) {
        self.0.push(Op::put(Cf::Events, keys::event_key(at, seq), event));
    }
    /// The callback kept at `key` is settled (sent, or given up).
    pub fn settle_callback(&mut self, key: EventKey) {
        self.0.push(Op::delete(Cf::Events, key));
    }
    /// Store a record (see [`super::Outbox::put_record`]) in the same write.
    pub fn put_record(&mut self, collection: &str, id: &str, value: Vec<u8>) {
        self.0.push(Op::put(Cf::Records, keys::record_key(collection, id), value));
    }
    /// Message `id` refers to blob `digest` (it is kept while any message does).
    pub fn ref_blob(&mut self, digest: &super::Digest, id: MessageId) {
        self.0.push(Op::put(Cf::BlobRefs, keys::blob_ref_key(&digest.0, id), Vec::new()));
    }
    /// `msg` refers to the blobs of its attachments (written once, with the new message).
    pub fn ref_attachments(&mut self, msg: &Message) {
        if let crate::model::Content::Email(e) = &msg.envelope.content {
            for a in &e.attachments {
                if let Ok(d) = a.digest.parse::<super::Digest>() {
                    self.ref_blob(&d, msg.id);
                }
            }
        }
    }
    /// Message `id` no longer refers to blob `digest`.
    pub fn unref_blob(&mut self, digest: &super::Digest, id: MessageId) {
        self.0.push(Op::delete(Cf::BlobRefs, keys::blob_ref_key(&digest.0, id)));
    }
    /// Hold one part of a concatenated inbound message (`value` encoded by the caller).
    pub fn hold_part(&mut self, connector: &str, p: &crate::connector::HeldPart, value: Vec<u8>) {
        let key = keys::part_key(connector, &p.sender, &p.receiver, p.reference, p.total, p.seq);
        self.0.push(Op::put(Cf::Parts, key, value));
    }
    /// Drop every held part of one concatenated message.
    pub fn drop_parts(&mut self, connector: &str, key: &crate::codec::reassembly::PartKey) {
        for seq in 1..=key.total {
            let k = keys::part_key(connector, &key.sender, &key.receiver, key.reference, key.total, seq);
            self.0.push(Op::delete(Cf::Parts, k));
        }
    }
}
