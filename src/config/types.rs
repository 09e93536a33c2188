//! Configuration structs, their defaults, and section-by-section parsing (so one bad section does
//! not hide the problems of the others).

use super::Problem;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use crate::connector::ConnectorConfig;
use crate::model::{Channel, OneOrMany};
use crate::model::request::SmsConfig;

/// The whole configuration.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    pub outbox: OutboxConfig,
    pub api: ApiConfig,
    pub sms: SmsConfig,
    pub connectors: BTreeMap<String, ConnectorConfig>,
    pub routes: Vec<RouteConfig>,
    /// `[[templates]]`: read-only templates (more at `/v1/templates`).
    pub templates: Vec<crate::model::template::TemplateSpec>,
    /// `[[webhooks]]`: read-only webhook endpoints (more at `/v1/webhooks`); each a table of
    /// `url`, `events`, `connectors`, `channels`, `tags`, `max_in_flight`, `secret`.
    pub webhooks: Vec<toml::Table>,
}

/// `durability`: when an accepted message counts as safe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// Group commit with a synced WAL before any ack (the default).
    Fsync,
    /// WAL written but not synced: survives a process crash, not a power loss.
    Os,
}

/// `[outbox]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboxConfig {
    /// Data directory (RocksDB lives in `<path>/outbox`).
    pub path: PathBuf,
    /// Independent schedulers/writers; 0 = one per two CPU cores (measured best on 2 cores:
    /// BENCHMARKS.md). Changing it keeps every queued message (re-keyed at start-up).
    pub shards: u32,
    pub durability: Durability,
    /// Most messages one group commit may hold.
    pub group_commit_max: usize,
    /// Messages held in memory per shard, ready for dispatch.
    pub ready_queue: usize,
    /// Messages waiting for dispatch above which the API answers 429.
    pub max_depth: u64,
    /// Seconds an uploaded blob no message refers to is kept before it is removed.
    pub blob_grace_s: u64,
    /// Seconds within which an inbound message (or MO part) with the same sender, recipient
    /// and content on the same connector is taken for the peer sending it again after a lost
    /// ack, and stored once; 0 turns this off. Messages the peer names by an id of its own
    /// (a Message-ID, a Twilio MessageSid, a modem's SMSC timestamp) are matched by that id
    /// for a day instead.
    pub inbound_dedup_s: u64,
    pub retry: RetryConfig,
}

impl OutboxConfig {
    /// The shard count in use (`shards = 0` resolved).
    pub fn effective_shards(&self) -> u32 {
        if self.shards > 0 {
            return self.shards;
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
        (cores / 2).clamp(1, 16)
    }
}

impl Default for OutboxConfig {
    fn default() -> Self {
        OutboxConfig {
            path: PathBuf::from("./var"),
            shards: 0,
            durability: Durability::Fsync,
            group_commit_max: 2048,
            ready_queue: 20_000,
            max_depth: 2_000_000,
            blob_grace_s: 24 * 3600,
            inbound_dedup_s: 60,
            retry: RetryConfig::default(),
        }
    }
}

/// `[outbox.retry]`: exponential backoff with jitter for temporary failures.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    pub max_attempts: u32,
    pub initial_delay_ms: u64,
    pub max_delay_s: u64,
    pub multiplier: f64,
    /// Fraction of the delay drawn at random (0.2 = ±20%).
    pub jitter: f64,
    /// Validity of a message that does not set one.
    pub default_validity_s: u64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_attempts: 10,
            initial_delay_ms: 1000,
            max_delay_s: 3600,
            multiplier: 2.0,
            jitter: 0.2,
            default_validity_s: 48 * 3600,
        }
    }
}

