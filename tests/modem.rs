//! Modem banks end to end: the gateway drives simulated modems (`postern modem-sim`'s engine)
//! on real pseudo-terminals through tokio-serial.

mod common;

use common::{gateway_full, TestGateway};
use postern::connector::modem::hwdb::{Hwdb, Profile};
use postern::sim::modem::{Hang, SimModem, SimSettings};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

fn sim(profile: Profile, n: u32, link: &Path) -> SimModem {
    let mut s = SimSettings::new(profile, n);
    s.dlr_delay = Duration::from_millis(30);
    SimModem::start(s, Some(link)).unwrap()
}

/// A bank over `dir/modem*` with fast timeouts, and a catch-all route to it.
fn bank(dir: &Path, extra: &str) -> String {
    let defaults = ["rate_per_min = 0", "rescan_s = 1", "health_s = 2", "poll_s = 1", "command_timeout_ms = 800", "prompt_timeout_ms = 800", "send_timeout_ms = 3000", "registration_timeout_s = 10", "window = 64"];
    let keys: Vec<&str> = extra.lines().filter_map(|l| l.split('=').next()).map(str::trim).collect();
    let kept: Vec<&str> = defaults.into_iter().filter(|d| !keys.contains(&d.split('=').next().unwrap().trim())).collect();
    format!("[connectors.bank]\ntype = \"modem\"\ndevices = [\"{}/modem*\"]\n{}\n{extra}\n[[routes]]\nto = [\"bank\"]\n", dir.display(), kept.join("\n"))
}

async fn modems(g: &TestGateway) -> Vec<Value> {
    let (_, v) = g.get("/v1/connectors").await;
    v["connectors"][0]["detail"]["modems"].as_array().cloned().unwrap_or_default()
}

