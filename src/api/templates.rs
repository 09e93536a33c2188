//! `/v1/templates`: create, list (`?name=`), get, update (`PUT` with the `version` read, so two
//! editors cannot overwrite each other: `409 version_conflict`), delete; and
//! `POST /v1/templates/render` (what `postern template render` calls) to see a template filled
//! with params without sending anything.

use super::error::ApiError;
use super::rest::json_body;
use super::{json_response, Api, Resp};
use crate::model::template::{Rendered, TemplateSpec, Templates};
use crate::model::Channel;
use crate::templates::{Template, TemplateError};
use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};

pub(super) async fn route(api: &Api, req: Request<Incoming>, method: &Method, segs: &[&str]) -> Result<Resp, ApiError> {
    let cat = &api.hub.templates;
    let query = req.uri().query().unwrap_or("").to_string();
    let param = |name: &str| super::query_param(&query, name);
    match (method, segs) {
        (&Method::GET, []) => {
            let list: Vec<Value> = cat.list(param("name").as_deref()).iter().map(|t| view(t)).collect();
            Ok(json_response(StatusCode::OK, &json!({"templates": list})))
        }
        (&Method::POST, []) => {
            let key = super::idempotency::key_of(&req);
            let body = json_body(api, req).await?;
            super::idempotency::around(api, key.as_ref(), "POST /v1/templates", body, |body| async move {
                let spec: TemplateSpec = super::parse_json(&body)?;
                let t = cat.create(spec).await.map_err(error)?;
                Ok((StatusCode::CREATED, view(&t)))
            })
            .await
        }
        (&Method::POST, ["render"]) => {
            let r: RenderRequest = super::parse_json(&json_body(api, req).await?)?;
            let out = cat.render(&r.template, r.channel.unwrap_or(Channel::Sms), r.language.as_deref(), &r.params)?;
            Ok(json_response(StatusCode::OK, &json!({"subject": out.subject, "text": out.text, "html": out.html})))
        }
        (&Method::GET, [id]) => cat.get(id).map(|t| json_response(StatusCode::OK, &view(&t))).ok_or_else(|| ApiError::not_found("template")),
        (&Method::PUT, [id]) => {
            let u: Update = super::parse_json(&json_body(api, req).await?)?;
            let parts = Rendered { subject: u.subject, text: u.text, html: u.html };
            let t = cat.update(id, u.version, parts).await.map_err(error)?;
            Ok(json_response(StatusCode::OK, &view(&t)))
        }
        (&Method::DELETE, [id]) => {
            let version = match param("version") {
                Some(v) => Some(v.parse().map_err(|_| ApiError::bad_request("invalid_field", "version is a number").field("version"))?),
                None => None,
            };
            cat.delete(id, version).await.map_err(error)?;
            Ok(json_response(StatusCode::OK, &json!({"deleted": id})))
        }
        _ => Err(ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", format!("{method} is not allowed here"))),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Update {
    version: u64,
    #[serde(default)]
    subject: Option<String>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    html: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RenderRequest {
    template: String,
    #[serde(default)]
    channel: Option<Channel>,
    #[serde(default)]
    language: Option<String>,
    #[serde(default)]
    params: Value,
}

fn view(t: &Template) -> Value {
    json!({
        "id": t.id, "name": t.spec.name, "channel": t.spec.channel, "language": t.spec.language,
        "subject": t.spec.subject, "text": t.spec.text, "html": t.spec.html, "version": t.version,
        "updated_at": (t.updated_at > 0).then(|| crate::time::rfc3339(t.updated_at)),
        "source": if t.from_config { "config" } else { "api" },
    })
}

fn error(e: TemplateError) -> ApiError {
    match e {
        TemplateError::Invalid(i) => i.into(),
        TemplateError::NotFound(_) => ApiError::not_found("template"),
        TemplateError::Exists(_) => ApiError::new(StatusCode::CONFLICT, "exists", e.to_string()),
        TemplateError::Version { .. } => ApiError::new(StatusCode::CONFLICT, "version_conflict", e.to_string()).field("version"),
        TemplateError::ReadOnly(_) => ApiError::new(StatusCode::CONFLICT, "read_only", e.to_string()),
        TemplateError::Store(s) => s.into(),
        TemplateError::Read(r) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable", r.to_string()),
    }
}
