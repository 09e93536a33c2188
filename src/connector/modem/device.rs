//! One modem: the task that owns its serial port for its whole life. Lifecycle: open → sync
//! (ESC, `AT`) → init (hwdb) → identify → match hwdb → PIN → SMS ready → registration → PDU
//! mode, SMSC, storage, indications → ready; then a loop that sends queued messages (rate limit,
//! daily cap), handles URCs (`+CMTI`, `+CMT`, `+CDS`, `+CDSI`, registration, reboot markers),
//! polls `AT+CMGL` as a safety net and checks health. A modem that stops answering is reset
//! (`AT+CFUN=1,1`, reopen) with backoff; its queued messages go back to the bank for another
//! modem, and a send whose result never came is reported as unknown, not resent.

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

/// The value after `PREFIX:` in the first line that has it.
fn field<'a>(lines: &'a [String], prefix: &str) -> Option<&'a str> {
    lines
        .iter()
        .find_map(|l| l.strip_prefix(prefix))
        .map(|v| v.trim())
}

/// A bare identification answer (`AT+CGMI` may answer `+CGMI: "huawei"` or `huawei`).
fn ident(lines: &[String], prefix: &str) -> Option<String> {
    let l = lines.iter().find(|l| !l.trim().is_empty())?;
    let v = l
        .strip_prefix(prefix)
        .unwrap_or(l)
        .trim()
        .trim_matches('"')
        .trim();
    (!v.is_empty()).then(|| v.to_string())
}

/// Registration state of a `+CREG:`/`+CGREG:`/`+CEREG:` line: the query answer is `n,stat,…`,
/// the URC `stat,…`.
pub fn reg_stat(value: &str, query: bool) -> Option<u8> {
    let mut it = value.split(',').map(|x| x.trim());
    if query {
        it.next();
    }
    it.next()?.parse().ok()
}

/// dBm from `+CSQ: <rssi>,<ber>` (27.007: -113 + 2·rssi; 99 unknown).
pub fn csq_dbm(value: &str) -> Option<i32> {
    let rssi: i32 = value.split(',').next()?.trim().parse().ok()?;
    (0..=31).contains(&rssi).then_some(-113 + 2 * rssi)
}

/// `"SM",3` → ("SM", 3).
fn mem_index(value: &str) -> Option<(String, u32)> {
    let (m, i) = value.split_once(',')?;
    Some((
        m.trim().trim_matches('"').to_string(),
        i.trim().parse().ok()?,
    ))
}

/// TP-ST → final state (None while the SC is still trying).
pub fn status_state(st: u8) -> Option<(State, Option<String>)> {
    match st {
        0x00..=0x1F => Some((State::Delivered, None)),
        0x20..=0x3F => None,
        0x46 => Some((State::Expired, Some(format!("{st:02x}")))),
        _ => Some((State::Undelivered, Some(format!("{st:02x}")))),
    }
}

