//! `type = "smpp-server"`: downstream ESMEs bind here (transmitter, receiver or transceiver),
//! authenticated per account (passwords hashed in the config), with a per-account session limit
//! and TPS (`ESME_RTHROTTLED` beyond). `submit_sm` goes into the hub and is answered with our
//! message id only after the outbox write. Receipts for those messages and MO for the account's
//! numbers go back as `deliver_sm` to the account's receiving sessions, through a window of
//! outstanding `deliver_sm` per session; while none is bound they wait in memory.

use super::pdu_view;
use super::sm_fields::SmFields;
use super::config::{SmppAccount, SmppServerConfig};
use crate::connector::ratelimit::TokenBucket;
use crate::connector::{
    BoxFuture, Shutdown, StartError, Connector, DeliveryError, ErrorClass, ErrorKind, HubSink, Listener, Outcome, SubmitError,
};
use crate::model::request::{check_body, BodySpec};
use crate::model::{now_ms, Address, Body, Content, Envelope, Message, Origin, State};
use crate::secret::{parse_hash, Verifier};
use futures::StreamExt;
use parking_lot::Mutex;
use super::c;
use rusmpp::pdus::{
    BindReceiverResp, BindTransceiverResp, BindTransmitterResp, DeliverSm, SubmitSmResp,
};
use rusmpp::types::OctetString;
use rusmpp::values::{DataCoding, MessageState, Npi, Ton};
use rusmpp::{Command, CommandStatus, Pdu};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::{Notify, Semaphore};

struct Account {
    cfg: SmppAccount,
    verifier: Verifier,
    sessions: AtomicU32,
    bucket: TokenBucket,
    /// deliver_sm waiting for a receiving session.
    queue: Mutex<VecDeque<DeliverSm>>,
    queued: Notify,
}

/// The SMPP server connector.
pub struct SmppServer {
    name: Arc<str>,
    cfg: SmppServerConfig,
    accounts: Vec<Arc<Account>>,
    hub: OnceLock<Arc<dyn HubSink>>,
    local: OnceLock<SocketAddr>,
    submits: AtomicU64,
    receipts: AtomicU64,
}

const MAX_QUEUED: usize = 100_000;

impl SmppServer {
    pub fn new(name: &str, cfg: SmppServerConfig) -> Self {
        let accounts = cfg
            .accounts
            .iter()
            .map(|a| {
                Arc::new(Account {
                    verifier: Verifier::new(parse_hash(&a.password).into_iter().collect()),
                    cfg: a.clone(),
                    sessions: AtomicU32::new(0),
                    bucket: TokenBucket::new(a.tps, 0),
                    queue: Mutex::new(VecDeque::new()),
                    queued: Notify::new(),
                })
            })
            .collect();
        SmppServer {
            name: name.into(),
            cfg,
            accounts,
            hub: OnceLock::new(),
            local: OnceLock::new(),
            submits: AtomicU64::new(0),
            receipts: AtomicU64::new(0),
        }
    }

