//! The connector registry: one arm per connector type, each naming its config section
//! (`connector/<name>/config.rs`), how it is checked, what it takes for itself, and how it is
//! built. Adding a connector is its folder plus one arm here.

use super::{modem, provider, sandbox, smpp, smtp, smtp_server, xmpp, Connector};
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
    /// The listening socket `addr` names (nothing when it does not parse: validation says so).
    pub fn listening(addr: &str, path: String) -> Vec<(Resource, String)> {
        addr.parse().map(|a| vec![(Resource::Listen(a), path)]).unwrap_or_default()
    }
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

/// What every connector's config section answers (implemented in `connector/<name>/config.rs`).
pub trait Settings {
    /// The `type = "…"` that selects it.
    fn type_name(&self) -> &'static str;
    /// The window and rate the dispatcher applies to the link.
    fn limits(&self) -> Limits;
    /// Check the section (`p` is its key path).
    fn validate(&self, p: &str, c: &mut Check);
    /// What it takes for itself (ports it listens on, serial devices, files it writes), with
    /// the key path that names each: two connectors may not share one.
    fn resources(&self, _p: &str) -> Vec<(Resource, String)> {
        Vec::new()
    }
    /// Build the connector (not started); `data_dir` is the outbox's directory, where a
    /// connector may keep state of its own (a modem bank's daily counts).
    fn build(&self, name: &str, data_dir: &Path) -> Arc<dyn Connector>;
}

/// `[connectors.NAME]`, by `type`: one variant per connector, and one line in `settings`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ConnectorConfig {
    Sandbox(sandbox::config::SandboxConfig),
    Smpp(smpp::config::SmppConfig),
    SmppServer(smpp::config::SmppServerConfig),
    Modem(modem::config::ModemBankConfig),
    Smtp(smtp::config::SmtpConfig),
    SmtpServer(smtp_server::config::SmtpServerConfig),
    Http(provider::config::HttpConfig),
    Xmpp(xmpp::config::XmppConfig),
}

impl ConnectorConfig {
    /// The section as its connector's [`Settings`].
    pub fn settings(&self) -> &dyn Settings {
        match self {
            ConnectorConfig::Sandbox(s) => s,
            ConnectorConfig::Smpp(s) => s,
            ConnectorConfig::SmppServer(s) => s,
            ConnectorConfig::Modem(s) => s,
            ConnectorConfig::Smtp(s) => s,
            ConnectorConfig::SmtpServer(s) => s,
            ConnectorConfig::Http(s) => s,
            ConnectorConfig::Xmpp(s) => s,
        }
    }
    pub fn limits(&self) -> Limits {
        self.settings().limits()
    }
    pub fn type_name(&self) -> &'static str {
        self.settings().type_name()
    }
    pub fn resources(&self, p: &str) -> Vec<(Resource, String)> {
        self.settings().resources(p)
    }
    pub fn build(&self, name: &str, data_dir: &Path) -> Arc<dyn Connector> {
        self.settings().build(name, data_dir)
    }
    /// Check this connector's section: the limits every connector has, then its own checks.
    pub fn validate(&self, p: &str, c: &mut Check) {
        let l = self.limits();
        let window = match self {
            // The dispatcher's window spans all sessions; each session has `window`.
            ConnectorConfig::Smpp(s) => s.window,
            _ => l.window,
        };
        c.range(&format!("{p}.window"), window, 1, 1024);
        c.range(&format!("{p}.tps"), l.tps, 0.0, 1_000_000.0);
        self.settings().validate(p, c);
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

