//! Crash test: the real `postern` binary takes messages from concurrent HTTP clients, is killed
//! with SIGKILL mid-stream, and restarted on the same data directory. Every message that got a
//! 2xx must be there and reach a final state; none is delivered twice; re-sends after the
//! crash are bounded by the window (contracts 1 and 2).

use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

const WINDOW: usize = 64;

mod common;
use common::{start_binary as start, start_binary_with as start_with, Reaped};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_stream_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("postern.toml");
    std::fs::write(
        &config,
        format!(
            "[outbox]\npath = {:?}\nshards = 4\ndurability = \"fsync\"\n[api]\nlisten = \"127.0.0.1:0\"\n\
             [connectors.sb]\ntype = \"sandbox\"\nwindow = {WINDOW}\nsubmit_delay_ms = 2\ndlr_delay_ms = 300\njournal = {:?}\n[[routes]]\nto = [\"sb\"]\n",
            dir.path().join("data").display().to_string(),
            dir.path().join("carrier.log").display().to_string()
        ),
    )
    .unwrap();
    let (mut child, base) = start(&config);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let acked = Arc::new(parking_lot::Mutex::new(Vec::<String>::new()));
    let mut tasks = Vec::new();
    for c in 0..8 {
        let (client, base, acked) = (client.clone(), base.clone(), acked.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..20_000u32 {
                let body = if i % 5 == 0 {
                    json!({"to": [format!("+447400{c}{i:05}"), format!("+33740{c}{i:05}")], "text": format!("m{c}-{i}")})
                } else {
                    json!({"to": format!("+447400{c}{i:05}"), "text": format!("m{c}-{i}")})
                };
                let Ok(r) = client.post(format!("{base}/v1/messages")).json(&body).send().await else { return };
                if !r.status().is_success() {
                    continue;
                }
                let Ok(v) = r.json::<Value>().await else { return };
                let mut a = acked.lock();
                for m in v["messages"].as_array().unwrap() {
                    a.push(m["id"].as_str().unwrap().to_string());
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    for t in tasks {
        let _ = t.await;
    }
    let acked = acked.lock().clone();
    assert!(
        acked.len() > 200,
        "too few messages before the kill: {}",
        acked.len()
    );

    let (mut child, base) = start(&config);
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut pending: Vec<String> = acked.clone();
    while !pending.is_empty() {
        assert!(
            Instant::now() < deadline,
            "{} messages never reached a final state, e.g. {}",
            pending.len(),
            pending[0]
        );
        let mut still = Vec::new();
        for chunk in pending.chunks(64) {
            let mut set = tokio::task::JoinSet::new();
            for id in chunk {
                let (client, base, id) = (client.clone(), base.clone(), id.clone());
                set.spawn(async move {
                    let r = client
                        .get(format!("{base}/v1/messages/{id}"))
                        .send()
                        .await
                        .expect("gateway reachable");
                    assert_eq!(
                        r.status(),
                        200,
                        "acknowledged message {id} is missing after the crash"
                    );
                    (id, r.json::<Value>().await.unwrap())
                });
            }
            while let Some(res) = set.join_next().await {
                let (id, v) = res.unwrap();
                let state = v["state"].as_str().unwrap();
                if ["delivered", "undelivered", "failed", "expired"].contains(&state) {
                    assert_eq!(state, "delivered", "{v}");
                    let hist: Vec<&str> = v["history"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|h| h["state"].as_str().unwrap())
                        .collect();
                    assert_eq!(
                        hist.iter().filter(|s| **s == "delivered").count(),
                        1,
                        "{id} delivered twice: {hist:?}"
                    );
                } else {
                    still.push(id);
                }
            }
        }
        pending = still;
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // The carrier's view: every acknowledged message reached it; re-sends after the crash are
    // only what was in flight, at most one window.
    let journal = std::fs::read_to_string(dir.path().join("carrier.log")).unwrap();
    let mut seen = std::collections::HashMap::<&str, usize>::new();
    for line in journal.lines() {
        *seen.entry(line.split(' ').next().unwrap()).or_default() += 1;
    }
    for id in &acked {
        assert!(
            seen.contains_key(id.as_str()),
            "{id} never reached the carrier"
        );
    }
    let resent = seen.values().filter(|&&n| n > 1).count();
    assert!(
        resent <= WINDOW,
        "{resent} messages were sent more than once (window {WINDOW})"
    );
    eprintln!("acknowledged {} messages before SIGKILL; all delivered after restart; {resent} re-sent to the carrier", acked.len());
}

/// SIGTERM drains: the process stops intake, finishes, and exits 0; accepted messages survive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_and_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("postern.toml");
    std::fs::write(
        &config,
        format!(
            "[outbox]\npath = {:?}\n[api]\nlisten = \"127.0.0.1:0\"\n[connectors.sb]\ntype = \"sandbox\"\nsubmit_delay_ms = 200\ndlr_delay_ms = 10\n[[routes]]\nto = [\"sb\"]\n",
            dir.path().join("data").display().to_string()
        ),
    )
    .unwrap();
    // systemd readiness: READY=1 on $NOTIFY_SOCKET once the API listens.
    let sock_path = dir.path().join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let (child, base) = start_with(&config, Some(&sock_path));
    let mut buf = [0u8; 64];
    let n = sock.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"READY=1");
    let client = reqwest::Client::new();
    let r = client
        .post(format!("{base}/v1/messages"))
        .json(&json!({"to": "+447400123123", "text": "drain me"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let id = r.json::<Value>().await.unwrap()["messages"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    tokio::time::sleep(Duration::from_millis(50)).await; // in flight at the sandbox now
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "exit status {:?}", out.status);
    let n = sock.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"STOPPING=1");
    // Restart: the message is there and finishes.
    let (mut child, base) = start(&config);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v: Value = client
            .get(format!("{base}/v1/messages/{id}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if v["state"] == "delivered" {
            break;
        }
        assert!(Instant::now() < deadline, "{v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

/// SMPP crash mid-window: the gateway is killed while submits are outstanding at the SMSC;
/// after restart every acknowledged message is delivered and the SMSC saw at most one window
/// of duplicates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smpp_crash_mid_window_no_loss_bounded_duplicates() {
    use postern::sim::smsc::{SimConfig, SmscSim};
    const SMPP_WINDOW: u64 = 16;
    let sim = SmscSim::start(SimConfig {
        ack_delay: Duration::from_millis(100),
        dlr_delay: Duration::from_millis(50),
        ..Default::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("postern.toml");
    std::fs::write(
        &config,
        format!(
            "[outbox]\npath = {:?}\n[outbox.retry]\ninitial_delay_ms = 100\n[api]\nlisten = \"127.0.0.1:0\"\n\
             [connectors.op]\ntype = \"smpp\"\nurl = \"smpp://{}\"\nsystem_id = \"postern\"\npassword = \"secret\"\nwindow = {SMPP_WINDOW}\n[[routes]]\nto = [\"op\"]\n",
            dir.path().join("data").display().to_string(),
            sim.addr
        ),
    )
    .unwrap();
    let (mut child, base) = start(&config);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let mut acked = Vec::new();
    for i in 0..300u32 {
        let r = client
            .post(format!("{base}/v1/messages"))
            .json(&json!({"to": format!("+4474001{i:05}"), "text": "crash"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        acked.push(
            r.json::<Value>().await.unwrap()["messages"][0]["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    // The link drains at about window / ack delay = 160 msg/s: kill it part-way, with submits
    // outstanding at the SMSC.
    let until = Instant::now() + Duration::from_secs(20);
    while sim
        .counters
        .submits
        .load(std::sync::atomic::Ordering::Relaxed)
        < 100
        && Instant::now() < until
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let before = sim
        .counters
        .submits
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        before > 0 && before < 300,
        "killed mid-stream: {before} submits so far"
    );
    let (mut child, base) = start(&config);
    let deadline = Instant::now() + Duration::from_secs(60);
    for id in &acked {
        loop {
            let v: Value = client
                .get(format!("{base}/v1/messages/{id}"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if v["state"] == "delivered" {
                break;
            }
            assert!(Instant::now() < deadline, "{id} never delivered: {v}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let submits = sim
        .counters
        .submits
        .load(std::sync::atomic::Ordering::Relaxed);
    let duplicates = submits - acked.len() as u64;
    assert!(
        duplicates <= SMPP_WINDOW,
        "{duplicates} duplicates, window {SMPP_WINDOW}"
    );
    eprintln!(
        "SMPP crash: {} acknowledged, {before} submitted before SIGKILL, {duplicates} re-sent",
        acked.len()
    );
}

/// Mail into the SMTP listener, the process killed (SIGKILL) while clients are sending: every
/// mail that got its `250` is a stored SMS after the restart (the `250` comes after the sync).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_after_smtp_250_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let cfg = dir.path().join("postern.toml");
    // The SMS link is down (nothing listens): the messages stay queued, as stored.
    std::fs::write(&cfg, format!(
        "[outbox]\npath = {:?}\n[api]\nlisten = \"127.0.0.1:0\"\n[connectors.mailin]\ntype = \"smtp-server\"\nlisten = \"127.0.0.1:{port}\"\ndomain = \"sms.example\"\nbody = \"subject\"\n[connectors.down]\ntype = \"smpp\"\nurl = \"smpp://127.0.0.1:1\"\nsystem_id = \"x\"\npassword = \"x\"\n[[routes]]\nto = [\"down\"]\n",
        dir.path().join("data").display().to_string()
    )).unwrap();
    let (child, _) = start(&cfg);
    let mut child = Reaped(child);
    let peers = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/smtp_flood.py");
    let flood = std::process::Command::new("python3")
        .arg(peers)
        .args(["127.0.0.1", &port.to_string(), "+447400123123@sms.example", "6", "2000"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    child.0.kill().unwrap(); // SIGKILL, mid-stream
    child.0.wait().unwrap();
    let out = flood.wait_with_output().unwrap();
    let acked: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect();
    assert!(acked.len() > 20, "too few mails before the kill: {}", acked.len());

    let (child, base) = start(&cfg);
    let _child = Reaped(child);
    let mut stored = std::collections::HashSet::new();
    let mut cursor = String::new();
    loop {
        let v: Value = reqwest::get(format!("{base}/v1/messages?limit=1000{cursor}")).await.unwrap().json().await.unwrap();
        for m in v["messages"].as_array().unwrap() {
            stored.insert(m["text"].as_str().unwrap().to_string());
        }
        match v["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    for s in &acked {
        assert!(stored.contains(s), "mail {s} got its 250 but is not stored");
    }
    eprintln!("{} mails acknowledged before SIGKILL, all stored ({} stored in all)", acked.len(), stored.len());
}
