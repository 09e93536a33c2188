//! Email against Postfix's own test tools and swaks (Debian `postfix`, `swaks`): Postern's SMTP
//! link sends to `smtp-sink` (more mails than its window; a relay that refuses with 5xx, one
//! that answers 4xx), and `swaks` and `smtp-source` send into Postern's SMTP listener.

mod common;
use common::*;
use serde_json::Value;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `smtp-sink` on a free loopback port, dumping each mail to a file in `dir`; killed on drop.
struct Sink {
    child: Child,
    port: u16,
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn sink(dir: &std::path::Path, extra: &[&str]) -> Sink {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let port = free_port();
    let mut cmd = Command::new("smtp-sink");
    cmd.current_dir(dir).args(extra).args(["-d", "%M."]);
    // As root it must drop to another user (and may only then).
    if unsafe { libc::geteuid() } == 0 {
        cmd.args(["-u", "nobody"]);
    }
    cmd.arg(format!("127.0.0.1:{port}")).arg("64");
    let child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("smtp-sink (Debian postfix)");
    let until = Instant::now() + Duration::from_secs(5);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < until, "smtp-sink did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    Sink { child, port }
}

fn dumped(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir).unwrap().filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok()).collect()
}

async fn mail_gateway(port: u16) -> TestGateway {
    Scenario::new()
        .connector("mail", "smtp", &["host = \"127.0.0.1\"", &format!("port = {port}"), "tls = \"none\"", "from = \"alerts@postern.example\"", "window = 16", "pool = 4"])
        .route(&["mail"], &[])
        .retry("max_attempts = 3")
        .start()
        .await
}

async fn states_of(g: &TestGateway) -> Vec<String> {
    let (_, l) = g.get("/v1/messages?limit=1000").await;
    l["messages"].as_array().unwrap().iter().map(|m| m["state"].as_str().unwrap().to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_out_to_smtp_sink_more_than_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let s = sink(dir.path(), &[]);
    let g = mail_gateway(s.port).await;
    let n = 200;
    let msgs: Vec<Value> = (0..n).map(|i| serde_json::json!({"to": format!("user{i}@example.org"), "subject": format!("Alert {i}"), "text": "x".repeat(2048)})).collect();
    let (st, v) = g.post("/v1/messages/batch", serde_json::json!({"messages": msgs})).await;
    assert_eq!(st, 202, "{v}");
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let states = states_of(&g).await;
        if states.iter().all(|s| s == "submitted") && states.len() == n {
            break;
        }
        assert!(Instant::now() < until, "not all submitted: {states:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(g.gw.hub.inflight(), 0, "nothing left in flight");
    let files = dumped(dir.path());
    assert_eq!(files.len(), n, "every mail reached the sink once");
    assert!(files.iter().any(|f| f.contains("Subject: Alert 7")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_refuses_fails_and_one_that_defers_is_retried() {
    let dir = tempfile::tempdir().unwrap();
    let hard = sink(dir.path(), &["-f", "RCPT"]);
    let g = mail_gateway(hard.port).await;
    let id = g.send(serde_json::json!({"to": "a@example.org", "subject": "s", "text": "t"})).await;
    let m = g.wait_state(&id, "failed", 20).await;
    assert_eq!(m["error"]["code"], "smtp_500", "{m}");
    assert_eq!(m["attempts"], 1);

    let dir2 = tempfile::tempdir().unwrap();
    let soft = sink(dir2.path(), &["-r", "RCPT"]);
    let g = mail_gateway(soft.port).await;
    let id = g.send(serde_json::json!({"to": "a@example.org", "subject": "s", "text": "t"})).await;
    let m = g.wait_state(&id, "failed", 30).await;
    assert_eq!(m["error"]["code"], "smtp_450", "{m}");
    assert_eq!(m["attempts"], 3, "4xx is retried until max_attempts: {m}");
}

fn listener_port(g: &TestGateway) -> u16 {
    let addr = g.gw.hub.link("mailin").unwrap().connector.status()["listen"].as_str().unwrap().to_string();
    addr.rsplit_once(':').unwrap().1.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swaks_and_smtp_source_send_into_the_listener() {
    let g = Scenario::new()
        .connector("mailin", "smtp-server", &["listen = \"127.0.0.1:0\"", "domain = \"sms.example\"", "body = \"subject_and_text\"", "sms_sender = \"Postern\""])
        .sandbox("sb", &["dlr_delay_ms = 10"])
        .route(&["sb"], &[])
        .start()
        .await;
    let port = listener_port(&g).to_string();
    let swaks = |to: &str| {
        Command::new("swaks")
            .args(["--server", "127.0.0.1", "--port", &port, "--from", "duty@ops.example", "--to", to, "--header", "Subject: Pump 3", "--body", "Pressure low", "--timeout", "10"])
            .output()
            .expect("swaks")
    };
    // (swaks reads an argument starting with `+` as an option: the number goes without it.)
    let o = swaks("447400123123@sms.example");
    assert!(o.status.success(), "{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    let (_, l) = g.get("/v1/messages?to=%2B447400123123").await;
    assert_eq!(l["messages"][0]["text"], "Pump 3\nPressure low", "{l}");
    let o = swaks("nobody@sms.example");
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("550 5.1.1"), "{}", String::from_utf8_lossy(&o.stdout));

    // smtp-source: 100 mails over 4 sessions, each a message to the phone.
    let o = Command::new("smtp-source")
        .args(["-s", "4", "-m", "100", "-f", "duty@ops.example", "-t", "+447400123124@sms.example", "-S", "Load"])
        .arg(format!("127.0.0.1:{port}"))
        .output()
        .expect("smtp-source");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (_, l) = g.get("/v1/messages?to=%2B447400123124&limit=1000").await;
    assert_eq!(l["messages"].as_array().unwrap().len(), 100);
}
