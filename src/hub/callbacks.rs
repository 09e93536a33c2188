//! Status callbacks, durably queued in the outbox's `events` column family (written in the same
//! commit as the state change): JSON POSTs to a message's `callback_url`, signed with
//! HMAC-SHA256 (`X-Postern-Signature: sha256=<hex>`), and Kannel-style `dlr-url` GETs with
//! `%` escapes filtered by `dlr-mask`. Retried with backoff until `callback_max_age_s`. What is
//! owed and the queue are here; the requests are made by `connector::http`.

use crate::time::rfc3339;
use crate::model::{now_ms, Message, MessageId, Millis, State};
use super::Hub;
use crate::metrics as m;
use crate::outbox::{Changes, EventKey};
use crate::connector::http::{client, send};
use serde::{Deserialize, Serialize};
use std::sync::Weak;
use std::time::Duration;

/// One callback to make.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallbackEvent {
    pub msg_id: MessageId,
    /// POST with a JSON body when `body` is set, GET otherwise.
    pub url: String,
    pub body: Option<String>,
    pub attempts: u32,
    pub first_at: Millis,
}

impl CallbackEvent {
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_stdvec(self).unwrap_or_default()
    }
    pub fn decode(b: &[u8]) -> Option<CallbackEvent> {
        postcard::from_bytes(b).ok()
    }
}

/// Kannel `dlr-mask` bit for a state (1 delivered, 2 undelivered, 4 buffered, 8 SMSC accepted,
/// 16 SMSC rejected).
pub fn kannel_dlr_type(state: State) -> Option<u8> {
    match state {
        State::Delivered => Some(1),
        State::Undelivered | State::Expired => Some(2),
        State::Queued => Some(4),
        State::Submitted => Some(8),
        State::Failed => Some(16),
        _ => None,
    }
}

/// The receipt text Kannel passes as `%A` for a final state.
fn kannel_reply(msg: &Message, state: State) -> String {
    let rid = msg.delivery.remote_ids.first().map(String::as_str).unwrap_or("");
    let err = msg.delivery.error.as_ref();
    match state {
        State::Submitted => "ACK/".to_string(),
        State::Failed => format!(
            "NACK/{}/{}",
            err.map_or("", |e| e.code.as_str()),
            err.map_or("", |e| e.message.as_str())
        ),
        State::Queued => "BUFFERED".to_string(),
        _ => {
            let stat = match state {
                State::Delivered => "DELIVRD",
                State::Expired => "EXPIRED",
                _ => "UNDELIV",
            };
            let n = msg
                .delivery.part_states
                .iter()
                .filter(|s| **s == State::Delivered)
                .count();
            format!(
                "id:{rid} sub:{:03} dlvrd:{n:03} stat:{stat} err:{}",
                msg.envelope.content.parts(),
                if state == State::Delivered {
                    "000"
                } else {
                    "001"
                }
            )
        }
    }
}

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// Expand Kannel's escapes in a `dlr-url`: %d type, %p receiver, %P sender, %T unix time, %t
/// time, %A SMSC reply, %a/%b whole reply text, %s its second word, %I our id, %F remote id,
/// %i connector, %% a percent sign. Unknown escapes are left as they are.
pub fn kannel_url(template: &str, msg: &Message, state: State, at: Millis, dlr_type: u8) -> String {
    let reply = kannel_reply(msg, state);
    let mut out = String::with_capacity(template.len() + 64);
    let mut chars = template.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let Some(e) = chars.next() else {
            out.push('%');
            break;
        };
        let t = rfc3339(at);
        match e {
            'd' => out.push_str(&dlr_type.to_string()),
            'p' => out.push_str(&enc(&msg.envelope.to)),
            'P' => out.push_str(&enc(msg.envelope.from.as_deref().unwrap_or(""))),
            'T' => out.push_str(&(at / 1000).to_string()),
            't' => out.push_str(&enc(&format!("{} {}", &t[..10], &t[11..19]))),
            'A' | 'a' | 'b' => out.push_str(&enc(&reply)),
            's' => out.push_str(&enc(reply.split(' ').nth(1).unwrap_or(""))),
            'I' => out.push_str(&msg.id.to_string()),
            'F' => out.push_str(&enc(msg
                .delivery.remote_ids
                .first()
                .map(String::as_str)
                .unwrap_or(""))),
            'i' => out.push_str(&enc(msg.delivery.connector.as_deref().unwrap_or(""))),
            '%' => out.push('%'),
            other => {
                out.push('%');
                out.push(other);
            }
        }
    }
    out
}

