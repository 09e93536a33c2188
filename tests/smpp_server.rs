//! The SMPP server for downstream ESMEs over real TCP: an independent client (rusmppc, and
//! Python smpplib in a venv) binds, submits, and gets the receipt; TPS and session limits; MO
//! routed to the account's numbers.

mod common;
use common::*;
use futures::StreamExt;
use postern::connector::{HubSink, InboundMessage};
use rusmpp::pdus::{DeliverSmResp, SubmitSm};
use rusmpp::types::{COctetString, OctetString};
use rusmpp::values::{Npi, RegisteredDelivery, Ton};
use rusmpp::{CommandStatus, Pdu};
use std::str::FromStr;
use std::time::Duration;

fn server_cfg(hash: &str, extra: &str) -> String {
    format!(
        "[connectors.esme]\ntype = \"smpp-server\"\nlisten = \"127.0.0.1:0\"\n[[connectors.esme.accounts]]\nsystem_id = \"acme\"\npassword = \"{hash}\"\nnumbers = [\"12345\"]\n{extra}\n{SANDBOX}"
    )
}

fn server_addr(g: &TestGateway) -> String {
    g.gw.hub.link("esme").unwrap().connector.status()["listen"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn bind(
    addr: &str,
    pw: &str,
) -> Result<(rusmppc::Client, futures::stream::BoxStream<'static, rusmppc::Event>), rusmppc::error::Error> {
    esme_bind(addr, "acme", pw).await
}

fn submit(text: &str) -> SubmitSm {
    SubmitSm::builder()
        .source_addr_ton(Ton::Alphanumeric)
        .source_addr(COctetString::from_str("Acme").unwrap())
        .dest_addr_ton(Ton::International)
        .dest_addr_npi(Npi::Isdn)
        .destination_addr(COctetString::from_str("447400123123").unwrap())
        .registered_delivery(RegisteredDelivery::from(1u8))
        .short_message(OctetString::from_str(text).unwrap())
        .build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn esme_submits_and_gets_its_receipt_and_mo() {
    let hash = postern::secret::hash_secret("pw123");
    let g = gateway(&server_cfg(&hash, "")).await;
    let addr = server_addr(&g);
    assert!(bind(&addr, "wrong").await.is_err(), "bad password refused");
    let (client, mut events) = bind(&addr, "pw123").await.unwrap();
    let resp = client
        .submit_sm(submit("hello from an ESME"))
        .await
        .unwrap();
    let id = resp.message_id().as_str().to_string();
    // The id is ours: the message is in the outbox, and reaches delivered through the sandbox.
    let v = g.wait_state(&id, "delivered", 10).await;
    assert_eq!(v["text"], "hello from an ESME");
    assert_eq!(v["from"], "Acme");
    let ev = tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .expect("receipt")
        .unwrap();
    let rusmppc::Event::Incoming(cmd) = ev else {
        panic!("{ev:?}")
    };
    let Some(Pdu::DeliverSm(d)) = cmd.pdu() else {
        panic!("{cmd:?}")
    };
    let text = String::from_utf8_lossy(d.short_message().as_ref()).into_owned();
    let r = postern::connector::smpp::dlr::parse(&text).unwrap();
    assert_eq!(
        (r.id.as_deref(), r.stat.as_deref()),
        (Some(id.as_str()), Some("DELIVRD"))
    );
    client
        .deliver_sm_resp(cmd.sequence_number(), DeliverSmResp::default())
        .await
        .unwrap();

    // MO for the account's number comes to the bound ESME.
    let hub: std::sync::Arc<dyn HubSink> = g.gw.hub.clone();
    hub.receive(InboundMessage {
        connector: "sb".into(),
        from: "+447400123777".into(),
        to: "12345".into(),
        body: postern::model::Body::Text("YES".into()),
        metadata: None,
        dest_port: None,
        dedup_id: None,
    })
    .await
    .unwrap();
    let ev = tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .expect("MO")
        .unwrap();
    let rusmppc::Event::Incoming(cmd) = ev else {
        panic!()
    };
    let Some(Pdu::DeliverSm(d)) = cmd.pdu() else {
        panic!("{cmd:?}")
    };
    assert_eq!(d.short_message().as_ref(), b"YES");
    assert_eq!(d.source_addr.as_str(), "447400123777");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tps_and_session_limits() {
    let hash = postern::secret::hash_secret("pw123");
    let g = gateway(&server_cfg(&hash, "tps = 5\nmax_binds = 1")).await;
    let addr = server_addr(&g);
    let (client, _events) = bind(&addr, "pw123").await.unwrap();
    assert!(
        bind(&addr, "pw123").await.is_err(),
        "second session over max_binds refused"
    );
    let mut throttled = 0;
    for _ in 0..20 {
        match client.submit_sm(submit("x")).await {
            Ok(_) => {}
            Err(rusmppc::error::Error::UnexpectedResponse { response })
                if response.status() == CommandStatus::EsmeRthrottled =>
            {
                throttled += 1
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(throttled >= 10, "only {throttled} of 20 throttled at 5 tps");
}

/// An independent implementation: Python smpplib (installed in a venv by the test) binds,
/// submits and receives the receipt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_smpplib_client() {
    let py = python_venv("smpplib-venv", &["smpplib==2.2.4"]);
    let hash = postern::secret::hash_secret("pw123");
    let g = gateway(&server_cfg(&hash, "")).await;
    let (host, port) = server_addr(&g)
        .rsplit_once(':')
        .map(|(h, p)| (h.to_string(), p.to_string()))
        .unwrap();
    let script = r#"
import sys, json, smpplib.client, smpplib.consts, smpplib.gsm
host, port = sys.argv[1], int(sys.argv[2])
c = smpplib.client.Client(host, port, timeout=10)
got = {}
def on_sent(pdu):
    got["id"] = pdu.message_id.decode()
def on_message(pdu):
    got["receipt"] = pdu.short_message.decode("latin-1")
    got["receipted"] = (pdu.receipted_message_id or b"").decode()
    raise StopIteration
c.set_message_sent_handler(on_sent)
c.set_message_received_handler(on_message)
c.connect()
c.bind_transceiver(system_id="acme", password="pw123")
c.send_message(source_addr_ton=5, source_addr="Acme", dest_addr_ton=1, dest_addr_npi=1,
               destination_addr="447400123124", short_message=b"hello from smpplib", registered_delivery=1)
try:
    for _ in range(50):
        c.read_once()
except StopIteration:
    pass
print(json.dumps(got))
c.unbind(); c.disconnect()
"#;
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(py)
            .arg("-c")
            .arg(script)
            .arg(host)
            .arg(port)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "smpplib: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(out.stdout.trim_ascii()).unwrap();
    let id = v["id"].as_str().unwrap();
    assert_eq!(v["receipted"], id);
    assert!(v["receipt"].as_str().unwrap().contains("stat:DELIVRD"));
    assert_eq!(
        g.wait_state(id, "delivered", 10).await["text"],
        "hello from smpplib"
    );
}

/// SMPP in, SMPP out, over TLS: gateway B's `smpps://` carrier link binds to gateway A's TLS SMPP
/// server (self-signed certificate, trusted through `tls_ca`); the message goes HTTP → B → A →
/// sandbox, and the receipt comes back A → B.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_bind_and_smpp_to_smpp() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = test_cert(dir.path());
    let hash = postern::secret::hash_secret("pw123");
    let a = gateway(&server_cfg(&hash, "").replace(
        "listen = \"127.0.0.1:0\"\n",
        &format!(
            "listen = \"127.0.0.1:0\"\ntls = {{ cert = {:?}, key = {:?} }}\n",
            cert.display().to_string(),
            key.display().to_string()
        ),
    ))
    .await;
    let addr = server_addr(&a);
    // A plain client cannot bind to the TLS listener.
    assert!(
        tokio::time::timeout(Duration::from_secs(5), bind(&addr, "pw123"))
            .await
            .map(|r| r.is_err())
            .unwrap_or(true)
    );
    let b = gateway(&format!(
        "[connectors.up]\ntype = \"smpp\"\nurl = \"smpps://{addr}\"\nsystem_id = \"acme\"\npassword = \"pw123\"\ntls_ca = {:?}\n[[routes]]\nto = [\"up\"]\n",
        cert.display().to_string()
    ))
    .await;
    for _ in 0..200 {
        if b.gw.hub.link("up").unwrap().connector.is_up() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        b.gw.hub.link("up").unwrap().connector.is_up(),
        "TLS bind failed"
    );
    let id = b
        .send(serde_json::json!({"to": "+447400123123", "from": "Acme", "text": "over TLS"}))
        .await;
    let v = b.wait_state(&id, "delivered", 15).await;
    // A's id for the message is B's remote id (normalised: leading zeros dropped).
    let remote = v["remote_ids"][0].as_str().unwrap().to_string();
    let (_, l) = a.get("/v1/messages").await;
    let ma = &l["messages"][0];
    assert_eq!(ma["text"], "over TLS");
    assert_eq!(ma["id"].as_str().unwrap().trim_start_matches('0'), remote);
    a.wait_state(ma["id"].as_str().unwrap(), "delivered", 10)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_frame_closes_only_that_session() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let hash = postern::secret::hash_secret("pw123");
    let g = gateway(&server_cfg(&hash, "")).await;
    let addr = server_addr(&g);
    let (good, _ev) = bind(&addr, "pw123").await.unwrap();
    // A second connection binds by hand, then sends a frame whose command_length is impossible.
    let mut raw = tokio::net::TcpStream::connect(&addr).await.unwrap();
    raw.write_all(&hex::decode("00000020000000090000000000000001").unwrap())
        .await
        .unwrap(); // bind_transceiver, 32 octets
    raw.write_all(b"acme\0pw123\0\0\x34\0\0\0").await.unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), raw.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(n >= 16, "bind answered");
    raw.write_all(&[0, 0, 0, 4, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 9])
        .await
        .unwrap(); // a header saying command_length 4 (< 16)
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), raw.read_to_end(&mut rest)).await;
    assert!(
        rest.len() >= 16 && rest[4..8] == [0x80, 0, 0, 0],
        "generic_nack before close: {rest:?}"
    );
    // The other session still works.
    let r = good.submit_sm(submit("still fine")).await.unwrap();
    g.wait_state(r.message_id().as_str(), "delivered", 10).await;
    let (_, _) = g.get("/healthz").await;
    let m = g
        .http
        .get(format!("{}/metrics", g.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        m.contains("postern_smpp_frame_errors_total{connector=\"esme\"} 1"),
        "{m}"
    );
}

/// Shutdown: once the gateway drains, a bound ESME's submit_sm is answered "queue full"
/// (ESME_RMSGQFUL: come back later) and nothing is stored; no new connection is accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draining_refuses_new_submits_and_connections() {
    let hash = postern::secret::hash_secret("pw123");
    let g = gateway(&server_cfg(&hash, "")).await;
    let addr = server_addr(&g);
    let (client, _events) = bind(&addr, "pw123").await.unwrap();
    client.submit_sm(submit("before the drain")).await.unwrap();
    let depth = g.gw.hub.outbox.depth();
    g.gw.hub.drain();
    match client.submit_sm(submit("during the drain")).await {
        Err(rusmppc::error::Error::UnexpectedResponse { response }) => {
            assert_eq!(response.status(), CommandStatus::EsmeRmsgqful)
        }
        other => panic!("submit during the drain: {other:?}"),
    }
    assert!(g.gw.hub.outbox.depth() <= depth, "nothing stored while draining");
    // The listener closes once the drain has begun.
    let mut refused = false;
    for _ in 0..50 {
        if tokio::net::TcpStream::connect(&addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused, "new connections still accepted while draining");
}

/// A port another process holds: the gateway does not start (the connector is not silently
/// absent), and the error names the connector.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_port_stops_the_gateway_from_starting() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let hash = postern::secret::hash_secret("pw123");
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[outbox]\npath = {:?}\n[api]\nlisten = \"127.0.0.1:0\"\n{}",
        dir.path().display().to_string(),
        server_cfg(&hash, "").replace("127.0.0.1:0", &format!("127.0.0.1:{port}"))
    );
    let cfg = postern::config::Config::from_toml(&text).unwrap();
    match postern::app::Gateway::start(cfg).await {
        Err(e) => {
            let s = e.to_string();
            assert!(s.contains("connector esme") && s.contains(&port.to_string()), "{s}");
        }
        Ok(_) => panic!("started with its SMPP port taken"),
    }
}
