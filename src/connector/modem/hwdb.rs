//! The hardware database: one TOML file per modem model under `hwdb/` (embedded in the binary at
//! build time), its schema (unknown keys and quirk flags are load errors), the consistency checks
//! `postern hwdb check` runs (a quirk and the settings it implies must agree), and matching a
//! port to an entry: by USB vid:pid, then by the `AT+CGMI`/`AT+CGMM` answers, else `generic`.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::Path;
use thiserror::Error;

/// A problem with one hwdb file.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("{file}: {what}")]
pub struct HwdbError {
    pub file: String,
    pub what: String,
}

/// The closed quirk vocabulary (hwdb/FORMAT.md).
pub const QUIRKS: &[&str] = &[
    "usb-modeswitch-required",
    "network-only-variant",
    "urc-flood",
    "urc-single-port",
    "urc-port-configurable",
    "crcrlf-endings",
    "blank-lines-before-final",
    "nonstandard-error-token",
    "cpin-no-ok",
    "unsolicited-cpin",
    "unsolicited-csq",
    "prompt-no-space",
    "sms-index-zero",
    "cdsi-wrong-storage",
    "ds1-unsupported",
    "cpms-three-args-required",
    "cpms-sr-unsupported",
    "cpms-mt-unsupported",
    "cmgd-test-unreliable",
    "sim-busy-after-pin",
    "sms-ready-urc",
    "busy-after-cfun",
    "reset-after-timeout",
    "no-ucs2",
    "slow-enumeration",
    "getportmode-crash",
    "autobaud",
    "hw-flow-control",
    "needs-wakeup-at",
    "open-settle",
    "echo-unreliable",
    "power-down-urc",
    "no-sms-read",
    "cfun-query-nonstandard",
    "csmp-clears-smsc",
    "sim-reset-by-cfun",
    "sr-read-fixup",
];

