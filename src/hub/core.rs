//! The hub proper: accept into the outbox, per-shard tasks, receipts and inbound messages.

use super::*;
use crate::config::Config;
use crate::connector::{BoxFuture, HubError, HubSink, InboundMessage, Link, Receipt};
use crate::metrics as m;
use crate::outbox::{Changes, Outbox, StoreError};
use crate::model::address::NumberPlan;
use crate::model::{self as message, now_ms, Address, Content, Direction, IdGen, Message, MessageId, Origin, Sms, State};
use crate::model::Envelope;
use router::Router;
use state::{CancelError, ShardEvent};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use thiserror::Error;
use tokio::sync::{mpsc, oneshot, Notify};

/// Why messages could not be accepted.
#[derive(Debug, Error)]
pub enum AcceptError {
    /// The outbox holds `max_depth` messages already.
    #[error("the outbox is full ({0} messages waiting)")]
    Saturated(i64),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What the API answers about a stored message.
#[derive(Debug, Clone)]
pub struct StoredSummary {
    pub id: MessageId,
    pub to: String,
    pub state: State,
    pub segments: u16,
}

/// Per-draft result of `accept`: the stored message, or why its route was refused.
pub enum Accepted {
    Stored(StoredSummary),
    NoRoute(Envelope),
}

/// Remote id -> (message, part) for messages submitted and waiting for receipts: lets a receipt
/// find its message without a store lookup. Sharded to keep lock hold times short; bounded (a
/// miss falls back to the durable `remote` index).
///
/// Keys are held inline (no allocation per entry, no pointer to chase per lookup). A pair of
/// connector name and remote id that fits in 31 bytes (decimal and hex ids, UUIDs under a
/// short name) is the key itself, compared exactly. A longer pair is keyed by a 128-bit SipHash
/// under two random per-process keys: two such pairs share a key only by a 2^-128 coincidence,
/// which no peer can aim for without the process's keys.
pub struct RemoteIndex {
    shards: Vec<parking_lot::Mutex<foldhash::HashMap<RemoteKey, (MessageId, u16)>>>,
    keys: [std::hash::RandomState; 2],
    /// Picks a key's shard.
    spread: foldhash::fast::RandomState,
    cap_per_shard: usize,
}

/// Byte 0 is the length of the pair written after it (connector, 0xff, remote id; 0xff never
/// occurs in UTF-8, so the split is unambiguous), or [`RemoteKey::DIGEST`] followed by the
/// 16-byte digest of a longer pair.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct RemoteKey([u8; 32]);

impl RemoteKey {
    const DIGEST: u8 = 0xff;
}

impl RemoteIndex {
    fn new() -> Self {
        RemoteIndex {
            shards: (0..16).map(|_| parking_lot::Mutex::new(Default::default())).collect(),
            keys: [std::hash::RandomState::new(), std::hash::RandomState::new()],
            spread: Default::default(),
            cap_per_shard: 65_536,
        }
    }
    fn key(&self, connector: &str, remote_id: &str) -> RemoteKey {
        let (c, r) = (connector.as_bytes(), remote_id.as_bytes());
        let mut k = [0u8; 32];
        let n = c.len() + 1 + r.len();
        if n < k.len() {
            k[0] = n as u8;
            k[1..=c.len()].copy_from_slice(c);
            k[c.len() + 1] = 0xff;
            k[c.len() + 2..=n].copy_from_slice(r);
        } else {
            use std::hash::{BuildHasher, Hasher};
            k[0] = RemoteKey::DIGEST;
            for (i, state) in self.keys.iter().enumerate() {
                let mut h = state.build_hasher();
                h.write(c);
                h.write_u8(0xff);
                h.write(r);
                k[1 + 8 * i..9 + 8 * i].copy_from_slice(&h.finish().to_le_bytes());
            }
        }
        RemoteKey(k)
    }
    fn slot(&self, connector: &str, remote_id: &str) -> (RemoteKey, &parking_lot::Mutex<foldhash::HashMap<RemoteKey, (MessageId, u16)>>) {
        use std::hash::BuildHasher;
        let key = self.key(connector, remote_id);
        let shard = self.spread.hash_one(key.0) as usize % self.shards.len();
        (key, &self.shards[shard])
    }
    pub fn insert(&self, connector: &str, remote_id: &str, id: MessageId, part: u16) {
        let (key, slot) = self.slot(connector, remote_id);
        let mut slot = slot.lock();
        if slot.len() < self.cap_per_shard {
            slot.insert(key, (id, part));
        }
    }
    pub fn remove(&self, connector: &str, remote_id: &str) {
        let (key, slot) = self.slot(connector, remote_id);
        slot.lock().remove(&key);
    }
    pub fn get(&self, connector: &str, remote_id: &str) -> Option<(MessageId, u16)> {
        let (key, slot) = self.slot(connector, remote_id);
        slot.lock().get(&key).copied()
    }
}

/// The hub.
pub struct Hub {
    pub remote_index: RemoteIndex,
    listeners: parking_lot::RwLock<Vec<Arc<dyn crate::connector::Listener>>>,
    pub cfg: Arc<Config>,
    pub outbox: Arc<Outbox>,
    pub ids: IdGen,
    pub router: Router,
    pub links: Vec<Arc<Link>>,
    link_index: HashMap<Arc<str>, usize>,
    actors: Vec<mpsc::Sender<ShardEvent>>,
    pub plan: NumberPlan,
    pub callback_secret: Option<Vec<u8>>,
    pub callbacks_wake: Notify,
    unknown: mpsc::UnboundedSender<(Instant, u8, Receipt)>,
    /// Receipts that came before their submit's answer (see [`early`]).
    early: early::EarlyReceipts,
    /// Set on shutdown: dispatchers stop taking new work.
    pub draining: AtomicBool,
    /// Tells connectors the drain has begun.
    drain_signal: tokio::sync::watch::Sender<bool>,
}

impl Hub {
    /// Build the hub over an open outbox and built links, and start every task and connector;
    /// fails with the first connector that cannot start (its name and why).
    pub fn start(
        cfg: Arc<Config>,
        outbox: Arc<Outbox>,
        links: Vec<Arc<Link>>,
    ) -> Result<Arc<Hub>, (String, crate::connector::StartError)> {
        let (drain_signal, shutdown) = crate::connector::Shutdown::new();
        let link_index: HashMap<Arc<str>, usize> = links
            .iter()
            .enumerate()
            .map(|(i, l)| (l.name.clone(), i))
            .collect();
        let router = Router::new(&cfg.routes, &|n| link_index.get(n).copied());
        let plan = NumberPlan {
            country_code: cfg.sms.country_code.clone(),
            trunk_prefix: cfg.sms.trunk_prefix.clone(),
        };
        let callback_secret = cfg
            .api
            .callback_secret
            .clone()
            .or_else(|| {
                cfg.api
                    .callback_secret_env
                    .as_ref()
                    .and_then(|k| std::env::var(k).ok())
            })
            .map(String::into_bytes);
        let ids = IdGen::default();
        if let Ok(Some(max)) = outbox.max_id() {
            ids.observe(max);
        }
        let mut actor_rx = Vec::new();
        let mut actors = Vec::new();
        for _ in outbox.shards() {
            let (tx, rx) = mpsc::channel(65_536);
            actors.push(tx);
            actor_rx.push(rx);
        }
        let (unknown, unknown_rx) = mpsc::unbounded_channel();
        let hub = Arc::new(Hub {
            remote_index: RemoteIndex::new(),
            listeners: parking_lot::RwLock::new(Vec::new()),
            cfg,
            outbox: outbox.clone(),
            ids,
            router,
            links,
            link_index,
            actors,
            plan,
            callback_secret,
            callbacks_wake: Notify::new(),
            unknown,
            early: Default::default(),
            draining: AtomicBool::new(false),
            drain_signal,
        });
        let weak = Arc::downgrade(&hub);
        for (shard, rx) in outbox.shards().iter().zip(actor_rx) {
            tokio::spawn(state::run(weak.clone(), shard.clone(), rx));
            tokio::spawn(dispatch::run(
                weak.clone(),
                shard.clone(),
                hub.actors[shard.index as usize].clone(),
            ));
        }
        tokio::spawn(callbacks::run(weak.clone()));
        tokio::spawn(retry_unknown_receipts(weak.clone(), unknown_rx));
        tokio::spawn(release_early_receipts(weak.clone()));
        tokio::spawn(sweep_blobs(weak.clone()));
        for link in &hub.links {
            if let Err(e) = link
                .connector
                .clone()
                .start(hub.clone() as Arc<dyn HubSink>, shutdown.clone())
            {
                hub.drain();
                return Err((link.name.to_string(), e));
            }
            match hub.outbox.outstanding_remote_ids(&link.name) {
                Ok(ids) => link.connector.resume(ids),
                Err(e) => {
                    tracing::error!(connector = %link.name, error = %e, "cannot read outstanding receipts")
                }
            }
        }
        Ok(hub)
    }

