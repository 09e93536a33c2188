//! Message lifecycle end to end over real HTTP, a real RocksDB outbox and the sandbox carrier.

mod common;
use common::*;
use serde_json::json;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_to_sandbox_to_delivered_with_full_history() {
    let g = gateway(SANDBOX).await;
    let (s, v) = g.post("/v1/messages", json!({"to": "+447400123123", "from": "Postern", "text": "hello", "client_ref": "r1", "metadata": {"k": 1}})).await;
    assert_eq!(s, 202, "{v}");
    let m = &v["messages"][0];
    assert_eq!(m["state"], "queued");
    assert_eq!(m["segments"], 1);
    assert_eq!(m["to"], "+447400123123");
    let id = m["id"].as_str().unwrap();
    let v = g.wait_state(id, "delivered", 10).await;
    assert_eq!(states(&v), ["queued", "sending", "submitted", "delivered"]);
    assert_eq!(v["attempts"], 1);
    assert_eq!(v["connector"], "sb");
    assert_eq!(v["remote_ids"].as_array().unwrap().len(), 1);
    assert_eq!(v["client_ref"], "r1");
    assert_eq!(v["metadata"]["k"], 1);
    assert!(v["error"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_recipients_and_multipart_receipts() {
    let g = gateway(SANDBOX).await;
    let long = "x".repeat(200); // 2 segments
    let (s, v) = g
        .post(
            "/v1/messages",
            json!({"to": ["+447400123001", "+447400123002", "12"], "text": long}),
        )
        .await;
    assert_eq!(s, 202, "{v}");
    assert_eq!(v["messages"].as_array().unwrap().len(), 2);
    assert_eq!(v["rejected"][0]["to"], "12");
    assert_eq!(v["rejected"][0]["error"]["code"], "invalid_destination");
    for m in v["messages"].as_array().unwrap() {
        assert_eq!(m["segments"], 2);
        let d = g
            .wait_state(m["id"].as_str().unwrap(), "delivered", 10)
            .await;
        assert_eq!(
            d["remote_ids"].as_array().unwrap().len(),
            2,
            "one receipt per part, all matched"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_send_fires_at_its_time() {
    let g = gateway(SANDBOX).await;
    let at = postern::model::now_ms() + 1500;
    let (s, v) = g.post("/v1/messages", json!({"to": "+447400123123", "text": "later", "send_at": postern::time::rfc3339(at)})).await;
    assert_eq!(s, 202, "{v}");
    assert_eq!(v["messages"][0]["state"], "scheduled");
    let id = v["messages"][0]["id"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let (_, now) = g.get(&format!("/v1/messages/{id}")).await;
    assert_eq!(now["state"], "scheduled", "must not fire early");
    let v = g.wait_state(&id, "delivered", 10).await;
    let sending = v["history"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["state"] == "sending")
        .unwrap();
    let sent_at = postern::time::parse_rfc3339(sending["at"].as_str().unwrap()).unwrap();
    assert!(sent_at >= at, "sent at {sent_at}, scheduled {at}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_before_handoff_and_conflict_after() {
    let g = gateway(SANDBOX).await;
    let at = postern::model::now_ms() + 60_000;
    let id = g.send(json!({"to": "+447400123123", "text": "x", "send_at": postern::time::rfc3339(at)})).await;
    let r = g
        .http
        .delete(format!("{}/v1/messages/{id}", g.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["state"], "canceled");
    let r = g
        .http
        .delete(format!("{}/v1/messages/{id}", g.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    let e: serde_json::Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "not_cancelable");
    // a delivered message cannot be canceled either
    let id2 = g.send(json!({"to": "+447400123124", "text": "y"})).await;
    g.wait_state(&id2, "delivered", 10).await;
    let r = g
        .http
        .delete(format!("{}/v1/messages/{id2}", g.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    let r = g
        .http
        .delete(format!("{}/v1/messages/0000000000000", g.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let (_, c) = g.get(&format!("/v1/messages/{id}")).await;
    assert_eq!(c["state"], "canceled");
    assert_eq!(c["attempts"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_with_backoff_after_temp_fail() {
    let g = gateway("[connectors.sb]\ntype = \"sandbox\"\ndlr_delay_ms = 10\ntemp_fail_first = 2\n[[routes]]\nto = [\"sb\"]\n").await;
    let id = g
        .send(json!({"to": "+447400123123", "text": "retry me"}))
        .await;
    let v = g.wait_state(&id, "delivered", 10).await;
    assert_eq!(v["attempts"], 3);
    assert_eq!(
        states(&v),
        [
            "queued",
            "sending",
            "queued",
            "sending",
            "queued",
            "sending",
            "submitted",
            "delivered"
        ]
    );
    // backoff: 50 ms then 100 ms between attempts (jitter off in tests)
    let at = |i: usize| {
        postern::time::parse_rfc3339(v["history"][i]["at"].as_str().unwrap()).unwrap()
    };
    assert!(
        at(3) - at(2) >= 45,
        "first retry waited {} ms",
        at(3) - at(2)
    );
    assert!(
        at(5) - at(4) >= 95,
        "second retry waited {} ms",
        at(5) - at(4)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_exhausted_fail_and_permanent_errors_fail_at_once() {
    let g = Scenario::new()
        .retry("max_attempts = 2")
        .sandbox("sb", &["temp_fail_first = 5", "reject_prefixes = [\"+1202555\"]"])
        .route(&["sb"], &[])
        .start()
        .await;
    let id = g.send(json!({"to": "+447400123123", "text": "x"})).await;
    let v = g.wait_state(&id, "failed", 10).await;
    assert_eq!(v["attempts"], 2);
    assert_eq!(v["error"]["code"], "temporary");
    let id = g.send(json!({"to": "+12025550123", "text": "x"})).await;
    let v = g.wait_state(&id, "failed", 10).await;
    assert_eq!(v["attempts"], 1);
    assert_eq!(v["error"]["code"], "rejected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_when_no_connector_can_take_it() {
    let g =
        gateway("[connectors.sb]\ntype = \"sandbox\"\ndown = true\n[[routes]]\nto = [\"sb\"]\n")
            .await;
    let id = g
        .send(json!({"to": "+447400123123", "text": "x", "validity": 1}))
        .await;
    let v = g.wait_state(&id, "expired", 10).await;
    assert_eq!(v["attempts"], 0, "waiting for a link spends no attempt");
    assert_eq!(v["error"]["code"], "expired");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_to_second_connector_when_first_is_down() {
    let g = gateway(
        "[connectors.a]\ntype = \"sandbox\"\ndown = true\n[connectors.b]\ntype = \"sandbox\"\ndlr_delay_ms = 10\n[[routes]]\nto = [\"a\", \"b\"]\nstrategy = \"failover\"\n",
    )
    .await;
    let id = g.send(json!({"to": "+447400123123", "text": "x"})).await;
    let v = g.wait_state(&id, "delivered", 10).await;
    assert_eq!(v["connector"], "b");
    // when "a" comes back it is preferred again
    g.gw.hub.link("a").unwrap().connector.set_down(false);
    let id = g.send(json!({"to": "+447400123123", "text": "y"})).await;
    let v = g.wait_state(&id, "delivered", 10).await;
    assert_eq!(v["connector"], "a");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_by_prefix_and_round_robin() {
    let g = gateway(
        "[connectors.uk]\ntype = \"sandbox\"\ndlr_delay_ms = 5\n[connectors.r1]\ntype = \"sandbox\"\ndlr_delay_ms = 5\n[connectors.r2]\ntype = \"sandbox\"\ndlr_delay_ms = 5\n\
         [[routes]]\nmatch = { prefix = [\"+44\"] }\nto = [\"uk\"]\n[[routes]]\nto = [\"r1\", \"r2\"]\nstrategy = \"round_robin\"\n",
    )
    .await;
    let id = g.send(json!({"to": "+447400123123", "text": "x"})).await;
    assert_eq!(g.wait_state(&id, "delivered", 10).await["connector"], "uk");
    let mut seen = std::collections::HashSet::new();
    for i in 0..6 {
        let id = g
            .send(json!({"to": format!("+3361234567{i}"), "text": "x"}))
            .await;
        seen.insert(
            g.wait_state(&id, "delivered", 10).await["connector"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    assert_eq!(seen.len(), 2, "round robin used both: {seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undelivered_receipts_and_listing() {
    let g = gateway("[connectors.sb]\ntype = \"sandbox\"\ndlr_delay_ms = 5\nundelivered_share = 1.0\n[[routes]]\nto = [\"sb\"]\n").await;
    let id = g.send(json!({"to": "+447400123123", "text": "x"})).await;
    let v = g.wait_state(&id, "undelivered", 10).await;
    assert_eq!(v["error"]["code"], "network_error");
    let (s, l) = g.get("/v1/messages?state=undelivered&limit=10").await;
    assert_eq!(s, 200);
    assert_eq!(l["messages"][0]["id"], id.as_str());
    let (s, l) = g.get("/v1/messages?state=delivered").await;
    assert_eq!(s, 200);
    assert!(l["messages"].as_array().unwrap().is_empty());
    let (s, _) = g.get("/v1/messages?state=bogus").await;
    assert_eq!(s, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_messages_are_stored_and_listed() {
    use postern::connector::{HubSink, InboundMessage};
    let g = gateway(SANDBOX).await;
    let hub: std::sync::Arc<dyn HubSink> = g.gw.hub.clone();
    let id = hub
        .receive(InboundMessage {
            connector: "sb".into(),
            from: "+447400123999".into(),
            to: "12345".into(),
            body: postern::model::Body::Text("hi there".into()),
            metadata: None,
            dest_port: None,
            dedup_id: None,
        })
        .await
        .unwrap();
    // A WBXML XForms submission in an 8-bit SMS is decoded into structured fields.
    let form = hex::decode(common::WBXML_FORM).unwrap();
    let form_id = hub
        .receive(InboundMessage {
            connector: "sb".into(),
            from: "+447400123998".into(),
            to: "12345".into(),
            body: postern::model::Body::Binary {
                data: form,
                data_coding: 4,
            },
            metadata: None,
            dest_port: None,
            dedup_id: None,
        })
        .await
        .unwrap();
    let (_, f) = g.get(&format!("/v1/messages/{form_id}")).await;
    assert_eq!(f["metadata"]["xform"]["form_id"], "household");
    assert_eq!(f["metadata"]["xform"]["fields"]["name"], "Amina");
    let (s, l) = g.get("/v1/messages?direction=inbound").await;
    assert_eq!(s, 200);
    assert_eq!(l["messages"].as_array().unwrap().len(), 2);
    assert_eq!(l["messages"][1]["id"], id.to_string());
    assert_eq!(l["messages"][1]["text"], "hi there");
    assert_eq!(l["messages"][1]["state"], "received");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_callbacks_are_signed_and_retried() {
    std::env::set_var("TEST_CB_SECRET", "topsecret");
    let sink = HttpSink::start(1).await; // the first callback fails: it must be retried
    let g = gateway_full("callback_secret_env = \"TEST_CB_SECRET\"", SANDBOX).await;
    let id = g
        .send(json!({"to": "+447400123123", "text": "cb", "callback_url": sink.url("/status")}))
        .await;
    g.wait_state(&id, "delivered", 10).await;
    // sending, submitted, delivered (+1 retry of the first)
    let seen = sink.wait_for(4, 15).await;
    let mut states_seen = Vec::new();
    for r in &seen {
        assert_eq!(r.method, "POST");
        let sig = r.header("x-postern-signature").unwrap();
        assert_eq!(
            sig,
            format!(
                "sha256={}",
                postern::connector::http::sign(b"topsecret", &r.body)
            )
        );
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["id"], id.as_str());
        states_seen.push(v["state"].as_str().unwrap().to_string());
    }
    for s in ["sending", "submitted", "delivered"] {
        assert!(states_seen.iter().any(|x| x == s), "{states_seen:?}");
    }
}

/// More callbacks than the worker keeps in flight (256), with receipts at once: every status
/// callback of every message arrives exactly once (none lost while a bookkeeping write runs,
/// none sent twice because a scan saw an event whose delete was not yet committed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_status_callbacks_all_arrive_once() {
    const N: usize = 700;
    let sink = HttpSink::start(0).await;
    let g = Scenario::new()
        .sandbox("sb", &["window = 1024", "dlr_delay_ms = 0"])
        .route(&["sb"], &[])
        .start()
        .await;
    let url = sink.url("/status");
    for chunk in 0..N / 100 {
        let items: Vec<_> = (0..100)
            .map(|i| json!({"to": format!("+4474001{:05}", chunk * 100 + i), "text": "cb", "callback_url": url}))
            .collect();
        let (s, v) = g.post("/v1/messages/batch", json!({"messages": items})).await;
        assert_eq!(s, 202, "{v}");
        assert_eq!(v["accepted"], 100, "{v}");
    }
    sink.wait_for(3 * N, 60).await;
    tokio::time::sleep(Duration::from_millis(1500)).await; // any duplicate would arrive by now
    let seen = sink.requests();
    let mut count: std::collections::HashMap<(String, String), usize> = Default::default();
    for r in &seen {
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        *count
            .entry((v["id"].as_str().unwrap().to_string(), v["state"].as_str().unwrap().to_string()))
            .or_default() += 1;
    }
    assert_eq!(seen.len(), 3 * N, "callbacks: {} of {}", seen.len(), 3 * N);
    let ids: std::collections::HashSet<_> = count.keys().map(|(id, _)| id.clone()).collect();
    assert_eq!(ids.len(), N);
    for id in &ids {
        for st in ["sending", "submitted", "delivered"] {
            assert_eq!(count.get(&(id.clone(), st.to_string())), Some(&1), "{id} {st}");
        }
    }
}

/// The literal-tag XForms instance from the WBXML conformance vectors (wbxml-053).

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saturated_outbox_answers_429_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = postern::config::Config::from_toml(&format!(
        "[outbox]\npath = {:?}\nmax_depth = 3\n[api]\nlisten = \"127.0.0.1:0\"\n[connectors.sb]\ntype = \"sandbox\"\ndown = true\n[[routes]]\nto = [\"sb\"]\n",
        dir.path().display().to_string()
    ))
    .unwrap();
    let gw = postern::app::Gateway::start(cfg).await.unwrap();
    let http = reqwest::Client::new();
    let url = format!("http://{}/v1/messages", gw.api_addr);
    for i in 0..3 {
        let r = http
            .post(&url)
            .json(&json!({"to": format!("+44740012312{i}"), "text": "x"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
    }
    let r = http
        .post(&url)
        .json(&json!({"to": "+447400123129", "text": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "5");
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "outbox_full");
    assert_eq!(gw.hub.outbox.depth(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_route_spreads_by_weight() {
    let g = gateway(
        "[connectors.big]\ntype = \"sandbox\"\ndlr_delay_ms = 5\n[connectors.small]\ntype = \"sandbox\"\ndlr_delay_ms = 5\n\
         [[routes]]\nto = [\"big\", \"small\"]\nstrategy = \"weighted\"\nweights = [3, 1]\n",
    )
    .await;
    let mut ids = Vec::new();
    for i in 0..80 {
        ids.push(
            g.send(json!({"to": format!("+3361234{i:04}"), "text": "w"}))
                .await,
        );
    }
    let mut big = 0;
    for id in &ids {
        if g.wait_state(id, "delivered", 10).await["connector"] == "big" {
            big += 1;
        }
    }
    assert!(
        (45..=75).contains(&big),
        "{big} of 80 went to the weight-3 connector"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_the_shard_count_keeps_every_queued_message() {
    use postern::model::IdGen;
    use postern::outbox::{Changes, Outbox};
    let dir = tempfile::tempdir().unwrap();
    let cfg = |shards: u32| {
        postern::config::Config::from_toml(&format!("[outbox]\npath = {:?}\nshards = {shards}\n{SANDBOX}", dir.path().display().to_string())).unwrap().outbox
    };
    let ids = IdGen::default();
    {
        let ob = Outbox::open(&cfg(4)).unwrap();
        for _ in 0..40 {
            let id = ids.next();
            let s = id.shard(4);
            let mut c = Changes::new();
            c.schedule(s, 1_000, id);
            ob.write(s, c, vec![], 1).await.unwrap();
        }
    }
    for n in [4, 1, 3] {
        let ob = Outbox::open(&cfg(n)).unwrap();
        assert_eq!(ob.shards().len(), n as usize);
        assert_eq!(ob.depth(), 40, "with {n} shards");
    }
}

/// Far more messages than the ready queue holds, with retries and scheduled sends mixed in:
/// the dispatcher refills from the schedule, resuming where its last scan stopped, and every
/// entry written behind that point (a commit that landed late, a retry, a schedule) is still
/// found. Every message ends `delivered` exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backlog_beyond_the_ready_queue_is_all_delivered() {
    let g = Scenario::new()
        .outbox("ready_queue = 16")
        .sandbox("sb", &["window = 8", "dlr_delay_ms = 10", "temp_fail_share = 0.2"])
        .route(&["sb"], &[])
        .start()
        .await;
    let soon = postern::time::rfc3339(postern::model::now_ms() + 400);
    let mut sends = Vec::new();
    for b in 0..16 {
        let g = &g;
        let soon = soon.clone();
        sends.push(async move {
            let messages: Vec<_> = (0..60)
                .map(|i| {
                    let mut m = json!({"to": format!("+4474001{:02}{:03}", b, i), "text": format!("m{b}-{i}")});
                    if i % 10 == 0 {
                        m["send_at"] = json!(soon);
                    }
                    m
                })
                .collect();
            let (s, v) = g.post("/v1/messages/batch", json!({ "messages": messages })).await;
            assert_eq!(s, 202, "{v}");
            v["results"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["messages"][0]["id"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        });
    }
    let ids: Vec<String> = futures::future::join_all(sends).await.into_iter().flatten().collect();
    assert_eq!(ids.len(), 960);
    for id in &ids {
        let v = g.wait_state(id, "delivered", 60).await;
        let states = states(&v);
        assert_eq!(states.iter().filter(|s| *s == "delivered").count(), 1, "{v}");
        assert_eq!(states.iter().filter(|s| *s == "submitted").count(), 1, "{v}");
    }
}