    /// Where it listens (known once started).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local.get().copied()
    }

    fn account(&self, system_id: &str) -> Option<&Arc<Account>> {
        self.accounts.iter().find(|a| a.cfg.system_id == system_id)
    }

    fn enqueue(&self, acct: &Account, sm: DeliverSm) {
        let mut q = acct.queue.lock();
        if q.len() < MAX_QUEUED {
            q.push_back(sm);
        } else {
            tracing::warn!(connector = %self.name, account = %acct.cfg.system_id, "deliver_sm queue full; dropping");
        }
        drop(q);
        acct.queued.notify_waiters();
    }

    async fn session<S>(self: Arc<Self>, stream: S)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (mut reader, tx, writer) = super::split_session(stream);
        // Bind phase.
        let bind_timeout = Duration::from_secs(self.cfg.bind_timeout_s);
        let first = tokio::time::timeout(bind_timeout, reader.next()).await;
        let Ok(Some(Ok(cmd))) = first else {
            drop(tx);
            let _ = writer.await;
            return;
        };
        let seq = cmd.sequence_number();
        let (sid, pw, can_send, can_receive) = match cmd.pdu() {
            Some(Pdu::BindTransmitter(b)) => (
                b.system_id.as_str().to_string(),
                b.password.as_str().to_string(),
                true,
                false,
            ),
            Some(Pdu::BindReceiver(b)) => (
                b.system_id.as_str().to_string(),
                b.password.as_str().to_string(),
                false,
                true,
            ),
            Some(Pdu::BindTransceiver(b)) => (
                b.system_id.as_str().to_string(),
                b.password.as_str().to_string(),
                true,
                true,
            ),
            _ => {
                let _ = tx.send(Command::new(
                    CommandStatus::EsmeRinvbndsts,
                    seq,
                    Pdu::GenericNack,
                ));
                drop(tx);
                let _ = writer.await;
                return;
            }
        };
        let resp_pdu = |kind: &Option<&Pdu>| -> Pdu {
            match kind {
                Some(Pdu::BindTransmitter(_)) => BindTransmitterResp::builder()
                    .system_id(c("postern"))
                    .build()
                    .into(),
                Some(Pdu::BindReceiver(_)) => BindReceiverResp::builder()
                    .system_id(c("postern"))
                    .build()
                    .into(),
                _ => BindTransceiverResp::builder()
                    .system_id(c("postern"))
                    .build()
                    .into(),
            }
        };
        let acct = match self.account(&sid) {
            Some(a) if a.verifier.check(&pw) => a.clone(),
            Some(_) => {
                let _ = tx.send(Command::new(
                    CommandStatus::EsmeRinvpaswd,
                    seq,
                    resp_pdu(&cmd.pdu()),
                ));
                drop(tx);
                let _ = writer.await;
                return;
            }
            None => {
                let _ = tx.send(Command::new(
                    CommandStatus::EsmeRinvsysid,
                    seq,
                    resp_pdu(&cmd.pdu()),
                ));
                drop(tx);
                let _ = writer.await;
                return;
            }
        };
        if acct.sessions.fetch_add(1, Ordering::AcqRel) >= acct.cfg.max_binds {
            acct.sessions.fetch_sub(1, Ordering::AcqRel);
            let _ = tx.send(Command::new(
                CommandStatus::EsmeRalybnd,
                seq,
                resp_pdu(&cmd.pdu()),
            ));
            drop(tx);
            let _ = writer.await;
            return;
        }
        let _ = tx.send(Command::new(
            CommandStatus::EsmeRok,
            seq,
            resp_pdu(&cmd.pdu()),
        ));
        tracing::info!(connector = %self.name, account = %sid, "ESME bound");

        // Receiving sessions push queued deliver_sm through a window.
        let window = Arc::new(Semaphore::new(self.cfg.window.max(1)));
        let out_seq = Arc::new(AtomicU32::new(1));
        let pusher = can_receive.then(|| {
            let (acct, tx, window, out_seq) =
                (acct.clone(), tx.clone(), window.clone(), out_seq.clone());
            tokio::spawn(async move {
                loop {
                    let next = acct.queue.lock().pop_front();
                    match next {
                        Some(sm) => {
                            let Ok(permit) = window.clone().acquire_owned().await else {
                                return;
                            };
                            permit.forget(); // given back by deliver_sm_resp
                            if tx
                                .send(Command::new(
                                    CommandStatus::EsmeRok,
                                    out_seq.fetch_add(1, Ordering::Relaxed),
                                    sm,
                                ))
                                .is_err()
                            {
                                return;
                            }
                        }
                        None => {
                            let wait = acct.queued.notified();
                            if acct.queue.lock().is_empty() {
                                let _ = tokio::time::timeout(Duration::from_secs(1), wait).await;
                            }
                        }
                    }
                }
            })
        });

        while let Some(item) = reader.next().await {
            let Ok(cmd) = item else {
                // Framing lost: NACK and close only this session.
                tracing::warn!(connector = %self.name, account = %sid, "undecodable SMPP frame; closing the session");
                metrics::counter!(crate::metrics::SMPP_FRAME_ERRORS_TOTAL, crate::metrics::L_CONNECTOR => self.name.to_string()).increment(1);
                let _ = tx.send(Command::new(
                    CommandStatus::EsmeRinvcmdlen,
                    0,
                    Pdu::GenericNack,
                ));
                break;
            };
            let seq = cmd.sequence_number();
            match cmd.pdu() {
                Some(Pdu::SubmitSm(sm)) if can_send => {
                    if !acct.bucket.reserve().is_zero() {
                        let _ = tx.send(Command::new(
                            CommandStatus::EsmeRthrottled,
                            seq,
                            SubmitSmResp::builder().message_id(c("")).build(),
                        ));
                        continue;
                    }
                    let (this, tx, sid, f) = (self.clone(), tx.clone(), sid.clone(), SmFields::of_submit(sm));
                    tokio::spawn(async move {
                        let (status, id) = this.submit(f, &sid).await;
                        let _ = tx.send(Command::new(
                            status,
                            seq,
                            SubmitSmResp::builder().message_id(c(&id)).build(),
                        ));
                    });
                }
                Some(Pdu::SubmitSm(_)) => {
                    let _ = tx.send(Command::new(
                        CommandStatus::EsmeRinvbndsts,
                        seq,
                        SubmitSmResp::builder().message_id(c("")).build(),
                    ));
                }
                Some(Pdu::DeliverSmResp(_)) => window.add_permits(1),
                Some(Pdu::EnquireLink) => {
                    let _ = tx.send(Command::new(
                        CommandStatus::EsmeRok,
                        seq,
                        Pdu::EnquireLinkResp,
                    ));
                }
                Some(Pdu::Unbind) => {
                    let _ = tx.send(Command::new(CommandStatus::EsmeRok, seq, Pdu::UnbindResp));
                    break;
                }
                Some(Pdu::EnquireLinkResp) | Some(Pdu::GenericNack) => {}
                _ => {
                    let _ = tx.send(Command::new(
                        CommandStatus::EsmeRinvcmdid,
                        seq,
                        Pdu::GenericNack,
                    ));
                }
            }
        }
        if let Some(p) = pusher {
            p.abort();
        }
        acct.sessions.fetch_sub(1, Ordering::AcqRel);
        drop(tx);
        let _ = tokio::time::timeout(Duration::from_secs(1), writer).await;
    }

    /// Put one submit_sm into the hub. Returns the response status and our message id.
    async fn submit(&self, f: SmFields, account: &str) -> (CommandStatus, String) {
        let Some(hub) = self.hub.get() else {
            return (CommandStatus::EsmeRsyserr, String::new());
        };
        let dest = f.destination_addr.as_str();
        let to = if dest.starts_with('+') {
            dest.to_string()
        } else {
            format!("+{dest}")
        };
        let src = f.source_addr.as_str();
        let from = match f.source_addr_ton {
            1 if !src.is_empty() => Some(format!("+{}", src.trim_start_matches('+'))),
            _ if !src.is_empty() => Some(src.to_string()),
            _ => None,
        };
        let dc = f.data_coding;
        let (udh, payload) = f.split_udh();
        let udh = udh.map(<[u8]>::to_vec);
        let text = pdu_view::short_message_text(dc, payload);
        let spec = match (dc, text) {
            (0 | 1 | 3 | 8, Some(t)) => BodySpec {
                text: Some(t),
                binary: None,
                data_coding: None,
                coding: if dc == 8 {
                    Some(crate::codec::Coding::Ucs2)
                } else {
                    None
                },
                udh: udh.clone(),
            },
            _ => BodySpec {
                text: None,
                binary: Some(payload.to_vec()),
                data_coding: Some(dc),
                coding: None,
                udh: udh.clone(),
            },
        };
        let Ok(sms) = check_body(spec, 255) else {
            return (CommandStatus::EsmeRinvmsglen, String::new());
        };
        let rd = f.registered_delivery;
        let now = now_ms();
        let draft = Envelope {
            channel: crate::model::Channel::Sms,
            from: from.map(Address::sms),
            to: Address::sms(to),
            content: Content::Sms(sms),
            client_ref: None,
            metadata: Some(serde_json::json!({"smpp": {"registered_delivery": rd}})),
            tags: Vec::new(),
            priority: f.priority.min(3),
            send_at: None,
            expires_at: now + 48 * 3600 * 1000,
            origin: Origin::Peer {
                connector: self.name.to_string(),
                account: account.to_string(),
            },
        };
        match hub.submit(draft).await {
            Ok(id) => {
                self.submits.fetch_add(1, Ordering::Relaxed);
                (CommandStatus::EsmeRok, id.to_string())
            }
            Err(SubmitError::NoRoute) => (CommandStatus::EsmeRinvdstadr, String::new()),
            Err(SubmitError::Busy) => (CommandStatus::EsmeRmsgqful, String::new()),
            Err(SubmitError::Store(_)) => (CommandStatus::EsmeRsyserr, String::new()),
        }
    }
}

