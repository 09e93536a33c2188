//! `type = "smpp"` (a carrier link) and `type = "smpp-server"` (ESMEs bind here): their
//! settings and their checks.

use crate::check::Check;
use serde::{Deserialize, Serialize};
use crate::secret;

/// SMPP bind type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum BindKind {
    #[default]
    Transceiver,
    Transmitter,
    Receiver,
    /// A transmitter and a receiver session for each of `binds` (SMSCs that refuse transceivers).
    Pair,
}

/// How long messages go to the carrier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LongMessages {
    /// Concatenation UDH in each part's short_message (esm_class UDHI).
    #[default]
    Udh,
    /// SAR TLVs.
    Sar,
    /// The whole message in `message_payload`.
    Payload,
}

/// GSM 7-bit on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Gsm7Wire {
    /// One septet per octet (what most SMSCs expect with data_coding 0).
    #[default]
    Unpacked,
    Packed,
}

/// `type = "smpp"`: a carrier link.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmppConfig {
    /// `smpp://host:port` or `smpps://host:port` (TLS).
    pub url: String,
    pub system_id: String,
    pub password: Option<String>,
    pub password_env: Option<String>,
    pub system_type: String,
    pub bind: BindKind,
    /// Parallel sessions sharing one rate limit.
    pub binds: u32,
    /// Outstanding submit_sm per session.
    pub window: usize,
    /// Messages per second over all sessions (0 = as fast as the carrier takes them).
    pub tps: f64,
    pub enquire_link_s: u64,
    pub response_timeout_s: u64,
    pub long_messages: LongMessages,
    pub gsm7: Gsm7Wire,
    /// How the carrier writes ids in receipts versus submit_sm_resp.
    pub id_format: crate::connector::smpp::dlr::IdFormat,
    /// Ask for delivery receipts.
    pub dlr: bool,
    pub addr_ton: u8,
    pub addr_npi: u8,
    pub address_range: String,
    /// For `smpps://`: trust this CA (PEM) instead of the public roots (private SMSC certs).
    pub tls_ca: Option<std::path::PathBuf>,
    /// Per-carrier classification of command_status values, overriding the defaults:
    /// `errors = { "0x0B" = "permanent", "0x45" = "temporary", "0x58" = "throttled" }`.
    pub errors: std::collections::BTreeMap<String, ErrorClassName>,
}

/// How an SMPP error status is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ErrorClassName {
    Temporary,
    Permanent,
    Throttled,
}

impl Default for SmppConfig {
    fn default() -> Self {
        SmppConfig {
            url: String::new(),
            system_id: String::new(),
            password: None,
            password_env: None,
            system_type: String::new(),
            bind: BindKind::Transceiver,
            binds: 1,
            window: 64,
            tps: 0.0,
            enquire_link_s: 30,
            response_timeout_s: 10,
            long_messages: LongMessages::Udh,
            gsm7: Gsm7Wire::Unpacked,
            id_format: Default::default(),
            dlr: true,
            addr_ton: 0,
            addr_npi: 0,
            address_range: String::new(),
            tls_ca: None,
            errors: Default::default(),
        }
    }
}

/// `type = "smpp-server"`: downstream ESMEs bind here and submit messages into the hub.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmppServerConfig {
    pub listen: String,
    /// Serve TLS (SMPP over TLS) with this certificate chain and key (PEM files).
    pub tls: Option<TlsFiles>,
    /// Outstanding deliver_sm (receipts, MO) per session.
    pub window: usize,
    /// Seconds a new connection has to bind.
    pub bind_timeout_s: u64,
    pub accounts: Vec<SmppAccount>,
}

impl Default for SmppServerConfig {
    fn default() -> Self {
        SmppServerConfig {
            listen: "127.0.0.1:2775".into(),
            tls: None,
            window: 64,
            bind_timeout_s: 10,
            accounts: Vec::new(),
        }
    }
}

/// PEM files for a TLS listener.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
}

/// `[[connectors.NAME.accounts]]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmppAccount {
    pub system_id: String,
    /// Hashed with `postern hash-password`.
    pub password: String,
    /// submit_sm per second (0 = unlimited); beyond it ESME_RTHROTTLED.
    #[serde(default)]
    pub tps: f64,
    #[serde(default = "default_max_binds")]
    pub max_binds: u32,
    /// MO for these numbers (E.164 prefixes or exact short codes) goes to this account.
    #[serde(default)]
    pub numbers: Vec<String>,
}