    pub fn link(&self, name: &str) -> Option<&Arc<Link>> {
        self.link_index.get(name).map(|&i| &self.links[i])
    }

    /// Whether messages submitted on this connector wait for receipts (see
    /// [`crate::connector::Connector::wants_receipts`]); an unknown name is taken to.
    pub fn keeps_receipts(&self, connector: &str) -> bool {
        Self::link_keeps_receipts(self.link(connector))
    }

    /// [`Hub::keeps_receipts`] for a link already looked up (`None`: no such connector).
    pub fn link_keeps_receipts(link: Option<&Arc<Link>>) -> bool {
        link.is_none_or(|l| l.receipts)
    }

    /// Store drafts as messages (one per draft), acknowledged after the group commit.
    pub async fn accept(&self, drafts: Vec<Envelope>) -> Result<Vec<Accepted>, AcceptError> {
        let depth = self.outbox.depth();
        if depth >= self.cfg.outbox.max_depth as i64 {
            return Err(AcceptError::Saturated(depth));
        }
        let now = now_ms();
        let shards = self.outbox.shards().len();
        // Ids spread evenly over the shards: each shard's share, with some slack, so that the
        // lists are not grown (and copied) on the way.
        let share = drafts.len().div_ceil(shards) + 4;
        let mut per_shard: Vec<(Changes, Vec<Box<Message>>, usize)> =
            (0..shards).map(|_| (Changes::with_capacity(2 * share), Vec::with_capacity(share), 0)).collect();
        let mut out = Vec::with_capacity(drafts.len());
        let mut later: Vec<(usize, i64)> = Vec::new();
        for d in drafts {
            if self
                .router
                .find(&d.to, d.from.as_deref(), d.channel, &d.tags)
                .is_none()
            {
                out.push(Accepted::NoRoute(d));
                continue;
            }
            let id = self.ids.next();
            let due = d.send_at.unwrap_or(now).max(now);
            let state = if due > now {
                State::Scheduled
            } else {
                State::Queued
            };
            let msg = Box::new(Message::new(id, Direction::Outbound, d, state, now, due));
            let s = id.shard(shards as u32) as usize;
            let slot = &mut per_shard[s];
            slot.0.store(&msg);
            slot.0.schedule(s as u32, due, id);
            slot.2 += 1;
            out.push(Accepted::Stored(StoredSummary {
                id,
                to: msg.envelope.to.to_string(),
                state,
                segments: msg.envelope.content.parts(),
            }));
            if due > now {
                later.push((s, due));
            } else {
                slot.1.push(msg);
            }
        }
        let mut waits = Vec::new();
        for (s, (ops, enqueue, n)) in per_shard.into_iter().enumerate() {
            if n > 0 {
                waits.push((s, n, self.outbox.submit(s as u32, ops, enqueue, n)?));
            }
        }
        let mut result = Ok(());
        for (s, n, rx) in waits {
            match rx.await.map_err(|_| StoreError::Closed).and_then(|r| r) {
                Ok(()) => {
                    self.outbox.shards()[s]
                        .depth
                        .fetch_add(n as i64, Ordering::Relaxed);
                }
                Err(e) => result = Err(e),
            }
        }
        result?;
        for (s, due) in later {
            self.outbox.shards()[s].wake_by(due);
        }
        let stored = out
            .iter()
            .filter(|a| matches!(a, Accepted::Stored(_)))
            .count() as u64;
        let hot = m::hot();
        hot.accepted.increment(stored);
        hot.transitions[State::Queued.index()].increment(stored);
        Ok(out)
    }

