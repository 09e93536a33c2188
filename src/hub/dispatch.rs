//! The per-shard dispatcher: takes messages from the shard's ready queue (refilled by scanning
//! the due-ordered schedule when messages are scheduled, retried, recovered, or overflowed),
//! routes each, waits for a window permit and a rate token on the chosen link, and hands it to
//! the connector. Outcomes go to the shard's state actor.

use crate::model::{now_ms, ErrorInfo, State};
use super::router::Pick;
use super::state::ShardEvent;
use super::Hub;
use crate::metrics as m;
use crate::outbox::{Popped, ShardState};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::mpsc;

/// How often the scan starts again from the head of the schedule.
const FULL_SCAN_EVERY: Duration = Duration::from_secs(30);

/// Longest the dispatcher works through its ready queue before it lets other tasks run.
const DISPATCH_SLICE: Duration = Duration::from_millis(1);

/// How long a message waits when no connector of its route is up.
const NO_LINK_DEFER_MS: i64 = 1000;

pub(super) async fn run(hub: Weak<Hub>, shard: Arc<ShardState>, actor: mpsc::Sender<ShardEvent>) {
    let depth_gauge = metrics::gauge!(m::OUTBOX_DEPTH, m::L_SHARD => shard.label.clone());
    let mut gauge_at = std::time::Instant::now();
    // Where the next scan starts (see `ShardState::note_due`); from the head at start and now
    // and then, so that nothing can hide behind it for long.
    let mut cursor = i64::MIN;
    let mut full_scan_at = std::time::Instant::now() + FULL_SCAN_EVERY;
    let mut handoff: Vec<Handoff> = Vec::with_capacity(HANDOFF_MAX);
    // When the dispatcher last let other tasks run.
    let mut slice = std::time::Instant::now();
    loop {
        let Some(hub) = hub.upgrade() else { return };
        if hub.draining.load(Ordering::Relaxed) {
            launch(&hub, &actor, &mut handoff);
            return;
        }
        let now = now_ms();
        let low = shard.room() > hub.cfg.outbox.ready_queue / 2;
        if (low && shard.take_overflow()) || shard.wake_at() <= now {
            if std::time::Instant::now() >= full_scan_at {
                full_scan_at = std::time::Instant::now() + FULL_SCAN_EVERY;
                cursor = i64::MIN;
            }
            scan(&hub, &shard, now, &mut cursor);
        }
        if gauge_at.elapsed() >= Duration::from_millis(100) {
            gauge_at = std::time::Instant::now();
            depth_gauge.set(shard.depth.load(Ordering::Relaxed) as f64);
        }
        match shard.pop() {
            Some(Popped::Message(msg)) => {
                dispatch(&hub, &shard, &actor, msg, &mut handoff).await;
                if handoff.len() >= HANDOFF_MAX {
                    launch(&hub, &actor, &mut handoff);
                    // Permits and tokens taken without waiting do not yield: after a slice of
                    // work, let the tasks just launched (and the rest of the runtime) run.
                    // Not after every batch: each yield waits for every other ready task (the
                    // HTTP connections parsing their requests), which left the dispatcher
                    // waiting for its turn most of the time under load.
                    if slice.elapsed() >= DISPATCH_SLICE {
                        tokio::task::yield_now().await;
                        slice = std::time::Instant::now();
                    }
                }
            }
            Some(Popped::Canceled(_)) => {}
            None => {
                launch(&hub, &actor, &mut handoff);
                let wait = (shard.wake_at() - now_ms()).clamp(1, 1000) as u64;
                drop(hub);
                let _ = tokio::time::timeout(Duration::from_millis(wait), shard.notify.notified())
                    .await;
                slice = std::time::Instant::now();
            }
        }
    }
}

/// Refill the ready queue from the schedule, from `cursor` (or an earlier entry written since).
fn scan(hub: &Hub, shard: &ShardState, now: i64, cursor: &mut i64) {
    shard.set_wake_at(i64::MAX);
    let room = shard.room();
    let floor = shard.take_due_floor();
    match hub.outbox.scan_due(shard, (*cursor).min(floor), now, room) {
        Ok(found) => {
            let mut resume = found.resume;
            for msg in found.messages {
                let due = msg.delivery.due_at;
                if !shard.offer_scanned(Box::new(msg)) {
                    shard.set_overflow();
                    resume = resume.min(due);
                    break;
                }
            }
            *cursor = resume;
            if found.more {
                shard.set_overflow();
            }
            shard.wake_by(found.next.unwrap_or(i64::MAX));
        }
        Err(e) => {
            shard.note_due(floor);
            tracing::error!(shard = shard.index, error = %e, "schedule scan failed");
            shard.wake_by(now + 1000);
        }
    }
}

