//! `/v1` REST JSON: messages (send one or many, batch, get, list, cancel) and connectors.

use super::error::{from_json_error, ApiError};
use super::{json_response, json_response_sized, read_body, Api, Resp};
use super::upload::Uploads;
use super::idempotency;
use crate::time::rfc3339;
use crate::model::{Body, Content, Direction, Message, MessageId, Origin, State};
use crate::model::request::{self, Invalid, MessageRequest, Rules};
use crate::model::Envelope;
use crate::hub::state::CancelError;
use crate::hub::Accepted;
use crate::outbox::ListFilter;
use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

pub(super) async fn route(
    api: &Api,
    req: Request<Incoming>,
    method: &Method,
    segs: &[&str],
) -> Result<Resp, ApiError> {
    match (method, segs) {
        (&Method::POST, ["messages"]) => send_one(api, req).await,
        (&Method::POST, ["messages", "batch"]) => send_batch(api, req).await,
        (&Method::GET, ["messages"]) => list(api, req.uri().query().unwrap_or("")),
        (&Method::GET, ["messages", id]) => get(api, id),
        (&Method::DELETE, ["messages", id]) => cancel(api, id).await,
        // `media` is the same store by the name the email issue uses.
        (&Method::POST, ["blobs" | "media"]) => super::blobs::upload(api, req).await,
        (&Method::GET, ["blobs" | "media", digest]) => super::blobs::download(api, digest),
        (_, ["templates", rest @ ..]) => super::templates::route(api, req, method, rest).await,
        (_, ["webhooks", rest @ ..]) => super::webhooks::route(api, req, method, rest).await,
        (_, ["backups", rest @ ..]) => super::backups::route(api, req, method, rest).await,
        (&Method::GET, ["connectors"]) => Ok(json_response(
            StatusCode::OK,
            &json!({"connectors": api.hub.links.iter().map(|l| l.status()).collect::<Vec<_>>()}),
        )),
        (_, ["messages"] | ["messages", _] | ["connectors"] | ["blobs" | "media"] | ["blobs" | "media", _]) => Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("{method} is not allowed here"),
        )),
        _ => Err(ApiError::not_found("path")),
    }
}

fn require_json(req: &Request<Incoming>) -> Result<(), ApiError> {
    let ct = req
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = ct.split(';').next().unwrap_or("").trim();
    if mime.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Content-Type must be application/json",
        ))
    }
}

pub(super) async fn json_body(api: &Api, req: Request<Incoming>) -> Result<bytes::Bytes, ApiError> {
    require_json(&req)?;
    let body = read_body(req.into_body(), api.hub.cfg.api.max_body_bytes).await?;
    if body.is_empty() {
        return Err(ApiError::bad_request(
            "empty_body",
            "the request body is empty",
        ));
    }
    Ok(body)
}

fn rules(api: &Api) -> Rules<'_> {
    Rules {
        sms: &api.hub.cfg.sms,
        plan: &api.hub.plan,
        default_validity_s: api.hub.cfg.outbox.retry.default_validity_s,
        templates: &*api.hub.templates,
    }
}

fn invalid_json(to: &str, i: &Invalid) -> Value {
    json!({"to": to, "error": {"code": i.code, "message": i.message, "field": i.field}})
}

/// Summary of one accepted message in a send response (`id`, `segments`, `state`, `to`).
#[derive(Serialize)]
pub(super) struct SentJson {
    #[serde(serialize_with = "display")]
    id: MessageId,
    segments: u16,
    state: &'static str,
    to: String,
}

