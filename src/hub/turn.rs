//! A turn of a shard's state actor once it is built: its write in flight and what waits for
//! that commit (window slots, claims, acks, answers), the cache of submitted messages it keeps
//! up to date, and what happens after the commit: [`finish`] on success; on failure (a full
//! disk) the turn is held with every turn after it and written again once the store can
//! ([`recover`]), so nothing acknowledged is lost and nothing is sent twice.

use crate::model::{Message, MessageId, Millis, State};
use super::Hub;
use crate::metrics as m;
use crate::outbox::{Changes, ShardState, StoreError, TurnFailure};
use foldhash::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Weak;
use tokio::sync::oneshot;

/// Why a cancel was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CancelError {
    #[error("no such message")]
    NotFound,
    #[error("the message is already {0}")]
    Final(&'static str),
    #[error("the message has been handed to a connector")]
    Handed,
    #[error("{0}")]
    Store(String),
}

pub(super) enum After {
    Ack(oneshot::Sender<()>),
    Unclaim(MessageId),
    Reply(oneshot::Sender<Result<Message, CancelError>>, Message),
    Wake(Millis),
}

/// Messages submitted and waiting for receipts, kept by the actor so that a receipt needs no
/// read of the store. Bounded; evicted entries are simply read back from RocksDB.
pub(super) struct SubmittedCache {
    pub(super) map: HashMap<MessageId, Box<Message>>,
    pub(super) order: std::collections::VecDeque<MessageId>,
    pub(super) cap: usize,
}

impl SubmittedCache {
    pub(super) fn take(&mut self, id: MessageId) -> Option<Box<Message>> {
        self.map.remove(&id)
    }
    pub(super) fn put(&mut self, msg: Box<Message>) {
        self.order.push_back(msg.id);
        self.map.insert(msg.id, msg);
        while self.map.len() > self.cap || self.order.len() > 2 * self.cap {
            match self.order.pop_front() {
                Some(old) => {
                    self.map.remove(&old);
                }
                None => break,
            }
        }
    }
}

/// One turn of the actor: its write in flight, and what waits for that commit.
pub(super) struct Turn {
    pub(super) commit: oneshot::Receiver<Result<(), TurnFailure>>,
    /// Messages in the turn's write (for the group-commit metric when it is written again).
    pub(super) messages: usize,
    pub(super) after: Vec<After>,
    /// Window slots of the turn's outcomes, released after the commit.
    pub(super) held: Vec<tokio::sync::OwnedSemaphorePermit>,
    pub(super) cancels: Vec<MessageId>,
    pub(super) depth_delta: i64,
    pub(super) events: usize,
    /// Webhook deliveries queued.
    pub(super) hooks: usize,
    /// Committed state changes to tell listeners about (messages that came in via a connector).
    pub(super) notify: Vec<(Message, Vec<State>)>,
    /// Messages this turn changed, other than those now in the submitted cache: a later turn
    /// takes them from here, not from the store, until this turn is committed.
    pub(super) recent: HashMap<MessageId, Box<Message>>,
    /// Ids this turn put in the submitted cache before its commit.
    pub(super) cached: Vec<MessageId>,
}

impl Turn {
    pub(super) async fn committed(&mut self) -> Result<(), TurnFailure> {
        // A writer that went away without answering may or may not have written it.
        (&mut self.commit).await.unwrap_or(Err(TurnFailure { error: StoreError::Closed, unwritten: None }))
    }
}

/// The oldest turn's commit is answered: finish it, or, if it failed, recover.
pub(super) async fn settle(hub: &Weak<Hub>, shard: &ShardState, cache: &mut SubmittedCache, turn: Turn, result: Result<(), TurnFailure>, turns: &mut std::collections::VecDeque<Turn>) {
    match result {
        Ok(()) => finish(hub, shard, cache, turn, Ok(())),
        Err(f) => recover(hub, shard, cache, turn, f, turns).await,
    }
}

