//! Requests a connector's peer makes to Postern's API at `/v1/providers/{connector}/{path}`:
//! delivery receipts and inbound messages from HTTP providers (Kannel's `dlr-url`, Twilio's
//! status callbacks, another Postern's signed callbacks). The API hands them over as they
//! came; each connector authenticates them its own way (a token in the URL, the provider's
//! signature), since the API's keys are not the peer's to know.

use bytes::Bytes;

/// One request from a connector's peer.
#[derive(Debug, Clone)]
pub struct PeerRequest {
    /// `GET`, `POST`, …
    pub method: String,
    /// What follows `/v1/providers/{connector}/` (`dlr`, `status`, `inbound`).
    pub path: String,
    /// The query string, without `?` (empty when there is none).
    pub query: String,
    /// Header names lowercase.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl PeerRequest {
    /// A header's value (names compared without case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    /// The parameters: the query's, then a form body's (`application/x-www-form-urlencoded`).
    pub fn params(&self) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = form_urlencoded::parse(self.query.as_bytes()).into_owned().collect();
        if self.header("content-type").is_some_and(|c| c.starts_with("application/x-www-form-urlencoded")) {
            v.extend(form_urlencoded::parse(&self.body).into_owned());
        }
        v
    }
    /// The form body's parameters only (what a Twilio signature covers).
    pub fn form(&self) -> Vec<(String, String)> {
        form_urlencoded::parse(&self.body).into_owned().collect()
    }
}

/// The connector's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerResponse {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

impl PeerResponse {
    /// A JSON answer.
    pub fn json(status: u16, v: serde_json::Value) -> PeerResponse {
        PeerResponse { status, content_type: "application/json", body: v.to_string() }
    }
    /// `{"error": {"code", "message"}}` with `status`, as the API answers errors.
    pub fn error(status: u16, code: &str, message: impl Into<String>) -> PeerResponse {
        PeerResponse::json(status, serde_json::json!({"error": {"code": code, "message": message.into()}}))
    }
    /// `200 {"ok": true}`.
    pub fn ok() -> PeerResponse {
        PeerResponse::json(200, serde_json::json!({"ok": true}))
    }
    /// The peer is to send it again later (the store could not take it).
    pub fn retry_later() -> PeerResponse {
        PeerResponse::error(503, "store_unavailable", "not stored; send it again")
    }
    /// No such endpoint on this connector.
    pub fn not_found() -> PeerResponse {
        PeerResponse::error(404, "not_found", "this connector has no such endpoint")
    }
}
