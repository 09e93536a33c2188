//! `type = "sandbox"`: its settings and their checks.

use crate::check::Check;
use serde::{Deserialize, Serialize};

/// `type = "sandbox"`: an in-memory carrier.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SandboxConfig {
    pub window: usize,
    pub tps: f64,
    pub burst: u32,
    /// Time to "submit" one message.
    pub submit_delay_ms: u64,
    /// Time from submit to delivery receipt.
    pub dlr_delay_ms: u64,
    /// Share (0..=1) of messages reported undelivered.
    pub undelivered_share: f64,
    /// Share (0..=1) of submits answered with a temporary failure.
    pub temp_fail_share: f64,
    /// Every message's first N attempts fail temporarily (deterministic retries for tests).
    pub temp_fail_first: u32,
    /// Destinations (prefixes) answered with a permanent failure.
    pub reject_prefixes: Vec<String>,
    /// Start with the link down (tests, maintenance).
    pub down: bool,
    /// Append one line per accepted submit (`<message id> <remote ids>`) to this file: what
    /// the "carrier" received, which survives a crash of the gateway.
    pub journal: Option<std::path::PathBuf>,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            window: 64,
            tps: 0.0,
            burst: 0,
            submit_delay_ms: 0,
            dlr_delay_ms: 1000,
            undelivered_share: 0.0,
            temp_fail_share: 0.0,
            temp_fail_first: 0,
            reject_prefixes: Vec::new(),
            down: false,
            journal: None,
        }
    }
}

impl crate::connector::Settings for SandboxConfig {
    fn type_name(&self) -> &'static str {
        "sandbox"
    }

    fn limits(&self) -> crate::connector::Limits {
        crate::connector::Limits { window: self.window, tps: self.tps, burst: self.burst }
    }

    fn resources(&self, p: &str) -> Vec<(crate::connector::Resource, String)> {
        self.journal
            .iter()
            .map(|f| (crate::connector::Resource::File(f.clone()), format!("{p}.journal")))
            .collect()
    }

    fn build(&self, name: &str, _data_dir: &std::path::Path) -> std::sync::Arc<dyn crate::connector::Connector> {
        std::sync::Arc::new(super::Sandbox::new(name, self.clone()))
    }

    fn validate(&self, p: &str, c: &mut Check) {
        c.share(&format!("{p}.undelivered_share"), self.undelivered_share);
        c.share(&format!("{p}.temp_fail_share"), self.temp_fail_share);
        c.range(&format!("{p}.dlr_delay_ms"), self.dlr_delay_ms, 0, 86_400_000);
        c.range(
            &format!("{p}.submit_delay_ms"),
            self.submit_delay_ms,
            0,
            600_000,
        );
    }
}
