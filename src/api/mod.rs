//! The HTTP API (hyper 1.x, HTTP/1.1 keep-alive): REST JSON under `/v1`, the Kannel-compatible
//! `/cgi-bin/sendsms`, health and readiness, and `/metrics`.

pub mod auth;
pub mod error;
mod backups;
mod blobs;
pub mod idempotency;
mod kannel;
mod rest;
mod templates;
pub mod tls;
mod upload;
mod webhooks;

use crate::hub::Hub;
use bytes::Bytes;
use error::ApiError;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub type Resp = Response<Full<Bytes>>;

/// Shared state of the API.
pub struct Api {
    pub hub: Arc<Hub>,
    pub auth: auth::ApiAuth,
    pub sendsms: kannel::SendsmsUsers,
    /// Idempotency keys being answered.
    pub idempotency: idempotency::InUse,
    /// HTTPS, when `[api.tls]` is set.
    pub tls: Option<Arc<tls::ApiTls>>,
}

pub fn json_response<T: serde::Serialize + ?Sized>(status: StatusCode, v: &T) -> Resp {
    json_response_sized(status, v, 128)
}

/// [`json_response`] for a body of about `size` bytes, written without growing (a batch's
/// answer grew six times from the default).
pub fn json_response_sized<T: serde::Serialize + ?Sized>(status: StatusCode, v: &T, size: usize) -> Resp {
    let mut body = Vec::with_capacity(size);
    if serde_json::to_writer(&mut body, v).is_err() {
        body.clear();
    }
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

pub fn text_response(
    status: StatusCode,
    text: impl Into<String>,
    content_type: &'static str,
) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(text.into())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    r
}

/// Add `Retry-After: <seconds>` when given.
pub fn with_retry_after(mut r: Resp, seconds: Option<u32>) -> Resp {
    if let Some(v) = seconds.and_then(|s| hyper::header::HeaderValue::from_str(&s.to_string()).ok())
    {
        r.headers_mut().insert(hyper::header::RETRY_AFTER, v);
    }
    r
}

/// A JSON body as `T` (a precise 400/422 otherwise).
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(error::from_json_error)
}

/// One parameter of a query string, decoded.
pub(crate) fn query_param(query: &str, name: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

/// Read a body up to `limit` bytes; larger is 413.
pub async fn read_body(body: Incoming, limit: usize) -> Result<Bytes, ApiError> {
    match Limited::new(body, limit).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("request body is larger than {limit} bytes"),
            ))
        }
        Err(e) => Err(ApiError::bad_request(
            "bad_body",
            format!("cannot read request body: {e}"),
        )),
    }
}

impl Api {
    pub fn new(hub: Arc<Hub>, tls: Option<Arc<tls::ApiTls>>) -> Api {
        let a = &hub.cfg.api;
        let auth = auth::ApiAuth::with_limits(&a.keys, a.key_rps, a.key_burst);
        let sendsms = kannel::SendsmsUsers::new(&hub.cfg.api.sendsms_users);
        Api { hub, auth, sendsms, idempotency: Default::default(), tls }
    }

