//! The XMPP link against a real Prosody (Debian `prosody`) started here with its own config,
//! TLS certificate and two accounts on loopback, and a real XMPP user on the other side
//! (slixmpp, PyPI, answering XEP-0184 receipts): messages both ways, receipts, bounces for
//! an unknown account, a server restart under load, and bad addresses refused.

mod common;
use common::*;
use serde_json::{json, Value};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

struct Prosody {
    child: Option<Reaped>,
    cfg: PathBuf,
    port: u16,
    dir: PathBuf,
}

impl Prosody {
    /// A Prosody for `localhost` with accounts `postern` and `alice`, STARTTLS required,
    /// stream management (XEP-0198) on, no offline storage (mail to an absent or unknown
    /// user bounces).
    fn start(dir: &Path, cert: &Path, key: &Path) -> Prosody {
        let port = free_port();
        let cfg = dir.join("prosody.cfg.lua");
        let d = dir.display();
        std::fs::create_dir_all(dir.join("data")).unwrap();
        std::fs::write(
            &cfg,
            format!(
                "run_as_root = true\nprosody_user = \"root\"\nprosody_group = \"root\"\npidfile = \"{d}/prosody.pid\"\n\
                 data_path = \"{d}/data\"\ncertificates = \"{d}\"\ninterfaces = {{ \"127.0.0.1\" }}\nc2s_ports = {{ {port} }}\n\
                 s2s_ports = {{ }}\nhttp_ports = {{ }}\nhttps_ports = {{ }}\n\
                 modules_enabled = {{ \"stanza_debug\"; \"roster\"; \"saslauth\"; \"tls\"; \"disco\"; \"smacks\"; \"ping\"; \"posix\"; }}\n\
                 modules_disabled = {{ \"s2s\"; \"offline\"; }}\nauthentication = \"internal_plain\"\nc2s_require_encryption = true\n\
                 allow_registration = false\nlog = {{ debug = \"{d}/prosody.log\"; error = \"{d}/prosody.err\"; }}\n\
                 VirtualHost \"localhost\"\n  ssl = {{ certificate = \"{}\"; key = \"{}\"; }}\n",
                cert.display(),
                key.display()
            ),
        )
        .unwrap();
        for (user, pw) in [("postern", "postern-pw"), ("alice", "alice-pw")] {
            let st = Command::new("prosodyctl")
                .arg("--config")
                .arg(&cfg)
                .args(["register", user, "localhost", pw])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("prosodyctl (make test installs prosody)");
            assert!(st.success(), "prosodyctl register {user}");
        }
        let mut p = Prosody { child: None, cfg, port, dir: dir.to_path_buf() };
        p.run();
        p
    }

    fn run(&mut self) {
        let child = Command::new("prosody")
            .arg("--config")
            .arg(&self.cfg)
            .arg("-F")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prosody (make test installs prosody)");
        self.child = Some(Reaped(child));
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("prosody did not listen: {}", std::fs::read_to_string(self.dir.join("prosody.log")).unwrap_or_default());
    }

    /// `kill -9` and start again on the same port and data.
    fn restart(&mut self) {
        self.child = None;
        std::thread::sleep(Duration::from_millis(300));
        self.run();
    }
}

/// alice@localhost as a slixmpp client.
struct Alice {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    out: PathBuf,
}

impl Drop for Alice {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Alice {
    fn start(port: u16, ca: &Path, dir: &Path) -> Alice {
        let py = python_venv("slixmpp-venv", &["slixmpp==1.8.5"]);
        let out = dir.join("alice.jsonl");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/xmpp_peer.py");
        let mut child = Command::new(py)
            .arg(script)
            .args(["alice@localhost", "alice-pw", &port.to_string()])
            .arg(ca)
            .arg(&out)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "online", "alice did not log in");
        let stdin = child.stdin.take().unwrap();
        Alice { child, stdin, out }
    }
    fn say(&mut self, to: &str, body: &str) {
        writeln!(self.stdin, "{}", json!({"to": to, "body": body})).unwrap();
        self.stdin.flush().unwrap();
    }
    fn seen(&self, kind: &str) -> Vec<Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|v| v["kind"] == kind)
            .collect()
    }
}

