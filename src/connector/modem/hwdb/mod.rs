//! The hardware database: one TOML file per modem model under `hwdb/` (embedded in the binary at
//! build time), its schema (unknown keys and quirk flags are load errors), the consistency checks
//! `postern hwdb check` runs (a quirk and the settings it implies must agree), and matching a
//! port to an entry: by USB vid:pid, then by the `AT+CGMI`/`AT+CGMM` answers, else `generic`.

mod checks;
mod matching;

pub use matching::usb_id_of;

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
    ($($f:literal),* $(,)?) => { &[$(($f, include_str!(concat!("../../../../hwdb/", $f, ".toml")))),*] };
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
