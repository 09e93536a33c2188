//! The per-shard state actor: the one place that changes stored messages after they are
//! accepted (outcomes of delivery attempts, receipts, cancels, expiry, deferral). It drains its
//! queue in turns: applies every event of a turn in memory, queues one write, and only after
//! that commit releases claims and window slots and answers callers. Up to
//! [`TURNS_IN_FLIGHT`] turns are committed while the next is prepared; a later turn reads the
//! messages an uncommitted one changed from memory, and the writer keeps turns in order. One
//! actor per shard means no lost updates without locks. What follows a turn's commit (or its
//! failure) is in [`super::turn`].

use super::callbacks::{self, CallbackEvent};
use crate::model::{now_ms, ErrorInfo, Message, MessageId, Millis, State};
use super::Hub;
use crate::connector::{ErrorClass, Outcome};
use crate::metrics as m;
use crate::outbox::{retry, Changes, ShardState};
use foldhash::HashMap;
use std::sync::{Arc, Weak};
use tokio::sync::{mpsc, oneshot};

pub use super::turn::CancelError;
use super::turn::{settle, After, SubmittedCache, Turn};

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

/// Turns whose commit may be in flight at once: the actor prepares the next turn while the
/// writer commits the previous ones (a turn waits for the disk only when this many are queued).
const TURNS_IN_FLIGHT: usize = 4;
/// Events taken into one turn.
const TURN_EVENTS: usize = 256;

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
    let mut ops = Changes::with_capacity(events.len() * 3);
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
            let n = m.delivery.history.len();
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
                let connector = msg.delivery.connector.clone().unwrap_or_default();
                ops.unschedule(s, &msg);
                match outcome {
                    Outcome::Submitted { .. } | Outcome::Unconfirmed { .. } => {
                        let (remote_ids, error) = match outcome {
                            Outcome::Submitted { remote_ids } => (remote_ids, None),
                            Outcome::Unconfirmed { remote_ids, error } => {
                                metrics::counter!(m::CONNECTOR_FAILED_TOTAL, m::L_CONNECTOR => connector.clone(), m::L_CODE => error.code.clone(), m::L_KIND => error.kind.as_str()).increment(1);
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
                            ops.expect_receipt(&connector, rid, id, i as u16);
                        }
                        msg.delivery.part_states = vec![State::Submitted; remote_ids.len()];
                        msg.delivery.remote_ids = remote_ids;
                        msg.delivery.error = error;
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
                        metrics::counter!(label, m::L_CONNECTOR => connector.clone(), m::L_CODE => error.code.clone(), m::L_KIND => error.kind.as_str()).increment(1);
                        if throttled {
                            msg.delivery.attempts = msg.delivery.attempts.saturating_sub(1);
                        }
                        msg.delivery.error = Some(error_info(&error.code, &error.message));
                        let delay = retry_after
                            .unwrap_or_else(|| retry::backoff(retry_cfg, msg.delivery.attempts.max(1)));
                        let due = now + delay.as_millis() as i64;
                        if !throttled && msg.delivery.attempts >= retry_cfg.max_attempts {
                            msg.set_state(State::Failed, now);
                            depth_delta -= 1;
                        } else if due >= msg.envelope.expires_at {
                            msg.set_state(State::Expired, now);
                            depth_delta -= 1;
                        } else {
                            msg.set_state(State::Queued, now);
                            msg.delivery.due_at = due;
                            ops.schedule(s, due, id);
                            after.push(After::Wake(due));
                        }
                    }
                    Outcome::PermFail { error } => {
                        metrics::counter!(m::CONNECTOR_FAILED_TOTAL, m::L_CONNECTOR => connector.clone(), m::L_CODE => error.code.clone(), m::L_KIND => error.kind.as_str()).increment(1);
                        msg.delivery.error = Some(error_info(&error.code, &error.message));
                        msg.set_state(State::Failed, now);
                        depth_delta -= 1;
                    }
                }
                after.push(After::Unclaim(id));
                // The in-memory copy is authoritative: it was claimed, nobody else changed it.
                // Its history before this attempt was already stored, minus the unstored
                // "sending" entry, which the callbacks should also see.
                let stored = msg
                    .delivery.history
                    .iter()
                    .rposition(|t| t.state == State::Sending)
                    .unwrap_or(msg.delivery.history.len());
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
                if msg.delivery.state.is_final() || msg.delivery.state != State::Submitted {
                    continue; // duplicate or late receipt
                }
                if let Some(p) = msg.delivery.part_states.get_mut(part as usize) {
                    *p = state;
                }
                if let Some(e) = error {
                    if state != State::Delivered {
                        msg.delivery.error = Some(error_info("network_error", &e));
                    }
                }
                if msg.delivery.part_states.iter().all(|p| p.is_final()) {
                    let overall = if msg.delivery.part_states.iter().all(|p| *p == State::Delivered) {
                        State::Delivered
                    } else if msg.delivery.part_states.contains(&State::Undelivered)
                        || msg.delivery.part_states.contains(&State::Failed)
                    {
                        State::Undelivered
                    } else {
                        State::Expired
                    };
                    if overall != State::Delivered && msg.delivery.error.is_none() {
                        msg.delivery.error = Some(error_info(
                            "undelivered",
                            "the carrier reported the message not delivered",
                        ));
                    }
                    let submitted_at = msg
                        .delivery.history
                        .iter()
                        .rev()
                        .find(|t| t.state == State::Submitted)
                        .map(|t| t.at)
                        .unwrap_or(now);
                    m::hot()
                        .submit_to_final
                        .record((now - submitted_at).max(0) as f64 / 1000.0);
                    msg.set_state(overall, now);
                    let connector = msg.delivery.connector.as_deref().unwrap_or_default();
                    for rid in &msg.delivery.remote_ids {
                        ops.forget_receipt(connector, rid);
                        hub.remote_index.remove(connector, rid);
                    }
                }
            }
            ShardEvent::Cancel { id, reply } => {
                let Some(msg) = load(hub, cache, turns, &mut work, id) else {
                    let _ = reply.send(Err(CancelError::NotFound));
                    continue;
                };
                if msg.delivery.state.is_final() || msg.delivery.state == State::Submitted {
                    let _ = reply.send(Err(CancelError::Final(msg.delivery.state.as_str())));
                    continue;
                }
                if shard.try_cancel(id).is_err() {
                    let _ = reply.send(Err(CancelError::Handed));
                    continue;
                }
                cancels.push(id);
                ops.unschedule(s, msg);
                msg.set_state(State::Canceled, now);
                depth_delta -= 1;
                after.push(After::Reply(reply, Message::clone(msg)));
            }
            ShardEvent::Finish {
                mut msg,
                state,
                error,
            } => {
                ops.unschedule(s, &msg);
                msg.delivery.error = Some(error);
                msg.set_state(state, now);
                depth_delta -= 1;
                after.push(After::Unclaim(msg.id));
                let n = msg.delivery.history.len() - 1;
                work.insert(msg.id, (msg, n));
            }
            ShardEvent::Reconcile { connector, id, part, remote_id } => {
                // The carrier's id always leads to the message, whatever happens next (on a
                // link that waits for receipts; on one that does not, nothing is kept).
                let link = hub.link(&connector);
                if Hub::link_keeps_receipts(link) {
                    ops.expect_receipt(&connector, &remote_id, id, part);
                } else {
                    no_receipts.insert(id);
                }
                let Some(msg) = load(hub, cache, turns, &mut work, id) else { continue };
                let waiting = msg.delivery.state.is_pending() && msg.delivery.state != State::Sending && msg.envelope.content.parts() <= 1 && part == 0 && msg.delivery.connector.as_deref() == Some(&*connector);
                // Withdraw it from the schedule like a cancel; if it is being sent again right
                // now, leave it: receipts of either copy settle it once.
                if waiting && shard.try_cancel(id).is_ok() {
                    cancels.push(id);
                    ops.unschedule(s, msg);
                    if let Some(l) = link {
                        l.submitted.increment(1);
                    }
                    msg.delivery.remote_ids = vec![remote_id];
                    msg.delivery.part_states = vec![State::Submitted];
                    msg.delivery.error = None;
                    msg.set_state(State::Submitted, now);
                    depth_delta -= 1;
                }
            }
            ShardEvent::Defer {
                mut msg,
                until,
                error,
            } => {
                ops.unschedule(s, &msg);
                msg.delivery.error = Some(error);
                msg.delivery.due_at = until;
                ops.schedule(s, until, msg.id);
                after.push(After::Unclaim(msg.id));
                after.push(After::Wake(until));
                let n = msg.delivery.history.len();
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
        ops.store(&msg);
        for t in msg.delivery.history.iter().skip(stored) {
            m::hot().transitions[t.state.index()].increment(1);
            for ev in callbacks::events_for(&msg, t.state, t.at) {
                let eid = hub.ids.next();
                ops.owe_callback(now, eid, CallbackEvent::encode(&ev));
                events += 1;
            }
        }
        if stored < msg.delivery.history.len() && msg.envelope.peer().is_some() {
            notify.push((Message::clone(&msg), msg.delivery.history[stored..].iter().map(|t| t.state).collect()));
        }
        if msg.delivery.state == State::Submitted && !no_receipts.contains(&id) {
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
