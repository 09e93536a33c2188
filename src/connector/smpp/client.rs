//! `type = "smpp"`: carrier links on rusmppc 0.4. Each of `binds` sessions is kept bound by a
//! supervisor (`session.rs`). Receipts (TLVs or text) are reported to the hub and acked only
//! after the state change is committed; MO messages are stored before `deliver_sm_resp`;
//! `data_sm` gets a `generic_nack` (rusmpp 0.4 cannot answer it). Sending: data_coding per
//! message from our codecs, long messages by UDH, SAR TLVs or `message_payload`, all parts in
//! order on one session; every submit ends (answered, refused, timed out, or its session lost)
//! so that no window slot is ever kept; pacing by [`Pacer`] on `ESME_RTHROTTLED` /
//! `ESME_RMSGQFUL`, with `tps` as a ceiling.

use super::dlr::{self, normalize_id};
use super::pdu_view;
use super::session::{Outstanding, Session};
use super::sm_fields::SmFields;
use super::config::{BindKind, SmppConfig};
use crate::connector::pacing::Pacer;
use crate::connector::{HeldPart, HubError, Shutdown, StartError,
    BoxFuture, Connector, DeliveryError, ErrorClass, ErrorKind, HubSink, InboundMessage, Outcome, Receipt,
};
use crate::model::{Body, Message};
use parking_lot::Mutex;
use rusmpp::pdus::{DeliverSmResp, SubmitSm};
use rusmpp::{Command, CommandStatus, Pdu};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Host, port (default 2775) and whether TLS is on, from `smpp://host:port` or
/// `smpps://host:port` (IPv6 hosts in brackets). Also what `check-config` checks a link's `url`
/// with.
pub fn parse_url(url: &str) -> Result<(String, u16, bool), String> {
    let (rest, tls) = match (url.strip_prefix("smpp://"), url.strip_prefix("smpps://")) {
        (Some(rest), _) => (rest, false),
        (_, Some(rest)) => (rest, true),
        _ => return Err(format!("{url}: not an smpp:// or smpps:// URL")),
    };
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (h, rest) = v6.split_once(']').ok_or_else(|| format!("{url}: unclosed [ in the host"))?;
            (h, rest.strip_prefix(':'))
        }
        None => match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        },
    };
    let port = match port {
        Some(p) => p.parse::<u16>().map_err(|_| format!("{url}: bad port {p}"))?,
        None => 2775,
    };
    if host.is_empty() {
        return Err(format!("{url}: no host"));
    }
    Ok((host.to_string(), port, tls))
}

/// The carrier link.
pub struct SmppConnector {
    name: Arc<str>,
    pub(super) cfg: SmppConfig,
    password: String,
    sessions: Vec<Arc<Session>>,
    next: AtomicUsize,
    pub(super) next_ref: AtomicU16,
    /// Adaptive pacing (see [`Pacer`]), with `tps` as its ceiling.
    pacer: Pacer,
    manual_down: AtomicBool,
    hub: OnceLock<Arc<dyn HubSink>>,
    submitted: AtomicU64,
    reconnects: AtomicU64,
    /// Submits that ended because their session was lost (outcome unknown, requeued).
    lost_in_flight: AtomicU64,
    /// Requests handed to rusmppc and not finished (see `session::Driven`).
    outstanding: Outstanding,
    /// Cancelled when the link stops: supervisors unbind and end.
    stop: CancellationToken,
    /// Submits whose response timed out, by (session, sequence number): a late
    /// `submit_sm_resp` is reconciled with the message instead of being dropped. Entries of a
    /// session go when its connection ends (no answer can come on a dead connection, and the
    /// next one numbers its requests from 1 again).
    late: Mutex<HashMap<(usize, u32), (crate::model::MessageId, u16, std::time::Instant)>>,
    /// Parts of concatenated MO messages (UDH or SAR) waiting for the rest.
    reassembler: Mutex<crate::codec::reassembly::Reassembler>,
    /// data_coding and destination port of each message being reassembled (its first part's).
    part_meta: Mutex<HashMap<crate::codec::reassembly::PartKey, (u8, Option<u16>)>>,
}

/// How long the parts of a concatenated MO wait for the rest before what arrived is stored,
/// marked incomplete (Kannel's `sms-combine-concatenated-mo` waits 1800 s).
const MO_PARTS_TIMEOUT_MS: i64 = 600_000;