fn receipt_for(msg: &Message, state: State) -> DeliverSm {
    let (stat, ms) = match state {
        State::Delivered => ("DELIVRD", MessageState::Delivered),
        State::Expired => ("EXPIRED", MessageState::Expired),
        State::Failed => ("REJECTD", MessageState::Rejected),
        _ => ("UNDELIV", MessageState::Undeliverable),
    };
    let id = msg.id.to_string();
    let sub = msg.envelope.content.parts();
    let dlvrd = if state == State::Delivered { sub } else { 0 };
    let date = super::dlr::receipt_date;
    let done = msg.delivery.history.last().map(|t| t.at).unwrap_or(msg.created_at);
    let preview: String = msg.text().unwrap_or("").chars().take(20).collect();
    let text = format!("id:{id} sub:{sub:03} dlvrd:{dlvrd:03} submit date:{} done date:{} stat:{stat} err:{} text:{preview}", date(msg.created_at), date(done), if state == State::Delivered { "000" } else { "001" });
    let septets = crate::codec::gsm7::to_septets(&text).unwrap_or_else(|_| text.clone().into_bytes());
    super::receipt_deliver_sm(&id, msg.envelope.to.trim_start_matches('+'), msg.envelope.from.as_deref().unwrap_or("").trim_start_matches('+'), Some(septets), Some(ms))
}

