//! The simulated modem's answers: one AT command line (or a PDU after `>`) in, the replies
//! and URCs out, with the quirks of the hwdb entry it plays.

use super::*;

impl State {
    pub(super) fn line(&mut self, l: &str) {
        let e = eol(&self.s.profile);
        self.out.extend_from_slice(format!("\r\n{l}{e}").as_bytes());
    }
    pub(super) fn ok(&mut self) {
        if self.s.profile.has("blank-lines-before-final") {
            self.out.extend_from_slice(b"\r\n");
        }
        self.line("OK");
    }
    pub(super) fn error(&mut self) {
        self.line("ERROR");
    }
    pub(super) fn cms(&mut self, code: u16) {
        self.line(&format!("+CMS ERROR: {code}"));
    }
    pub(super) fn cme(&mut self, code: u16) {
        self.line(&format!("+CME ERROR: {code}"));
    }
    pub(super) fn unsupported(&mut self) {
        let tok = self.s.profile.at.extra_final_error.first().cloned();
        match tok {
            Some(t) => self.line(&t),
            None => self.error(),
        }
    }
    pub(super) fn first_index(&self) -> u32 {
        self.s.profile.sms.index_base as u32
    }
    pub(super) fn free_index(store: &BTreeMap<u32, Stored>, base: u32) -> u32 {
        (base..).find(|i| !store.contains_key(i)).unwrap_or(base)
    }
    pub(super) fn boot(&mut self) {
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

    pub(super) fn storage_report(&self) -> String {
        let used = self.store.len();
        let cap = self.s.capacity;
        let n = self.s.profile.sms.cpms_args.max(1) as usize;
        vec![format!("{used},{cap}"); n].join(",")
    }

    /// One command line (without the `\r`). Returns the PDU length when a prompt was given.
    pub(super) fn command(&mut self, raw: &str) -> Option<usize> {
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
    pub(super) fn pdu(&mut self, expected_len: usize, hex_text: &str) -> Option<(u8, String)> {
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

    pub(super) fn deliver_report(&mut self, mr: u8, to: &str) {
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

    pub(super) fn receive(&mut self, pdu: Vec<u8>, notice: Notice) -> Option<u32> {
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
