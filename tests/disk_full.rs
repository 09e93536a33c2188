//! A full disk: the real `postern` binary on a small tmpfs of its own is loaded with batches
//! until the volume fills. Then writes are refused (`503`) and `/readyz` says not ready; the
//! volume is grown (`mount -o remount,size=…`) and writes and readiness come back **without a
//! restart**; every acknowledged message is delivered. The same again with `kill -9` while
//! full, then a restart on the grown volume. Needs root (mount); skipped with a message
//! otherwise.

mod common;
use common::{start_binary, Reaped};
use serde_json::{json, Value};
use std::process::Command;
use std::time::{Duration, Instant};

/// A tmpfs mounted for the test, unmounted when dropped.
struct Volume {
    dir: tempfile::TempDir,
}

impl Volume {
    fn mount(size: &str) -> Option<Volume> {
        let dir = tempfile::tempdir().ok()?;
        let ok = Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"]).arg(dir.path()).status().map(|s| s.success()).unwrap_or(false);
        ok.then_some(Volume { dir })
    }
    fn grow(&self, size: &str) {
        let ok = Command::new("mount").args(["-o", &format!("remount,size={size}")]).arg(self.dir.path()).status().unwrap().success();
        assert!(ok, "remount failed");
    }
}

impl Drop for Volume {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

/// What the load saw: acknowledged ids, and how many batches got each 503 code.
#[derive(Default, Debug)]
struct Seen {
    acked: Vec<String>,
    unavailable: usize,
    write_failed: usize,
}

fn config(vol: &Volume, conf_dir: &std::path::Path) -> std::path::PathBuf {
    let config = conf_dir.join("postern.toml");
    std::fs::write(
        &config,
        format!(
            "[outbox]\npath = {:?}\nshards = 2\ndurability = \"fsync\"\n[api]\nlisten = \"127.0.0.1:0\"\nmax_batch = 1000\n\
             [connectors.sb]\ntype = \"sandbox\"\nwindow = 256\ndlr_delay_ms = 20\n[[routes]]\nto = [\"sb\"]\n",
            vol.dir.path().join("data").display().to_string()
        ),
    )
    .unwrap();
    config
}

/// Send batches of 100 (with long texts, to fill the volume) until `refusals` answers in a
/// row were 503.
async fn fill(client: &reqwest::Client, base: &str, tag: &str, refusals: usize) -> Seen {
    let mut seen = Seen::default();
    let mut in_a_row = 0;
    let text = "x".repeat(600);
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut b = 0;
    while in_a_row < refusals {
        assert!(Instant::now() < deadline, "the volume never filled: {} acked", seen.acked.len());
        b += 1;
        let messages: Vec<Value> = (0..100).map(|i| json!({"to": format!("+4474001{:05}", (b * 100 + i) % 100_000), "text": format!("{tag} {b} {i} {text}")})).collect();
        let r = client.post(format!("{base}/v1/messages/batch")).json(&json!({ "messages": messages })).send().await.unwrap();
        let status = r.status().as_u16();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        match status {
            202 => {
                in_a_row = 0;
                for item in v["results"].as_array().unwrap() {
                    seen.acked.push(item["messages"][0]["id"].as_str().unwrap().to_string());
                }
            }
            503 => {
                in_a_row += 1;
                match v["error"]["code"].as_str() {
                    Some("store_unavailable") => seen.unavailable += 1,
                    Some("store_write_failed") => seen.write_failed += 1,
                    other => panic!("unexpected 503 code {other:?}: {v}"),
                }
            }
            s => panic!("unexpected answer {s}: {v}"),
        }
    }
    seen
}

async fn get(client: &reqwest::Client, url: String) -> (u16, Value) {
    let r = client.get(url).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

/// Wait until every acknowledged message is delivered.
async fn all_delivered(client: &reqwest::Client, base: &str, acked: &[String]) {
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut pending = acked.to_vec();
    while !pending.is_empty() {
        assert!(Instant::now() < deadline, "{} acknowledged messages never delivered, e.g. {}", pending.len(), pending[0]);
        let mut still = Vec::new();
        for chunk in pending.chunks(64) {
            let mut set = tokio::task::JoinSet::new();
            for id in chunk {
                let (client, url, id) = (client.clone(), format!("{base}/v1/messages/{id}"), id.clone());
                set.spawn(async move { (id, get(&client, url).await) });
            }
            while let Some(r) = set.join_next().await {
                let (id, (status, v)) = r.unwrap();
                assert_eq!(status, 200, "acknowledged message {id} missing: {v}");
                match v["state"].as_str() {
                    Some("delivered") => {}
                    Some("undelivered" | "failed" | "expired" | "canceled") => panic!("{id} ended {v}"),
                    _ => still.push(id),
                }
            }
        }
        pending = still;
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}

/// The sum of a metric's series in a Prometheus scrape.
fn metric_sum(scrape: &str, name: &str) -> f64 {
    scrape
        .lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A 24 MiB tmpfs and a directory for the configuration; `None` (with a message) when the
/// test cannot mount one.
fn small_volume() -> Option<(Volume, tempfile::TempDir)> {
    if !root() {
        eprintln!("skipped: mounting a small tmpfs needs root");
        return None;
    }
    let Some(vol) = Volume::mount("24m") else {
        eprintln!("skipped: cannot mount a tmpfs here");
        return None;
    };
    Some((vol, tempfile::tempdir().ok()?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_disk_refuses_then_recovers_without_restart() {
    let Some((vol, conf)) = small_volume() else { return };
    let (child, base) = start_binary(&config(&vol, conf.path()));
    let _child = Reaped(child);
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let mut seen = fill(&client, &base, "a", 5).await;
    assert!(seen.acked.len() >= 1000, "too few stored before the disk filled: {}", seen.acked.len());
    // Refused, not ready, and the store's error reported.
    let (status, ready) = get(&client, format!("{base}/readyz")).await;
    assert_eq!(status, 503, "{ready}");
    assert_eq!(ready["ready"], false);
    assert_eq!(ready["outbox"], "failing");
    let (_, health) = get(&client, format!("{base}/healthz")).await;
    assert_eq!(health["outbox"]["writable"], false, "{health}");
    let metrics = client.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("postern_outbox_writable 0"), "writable gauge");
    assert!(metrics.contains("postern_outbox_write_errors_total{kind="), "write errors counted");
    // Space comes back: writes and readiness return on their own.
    vol.grow("512m");
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (status, ready) = get(&client, format!("{base}/readyz")).await;
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "never ready again without a restart: {ready}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for b in 0..10 {
        let messages: Vec<Value> = (0..100).map(|i| json!({"to": format!("+4474002{b:02}{i:03}"), "text": format!("after {b} {i}")})).collect();
        let r = client.post(format!("{base}/v1/messages/batch")).json(&json!({ "messages": messages })).send().await.unwrap();
        assert_eq!(r.status(), 202, "writes after recovery");
        let v: Value = r.json().await.unwrap();
        for item in v["results"].as_array().unwrap() {
            seen.acked.push(item["messages"][0]["id"].as_str().unwrap().to_string());
        }
    }
    all_delivered(&client, &base, &seen.acked).await;
    let metrics = client.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("postern_outbox_writable 1"));
    assert!(metrics.contains("postern_outbox_recovery_attempts_total{outcome=\"ok\"}"), "recovery attempts counted");
    // Nothing sent twice: state changes that failed to commit were held and written again, not
    // dropped (a dropped outcome would send its message again). A batch whose outcome was
    // unknown (`store_write_failed`) may have been stored and sent.
    let submitted = metric_sum(&metrics, "postern_connector_submitted_total");
    let most = seen.acked.len() + 100 * seen.write_failed;
    assert!(submitted >= seen.acked.len() as f64 && submitted <= most as f64, "submitted {submitted}, acked {}, at most {most}", seen.acked.len());
    let held = metric_sum(&metrics, "postern_outbox_state_turns_held_total");
    eprintln!(
        "stored {} ({} batches refused unstored, {} with unknown outcome), {held} state turns held and written again, {submitted} submitted; recovered without restart",
        seen.acked.len(),
        seen.unavailable,
        seen.write_failed
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_while_full_loses_nothing_acknowledged() {
    let Some((vol, conf)) = small_volume() else { return };
    let config = config(&vol, conf.path());
    let (child, base) = start_binary(&config);
    let mut child = Reaped(child);
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let seen = fill(&client, &base, "k", 5).await;
    child.0.kill().unwrap(); // SIGKILL while the disk is full
    child.0.wait().unwrap();
    vol.grow("512m");
    let (child, base) = start_binary(&config);
    let _child = Reaped(child);
    all_delivered(&client, &base, &seen.acked).await;
    eprintln!("stored {} before SIGKILL on a full disk; all delivered after restart ({} refused unstored, {} unknown)", seen.acked.len(), seen.unavailable, seen.write_failed);
}