async fn wait_ready(g: &TestGateway, n: usize, secs: u64) -> Vec<Value> {
    let until = Instant::now() + Duration::from_secs(secs);
    loop {
        let m = modems(g).await;
        if m.iter().filter(|x| x["state"] == "ready").count() >= n {
            return m;
        }
        assert!(Instant::now() < until, "modems not ready: {m:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn send_batch(g: &TestGateway, msgs: Vec<Value>) -> Vec<String> {
    let mut ids = Vec::new();
    for chunk in msgs.chunks(500) {
        let (st, v) = g.post("/v1/messages/batch", json!({"messages": chunk})).await;
        assert!(st < 300, "{st} {v}");
        for r in v["results"].as_array().unwrap() {
            for m in r["messages"].as_array().unwrap() {
                ids.push(m["id"].as_str().unwrap().to_string());
            }
        }
    }
    ids
}

/// Every message final (or `until` passes): id -> message JSON.
async fn finals(g: &TestGateway, ids: &[String], secs: u64) -> HashMap<String, Value> {
    let until = Instant::now() + Duration::from_secs(secs);
    let mut done = HashMap::new();
    loop {
        for id in ids {
            if done.contains_key(id) {
                continue;
            }
            let (_, v) = g.get(&format!("/v1/messages/{id}")).await;
            if matches!(v["state"].as_str(), Some("delivered" | "undelivered" | "failed" | "expired")) {
                done.insert(id.clone(), v);
            }
        }
        if done.len() == ids.len() || Instant::now() > until {
            return done;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bank_of_four_delivers_1000_with_a_hung_modem_and_a_rejecting_one() {
    let dir = tempfile::tempdir().unwrap();
    let sims: Vec<SimModem> = (0..4).map(|i| sim(Profile::generic(), i, &dir.path().join(format!("modem{i}")))).collect();
    // Modem 3 rejects one number permanently (unassigned number, CMS 21).
    sims[3].fail_destination("+447400123999", 21);
    let g = gateway_full("max_batch = 1000", &bank(dir.path(), "")).await;
    wait_ready(&g, 4, 20).await;

    let mut msgs = Vec::new();
    for i in 0..1000 {
        let to = if i % 50 == 7 { "+447400123999".to_string() } else { format!("+4474001{:05}", i) };
        msgs.push(json!({"to": to, "text": format!("bank test {i}")}));
    }
    // Modem 2 hangs once it has sent 60 messages.
    let hung = sims[2].clone();
    let hanger = tokio::spawn(async move {
        let until = Instant::now() + Duration::from_secs(60);
        while hung.sent().len() < 60 && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        hung.hang(Hang::Now);
    });
    let ids = send_batch(&g, msgs).await;
    assert_eq!(ids.len(), 1000);
    let done = finals(&g, &ids, 120).await;
    hanger.await.unwrap();
    for id in ids.iter().filter(|i| !done.contains_key(*i)).take(5) {
        let (_, v) = g.get(&format!("/v1/messages/{id}")).await;
        eprintln!("not final: {v}");
    }
    assert_eq!(done.len(), 1000, "not final: {}", 1000 - done.len());

    // What reached the network: each text exactly once, across all modems.
    let mut seen: HashMap<String, usize> = HashMap::new();
    for s in &sims {
        for m in s.sent() {
            *seen.entry(m.text.clone().unwrap_or_default()).or_default() += 1;
        }
    }
    let mut failed = 0;
    for (i, id) in ids.iter().enumerate() {
        let v = &done[id];
        let text = format!("bank test {i}");
        match v["state"].as_str().unwrap() {
            "delivered" => assert_eq!(seen.get(&text), Some(&1), "{text} sent {:?} times", seen.get(&text)),
            "failed" => {
                failed += 1;
                assert_eq!(v["to"], "+447400123999", "{v}");
                assert_eq!(v["error"]["code"], "cms_21", "{v}");
                assert_eq!(seen.get(&text), None);
            }
            other => panic!("message {i} ended {other}: {v}"),
        }
    }
    // Only modem 3 rejects the number: some of the 20 went there, the rest were delivered.
    assert!(failed <= 20);
    assert!(sims[2].resets() >= 1, "the hung modem was not reset");
    let m = modems(&g).await;
    let resets: u64 = m.iter().map(|x| x["resets"].as_u64().unwrap()).sum();
    assert!(resets >= 1, "{m:#?}");
    // The hung modem came back and every modem sent some.
    wait_ready(&g, 4, 30).await;
    for (i, s) in sims.iter().enumerate() {
        assert!(!s.sent().is_empty(), "modem {i} sent nothing");
    }
    let metrics = g.http.get(format!("{}/metrics", g.base)).send().await.unwrap().text().await.unwrap();
    for name in ["postern_modem_signal_dbm", "postern_modem_registered", "postern_modem_sent_total", "postern_modem_resets_total", "postern_modem_queue_depth"] {
        assert!(metrics.contains(name), "{name} missing");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_mo_with_a_lost_notification_is_caught_by_the_poll() {
    let dir = tempfile::tempdir().unwrap();
    let s = sim(Profile::generic(), 0, &dir.path().join("modem0"));
    let g = gateway_full("", &bank(dir.path(), "")).await;
    wait_ready(&g, 1, 20).await;
    let text: String = (0..400).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
    // Part 2 of 3 is stored without its +CMTI: only the AT+CMGL poll finds it.
    let idx = s.inject_text("+447400123123", &text, 42, &[2]).unwrap();
    assert_eq!(idx.len(), 3);
    // And a WBXML form to the WAP Push port.
    // And a WBXML XForm (141 octets: two parts) to the WAP Push port.
    let form = hex::decode(common::WBXML_FORM).unwrap();
    assert_eq!(s.inject_binary("+447400123124", &form, Some(2948), 7).unwrap().len(), 2);
    let until = Instant::now() + Duration::from_secs(20);
    let inbound = loop {
        let (_, v) = g.get("/v1/messages?direction=inbound").await;
        let list = v["messages"].as_array().cloned().unwrap_or_default();
        if list.len() >= 2 || Instant::now() > until {
            break list;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let long = inbound.iter().find(|m| m["from"] == "+447400123123").unwrap_or_else(|| panic!("{inbound:#?}"));
    assert_eq!(long["text"], text.as_str());
    assert_eq!(long["state"], "received");
    let bin = inbound.iter().find(|m| m["from"] == "+447400123124").unwrap_or_else(|| panic!("{inbound:#?}"));
    assert_eq!(bin["metadata"]["xform"]["form_id"], "household", "{bin}");
    assert_eq!(bin["metadata"]["xform"]["fields"]["name"], "Amina", "{bin}");
    // Stored in the hub, then deleted from the SIM.
    let until = Instant::now() + Duration::from_secs(5);
    while s.stored() > 0 && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(s.stored(), 0);
    assert_eq!(inbound.len(), 2, "{inbound:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hwdb_profile_initialises_against_its_simulation_and_sends() {
    let db = Hwdb::embedded();
    let dir = tempfile::tempdir().unwrap();
    let mut sims = Vec::new();
    for (i, p) in db.entries.iter().enumerate() {
        let mut s = SimSettings::new(p.clone(), i as u32);
        s.dlr_delay = Duration::from_millis(30);
        s.flood_every = Duration::from_millis(50);
        sims.push(SimModem::start(s, Some(&dir.path().join(format!("modem{i:02}")))).unwrap());
    }
    let g = gateway_full("", &bank(dir.path(), "command_timeout_ms = 2000\nprompt_timeout_ms = 2000")).await;
    let m = wait_ready(&g, db.entries.len(), 60).await;
    for (i, p) in db.entries.iter().enumerate() {
        let name = format!("modem{i:02}");
        let st = m.iter().find(|x| x["path"].as_str().unwrap().ends_with(&name)).unwrap();
        assert_eq!(st["profile"], p.id.as_str(), "{st}");
        assert_eq!(st["matched_by"], "at", "{st}");
        assert_eq!(st["state"], "ready", "{st}");
        assert!(st["signal_dbm"].as_i64().is_some(), "{st}");
    }
    // Round-robin over the bank: every modem sends one and gets its status report.
    let ids = send_batch(&g, (0..db.entries.len() * 2).map(|i| json!({"to": format!("+4474001{i:05}"), "text": format!("profile test {i}")})).collect()).await;
    let done = finals(&g, &ids, 60).await;
    for id in ids.iter().filter(|i| !done.contains_key(*i)) {
        let (_, v) = g.get(&format!("/v1/messages/{id}")).await;
        eprintln!("not final: {v}");
    }
    let delivered = done.values().filter(|v| v["state"] == "delivered").count();
    assert_eq!(delivered, ids.len(), "{:#?}", done.values().filter(|v| v["state"] != "delivered").collect::<Vec<_>>());
    for (i, s) in sims.iter().enumerate() {
        assert!(!s.sent().is_empty(), "{} sent nothing", db.entries[i].id);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_timeout_is_unknown_and_not_resent_then_the_modem_is_reset() {
    let dir = tempfile::tempdir().unwrap();
    let s = sim(Profile::generic(), 0, &dir.path().join("modem0"));
    let g = gateway_full("", &bank(dir.path(), "send_timeout_ms = 1000")).await;
    wait_ready(&g, 1, 20).await;
    s.hang(Hang::AfterPdu);
    let id = g.send(json!({"to": "+447400123001", "text": "maybe sent"})).await;
    let until = Instant::now() + Duration::from_secs(20);
    let v = loop {
        let (_, v) = g.get(&format!("/v1/messages/{id}")).await;
        if v["error"]["code"] == "send_timeout" || Instant::now() > until {
            break v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(v["state"], "submitted", "{v}");
    assert_eq!(v["error"]["code"], "send_timeout", "{v}");
    // The modem is reset and comes back; the message is not sent again.
    let until = Instant::now() + Duration::from_secs(20);
    while s.resets() == 0 && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(s.resets() >= 1);
    wait_ready(&g, 1, 20).await;
    let id2 = g.send(json!({"to": "+447400123002", "text": "after reset"})).await;
    g.wait_state(&id2, "delivered", 20).await;
    let texts: Vec<String> = s.sent().iter().filter_map(|m| m.text.clone()).collect();
    assert_eq!(texts, vec!["maybe sent".to_string(), "after reset".to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pin_is_entered_once_and_a_wrong_pin_is_never_retried() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = SimSettings::new(Profile::generic(), 0);
    a.pin = Some("1234".into());
    let good = SimModem::start(a, Some(&dir.path().join("modem0"))).unwrap();
    // SAFETY: a variable only this test reads, set before the gateway starts.
    std::env::set_var("POSTERN_TEST_PIN_A", "1234");
    let g = gateway_full("", &bank(dir.path(), "pin_env = \"POSTERN_TEST_PIN_A\"")).await;
    wait_ready(&g, 1, 20).await;
    let id = g.send(json!({"to": "+447400123001", "text": "with pin"})).await;
    g.wait_state(&id, "delivered", 20).await;
    drop(good);

    let dir2 = tempfile::tempdir().unwrap();
    let mut b = SimSettings::new(Profile::generic(), 1);
    b.pin = Some("1234".into());
    let bad = SimModem::start(b, Some(&dir2.path().join("modem0"))).unwrap();
    std::env::set_var("POSTERN_TEST_PIN_B", "9999");
    let g2 = gateway_full("", &bank(dir2.path(), "pin_env = \"POSTERN_TEST_PIN_B\"")).await;
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let m = modems(&g2).await;
        if m.first().is_some_and(|x| x["state"] == "failed") {
            assert!(m[0]["last_error"].as_str().unwrap().contains("PIN rejected"), "{m:#?}");
            assert!(!m[0]["last_error"].as_str().unwrap().contains("9999"), "the PIN leaked");
            break;
        }
        assert!(Instant::now() < until, "{m:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let before = bad.commands();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // Out of service: no more PIN attempts (nor anything else).
    assert_eq!(bad.commands(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_plug_adds_and_removes_modems_and_the_daily_cap_holds() {
    let dir = tempfile::tempdir().unwrap();
    let a = sim(Profile::generic(), 0, &dir.path().join("modem0"));
    let g = gateway_full("", &bank(dir.path(), "daily_cap = 3")).await;
    wait_ready(&g, 1, 20).await;
    let b = sim(Profile::generic(), 1, &dir.path().join("modem1"));
    wait_ready(&g, 2, 20).await;
    // Unplug the first: the bank keeps going on the second.
    a.unplug();
    let until = Instant::now() + Duration::from_secs(20);
    while modems(&g).await.len() != 1 {
        assert!(Instant::now() < until, "{:#?}", modems(&g).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ids = send_batch(&g, (0..5).map(|i| json!({"to": format!("+4474001230{i:02}"), "text": format!("cap {i}")})).collect()).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    // Three went out (the cap of the remaining SIM); two wait in the outbox.
    assert_eq!(b.sent().len(), 3);
    let mut states = Vec::new();
    for id in &ids {
        let (_, v) = g.get(&format!("/v1/messages/{id}")).await;
        states.push(v["state"].as_str().unwrap().to_string());
    }
    assert_eq!(states.iter().filter(|s| *s == "queued").count(), 2, "{states:?}");
    let m = modems(&g).await;
    assert_eq!(m[0]["sent_today"], 3);
    let counts = g.dir.path().join("modems/bank");
    assert!(std::fs::read_dir(&counts).unwrap().count() >= 1, "daily counts are not kept on disk");
}

#[tokio::test]
async fn transcript_replay_drives_the_engine_byte_for_byte() {
    use postern::connector::modem::at::AtParser;
    use postern::connector::modem::engine::AtPort;
    use postern::sim::modem::{parse_transcript, replay};
    // A Huawei-style exchange: \r\r\n endings, a ^RSSI inside the answer, a prompt without a
    // space, COMMAND NOT SUPPORT.
    let t = parse_transcript(
        "# huawei-like\n> AT+CSQ\n<< \\r\\n^RSSI: 17\\r\\r\\n\\r\\n+CSQ: 17,99\\r\\r\\n\\r\\nOK\\r\\r\\n\n> AT+CMGS=13\n<< \\r\\n>\\r\\n\n> 0001000B914474001231F1000000\n< +CMGS: 5\n< OK\n> AT^GETPORTMODE\n< COMMAND NOT SUPPORT\n",
    )
    .unwrap();
    let (path, task) = replay(t, None).await.unwrap();
    let stream = tokio_serial::SerialStream::open(&tokio_serial::new(path.to_string_lossy(), 115200)).unwrap();
    let mut port = AtPort::new(stream, AtParser::new(&["^RSSI:"], &["COMMAND NOT SUPPORT"]));
    let l = port.command("AT+CSQ", Duration::from_secs(5)).await.unwrap();
    assert_eq!(l, vec!["+CSQ: 17,99"]);
    assert_eq!(port.take_urc().unwrap().line, "^RSSI: 17");
    let pdu = hex::decode("0001000B914474001231F1000000").unwrap();
    let l = port.send_pdu(13, &pdu, Duration::from_secs(5), Duration::from_secs(5)).await.unwrap();
    assert_eq!(l, vec!["+CMGS: 5"]);
    let e = port.command("AT^GETPORTMODE", Duration::from_secs(5)).await.unwrap_err();
    assert!(e.to_string().contains("COMMAND NOT SUPPORT"), "{e}");
    task.await.unwrap().unwrap();

    // A driver that sends something else is caught.
    let (path, task) = replay(parse_transcript("> AT+CSQ\n< OK\n").unwrap(), None).await.unwrap();
    let stream = tokio_serial::SerialStream::open(&tokio_serial::new(path.to_string_lossy(), 115200)).unwrap();
    let mut port = AtPort::new(stream, AtParser::default());
    let _ = port.command("AT+CREG?", Duration::from_millis(300)).await;
    assert!(task.await.unwrap().unwrap_err().contains("expected \"AT+CSQ\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_cmt_and_cds_with_an_extra_hwdb_entry() {
    // An entry from `hwdb_dir`: indications routed straight to us (+CMT, +CDS: mt=2, ds=1).
    let hw = tempfile::tempdir().unwrap();
    let ec25 = Hwdb::embedded().get("quectel-ec25").unwrap().clone();
    let mut p = ec25.clone();
    p.id = "test-direct".into();
    p.usb.clear();
    p.identify.cgmi = vec!["Postern Labs".into()];
    p.identify.cgmm = vec!["DirectSim".into()];
    p.sms.cnmi = "2,2,0,1,0".into();
    p.quirks.retain(|q| q != "cdsi-wrong-storage");
    std::fs::write(hw.path().join("test-direct.toml"), toml::to_string(&p).unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let s = sim(p.clone(), 0, &dir.path().join("modem0"));
    let g = gateway_full("", &bank(dir.path(), &format!("hwdb_dir = {:?}", hw.path().display().to_string()))).await;
    let m = wait_ready(&g, 1, 20).await;
    assert_eq!(m[0]["profile"], "test-direct", "{m:#?}");
    let id = g.send(json!({"to": "+447400123001", "text": "direct report"})).await;
    g.wait_state(&id, "delivered", 20).await;
    s.inject_text("+447400123555", "routed to us", 3, &[]).unwrap();
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, v) = g.get("/v1/messages?direction=inbound").await;
        if v["messages"].as_array().is_some_and(|l| l.iter().any(|x| x["text"] == "routed to us")) {
            break;
        }
        assert!(Instant::now() < until, "{v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Nothing was stored in the SIM: +CMT is not stored.
    assert_eq!(s.stored(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_prefix_strategy_picks_the_sim_of_the_destination_network() {
    let dir = tempfile::tempdir().unwrap();
    let uk = sim(Profile::generic(), 0, &dir.path().join("modem0"));
    let mut fr = SimSettings::new(Profile::generic(), 1);
    fr.imsi = "208011234567890".into();
    fr.dlr_delay = Duration::from_millis(30);
    let fr = SimModem::start(fr, Some(&dir.path().join("modem1"))).unwrap();
    let cfg = bank(dir.path(), "strategy = \"operator_prefix\"\n[connectors.bank.operators]\n\"20801\" = [\"+336\"]\n\"23410\" = [\"+447\"]");
    let g = gateway_full("", &cfg).await;
    wait_ready(&g, 2, 20).await;
    let mut msgs = Vec::new();
    for i in 0..10 {
        msgs.push(json!({"to": format!("+3361234{i:04}"), "text": format!("fr {i}")}));
        msgs.push(json!({"to": format!("+4474001{i:05}"), "text": format!("uk {i}")}));
    }
    let ids = send_batch(&g, msgs).await;
    let done = finals(&g, &ids, 30).await;
    assert_eq!(done.len(), 20);
    assert!(fr.sent().iter().all(|m| m.to.starts_with("+336")), "{:?}", fr.sent());
    assert!(uk.sent().iter().all(|m| m.to.starts_with("+447")), "{:?}", uk.sent());
    assert_eq!(fr.sent().len(), 10);
}