/// `[api]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    pub listen: String,
    /// Hashed API keys (`postern hash-password`). Empty: loopback only, no auth.
    pub keys: Vec<String>,
    pub max_batch: usize,
    pub max_body_bytes: usize,
    /// Accounts for the Kannel-compatible `/cgi-bin/sendsms`.
    pub sendsms_users: Vec<SendsmsUser>,
    /// HMAC-SHA256 key for status callbacks (`X-Postern-Signature`).
    pub callback_secret: Option<String>,
    pub callback_secret_env: Option<String>,
    /// Seconds a status callback is retried before it is dropped.
    pub callback_max_age_s: u64,
    /// Where `POST /v1/backups` writes backups (default: `<outbox.path>/backups`).
    pub backup_dir: Option<PathBuf>,
    /// HTTPS on the API listener (files read again on SIGHUP).
    pub tls: Option<ApiTlsFiles>,
    /// Serve plain HTTP on a non-loopback address (behind a TLS-terminating proxy).
    pub allow_plaintext: bool,
    /// Requests a second each key may make (0: unlimited); past it, 429 with Retry-After.
    pub key_rps: f64,
    /// Requests a key may make at once above its rate (0: one second's worth).
    pub key_burst: u32,
    /// How SMS destination numbers are checked: `plan` (libphonenumber's metadata: valid for
    /// the country's numbering plan) or `e164` (only `+` and 8–15 digits, for ranges the
    /// metadata does not know yet).
    pub sms_number_check: NumberCheckMode,
    /// With `plan`: the number types accepted (`mobile`, `fixed_line_or_mobile`, …); empty: any.
    pub sms_number_types: Vec<crate::model::phone::NumberType>,
    /// The language of templates that name none, and the last before "any" in a message's
    /// language fallback chain.
    pub default_language: String,
    /// Webhooks may go to loopback and private addresses (off: refused, against SSRF).
    pub webhook_allow_private: bool,
    /// Seconds before each webhook try after the first (Standard Webhooks' schedule); the
    /// delivery is dead-lettered after the last.
    pub webhook_schedule_s: Vec<u64>,
    /// Seconds sent webhook deliveries are kept for replays (0: not kept, no replays: about
    /// 40 % more events a second, BENCHMARKS.md).
    pub webhook_keep_sent_s: u64,
}

/// `api.sms_number_check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum NumberCheckMode {
    #[default]
    Plan,
    E164,
}

/// `[api.tls]`: PEM files of the API's certificate chain and key, and optionally the CA whose
/// client certificates are required.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiTlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Clients must present a certificate signed by this CA (PEM).
    pub client_ca: Option<PathBuf>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: "127.0.0.1:8080".into(),
            keys: Vec::new(),
            max_batch: 1000,
            max_body_bytes: 4 << 20,
            sendsms_users: Vec::new(),
            callback_secret: None,
            callback_secret_env: None,
            callback_max_age_s: 24 * 3600,
            backup_dir: None,
            tls: None,
            allow_plaintext: false,
            key_rps: 0.0,
            key_burst: 0,
            sms_number_check: NumberCheckMode::Plan,
            sms_number_types: Vec::new(),
            default_language: "en".into(),
            webhook_allow_private: false,
            webhook_schedule_s: vec![0, 5, 300, 1800, 7200, 18000, 36000, 36000],
            webhook_keep_sent_s: 24 * 3600,
        }
    }
}

/// `[[api.sendsms_users]]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendsmsUser {
    pub username: String,
    /// Hashed (`postern hash-password`).
    pub password: String,
}

/// How a route picks among its connectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// The first connector that is up and has room.
    #[default]
    Failover,
    RoundRobin,
    /// By `weights`, among those up.
    Weighted,
    /// The one with the fewest messages in flight.
    LeastLoaded,
}

/// `match = { ... }` of a route. Every given condition must hold.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RouteMatch {
    /// Destination prefixes (E.164 with `+`).
    pub prefix: Option<OneOrMany>,
    pub channel: Option<Channel>,
    /// Exact senders.
    pub sender: Option<OneOrMany>,
    /// Tags the message must carry (all of them).
    pub tags: Vec<String>,
    /// `outbound` (the default: the route sends through `to`) or `inbound` (the route matches
    /// received messages and sends each on as `forward` says).
    pub direction: Option<crate::model::Direction>,
    /// Inbound: the first word of the text, any of these (case-insensitive).
    pub keyword: Option<OneOrMany>,
    /// Inbound: sender prefixes.
    pub sender_prefix: Option<OneOrMany>,
    /// Inbound: the connectors it came in on.
    pub connector: Option<OneOrMany>,
}

/// `forward = { ... }` of an inbound route: the message to send for each one received.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardConfig {
    /// Addresses (numbers or email); each gets its own message.
    pub to: OneOrMany,
    /// The sender of the forwarded message (an email address, or an SMS sender id).
    #[serde(default)]
    pub from: Option<String>,
    /// A template (params: `from`, `to`, `text`, `subject`, `connector`, `id`, `received_at`,
    /// `keyword`); none: the text as it came (subject "Message from <sender>").
    #[serde(default)]
    pub template: Option<String>,
    #[serde(default)]
    pub language: Option<String>,
    /// Email: replies go to `<sender-number>@reply_domain` (an `smtp-server` connector's
    /// domain), which sends them back to the phone as SMS.
    #[serde(default)]
    pub reply_domain: Option<String>,
}

