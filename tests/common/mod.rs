//! Test peers: a gateway started in-process on a temp dir, an HTTP sink that records callbacks,
//! and small helpers to wait for a message's state.
#![allow(dead_code)]

pub mod mail;

use postern::app::Gateway;
use postern::config::Config;
use serde_json::Value;
use std::io::BufRead;
use std::time::{Duration, Instant};

pub struct TestGateway {
    pub gw: Gateway,
    pub base: String,
    pub dir: tempfile::TempDir,
    pub http: reqwest::Client,
}

/// A scenario's configuration, said section by section (instead of positional TOML strings):
/// a temporary data directory, 2 shards, fast retries without jitter, an API on a free
/// loopback port; then the connectors and routes it adds.
#[derive(Debug, Clone, Default)]
pub struct Scenario {
    outbox: Vec<String>,
    retry: Vec<String>,
    api: Vec<String>,
    rest: Vec<String>,
    listen: Option<String>,
}

impl Scenario {
    pub fn new() -> Scenario {
        Scenario::default()
    }
    /// A `key = value` line for `[outbox]`.
    pub fn outbox(mut self, kv: &str) -> Self {
        self.outbox.push(kv.to_string());
        self
    }
    /// A `key = value` line for `[outbox.retry]`.
    pub fn retry(mut self, kv: &str) -> Self {
        self.retry.push(kv.to_string());
        self
    }
    /// The API's listening address (default: a free loopback port chosen at start).
    pub fn listen(mut self, addr: &str) -> Self {
        self.listen = Some(addr.to_string());
        self
    }
    /// A `key = value` line for `[api]`.
    pub fn api(mut self, kv: &str) -> Self {
        self.api.push(kv.to_string());
        self
    }
    /// `[connectors.NAME]` of `kind` with `kv` lines.
    pub fn connector(mut self, name: &str, kind: &str, kv: &[&str]) -> Self {
        self.rest.push(format!("[connectors.{name}]\ntype = {kind:?}\n{}\n", kv.join("\n")));
        self
    }
    /// A sandbox carrier `name` with `kv` lines.
    pub fn sandbox(self, name: &str, kv: &[&str]) -> Self {
        self.connector(name, "sandbox", kv)
    }
    /// A route for every message to `to`, with extra `kv` lines (`strategy = …`).
    pub fn route(mut self, to: &[&str], kv: &[&str]) -> Self {
        self.rest.push(format!("[[routes]]\nto = {to:?}\n{}\n", kv.join("\n")));
        self
    }
    /// TOML appended as it is (connectors with nested tables, matched routes).
    pub fn raw(mut self, toml: &str) -> Self {
        self.rest.push(toml.to_string());
        self
    }
    /// The configuration text for a data directory.
    pub fn toml(&self, dir: &std::path::Path) -> String {
        format!(
            "[outbox]\npath = {:?}\nshards = 2\n{}\n[outbox.retry]\ninitial_delay_ms = 50\njitter = 0.0\n{}\n[api]\nlisten = {:?}\n{}\n{}",
            dir.display().to_string(),
            self.outbox.join("\n"),
            self.retry.join("\n"),
            self.listen.as_deref().unwrap_or("127.0.0.1:0"),
            self.api.join("\n"),
            self.rest.join("\n")
        )
    }
    /// Start the gateway in-process on a new temporary directory.
    pub async fn start(self) -> TestGateway {
        self.start_in(tempfile::tempdir().unwrap()).await
    }
    /// Start the gateway in-process with its data in `dir` (which may hold earlier data).
    pub async fn start_in(self, dir: tempfile::TempDir) -> TestGateway {
        let cfg = Config::from_toml_with_env(&self.toml(dir.path()), &|k| std::env::var(k).ok())
            .unwrap_or_else(|e| panic!("{e}"));
        let gw = Gateway::start(cfg).await.unwrap();
        let base = format!("http://{}", gw.api_addr);
        TestGateway {
            gw,
            base,
            dir,
            http: reqwest::Client::new(),
        }
    }
}

/// Start a gateway with `extra` TOML appended to the [`Scenario`] defaults.
pub async fn gateway(extra: &str) -> TestGateway {
    Scenario::new().raw(extra).start().await
}

/// As [`gateway`], with one extra line for the `[api]` section.
pub async fn gateway_full(api_extra: &str, extra: &str) -> TestGateway {
    Scenario::new().api(api_extra).raw(extra).start().await
}

/// The usual sandbox + catch-all route.
pub const SANDBOX: &str =
    "[connectors.sb]\ntype = \"sandbox\"\ndlr_delay_ms = 30\n[[routes]]\nto = [\"sb\"]\n";

