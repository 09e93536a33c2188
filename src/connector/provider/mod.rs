//! HTTP provider links (`type = "http"`): SMS sent through another gateway's HTTP API, over
//! `connector::http`'s pooled client (keep-alive, rustls). One preset per API — Twilio's
//! Messages API, Kannel's `sendsms`, another Postern's `/v1/messages` (batched), a generic
//! request built from templates, and social posts (Mastodon, X) — each in its own file with
//! the receipts and inbound messages its remote sends back to `/v1/providers/{connector}/…`,
//! which it authenticates itself.
//!
//! The remote's answer decides the outcome: taken (with its id, the remote id receipts name),
//! 429 throttled (its `Retry-After` honoured, no attempt spent), 408 and 5xx temporary, other
//! 4xx permanent; no answer in time is "unknown" (requeued; the remote may have it).

pub mod config;
mod generic;
mod kannel;
mod postern;
mod social;
mod twilio;

use super::http::{client, HttpClient};
use super::{
    BoxFuture, Connector, DeliveryError, ErrorClass, ErrorKind, HubSink, Outcome, PeerRequest, PeerResponse,
    Receipt, Shutdown, StartError,
};
use crate::model::{Message, State};
use bytes::Bytes;
use config::{HttpConfig, Preset};
use http_body_util::{BodyExt, Full};
use hyper::{HeaderMap, Request, StatusCode};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Most bytes of a remote's answer read (an answer is an id and a status, not a page).
const MAX_ANSWER: usize = 256 * 1024;

/// Counts shown in `/v1/connectors`.
#[derive(Default)]
struct Counts {
    sent: AtomicU64,
    failed: AtomicU64,
    receipts: AtomicU64,
    /// Requests to `/v1/providers/…` refused (bad token or signature, malformed).
    refused: AtomicU64,
    inbound: AtomicU64,
}

/// One HTTP provider link.
pub struct HttpLink {
    name: Arc<str>,
    cfg: HttpConfig,
    client: HttpClient,
    hub: OnceLock<Arc<dyn HubSink>>,
    /// Twilio's auth token or Kannel's password.
    password: Option<String>,
    /// A bearer token.
    token: Option<String>,
    /// What receipts are authenticated with.
    callback_secret: Option<String>,
    generic: Option<generic::Requests>,
    batcher: OnceLock<postern::Batcher>,
    down: AtomicBool,
    counts: Counts,
}

fn env(var: &Option<String>) -> Option<String> {
    var.as_ref().and_then(|v| std::env::var(v).ok())
}

impl HttpLink {
    pub fn new(name: &str, mut cfg: HttpConfig) -> HttpLink {
        if let (true, Some(u)) = (cfg.url.is_empty(), cfg.preset.default_url()) {
            cfg.url = u.into();
        }
        let generic = (cfg.preset == Preset::Generic).then(|| generic::Requests::new(&cfg));
        HttpLink {
            name: name.into(),
            password: env(&cfg.password_env),
            token: env(&cfg.token_env),
            callback_secret: env(&cfg.callback_secret_env),
            client: client(),
            hub: OnceLock::new(),
            generic,
            batcher: OnceLock::new(),
            down: AtomicBool::new(false),
            counts: Counts::default(),
            cfg,
        }
    }

    /// The base URL without a trailing `/`.
    fn base(&self) -> &str {
        self.cfg.url.trim_end_matches('/')
    }

    /// Where the remote sends `what` (`dlr`, `status`, `inbound`) back to, when receipts are on.
    fn callback_url(&self, what: &str) -> Option<String> {
        let base = self.cfg.callback_base.as_deref()?.trim_end_matches('/');
        Some(format!("{base}/v1/providers/{}/{what}", self.name))
    }