/// `[[routes]]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    #[serde(rename = "match", default)]
    pub matches: Option<RouteMatch>,
    /// Outbound: the connectors to send through.
    #[serde(default)]
    pub to: Vec<String>,
    /// Inbound: what to send on.
    #[serde(default)]
    pub forward: Option<ForwardConfig>,
    #[serde(default)]
    pub strategy: Strategy,
    #[serde(default)]
    pub weights: Vec<u32>,
}

impl RouteConfig {
    /// Matches received messages (and forwards them) rather than routing outbound ones.
    pub fn is_inbound(&self) -> bool {
        self.matches.as_ref().and_then(|m| m.direction) == Some(crate::model::Direction::Inbound)
    }
}

fn section<T: DeserializeOwned + Default>(
    table: &mut toml::Table,
    key: &str,
    problems: &mut Vec<Problem>,
) -> Option<T> {
    match table.remove(key) {
        None => Some(T::default()),
        Some(v) => parse_value(v, key, problems),
    }
}

/// Deserialize one value, recording a problem with the full key path on failure.
pub(super) fn parse_value<T: DeserializeOwned>(
    v: toml::Value,
    path: &str,
    problems: &mut Vec<Problem>,
) -> Option<T> {
    match serde_path_to_error::deserialize::<_, T>(v) {
        Ok(t) => Some(t),
        Err(e) => {
            let inner = e.path().to_string();
            let path = if inner == "." || inner.is_empty() {
                path.to_string()
            } else {
                format!("{path}.{inner}")
            };
            problems.push(Problem {
                path,
                message: e.into_inner().to_string(),
            });
            None
        }
    }
}

/// An array of tables (`[[routes]]`), each item parsed on its own; `None` if any is wrong.
fn array<T: serde::de::DeserializeOwned>(table: &mut toml::Table, key: &str, problems: &mut Vec<Problem>) -> Option<Vec<T>> {
    match table.remove(key) {
        None => Some(Vec::new()),
        Some(toml::Value::Array(a)) => {
            let n = a.len();
            let items: Vec<T> = a
                .into_iter()
                .enumerate()
                .filter_map(|(i, v)| parse_value::<T>(v, &format!("{key}[{i}]"), problems))
                .collect();
            (items.len() == n).then_some(items)
        }
        Some(_) => {
            problems.push(Problem { path: key.into(), message: format!("must be an array of tables ([[{key}]])") });
            None
        }
    }
}

/// Parse each top-level section on its own so that all problems are found in one pass.
pub(super) fn parse_sections(mut table: toml::Table) -> (Option<Config>, Vec<Problem>) {
    let mut problems = Vec::new();
    let outbox = section::<OutboxConfig>(&mut table, "outbox", &mut problems);
    let api = section::<ApiConfig>(&mut table, "api", &mut problems);
    let sms = section::<SmsConfig>(&mut table, "sms", &mut problems);

    let mut connectors = BTreeMap::new();
    let mut connectors_ok = true;
    match table.remove("connectors") {
        None => {}
        Some(toml::Value::Table(t)) => {
            for (name, v) in t {
                match parse_value::<ConnectorConfig>(
                    v,
                    &format!("connectors.{name}"),
                    &mut problems,
                ) {
                    Some(c) => {
                        connectors.insert(name, c);
                    }
                    None => connectors_ok = false,
                }
            }
        }
        Some(_) => {
            connectors_ok = false;
            problems.push(Problem {
                path: "connectors".into(),
                message: "must be a table of connectors".into(),
            });
        }
    }

    let routes = array::<RouteConfig>(&mut table, "routes", &mut problems);
    let templates = array::<crate::model::template::TemplateSpec>(&mut table, "templates", &mut problems);
    let webhooks = array::<toml::Table>(&mut table, "webhooks", &mut problems);

    for key in table.keys() {
        problems.push(Problem {
            path: key.clone(),
            message:
                "unknown section, expected one of `outbox`, `api`, `sms`, `connectors`, `routes`, `templates`, `webhooks`"
                    .into(),
        });
    }

    match (outbox, api, sms, connectors_ok, routes, templates, webhooks) {
        (Some(outbox), Some(api), Some(sms), true, Some(routes), Some(templates), Some(webhooks)) => (
            Some(Config {
                outbox,
                api,
                sms,
                connectors,
                routes,
                templates,
                webhooks,
            }),
            problems,
        ),
        _ => (None, problems),
    }
}
