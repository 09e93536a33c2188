//! `postern modem-sim`: a GSM modem simulator on a pseudo-terminal pair (written by hand: no
//! crate simulates a modem's AT interface). It answers the AT subset the driver uses in PDU
//! mode — identification, PIN, registration, signal, SMSC, storage, indications, `AT+CMGS` (with
//! TP-MR and optional status reports after a delay), `+CMGR/+CMGL/+CMGD`, `AT+CFUN=1,1` — and
//! reproduces an hwdb entry's quirks (`^RSSI` floods until `AT^CURC=0`, `>` without a space,
//! indices from 0, `+CPIN:` without `OK`, `\r\r\n`, vendor error tokens, `SMS Ready` gating,
//! CME 515 after `CFUN=1`). Faults on demand: `+CMS ERROR` per destination prefix, a hang
//! until `AT+CFUN=1,1`, a hang after the PDU (outcome unknown). Messages are injected as text,
//! multipart or binary (WBXML), announced by `+CMTI`, `+CMT` or not at all (caught by a poll).
//! A transcript mode replays a recorded exchange byte for byte.

mod answer;
mod transcript;

pub use transcript::{parse_transcript, replay, Step};

use crate::connector::modem::hwdb::{Profile, StatusReportMode};
use crate::codec::national::Shift;
use crate::codec::sms_pdu::{self, SubmitBody, Timestamp, Tpdu};
use crate::codec::udh::{iei, Concat, Ie, Udh};
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;

/// A message the simulated modem sent to the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentSms {
    pub mr: u8,
    pub to: String,
    pub text: Option<String>,
    /// Concatenation (reference, total, seq) if a part.
    pub part: Option<(u16, u8, u8)>,
    pub srr: bool,
}

/// How the modem misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hang {
    None,
    /// Answer nothing until `AT+CFUN=1,1`.
    Now,
    /// Take the next PDU (it reaches the network), then answer nothing until `AT+CFUN=1,1`.
    AfterPdu,
}

/// How an injected message is announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// As the modem is configured (`+CMTI` for mt=1, `+CMT` for mt=2).
    Configured,
    /// Stored silently (a lost notification: only a poll finds it).
    Silent,
}

/// Simulator settings.
#[derive(Debug, Clone)]
pub struct SimSettings {
    pub profile: Profile,
    pub pin: Option<String>,
    pub imei: String,
    pub imsi: String,
    pub operator: String,
    pub rssi: u8,
    /// Time from `+CMGS` to its status report.
    pub dlr_delay: Duration,
    /// Time the network takes for one `AT+CMGS`.
    pub send_delay: Duration,
    /// Period of the vendor URC flood (profiles with `urc-flood`, until `AT^CURC=0`).
    pub flood_every: Duration,
    /// Status report TP-ST for every message (0 = delivered).
    pub report_status: u8,
    /// Slots in the SIM store.
    pub capacity: usize,
}

impl SimSettings {
    pub fn new(profile: Profile, n: u32) -> Self {
        SimSettings {
            profile,
            pin: None,
            imei: format!("35{:013}", 1_000_000 + n as u64),
            imsi: format!("2341099{:08}", n),
            operator: "Postern Sim".into(),
            rssi: 20,
            dlr_delay: Duration::from_millis(200),
            send_delay: Duration::ZERO,
            flood_every: Duration::from_millis(250),
            report_status: 0,
            capacity: 50,
        }
    }
}

struct Stored {
    stat: u8,
    pdu: Vec<u8>,
}

struct State {
    s: SimSettings,
    echo: bool,
    pin_ok: bool,
    pin_attempts: u8,
    sms_ready: bool,
    curc_off: bool,
    pdu_mode: bool,
    mt: u8,
    ds: u8,
    csca: String,
    mem1: String,
    store: BTreeMap<u32, Stored>,
    sr_store: BTreeMap<u32, Stored>,
    next_mr: u8,
    reg_stat: u8,
    sent: Vec<SentSms>,
    fail: Vec<(String, u16)>,
    hang: Hang,
    /// Commands still answered "busy" (CME 515 after CFUN=1, CME 14 after the PIN).
    busy: (u8, u16),
    out: Vec<u8>,
    resets: u32,
    commands: u64,
}

