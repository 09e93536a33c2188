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

use super::hwdb::{Profile, StatusReportMode};
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

impl State {
    fn line(&mut self, l: &str) {
        let e = eol(&self.s.profile);
        self.out.extend_from_slice(format!("\r\n{l}{e}").as_bytes());
    }
    fn ok(&mut self) {
        if self.s.profile.has("blank-lines-before-final") {
            self.out.extend_from_slice(b"\r\n");
        }
        self.line("OK");
    }
    fn error(&mut self) {
        self.line("ERROR");
    }
    fn cms(&mut self, code: u16) {
        self.line(&format!("+CMS ERROR: {code}"));
    }
    fn cme(&mut self, code: u16) {
        self.line(&format!("+CME ERROR: {code}"));
    }
    fn unsupported(&mut self) {
        let tok = self.s.profile.at.extra_final_error.first().cloned();
        match tok {
            Some(t) => self.line(&t),
            None => self.error(),
        }
    }
    fn first_index(&self) -> u32 {
        self.s.profile.sms.index_base as u32
    }
    fn free_index(store: &BTreeMap<u32, Stored>, base: u32) -> u32 {
        (base..).find(|i| !store.contains_key(i)).unwrap_or(base)
    }
    fn boot(&mut self) {
        self.echo = true;
        self.pin_ok = self.s.pin.is_none();
        self.sms_ready = !self.s.profile.has("sms-ready-urc");
        self.curc_off = false;
        self.pdu_mode = false;
        self.mt = 0;
        self.ds = 0;
        self.mem1 = "SM".into();
        self.hang = Hang::None;
        self.busy = (0, 0);
        let ready = self.s.profile.urc.ready.clone();
        for r in ready {
            self.line(&r);
        }
        if self.pin_ok {
            let sms_ready = self.s.profile.urc.sms_ready.clone();
            self.sms_ready = true;
            for r in sms_ready {
                self.line(&r);
            }
        }
    }

    fn storage_report(&self) -> String {
        let used = self.store.len();
        let cap = self.s.capacity;
        let n = self.s.profile.sms.cpms_args.max(1) as usize;
        vec![format!("{used},{cap}"); n].join(",")
    }