fn display<S: serde::Serializer>(v: &impl std::fmt::Display, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

/// The answer to `POST /v1/messages`.
#[derive(Serialize)]
struct SendJson {
    messages: Vec<SentJson>,
    rejected: Vec<Value>,
}

/// One item of the answer to `POST /v1/messages/batch`.
#[derive(Serialize)]
#[serde(untagged)]
enum BatchItemJson {
    Sent { index: usize, messages: Vec<SentJson>, rejected: Vec<Value> },
    Failed { error: Value, index: usize },
}

#[derive(Serialize)]
struct BatchJson {
    accepted: usize,
    results: Vec<BatchItemJson>,
}

/// Split accept results into the response's `messages` and `rejected`.
pub(super) fn split_results(
    results: Vec<Accepted>,
    mut rejected: Vec<Value>,
) -> (Vec<SentJson>, Vec<Value>) {
    let mut messages = Vec::with_capacity(results.len());
    for r in results {
        match r {
            Accepted::Stored(m) => messages.push(SentJson { id: m.id, segments: m.segments, state: m.state.as_str(), to: m.to }),
            Accepted::NoRoute(d) => rejected.push(invalid_json(
                &d.to,
                &Invalid::new("unknown_route", "to", "no route matches this destination"),
            )),
        }
    }
    (messages, rejected)
}

async fn send_one(api: &Api, req: Request<Incoming>) -> Result<Resp, ApiError> {
    let mut uploads = Uploads::default();
    let content_type = req.headers().get(hyper::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let key = idempotency::key_of(&req);
    let multipart = content_type.to_ascii_lowercase().starts_with("multipart/form-data");
    let body = if multipart { read_body(req.into_body(), api.hub.cfg.api.max_body_bytes).await? } else { json_body(api, req).await? };
    let claim = match key.as_ref().map(|h| idempotency::begin(api, h, "POST /v1/messages", &body)).transpose()? {
        Some(idempotency::Begin::Replay(r)) => return Ok(r),
        Some(idempotency::Begin::Fresh(c)) => Some(c),
        None => None,
    };
    let mr = if multipart {
        super::upload::multipart(api, body, &content_type, &mut uploads).await?
    } else {
        let mut mr: MessageRequest = serde_json::from_slice(&body).map_err(from_json_error)?;
        super::upload::prepare(api, &mut mr, &mut uploads)?;
        mr
    };
    let v = request::validate(mr, &rules(api))?;
    let rejected: Vec<Value> = v
        .rejected
        .iter()
        .map(|(to, i)| invalid_json(to, i))
        .collect();
    if v.drafts.is_empty() {
        let first = v
            .rejected
            .first()
            .map(|(_, i)| i.clone())
            .unwrap_or_else(|| Invalid::new("invalid_destination", "to", "no valid recipient"));
        let mut e = ApiError::from(first).body();
        e["rejected"] = Value::Array(rejected);
        return Ok(json_response(StatusCode::UNPROCESSABLE_ENTITY, &e));
    }
    uploads.store(api).await?;
    let answer = |results: Vec<Accepted>, rejected: Vec<Value>| {
        let (messages, rejected) = split_results(results, rejected);
        if messages.is_empty() {
            let mut e = ApiError::unprocessable("unknown_route", "no route matches the destination").field("to").body();
            e["rejected"] = Value::Array(rejected);
            (StatusCode::UNPROCESSABLE_ENTITY, e.to_string())
        } else {
            (StatusCode::ACCEPTED, serde_json::to_string(&SendJson { messages, rejected }).unwrap_or_default())
        }
    };
    let (status, body) = match claim {
        None => answer(api.hub.accept(v.drafts).await?, rejected),
        // With an idempotency key the answer is made from what is accepted before the write,
        // and kept in that write.
        Some(c) => {
            let mut made = None;
            api.hub
                .accept_then(v.drafts, |results, changes| {
                    let (status, body) = answer(results.to_vec(), rejected);
                    if status == StatusCode::ACCEPTED {
                        c.store(status, &body, changes);
                    }
                    made = Some((status, body));
                })
                .await?;
            made.unwrap_or((StatusCode::INTERNAL_SERVER_ERROR, String::new()))
        }
    };
    Ok(super::text_response(status, body, "application/json"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchRequest<'a> {
    /// Items stay raw JSON so that each is parsed (and fails) on its own.
    #[serde(borrow)]
    messages: Vec<&'a serde_json::value::RawValue>,
}

async fn send_batch(api: &Api, req: Request<Incoming>) -> Result<Resp, ApiError> {
    let key = idempotency::key_of(&req);
    let body = json_body(api, req).await?;
    let claim = match key.as_ref().map(|h| idempotency::begin(api, h, "POST /v1/messages/batch", &body)).transpose()? {
        Some(idempotency::Begin::Replay(r)) => return Ok(r),
        Some(idempotency::Begin::Fresh(c)) => Some(c),
        None => None,
    };
    let batch: BatchRequest = serde_json::from_slice(&body).map_err(from_json_error)?;
    let max = api.hub.cfg.api.max_batch;
    if batch.messages.len() > max {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "batch_too_large",
            format!(
                "a batch holds at most {max} messages, got {}",
                batch.messages.len()
            ),
        )
        .field("messages"));
    }
    if batch.messages.is_empty() {
        return Err(
            ApiError::unprocessable("empty_batch", "the batch has no messages").field("messages"),
        );
    }
    // Validate every item; accept all good drafts in one call (one commit per shard).
    let rules = rules(api);
    let mut items: Vec<Result<(usize, Vec<Value>), ApiError>> =
        Vec::with_capacity(batch.messages.len());
    let mut drafts: Vec<Envelope> = Vec::with_capacity(batch.messages.len());
    let mut uploads = Uploads::default();
    for v in batch.messages {
        let mut item = serde_json::from_str::<MessageRequest>(v.get()).map_err(from_json_error);
        let mut item_uploads = Uploads::default();
        if let Ok(mr) = &mut item {
            if let Err(e) = super::upload::prepare(api, mr, &mut item_uploads) {
                item = Err(e);
            }
        }
        let item = item
            .and_then(|mr| request::validate(mr, &rules).map_err(ApiError::from))
            .and_then(|val| match (val.drafts.is_empty(), val.rejected.first()) {
                // Every recipient refused: the item fails as a single send would.
                (true, Some((_, first))) => Err(ApiError::from(first.clone())),
                _ => Ok(val),
            });
        if item.is_ok() {
            uploads.extend(item_uploads);
        }
        items.push(item.map(|val| {
            let n = val.drafts.len();
            drafts.extend(val.drafts);
            (
                n,
                val.rejected
                    .iter()
                    .map(|(to, i)| invalid_json(to, i))
                    .collect(),
            )
        }));
    }
    uploads.store(api).await?;
    // An item with one message is about 115 bytes (index, id, recipient, state, segments).
    let answer = |results: Vec<Accepted>, items: Vec<Result<(usize, Vec<Value>), ApiError>>| {
        let mut results = results.into_iter();
        let mut out = Vec::with_capacity(items.len());
        let mut accepted = 0;
        for (index, item) in items.into_iter().enumerate() {
            match item {
                Ok((n, rejected)) => {
                    let (messages, rejected) = split_results(results.by_ref().take(n).collect(), rejected);
                    accepted += messages.len();
                    out.push(BatchItemJson::Sent { index, messages, rejected });
                }
                Err(e) => out.push(BatchItemJson::Failed { error: e.body()["error"].take(), index }),
            }
        }
        let status = if accepted > 0 { StatusCode::ACCEPTED } else { StatusCode::UNPROCESSABLE_ENTITY };
        let size = 64 + 128 * out.len();
        (status, BatchJson { accepted, results: out }, size)
    };
    match claim {
        None => {
            let (status, json, size) = answer(api.hub.accept(drafts).await?, items);
            Ok(json_response_sized(status, &json, size))
        }
        Some(c) => {
            let mut made = None;
            api.hub
                .accept_then(drafts, |results, changes| {
                    let (status, json, _) = answer(results.to_vec(), items);
                    let body = serde_json::to_string(&json).unwrap_or_default();
                    if status == StatusCode::ACCEPTED {
                        c.store(status, &body, changes);
                    }
                    made = Some((status, body));
                })
                .await?;
            let (status, body) = made.unwrap_or((StatusCode::INTERNAL_SERVER_ERROR, String::new()));
            Ok(super::text_response(status, body, "application/json"))
        }
    }
}

fn parse_id(id: &str) -> Result<MessageId, ApiError> {
    id.parse().map_err(|_| ApiError::not_found("message"))
}

/// The full JSON view of a message.
pub(super) fn message_json(m: &Message) -> Value {
    let mut v = json!({
        "id": m.id.to_string(),
        "direction": match m.direction { Direction::Outbound => "outbound", Direction::Inbound => "inbound" },
        "channel": m.envelope.channel.as_str(),
        "to": m.envelope.to.as_str(),
        "from": m.envelope.from.as_deref(),
        "state": m.delivery.state.as_str(),
        "segments": m.envelope.content.parts(),
        "attempts": m.delivery.attempts,
        "client_ref": m.envelope.client_ref,
        "metadata": m.envelope.metadata,
        "tags": m.envelope.tags,
        "priority": m.envelope.priority,
        "send_at": m.envelope.send_at.map(rfc3339),
        "expires_at": if m.direction == Direction::Outbound { Some(rfc3339(m.envelope.expires_at)) } else { None },
        "callback_url": m.envelope.callback_url(),
        "origin": origin_json(&m.envelope.origin),
        "parent_id": match &m.envelope.origin { Origin::Forward { parent } => Some(parent.to_string()), _ => None },
        "connector": m.delivery.connector,
        "remote_ids": m.delivery.remote_ids,
        "created_at": rfc3339(m.created_at),
        "updated_at": m.delivery.history.last().map(|t| rfc3339(t.at)),
        "history": m.delivery.history.iter().map(|t| json!({"state": t.state.as_str(), "at": rfc3339(t.at)})).collect::<Vec<_>>(),
        "error": m.delivery.error.as_ref().map(|e| json!({"code": e.code, "message": e.message})),
    });
    match &m.envelope.content {
        Content::Sms(sms) => {
            v["coding"] = json!(sms.coding);
            match &sms.body {
                Body::Text(t) => v["text"] = json!(t),
                Body::Binary { data, data_coding } => {
                    v["binary"] = json!(hex::encode(data));
                    v["data_coding"] = json!(data_coding);
                }
            }
            if let Some(u) = &sms.udh {
                v["udh"] = json!(hex::encode(u));
            }
        }
        Content::Chat(c) => v["text"] = json!(c.text),
        Content::Email(e) => {
            v["subject"] = json!(e.subject);
            v["cc"] = json!(e.cc);
            v["bcc"] = json!(e.bcc);
            v["reply_to"] = json!(e.reply_to);
            v["text"] = json!(e.text);
            v["html"] = json!(e.html);
            v["attachments"] = json!(e
                .attachments
                .iter()
                .map(|a| json!({"digest": a.digest, "size": a.size, "media_type": a.media_type, "content_type": a.media_type, "filename": a.filename}))
                .collect::<Vec<_>>());
        }
    }
    v
}

/// Who handed the message in: `{"type": "api" | "peer" | "network"}` (a peer with its
/// connector and account).
fn origin_json(o: &Origin) -> Value {
    match o {
        Origin::Api { .. } => json!({"type": "api"}),
        Origin::Peer { connector, account } => json!({"type": "peer", "connector": connector, "account": account}),
        Origin::Network => json!({"type": "network"}),
        Origin::Forward { parent } => json!({"type": "forward", "parent_id": parent.to_string()}),
    }
}

fn get(api: &Api, id: &str) -> Result<Resp, ApiError> {
    let id = parse_id(id)?;
    match api.hub.get(id) {
        Ok(Some(m)) => Ok(json_response(StatusCode::OK, &message_json(&m))),
        Ok(None) => Err(ApiError::not_found("message")),
        Err(e) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            e.to_string(),
        )),
    }
}

