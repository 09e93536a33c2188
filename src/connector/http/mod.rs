//! HTTP out: the client Postern calls other systems with (status callbacks today; webhooks and
//! HTTP provider links build on it): keep-alive pooling, TLS with the public roots, a 10 s
//! answer timeout, and HMAC-SHA256 signatures (`X-Postern-Signature: sha256=<hex>`).

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use sha2::Sha256;
use std::time::Duration;

/// HMAC-SHA256 of `body` as lowercase hex.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// The HTTP(S) client: pooled keep-alive connections, public web roots for TLS.
pub type HttpClient = Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Full<Bytes>,
>;

/// A client with idle connections kept 30 s.
pub fn client() -> HttpClient {
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .build();
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build(https)
}

/// Make one request: a POST of `body` as JSON (signed with `secret` when given), or a GET
/// when there is no body. `Ok` on a 2xx answer; the error says what happened otherwise.
pub async fn send(
    client: &HttpClient,
    url: &str,
    body: Option<&str>,
    secret: Option<&[u8]>,
) -> Result<(), String> {
    let mut req = hyper::Request::builder()
        .uri(url)
        .header("user-agent", "postern");
    let body = match body {
        Some(b) => {
            req = req
                .method("POST")
                .header("content-type", "application/json");
            if let Some(s) = secret {
                req = req.header(
                    "x-postern-signature",
                    format!("sha256={}", sign(s, b.as_bytes())),
                );
            }
            Full::new(Bytes::from(b.to_string()))
        }
        None => {
            req = req.method("GET");
            Full::new(Bytes::new())
        }
    };
    let req = req.body(body).map_err(|e| e.to_string())?;
    let resp = tokio::time::timeout(Duration::from_secs(10), client.request(req))
        .await
        .map_err(|_| "timeout".to_string())?
        .map_err(|e| e.to_string())?;
    let status = resp.status();
    let _ = resp.into_body().collect().await;
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("HTTP {status}"))
    }
}

