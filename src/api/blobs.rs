//! `POST /v1/blobs` (the request body, stored by its SHA-256: `{"digest", "size"}`) and
//! `GET /v1/blobs/{digest}` (the bytes): files that messages refer to, such as email
//! attachments. The same bytes uploaded twice are one blob.

use super::error::ApiError;
use super::{json_response, read_body, Api, Resp};
use crate::outbox::Digest;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde_json::json;

pub(super) async fn upload(api: &Api, req: Request<Incoming>) -> Result<Resp, ApiError> {
    let body = read_body(req.into_body(), api.hub.cfg.api.max_body_bytes).await?;
    if body.is_empty() {
        return Err(ApiError::bad_request("empty_body", "a blob needs at least one byte").field("body"));
    }
    let digest = api.hub.outbox.put_blob(&body).await?;
    Ok(json_response(
        StatusCode::CREATED,
        &json!({"digest": digest.to_string(), "size": body.len()}),
    ))
}

pub(super) fn download(api: &Api, digest: &str) -> Result<Resp, ApiError> {
    let d: Digest = digest.parse().map_err(|_| {
        ApiError::bad_request("invalid_field", "a blob is named by 64 hex digits (its SHA-256)")
            .field("digest")
    })?;
    match api.hub.outbox.get_blob(&d) {
        Ok(Some(bytes)) => {
            let mut r = Response::new(Full::new(Bytes::from(bytes)));
            r.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("application/octet-stream"),
            );
            Ok(r)
        }
        Ok(None) => Err(ApiError::not_found("blob")),
        Err(e) => Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable", e.to_string())),
    }
}
