//! Whether the outbox can write, and getting it back when it cannot. A failed write (a full
//! disk above all) leaves RocksDB refusing every later write until it resumes; while that
//! lasts, new writes are refused at once without touching the store (so a `503
//! store_unavailable` means *not stored*), readiness is false, and a watcher thread probes the
//! store with a small synced write, with backoff from 0.5 s to 10 s, logging and counting each
//! attempt, until one succeeds. A failed probe reopens the database when the volume has room
//! (see [`super::store`]: RocksDB does not always resume on its own).

use crate::metrics as m;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The store's write health, shared by the writers, the watcher and the API.
#[derive(Debug)]
pub struct StoreHealth {
    writable: AtomicBool,
    /// Failed writes so far (see `WriteReq::epoch`).
    failures: AtomicU64,
    /// The error that made it unwritable, and since when.
    error: Mutex<Option<(String, Instant)>>,
}

impl Default for StoreHealth {
    fn default() -> Self {
        metrics::gauge!(m::OUTBOX_WRITABLE).set(1.0);
        StoreHealth { writable: AtomicBool::new(true), failures: AtomicU64::new(0), error: Mutex::new(None) }
    }
}

/// A bounded label for a store error.
pub fn error_kind(message: &str) -> &'static str {
    let l = message.to_ascii_lowercase();
    if l.contains("no space") || l.contains("nospace") || l.contains("space limit") {
        "no_space"
    } else if l.contains("previous error") || l.contains("background error") || l.contains("read only") {
        "stopped"
    } else if l.contains("io error") {
        "io"
    } else {
        "other"
    }
}

impl StoreHealth {
    pub fn is_writable(&self) -> bool {
        self.writable.load(Ordering::Acquire)
    }

    /// How many writes have failed so far: a state turn queued before a failure is not
    /// written after it.
    pub fn epoch(&self) -> u64 {
        self.failures.load(Ordering::Acquire)
    }

    /// The error that stopped writes, while they are stopped (while they are not, one atomic
    /// load: every accepted message asks).
    pub fn error(&self) -> Option<String> {
        if self.is_writable() {
            return None;
        }
        self.error.lock().as_ref().map(|(e, _)| e.clone())
    }

    /// A write failed: stop taking writes until the watcher sees the store write again.
    pub fn failed(&self, message: &str) {
        metrics::counter!(m::OUTBOX_WRITE_ERRORS_TOTAL, m::L_KIND => error_kind(message)).increment(1);
        self.failures.fetch_add(1, Ordering::AcqRel);
        let mut e = self.error.lock();
        if e.is_none() {
            tracing::error!(error = %message, "outbox cannot write: refusing new messages until it can");
            *e = Some((message.to_string(), Instant::now()));
        }
        self.writable.store(false, Ordering::Release);
        metrics::gauge!(m::OUTBOX_WRITABLE).set(0.0);
    }

    /// The store writes again.
    pub fn recovered(&self) {
        let was = self.error.lock().take();
        self.writable.store(true, Ordering::Release);
        metrics::gauge!(m::OUTBOX_WRITABLE).set(1.0);
        if let Some((e, since)) = was {
            tracing::warn!(after_s = since.elapsed().as_secs_f64(), error = %e, "outbox writes again");
        }
    }
}

/// Watch the store: while it cannot write, `probe` (a small synced write, else a reopen) with
/// backoff until it succeeds. Ends when `stop` is set.
pub fn watch(health: &StoreHealth, stop: &AtomicBool, probe: impl Fn() -> Result<(), String>) {
    let mut wait = Duration::from_millis(500);
    while !stop.load(Ordering::Acquire) {
        if health.is_writable() {
            wait = Duration::from_millis(500);
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        std::thread::sleep(wait);
        match probe() {
            Ok(()) => {
                metrics::counter!(m::OUTBOX_RECOVERY_ATTEMPTS_TOTAL, m::L_OUTCOME => "ok").increment(1);
                tracing::info!("outbox recovery attempt succeeded");
                health.recovered();
            }
            Err(e) => {
                metrics::counter!(m::OUTBOX_RECOVERY_ATTEMPTS_TOTAL, m::L_OUTCOME => "failed").increment(1);
                tracing::warn!(error = %e, next_s = (wait * 2).min(Duration::from_secs(10)).as_secs_f64(), "outbox recovery attempt failed");
                wait = (wait * 2).min(Duration::from_secs(10));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    #[test]
    fn kinds() {
        assert_eq!(error_kind("IO error: No space left on device: While appending to file: x.log"), "no_space");
        assert_eq!(error_kind("IO error: Writer has previous error."), "stopped");
        assert_eq!(error_kind("Corruption: bad block"), "other");
    }

    #[test]
    fn watcher_retries_until_the_store_writes() {
        let h = StoreHealth::default();
        h.failed("IO error: No space left on device");
        assert!(!h.is_writable());
        assert!(h.error().unwrap().contains("No space"));
        let stop = AtomicBool::new(false);
        let tries = AtomicU32::new(0);
        std::thread::scope(|s| {
            s.spawn(|| {
                watch(&h, &stop, || if tries.fetch_add(1, Ordering::SeqCst) < 1 { Err("still full".into()) } else { Ok(()) })
            });
            let t = Instant::now();
            while !h.is_writable() {
                assert!(t.elapsed() < Duration::from_secs(10), "never recovered");
                std::thread::sleep(Duration::from_millis(20));
            }
            stop.store(true, Ordering::Release);
        });
        assert_eq!(tries.load(Ordering::SeqCst), 2);
        assert!(h.error().is_none());
    }
}
