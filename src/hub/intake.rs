//! What connectors hand the hub ([`HubSink`]): submits from peers, receipts (matched, held
//! when they come before the response, retried when unknown), inbound messages and held MO
//! parts; and the hub's background sweeps (early receipts, unknown receipts, blobs).

use super::*;
use crate::connector::{BoxFuture, HubError, HubSink, InboundMessage, Receipt};
use crate::metrics as m;
use crate::outbox::{Changes, StoreError};
use crate::model::{self as message, now_ms, Address, Content, Direction, Message, MessageId, Origin, Sms, State};
use crate::model::Envelope;
use state::ShardEvent;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// Every 100 ms: receipts held for their submit's answer that will not get one (the link has
/// nothing in flight, or they waited [`early::HOLD_MAX`]) are matched once more, else
/// acknowledged and retried in memory like any receipt for an unknown id.
pub(super) async fn release_early_receipts(hub: std::sync::Weak<Hub>) {
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let Some(h) = hub.upgrade() else { return };
        let expired = h.early.expired(Instant::now(), |c| h.link(c).is_none_or(|l| l.inflight() == 0));
        for held in expired {
            if let Err((r, ack)) = h.route_receipt_acked(held.receipt, Some(held.ack)) {
                if let Some(ack) = ack {
                    let _ = ack.send(()); // the peer is answered now
                }
                let _ = h.unknown.send((Instant::now() + Duration::from_millis(100), 0, r));
            }
        }
    }
}

/// A receipt whose remote id is not (yet) known is retried with backoff for about two minutes:
/// a receipt can overtake the commit of the submit that recorded its id when the link is fast
/// and the hub busy. Only then is it counted as unknown.
pub(super) async fn retry_unknown_receipts(
    hub: std::sync::Weak<Hub>,
    mut rx: mpsc::UnboundedReceiver<(Instant, u8, Receipt)>,
) {
    const TRIES: u8 = 14; // 100 ms doubling, capped at 10 s: about 2 minutes in all
    const MAX_QUEUED: usize = 1_000_000;
    let mut q: VecDeque<(Instant, u8, Receipt)> = VecDeque::new();
    loop {
        let wait = q
            .front()
            .map(|(t, ..)| t.saturating_duration_since(Instant::now()))
            .unwrap_or(Duration::from_secs(3600));
        tokio::select! {
            item = rx.recv() => match item {
                Some(i) if q.len() < MAX_QUEUED => q.push_back(i),
                Some((_, _, r)) => {
                    metrics::counter!(m::RECEIPTS_UNKNOWN_TOTAL, m::L_CONNECTOR => r.connector.to_string()).increment(1);
                    tracing::warn!(connector = %r.connector, remote_id = %r.remote_id, "receipt dropped: too many receipts waiting for their message");
                }
                None => return,
            },
            _ = tokio::time::sleep(wait) => {}
        }
        let Some(h) = hub.upgrade() else { return };
        let now = Instant::now();
        while q.front().is_some_and(|(t, ..)| *t <= now) {
            let Some((_, tries, r)) = q.pop_front() else {
                break;
            };
            if let Err(r) = h.route_receipt(r) {
                if tries + 1 >= TRIES {
                    metrics::counter!(m::RECEIPTS_UNKNOWN_TOTAL, m::L_CONNECTOR => r.connector.to_string()).increment(1);
                    tracing::warn!(connector = %r.connector, remote_id = %r.remote_id, "receipt for an unknown message id");
                } else {
                    let delay = Duration::from_millis((100u64 << tries.min(7)).min(10_000));
                    q.push_back((now + delay, tries + 1, r));
                }
            }
        }
    }
}

/// Every ten minutes, remove the blobs no message refers to that are older than
/// `outbox.blob_grace_s`.
pub(super) async fn sweep_blobs(hub: std::sync::Weak<Hub>) {
    loop {
        tokio::time::sleep(Duration::from_secs(600)).await;
        let Some(h) = hub.upgrade() else { return };
        let before = now_ms() - h.cfg.outbox.blob_grace_s as i64 * 1000;
        match h.outbox.sweep_blobs(before).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, "unreferenced blobs removed"),
            Err(e) => tracing::warn!(error = %e, "blob sweep failed"),
        }
    }
}

