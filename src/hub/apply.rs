//! One turn of a shard's state actor, applied in memory: one method per [`ShardEvent`], then
//! the turn's changes (each message stored once, in id order, with the callbacks its new states
//! owe) queued as one write.

use super::callbacks::{self, CallbackEvent};
use super::state::{CancelError, ShardEvent};
use super::turn::{After, SubmittedCache, Turn};
use super::Hub;
use crate::connector::{ErrorClass, Outcome};
use crate::metrics as m;
use crate::model::{now_ms, ErrorInfo, Message, MessageId, Millis, State};
use crate::outbox::{retry, Changes, ShardState};
use foldhash::HashMap;
use std::collections::VecDeque;
use tokio::sync::oneshot;

fn error_info(code: &str, message: &str) -> ErrorInfo {
    ErrorInfo {
        code: code.to_string(),
        message: message.to_string(),
    }
}

/// Apply a turn's events in memory and queue its write.
pub(super) async fn apply(
    hub: &Hub,
    shard: &ShardState,
    cache: &mut SubmittedCache,
    turns: &mut VecDeque<Turn>,
    events: impl ExactSizeIterator<Item = ShardEvent>,
    epoch: u64,
) -> Turn {
    let mut t = Working::new(hub, shard, cache, turns, events.len());
    for ev in events {
        match ev {
            ShardEvent::Outcome { msg, outcome, permit } => t.outcome(msg, outcome, permit),
            ShardEvent::Receipt { id, part, state, error, ack } => t.receipt(id, part, state, error, ack),
            ShardEvent::Cancel { id, reply } => t.cancel(id, reply),
            ShardEvent::Finish { msg, state, error } => t.finish(msg, state, error),
            ShardEvent::Reconcile { connector, id, part, remote_id } => t.reconcile(&connector, id, part, remote_id),
            ShardEvent::Defer { msg, until, error } => t.defer(msg, until, error),
        }
    }
    t.into_turn(epoch).await
}

/// A turn being built.
struct Working<'a> {
    hub: &'a Hub,
    shard: &'a ShardState,
    cache: &'a mut SubmittedCache,
    turns: &'a mut VecDeque<Turn>,
    now: Millis,
    /// The messages this turn changes, with how much of each one's history is already stored.
    /// Sized for the turn up front: growing a map of messages moves every one of them again.
    work: HashMap<MessageId, (Box<Message>, usize)>,
    ops: Changes,
    after: Vec<After>,
    depth_delta: i64,
    cancels: Vec<MessageId>,
    held: Vec<tokio::sync::OwnedSemaphorePermit>,
    /// Receipts acked to their peer (SMPP, modems) and cancels answered after this commit must
    /// be on disk. Outcomes of attempts, and receipts nobody is told about, may ride the next
    /// sync (within 2 ms): a power cut resends such a message or leaves it `submitted`.
    must_sync: bool,
    /// Submitted on links that ask for no receipts: nothing to keep them in memory for.
    no_receipts: foldhash::HashSet<MessageId>,
}

/// Load a message into the working set (from an earlier event of this turn, the cache of
/// submitted messages, a turn not yet committed, or the store).
fn load<'w>(
    hub: &Hub,
    cache: &mut SubmittedCache,
    turns: &mut VecDeque<Turn>,
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

impl<'a> Working<'a> {
    fn new(hub: &'a Hub, shard: &'a ShardState, cache: &'a mut SubmittedCache, turns: &'a mut VecDeque<Turn>, n: usize) -> Self {
        Working {
            hub,
            shard,
            cache,
            turns,
            now: now_ms(),
            work: HashMap::with_capacity_and_hasher(n, Default::default()),
            ops: Changes::with_capacity(n * 3),
            after: Vec::with_capacity(n),
            depth_delta: 0,
            cancels: Vec::new(),
            held: Vec::with_capacity(n),
            must_sync: false,
            no_receipts: Default::default(),
        }
    }