/// deliver_sm (receipts, MO) handled at once per session; each is acked after its commit, so
/// this over the commit latency bounds the receipt rate (256 held it to about 45,000/s while
/// a flood of submits kept commits at 5 ms).
pub(super) const INBOUND_CONCURRENCY: usize = 2048;

/// A command_status written `0x0B` or `11`.
pub fn parse_status(s: &str) -> Option<u32> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u32::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

/// Default classification: temporary SMPP statuses (retry on any link) and throttling;
/// anything else not OK is permanent. A connector's `errors` table overrides it.
fn classify_default(status: u32) -> ErrorClass {
    match status {
        0x14 | 0x58 => ErrorClass::Throttled, // ESME_RMSGQFUL, ESME_RTHROTTLED
        0x08 | 0x45 | 0x64 | 0xFE => ErrorClass::Temporary, // SYSERR, SUBMITFAIL, RX_T_APPN, DELIVERYFAILURE
        _ => ErrorClass::Permanent,
    }
}

impl SmppConnector {
    pub fn new(name: &str, cfg: SmppConfig) -> Self {
        let password = cfg
            .password
            .clone()
            .or_else(|| {
                cfg.password_env
                    .as_ref()
                    .and_then(|k| std::env::var(k).ok())
            })
            .unwrap_or_default();
        let kinds: &[BindKind] = match cfg.bind {
            BindKind::Pair => &[BindKind::Transmitter, BindKind::Receiver],
            BindKind::Transceiver => &[BindKind::Transceiver],
            BindKind::Transmitter => &[BindKind::Transmitter],
            BindKind::Receiver => &[BindKind::Receiver],
        };
        let sessions = (0..cfg.binds.max(1))
            .flat_map(|_| kinds.iter())
            .map(|&kind| Arc::new(Session::new(kind)))
            .collect();
        SmppConnector {
            name: name.into(),
            pacer: Pacer::new(cfg.tps),
            cfg,
            password,
            sessions,
            next: AtomicUsize::new(0),
            next_ref: AtomicU16::new(rand::random()),
            manual_down: AtomicBool::new(false),
            hub: OnceLock::new(),
            submitted: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            lost_in_flight: AtomicU64::new(0),
            outstanding: Outstanding::default(),
            stop: CancellationToken::new(),
            late: Mutex::new(HashMap::new()),
            part_meta: Mutex::new(HashMap::new()),
            reassembler: Mutex::new(crate::codec::reassembly::Reassembler::new(
                MO_PARTS_TIMEOUT_MS,
                10_000,
            )),
        }
    }

    pub(super) fn name(&self) -> &Arc<str> {
        &self.name
    }
    pub(super) fn cfg(&self) -> &SmppConfig {
        &self.cfg
    }
    pub(super) fn password(&self) -> &str {
        &self.password
    }
    pub(super) fn outstanding(&self) -> &Outstanding {
        &self.outstanding
    }
    pub(super) fn note_reconnect(&self) {
        self.reconnects.fetch_add(1, Ordering::Relaxed);
    }
    /// A session's connection ended: its timed-out submits can get no late answer now.
    pub(super) fn session_lost(&self, idx: usize) {
        self.late.lock().retain(|(s, _), _| *s != idx);
    }

