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

fn config(dir: &Path, down: bool) -> postern::config::Config {
    let text = format!(
        "[outbox]\npath = {:?}\nshards = 2\n[outbox.retry]\ninitial_delay_ms = 50\njitter = 0.0\n[api]\nlisten = \"127.0.0.1:0\"\n\
         [connectors.up]\ntype = \"sandbox\"\ndlr_delay_ms = 0\n\
         [connectors.down]\ntype = \"sandbox\"\ndlr_delay_ms = 0\ndown = {down}\n\
         [[routes]]\nmatch = {{ prefix = \"+4477009002\" }}\nto = [\"down\"]\n[[routes]]\nto = [\"up\"]\n",
        dir.display().to_string()
    );
    postern::config::Config::from_toml(&text).unwrap()
}

async fn post(http: &reqwest::Client, base: &str, body: Value) -> String {
    let r = http.post(format!("{base}/v1/messages")).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 202);
    let v: Value = r.json().await.unwrap();
    v["messages"][0]["id"].as_str().unwrap().to_string()
}

async fn get(http: &reqwest::Client, base: &str, id: &str) -> Value {
    http.get(format!("{base}/v1/messages/{id}")).send().await.unwrap().json().await.unwrap()
}

async fn wait(http: &reqwest::Client, base: &str, id: &str, state: &str) -> Value {
    for _ in 0..500 {
        let v = get(http, base, id).await;
        if v["state"] == state {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{id} never reached {state}: {:?}", get(http, base, id).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "writes the fixture; run by hand with the build whose format it records"]
async fn make_fixture() {
    let out = PathBuf::from(FIXTURE);
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    let gw = postern::app::Gateway::start(config(&out.join("data"), true)).await.unwrap();
    let base = format!("http://{}", gw.api_addr);
    let http = reqwest::Client::new();
    let delivered = post(&http, &base, json!({"to": "+447700900100", "from": "Postern", "text": "delivered one", "client_ref": "ref-1", "tags": ["a", "b"], "metadata": {"k": "v"}})).await;
    let multipart = post(&http, &base, json!({"to": "+447700900101", "text": "€ ".repeat(80)})).await;
    let binary = post(&http, &base, json!({"to": "+447700900102", "binary": "0102ff", "data_coding": 4})).await;
    wait(&http, &base, &delivered, "delivered").await;
    wait(&http, &base, &multipart, "delivered").await;
    wait(&http, &base, &binary, "delivered").await;
    let queued = post(&http, &base, json!({"to": "+447700900200", "text": "queued behind a down link", "priority": 1})).await;
    let scheduled = post(&http, &base, json!({"to": "+447700900103", "text": "for later", "send_at": "2099-01-01T00:00:00Z", "validity": "2099-01-02T00:00:00Z"})).await;
    let canceled = post(&http, &base, json!({"to": "+447700900104", "text": "never", "send_at": "2099-01-01T00:00:00Z", "validity": "2099-01-02T00:00:00Z"})).await;
    let r = http.delete(format!("{base}/v1/messages/{canceled}")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // A callback owed to an address that does not answer: the event stays in the store.
    let callback = post(&http, &base, json!({"to": "+447700900201", "text": "cb", "callback_url": "http://127.0.0.1:9/status"})).await;
    use postern::connector::{HubSink, InboundMessage};
    let hub: std::sync::Arc<dyn HubSink> = gw.hub.clone();
    let inbound = hub
        .receive(InboundMessage {
            connector: "up".into(),
            from: "+447700900999".into(),
            to: "12345".into(),
            body: postern::model::Body::Text("hello in".into()),
            metadata: None,
            dest_port: None,
        })
        .await
        .unwrap()
        .to_string();
    tokio::time::sleep(Duration::from_millis(300)).await;
    gw.stop(Duration::from_millis(500)).await;
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
    copy_dir(&Path::new(FIXTURE).join("data"), &tmp.path().join("data"));
    let ids: Value = serde_json::from_str(&std::fs::read_to_string(Path::new(FIXTURE).join("ids.json")).unwrap()).unwrap();
    let id = |k: &str| ids[k].as_str().unwrap().to_string();
    // Both links up now: what was queued goes out.
    let gw = postern::app::Gateway::start(config(&tmp.path().join("data"), false)).await.unwrap();
    let base = format!("http://{}", gw.api_addr);
    let http = reqwest::Client::new();

    let d = get(&http, &base, &id("delivered")).await;
    assert_eq!(d["state"], "delivered", "{d}");
    assert_eq!(d["to"], "+447700900100");
    assert_eq!(d["from"], "Postern");
    assert_eq!(d["text"], "delivered one");
    assert_eq!(d["client_ref"], "ref-1");
    assert_eq!(d["tags"], json!(["a", "b"]));
    assert_eq!(d["metadata"], json!({"k": "v"}));
    assert_eq!(states(&d), ["queued", "sending", "submitted", "delivered"]);
    assert_eq!(d["remote_ids"].as_array().unwrap().len(), 1);

    let m = get(&http, &base, &id("multipart")).await;
    assert_eq!(m["state"], "delivered");
    assert_eq!(m["text"], "€ ".repeat(80));
    assert_eq!(m["segments"], 2); // GSM 7-bit: € is an escape, 240 septets
    assert_eq!(m["remote_ids"].as_array().unwrap().len(), 2);

    let b = get(&http, &base, &id("binary")).await;
    assert_eq!(b["state"], "delivered", "{b}");
    assert_eq!(b["binary"], "0102ff", "{b}");

    let s = get(&http, &base, &id("scheduled")).await;
    assert_eq!(s["state"], "scheduled");
    assert_eq!(s["send_at"], "2099-01-01T00:00:00.000Z");
    let c = get(&http, &base, &id("canceled")).await;
    assert_eq!(c["state"], "canceled");
    let i = get(&http, &base, &id("inbound")).await;
    assert_eq!(i["state"], "received");
    assert_eq!(i["text"], "hello in");
    assert_eq!(i["direction"], "inbound");

    // Pending work resumes: the queued message is delivered, the owed callback is still owed.
    let q = wait(&http, &base, &id("queued"), "delivered").await;
    assert_eq!(q["text"], "queued behind a down link");
    wait(&http, &base, &id("callback"), "delivered").await;
    gw.stop(Duration::from_millis(500)).await;
}