fn mo_for(msg: &Message) -> DeliverSm {
    let (dc, bytes) = match msg.sms().map(|s| &s.body) {
        Some(Body::Binary { data, data_coding }) => (*data_coding, data.clone()),
        _ => {
            let t = msg.text().unwrap_or("");
            match crate::codec::gsm7::to_septets(t) {
                Ok(s) => (0u8, s),
                Err(_) => (8u8, crate::codec::ucs2::encode(t)),
            }
        }
    };
    let from = msg.envelope.from.as_deref().unwrap_or("");
    DeliverSm::builder()
        .source_addr_ton(if from.starts_with('+') {
            Ton::International
        } else {
            Ton::Unknown
        })
        .source_addr_npi(Npi::Isdn)
        .source_addr(c(from.trim_start_matches('+')))
        .dest_addr_ton(Ton::Unknown)
        .dest_addr_npi(Npi::Isdn)
        .destination_addr(c(msg.envelope.to.trim_start_matches('+')))
        .data_coding(DataCoding::from(dc))
        .short_message(
            OctetString::from_vec(bytes.into_iter().take(254).collect())
                .unwrap_or_else(|_| OctetString::empty()),
        )
        .build()
}

impl Listener for SmppServer {
    fn on_state(&self, msg: &Message, state: State) {
        if !state.is_final() || state == State::Received {
            return;
        }
        let Some((conn, account)) = msg.envelope.peer() else {
            return;
        };
        if conn != &*self.name {
            return;
        }
        let wants = msg
            .envelope
            .metadata
            .as_ref()
            .and_then(|m| m["smpp"]["registered_delivery"].as_u64())
            .unwrap_or(0);
        // registered_delivery bits 0-1: 1 = receipt on success and failure, 2 = on failure only.
        let send = match wants & 0x03 {
            1 => true,
            2 => state != State::Delivered,
            _ => false,
        };
        if let (true, Some(acct)) = (send, self.account(account)) {
            self.receipts.fetch_add(1, Ordering::Relaxed);
            self.enqueue(acct, receipt_for(msg, state));
        }
    }