    pub(super) async fn incoming(&self, session: usize, client: &rusmppc::Client, cmd: Command) {
        let seq = cmd.sequence_number();
        // Every answer below is a request to rusmppc (see `session::Driven`).
        let _o = self.outstanding.track();
        match cmd.pdu() {
            Some(Pdu::DeliverSm(d)) => {
                let f = SmFields::of_deliver(d);
                let stored = if f.is_receipt() {
                    match self.on_receipt(&f).await {
                        true => Ok(()),
                        false => Err(HubError::Store("receipt not committed".into())),
                    }
                } else {
                    self.on_mo(f).await
                };
                match stored {
                    Ok(()) => {
                        let _ = client.deliver_sm_resp(seq, DeliverSmResp::default()).await;
                    }
                    Err(e) => {
                        // Not stored: a temporary error makes the SMSC deliver it again.
                        tracing::error!(connector = %self.name, error = %e, "MO or receipt not stored; answered ESME_RX_T_APPN");
                        let _ = client.status(CommandStatus::EsmeRxTAppn).deliver_sm_resp(seq, DeliverSmResp::default()).await;
                    }
                }
            }
            Some(Pdu::SubmitSmResp(resp)) => {
                // Only late answers reach here (rusmppc gave up waiting for them).
                let late = self.late.lock().remove(&(session, seq));
                match late {
                    Some((id, part, _)) if cmd.status() == CommandStatus::EsmeRok => {
                        let rid = normalize_id(resp.message_id().as_str(), self.cfg.id_format, false);
                        tracing::info!(connector = %self.name, %id, remote_id = %rid, "late submit_sm_resp reconciled");
                        if let Some(hub) = self.hub.get() {
                            hub.reconcile(self.name.clone(), id, part, rid);
                        }
                    }
                    Some((id, ..)) => tracing::info!(connector = %self.name, %id, status = ?cmd.status(), "late submit_sm_resp: refused; the requeued message stands"),
                    None => tracing::debug!(connector = %self.name, seq, "submit_sm_resp for no request"),
                }
            }
            Some(Pdu::DataSm(_)) => {
                // rusmpp 0.4 cannot send data_sm_resp: refuse clearly so the SMSC uses deliver_sm.
                let _ = client.generic_nack(seq).await;
            }
            Some(Pdu::Unbind) => {
                let _ = client.unbind_resp(seq).await;
                let _ = client.close().await;
            }
            _ => {}
        }
    }

    /// `false` when the receipt's state change could not be committed.
    async fn on_receipt(&self, f: &SmFields) -> bool {
        // The TLVs when the SMSC sends them; the receipt text otherwise (and for the error code
        // of a message not delivered), read only then.
        let tlv_state = f.message_state.and_then(dlr::message_state);
        let text = match (&f.receipted_message_id, tlv_state) {
            (Some(_), Some(crate::model::State::Delivered)) => None,
            _ => pdu_view::short_message_text(f.data_coding, f.split_udh().1).and_then(|t| dlr::parse(&t)),
        };
        let Some(id) = f.receipted_message_id.as_deref().or(text.as_ref().and_then(|r| r.id.as_deref())) else { return true };
        let state = tlv_state.or_else(|| text.as_ref().and_then(|r| r.stat.as_deref()).and_then(dlr::stat_state));
        let Some(state) = state else { return true }; // intermediate (ENROUTE, ACCEPTD)
        // The text's `err:`, else the `network_error_code` TLV (with its network type).
        let error = text
            .as_ref()
            .and_then(|r| r.err.as_deref())
            .and_then(|e| e.parse::<u64>().ok())
            .filter(|&e| e != 0)
            .map(|e| format!("{e:03}"))
            .or_else(|| f.network_error.filter(|&(_, c)| c != 0).map(|(t, c)| format!("{c:03} (network type {t})")));
        if let Some(hub) = self.hub.get() {
            let receipt = Receipt {
                connector: self.name.clone(),
                remote_id: normalize_id(id, self.cfg.id_format, true),
                state,
                error,
            };
            return hub.report_and_wait(receipt).await;
        }
        true
    }