fn default_max_binds() -> u32 {
    4
}

impl crate::connector::Settings for SmppConfig {
    fn type_name(&self) -> &'static str {
        "smpp"
    }

    fn limits(&self) -> crate::connector::Limits {
        // The dispatcher's window spans all sessions; the connector paces with its own
        // adaptive bucket (throttling halves it), so the dispatcher does not rate-limit.
        crate::connector::Limits { window: self.window * self.binds as usize, tps: 0.0, burst: 0 }
    }

    fn build(&self, name: &str, _data_dir: &std::path::Path) -> std::sync::Arc<dyn crate::connector::Connector> {
        std::sync::Arc::new(super::client::SmppConnector::new(name, self.clone()))
    }

    fn validate(&self, p: &str, c: &mut Check) {
        if crate::connector::smpp::client::parse_url(&self.url).is_err() {
            c.bad(
                format!("{p}.url"),
                format!(
                    "must be smpp://host:port or smpps://host:port, got {:?}",
                    self.url
                ),
            );
        }
        if self.system_id.is_empty() || self.system_id.len() > 15 {
            c.bad(format!("{p}.system_id"), "must be 1-15 characters");
        }
        match (&self.password, &self.password_env) {
            (Some(_), Some(_)) => c.bad(
                format!("{p}.password"),
                "set either password or password_env, not both",
            ),
            (None, None) => c.bad(format!("{p}.password"), "set password or password_env"),
            (Some(pw), None) if pw.len() > 8 => c.bad(
                format!("{p}.password"),
                "SMPP passwords are at most 8 characters",
            ),
            _ => {}
        }
        c.env_var(&format!("{p}.password_env"), &self.password_env);
        for k in self.errors.keys() {
            if crate::connector::smpp::client::parse_status(k).is_none() {
                c.bad(
                    format!("{p}.errors.{k}"),
                    "keys are command_status values: 0x0B or 11",
                );
            }
        }
        if let Some(ca) = &self.tls_ca {
            c.readable(&format!("{p}.tls_ca"), ca);
        }
        c.range(&format!("{p}.binds"), self.binds, 1, 64);
        c.range(
            &format!("{p}.response_timeout_s"),
            self.response_timeout_s,
            1,
            300,
        );
        c.range(&format!("{p}.enquire_link_s"), self.enquire_link_s, 1, 3600);
    }
}

impl crate::connector::Settings for SmppServerConfig {
    fn type_name(&self) -> &'static str {
        "smpp-server"
    }

    fn limits(&self) -> crate::connector::Limits {
        crate::connector::Limits { window: self.window, tps: 0.0, burst: 0 }
    }

    fn resources(&self, p: &str) -> Vec<(crate::connector::Resource, String)> {
        crate::connector::Resource::listening(&self.listen, format!("{p}.listen"))
    }

    fn build(&self, name: &str, _data_dir: &std::path::Path) -> std::sync::Arc<dyn crate::connector::Connector> {
        std::sync::Arc::new(super::server::SmppServer::new(name, self.clone()))
    }

    fn validate(&self, p: &str, c: &mut Check) {
        c.socket_addr(&format!("{p}.listen"), &self.listen);
        if let Some(t) = &self.tls {
            for (k, f) in [("cert", &t.cert), ("key", &t.key)] {
                c.readable(&format!("{p}.tls.{k}"), f);
            }
        }
        if self.accounts.is_empty() {
            c.bad(
                format!("{p}.accounts"),
                "an SMPP server needs at least one [[accounts]]",
            );
        }
        for (i, a) in self.accounts.iter().enumerate() {
            if a.system_id.is_empty() || a.system_id.len() > 15 {
                c.bad(
                    format!("{p}.accounts[{i}].system_id"),
                    "must be 1-15 characters",
                );
            }
            if let Err(e) = secret::parse_hash(&a.password) {
                c.bad(format!("{p}.accounts[{i}].password"), e.to_string());
            }
            c.range(&format!("{p}.accounts[{i}].max_binds"), a.max_binds, 1, 64);
        }
    }
}