    fn on_inbound(&self, msg: &Message) {
        let to = msg.envelope.to.as_str();
        if let Some(acct) = self.accounts.iter().find(|a| {
            a.cfg
                .numbers
                .iter()
                .any(|n| to == n || to.starts_with(n.as_str()))
        }) {
            self.enqueue(acct, mo_for(msg));
        }
    }
}

impl Connector for SmppServer {
    fn start(self: Arc<Self>, hub: Arc<dyn HubSink>, mut shutdown: Shutdown) -> Result<(), StartError> {
        // Bind synchronously so the address is known (and conflicts fail) at start.
        let listener = std::net::TcpListener::bind(&self.cfg.listen)
            .and_then(|l| {
                l.set_nonblocking(true)?;
                tokio::net::TcpListener::from_std(l)
            })
            .map_err(|source| StartError::Listen {
                addr: self.cfg.listen.clone(),
                source,
            })?;
        let acceptor = match &self.cfg.tls {
            None => None,
            Some(t) => Some(tokio_rustls::TlsAcceptor::from(
                crate::connector::tls::server_config(&t.cert, &t.key)
                    .map_err(|e| StartError::Setup(format!("SMPP server TLS: {e}")))?,
            )),
        };
        let _ = self.hub.set(hub.clone());
        hub.listen(self.clone());
        if let Ok(a) = listener.local_addr() {
            let _ = self.local.set(a);
            tracing::info!(connector = %self.name, listen = %a, tls = acceptor.is_some(), "SMPP server listening");
        }
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    a = listener.accept() => a,
                    _ = shutdown.draining() => {
                        tracing::info!(connector = %self.name, "draining: no new SMPP connections");
                        return;
                    }
                };
                match accepted {
                    Ok((s, _)) => {
                        let _ = s.set_nodelay(true);
                        let this = self.clone();
                        match acceptor.clone() {
                            None => {
                                tokio::spawn(this.session(s));
                            }
                            Some(acc) => {
                                tokio::spawn(async move {
                                    match tokio::time::timeout(
                                        Duration::from_secs(10),
                                        acc.accept(s),
                                    )
                                    .await
                                    {
                                        Ok(Ok(tls)) => this.session(tls).await,
                                        _ => {
                                            tracing::warn!(connector = %this.name, "TLS handshake failed")
                                        }
                                    }
                                });
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        });
        Ok(())
    }

    fn deliver<'a>(&'a self, _msg: &'a Message) -> BoxFuture<'a, Outcome> {
        Box::pin(async {
            Outcome::PermFail {
                error: DeliveryError::new(
                    ErrorClass::Permanent,
                    ErrorKind::WrongLink, 
                    "an SMPP server takes messages in; route MO to it by account numbers",
                ).with_code("not_outbound"),
            }
        })
    }

    fn is_up(&self) -> bool {
        false // never chosen by a route
    }

    fn status(&self) -> serde_json::Value {
        serde_json::json!({
            "listen": self.local_addr().map(|a| a.to_string()),
            "submits": self.submits.load(Ordering::Relaxed),
            "receipts": self.receipts.load(Ordering::Relaxed),
            "accounts": self.accounts.iter().map(|a| serde_json::json!({"system_id": a.cfg.system_id, "sessions": a.sessions.load(Ordering::Relaxed), "queued": a.queue.lock().len()})).collect::<Vec<_>>(),
        })
    }

    fn set_down(&self, _down: bool) {}
}
