//! `type = "http"`: another gateway's HTTP API Postern sends SMS through (a preset for Twilio,
//! Kannel or another Postern, or a generic request); its settings and their checks.

use crate::check::Check;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Which API the remote speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// Twilio's Messages API (form POST, basic auth, `StatusCallback`).
    Twilio,
    /// Kannel's `sendsms` (GET, `dlr-url` back to Postern).
    Kannel,
    /// Another Postern's `/v1/messages` (batched), receipts by its signed callbacks.
    Postern,
    /// A request described here: method, URL, headers, body template, answer mapping.
    #[default]
    Generic,
    /// Mastodon's `POST /api/v1/statuses` (a bearer token): posts and direct mentions.
    Mastodon,
    /// X's API v2: `POST /2/tweets` and direct messages (a bearer token).
    X,
}

impl Preset {
    /// The API's address when `url` is not given.
    pub fn default_url(self) -> Option<&'static str> {
        match self {
            Preset::Twilio => Some("https://api.twilio.com"),
            Preset::X => Some("https://api.x.com"),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Preset::Twilio => "twilio",
            Preset::Kannel => "kannel",
            Preset::Postern => "postern",
            Preset::Generic => "generic",
            Preset::Mastodon => "mastodon",
            Preset::X => "x",
        }
    }
}

/// `[connectors.NAME]` with `type = "http"`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    pub preset: Preset,
    /// The remote's base URL (`https://api.twilio.com`, `http://kannel:13013`,
    /// `http://postern-b:8080`); for `generic`, the whole request URL, a template.
    pub url: String,
    /// Twilio's account SID; Kannel's sendsms user.
    pub username: Option<String>,
    /// Environment variable holding Twilio's auth token or Kannel's sendsms password.
    pub password_env: Option<String>,
    /// Environment variable holding a bearer token (another Postern's API key, `generic`).
    pub token_env: Option<String>,
    /// The URL the remote reaches this Postern's API at (`http://10.0.0.5:8080`): receipts
    /// and inbound messages come to `{callback_base}/v1/providers/{connector}/…`. Without it
    /// no receipts are asked for.
    pub callback_base: Option<String>,
    /// Environment variable holding the secret that authenticates what comes back: the token
    /// in Kannel's and `generic`'s receipt URLs, the remote Postern's `api.callback_secret`
    /// (its `X-Postern-Signature`). Twilio's requests are checked with the auth token.
    pub callback_secret_env: Option<String>,
    /// Sender for messages that give none.
    pub from: Option<String>,
    /// Requests in flight (for `postern`, messages; they go in batches).
    pub window: usize,
    /// Messages per second (0 = as fast as the remote takes them).
    pub tps: f64,
    pub burst: u32,
    /// Seconds to wait for the remote's answer.
    pub timeout_s: u64,
    /// `postern`: most messages in one `/v1/messages/batch` request.
    pub batch: usize,
    /// `generic`: the request method.
    pub method: String,
    /// `generic`: extra request headers (values are templates).
    pub headers: BTreeMap<String, String>,
    /// `generic`: the request body, a template over `id`, `to`, `from`, `text`,
    /// `callback_url` (filters `urlencode` and `tojson`); none sends no body.
    pub body: Option<String>,
    /// `generic`: the body's content type.
    pub content_type: String,
    /// `generic`: the answers that mean "taken" (empty: any 2xx).
    pub success_status: Vec<u16>,
    /// `generic`: a JSON pointer to the remote id in the answer (`/data/id`); without it the
    /// message's own id is the remote id (put it in the request for the receipt to name it).
    pub remote_id: Option<String>,
    /// `generic` receipts: the parameter (query or form) or JSON pointer (`/status`) naming
    /// the remote id, the status and the error code.
    pub receipt_id: String,
    pub receipt_status: String,
    pub receipt_error: Option<String>,
    /// `generic` receipts: the remote's status words and the state each means (`delivered`,
    /// `undelivered`, `expired`, `failed`); other words are progress and change nothing.
    pub receipt_states: BTreeMap<String, String>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            preset: Preset::Generic,
            url: String::new(),
            username: None,
            password_env: None,
            token_env: None,
            callback_base: None,
            callback_secret_env: None,
            from: None,
            window: 64,
            tps: 0.0,
            burst: 0,
            timeout_s: 10,
            batch: 100,
            method: "POST".into(),
            headers: BTreeMap::new(),
            body: None,
            content_type: "application/json".into(),
            success_status: Vec::new(),
            remote_id: None,
            receipt_id: "id".into(),
            receipt_status: "status".into(),
            receipt_error: None,
            receipt_states: BTreeMap::new(),
        }
    }
}