fn digits(s: &str) -> String {
    s.chars().filter(|c| c.is_ascii_digit()).collect()
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

    async fn init(&self, port: &mut AtPort<tokio_serial::SerialStream>, first: Profile, usb: Option<(String, String)>) -> Result<Session, Stop> {
        self.set_state("initialising");
        let s = &self.settings;
        self.info.lock().usb = usb.as_ref().map(|(v, p)| format!("{v}:{p}"));
        let forced = s.forced_profile.as_ref().map(|_| first.clone());
        if let (Some((v, p)), None) = (&usb, &forced) {
            let mode = first.usb.iter().find(|u| &u.vid == v && &u.pid == p).map(|u| u.mode);
            if mode == Some(super::hwdb::UsbMode::NetworkOnly) {
                return Err(Stop::Fatal(format!("{v}:{p} is {} network-only firmware (e.g. HiLink): it has no AT port for SMS", first.model)));
            }
        }
        if first.serial.open_settle_ms > 0 {
            tokio::time::sleep(Duration::from_millis(first.serial.open_settle_ms as u64)).await;
        }
        port.set_parser(parser_for(&first));
        // Sync: ESC aborts a half-entered PDU; then AT until it answers.
        let boot = Instant::now() + Duration::from_secs(first.serial.boot_timeout_s as u64);
        loop {
            port.raw(&[0x1B]).await?;
            match port.command("AT", Duration::from_secs(1)).await {
                Ok(_) => break,
                Err(AtError::Timeout { .. }) | Err(AtError::Failed { .. })
                    if Instant::now() < boot =>
                {
                    continue
                }
                Err(e) => return Err(e.into()),
            }
        }
        let t = self.timeout(&first);
        for c in &first.at.init {
            self.init_command(port, c, t).await?;
        }
        // Identify.
        let cgmi = port
            .command("AT+CGMI", t)
            .await
            .ok()
            .and_then(|l| ident(&l, "+CGMI:"));
        let cgmm = port
            .command("AT+CGMM", t)
            .await
            .ok()
            .and_then(|l| ident(&l, "+CGMM:"));
        let cgmr = port
            .command("AT+CGMR", t)
            .await
            .ok()
            .and_then(|l| ident(&l, "+CGMR:"));
        let imei = port
            .command("AT+CGSN", t)
            .await
            .ok()
            .and_then(|l| ident(&l, "+CGSN:"));
        let (profile, by) = match forced {
            Some(p) => (p, MatchedBy::Forced),
            None => s.hwdb.find(
                usb.as_ref().map(|(v, p)| (v.as_str(), p.as_str())),
                cgmi.as_deref(),
                cgmm.as_deref(),
            ),
        };
        {
            let mut i = self.info.lock();
            i.manufacturer = cgmi;
            i.model = cgmm;
            i.revision = cgmr;
            i.imei = imei.clone();
            i.profile = Some(profile.id.clone());
            i.matched_by = Some(by);
        }
        if profile.support == super::hwdb::Support::Unsupported || profile.has("no-sms-read") {
            return Err(Stop::Fatal(format!(
                "{} ({}) cannot send and read SMS over AT",
                profile.model, profile.id
            )));
        }
        port.set_parser(parser_for(&profile));
        if profile.serial.flow_control == super::hwdb::FlowControl::Rtscts && first.serial.flow_control != super::hwdb::FlowControl::Rtscts {
            let _ = tokio_serial::SerialPort::set_flow_control(port.get_mut(), tokio_serial::FlowControl::Hardware);
        }
        port.per_byte_delay = Duration::from_micros(profile.serial.per_byte_delay_us as u64);
        port.inter_command_delay =
            Duration::from_millis(profile.timing.inter_command_delay_ms as u64);
        let t = self.timeout(&profile);
        if profile.id != first.id {
            for c in profile
                .at
                .init
                .iter()
                .filter(|c| !first.at.init.contains(c))
            {
                self.init_command(port, c, t).await?;
            }
        }
        // Radio on.
        if !profile.has("cfun-query-nonstandard") {
            if let Ok(l) = port.command("AT+CFUN?", t).await {
                if matches!(
                    field(&l, "+CFUN:")
                        .and_then(|v| v.split(',').next())
                        .map(str::trim),
                    Some("0") | Some("4")
                ) {
                    port.command(
                        "AT+CFUN=1",
                        Duration::from_secs(profile.timing.cfun_timeout_s as u64),
                    )
                    .await?;
                }
            }
        }
        // PIN.
        self.set_state("waiting_pin");
        let cpin_t = Duration::from_secs(profile.timing.cpin_timeout_s as u64).min(
            self.settings
                .command_timeout
                .map_or(Duration::MAX, |c| c * 3),
        );
        let mut pin_sent = false;
        let mut sim_cycled = false;
        loop {
            let mut tries = 0;
            let answer = loop {
                let r = if profile.has("cpin-no-ok") {
                    port.command_ending_on_answer("AT+CPIN?", cpin_t).await
                } else {
                    port.command("AT+CPIN?", cpin_t).await
                };
                match r {
                    Err(e) if is_busy(&e) && tries < 20 => {
                        tries += 1;
                        tokio::time::sleep(Duration::from_millis(250)).await;
                    }
                    // SIM not inserted / SIM failure: some modems recover the SIM with a radio
                    // off-on cycle (smstools RADIO_OFF_ON).
                    Err(AtError::Failed { result: FinalResult::Cme(ErrValue::Numeric(10 | 13)), .. }) if profile.has("sim-reset-by-cfun") && !sim_cycled => {
                        sim_cycled = true;
                        let cfun_t = Duration::from_secs(profile.timing.cfun_timeout_s as u64);
                        port.command("AT+CFUN=0", cfun_t).await?;
                        port.command("AT+CFUN=1", cfun_t).await?;
                    }
                    other => break other?,
                }
            };
            let v = field(&answer, "+CPIN:").unwrap_or("").to_ascii_uppercase();
            match v.as_str() {
                "READY" => break,
                "SIM PIN" if !pin_sent && !self.pin_rejected.load(Ordering::Relaxed) => {
                    let Some(pin) = self.settings.pin.clone() else {
                        return Err(Stop::Fatal(
                            "the SIM asks for a PIN and pin_env is not set".into(),
                        ));
                    };
                    pin_sent = true;
                    // The PIN is never logged: errors name the command without it.
                    match port
                        .command(&format!("AT+CPIN=\"{pin}\""), Duration::from_secs(30))
                        .await
                    {
                        Ok(_) => {}
                        Err(AtError::Failed { result, .. }) => {
                            self.pin_rejected.store(true, Ordering::Relaxed);
                            return Err(Stop::Fatal(format!(
                                "SIM PIN rejected ({result:?}); not retried: attempts are limited"
                            )));
                        }
                        Err(AtError::Timeout { .. }) => {
                            return Err(Stop::Reset("no answer to AT+CPIN=<pin>".into()))
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                "SIM PIN" => {
                    return Err(Stop::Fatal("SIM PIN rejected earlier; not retried".into()))
                }
                "SIM PUK" => return Err(Stop::Fatal("the SIM is PUK-locked".into())),
                other => return Err(Stop::Fatal(format!("SIM state {other:?}"))),
            }
        }
        // SMS ready: commands fail with busy codes (or plain ERROR before `SMS Ready`).
        self.set_state("registering");
        let ready_by = Instant::now() + Duration::from_secs(60);
        loop {
            match port.command("AT+CMGF=0", t).await {
                Ok(_) => break,
                Err(AtError::Failed { .. }) if Instant::now() < ready_by => {
                    tokio::time::sleep(Duration::from_millis(250)).await
                }
                Err(e) => return Err(e.into()),
            }
        }
        let imsi = self
            .busy_retry(port, "AT+CIMI", t, 10)
            .await
            .ok()
            .and_then(|l| ident(&l, "+CIMI:"))
            .filter(|v| v.bytes().all(|b| b.is_ascii_digit()));
        self.info.lock().imsi = imsi.clone();
        let sim_key = imsi.clone().or(imei).unwrap_or_else(|| self.label.clone());
        self.load_count(&sim_key);
        // Registration.
        let reg_by = Instant::now() + self.settings.registration_timeout;
        loop {
            // Any failure here means "not yet": the loop asks again until the deadline.
            let registered = matches!(self.registered(port, t).await, Ok(true));
            if registered {
                break;
            }
            if Instant::now() >= reg_by {
                return Err(Stop::Reset("not registered to a network".into()));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        if let Ok(l) = port.command("AT+CSQ", t).await {
            self.signal(field(&l, "+CSQ:").and_then(csq_dbm));
        }
        let _ = port.command("AT+CSCS=\"GSM\"", t).await;
        let smsc = port.command("AT+CSCA?", t).await.ok().and_then(|l| {
            field(&l, "+CSCA:").map(|v| {
                v.split(',')
                    .next()
                    .unwrap_or("")
                    .trim_matches('"')
                    .to_string()
            })
        });
        if smsc.as_deref().is_none_or(|v| v.is_empty()) {
            match &self.settings.smsc {
                Some(n) => {
                    port.command(&format!("AT+CSCA=\"{n}\",145"), t).await?;
                }
                None => {
                    tracing::warn!(modem = %self.label, "the SIM has no SMSC number and `smsc` is not configured")
                }
            }
        }
        let mems = profile
            .sms
            .cpms
            .iter()
            .map(|m| format!("\"{m}\""))
            .collect::<Vec<_>>()
            .join(",");
        if let Err(e) = self
            .busy_retry(port, &format!("AT+CPMS={mems}"), t, 10)
            .await
        {
            tracing::warn!(modem = %self.label, error = %e, "storage selection refused");
        }
        let mut cnmi_ok = false;
        for c in std::iter::once(&profile.sms.cnmi).chain(&profile.sms.cnmi_fallbacks) {
            match port
                .command(
                    &format!("AT+CNMI={c}"),
                    Duration::from_secs(3).min(t.max(Duration::from_millis(500))),
                )
                .await
            {
                Ok(_) => {
                    cnmi_ok = true;
                    break;
                }
                Err(AtError::Failed { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        if !cnmi_ok {
            tracing::warn!(modem = %self.label, "no AT+CNMI setting accepted: relying on the AT+CMGL poll");
        }
        let cnma = port
            .command("AT+CSMS?", t)
            .await
            .ok()
            .and_then(|l| field(&l, "+CSMS:").map(|v| v.starts_with('1')))
            .unwrap_or(false);
        for c in &profile.at.post_sim_ready {
            self.init_command(port, c, t).await?;
        }
        self.read_operator(port, t).await;
        // Boot and ready markers read during init are history, not a restart.
        let markers: Vec<String> = profile.urc.ready.iter().chain(&profile.urc.sms_ready).chain(&profile.urc.power_down).cloned().collect();
        port.retain_urcs(|u| !markers.iter().any(|m| u.line.contains(m.as_str())));
        self.set_ready(true);
        let mem1 = profile
            .sms
            .cpms
            .first()
            .cloned()
            .unwrap_or_else(|| "SM".into());
        Ok(Session {
            profile,
            sim_key,
            mem1,
            cnma,
            last_mr: None,
            next_send: Instant::now(),
            timeouts: 0,
            part_slots: HashMap::new(),
        })
    }

    /// An init command: refused is fine (logged, the next step has a fallback), silence is not.
    async fn init_command<IO: AsyncRead + AsyncWrite + Unpin>(
        &self,
        port: &mut AtPort<IO>,
        cmd: &str,
        t: Duration,
    ) -> Result<(), Stop> {
        match port.command(cmd, t).await {
            Ok(_) => Ok(()),
            Err(AtError::Failed { result, .. }) => {
                tracing::debug!(modem = %self.label, cmd, ?result, "init command refused");
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    fn signal(&self, dbm: Option<i32>) {
        self.info.lock().signal_dbm = dbm;
        if let Some(d) = dbm {
            self.m.signal.set(d as f64);
        }
    }

    async fn ready_loop<IO: AsyncRead + AsyncWrite + Unpin>(
        &self,
        port: &mut AtPort<IO>,
        ss: &mut Session,
        rx: &mut mpsc::Receiver<SendJob>,
        hub: &Arc<dyn HubSink>,
        re: &mut Reassembler,
    ) -> Stop {
        let poll_every = self
            .settings
            .poll
            .unwrap_or(Duration::from_secs(ss.profile.sms.poll_cmgl_s.max(1) as u64));
        let mut next_poll = Instant::now(); // poll at once: messages that came while we were away
        let mut next_health = Instant::now() + self.settings.health;
        let rate = self
            .settings
            .rate_per_min
            .unwrap_or(ss.profile.timing.max_send_per_minute as f64);
        let gap = if rate > 0.0 {
            Duration::from_secs_f64(60.0 / rate)
        } else {
            Duration::ZERO
        };
        loop {
            // URCs already read (during a command) first.
            while let Some(u) = port.take_urc() {
                if let Err(s) = self.on_urc(port, ss, hub, re, u).await {
                    return s;
                }
            }
            let now = Instant::now();
            if now >= next_poll {
                next_poll = now + poll_every;
                if let Err(s) = self.poll(port, ss, hub, re).await {
                    return s;
                }
                continue;
            }
            if now >= next_health {
                next_health = now + self.settings.health;
                if let Err(s) = self.health(port, ss).await {
                    return s;
                }
                continue;
            }
            let can_send = self.ready.load(Ordering::Acquire) && now >= ss.next_send;
            if can_send {
                if let Some(job) = self.take_job(rx) {
                    if let Some(s) = self.handle_job(port, ss, job, gap).await {
                        return s;
                    }
                    continue;
                }
            }
            let mut wake = next_poll.min(next_health);
            if self.ready.load(Ordering::Acquire) && ss.next_send > now {
                wake = wake.min(ss.next_send);
            }
            tokio::select! {
                r = port.next_urc(wake) => match r {
                    Ok(Some(u)) => if let Err(s) = self.on_urc(port, ss, hub, re, u).await { return s },
                    Ok(None) => {}
                    Err(e) => return e.into(),
                },
                j = rx.recv(), if can_send => match j {
                    Some(job) => {
                        self.queue.fetch_sub(1, Ordering::AcqRel);
                        self.m.queue.decrement(1.0);
                        if let Some(s) = self.handle_job(port, ss, job, gap).await {
                            return s;
                        }
                    }
                    None => return Stop::Gone,
                },
            }
        }
    }

    async fn handle_job<IO: AsyncRead + AsyncWrite + Unpin>(
        &self,
        port: &mut AtPort<IO>,
        ss: &mut Session,
        job: SendJob,
        gap: Duration,
    ) -> Option<Stop> {
        let parts = job.parts.len() as u32;
        let (result, stop) = self.send(port, ss, &job).await;
        if matches!(result, SendResult::Sent(_) | SendResult::Unknown(..)) {
            self.count_sent(&ss.sim_key, parts);
            ss.next_send = Instant::now() + gap * parts;
        }
        if matches!(result, SendResult::Sent(_)) {
            self.sent.fetch_add(1, Ordering::Relaxed);
            self.m.sent.increment(1);
        } else {
            self.failed.fetch_add(1, Ordering::Relaxed);
            self.m.failed.increment(1);
        }
        let _ = job.reply.send(result);
        stop
    }

    /// After a timeout: does the modem still answer? Three timeouts in a row, or silence to a
    /// plain `AT`, mean it hangs.
    async fn check_alive<IO: AsyncRead + AsyncWrite + Unpin>(
        &self,
        port: &mut AtPort<IO>,
        ss: &mut Session,
        why: &str,
    ) -> Option<Stop> {
        ss.timeouts += 1;
        if ss.timeouts >= 3 {
            return Some(Stop::Reset(format!("three timeouts in a row ({why})")));
        }
        let _ = port.raw(&[0x1B]).await;
        match port
            .command("AT", Duration::from_secs(2).min(self.timeout(&ss.profile)))
            .await
        {
            Ok(_) => None,
            Err(AtError::Timeout { .. }) => Some(Stop::Reset(format!("no answer after {why}"))),
            Err(e) => Some(e.into()),
        }
    }

    async fn send<IO: AsyncRead + AsyncWrite + Unpin>(
        &self,
        port: &mut AtPort<IO>,
        ss: &mut Session,
        job: &SendJob,
    ) -> (SendResult, Option<Stop>) {
        if self.capped() {
            return (
                SendResult::TryOther(DeliveryError::new(
                    ErrorClass::Temporary,
                    ErrorKind::DailyCap,
                    format!("{}: daily cap reached", self.label),
                )),
                None,
            );
        }
        let prompt_t = self.settings.prompt_timeout.unwrap_or(Duration::from_secs(
            ss.profile.timing.cmgs_prompt_timeout_s as u64,
        ));
        let result_t = self.settings.send_timeout.unwrap_or(Duration::from_secs(
            ss.profile.timing.cmgs_result_timeout_s as u64,
        ));
        // `needs-wakeup-at`: the first command after a quiet spell may be lost.
        if ss.profile.has("needs-wakeup-at") && port.idle() > Duration::from_secs(30) {
            let _ = port.command("AT", Duration::from_secs(2)).await;
        }
        let to = digits(&job.to);
        let mut ids = Vec::with_capacity(job.parts.len());
        for part in &job.parts {
            let mut attempts = 0;
            loop {
                attempts += 1;
                match port
                    .send_pdu(part.tpdu_length, &part.pdu, prompt_t, result_t)
                    .await
                {
                    Ok(lines) => {
                        ss.timeouts = 0;
                        let mr = field(&lines, "+CMGS:")
                            .and_then(|v| v.split(',').next())
                            .and_then(|v| v.trim().parse::<u8>().ok());
                        if let Some(mr) = mr {
                            ss.last_mr = Some(mr);
                        }
                        ids.push(format!(
                            "{}:{}:{}",
                            ss.sim_key,
                            mr.map_or("?".to_string(), |m| m.to_string()),
                            to
                        ));
                        break;
                    }
                    Err(AtError::Timeout {
                        stage: Stage::Result,
                        ..
                    }) => {
                        // The message may be out: never resend. Predict the TP-MR so a status
                        // report can still settle it.
                        let next = ss.last_mr.map_or(0, |m| m.wrapping_add(1));
                        ss.last_mr = Some(next);
                        ids.push(format!("{}:{}:{}", ss.sim_key, next, to));
                        let err = DeliveryError::new(
                            ErrorClass::Unknown,
                            ErrorKind::Timeout, 
                            format!(
                                "{}: no +CMGS result within {:?}; outcome unknown, not resent",
                                self.label, result_t
                            ),
                        ).with_code("send_timeout");
                        let stop = self.check_alive(port, ss, "a send").await;
                        return (SendResult::Unknown(ids, err), stop);
                    }
                    Err(AtError::Timeout { .. }) => {
                        let err = DeliveryError::new(
                            ErrorClass::Temporary,
                            ErrorKind::Timeout, 
                            format!("{}: no > prompt", self.label),
                        ).with_code("prompt_timeout");
                        let stop = self.check_alive(port, ss, "AT+CMGS").await;
                        return (self.partial(ids, err), stop);
                    }
                    Err(AtError::Failed { result, .. }) => {
                        ss.timeouts = 0;
                        let (class, code) = match &result {
                            FinalResult::Cms(ErrValue::Numeric(n)) => {
                                (classify_cms(*n, &ss.profile), format!("cms_{n}"))
                            }
                            FinalResult::Cme(v) if cme_busy(v) => {
                                (CmsClass::Retry, "cme_busy".to_string())
                            }
                            _ => (
                                if attempts == 1 {
                                    CmsClass::Retry
                                } else {
                                    CmsClass::Later
                                },
                                "modem_error".to_string(),
                            ),
                        };
                        let text = format!("{}: {result:?}", self.label);
                        match class {
                            CmsClass::Retry if attempts < 3 => {
                                tokio::time::sleep(Duration::from_millis(300 * attempts)).await;
                                continue;
                            }
                            CmsClass::Storage if attempts < 2 => {
                                // Memory full: read and clear the store, then try once more.
                                continue;
                            }
                            CmsClass::Fatal => {
                                return (
                                    SendResult::Failed(
                                        DeliveryError::new(ErrorClass::Permanent, ErrorKind::Rejected, text)
                                            .with_code(code),
                                    ),
                                    None,
                                )
                            }
                            CmsClass::Config => {
                                let err =
                                    DeliveryError::new(ErrorClass::Temporary, ErrorKind::LinkError, text.clone())
                                        .with_code(code);
                                return (
                                    self.partial(ids, err),
                                    Some(Stop::Fatal(format!("configuration problem: {text}"))),
                                );
                            }
                            _ => {
                                return (
                                    self.partial(
                                        ids,
                                        DeliveryError::new(ErrorClass::Temporary, ErrorKind::Temporary, text)
                                            .with_code(code),
                                    ),
                                    None,
                                )
                            }
                        }
                    }
                    Err(e) => {
                        let stop: Stop = e.into();
                        let err = DeliveryError::new(
                            ErrorClass::Temporary,
                            ErrorKind::LinkError, 
                            format!("{}: {stop:?}", self.label),
                        ).with_code("modem_io");
                        return (self.partial(ids, err), Some(stop));
                    }
                }
            }
        }
        (SendResult::Sent(ids), None)
    }

    /// A failure after some parts went out: those are on the network, so retrying elsewhere
    /// would duplicate them; the message's outcome is unknown. Before any part: try another.
    fn partial(&self, ids: Vec<String>, err: DeliveryError) -> SendResult {
        if ids.is_empty() {
            SendResult::TryOther(err)
        } else {
            SendResult::Unknown(
                ids,
                DeliveryError::new(ErrorClass::Unknown, ErrorKind::PartlySent, err.message),
            )
        }
    }

    /// Registered, at home or roaming, in CS, PS or EPS (LTE-M/NB-IoT modules may register only
    /// in EPS)? A refused query counts as "no"; silence or a dead line is an error.
    async fn registered<IO: AsyncRead + AsyncWrite + Unpin>(&self, port: &mut AtPort<IO>, t: Duration) -> Result<bool, AtError> {
        for (cmd, prefix) in [("AT+CREG?", "+CREG:"), ("AT+CGREG?", "+CGREG:"), ("AT+CEREG?", "+CEREG:")] {
            match port.command(cmd, t).await {
                Ok(l) if matches!(field(&l, prefix).and_then(|v| reg_stat(v, true)), Some(1) | Some(5)) => return Ok(true),
                Ok(_) | Err(AtError::Failed { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(false)
    }

    /// The operator's name (`AT+COPS?`), when the modem gives one.
    async fn read_operator<IO: AsyncRead + AsyncWrite + Unpin>(&self, port: &mut AtPort<IO>, t: Duration) {
        if let Ok(l) = port.command("AT+COPS?", t).await {
            self.info.lock().operator = field(&l, "+COPS:").and_then(|v| v.split('"').nth(1)).map(String::from);
        }
    }

    async fn health<IO: AsyncRead + AsyncWrite + Unpin>(
        &self,
        port: &mut AtPort<IO>,
        ss: &mut Session,
    ) -> Result<(), Stop> {
        let t = self.timeout(&ss.profile);
        match port.command("AT+CSQ", t).await {
            Ok(l) => {
                ss.timeouts = 0;
                self.signal(field(&l, "+CSQ:").and_then(csq_dbm));
            }
            Err(AtError::Timeout { .. }) => {
                if let Some(s) = self.check_alive(port, ss, "AT+CSQ").await {
                    return Err(s);
                }
            }
            Err(e @ AtError::Failed { .. }) => {
                tracing::debug!(modem = %self.label, error = %e, "AT+CSQ refused")
            }
            Err(e) => return Err(e.into()),
        }
        let registered = self.registered(port, t).await?;
        self.set_ready(registered);
        self.read_operator(port, t).await;
        Ok(())
    }

    async fn select_mem<IO: AsyncRead + AsyncWrite + Unpin>(
        &self,
        port: &mut AtPort<IO>,
        ss: &mut Session,
        mem: &str,
    ) -> Result<bool, Stop> {
        if ss.mem1 == mem {
            return Ok(true);
        }
        match port
            .command(&format!("AT+CPMS=\"{mem}\""), self.timeout(&ss.profile))
            .await
        {
            Ok(_) => {
                ss.mem1 = mem.to_string();
                Ok(true)
            }
            Err(AtError::Failed { result, .. }) => {
                tracing::warn!(modem = %self.label, mem, ?result, "cannot select storage");
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn on_urc<IO: AsyncRead + AsyncWrite + Unpin>(
        &self,
        port: &mut AtPort<IO>,
        ss: &mut Session,
        hub: &Arc<dyn HubSink>,
        re: &mut Reassembler,
        u: Urc,
    ) -> Result<(), Stop> {
        let p = &ss.profile;
        let line = u.line.as_str();
        if p.urc.power_down.iter().any(|m| line.contains(m.as_str())) {
            return Err(Stop::Reset(format!("the modem announced {line:?}")));
        }
        if p.urc.ready.iter().any(|m| line.contains(m.as_str())) {
            return Err(Stop::Reset(format!("the modem restarted ({line:?})")));
        }
        if p.urc.ignore.iter().any(|m| line.starts_with(m.as_str())) || line.starts_with("^RSSI:") {
            tracing::trace!(modem = %self.label, line, "URC ignored");
            return Ok(());
        }
        if let Some(v) = line.strip_prefix("+CMTI:") {
            if let Some((mem, idx)) = mem_index(v) {
                if self.select_mem(port, ss, &mem).await? {
                    self.read_slot(port, ss, hub, re, &mem, idx).await?;
                }
            }
        } else if let Some(v) = line.strip_prefix("+CDSI:") {
            if let Some((mem, idx)) = mem_index(v) {
                let back = ss.mem1.clone();
                if self.select_mem(port, ss, &mem).await? {
                    self.read_slot(port, ss, hub, re, &mem, idx).await?;
                }
                self.select_mem(port, ss, &back).await?;
            }
        } else if line.starts_with("+CMT:") || line.starts_with("+CDS:") {
            if let Some(pdu) = &u.pdu {
                self.on_pdu(port, ss, hub, re, pdu, None).await?;
                if ss.cnma {
                    let _ = port.command("AT+CNMA", self.timeout(&ss.profile)).await;
                }
            }
        } else if let Some(v) = line
            .strip_prefix("+CREG:")
            .or(line.strip_prefix("+CGREG:"))
            .or(line.strip_prefix("+CEREG:"))
        {
            let stat = reg_stat(v, false);
            tracing::info!(modem = %self.label, ?stat, "registration changed");
            if let Some(s) = stat {
                self.set_ready(s == 1 || s == 5);
            }
        } else if let Some(v) = line.strip_prefix("+CSQ:") {
            self.signal(csq_dbm(v));
        } else {
            tracing::debug!(modem = %self.label, line, "URC");
        }
        Ok(())
    }

    async fn read_slot<IO: AsyncRead + AsyncWrite + Unpin>(
        &self,
        port: &mut AtPort<IO>,
        ss: &mut Session,
        hub: &Arc<dyn HubSink>,
        re: &mut Reassembler,
        mem: &str,
        idx: u32,
    ) -> Result<(), Stop> {
        match port
            .command(&format!("AT+CMGR={idx}"), self.timeout(&ss.profile))
            .await
        {
            Ok(lines) => {
                // `+CMGR: <stat>,[<alpha>],<len>` then the PDU line.
                let pdu = lines
                    .iter()
                    .skip_while(|l| !l.starts_with("+CMGR:"))
                    .nth(1)
                    .cloned();
                match pdu {
                    Some(pdu) => {
                        self.on_pdu(port, ss, hub, re, &pdu, Some((mem.to_string(), idx)))
                            .await
                    }
                    None => Ok(()),
                }
            }
            Err(AtError::Failed { result, .. }) => {
                tracing::debug!(modem = %self.label, idx, ?result, "slot not readable");
                Ok(())
            }
            Err(AtError::Timeout { .. }) => match self.check_alive(port, ss, "AT+CMGR").await {
                Some(s) => Err(s),
                None => Ok(()),
            },
            Err(e) => Err(e.into()),
        }
    }

    /// `AT+CMGL=4`: everything in the store (catches lost notifications and what arrived while
    /// the gateway was down).
    async fn poll<IO: AsyncRead + AsyncWrite + Unpin>(
        &self,
        port: &mut AtPort<IO>,
        ss: &mut Session,
        hub: &Arc<dyn HubSink>,
        re: &mut Reassembler,
    ) -> Result<(), Stop> {
        let main = ss.mem1.clone();
        self.list_mem(port, ss, hub, re).await?;
        // Status reports stored in "SR" whose +CDSI was lost (or came while we were away).
        if self.settings.dlr && ss.profile.sms.status_report == super::hwdb::StatusReportMode::Cdsi && main != "SR" {
            if self.select_mem(port, ss, "SR").await? {
                self.list_mem(port, ss, hub, re).await?;
            }
            self.select_mem(port, ss, &main).await?;
        }
        // Messages whose missing parts never came: store what arrived.
        for done in re.expire(crate::model::now_ms()) {
            self.store_reassembled(port, ss, hub, done).await?;
        }
        Ok(())
    }

    /// `AT+CMGL=4` on the selected memory; every entry processed.
    async fn list_mem<IO: AsyncRead + AsyncWrite + Unpin>(&self, port: &mut AtPort<IO>, ss: &mut Session, hub: &Arc<dyn HubSink>, re: &mut Reassembler) -> Result<(), Stop> {
        let t = Duration::from_secs(ss.profile.timing.cmgl_timeout_s as u64).min(self.timeout(&ss.profile) * 12);
        let lines = match port.command("AT+CMGL=4", t).await {
            Ok(l) => l,
            Err(AtError::Failed { result, .. }) => {
                tracing::debug!(modem = %self.label, ?result, "AT+CMGL refused");
                return Ok(());
            }
            Err(AtError::Timeout { .. }) => {
                return match self.check_alive(port, ss, "AT+CMGL").await {
                    Some(s) => Err(s),
                    None => Ok(()),
                }
            }
            Err(e) => return Err(e.into()),
        };
        let mut entries = Vec::new();
        let mut it = lines.iter();
        while let Some(l) = it.next() {
            if let Some(v) = l.strip_prefix("+CMGL:") {
                let idx: Option<u32> = v.split(',').next().and_then(|x| x.trim().parse().ok());
                if let (Some(idx), Some(pdu)) = (idx, it.next()) {
                    entries.push((idx, pdu.clone()));
                }
            }
        }
        let mem = ss.mem1.clone();
        for (idx, pdu) in entries {
            self.on_pdu(port, ss, hub, re, &pdu, Some((mem.clone(), idx))).await?;
        }
        Ok(())
    }

    /// One PDU read from the modem: an MO part, or a status report.
    async fn on_pdu<IO: AsyncRead + AsyncWrite + Unpin>(
        &self,
        port: &mut AtPort<IO>,
        ss: &mut Session,
        hub: &Arc<dyn HubSink>,
        re: &mut Reassembler,
        hex_pdu: &str,
        slot: Option<(String, u32)>,
    ) -> Result<(), Stop> {
        let bytes = hex::decode(hex_pdu.trim()).unwrap_or_default();
        let tpdu = match sms_pdu::decode(&bytes) {
            Ok(s) => s.tpdu,
            // Some modems give status reports read from "SR" without the SMSC field
            // (`sr-read-fixup`): try the octets as a bare TPDU before giving up.
            Err(e) => match sms_pdu::decode_tpdu(&bytes) {
                Ok(t) => t,
                Err(_) => {
                    // Undecodable: left in the store for inspection; the rest carries on.
                    tracing::warn!(modem = %self.label, error = %e, ?slot, "undecodable PDU from the modem");
                    return Ok(());
                }
            },
        };
        match tpdu {
            Tpdu::StatusReport {
                mr,
                recipient,
                status,
                ..
            } => {
                if let Some((state, error)) = status_state(status) {
                    let receipt = Receipt {
                        connector: self.settings.bank.clone(),
                        remote_id: format!("{}:{}:{}", ss.sim_key, mr, digits(&recipient.number)),
                        state,
                        error,
                    };
                    if !hub.report_and_wait(receipt).await {
                        // Not committed: left on the SIM, read again next time.
                        return Ok(());
                    }
                }
                if let Some((mem, idx)) = slot {
                    self.delete(port, ss, &mem, idx).await?;
                }
                Ok(())
            }
            Tpdu::Deliver { originator, ud, .. } => {
                let from = if originator.ton == 1 && !originator.number.starts_with('+') {
                    format!("+{}", originator.number)
                } else {
                    originator.number.clone()
                };
                let dest_port = ud.udh.as_ref().and_then(|u| u.ports()).map(|p| p.0);
                let body = match (&ud.text, &ud.data) {
                    (Some(t), _) => PartBody::Text(t.clone()),
                    (None, Some(d)) => PartBody::Data(d.clone()),
                    _ => PartBody::Data(Vec::new()),
                };
                match ud
                    .udh
                    .as_ref()
                    .and_then(|u| u.concat())
                    .filter(|c| c.total > 1)
                {
                    None => {
                        self.store_mo(
                            port,
                            ss,
                            hub,
                            from,
                            body,
                            Vec::new(),
                            dest_port,
                            slot.into_iter().collect(),
                        )
                        .await
                    }
                    Some(c) => {
                        let info = PartInfo::from(c);
                        let key = PartKey {
                            sender: from.clone(),
                            receiver: String::new(),
                            reference: info.reference,
                            total: info.total,
                        };
                        let pending = ss.part_slots.entry(key).or_default();
                        pending.dest_port = pending.dest_port.or(dest_port);
                        if let Some(s) = slot.clone() {
                            if !pending.slots.contains(&s) {
                                pending.slots.push(s);
                            }
                        }
                        match re.add(&from, "", info, body, crate::model::now_ms()) {
                            Ok(done) => {
                                for d in done {
                                    self.store_reassembled(port, ss, hub, d).await?;
                                }
                                Ok(())
                            }
                            Err(e) => {
                                tracing::warn!(modem = %self.label, error = %e, "bad MO part");
                                Ok(())
                            }
                        }
                    }
                }
            }
            Tpdu::Submit { .. } => Ok(()), // an outgoing message left in the store
        }
    }

    /// A reassembled (or expired, incomplete) multipart MO, with the slots of its parts.
    async fn store_reassembled<IO: AsyncRead + AsyncWrite + Unpin>(&self, port: &mut AtPort<IO>, ss: &mut Session, hub: &Arc<dyn HubSink>, done: crate::codec::reassembly::Reassembled) -> Result<(), Stop> {
        let p = ss.part_slots.remove(&done.key).unwrap_or_default();
        self.store_mo(port, ss, hub, done.key.sender.clone(), done.body, done.missing, p.dest_port, p.slots).await
    }

    /// Store an MO message in the hub, then free its storage slots (never before: a crash in
    /// between leaves it in the SIM, and the start-up poll reads it again).
    #[allow(clippy::too_many_arguments)]
    async fn store_mo<IO: AsyncRead + AsyncWrite + Unpin>(
        &self,
        port: &mut AtPort<IO>,
        ss: &mut Session,
        hub: &Arc<dyn HubSink>,
        from: String,
        body: PartBody,
        missing: Vec<u8>,
        dest_port: Option<u16>,
        slots: Vec<(String, u32)>,
    ) -> Result<(), Stop> {
        let body = match body {
            PartBody::Text(t) => Body::Text(t),
            PartBody::Data(d) => Body::Binary {
                data: d,
                data_coding: 0x04,
            },
        };
        let info = self.info.lock().clone();
        let inbound = InboundMessage {
            connector: self.settings.bank.clone(),
            from,
            to: String::new(),
            body,
            metadata: Some(
                serde_json::json!({"modem": {"port": self.label, "imsi": info.imsi, "operator": info.operator}, "incomplete_parts_missing": missing}),
            ),
            dest_port,
        };
        match hub.receive(inbound).await {
            Ok(_) => {
                self.received.fetch_add(1, Ordering::Relaxed);
                self.m.received.increment(1);
                for (mem, idx) in slots {
                    self.delete(port, ss, &mem, idx).await?;
                }
                Ok(())
            }
            Err(e) => {
                tracing::error!(modem = %self.label, error = %e, "MO not stored; left in the modem for the next poll");
                Ok(())
            }
        }
    }

    async fn delete<IO: AsyncRead + AsyncWrite + Unpin>(
        &self,
        port: &mut AtPort<IO>,
        ss: &mut Session,
        mem: &str,
        idx: u32,
    ) -> Result<(), Stop> {
        let back = ss.mem1.clone();
        if !self.select_mem(port, ss, mem).await? {
            return Ok(());
        }
        match port
            .command(&format!("AT+CMGD={idx}"), self.timeout(&ss.profile))
            .await
        {
            Ok(_) | Err(AtError::Failed { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        self.select_mem(port, ss, &back).await.map(|_| ())
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
