//! Webhook endpoints and the events they receive. Endpoints come from the config (read-only)
//! and from `/v1/webhooks` (records in the outbox's database); each asks for some events
//! (`message.status`: every state change, `message.failed`, `message.inbound`), optionally only
//! for some connectors, channels or tags. An event for an endpoint is a delivery in that
//! endpoint's queue in RocksDB, written in the same commit as what it reports (see
//! [`crate::outbox`]'s hooks); [`worker`] sends each queue in order, signed the Standard Webhooks
//! way ([`sign`]), retried on a schedule, dead-lettered after the last try.

pub mod policy;
pub mod sign;
pub mod worker;

use crate::model::{now_ms, Channel, Direction, IdGen, Message, MessageId, Millis, State};
use crate::outbox::{Changes, Outbox, OutboxError, StoreError};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use thiserror::Error;

const COLLECTION: &str = "webhooks";
/// The events an endpoint may ask for.
pub const EVENTS: [&str; 3] = ["message.status", "message.failed", "message.inbound"];

/// An endpoint as given (config `[[webhooks]]` or `POST /v1/webhooks`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointSpec {
    pub url: String,
    /// Of [`EVENTS`]; none: all.
    #[serde(default)]
    pub events: Vec<String>,
    #[serde(default)]
    pub connectors: Vec<String>,
    #[serde(default)]
    pub channels: Vec<Channel>,
    /// Tags a message must carry (all of them).
    #[serde(default)]
    pub tags: Vec<String>,
    /// Deliveries in flight at once (1..=256, default 16).
    #[serde(default)]
    pub max_in_flight: Option<usize>,
    /// `whsec_…`; none: one is made (and shown once).
    #[serde(default)]
    pub secret: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

/// A secret, and when it stops being used (the old one during a rotation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Secret {
    pub secret: String,
    pub expires_at: Option<Millis>,
}

/// A stored endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Endpoint {
    /// `wh_` + its number.
    pub id: String,
    pub num: u64,
    pub url: String,
    pub events: Vec<String>,
    pub connectors: Vec<String>,
    pub channels: Vec<Channel>,
    pub tags: Vec<String>,
    pub max_in_flight: usize,
    pub secrets: Vec<Secret>,
    pub description: Option<String>,
    /// Why it stopped (410 Gone), until enabled again.
    pub disabled: Option<String>,
    pub created_at: Millis,
    #[serde(default)]
    pub from_config: bool,
}

impl Endpoint {
    /// The keys to sign with now.
    pub fn keys(&self, now: Millis) -> Vec<Vec<u8>> {
        self.secrets.iter().filter(|s| s.expires_at.is_none_or(|t| t > now)).filter_map(|s| sign::key_of(&s.secret).ok()).collect()
    }

    fn wants(&self, event: &str, m: &Message) -> bool {
        (self.events.is_empty() || self.events.iter().any(|e| e == event))
            && (self.connectors.is_empty() || m.delivery.connector.as_ref().is_some_and(|c| self.connectors.contains(c)))
            && (self.channels.is_empty() || self.channels.contains(&m.envelope.channel))
            && self.tags.iter().all(|t| m.envelope.tags.contains(t))
    }
}

