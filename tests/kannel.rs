//! Kannel-compatible sendsms with a real HTTP client: multiple recipients, charsets, codings,
//! deferred sends, and `dlr-url` callbacks with Kannel's escapes received by a test server.

mod common;
use common::*;
use std::collections::HashMap;

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

async fn sendsms(g: &TestGateway, query: &str) -> (u16, String) {
    let r = g
        .http
        .get(format!("{}/cgi-bin/sendsms?{query}", g.base))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sendsms_like_kannel_with_dlr_url() {
    let hash = postern::secret::hash_secret("kpass");
    let g = gateway_full(
        &format!("[[api.sendsms_users]]\nusername = \"kuser\"\npassword = \"{hash}\""),
        SANDBOX,
    )
    .await;
    let sink = HttpSink::start(0).await;
    let dlr = sink.url("/dlr?type=%d&to=%p&ts=%T&reply=%A&id=%I");
    let q = format!(
        "username=kuser&password=kpass&to={}&from=Postern&text={}&dlr-mask=31&dlr-url={}",
        enc("+447400123001 447400123002"),
        enc("Hello €uro"),
        enc(&dlr)
    );
    let (s, body) = sendsms(&g, &q).await;
    assert_eq!((s, body.as_str()), (202, "0: Accepted for delivery"));

    // Both recipients got a message with the right text, and both reach delivered.
    let (_, l) = g.get("/v1/messages").await;
    let msgs = l["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 2);
    for m in msgs {
        assert_eq!(m["text"], "Hello €uro");
        assert_eq!(m["from"], "Postern");
        g.wait_state(m["id"].as_str().unwrap(), "delivered", 10)
            .await;
    }
    // dlr-mask 31: SMSC accepted (8) and delivered (1) for each recipient.
    let seen = sink.wait_for(4, 15).await;
    let mut got: Vec<(String, String)> = Vec::new();
    for r in &seen {
        assert_eq!(r.method, "GET");
        let q: HashMap<String, String> =
            form_urlencoded::parse(r.uri.split_once('?').unwrap().1.as_bytes())
                .into_owned()
                .collect();
        assert!(q["ts"].parse::<i64>().unwrap() > 1_700_000_000);
        if q["type"] == "1" {
            assert!(q["reply"].contains("stat:DELIVRD"), "{q:?}");
        }
        if q["type"] == "8" {
            assert_eq!(q["reply"], "ACK/");
        }
        got.push((q["type"].clone(), q["to"].clone()));
    }
    for to in ["+447400123001", "+447400123002"] {
        for t in ["8", "1"] {
            assert!(
                got.contains(&(t.to_string(), to.to_string())),
                "missing type {t} for {to}: {got:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sendsms_errors_and_variants() {
    let hash = postern::secret::hash_secret("kpass");
    let g = gateway_full(
        &format!("[[api.sendsms_users]]\nusername = \"kuser\"\npassword = \"{hash}\""),
        SANDBOX,
    )
    .await;
    let auth = "username=kuser&password=kpass";
    let cases = [
        (
            "username=kuser&password=nope&to=%2B447400123001&text=x",
            403,
            "Authorization failed for sendsms",
        ),
        (
            "to=%2B447400123001&text=x",
            403,
            "Authorization failed for sendsms",
        ),
        (
            &format!("{auth}&text=x") as &str,
            400,
            "Empty receiver number not allowed, rejected",
        ),
        (
            &format!("{auth}&to=%2B447400123001"),
            400,
            "Empty text not allowed, rejected.",
        ),
        (
            &format!("{auth}&to=abc&text=x"),
            400,
            "Invalid receiver number(s), rejected",
        ),
        (
            &format!("{auth}&to=%2B447400123001&text=x&udh=%05%00"),
            400,
            "UDH field misformed, rejected",
        ),
        (
            &format!("{auth}&to=%2B447400123001&text=x&charset=EBCDIC"),
            400,
            "Unsupported charset, rejected",
        ),
        (
            &format!("{auth}&to=%2B447400123001&text=x&coding=7"),
            400,
            "Invalid coding, rejected",
        ),
    ];
    for (q, status, text) in cases {
        let (s, body) = sendsms(&g, q).await;
        assert_eq!((s, body.as_str()), (status, text), "{q}");
    }
    assert_eq!(g.gw.hub.outbox.depth(), 0, "errors wrote nothing");

    // ISO-8859-1 text, a UCS-2 message given in UTF-8, deferred delivery, POST form.
    let (s, b) = sendsms(
        &g,
        &format!("{auth}&to=%2B447400123003&text=caf%E9&charset=ISO-8859-1"),
    )
    .await;
    assert_eq!((s, b.as_str()), (202, "0: Accepted for delivery"));
    let (s, _) = sendsms(
        &g,
        &format!(
            "{auth}&to=%2B447400123004&text={}&coding=2&charset=UTF-8",
            enc("Привет")
        ),
    )
    .await;
    assert_eq!(s, 202);
    let (s, b) = sendsms(
        &g,
        &format!("{auth}&to=%2B447400123005&text=later&deferred=5"),
    )
    .await;
    assert_eq!((s, b.as_str()), (202, "3: Queued for later delivery"));
    let r = g
        .http
        .post(format!("{}/cgi-bin/sendsms", g.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("{auth}&to=%2B447400123006&text=posted"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let by_to = |to: &'static str| {
        let g = &g;
        async move { g.get(&format!("/v1/messages?to={}", enc(to))).await.1["messages"][0].clone() }
    };
    assert_eq!(by_to("+447400123003").await["text"], "café");
    let m = by_to("+447400123004").await;
    assert_eq!(
        (m["text"].as_str().unwrap(), m["coding"].as_str().unwrap()),
        ("Привет", "ucs2")
    );
    assert_eq!(by_to("+447400123005").await["state"], "scheduled");
    assert_eq!(by_to("+447400123006").await["text"], "posted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_scrape_has_required_series() {
    let g = gateway(SANDBOX).await;
    let id = g
        .send(serde_json::json!({"to": "+447400123123", "text": "m"}))
        .await;
    g.wait_state(&id, "delivered", 10).await;
    let r = g
        .http
        .get(format!("{}/metrics", g.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    for name in postern::metrics::REQUIRED {
        assert!(
            text.lines().any(|l| l.starts_with(name)),
            "missing series {name} in:\n{text}"
        );
    }
    assert!(
        text.contains("postern_connector_submitted_total{connector=\"sb\"}"),
        "{text}"
    );
    let (s, v) = g.get("/readyz").await;
    assert_eq!((s, v["ready"].as_bool()), (200, Some(true)));
    let (s, v) = g.get("/v1/connectors").await;
    assert_eq!(s, 200);
    assert_eq!(v["connectors"][0]["name"], "sb");
}
