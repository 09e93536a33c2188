//! Subcommands that ask a running gateway over its HTTP API (`status`, `send`, …).

use anyhow::{Context, Result};
use http_body_util::{BodyExt, Full};
use std::time::Duration;

/// `postern status`: a line per connector, and one per modem of a bank.
pub(crate) fn print_connectors(v: &serde_json::Value) {
    let list = v["connectors"]
        .as_array()
        .or(v.as_array())
        .cloned()
        .unwrap_or_default();
    if list.is_empty() {
        println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
        return;
    }
    let s = |x: &serde_json::Value| match x {
        serde_json::Value::Null => "-".to_string(),
        serde_json::Value::String(t) => t.clone(),
        other => other.to_string(),
    };
    for c in list {
        println!(
            "{:<16} {:<12} up={} inflight={}/{}",
            s(&c["name"]),
            s(&c["type"]),
            s(&c["up"]),
            s(&c["inflight"]),
            s(&c["window"])
        );
        for m in c["detail"]["modems"]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            println!(
                "  {:<14} {:<11} {:<20} imei={} operator={} signal={}dBm sent={} failed={} received={} resets={} queue={}",
                s(&m["path"]).rsplit('/').next().unwrap_or(""), s(&m["state"]), s(&m["profile"]), s(&m["imei"]), s(&m["operator"]),
                s(&m["signal_dbm"]), s(&m["sent"]), s(&m["failed"]), s(&m["received"]), s(&m["resets"]), s(&m["queue"])
            );
        }
    }
}

/// One HTTP request to the API, answered as (status, JSON).
pub(crate) fn http(
    method: &str,
    url: &str,
    key: Option<&str>,
    body: Option<String>,
) -> Result<(u16, serde_json::Value)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<Full<bytes::Bytes>>();
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(url)
            .header("content-type", "application/json");
        if let Some(k) = key {
            req = req.header("authorization", format!("Bearer {k}"));
        }
        let req = req.body(Full::new(bytes::Bytes::from(body.unwrap_or_default())))?;
        let resp = tokio::time::timeout(Duration::from_secs(30), client.request(req))
            .await
            .context("timed out")?
            .with_context(|| format!("cannot reach {url}"))?;
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await?.to_bytes();
        let v = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&bytes).into()));
        Ok((status, v))
    })
}