/// The states a receipt may report.
pub fn receipt_state(word: &str) -> Option<crate::model::State> {
    use crate::model::State;
    match word {
        "delivered" => Some(State::Delivered),
        "undelivered" => Some(State::Undelivered),
        "expired" => Some(State::Expired),
        "failed" => Some(State::Failed),
        _ => None,
    }
}

impl crate::connector::Settings for HttpConfig {
    fn type_name(&self) -> &'static str {
        "http"
    }

    fn limits(&self) -> crate::connector::Limits {
        crate::connector::Limits { window: self.window, tps: self.tps, burst: self.burst }
    }

    fn build(&self, name: &str, _data_dir: &std::path::Path) -> std::sync::Arc<dyn crate::connector::Connector> {
        std::sync::Arc::new(super::HttpLink::new(name, self.clone()))
    }

    fn validate(&self, p: &str, c: &mut Check) {
        let url = if self.url.is_empty() { self.preset.default_url().unwrap_or("") } else { &self.url };
        if url.trim().is_empty() {
            c.bad(format!("{p}.url"), "the remote's URL is required");
        } else if !(url.starts_with("http://") || url.starts_with("https://")) {
            c.bad(format!("{p}.url"), "must start with http:// or https://");
        } else if self.preset != Preset::Generic && url.parse::<hyper::Uri>().is_err() {
            c.bad(format!("{p}.url"), "not a URL");
        }
        if let Some(b) = &self.callback_base {
            if !(b.starts_with("http://") || b.starts_with("https://")) || b.parse::<hyper::Uri>().is_err() {
                c.bad(format!("{p}.callback_base"), "must be an http:// or https:// URL");
            }
        }
        c.env_var(&format!("{p}.password_env"), &self.password_env);
        c.env_var(&format!("{p}.token_env"), &self.token_env);
        c.env_var(&format!("{p}.callback_secret_env"), &self.callback_secret_env);
        match self.preset {
            Preset::Twilio | Preset::Kannel => {
                if self.username.is_none() {
                    c.bad(format!("{p}.username"), format!("the {} preset needs a username", self.preset.as_str()));
                }
                if self.password_env.is_none() {
                    c.bad(format!("{p}.password_env"), format!("the {} preset needs password_env", self.preset.as_str()));
                }
            }
            Preset::Postern | Preset::Mastodon | Preset::X => {
                if self.token_env.is_none() {
                    c.bad(format!("{p}.token_env"), format!("the {} preset needs a bearer token (token_env)", self.preset.as_str()));
                }
            }
            Preset::Generic => {
                if hyper::Method::from_bytes(self.method.as_bytes()).is_err() {
                    c.bad(format!("{p}.method"), "not an HTTP method");
                }
                let env = minijinja::Environment::new();
                for (what, t) in std::iter::once(("url", &self.url))
                    .chain(self.body.iter().map(|b| ("body", b)))
                    .chain(self.headers.values().map(|h| ("headers", h)))
                {
                    if let Err(e) = env.template_from_str(t) {
                        c.bad(format!("{p}.{what}"), format!("not a template: {e}"));
                    }
                }
                for (word, state) in &self.receipt_states {
                    if receipt_state(state).is_none() {
                        c.bad(format!("{p}.receipt_states.{word}"), "one of delivered, undelivered, expired, failed");
                    }
                }
            }
        }
        if self.callback_base.is_some() && self.preset != Preset::Twilio && self.callback_secret_env.is_none() {
            c.bad(format!("{p}.callback_secret_env"), "receipts need a secret to be told from forgeries");
        }
        for s in &self.success_status {
            c.range(&format!("{p}.success_status"), *s, 100, 599);
        }
        c.range(&format!("{p}.timeout_s"), self.timeout_s, 1, 600);
        c.range(&format!("{p}.batch"), self.batch, 1, 1000);
    }
}
