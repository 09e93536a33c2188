//! The hub proper: accept into the outbox, per-shard tasks, receipts and inbound messages.

use super::*;
use crate::config::Config;
use crate::connector::{HubSink, Link, Receipt};
use crate::metrics as m;
use crate::outbox::{Changes, Outbox, StoreError};
use crate::model::address::{NumberCheck, NumberPlan};
use crate::model::{now_ms, Direction, IdGen, Message, MessageId, State};
use crate::model::Envelope;
use router::Router;
use state::{CancelError, ShardEvent};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;
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
#[derive(Debug, Clone)]
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
    pub(super) listeners: parking_lot::RwLock<Vec<Arc<dyn crate::connector::Listener>>>,
    pub cfg: Arc<Config>,
    pub outbox: Arc<Outbox>,
    pub ids: IdGen,
    pub router: Router,
    pub links: Vec<Arc<Link>>,
    pub(super) link_index: HashMap<Arc<str>, usize>,
    pub(super) actors: Vec<mpsc::Sender<ShardEvent>>,
    pub plan: NumberPlan,
    /// Templates messages may name.
    pub templates: Arc<crate::templates::Catalog>,
    /// Inbound routes.
    pub(super) forwards: super::forward::Forwards,
    /// Webhook endpoints.
    pub webhooks: Arc<crate::webhooks::Registry>,
    pub callback_secret: Option<Vec<u8>>,
    pub callbacks_wake: Notify,
    pub(super) unknown: mpsc::UnboundedSender<(Instant, u8, Receipt)>,
    /// Receipts that came before their submit's answer (see [`early`]).
    pub(super) early: early::EarlyReceipts,
    /// Set on shutdown: dispatchers stop taking new work.
    pub draining: AtomicBool,
    /// Tells connectors the drain has begun.
    pub(super) drain_signal: tokio::sync::watch::Sender<bool>,
}

impl Hub {
    /// Build the hub over an open outbox and built links, and start every task and connector;
    /// fails with the first connector that cannot start (its name and why).
    pub fn start(
        cfg: Arc<Config>,
        outbox: Arc<Outbox>,
        templates: Arc<crate::templates::Catalog>,
        webhooks: Arc<crate::webhooks::Registry>,
        links: Vec<Arc<Link>>,
    ) -> Result<Arc<Hub>, (String, crate::connector::StartError)> {
        let (drain_signal, shutdown) = crate::connector::Shutdown::new();
        let link_index: HashMap<Arc<str>, usize> = links
            .iter()
            .enumerate()
            .map(|(i, l)| (l.name.clone(), i))
            .collect();
        let router = Router::new(&cfg.routes, &|n| link_index.get(n).copied(), &|i| links[i].connector.channels().to_vec());
        let plan = NumberPlan {
            country_code: cfg.sms.country_code.clone(),
            trunk_prefix: cfg.sms.trunk_prefix.clone(),
            check: match (cfg.api.sms_number_check, cfg.api.sms_number_types.is_empty()) {
                (crate::config::NumberCheckMode::E164, _) => NumberCheck::Shape,
                (_, true) => NumberCheck::Plan,
                (_, false) => NumberCheck::PlanTypes(cfg.api.sms_number_types.clone()),
            },
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
        let forwards = super::forward::Forwards::new(&cfg.routes);
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
            templates,
            forwards,
            webhooks,
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
        tokio::spawn(super::intake::retry_unknown_receipts(weak.clone(), unknown_rx));
        tokio::spawn(super::intake::release_early_receipts(weak.clone()));
        tokio::spawn(super::intake::sweep_blobs(weak.clone()));
        tokio::spawn(super::intake::sweep_inbound_fingerprints(weak.clone()));
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
        self.accept_with(drafts, Changes::new()).await
    }

    /// [`Hub::accept`], with `extra` changes in the same outbox write as the first stored
    /// message (or on their own when none is stored): a received message and its forwards.
    pub async fn accept_with(&self, drafts: Vec<Envelope>, extra: Changes) -> Result<Vec<Accepted>, AcceptError> {
        self.accept_then(drafts, |_, more| more.extend(extra)).await
    }

    /// [`Hub::accept`], with changes made from what was accepted (the ids given) written in the
    /// same outbox write: an idempotency key's answer is stored with the messages it names.
    pub async fn accept_then(&self, drafts: Vec<Envelope>, then: impl FnOnce(&[Accepted], &mut Changes)) -> Result<Vec<Accepted>, AcceptError> {
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
            slot.0.ref_attachments(&msg);
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
        let mut extra = Changes::new();
        then(&out, &mut extra);
        let mut waits = Vec::new();
        for (s, (mut ops, enqueue, n)) in per_shard.into_iter().enumerate() {
            if n > 0 {
                ops.extend(std::mem::take(&mut extra));
                waits.push((s, n, self.outbox.submit(s as u32, ops, enqueue, n)?));
            }
        }
        if !extra.is_empty() {
            self.outbox.write(0, extra, vec![], 0).await?;
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

    pub(super) fn route_receipt(&self, r: Receipt) -> Result<(), Receipt> {
        self.route_receipt_acked(r, None).map_err(|(r, _)| r)
    }

    pub(super) fn route_receipt_acked(
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
    pub(super) fn apply_receipt(&self, id: MessageId, part: u16, r: Receipt, ack: Option<oneshot::Sender<()>>) {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// (connector, id) pairs find their message, long ids too, and pairs whose
    /// concatenations agree stay apart.
    #[test]
    pub(super) fn remote_index_keys() {
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
