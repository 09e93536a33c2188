//! XMPP (`type = "xmpp"`, on `tokio-xmpp` with rustls): one account that sends each message as
//! a `<message type="chat"/>` to a bare JID and stores the chat messages it gets as inbound
//! messages (channel `xmpp`). The client logs in with STARTTLS (the system's roots; a private
//! CA through `SSL_CERT_FILE`), reconnects with backoff on its own, and resumes the stream
//! with XEP-0198 where the server offers it, sending again what the server had not acked.
//!
//! A message counts as submitted once the server acks it (XEP-0198), or once written when the
//! server has no stream management; the stanza id (the message's id) is its remote id. An ack
//! that does not come within `timeout_s` means the session is dead (the client reports no
//! loss, and after a server restart it kept trying to resume a session the server no longer
//! had): the client is replaced by a fresh one and the message requeued — sent again, so a
//! message the server had taken without its ack reaching us arrives twice, as may what the
//! given-up client still had queued (at most `window` + its queue of 16 per lost session).
//! XEP-0184 receipts
//! mark it `delivered`; an error bounce from the server (`service-unavailable` for an unknown
//! account) marks it `undelivered` with `xmpp_<condition>`. Inbound messages that ask for a
//! receipt get one once stored.

pub mod config;

use super::{BoxFuture, Connector, DeliveryError, ErrorClass, ErrorKind, HubSink, Outcome, Receipt, Shutdown, StartError};
use crate::model::{Address, Channel, Content, Envelope, Message, State};
use config::XmppConfig;
use futures::StreamExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio_xmpp::connect::DnsConfig;
use tokio_xmpp::parsers::message::{Id, Lang, Message as Stanza_, MessageType};
use tokio_xmpp::parsers::receipts::{Received, Request};
use tokio_xmpp::parsers::stanza_error::StanzaError;
use tokio_xmpp::stanzastream::StanzaStage;
use tokio_xmpp::xmlstream::Timeouts;
use tokio::sync::{mpsc, oneshot};
use tokio_xmpp::stanzastream::{StanzaState, StanzaToken};
use tokio_xmpp::{Client, Event, Stanza};

/// A stanza to send, and where its tracking token goes.
type Cmd = (Stanza, oneshot::Sender<std::io::Result<StanzaToken>>);

/// Inbound messages are kept this long before they expire (they are not sent anywhere).
const INBOUND_VALIDITY_MS: i64 = 7 * 86_400_000;

#[derive(Default)]
struct Counts {
    sent: AtomicU64,
    failed: AtomicU64,
    received: AtomicU64,
    receipts: AtomicU64,
    bounces: AtomicU64,
    sessions: AtomicU64,
}

pub struct XmppConnector {
    name: Arc<str>,
    cfg: XmppConfig,
    /// To the task that owns the client (its `split` halves share a lock whose receiver
    /// misses wake-ups while a send holds it, so one task does both).
    sender: OnceLock<mpsc::Sender<Cmd>>,
    /// Logged in now.
    online: AtomicBool,
    /// The server acks stanzas (XEP-0198) on this session.
    acks: AtomicBool,
    down: AtomicBool,
    /// A sent message got no ack in time: the session is taken for dead (the client does not
    /// say when it loses one, and may keep trying to resume a session the server forgot).
    stuck: tokio::sync::Notify,
    /// Sessions given up so far: a timeout on an older session's message replaces nothing.
    generation: AtomicU64,
    counts: Counts,
}

fn temp(kind: ErrorKind, message: impl Into<String>) -> Outcome {
    Outcome::TempFail { error: DeliveryError::new(ErrorClass::Temporary, kind, message), retry_after: None }
}

impl XmppConnector {
    pub fn new(name: &str, cfg: XmppConfig) -> XmppConnector {
        XmppConnector {
            name: name.into(),
            cfg,
            sender: OnceLock::new(),
            online: AtomicBool::new(false),
            acks: AtomicBool::new(false),
            down: AtomicBool::new(false),
            stuck: tokio::sync::Notify::new(),
            generation: AtomicU64::new(0),
            counts: Counts::default(),
        }
    }

    /// A client for the account (it connects, and reconnects, on its own).
    fn client(&self, password: &str) -> Client {
        let jid: tokio_xmpp::jid::Jid = self.cfg.jid.parse().expect("validated");
        let dns = match &self.cfg.server {
            Some(s) => DnsConfig::addr(s),
            None => DnsConfig::srv_default_client(jid.domain().as_ref()),
        };
        let timeouts = Timeouts { read_timeout: Duration::from_secs(60), response_timeout: Duration::from_secs(30) };
        Client::new_starttls(jid, password.to_string(), dns, timeouts)
    }

