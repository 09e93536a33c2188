//! The modem bank (`type = "modem"`): one connector over a set of modems found from paths and
//! globs, rescanned for hot-plug. It encodes each message's SMS-SUBMIT parts once, picks a modem
//! by strategy (round-robin, least-loaded, SIM operator by destination prefix), and when a modem
//! cannot take a message (down, capped, hung, temporary network error) tries the next one, so one
//! bad modem or message never holds up the others.

use super::device::{Modem, ModemSettings, SendJob, SendResult};
use super::hwdb::Hwdb;
use crate::codec::national;
use crate::codec::segment::Coding;
use crate::codec::sms_pdu::{self, EncodedPdu, SubmitBody, SubmitSpec, Validity};
use super::config::{ModemBankConfig, ModemStrategy};
use crate::connector::{sms_of, Shutdown, StartError, BoxFuture, Connector, DeliveryError, ErrorClass, ErrorKind, HubSink, Outcome};
use crate::model::{Body, Message};
use parking_lot::RwLock;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// A bank of modems.
pub struct ModemBank {
    name: Arc<str>,
    cfg: ModemBankConfig,
    hwdb: Arc<Hwdb>,
    pin: Option<String>,
    counts_dir: Option<PathBuf>,
    modems: RwLock<Vec<Arc<Modem>>>,
    hub: OnceLock<Arc<dyn HubSink>>,
    rr: AtomicUsize,
    next_ref: AtomicU16,
    manual_down: AtomicBool,
}

/// The built-in hwdb with the entries of `hwdb_dir` in front.
pub fn load_hwdb(dir: Option<&std::path::Path>) -> Hwdb {
    let mut db = Hwdb::embedded();
    if let Some(d) = dir {
        match Hwdb::load_dir(d) {
            Ok(extra) => {
                let mut entries = extra.entries;
                entries.extend(db.entries.into_iter());
                db.entries = entries;
            }
            Err(errs) => errs
                .iter()
                .for_each(|e| tracing::error!(error = %e, "hwdb entry not loaded")),
        }
    }
    db
}

impl ModemBank {
    pub fn new(name: &str, cfg: ModemBankConfig, data_dir: Option<PathBuf>) -> Self {
        let pin = cfg.pin_env.as_ref().and_then(|k| std::env::var(k).ok());
        ModemBank {
            name: name.into(),
            hwdb: Arc::new(load_hwdb(cfg.hwdb_dir.as_deref())),
            pin,
            counts_dir: data_dir.map(|d| d.join("modems").join(name)),
            cfg,
            modems: RwLock::new(Vec::new()),
            hub: OnceLock::new(),
            rr: AtomicUsize::new(0),
            next_ref: AtomicU16::new(rand::random()),
            manual_down: AtomicBool::new(false),
        }
    }

    /// The device paths the configuration names now (globs expanded, sorted, unique).
    pub fn scan(&self) -> Vec<PathBuf> {
        let mut out = BTreeSet::new();
        for d in &self.cfg.devices {
            if d.contains(['*', '?', '[']) {
                if let Ok(paths) = glob::glob(d) {
                    out.extend(paths.filter_map(Result::ok));
                }
            } else if std::path::Path::new(d).exists() {
                out.insert(PathBuf::from(d));
            }
        }
        out.into_iter().collect()
    }

    fn settings(&self, path: PathBuf) -> ModemSettings {
        let ms = |v: Option<u64>| v.map(Duration::from_millis);
        ModemSettings {
            bank: self.name.clone(),
            path,
            baud: self.cfg.baud,
            pin: self.pin.clone(),
            forced_profile: self.cfg.profile.clone(),
            hwdb: self.hwdb.clone(),
            rate_per_min: self.cfg.rate_per_min,
            daily_cap: self.cfg.daily_cap,
            dlr: self.cfg.dlr,
            smsc: self.cfg.smsc.clone(),
            poll: self.cfg.poll_s.map(Duration::from_secs),
            health: Duration::from_secs(self.cfg.health_s),
            command_timeout: ms(self.cfg.command_timeout_ms),
            prompt_timeout: ms(self.cfg.prompt_timeout_ms),
            send_timeout: ms(self.cfg.send_timeout_ms),
            registration_timeout: Duration::from_secs(self.cfg.registration_timeout_s),
            mo_parts_timeout_ms: self.cfg.mo_parts_timeout_s as i64 * 1000,
            counts_dir: self.counts_dir.clone(),
        }
    }

