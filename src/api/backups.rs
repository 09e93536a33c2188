//! `/v1/backups`: `POST {"name"?}` writes a consistent backup of the outbox while the gateway
//! runs (into `api.backup_dir`, by default `<outbox.path>/backups`; a name, never a path, so a
//! key holder cannot write elsewhere); `GET` lists them. `postern restore` puts one back.

use super::error::ApiError;
use super::rest::json_body;
use super::{json_response, Api, Resp};
use crate::outbox::backup::{BackupError, Manifest};
use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use serde_json::{json, Value};
use std::path::PathBuf;

fn dir(api: &Api) -> PathBuf {
    let cfg = &api.hub.cfg;
    cfg.api.backup_dir.clone().unwrap_or_else(|| cfg.outbox.path.join("backups"))
}

/// A backup's name: 1–64 of `A-Z a-z 0-9 . _ -`, not starting with a dot.
fn check_name(n: &str) -> Result<(), ApiError> {
    let ok = !n.is_empty() && n.len() <= 64 && !n.starts_with('.') && n.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ApiError::unprocessable("invalid_name", "1-64 characters of A-Z a-z 0-9 . _ -, not starting with a dot").field("name"))
    }
}

fn view(name: &str, path: &std::path::Path, m: &Manifest) -> Value {
    json!({"name": name, "path": path.display().to_string(), "created_at": m.created_at, "version": m.version, "bytes": m.bytes})
}

pub(super) async fn route(api: &Api, req: Request<Incoming>, method: &Method, segs: &[&str]) -> Result<Resp, ApiError> {
    match (method, segs) {
        (&Method::POST, []) => {
            let body = json_body(api, req).await?;
            let v: Value = if body.is_empty() { json!({}) } else { super::parse_json(&body)? };
            let name = match &v["name"] {
                Value::String(s) => s.clone(),
                Value::Null => crate::time::rfc3339(crate::model::now_ms()).replace(':', "-"),
                _ => return Err(ApiError::unprocessable("invalid_name", "name is a string").field("name")),
            };
            check_name(&name)?;
            let path = dir(api).join(&name);
            let outbox = api.hub.outbox.clone();
            let p = path.clone();
            let made = tokio::task::spawn_blocking(move || outbox.backup(&p))
                .await
                .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "backup_failed", e.to_string()))?;
            match made {
                Ok(m) => {
                    tracing::info!(path = %path.display(), bytes = m.bytes, "backup written");
                    Ok(json_response(StatusCode::CREATED, &view(&name, &path, &m)))
                }
                Err(BackupError::Exists(_)) => {
                    Err(ApiError::new(StatusCode::CONFLICT, "backup_exists", format!("a backup named {name} exists")).field("name"))
                }
                Err(e) => {
                    // A half-written backup is not left to be mistaken for one.
                    if !path.join("backup.json").exists() {
                        let _ = std::fs::remove_dir_all(&path);
                    }
                    Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "backup_failed", e.to_string()))
                }
            }
        }
        (&Method::GET, []) => {
            let root = dir(api);
            let mut list = Vec::new();
            for e in std::fs::read_dir(&root).into_iter().flatten().flatten() {
                let path = e.path();
                let m = std::fs::read(path.join("backup.json")).ok().and_then(|b| serde_json::from_slice::<Manifest>(&b).ok());
                if let Some(m) = m {
                    list.push(view(&e.file_name().to_string_lossy(), &path, &m));
                }
            }
            list.sort_by(|a, b| a["created_at"].as_str().cmp(&b["created_at"].as_str()));
            Ok(json_response(StatusCode::OK, &json!({"backups": list})))
        }
        (_, []) => Err(ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", format!("{method} is not allowed here"))),
        _ => Err(ApiError::not_found("path")),
    }
}
