//! One modem: the task that owns its serial port for its whole life. Lifecycle: open → sync
//! (ESC, `AT`) → init (hwdb) → identify → match hwdb → PIN → SMS ready → registration → PDU
//! mode, SMSC, storage, indications → ready; then a loop that sends queued messages (rate limit,
//! daily cap), handles URCs (`+CMTI`, `+CMT`, `+CDS`, `+CDSI`, registration, reboot markers),
//! polls `AT+CMGL` as a safety net and checks health. A modem that stops answering is reset
//! (`AT+CFUN=1,1`, reopen) with backoff; its queued messages go back to the bank for another
//! modem, and a send whose result never came is reported as unknown, not resent.

mod answers;
mod bringup;
mod receive;
mod send;

pub use answers::{csq_dbm, reg_stat, status_state};
use answers::*;

use super::at::{AtParser, ErrValue, FinalResult};
use super::engine::{AtError, AtPort, Stage, Urc};
use super::hwdb::{CmsClass, Hwdb, MatchedBy, Profile};
use crate::codec::reassembly::{PartBody, PartInfo, PartKey, Reassembler};
use crate::codec::sms_pdu::{self, EncodedPdu, Tpdu};
use crate::connector::{DeliveryError, ErrorClass, ErrorKind, HubSink, InboundMessage, Receipt};
use crate::model::{Body, State};
use parking_lot::Mutex;
use serde::Serialize;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// Settings of one modem (from the bank's configuration).
#[derive(Clone)]
pub struct ModemSettings {
    pub bank: Arc<str>,
    pub path: PathBuf,
    pub baud: u32,
    pub pin: Option<String>,
    pub forced_profile: Option<String>,
    pub hwdb: Arc<Hwdb>,
    pub rate_per_min: Option<f64>,
    pub daily_cap: u32,
    pub dlr: bool,
    pub smsc: Option<String>,
    pub poll: Option<Duration>,
    pub health: Duration,
    pub command_timeout: Option<Duration>,
    pub prompt_timeout: Option<Duration>,
    pub send_timeout: Option<Duration>,
    pub registration_timeout: Duration,
    pub mo_parts_timeout_ms: i64,
    /// Where daily send counts per SIM are kept across restarts.
    pub counts_dir: Option<PathBuf>,
}

/// What became of a send on this modem.
#[derive(Debug)]
pub enum SendResult {
    /// Accepted by the network: one remote id per part.
    Sent(Vec<String>),
    /// The PDU went out but no result came: it may have been sent. Predicted ids (the modem's
    /// next TP-MR) so a status report can still settle it. Not resent.
    Unknown(Vec<String>, DeliveryError),
    /// Not sent; another modem may succeed.
    TryOther(DeliveryError),
    /// Not sent and never will be.
    Failed(DeliveryError),
}

/// One message for this modem.
pub struct SendJob {
    pub parts: Vec<EncodedPdu>,
    pub to: String,
    pub reply: oneshot::Sender<SendResult>,
}

/// What `/v1/connectors` shows of a modem.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ModemInfo {
    pub state: &'static str,
    pub profile: Option<String>,
    pub matched_by: Option<MatchedBy>,
    pub usb: Option<String>,
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    pub revision: Option<String>,
    pub imei: Option<String>,
    pub imsi: Option<String>,
    pub operator: Option<String>,
    pub signal_dbm: Option<i32>,
    pub registered: bool,
    pub last_error: Option<String>,
}

/// A modem and its counters, shared by its task and the bank.
pub struct Modem {
    pub settings: ModemSettings,
    /// Short name for logs and metric labels (the device file name).
    pub label: String,
    pub info: Mutex<ModemInfo>,
    pub ready: AtomicBool,
    pub gone: AtomicBool,
    pub queue: AtomicUsize,
    pub sent: AtomicU64,
    pub failed: AtomicU64,
    pub received: AtomicU64,
    pub resets: AtomicU64,
    tx: mpsc::Sender<SendJob>,
    rx: Mutex<Option<mpsc::Receiver<SendJob>>>,
    pin_rejected: AtomicBool,
    /// (UTC day, messages sent that day) for the daily cap.
    today: Mutex<(i64, u32)>,
    m: ModemMetrics,
}