async fn send_chat(g: &TestGateway, to: &str, text: &str) -> String {
    let (s, r) = g.post("/v1/messages", json!({"channel": "xmpp", "to": to, "text": text})).await;
    assert_eq!(s, 202, "{r}");
    r["messages"][0]["id"].as_str().unwrap().to_string()
}

async fn nothing_in_flight(g: &TestGateway) {
    let (_, c) = g.get("/v1/connectors").await;
    assert_eq!(c["connectors"][0]["inflight"], 0, "{c}");
}

async fn wait_online(g: &TestGateway, secs: u64) {
    for _ in 0..secs * 10 {
        if g.gw.hub.link("x").unwrap().connector.is_up() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, c) = g.get("/v1/connectors").await;
    panic!("the XMPP link never came up: {c}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xmpp_link_against_prosody() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = test_cert(dir.path());
    // The client trusts the test CA the way an operator's private CA is trusted.
    std::env::set_var("SSL_CERT_FILE", &cert);
    std::env::set_var("XMPP_TEST_PW", "postern-pw");
    let mut prosody = Prosody::start(dir.path(), &cert, &key);
    let mut alice = Alice::start(prosody.port, &cert, dir.path());
    let g = Scenario::new()
        .connector(
            "x",
            "xmpp",
            &[
                "jid = \"postern@localhost\"",
                "password_env = \"XMPP_TEST_PW\"",
                &format!("server = \"127.0.0.1:{}\"", prosody.port),
                "window = 8",
                "timeout_s = 5",
            ],
        )
        .route(&["x"], &[])
        .start()
        .await;
    wait_online(&g, 30).await;
    let (_, c) = g.get("/v1/connectors").await;
    assert_eq!(c["connectors"][0]["detail"]["stream_management"], true, "{c}");

    // Out: more messages than the window, each delivered by alice's XEP-0184 receipt.
    let mut ids = Vec::new();
    for i in 0..40 {
        ids.push(send_chat(&g, "alice@localhost", &format!("alert {i}: € ☃ <&>")).await);
    }
    for _ in 0..300 {
        let (_, l) = g.get("/v1/messages?state=delivered&limit=100").await;
        if l["messages"].as_array().unwrap().len() >= 40 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let got = alice.seen("message");
    for id in &ids {
        let (_, m) = g.get(&format!("/v1/messages/{id}")).await;
        if m["state"] != "delivered" {
            let log = std::fs::read_to_string(dir.path().join("prosody.log")).unwrap_or_default();
            let lines: Vec<&str> = log.lines().filter(|l| l.contains(id.as_str())).collect();
            panic!("{id} not delivered: {m}\nprosody: {lines:#?}");
        }
    }
    assert_eq!(got.len(), 40, "{got:?}");
    assert_eq!(got[0]["from"], "postern@localhost");
    assert_eq!(got[0]["body"], "alert 0: € ☃ <&>");
    assert_eq!(got[0]["id"], ids[0].as_str());

    // In: alice writes; stored as an inbound xmpp message, and her receipt request answered.
    alice.say("postern@localhost", "ack alert 0");
    let mut inbound = None;
    for _ in 0..100 {
        let (_, l) = g.get("/v1/messages?direction=inbound").await;
        if let Some(m) = l["messages"].as_array().and_then(|a| a.first()).cloned() {
            inbound = Some(m);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let m = inbound.expect("alice's message never came in");
    assert_eq!((m["channel"].as_str(), m["from"].as_str(), m["text"].as_str()), (Some("xmpp"), Some("alice@localhost"), Some("ack alert 0")), "{m}");
    for _ in 0..50 {
        if !alice.seen("receipt").is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(alice.seen("receipt").len(), 1, "no receipt for alice's message");

    // An account the server does not have: the server's bounce marks it undelivered.
    let nobody = send_chat(&g, "nobody@localhost", "into the void").await;
    let m = g.wait_state(&nobody, "undelivered", 20).await;
    assert!(m.to_string().contains("xmpp_service-unavailable"), "{m}");

    // The server is killed and restarted while messages go out: the link reconnects, and
    // every message is delivered (counted at alice).
    let mut more = Vec::new();
    for i in 0..10 {
        more.push(send_chat(&g, "alice@localhost", &format!("before {i}")).await);
    }
    prosody.restart();
    drop(alice);
    let alice = Alice::start(prosody.port, &cert, dir.path());
    for i in 0..30 {
        more.push(send_chat(&g, "alice@localhost", &format!("after {i}")).await);
    }
    wait_online(&g, 60).await;
    for id in &more[10..] {
        g.wait_state(id, "delivered", 60).await;
    }
    let (_, c) = g.get("/v1/connectors").await;
    assert!(c["connectors"][0]["detail"]["sessions"].as_u64().unwrap() >= 2, "{c}");
    // Each at least once. A message the dead session had queued or written but not had acked
    // goes again on the new one, and the given-up client may still flush its queue when its
    // own reconnect succeeds: duplicates are bounded by the window plus that queue (16).
    let bodies: Vec<String> = alice.seen("message").iter().map(|m| m["body"].as_str().unwrap().to_string()).collect();
    let mut duplicates = 0;
    for i in 0..30 {
        let n = bodies.iter().filter(|b| **b == format!("after {i}")).count();
        assert!(n >= 1, "after {i} never arrived");
        duplicates += n - 1;
    }
    assert!(duplicates <= 8 + 16, "{duplicates} duplicates for a window of 8");
    // The ten sent just before the kill (unacked when the server died) went again on the new
    // session: each is delivered, or waits for a receipt the old alice could not send.
    for id in &more[..10] {
        let mut m = Value::Null;
        for _ in 0..300 {
            m = g.get(&format!("/v1/messages/{id}")).await.1;
            if matches!(m["state"].as_str(), Some("delivered" | "submitted")) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(matches!(m["state"].as_str(), Some("delivered" | "submitted")), "{m}");
    }
    nothing_in_flight(&g).await;
}

#[tokio::test]
async fn xmpp_addresses_and_config_are_checked() {
    let g = Scenario::new().sandbox("sb", &[]).route(&["sb"], &[]).start().await;
    for (to, text) in [("not a jid@@", "x"), ("alice@localhost/phone", "x"), ("localhost", "x"), ("alice@localhost", "")] {
        let (s, r) = g.post("/v1/messages", json!({"channel": "xmpp", "to": to, "text": text})).await;
        assert_eq!(s, 422, "{to}: {r}");
        assert!(r["error"]["field"].is_string(), "{r}");
    }
    let (s, r) = g.post("/v1/messages", json!({"channel": "xmpp", "to": "xmpp:Alice@LocalHost", "text": "hi", "subject": "no"})).await;
    assert_eq!((s, r["error"]["field"].as_str()), (422, Some("channel")), "{r}");
    let (_, l) = g.get("/v1/messages").await;
    assert_eq!(l["messages"].as_array().unwrap().len(), 0);

    for (kv, field) in [
        ("jid = \"nojid\"\npassword_env = \"X\"", "jid"),
        ("jid = \"a@b\"", "password_env"),
        ("jid = \"a@b\"\npassword_env = \"X\"\nserver = \"nope\"", "server"),
    ] {
        let text = format!("[connectors.x]\ntype = \"xmpp\"\n{kv}\n[[routes]]\nto = [\"x\"]\n");
        let e = postern::config::Config::from_toml_with_env(&text, &|_| Some("set".into())).err().unwrap_or_else(|| panic!("accepted: {kv}"));
        assert!(e.to_string().contains(field), "{kv}: {e}");
    }
}