    /// One command line (without the `\r`). Returns the PDU length when a prompt was given.
    fn command(&mut self, raw: &str) -> Option<usize> {
        self.commands += 1;
        let cmd = raw.trim();
        let up = cmd.to_ascii_uppercase();
        if self.hang != Hang::None && self.hang != Hang::AfterPdu {
            if up == "AT+CFUN=1,1" {
                self.resets += 1;
                self.ok();
                self.boot();
            }
            return None;
        }
        if self.echo {
            self.out.extend_from_slice(cmd.as_bytes());
            self.out.push(b'\r');
        }
        if !up.starts_with("AT") {
            if !cmd.is_empty() {
                self.error();
            }
            return None;
        }
        if self.busy.0 > 0 && up != "AT" {
            self.busy.0 -= 1;
            let code = self.busy.1;
            self.cme(code);
            return None;
        }
        let body = &cmd[2..];
        let ubody = &up[2..];
        let arg = |prefix: &str| -> Option<&str> {
            ubody.strip_prefix(prefix).map(|_| &body[prefix.len()..])
        };
        match ubody {
            "" | "Z" | "V1" | "&F" | "Q0" => self.ok(),
            "E0" => {
                self.echo = false;
                self.ok()
            }
            "E1" | "E" => {
                self.echo = true;
                self.ok()
            }
            "+CGMI" | "+GMI" => {
                let v = self
                    .s
                    .profile
                    .identify
                    .cgmi
                    .first()
                    .cloned()
                    .unwrap_or_else(|| "Postern".into());
                self.line(&v);
                self.ok()
            }
            "+CGMM" | "+GMM" => {
                let v = self
                    .s
                    .profile
                    .identify
                    .cgmm
                    .first()
                    .cloned()
                    .unwrap_or_else(|| "ModemSim".into());
                self.line(&v);
                self.ok()
            }
            "+CGMR" => {
                self.line("SIM.1.0");
                self.ok()
            }
            "+CGSN" | "+GSN" => {
                let v = self.s.imei.clone();
                self.line(&v);
                self.ok()
            }
            "+CIMI" => {
                if !self.pin_ok {
                    self.cme(11);
                    return None;
                }
                let v = self.s.imsi.clone();
                self.line(&v);
                self.ok()
            }
            "+CFUN?" => {
                self.line("+CFUN: 1");
                self.ok()
            }
            "+CFUN=1,1" => {
                self.resets += 1;
                self.ok();
                self.boot();
            }
            "+CFUN=1" => {
                self.ok();
                if self.s.profile.has("busy-after-cfun") {
                    self.busy = (2, 515);
                }
            }
            "+CPIN?" => {
                let v = if self.pin_ok {
                    "+CPIN: READY"
                } else if self.pin_attempts >= 3 {
                    "+CPIN: SIM PUK"
                } else {
                    "+CPIN: SIM PIN"
                };
                self.line(v);
                if !self.s.profile.has("cpin-no-ok") {
                    self.ok();
                }
            }
            "+CSQ" => {
                let v = format!("+CSQ: {},99", self.s.rssi);
                self.line(&v);
                self.ok()
            }
            "+COPS?" => {
                let v = format!("+COPS: 0,0,\"{}\",2", self.s.operator);
                self.line(&v);
                self.ok()
            }
            "+CSCA?" => {
                if !self.pin_ok {
                    self.cms(311);
                    return None;
                }
                let v = format!("+CSCA: \"{}\",145", self.csca);
                self.line(&v);
                self.ok()
            }
            "+CSMS?" => {
                self.line("+CSMS: 0,1,1,1");
                self.ok()
            }
            "+CPMS=?" => {
                self.line("+CPMS: (\"SM\",\"SR\"),(\"SM\"),(\"SM\")");
                self.ok()
            }
            "+CPMS?" => {
                let v = format!("+CPMS: \"{}\",{}", self.mem1, self.storage_report());
                self.line(&v);
                self.ok()
            }
            "+CMGL=?" => {
                self.line("+CMGL: (0-4)");
                self.ok()
            }
            "+CNMA" => self.ok(),
            _ => {
                if let Some(v) = arg("+CMEE=")
                    .or(arg("+CSCS="))
                    .or(arg("+CREG="))
                    .or(arg("+CGREG="))
                    .or(arg("+CEREG="))
                    .or(arg("+COPS="))
                {
                    let _ = v;
                    self.ok();
                } else if ubody == "+CREG?" || ubody == "+CGREG?" || ubody == "+CEREG?" {
                    let stat = if self.pin_ok { self.reg_stat } else { 0 };
                    let v = format!("{}: 0,{stat}", &cmd[2..cmd.len() - 1]);
                    self.line(&v);
                    self.ok()
                } else if let Some(v) = arg("+CPIN=") {
                    let given = v.trim().trim_matches('"');
                    if self.pin_ok {
                        self.ok()
                    } else if self.pin_attempts >= 3 {
                        self.cme(12)
                    } else if Some(given) == self.s.pin.as_deref() {
                        self.pin_ok = true;
                        self.ok();
                        if self.s.profile.has("sim-busy-after-pin") {
                            self.busy = (2, 14);
                        }
                        for r in self.s.profile.urc.sms_ready.clone() {
                            self.line(&r);
                        }
                        self.sms_ready = true;
                    } else {
                        self.pin_attempts += 1;
                        self.cme(16)
                    }
                } else if let Some(v) = arg("+CMGF=") {
                    if !self.pin_ok || !self.sms_ready {
                        self.error();
                    } else {
                        self.pdu_mode = v.trim() == "0";
                        self.ok()
                    }
                } else if let Some(v) = arg("+CSCA=") {
                    self.csca = v
                        .split(',')
                        .next()
                        .unwrap_or("")
                        .trim_matches('"')
                        .to_string();
                    self.ok()
                } else if let Some(v) = arg("+CPMS=") {
                    let mems: Vec<String> = v
                        .split(',')
                        .map(|m| m.trim().trim_matches('"').to_ascii_uppercase())
                        .collect();
                    let p = &self.s.profile;
                    let bad = mems.len() > p.sms.cpms_args as usize
                        || (p.has("cpms-three-args-required") && mems.len() < 3)
                        || (p.has("cpms-sr-unsupported") && mems.iter().skip(1).any(|m| m == "SR"))
                        || (p.has("cpms-mt-unsupported") && mems.iter().any(|m| m == "MT"));
                    if bad
                        || mems
                            .iter()
                            .any(|m| !matches!(m.as_str(), "SM" | "ME" | "MT" | "SR"))
                    {
                        self.cms(302);
                    } else {
                        self.mem1 = mems[0].clone();
                        let v = format!("+CPMS: {}", self.storage_report());
                        self.line(&v);
                        self.ok()
                    }
                } else if let Some(v) = arg("+CNMI=") {
                    let n: Vec<u8> = v
                        .split(',')
                        .map(|x| x.trim().parse().unwrap_or(0))
                        .collect();
                    let ds = n.get(3).copied().unwrap_or(0);
                    if self.s.profile.has("ds1-unsupported") && ds == 1 {
                        self.cms(303);
                    } else {
                        self.mt = n.get(1).copied().unwrap_or(0);
                        self.ds = ds;
                        self.ok()
                    }
                } else if let Some(v) = arg("+CMGS=") {
                    if !self.pdu_mode || !self.sms_ready {
                        self.cms(302);
                        return None;
                    }
                    let Ok(len) = v.trim().parse::<usize>() else {
                        self.cms(304);
                        return None;
                    };
                    if self.s.profile.has("prompt-no-space") {
                        self.out.extend_from_slice(b"\r\n>\r\n");
                    } else {
                        self.out.extend_from_slice(b"\r\n> ");
                    }
                    return Some(len);
                } else if let Some(v) = arg("+CMGR=") {
                    let idx: u32 = v.trim().parse().unwrap_or(u32::MAX);
                    let sr = self.mem1 == "SR";
                    let store = if sr {
                        &mut self.sr_store
                    } else {
                        &mut self.store
                    };
                    match store.get_mut(&idx) {
                        Some(m) => {
                            let (stat, pdu) = (m.stat, m.pdu.clone());
                            if m.stat == 0 {
                                m.stat = 1;
                            }
                            let tpdu_len = pdu.len() - 1 - pdu[0] as usize;
                            self.line(&format!("+CMGR: {stat},,{tpdu_len}"));
                            self.line(&hex::encode_upper(&pdu));
                            self.ok()
                        }
                        None => self.cms(321),
                    }
                } else if let Some(v) = arg("+CMGD=") {
                    let mut it = v.split(',');
                    let idx: u32 = it
                        .next()
                        .and_then(|x| x.trim().parse().ok())
                        .unwrap_or(u32::MAX);
                    let flag: u8 = it.next().and_then(|x| x.trim().parse().ok()).unwrap_or(0);
                    let sr = self.mem1 == "SR";
                    let store = if sr {
                        &mut self.sr_store
                    } else {
                        &mut self.store
                    };
                    if flag == 4 {
                        store.clear();
                    } else {
                        store.remove(&idx);
                    }
                    self.ok()
                } else if let Some(v) = arg("+CMGL=") {
                    let want: u8 = v.trim().parse().unwrap_or(4);
                    let sr = self.mem1 == "SR";
                    let store = if sr {
                        &mut self.sr_store
                    } else {
                        &mut self.store
                    };
                    let mut lines = Vec::new();
                    for (idx, m) in store.iter_mut() {
                        if want == 4 || want == m.stat {
                            let tpdu_len = m.pdu.len() - 1 - m.pdu[0] as usize;
                            lines.push(format!("+CMGL: {idx},{},,{tpdu_len}", m.stat));
                            lines.push(hex::encode_upper(&m.pdu));
                            if m.stat == 0 {
                                m.stat = 1;
                            }
                        }
                    }
                    for l in lines {
                        self.line(&l);
                    }
                    self.ok()
                } else if ubody.starts_with("^CURC=0") {
                    self.curc_off = true;
                    self.ok()
                } else if self
                    .s
                    .profile
                    .at
                    .init
                    .iter()
                    .chain(&self.s.profile.at.post_sim_ready)
                    .any(|c| c.eq_ignore_ascii_case(cmd))
                {
                    self.ok() // a vendor init command of this profile
                } else {
                    self.unsupported()
                }
            }
        }
        None
    }