    /// A message as it is now (a message being handed to a connector shows `sending`).
    pub fn get(&self, id: MessageId) -> Result<Option<Message>, crate::outbox::OutboxError> {
        let mut msg = self.outbox.get(id)?;
        if let Some(m) = msg.as_mut() {
            if m.delivery.state.is_pending() && self.outbox.shard_of(id).is_inflight(id) {
                m.set_state(State::Sending, now_ms());
            }
        }
        Ok(msg)
    }

    /// Cancel a message that has not been handed to a connector.
    pub async fn cancel(&self, id: MessageId) -> Result<Message, CancelError> {
        let (tx, rx) = oneshot::channel();
        let shard = id.shard(self.actors.len() as u32) as usize;
        self.actors[shard]
            .send(ShardEvent::Cancel { id, reply: tx })
            .await
            .map_err(|_| CancelError::Store("shutting down".into()))?;
        rx.await
            .map_err(|_| CancelError::Store("shutting down".into()))?
    }

    fn route_receipt(&self, r: Receipt) -> Result<(), Receipt> {
        self.route_receipt_acked(r, None).map_err(|(r, _)| r)
    }

    fn route_receipt_acked(
        &self,
        r: Receipt,
        ack: Option<oneshot::Sender<()>>,
    ) -> Result<(), (Receipt, Option<oneshot::Sender<()>>)> {
        let found = match self.remote_index.get(&r.connector, &r.remote_id) {
            Some(hit) => Some(hit),
            None => self
                .outbox
                .lookup_remote(&r.connector, &r.remote_id)
                .ok()
                .flatten(),
        };
        match found {
            Some((id, part)) => {
                self.apply_receipt(id, part, r, ack);
                Ok(())
            }
            _ => Err((r, ack)),
        }
    }

