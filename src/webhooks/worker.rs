//! Sending each endpoint's queue: one task per endpoint (an endpoint that is down slows no
//! other), up to its `max_in_flight` deliveries at once, in queue order with one rule: a
//! message's later event waits while an earlier one of the same message is in flight or waiting
//! for its retry (a `delivered` never overtakes its `submitted`). A 2xx settles a delivery; any
//! other answer or no answer is a failed try, retried after the schedule's next delay (or the
//! answer's `Retry-After`, if later); after the last try the delivery is dead-lettered. `410
//! Gone` disables the endpoint (its deliveries wait until it is enabled again).

use super::{Attempt, Delivery, Registry};
use crate::connector::http::{client, HttpClient};
use crate::model::{now_ms, MessageId};
use crate::outbox::{Changes, Outbox};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// Queue entries looked at per round.
const SCAN: usize = 1024;
/// How long one try may take.
const TIMEOUT: Duration = Duration::from_secs(15);

pub const SENT: &str = "postern_webhook_sent_total";
pub const FAILED: &str = "postern_webhook_failed_total";
pub const DEAD: &str = "postern_webhook_dead_total";
pub const LATENCY: &str = "postern_webhook_latency_seconds";
pub const DEPTH: &str = "postern_webhook_queue_depth";
pub const DISABLED: &str = "postern_webhook_disabled";

/// What one try came to.
struct Tried {
    seq: MessageId,
    /// The delivery as stored (kept as it is once sent: no encoding on the hot path).
    raw: Vec<u8>,
    delivery: Delivery,
    status: Option<u16>,
    latency: Duration,
    answer: String,
    retry_after: Option<u64>,
}

/// Keep one task per endpoint running while the registry lives.
pub async fn supervise(reg: Weak<Registry>, outbox: Arc<Outbox>) {
    let client = client();
    let mut tasks: HashMap<u64, tokio::task::JoinHandle<()>> = HashMap::new();
    let mut last_sweep = Instant::now();
    loop {
        let Some(r) = reg.upgrade() else { break };
        let nums: HashSet<u64> = r.list().iter().map(|e| e.num).collect();
        tasks.retain(|num, t| {
            let keep = nums.contains(num) && !t.is_finished();
            if !keep {
                t.abort();
            }
            keep
        });
        for num in nums {
            tasks.entry(num).or_insert_with(|| tokio::spawn(endpoint(reg.clone(), outbox.clone(), client.clone(), num)));
        }
        if last_sweep.elapsed() >= SWEEP_EVERY {
            last_sweep = Instant::now();
            for e in r.list() {
                sweep_sent(&outbox, e.num, r.keep_sent_ms).await;
            }
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), r.wake.notified()).await;
    }
    for t in tasks.values() {
        t.abort();
    }
}