/// A message ready for its connector: routed, its window slot and rate token taken, marked in
/// flight.
struct Handoff {
    msg: Box<crate::model::Message>,
    link: Arc<crate::connector::Link>,
    permit: tokio::sync::OwnedSemaphorePermit,
}

/// Most messages handed to one delivery task.
const HANDOFF_MAX: usize = 128;

/// Start delivering the gathered messages: one task drives them all (a task per message cost
/// more than the sandbox's whole delivery, and the dispatcher queued behind thousands of them).
fn launch(hub: &Arc<Hub>, actor: &mpsc::Sender<ShardEvent>, handoff: &mut Vec<Handoff>) {
    if handoff.is_empty() {
        return;
    }
    let batch = std::mem::replace(handoff, Vec::with_capacity(HANDOFF_MAX));
    let (hub, actor) = (hub.clone(), actor.clone());
    tokio::spawn(async move {
        use futures::StreamExt;
        let mut running: futures::stream::FuturesUnordered<_> =
            batch.into_iter().map(|h| deliver(&hub, &actor, h)).collect();
        while running.next().await.is_some() {}
    });
}

/// Deliver one message and queue its outcome for the state actor.
async fn deliver(hub: &Hub, actor: &mpsc::Sender<ShardEvent>, h: Handoff) {
    let Handoff { msg, link, permit } = h;
    let outcome = link.connector.deliver(&msg).await;
    link.inflight_gauge.decrement(1.0);
    link.progressed();
    let id = msg.id;
    let ids = match &outcome {
        crate::connector::Outcome::Submitted { remote_ids }
        | crate::connector::Outcome::Unconfirmed { remote_ids, .. } if link.receipts => remote_ids.clone(),
        _ => Vec::new(),
    };
    let _ = actor
        .send(ShardEvent::Outcome {
            msg,
            outcome,
            permit: Some(permit),
        })
        .await;
    // Only now may receipts find the message: queued after its outcome on the same actor,
    // a receipt is applied to the submitted message, however fast the carrier answers.
    for (i, rid) in ids.iter().enumerate() {
        hub.index_remote(&link.name, rid, id, i as u16);
    }
}

async fn dispatch(
    hub: &Arc<Hub>,
    shard: &ShardState,
    actor: &mpsc::Sender<ShardEvent>,
    mut msg: Box<crate::model::Message>,
    handoff: &mut Vec<Handoff>,
) {
    let now = now_ms();
    if msg.envelope.expires_at <= now {
        let error = ErrorInfo {
            code: "expired".into(),
            message: "validity ran out before the message could be sent".into(),
        };
        let _ = actor
            .send(ShardEvent::Finish {
                msg,
                state: State::Expired,
                error,
            })
            .await;
        return;
    }
    let Some(route) = hub.router.find_for(&msg) else {
        let error = ErrorInfo {
            code: "unknown_route".into(),
            message: "no route matches this message".into(),
        };
        let _ = actor
            .send(ShardEvent::Finish {
                msg,
                state: State::Failed,
                error,
            })
            .await;
        return;
    };
    let li = match route.pick(&hub.links) {
        Pick::Link(i) => i,
        Pick::NoneUp => {
            let error = ErrorInfo {
                code: "no_connector_up".into(),
                message: "no connector of the route is up".into(),
            };
            let _ = actor
                .send(ShardEvent::Defer {
                    msg,
                    until: now + NO_LINK_DEFER_MS,
                    error,
                })
                .await;
            return;
        }
    };
    let link = hub.links[li].clone();
    // Whatever is gathered goes out before the dispatcher waits for a slot or a token.
    let permit = match link.window.clone().try_acquire_owned() {
        Ok(p) => p,
        Err(_) => {
            launch(hub, actor, handoff);
            let Ok(p) = link.window.clone().acquire_owned().await else {
                return;
            };
            p
        }
    };
    let wait = link.bucket.reserve();
    if !wait.is_zero() {
        launch(hub, actor, handoff);
        tokio::time::sleep(wait).await;
    }
    if !shard.begin_flight(msg.id) {
        return; // canceled while waiting
    }
    msg.delivery.attempts += 1;
    msg.delivery.connector = Some(link.name.to_string());
    msg.set_state(State::Sending, now_ms());
    link.inflight_gauge.increment(1.0);
    handoff.push(Handoff { msg, link, permit });
}
