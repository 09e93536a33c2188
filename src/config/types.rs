//! Configuration structs, their defaults, and section-by-section parsing (so one bad section does
//! not hide the problems of the others).

use super::Problem;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
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

/// `[connectors.NAME]`, by `type`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ConnectorConfig {
    Sandbox(SandboxConfig),
    Smpp(SmppConfig),
    SmppServer(SmppServerConfig),
    Modem(ModemBankConfig),
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
}

/// `[[routes]]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    #[serde(rename = "match", default)]
    pub matches: Option<RouteMatch>,
    pub to: Vec<String>,
    #[serde(default)]
    pub strategy: Strategy,
    #[serde(default)]
    pub weights: Vec<u32>,
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

    let mut routes = Vec::new();
    let mut routes_ok = true;
    match table.remove("routes") {
        None => {}
        Some(toml::Value::Array(a)) => {
            for (i, v) in a.into_iter().enumerate() {
                match parse_value::<RouteConfig>(v, &format!("routes[{i}]"), &mut problems) {
                    Some(r) => routes.push(r),
                    None => routes_ok = false,
                }
            }
        }
        Some(_) => {
            routes_ok = false;
            problems.push(Problem {
                path: "routes".into(),
                message: "must be an array of tables ([[routes]])".into(),
            });
        }
    }

    for key in table.keys() {
        problems.push(Problem {
            path: key.clone(),
            message:
                "unknown section, expected one of `outbox`, `api`, `sms`, `connectors`, `routes`"
                    .into(),
        });
    }

    match (outbox, api, sms, connectors_ok, routes_ok) {
        (Some(outbox), Some(api), Some(sms), true, true) => (
            Some(Config {
                outbox,
                api,
                sms,
                connectors,
                routes,
            }),
            problems,
        ),
        _ => (None, problems),
    }
}
