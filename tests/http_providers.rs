//! `type = "http"` links against real peers: Kannel (Debian `kannel`: bearerbox + smsbox, its
//! SMSC the project's simulator), a second Postern process (killed and restarted under load),
//! and a Python server answering in Twilio's documented shapes (Twilio itself cannot run on
//! loopback: the peer is a stand-in, but its callbacks are signed by Twilio's own library) that
//! also serves a made-up JSON API for the generic preset.

mod common;
use common::*;
use postern::sim::smsc::{SimConfig, SmscSim};
use serde_json::{json, Value};
use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Wait until every message in `ids` is in `state`.
async fn all_in(g: &TestGateway, ids: &[String], state: &str, secs: u64) {
    for id in ids {
        g.wait_state(id, state, secs).await;
    }
}

/// Send `n` messages to distinct numbers (`+447400<base + i>`), one request each.
async fn send_many(g: &TestGateway, base: u32, n: u32, text: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(g.send(json!({"to": format!("+447400{:06}", base + i), "text": text})).await);
    }
    ids
}

/// The link's window is empty.
async fn nothing_in_flight(g: &TestGateway, link: &str) {
    let (_, c) = g.get("/v1/connectors").await;
    let l = c["connectors"].as_array().unwrap().iter().find(|c| c["name"] == link).unwrap().clone();
    assert_eq!(l["inflight"], 0, "{l}");
}

// --- Kannel ----------------------------------------------------------------------------------

struct Kannel {
    _boxes: Vec<Reaped>,
    sendsms: u16,
}

fn wait_port(port: u16) {
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("port {port} never opened");
}

