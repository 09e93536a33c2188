//! The consistency checks of one hwdb entry (`postern hwdb check`): a quirk and the settings
//! it implies must agree.

use super::*;

impl Profile {
    pub fn has(&self, quirk: &str) -> bool {
        self.quirks.iter().any(|q| q == quirk)
    }

    /// The built-in profile for modems no entry matches: the defaults of FORMAT.md.
    pub fn generic() -> Profile {
        Profile {
            schema_version: 1,
            id: "generic".into(),
            vendor: "any".into(),
            model: "generic 3GPP TS 27.005/27.007 modem".into(),
            aliases: Vec::new(),
            chipset_family: "unknown".into(),
            chipset_evidence: String::new(),
            radio: vec![Radio::Gsm],
            form_factor: FormFactor::UsbStick,
            support: Support::Untested,
            confidence: Confidence::Documented,
            quirks: Vec::new(),
            usb: Vec::new(),
            identify: Identify::default(),
            serial: Serial::default(),
            at: At::default(),
            sms: Sms::default(),
            timing: Timing::default(),
            urc: Urc::default(),
            cms_vendor: Default::default(),
            sources: Vec::new(),
        }
    }

    /// Every URC prefix this profile surfaces or swallows (for the parser's table).
    pub fn urc_prefixes(&self) -> Vec<String> {
        let u = &self.urc;
        u.known
            .iter()
            .chain(&u.ignore)
            .chain(&u.ready)
            .chain(&u.sms_ready)
            .chain(&u.power_down)
            .cloned()
            .collect()
    }

