//! SMTP out (`type = "smtp"`, on `lettre` with rustls): each email message becomes one MIME
//! message to its relay — `multipart/alternative` for text and HTML, inside `multipart/mixed`
//! when it has attachments (read from the blob store), RFC 2047 headers — sent over a pool of
//! connections (STARTTLS, implicit TLS, or none for a local relay). The `Message-ID` is the
//! message's remote id. The relay's answer decides the outcome: 2xx submitted, 4xx temporary
//! (retried with backoff), 5xx permanent (`failed`, with the code and text); a connection
//! that fails is temporary too.

pub mod config;

use super::{BoxFuture, Connector, DeliveryError, ErrorClass, ErrorKind, HubSink, Outcome, Shutdown, StartError};
use crate::model::{Channel, Content, Message};
use config::{SmtpConfig, SmtpTls};
use lettre::message::{header::ContentType, Attachment, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

type Transport = AsyncSmtpTransport<Tokio1Executor>;

pub struct SmtpConnector {
    name: Arc<str>,
    cfg: SmtpConfig,
    transport: OnceLock<Transport>,
    hub: OnceLock<Arc<dyn HubSink>>,
    down: AtomicBool,
    sent: AtomicU64,
    failed: AtomicU64,
}

fn perm(kind: ErrorKind, code: &str, message: impl Into<String>) -> Outcome {
    Outcome::PermFail { error: DeliveryError::new(ErrorClass::Permanent, kind, message).with_code(code) }
}

impl SmtpConnector {
    pub fn new(name: &str, cfg: SmtpConfig) -> SmtpConnector {
        SmtpConnector {
            name: name.into(),
            cfg,
            transport: OnceLock::new(),
            hub: OnceLock::new(),
            down: AtomicBool::new(false),
            sent: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        }
    }

    /// The transport for the configured relay.
    fn transport(&self) -> Result<Transport, String> {
        let c = &self.cfg;
        let params = || -> Result<TlsParameters, String> {
            let mut b = TlsParameters::builder(c.host.clone());
            if let Some(ca) = &c.tls_ca {
                let pem = std::fs::read(ca).map_err(|e| format!("{}: {e}", ca.display()))?;
                let cert = Certificate::from_pem(&pem).map_err(|e| format!("{}: {e}", ca.display()))?;
                b = b.add_root_certificate(cert);
            }
            b.build().map_err(|e| e.to_string())
        };
        let tls = match c.tls {
            SmtpTls::Starttls => Tls::Required(params()?),
            SmtpTls::Implicit => Tls::Wrapper(params()?),
            SmtpTls::None => Tls::None,
        };
        let mut b = Transport::builder_dangerous(c.host.clone())
            .port(c.effective_port())
            .tls(tls)
            .timeout(Some(Duration::from_secs(c.timeout_s)))
            .pool_config(PoolConfig::new().max_size(c.pool));
        if let Some(h) = &c.hello_name {
            b = b.hello_name(ClientId::Domain(h.clone()));
        }
        if let (Some(u), Some(var)) = (&c.username, &c.password_env) {
            let pw = std::env::var(var).map_err(|_| format!("environment variable {var} is not set"))?;
            b = b.credentials(Credentials::new(u.clone(), pw));
        }
        Ok(b.build())
    }

    /// The MIME message and its Message-ID, or why it cannot be made (permanent).
    fn build(&self, msg: &Message) -> Result<(lettre::Message, String), Outcome> {
        let Content::Email(e) = &msg.envelope.content else {
            return Err(perm(ErrorKind::WrongLink, "wrong_content", "an SMTP link sends email only"));
        };
        let from = msg
            .envelope
            .from
            .as_ref()
            .map(|a| a.to_string())
            .or_else(|| self.cfg.from.clone())
            .ok_or_else(|| perm(ErrorKind::Unencodable, "no_sender", "no from address, and the connector has no default"))?;
        let bad = |m: String| perm(ErrorKind::Unencodable, "unencodable", m);
        let domain = from.rsplit('@').next().unwrap_or("postern.invalid").to_string();
        let message_id = format!("<{}@{}>", msg.id, domain);
        let mut builder = lettre::Message::builder()
            .from(from.parse().map_err(|e| bad(format!("from: {e}")))?)
            .to(msg.envelope.to.parse().map_err(|e| bad(format!("to: {e}")))?);
        for a in &e.cc {
            builder = builder.cc(a.parse().map_err(|e| bad(format!("cc: {e}")))?);
        }
        for a in &e.bcc {
            builder = builder.bcc(a.parse().map_err(|e| bad(format!("bcc: {e}")))?);
        }
        if let Some(r) = &e.reply_to {
            builder = builder.reply_to(r.parse().map_err(|e| bad(format!("reply_to: {e}")))?);
        }
        let builder = builder
            .subject(e.subject.clone())
            .message_id(Some(message_id.clone()));
        let body = match (&e.text, &e.html) {
            (Some(t), Some(h)) => Err(MultiPart::alternative_plain_html(t.clone(), h.clone())),
            (Some(t), None) => Ok(SinglePart::plain(t.clone())),
            (None, Some(h)) => Ok(SinglePart::html(h.clone())),
            (None, None) => Ok(SinglePart::plain(String::new())),
        };
        let email = if e.attachments.is_empty() {
            match body {
                Ok(single) => builder.singlepart(single),
                Err(multi) => builder.multipart(multi),
            }
        } else {
            let hub = self.hub.get().ok_or_else(|| bad("not started".into()))?;
            let mut mixed = match body {
                Ok(single) => MultiPart::mixed().singlepart(single),
                Err(multi) => MultiPart::mixed().multipart(multi),
            };
            for a in &e.attachments {
                let Some(bytes) = hub.blob(&a.digest) else {
                    return Err(perm(ErrorKind::Unencodable, "attachment_missing", format!("blob {} is not stored", a.digest)));
                };
                let ct = ContentType::parse(&a.media_type).map_err(|e| bad(format!("{}: {e}", a.media_type)))?;
                let name = a.filename.clone().unwrap_or_else(|| "attachment".to_string());
                mixed = mixed.singlepart(Attachment::new(name).body(bytes, ct));
            }
            builder.multipart(mixed)
        }
        .map_err(|e| bad(e.to_string()))?;
        Ok((email, message_id))
    }
}

impl SmtpConnector {
    /// Send `email` to all its recipients, at most `max_recipients` per transaction. (Should a
    /// later transaction fail for a while, the retry sends the mail to every recipient again:
    /// those of the earlier transactions get it twice.)
    async fn send(&self, t: &Transport, email: &lettre::Message) -> Result<(), lettre::transport::smtp::Error> {
        let envelope = email.envelope();
        let max = self.cfg.max_recipients.max(1);
        if envelope.to().len() <= max {
            return t.send(email.clone()).await.map(|_| ());
        }
        let raw = email.formatted();
        for chunk in envelope.to().chunks(max) {
            // (A chunk is never empty, which is all Envelope::new refuses.)
            if let Ok(part) = lettre::address::Envelope::new(envelope.from().cloned(), chunk.to_vec()) {
                t.send_raw(&part, &raw).await?;
            }
        }
        Ok(())
    }
}

impl Connector for SmtpConnector {
    fn start(self: Arc<Self>, hub: Arc<dyn HubSink>, _shutdown: Shutdown) -> Result<(), StartError> {
        let t = self.transport().map_err(StartError::Setup)?;
        let _ = self.transport.set(t);
        let _ = self.hub.set(hub);
        Ok(())
    }

    fn channels(&self) -> &'static [Channel] {
        &[Channel::Email]
    }

    fn deliver<'a>(&'a self, msg: &'a Message) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let Some(t) = self.transport.get() else {
                return Outcome::TempFail {
                    error: DeliveryError::new(ErrorClass::Temporary, ErrorKind::LinkDown, "not started"),
                    retry_after: None,
                };
            };
            let (email, message_id) = match self.build(msg) {
                Ok(x) => x,
                Err(o) => return o,
            };
            match self.send(t, &email).await {
                Ok(()) => {
                    self.sent.fetch_add(1, Ordering::Relaxed);
                    Outcome::Submitted { remote_ids: vec![message_id] }
                }
                Err(e) => {
                    self.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(connector = %self.name, id = %msg.id, error = %e, "SMTP send failed");
                    let code = e.status().map(|c| format!("smtp_{c}"));
                    let text = e.to_string();
                    if e.is_permanent() {
                        let err = DeliveryError::new(ErrorClass::Permanent, ErrorKind::Rejected, text);
                        Outcome::PermFail { error: err.with_code(code.unwrap_or_else(|| "smtp_5xx".into())) }
                    } else if e.is_transient() {
                        let err = DeliveryError::new(ErrorClass::Temporary, ErrorKind::Temporary, text);
                        Outcome::TempFail { error: err.with_code(code.unwrap_or_else(|| "smtp_4xx".into())), retry_after: None }
                    } else {
                        let err = DeliveryError::new(ErrorClass::Temporary, ErrorKind::LinkError, text);
                        Outcome::TempFail { error: err, retry_after: None }
                    }
                }
            }
        })
    }

    fn is_up(&self) -> bool {
        !self.down.load(Ordering::Relaxed) && self.transport.get().is_some()
    }

    fn status(&self) -> serde_json::Value {
        serde_json::json!({
            "relay": format!("{}:{}", self.cfg.host, self.cfg.effective_port()),
            "tls": self.cfg.tls,
            "sent": self.sent.load(Ordering::Relaxed),
            "failed": self.failed.load(Ordering::Relaxed),
        })
    }

    fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::Relaxed);
    }

    /// Bounces come back as mail (a DSN), not as receipts on this link.
    fn wants_receipts(&self) -> bool {
        false
    }
}