impl Kannel {
    /// bearerbox and smsbox with one SMPP link to `smsc`, a sendsms user `kuser`/`kpass`, and
    /// a default sms-service forwarding MO to `inbound_url`.
    fn start(dir: &Path, smsc: std::net::SocketAddr, inbound_url: &str) -> Kannel {
        let (admin, boxp, sendsms) = (free_port(), free_port(), free_port());
        let conf = dir.join("kannel.conf");
        std::fs::write(
            &conf,
            format!(
                "group = core\nadmin-port = {admin}\nadmin-password = t\nsmsbox-port = {boxp}\nlog-level = 1\n\
                 box-allow-ip = 127.0.0.1\nstore-type = file\nstore-location = \"{store}\"\ndlr-storage = internal\n\n\
                 group = smsc\nsmsc = smpp\nsmsc-id = sim\nhost = 127.0.0.1\nport = {sp}\nsmsc-username = postern\n\
                 smsc-password = secret\ntransceiver-mode = true\ninterface-version = 34\nsystem-type = \"VMA\"\n\n\
                 group = smsbox\nbearerbox-host = 127.0.0.1\nbearerbox-port = {boxp}\nsendsms-port = {sendsms}\nlog-level = 1\n\n\
                 group = sendsms-user\nusername = kuser\npassword = kpass\nmax-messages = 10\nconcatenation = true\n\n\
                 group = sms-service\nkeyword = default\nget-url = \"{inbound_url}\"\nomit-empty = true\n",
                store = dir.join("kannel.store").display(),
                sp = smsc.port(),
            ),
        )
        .unwrap();
        let spawn = |bin: &str, log: &str| {
            Reaped(
                Command::new(bin)
                    .arg("-v")
                    .arg("1")
                    .arg(&conf)
                    .stdout(std::fs::File::create(dir.join(log)).unwrap())
                    .stderr(std::fs::File::create(dir.join(format!("{log}.err"))).unwrap())
                    .spawn()
                    .unwrap_or_else(|e| panic!("{bin}: {e} (make test installs kannel)")),
            )
        };
        let bb = spawn("bearerbox", "bearerbox.log");
        wait_port(boxp);
        let sb = spawn("smsbox", "smsbox.log");
        wait_port(sendsms);
        Kannel { _boxes: vec![sb, bb], sendsms }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kannel_preset_through_real_kannel_with_receipts_and_mo() {
    std::env::set_var("HTTP_TEST_KANNEL_PW", "kpass");
    std::env::set_var("HTTP_TEST_KANNEL_SECRET", "s3cret-k");
    let sim = SmscSim::start(SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        dlr_delay: Duration::from_millis(20),
        mo_rate: 2.0,
        mo_text: "STOP via kannel €".into(),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let api = free_port();
    let dir = tempfile::tempdir().unwrap();
    let inbound = format!("http://127.0.0.1:{api}/v1/providers/k/inbound?t=s3cret-k&from=%p&to=%P&text=%a");
    let kannel = Kannel::start(dir.path(), sim.addr, &inbound);
    let g = Scenario::new()
        .listen(&format!("127.0.0.1:{api}"))
        .connector(
            "k",
            "http",
            &[
                "preset = \"kannel\"",
                &format!("url = \"http://127.0.0.1:{}\"", kannel.sendsms),
                "username = \"kuser\"",
                "from = \"Postern\"",
                "password_env = \"HTTP_TEST_KANNEL_PW\"",
                &format!("callback_base = \"http://127.0.0.1:{api}\""),
                "callback_secret_env = \"HTTP_TEST_KANNEL_SECRET\"",
                "window = 16",
            ],
        )
        .route(&["k"], &[])
        .start()
        .await;
    // Kannel binds to the simulator in its own time; messages wait for it in its queue.
    // More messages than the window, a long one (Kannel splits it) and one in UCS-2.
    let mut ids = send_many(&g, 200_000, 60, "hello through kannel").await;
    ids.push(g.send(json!({"to": "+447400300001", "text": "x".repeat(300)})).await);
    ids.push(g.send(json!({"to": "+447400300002", "text": "Grüße € ☃"})).await);
    all_in(&g, &ids, "delivered", 60).await;
    nothing_in_flight(&g, "k").await;
    // 60 single messages, 2 parts of 300 characters, 1 UCS-2 message.
    let submits = sim.counters.submits.load(std::sync::atomic::Ordering::Relaxed);
    assert!(submits >= 63, "{submits} submits at the SMSC");

    // MO from the SMSC, through Kannel's sms-service, stored as inbound messages.
    let mut found = None;
    for _ in 0..100 {
        let (_, l) = g.get("/v1/messages?direction=inbound").await;
        if let Some(m) = l["messages"].as_array().and_then(|a| a.first()).cloned() {
            found = Some(m);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let m = found.expect("no MO came through Kannel");
    assert_eq!(m["text"], "STOP via kannel €", "{m}");
    assert_eq!(m["connector"], "k");

    // Forged receipts and MO: wrong token, no token, unknown type; nothing changes.
    let first = &ids[0];
    for q in [
        format!("t=wrong&id={first}&type=2"),
        format!("id={first}&type=2"),
        format!("t=s3cret-k&id={first}&type=77"),
        "t=s3cret-k&type=1".to_string(),
    ] {
        let r = g.http.get(format!("{}/v1/providers/k/dlr?{q}", g.base)).send().await.unwrap();
        assert!(matches!(r.status().as_u16(), 400 | 401), "{q}: {}", r.status());
        let body: Value = r.json().await.unwrap();
        assert!(body["error"]["code"].is_string(), "{body}");
    }
    let r = g.http.get(format!("{}/v1/providers/k/inbound?t=nope&from=1&to=2&text=x", g.base)).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = g.http.get(format!("{}/v1/providers/k/nothing", g.base)).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let r = g.http.get(format!("{}/v1/providers/nope/dlr", g.base)).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let (_, m0) = g.get(&format!("/v1/messages/{first}")).await;
    assert_eq!(m0["state"], "delivered");
}

// --- Postern → Postern -------------------------------------------------------------------------

/// The downstream gateway as its own process, on a fixed port with its data in `dir`.
fn downstream(dir: &Path, port: u16) -> (Reaped, String) {
    let hash = postern::secret::hash_secret("chain-key");
    let cfg = dir.join("b.toml");
    std::fs::write(
        &cfg,
        format!(
            "[outbox]\npath = {:?}\n[api]\nlisten = \"127.0.0.1:{port}\"\nkeys = [{hash:?}]\ncallback_secret_env = \"HTTP_TEST_CHAIN_SECRET\"\n\
             [connectors.sb]\ntype = \"sandbox\"\ndlr_delay_ms = 20\nreject_prefixes = [\"+4474009\"]\n[[routes]]\nto = [\"sb\"]\n",
            dir.join("b-data").display().to_string()
        ),
    )
    .unwrap();
    let (child, base) = start_binary(&cfg);
    (Reaped(child), base)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postern_preset_chains_two_gateways_through_a_restart() {
    std::env::set_var("HTTP_TEST_CHAIN_KEY", "chain-key");
    std::env::set_var("HTTP_TEST_CHAIN_SECRET", "chain-callback-secret");
    let bdir = tempfile::tempdir().unwrap();
    let bport = free_port();
    let (b, bbase) = downstream(bdir.path(), bport);
    let api = free_port();
    let g = Scenario::new()
        .listen(&format!("127.0.0.1:{api}"))
        .retry("max_delay_s = 1")
        .connector(
            "b",
            "http",
            &[
                "preset = \"postern\"",
                &format!("url = \"{bbase}\""),
                "token_env = \"HTTP_TEST_CHAIN_KEY\"",
                &format!("callback_base = \"http://127.0.0.1:{api}\""),
                "callback_secret_env = \"HTTP_TEST_CHAIN_SECRET\"",
                "window = 32",
                "batch = 10",
            ],
        )
        .route(&["b"], &[])
        .start()
        .await;

    // A batch of 300 (more than the window): all delivered at both ends.
    let batch: Vec<Value> = (0..300).map(|i| json!({"to": format!("+447400{:06}", 400_000 + i), "text": format!("chained {i}")})).collect();
    let (s, r) = g.post("/v1/messages/batch", json!({"messages": batch})).await;
    assert_eq!(s, 202, "{r}");
    let ids: Vec<String> = r["results"].as_array().unwrap().iter().map(|i| i["messages"][0]["id"].as_str().unwrap().to_string()).collect();
    all_in(&g, &ids, "delivered", 60).await;
    let (_, m) = g.get(&format!("/v1/messages/{}", ids[0])).await;
    let remote = m["remote_ids"][0].as_str().unwrap().to_string();
    let bm: Value = reqwest::Client::new()
        .get(format!("{bbase}/v1/messages/{remote}"))
        .bearer_auth("chain-key")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(bm["state"], "delivered", "{bm}");
    assert_eq!(bm["client_ref"], ids[0].as_str(), "{bm}");

    // Refused downstream (after it took it): not delivered here, with the remote's code.
    let bad = g.send(json!({"to": "+447400900001", "text": "to a rejected range"})).await;
    let m = g.wait_state(&bad, "undelivered", 30).await;
    assert_eq!(m["error"]["message"], "remote_rejected", "{m}");

    // The downstream is killed (-9) while a batch is on its way, more come while it is down,
    // and it comes back on the same port and data: every message is delivered.
    let batch = |base: u32| -> Value {
        json!({"messages": (0..100).map(|i| json!({"to": format!("+447400{:06}", base + i), "text": "across a restart"})).collect::<Vec<_>>()})
    };
    let (_, r1) = g.post("/v1/messages/batch", batch(500_000)).await;
    drop(b);
    let (_, r2) = g.post("/v1/messages/batch", batch(510_000)).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let (_b2, _) = downstream(bdir.path(), bport);
    let more: Vec<String> = [r1, r2]
        .iter()
        .flat_map(|r| r["results"].as_array().unwrap().iter().map(|i| i["messages"][0]["id"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(more.len(), 200);
    all_in(&g, &more, "delivered", 90).await;
    // The fault was met: messages were tried again.
    let (_, m) = g.get(&format!("/v1/messages/{}", more[199])).await;
    assert!(m["attempts"].as_u64().unwrap() >= 2, "{m}");
    nothing_in_flight(&g, "b").await;

    // A forged status callback (no signature, a wrong one) is refused; nothing changes.
    for sig in [None, Some("sha256=00")] {
        let mut r = g.http.post(format!("{}/v1/providers/b/status", g.base)).body(json!({"id": remote, "state": "failed"}).to_string());
        if let Some(s) = sig {
            r = r.header("x-postern-signature", s);
        }
        assert_eq!(r.send().await.unwrap().status(), 401);
    }
    let (_, m) = g.get(&format!("/v1/messages/{}", ids[0])).await;
    assert_eq!(m["state"], "delivered");
}

// --- Twilio-shaped API and the generic preset ----------------------------------------------------

struct Provider {
    child: std::process::Child,
    port: u16,
    out: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const SID: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "twilio-auth-token-for-tests";

impl Provider {
    fn start() -> Provider {
        let py = python_venv("twilio-venv", &["twilio==9.0.0"]);
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("requests.jsonl");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/http_provider.py");
        let mut child = Command::new(py).arg(script).arg(&out).arg(SID).arg(TOKEN).stdout(Stdio::piped()).spawn().unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        Provider { child, port: line.trim().parse().unwrap(), out, _dir: dir }
    }
    fn requests(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.out).unwrap_or_default().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }
    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twilio_preset_sends_maps_errors_and_takes_signed_callbacks() {
    std::env::set_var("HTTP_TEST_TWILIO_TOKEN", TOKEN);
    let p = Provider::start();
    let api = free_port();
    let g = Scenario::new()
        .listen(&format!("127.0.0.1:{api}"))
        .connector(
            "tw",
            "http",
            &[
                "preset = \"twilio\"",
                &format!("url = \"{}\"", p.base()),
                &format!("username = \"{SID}\""),
                "password_env = \"HTTP_TEST_TWILIO_TOKEN\"",
                "from = \"+15005550006\"",
                &format!("callback_base = \"http://127.0.0.1:{api}\""),
                "window = 8",
            ],
        )
        .route(&["tw"], &[])
        .start()
        .await;
    let ids = send_many(&g, 600_001, 30, "hello twilio €").await;
    all_in(&g, &ids, "delivered", 30).await;
    let (_, m) = g.get(&format!("/v1/messages/{}", ids[0])).await;
    assert!(m["remote_ids"][0].as_str().unwrap().starts_with("SM"), "{m}");
    let sent: Vec<Value> = p.requests().into_iter().filter(|r| r["form"].is_object()).collect();
    assert_eq!(sent[0]["form"]["From"], "+15005550006");
    assert_eq!(sent[0]["form"]["Body"], "hello twilio €");
    assert_eq!(sent[0]["form"]["StatusCallback"], format!("http://127.0.0.1:{api}/v1/providers/tw/status"));

    // 400 with Twilio's code: failed, code kept. 429: retried after Retry-After, then sent.
    let bad = g.send(json!({"to": "+447400610000", "text": "invalid"})).await;
    let m = g.wait_state(&bad, "failed", 20).await;
    assert_eq!(m["error"]["code"], "twilio_21211", "{m}");
    let slow = g.send(json!({"to": "+447400619999", "text": "throttled once"})).await;
    g.wait_state(&slow, "delivered", 30).await;
    // Undelivered with the carrier's error code.
    let und = g.send(json!({"to": "+447400618888", "text": "unreachable"})).await;
    let m = g.wait_state(&und, "undelivered", 20).await;
    assert!(m.to_string().contains("twilio_30003"), "{m}");
    nothing_in_flight(&g, "tw").await;

    // Inbound, signed by Twilio's library: stored; a bad signature: 403, nothing stored.
    let inbound = format!("http://127.0.0.1:{api}/v1/providers/tw/inbound");
    let c = reqwest::Client::new();
    let r: Value = c
        .post(format!("{}/_test/inbound", p.base()))
        .json(&json!({"url": inbound, "From": "+447400777001", "To": "+15005550006", "Body": "reply from a phone", "bad_signature": true}))
        .send().await.unwrap().json().await.unwrap();
    assert_eq!(r["status"], 403, "{r}");
    // Twilio retries a webhook whose answer it did not get: the same MessageSid is stored
    // once; another message with the same text is another message.
    for sid in ["SMdup0001", "SMdup0001", "SMdup0002"] {
        let r: Value = c
            .post(format!("{}/_test/inbound", p.base()))
            .json(&json!({"url": inbound, "From": "+447400777001", "To": "+15005550006", "Body": "reply from a phone", "MessageSid": sid}))
            .send().await.unwrap().json().await.unwrap();
        assert_eq!(r["status"], 200, "{r}");
        assert!(r["body"].as_str().unwrap().contains("<Response>"), "{r}");
    }
    let (_, l) = g.get("/v1/messages?direction=inbound").await;
    let got = l["messages"].as_array().unwrap();
    assert_eq!(got.len(), 2, "{l}");
    assert_eq!(got[0]["text"], "reply from a phone");
    assert_eq!(got[0]["from"], "+447400777001");

    // A status callback with a forged signature: 403, the message keeps its state.
    let r = g
        .http
        .post(format!("{}/v1/providers/tw/status", g.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-twilio-signature", "AAAA")
        .body(format!("MessageSid={}&MessageStatus=failed", m["remote_ids"][0].as_str().unwrap_or("")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let (_, m) = g.get(&format!("/v1/messages/{}", ids[0])).await;
    assert_eq!(m["state"], "delivered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generic_preset_renders_templates_and_maps_json_receipts() {
    std::env::set_var("HTTP_TEST_GENERIC_SECRET", "gen-secret");
    let p = Provider::start();
    let api = free_port();
    let g = Scenario::new()
        .listen(&format!("127.0.0.1:{api}"))
        .raw(&format!(
            "[connectors.gen]\ntype = \"http\"\npreset = \"generic\"\nurl = \"{}/generic/send\"\n\
             body = '{{\"to\": {{{{ to|tojson }}}}, \"text\": {{{{ text|tojson }}}}, \"cb\": {{{{ callback_url|tojson }}}}}}'\n\
             remote_id = \"/data/id\"\ncallback_base = \"http://127.0.0.1:{api}\"\ncallback_secret_env = \"HTTP_TEST_GENERIC_SECRET\"\n\
             receipt_id = \"/ref\"\nreceipt_status = \"/state\"\nreceipt_error = \"/err\"\nwindow = 4\n\
             [connectors.gen.headers]\nx-api = \"k-{{{{ id }}}}\"\n\
             [connectors.gen.receipt_states]\nDLVRD = \"delivered\"\nNOPE = \"undelivered\"\n[[routes]]\nto = [\"gen\"]\n",
            p.base()
        ))
        .start()
        .await;
    let ids = send_many(&g, 700_000, 12, "quote \" and € go through JSON").await;
    all_in(&g, &ids, "delivered", 30).await;
    let fail = g.send(json!({"to": "+447400710000", "text": "fail"})).await;
    let m = g.wait_state(&fail, "undelivered", 20).await;
    assert!(m.to_string().contains("E42"), "{m}");
    let reqs: Vec<Value> = p.requests().into_iter().filter(|r| r["path"] == "/generic/send").collect();
    assert_eq!(reqs.len(), 13);
    assert_eq!(reqs[0]["json"]["text"], "quote \" and € go through JSON");
    assert!(reqs[0]["x-api"].as_str().unwrap().starts_with("k-"), "{}", reqs[0]);
    nothing_in_flight(&g, "gen").await;
    // Every receipt was answered 200; one without the token is refused.
    let answers: Vec<Value> = p.requests().into_iter().filter(|r| r["receipt"].is_string()).map(|r| r["answer"].clone()).collect();
    assert!(answers.iter().all(|a| a == 200), "{answers:?}");
    let r = g.http.post(format!("{}/v1/providers/gen/receipt", g.base)).json(&json!({"ref": "G1", "state": "NOPE"})).send().await.unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn http_connector_config_is_checked() {
    let bad = [
        ("preset = \"kannel\"\nurl = \"http://127.0.0.1:1\"", "username"),
        ("preset = \"postern\"\nurl = \"http://127.0.0.1:1\"", "token_env"),
        ("preset = \"generic\"\nurl = \"ftp://x\"", "url"),
        ("preset = \"generic\"\nurl = \"http://x/{{ to\"", "url"),
        ("preset = \"generic\"\nurl = \"http://x\"\ncallback_base = \"http://127.0.0.1:1\"", "callback_secret_env"),
        ("preset = \"generic\"\nurl = \"http://x\"\n[connectors.h.receipt_states]\nOK = \"fine\"", "receipt_states"),
        ("preset = \"nope\"\nurl = \"http://x\"", "nope"),
    ];
    for (kv, field) in bad {
        let text = format!("[connectors.h]\ntype = \"http\"\n{kv}\n[[routes]]\nto = [\"h\"]\n");
        let e = postern::config::Config::from_toml_with_env(&text, &|_| None).err().unwrap_or_else(|| panic!("accepted: {kv}"));
        assert!(e.to_string().contains(field), "{kv}: {e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mastodon_and_x_presets_post_alerts() {
    std::env::set_var("HTTP_TEST_SOCIAL_TOKEN", "social-token");
    let p = Provider::start();
    let g = Scenario::new()
        .connector("masto", "http", &["preset = \"mastodon\"", &format!("url = \"{}\"", p.base()), "token_env = \"HTTP_TEST_SOCIAL_TOKEN\""])
        .connector("x", "http", &["preset = \"x\"", &format!("url = \"{}\"", p.base()), "token_env = \"HTTP_TEST_SOCIAL_TOKEN\""])
        .raw("[[routes]]\nto = [\"x\"]\nmatch = { tags = [\"x\"] }\n[[routes]]\nto = [\"masto\"]\n")
        .start()
        .await;
    let post = |to: &str, text: &str, tags: &[&str]| json!({"channel": "social", "to": to, "text": text, "tags": tags});
    // Mastodon: an audience, and a direct mention.
    let (s, r) = g.post("/v1/messages", post("public", "Flood warning for the valley €", &[])).await;
    assert_eq!(s, 202, "{r}");
    let public = r["messages"][0]["id"].as_str().unwrap().to_string();
    let (_, r) = g.post("/v1/messages", post("@duty@social.example.org", "you are on call", &[])).await;
    let direct = r["messages"][0]["id"].as_str().unwrap().to_string();
    let (_, r) = g.post("/v1/messages", post("followers", &"x".repeat(600), &[])).await;
    let long = r["messages"][0]["id"].as_str().unwrap().to_string();
    let m = g.wait_state(&public, "submitted", 20).await;
    assert!(m["remote_ids"][0].as_str().unwrap().starts_with("11"), "{m}");
    g.wait_state(&direct, "submitted", 20).await;
    let m = g.wait_state(&long, "failed", 20).await;
    assert_eq!(m["error"]["code"], "http_422", "{m}");
    assert!(m["error"]["message"].as_str().unwrap().contains("character limit"), "{m}");
    // X: a post throttled once (waits for x-rate-limit-reset, no attempt spent), and a DM.
    let (_, r) = g.post("/v1/messages", post("public", "ratelimit test", &["x"])).await;
    let tweet = r["messages"][0]["id"].as_str().unwrap().to_string();
    let (_, r) = g.post("/v1/messages", post("dm:2244994945", "direct alert", &["x"])).await;
    let dm = r["messages"][0]["id"].as_str().unwrap().to_string();
    let (_, r) = g.post("/v1/messages", post("unlisted", "no such audience on X", &["x"])).await;
    let unlisted = r["messages"][0]["id"].as_str().unwrap().to_string();
    let m = g.wait_state(&tweet, "submitted", 20).await;
    assert!(m["remote_ids"][0].as_str().unwrap().starts_with("186"), "{m}");
    g.wait_state(&dm, "submitted", 20).await;
    let m = g.wait_state(&unlisted, "failed", 20).await;
    assert_eq!(m["error"]["code"], "unsupported_address", "{m}");

    let reqs = p.requests();
    let masto: Vec<&Value> = reqs.iter().filter(|r| r["path"] == "/api/v1/statuses").collect();
    // (Sent concurrently: in any order.)
    let first = masto.iter().find(|r| r["json"]["visibility"] == "public").expect("the public post");
    assert_eq!(first["json"], json!({"status": "Flood warning for the valley €", "visibility": "public"}));
    assert_eq!(first["idempotency_key"], public.as_str());
    assert!(masto.iter().any(|r| r["json"] == json!({"status": "@duty@social.example.org you are on call", "visibility": "direct"})), "{masto:?}");
    let tweets: Vec<&Value> = reqs.iter().filter(|r| r["path"] == "/2/tweets").collect();
    assert_eq!(tweets.len(), 2, "throttled once, then posted: {tweets:?}");
    assert!(reqs.iter().any(|r| r["path"] == "/2/dm_conversations/with/2244994945/messages" && r["json"]["text"] == "direct alert"));

    // Bad social addresses are refused before anything is stored.
    for to in ["everyone", "@", "@bad handle", "dm:abc", "@u@nodot"] {
        let (s, r) = g.post("/v1/messages", post(to, "x", &[])).await;
        assert_eq!((s, r["error"]["field"].as_str()), (422, Some("to")), "{to}: {r}");
    }
}
