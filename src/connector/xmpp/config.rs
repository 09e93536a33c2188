//! `type = "xmpp"`: an XMPP (Jabber) account Postern sends and receives chat messages as; its
//! settings and their checks.

use crate::check::Check;
use serde::{Deserialize, Serialize};

/// `[connectors.NAME]` with `type = "xmpp"`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct XmppConfig {
    /// The account: `alerts@example.org` (a resource, `/postern`, may follow).
    pub jid: String,
    /// Environment variable holding the account's password (never in the file).
    pub password_env: Option<String>,
    /// `host:port` to connect to instead of the domain's `_xmpp-client._tcp` SRV records.
    pub server: Option<String>,
    /// Messages in flight (waiting for the server's XEP-0198 ack).
    pub window: usize,
    /// Messages per second (0 = as fast as the server takes them).
    pub tps: f64,
    pub burst: u32,
    /// Ask for XEP-0184 receipts (`delivered` when the recipient's client sends one).
    pub receipts: bool,
    /// Seconds to wait for the server to take a message before it counts as unconfirmed.
    pub timeout_s: u64,
}

impl Default for XmppConfig {
    fn default() -> Self {
        XmppConfig {
            jid: String::new(),
            password_env: None,
            server: None,
            window: 32,
            tps: 0.0,
            burst: 0,
            receipts: true,
            timeout_s: 30,
        }
    }
}

impl crate::connector::Settings for XmppConfig {
    fn type_name(&self) -> &'static str {
        "xmpp"
    }

    fn limits(&self) -> crate::connector::Limits {
        crate::connector::Limits { window: self.window, tps: self.tps, burst: self.burst }
    }

    fn build(&self, name: &str, _data_dir: &std::path::Path) -> std::sync::Arc<dyn crate::connector::Connector> {
        std::sync::Arc::new(super::XmppConnector::new(name, self.clone()))
    }

    fn validate(&self, p: &str, c: &mut Check) {
        match self.jid.parse::<jid::Jid>() {
            Ok(j) if j.node().is_some() => {}
            Ok(_) => c.bad(format!("{p}.jid"), "the account's JID needs a user part (user@domain)"),
            Err(e) => c.bad(format!("{p}.jid"), format!("not a JID: {e}")),
        }
        if self.password_env.is_none() {
            c.bad(format!("{p}.password_env"), "the account's password is needed (password_env)");
        }
        c.env_var(&format!("{p}.password_env"), &self.password_env);
        if let Some(s) = &self.server {
            let ok = s.rsplit_once(':').is_some_and(|(h, port)| !h.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0));
            if !ok {
                c.bad(format!("{p}.server"), "host:port");
            }
        }
        c.range(&format!("{p}.timeout_s"), self.timeout_s, 1, 600);
    }
}