/// A handle on a running simulated modem.
#[derive(Clone)]
pub struct SimModem {
    state: Arc<Mutex<State>>,
    wake: Arc<Notify>,
    /// The device path the driver opens (`/dev/pts/N`, or the link when one was asked for).
    pub path: PathBuf,
    stop: Arc<Notify>,
}

fn eol(p: &Profile) -> &'static str {
    if p.has("crcrlf-endings") {
        "\r\r\n"
    } else {
        "\r\n"
    }
}

/// A new pseudo-terminal pair, and the device path the driver opens (a symlink at `link`, a
/// stable name like socat's `link=`, or the pts itself).
fn pty(link: Option<&Path>) -> std::io::Result<(tokio_serial::SerialStream, tokio_serial::SerialStream, PathBuf)> {
    let (master, slave) = tokio_serial::SerialStream::pair().map_err(std::io::Error::other)?;
    let pts = tokio_serial::SerialPort::name(&slave)
        .ok_or_else(|| std::io::Error::other("pty has no name"))?;
    let path = match link {
        Some(l) => {
            let _ = std::fs::remove_file(l);
            std::os::unix::fs::symlink(&pts, l)?;
            l.to_path_buf()
        }
        None => PathBuf::from(pts),
    };
    Ok((master, slave, path))
}

impl SimModem {
    /// Start a simulated modem on a new pty; `link` makes a symlink to the device (a stable
    /// name, like socat's `link=`).
    pub fn start(settings: SimSettings, link: Option<&Path>) -> std::io::Result<SimModem> {
        let (master, slave, path) = pty(link)?;
        let mut st = State {
            s: settings,
            echo: true,
            pin_ok: true,
            pin_attempts: 0,
            sms_ready: true,
            curc_off: false,
            pdu_mode: false,
            mt: 0,
            ds: 0,
            csca: "+447400123000".into(),
            mem1: "SM".into(),
            store: BTreeMap::new(),
            sr_store: BTreeMap::new(),
            next_mr: 0,
            reg_stat: 1,
            sent: Vec::new(),
            fail: Vec::new(),
            hang: Hang::None,
            busy: (0, 0),
            out: Vec::new(),
            resets: 0,
            commands: 0,
        };
        st.boot();
        let sim = SimModem {
            state: Arc::new(Mutex::new(st)),
            wake: Arc::new(Notify::new()),
            path,
            stop: Arc::new(Notify::new()),
        };
        let s2 = sim.clone();
        tokio::spawn(async move {
            // The slave stays open here so the master never sees a hang-up while the driver
            // closes and reopens the device.
            let _slave = slave;
            s2.serve(master).await;
        });
        Ok(sim)
    }

