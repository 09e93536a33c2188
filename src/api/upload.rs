//! A message request's files: attachments given inline (`content_base64`) or as form parts
//! (`multipart/form-data`: a `message` JSON part and file parts) are decoded and named by their
//! digest first, and stored (synced) only once the request has been validated and is about to
//! be accepted, so a refused request leaves the media store as it was. Attachments given by
//! digest must name a stored blob.

use super::error::{from_json_error, ApiError};
use super::Api;
use crate::codec::form_data;
use crate::model::email::AttachmentRequest;
use crate::model::request::MessageRequest;
use crate::outbox::Digest;
use hyper::StatusCode;

/// Bytes to store when the request is accepted.
#[derive(Default)]
pub(super) struct Uploads(Vec<Vec<u8>>);

impl Uploads {
    pub fn extend(&mut self, other: Uploads) {
        self.0.extend(other.0);
    }

    /// Store them (synced; the same bytes twice are one blob).
    pub async fn store(self, api: &Api) -> Result<(), ApiError> {
        for bytes in self.0 {
            api.hub.outbox.put_blob(&bytes).await?;
        }
        Ok(())
    }
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_field", message).field("attachments")
}

/// Name every attachment by its digest: inline bytes decoded (kept in `uploads`), references
/// checked against the store.
pub(super) fn prepare(api: &Api, mr: &mut MessageRequest, uploads: &mut Uploads) -> Result<(), ApiError> {
    use base64::Engine as _;
    for a in &mut mr.attachments {
        if let Some(b64) = a.content_base64.take() {
            if a.digest.is_some() {
                return Err(bad("give an attachment's digest or its content_base64, not both"));
            }
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .map_err(|e| bad(format!("content_base64: {e}")))?;
            if bytes.is_empty() {
                return Err(bad("an attachment is empty"));
            }
            a.digest = Some(Digest::of(&bytes).to_string());
            a.size = Some(bytes.len() as u64);
            uploads.0.push(bytes);
        } else if let Some(d) = &a.digest {
            let digest: Digest = d.parse().map_err(|_| bad("an attachment digest is 64 hex digits (POST /v1/blobs)"))?;
            match api.hub.outbox.get_blob(&digest) {
                Ok(Some(b)) => a.size = Some(b.len() as u64),
                Ok(None) => {
                    return Err(ApiError::unprocessable("unknown_attachment", format!("no blob {d}: upload it with POST /v1/blobs")).field("attachments"))
                }
                Err(e) => return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable", e.to_string())),
            }
        }
    }
    Ok(())
}

/// The request of a `multipart/form-data` body: its `message` part, with each file part added
/// to the attachments.
pub(super) async fn multipart(api: &Api, body: bytes::Bytes, content_type: &str, uploads: &mut Uploads) -> Result<MessageRequest, ApiError> {
    let form = form_data::parse(body, content_type)
        .await
        .map_err(|e| ApiError::bad_request("invalid_multipart", e.to_string()).field(e.field()))?;
    let mut mr: MessageRequest = serde_json::from_slice(&form.message).map_err(from_json_error)?;
    prepare(api, &mut mr, uploads)?;
    for f in form.files {
        mr.attachments.push(AttachmentRequest {
            filename: f.filename,
            content_type: f.content_type,
            digest: Some(Digest::of(&f.bytes).to_string()),
            content_base64: None,
            size: Some(f.bytes.len() as u64),
        });
        uploads.0.push(f.bytes.to_vec());
    }
    Ok(mr)
}