/// Hourly: inbound fingerprints past their window are removed.
pub(super) async fn sweep_inbound_fingerprints(hub: std::sync::Weak<Hub>) {
    loop {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        let Some(h) = hub.upgrade() else { return };
        match super::dedup::sweep(&h.outbox).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, "inbound fingerprints swept"),
            Err(e) => tracing::warn!(error = %e, "inbound fingerprint sweep failed"),
        }
    }
}

/// A message (or part) a peer sent again: counted; the peer is answered as for the first.
fn duplicate(connector: &str) {
    metrics::counter!(m::INBOUND_DUPLICATES_TOTAL, m::L_CONNECTOR => connector.to_string()).increment(1);
    tracing::info!(connector, "inbound message sent again by the peer: stored once");
}

impl HubSink for Hub {
    fn submit(
        &self,
        draft: Envelope,
    ) -> BoxFuture<'_, Result<MessageId, crate::connector::SubmitError>> {
        use crate::connector::SubmitError;
        Box::pin(async move {
            // Draining: a peer is told to come back later (its queue is "full").
            if self.draining.load(Ordering::Relaxed) {
                return Err(SubmitError::Busy);
            }
            match self.accept(vec![draft]).await {
                Ok(mut v) => match v.pop() {
                    Some(Accepted::Stored(s)) => Ok(s.id),
                    _ => Err(SubmitError::NoRoute),
                },
                Err(AcceptError::Saturated(_)) | Err(AcceptError::Store(StoreError::Busy)) => {
                    Err(SubmitError::Busy)
                }
                Err(AcceptError::Store(e)) => Err(SubmitError::Store(e.to_string())),
            }
        })
    }

    fn thread(&self, in_reply_to: &str, number: &str) -> Option<(MessageId, String)> {
        Hub::thread(self, in_reply_to, number)
    }

    fn listen(&self, listener: Arc<dyn crate::connector::Listener>) {
        self.listeners.write().push(listener);
    }

    fn report_and_wait(&self, receipt: Receipt) -> BoxFuture<'_, bool> {
        let (tx, rx) = oneshot::channel();
        // The ack is dropped unsent when the change could not be committed.
        let wait = Box::pin(async move { rx.await.is_ok() });
        match self.route_receipt_acked(receipt, Some(tx)) {
            Ok(()) => wait,
            // Its submit may still be waiting for its answer: hold it (unacknowledged) until
            // the remote id is known. Checked again once held, so an id indexed meanwhile is
            // not missed.
            Err((r, Some(ack))) if self.link(&r.connector).is_some_and(|l| l.inflight() > 0) => {
                let (connector, remote_id) = (r.connector.clone(), r.remote_id.clone());
                match self.early.hold(r, ack) {
                    Ok(()) => {
                        if let Some((id, part)) = self.remote_index.get(&connector, &remote_id) {
                            for h in self.early.take(&connector, &remote_id) {
                                self.apply_receipt(id, part, h.receipt, Some(h.ack));
                            }
                        }
                        wait
                    }
                    Err((r, _)) => {
                        let _ = self.unknown.send((Instant::now() + Duration::from_millis(100), 0, r));
                        Box::pin(async { true })
                    }
                }
            }
            // Not (yet) known: queue it for retries and ack the peer now; the receipt is kept
            // in memory only, which is what every gateway does with receipts it cannot match.
            Err((r, _)) => {
                let _ = self
                    .unknown
                    .send((Instant::now() + Duration::from_millis(100), 0, r));
                Box::pin(async { true })
            }
        }
    }

    fn reconcile(&self, connector: Arc<str>, id: MessageId, part: u16, remote_id: String) {
        if self.keeps_receipts(&connector) {
            self.index_remote(&connector, &remote_id, id, part);
        }
        let shard = id.shard(self.actors.len() as u32) as usize;
        let tx = self.actors[shard].clone();
        tokio::spawn(async move { tx.send(ShardEvent::Reconcile { connector, id, part, remote_id }).await });
    }

    fn report(&self, receipt: Receipt) {
        if let Err(r) = self.route_receipt(receipt) {
            let _ = self
                .unknown
                .send((Instant::now() + Duration::from_millis(100), 0, r));
        }
    }

    fn report_for(&self, id: MessageId, state: State, error: Option<String>) {
        let r = Receipt { connector: "".into(), remote_id: String::new(), state, error };
        self.apply_receipt(id, 0, r, None);
    }

    fn receive_envelope(&self, connector: Arc<str>, env: Envelope, peer_id: Option<String>) -> BoxFuture<'_, Result<MessageId, HubError>> {
        Box::pin(async move {
            let from = env.from.as_deref().unwrap_or("");
            let fp = match &peer_id {
                Some(p) => Some(super::dedup::Fingerprint::by_id(&connector, from, p)),
                None => {
                    let content = postcard::to_allocvec(&env.content).unwrap_or_default();
                    super::dedup::Fingerprint::by_content(&connector, from, &[env.to.as_bytes(), &content], self.cfg.outbox.inbound_dedup_s)
                }
            };
            if let Some(prev) = fp.as_ref().and_then(|f| f.seen(&self.outbox)).and_then(|s| s.parse().ok()) {
                duplicate(&connector);
                return Ok(prev);
            }
            let id = self.ids.next();
            let mut extra = Changes::new();
            if let Some(f) = &fp {
                f.remember(Some(id), &mut extra);
            }
            self.store_received(id, &connector, env, extra).await?;
            Ok(id)
        })
    }

    fn put_blob<'a>(&'a self, bytes: &'a [u8]) -> BoxFuture<'a, Result<String, HubError>> {
        Box::pin(async move {
            self.outbox.put_blob(bytes).await.map(|d| d.to_string()).map_err(|e| match e {
                StoreError::Busy => HubError::Busy,
                e => HubError::Store(e.to_string()),
            })
        })
    }

    fn blob(&self, digest: &str) -> Option<Vec<u8>> {
        let d: crate::outbox::Digest = digest.parse().ok()?;
        self.outbox.get_blob(&d).ok().flatten()
    }

    fn receive(&self, inbound: InboundMessage) -> BoxFuture<'_, Result<MessageId, HubError>> {
        Box::pin(self.store_inbound(inbound, Changes::new()))
    }

    fn hold_part(&self, connector: Arc<str>, part: crate::connector::HeldPart) -> BoxFuture<'_, Result<(), HubError>> {
        Box::pin(async move {
            let value = postcard::to_allocvec(&part).map_err(|e| HubError::Store(e.to_string()))?;
            let shard = (part.reference as u32) % self.outbox.shards().len() as u32;
            let mut changes = Changes::new();
            let body = postcard::to_allocvec(&part.body).unwrap_or_default();
            let place = [part.reference.to_le_bytes().as_slice(), &[part.total, part.seq]].concat();
            let fp = super::dedup::Fingerprint::by_content(&connector, &part.sender, &[part.receiver.as_bytes(), &place, &body], self.cfg.outbox.inbound_dedup_s);
            if let Some(f) = &fp {
                if f.seen(&self.outbox).is_some() {
                    duplicate(&connector);
                    return Ok(());
                }
                f.remember(None, &mut changes);
            }
            changes.hold_part(&connector, &part, value);
            self.outbox.write(shard, changes, vec![], 0).await.map_err(|e| match e {
                StoreError::Busy => HubError::Busy,
                e => HubError::Store(e.to_string()),
            })
        })
    }

    fn held_parts(&self, connector: &str) -> Vec<crate::connector::HeldPart> {
        match self.outbox.held_parts(connector) {
            Ok(values) => values.iter().filter_map(|v| postcard::from_bytes(v).ok()).collect(),
            Err(e) => {
                tracing::error!(connector, error = %e, "cannot read held MO parts");
                Vec::new()
            }
        }
    }

    fn receive_assembled(&self, inbound: InboundMessage, key: crate::codec::reassembly::PartKey) -> BoxFuture<'_, Result<MessageId, HubError>> {
        let mut drops = Changes::new();
        drops.drop_parts(&inbound.connector, &key);
        Box::pin(self.store_inbound(inbound, drops))
    }
}

