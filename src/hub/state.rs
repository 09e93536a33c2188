//! The per-shard state actor: the one place that changes stored messages after they are
//! accepted (outcomes of delivery attempts, receipts, cancels, expiry, deferral). It drains its
//! queue in turns: applies every event of a turn in memory, queues one write, and only after
//! that commit releases claims and window slots and answers callers. Up to
//! [`TURNS_IN_FLIGHT`] turns are committed while the next is prepared; a later turn reads the
//! messages an uncommitted one changed from memory, and the writer keeps turns in order. One
//! actor per shard means no lost updates without locks. What follows a turn's commit (or its
//! failure) is in [`super::turn`].

use crate::model::{ErrorInfo, Message, MessageId, Millis, State};
use super::Hub;
use crate::connector::Outcome;
use crate::outbox::ShardState;
use foldhash::HashMap;
use std::sync::{Arc, Weak};
use tokio::sync::{mpsc, oneshot};

pub use super::turn::CancelError;
use super::turn::{settle, SubmittedCache, Turn};

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
        let turn = super::apply::apply(&h, &shard, &mut cache, &mut turns, batch.drain(..), epoch).await;
        turns.push_back(turn);
    }
}
