//! The SMPP carrier link against the SMSC simulator over real TCP: HTTP in, submit_sm out,
//! receipts back to a final state; long messages by UDH, SAR and payload; throttling; the SMSC
//! dropping the link.

mod common;
use common::*;
use postern::sim::smsc::{SimConfig, SmscSim};
use serde_json::json;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

async fn sim(cfg: SimConfig) -> SmscSim {
    SmscSim::start(SimConfig {
        dlr_delay: Duration::from_millis(20),
        ..cfg
    })
    .await
    .unwrap()
}

fn link(addr: std::net::SocketAddr, extra: &str) -> String {
    format!("[connectors.op]\ntype = \"smpp\"\nurl = \"smpp://{addr}\"\nsystem_id = \"postern\"\npassword = \"secret\"\nwindow = 16\n{extra}\n[[routes]]\nto = [\"op\"]\n")
}

async fn wait_up(g: &TestGateway) {
    for _ in 0..200 {
        if g.gw.hub.link("op").unwrap().connector.is_up() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("SMPP link never came up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_to_smpp_to_delivered() {
    let s = sim(SimConfig::default()).await;
    let g = gateway(&link(s.addr, "")).await;
    wait_up(&g).await;
    let id = g
        .send(json!({"to": "+447400123123", "from": "Postern", "text": "€uro {test} @ home"}))
        .await;
    let v = g.wait_state(&id, "delivered", 10).await;
    assert_eq!(states(&v), ["queued", "sending", "submitted", "delivered"]);
    assert_eq!(v["remote_ids"].as_array().unwrap().len(), 1);
    assert_eq!(s.counters.submits.load(Relaxed), 1);
    let (_, c) = g.get("/v1/connectors").await;
    assert_eq!(c["connectors"][0]["detail"]["sessions_up"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_messages_udh_sar_payload() {
    for (mode, parts) in [("udh", 2), ("sar", 2), ("payload", 1)] {
        let s = sim(SimConfig::default()).await;
        let g = gateway(&link(s.addr, &format!("long_messages = \"{mode}\""))).await;
        wait_up(&g).await;
        let id = g
            .send(json!({"to": "+447400123123", "text": "x".repeat(250)}))
            .await;
        let v = g.wait_state(&id, "delivered", 10).await;
        assert_eq!(s.counters.submits.load(Relaxed), parts, "{mode}");
        assert_eq!(
            v["remote_ids"].as_array().unwrap().len(),
            parts as usize,
            "{mode}: every part's receipt matched"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_slows_the_link_and_loses_nothing() {
    let s = sim(SimConfig {
        throttle_every: 4,
        ..Default::default()
    })
    .await;
    let g = gateway(&link(s.addr, "")).await;
    wait_up(&g).await;
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(
            g.send(json!({"to": format!("+4474001{i:05}"), "text": "t"}))
                .await,
        );
    }
    for id in &ids {
        let v = g.wait_state(id, "delivered", 20).await;
        assert_eq!(v["attempts"], 1, "throttling spends no attempt: {v}");
    }
    assert!(s.counters.throttled.load(Relaxed) >= 4);
    let (_, c) = g.get("/v1/connectors").await;
    assert!(c["connectors"][0]["detail"]["throttled"].as_u64().unwrap() >= 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_after_the_smsc_drops_the_link() {
    let s = sim(SimConfig {
        drop_after: 8,
        ..Default::default()
    })
    .await;
    let g = gateway(&link(s.addr, "response_timeout_s = 2")).await;
    wait_up(&g).await;
    let mut ids = Vec::new();
    for i in 0..25 {
        ids.push(
            g.send(json!({"to": format!("+4474001{i:05}"), "text": "r"}))
                .await,
        );
    }
    for id in &ids {
        let v = g.wait_state(id, "delivered", 60).await;
        assert_eq!(v["state"], "delivered");
    }
    assert!(
        s.counters.connections.load(Relaxed) >= 3,
        "it had to reconnect"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undelivered_receipts() {
    use postern::sim::smsc::DlrAs;
    // The error is the text's `err:` when there is one, else the network_error_code TLV.
    for (form, error) in [(DlrAs::Both, "001"), (DlrAs::Text, "001"), (DlrAs::Tlv, "001 (network type 3)")] {
        let s = sim(SimConfig {
            dlr_mix: [0, 1, 0, 0],
            dlr_as: form,
            ..Default::default()
        })
        .await;
        let g = gateway(&link(s.addr, "")).await;
        wait_up(&g).await;
        let id = g.send(json!({"to": "+447400123123", "text": "u"})).await;
        let v = g.wait_state(&id, "undelivered", 10).await;
        assert_eq!(v["error"]["code"], "network_error", "{form:?}");
        assert_eq!(v["error"]["message"], error, "{form:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mo_multipart_is_reassembled() {
    let text =
        "This MO message is long enough to arrive in three parts, sent out of order by the SMSC.";
    let s = sim(SimConfig {
        mo_rate: 2.0,
        mo_parts: 3,
        mo_text: text.into(),
        ..Default::default()
    })
    .await;
    let g = gateway(&link(s.addr, "")).await;
    wait_up(&g).await;
    let until = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, l) = g.get("/v1/messages?direction=inbound").await;
        if let Some(m) = l["messages"].as_array().and_then(|a| a.first()) {
            assert_eq!(m["text"], text);
            assert_eq!(m["from"], "447400100001");
            break;
        }
        assert!(std::time::Instant::now() < until, "no MO arrived");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn window_fills_and_is_never_exceeded() {
    // Every ack takes 200 ms: with a window of 8 the link keeps 8 submits in flight.
    let s = sim(SimConfig {
        ack_delay: Duration::from_millis(200),
        ..Default::default()
    })
    .await;
    let g = gateway(&link(s.addr, "").replace("window = 16", "window = 8")).await;
    wait_up(&g).await;
    let mut ids = Vec::new();
    for i in 0..40 {
        ids.push(
            g.send(json!({"to": format!("+4474001{i:05}"), "text": "w"}))
                .await,
        );
    }
    for id in &ids {
        g.wait_state(id, "delivered", 30).await;
    }
    assert_eq!(
        s.counters.max_outstanding.load(Relaxed),
        8,
        "the window fills to 8 and no further"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_timeout_requeues_the_message() {
    // The first submit is answered after 2.5 s, past the 1 s response timeout: its outcome is
    // unknown, so the message goes back to the queue and is sent again.
    let s = sim(SimConfig {
        ack_delay: Duration::from_millis(2500),
        slow_first: 1,
        ..Default::default()
    })
    .await;
    let g = gateway(&link(s.addr, "response_timeout_s = 1")).await;
    wait_up(&g).await;
    let id = g.send(json!({"to": "+447400123123", "text": "slow"})).await;
    let v = g.wait_state(&id, "delivered", 20).await;
    assert_eq!(v["attempts"], 2);
    assert_eq!(
        s.counters.submits.load(Relaxed),
        2,
        "one duplicate at most (the window)"
    );
}

/// One message on a link whose first submit is answered after 1.6 s: past the 1 s response
/// timeout but before the requeued message is due again (one more response timeout), so the
/// late submit_sm_resp settles it.
async fn late_first_response(extra: &str) -> (SmscSim, TestGateway, String) {
    let s = sim(SimConfig {
        ack_delay: Duration::from_millis(1600),
        slow_first: 1,
        ..Default::default()
    })
    .await;
    let g = gateway(&link(s.addr, &format!("response_timeout_s = 1\n{extra}"))).await;
    wait_up(&g).await;
    let id = g.send(json!({"to": "+447400123123", "text": "late but fine"})).await;
    (s, g, id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_response_is_reconciled_instead_of_sending_again() {
    let (s, g, id) = late_first_response("").await;
    let v = g.wait_state(&id, "delivered", 20).await;
    assert_eq!(v["attempts"], 1, "{v}");
    assert_eq!(v["remote_ids"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(s.counters.submits.load(Relaxed), 1, "sent once");
    assert_eq!(states(&v), ["queued", "sending", "queued", "submitted", "delivered"]);
}

/// On a link that asks for no receipts, a late response settles the message too, and leaves
/// no remote-id index entry behind (none would ever be removed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_response_without_receipts_keeps_no_index_entry() {
    let (s, g, id) = late_first_response("dlr = false").await;
    let v = g.wait_state(&id, "submitted", 20).await;
    assert_eq!(v["attempts"], 1, "{v}");
    assert_eq!(s.counters.submits.load(Relaxed), 1, "sent once");
    assert_eq!(g.gw.hub.outbox.outstanding_remote_ids("op").unwrap(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_receipts_messages_stay_submitted_and_the_window_turns() {
    let s = sim(SimConfig::default()).await;
    let g = gateway(&link(s.addr, "dlr = false").replace("window = 16", "window = 4")).await;
    wait_up(&g).await;
    let mut ids = Vec::new();
    for i in 0..40 {
        ids.push(
            g.send(json!({"to": format!("+4474001{i:05}"), "text": "n"}))
                .await,
        );
    }
    for id in &ids {
        g.wait_state(id, "submitted", 20).await;
    }
    assert_eq!(s.counters.submits.load(Relaxed), 40);
    assert_eq!(s.counters.receipts.load(Relaxed), 0);
    // No receipt will come: nothing is kept to match one with.
    assert!(!g.gw.hub.link("op").unwrap().receipts);
    assert_eq!(g.gw.hub.outbox.outstanding_remote_ids("op").unwrap(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_carrier_error_table_overrides_the_defaults() {
    // This carrier's 0x58 means "refused", not "slow down".
    let s = sim(SimConfig {
        throttle_every: 1,
        ..Default::default()
    })
    .await;
    let g = gateway(&link(s.addr, "errors = { \"0x58\" = \"permanent\" }")).await;
    wait_up(&g).await;
    let id = g.send(json!({"to": "+447400123123", "text": "e"})).await;
    let v = g.wait_state(&id, "failed", 10).await;
    assert_eq!(v["error"]["code"], "smpp_0x58");
    assert_eq!(v["attempts"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tx_rx_pair_submits_on_the_transmitter_and_takes_receipts_on_the_receiver() {
    let s = sim(SimConfig::default()).await;
    let g = gateway(&link(s.addr, "bind = \"pair\"\nbinds = 2")).await;
    wait_up(&g).await;
    // Both receivers bound too before counting.
    for _ in 0..200 {
        let (_, c) = g.get("/v1/connectors").await;
        if c["connectors"][0]["detail"]["sessions_up"] == 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let (_, c) = g.get("/v1/connectors").await;
    assert_eq!(c["connectors"][0]["detail"]["sessions"], 4);
    assert_eq!(c["connectors"][0]["detail"]["sessions_up"], 4);
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(g.send(json!({"to": format!("+4474001231{i:02}"), "text": format!("pair {i}")})).await);
    }
    for id in &ids {
        g.wait_state(id, "delivered", 10).await;
    }
    assert_eq!(s.counters.submits.load(Relaxed), 20);
    assert_eq!(s.counters.binds.load(Relaxed), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_mo_parts_survive_a_restart() {
    use postern::codec::reassembly::PartBody;
    use postern::connector::{HeldPart, HubSink};
    let s = sim(SimConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg_text = format!(
        "[outbox]\npath = {:?}\nshards = 2\n[api]\nlisten = \"127.0.0.1:0\"\n{}",
        dir.path().display().to_string(),
        link(s.addr, "")
    );
    let part = |seq: u8, text: &str| HeldPart {
        sender: "447400123001".into(),
        receiver: "12345".into(),
        reference: 77,
        total: 3,
        seq,
        body: PartBody::Text(text.into()),
        data_coding: 0,
        dest_port: None,
        at_ms: postern::model::now_ms(),
    };
    // Three parts acked to the SMSC (held), then the process died before the reassembled
    // message was written: the outbox holds just the parts.
    {
        let cfg = postern::config::Config::from_toml(&cfg_text).unwrap();
        let outbox = postern::outbox::Outbox::open(&cfg.outbox).unwrap();
        for (seq, t) in [(1, "one, "), (3, "three"), (2, "two, ")] {
            let p = part(seq, t);
            let mut changes = postern::outbox::Changes::new();
            changes.hold_part("op", &p, postcard::to_allocvec(&p).unwrap());
            outbox.write(0, changes, vec![], 0).await.unwrap();
        }
    }

    // After the restart the link reassembles them, stores the message, and drops the parts.
    let gw = postern::app::Gateway::start(postern::config::Config::from_toml(&cfg_text).unwrap()).await.unwrap();
    let hub: std::sync::Arc<dyn HubSink> = gw.hub.clone();
    let http = reqwest::Client::new();
    let until = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let l: serde_json::Value = http.get(format!("http://{}/v1/messages?direction=inbound", gw.api_addr)).send().await.unwrap().json().await.unwrap();
        if let Some(m) = l["messages"].as_array().and_then(|a| a.first()) {
            assert_eq!(m["text"], "one, two, three");
            assert_eq!(m["from"], "447400123001");
            break;
        }
        assert!(std::time::Instant::now() < until, "not reassembled after restart");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(hub.held_parts("op").is_empty());
}

/// The inbound messages stored, by sender.
async fn inbound_senders(g: &TestGateway) -> Vec<String> {
    let (_, l) = g.get("/v1/messages?direction=inbound&limit=1000").await;
    l["messages"].as_array().unwrap().iter().map(|m| m["from"].as_str().unwrap().to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mo_sent_again_after_a_lost_resp_is_stored_once() {
    // The SMSC drops the connection on every 6th PDU it reads, a deliver_sm_resp among them:
    // that MO was stored here but the SMSC never heard so, and sends it again after the
    // rebind. Each MO has its own sender (the simulator numbers them).
    let run = |dedup: &'static str| async move {
        let s = sim(SimConfig { mo_rate: 30.0, drop_after: 6, ..Default::default() }).await;
        let g = Scenario::new().outbox(dedup).raw(&link(s.addr, "")).start().await;
        wait_up(&g).await;
        let until = std::time::Instant::now() + Duration::from_secs(30);
        while s.counters.mo.load(Relaxed) < 60 && std::time::Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let senders = inbound_senders(&g).await;
        let distinct: std::collections::HashSet<&String> = senders.iter().collect();
        (senders.len(), distinct.len(), s.counters.mo.load(Relaxed))
    };
    let (stored, distinct, sent) = run("inbound_dedup_s = 60").await;
    assert!(sent >= 60, "the SMSC sent {sent} MO");
    assert_eq!(stored, distinct, "{stored} stored for {distinct} distinct MO");
    // Without the window the same faults store some twice (the test can tell).
    let (stored, distinct, _) = run("inbound_dedup_s = 0").await;
    assert!(stored > distinct, "no MO was sent again: {stored} stored, {distinct} distinct");
}
