//! Backups taken under load by the real binary (`postern backup`, the API's `/v1/backups`),
//! the gateway then killed (-9), and the backup restored (`postern restore`) into a new data
//! directory: every message acknowledged before the backup began is there and is delivered.

mod common;
use common::*;
use serde_json::{json, Value};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn config(dir: &std::path::Path, data: &str) -> std::path::PathBuf {
    let cfg = dir.join(format!("{data}.toml"));
    std::fs::write(
        &cfg,
        format!(
            "[outbox]\npath = {:?}\n[api]\nlisten = \"127.0.0.1:0\"\n[connectors.sb]\ntype = \"sandbox\"\ndlr_delay_ms = 300\nwindow = 16\n[[routes]]\nto = [\"sb\"]\n",
            dir.join(data).display().to_string()
        ),
    )
    .unwrap();
    cfg
}

fn postern(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_postern")).args(args).output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_under_load_restores_every_acknowledged_message() {
    let dir = tempfile::tempdir().unwrap();
    let (child, base) = start_binary(&config(dir.path(), "a"));
    let gw = Reaped(child);
    let http = reqwest::Client::new();

    // Batches of 50 go in all along; each acknowledged id is noted.
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (acked, stop, http, base) = (acked.clone(), stop.clone(), http.clone(), base.clone());
        tokio::spawn(async move {
            let mut n = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let batch: Vec<Value> = (0..50).map(|i| json!({"to": format!("+447400{:06}", n * 50 + i), "text": format!("load {n}-{i}")})).collect();
                n += 1;
                let Ok(r) = http.post(format!("{base}/v1/messages/batch")).json(&json!({"messages": batch})).send().await else { break };
                let Ok(v) = r.json::<Value>().await else { break };
                let ids = v["results"].as_array().into_iter().flatten().filter_map(|i| i["messages"][0]["id"].as_str().map(str::to_string));
                acked.lock().unwrap().extend(ids);
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(800)).await;
    let before: Vec<String> = acked.lock().unwrap().clone();
    assert!(before.len() >= 100, "only {} acknowledged before the backup", before.len());
    let (ok, out) = postern(&["backup", "under-load", "--api", &base]);
    assert!(ok, "{out}");
    let made: Value = serde_json::from_str(&out).unwrap();
    assert!(made["bytes"].as_u64().unwrap() > 0, "{made}");

    // Bad names, and the same name twice.
    for (body, status) in [(json!({"name": "../elsewhere"}), 422), (json!({"name": ".hidden"}), 422), (json!({"name": "under-load"}), 409)] {
        let r = http.post(format!("{base}/v1/backups")).json(&body).send().await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{body}");
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"]["field"], "name", "{e}");
    }
    let list: Value = http.get(format!("{base}/v1/backups")).send().await.unwrap().json().await.unwrap();
    assert_eq!(list["backups"].as_array().unwrap().len(), 1, "{list}");

    // More load, then the gateway dies.
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(gw);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = load.await;

    // Restored into a new data directory; a second restore over it is refused.
    let backup = dir.path().join("a/backups/under-load");
    let cfg_b = config(dir.path(), "b");
    let (ok, out) = postern(&["restore", backup.to_str().unwrap(), "-c", cfg_b.to_str().unwrap()]);
    assert!(ok, "{out}");
    let (ok, out) = postern(&["restore", backup.to_str().unwrap(), "-c", cfg_b.to_str().unwrap()]);
    assert!(!ok && out.contains("already exists"), "{out}");
    let (ok, out) = postern(&["restore", dir.path().to_str().unwrap(), "-c", cfg_b.to_str().unwrap()]);
    assert!(!ok && out.contains("not a Postern backup"), "{out}");

    let (child, base_b) = start_binary(&cfg_b);
    let _gw_b = Reaped(child);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    for id in &before {
        loop {
            let r = http.get(format!("{base_b}/v1/messages/{id}")).send().await.unwrap();
            assert_eq!(r.status(), 200, "{id} acknowledged before the backup is not in it");
            let m: Value = r.json().await.unwrap();
            if m["state"] == "delivered" {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{id} never delivered: {m}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