    /// The PDU after a prompt. Returns the status report to schedule (mr, recipient).
    fn pdu(&mut self, expected_len: usize, hex_text: &str) -> Option<(u8, String)> {
        let Ok(bytes) = hex::decode(hex_text.trim()) else {
            self.cms(304);
            return None;
        };
        let sms = match sms_pdu::decode(&bytes) {
            Ok(s) => s,
            Err(_) => {
                self.cms(304);
                return None;
            }
        };
        if sms.tpdu_length != expected_len {
            self.cms(304);
            return None;
        }
        let Tpdu::Submit {
            srr,
            destination,
            ud,
            ..
        } = sms.tpdu
        else {
            self.cms(304);
            return None;
        };
        let to = destination.number.clone();
        if let Some((_, code)) = self.fail.iter().find(|(p, _)| to.starts_with(p.as_str())) {
            let code = *code;
            self.cms(code);
            return None;
        }
        let mr = self.next_mr;
        self.next_mr = self.next_mr.wrapping_add(1);
        let part = ud
            .udh
            .as_ref()
            .and_then(|u| u.concat())
            .map(|c| (c.reference, c.total, c.seq));
        self.sent.push(SentSms {
            mr,
            to: to.clone(),
            text: ud.text.clone(),
            part,
            srr,
        });
        if self.hang == Hang::AfterPdu {
            self.hang = Hang::Now;
            return None;
        }
        self.line(&format!("+CMGS: {mr}"));
        self.ok();
        (srr && self.ds > 0).then_some((mr, to))
    }

