//! Reassembly of concatenated messages: parts keyed by (sender, receiver, reference, total)
//! arrive in any order, possibly twice; a message is delivered when all parts are in, or after
//! a timeout with what arrived, marked incomplete. The three SMPP forms meet here: UDH
//! concatenation in the short message, SAR TLVs, and `message_payload` (already whole). The
//! pending state can be saved and restored so a restart loses no part.

use super::udh::Concat;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use thiserror::Error;

/// Which message a part belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PartKey {
    pub sender: String,
    pub receiver: String,
    pub reference: u16,
    pub total: u8,
}

/// The position of a part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartInfo {
    pub reference: u16,
    pub total: u8,
    pub seq: u8,
}

impl From<Concat> for PartInfo {
    fn from(c: Concat) -> Self {
        PartInfo {
            reference: c.reference,
            total: c.total,
            seq: c.seq,
        }
    }
}

impl PartInfo {
    /// From SMPP SAR TLVs (sar_msg_ref_num, sar_total_segments, sar_segment_seqnum).
    pub fn from_sar(reference: u16, total: u8, seq: u8) -> Self {
        PartInfo {
            reference,
            total,
            seq,
        }
    }
}

/// A part's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PartBody {
    Text(String),
    Data(Vec<u8>),
}

/// A reassembled message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reassembled {
    pub key: PartKey,
    pub body: PartBody,
    /// Sequence numbers that never arrived (empty when complete).
    pub missing: Vec<u8>,
}

impl Reassembled {
    pub fn is_complete(&self) -> bool {
        self.missing.is_empty()
    }
}

/// A part that cannot belong to any message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ReassemblyError {
    #[error("part {seq} of {total}: sequence numbers run from 1 to the total")]
    BadSequence { seq: u8, total: u8 },
    #[error("part mixes text and binary with earlier parts")]
    MixedBodies,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Pending {
    parts: BTreeMap<u8, PartBody>,
    first_ms: i64,
}

/// The reassembler.
#[derive(Debug, Default)]
pub struct Reassembler {
    pending: HashMap<PartKey, Pending>,
    /// Messages completed within the timeout: a late duplicate of one of their parts must not
    /// start a new, forever-incomplete message.
    completed: HashMap<PartKey, i64>,
    pub timeout_ms: i64,
    /// Most messages pending at once; the oldest is delivered incomplete beyond it.
    pub max_pending: usize,
}

fn join(key: PartKey, parts: BTreeMap<u8, PartBody>) -> Reassembled {
    let missing: Vec<u8> = (1..=key.total).filter(|s| !parts.contains_key(s)).collect();
    let body = if parts.values().all(|p| matches!(p, PartBody::Text(_))) {
        PartBody::Text(
            parts
                .into_values()
                .map(|p| {
                    if let PartBody::Text(t) = p {
                        t
                    } else {
                        String::new()
                    }
                })
                .collect(),
        )
    } else {
        PartBody::Data(
            parts
                .into_values()
                .flat_map(|p| {
                    if let PartBody::Data(d) = p {
                        d
                    } else {
                        Vec::new()
                    }
                })
                .collect(),
        )
    };
    Reassembled { key, body, missing }
}

impl Reassembler {
    pub fn new(timeout_ms: i64, max_pending: usize) -> Self {
        Reassembler {
            pending: HashMap::new(),
            completed: HashMap::new(),
            timeout_ms,
            max_pending,
        }
    }