/// Why a change was refused.
#[derive(Debug, Error)]
pub enum WebhookError {
    #[error("{field}: {message}")]
    Invalid { field: &'static str, message: String },
    #[error("no webhook {0:?}")]
    NotFound(String),
    #[error("webhook {0:?} comes from the configuration; change it there")]
    ReadOnly(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Read(#[from] OutboxError),
}

fn invalid(field: &'static str, message: impl Into<String>) -> WebhookError {
    WebhookError::Invalid { field, message: message.into() }
}

/// The config's `[[webhooks]]` tables as specs.
pub fn specs_of(tables: &[toml::Table]) -> Result<Vec<EndpointSpec>, String> {
    tables
        .iter()
        .enumerate()
        .map(|(i, t)| toml::Value::Table(t.clone()).try_into::<EndpointSpec>().map_err(|e| format!("webhooks[{i}]: {e}")))
        .collect()
}

/// Check a spec (the URL against `policy`); the endpoint it makes.
pub fn endpoint_of(spec: EndpointSpec, num: u64, policy: &policy::UrlPolicy, from_config: bool) -> Result<Endpoint, WebhookError> {
    policy.check_url(&spec.url).map_err(|e| invalid("url", e))?;
    if let Some(e) = spec.events.iter().find(|e| !EVENTS.contains(&e.as_str())) {
        return Err(invalid("events", format!("unknown event {e:?}: one of {}", EVENTS.join(", "))));
    }
    let max_in_flight = spec.max_in_flight.unwrap_or(16);
    if !(1..=256).contains(&max_in_flight) {
        return Err(invalid("max_in_flight", "max_in_flight is 1..=256"));
    }
    let secret = match spec.secret {
        Some(s) => {
            sign::key_of(&s).map_err(|e| invalid("secret", e))?;
            s
        }
        None => sign::new_secret(),
    };
    Ok(Endpoint {
        id: format!("wh_{num}"),
        num,
        url: spec.url,
        events: spec.events,
        connectors: spec.connectors,
        channels: spec.channels,
        tags: spec.tags,
        max_in_flight,
        secrets: vec![Secret { secret, expires_at: None }],
        description: spec.description,
        disabled: None,
        created_at: now_ms(),
        from_config,
    })
}

/// The JSON of a message's state change (a status callback's body, a `message.status` event's
/// `data`).
pub fn status_json(msg: &Message, state: State, at: Millis) -> serde_json::Value {
    serde_json::json!({
        "id": msg.id.to_string(),
        "to": msg.envelope.to,
        "from": msg.envelope.from,
        "channel": msg.envelope.channel.as_str(),
        "state": state.as_str(),
        "at": crate::time::rfc3339(at),
        "client_ref": msg.envelope.client_ref,
        "tags": msg.envelope.tags,
        "segments": msg.envelope.content.parts(),
        "attempts": msg.delivery.attempts,
        "remote_ids": msg.delivery.remote_ids,
        "connector": msg.delivery.connector,
        "error": msg.delivery.error.as_ref().map(|e| serde_json::json!({"code": e.code, "message": e.message})),
    })
}

/// The JSON of a received message (a `message.inbound` event's `data`).
pub fn inbound_json(msg: &Message) -> serde_json::Value {
    use crate::model::{Body, Content};
    let mut v = serde_json::json!({
        "id": msg.id.to_string(),
        "from": msg.envelope.from,
        "to": msg.envelope.to,
        "channel": msg.envelope.channel.as_str(),
        "connector": msg.delivery.connector,
        "received_at": crate::time::rfc3339(msg.created_at),
        "metadata": msg.envelope.metadata,
    });
    match &msg.envelope.content {
        Content::Sms(s) => match &s.body {
            Body::Text(t) => v["text"] = t.as_str().into(),
            Body::Binary { data, .. } => v["binary"] = hex::encode(data).into(),
        },
        Content::Chat(c) => v["text"] = c.text.as_str().into(),
        Content::Email(e) => {
            v["subject"] = e.subject.as_str().into();
            v["text"] = serde_json::json!(e.text);
            v["html"] = serde_json::json!(e.html);
            v["attachments"] = e.attachments.iter().map(|a| serde_json::json!({"digest": a.digest, "size": a.size, "content_type": a.media_type, "filename": a.filename})).collect();
        }
    }
    v
}

/// One delivery's try.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    pub at: Millis,
    /// The HTTP status, if there was an answer.
    pub status: Option<u16>,
    pub latency_ms: u64,
    /// What went wrong, or the first bytes of the answer.
    pub answer: String,
}

/// A delivery: one event for one endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    /// `webhook-id`: the same on every try, so receivers can drop repeats.
    pub event_id: String,
    pub message_id: MessageId,
    pub event: String,
    /// The JSON sent.
    pub body: String,
    pub created_at: Millis,
    pub attempts: Vec<Attempt>,
    /// Not before (a retry's time).
    pub next_at: Millis,
}

impl Delivery {
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
    pub fn decode(b: &[u8]) -> Option<Delivery> {
        serde_json::from_slice(b).ok()
    }
}

/// The endpoints.
pub struct Registry {
    outbox: Option<Arc<Outbox>>,
    pub policy: policy::UrlPolicy,
    /// Seconds between tries: the first try, then one per entry (Standard Webhooks' schedule
    /// by default).
    pub schedule_s: Vec<u64>,
    /// How long sent deliveries are kept for replays (0: not kept).
    pub keep_sent_ms: i64,
    endpoints: RwLock<Vec<Arc<Endpoint>>>,
    /// Whether there is any endpoint (the hot path asks this first).
    any: AtomicBool,
    changing: tokio::sync::Mutex<()>,
    /// Wakes the workers when deliveries are queued or endpoints change.
    pub wake: tokio::sync::Notify,
}

impl Registry {
    pub fn load(outbox: Option<Arc<Outbox>>, config: &[EndpointSpec], policy: policy::UrlPolicy, schedule_s: Vec<u64>) -> Result<Registry, WebhookError> {
        let mut list = Vec::new();
        for (i, spec) in config.iter().enumerate() {
            // Config endpoints are numbered 1.. (their queues keep their place over restarts).
            list.push(Arc::new(endpoint_of(spec.clone(), i as u64 + 1, &policy, true)?));
        }
        if let Some(ob) = &outbox {
            for (_, bytes) in ob.records(COLLECTION)? {
                match serde_json::from_slice::<Endpoint>(&bytes) {
                    Ok(e) if !e.from_config => list.push(Arc::new(e)),
                    Ok(_) => {}
                    Err(e) => tracing::error!(error = %e, "unreadable stored webhook skipped"),
                }
            }
        }
        let any = AtomicBool::new(!list.is_empty());
        Ok(Registry { outbox, policy, schedule_s, keep_sent_ms: 24 * 3600 * 1000, endpoints: RwLock::new(list), any, changing: Default::default(), wake: Default::default() })
    }

