//! SMTP in (`type = "smtp-server"`): a receiving SMTP listener, written over tokio with Stalwart's
//! `smtp-proto` parsing the commands and `mail-parser` the MIME. Mail to `<number>@<domain>`
//! becomes an SMS to that number (its subject, text or both, cut to `max_segments`), submitted
//! to the hub; `250` goes out only after the outbox has it. Unknown recipient `550 5.1.1`, too
//! large `552 5.3.4`, sender not allowed `550 5.7.1`, malformed MIME `554 5.6.0`, the outbox
//! full `451 4.3.0` (the client retries). STARTTLS with rustls when `tls` is set. Once the
//! gateway drains, no new connection is taken.

pub mod config;
pub mod dsn;
mod session;

pub use session::sms_of_mail;

use super::{BoxFuture, Connector, DeliveryError, ErrorClass, ErrorKind, HubSink, Outcome, Shutdown, StartError};
use crate::model::{Channel, Message};
use config::SmtpServerConfig;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use tokio::sync::Semaphore;

pub struct SmtpServer {
    name: Arc<str>,
    cfg: SmtpServerConfig,
    hub: OnceLock<Arc<dyn HubSink>>,
    tls: OnceLock<tokio_rustls::TlsAcceptor>,
    local: OnceLock<std::net::SocketAddr>,
    sessions: Arc<Semaphore>,
    received: AtomicU64,
    refused: AtomicU64,
}

impl SmtpServer {
    pub fn new(name: &str, cfg: SmtpServerConfig) -> SmtpServer {
        let sessions = Arc::new(Semaphore::new(cfg.max_sessions));
        SmtpServer {
            name: name.into(),
            cfg,
            hub: OnceLock::new(),
            tls: OnceLock::new(),
            local: OnceLock::new(),
            sessions,
            received: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        }
    }
}

impl Connector for SmtpServer {
    fn start(self: Arc<Self>, hub: Arc<dyn HubSink>, mut shutdown: Shutdown) -> Result<(), StartError> {
        let listener = std::net::TcpListener::bind(&self.cfg.listen)
            .and_then(|l| {
                l.set_nonblocking(true)?;
                tokio::net::TcpListener::from_std(l)
            })
            .map_err(|source| StartError::Listen { addr: self.cfg.listen.clone(), source })?;
        if let Some(t) = &self.cfg.tls {
            let c = crate::connector::tls::server_config(&t.cert, &t.key)
                .map_err(|e| StartError::Setup(format!("SMTP server TLS: {e}")))?;
            let _ = self.tls.set(tokio_rustls::TlsAcceptor::from(c));
        }
        if let Ok(a) = listener.local_addr() {
            let _ = self.local.set(a);
            tracing::info!(connector = %self.name, listen = %a, starttls = self.tls.get().is_some(), "SMTP server listening");
        }
        let _ = self.hub.set(hub);
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    a = listener.accept() => a,
                    _ = shutdown.draining() => {
                        tracing::info!(connector = %self.name, "draining: no new SMTP connections");
                        return;
                    }
                };
                let Ok((s, peer)) = accepted else {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                };
                let this = self.clone();
                tokio::spawn(async move {
                    // Over the session limit: told to come back later.
                    let Ok(_slot) = this.sessions.clone().try_acquire_owned() else {
                        let _ = session::busy(s).await;
                        return;
                    };
                    if let Err(e) = session::run(&this, Box::new(s)).await {
                        tracing::debug!(connector = %this.name, %peer, error = %e, "SMTP session ended");
                    }
                });
            }
        });
        Ok(())
    }

    fn channels(&self) -> &'static [Channel] {
        &[]
    }

    fn deliver<'a>(&'a self, _msg: &'a Message) -> BoxFuture<'a, Outcome> {
        Box::pin(async {
            Outcome::PermFail {
                error: DeliveryError::new(ErrorClass::Permanent, ErrorKind::WrongLink, "an SMTP server takes mail in; it sends nothing")
                    .with_code("not_outbound"),
            }
        })
    }

    fn is_up(&self) -> bool {
        self.local.get().is_some()
    }

    fn status(&self) -> serde_json::Value {
        serde_json::json!({
            "listen": self.local.get().map(|a| a.to_string()),
            "domain": self.cfg.domain,
            "starttls": self.tls.get().is_some(),
            "received": self.received.load(Ordering::Relaxed),
            "refused": self.refused.load(Ordering::Relaxed),
        })
    }

    fn set_down(&self, _down: bool) {}

    fn wants_receipts(&self) -> bool {
        false
    }
}