    /// Start tasks for new devices and forget the ones that went away.
    fn rescan(&self, hub: &Arc<dyn HubSink>) {
        let found = self.scan();
        let mut modems = self.modems.write();
        modems.retain(|m| !m.gone.load(Ordering::Acquire));
        for path in found {
            if modems.iter().any(|m| m.settings.path == path) {
                continue;
            }
            tracing::info!(connector = %self.name, path = %path.display(), "modem found");
            let m = Modem::new(self.settings(path));
            tokio::spawn(m.clone().run(hub.clone()));
            modems.push(m);
        }
    }

    /// The SMS-SUBMIT parts of a message.
    fn encode(&self, msg: &Message) -> Result<(Vec<EncodedPdu>, String), DeliveryError> {
        let bad = |e: String| DeliveryError::new(ErrorClass::Permanent, ErrorKind::Unencodable, e);
        let sms = sms_of(msg)?;
        let to = if msg.envelope.to.starts_with('+') || msg.envelope.to.chars().any(|c| !c.is_ascii_digit()) {
            msg.envelope.to.to_string()
        } else {
            format!("+{}", msg.envelope.to)
        };
        let body = match &sms.body {
            Body::Text(t) => match sms.coding {
                Coding::Gsm7 => SubmitBody::Gsm7(t.clone(), national::Shift::DEFAULT),
                _ => SubmitBody::Ucs2(t.clone()),
            },
            Body::Binary { data, .. } => {
                let udh = match &sms.udh {
                    Some(u) => Some(
                        crate::codec::udh::Udh::parse(u)
                            .map_err(|e| bad(format!("udh: {e}")))?
                            .0,
                    ),
                    None => None,
                };
                SubmitBody::Binary(data.clone(), udh)
            }
        };
        let left_s = ((msg.envelope.expires_at - crate::model::now_ms()) / 1000).max(300) as u64;
        let spec = SubmitSpec {
            to,
            body,
            srr: self.cfg.dlr,
            validity: Some(Validity::Relative(sms_pdu::relative_vp(left_s))),
            message_ref: 0,
            reject_duplicates: false,
            reply_path: false,
            pid: 0,
            class: None,
            concat_ref: self.next_ref.fetch_add(1, Ordering::Relaxed) & 0xFF,
            ref16: false,
        };
        let parts = sms_pdu::encode_submit(&spec).map_err(|e| bad(e.to_string()))?;
        Ok((parts, msg.envelope.to.to_string()))
    }

    /// Modems to try, best first.
    fn candidates(&self, to: &str) -> Vec<Arc<Modem>> {
        let modems = self.modems.read();
        let mut up: Vec<Arc<Modem>> = modems
            .iter()
            .filter(|m| {
                m.ready.load(Ordering::Acquire) && !m.gone.load(Ordering::Acquire) && !m.capped()
            })
            .cloned()
            .collect();
        if up.is_empty() {
            return up;
        }
        let start = self.rr.fetch_add(1, Ordering::Relaxed) % up.len();
        up.rotate_left(start);
        match self.cfg.strategy {
            ModemStrategy::RoundRobin => {}
            // Keys are read once: queue depths change while we sort.
            ModemStrategy::LeastLoaded => up.sort_by_cached_key(|m| m.queue.load(Ordering::Relaxed)),
            ModemStrategy::OperatorPrefix => {
                let digits = to.trim_start_matches('+');
                let ops: Vec<&String> = self
                    .cfg
                    .operators
                    .iter()
                    .filter(|(_, prefixes)| {
                        prefixes
                            .iter()
                            .any(|p| digits.starts_with(p.trim_start_matches('+')))
                    })
                    .map(|(op, _)| op)
                    .collect();
                up.sort_by_cached_key(|m| {
                    let imsi = m.info.lock().imsi.clone().unwrap_or_default();
                    let own = ops.iter().any(|op| imsi.starts_with(op.as_str()));
                    (!own, m.queue.load(Ordering::Relaxed))
                });
            }
        }
        up
    }