    /// An MO message: single, or one part of a concatenated message in any of SMPP's three
    /// forms (UDH in the short message, SAR TLVs, or whole in `message_payload`). Ok once it is
    /// safe to ack: a single message stored, a part held durably until the rest arrives.
    async fn on_mo(&self, f: SmFields) -> Result<(), HubError> {
        use crate::codec::reassembly::{PartBody, PartInfo};
        let Some(hub) = self.hub.get() else { return Err(HubError::Store("starting".into())) };
        let (dc, esm, sar, tlv_port) = (f.data_coding, f.esm_class, f.sar, f.dest_port);
        let (from, to, raw) = (f.source_addr, f.destination_addr, f.payload);
        let (udh, payload) = if esm & 0x40 != 0 && !raw.is_empty() {
            match crate::codec::udh::Udh::parse(&raw) {
                Ok((u, n)) => (Some(u), raw[n..].to_vec()),
                Err(_) => (None, raw),
            }
        } else {
            (None, raw)
        };
        let body = match pdu_view::short_message_text(dc, &payload) {
            Some(t) => PartBody::Text(t),
            None => PartBody::Data(payload),
        };
        let info: Option<PartInfo> = udh
            .as_ref()
            .and_then(|u| u.concat())
            .map(PartInfo::from)
            .or_else(|| sar.map(|(r, t, s)| PartInfo::from_sar(r, t, s)));
        let dest_port = udh.as_ref().and_then(|u| u.ports()).map(|p| p.0).or(tlv_port);
        let Some(i) = info.filter(|i| i.total > 1 && i.seq >= 1 && i.seq <= i.total) else {
            return hub.receive(self.inbound(from, to, body, dc, dest_port, Vec::new())).await.map(|_| ());
        };
        let now = crate::model::now_ms();
        let part = HeldPart { sender: from.clone(), receiver: to.clone(), reference: i.reference, total: i.total, seq: i.seq, body: body.clone(), data_coding: dc, dest_port, at_ms: now };
        self.remember_meta(&part);
        hub.hold_part(self.name.clone(), part).await?;
        let done = {
            let mut r = self.reassembler.lock();
            let mut done = match r.add(&from, &to, i, body, now) {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(connector = %self.name, error = %e, "bad MO part");
                    Vec::new()
                }
            };
            done.extend(r.expire(now));
            done
        };
        for d in done {
            self.store_assembled(hub, d).await;
        }
        Ok(())
    }

    fn inbound(&self, from: String, to: String, body: crate::codec::reassembly::PartBody, dc: u8, dest_port: Option<u16>, missing: Vec<u8>) -> InboundMessage {
        let body = match body {
            crate::codec::reassembly::PartBody::Text(t) => Body::Text(t),
            crate::codec::reassembly::PartBody::Data(d) => Body::Binary { data: d, data_coding: dc },
        };
        InboundMessage {
            connector: self.name.clone(),
            from,
            to,
            body,
            metadata: Some(serde_json::json!({"smpp": {"data_coding": dc}, "incomplete_parts_missing": missing})),
            dest_port,
            // deliver_sm names no message: a re-sent one is told by its content.
            dedup_id: None,
        }
    }

    fn remember_meta(&self, p: &HeldPart) {
        let key = crate::codec::reassembly::PartKey { sender: p.sender.clone(), receiver: p.receiver.clone(), reference: p.reference, total: p.total };
        self.part_meta.lock().entry(key).or_insert((p.data_coding, p.dest_port));
    }

    /// A reassembled (or expired, incomplete) MO: stored with its own data_coding and port, and
    /// its held parts dropped, in one write.
    async fn store_assembled(&self, hub: &Arc<dyn HubSink>, d: crate::codec::reassembly::Reassembled) {
        let key = d.key.clone();
        let (dc, dest_port) = self.part_meta.lock().remove(&key).unwrap_or((0, None));
        let inbound = self.inbound(d.key.sender, d.key.receiver, d.body, dc, dest_port, d.missing);
        if let Err(e) = hub.receive_assembled(inbound, key).await {
            // Its parts stay held: the next start-up reassembles them again.
            tracing::error!(connector = %self.name, error = %e, "reassembled MO not stored");
        }
    }

    /// After a restart: the parts held before it go back into the reassembler; messages that
    /// were complete, or whose time ran out meanwhile, are stored now. Then a minute timer
    /// stores what stays incomplete past the timeout.
    async fn restore_parts(self: Arc<Self>, hub: Arc<dyn HubSink>) {
        use crate::codec::reassembly::PartInfo;
        let held = hub.held_parts(&self.name);
        if !held.is_empty() {
            tracing::info!(connector = %self.name, parts = held.len(), "MO parts restored");
        }
        let mut done = Vec::new();
        {
            let mut r = self.reassembler.lock();
            for p in held {
                self.remember_meta(&p);
                if let Ok(d) = r.add(&p.sender, &p.receiver, PartInfo { reference: p.reference, total: p.total, seq: p.seq }, p.body, p.at_ms) {
                    done.extend(d);
                }
            }
        }
        loop {
            done.extend(self.reassembler.lock().expire(crate::model::now_ms()));
            for d in done.drain(..) {
                self.store_assembled(&hub, d).await;
            }
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
    }

    /// A bound session that may submit: its index, client and end-of-connection token.
    fn pick(&self) -> Option<(usize, rusmppc::Client, CancellationToken)> {
        let n = self.sessions.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .map(|k| (start + k) % n)
            .filter(|&i| self.sessions[i].kind != BindKind::Receiver && self.sessions[i].is_up())
            .find_map(|i| self.sessions[i].current().map(|(c, t)| (i, c, t)))
    }

    /// How a refused submit is classified: the link's `errors` table, else the defaults.
    fn classify(&self, code: u32) -> ErrorClass {
        match self.cfg.errors.iter().find(|(k, _)| parse_status(k) == Some(code)).map(|(_, v)| *v) {
            Some(super::config::ErrorClassName::Temporary) => ErrorClass::Temporary,
            Some(super::config::ErrorClassName::Permanent) => ErrorClass::Permanent,
            Some(super::config::ErrorClassName::Throttled) => ErrorClass::Throttled,
            None => classify_default(code),
        }
    }

    /// Submit one part on a session: the response, or why none came. Ends at once when the
    /// session's connection ends, and in any case within the response timeout plus a margin
    /// (rusmppc's own timeout starts only once the PDU is written).
    async fn submit_part(&self, client: &rusmppc::Client, lost: &CancellationToken, pdu: SubmitSm) -> Result<rusmpp::pdus::SubmitSmResp, SubmitFailure> {
        let _o = self.outstanding.track();
        let limit = Duration::from_secs(self.cfg.response_timeout_s.saturating_mul(2).saturating_add(5));
        tokio::select! {
            biased;
            r = client.submit_sm(pdu) => r.map_err(SubmitFailure::Smpp),
            _ = lost.cancelled() => Err(SubmitFailure::SessionLost),
            _ = tokio::time::sleep(limit) => Err(SubmitFailure::Stuck),
        }
    }
}