struct ModemMetrics {
    signal: metrics::Gauge,
    registered: metrics::Gauge,
    sent: metrics::Counter,
    failed: metrics::Counter,
    received: metrics::Counter,
    resets: metrics::Counter,
    queue: metrics::Gauge,
}

/// Metric names of the modem bank.
pub mod names {
    pub const SIGNAL_DBM: &str = "postern_modem_signal_dbm";
    pub const REGISTERED: &str = "postern_modem_registered";
    pub const SENT_TOTAL: &str = "postern_modem_sent_total";
    pub const FAILED_TOTAL: &str = "postern_modem_failed_total";
    pub const RECEIVED_TOTAL: &str = "postern_modem_received_total";
    pub const RESETS_TOTAL: &str = "postern_modem_resets_total";
    pub const QUEUE_DEPTH: &str = "postern_modem_queue_depth";
    pub const L_MODEM: &str = "modem";
}

/// How a `+CMS ERROR` is treated (research §5; codes >= 512 per hwdb entry).
pub fn classify_cms(code: u16, profile: &Profile) -> CmsClass {
    if code >= 512 {
        if let Some(v) = profile.cms_vendor.get(&code.to_string()) {
            return v.class;
        }
    }
    match code {
        314 | 332 | 500 | 512 | 513 | 514 => CmsClass::Retry,
        27 | 38 | 41 | 42 | 47 | 331 => CmsClass::Later,
        302 | 303 | 310 | 311 | 313 | 315 | 316 | 317 | 318 | 320 | 330 => CmsClass::Config,
        321 | 322 => CmsClass::Storage,
        0..=127 | 304 | 305 => CmsClass::Fatal,
        _ if code >= 512 => CmsClass::Retry,
        _ => CmsClass::Later,
    }
}

/// `+CME ERROR` codes that mean "busy, try again shortly".
fn cme_busy(v: &ErrValue) -> bool {
    matches!(v, ErrValue::Numeric(14) | ErrValue::Numeric(515))
        || matches!(v, ErrValue::Text(t) if t.to_ascii_lowercase().contains("busy"))
}

fn is_busy(e: &AtError) -> bool {
    match e {
        AtError::Failed {
            result: FinalResult::Cme(v),
            ..
        } => cme_busy(v),
        AtError::Failed {
            result: FinalResult::Cms(ErrValue::Numeric(314)),
            ..
        } => true,
        _ => false,
    }
}


/// Errors that end the ready loop or the init.
#[derive(Debug)]
enum Stop {
    /// Reset and try again.
    Reset(String),
    /// Do not retry by itself (PIN rejected, PUK, unsupported firmware).
    Fatal(String),
    /// The device went away.
    Gone,
}

impl From<AtError> for Stop {
    fn from(e: AtError) -> Self {
        match e {
            AtError::Closed => Stop::Gone,
            AtError::Io(ref io)
                if io.raw_os_error() == Some(libc::EIO)
                    || io.kind() == std::io::ErrorKind::NotFound =>
            {
                Stop::Gone
            }
            other => Stop::Reset(other.to_string()),
        }
    }
}

/// Per-connection state of the ready loop.
struct Session {
    profile: Profile,
    sim_key: String,
    mem1: String,
    cnma: bool,
    last_mr: Option<u8>,
    next_send: Instant,
    timeouts: u32,
    /// Messages not yet complete: the storage slots of their parts and their application port.
    part_slots: HashMap<PartKey, PendingParts>,
}

#[derive(Default)]
struct PendingParts {
    slots: Vec<(String, u32)>,
    dest_port: Option<u16>,
}