    /// Make one request; the answer's status, headers and (first) bytes, or the outcome when
    /// none came.
    async fn call(&self, req: Request<Full<Bytes>>) -> Result<(StatusCode, HeaderMap, Bytes), Outcome> {
        let timeout = Duration::from_secs(self.cfg.timeout_s);
        let resp = match tokio::time::timeout(timeout, self.client.request(req)).await {
            Err(_) => {
                let e = DeliveryError::new(ErrorClass::Unknown, ErrorKind::Timeout, "no answer in time").with_code("response_timeout");
                return Err(Outcome::TempFail { error: e, retry_after: None });
            }
            Ok(Err(e)) if e.is_connect() => {
                let e = DeliveryError::new(ErrorClass::Temporary, ErrorKind::LinkDown, format!("cannot connect: {e}")).with_code("connect_failed");
                return Err(Outcome::TempFail { error: e, retry_after: None });
            }
            // The request may have been written: whether the remote took it is unknown.
            Ok(Err(e)) => {
                let e = DeliveryError::new(ErrorClass::Unknown, ErrorKind::SessionLost, e.to_string()).with_code("connection_lost");
                return Err(Outcome::TempFail { error: e, retry_after: None });
            }
            Ok(Ok(r)) => r,
        };
        let (parts, body) = resp.into_parts();
        let body = match tokio::time::timeout(timeout, http_body_util::Limited::new(body, MAX_ANSWER).collect()).await {
            Ok(Ok(b)) => b.to_bytes(),
            // The status line came: the remote has decided; the body is only its detail.
            _ => Bytes::new(),
        };
        Ok((parts.status, parts.headers, body))
    }

    /// A request builder with the user agent set.
    fn request(&self, method: &str, url: &str) -> hyper::http::request::Builder {
        Request::builder().method(method).uri(url).header("user-agent", concat!("postern/", env!("CARGO_PKG_VERSION")))
    }

    /// Report a receipt and answer the remote once its state change is committed.
    async fn settle(&self, remote_id: String, state: State, error: Option<String>) -> PeerResponse {
        let Some(hub) = self.hub.get() else { return PeerResponse::retry_later() };
        self.counts.receipts.fetch_add(1, Ordering::Relaxed);
        let receipt = Receipt { connector: self.name.clone(), remote_id, state, error };
        if hub.report_and_wait(receipt).await {
            PeerResponse::ok()
        } else {
            PeerResponse::retry_later()
        }
    }

    /// Store an inbound SMS; `Err` when the store could not take it.
    async fn receive(&self, from: String, to: String, text: String, metadata: serde_json::Value, dedup_id: Option<String>) -> Result<(), PeerResponse> {
        let Some(hub) = self.hub.get() else { return Err(PeerResponse::retry_later()) };
        let msg = super::InboundMessage {
            connector: self.name.clone(),
            from,
            to,
            body: crate::model::Body::Text(text),
            metadata: Some(metadata),
            dest_port: None,
            dedup_id,
        };
        match hub.receive(msg).await {
            Ok(_) => {
                self.counts.inbound.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                tracing::warn!(connector = %self.name, error = %e, "inbound message not stored");
                Err(PeerResponse::retry_later())
            }
        }
    }

    /// A request from the remote that fails its check: counted, answered with `status`.
    fn refuse(&self, status: u16, code: &str, message: impl Into<String>) -> PeerResponse {
        self.counts.refused.fetch_add(1, Ordering::Relaxed);
        let message = message.into();
        tracing::warn!(connector = %self.name, code, %message, "provider request refused");
        PeerResponse::error(status, code, message)
    }

    /// The sender: the message's, else the connector's default.
    fn sender(&self, msg: &Message) -> Option<String> {
        msg.envelope.from.as_ref().map(|a| a.to_string()).or_else(|| self.cfg.from.clone())
    }
}

/// The text of an SMS (these APIs take text; binary content is refused for good).
fn text_of(msg: &Message) -> Result<&str, Outcome> {
    match &super::sms_of(msg).map_err(|error| Outcome::PermFail { error })?.body {
        crate::model::Body::Text(t) => Ok(t),
        crate::model::Body::Binary { .. } => Err(Outcome::PermFail {
            error: DeliveryError::new(ErrorClass::Permanent, ErrorKind::Unencodable, "this HTTP provider takes text only")
                .with_code("binary_unsupported"),
        }),
    }
}

