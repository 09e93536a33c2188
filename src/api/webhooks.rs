//! `/v1/webhooks`: endpoints (create: its secret shown once; list; get; `PATCH` to change or
//! enable again; delete), their secret's rotation (`POST …/secret`: a new one, the old kept for
//! 24 hours), and their deliveries (`GET …/deliveries?state=pending|failed` with every try;
//! `POST …/deliveries/{id}/retry` sends a dead letter again; `POST …/replay?since=` sends again
//! what was sent since then, within the 24 hours sent deliveries are kept).

use super::error::ApiError;
use super::rest::json_body;
use super::{json_response, Api, Resp};
use crate::model::{now_ms, Channel, MessageId};
use crate::outbox::Changes;
use crate::webhooks::{sign, Delivery, Endpoint, EndpointSpec, Secret, WebhookError};
use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};

/// How long the old secret still signs after a rotation.
const ROTATION_MS: i64 = 24 * 3600 * 1000;

pub(super) async fn route(api: &Api, req: Request<Incoming>, method: &Method, segs: &[&str]) -> Result<Resp, ApiError> {
    let reg = &api.hub.webhooks;
    let query = req.uri().query().unwrap_or("").to_string();
    let param = |name: &str| super::query_param(&query, name);
    match (method, segs) {
        (&Method::GET, []) => Ok(json_response(StatusCode::OK, &json!({"webhooks": reg.list().iter().map(|e| view(e, false)).collect::<Vec<_>>()}))),
        (&Method::POST, []) => {
            let key = super::idempotency::key_of(&req);
            let body = json_body(api, req).await?;
            super::idempotency::around(api, key.as_ref(), "POST /v1/webhooks", body, |body| async move {
                let spec: EndpointSpec = super::parse_json(&body)?;
                let e = reg.create(spec).await.map_err(error)?;
                Ok((StatusCode::CREATED, view(&e, true)))
            })
            .await
        }
        (&Method::GET, [id]) => reg.get(id).map(|e| json_response(StatusCode::OK, &view(&e, false))).ok_or_else(|| ApiError::not_found("webhook")),
        (&Method::PATCH, [id]) => {
            let p: Patch = super::parse_json(&json_body(api, req).await?)?;
            let e = reg
                .update(id, |e| {
                    if let Some(u) = p.url {
                        e.url = u;
                    }
                    if let Some(ev) = p.events {
                        if let Some(bad) = ev.iter().find(|x| !crate::webhooks::EVENTS.contains(&x.as_str())) {
                            return Err(WebhookError::Invalid { field: "events", message: format!("unknown event {bad:?}") });
                        }
                        e.events = ev;
                    }
                    if let Some(c) = p.connectors {
                        e.connectors = c;
                    }
                    if let Some(c) = p.channels {
                        e.channels = c;
                    }
                    if let Some(t) = p.tags {
                        e.tags = t;
                    }
                    if let Some(m) = p.max_in_flight {
                        if !(1..=256).contains(&m) {
                            return Err(WebhookError::Invalid { field: "max_in_flight", message: "max_in_flight is 1..=256".into() });
                        }
                        e.max_in_flight = m;
                    }
                    if let Some(d) = p.description {
                        e.description = Some(d);
                    }
                    if p.enabled == Some(true) {
                        e.disabled = None;
                    } else if p.enabled == Some(false) {
                        e.disabled = Some("disabled through the API".into());
                    }
                    Ok(())
                })
                .await
                .map_err(error)?;
            Ok(json_response(StatusCode::OK, &view(&e, false)))
        }
        (&Method::DELETE, [id]) => {
            reg.delete(id).await.map_err(error)?;
            Ok(json_response(StatusCode::OK, &json!({"deleted": id})))
        }
        (&Method::POST, [id, "secret"]) => {
            let given: Rotate = super::parse_json(&json_body(api, req).await.unwrap_or_else(|_| bytes::Bytes::from_static(b"{}")))?;
            let secret = match given.secret {
                Some(s) => {
                    sign::key_of(&s).map_err(|m| ApiError::unprocessable("invalid_field", m).field("secret"))?;
                    s
                }
                None => sign::new_secret(),
            };
            let now = now_ms();
            let fresh = secret.clone();
            let e = reg
                .update(id, move |e| {
                    e.secrets.retain(|s| s.expires_at.is_none_or(|t| t > now));
                    for s in &mut e.secrets {
                        s.expires_at.get_or_insert(now + ROTATION_MS);
                    }
                    e.secrets.push(Secret { secret: fresh, expires_at: None });
                    Ok(())
                })
                .await
                .map_err(error)?;
            let mut v = view(&e, false);
            v["secret"] = json!(secret);
            Ok(json_response(StatusCode::OK, &v))
        }
        (&Method::POST, [id, "replay"]) => {
            let e = reg.get(id).ok_or_else(|| ApiError::not_found("webhook"))?;
            let since = param("since")
                .and_then(|s| crate::time::parse_rfc3339(&s))
                .ok_or_else(|| ApiError::bad_request("invalid_field", "since is an RFC 3339 time").field("since"))?;
            if since < now_ms() - reg.keep_sent_ms {
                return Err(ApiError::unprocessable("invalid_field", format!("sent deliveries are kept {} s (api.webhook_keep_sent_s): since is older", reg.keep_sent_ms / 1000)).field("since"));
            }
            let mut n = 0;
            let mut after = None;
            loop {
                let page = api.hub.outbox.hook_sent(e.num, after, 1000)
                    .map_err(|x| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable", x.to_string()))?;
                let Some((last, _)) = page.last() else { break };
                after = Some(*last);
                let mut ops = Changes::new();
                for (seq, bytes) in page.iter().filter(|(s, _)| s.millis() >= since) {
                    let Some(mut d) = Delivery::decode(bytes) else { continue };
                    d.attempts.clear();
                    d.next_at = 0;
                    ops.replay_hook(e.num, *seq, d.encode());
                    n += 1;
                }
                api.hub.outbox.write(0, ops, vec![], 0).await?;
                if page.len() < 1000 {
                    break;
                }
            }
            reg.wake.notify_waiters();
            Ok(json_response(StatusCode::ACCEPTED, &json!({"replayed": n})))
        }
        (&Method::GET, [id, "deliveries"]) => {
            let e = reg.get(id).ok_or_else(|| ApiError::not_found("webhook"))?;
            let state = param("state").unwrap_or_else(|| "pending".into());
            let limit = param("limit").and_then(|l| l.parse().ok()).unwrap_or(100usize).min(1000);
            let list = match state.as_str() {
                "pending" => api.hub.outbox.hook_queue(e.num, None, limit),
                "failed" => api.hub.outbox.hook_dead(e.num, None, limit),
                _ => return Err(ApiError::bad_request("invalid_field", "state is pending or failed").field("state")),
            }
            .map_err(|x| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable", x.to_string()))?;
            let items: Vec<Value> = list.iter().filter_map(|(_, b)| Delivery::decode(b)).map(|d| delivery_view(&d, &state)).collect();
            Ok(json_response(StatusCode::OK, &json!({"deliveries": items})))
        }
        (&Method::POST, [id, "deliveries", did, "retry"]) => {
            let e = reg.get(id).ok_or_else(|| ApiError::not_found("webhook"))?;
            let seq: MessageId = did.strip_prefix("msg_").and_then(|s| s.parse().ok()).ok_or_else(|| ApiError::not_found("delivery"))?;
            let bytes = api.hub.outbox.hook_dead_one(e.num, seq)
                .map_err(|x| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable", x.to_string()))?
                .ok_or_else(|| ApiError::not_found("delivery"))?;
            let mut d = Delivery::decode(&bytes).ok_or_else(|| ApiError::not_found("delivery"))?;
            // A new schedule (the tries so far stay listed until this one is sent).
            d.attempts.clear();
            d.next_at = 0;
            let mut ops = Changes::new();
            ops.revive_hook(e.num, seq, d.encode());
            api.hub.outbox.write(0, ops, vec![], 0).await?;
            reg.wake.notify_waiters();
            Ok(json_response(StatusCode::ACCEPTED, &delivery_view(&d, "pending")))
        }
        _ => Err(ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", format!("{method} is not allowed here"))),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Patch {
    url: Option<String>,
    events: Option<Vec<String>>,
    connectors: Option<Vec<String>>,
    channels: Option<Vec<Channel>>,
    tags: Option<Vec<String>>,
    max_in_flight: Option<usize>,
    description: Option<String>,
    enabled: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Rotate {
    secret: Option<String>,
}

/// An endpoint as the API shows it; its secret only when just made.
fn view(e: &Endpoint, with_secret: bool) -> Value {
    let mut v = json!({
        "id": e.id, "url": e.url, "events": e.events, "connectors": e.connectors, "channels": e.channels,
        "tags": e.tags, "max_in_flight": e.max_in_flight, "description": e.description,
        "enabled": e.disabled.is_none(), "disabled_reason": e.disabled,
        "created_at": crate::time::rfc3339(e.created_at),
        "source": if e.from_config { "config" } else { "api" },
        "secrets": e.secrets.iter().map(|s| json!({"expires_at": s.expires_at.map(crate::time::rfc3339)})).collect::<Vec<_>>(),
    });
    if with_secret {
        v["secret"] = json!(e.secrets.last().map(|s| s.secret.clone()));
    }
    v
}

fn delivery_view(d: &Delivery, state: &str) -> Value {
    json!({
        "id": d.event_id, "event": d.event, "message_id": d.message_id.to_string(), "state": state,
        "created_at": crate::time::rfc3339(d.created_at),
        "next_at": (d.next_at > 0 && state == "pending").then(|| crate::time::rfc3339(d.next_at)),
        "attempts": d.attempts.iter().map(|a| json!({"at": crate::time::rfc3339(a.at), "status": a.status, "latency_ms": a.latency_ms, "answer": a.answer})).collect::<Vec<_>>(),
        "payload": serde_json::from_str::<Value>(&d.body).unwrap_or(Value::Null),
    })
}

fn error(e: WebhookError) -> ApiError {
    match e {
        WebhookError::Invalid { field, message } => ApiError::unprocessable("invalid_field", message).field(field),
        WebhookError::NotFound(_) => ApiError::not_found("webhook"),
        WebhookError::ReadOnly(_) => ApiError::new(StatusCode::CONFLICT, "read_only", e.to_string()),
        WebhookError::Store(s) => s.into(),
        WebhookError::Read(r) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable", r.to_string()),
    }
}