    /// Queue a receipt for a known message on its shard's actor.
    fn apply_receipt(&self, id: MessageId, part: u16, r: Receipt, ack: Option<oneshot::Sender<()>>) {
        let shard = id.shard(self.actors.len() as u32) as usize;
        let ev = ShardEvent::Receipt { id, part, state: r.state, error: r.error, ack };
        if let Err(mpsc::error::TrySendError::Full(ev)) = self.actors[shard].try_send(ev) {
            let tx = self.actors[shard].clone();
            tokio::spawn(async move { tx.send(ev).await });
        }
    }

    /// A remote id is now known for part `part` of message `id` (its outcome is queued on the
    /// actor already): index it, and apply any receipt that came before it, after that outcome.
    pub fn index_remote(&self, connector: &str, remote_id: &str, id: MessageId, part: u16) {
        self.remote_index.insert(connector, remote_id, id, part);
        for h in self.early.take(connector, remote_id) {
            self.apply_receipt(id, part, h.receipt, Some(h.ack));
        }
    }

    /// Tell listeners about a committed state change of a message that came in through a
    /// connector (a peer's `Origin`).
    pub(crate) fn notify_state(&self, msg: &Message, state: State) {
        if msg.envelope.peer().is_some() {
            for l in self.listeners.read().iter() {
                l.on_state(msg, state);
            }
        }
    }

    /// Stop taking new work; dispatchers finish what they hold.
    pub fn drain(&self) {
        self.draining.store(true, Ordering::Relaxed);
        self.drain_signal.send_replace(true);
        for s in self.outbox.shards() {
            s.notify.notify_one();
        }
    }