/// One hwdb entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub schema_version: u32,
    pub id: String,
    pub vendor: String,
    pub model: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    pub chipset_family: String,
    pub chipset_evidence: String,
    pub radio: Vec<Radio>,
    pub form_factor: FormFactor,
    pub support: Support,
    pub confidence: Confidence,
    #[serde(default)]
    pub quirks: Vec<String>,
    #[serde(default)]
    pub usb: Vec<UsbId>,
    #[serde(default)]
    pub identify: Identify,
    #[serde(default)]
    pub serial: Serial,
    #[serde(default)]
    pub at: At,
    #[serde(default)]
    pub sms: Sms,
    #[serde(default)]
    pub timing: Timing,
    #[serde(default)]
    pub urc: Urc,
    #[serde(default)]
    pub cms_vendor: std::collections::BTreeMap<String, CmsVendor>,
    #[serde(default)]
    pub sources: Vec<Source>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Radio {
    Gsm,
    Umts,
    Lte,
    LteM,
    NbIot,
    Nr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FormFactor {
    UsbStick,
    EmbeddedModule,
    MiniPcie,
    M2,
    Rs232Terminal,
    UartModule,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Support {
    Supported,
    Limited,
    Unsupported,
    Untested,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Confidence {
    Documented,
    FieldTested,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UsbMode {
    Modem,
    Storage,
    NetworkOnly,
}

/// `[[usb]]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsbId {
    pub vid: String,
    pub pid: String,
    pub mode: UsbMode,
    pub at_interface: Option<u8>,
    pub at_interface_secondary: Option<u8>,
    #[serde(default)]
    pub note: String,
    pub evidence: String,
}

/// `[identify]`
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identify {
    #[serde(default)]
    pub cgmi: Vec<String>,
    #[serde(default)]
    pub cgmm: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum FlowControl {
    #[default]
    None,
    Rtscts,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum PortSelection {
    #[default]
    UsbInterface,
    HuaweiPcui,
    Single,
}

/// `[serial]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Serial {
    pub default_baud: u32,
    pub autobaud: bool,
    pub flow_control: FlowControl,
    pub per_byte_delay_us: u32,
    pub open_settle_ms: u32,
    pub boot_timeout_s: u32,
    pub port_selection: PortSelection,
}

impl Default for Serial {
    fn default() -> Self {
        Serial {
            default_baud: 115200,
            autobaud: false,
            flow_control: FlowControl::None,
            per_byte_delay_us: 0,
            open_settle_ms: 0,
            boot_timeout_s: 30,
            port_selection: PortSelection::UsbInterface,
        }
    }
}

/// `[at]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct At {
    pub cmee: u8,
    pub init: Vec<String>,
    pub post_sim_ready: Vec<String>,
    pub keepalive: String,
    pub keepalive_interval_s: u32,
    pub extra_final_error: Vec<String>,
}

impl Default for At {
    fn default() -> Self {
        At {
            cmee: 1,
            init: vec!["ATE0".into(), "ATV1".into(), "AT+CMEE=1".into()],
            post_sim_ready: Vec::new(),
            keepalive: "AT+CSQ".into(),
            keepalive_interval_s: 60,
            extra_final_error: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum StatusReportMode {
    /// `ds=1`: `+CDS: <len>` and the PDU.
    Cds,
    /// `ds=2`: `+CDSI: "<mem>",<idx>`.
    #[default]
    Cdsi,
    None,
}

/// `[sms]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Sms {
    pub pdu: bool,
    pub text: bool,
    pub cpms: Vec<String>,
    pub cpms_args: u8,
    pub cnmi: String,
    pub cnmi_fallbacks: Vec<String>,
    pub status_report: StatusReportMode,
    pub index_base: u8,
    pub poll_cmgl_s: u32,
}

impl Default for Sms {
    fn default() -> Self {
        Sms {
            pdu: true,
            text: true,
            cpms: vec!["SM".into(), "SM".into(), "SM".into()],
            cpms_args: 3,
            cnmi: "2,1,0,2,0".into(),
            cnmi_fallbacks: vec!["2,1,0,0,0".into()],
            status_report: StatusReportMode::Cdsi,
            index_base: 1,
            poll_cmgl_s: 60,
        }
    }
}

/// `[timing]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Timing {
    pub inter_command_delay_ms: u32,
    pub max_send_per_minute: u32,
    pub default_timeout_s: u32,
    pub cpin_timeout_s: u32,
    pub cfun_timeout_s: u32,
    pub cmgs_prompt_timeout_s: u32,
    pub cmgs_result_timeout_s: u32,
    pub cmgl_timeout_s: u32,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            inter_command_delay_ms: 0,
            max_send_per_minute: 6,
            default_timeout_s: 5,
            cpin_timeout_s: 15,
            cfun_timeout_s: 40,
            cmgs_prompt_timeout_s: 10,
            cmgs_result_timeout_s: 120,
            cmgl_timeout_s: 60,
        }
    }
}

/// `[urc]`
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Urc {
    pub known: Vec<String>,
    pub ignore: Vec<String>,
    pub ready: Vec<String>,
    pub sms_ready: Vec<String>,
    pub power_down: Vec<String>,
    pub two_line: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CmsClass {
    Retry,
    Later,
    Config,
    Storage,
    Fatal,
}

/// `[cms_vendor]` values.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CmsVendor {
    pub text: String,
    pub class: CmsClass,
}

/// `[[sources]]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    pub title: String,
    pub url: String,
    pub supports: String,
}

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

/// Collapse whitespace and lower-case, for identification matching.
fn norm(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// How a port was matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MatchedBy {
    Forced,
    Usb,
    UsbAndAt,
    Vendor,
    At,
    Generic,
}

/// The loaded database.
#[derive(Debug, Clone, Default)]
pub struct Hwdb {
    pub entries: Vec<Profile>,
}

macro_rules! embedded {
    ($($f:literal),* $(,)?) => { &[$(($f, include_str!(concat!("../../../hwdb/", $f, ".toml")))),*] };
}

/// The files shipped in `hwdb/`, in sort order (a test checks the list matches the folder).
pub const EMBEDDED: &[(&str, &str)] = embedded!(
    "cinterion-pls62",
    "cinterion-pls8",
    "huawei-e173",
    "huawei-e1752",
    "huawei-e3131",
    "huawei-e3372",
    "huawei-k3765",
    "huawei-mu609",
    "quectel-bg96",
    "quectel-ec25",
    "siemens-tc35-mc35i",
    "sierra-mc7455",
    "simcom-sim7080",
    "simcom-sim7600",
    "simcom-sim800",
    "telit-le910c1",
    "telit-uc864",
    "ublox-sara-u2",
    "ublox-toby-l2",
    "wavecom-fastrack",
    "zte-k3565z",
    "zte-mf112",
    "zte-mf190",
    "zte-mf626",
);

/// Parse one file: schema errors (unknown keys, wrong types) and consistency problems.
pub fn parse(stem: &str, text: &str) -> Result<Profile, Vec<HwdbError>> {
    let e = |what: String| HwdbError {
        file: format!("{stem}.toml"),
        what,
    };
    let de =
        toml::Deserializer::parse(text).map_err(|x| vec![e(x.to_string().trim().to_string())])?;
    let profile: Profile = serde_path_to_error::deserialize(de)
        .map_err(|x| vec![e(format!("{}: {}", x.path(), x.inner().to_string().trim()))])?;
    let problems = profile.check(stem);
    if problems.is_empty() {
        Ok(profile)
    } else {
        Err(problems.into_iter().map(e).collect())
    }
}

impl Hwdb {
    /// The entries built into the binary. They are checked by the test suite, so a failure
    /// here is a build defect; bad entries are left out and logged.
    pub fn embedded() -> Hwdb {
        // Parsed once per process (configuration checks and every bank ask for it).
        static DB: std::sync::OnceLock<Hwdb> = std::sync::OnceLock::new();
        DB.get_or_init(|| {
            let mut entries = Vec::new();
            for (stem, text) in EMBEDDED {
                match parse(stem, text) {
                    Ok(p) => entries.push(p),
                    Err(errs) => errs.iter().for_each(|e| tracing::error!(error = %e, "bad embedded hwdb entry")),
                }
            }
            Hwdb { entries }
        })
        .clone()
    }

    /// Load every `*.toml` in a folder (sorted); all problems of all files are returned.
    pub fn load_dir(dir: &Path) -> Result<Hwdb, Vec<HwdbError>> {
        let rd = std::fs::read_dir(dir).map_err(|e| {
            vec![HwdbError {
                file: dir.display().to_string(),
                what: e.to_string(),
            }]
        })?;
        let mut files: Vec<_> = rd
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        let mut entries = Vec::new();
        let mut errors = Vec::new();
        for f in files {
            let stem = f
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("")
                .to_string();
            match std::fs::read_to_string(&f) {
                Ok(text) => match parse(&stem, &text) {
                    Ok(p) => entries.push(p),
                    Err(e) => errors.extend(e),
                },
                Err(e) => errors.push(HwdbError {
                    file: f.display().to_string(),
                    what: e.to_string(),
                }),
            }
        }
        if errors.is_empty() {
            Ok(Hwdb { entries })
        } else {
            Err(errors)
        }
    }

    pub fn get(&self, id: &str) -> Option<&Profile> {
        self.entries.iter().find(|p| p.id == id)
    }

    fn at_matches(p: &Profile, cgmi: Option<&str>, cgmm: Option<&str>) -> bool {
        let hit = |pats: &[String], v: Option<&str>| {
            v.is_some_and(|v| pats.iter().any(|x| norm(v).contains(&norm(x))))
        };
        let i = &p.identify;
        match (i.cgmi.is_empty(), i.cgmm.is_empty()) {
            (true, true) => false,
            (false, true) => hit(&i.cgmi, cgmi),
            (true, false) => hit(&i.cgmm, cgmm),
            (false, false) => {
                hit(&i.cgmi, cgmi) && hit(&i.cgmm, cgmm) || cgmi.is_none() && hit(&i.cgmm, cgmm)
            }
        }
    }

    /// Pick the entry for a port: USB id (narrowed by the AT answers when several share it),
    /// then the vendor fallback, then the AT answers alone, else the generic profile.
    pub fn find(
        &self,
        usb: Option<(&str, &str)>,
        cgmi: Option<&str>,
        cgmm: Option<&str>,
    ) -> (Profile, MatchedBy) {
        if let Some((vid, pid)) = usb {
            let (vid, pid) = (vid.to_ascii_lowercase(), pid.to_ascii_lowercase());
            let exact: Vec<&Profile> = self
                .entries
                .iter()
                .filter(|p| p.usb.iter().any(|u| u.vid == vid && u.pid == pid))
                .collect();
            if let Some(p) = exact.iter().find(|p| Self::at_matches(p, cgmi, cgmm)) {
                return ((*p).clone(), MatchedBy::UsbAndAt);
            }
            if exact.len() == 1 || (!exact.is_empty() && cgmm.is_none()) {
                return (exact[0].clone(), MatchedBy::Usb);
            }
            if exact.is_empty() {
                if let Some(p) = self.entries.iter().find(|p| {
                    p.usb.iter().any(|u| u.vid == vid && u.pid == "*")
                        && (cgmm.is_none() || Self::at_matches(p, cgmi, cgmm))
                }) {
                    return (p.clone(), MatchedBy::Vendor);
                }
            }
        }
        if let Some(p) = self
            .entries
            .iter()
            .find(|p| Self::at_matches(p, cgmi, cgmm))
        {
            return (p.clone(), MatchedBy::At);
        }
        (Profile::generic(), MatchedBy::Generic)
    }
}

/// USB vendor and product id of a tty, read from sysfs (`/sys/class/tty/<name>/device/..`),
/// following symlinks such as `/dev/serial/by-id/...`. None for ptys and plain UARTs.
pub fn usb_id_of(dev: &Path) -> Option<(String, String)> {
    let real = std::fs::canonicalize(dev).ok()?;
    let name = real.file_name()?.to_str()?;
    let mut dir = std::fs::canonicalize(format!("/sys/class/tty/{name}/device")).ok()?;
    for _ in 0..4 {
        let vid = std::fs::read_to_string(dir.join("idVendor"));
        let pid = std::fs::read_to_string(dir.join("idProduct"));
        if let (Ok(v), Ok(p)) = (vid, pid) {
            return Some((v.trim().to_string(), p.trim().to_string()));
        }
        dir = dir.parent()?.to_path_buf();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_list_is_the_folder() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("hwdb");
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                e.file_name()
                    .to_str()
                    .and_then(|s| s.strip_suffix(".toml"))
                    .map(String::from)
            })
            .collect();
        files.sort();
        let embedded: Vec<String> = EMBEDDED.iter().map(|(s, _)| s.to_string()).collect();
        assert_eq!(files, embedded);
    }

    #[test]
    fn every_shipped_entry_loads_and_passes_the_checks() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("hwdb");
        let db = Hwdb::load_dir(&dir).unwrap_or_else(|e| panic!("{e:#?}"));
        assert!(db.entries.len() >= 20, "{} entries", db.entries.len());
        assert_eq!(Hwdb::embedded().entries.len(), db.entries.len());
    }

    #[test]
    fn unknown_keys_and_quirks_are_errors() {
        let good = EMBEDDED
            .iter()
            .find(|(s, _)| *s == "quectel-ec25")
            .unwrap()
            .1;
        assert!(parse("quectel-ec25", good).is_ok());
        let e = parse("quectel-ec25", &good.replace("[sms]", "[sms]\nbogus = 1")).unwrap_err();
        assert!(e[0].what.contains("bogus"), "{e:?}");
        let e = parse(
            "quectel-ec25",
            &good.replacen("quirks = [", "quirks = [\"flying\", ", 1),
        )
        .unwrap_err();
        assert!(
            e.iter()
                .any(|x| x.what.contains("unknown quirk \"flying\"")),
            "{e:?}"
        );
        let e = parse("other-name", good).unwrap_err();
        assert!(
            e.iter()
                .any(|x| x.what.contains("differs from the file name")),
            "{e:?}"
        );
    }

    #[test]
    fn matching_order() {
        let db = Hwdb::embedded();
        // 12d1:1506 is shared: the AT answer decides.
        let (p, by) = db.find(Some(("12d1", "1506")), Some("huawei"), Some("E3372"));
        assert_eq!((p.id.as_str(), by), ("huawei-e3372", MatchedBy::UsbAndAt));
        let (p, by) = db.find(Some(("12d1", "1506")), Some("huawei"), Some("E3131"));
        assert_eq!((p.id.as_str(), by), ("huawei-e3131", MatchedBy::UsbAndAt));
        let (p, by) = db.find(Some(("2c7c", "0125")), None, None);
        assert_eq!((p.id.as_str(), by), ("quectel-ec25", MatchedBy::Usb));
        let (p, by) = db.find(
            None,
            Some(" WAVECOM MODEM"),
            Some(" MULTIBAND  900E  1800 "),
        );
        assert_eq!((p.id.as_str(), by), ("wavecom-fastrack", MatchedBy::At));
        let (p, by) = db.find(None, Some("Acme"), Some("Rocket"));
        assert_eq!((p.id.as_str(), by), ("generic", MatchedBy::Generic));
        assert!(Profile::generic()
            .check("generic")
            .iter()
            .all(|p| p.contains("sources") || p.contains("can match")));
    }
}
