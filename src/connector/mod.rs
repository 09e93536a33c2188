//! The connector seam. An outbound connector takes one message (all its segments) and answers
//! an [`Outcome`]; an inbound side hands messages and receipts to the hub through [`HubSink`],
//! whose `receive` resolves only after the outbox write (that is when a peer may be acked).
//! A [`Link`] wraps each connector with its window of in-flight messages and token bucket.

pub mod http;
pub mod modem;
pub mod pacing;
pub mod peer_request;
pub mod provider;
pub mod ratelimit;
pub mod registry;
pub mod sandbox;
pub mod smpp;
pub mod smtp;
pub mod smtp_server;
pub mod tls;
pub mod xmpp;

pub use peer_request::{PeerRequest, PeerResponse};
pub use registry::{ConnectorConfig, Limits, Resource, Settings};

use crate::model::{Message, MessageId, State};
use crate::metrics as m;
use ratelimit::TokenBucket;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::sync::{Notify, Semaphore};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How a failure is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The link asked us to slow down: requeue without spending an attempt.
    Throttled,
    /// Try again later (spends an attempt).
    Temporary,
    /// Never retry.
    Permanent,
    /// We do not know whether the peer took it (e.g. a response timeout): requeue.
    Unknown,
}

/// What went wrong with an attempt: a bounded set, usable as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The link is down or has no session.
    LinkDown,
    /// The link failed while sending (I/O, a device error).
    LinkError,
    /// The session ended before the peer answered.
    SessionLost,
    /// No answer in time: whether the peer took it is unknown.
    Timeout,
    /// The peer refused the message.
    Rejected,
    /// The peer asked us to slow down.
    Throttled,
    /// The peer failed for now.
    Temporary,
    /// The content cannot be encoded for this link.
    Unencodable,
    /// This link cannot carry this message (an SMS link given an email, a receiver-only bind).
    WrongLink,
    /// Every device of the link reached its daily cap.
    DailyCap,
    /// No device of the link could take it.
    NoDevice,
    /// Some parts went out and some did not.
    PartlySent,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::LinkDown => "link_down",
            ErrorKind::LinkError => "link_error",
            ErrorKind::SessionLost => "session_lost",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Rejected => "rejected",
            ErrorKind::Throttled => "throttled",
            ErrorKind::Temporary => "temporary",
            ErrorKind::Unencodable => "unencodable",
            ErrorKind::WrongLink => "wrong_link",
            ErrorKind::DailyCap => "daily_cap",
            ErrorKind::NoDevice => "no_device",
            ErrorKind::PartlySent => "partly_sent",
        }
    }
}

/// A failure to deliver: how to treat it, what kind it is, the peer's (or link's) own code for
/// it (`smpp_0x0b`, `cms_500`, `response_timeout`; the kind's name when there is none).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{code}: {message}")]
pub struct DeliveryError {
    pub class: ErrorClass,
    pub kind: ErrorKind,
    /// Stable; kept with the message and shown by the API.
    pub code: String,
    pub message: String,
}

impl DeliveryError {
    pub fn new(class: ErrorClass, kind: ErrorKind, message: impl Into<String>) -> Self {
        DeliveryError {
            class,
            kind,
            code: kind.as_str().to_string(),
            message: message.into(),
        }
    }
    /// With the peer's or link's own, finer code.
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = code.into();
        self
    }
}

/// The SMS content of a message an SMS connector was handed (a permanent failure for any other
/// content: the route sent it to the wrong kind of link).
pub fn sms_of(msg: &Message) -> Result<&crate::model::Sms, DeliveryError> {
    msg.sms().ok_or_else(|| {
        DeliveryError::new(
            ErrorClass::Permanent,
            ErrorKind::WrongLink,
            format!("an SMS link cannot send {} content", msg.envelope.channel.as_str()),
        )
        .with_code("wrong_content")
    })
}

/// What became of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The peer took it; one remote id per segment.
    Submitted {
        remote_ids: Vec<String>,
    },
    /// It may have reached the peer but no answer came (a modem's send timeout): the message
    /// counts as submitted, carries the error, and is not resent; a receipt can still settle
    /// it through the (predicted) remote ids.
    Unconfirmed {
        remote_ids: Vec<String>,
        error: DeliveryError,
    },
    TempFail {
        error: DeliveryError,
        retry_after: Option<Duration>,
    },
    PermFail {
        error: DeliveryError,
    },
}