    async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Resp {
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
        let result = match (&method, segs.as_slice()) {
            (&Method::GET, ["healthz"]) => Ok(self.healthz()),
            (&Method::GET, ["readyz"]) => Ok(self.readyz()),
            (&Method::GET, ["metrics"]) => Ok(text_response(
                StatusCode::OK,
                crate::metrics::render(),
                "text/plain; version=0.0.4",
            )),
            (&Method::GET | &Method::POST, ["cgi-bin", "sendsms"]) => {
                Ok(kannel::sendsms(&self, req).await)
            }
            // A connector's peer (a receipt, an inbound message): the connector checks it.
            (_, ["v1", "providers", name, rest @ ..]) => {
                let (name, rest) = (name.to_string(), rest.join("/"));
                Ok(self.peer_request(&name, rest, req).await)
            }
            (_, ["v1", ..]) => match self.auth.check(
                req.headers()
                    .get(hyper::header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok()),
            ) {
                Err(e) => Err(e),
                Ok(()) => rest::route(&self, req, &method, &segs[1..]).await,
            },
            (_, ["healthz" | "readyz" | "metrics"]) => Err(ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("{method} is not allowed here"),
            )),
            _ => Err(ApiError::not_found("path")),
        };
        crate::metrics::hot().requests.increment(1);
        result.unwrap_or_else(ApiError::into_response)
    }

    /// Hand a request at `/v1/providers/{name}/{path}` to connector `name`.
    async fn peer_request(&self, name: &str, path: String, req: Request<Incoming>) -> Resp {
        let Some(link) = self.hub.links.iter().find(|l| &*l.name == name) else {
            return ApiError::not_found("connector").into_response();
        };
        let (parts, body) = req.into_parts();
        let body = match read_body(body, 1 << 20).await {
            Ok(b) => b,
            Err(e) => return e.into_response(),
        };
        let headers = parts
            .headers
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect();
        let peer = crate::connector::PeerRequest {
            method: parts.method.to_string(),
            path,
            query: parts.uri.query().unwrap_or("").to_string(),
            headers,
            body,
        };
        let answer = link.connector.on_peer_request(peer).await;
        let mut r = text_response(StatusCode::OK, answer.body, answer.content_type);
        *r.status_mut() = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        r
    }

    /// Liveness: the process answers; the store's error is reported while it cannot write
    /// (it recovers on its own: restarting would not help sooner).
    fn healthz(&self) -> Resp {
        let h = &self.hub.outbox.health;
        let body = match h.error() {
            None => serde_json::json!({"status": "ok", "outbox": {"writable": true}}),
            Some(e) => serde_json::json!({"status": "degraded", "outbox": {"writable": false, "error": e, "kind": crate::outbox::health::error_kind(&e)}}),
        };
        json_response(StatusCode::OK, &body)
    }

    fn readyz(&self) -> Resp {
        let draining = self.hub.draining.load(std::sync::atomic::Ordering::Relaxed);
        let connectors: Vec<_> = self
            .hub
            .links
            .iter()
            .map(|l| serde_json::json!({"name": &*l.name, "up": l.connector.is_up(), "degraded": l.is_degraded()}))
            .collect();
        // A link that is up but stalled (window full, nothing moving) takes no traffic.
        let any_up = self.hub.links.iter().any(|l| l.connector.is_up() && !l.is_degraded());
        let writable = self.hub.outbox.health.is_writable();
        let ready = !draining && any_up && writable;
        json_response(
            if ready {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            },
            &serde_json::json!({"ready": ready, "outbox": if writable { "open" } else { "failing" }, "outbox_error": self.hub.outbox.health.error(), "draining": draining, "depth": self.hub.outbox.depth(), "connectors": connectors}),
        )
    }
}

/// Bind the API listener (before anything else starts, so port conflicts fail early).
pub async fn bind(listen: &str) -> std::io::Result<TcpListener> {
    let addr: SocketAddr = listen.parse().map_err(|e| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{listen}: {e}"))
    })?;
    TcpListener::bind(addr).await
}

/// The HTTP/1.1 settings of every API connection.
fn builder() -> hyper::server::conn::http1::Builder {
    let mut b = hyper::server::conn::http1::Builder::new();
    b.timer(TokioTimer::new()).header_read_timeout(Duration::from_secs(30)).keep_alive(true);
    b
}

/// The service answering one connection's requests.
fn service(api: &Arc<Api>) -> impl hyper::service::Service<Request<Incoming>, Response = Resp, Error = std::convert::Infallible, Future = impl Send> + Clone {
    let api = api.clone();
    hyper::service::service_fn(move |req| {
        let api = api.clone();
        async move { Ok::<_, std::convert::Infallible>(api.handle(req).await) }
    })
}

/// Serve one plain connection until it closes (or the shutdown ends it).
fn connection(api: &Arc<Api>, graceful: &hyper_util::server::graceful::GracefulShutdown, stream: tokio::net::TcpStream) {
    let conn = graceful.watch(builder().serve_connection(TokioIo::new(stream), service(api)));
    tokio::spawn(async move {
        let _ = conn.await;
    });
}

/// Serve until `shutdown` turns true; then stop accepting and let open requests finish.
pub async fn serve(api: Arc<Api>, listener: TcpListener, mut shutdown: watch::Receiver<bool>) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    if let Some(t) = &api.tls {
        tokio::spawn(tls::reload_on_hangup(t.clone()));
    }
    // Idempotency keys older than their window are swept hourly.
    let weak = Arc::downgrade(&api.hub);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            let Some(hub) = weak.upgrade() else { return };
            match idempotency::sweep(&hub.outbox).await {
                Ok(n) if n > 0 => tracing::info!(swept = n, "idempotency keys swept"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "idempotency sweep failed"),
            }
        }
    });
    loop {
        tokio::select! {
            r = listener.accept() => {
                let (stream, _) = match r {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                match api.tls.as_ref().map(|t| t.acceptor()) {
                    None => connection(&api, &graceful, stream),
                    Some(acceptor) => {
                        let (api, watcher) = (api.clone(), graceful.watcher());
                        // The handshake runs in its own task: a slow client holds up no one.
                        tokio::spawn(async move {
                            match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await {
                                Ok(Ok(tls)) => {
                                    let _ = watcher.watch(builder().serve_connection(TokioIo::new(tls), service(&api))).await;
                                }
                                Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                                Err(_) => tracing::debug!("TLS handshake timed out"),
                            }
                        });
                    }
                }
            }
            _ = shutdown.changed() => break,
        }
    }
    drop(listener);
    let _ = tokio::time::timeout(Duration::from_secs(10), graceful.shutdown()).await;
}
