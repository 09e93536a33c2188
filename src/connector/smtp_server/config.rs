//! `type = "smtp-server"`: a receiving SMTP listener (mail to `<number>@<domain>` becomes an
//! SMS); its settings and their checks.

use crate::check::Check;
use serde::{Deserialize, Serialize};

/// What of a mail becomes the SMS text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SmsBody {
    Subject,
    #[default]
    Text,
    SubjectAndText,
}

/// `[[connectors.NAME.accounts]]`: who may send after AUTH.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpAccount {
    pub username: String,
    /// Hashed (`postern hash-password`).
    pub password: String,
}

/// `[connectors.NAME]` with `type = "smtp-server"`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpServerConfig {
    pub listen: String,
    /// Our mail domain: `+447400123123@domain` (or without `+`) is that number.
    pub domain: String,
    /// Offer STARTTLS with this certificate chain and key (PEM files).
    pub tls: Option<crate::connector::smpp::config::TlsFiles>,
    /// Largest mail accepted, in bytes.
    pub max_bytes: usize,
    /// Accounts that may send (AUTH PLAIN or LOGIN, only over STARTTLS); when set, mail is
    /// taken only after AUTH. Passwords hashed with `postern hash-password`.
    pub accounts: Vec<SmtpAccount>,
    /// Senders allowed (`user@host` exact, or `@host` for a whole domain); empty = anyone.
    pub allow_senders: Vec<String>,
    /// Mailboxes: mail to these addresses is stored as an inbound email (with its attachments
    /// as blobs), listed at `GET /v1/messages?direction=inbound`.
    pub mailboxes: Vec<String>,
    /// Addresses that take bounces (delivery status notifications) for the email Postern sent:
    /// a DSN naming one of our Message-IDs marks that message `undelivered` (or `delivered`).
    pub bounces: Vec<String>,
    /// What becomes the SMS text.
    pub body: SmsBody,
    /// The SMS sender (an alphanumeric id or a number) for mail whose sender `senders` does not
    /// name; none = the route's default.
    pub sms_sender: Option<String>,
    /// The SMS sender for mail from a given address (`"duty@ops.example" = "OpsDesk"`) or
    /// domain (`"@ops.example" = "Ops"`); the exact address wins.
    pub senders: std::collections::BTreeMap<String, String>,
    /// Longest SMS made from a mail, in segments (longer text is cut).
    pub max_segments: usize,
    /// Sessions at once.
    pub max_sessions: usize,
}

impl Default for SmtpServerConfig {
    fn default() -> Self {
        SmtpServerConfig {
            listen: "127.0.0.1:2525".into(),
            domain: String::new(),
            tls: None,
            max_bytes: 10 << 20,
            allow_senders: Vec::new(),
            accounts: Vec::new(),
            bounces: Vec::new(),
            mailboxes: Vec::new(),
            body: SmsBody::Text,
            sms_sender: None,
            senders: Default::default(),
            max_segments: 3,
            max_sessions: 64,
        }
    }
}

/// A sender pattern: `user@host` exactly, or `@host` for a whole domain.
pub fn valid_pattern(pattern: &str) -> bool {
    match pattern.strip_prefix('@') {
        Some(d) => !d.is_empty() && !d.contains('@'),
        None => crate::model::email::address(pattern).is_ok(),
    }
}

/// Whether `sender` matches `pattern` (see [`valid_pattern`]); case does not matter.
pub fn pattern_matches(pattern: &str, sender: &str) -> bool {
    match pattern.strip_prefix('@') {
        Some(d) => sender.rsplit_once('@').is_some_and(|(_, sd)| sd.eq_ignore_ascii_case(d)),
        None => pattern.eq_ignore_ascii_case(sender),
    }
}

impl crate::connector::Settings for SmtpServerConfig {
    fn type_name(&self) -> &'static str {
        "smtp-server"
    }

    fn limits(&self) -> crate::connector::Limits {
        crate::connector::Limits { window: self.max_sessions, tps: 0.0, burst: 0 }
    }

    fn resources(&self, p: &str) -> Vec<(crate::connector::Resource, String)> {
        crate::connector::Resource::listening(&self.listen, format!("{p}.listen"))
    }

    fn build(&self, name: &str, _data_dir: &std::path::Path) -> std::sync::Arc<dyn crate::connector::Connector> {
        std::sync::Arc::new(super::SmtpServer::new(name, self.clone()))
    }

    fn validate(&self, p: &str, c: &mut Check) {
        c.socket_addr(&format!("{p}.listen"), &self.listen);
        if self.domain.is_empty() || !self.domain.contains('.') || self.domain.contains(['@', ' ']) {
            c.bad(format!("{p}.domain"), "our mail domain, e.g. sms.example.org");
        }
        if let Some(t) = &self.tls {
            c.readable(&format!("{p}.tls.cert"), &t.cert);
            c.readable(&format!("{p}.tls.key"), &t.key);
        }
        if !self.accounts.is_empty() && self.tls.is_none() {
            c.bad(format!("{p}.accounts"), "AUTH is offered only over STARTTLS: set tls too");
        }
        for (i, a) in self.accounts.iter().enumerate() {
            if a.username.is_empty() {
                c.bad(format!("{p}.accounts[{i}].username"), "must not be empty");
            }
            if let Err(e) = crate::secret::parse_hash(&a.password) {
                c.bad(format!("{p}.accounts[{i}].password"), e.to_string());
            }
        }
        for (i, s) in self.allow_senders.iter().enumerate() {
            if !valid_pattern(s) {
                c.bad(format!("{p}.allow_senders[{i}]"), "user@host, or @host for a whole domain");
            }
        }
        for (key, list) in [("bounces", &self.bounces), ("mailboxes", &self.mailboxes)] {
            for (i, b) in list.iter().enumerate() {
                if let Err(e) = crate::model::email::address(b) {
                    c.bad(format!("{p}.{key}[{i}]"), e);
                }
            }
        }
        for (k, v) in &self.senders {
            if !valid_pattern(k) {
                c.bad(format!("{p}.senders.{k}"), "keys are user@host, or @host for a whole domain");
            }
            if let Err(e) = crate::model::address::validate_sender(v) {
                c.bad(format!("{p}.senders.{k}"), e.to_string());
            }
        }
        if let Some(s) = &self.sms_sender {
            if let Err(e) = crate::model::address::validate_sender(s) {
                c.bad(format!("{p}.sms_sender"), e.to_string());
            }
        }
        c.range(&format!("{p}.max_bytes"), self.max_bytes, 1024, 100 << 20);
        c.range(&format!("{p}.max_segments"), self.max_segments, 1, 255);
        c.range(&format!("{p}.max_sessions"), self.max_sessions, 1, 1024);
    }
}