    pub fn modems(&self) -> Vec<Arc<Modem>> {
        self.modems.read().clone()
    }
}

impl Connector for ModemBank {
    fn start(self: Arc<Self>, hub: Arc<dyn HubSink>, _shutdown: Shutdown) -> Result<(), StartError> {
        let _ = self.hub.set(hub.clone());
        self.rescan(&hub);
        let me = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(me.cfg.rescan_s.max(1)));
            tick.tick().await;
            loop {
                tick.tick().await;
                me.rescan(&hub);
            }
        });
        Ok(())
    }

    fn deliver<'a>(&'a self, msg: &'a Message) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let (parts, to) = match self.encode(msg) {
                Ok(p) => p,
                Err(error) => return Outcome::PermFail { error },
            };
            let candidates = self.candidates(&to);
            if candidates.is_empty() && self.modems.read().iter().any(|m| m.ready.load(Ordering::Acquire) && m.capped()) {
                // Every ready SIM reached its daily cap: wait without spending attempts.
                let error = DeliveryError::new(ErrorClass::Throttled, ErrorKind::DailyCap, "every ready modem reached its daily cap");
                return Outcome::TempFail { error, retry_after: Some(Duration::from_secs(60)) };
            }
            let mut last = DeliveryError::new(ErrorClass::Temporary, ErrorKind::NoDevice, "no modem of the bank is ready").with_code("no_modem");
            for modem in candidates {
                let (reply, rx) = tokio::sync::oneshot::channel();
                if modem
                    .enqueue(SendJob {
                        parts: parts.clone(),
                        to: to.clone(),
                        reply,
                    })
                    .is_err()
                {
                    continue;
                }
                match rx.await {
                    Ok(SendResult::Sent(ids)) => return Outcome::Submitted { remote_ids: ids },
                    Ok(SendResult::Unknown(ids, error)) => {
                        return Outcome::Unconfirmed {
                            remote_ids: ids,
                            error,
                        }
                    }
                    Ok(SendResult::Failed(error)) => return Outcome::PermFail { error },
                    Ok(SendResult::TryOther(e)) => last = e,
                    Err(_) => {
                        last = DeliveryError::new(
                            ErrorClass::Temporary,
                            ErrorKind::NoDevice, 
                            format!("{} went away", modem.label),
                        ).with_code("modem_gone")
                    }
                }
            }
            Outcome::TempFail {
                error: last,
                retry_after: None,
            }
        })
    }

    fn is_up(&self) -> bool {
        !self.manual_down.load(Ordering::Relaxed)
            && self
                .modems
                .read()
                .iter()
                .any(|m| m.ready.load(Ordering::Acquire))
    }

    fn status(&self) -> serde_json::Value {
        let modems: Vec<serde_json::Value> =
            self.modems.read().iter().map(|m| m.status()).collect();
        serde_json::json!({
            "devices": self.cfg.devices,
            "strategy": self.cfg.strategy,
            "modems_ready": self.modems.read().iter().filter(|m| m.ready.load(Ordering::Relaxed)).count(),
            "modems": modems,
        })
    }

    fn wants_receipts(&self) -> bool {
        self.cfg.dlr
    }

    fn set_down(&self, down: bool) {
        self.manual_down.store(down, Ordering::Relaxed);
    }
}
