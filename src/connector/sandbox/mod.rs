//! `type = "sandbox"`: a carrier in memory. It accepts messages, answers one remote id per
//! segment, and after `dlr_delay_ms` reports delivery receipts (a configurable share
//! undelivered), so the whole state machine runs with no hardware and no operator account.
//! It can also be told to fail: temporary failures by share, permanent ones by prefix, or down.

use super::*;
pub mod config;

use config::SandboxConfig;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

/// The sandbox carrier.
pub struct Sandbox {
    name: Arc<str>,
    cfg: SandboxConfig,
    down: AtomicBool,
    next_id: AtomicU64,
    submitted: AtomicU64,
    /// Receipts waiting for their time (delays are equal, so FIFO order is time order).
    receipts: Mutex<VecDeque<(Instant, Receipt)>>,
    receipt_ready: Notify,
    journal: Option<Mutex<std::fs::File>>,
}

impl Sandbox {
    pub fn new(name: &str, cfg: SandboxConfig) -> Self {
        let journal = cfg.journal.as_ref().and_then(|p| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map_err(|e| tracing::error!(path = %p.display(), error = %e, "cannot open sandbox journal"))
                .ok()
                .map(Mutex::new)
        });
        Sandbox {
            journal,
            name: name.into(),
            down: AtomicBool::new(cfg.down),
            cfg,
            next_id: AtomicU64::new(rand::random::<u32>() as u64),
            submitted: AtomicU64::new(0),
            receipts: Mutex::new(VecDeque::new()),
            receipt_ready: Notify::new(),
        }
    }

    fn receipt(&self, remote_id: String) -> Receipt {
        let undelivered =
            self.cfg.undelivered_share > 0.0 && rand::random::<f64>() < self.cfg.undelivered_share;
        Receipt {
            connector: self.name.clone(),
            remote_id,
            state: if undelivered {
                State::Undelivered
            } else {
                State::Delivered
            },
            error: undelivered.then(|| "001".to_string()),
        }
    }

    async fn receipt_loop(self: Arc<Self>, hub: Arc<dyn HubSink>) {
        loop {
            let next = self.receipts.lock().front().map(|(t, _)| *t);
            match next {
                None => self.receipt_ready.notified().await,
                Some(t) if t > Instant::now() => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(t.into()) => {}
                        _ = self.receipt_ready.notified() => {}
                    }
                }
                Some(_) => {
                    let now = Instant::now();
                    let due: Vec<Receipt> = {
                        let mut q = self.receipts.lock();
                        let mut v = Vec::new();
                        while q.front().is_some_and(|(t, _)| *t <= now) {
                            if let Some((_, r)) = q.pop_front() {
                                v.push(r);
                            }
                        }
                        v
                    };
                    for r in due {
                        hub.report(r);
                    }
                }
            }
        }
    }
}

impl Connector for Sandbox {
    fn start(self: Arc<Self>, hub: Arc<dyn HubSink>, _shutdown: Shutdown) -> Result<(), StartError> {
        tokio::spawn(self.receipt_loop(hub));
        Ok(())
    }

    /// A test carrier: it takes every channel.
    fn channels(&self) -> &'static [crate::model::Channel] {
        &[crate::model::Channel::Sms, crate::model::Channel::Email]
    }

    fn deliver<'a>(&'a self, msg: &'a Message) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            if self.down.load(Ordering::Relaxed) {
                return Outcome::TempFail {
                    error: DeliveryError::new(
                        ErrorClass::Temporary,
                        ErrorKind::LinkDown,
                        "sandbox link is down",
                    ),
                    retry_after: None,
                };
            }
            if self.cfg.submit_delay_ms > 0 {
                tokio::time::sleep(Duration::from_millis(self.cfg.submit_delay_ms)).await;
            }
            if self
                .cfg
                .reject_prefixes
                .iter()
                .any(|p| msg.envelope.to.starts_with(p.as_str()))
            {
                return Outcome::PermFail {
                    error: DeliveryError::new(
                        ErrorClass::Permanent,
                        ErrorKind::Rejected,
                        "destination rejected by the sandbox carrier",
                    ),
                };
            }
            if msg.delivery.attempts <= self.cfg.temp_fail_first
                || (self.cfg.temp_fail_share > 0.0
                    && rand::random::<f64>() < self.cfg.temp_fail_share)
            {
                return Outcome::TempFail {
                    error: DeliveryError::new(
                        ErrorClass::Temporary,
                        ErrorKind::Temporary,
                        "sandbox temporary failure",
                    ),
                    retry_after: None,
                };
            }
            let parts = msg.envelope.content.parts().max(1) as usize;
            let remote_ids: Vec<String> = (0..parts)
                .map(|_| format!("{:x}", self.next_id.fetch_add(1, Ordering::Relaxed)))
                .collect();
            self.submitted.fetch_add(1, Ordering::Relaxed);
            if let Some(j) = &self.journal {
                use std::io::Write;
                // One write(2) per line: it survives a SIGKILL of the gateway.
                let _ = j
                    .lock()
                    .write_all(format!("{} {}\n", msg.id, remote_ids.join(",")).as_bytes());
            }
            let at = Instant::now() + Duration::from_millis(self.cfg.dlr_delay_ms);
            {
                let mut q = self.receipts.lock();
                for rid in &remote_ids {
                    q.push_back((at, self.receipt(rid.clone())));
                }
            }
            self.receipt_ready.notify_one();
            Outcome::Submitted { remote_ids }
        })
    }

    fn is_up(&self) -> bool {
        !self.down.load(Ordering::Relaxed)
    }

    fn status(&self) -> serde_json::Value {
        serde_json::json!({
            "submitted": self.submitted.load(Ordering::Relaxed),
            "pending_receipts": self.receipts.lock().len(),
        })
    }

    fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::Relaxed);
    }

    fn resume(&self, outstanding: Vec<String>) {
        if outstanding.is_empty() {
            return;
        }
        tracing::info!(connector = %self.name, count = outstanding.len(), "re-issuing receipts lost in a restart");
        let at = Instant::now() + Duration::from_millis(self.cfg.dlr_delay_ms);
        let mut q = self.receipts.lock();
        for rid in outstanding {
            q.push_back((at, self.receipt(rid)));
        }
        drop(q);
        self.receipt_ready.notify_one();
    }
}
