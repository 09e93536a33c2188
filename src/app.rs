//! Wiring: config -> outbox -> connectors -> hub -> API; readiness; and the drain on shutdown
//! (stop intake, let in-flight submits finish within a grace period, close the outbox).

use crate::api::{self, Api};
use crate::config::Config;
use crate::connector;
use crate::hub::Hub;
use crate::outbox::Outbox;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::sync::watch;

/// Why the gateway could not start.
#[derive(Debug, Error)]
pub enum StartError {
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Outbox(#[from] crate::outbox::OutboxError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error("webhooks: {0}")]
    Webhooks(String),
    #[error("api.tls: {0}")]
    Tls(#[from] crate::connector::tls::TlsError),
    #[error("templates: {0}")]
    Templates(#[from] crate::templates::TemplateError),
    #[error("connector {name}: {source}")]
    Connector {
        name: String,
        source: connector::StartError,
    },
}

/// A running gateway.
pub struct Gateway {
    pub hub: Arc<Hub>,
    pub api_addr: SocketAddr,
    /// `https` with `[api.tls]`, else `http`.
    pub api_scheme: &'static str,
    shutdown: watch::Sender<bool>,
    server: tokio::task::JoinHandle<()>,
    outbox: Arc<Outbox>,
}

impl Gateway {
    /// Start everything; returns when the outbox is recovered and the API is listening.
    pub async fn start(cfg: Config) -> Result<Gateway, StartError> {
        crate::metrics::install();
        let tls = cfg.api.tls.as_ref().map(api::tls::ApiTls::load).transpose()?.map(Arc::new);
        let listener = api::bind(&cfg.api.listen)
            .await
            .map_err(|source| StartError::Listen {
                addr: cfg.api.listen.clone(),
                source,
            })?;
        let api_addr = listener.local_addr().map_err(|source| StartError::Listen {
            addr: cfg.api.listen.clone(),
            source,
        })?;
        std::fs::create_dir_all(&cfg.outbox.path).map_err(|source| StartError::DataDir {
            path: cfg.outbox.path.display().to_string(),
            source,
        })?;
        let outbox = Arc::new(Outbox::open(&cfg.outbox)?);
        let cfg = Arc::new(cfg);
        let links = connector::build_all(&cfg.connectors, &cfg.outbox.path);
        let templates = crate::templates::Catalog::load(Some(outbox.clone()), &cfg.templates, &cfg.api.default_language)?;
        let webhooks = Arc::new(crate::webhooks::Registry::load(
            Some(outbox.clone()),
            &crate::webhooks::specs_of(&cfg.webhooks).map_err(|e| StartError::Webhooks(e.to_string()))?,
            crate::webhooks::policy::UrlPolicy { allow_private: cfg.api.webhook_allow_private },
            cfg.api.webhook_schedule_s.clone(),
        ).map_err(|e| StartError::Webhooks(e.to_string()))?.keep_sent(cfg.api.webhook_keep_sent_s));
        tokio::spawn(crate::webhooks::worker::supervise(Arc::downgrade(&webhooks), outbox.clone()));
        let hub = Hub::start(cfg.clone(), outbox.clone(), Arc::new(templates), webhooks, links)
            .map_err(|(name, source)| StartError::Connector { name, source })?;
        let (shutdown, rx) = watch::channel(false);
        let api_scheme = if tls.is_some() { "https" } else { "http" };
        let api = Arc::new(Api::new(hub.clone(), tls));
        if api.auth.is_open() {
            tracing::warn!(listen = %api_addr, "no API keys configured: the API is open to anyone who can reach {api_addr} (loopback only)");
        }
        let server = tokio::spawn(api::serve(api, listener, rx));
        tracing::info!(api = %api_addr, pending = outbox.depth(), "postern ready");
        Ok(Gateway {
            hub,
            api_addr,
            api_scheme,
            shutdown,
            server,
            outbox,
        })
    }

    /// Stop intake, wait up to `grace` for in-flight submits, then close the outbox.
    pub async fn stop(self, grace: Duration) {
        let _ = self.shutdown.send(true);
        self.hub.drain();
        // In flight = permits taken from a link's window: holding all of them back means the
        // link is idle (and no dispatcher starts another attempt).
        let deadline = tokio::time::Instant::now() + grace;
        let mut idle = Vec::new();
        for l in &self.hub.links {
            let n = l.window_size as u32;
            if let Ok(Ok(p)) = tokio::time::timeout_at(deadline, l.window.clone().acquire_many_owned(n)).await {
                idle.push(p);
            }
        }
        // Give state actors a moment to commit the outcomes they received.
        tokio::time::sleep(Duration::from_millis(100)).await;
        for l in &self.hub.links {
            l.connector.stop();
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), self.server).await;
        let _ = self.outbox.flush();
        // The windows held above are given back: what is still taken was in flight at the end.
        drop(idle);
        tracing::info!(inflight_left = self.hub.inflight(), "postern stopped");
    }
}
