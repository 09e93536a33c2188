//! The `postern` command line: check-config, hash-password, send/status against a live gateway.

use std::io::Write;
use std::process::{Command, Stdio};

fn postern() -> Command {
    Command::new(env!("CARGO_BIN_EXE_postern"))
}

#[test]
fn check_config_reports_every_problem_and_exits_64() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[outbox]\nshards = 0\ndurability = \"os\"\n[api]\nlisten = \"0.0.0.0:80\"\n[connectors.op-a]\ntype = \"sandbox\"\nwindow = 0\n[[routes]]\nto = [\"op-b\"]\n",
    )
    .unwrap();
    let out = postern().arg("check-config").arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "outbox.shards: must be 1..=64, got 0",
        "connectors.op-a.window: must be 1..=1024, got 0",
        "api.listen:",
        "routes[0].to[0]: no connector named \"op-b\"",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
    let syntax = dir.path().join("syntax.toml");
    std::fs::write(&syntax, "[outbox\n").unwrap();
    assert_eq!(postern().arg("check-config").arg(&syntax).output().unwrap().status.code(), Some(64));
    assert_eq!(postern().arg("check-config").arg(dir.path().join("missing.toml")).output().unwrap().status.code(), Some(64));

    let ok = postern().arg("check-config").output().unwrap();
    assert!(ok.status.success(), "embedded default: {}", String::from_utf8_lossy(&ok.stderr));
    let sample = postern().arg("check-config").arg(concat!(env!("CARGO_MANIFEST_DIR"), "/systemd/postern.toml")).output().unwrap();
    assert!(sample.status.success(), "sample config: {}", String::from_utf8_lossy(&sample.stderr));
}

#[test]
fn hash_password_reads_stdin() {
    let mut child = postern().arg("hash-password").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(b"s3cret\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let hash = String::from_utf8(out.stdout).unwrap();
    let parsed = postern::secret::parse_hash(hash.trim()).unwrap();
    assert!(parsed.verify("s3cret"));
    let empty = postern().arg("hash-password").stdin(Stdio::null()).output().unwrap();
    assert!(!empty.status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_and_status_through_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = postern::config::Config::from_toml(&format!(
        "[outbox]\npath = {:?}\n[api]\nlisten = \"127.0.0.1:0\"\n[connectors.sb]\ntype = \"sandbox\"\ndlr_delay_ms = 10\n[[routes]]\nto = [\"sb\"]\n",
        dir.path().display().to_string()
    ))
    .unwrap();
    let gw = postern::app::Gateway::start(cfg).await.unwrap();
    let api = format!("http://{}", gw.api_addr);
    let out = tokio::task::spawn_blocking({
        let api = api.clone();
        move || postern().args(["send", "--to", "+447700900123", "--text", "from the cli", "--api", &api]).output().unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = v["messages"][0]["id"].as_str().unwrap().to_string();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let out = tokio::task::spawn_blocking(move || postern().args(["status", &id, "--api", &api]).output().unwrap()).await.unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["state"], "delivered");
    assert_eq!(v["text"], "from the cli");
}
