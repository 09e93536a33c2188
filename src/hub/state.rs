//! The per-shard state actor: the one place that changes stored messages after they are
//! accepted (outcomes of delivery attempts, receipts, cancels, expiry, deferral). It drains its
//! queue in turns: applies every event of a turn in memory, queues one write, and only after
//! that commit releases claims and window slots and answers callers. Up to
//! [`TURNS_IN_FLIGHT`] turns are committed while the next is prepared; a later turn reads the
//! messages an uncommitted one changed from memory, and the writer keeps turns in order. One
//! actor per shard means no lost updates without locks.

use super::callbacks::{self, CallbackEvent};
use super::message::{now_ms, ErrorInfo, Message, MessageId, Millis, State};
use super::Hub;
use crate::connector::{ErrorClass, Outcome};
use crate::metrics as m;
use crate::outbox::{keys, retry, Cf, Op, ShardState, StoreError, TurnFailure};
use foldhash::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use tokio::sync::{mpsc, oneshot};

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

/// Work for a shard's state actor.
pub enum ShardEvent {
    /// `permit` is the link's window slot: released only after the outcome is committed, so
    /// that after a crash at most a window of messages can be sent twice (contract 2).
    Outcome {
        msg: Box<Message>,
        outcome: Outcome,
        permit: Option<tokio::sync::OwnedSemaphorePermit>,
    },
    /// `ack` is answered after the commit (SMPP acks the receipt only then).
    Receipt {
        id: MessageId,
        part: u16,
        state: State,
        error: Option<String>,
        ack: Option<oneshot::Sender<()>>,
    },
    Cancel {
        id: MessageId,
        reply: oneshot::Sender<Result<Message, CancelError>>,
    },
    /// End a claimed message without a delivery attempt (expired, no route).
    Finish {
        msg: Box<Message>,
        state: State,
        error: ErrorInfo,
    },
    /// A late `submit_sm_resp` (see `HubSink::reconcile`).
    Reconcile {
        connector: std::sync::Arc<str>,
        id: MessageId,
        part: u16,
        remote_id: String,
    },
    /// Put a claimed message back in the schedule without spending an attempt.
    Defer {
        msg: Box<Message>,
        until: Millis,
        error: ErrorInfo,
    },
}

enum After {
    Ack(oneshot::Sender<()>),
    Unclaim(MessageId),
    Reply(oneshot::Sender<Result<Message, CancelError>>, Message),
    Wake(Millis),
}

/// Messages submitted and waiting for receipts, kept by the actor so that a receipt needs no
/// read of the store. Bounded; evicted entries are simply read back from RocksDB.
struct SubmittedCache {
    map: HashMap<MessageId, Box<Message>>,
    order: std::collections::VecDeque<MessageId>,
    cap: usize,
}

