//! Webhooks against a real receiver: Python's `http.server` checking every delivery with the
//! Standard Webhooks reference library (`standardwebhooks` from PyPI, in a venv the test makes).
//! It answers 500 for a while, then 2xx: every event arrives, signed, in order per message, each
//! once after de-duplication by `webhook-id`. A 410 disables an endpoint; a dead endpoint's
//! deliveries are dead-lettered with their tries, and sent again on request; SIGKILL between
//! tries loses no event.

mod common;
use common::*;
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

struct Receiver {
    child: Child,
    port: u16,
    out: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Receiver {
    fn start(fail_first: usize, fail_seconds: u64) -> Receiver {
        let py = python_venv("standardwebhooks-venv", &["standardwebhooks==1.3.0"]);
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("events.jsonl");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/webhook_receiver.py");
        let mut child = Command::new(py)
            .arg(script)
            .arg(&out)
            .arg(SECRET)
            .arg(fail_first.to_string())
            .arg(fail_seconds.to_string())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        Receiver { child, port: line.trim().parse().unwrap(), out, _dir: dir }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Every request it got, in arrival order.
    fn requests(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.out).unwrap_or_default().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    /// The accepted (2xx) deliveries, once per webhook-id, in arrival order.
    fn accepted(&self) -> Vec<Value> {
        let mut seen = HashSet::new();
        self.requests().into_iter().filter(|r| r["status"] == 204 && seen.insert(r["id"].as_str().unwrap().to_string())).collect()
    }
}

fn scenario() -> Scenario {
    Scenario::new()
        .api("webhook_allow_private = true")
        .api("webhook_schedule_s = [0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]")
        .sandbox("sb", &["dlr_delay_ms = 10"])
        .route(&["sb"], &[])
}

/// Each message's states as the receiver got them: submitted before delivered.
fn check_order(accepted: &[Value], ids: &[String]) {
    let mut per: HashMap<&str, Vec<&str>> = HashMap::new();
    for r in accepted {
        assert_eq!(r["verified"], true, "the signature checks: {r}");
        per.entry(r["message"].as_str().unwrap()).or_default().push(r["state"].as_str().unwrap());
    }
    // Every state change is an event (`sending` too, when a try is recorded): each once, in
    // the order they happened, ending with submitted, delivered.
    let order = ["queued", "scheduled", "sending", "submitted", "delivered"];
    for id in ids {
        let got = per.get(id.as_str()).unwrap_or_else(|| panic!("no event for {id}"));
        let rank: Vec<usize> = got.iter().map(|s| order.iter().position(|o| o == s).unwrap()).collect();
        assert!(rank.windows(2).all(|w| w[0] < w[1]), "message {id}: {got:?}");
        assert!(got.ends_with(&["submitted", "delivered"]), "message {id}: {got:?}");
    }
}

/// Accepted deliveries at least `n` (two per message, more with `sending`).
fn events_for(rx: &Receiver, ids: &[String]) -> usize {
    let want: HashSet<&str> = ids.iter().map(String::as_str).collect();
    rx.accepted().iter().filter(|r| r["state"] == "delivered" && want.contains(r["message"].as_str().unwrap())).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_arrives_signed_in_order_once() {
    let rx = Receiver::start(40, 0);
    let g = scenario().start().await;
    let (s, e) = g.post("/v1/webhooks", json!({"url": rx.url("/ok"), "secret": SECRET, "events": ["message.status"], "max_in_flight": 8})).await;
    assert_eq!(s, 201, "{e}");
    assert_eq!(e["secret"], SECRET, "shown when made");
    let (_, listed) = g.get("/v1/webhooks").await;
    assert_eq!(listed["webhooks"][0]["secret"], Value::Null, "never shown again");

    let msgs: Vec<Value> = (0..150).map(|i| json!({"to": format!("+4474001{i:05}"), "text": "w"})).collect();
    let (s, v) = g.post("/v1/messages/batch", json!({"messages": msgs})).await;
    assert_eq!(s, 202);
    let ids: Vec<String> = v["results"].as_array().unwrap().iter().map(|r| r["messages"][0]["id"].as_str().unwrap().to_string()).collect();
    let until = Instant::now() + Duration::from_secs(60);
    while events_for(&rx, &ids) < ids.len() {
        assert!(Instant::now() < until, "{} of {} delivered events", events_for(&rx, &ids), ids.len());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let accepted = rx.accepted();
    check_order(&accepted, &ids);
    // Each event once: as many accepted deliveries as state changes in the messages' histories.
    let mut changes = 0;
    for id in &ids {
        let (_, m) = g.get(&format!("/v1/messages/{id}")).await;
        changes += m["history"].as_array().unwrap().iter().filter(|h| h["state"] != "queued").count();
    }
    assert_eq!(accepted.len(), changes, "one delivery per state change");
    assert!(rx.requests().iter().filter(|r| r["status"] == 500).count() >= 40, "the failures were retried");
    // Nothing left: the queue is empty, nothing dead.
    let id = e["id"].as_str().unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, pending) = g.get(&format!("/v1/webhooks/{id}/deliveries?state=pending")).await;
    assert_eq!(pending["deliveries"].as_array().unwrap().len(), 0, "{pending}");
    let (_, dead) = g.get(&format!("/v1/webhooks/{id}/deliveries?state=failed")).await;
    assert_eq!(dead["deliveries"].as_array().unwrap().len(), 0);
    // A replay sends everything since a time again, with the same webhook-ids.
    let since = "2020-01-01T00:00:00Z";
    let (s, e) = g.post(&format!("/v1/webhooks/{id}/replay?since={since}"), json!({})).await;
    assert_eq!(s, 422, "older than the 24 h kept: {e}");
    let since = postern::time::rfc3339(postern::model::now_ms() - 3_600_000);
    let (s, r) = g.post(&format!("/v1/webhooks/{id}/replay?since={since}"), json!({})).await;
    assert_eq!((s, r["replayed"].as_u64()), (202, Some(changes as u64)), "{r}");
    let until = Instant::now() + Duration::from_secs(30);
    let ok = |rx: &Receiver| rx.requests().iter().filter(|r| r["status"] == 204).count();
    while ok(&rx) < 2 * changes {
        assert!(Instant::now() < until, "{} of {} after the replay", ok(&rx), 2 * changes);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(rx.accepted().len(), changes, "the same webhook-ids: nothing new after de-duplication");
    let metrics = g.http.get(format!("{}/metrics", g.base)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains(&format!("postern_webhook_sent_total{{endpoint=\"{id}\"}} {}", 2 * changes)), "{}", metrics.lines().filter(|l| l.contains("webhook")).collect::<Vec<_>>().join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_keep_their_tries_and_are_sent_again() {
    let rx = Receiver::start(0, 0);
    let g = Scenario::new()
        .api("webhook_allow_private = true")
        .api("webhook_schedule_s = [0, 1]")
        .sandbox("sb", &["dlr_delay_ms = 10"])
        .route(&["sb"], &[])
        .start()
        .await;
    // Nothing listens on port 9 here: every try fails.
    let (_, down) = g.post("/v1/webhooks", json!({"url": "http://127.0.0.1:9/hook", "events": ["message.status"]})).await;
    g.send(json!({"to": "+447400123124", "text": "x"})).await;
    let did = down["id"].as_str().unwrap().to_string();
    // `down`: two tries (the schedule), then dead-lettered with both.
    let until = Instant::now() + Duration::from_secs(20);
    let dead = loop {
        let (_, d) = g.get(&format!("/v1/webhooks/{did}/deliveries?state=failed")).await;
        let list = d["deliveries"].as_array().unwrap().clone();
        if list.len() >= 2 {
            break list;
        }
        assert!(Instant::now() < until, "not dead-lettered: {d}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(dead[0]["attempts"].as_array().unwrap().len(), 2, "{dead:?}");
    assert!(dead[0]["attempts"][0]["answer"].as_str().unwrap().contains("request failed"), "{dead:?}");
    // Pointed at the receiver and retried: delivered.
    let (s, _) = g.call(Method::PATCH, &format!("/v1/webhooks/{did}"), Some(json!({"url": rx.url("/ok")}))).await;
    assert_eq!(s, 200);
    let first = dead[0]["id"].as_str().unwrap();
    let (s, r) = g.post(&format!("/v1/webhooks/{did}/deliveries/{first}/retry"), json!({})).await;
    assert_eq!(s, 202, "{r}");
    let rxr = &rx;
    let until = Instant::now() + Duration::from_secs(10);
    while !rxr.accepted().iter().any(|r| r["id"] == first) {
        assert!(Instant::now() < until, "the retried delivery never arrived");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Bad endpoints are refused, nothing made.
    for (body, field) in [
        (json!({"url": "ftp://x/"}), "url"),
        (json!({"url": rx.url("/ok"), "events": ["message.exploded"]}), "events"),
        (json!({"url": rx.url("/ok"), "secret": "hunter2"}), "secret"),
    ] {
        let (s, e) = g.post("/v1/webhooks", body.clone()).await;
        assert_eq!((s, e["error"]["field"].as_str()), (422, Some(field)), "{body}: {e}");
    }
    let (_, l) = g.get("/v1/webhooks").await;
    assert_eq!(l["webhooks"].as_array().unwrap().len(), 1);
}

/// 410 Gone: the endpoint is disabled (and says why); enabled again, it sends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_410_disables_the_endpoint() {
    let rx = Receiver::start(0, 0);
    let g = scenario().start().await;
    let (_, e) = g.post("/v1/webhooks", json!({"url": rx.url("/gone")})).await;
    let id = e["id"].as_str().unwrap().to_string();
    g.send(json!({"to": "+447400123123", "text": "x"})).await;
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, v) = g.get(&format!("/v1/webhooks/{id}")).await;
        if v["enabled"] == false {
            assert!(v["disabled_reason"].as_str().unwrap().starts_with("410 Gone"), "{v}");
            break;
        }
        assert!(Instant::now() < until, "not disabled: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, pending) = g.get(&format!("/v1/webhooks/{id}/deliveries?state=pending")).await;
    assert!(!pending["deliveries"].as_array().unwrap().is_empty(), "its deliveries wait");
    let (s, v) = g.call(Method::PATCH, &format!("/v1/webhooks/{id}"), Some(json!({"url": rx.url("/ok"), "enabled": true}))).await;
    assert_eq!((s, &v["enabled"]), (200, &json!(true)));
    let until = Instant::now() + Duration::from_secs(10);
    while rx.accepted().len() < 2 {
        assert!(Instant::now() < until, "nothing sent after enabling: {:?}", rx.requests());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// SIGKILL while the receiver fails: after the restart every event still arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_between_tries_loses_no_event() {
    let rx = Receiver::start(0, 4);
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("postern.toml");
    std::fs::write(&cfg, scenario().raw(&format!("[[webhooks]]\nurl = \"{}\"\nsecret = \"{SECRET}\"\n", rx.url("/ok"))).toml(dir.path())).unwrap();
    let (child, base) = start_binary(&cfg);
    let mut child = Reaped(child);
    let http = reqwest::Client::new();
    let msgs: Vec<Value> = (0..50).map(|i| json!({"to": format!("+4474001{i:05}"), "text": "k"})).collect();
    let v: Value = http.post(format!("{base}/v1/messages/batch")).json(&json!({"messages": msgs})).send().await.unwrap().json().await.unwrap();
    let ids: Vec<String> = v["results"].as_array().unwrap().iter().map(|r| r["messages"][0]["id"].as_str().unwrap().to_string()).collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(rx.accepted().is_empty(), "the receiver is still failing");
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    let (child, _) = start_binary(&cfg);
    let _child = Reaped(child);
    let until = Instant::now() + Duration::from_secs(30);
    while events_for(&rx, &ids) < ids.len() {
        assert!(Instant::now() < until, "{} of {} delivered events after the restart", events_for(&rx, &ids), ids.len());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    check_order(&rx.accepted(), &ids);
}