/// The JSON body of a status callback (the same as a `message.status` webhook's `data`).
pub use crate::webhooks::status_json;

/// Callbacks owed for `msg` entering `state` at `at`.
pub fn events_for(msg: &Message, state: State, at: Millis) -> Vec<CallbackEvent> {
    let mut v = Vec::new();
    if let Some(url) = msg.envelope.callback_url() {
        v.push(CallbackEvent {
            msg_id: msg.id,
            url: url.to_string(),
            body: Some(status_json(msg, state, at).to_string()),
            attempts: 0,
            first_at: at,
        });
    }
    if let (Some(dlr), Some(t)) = (msg.envelope.kannel_dlr(), kannel_dlr_type(state)) {
        if dlr.mask & t != 0 {
            v.push(CallbackEvent {
                msg_id: msg.id,
                url: kannel_url(&dlr.url, msg, state, at, t),
                body: None,
                attempts: 0,
                first_at: at,
            });
        }
    }
    v
}

/// How many callbacks are sent at once; the worker refills when half of them are done.
const MAX_IN_FLIGHT: usize = 256;
/// The outcome of one send: its event key, the event (unless it did not decode), the result.
type Sent = (EventKey, Option<CallbackEvent>, Result<(), String>);

/// The bookkeeping for one finished send: delete the event, and on a failure inside the retry
/// period put it back with its next attempt's time.
fn settle(h: &Hub, (k, ev, r): Sent, ops: &mut Changes) {
    let now = now_ms();
    let max_age = h.cfg.api.callback_max_age_s as i64 * 1000;
    ops.settle_callback(k);
    match (ev, r) {
        (_, Ok(())) => metrics::counter!(m::CALLBACKS_TOTAL, m::L_OUTCOME => "ok").increment(1),
        (Some(mut ev), Err(e)) if now - ev.first_at < max_age => {
            ev.attempts += 1;
            let delay = (1000i64 << ev.attempts.min(12)).min(600_000);
            tracing::debug!(url = %ev.url, error = %e, attempt = ev.attempts, "callback failed; will retry");
            metrics::counter!(m::CALLBACKS_TOTAL, m::L_OUTCOME => "retry").increment(1);
            ops.owe_callback(now + delay, h.ids.next(), ev.encode());
        }
        (ev, Err(e)) => {
            tracing::warn!(url = ev.map(|e| e.url).unwrap_or_default(), error = %e, "callback dropped after its retry period");
            metrics::counter!(m::CALLBACKS_TOTAL, m::L_OUTCOME => "dropped").increment(1);
        }
    }
}