    /// Add one part; returns the message when it is complete. Duplicates are ignored.
    pub fn add(
        &mut self,
        sender: &str,
        receiver: &str,
        info: PartInfo,
        body: PartBody,
        now_ms: i64,
    ) -> Result<Vec<Reassembled>, ReassemblyError> {
        if info.seq == 0 || info.seq > info.total {
            return Err(ReassemblyError::BadSequence {
                seq: info.seq,
                total: info.total,
            });
        }
        let key = PartKey {
            sender: sender.to_string(),
            receiver: receiver.to_string(),
            reference: info.reference,
            total: info.total,
        };
        if info.total == 1 {
            return Ok(vec![Reassembled {
                key,
                body,
                missing: vec![],
            }]);
        }
        if self
            .completed
            .get(&key)
            .is_some_and(|&t| now_ms - t < self.timeout_ms)
        {
            return Ok(Vec::new()); // a late duplicate
        }
        let mut out = Vec::new();
        if !self.pending.contains_key(&key)
            && self.max_pending > 0
            && self.pending.len() >= self.max_pending
        {
            if let Some(oldest) = self
                .pending
                .iter()
                .min_by_key(|(_, p)| p.first_ms)
                .map(|(k, _)| k.clone())
            {
                if let Some(p) = self.pending.remove(&oldest) {
                    out.push(join(oldest, p.parts));
                }
            }
        }
        let p = self.pending.entry(key.clone()).or_insert_with(|| Pending {
            parts: BTreeMap::new(),
            first_ms: now_ms,
        });
        if let Some(first) = p.parts.values().next() {
            if std::mem::discriminant(first) != std::mem::discriminant(&body) {
                return Err(ReassemblyError::MixedBodies);
            }
        }
        p.parts.entry(info.seq).or_insert(body);
        if p.parts.len() == info.total as usize {
            if let Some(p) = self.pending.remove(&key) {
                self.completed.insert(key.clone(), now_ms);
                out.push(join(key, p.parts));
            }
        }
        Ok(out)
    }

    /// Deliver, incomplete, every message whose first part is older than the timeout.
    pub fn expire(&mut self, now_ms: i64) -> Vec<Reassembled> {
        let timeout = self.timeout_ms;
        self.completed.retain(|_, t| now_ms - *t < timeout);
        let old: Vec<PartKey> = self
            .pending
            .iter()
            .filter(|(_, p)| now_ms - p.first_ms >= self.timeout_ms)
            .map(|(k, _)| k.clone())
            .collect();
        old.into_iter()
            .filter_map(|k| self.pending.remove(&k).map(|p| join(k, p.parts)))
            .collect()
    }

    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// The pending parts, to store.
    pub fn save(&self) -> Vec<u8> {
        let v: Vec<(&PartKey, &Pending)> = self.pending.iter().collect();
        postcard::to_stdvec(&v).unwrap_or_default()
    }

    /// Restore pending parts saved by [`Reassembler::save`].
    pub fn restore(&mut self, bytes: &[u8]) -> Result<(), postcard::Error> {
        let v: Vec<(PartKey, Pending)> = postcard::from_bytes(bytes)?;
        self.pending.extend(v);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> PartBody {
        PartBody::Text(s.into())
    }

    #[test]
    fn out_of_order_duplicates_and_timeout() {
        let mut r = Reassembler::new(1000, 100);
        let i = |seq| PartInfo {
            reference: 7,
            total: 3,
            seq,
        };
        assert!(r.add("a", "b", i(3), t("c"), 0).unwrap().is_empty());
        assert!(r.add("a", "b", i(1), t("a"), 1).unwrap().is_empty());
        assert!(r.add("a", "b", i(1), t("a"), 2).unwrap().is_empty());
        let done = r.add("a", "b", i(2), t("b"), 3).unwrap();
        assert_eq!(done[0].body, t("abc"));
        assert!(done[0].is_complete());
        // a late duplicate within the timeout is dropped, not the start of a new message
        assert!(r.add("a", "b", i(2), t("b"), 500).unwrap().is_empty());
        assert_eq!(r.pending(), 0);
        // after the timeout the same reference starts a new message
        r.add("a", "b", i(2), t("B"), 1500).unwrap();
        let saved = r.save();
        let mut r2 = Reassembler::new(1000, 100);
        r2.restore(&saved).unwrap();
        assert!(r2.expire(2000).is_empty());
        let late = r2.expire(2600);
        assert_eq!(late[0].missing, vec![1, 3]);
        assert_eq!(late[0].body, t("B"));
        assert!(r
            .add(
                "a",
                "b",
                PartInfo {
                    reference: 1,
                    total: 2,
                    seq: 3
                },
                t("x"),
                0
            )
            .is_err());
    }
}
