//! Messages: ids, states, the message record (envelope + delivery), and the compact binary form
//! the outbox stores (a version octet followed by postcard; no JSON on the hot path).

use super::{Delivery, Envelope, Transition};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
use thiserror::Error;

pub use crate::time::{now_ms, Millis};

/// Ids start counting at 2020-01-01T00:00:00Z.
const ID_EPOCH_MS: i64 = 1_577_836_800_000;
const SEQ_BITS: u32 = 20;
const CROCKFORD: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// A time-ordered message id: 44 bits of milliseconds since 2020 and a 20-bit sequence.
/// Printed as 13 Crockford base-32 characters, which sort like the ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct MessageId(pub u64);

impl MessageId {
    pub fn to_be_bytes(self) -> [u8; 8] {
        self.0.to_be_bytes()
    }
    pub fn from_be_slice(b: &[u8]) -> Option<MessageId> {
        Some(MessageId(u64::from_be_bytes(b.get(..8)?.try_into().ok()?)))
    }
    /// The time the id was made.
    pub fn millis(self) -> Millis {
        (self.0 >> SEQ_BITS) as i64 + ID_EPOCH_MS
    }
    /// Which of `shards` owns this message (a mix of all bits, so consecutive ids spread).
    pub fn shard(self, shards: u32) -> u32 {
        let mut x = self.0;
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^= x >> 33;
        (x % shards as u64) as u32
    }
}

impl std::fmt::Display for MessageId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut buf = [0u8; 13];
        for (i, slot) in buf.iter_mut().enumerate() {
            let shift = 60 - 5 * i as i32;
            let v = if shift >= 0 {
                (self.0 >> shift) & 31
            } else {
                (self.0 << -shift) & 31
            };
            *slot = CROCKFORD[v as usize];
        }
        f.write_str(std::str::from_utf8(&buf).map_err(|_| std::fmt::Error)?)
    }
}

/// Text that is not a message id.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("not a message id: {0:?}")]
pub struct BadId(pub String);

impl std::str::FromStr for MessageId {
    type Err = BadId;
    fn from_str(s: &str) -> Result<Self, BadId> {
        let bad = || BadId(s.chars().take(40).collect());
        if s.len() != 13 {
            return Err(bad());
        }
        let mut v: u64 = 0;
        for (i, c) in s.bytes().enumerate() {
            let c = c.to_ascii_lowercase();
            let d = match c {
                b'o' => 0,
                b'i' | b'l' => 1,
                _ => CROCKFORD.iter().position(|&x| x == c).ok_or_else(bad)? as u64,
            };
            if i == 0 {
                if d > 15 {
                    return Err(bad());
                }
                v = d;
            } else {
                v = (v << 5) | d;
            }
        }
        Ok(MessageId(v))
    }
}

/// Makes strictly increasing ids, also across restarts (seeded with the largest stored id).
#[derive(Debug, Default)]
pub struct IdGen {
    last: AtomicU64,
}

impl IdGen {
    pub fn next(&self) -> MessageId {
        let now = ((now_ms() - ID_EPOCH_MS).max(0) as u64) << SEQ_BITS;
        let mut last = self.last.load(Ordering::Relaxed);
        loop {
            let next = now.max(last + 1);
            match self
                .last
                .compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return MessageId(next),
                Err(l) => last = l,
            }
        }
    }
    /// Never hand out an id at or below `id`.
    pub fn observe(&self, id: MessageId) {
        self.last.fetch_max(id.0, Ordering::Relaxed);
    }
}

/// Message states (contract 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Queued,
    Scheduled,
    Sending,
    Submitted,
    Delivered,
    Undelivered,
    Failed,
    Expired,
    Canceled,
    /// An inbound message stored in the inbox.
    Received,
}