    /// Handle what the server sends until the client ends.
    async fn run(self: Arc<Self>, password: String, mut cmds: mpsc::Receiver<Cmd>, hub: Arc<dyn HubSink>, mut shutdown: Shutdown) {
        let mut client = self.client(&password);
        loop {
            let ev = tokio::select! {
                ev = client.next() => ev,
                Some((stanza, reply)) = cmds.recv() => {
                    // The client's queue is full only while its session is stuck: the
                    // sender's timeout then replaces the client; this waits no longer.
                    let limit = Duration::from_secs(self.cfg.timeout_s);
                    if let Ok(r) = tokio::time::timeout(limit, client.send_stanza(stanza)).await {
                        let _ = reply.send(r);
                    }
                    continue;
                }
                _ = self.stuck.notified() => {
                    // A fresh client: a new session, none of the old one's state.
                    tracing::warn!(connector = %self.name, "xmpp session not acking; connecting afresh");
                    self.online.store(false, Ordering::Relaxed);
                    let old = std::mem::replace(&mut client, self.client(&password));
                    tokio::spawn(end(old));
                    continue;
                }
                _ = shutdown.draining() => {
                    end(client).await;
                    return;
                }
            };
            let Some(ev) = ev else { return };
            match ev {
                Event::Online { bound_jid, features, resumed } => {
                    self.acks.store(features.stream_management.is_some() || resumed, Ordering::Relaxed);
                    self.online.store(true, Ordering::Relaxed);
                    self.counts.sessions.fetch_add(1, Ordering::Relaxed);
                    // Available: messages to the bare JID reach this session.
                    if !resumed {
                        let p = tokio_xmpp::parsers::presence::Presence::available();
                        let _ = client.send_stanza(Stanza::Presence(p)).await;
                    }
                    tracing::info!(connector = %self.name, jid = %bound_jid, resumed, "xmpp session online");
                }
                Event::Disconnected(e) => {
                    self.online.store(false, Ordering::Relaxed);
                    tracing::warn!(connector = %self.name, error = %e, "xmpp session lost; reconnecting");
                }
                Event::Stanza(Stanza::Message(m)) => self.on_message(m, &hub, &mut client).await,
                Event::Stanza(_) => {}
            }
        }
    }

    async fn on_message(&self, mut m: Stanza_, hub: &Arc<dyn HubSink>, client: &mut Client) {
        let id = m.id.as_ref().map(|i| i.0.clone());
        if m.type_ == MessageType::Error {
            let Some(id) = id else { return };
            let cond = match m.extract_payload::<StanzaError>() {
                Ok(Some(e)) => format!("xmpp_{}", condition_name(&e)),
                _ => "xmpp_error".into(),
            };
            self.counts.bounces.fetch_add(1, Ordering::Relaxed);
            hub.report(Receipt { connector: self.name.clone(), remote_id: id, state: State::Undelivered, error: Some(cond) });
            return;
        }
        if let Ok(Some(r)) = m.extract_payload::<Received>() {
            self.counts.receipts.fetch_add(1, Ordering::Relaxed);
            hub.report(Receipt { connector: self.name.clone(), remote_id: r.id, state: State::Delivered, error: None });
            return;
        }
        let Some((_, text)) = m.get_best_body_cloned(vec![]) else { return };
        let Some(from) = m.from.as_ref().map(|j| j.to_bare()) else { return };
        let to = m.to.as_ref().map(|j| j.to_bare().to_string()).unwrap_or_else(|| self.cfg.jid.clone());
        let wants_receipt = matches!(m.extract_payload::<Request>(), Ok(Some(_)));
        let mut env = Envelope::new(
            Channel::Xmpp,
            Address::Jid(to),
            Content::Chat(crate::model::Chat { text }),
            crate::model::now_ms() + INBOUND_VALIDITY_MS,
        );
        env.from = Some(Address::Jid(from.to_string()));
        env.metadata = id.as_ref().map(|i| serde_json::json!({"xmpp_id": i}));
        match hub.receive_envelope(self.name.clone(), env, id.clone()).await {
            Ok(_) => {
                self.counts.received.fetch_add(1, Ordering::Relaxed);
                if let (true, Some(id)) = (wants_receipt, id) {
                    let ack = Stanza_::new_with_type(MessageType::Chat, Some(from.into())).with_payload(Received { id });
                    let _ = client.send_stanza(Stanza::Message(ack)).await;
                }
            }
            // Not stored: no receipt, so a sender that resends on a missing receipt tries again.
            Err(e) => tracing::warn!(connector = %self.name, error = %e, "inbound xmpp message not stored"),
        }
    }
}

/// Close a client's stream (a few seconds at most: a stuck one is just dropped).
async fn end(client: Client) {
    let _ = tokio::time::timeout(Duration::from_secs(3), client.send_end()).await;
}

/// The RFC 6120 name of a stanza error's condition (`service-unavailable`).
fn condition_name(e: &StanzaError) -> String {
    let el: tokio_xmpp::minidom::Element = e.defined_condition.clone().into();
    el.name().to_string()
}