/// The outcome of an answer that is not a success: 429 throttled (with its `Retry-After`),
/// 408 and 5xx temporary, other statuses permanent. `detail` is the remote's own error text.
fn refused(status: StatusCode, headers: &HeaderMap, detail: &str) -> Outcome {
    let code = format!("http_{}", status.as_u16());
    let message = if detail.is_empty() { status.to_string() } else { format!("{status}: {}", detail.chars().take(200).collect::<String>()) };
    if status == StatusCode::TOO_MANY_REQUESTS {
        let header = |name| headers.get(name).and_then(|v: &hyper::header::HeaderValue| v.to_str().ok()).and_then(|v| v.trim().parse::<i64>().ok());
        // Seconds to wait, or (X) the Unix time the limit resets.
        let retry_after = header("retry-after")
            .or_else(|| header("x-rate-limit-reset").map(|t| t - crate::model::now_ms() / 1000))
            .map(|s| Duration::from_secs(s.clamp(0, 3600) as u64));
        let e = DeliveryError::new(ErrorClass::Throttled, ErrorKind::Throttled, message).with_code(code);
        Outcome::TempFail { error: e, retry_after }
    } else if status == StatusCode::REQUEST_TIMEOUT || status.is_server_error() {
        Outcome::TempFail { error: DeliveryError::new(ErrorClass::Temporary, ErrorKind::Temporary, message).with_code(code), retry_after: None }
    } else {
        Outcome::PermFail { error: DeliveryError::new(ErrorClass::Permanent, ErrorKind::Rejected, message).with_code(code) }
    }
}

/// An outcome for a request that could not be built (a bad header value from a template).
fn unbuildable(e: impl std::fmt::Display) -> Outcome {
    Outcome::PermFail {
        error: DeliveryError::new(ErrorClass::Permanent, ErrorKind::Unencodable, format!("cannot build the request: {e}"))
            .with_code("bad_request"),
    }
}

/// Compare two secrets in time that does not depend on where they differ.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

impl Connector for HttpLink {
    fn start(self: Arc<Self>, hub: Arc<dyn HubSink>, _shutdown: Shutdown) -> Result<(), StartError> {
        let _ = self.hub.set(hub);
        if self.cfg.preset == Preset::Postern {
            let _ = self.batcher.set(postern::Batcher::start(Arc::downgrade(&self), self.cfg.batch));
        }
        Ok(())
    }

    fn channels(&self) -> &'static [crate::model::Channel] {
        use crate::model::Channel;
        match self.cfg.preset {
            Preset::Postern => &[Channel::Sms, Channel::Email],
            Preset::Mastodon | Preset::X => &[Channel::Social],
            _ => &[Channel::Sms],
        }
    }

    fn deliver<'a>(&'a self, msg: &'a Message) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let out = match self.cfg.preset {
                Preset::Twilio => twilio::send(self, msg).await,
                Preset::Kannel => kannel::send(self, msg).await,
                Preset::Postern => postern::send(self, msg).await,
                Preset::Generic => generic::send(self, msg).await,
                Preset::Mastodon => social::mastodon(self, msg).await,
                Preset::X => social::x(self, msg).await,
            };
            match &out {
                Outcome::Submitted { .. } => self.counts.sent.fetch_add(1, Ordering::Relaxed),
                _ => self.counts.failed.fetch_add(1, Ordering::Relaxed),
            };
            out
        })
    }

    fn on_peer_request(&self, req: PeerRequest) -> BoxFuture<'_, PeerResponse> {
        Box::pin(async move {
            match (self.cfg.preset, req.path.as_str()) {
                (Preset::Twilio, "status") => twilio::status(self, &req).await,
                (Preset::Twilio, "inbound") => twilio::inbound(self, &req).await,
                (Preset::Kannel, "dlr") => kannel::dlr(self, &req).await,
                (Preset::Kannel, "inbound") => kannel::inbound(self, &req).await,
                (Preset::Postern, "status") => postern::status(self, &req).await,
                (Preset::Generic, "receipt") => generic::receipt(self, &req).await,
                _ => PeerResponse::not_found(),
            }
        })
    }

    fn is_up(&self) -> bool {
        !self.down.load(Ordering::Relaxed)
    }

    fn status(&self) -> serde_json::Value {
        let c = &self.counts;
        serde_json::json!({
            "preset": self.cfg.preset.as_str(),
            "url": self.base(),
            "receipts_to": self.callback_url(""),
            "sent": c.sent.load(Ordering::Relaxed),
            "failed": c.failed.load(Ordering::Relaxed),
            "receipts": c.receipts.load(Ordering::Relaxed),
            "inbound": c.inbound.load(Ordering::Relaxed),
            "refused_requests": c.refused.load(Ordering::Relaxed),
        })
    }

    fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::Relaxed);
    }

    /// Receipts come only when the remote has somewhere to send them.
    fn wants_receipts(&self) -> bool {
        self.cfg.callback_base.is_some()
    }
}