async fn cancel(api: &Api, id: &str) -> Result<Resp, ApiError> {
    let id = parse_id(id)?;
    match api.hub.cancel(id).await {
        Ok(m) => Ok(json_response(StatusCode::OK, &message_json(&m))),
        Err(CancelError::NotFound) => Err(ApiError::not_found("message")),
        Err(e @ (CancelError::Final(_) | CancelError::Handed)) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_cancelable",
            e.to_string(),
        )),
        Err(e @ CancelError::Store(_)) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            e.to_string(),
        )
        .retry_after(1)),
    }
}

fn list(api: &Api, query: &str) -> Result<Resp, ApiError> {
    let mut filter = ListFilter::default();
    let mut limit = 50usize;
    let mut cursor = None;
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        match &*k {
            "state" => {
                filter.state = Some(State::parse(&v).ok_or_else(|| {
                    ApiError::bad_request("invalid_query", format!("unknown state {v:?}"))
                        .field("state")
                })?)
            }
            "to" => filter.to = Some(v.into_owned()),
            "channel" => {
                filter.channel = Some(match crate::model::Channel::parse(&v) {
                    Some(c) => c,
                    None => {
                        return Err(ApiError::bad_request("invalid_query", "channel must be sms, email or xmpp")
                            .field("channel"))
                    }
                })
            }
            "direction" => {
                filter.direction = Some(match &*v {
                    "inbound" => Direction::Inbound,
                    "outbound" => Direction::Outbound,
                    _ => {
                        return Err(ApiError::bad_request(
                            "invalid_query",
                            "direction must be inbound or outbound",
                        )
                        .field("direction"))
                    }
                })
            }
            "limit" => {
                limit = v
                    .parse()
                    .ok()
                    .filter(|l| (1..=1000).contains(l))
                    .ok_or_else(|| {
                        ApiError::bad_request("invalid_query", "limit must be 1..=1000")
                            .field("limit")
                    })?
            }
            "cursor" => {
                cursor = Some(v.parse::<MessageId>().map_err(|_| {
                    ApiError::bad_request("invalid_query", "bad cursor").field("cursor")
                })?)
            }
            _ => {
                return Err(ApiError::bad_request(
                    "invalid_query",
                    format!("unknown parameter {k:?}"),
                ))
            }
        }
    }
    let (msgs, next) = api
        .hub
        .outbox
        .list(&filter, cursor, limit, 100_000)
        .map_err(|e| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                e.to_string(),
            )
        })?;
    Ok(json_response(
        StatusCode::OK,
        &json!({"messages": msgs.iter().map(message_json).collect::<Vec<_>>(), "next_cursor": next.map(|c| c.to_string())}),
    ))
}