impl Modem {
    pub fn new(settings: ModemSettings) -> Arc<Modem> {
        let label = settings
            .path
            .file_name()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_else(|| settings.path.display().to_string());
        let (tx, rx) = mpsc::channel(1024);
        let l = |n: &'static str| (n, settings.bank.to_string(), label.clone());
        let g = |n| {
            let (n, b, m) = l(n);
            metrics::gauge!(n, crate::metrics::L_CONNECTOR => b, names::L_MODEM => m)
        };
        let c = |n| {
            let (n, b, m) = l(n);
            metrics::counter!(n, crate::metrics::L_CONNECTOR => b, names::L_MODEM => m)
        };
        let m = ModemMetrics {
            signal: g(names::SIGNAL_DBM),
            registered: g(names::REGISTERED),
            sent: c(names::SENT_TOTAL),
            failed: c(names::FAILED_TOTAL),
            received: c(names::RECEIVED_TOTAL),
            resets: c(names::RESETS_TOTAL),
            queue: g(names::QUEUE_DEPTH),
        };
        m.registered.set(0.0);
        m.queue.set(0.0);
        m.sent.increment(0);
        m.failed.increment(0);
        m.received.increment(0);
        m.resets.increment(0);
        Arc::new(Modem {
            settings,
            label,
            info: Mutex::new(ModemInfo {
                state: "opening",
                ..Default::default()
            }),
            ready: AtomicBool::new(false),
            gone: AtomicBool::new(false),
            queue: AtomicUsize::new(0),
            sent: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            received: AtomicU64::new(0),
            resets: AtomicU64::new(0),
            tx,
            rx: Mutex::new(Some(rx)),
            pin_rejected: AtomicBool::new(false),
            today: Mutex::new((0, 0)),
            m,
        })
    }

    /// Queue a message for this modem; it comes back when the modem cannot take it.
    pub fn enqueue(&self, job: SendJob) -> Result<(), SendJob> {
        self.queue.fetch_add(1, Ordering::AcqRel);
        self.m.queue.increment(1.0);
        self.tx.try_send(job).map_err(|e| {
            self.queue.fetch_sub(1, Ordering::AcqRel);
            self.m.queue.decrement(1.0);
            match e {
                mpsc::error::TrySendError::Full(j) | mpsc::error::TrySendError::Closed(j) => j,
            }
        })
    }

    /// Has this SIM reached its daily cap?
    pub fn capped(&self) -> bool {
        let cap = self.settings.daily_cap;
        if cap == 0 {
            return false;
        }
        let day = crate::model::now_ms().div_euclid(86_400_000);
        let t = self.today.lock();
        t.0 == day && t.1 >= cap
    }

    fn count_sent(&self, sim_key: &str, n: u32) {
        let day = crate::model::now_ms().div_euclid(86_400_000);
        let snapshot = {
            let mut t = self.today.lock();
            if t.0 != day {
                *t = (day, 0);
            }
            t.1 += n;
            *t
        };
        if self.settings.daily_cap > 0 {
            if let Some(dir) = &self.settings.counts_dir {
                let _ = std::fs::create_dir_all(dir);
                let tmp = dir.join(format!("{sim_key}.tmp"));
                if std::fs::write(&tmp, format!("{} {}", snapshot.0, snapshot.1)).is_ok() {
                    let _ = std::fs::rename(&tmp, dir.join(format!("{sim_key}.count")));
                }
            }
        }
    }

    fn load_count(&self, sim_key: &str) {
        let Some(dir) = &self.settings.counts_dir else {
            return;
        };
        let Ok(text) = std::fs::read_to_string(dir.join(format!("{sim_key}.count"))) else {
            return;
        };
        let mut it = text
            .split_whitespace()
            .filter_map(|x| x.parse::<i64>().ok());
        if let (Some(day), Some(n)) = (it.next(), it.next()) {
            let today = crate::model::now_ms().div_euclid(86_400_000);
            if day == today {
                *self.today.lock() = (day, n as u32);
            }
        }
    }

    fn set_state(&self, state: &'static str) {
        self.info.lock().state = state;
    }

    fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
        self.m.registered.set(if ready { 1.0 } else { 0.0 });
        self.info.lock().registered = ready;
    }

    pub fn status(&self) -> serde_json::Value {
        let info = self.info.lock().clone();
        let mut v = serde_json::to_value(&info).unwrap_or_default();
        v["path"] = serde_json::json!(self.settings.path.display().to_string());
        v["sent"] = self.sent.load(Ordering::Relaxed).into();
        v["failed"] = self.failed.load(Ordering::Relaxed).into();
        v["received"] = self.received.load(Ordering::Relaxed).into();
        v["resets"] = self.resets.load(Ordering::Relaxed).into();
        v["queue"] = self.queue.load(Ordering::Relaxed).into();
        v["sent_today"] = self.today.lock().1.into();
        v
    }

    fn take_job(&self, rx: &mut mpsc::Receiver<SendJob>) -> Option<SendJob> {
        let j = rx.try_recv().ok()?;
        self.queue.fetch_sub(1, Ordering::AcqRel);
        self.m.queue.decrement(1.0);
        Some(j)
    }

    /// Hand every queued message back (they go to other modems).
    fn drain(&self, rx: &mut mpsc::Receiver<SendJob>, why: &str) {
        while let Some(j) = self.take_job(rx) {
            let _ = j.reply.send(SendResult::TryOther(DeliveryError::new(
                ErrorClass::Temporary,
                ErrorKind::NoDevice, 
                format!("{}: {why}", self.label),
            ).with_code("modem_unavailable")));
        }
    }

    /// The modem's task: runs until the device disappears or the bank stops.
    pub async fn run(self: Arc<Self>, hub: Arc<dyn HubSink>) {
        let Some(mut rx) = self.rx.lock().take() else {
            return;
        };
        let mut backoff = Duration::from_millis(500);
        let mut reassembler = Reassembler::new(self.settings.mo_parts_timeout_ms, 1000);
        loop {
            self.set_state("opening");
            let (first, usb) = self.pre_profile();
            let baud = if self.settings.baud > 0 { self.settings.baud } else { first.serial.default_baud };
            let flow = if first.serial.flow_control == super::hwdb::FlowControl::Rtscts { tokio_serial::FlowControl::Hardware } else { tokio_serial::FlowControl::None };
            let opened = tokio_serial::SerialStream::open(&tokio_serial::new(self.settings.path.to_string_lossy(), baud).flow_control(flow));
            let stream = match opened {
                Ok(mut s) => {
                    // Exclusive while we hold it (keeps ModemManager out), and cleared so a
                    // reopen after a reset works, on ptys too.
                    let _ = s.set_exclusive(false);
                    s
                }
                Err(e) => {
                    if !self.settings.path.exists() {
                        self.vanish(&mut rx);
                        return;
                    }
                    self.info.lock().last_error = Some(format!("open: {e}"));
                    self.drain(&mut rx, "cannot open the port");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(60));
                    continue;
                }
            };
            let mut port = AtPort::new(stream, AtParser::default());
            let result = match self.init(&mut port, first, usb).await {
                Ok(mut session) => {
                    backoff = Duration::from_millis(500);
                    self.set_state("ready");
                    tracing::info!(modem = %self.label, profile = %session.profile.id, "modem ready");
                    self.ready_loop(&mut port, &mut session, &mut rx, &hub, &mut reassembler)
                        .await
                }
                Err(stop) => stop,
            };
            self.set_ready(false);
            match result {
                Stop::Gone => {
                    self.vanish(&mut rx);
                    return;
                }
                Stop::Fatal(why) => {
                    tracing::error!(modem = %self.label, %why, "modem out of service");
                    self.info.lock().last_error = Some(why.clone());
                    self.set_state("failed");
                    self.drain(&mut rx, &why);
                    // Stay out of rotation; keep draining until the device goes away.
                    drop(port);
                    loop {
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        self.drain(&mut rx, &why);
                        if !self.settings.path.exists() {
                            self.vanish(&mut rx);
                            return;
                        }
                    }
                }
                Stop::Reset(why) => {
                    tracing::warn!(modem = %self.label, %why, "resetting modem");
                    self.set_state("resetting");
                    self.info.lock().last_error = Some(why.clone());
                    self.resets.fetch_add(1, Ordering::Relaxed);
                    self.m.resets.increment(1);
                    self.drain(&mut rx, &why);
                    let _ = port.raw(&[0x1B]).await;
                    let _ = port.command("AT+CFUN=1,1", Duration::from_secs(2)).await;
                    drop(port);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(60));
                }
            }
        }
    }

    fn vanish(&self, rx: &mut mpsc::Receiver<SendJob>) {
        tracing::warn!(modem = %self.label, "modem gone");
        self.set_ready(false);
        self.set_state("gone");
        self.gone.store(true, Ordering::Release);
        rx.close();
        self.drain(rx, "unplugged");
    }

    fn timeout(&self, p: &Profile) -> Duration {
        self.settings
            .command_timeout
            .unwrap_or(Duration::from_secs(p.timing.default_timeout_s as u64))
    }

    /// A command, retried while the SIM or modem says it is busy.
    async fn busy_retry<IO: AsyncRead + AsyncWrite + Unpin>(
        &self,
        port: &mut AtPort<IO>,
        cmd: &str,
        t: Duration,
        tries: u32,
    ) -> Result<Vec<String>, AtError> {
        let mut n = 0;
        loop {
            match port.command(cmd, t).await {
                Err(e) if is_busy(&e) && n + 1 < tries => {
                    n += 1;
                    tokio::time::sleep(Duration::from_millis(200 * n as u64)).await;
                }
                r => return r,
            }
        }
    }

    /// The entry known before talking to the modem: forced by the configuration, or matched by
    /// the USB id; else generic. It sets the line (speed, flow control) and the first init.
    fn pre_profile(&self) -> (Profile, Option<(String, String)>) {
        let s = &self.settings;
        let usb = super::hwdb::usb_id_of(&s.path);
        let first = match (&s.forced_profile, &usb) {
            (Some(id), _) => s.hwdb.get(id).cloned().unwrap_or_else(Profile::generic),
            (None, Some((v, p))) => s.hwdb.find(Some((v, p)), None, None).0,
            (None, None) => Profile::generic(),
        };
        (first, usb)
    }
}

