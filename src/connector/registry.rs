//! The connector registry: one arm per connector type, each naming its config section
//! (`connector/<name>/config.rs`), how it is checked, what it takes for itself, and how it is
//! built. Adding a connector is its folder plus one arm here.

use super::{modem, sandbox, smpp, Connector};
use crate::check::Check;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Something a connector (or the API) takes exclusively.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    /// A listening socket.
    Listen(SocketAddr),
    /// A serial device path or glob.
    Device(String),
    /// A file written.
    File(PathBuf),
}

impl Resource {
    /// Whether two claims collide (a wildcard address takes its port on every address).
    pub fn clashes(&self, other: &Resource) -> bool {
        match (self, other) {
            (Resource::Listen(a), Resource::Listen(b)) => {
                a.port() == b.port()
                    && a.port() != 0
                    && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
            }
            (a, b) => a == b,
        }
    }
}

/// `[connectors.NAME]`, by `type`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ConnectorConfig {
    Sandbox(sandbox::config::SandboxConfig),
    Smpp(smpp::config::SmppConfig),
    SmppServer(smpp::config::SmppServerConfig),
    Modem(modem::config::ModemBankConfig),
}

impl ConnectorConfig {
    /// Dispatch limits every connector has.
    pub fn limits(&self) -> Limits {
        match self {
            ConnectorConfig::Sandbox(s) => Limits {
                window: s.window,
                tps: s.tps,
                burst: s.burst,
            },
            // The dispatcher's window spans all sessions; the connector paces with its own
            // adaptive bucket (throttling halves it), so the dispatcher does not rate-limit.
            ConnectorConfig::Smpp(s) => Limits {
                window: s.window * s.binds as usize,
                tps: 0.0,
                burst: 0,
            },
            ConnectorConfig::SmppServer(s) => Limits {
                window: s.window,
                tps: 0.0,
                burst: 0,
            },
            // Each modem paces itself (rate_per_min, daily_cap); `tps` caps the whole bank.
            ConnectorConfig::Modem(s) => Limits {
                window: s.window,
                tps: s.tps,
                burst: 0,
            },
        }
    }
    /// Check this connector's section (`p` is its key path), the limits every connector has
    /// first.
    pub fn validate(&self, p: &str, c: &mut Check) {
        let l = self.limits();
        let window = match self {
            ConnectorConfig::Smpp(s) => s.window,
            _ => l.window,
        };
        c.range(&format!("{p}.window"), window, 1, 1024);
        c.range(&format!("{p}.tps"), l.tps, 0.0, 1_000_000.0);
        match self {
            ConnectorConfig::Sandbox(s) => s.validate(p, c),
            ConnectorConfig::Smpp(s) => s.validate(p, c),
            ConnectorConfig::SmppServer(s) => s.validate(p, c),
            ConnectorConfig::Modem(s) => s.validate(p, c),
        }
    }
    /// What this connector takes for itself (ports it listens on, serial devices, files it
    /// writes), with the key path that names each: two connectors may not share one.
    pub fn resources(&self, p: &str) -> Vec<(Resource, String)> {
        match self {
            ConnectorConfig::Sandbox(s) => s
                .journal
                .iter()
                .map(|f| (Resource::File(f.clone()), format!("{p}.journal")))
                .collect(),
            ConnectorConfig::Smpp(_) => Vec::new(),
            ConnectorConfig::SmppServer(s) => s
                .listen
                .parse()
                .map(|a| vec![(Resource::Listen(a), format!("{p}.listen"))])
                .unwrap_or_default(),
            ConnectorConfig::Modem(s) => s
                .devices
                .iter()
                .enumerate()
                .map(|(i, d)| (Resource::Device(d.clone()), format!("{p}.devices[{i}]")))
                .collect(),
        }
    }
    /// Build the connector (not started); `data_dir` is the outbox's directory, where a
    /// connector may keep state of its own (a modem bank's daily counts).
    pub fn build(&self, name: &str, data_dir: &Path) -> Arc<dyn Connector> {
        match self {
            ConnectorConfig::Sandbox(s) => Arc::new(sandbox::Sandbox::new(name, s.clone())),
            ConnectorConfig::Smpp(s) => Arc::new(smpp::client::SmppConnector::new(name, s.clone())),
            ConnectorConfig::SmppServer(s) => Arc::new(smpp::server::SmppServer::new(name, s.clone())),
            ConnectorConfig::Modem(s) => {
                Arc::new(modem::bank::ModemBank::new(name, s.clone(), Some(data_dir.to_path_buf())))
            }
        }
    }
    pub fn type_name(&self) -> &'static str {
        match self {
            ConnectorConfig::Sandbox(_) => "sandbox",
            ConnectorConfig::Smpp(_) => "smpp",
            ConnectorConfig::SmppServer(_) => "smpp-server",
            ConnectorConfig::Modem(_) => "modem",
        }
    }
}

/// In-flight window and rate limit of one connector.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    pub window: usize,
    /// Messages per second; 0 = unlimited.
    pub tps: f64,
    /// Token-bucket depth; 0 = one second's worth.
    pub burst: u32,
}

