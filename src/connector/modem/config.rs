//! `type = "modem"`: a bank of GSM/LTE modems; its settings and their checks.

use crate::check::Check;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// How a modem bank picks the modem for a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ModemStrategy {
    RoundRobin,
    /// The modem with the shortest queue.
    #[default]
    LeastLoaded,
    /// Destinations matching an `operators` prefix go to modems whose SIM (IMSI) is of that
    /// operator; the rest least-loaded.
    OperatorPrefix,
}

/// `type = "modem"`: a bank of GSM/LTE modems on serial ports.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModemBankConfig {
    /// Device paths or globs (`/dev/serial/by-id/usb-*-if02-port0`), rescanned for hot-plug.
    pub devices: Vec<String>,
    /// Line speed; 0 = the hwdb entry's `default_baud`.
    pub baud: u32,
    /// Environment variable holding the SIM PIN (never logged; tried once per SIM).
    pub pin_env: Option<String>,
    pub strategy: ModemStrategy,
    /// Messages per minute per modem; absent = the hwdb entry's `max_send_per_minute`; 0 = off.
    pub rate_per_min: Option<f64>,
    /// Messages per SIM per day (UTC); 0 = no cap. Counted across restarts.
    pub daily_cap: u32,
    /// Force this hwdb entry for every port instead of matching.
    pub profile: Option<String>,
    /// Extra hwdb entries (a folder of TOML files) that take precedence over the built-in ones.
    pub hwdb_dir: Option<PathBuf>,
    /// Messages in flight across the bank.
    pub window: usize,
    /// Messages per second across the bank (0 = no bank-wide limit).
    pub tps: f64,
    /// Ask for status reports (TP-SRR) and match them by TP-MR.
    pub dlr: bool,
    /// SMSC number to set when the SIM has none (`AT+CSCA`).
    pub smsc: Option<String>,
    /// `strategy = "operator_prefix"`: SIM operator (MCC+MNC, the IMSI's start) to destination
    /// prefixes, e.g. `{ "23410" = ["+4477", "+4478"] }`.
    pub operators: BTreeMap<String, Vec<String>>,
    /// Seconds between device rescans (hot-plug).
    pub rescan_s: u64,
    /// Seconds between `AT+CMGL` polls (absent = the hwdb entry's `poll_cmgl_s`).
    pub poll_s: Option<u64>,
    /// Seconds between health checks (signal, registration).
    pub health_s: u64,
    /// Overrides of the hwdb timeouts, in milliseconds.
    pub command_timeout_ms: Option<u64>,
    pub prompt_timeout_ms: Option<u64>,
    pub send_timeout_ms: Option<u64>,
    /// Seconds to wait for network registration before the modem is reset.
    pub registration_timeout_s: u64,
    /// Seconds a multipart MO may wait for its missing parts.
    pub mo_parts_timeout_s: u64,
}

impl Default for ModemBankConfig {
    fn default() -> Self {
        ModemBankConfig {
            devices: Vec::new(),
            baud: 0,
            pin_env: None,
            strategy: ModemStrategy::LeastLoaded,
            rate_per_min: None,
            daily_cap: 0,
            profile: None,
            hwdb_dir: None,
            window: 64,
            tps: 0.0,
            dlr: true,
            smsc: None,
            operators: BTreeMap::new(),
            rescan_s: 5,
            poll_s: None,
            health_s: 60,
            command_timeout_ms: None,
            prompt_timeout_ms: None,
            send_timeout_ms: None,
            registration_timeout_s: 180,
            mo_parts_timeout_s: 3600,
        }
    }
}

impl crate::connector::Settings for ModemBankConfig {
    fn type_name(&self) -> &'static str {
        "modem"
    }

    fn limits(&self) -> crate::connector::Limits {
        // Each modem paces itself (rate_per_min, daily_cap); `tps` caps the whole bank.
        crate::connector::Limits { window: self.window, tps: self.tps, burst: 0 }
    }

    fn resources(&self, p: &str) -> Vec<(crate::connector::Resource, String)> {
        self.devices
            .iter()
            .enumerate()
            .map(|(i, d)| (crate::connector::Resource::Device(d.clone()), format!("{p}.devices[{i}]")))
            .collect()
    }

    fn build(&self, name: &str, data_dir: &std::path::Path) -> std::sync::Arc<dyn crate::connector::Connector> {
        std::sync::Arc::new(super::bank::ModemBank::new(name, self.clone(), Some(data_dir.to_path_buf())))
    }

    fn validate(&self, p: &str, c: &mut Check) {
        if self.devices.is_empty() {
            c.bad(
                format!("{p}.devices"),
                "a modem bank needs at least one device path or glob",
            );
        }
        for (i, d) in self.devices.iter().enumerate() {
            if let Err(e) = glob::Pattern::new(d) {
                c.bad(
                    format!("{p}.devices[{i}]"),
                    format!("not a valid path or glob: {e}"),
                );
            }
        }
        c.env_var(&format!("{p}.pin_env"), &self.pin_env);
        if let Some(r) = self.rate_per_min {
            c.range(&format!("{p}.rate_per_min"), r, 0.0, 100_000.0);
        }
        let db = match &self.hwdb_dir {
            Some(dir) => match crate::connector::modem::hwdb::Hwdb::load_dir(dir) {
                Ok(db) => Some(db),
                Err(errs) => {
                    for e in errs {
                        c.bad(format!("{p}.hwdb_dir"), e.to_string());
                    }
                    None
                }
            },
            None => None,
        };
        if let Some(id) = &self.profile {
            let known = id == "generic"
                || crate::connector::modem::hwdb::Hwdb::embedded()
                    .get(id)
                    .is_some()
                || db.as_ref().is_some_and(|d| d.get(id).is_some());
            if !known {
                c.bad(
                    format!("{p}.profile"),
                    format!("no hwdb entry {id:?} (see `postern hwdb list`)"),
                );
            }
        }
        if self.strategy == ModemStrategy::OperatorPrefix
            && self.operators.is_empty()
        {
            c.bad(format!("{p}.operators"), "strategy \"operator_prefix\" needs operators = { \"MCCMNC\" = [\"+prefix\"] }");
        }
        for k in self.operators.keys() {
            if !(5..=6).contains(&k.len()) || !k.bytes().all(|b| b.is_ascii_digit()) {
                c.bad(
                    format!("{p}.operators.{k}"),
                    "keys are MCC+MNC: 5 or 6 digits",
                );
            }
        }
        c.range(&format!("{p}.rescan_s"), self.rescan_s, 1, 3600);
        c.range(&format!("{p}.health_s"), self.health_s, 1, 3600);
    }
}