    /// Messages handed to connectors and not yet answered.
    pub fn inflight(&self) -> usize {
        self.links.iter().map(|l| l.inflight()).sum()
    }
}

/// Every 100 ms: receipts held for their submit's answer that will not get one (the link has
/// nothing in flight, or they waited [`early::HOLD_MAX`]) are matched once more, else
/// acknowledged and retried in memory like any receipt for an unknown id.
async fn release_early_receipts(hub: std::sync::Weak<Hub>) {
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
async fn retry_unknown_receipts(
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
async fn sweep_blobs(hub: std::sync::Weak<Hub>) {
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

    fn receive(&self, inbound: InboundMessage) -> BoxFuture<'_, Result<MessageId, HubError>> {
        Box::pin(self.store_inbound(inbound, Changes::new()))
    }

    fn hold_part(&self, connector: Arc<str>, part: crate::connector::HeldPart) -> BoxFuture<'_, Result<(), HubError>> {
        Box::pin(async move {
            let value = postcard::to_allocvec(&part).map_err(|e| HubError::Store(e.to_string()))?;
            let shard = (part.reference as u32) % self.outbox.shards().len() as u32;
            let mut changes = Changes::new();
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
    async fn store_inbound(&self, inbound: InboundMessage, extra: Changes) -> Result<MessageId, HubError> {
        {
            let now = now_ms();
            let id = self.ids.next();
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
            let mut msg = Message::new(
                id,
                Direction::Inbound,
                Envelope {
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
                },
                State::Received,
                now,
                now,
            );
            msg.delivery.connector = Some(inbound.connector.to_string());
            let shard = id.shard(self.outbox.shards().len() as u32);
            let mut ops = Changes::new();
            ops.store(&msg);
            ops.extend(extra);
            self.outbox
                .write(shard, ops, vec![], 1)
                .await
                .map_err(|e| match e {
                    StoreError::Busy => HubError::Busy,
                    e => HubError::Store(e.to_string()),
                })?;
            metrics::counter!(m::INBOUND_TOTAL, m::L_CONNECTOR => inbound.connector.to_string())
                .increment(1);
            for l in self.listeners.read().iter() {
                l.on_inbound(&msg);
            }
            Ok(id)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (connector, id) pairs find their message, long ids too, and pairs whose
    /// concatenations agree stay apart.
    #[test]
    fn remote_index_keys() {
        let ix = RemoteIndex::new();
        let long = "0123456789abcdef0123456789abcdef-uuid";
        ix.insert("op-a", "1a2b", MessageId(1), 0);
        ix.insert("op-ab", "2b", MessageId(2), 0);
        ix.insert("op-a", long, MessageId(3), 2);
        ix.insert("op-b", long, MessageId(4), 0);
        assert_eq!(ix.get("op-a", "1a2b"), Some((MessageId(1), 0)));
        assert_eq!(ix.get("op-ab", "2b"), Some((MessageId(2), 0)));
        assert_eq!(ix.get("op-a", "b2b"), None);
        assert_eq!(ix.get("op-a", long), Some((MessageId(3), 2)));
        assert_eq!(ix.get("op-b", long), Some((MessageId(4), 0)));
        assert_eq!(ix.get("op-c", long), None);
        ix.remove("op-a", "1a2b");
        ix.remove("op-a", long);
        assert_eq!(ix.get("op-a", "1a2b"), None);
        assert_eq!(ix.get("op-a", long), None);
        assert_eq!(ix.get("op-b", long), Some((MessageId(4), 0)));
        // Either side of the 31 bytes kept inline: a pair of 31 (exact) and of 32 (digest).
        let (fits, over) = ("7".repeat(29), "7".repeat(30));
        ix.insert("c", &fits, MessageId(5), 0);
        ix.insert("c", &over, MessageId(6), 1);
        assert_eq!(ix.get("c", &fits), Some((MessageId(5), 0)));
        assert_eq!(ix.get("c", &over), Some((MessageId(6), 1)));
        assert_eq!(ix.get("c", &"7".repeat(28)), None);
        assert_eq!(ix.get("c", &"7".repeat(31)), None);
        assert_eq!(ix.get("cc", &"7".repeat(29)), None);
    }
}