impl Hub {
    /// Store an inbound message (with `extra` changes in the same write).
    pub(super) async fn store_inbound(&self, inbound: InboundMessage, mut extra: Changes) -> Result<MessageId, HubError> {
        {
            let now = now_ms();
            let fp = match &inbound.dedup_id {
                Some(p) => Some(super::dedup::Fingerprint::by_id(&inbound.connector, &inbound.from, p)),
                None => {
                    let body = postcard::to_allocvec(&inbound.body).unwrap_or_default();
                    let port = inbound.dest_port.unwrap_or(0).to_le_bytes();
                    super::dedup::Fingerprint::by_content(&inbound.connector, &inbound.from, &[inbound.to.as_bytes(), &body, &port], self.cfg.outbox.inbound_dedup_s)
                }
            };
            if let Some(prev) = fp.as_ref().and_then(|f| f.seen(&self.outbox)).and_then(|s| s.parse().ok()) {
                duplicate(&inbound.connector);
                return Ok(prev);
            }
            let id = self.ids.next();
            if let Some(f) = &fp {
                f.remember(Some(id), &mut extra);
            }
            let (coding, segments) = match &inbound.body {
                message::Body::Text(t) => {
                    let m = crate::codec::measure(t);
                    (m.coding, m.segments as u16)
                }
                message::Body::Binary { .. } => (crate::codec::Coding::Binary, 1),
            };
            // A binary payload carrying WBXML (bare, or in a WAP Push) is decoded; an XForms
            // submission is kept as structured JSON next to the raw bytes.
            let mut metadata = inbound.metadata.unwrap_or(serde_json::Value::Null);
            if let message::Body::Binary { data, .. } = &inbound.body {
                if let Some(doc) = crate::codec::wbxml::find_in_sms(data, inbound.dest_port)
                    .and_then(|b| crate::codec::wbxml::decode(b).ok())
                {
                    if !metadata.is_object() {
                        metadata = serde_json::json!({});
                    }
                    metadata["xml"] = serde_json::Value::String(doc.to_xml());
                    metadata["xform"] = crate::codec::xform::from_element(&doc.root).to_json();
                }
            }
            let env = Envelope {
                channel: crate::model::Channel::Sms,
                from: Some(Address::sms(inbound.from)),
                to: Address::sms(inbound.to),
                content: Content::Sms(Sms {
                    body: inbound.body,
                    udh: None,
                    coding,
                    segments,
                }),
                client_ref: None,
                metadata: (!metadata.is_null()).then_some(metadata),
                tags: Vec::new(),
                priority: 0,
                send_at: None,
                expires_at: now,
                origin: Origin::Network,
            };
            self.store_received(id, &inbound.connector, env, extra).await?;
            Ok(id)
        }
    }
}