/// Why a submit got no usable answer.
enum SubmitFailure {
    Smpp(rusmppc::error::Error),
    /// The connection ended while the submit waited: the SMSC may or may not have it.
    SessionLost,
    /// Neither written nor answered within the hard limit.
    Stuck,
}

impl Connector for SmppConnector {
    fn start(self: Arc<Self>, hub: Arc<dyn HubSink>, _shutdown: Shutdown) -> Result<(), StartError> {
        let _ = self.hub.set(hub.clone());
        tokio::spawn(self.clone().restore_parts(hub));
        for (i, s) in self.sessions.iter().enumerate() {
            tokio::spawn(self.clone().supervise(s.clone(), i, self.stop.clone()));
        }
        Ok(())
    }

    fn deliver<'a>(&'a self, msg: &'a Message) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            if self.cfg.bind == BindKind::Receiver {
                return Outcome::PermFail {
                    error: DeliveryError::new(
                        ErrorClass::Permanent,
                        ErrorKind::WrongLink, 
                        "this link is bound as a receiver",
                    ).with_code("receiver_only"),
                };
            }
            let pdus = match self.build(msg) {
                Ok(p) => p,
                Err(error) => return Outcome::PermFail { error },
            };
            // All parts on one session, in order.
            let Some((session, client, lost)) = self.pick() else {
                return Outcome::TempFail {
                    error: DeliveryError::new(ErrorClass::Temporary, ErrorKind::LinkDown, "no SMPP session is bound"),
                    retry_after: None,
                };
            };
            let mut ids = Vec::with_capacity(pdus.len());
            for (part, p) in pdus.into_iter().enumerate() {
                self.pacer.acquire().await;
                match self.submit_part(&client, &lost, p).await {
                    Ok(resp) => {
                        self.pacer.accepted();
                        ids.push(normalize_id(resp.message_id().as_str(), self.cfg.id_format, false));
                    }
                    Err(SubmitFailure::Smpp(rusmppc::error::Error::UnexpectedResponse { response })) => {
                        let status = response.status();
                        let class = self.classify(u32::from(status));
                        if class == ErrorClass::Throttled {
                            self.pacer.throttled();
                        } else {
                            self.pacer.accepted(); // answered: not congestion
                        }
                        let kind = match class {
                            ErrorClass::Permanent => ErrorKind::Rejected,
                            ErrorClass::Throttled => ErrorKind::Throttled,
                            _ => ErrorKind::Temporary,
                        };
                        let error = DeliveryError::new(class, kind, format!("{status:?}"))
                            .with_code(format!("smpp_0x{:02x}", u32::from(status)));
                        return match class {
                            ErrorClass::Permanent => Outcome::PermFail { error },
                            _ => Outcome::TempFail {
                                error,
                                retry_after: (class == ErrorClass::Throttled).then_some(Duration::from_millis(500)),
                            },
                        };
                    }
                    Err(SubmitFailure::Smpp(rusmppc::error::Error::ResponseTimeout { sequence_number, .. })) => {
                        // Outcome unknown: requeue, after another response timeout so that a
                        // late answer can still be reconciled instead of sending it twice (at
                        // most a window of duplicates either way).
                        let mut late = self.late.lock();
                        late.retain(|_, (_, _, t)| t.elapsed() < Duration::from_secs(600));
                        late.insert((session, sequence_number), (msg.id, part as u16, std::time::Instant::now()));
                        drop(late);
                        return Outcome::TempFail {
                            error: DeliveryError::new(ErrorClass::Unknown, ErrorKind::Timeout, "no submit_sm_resp in time").with_code("response_timeout"),
                            retry_after: Some(Duration::from_secs(self.cfg.response_timeout_s)),
                        };
                    }
                    Err(SubmitFailure::SessionLost) => {
                        // The SMSC may have taken it: requeued at once, so at most the
                        // session's window is sent twice.
                        self.lost_in_flight.fetch_add(1, Ordering::Relaxed);
                        return Outcome::TempFail {
                            error: DeliveryError::new(ErrorClass::Unknown, ErrorKind::SessionLost, "the SMPP connection ended before the submit_sm_resp"),
                            retry_after: Some(Duration::from_millis(250)),
                        };
                    }
                    Err(SubmitFailure::Stuck) => {
                        return Outcome::TempFail {
                            error: DeliveryError::new(ErrorClass::Unknown, ErrorKind::Timeout, "the submit_sm was neither written nor answered in time").with_code("response_timeout"),
                            retry_after: Some(Duration::from_secs(self.cfg.response_timeout_s)),
                        };
                    }
                    Err(SubmitFailure::Smpp(e)) => {
                        return Outcome::TempFail {
                            error: DeliveryError::new(ErrorClass::Temporary, ErrorKind::LinkError, e.to_string()),
                            retry_after: None,
                        };
                    }
                }
            }
            self.submitted.fetch_add(1, Ordering::Relaxed);
            Outcome::Submitted { remote_ids: ids }
        })
    }

    fn is_up(&self) -> bool {
        !self.manual_down.load(Ordering::Relaxed)
            && self.sessions.iter().any(|s| s.kind != BindKind::Receiver && s.is_up())
    }

    fn status(&self) -> serde_json::Value {
        let (throttles, cuts) = self.pacer.throttles();
        serde_json::json!({
            "url": self.cfg.url,
            "system_id": self.cfg.system_id,
            "bind": self.cfg.bind,
            "sessions_up": self.sessions.iter().filter(|s| s.is_up()).count(),
            "sessions": self.sessions.len(),
            "submitted": self.submitted.load(Ordering::Relaxed),
            "throttled": throttles,
            "throttle_events": cuts,
            "reconnects": self.reconnects.load(Ordering::Relaxed),
            "lost_in_flight": self.lost_in_flight.load(Ordering::Relaxed),
            "rate": self.pacer.rate(),
            "tps_ceiling": self.cfg.tps,
        })
    }

    fn stop(&self) {
        self.stop.cancel();
    }

    fn wants_receipts(&self) -> bool {
        self.cfg.dlr
    }

    fn set_down(&self, down: bool) {
        self.manual_down.store(down, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::parse_url;

    #[test]
    fn link_urls() {
        assert_eq!(parse_url("smpp://127.0.0.1:2776").unwrap(), ("127.0.0.1".into(), 2776, false));
        assert_eq!(parse_url("smpps://smsc.example.net").unwrap(), ("smsc.example.net".into(), 2775, true));
        assert_eq!(parse_url("smpps://[::1]:3550/").unwrap(), ("::1".into(), 3550, true));
        assert_eq!(parse_url("smpp://[::1]").unwrap(), ("::1".into(), 2775, false));
        for bad in ["http://x:1", "smpp://:2775", "smpp://host:99999", "host:2775", "ssmpp://x:1"] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }
}