    /// How a delivery attempt ended.
    fn outcome(&mut self, mut msg: Box<Message>, outcome: Outcome, permit: Option<tokio::sync::OwnedSemaphorePermit>) {
        let (now, s) = (self.now, self.shard.index);
        let retry_cfg = &self.hub.cfg.outbox.retry;
        if let Some(p) = permit {
            self.held.push(p);
        }
        let id = msg.id;
        let connector = msg.delivery.connector.clone().unwrap_or_default();
        self.ops.unschedule(s, &msg);
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
                let link = self.hub.link(&connector);
                if let Some(l) = link {
                    l.submitted.increment(1);
                }
                m::hot()
                    .accept_to_submit
                    .record((now - msg.created_at).max(0) as f64 / 1000.0);
                // (the in-memory remote index was filled by the dispatcher)
                let receipts = Hub::link_keeps_receipts(link);
                if !receipts {
                    self.no_receipts.insert(id);
                }
                for (i, rid) in remote_ids.iter().enumerate().filter(|_| receipts) {
                    self.ops.expect_receipt(&connector, rid, id, i as u16);
                }
                msg.delivery.part_states = vec![State::Submitted; remote_ids.len()];
                msg.delivery.remote_ids = remote_ids;
                msg.delivery.error = error;
                msg.set_state(State::Submitted, now);
                self.depth_delta -= 1;
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
                    self.depth_delta -= 1;
                } else if due >= msg.envelope.expires_at {
                    msg.set_state(State::Expired, now);
                    self.depth_delta -= 1;
                } else {
                    msg.set_state(State::Queued, now);
                    msg.delivery.due_at = due;
                    self.ops.schedule(s, due, id);
                    self.after.push(After::Wake(due));
                }
            }
            Outcome::PermFail { error } => {
                metrics::counter!(m::CONNECTOR_FAILED_TOTAL, m::L_CONNECTOR => connector.clone(), m::L_CODE => error.code.clone(), m::L_KIND => error.kind.as_str()).increment(1);
                msg.delivery.error = Some(error_info(&error.code, &error.message));
                msg.set_state(State::Failed, now);
                self.depth_delta -= 1;
            }
        }
        self.after.push(After::Unclaim(id));
        // The in-memory copy is authoritative: it was claimed, nobody else changed it. Its
        // history before this attempt was already stored, minus the unstored "sending" entry,
        // which the callbacks should also see.
        let stored = msg
            .delivery
            .history
            .iter()
            .rposition(|t| t.state == State::Sending)
            .unwrap_or(msg.delivery.history.len());
        self.work.insert(id, (msg, stored));
    }

    /// A receipt for part `part` of message `id`.
    fn receipt(&mut self, id: MessageId, part: u16, state: State, error: Option<String>, ack: Option<oneshot::Sender<()>>) {
        let now = self.now;
        if let Some(a) = ack {
            self.must_sync = true;
            self.after.push(After::Ack(a));
        }
        let Some(msg) = load(self.hub, self.cache, self.turns, &mut self.work, id) else {
            metrics::counter!(m::RECEIPTS_UNKNOWN_TOTAL, m::L_CONNECTOR => "").increment(1);
            return;
        };
        m::hot().receipts[state.index()].increment(1);
        if msg.delivery.state.is_final() || msg.delivery.state != State::Submitted {
            return; // duplicate or late receipt
        }
        if let Some(p) = msg.delivery.part_states.get_mut(part as usize) {
            *p = state;
        }
        if let Some(e) = error {
            if state != State::Delivered {
                msg.delivery.error = Some(error_info("network_error", &e));
            }
        }
        if !msg.delivery.part_states.iter().all(|p| p.is_final()) {
            return;
        }
        let parts = &msg.delivery.part_states;
        let overall = if parts.iter().all(|p| *p == State::Delivered) {
            State::Delivered
        } else if parts.contains(&State::Undelivered) || parts.contains(&State::Failed) {
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
            .delivery
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
        let connector = msg.delivery.connector.as_deref().unwrap_or_default();
        for rid in &msg.delivery.remote_ids {
            self.ops.forget_receipt(connector, rid);
            self.hub.remote_index.remove(connector, rid);
        }
    }

    /// Cancel a message not yet handed to a connector.
    fn cancel(&mut self, id: MessageId, reply: oneshot::Sender<Result<Message, CancelError>>) {
        self.must_sync = true;
        let Some(msg) = load(self.hub, self.cache, self.turns, &mut self.work, id) else {
            let _ = reply.send(Err(CancelError::NotFound));
            return;
        };
        if msg.delivery.state.is_final() || msg.delivery.state == State::Submitted {
            let _ = reply.send(Err(CancelError::Final(msg.delivery.state.as_str())));
            return;
        }
        if self.shard.try_cancel(id).is_err() {
            let _ = reply.send(Err(CancelError::Handed));
            return;
        }
        self.cancels.push(id);
        self.ops.unschedule(self.shard.index, msg);
        msg.set_state(State::Canceled, self.now);
        self.depth_delta -= 1;
        self.after.push(After::Reply(reply, Message::clone(msg)));
    }

    /// End a claimed message without a delivery attempt (expired, no route).
    fn finish(&mut self, mut msg: Box<Message>, state: State, error: ErrorInfo) {
        self.ops.unschedule(self.shard.index, &msg);
        msg.delivery.error = Some(error);
        msg.set_state(state, self.now);
        self.depth_delta -= 1;
        self.after.push(After::Unclaim(msg.id));
        let n = msg.delivery.history.len() - 1;
        self.work.insert(msg.id, (msg, n));
    }

    /// A late answer: the peer took part `part` of `id` as `remote_id` after we gave up.
    fn reconcile(&mut self, connector: &str, id: MessageId, part: u16, remote_id: String) {
        // The carrier's id always leads to the message, whatever happens next (on a link that
        // waits for receipts; on one that does not, nothing is kept).
        let link = self.hub.link(connector);
        if Hub::link_keeps_receipts(link) {
            self.ops.expect_receipt(connector, &remote_id, id, part);
        } else {
            self.no_receipts.insert(id);
        }
        let Some(msg) = load(self.hub, self.cache, self.turns, &mut self.work, id) else { return };
        let waiting = msg.delivery.state.is_pending()
            && msg.delivery.state != State::Sending
            && msg.envelope.content.parts() <= 1
            && part == 0
            && msg.delivery.connector.as_deref() == Some(connector);
        // Withdraw it from the schedule like a cancel; if it is being sent again right now,
        // leave it: receipts of either copy settle it once.
        if waiting && self.shard.try_cancel(id).is_ok() {
            self.cancels.push(id);
            self.ops.unschedule(self.shard.index, msg);
            if let Some(l) = link {
                l.submitted.increment(1);
            }
            msg.delivery.remote_ids = vec![remote_id];
            msg.delivery.part_states = vec![State::Submitted];
            msg.delivery.error = None;
            msg.set_state(State::Submitted, self.now);
            self.depth_delta -= 1;
        }
    }

    /// Put a claimed message back in the schedule without spending an attempt.
    fn defer(&mut self, mut msg: Box<Message>, until: Millis, error: ErrorInfo) {
        let s = self.shard.index;
        self.ops.unschedule(s, &msg);
        msg.delivery.error = Some(error);
        msg.delivery.due_at = until;
        self.ops.schedule(s, until, msg.id);
        self.after.push(After::Unclaim(msg.id));
        self.after.push(After::Wake(until));
        let n = msg.delivery.history.len();
        self.work.insert(msg.id, (msg, n));
    }

    /// Store every changed message with the callbacks its new states owe, and queue the write.
    async fn into_turn(self, epoch: u64) -> Turn {
        let Working { hub, shard, cache, now, work, mut ops, after, depth_delta, cancels, held, must_sync, no_receipts, .. } = self;
        let mut events = 0;
        let mut hooks = 0;
        let n = work.len();
        let mut notify = Vec::new();
        let mut recent = HashMap::with_capacity_and_hasher(n, Default::default());
        let mut cached = Vec::with_capacity(n);
        // In id order: RocksDB's memtable starts each insert from where the last one went (its
        // "splice"), so keys written in order are placed in a few comparisons; in the map's
        // order each was a search from the top of a skip list of a million entries.
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
                hooks += hub.webhooks.on_state(&msg, t.state, t.at, &hub.ids, &mut ops);
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
            commit: hub.outbox.submit_turn(shard.index, ops, n, must_sync, epoch).await,
            messages: n,
            after,
            held,
            cancels,
            depth_delta,
            events,
            hooks,
            notify,
            recent,
            cached,
        }
    }
}