/// A delivery receipt from a connector.
#[derive(Debug, Clone)]
pub struct Receipt {
    pub connector: Arc<str>,
    pub remote_id: String,
    /// Delivered, Undelivered, Expired or Failed.
    pub state: State,
    /// Network or carrier error code, if any.
    pub error: Option<String>,
}

/// Errors an inbound side may get from the hub.
#[derive(Debug, Clone, Error)]
pub enum HubError {
    #[error("outbox unavailable: {0}")]
    Store(String),
    #[error("outbox full")]
    Busy,
}

/// Why the hub refused a message a connector submitted.
#[derive(Debug, Clone, Error)]
pub enum SubmitError {
    #[error("no route for this destination")]
    NoRoute,
    #[error("the outbox is full")]
    Busy,
    #[error("outbox unavailable: {0}")]
    Store(String),
}

/// A connector that wants to hear about messages after their changes are committed (an SMPP
/// server sending receipts and MO to its ESMEs).
pub trait Listener: Send + Sync {
    /// A message tagged `via:<connector>:…` changed state.
    fn on_state(&self, msg: &Message, state: State);
    /// An inbound message was stored.
    fn on_inbound(&self, msg: &Message);
}

/// What a connector may call on the hub.
pub trait HubSink: Send + Sync {
    /// The conversation a reply to `in_reply_to` (a Message-ID we sent) from or to `number`
    /// continues: the message replied to, and the number the reply should come from.
    fn thread(&self, _in_reply_to: &str, _number: &str) -> Option<(MessageId, String)> {
        None
    }
    /// Submit a message into the outbox (as the HTTP API does); resolves with its id after the
    /// group commit, which is when the peer may be acknowledged.
    fn submit(
        &self,
        draft: crate::model::Envelope,
    ) -> BoxFuture<'_, Result<MessageId, SubmitError>>;
    /// Register a listener.
    fn listen(&self, listener: Arc<dyn Listener>);
    /// A receipt for a remote id. Never blocks; unknown ids are counted and logged.
    fn report(&self, receipt: Receipt);
    /// A receipt, resolved once its state change is committed (so the peer is acked only then):
    /// `false` when it could not be (the store is closing after failing to write), and the peer
    /// should be asked to send it again.
    fn report_and_wait(&self, receipt: Receipt) -> BoxFuture<'_, bool> {
        self.report(receipt);
        Box::pin(async { true })
    }
    /// A late answer: the peer did take part `part` of message `id` (as `remote_id`) after we
    /// had given up waiting and requeued it. Its receipt must find the message; if it has not
    /// been sent again yet, it is submitted now instead (no duplicate, counted once).
    fn reconcile(&self, _connector: Arc<str>, _id: MessageId, _part: u16, _remote_id: String) {}
    /// Store a message that came in whole (an email to one of our mailboxes): received, with
    /// `Origin::Network`; resolves after the outbox write. `peer_id` is the peer's own id for
    /// it (a Message-ID, a stanza id): the same one again is stored once (hub::dedup).
    fn receive_envelope(&self, _connector: Arc<str>, _env: crate::model::Envelope, _peer_id: Option<String>) -> BoxFuture<'_, Result<MessageId, HubError>> {
        Box::pin(async { Err(HubError::Store("not supported".into())) })
    }
    /// Store bytes as a blob (synced); resolves with its hex SHA-256.
    fn put_blob<'a>(&'a self, _bytes: &'a [u8]) -> BoxFuture<'a, Result<String, HubError>> {
        Box::pin(async { Err(HubError::Store("not supported".into())) })
    }
    /// A report about one of our own messages found by its id (a bounce naming the Message-ID we
    /// gave it): applied like a receipt for its first part. Never blocks.
    fn report_for(&self, _id: MessageId, _state: State, _error: Option<String>) {}
    /// The bytes of a stored blob (an email attachment), by its hex SHA-256.
    fn blob(&self, _digest: &str) -> Option<Vec<u8>> {
        None
    }
    /// Store an inbound message; resolves after the outbox write.
    fn receive(&self, msg: InboundMessage) -> BoxFuture<'_, Result<MessageId, HubError>>;
    /// Hold one part of a concatenated MO durably; resolves after the (synced) write.
    fn hold_part(&self, _connector: Arc<str>, _part: HeldPart) -> BoxFuture<'_, Result<(), HubError>> {
        Box::pin(async { Ok(()) })
    }
    /// The parts `connector` holds (after a restart).
    fn held_parts(&self, _connector: &str) -> Vec<HeldPart> {
        Vec::new()
    }
    /// Store a reassembled MO and drop its held parts in the same write.
    fn receive_assembled(&self, msg: InboundMessage, _key: crate::codec::reassembly::PartKey) -> BoxFuture<'_, Result<MessageId, HubError>> {
        self.receive(msg)
    }
}

