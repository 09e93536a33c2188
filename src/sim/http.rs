//! An HTTP peer that receives what Postern sends (status callbacks, later webhooks): it answers
//! every request `200` (or `500` for the first `fail_first`), counts them with the times of the
//! first and the last, and keeps each request when asked to. The scenario tests check what
//! arrived; `load --mode sink` (benchmarks) only counts, for Kannel and Postern alike.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use parking_lot::Mutex;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// A request as it arrived.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub uri: String,
    /// Names in lowercase.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// How the sink behaves.
#[derive(Debug, Clone, Copy, Default)]
pub struct SinkOptions {
    /// Answer the first this many requests `500`.
    pub fail_first: usize,
    /// Keep every request (tests); counting only otherwise (benchmarks).
    pub keep: bool,
}

#[derive(Default)]
struct Shared {
    count: AtomicU64,
    answered: AtomicUsize,
    /// (first, last) arrival, ms since the epoch.
    span: Mutex<(i64, i64)>,
    seen: Mutex<Vec<Recorded>>,
}

/// A running sink (it stops with its runtime).
pub struct HttpSink {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

impl HttpSink {
    /// Listen on `listen` (`127.0.0.1:0` for any free port) and serve until the runtime ends.
    pub async fn start(listen: &str, opts: SinkOptions) -> std::io::Result<HttpSink> {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let sh = shared.clone();
        tokio::spawn(async move {
            loop {
                let Ok((s, _)) = listener.accept().await else {
                    continue;
                };
                let _ = s.set_nodelay(true);
                let sh = sh.clone();
                let svc = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                    let sh = sh.clone();
                    async move {
                        let method = req.method().to_string();
                        let uri = req.uri().to_string();
                        let headers = req
                            .headers()
                            .iter()
                            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
                            .collect();
                        let body = req
                            .into_body()
                            .collect()
                            .await
                            .map(|c| c.to_bytes().to_vec())
                            .unwrap_or_default();
                        let now = crate::time::now_ms();
                        {
                            let mut sp = sh.span.lock();
                            if sp.0 == 0 {
                                sp.0 = now;
                            }
                            sp.1 = now;
                        }
                        let n = sh.answered.fetch_add(1, Ordering::SeqCst);
                        if opts.keep {
                            sh.seen.lock().push(Recorded { method, uri, headers, body });
                        }
                        sh.count.fetch_add(1, Ordering::Relaxed);
                        let mut r = hyper::Response::new(Full::new(Bytes::from_static(b"ok")));
                        if n < opts.fail_first {
                            *r.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
                        }
                        Ok::<_, std::convert::Infallible>(r)
                    }
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(s), svc),
                );
            }
        });
        Ok(HttpSink { addr, shared })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Requests answered so far.
    pub fn count(&self) -> u64 {
        self.shared.count.load(Ordering::Relaxed)
    }

    /// When the first and the last request arrived (ms since the epoch; 0 before any).
    pub fn span(&self) -> (i64, i64) {
        *self.shared.span.lock()
    }

    /// The requests kept so far (with `keep`).
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.seen.lock().clone()
    }
}