/// The callback worker: keeps up to [`MAX_IN_FLIGHT`] sends going, and writes their bookkeeping
/// (delete, or reschedule on failure) one batch at a time while the next sends run.
///
/// An event's key stays in `in_flight` from when it is taken until its bookkeeping is written,
/// so a scan that sees it again (its delete not yet committed) skips it: each callback is sent
/// once unless a bookkeeping write fails (then it is sent again: at least once).
pub(super) async fn run(hub: Weak<Hub>) {
    let client = client();
    // Scans start after the last event taken (the ones before it are deleted: tombstones a
    // scan from the start would step over). An event committed later with a lower key (its
    // time taken before that scan) is found by the full scan made every FULL_SCAN.
    const FULL_SCAN: Duration = Duration::from_secs(1);
    let mut cursor: Option<Vec<u8>> = None;
    let mut last_full = std::time::Instant::now();
    let mut in_flight: std::collections::HashSet<Vec<u8>> = std::collections::HashSet::new();
    let mut sends: tokio::task::JoinSet<Sent> = tokio::task::JoinSet::new();
    // Which event each send task carries, to release its key if the task panics.
    let mut task_keys: std::collections::HashMap<tokio::task::Id, Vec<u8>> = Default::default();
    let (written_tx, mut written_rx) = tokio::sync::mpsc::unbounded_channel::<Vec<Vec<u8>>>();
    let mut writing = false;
    let mut settled_ops = Changes::new();
    let mut settled_keys: Vec<Vec<u8>> = Vec::new();
    loop {
        let Some(h) = hub.upgrade() else { return };
        let now = now_ms();
        // Refill the sends when half of them are done.
        let mut idle_until = None;
        if sends.len() <= MAX_IN_FLIGHT / 2 {
            if last_full.elapsed() >= FULL_SCAN {
                cursor = None;
                last_full = std::time::Instant::now();
            }
            let room = MAX_IN_FLIGHT - sends.len();
            let due = h
                .outbox
                .due_events(cursor.as_deref(), now, room + in_flight.len())
                .unwrap_or_default();
            let mut taken = 0;
            let mut last_seen = None;
            for (k, v) in due {
                if taken == room {
                    break;
                }
                last_seen = Some(k.clone());
                if in_flight.contains(&k) {
                    continue;
                }
                in_flight.insert(k.clone());
                taken += 1;
                let client = client.clone();
                let secret = h.callback_secret.clone();
                let key = k.clone();
                let task = sends.spawn(async move {
                    let Some(ev) = CallbackEvent::decode(&v) else {
                        return (k, None, Err("undecodable".to_string()));
                    };
                    let r = send(&client, &ev.url, ev.body.as_deref(), secret.as_deref()).await;
                    (k, Some(ev), r)
                });
                task_keys.insert(task.id(), key);
            }
            if let Some(mut next) = last_seen {
                next.push(0); // the smallest key after it
                cursor = Some(next);
            }
            if taken == 0 && sends.is_empty() {
                idle_until = Some(
                    h.outbox
                        .next_event_at(cursor.as_deref())
                        .ok()
                        .flatten()
                        .unwrap_or(now + 1000),
                );
            }
        }
        // One bookkeeping write at a time; the settled sends wait for the next.
        if !writing && !settled_ops.is_empty() {
            writing = true;
            let ops = std::mem::take(&mut settled_ops);
            let keys = std::mem::take(&mut settled_keys);
            let hw = h.clone();
            let tx = written_tx.clone();
            tokio::spawn(async move {
                if let Err(e) = hw.outbox.write(0, ops, vec![], 0).await {
                    tracing::error!(error = %e, "callback bookkeeping write failed; those callbacks will be sent again");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                let _ = tx.send(keys);
            });
        }
        drop(h);
        let wait = match idle_until {
            Some(next) if !writing => (next - now).clamp(5, 1000) as u64,
            _ => 100,
        };
        let Some(h) = hub.upgrade() else { return };
        tokio::select! {
            Some(done) = sends.join_next_with_id(), if !sends.is_empty() => {
                // Take every other send that is already done too, so they share one write.
                let mut next = Some(done);
                while let Some(done) = next {
                    match done {
                        Ok((id, sent)) => {
                            task_keys.remove(&id);
                            settled_keys.push(sent.0.clone());
                            settle(&h, sent, &mut settled_ops);
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "callback send task failed; it will be sent again");
                            if let Some(k) = task_keys.remove(&e.id()) {
                                in_flight.remove(&k);
                            }
                        }
                    }
                    next = sends.try_join_next_with_id();
                }
            }
            Some(keys) = written_rx.recv(), if writing => {
                writing = false;
                for k in keys {
                    in_flight.remove(&k);
                }
            }
            _ = tokio::time::timeout(Duration::from_millis(wait), h.callbacks_wake.notified()) => {}
        }
    }
}
