//! Chaos on the SMPP carrier links, at full load with far more messages than the window:
//! the project's SMSC simulator (the peer: there is no free SMSC to run here) drops
//! connections every few thousand PDUs, throttles at random, sends receipts at once and
//! before the submit_sm_resp, and acks slowly and unevenly — all in one run, over a
//! transceiver link with two binds and a transmitter + receiver pair. The end state is what
//! counts: every message `delivered`, nothing in flight, every deliver_sm answered, and
//! messages sent twice bounded by the window per dropped connection.
//!
//! `CHAOS_N` sets the number of messages (default 100,000).

mod common;
use common::*;
use postern::sim::smsc::{SimConfig, SmscSim};
use postern::model::{MessageId, State};
use serde_json::json;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

const WINDOW: usize = 500;

fn chaotic() -> SimConfig {
    SimConfig {
        dlr_delay: Duration::ZERO,
        dlr_before_resp: true,
        drop_after: 6_000,
        drop_jitter: true,
        throttle_chance: 0.01,
        ack_jitter: Duration::from_millis(30),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_delivered_under_drops_throttling_and_early_receipts() {
    let n: usize = std::env::var("CHAOS_N").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let trx = SmscSim::start(chaotic()).await.unwrap();
    // The pair's SMSC throttles more (5%) and sends receipts right after the answer.
    let pair = SmscSim::start(SimConfig { dlr_before_resp: false, throttle_chance: 0.05, ..chaotic() }).await.unwrap();
    let link = |name: &str, addr: std::net::SocketAddr, extra: &str| {
        format!("[connectors.{name}]\ntype = \"smpp\"\nurl = \"smpp://{addr}\"\nsystem_id = \"postern\"\npassword = \"secret\"\nwindow = {WINDOW}\nresponse_timeout_s = 5\n{extra}\n")
    };
    let g = Scenario::new()
        .outbox("max_depth = 1000000")
        .retry("max_attempts = 50")
        .api("max_batch = 1000")
        .raw(&link("trx", trx.addr, "binds = 2"))
        .raw(&link("pair", pair.addr, "bind = \"pair\""))
        .route(&["trx", "pair"], &["strategy = \"round_robin\""])
        .start()
        .await;
    for name in ["trx", "pair"] {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !g.gw.hub.link(name).unwrap().connector.is_up() {
            assert!(Instant::now() < deadline, "{name} never came up");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let started = Instant::now();
    // Eight clients sending batches of 100 as fast as they are taken.
    let mut clients = Vec::new();
    for c in 0..8usize {
        let (http, base) = (g.http.clone(), g.base.clone());
        clients.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for b in 0..n / 800 {
                let messages: Vec<_> = (0..100).map(|i| json!({"to": format!("+44740{c}{b:04}{i:02}"), "text": format!("chaos {c}-{b}-{i}")})).collect();
                let r = http.post(format!("{base}/v1/messages/batch")).json(&json!({ "messages": messages })).send().await.unwrap();
                assert_eq!(r.status(), 202);
                let v: serde_json::Value = r.json().await.unwrap();
                for item in v["results"].as_array().unwrap() {
                    ids.push(item["messages"][0]["id"].as_str().unwrap().parse::<MessageId>().unwrap());
                }
            }
            ids
        }));
    }
    let mut ids = Vec::new();
    for c in clients {
        ids.extend(c.await.unwrap());
    }
    let total = ids.len();
    assert_eq!(total, n / 800 * 800);
    // Wait for the end state: nothing pending, nothing in flight, every receipt answered.
    let hub = &g.gw.hub;
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let inflight: usize = ["trx", "pair"].iter().map(|l| hub.link(l).unwrap().inflight()).sum();
        if hub.outbox.depth() == 0 && inflight == 0 && trx.unanswered() == 0 && pair.unanswered() == 0 {
            let undelivered = ids.iter().filter(|id| hub.outbox.get(**id).ok().flatten().map(|m| m.delivery.state) != Some(State::Delivered)).count();
            if undelivered == 0 {
                break;
            }
        }
        if Instant::now() > deadline {
            let (_, c) = g.get("/v1/connectors").await;
            let states: std::collections::BTreeMap<&str, usize> = ids.iter().fold(Default::default(), |mut m, id| {
                *m.entry(hub.outbox.get(*id).ok().flatten().map(|m| m.delivery.state.as_str()).unwrap_or("missing")).or_default() += 1;
                m
            });
            panic!("no end state: depth {} inflight {inflight} unanswered {} + {}, states {states:?}, connectors {c}", hub.outbox.depth(), trx.unanswered(), pair.unanswered());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let took = started.elapsed();
    let (_, c) = g.get("/v1/connectors").await;
    // Sent again: every submit beyond one per message, less those the SMSC throttled (a
    // throttled submit was refused, so sending it again is no duplicate). A message requeued
    // after a drop may go out on the other link, so this is counted over both SMSCs.
    let (mut submits, mut throttled, mut drops, mut distinct) = (0, 0, 0, 0);
    for (sim, name) in [(&trx, "trx"), (&pair, "pair")] {
        let k = &sim.counters;
        let d = k.connections.load(Relaxed).saturating_sub(1);
        eprintln!("{name}: submits {} distinct {} throttled {} connections {} receipts sent {} acked {}", k.submits.load(Relaxed), k.distinct.load(Relaxed), k.throttled.load(Relaxed), d + 1, k.receipts.load(Relaxed), k.receipt_acks.load(Relaxed));
        assert!(d >= 2, "{name}: the SMSC should have dropped the link several times");
        assert!(k.throttled.load(Relaxed) > 0, "{name}: no throttling happened");
        submits += k.submits.load(Relaxed);
        throttled += k.throttled.load(Relaxed);
        distinct += k.distinct.load(Relaxed);
        drops += d;
    }
    let again = (submits - throttled).saturating_sub(total as u64);
    assert!(distinct >= total as u64, "every message reached an SMSC");
    assert!(again <= drops * WINDOW as u64, "{again} sent twice over {drops} drops (window {WINDOW})");
    for l in c["connectors"].as_array().unwrap() {
        assert_eq!(l["inflight"], 0, "{l}");
        assert_eq!(l["degraded"], false, "{l}");
    }
    eprintln!("{total} messages delivered in {took:?} ({:.0}/s), {again} sent twice", total as f64 / took.as_secs_f64());
}