    /// The consistency rules: a quirk and the settings it implies must agree, identifiers are
    /// well formed. Returns every problem found, not just the first.
    pub fn check(&self, file_stem: &str) -> Vec<String> {
        let mut p = Vec::new();
        let mut bad = |s: String| p.push(s);
        if self.schema_version != 1 {
            bad(format!("schema_version {} is not 1", self.schema_version));
        }
        if self.id != file_stem {
            bad(format!(
                "id {:?} differs from the file name {:?}",
                self.id, file_stem
            ));
        }
        if self.id.is_empty()
            || !self
                .id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            bad(format!("id {:?} must be [a-z0-9-]+", self.id));
        }
        let mut seen = BTreeSet::new();
        for q in &self.quirks {
            if !QUIRKS.contains(&q.as_str()) {
                bad(format!("unknown quirk {q:?}"));
            }
            if !seen.insert(q) {
                bad(format!("quirk {q:?} listed twice"));
            }
        }
        let hex4 = |s: &str| {
            s.len() == 4
                && s.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        let mut ids = BTreeSet::new();
        for u in &self.usb {
            if !hex4(&u.vid) {
                bad(format!(
                    "usb vid {:?} is not 4 lower-case hex digits",
                    u.vid
                ));
            }
            if u.pid != "*" && !hex4(&u.pid) {
                bad(format!(
                    "usb pid {:?} is not 4 lower-case hex digits or \"*\"",
                    u.pid
                ));
            }
            if !ids.insert((u.vid.clone(), u.pid.clone())) {
                bad(format!("usb id {}:{} listed twice", u.vid, u.pid));
            }
            if u.evidence.trim().is_empty() {
                bad(format!("usb id {}:{} has no evidence", u.vid, u.pid));
            }
        }
        if self.support != Support::Unsupported
            && self.identify.cgmi.is_empty()
            && self.identify.cgmm.is_empty()
            && self.usb.is_empty()
        {
            bad("neither [[usb]] nor [identify] can match this entry".into());
        }
        if self.sources.is_empty() {
            bad("no [[sources]]".into());
        }
        // Quirks and the settings they imply.
        let implies = |flag: &str, ok: bool, what: &str, out: &mut Vec<String>| {
            if self.has(flag) && !ok {
                out.push(format!("quirk {flag:?} needs {what}"));
            }
        };
        let mut q = Vec::new();
        implies(
            "sms-index-zero",
            self.sms.index_base == 0,
            "sms.index_base = 0",
            &mut q,
        );
        if self.sms.index_base == 0 && !self.has("sms-index-zero") {
            q.push("sms.index_base = 0 without the \"sms-index-zero\" quirk".into());
        }
        implies(
            "cdsi-wrong-storage",
            self.sms.status_report != StatusReportMode::Cdsi,
            "sms.status_report other than \"cdsi\"",
            &mut q,
        );
        implies(
            "ds1-unsupported",
            self.sms.status_report != StatusReportMode::Cds,
            "sms.status_report other than \"cds\" (ds=1 is rejected)",
            &mut q,
        );
        implies(
            "nonstandard-error-token",
            !self.at.extra_final_error.is_empty(),
            "at.extra_final_error",
            &mut q,
        );
        implies(
            "autobaud",
            self.serial.autobaud,
            "serial.autobaud = true",
            &mut q,
        );
        if self.serial.autobaud && !self.has("autobaud") {
            q.push("serial.autobaud = true without the \"autobaud\" quirk".into());
        }
        implies(
            "hw-flow-control",
            self.serial.flow_control == FlowControl::Rtscts,
            "serial.flow_control = \"rtscts\"",
            &mut q,
        );
        implies(
            "open-settle",
            self.serial.open_settle_ms > 0,
            "serial.open_settle_ms > 0",
            &mut q,
        );
        implies(
            "power-down-urc",
            !self.urc.power_down.is_empty(),
            "urc.power_down",
            &mut q,
        );
        implies(
            "sms-ready-urc",
            !self.urc.sms_ready.is_empty(),
            "urc.sms_ready",
            &mut q,
        );
        implies(
            "cpms-three-args-required",
            self.sms.cpms_args == 3,
            "sms.cpms_args = 3",
            &mut q,
        );
        implies(
            "cpms-sr-unsupported",
            !self.sms.cpms.iter().any(|m| m == "SR"),
            "no \"SR\" in sms.cpms",
            &mut q,
        );
        implies(
            "cpms-mt-unsupported",
            !self.sms.cpms.iter().any(|m| m == "MT"),
            "no \"MT\" in sms.cpms",
            &mut q,
        );
        implies(
            "no-sms-read",
            self.support != Support::Supported,
            "support other than \"supported\"",
            &mut q,
        );
        let all_cmds = || self.at.init.iter().chain(&self.at.post_sim_ready);
        implies(
            "csmp-clears-smsc",
            !all_cmds().any(|c| c.to_ascii_uppercase().starts_with("AT+CSMP")),
            "no AT+CSMP in at.init/post_sim_ready",
            &mut q,
        );
        implies(
            "getportmode-crash",
            !all_cmds().any(|c| c.to_ascii_uppercase().contains("^GETPORTMODE")),
            "no AT^GETPORTMODE in at.init/post_sim_ready",
            &mut q,
        );
        implies(
            "urc-flood",
            !self.urc.ignore.is_empty(),
            "urc.ignore (keep the flood out even if the disable command fails)",
            &mut q,
        );
        p.extend(q);
        let mut bad = |s: String| p.push(s);
        if !(1..=3).contains(&self.sms.cpms_args) {
            bad(format!(
                "sms.cpms_args {} is not 1, 2 or 3",
                self.sms.cpms_args
            ));
        } else if self.sms.cpms.len() != self.sms.cpms_args as usize {
            bad(format!(
                "sms.cpms has {} memories but sms.cpms_args is {}",
                self.sms.cpms.len(),
                self.sms.cpms_args
            ));
        }
        if self.sms.index_base > 1 {
            bad(format!(
                "sms.index_base {} is not 0 or 1",
                self.sms.index_base
            ));
        }
        for c in std::iter::once(&self.sms.cnmi).chain(&self.sms.cnmi_fallbacks) {
            let parts: Vec<&str> = c.split(',').collect();
            if !(2..=5).contains(&parts.len())
                || parts
                    .iter()
                    .any(|x| x.parse::<u8>().map_or(true, |n| n > 3))
            {
                bad(format!("CNMI value {c:?} is not 2 to 5 numbers 0..3"));
            }
        }
        if !matches!(self.at.cmee, 1 | 2) {
            bad(format!("at.cmee {} is not 1 or 2", self.at.cmee));
        }
        for c in self.at.init.iter().chain(&self.at.post_sim_ready) {
            if !c.to_ascii_uppercase().starts_with("AT") {
                bad(format!("command {c:?} does not start with AT"));
            }
        }
        let t = &self.timing;
        for (name, v) in [
            ("default_timeout_s", t.default_timeout_s),
            ("cpin_timeout_s", t.cpin_timeout_s),
            ("cmgs_prompt_timeout_s", t.cmgs_prompt_timeout_s),
            ("cmgs_result_timeout_s", t.cmgs_result_timeout_s),
            ("cmgl_timeout_s", t.cmgl_timeout_s),
        ] {
            if v == 0 {
                bad(format!("timing.{name} is 0"));
            }
        }
        if t.max_send_per_minute == 0 {
            bad("timing.max_send_per_minute is 0".into());
        }
        for code in self.cms_vendor.keys() {
            match code.parse::<u16>() {
                Ok(n) if n >= 512 => {}
                _ => bad(format!(
                    "cms_vendor key {code:?} is not a manufacturer code (>= 512)"
                )),
            }
        }
        for s in &self.sources {
            if !s.url.starts_with("https://") && !s.url.starts_with("http://") {
                bad(format!("source {:?} has no URL", s.title));
            }
        }
        p
    }
}