impl Hub {
    /// Store a message that came in on `connector` (received; its attachments referenced), with
    /// `extra` changes in the same write, and tell the listeners.
    pub(super) async fn store_received(&self, id: MessageId, connector: &str, env: Envelope, extra: Changes) -> Result<(), HubError> {
        let now = now_ms();
        let mut msg = Message::new(id, Direction::Inbound, env, State::Received, now, now);
        msg.delivery.connector = Some(connector.to_string());
        let shard = id.shard(self.outbox.shards().len() as u32);
        let mut ops = Changes::new();
        ops.store(&msg);
        ops.ref_attachments(&msg);
        ops.extend(extra);
        let hooks = self.webhooks.on_inbound(&msg, &crate::webhooks::inbound_json(&msg), &self.ids, &mut ops);
        let forwards = self.forwards_for(&msg);
        let store_error = |e: StoreError| match e {
            StoreError::Busy => HubError::Busy,
            e => HubError::Store(e.to_string()),
        };
        if forwards.is_empty() {
            self.outbox.write(shard, ops, vec![], 1).await.map_err(store_error)?;
        } else {
            // The received message and what it is forwarded as: one write.
            let accepted = self.accept_with(forwards, ops).await.map_err(|e| match e {
                super::AcceptError::Saturated(_) => HubError::Busy,
                super::AcceptError::Store(e) => store_error(e),
            })?;
            for a in accepted {
                match a {
                    super::Accepted::Stored(s) => {
                        metrics::counter!(m::FORWARDED_TOTAL).increment(1);
                        tracing::debug!(parent = %id, forward = %s.id, to = %s.to, "forwarded");
                    }
                    super::Accepted::NoRoute(d) => {
                        metrics::counter!(m::FORWARD_FAILED_TOTAL).increment(1);
                        tracing::warn!(parent = %id, to = %d.to, "cannot forward: no route for this address");
                    }
                }
            }
        }
        metrics::counter!(m::INBOUND_TOTAL, m::L_CONNECTOR => connector.to_string()).increment(1);
        if hooks > 0 {
            self.webhooks.wake.notify_waiters();
        }
        for l in self.listeners.read().iter() {
            l.on_inbound(&msg);
        }
        Ok(())
    }
}
