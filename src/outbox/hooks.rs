//! Webhook deliveries, one queue per endpoint in the `hooks` column family, written in the same
//! commit as the state change (or the received message) they report: `q ‖ endpoint ‖ seq` for
//! what is still to be sent (in order: seq is a time-ordered id), `d ‖ endpoint ‖ seq` for the
//! dead letters (every try failed). What a delivery's bytes mean is [`crate::webhooks`]'s.

use super::keys::*;
use super::*;

const QUEUE: u8 = b'q';
const DEAD: u8 = b'd';
/// Sent, kept for replays until swept.
const SENT: u8 = b's';

fn hook_key(kind: u8, endpoint: u64, seq: MessageId) -> [u8; 17] {
    let mut k = [0u8; 17];
    k[0] = kind;
    k[1..9].copy_from_slice(&endpoint.to_be_bytes());
    k[9..].copy_from_slice(&seq.to_be_bytes());
    k
}

fn prefix(kind: u8, endpoint: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = kind;
    k[1..].copy_from_slice(&endpoint.to_be_bytes());
    k
}

impl Changes {
    /// Queue a delivery for `endpoint`.
    pub fn enqueue_hook(&mut self, endpoint: u64, seq: MessageId, delivery: Vec<u8>) {
        self.0.push(Op::put(Cf::Hooks, hook_key(QUEUE, endpoint, seq), delivery));
    }
    /// Rewrite a queued delivery (its attempts so far, its next time).
    pub fn requeue_hook(&mut self, endpoint: u64, seq: MessageId, delivery: Vec<u8>) {
        self.enqueue_hook(endpoint, seq, delivery);
    }
    /// A queued delivery is done (or dropped).
    pub fn settle_hook(&mut self, endpoint: u64, seq: MessageId) {
        self.0.push(Op::delete(Cf::Hooks, hook_key(QUEUE, endpoint, seq)));
    }
    /// A queued delivery was sent: kept among the sent ones (for replays) until swept.
    pub fn sent_hook(&mut self, endpoint: u64, seq: MessageId, delivery: Vec<u8>) {
        self.settle_hook(endpoint, seq);
        self.0.push(Op::put(Cf::Hooks, hook_key(SENT, endpoint, seq), delivery));
    }
    /// Forget a sent delivery (swept).
    pub fn forget_sent_hook(&mut self, endpoint: u64, seq: MessageId) {
        self.0.push(Op::delete(Cf::Hooks, hook_key(SENT, endpoint, seq)));
    }
    /// Send a sent delivery again (a replay): queued once more.
    pub fn replay_hook(&mut self, endpoint: u64, seq: MessageId, delivery: Vec<u8>) {
        self.enqueue_hook(endpoint, seq, delivery);
    }
    /// A queued delivery failed for the last time: it moves to the dead letters.
    pub fn bury_hook(&mut self, endpoint: u64, seq: MessageId, delivery: Vec<u8>) {
        self.settle_hook(endpoint, seq);
        self.0.push(Op::put(Cf::Hooks, hook_key(DEAD, endpoint, seq), delivery));
    }
    /// A dead letter is sent again: back to the queue.
    pub fn revive_hook(&mut self, endpoint: u64, seq: MessageId, delivery: Vec<u8>) {
        self.0.push(Op::delete(Cf::Hooks, hook_key(DEAD, endpoint, seq)));
        self.enqueue_hook(endpoint, seq, delivery);
    }
    /// Forget a dead letter.
    pub fn drop_dead_hook(&mut self, endpoint: u64, seq: MessageId) {
        self.0.push(Op::delete(Cf::Hooks, hook_key(DEAD, endpoint, seq)));
    }
}

impl Outbox {
    fn hook_scan(&self, kind: u8, endpoint: u64, after: Option<MessageId>, limit: usize) -> Result<Vec<(MessageId, Vec<u8>)>, OutboxError> {
        let db = self.db()?;
        let cf = cf_of(&db, CF_HOOKS)?;
        let p = prefix(kind, endpoint);
        let start = match after {
            Some(s) => hook_key(kind, endpoint, MessageId(s.0.saturating_add(1))).to_vec(),
            None => p.to_vec(),
        };
        let mut out = Vec::new();
        for kv in db.iterator_cf(cf, IteratorMode::From(&start, IterDir::Forward)) {
            let (k, v) = kv?;
            if !k.starts_with(&p) || out.len() == limit {
                break;
            }
            if let Some(seq) = MessageId::from_be_slice(&k[9..]) {
                out.push((seq, v.into_vec()));
            }
        }
        Ok(out)
    }

    /// Queued deliveries of `endpoint`, in order, after `after`.
    pub fn hook_queue(&self, endpoint: u64, after: Option<MessageId>, limit: usize) -> Result<Vec<(MessageId, Vec<u8>)>, OutboxError> {
        self.hook_scan(QUEUE, endpoint, after, limit)
    }

    /// Dead letters of `endpoint`, in order, after `after`.
    pub fn hook_dead(&self, endpoint: u64, after: Option<MessageId>, limit: usize) -> Result<Vec<(MessageId, Vec<u8>)>, OutboxError> {
        self.hook_scan(DEAD, endpoint, after, limit)
    }

    /// Sent deliveries of `endpoint`, in order, after `after`.
    pub fn hook_sent(&self, endpoint: u64, after: Option<MessageId>, limit: usize) -> Result<Vec<(MessageId, Vec<u8>)>, OutboxError> {
        self.hook_scan(SENT, endpoint, after, limit)
    }

    /// One dead letter.
    pub fn hook_dead_one(&self, endpoint: u64, seq: MessageId) -> Result<Option<Vec<u8>>, OutboxError> {
        let db = self.db()?;
        Ok(db.get_cf(cf_of(&db, CF_HOOKS)?, hook_key(DEAD, endpoint, seq))?)
    }
}
