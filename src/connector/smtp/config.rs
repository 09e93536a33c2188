//! `type = "smtp"`: a mail relay Postern sends email through; its settings and their checks.

use crate::check::Check;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// How the connection to the relay is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS, which the relay must offer (port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Implicit,
    /// No TLS: only for a relay on the same host or a trusted network.
    None,
}

/// `[connectors.NAME]` with `type = "smtp"`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpConfig {
    pub host: String,
    /// 0 = the usual port for `tls`: 587, 465 or 25.
    pub port: u16,
    pub tls: SmtpTls,
    /// Trust this CA (PEM) instead of the public roots (a private relay).
    pub tls_ca: Option<PathBuf>,
    pub username: Option<String>,
    /// Environment variable holding the password (never in the file).
    pub password_env: Option<String>,
    /// Sender for messages that give none.
    pub from: Option<String>,
    /// Name given in EHLO (default: this host's name).
    pub hello_name: Option<String>,
    /// Connections kept open to the relay.
    pub pool: u32,
    /// Messages in flight.
    pub window: usize,
    /// Messages per second (0 = as fast as the relay takes them).
    pub tps: f64,
    /// Seconds to wait for each answer of the relay.
    pub timeout_s: u64,
    /// Most recipients (to, cc, bcc) in one SMTP transaction; a mail for more is sent in as
    /// many transactions as it takes (the relay's limit: Postfix's `smtpd_recipient_limit`).
    pub max_recipients: usize,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig {
            host: String::new(),
            port: 0,
            tls: SmtpTls::Starttls,
            tls_ca: None,
            username: None,
            password_env: None,
            from: None,
            hello_name: None,
            pool: 4,
            window: 16,
            tps: 0.0,
            timeout_s: 30,
            max_recipients: 100,
        }
    }
}

impl SmtpConfig {
    /// The port in use (`port = 0` resolved by `tls`).
    pub fn effective_port(&self) -> u16 {
        match (self.port, self.tls) {
            (0, SmtpTls::Starttls) => 587,
            (0, SmtpTls::Implicit) => 465,
            (0, SmtpTls::None) => 25,
            (p, _) => p,
        }
    }

}

impl crate::connector::Settings for SmtpConfig {
    fn type_name(&self) -> &'static str {
        "smtp"
    }

    fn limits(&self) -> crate::connector::Limits {
        crate::connector::Limits { window: self.window, tps: self.tps, burst: 0 }
    }

    fn build(&self, name: &str, _data_dir: &std::path::Path) -> std::sync::Arc<dyn crate::connector::Connector> {
        std::sync::Arc::new(super::SmtpConnector::new(name, self.clone()))
    }

    fn validate(&self, p: &str, c: &mut Check) {
        if self.host.trim().is_empty() {
            c.bad(format!("{p}.host"), "the relay's host name or address is required");
        }
        if let Some(f) = &self.from {
            if let Err(e) = crate::model::email::address(f) {
                c.bad(format!("{p}.from"), e);
            }
        }
        if let Some(ca) = &self.tls_ca {
            c.readable(&format!("{p}.tls_ca"), ca);
        }
        match (&self.username, &self.password_env) {
            (Some(_), None) => c.bad(format!("{p}.password_env"), "a username needs password_env"),
            (None, Some(_)) => c.bad(format!("{p}.username"), "password_env needs a username"),
            _ => {}
        }
        c.env_var(&format!("{p}.password_env"), &self.password_env);
        c.range(&format!("{p}.pool"), self.pool, 1, 64);
        c.range(&format!("{p}.timeout_s"), self.timeout_s, 1, 600);
        c.range(&format!("{p}.max_recipients"), self.max_recipients, 1, 10_000);
    }
}