    fn deliver_report(&mut self, mr: u8, to: &str) {
        let now = crate::model::now_ms();
        let Ok(pdu) = sms_pdu::encode_status_report(
            mr,
            to,
            self.s.report_status,
            Timestamp::from_unix_ms(now),
            Timestamp::from_unix_ms(now),
        ) else {
            return;
        };
        let direct = self.ds == 1
            || self.s.profile.sms.status_report == StatusReportMode::Cds && self.ds != 2;
        if direct {
            let l = format!("+CDS: {}", pdu.len() - 1);
            self.line(&l);
            self.line(&hex::encode_upper(&pdu));
        } else {
            let idx = State::free_index(&self.sr_store, self.first_index());
            self.sr_store.insert(idx, Stored { stat: 0, pdu });
            // `cdsi-wrong-storage`: the notice names the wrong memory.
            let mem = if self.s.profile.has("cdsi-wrong-storage") {
                "SM"
            } else {
                "SR"
            };
            self.line(&format!("+CDSI: \"{mem}\",{idx}"));
        }
    }

    fn receive(&mut self, pdu: Vec<u8>, notice: Notice) -> Option<u32> {
        if self.mt == 2 && notice == Notice::Configured {
            let l = format!("+CMT: ,{}", pdu.len() - 1);
            self.line(&l);
            self.line(&hex::encode_upper(&pdu));
            return None;
        }
        if self.store.len() >= self.s.capacity {
            return None;
        }
        let idx = State::free_index(&self.store, self.first_index());
        self.store.insert(idx, Stored { stat: 0, pdu });
        if notice == Notice::Configured && self.mt == 1 {
            let l = format!("+CMTI: \"{}\",{idx}", "SM");
            self.line(&l);
        }
        Some(idx)
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
            csca: "+447700900000".into(),
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

/// One step of a byte transcript.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `> AT+CSQ`: the driver must send this command line.
    Expect(String),
    /// `< +CSQ: 18,99`: the modem answers this line (framed `\r\n…\r\n`).
    Reply(String),
    /// `<< \r\n> `: raw bytes with `\r`, `\n`, `\xHH` escapes.
    Raw(Vec<u8>),
}

/// Parse a transcript file (`#` comments, blank lines ignored).
pub fn parse_transcript(text: &str) -> Result<Vec<Step>, String> {
    let mut steps = Vec::new();
    for (n, l) in text.lines().enumerate() {
        let t = l.trim_end_matches('\r');
        if t.trim().is_empty() || t.starts_with('#') {
            continue;
        }
        if let Some(r) = t.strip_prefix("<< ") {
            steps.push(Step::Raw(unescape(r)));
        } else if let Some(r) = t.strip_prefix("< ") {
            steps.push(Step::Reply(r.to_string()));
        } else if let Some(r) = t.strip_prefix("> ") {
            steps.push(Step::Expect(r.to_string()));
        } else {
            return Err(format!(
                "line {}: starts with neither '> ', '< ' nor '<< '",
                n + 1
            ));
        }
    }
    Ok(steps)
}

fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() {
            match b[i + 1] {
                b'r' => out.push(b'\r'),
                b'n' => out.push(b'\n'),
                b'x' if i + 3 < b.len() => match std::str::from_utf8(&b[i + 2..i + 4])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(v) => {
                        out.push(v);
                        i += 4;
                        continue;
                    }
                    None => out.push(b'x'),
                },
                c => out.push(c),
            }
            i += 2;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// Replay a transcript on a new pty: answers as recorded, checks every command the driver
/// sends. Resolves with the first mismatch, or Ok when the transcript is done.
pub async fn replay(
    steps: Vec<Step>,
    link: Option<&Path>,
) -> std::io::Result<(PathBuf, tokio::task::JoinHandle<Result<(), String>>)> {
    let (mut master, slave, path) = pty(link)?;
    let task = tokio::spawn(async move {
        let _slave = slave;
        let mut pending: Vec<u8> = Vec::new();
        let mut buf = [0u8; 1024];
        for (i, step) in steps.into_iter().enumerate() {
            match step {
                Step::Reply(l) => master
                    .write_all(format!("\r\n{l}\r\n").as_bytes())
                    .await
                    .map_err(|e| e.to_string())?,
                Step::Raw(b) => master.write_all(&b).await.map_err(|e| e.to_string())?,
                Step::Expect(want) => loop {
                    if let Some(p) = pending.iter().position(|&b| b == b'\r' || b == 0x1A) {
                        let got = String::from_utf8_lossy(&pending[..p]).trim().to_string();
                        pending.drain(..=p);
                        if got.is_empty() {
                            continue;
                        }
                        if got != want {
                            return Err(format!(
                                "step {}: expected {want:?}, the driver sent {got:?}",
                                i + 1
                            ));
                        }
                        break;
                    }
                    let n = tokio::time::timeout(Duration::from_secs(10), master.read(&mut buf))
                        .await
                        .map_err(|_| {
                            format!(
                                "step {}: the driver sent nothing (expected {want:?})",
                                i + 1
                            )
                        })?
                        .map_err(|e| e.to_string())?;
                    pending.extend_from_slice(&buf[..n]);
                },
            }
        }
        // Let the driver read the last answer before the line goes away.
        tokio::time::sleep(Duration::from_millis(300)).await;
        Ok(())
    });
    Ok((path, task))
}
