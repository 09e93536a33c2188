//! The message model: ids, states with history, bodies, and the compact binary form the outbox
//! stores (a version octet followed by postcard; no JSON on the hot path).

use crate::codec::Coding;
use crate::config::Channel;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
use thiserror::Error;

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

/// Now, in milliseconds since the Unix epoch.
pub fn now_ms() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// RFC 3339 UTC text of a millisecond timestamp.
pub fn rfc3339(ms: Millis) -> String {
    let secs = ms.div_euclid(1000);
    let milli = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{milli:03}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

/// Days since 1970-01-01 -> (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// (year, month, day) -> days since 1970-01-01.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 } as i64;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parse an RFC 3339 timestamp (`2026-01-02T03:04:05Z`, optional fraction, `±HH:MM` offset).
pub fn parse_rfc3339(s: &str) -> Option<Millis> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        if t.bytes().all(|c| c.is_ascii_digit()) {
            t.parse().ok()
        } else {
            None
        }
    };
    let (y, mo, d, h, mi, se) = (
        num(0..4)?,
        num(5..7)?,
        num(8..10)?,
        num(11..13)?,
        num(14..16)?,
        num(17..19)?,
    );
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut i = 19;
    let mut frac_ms = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let digits = s.get(start..i)?;
        if digits.is_empty() {
            return None;
        }
        let d3: String = digits.chars().chain("000".chars()).take(3).collect();
        frac_ms = d3.parse().ok()?;
    }
    let offset_min = match s.get(i..)? {
        "Z" | "z" => 0,
        rest if rest.len() == 6
            && (rest.starts_with('+') || rest.starts_with('-'))
            && &rest[3..4] == ":" =>
        {
            let oh: i64 = rest.get(1..3)?.parse().ok()?;
            let om: i64 = rest.get(4..6)?.parse().ok()?;
            let v = oh * 60 + om;
            if rest.starts_with('-') {
                -v
            } else {
                v
            }
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo as u32, d as u32);
    let secs = days * 86_400 + h * 3600 + mi * 60 + se - offset_min * 60;
    Some(secs * 1000 + frac_ms)
}

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

/// What a message carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Body {
    Text(String),
    Binary { data: Vec<u8>, data_coding: u8 },
}

/// One entry of the state history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    pub state: State,
    pub at: Millis,
}

/// The last error a message met.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorInfo {
    /// Stable, bounded code (also a metric label).
    pub code: String,
    pub message: String,
}

/// Kannel-style delivery report request (`dlr-url` with `%` escapes, `dlr-mask`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KannelDlr {
    pub url: String,
    pub mask: u8,
}

/// A message and everything known about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub id: MessageId,
    pub direction: Direction,
    pub channel: Channel,
    pub from: Option<String>,
    pub to: String,
    pub body: Body,
    /// User data header given by the client (Kannel `udh`), sent before the body.
    pub udh: Option<Vec<u8>>,
    pub coding: Coding,
    pub segments: u16,
    pub client_ref: Option<String>,
    /// A JSON object, as text.
    pub metadata: Option<String>,
    pub tags: Vec<String>,
    pub priority: u8,
    pub send_at: Option<Millis>,
    pub expires_at: Millis,
    pub callback_url: Option<String>,
    pub kannel_dlr: Option<KannelDlr>,
    pub state: State,
    pub history: Vec<Transition>,
    pub attempts: u32,
    pub error: Option<ErrorInfo>,
    pub connector: Option<String>,
    pub remote_ids: Vec<String>,
    /// Receipt state per part of a multipart message (same order as `remote_ids`).
    pub part_states: Vec<State>,
    /// When the schedule entry of a pending message is due.
    pub due_at: Millis,
    pub created_at: Millis,
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

const VALUE_VERSION: u8 = 1;

impl Message {
    /// Record a state change.
    pub fn set_state(&mut self, state: State, at: Millis) {
        if self.state != state || self.history.is_empty() {
            self.state = state;
            self.history.push(Transition { state, at });
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

    pub fn decode(b: &[u8]) -> Result<Message, DecodeError> {
        match b.first() {
            None => Err(DecodeError::Empty),
            Some(&VALUE_VERSION) => Ok(postcard::from_bytes(&b[1..])?),
            Some(&v) => Err(DecodeError::Version(v)),
        }
    }

    /// For a message that came in through a connector, the rest of its `via:` tag (the
    /// connector and account it came from, which receipts go back to).
    pub fn via(&self) -> Option<&str> {
        self.tags.iter().find_map(|t| t.strip_prefix("via:"))
    }

    /// The text of the body, if it is text.
    pub fn text(&self) -> Option<&str> {
        match &self.body {
            Body::Text(t) => Some(t),
            Body::Binary { .. } => None,
        }
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

    #[test]
    fn dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        let t = parse_rfc3339("2026-11-22T13:33:38.5+01:00").unwrap();
        assert_eq!(rfc3339(t), "2026-11-22T12:33:38.500Z");
        assert!(parse_rfc3339("2026-13-01T00:00:00Z").is_none());
        assert!(parse_rfc3339("yesterday").is_none());
    }
}