impl TestGateway {
    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }
    /// Any method, with an optional JSON body.
    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut r = self.http.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().await.unwrap();
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }
    pub async fn send(&self, body: Value) -> String {
        let (s, v) = self.post("/v1/messages", body).await;
        assert_eq!(s, 202, "{v}");
        v["messages"][0]["id"].as_str().unwrap().to_string()
    }
    /// Poll until the message is in `state` (or panic after `secs`).
    pub async fn wait_state(&self, id: &str, state: &str, secs: u64) -> Value {
        let until = Instant::now() + Duration::from_secs(secs);
        loop {
            let (_, v) = self.get(&format!("/v1/messages/{id}")).await;
            if v["state"] == state {
                return v;
            }
            assert!(
                Instant::now() < until,
                "message {id} never reached {state}: {v}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

pub fn states(v: &Value) -> Vec<String> {
    v["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["state"].as_str().unwrap().to_string())
        .collect()
}

pub use postern::sim::http::Recorded;

/// The project's HTTP receiver (`postern::sim::http`), keeping every request; the first
/// `fail_first` are answered 500.
pub struct HttpSink(pub postern::sim::http::HttpSink);

impl HttpSink {
    pub async fn start(fail_first: usize) -> HttpSink {
        let opts = postern::sim::http::SinkOptions { fail_first, keep: true };
        HttpSink(postern::sim::http::HttpSink::start("127.0.0.1:0", opts).await.unwrap())
    }

    pub fn url(&self, path: &str) -> String {
        self.0.url(path)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.0.requests()
    }

    /// Wait until at least `n` requests were recorded.
    pub async fn wait_for(&self, n: usize, secs: u64) -> Vec<Recorded> {
        let until = Instant::now() + Duration::from_secs(secs);
        loop {
            let v = self.0.requests();
            if v.len() >= n {
                return v;
            }
            assert!(
                Instant::now() < until,
                "sink got {} of {n} requests: {v:?}",
                v.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A WBXML XForms submission (form "household", name "Amina"), 141 octets.
pub const WBXML_FORM: &str = "03016a4e6461746100696400686f757365686f6c640076657273696f6e00323032342d30352d3031006e616d65006167650076696c6c616765006d656d62657273006d65746100696e7374616e6365494400c400040583080412831a01442503416d696e610001442a0333340001442e034b696a696a690001443603350001443e444303757569643a36663163326138652d306237642d346335652d396133662d30303030303030303030303000010101";

/// An independent SMPP client (rusmppc) bound as a transceiver: to the simulator, or to
/// Postern's smpp-server.
pub async fn esme_bind(
    addr: &str,
    system_id: &str,
    password: &str,
) -> Result<(rusmppc::Client, futures::stream::BoxStream<'static, rusmppc::Event>), rusmppc::error::Error> {
    use futures::StreamExt;
    use rusmpp::pdus::BindTransceiver;
    use rusmpp::types::COctetString;
    use rusmpp::values::{InterfaceVersion, Npi, Ton};
    use std::str::FromStr;
    let (client, events) = rusmppc::ConnectionBuilder::new()
        .response_timeout(Duration::from_secs(5))
        .disable_interface_version_check()
        .connect(format!("smpp://{addr}"))
        .await?;
    client
        .bind_transceiver(
            BindTransceiver::builder()
                .system_id(COctetString::from_str(system_id).unwrap())
                .password(COctetString::from_str(password).unwrap())
                .system_type(COctetString::empty())
                .interface_version(InterfaceVersion::Smpp3_4)
                .addr_ton(Ton::Unknown)
                .addr_npi(Npi::Unknown)
                .address_range(COctetString::empty())
                .build(),
        )
        .await?;
    Ok((client, events.boxed()))
}

/// A loopback port free now (for a peer that must be told a port before it listens).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Start the real `postern` binary on `config`; returns the child and the API base URL.
pub fn start_binary(config: &std::path::Path) -> (std::process::Child, String) {
    start_binary_with(config, None)
}

/// As [`start_binary`], with `NOTIFY_SOCKET` set (systemd readiness).
pub fn start_binary_with(
    config: &std::path::Path,
    notify_socket: Option<&std::path::Path>,
) -> (std::process::Child, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_postern"));
    cmd.env_remove("NOTIFY_SOCKET");
    if let Some(p) = notify_socket {
        cmd.env("NOTIFY_SOCKET", p);
    }
    let mut child = cmd
        .args(["serve", "-c"])
        .arg(config)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        // POSTERN_TEST_LOG=1 shows the server's log (for debugging a test).
        .stderr(if std::env::var_os("POSTERN_TEST_LOG").is_some() { std::process::Stdio::inherit() } else { std::process::Stdio::null() })
        .spawn()
        .expect("start postern");
    let stdout = child.stdout.take().unwrap();
    let mut lines = std::io::BufReader::new(stdout).lines();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "postern did not start");
        let line = lines.next().expect("postern exited").unwrap();
        if let Some(rest) = line.trim().strip_prefix("API:") {
            let url = rest.trim().trim_end_matches("/v1/messages").to_string();
            // keep draining stdout so the child never blocks on a full pipe
            std::thread::spawn(move || for _ in lines {});
            return (child, url);
        }
    }
}


/// A child process killed when dropped (so a failing test leaves no server behind).
pub struct Reaped(pub std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A self-signed certificate for 127.0.0.1 and localhost (its own CA), written as PEM files in
/// `dir`: (cert, key).
pub fn test_cert(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    (cert, key)
}

/// A Python venv under the target directory with `packages` installed (made once, then
/// reused; `make test` installs python3-venv). Returns its `python`.
pub fn python_venv(name: &str, packages: &[&str]) -> std::path::PathBuf {
    // The tests of one binary run in parallel: one of them makes the venv at a time.
    static MAKING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = MAKING.lock().unwrap_or_else(|e| e.into_inner());
    let venv = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let py = venv.join("bin/python");
    if !py.exists() {
        let st = std::process::Command::new("python3").args(["-m", "venv"]).arg(&venv).status().expect("python3");
        assert!(st.success(), "python3 -m venv failed (make test installs python3-venv)");
    }
    let st = std::process::Command::new(&py)
        .args(["-m", "pip", "install", "-q", "--disable-pip-version-check"])
        .args(packages)
        .status()
        .unwrap();
    assert!(st.success(), "pip install {packages:?} failed");
    py
}