async fn endpoint(reg: Weak<Registry>, outbox: Arc<Outbox>, client: HttpClient, num: u64) {
    // Deliveries in flight: seq -> message.
    let mut in_flight: HashMap<MessageId, MessageId> = HashMap::new();
    let mut sends: tokio::task::JoinSet<Tried> = tokio::task::JoinSet::new();
    loop {
        let Some(r) = reg.upgrade() else { return };
        let Some(ep) = r.list().into_iter().find(|e| e.num == num) else { return };
        let now = now_ms();
        let mut next_due: Option<i64> = None;
        metrics::gauge!(DISABLED, "endpoint" => ep.id.clone()).set(if ep.disabled.is_some() { 1.0 } else { 0.0 });
        // The queue is scanned again once half the sends are done (not after each one: a scan
        // reads and decodes up to SCAN entries).
        if ep.disabled.is_none() && sends.len() <= ep.max_in_flight / 2 {
            let queue = outbox.hook_queue(num, None, SCAN).unwrap_or_default();
            metrics::gauge!(DEPTH, "endpoint" => ep.id.clone()).set(queue.len() as f64);
            let mut blocked: HashSet<MessageId> = in_flight.values().copied().collect();
            // The URL policy on the addresses the name resolves to now: once per round (the
            // client's pooled connections are not one per delivery), when there is a queue.
            let refused = match queue.is_empty() {
                true => None,
                false => r.policy.check_connect(&ep.url).await.err().map(|e| format!("refused by the URL policy: {e}")),
            };
            let keys = ep.keys(now);
            for (seq, bytes) in queue {
                if sends.len() >= ep.max_in_flight {
                    break;
                }
                if in_flight.contains_key(&seq) {
                    continue;
                }
                let Some(d) = Delivery::decode(&bytes) else {
                    // Unreadable: dropped, so that it blocks nothing.
                    let mut ops = Changes::new();
                    ops.settle_hook(num, seq);
                    let _ = outbox.write(0, ops, vec![], 0).await;
                    continue;
                };
                // Only the earliest waiting event of a message may go.
                if !blocked.insert(d.message_id) {
                    continue;
                }
                if d.next_at > now {
                    next_due = Some(next_due.map_or(d.next_at, |n| n.min(d.next_at)));
                    continue;
                }
                in_flight.insert(seq, d.message_id);
                let (client, url, keys, refused) = (client.clone(), ep.url.clone(), keys.clone(), refused.clone());
                sends.spawn(async move { attempt(&client, &url, &keys, refused, seq, bytes, d).await });
            }
        }
        let schedule = r.schedule_s.clone();
        let keep_sent = r.keep_sent_ms > 0;
        let id = ep.id.clone();
        let wake = r.wake.notified();
        let idle = next_due.map_or(1000, |t| (t - now).clamp(1, 1000)) as u64;
        tokio::select! {
            Some(done) = sends.join_next(), if !sends.is_empty() => {
                let mut ops = Changes::new();
                let mut finished = Vec::new();
                let mut next = Some(done);
                while let Some(done) = next {
                    if let Ok(t) = done {
                        finished.push(t.seq);
                        settle(&reg, &id, num, &schedule, keep_sent, t, &mut ops).await;
                    }
                    next = sends.try_join_next();
                }
                if let Err(e) = outbox.write(0, ops, vec![], 0).await {
                    tracing::error!(endpoint = %id, error = %e, "webhook bookkeeping write failed; those deliveries will be sent again");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                // A panicked send leaves its entry in flight until the next restart of this task.
                for seq in finished {
                    in_flight.remove(&seq);
                }
            }
            _ = tokio::time::timeout(Duration::from_millis(idle), wake) => {}
        }
    }
}

const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// Forget the sent deliveries of `num` older than `keep_ms` (their seq is time-ordered: the
/// sweep stops at the first younger one).
async fn sweep_sent(outbox: &Outbox, num: u64, keep_ms: i64) {
    let cutoff = now_ms() - keep_ms;
    loop {
        let old: Vec<MessageId> = outbox.hook_sent(num, None, 1000).unwrap_or_default().into_iter().map(|(s, _)| s).take_while(|s| s.millis() < cutoff).collect();
        if old.is_empty() {
            return;
        }
        let mut ops = Changes::new();
        for s in &old {
            ops.forget_sent_hook(num, *s);
        }
        if outbox.write(0, ops, vec![], 0).await.is_err() || old.len() < 1000 {
            return;
        }
    }
}

/// The bookkeeping of one try.
async fn settle(reg: &Weak<Registry>, id: &str, num: u64, schedule: &[u64], keep_sent: bool, t: Tried, ops: &mut Changes) {
    let Tried { seq, raw, mut delivery, status, latency, answer, retry_after } = t;
    metrics::histogram!(LATENCY, "endpoint" => id.to_string()).record(latency.as_secs_f64());
    if status.is_some_and(|s| (200..300).contains(&s)) {
        metrics::counter!(SENT, "endpoint" => id.to_string()).increment(1);
        // Kept for replays until swept (as stored; a replay starts its tries afresh).
        if keep_sent {
            ops.sent_hook(num, seq, raw);
        } else {
            ops.settle_hook(num, seq);
        }
        return;
    }
    metrics::counter!(FAILED, "endpoint" => id.to_string()).increment(1);
    let now = now_ms();
    delivery.attempts.push(Attempt { at: now, status, latency_ms: latency.as_millis() as u64, answer });
    if status == Some(410) {
        tracing::warn!(endpoint = %id, "webhook endpoint answered 410 Gone: disabled");
        if let Some(r) = reg.upgrade() {
            let why = format!("410 Gone at {}", crate::time::rfc3339(now));
            let _ = r.update(id, |e| {
                e.disabled = Some(why);
                Ok(())
            }).await;
        }
        ops.requeue_hook(num, seq, delivery.encode());
        return;
    }
    let tries = delivery.attempts.len();
    match schedule.get(tries) {
        Some(&delay_s) => {
            let delay = delay_s.max(retry_after.unwrap_or(0)) as i64 * 1000;
            delivery.next_at = now + delay;
            ops.requeue_hook(num, seq, delivery.encode());
        }
        None => {
            tracing::warn!(endpoint = %id, event = %delivery.event_id, tries, "webhook delivery dead-lettered");
            metrics::counter!(DEAD, "endpoint" => id.to_string()).increment(1);
            ops.bury_hook(num, seq, delivery.encode());
        }
    }
}

/// One try: POST the event, signed.
#[allow(clippy::too_many_arguments)]
async fn attempt(client: &HttpClient, url: &str, keys: &[Vec<u8>], refused: Option<String>, seq: MessageId, raw: Vec<u8>, delivery: Delivery) -> Tried {
    let start = Instant::now();
    let mut tried = Tried { seq, raw, delivery, status: None, latency: Duration::ZERO, answer: String::new(), retry_after: None };
    if let Some(why) = refused {
        tried.answer = why;
        return tried;
    }
    let d = &tried.delivery;
    let ts = now_ms() / 1000;
    let mut req = hyper::Request::builder()
        .method("POST")
        .uri(url)
        .header("content-type", "application/json")
        .header("user-agent", "postern")
        .header("webhook-id", d.event_id.as_str())
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", super::sign::signature(keys, &d.event_id, ts, d.body.as_bytes()));
    if let Some(k) = keys.first() {
        req = req.header("x-postern-signature", format!("sha256={}", crate::connector::http::sign(k, d.body.as_bytes())));
    }
    let req = match req.body(Full::new(Bytes::from(d.body.clone()))) {
        Ok(r) => r,
        Err(e) => {
            tried.answer = e.to_string();
            return tried;
        }
    };
    match tokio::time::timeout(TIMEOUT, client.request(req)).await {
        Ok(Ok(resp)) => {
            tried.status = Some(resp.status().as_u16());
            tried.retry_after = resp.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse().ok());
            let body = tokio::time::timeout(TIMEOUT, resp.into_body().collect()).await;
            if let Ok(Ok(b)) = body {
                let b = b.to_bytes();
                tried.answer = String::from_utf8_lossy(&b[..b.len().min(200)]).into_owned();
            }
        }
        Ok(Err(e)) => tried.answer = format!("request failed: {e}"),
        Err(_) => tried.answer = format!("no answer within {}s", TIMEOUT.as_secs()),
    }
    tried.latency = start.elapsed();
    tried
}
