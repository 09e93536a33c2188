//! Blobs over HTTP: `POST /v1/blobs` stores the body by its SHA-256 (synced before the
//! answer), `GET /v1/blobs/{digest}` returns it; bad names, empty and oversized bodies are
//! refused with a precise error and store nothing.

mod common;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_download_and_refusals() {
    let g = gateway_full("max_body_bytes = 2048", SANDBOX).await;
    let url = format!("{}/v1/blobs", g.base);
    let data: Vec<u8> = (0..1500u32).map(|i| (i * 7) as u8).collect();
    let r = g.http.post(&url).body(data.clone()).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let v: serde_json::Value = r.json().await.unwrap();
    let digest = v["digest"].as_str().unwrap().to_string();
    assert_eq!(digest, {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&data))
    });
    assert_eq!(v["size"], 1500);
    // The same bytes again: the same blob.
    let again: serde_json::Value = g.http.post(&url).body(data.clone()).send().await.unwrap().json().await.unwrap();
    assert_eq!(again["digest"], digest.as_str());
    let r = g.http.get(format!("{url}/{digest}")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().to_vec(), data);
    let r = g.http.get(format!("{}/v1/media/{digest}", g.base)).send().await.unwrap();
    assert_eq!(r.bytes().await.unwrap().to_vec(), data, "/v1/media is the same store");

    let (s, e) = g.get("/v1/blobs/nothex").await;
    assert_eq!(s, 400);
    assert_eq!(e["error"]["field"], "digest");
    let (s, e) = g.get(&format!("/v1/blobs/{}", "0".repeat(64))).await;
    assert_eq!(s, 404, "{e}");
    let r = g.http.post(&url).body(Vec::<u8>::new()).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let r = g.http.post(&url).body(vec![1u8; 4096]).send().await.unwrap();
    assert_eq!(r.status(), 413);
    let e: serde_json::Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "payload_too_large");
    let r = g.http.delete(format!("{url}/{digest}")).send().await.unwrap();
    assert_eq!(r.status(), 405);
}