impl State {
    pub const ALL: [State; 10] = [
        State::Queued,
        State::Scheduled,
        State::Sending,
        State::Submitted,
        State::Delivered,
        State::Undelivered,
        State::Failed,
        State::Expired,
        State::Canceled,
        State::Received,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            State::Queued => "queued",
            State::Scheduled => "scheduled",
            State::Sending => "sending",
            State::Submitted => "submitted",
            State::Delivered => "delivered",
            State::Undelivered => "undelivered",
            State::Failed => "failed",
            State::Expired => "expired",
            State::Canceled => "canceled",
            State::Received => "received",
        }
    }
    /// Position in `State::ALL` (for per-state metric handles).
    pub fn index(self) -> usize {
        self as usize
    }
    pub fn parse(s: &str) -> Option<State> {
        State::ALL.into_iter().find(|x| x.as_str() == s)
    }
    /// No further transition happens from a final state.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            State::Delivered
                | State::Undelivered
                | State::Failed
                | State::Expired
                | State::Canceled
                | State::Received
        )
    }
    /// Waiting in the outbox for dispatch (has a schedule entry).
    pub fn is_pending(self) -> bool {
        matches!(self, State::Queued | State::Scheduled | State::Sending)
    }
}

/// Which way a message travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Outbound,
    Inbound,
}

/// A message: what was asked ([`Envelope`]) and what became of it ([`Delivery`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub id: MessageId,
    pub direction: Direction,
    pub created_at: Millis,
    pub envelope: Envelope,
    pub delivery: Delivery,
}

/// A stored value this version cannot read.
#[derive(Debug, Error)]
pub enum DecodeError {
    #[error("empty value")]
    Empty,
    #[error("unknown value version {0}")]
    Version(u8),
    #[error("corrupt message value: {0}")]
    Corrupt(#[from] postcard::Error),
}

/// The stored form's version: 1 was the flat SMS-only record (read by [`super::legacy`]).
const VALUE_VERSION: u8 = 2;

impl Message {
    /// A message made at `now`, starting in `state`, its schedule entry due at `due_at`.
    pub fn new(
        id: MessageId,
        direction: Direction,
        envelope: Envelope,
        state: State,
        now: Millis,
        due_at: Millis,
    ) -> Message {
        Message {
            id,
            direction,
            created_at: now,
            envelope,
            delivery: Delivery::new(state, now, due_at),
        }
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.delivery.state
    }

    /// Record a state change.
    pub fn set_state(&mut self, state: State, at: Millis) {
        let d = &mut self.delivery;
        if d.state != state || d.history.is_empty() {
            d.state = state;
            d.history.push(Transition { state, at });
        }
    }

    /// The stored binary form.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(256);
        v.push(VALUE_VERSION);
        // Serialising plain owned data into a Vec cannot fail.
        postcard::to_io(self, &mut v).ok();
        v
    }

    /// Read a stored value of this version or an earlier one.
    pub fn decode(b: &[u8]) -> Result<Message, DecodeError> {
        match b.first() {
            None => Err(DecodeError::Empty),
            Some(&VALUE_VERSION) => Ok(postcard::from_bytes(&b[1..])?),
            Some(&1) => super::legacy::decode_v1(&b[1..]),
            Some(&v) => Err(DecodeError::Version(v)),
        }
    }

    /// The SMS content, if this is an SMS.
    pub fn sms(&self) -> Option<&super::Sms> {
        self.envelope.content.sms()
    }

    /// The plain text of the content, if it has one.
    pub fn text(&self) -> Option<&str> {
        self.envelope.content.text()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_print_and_parse() {
        let g = IdGen::default();
        let a = g.next();
        let b = g.next();
        assert!(b > a);
        let s = a.to_string();
        assert_eq!(s.len(), 13);
        assert_eq!(s.parse::<MessageId>().unwrap(), a);
        assert!(a.to_string() < b.to_string());
        assert!("zzzzzzzzzzzzz".parse::<MessageId>().is_err());
        assert!("short".parse::<MessageId>().is_err());
        for v in [0u64, 1, u64::MAX, 0x8000_0000_0000_0000] {
            assert_eq!(
                MessageId(v).to_string().parse::<MessageId>().unwrap(),
                MessageId(v)
            );
        }
        assert!((a.millis() - now_ms()).abs() < 5000);
    }
}
