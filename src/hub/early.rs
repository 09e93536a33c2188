//! Receipts that arrive before the answer to their submit. A carrier may send a delivery
//! receipt the instant it takes a message, and its `deliver_sm` can reach us before the
//! `submit_sm_resp` that tells us the remote id. Such a receipt is *held*, not acknowledged,
//! until the remote id becomes known (then it is applied after the submit's outcome, in order,
//! and acknowledged after that commit) or until the wait is pointless: the link has nothing in
//! flight any more, or [`HOLD_MAX`] has passed. Then it goes the way of any receipt for an
//! unknown id (acknowledged, retried in memory for a while). Held receipts are bounded
//! ([`MAX_HELD`]); past that a receipt takes the unknown path at once. Nothing is lost by
//! holding: the peer has not been answered, so it still owns the receipt.

use crate::connector::Receipt;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Longest a receipt is held for its submit's answer (more than any response timeout).
pub const HOLD_MAX: Duration = Duration::from_secs(30);
/// Most receipts held at once.
pub const MAX_HELD: usize = 100_000;

/// A held receipt and the acknowledgement its connector waits for.
pub struct Held {
    pub receipt: Receipt,
    pub ack: oneshot::Sender<()>,
    pub at: Instant,
}

/// Receipts waiting for their remote id, by (connector, remote id).
#[derive(Default)]
pub struct EarlyReceipts {
    held: Mutex<HashMap<(Arc<str>, String), Vec<Held>>>,
    count: AtomicUsize,
}

impl EarlyReceipts {
    pub fn len(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Hold a receipt; gives it back when too many are held already.
    pub fn hold(&self, receipt: Receipt, ack: oneshot::Sender<()>) -> Result<(), (Receipt, oneshot::Sender<()>)> {
        if self.len() >= MAX_HELD {
            return Err((receipt, ack));
        }
        let key = (receipt.connector.clone(), receipt.remote_id.clone());
        self.held.lock().entry(key).or_default().push(Held { receipt, ack, at: Instant::now() });
        self.count.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    /// The receipts held for this remote id (it just became known).
    pub fn take(&self, connector: &str, remote_id: &str) -> Vec<Held> {
        if self.is_empty() {
            return Vec::new();
        }
        let key: (Arc<str>, String) = (connector.into(), remote_id.to_string());
        let got = self.held.lock().remove(&key).unwrap_or_default();
        self.count.fetch_sub(got.len(), Ordering::AcqRel);
        got
    }

    /// Receipts no longer worth holding: held past [`HOLD_MAX`], or on a link for which
    /// `idle` says nothing is in flight.
    pub fn expired(&self, now: Instant, idle: impl Fn(&str) -> bool) -> Vec<Held> {
        if self.is_empty() {
            return Vec::new();
        }
        let mut out = Vec::new();
        self.held.lock().retain(|(connector, _), v| {
            let link_idle = idle(connector);
            let (go, stay): (Vec<Held>, Vec<Held>) = std::mem::take(v).into_iter().partition(|h| link_idle || now.duration_since(h.at) >= HOLD_MAX);
            out.extend(go);
            *v = stay;
            !v.is_empty()
        });
        self.count.fetch_sub(out.len(), Ordering::AcqRel);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::State;

    fn receipt(id: &str) -> Receipt {
        Receipt { connector: "op".into(), remote_id: id.into(), state: State::Delivered, error: None }
    }

    #[test]
    fn held_until_known_or_idle() {
        let e = EarlyReceipts::default();
        let (tx, _rx) = oneshot::channel();
        assert!(e.hold(receipt("a1"), tx).is_ok());
        let (tx, _rx2) = oneshot::channel();
        assert!(e.hold(receipt("b2"), tx).is_ok());
        assert_eq!(e.len(), 2);
        assert_eq!(e.take("op", "a1").len(), 1);
        assert!(e.take("op", "a1").is_empty());
        assert!(e.expired(Instant::now(), |_| false).is_empty(), "link busy, not old");
        assert_eq!(e.expired(Instant::now() + HOLD_MAX, |_| false).len(), 1);
        assert!(e.is_empty());
        let (tx, _rx3) = oneshot::channel();
        assert!(e.hold(receipt("c3"), tx).is_ok());
        assert_eq!(e.expired(Instant::now(), |c| c == "op").len(), 1, "nothing in flight: no answer to wait for");
    }
}
