//! The stored format: a data directory written by an earlier build is read by this one.
//!
//! `tests/fixtures/stored-v1/` was written by `make_fixture` below (run it with
//! `cargo test --test stored_format -- --ignored make_fixture`), with the build of commit
//! bd4f069: messages delivered, queued behind a link that was down, scheduled for 2099,
//! canceled, multipart with `€`, binary (8-bit), inbound, and one whose status callback was
//! still owed. Do not regenerate it when the format changes: the point is that data written by
//! the old build still reads. (When a new stored version is added, add a new fixture beside it.)

mod common;
use common::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;

const FIXTURE: &str = "tests/fixtures/stored-v1";

/// Two sandbox links: `+4477009002…` goes to `down` (down while the fixture was written),
/// the rest to `up`.
fn scenario(down: bool) -> Scenario {
    Scenario::new()
        .sandbox("up", &["dlr_delay_ms = 0"])
        .sandbox("down", &["dlr_delay_ms = 0", &format!("down = {down}")])
        .raw("[[routes]]\nmatch = { prefix = \"+4477009002\" }\nto = [\"down\"]\n")
        .route(&["up"], &[])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "writes the fixture; run by hand with the build whose format it records"]
async fn make_fixture() {
    let out = PathBuf::from(FIXTURE);
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    let cfg = postern::config::Config::from_toml(&scenario(true).toml(&out.join("data"))).unwrap();
    let gw = postern::app::Gateway::start(cfg).await.unwrap();
    let g = TestGateway { base: format!("http://{}", gw.api_addr), gw, dir: tempfile::tempdir().unwrap(), http: reqwest::Client::new() };
    let delivered = g.send(json!({"to": "+447700900100", "from": "Postern", "text": "delivered one", "client_ref": "ref-1", "tags": ["a", "b"], "metadata": {"k": "v"}})).await;
    let multipart = g.send(json!({"to": "+447700900101", "text": "€ ".repeat(80)})).await;
    let binary = g.send(json!({"to": "+447700900102", "binary": "0102ff", "data_coding": 4})).await;
    for id in [&delivered, &multipart, &binary] {
        g.wait_state(id, "delivered", 10).await;
    }
    let queued = g.send(json!({"to": "+447700900200", "text": "queued behind a down link", "priority": 1})).await;
    let scheduled = g.send(json!({"to": "+447700900103", "text": "for later", "send_at": "2099-01-01T00:00:00Z", "validity": "2099-01-02T00:00:00Z"})).await;
    let canceled = g.send(json!({"to": "+447700900104", "text": "never", "send_at": "2099-01-01T00:00:00Z", "validity": "2099-01-02T00:00:00Z"})).await;
    let r = g.http.delete(format!("{}/v1/messages/{canceled}", g.base)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // A callback owed to an address that does not answer: the event stays in the store.
    let callback = g.send(json!({"to": "+447700900201", "text": "cb", "callback_url": "http://127.0.0.1:9/status"})).await;
    use postern::connector::{HubSink, InboundMessage};
    let hub: std::sync::Arc<dyn HubSink> = g.gw.hub.clone();
    let inbound = hub
        .receive(InboundMessage {
            connector: "up".into(),
            from: "+447700900999".into(),
            to: "12345".into(),
            body: postern::model::Body::Text("hello in".into()),
            metadata: None,
            dest_port: None,
            dedup_id: None,
        })
        .await
        .unwrap()
        .to_string();
    tokio::time::sleep(Duration::from_millis(300)).await;
    g.gw.stop(Duration::from_millis(500)).await;
    let ids = json!({"delivered": delivered, "multipart": multipart, "binary": binary, "queued": queued,
        "scheduled": scheduled, "canceled": canceled, "callback": callback, "inbound": inbound});
    std::fs::write(out.join("ids.json"), serde_json::to_string_pretty(&ids).unwrap()).unwrap();
    // The fixture keeps only what a reader needs (no logs).
    for e in std::fs::read_dir(out.join("data/outbox")).unwrap() {
        let p = e.unwrap().path();
        let n = p.file_name().unwrap().to_string_lossy().to_string();
        if n.starts_with("LOG") {
            std::fs::remove_file(p).unwrap();
        }
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let t = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &t);
        } else {
            std::fs::copy(e.path(), t).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_written_by_the_previous_build_reads() {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&Path::new(FIXTURE).join("data"), tmp.path());
    let ids: Value = serde_json::from_str(&std::fs::read_to_string(Path::new(FIXTURE).join("ids.json")).unwrap()).unwrap();
    let id = |k: &str| ids[k].as_str().unwrap().to_string();
    // Both links up now: what was queued goes out.
    let g = scenario(false).start_in(tmp).await;
    let get = |k: &str| {
        let (g, id) = (&g, id(k));
        async move { g.get(&format!("/v1/messages/{id}")).await.1 }
    };

    let d = get("delivered").await;
    assert_eq!(d["state"], "delivered", "{d}");
    assert_eq!(d["to"], "+447700900100");
    assert_eq!(d["from"], "Postern");
    assert_eq!(d["text"], "delivered one");
    assert_eq!(d["client_ref"], "ref-1");
    assert_eq!(d["tags"], json!(["a", "b"]));
    assert_eq!(d["metadata"], json!({"k": "v"}));
    assert_eq!(states(&d), ["queued", "sending", "submitted", "delivered"]);
    assert_eq!(d["remote_ids"].as_array().unwrap().len(), 1);
    assert_eq!(d["origin"]["type"], "api");

    let m = get("multipart").await;
    assert_eq!(m["state"], "delivered");
    assert_eq!(m["text"], "€ ".repeat(80));
    assert_eq!(m["segments"], 2); // GSM 7-bit: € is an escape, 240 septets
    assert_eq!(m["remote_ids"].as_array().unwrap().len(), 2);

    let b = get("binary").await;
    assert_eq!(b["state"], "delivered", "{b}");
    assert_eq!(b["binary"], "0102ff", "{b}");

    let s = get("scheduled").await;
    assert_eq!(s["state"], "scheduled");
    assert_eq!(s["send_at"], "2099-01-01T00:00:00.000Z");
    assert_eq!(get("canceled").await["state"], "canceled");
    let i = get("inbound").await;
    assert_eq!(i["state"], "received");
    assert_eq!(i["text"], "hello in");
    assert_eq!(i["direction"], "inbound");
    assert_eq!(i["origin"]["type"], "network");

    // Pending work resumes: the queued message is delivered, and so is the one whose
    // callback was owed.
    let q = g.wait_state(&id("queued"), "delivered", 10).await;
    assert_eq!(q["text"], "queued behind a down link");
    g.wait_state(&id("callback"), "delivered", 10).await;
}