    async fn serve(&self, mut master: tokio_serial::SerialStream) {
        let mut buf = [0u8; 4096];
        let mut line: Vec<u8> = Vec::new();
        let mut pdu_len: Option<usize> = None;
        let flood = self.state.lock().s.profile.has("urc-flood");
        let every = self.state.lock().s.flood_every;
        let mut flood_tick = tokio::time::interval(every);
        loop {
            let pending = std::mem::take(&mut self.state.lock().out);
            if !pending.is_empty() && master.write_all(&pending).await.is_err() {
                return;
            }
            tokio::select! {
                _ = self.stop.notified() => return,
                _ = self.wake.notified() => {}
                _ = flood_tick.tick(), if flood => {
                    let mut st = self.state.lock();
                    if !st.curc_off && st.hang == Hang::None {
                        let r = st.s.rssi;
                        st.line(&format!("^RSSI: {r}"));
                    }
                }
                r = master.read(&mut buf) => {
                    let n = match r { Ok(0) | Err(_) => { tokio::time::sleep(Duration::from_millis(20)).await; continue } Ok(n) => n };
                    let mut reports = Vec::new();
                    let mut delay = Duration::ZERO;
                    {
                        let mut st = self.state.lock();
                        for &b in &buf[..n] {
                            match pdu_len {
                                Some(len) => match b {
                                    0x1A => {
                                        let text = String::from_utf8_lossy(&line).to_string();
                                        line.clear();
                                        pdu_len = None;
                                        delay = st.s.send_delay;
                                        if let Some(r) = st.pdu(len, &text) { reports.push((r, st.s.dlr_delay)); }
                                    }
                                    0x1B => { line.clear(); pdu_len = None; }
                                    b'\r' | b'\n' => {}
                                    _ => line.push(b),
                                },
                                None => match b {
                                    b'\r' => {
                                        let text = String::from_utf8_lossy(&line).to_string();
                                        line.clear();
                                        pdu_len = st.command(&text);
                                    }
                                    b'\n' | 0x1B | 0x1A => {}
                                    _ => if line.len() < 4096 { line.push(b) },
                                },
                            }
                        }
                    }
                    if !delay.is_zero() {
                        // The network's time for the send: hold the answer back.
                        let held = std::mem::take(&mut self.state.lock().out);
                        tokio::time::sleep(delay).await;
                        let mut st = self.state.lock();
                        let rest = std::mem::replace(&mut st.out, held);
                        st.out.extend(rest);
                    }
                    for ((mr, to), d) in reports {
                        let me = self.clone();
                        tokio::spawn(async move {
                            tokio::time::sleep(d).await;
                            me.state.lock().deliver_report(mr, &to);
                            me.wake.notify_one();
                        });
                    }
                }
            }
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let r = f(&mut self.state.lock());
        self.wake.notify_one();
        r
    }

    /// Inject a received text message (split into concatenated parts when long). `silent`
    /// lists the part numbers (1-based) whose notification is lost. Returns the storage indices.
    pub fn inject_text(
        &self,
        from: &str,
        text: &str,
        reference: u8,
        silent: &[u8],
    ) -> Result<Vec<u32>, sms_pdu::PduError> {
        let gsm = crate::codec::gsm7::encodable(text);
        let coding = if gsm {
            crate::codec::segment::Coding::Gsm7
        } else {
            crate::codec::segment::Coding::Ucs2
        };
        let pieces =
            crate::codec::segment::split(text, coding, crate::codec::segment::ConcatRef::Bits8);
        let total = pieces.len() as u8;
        let now = crate::model::now_ms();
        let mut pdus = Vec::new();
        for (i, p) in pieces.iter().enumerate() {
            let udh = (total > 1).then(|| {
                Udh::default().with_concat(Concat {
                    reference: reference as u16,
                    bits: 8,
                    total,
                    seq: i as u8 + 1,
                })
            });
            let body = if gsm {
                SubmitBody::Gsm7(p.to_string(), Shift::DEFAULT)
            } else {
                SubmitBody::Ucs2(p.to_string())
            };
            pdus.push(sms_pdu::encode_deliver(
                from,
                &body,
                udh.as_ref(),
                Timestamp::from_unix_ms(now),
            )?);
        }
        Ok(self.with(|st| {
            pdus.into_iter()
                .enumerate()
                .filter_map(|(i, pdu)| {
                    st.receive(
                        pdu,
                        if silent.contains(&(i as u8 + 1)) {
                            Notice::Silent
                        } else {
                            Notice::Configured
                        },
                    )
                })
                .collect()
        }))
    }

    /// Inject a received 8-bit message to an application port (e.g. 2948, WAP Push / WBXML),
    /// in concatenated parts when it does not fit one. Returns the storage indices.
    pub fn inject_binary(&self, from: &str, data: &[u8], port: Option<u16>, reference: u8) -> Result<Vec<u32>, sms_pdu::PduError> {
        let ports = port.map(|p| Ie { id: iei::PORTS_16, data: vec![(p >> 8) as u8, p as u8, 0x23, 0xF0] });
        let room = 140 - 1 - if ports.is_some() { 6 } else { 0 };
        let chunks: Vec<&[u8]> = if data.len() <= room { vec![data] } else { data.chunks(room - 5).collect() };
        let total = chunks.len() as u8;
        let now = Timestamp::from_unix_ms(crate::model::now_ms());
        let mut pdus = Vec::new();
        for (i, c) in chunks.iter().enumerate() {
            let mut u = Udh::default();
            if let Some(p) = &ports {
                u.ies.push(p.clone());
            }
            if total > 1 {
                u = u.with_concat(Concat { reference: reference as u16, bits: 8, total, seq: i as u8 + 1 });
            }
            pdus.push(sms_pdu::encode_deliver(from, &SubmitBody::Binary(c.to_vec(), None), Some(&u), now)?);
        }
        Ok(self.with(|st| pdus.into_iter().filter_map(|p| st.receive(p, Notice::Configured)).collect()))
    }

    /// Answer `+CMS ERROR: <code>` to sends whose destination starts with `prefix`.
    pub fn fail_destination(&self, prefix: &str, code: u16) {
        let p = prefix.trim_start_matches('+').to_string();
        self.with(|st| st.fail.push((p, code)));
    }

    pub fn hang(&self, how: Hang) {
        self.with(|st| st.hang = how);
    }

    pub fn set_signal(&self, rssi: u8) {
        self.with(|st| st.s.rssi = rssi);
    }

    pub fn set_registration(&self, stat: u8) {
        self.with(|st| {
            st.reg_stat = stat;
            let l = format!("+CREG: {stat}");
            st.line(&l);
        });
    }

    /// What reached the "network", in order.
    pub fn sent(&self) -> Vec<SentSms> {
        self.state.lock().sent.clone()
    }

    /// Messages still in the SIM store.
    pub fn stored(&self) -> usize {
        self.state.lock().store.len()
    }

    /// Resets (`AT+CFUN=1,1`) so far.
    pub fn resets(&self) -> u32 {
        self.state.lock().resets
    }

    pub fn commands(&self) -> u64 {
        self.state.lock().commands
    }

    /// Stop answering and remove the link (an unplugged modem).
    pub fn unplug(&self) {
        if self.path.is_symlink() {
            let _ = std::fs::remove_file(&self.path);
        }
        self.stop.notify_one();
    }

    /// Run one control line (the `modem-sim` stdin and `--script` language); the answer text.
    pub fn control(&self, line: &str) -> Result<String, String> {
        let mut w = line.split_whitespace();
        let verb = w.next().unwrap_or("");
        let rest: Vec<&str> = w.collect();
        match (verb, rest.as_slice()) {
            ("mo", [from, text @ ..]) => self.inject_text(from, &text.join(" "), 1, &[]).map(|i| format!("stored at {i:?}")).map_err(|e| e.to_string()),
            ("mo-silent", [from, text @ ..]) => self.inject_text(from, &text.join(" "), 1, &[1, 2, 3, 4, 5, 6, 7, 8]).map(|i| format!("stored silently at {i:?}")).map_err(|e| e.to_string()),
            ("mo-binary", [from, hexdata, rest @ ..]) => {
                let data = hex::decode(hexdata).map_err(|e| e.to_string())?;
                let port = rest.first().and_then(|p| p.parse().ok());
                self.inject_binary(from, &data, port, 2).map(|i| format!("stored at {i:?}")).map_err(|e| e.to_string())
            }
            ("fail", [prefix, code]) => {
                let code: u16 = code.parse().map_err(|_| "fail PREFIX CMS-CODE".to_string())?;
                self.fail_destination(prefix, code);
                Ok(format!("sends to {prefix}* fail with +CMS ERROR: {code}"))
            }
            ("hang", []) => {
                self.hang(Hang::Now);
                Ok("hung until AT+CFUN=1,1".into())
            }
            ("hang-after-pdu", []) => {
                self.hang(Hang::AfterPdu);
                Ok("the next send reaches the network, then the modem hangs".into())
            }
            ("signal", [rssi]) => {
                self.set_signal(rssi.parse().map_err(|_| "signal 0..31".to_string())?);
                Ok("ok".into())
            }
            ("register", [stat]) => {
                self.set_registration(stat.parse().map_err(|_| "register 0..5".to_string())?);
                Ok("ok".into())
            }
            ("sent", []) => Ok(self.sent().iter().map(|s| format!("mr={} to={} text={:?} part={:?}", s.mr, s.to, s.text, s.part)).collect::<Vec<_>>().join("\n")),
            ("wait", [ms]) => Ok(format!("wait {ms}")),
            _ => Err(format!("unknown control line {line:?}: mo FROM TEXT | mo-silent FROM TEXT | mo-binary FROM HEX [PORT] | fail PREFIX CODE | hang | hang-after-pdu | signal N | register N | sent | wait MS")),
        }
    }
}