/// One part of a concatenated MO message, held durably until the rest arrives (a part is
/// acked to its peer as soon as it is held, so a restart must not lose it).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HeldPart {
    pub sender: String,
    pub receiver: String,
    pub reference: u16,
    pub total: u8,
    pub seq: u8,
    pub body: crate::codec::reassembly::PartBody,
    pub data_coding: u8,
    pub dest_port: Option<u16>,
    /// When the part arrived (the reassembly timeout counts from the first part).
    pub at_ms: i64,
}

/// An inbound message as a connector hands it over.
#[derive(Debug, Clone)]
pub struct InboundMessage {
    pub connector: Arc<str>,
    pub from: String,
    pub to: String,
    pub body: crate::model::Body,
    pub metadata: Option<serde_json::Value>,
    /// Destination application port (UDH), e.g. 2948 for WAP Push.
    pub dest_port: Option<u16>,
    /// The peer's own id for the message (a modem's SMSC timestamp, a Twilio MessageSid): the
    /// same one again is stored once. Without it a re-send is told by its content.
    pub dedup_id: Option<String>,
}

/// The gateway's shutdown as a connector sees it: once draining, inbound sides take no new
/// work (no new connections or binds; the hub refuses submits) while what is in flight ends;
/// [`Connector::stop`] follows.
#[derive(Clone, Debug)]
pub struct Shutdown(tokio::sync::watch::Receiver<bool>);

impl Shutdown {
    /// A signal and the sender that starts the drain.
    pub fn new() -> (tokio::sync::watch::Sender<bool>, Shutdown) {
        let (tx, rx) = tokio::sync::watch::channel(false);
        (tx, Shutdown(rx))
    }
    pub fn is_draining(&self) -> bool {
        *self.0.borrow()
    }
    /// Resolves once the drain has begun (or the gateway is gone).
    pub async fn draining(&mut self) {
        let _ = self.0.wait_for(|d| *d).await;
    }
}

/// Why a connector could not start (the gateway does not start without it).
#[derive(Debug, Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Setup(String),
}

/// An outbound connector.
pub trait Connector: Send + Sync {
    /// Start background work (sessions, listeners, receipt timers). Called once, with the hub
    /// and the shutdown signal; an error (a port taken by another process, unreadable TLS
    /// files) stops the gateway from starting.
    fn start(self: Arc<Self>, hub: Arc<dyn HubSink>, shutdown: Shutdown) -> Result<(), StartError>;
    /// The channels it carries: a route sends a message only to connectors that carry its
    /// channel (unless the route names a channel itself).
    fn channels(&self) -> &'static [crate::model::Channel] {
        &[crate::model::Channel::Sms]
    }
    /// Deliver one message (all its segments, in order, on one session).
    fn deliver<'a>(&'a self, msg: &'a Message) -> BoxFuture<'a, Outcome>;
    /// Can it take messages now?
    fn is_up(&self) -> bool;
    /// Connector-specific status for `/v1/connectors`.
    fn status(&self) -> serde_json::Value;
    /// Mark up or down by hand (maintenance, tests).
    fn set_down(&self, down: bool);
    /// Stop background work (sessions unbind); called once at shutdown, after the drain.
    fn stop(&self) {}
    /// Remote ids still waiting for a receipt when the gateway started (from the durable
    /// remote-id index). A carrier keeps its receipts across our restart; a connector that
    /// cannot count on that (the sandbox, or SMPP via `query_sm`) reconciles them here.
    fn resume(&self, _outstanding: Vec<String>) {}
    /// Whether submitted messages get receipts. When not (SMPP or a modem bank with `dlr =
    /// false`), nothing is kept to match one with: no remote-id index entry, no cached message.
    fn wants_receipts(&self) -> bool {
        true
    }
    /// A request from this connector's peer at `/v1/providers/{name}/…` (a receipt, an inbound
    /// message): the connector authenticates it and answers (see [`peer_request`]).
    fn on_peer_request(&self, _req: PeerRequest) -> BoxFuture<'_, PeerResponse> {
        Box::pin(async { PeerResponse::not_found() })
    }
}