/// How often a held turn looks whether the store writes again.
const RECOVERY_POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// A turn was not committed (a full disk, typically): its changes are applied in memory and
/// other turns were built on them, so it is not dropped. The actor takes no new events (its
/// queue fills, and dispatchers and receipt handlers wait) until the store writes again
/// (`StoreHealth` says so after a synced write and a flush). Then the operations of this turn
/// and of every later turn that was not written either (the writer refuses those, see
/// `WriteReq::epoch`) are written again, in order, in one write; and only then are window slots
/// and claims released and callers answered, as after a slow commit. Nothing acknowledged is
/// lost and nothing is sent again. Given up only when the store is closing: then claims are
/// released (the schedule still has the messages after a restart) and receipts are not
/// acknowledged (their peers send them again).
async fn recover(hub: &Weak<Hub>, shard: &ShardState, cache: &mut SubmittedCache, first: Turn, failure: TurnFailure, turns: &mut std::collections::VecDeque<Turn>) {
    metrics::counter!(m::STATE_TURNS_HELD_TOTAL).increment(1);
    tracing::warn!(shard = shard.index, error = %failure.error, "state change not committed: holding it until the store writes again");
    let mut held = vec![first];
    let mut ops: Changes = failure.unwritten.unwrap_or_default();
    let mut messages = held[0].messages;
    let mut last_error = failure.error;
    while let Some(mut t) = turns.pop_front() {
        match t.committed().await {
            Ok(()) => {}
            Err(f) => {
                if let Some(o) = f.unwritten {
                    ops.extend(o);
                    messages += t.messages;
                }
                last_error = f.error;
            }
        }
        held.push(t);
    }
    let result = loop {
        let writable = match hub.upgrade() {
            Some(h) if h.outbox.health.is_writable() => Some(h),
            Some(h) if !h.draining.load(Ordering::Relaxed) => None,
            _ => break Err(last_error),
        };
        let Some(h) = writable else {
            tokio::time::sleep(RECOVERY_POLL).await;
            continue;
        };
        if ops.is_empty() {
            break Ok(());
        }
        let rx = h.outbox.submit_turn(shard.index, std::mem::take(&mut ops), messages, true, h.outbox.health.epoch()).await;
        drop(h);
        match rx.await {
            Ok(Ok(())) => break Ok(()),
            // Written but not synced: durable once the store has recovered.
            Ok(Err(TurnFailure { error, unwritten: None })) => last_error = error,
            Ok(Err(TurnFailure { error, unwritten: Some(o) })) => {
                ops = o;
                last_error = error;
            }
            Err(_) => break Err(StoreError::Closed),
        }
        tokio::time::sleep(RECOVERY_POLL).await;
    };
    match &result {
        Ok(()) => tracing::warn!(shard = shard.index, turns = held.len(), "held state changes committed"),
        Err(e) => tracing::error!(shard = shard.index, turns = held.len(), error = %e, "held state changes given up: the store is closing"),
    }
    for t in held {
        finish(hub, shard, cache, t, result.clone());
    }
}

/// After a turn's commit: tell listeners, release window slots and claims, answer callers.
fn finish(hub: &Weak<Hub>, shard: &ShardState, cache: &mut SubmittedCache, turn: Turn, result: Result<(), StoreError>) {
    let hub = hub.upgrade();
    match &result {
        Ok(()) => {
            if let Some(hub) = &hub {
                for (msg, states) in &turn.notify {
                    for st in states {
                        hub.notify_state(msg, *st);
                    }
                }
                if turn.events > 0 {
                    hub.callbacks_wake.notify_one();
                }
                if turn.hooks > 0 {
                    hub.webhooks.wake.notify_waiters();
                }
            }
            shard.depth.fetch_add(turn.depth_delta, Ordering::Relaxed);
        }
        Err(e) => {
            tracing::error!(shard = shard.index, error = %e, "state change not committed");
            for id in &turn.cancels {
                shard.uncancel(*id);
            }
            // Read these back from the store next time.
            for id in turn.cached {
                cache.take(id);
            }
        }
    }
    drop(turn.held); // the window slots of the committed outcomes
    for a in turn.after {
        match a {
            After::Unclaim(id) => shard.unclaim(&[id]),
            // Not acknowledged when not committed: the peer sends it again.
            After::Ack(a) if result.is_ok() => {
                let _ = a.send(());
            }
            After::Ack(_) => {}
            After::Wake(t) => shard.wake_by(t),
            After::Reply(reply, msg) => {
                let _ = reply.send(
                    result
                        .clone()
                        .map(|_| msg)
                        .map_err(|e| CancelError::Store(e.to_string())),
                );
            }
        }
    }
}