impl Connector for XmppConnector {
    fn start(self: Arc<Self>, hub: Arc<dyn HubSink>, shutdown: Shutdown) -> Result<(), StartError> {
        self.cfg.jid.parse::<tokio_xmpp::jid::Jid>().map_err(|e| StartError::Setup(format!("{}: {e}", self.cfg.jid)))?;
        let var = self.cfg.password_env.as_deref().unwrap_or("");
        let password = std::env::var(var).map_err(|_| StartError::Setup(format!("environment variable {var} is not set")))?;
        let (tx, rx) = mpsc::channel(self.cfg.window.max(1));
        let _ = self.sender.set(tx);
        tokio::spawn(self.clone().run(password, rx, hub, shutdown));
        Ok(())
    }

    fn channels(&self) -> &'static [Channel] {
        &[Channel::Xmpp]
    }

    fn deliver<'a>(&'a self, msg: &'a Message) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let Content::Chat(chat) = &msg.envelope.content else {
                let e = DeliveryError::new(ErrorClass::Permanent, ErrorKind::WrongLink, "an XMPP link sends chat messages only");
                return Outcome::PermFail { error: e.with_code("wrong_content") };
            };
            let Ok(to) = msg.envelope.to.parse::<tokio_xmpp::jid::Jid>() else {
                let e = DeliveryError::new(ErrorClass::Permanent, ErrorKind::Unencodable, "not a JID");
                return Outcome::PermFail { error: e.with_code("invalid_destination") };
            };
            let (Some(sender), true) = (self.sender.get(), self.online.load(Ordering::Relaxed)) else {
                return temp(ErrorKind::LinkDown, "not logged in");
            };
            let id = msg.id.to_string();
            let mut stanza = Stanza_::chat(Some(to)).with_body(Lang::new(), chat.text.clone());
            stanza.id = Some(Id(id.clone()));
            if self.cfg.receipts {
                stanza = stanza.with_payload(Request);
            }
            let generation = self.generation.load(Ordering::Relaxed);
            // Handed to the client, written, and acked, all within `timeout_s`.
            let sent = async {
                let (reply, token) = oneshot::channel();
                sender.send((Stanza::Message(stanza), reply)).await.map_err(|_| temp(ErrorKind::LinkDown, "the client has stopped"))?;
                let mut token = match token.await {
                    Ok(Ok(t)) => t,
                    Ok(Err(e)) => return Err(temp(ErrorKind::LinkError, e.to_string())),
                    Err(_) => return Err(temp(ErrorKind::LinkDown, "the client has stopped")),
                };
                let stage = if self.acks.load(Ordering::Relaxed) { StanzaStage::Acked } else { StanzaStage::Sent };
                Ok(token.wait_for(stage).await)
            };
            let out = match tokio::time::timeout(Duration::from_secs(self.cfg.timeout_s), sent).await {
                Ok(Err(o)) => o,
                Ok(Ok(Some(StanzaState::Failed { error }))) => temp(ErrorKind::LinkError, error.to_io_error().to_string()),
                Ok(Ok(Some(StanzaState::Dropped) | None)) => temp(ErrorKind::SessionLost, "the session ended before the message was sent"),
                Ok(Ok(Some(_))) => Outcome::Submitted { remote_ids: vec![id] },
                // The session is replaced (its queue dropped): the message goes again, once
                // more if the server had it but its ack was lost.
                Err(_) => {
                    // Once per session, however many of its messages time out.
                    if self.generation.compare_exchange(generation, generation + 1, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
                        self.stuck.notify_one();
                    }
                    let e = DeliveryError::new(ErrorClass::Unknown, ErrorKind::Timeout, "the server did not take the message in time");
                    Outcome::TempFail { error: e.with_code("ack_timeout"), retry_after: None }
                }
            };
            match &out {
                Outcome::Submitted { .. } => self.counts.sent.fetch_add(1, Ordering::Relaxed),
                _ => self.counts.failed.fetch_add(1, Ordering::Relaxed),
            };
            out
        })
    }

    fn is_up(&self) -> bool {
        self.online.load(Ordering::Relaxed) && !self.down.load(Ordering::Relaxed)
    }

    fn status(&self) -> serde_json::Value {
        let c = &self.counts;
        serde_json::json!({
            "jid": self.cfg.jid,
            "online": self.online.load(Ordering::Relaxed),
            "stream_management": self.acks.load(Ordering::Relaxed),
            "sessions": c.sessions.load(Ordering::Relaxed),
            "sent": c.sent.load(Ordering::Relaxed),
            "failed": c.failed.load(Ordering::Relaxed),
            "received": c.received.load(Ordering::Relaxed),
            "receipts": c.receipts.load(Ordering::Relaxed),
            "bounces": c.bounces.load(Ordering::Relaxed),
        })
    }

    fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::Relaxed);
    }

    fn wants_receipts(&self) -> bool {
        // Bounces come back by id too.
        true
    }
}
