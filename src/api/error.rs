//! API errors: a stable `code`, a human `message`, the `field` concerned, and the HTTP status.
//! Rendered as `{"error": {"code", "message", "field"}}`.

use super::{json_response, Resp};
use hyper::StatusCode;

/// An error answer.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<std::borrow::Cow<'static, str>>,
    pub retry_after: Option<u32>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
            retry_after: None,
        }
    }
    pub fn field(mut self, f: impl Into<std::borrow::Cow<'static, str>>) -> Self {
        self.field = Some(f.into());
        self
    }
    pub fn retry_after(mut self, s: u32) -> Self {
        self.retry_after = Some(s);
        self
    }
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }

    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({"error": {"code": self.code, "message": self.message, "field": self.field}})
    }

    pub fn into_response(self) -> Resp {
        metrics::counter!(crate::metrics::API_REJECTED_TOTAL, crate::metrics::L_CODE => self.code)
            .increment(1);
        super::with_retry_after(json_response(self.status, &self.body()), self.retry_after)
    }
}

impl From<crate::model::request::Invalid> for ApiError {
    fn from(i: crate::model::request::Invalid) -> Self {
        ApiError::unprocessable(i.code, i.message).field(i.field)
    }
}

impl From<crate::hub::AcceptError> for ApiError {
    fn from(e: crate::hub::AcceptError) -> Self {
        use crate::outbox::StoreError;
        match e {
            crate::hub::AcceptError::Saturated(_) => {
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, "outbox_full", e.to_string())
                    .retry_after(5)
            }
            crate::hub::AcceptError::Store(StoreError::Busy) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "the outbox write queue is full",
            )
            .retry_after(1),
            // Refused before any write: nothing was stored.
            crate::hub::AcceptError::Store(e @ (StoreError::Unavailable(_) | StoreError::Closed)) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                e.to_string(),
            )
            .retry_after(5),
            // The commit itself failed: it may have reached the log (outcome unknown).
            crate::hub::AcceptError::Store(e) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_write_failed",
                format!("{e}; the outcome is unknown: the message may have been stored and then will be sent"),
            )
            .retry_after(5),
        }
    }
}

impl From<crate::outbox::StoreError> for ApiError {
    fn from(e: crate::outbox::StoreError) -> Self {
        crate::hub::AcceptError::Store(e).into()
    }
}

/// Classify a serde_json error on a request body.
pub fn from_json_error(e: serde_json::Error) -> ApiError {
    use serde_json::error::Category;
    let msg = e.to_string();
    match e.classify() {
        Category::Syntax | Category::Eof | Category::Io => {
            ApiError::bad_request("invalid_json", msg)
        }
        Category::Data => {
            let code = if msg.starts_with("unknown field") {
                "unknown_field"
            } else if msg.starts_with("missing field") {
                "missing_field"
            } else {
                "invalid_type"
            };
            ApiError::unprocessable(code, msg)
        }
    }
}