/// The parser for a profile: its URC table, vendor final tokens and two-line URCs.
pub fn parser_for(p: &Profile) -> AtParser {
    let urcs = p.urc_prefixes();
    let refs: Vec<&str> = urcs.iter().map(String::as_str).collect();
    let fin: Vec<&str> = p.at.extra_final_error.iter().map(String::as_str).collect();
    AtParser::new(&refs, &fin).with_two_line(&p.urc.two_line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsers_of_answers() {
        assert_eq!(reg_stat("2,1,4CA,81DE445", true), Some(1));
        assert_eq!(reg_stat("0,1,\"5E25\",\"605F\",2", true), Some(1));
        assert_eq!(reg_stat("5", false), Some(5));
        assert_eq!(csq_dbm("18,99"), Some(-77));
        assert_eq!(csq_dbm("99,99"), None);
        assert_eq!(mem_index(" \"ME\",0"), Some(("ME".into(), 0)));
        assert_eq!(
            ident(&["+CGMI: \"huawei\"".into()], "+CGMI:"),
            Some("huawei".into())
        );
        assert_eq!(
            ident(&[" MULTIBAND  900E  1800 ".into()], "+CGMM:"),
            Some("MULTIBAND  900E  1800".into())
        );
        let g = Profile::generic();
        assert_eq!(classify_cms(21, &g), CmsClass::Fatal);
        assert_eq!(classify_cms(512, &g), CmsClass::Retry);
        assert_eq!(classify_cms(331, &g), CmsClass::Later);
        assert_eq!(classify_cms(330, &g), CmsClass::Config);
        assert_eq!(status_state(0x00).map(|s| s.0), Some(State::Delivered));
        assert_eq!(status_state(0x21), None);
        assert_eq!(status_state(0x46).map(|s| s.0), Some(State::Expired));
        assert_eq!(status_state(0x41).map(|s| s.0), Some(State::Undelivered));
    }
}
