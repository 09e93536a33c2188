//! `Idempotency-Key`: the same request again gets the first answer and creates nothing; another
//! request with the key is refused; a refused request keeps nothing; the answer survives a
//! SIGKILL (it is written with the messages).

mod common;
use common::*;
use serde_json::{json, Value};

async fn post(g: &TestGateway, path: &str, key: &str, body: &Value) -> (u16, Option<String>, Value) {
    let r = g.http.post(format!("{}{path}", g.base)).header("Idempotency-Key", key).json(body).send().await.unwrap();
    let replayed = r.headers().get("idempotent-replayed").map(|v| v.to_str().unwrap().to_string());
    (r.status().as_u16(), replayed, r.json().await.unwrap_or(Value::Null))
}

async fn count(g: &TestGateway) -> usize {
    g.get("/v1/messages?limit=1000").await.1["messages"].as_array().unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_request_again_creates_nothing() {
    let g = gateway(SANDBOX).await;
    let body = json!({"to": ["+447400123123", "+447400123124"], "text": "once"});
    let (s, replayed, first) = post(&g, "/v1/messages", "order-42", &body).await;
    assert_eq!((s, replayed), (202, None), "{first}");
    let (s, replayed, again) = post(&g, "/v1/messages", "order-42", &body).await;
    assert_eq!((s, replayed.as_deref()), (202, Some("true")));
    assert_eq!(again, first, "the first answer, ids and all");
    assert_eq!(count(&g).await, 2);

    let (s, _, e) = post(&g, "/v1/messages", "order-42", &json!({"to": "+447400123125", "text": "other"})).await;
    assert_eq!((s, e["error"]["code"].as_str(), e["error"]["field"].as_str()), (409, Some("idempotency_key_reused"), Some("Idempotency-Key")));
    assert_eq!(count(&g).await, 2, "nothing stored for the reused key");

    for bad in ["", &"k".repeat(256)] {
        let (s, _, e) = post(&g, "/v1/messages", bad, &body).await;
        assert_eq!((s, e["error"]["field"].as_str()), (400, Some("Idempotency-Key")), "{bad:?}: {e}");
    }

    // A refused request keeps nothing: the key is still free for the corrected one.
    let (s, _, _) = post(&g, "/v1/messages", "fix-1", &json!({"to": "+447700900123", "text": "x"})).await;
    assert_eq!(s, 422);
    let (s, replayed, _) = post(&g, "/v1/messages", "fix-1", &json!({"to": "+447400123126", "text": "x"})).await;
    assert_eq!((s, replayed), (202, None));

    // Batches too; keys are per endpoint and body.
    let batch = json!({"messages": [{"to": "+447400123127", "text": "a"}, {"to": "bad", "text": "b"}]});
    let (s, _, first) = post(&g, "/v1/messages/batch", "batch-1", &batch).await;
    assert_eq!(s, 202, "{first}");
    let (s, replayed, again) = post(&g, "/v1/messages/batch", "batch-1", &batch).await;
    assert_eq!((s, replayed.as_deref(), &again), (202, Some("true"), &first));
    assert_eq!(count(&g).await, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_answer_survives_a_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("postern.toml");
    std::fs::write(&cfg, Scenario::new().raw(SANDBOX).toml(dir.path())).unwrap();
    let body = json!({"to": "+447400123123", "text": "exactly once"});
    let (child, base) = start_binary(&cfg);
    let mut child = Reaped(child);
    let http = reqwest::Client::new();
    let send = |base: String| {
        let http = http.clone();
        let body = body.clone();
        async move {
            let r = http.post(format!("{base}/v1/messages")).header("Idempotency-Key", "k-1").json(&body).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (s, first) = send(base.clone()).await;
    assert_eq!(s, 202);
    child.0.kill().unwrap(); // SIGKILL right after the 202
    child.0.wait().unwrap();
    let (child, base) = start_binary(&cfg);
    let _child = Reaped(child);
    let (s, again) = send(base.clone()).await;
    assert_eq!((s, &again), (202, &first), "the stored answer, not a second message");
    let v: Value = reqwest::get(format!("{base}/v1/messages")).await.unwrap().json().await.unwrap();
    assert_eq!(v["messages"].as_array().unwrap().len(), 1);
}

/// Templates and webhook endpoints take a key too: the same request again makes nothing new.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn templates_and_webhooks_take_a_key() {
    let g = Scenario::new().api("webhook_allow_private = true").raw(SANDBOX).start().await;
    let hook = json!({"url": "http://127.0.0.1:9/h"});
    let (s, _, first) = post(&g, "/v1/webhooks", "hook-1", &hook).await;
    assert_eq!(s, 201, "{first}");
    let (s, replayed, again) = post(&g, "/v1/webhooks", "hook-1", &hook).await;
    assert_eq!((s, replayed.as_deref(), &again), (201, Some("true"), &first), "the same endpoint, its secret too");
    assert_eq!(g.get("/v1/webhooks").await.1["webhooks"].as_array().unwrap().len(), 1);
    let (s, _, e) = post(&g, "/v1/webhooks", "hook-1", &json!({"url": "http://127.0.0.1:9/other"})).await;
    assert_eq!((s, e["error"]["code"].as_str()), (409, Some("idempotency_key_reused")));

    let t = json!({"name": "k", "text": "hello"});
    let (s, _, first) = post(&g, "/v1/templates", "tpl-1", &t).await;
    assert_eq!(s, 201);
    let (s, replayed, again) = post(&g, "/v1/templates", "tpl-1", &t).await;
    assert_eq!((s, replayed.as_deref(), &again), (201, Some("true"), &first));
}