    /// Keep sent deliveries this long (0: not at all).
    pub fn keep_sent(mut self, seconds: u64) -> Registry {
        self.keep_sent_ms = seconds as i64 * 1000;
        self
    }

    pub fn list(&self) -> Vec<Arc<Endpoint>> {
        self.endpoints.read().clone()
    }

    pub fn get(&self, id: &str) -> Option<Arc<Endpoint>> {
        self.endpoints.read().iter().find(|e| e.id == id).cloned()
    }

    async fn store(&self, e: &Endpoint) -> Result<(), WebhookError> {
        if let Some(ob) = &self.outbox {
            let bytes = serde_json::to_vec(e).map_err(|x| StoreError::Unavailable(x.to_string()))?;
            ob.put_record(COLLECTION, &e.id, bytes).await?;
        }
        Ok(())
    }

    fn replace(&self, e: Arc<Endpoint>) {
        let mut list = self.endpoints.write();
        match list.iter_mut().find(|x| x.id == e.id) {
            Some(slot) => *slot = e,
            None => list.push(e),
        }
        self.any.store(!list.is_empty(), Ordering::Relaxed);
        drop(list);
        self.wake.notify_waiters();
    }

    pub async fn create(&self, spec: EndpointSpec) -> Result<Arc<Endpoint>, WebhookError> {
        let _one = self.changing.lock().await;
        // Never reused (a queue is named by it): above every other, and the clock's millisecond.
        let num = self.endpoints.read().iter().map(|e| e.num + 1).max().unwrap_or(1).max(now_ms() as u64);
        let e = Arc::new(endpoint_of(spec, num, &self.policy, false)?);
        self.store(&e).await?;
        self.replace(e.clone());
        Ok(e)
    }

    /// Change an endpoint with `f` (checked again), and store it.
    pub async fn update(&self, id: &str, f: impl FnOnce(&mut Endpoint) -> Result<(), WebhookError>) -> Result<Arc<Endpoint>, WebhookError> {
        let _one = self.changing.lock().await;
        let cur = self.get(id).ok_or_else(|| WebhookError::NotFound(id.to_string()))?;
        let mut e = Endpoint::clone(&cur);
        f(&mut e)?;
        self.policy.check_url(&e.url).map_err(|m| invalid("url", m))?;
        if e.from_config && (e.url != cur.url || e.events != cur.events || e.secrets != cur.secrets) {
            return Err(WebhookError::ReadOnly(id.to_string()));
        }
        let e = Arc::new(e);
        if !e.from_config {
            self.store(&e).await?;
        }
        self.replace(e.clone());
        Ok(e)
    }

    pub async fn delete(&self, id: &str) -> Result<(), WebhookError> {
        let _one = self.changing.lock().await;
        let cur = self.get(id).ok_or_else(|| WebhookError::NotFound(id.to_string()))?;
        if cur.from_config {
            return Err(WebhookError::ReadOnly(id.to_string()));
        }
        if let Some(ob) = &self.outbox {
            ob.delete_record(COLLECTION, id).await?;
        }
        let mut list = self.endpoints.write();
        list.retain(|e| e.id != id);
        self.any.store(!list.is_empty(), Ordering::Relaxed);
        drop(list);
        self.wake.notify_waiters();
        Ok(())
    }

    /// Queue the events `m` entering `state` at `at` makes, in `ops`; how many.
    pub fn on_state(&self, m: &Message, state: State, at: Millis, ids: &IdGen, ops: &mut Changes) -> usize {
        if !self.any.load(Ordering::Relaxed) || m.direction != Direction::Outbound {
            return 0;
        }
        let data = status_json(m, state, at);
        let mut n = self.queue("message.status", m, &data, at, ids, ops);
        if state == State::Failed || state == State::Undelivered || state == State::Expired {
            n += self.queue("message.failed", m, &data, at, ids, ops);
        }
        n
    }

    /// Queue the `message.inbound` events of a received message, in `ops`.
    pub fn on_inbound(&self, m: &Message, view: &serde_json::Value, ids: &IdGen, ops: &mut Changes) -> usize {
        if !self.any.load(Ordering::Relaxed) {
            return 0;
        }
        self.queue("message.inbound", m, view, m.created_at, ids, ops)
    }

    fn queue(&self, event: &str, m: &Message, data: &serde_json::Value, at: Millis, ids: &IdGen, ops: &mut Changes) -> usize {
        let list = self.endpoints.read();
        let mut n = 0;
        for e in list.iter().filter(|e| e.wants(event, m)) {
            let seq = ids.next();
            let event_id = format!("msg_{seq}");
            let body = serde_json::json!({"type": event, "timestamp": crate::time::rfc3339(at), "data": data}).to_string();
            let d = Delivery { event_id, message_id: m.id, event: event.to_string(), body, created_at: now_ms(), attempts: Vec::new(), next_at: 0 };
            ops.enqueue_hook(e.num, seq, d.encode());
            n += 1;
        }
        n
    }
}

#[cfg(test)]
mod tests;