/// How long a full window may go without any attempt ending before the link counts as
/// degraded (up, but not sending).
pub const STALL_AFTER_MS: i64 = 30_000;

/// A connector with its dispatch limits.
pub struct Link {
    pub name: Arc<str>,
    pub kind: &'static str,
    pub connector: Arc<dyn Connector>,
    pub window: Arc<Semaphore>,
    pub window_size: usize,
    pub bucket: TokenBucket,
    /// [`Connector::wants_receipts`], asked once.
    pub receipts: bool,
    /// Notified when the link may have come up.
    pub changed: Notify,
    was_up: AtomicBool,
    /// When an attempt last ended (ms since the epoch): with the window full and no attempt
    /// ending for [`STALL_AFTER_MS`], the link is up but not moving (degraded).
    last_progress: std::sync::atomic::AtomicI64,
    /// Metric handles for this connector (registered once).
    pub submitted: metrics::Counter,
    pub inflight_gauge: metrics::Gauge,
}

impl Link {
    pub fn new(
        name: &str,
        kind: &'static str,
        connector: Arc<dyn Connector>,
        limits: Limits,
    ) -> Link {
        let receipts = connector.wants_receipts();
        Link {
            name: name.into(),
            kind,
            connector,
            window: Arc::new(Semaphore::new(limits.window)),
            window_size: limits.window,
            receipts,
            bucket: TokenBucket::new(limits.tps, limits.burst),
            changed: Notify::new(),
            was_up: AtomicBool::new(true),
            last_progress: std::sync::atomic::AtomicI64::new(crate::model::now_ms()),
            submitted: metrics::counter!(m::CONNECTOR_SUBMITTED_TOTAL, m::L_CONNECTOR => name.to_string()),
            inflight_gauge: metrics::gauge!(m::CONNECTOR_INFLIGHT, m::L_CONNECTOR => name.to_string()),
        }
    }

    pub fn inflight(&self) -> usize {
        self.window_size - self.window.available_permits()
    }

    /// An attempt on this link ended (whatever its outcome).
    pub fn progressed(&self) {
        self.last_progress.store(crate::model::now_ms(), Ordering::Relaxed);
    }

    /// Up, but its window is full and no attempt has ended for [`STALL_AFTER_MS`].
    pub fn is_degraded(&self) -> bool {
        let stalled = self.inflight() >= self.window_size
            && crate::model::now_ms() - self.last_progress.load(Ordering::Relaxed) >= STALL_AFTER_MS;
        metrics::gauge!(m::CONNECTOR_DEGRADED, m::L_CONNECTOR => self.name.to_string()).set(if stalled { 1.0 } else { 0.0 });
        stalled
    }

    pub fn is_up(&self) -> bool {
        let up = self.connector.is_up();
        if up != self.was_up.swap(up, Ordering::Relaxed) {
            metrics::gauge!(m::CONNECTOR_UP, m::L_CONNECTOR => self.name.to_string()).set(if up {
                1.0
            } else {
                0.0
            });
            tracing::info!(connector = %self.name, up, "connector state changed");
        }
        up
    }

    pub fn status(&self) -> serde_json::Value {
        serde_json::json!({
            "name": &*self.name,
            "type": self.kind,
            "up": self.connector.is_up(),
            "window": self.window_size,
            "inflight": self.inflight(),
            "degraded": self.is_degraded(),
            "tps": self.bucket.rate(),
            "detail": self.connector.status(),
        })
    }
}

/// Build every configured connector (not started); `data_dir` is the outbox's directory.
pub fn build_all(
    connectors: &std::collections::BTreeMap<String, ConnectorConfig>,
    data_dir: &std::path::Path,
) -> Vec<Arc<Link>> {
    connectors
        .iter()
        .map(|(name, c)| {
            let conn = c.build(name, data_dir);
            metrics::gauge!(m::CONNECTOR_UP, m::L_CONNECTOR => name.clone()).set(if conn.is_up() {
                1.0
            } else {
                0.0
            });
            let link = Link::new(name, c.type_name(), conn, c.limits());
            // Make both series visible from the start.
            link.inflight_gauge.set(0.0);
            link.submitted.increment(0);
            Arc::new(link)
        })
        .collect()
}