impl SubmittedCache {
    fn take(&mut self, id: MessageId) -> Option<Box<Message>> {
        self.map.remove(&id)
    }
    fn put(&mut self, msg: Box<Message>) {
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

/// Turns whose commit may be in flight at once: the actor prepares the next turn while the
/// writer commits the previous ones (a turn waits for the disk only when this many are queued).
const TURNS_IN_FLIGHT: usize = 4;
/// Events taken into one turn.
const TURN_EVENTS: usize = 256;

/// One turn of the actor: its write in flight, and what waits for that commit.
struct Turn {
    commit: oneshot::Receiver<Result<(), TurnFailure>>,
    /// Messages in the turn's write (for the group-commit metric when it is written again).
    messages: usize,
    after: Vec<After>,
    /// Window slots of the turn's outcomes, released after the commit.
    held: Vec<tokio::sync::OwnedSemaphorePermit>,
    cancels: Vec<MessageId>,
    depth_delta: i64,
    events: usize,
    /// Committed state changes to tell listeners about (messages that came in via a connector).
    notify: Vec<(Message, Vec<State>)>,
    /// Messages this turn changed, other than those now in the submitted cache: a later turn
    /// takes them from here, not from the store, until this turn is committed.
    recent: HashMap<MessageId, Box<Message>>,
    /// Ids this turn put in the submitted cache before its commit.
    cached: Vec<MessageId>,
}

impl Turn {
    async fn committed(&mut self) -> Result<(), TurnFailure> {
        // A writer that went away without answering may or may not have written it.
        (&mut self.commit).await.unwrap_or(Err(TurnFailure { error: StoreError::Closed, unwritten: None }))
    }
}

pub(super) async fn run(
    hub: Weak<Hub>,
    shard: Arc<ShardState>,
    mut rx: mpsc::Receiver<ShardEvent>,
) {
    let mut batch = Vec::with_capacity(TURN_EVENTS);
    let mut cache = SubmittedCache {
        map: HashMap::default(),
        order: Default::default(),
        cap: 50_000,
    };
    let mut turns: std::collections::VecDeque<Turn> = Default::default();
    // The store's failure count when this actor's pipeline was last known good.
    let mut epoch = 0;
    loop {
        let got = if turns.len() >= TURNS_IN_FLIGHT {
            0
        } else if let Some(oldest) = turns.front_mut() {
            tokio::select! {
                biased;
                r = oldest.committed() => {
                    let Some(t) = turns.pop_front() else { continue };
                    settle(&hub, &shard, &mut cache, t, r, &mut turns).await;
                    continue;
                }
                n = rx.recv_many(&mut batch, TURN_EVENTS) => n,
            }
        } else {
            rx.recv_many(&mut batch, TURN_EVENTS).await
        };
        if got == 0 {
            // Full pipeline, or the channel closed: wait for the oldest commit.
            let Some(mut t) = turns.pop_front() else { return };
            let r = t.committed().await;
            settle(&hub, &shard, &mut cache, t, r, &mut turns).await;
            continue;
        }
        let Some(h) = hub.upgrade() else { return };
        if turns.is_empty() {
            epoch = h.outbox.health.epoch();
        }
        let turn = apply(&h, &shard, &mut cache, &mut turns, batch.drain(..), epoch).await;
        turns.push_back(turn);
    }
}

/// The oldest turn's commit is answered: finish it, or, if it failed, recover.
async fn settle(hub: &Weak<Hub>, shard: &ShardState, cache: &mut SubmittedCache, turn: Turn, result: Result<(), TurnFailure>, turns: &mut std::collections::VecDeque<Turn>) {
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
    let mut ops: Vec<Op> = failure.unwritten.unwrap_or_default();
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

fn remove_due(ops: &mut Vec<Op>, shard: u32, msg: &Message) {
    ops.push(Op::delete(
        Cf::Due,
        keys::due_key(shard, msg.due_at, msg.id),
    ));
}

fn error_info(code: &str, message: &str) -> ErrorInfo {
    ErrorInfo {
        code: code.to_string(),
        message: message.to_string(),
    }
}

/// Apply a turn's events in memory and queue its write.
async fn apply(
    hub: &Hub,
    shard: &ShardState,
    cache: &mut SubmittedCache,
    turns: &mut std::collections::VecDeque<Turn>,
    events: impl ExactSizeIterator<Item = ShardEvent>,
    epoch: u64,
) -> Turn {
    let now = now_ms();
    let s = shard.index;
    let retry_cfg = &hub.cfg.outbox.retry;
    // Sized for the turn up front: growing a map of messages moves every one of them again.
    let mut work: HashMap<MessageId, (Box<Message>, usize)> = HashMap::with_capacity_and_hasher(events.len(), Default::default());
    let mut ops = Vec::with_capacity(events.len() * 3);
    let mut after = Vec::with_capacity(events.len());
    let mut depth_delta = 0i64;
    let mut cancels: Vec<MessageId> = Vec::new();
    let mut held: Vec<tokio::sync::OwnedSemaphorePermit> = Vec::with_capacity(events.len());
    // Receipts acked to their peer (SMPP, modems) and cancels answered after this commit must
    // be on disk. Outcomes of attempts, and receipts nobody is told about, may ride the next
    // sync (within 2 ms): a power cut resends such a message or leaves it `submitted`.
    let mut must_sync = false;
    // Submitted on links that ask for no receipts: nothing to keep them in memory for.
    let mut no_receipts: foldhash::HashSet<MessageId> = Default::default();

    // Load a message into the working set (from an earlier event of this turn, the cache of
    // submitted messages, a turn not yet committed, or the store).
    fn load<'w>(
        hub: &Hub,
        cache: &mut SubmittedCache,
        turns: &mut std::collections::VecDeque<Turn>,
        work: &'w mut HashMap<MessageId, (Box<Message>, usize)>,
        id: MessageId,
    ) -> Option<&'w mut Message> {
        if !work.contains_key(&id) {
            let m = match cache.take(id) {
                Some(m) => m,
                None => match turns.iter_mut().rev().find_map(|t| t.recent.remove(&id)) {
                    Some(m) => m,
                    None => Box::new(hub.outbox.get(id).ok().flatten()?),
                },
            };
            let n = m.history.len();
            work.insert(id, (m, n));
        }
        work.get_mut(&id).map(|(m, _)| &mut **m)
    }

    for ev in events {
        must_sync |= matches!(ev, ShardEvent::Receipt { ack: Some(_), .. } | ShardEvent::Cancel { .. });
        match ev {
            ShardEvent::Outcome {
                mut msg,
                outcome,
                permit,
            } => {
                if let Some(p) = permit {
                    held.push(p);
                }
                let id = msg.id;
                let connector = msg.connector.clone().unwrap_or_default();
                remove_due(&mut ops, s, &msg);
                match outcome {
                    Outcome::Submitted { .. } | Outcome::Unconfirmed { .. } => {
                        let (remote_ids, error) = match outcome {
                            Outcome::Submitted { remote_ids } => (remote_ids, None),
                            Outcome::Unconfirmed { remote_ids, error } => {
                                metrics::counter!(m::CONNECTOR_FAILED_TOTAL, m::L_CONNECTOR => connector.clone(), m::L_CODE => error.code.clone()).increment(1);
                                (remote_ids, Some(error_info(&error.code, &error.message)))
                            }
                            _ => (Vec::new(), None),
                        };
                        let link = hub.link(&connector);
                        if let Some(l) = link {
                            l.submitted.increment(1);
                        }
                        m::hot()
                            .accept_to_submit
                            .record((now - msg.created_at).max(0) as f64 / 1000.0);
                        // (the in-memory remote index was filled by the dispatcher)
                        let receipts = Hub::link_keeps_receipts(link);
                        if !receipts {
                            no_receipts.insert(id);
                        }
                        for (i, rid) in remote_ids.iter().enumerate().filter(|_| receipts) {
                            ops.push(Op::put(
                                Cf::Remote,
                                keys::remote_key(&connector, rid),
                                &keys::remote_value(id, i as u16)[..],
                            ));
                        }
                        msg.part_states = vec![State::Submitted; remote_ids.len()];
                        msg.remote_ids = remote_ids;
                        msg.error = error;
                        msg.set_state(State::Submitted, now);
                        depth_delta -= 1;
                    }
                    Outcome::TempFail { error, retry_after } => {
                        let throttled = error.class == ErrorClass::Throttled;
                        let label = if throttled {
                            m::CONNECTOR_THROTTLED_TOTAL
                        } else {
                            m::CONNECTOR_FAILED_TOTAL
                        };
                        metrics::counter!(label, m::L_CONNECTOR => connector.clone(), m::L_CODE => error.code.clone()).increment(1);
                        if throttled {
                            msg.attempts = msg.attempts.saturating_sub(1);
                        }
                        msg.error = Some(error_info(&error.code, &error.message));
                        let delay = retry_after
                            .unwrap_or_else(|| retry::backoff(retry_cfg, msg.attempts.max(1)));
                        let due = now + delay.as_millis() as i64;
                        if !throttled && msg.attempts >= retry_cfg.max_attempts {
                            msg.set_state(State::Failed, now);
                            depth_delta -= 1;
                        } else if due >= msg.expires_at {
                            msg.set_state(State::Expired, now);
                            depth_delta -= 1;
                        } else {
                            msg.set_state(State::Queued, now);
                            msg.due_at = due;
                            ops.push(Op::put(Cf::Due, keys::due_key(s, due, id), vec![]));
                            after.push(After::Wake(due));
                        }
                    }
                    Outcome::PermFail { error } => {
                        metrics::counter!(m::CONNECTOR_FAILED_TOTAL, m::L_CONNECTOR => connector.clone(), m::L_CODE => error.code.clone()).increment(1);
                        msg.error = Some(error_info(&error.code, &error.message));
                        msg.set_state(State::Failed, now);
                        depth_delta -= 1;
                    }
                }
                after.push(After::Unclaim(id));
                // The in-memory copy is authoritative: it was claimed, nobody else changed it.
                // Its history before this attempt was already stored, minus the unstored
                // "sending" entry, which the callbacks should also see.
                let stored = msg
                    .history
                    .iter()
                    .rposition(|t| t.state == State::Sending)
                    .unwrap_or(msg.history.len());
                work.insert(id, (msg, stored));
            }
            ShardEvent::Receipt {
                id,
                part,
                state,
                error,
                ack,
            } => {
                if let Some(a) = ack {
                    after.push(After::Ack(a));
                }
                let Some(msg) = load(hub, cache, turns, &mut work, id) else {
                    metrics::counter!(m::RECEIPTS_UNKNOWN_TOTAL, m::L_CONNECTOR => "").increment(1);
                    continue;
                };
                m::hot().receipts[state.index()].increment(1);
                if msg.state.is_final() || msg.state != State::Submitted {
                    continue; // duplicate or late receipt
                }
                if let Some(p) = msg.part_states.get_mut(part as usize) {
                    *p = state;
                }
                if let Some(e) = error {
                    if state != State::Delivered {
                        msg.error = Some(error_info("network_error", &e));
                    }
                }
                if msg.part_states.iter().all(|p| p.is_final()) {
                    let overall = if msg.part_states.iter().all(|p| *p == State::Delivered) {
                        State::Delivered
                    } else if msg.part_states.contains(&State::Undelivered)
                        || msg.part_states.contains(&State::Failed)
                    {
                        State::Undelivered
                    } else {
                        State::Expired
                    };
                    if overall != State::Delivered && msg.error.is_none() {
                        msg.error = Some(error_info(
                            "undelivered",
                            "the carrier reported the message not delivered",
                        ));
                    }
                    let submitted_at = msg
                        .history
                        .iter()
                        .rev()
                        .find(|t| t.state == State::Submitted)
                        .map(|t| t.at)
                        .unwrap_or(now);
                    m::hot()
                        .submit_to_final
                        .record((now - submitted_at).max(0) as f64 / 1000.0);
                    msg.set_state(overall, now);
                    let connector = msg.connector.as_deref().unwrap_or_default();
                    for rid in &msg.remote_ids {
                        ops.push(Op::delete(Cf::Remote, keys::remote_key(connector, rid)));
                        hub.remote_index.remove(connector, rid);
                    }
                }
            }
            ShardEvent::Cancel { id, reply } => {
                let Some(msg) = load(hub, cache, turns, &mut work, id) else {
                    let _ = reply.send(Err(CancelError::NotFound));
                    continue;
                };
                if msg.state.is_final() || msg.state == State::Submitted {
                    let _ = reply.send(Err(CancelError::Final(msg.state.as_str())));
                    continue;
                }
                if shard.try_cancel(id).is_err() {
                    let _ = reply.send(Err(CancelError::Handed));
                    continue;
                }
                cancels.push(id);
                remove_due(&mut ops, s, msg);
                msg.set_state(State::Canceled, now);
                depth_delta -= 1;
                after.push(After::Reply(reply, Message::clone(msg)));
            }
            ShardEvent::Finish {
                mut msg,
                state,
                error,
            } => {
                remove_due(&mut ops, s, &msg);
                msg.error = Some(error);
                msg.set_state(state, now);
                depth_delta -= 1;
                after.push(After::Unclaim(msg.id));
                let n = msg.history.len() - 1;
                work.insert(msg.id, (msg, n));
            }
            ShardEvent::Reconcile { connector, id, part, remote_id } => {
                // The carrier's id always leads to the message, whatever happens next (on a
                // link that waits for receipts; on one that does not, nothing is kept).
                let link = hub.link(&connector);
                if Hub::link_keeps_receipts(link) {
                    ops.push(Op::put(Cf::Remote, keys::remote_key(&connector, &remote_id), &keys::remote_value(id, part)[..]));
                } else {
                    no_receipts.insert(id);
                }
                let Some(msg) = load(hub, cache, turns, &mut work, id) else { continue };
                let waiting = msg.state.is_pending() && msg.state != State::Sending && msg.segments <= 1 && part == 0 && msg.connector.as_deref() == Some(&*connector);
                // Withdraw it from the schedule like a cancel; if it is being sent again right
                // now, leave it: receipts of either copy settle it once.
                if waiting && shard.try_cancel(id).is_ok() {
                    cancels.push(id);
                    remove_due(&mut ops, s, msg);
                    if let Some(l) = link {
                        l.submitted.increment(1);
                    }
                    msg.remote_ids = vec![remote_id];
                    msg.part_states = vec![State::Submitted];
                    msg.error = None;
                    msg.set_state(State::Submitted, now);
                    depth_delta -= 1;
                }
            }
            ShardEvent::Defer {
                mut msg,
                until,
                error,
            } => {
                remove_due(&mut ops, s, &msg);
                msg.error = Some(error);
                msg.due_at = until;
                ops.push(Op::put(
                    Cf::Due,
                    keys::due_key(s, until, msg.id),
                    vec![],
                ));
                after.push(After::Unclaim(msg.id));
                after.push(After::Wake(until));
                let n = msg.history.len();
                work.insert(msg.id, (msg, n));
            }
        }
    }

    let mut events = 0;
    let n = work.len();
    let mut notify = Vec::new();
    let mut recent = HashMap::with_capacity_and_hasher(n, Default::default());
    let mut cached = Vec::with_capacity(n);
    // In id order: RocksDB's memtable starts each insert from where the last one went (its
    // "splice"), so keys written in order are placed in a few comparisons; in the map's order
    // each was a search from the top of a skip list of a million entries.
    let mut work: Vec<_> = work.into_iter().collect();
    work.sort_unstable_by_key(|(id, _)| *id);
    for (id, (msg, stored)) in work {
        ops.push(Op::put(Cf::Msg, keys::msg_key(id), msg.encode()));
        for t in msg.history.iter().skip(stored) {
            m::hot().transitions[t.state.index()].increment(1);
            for ev in callbacks::events_for(&msg, t.state, t.at) {
                let eid = hub.ids.next();
                ops.push(Op::put(
                    Cf::Events,
                    keys::event_key(now, eid),
                    CallbackEvent::encode(&ev),
                ));
                events += 1;
            }
        }
        if stored < msg.history.len() && msg.via().is_some() {
            notify.push((Message::clone(&msg), msg.history[stored..].iter().map(|t| t.state).collect()));
        }
        if msg.state == State::Submitted && !no_receipts.contains(&id) {
            cache.put(msg);
            cached.push(id);
        } else {
            recent.insert(id, msg);
        }
    }
    Turn {
        commit: hub.outbox.submit_turn(s, ops, n, must_sync, epoch).await,
        messages: n,
        after,
        held,
        cancels,
        depth_delta,
        events,
        notify,
        recent,
        cached,
    }
}
