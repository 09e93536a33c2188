//! Bad input gets a precise status and error code, and changes nothing (contract 4).

mod common;
use common::*;
use serde_json::{json, Value};

async fn raw(
    g: &TestGateway,
    method: &str,
    path: &str,
    ct: Option<&str>,
    body: Vec<u8>,
    auth: Option<&str>,
) -> (u16, Value) {
    let mut rb = g
        .http
        .request(method.parse().unwrap(), format!("{}{path}", g.base))
        .body(body);
    if let Some(ct) = ct {
        rb = rb.header("content-type", ct);
    }
    if let Some(a) = auth {
        rb = rb.header("authorization", a);
    }
    let r = rb.send().await.unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_of_bad_inputs() {
    let g = gateway_full("max_body_bytes = 4096\nmax_batch = 5", SANDBOX).await;
    let j = Some("application/json");
    let long = "x".repeat(1600); // 11 segments > max 10
    let big = format!(
        "{{\"to\": \"+447400123123\", \"text\": \"{}\"}}",
        "y".repeat(5000)
    );
    let batch6 = json!({"messages": (0..6).map(|_| json!({"to": "+447400123123", "text": "x"})).collect::<Vec<_>>()}).to_string();
    let cases: Vec<(&str, &str, Option<&str>, String, u16, &str)> = vec![
        (
            "POST",
            "/v1/messages",
            j,
            "{\"to\":".into(),
            400,
            "invalid_json",
        ),
        (
            "POST",
            "/v1/messages",
            j,
            "not json at all".into(),
            400,
            "invalid_json",
        ),
        (
            "POST",
            "/v1/messages",
            j,
            json!({"to": 5, "text": "x"}).to_string(),
            422,
            "invalid_type",
        ),
        (
            "POST",
            "/v1/messages",
            j,
            json!({"to": "+447400123123", "text": 7}).to_string(),
            422,
            "invalid_type",
        ),
        ("POST", "/v1/messages", j, String::new(), 400, "empty_body"),
        ("POST", "/v1/messages", j, big, 413, "payload_too_large"),
        (
            "POST",
            "/v1/messages",
            j,
            json!({"to": "12345", "text": "x"}).to_string(),
            422,
            "invalid_destination",
        ),
        (
            "POST",
            "/v1/messages",
            j,
            json!({"to": "+44abc", "text": "x"}).to_string(),
            422,
            "invalid_destination",
        ),
        (
            "POST",
            "/v1/messages",
            j,
            json!({"to": [], "text": "x"}).to_string(),
            422,
            "invalid_destination",
        ),
        (
            "POST",
            "/v1/messages",
            j,
            json!({"to": "+447400123123", "text": long}).to_string(),
            422,
            "too_many_segments",
        ),
        (
            "POST",
            "/v1/messages",
            j,
            json!({"to": "+447400123123", "text": "x", "colour": 1}).to_string(),
            422,
            "unknown_field",
        ),
        (
            "POST",
            "/v1/messages",
            j,
            json!({"text": "x"}).to_string(),
            422,
            "missing_field",
        ),
        (
            "POST",
            "/v1/messages",
            j,
            json!({"to": "+447400123123"}).to_string(),
            422,
            "empty_body",
        ),
        (
            "POST",
            "/v1/messages",
            j,
            json!({"to": "+447400123123", "text": ""}).to_string(),
            422,
            "empty_body",
        ),
        (
            "POST",
            "/v1/messages",
            j,
            json!({"to": "+447400123123", "text": "x", "from": "ThisIsTooLongASender"}).to_string(),
            422,
            "invalid_sender",
        ),
        (
            "POST",
            "/v1/messages",
            j,
            json!({"to": "+447400123123", "text": "x", "send_at": "tomorrow"}).to_string(),
            422,
            "invalid_field",
        ),
        (
            "POST",
            "/v1/messages",
            j,
            json!({"to": "+447400123123", "text": "x", "validity": -5}).to_string(),
            422,
            "invalid_field",
        ),
        (
            "POST",
            "/v1/messages",
            j,
            json!({"to": "+447400123123", "binary": "zz"}).to_string(),
            422,
            "invalid_field",
        ),
        (
            "POST",
            "/v1/messages",
            j,
            json!({"to": "+447400123123", "text": "x", "callback_url": "ftp://x"}).to_string(),
            422,
            "invalid_field",
        ),
        (
            "POST",
            "/v1/messages",
            j,
            json!({"to": "+447400123123", "text": "x", "coding": "gsm7x"}).to_string(),
            422,
            "invalid_field",
        ),
        (
            "POST",
            "/v1/messages",
            j,
            json!({"to": "+447400123123", "text": "Привет", "coding": "gsm7"}).to_string(),
            422,
            "unencodable_text",
        ),
        (
            "POST",
            "/v1/messages",
            j,
            json!({"to": "+447400123123", "text": "x", "metadata": [1]}).to_string(),
            422,
            "invalid_field",
        ),
        (
            "POST",
            "/v1/messages",
            Some("text/plain"),
            json!({"to": "+447400123123", "text": "x"}).to_string(),
            415,
            "unsupported_media_type",
        ),
        (
            "POST",
            "/v1/messages",
            None,
            json!({"to": "+447400123123", "text": "x"}).to_string(),
            415,
            "unsupported_media_type",
        ),
        (
            "POST",
            "/v1/messages/batch",
            j,
            batch6,
            413,
            "batch_too_large",
        ),
        (
            "POST",
            "/v1/messages/batch",
            j,
            json!({"messages": []}).to_string(),
            422,
            "empty_batch",
        ),
        (
            "POST",
            "/v1/messages/batch",
            j,
            json!({"msgs": []}).to_string(),
            422,
            "unknown_field",
        ),
        (
            "GET",
            "/v1/messages/nonsense",
            None,
            String::new(),
            404,
            "not_found",
        ),
        (
            "GET",
            "/v1/messages/0000000000000",
            None,
            String::new(),
            404,
            "not_found",
        ),
        (
            "GET",
            "/v1/messages?limit=0",
            None,
            String::new(),
            400,
            "invalid_query",
        ),
        ("GET", "/v1/nothing", None, String::new(), 404, "not_found"),
        (
            "PUT",
            "/v1/messages",
            j,
            "{}".into(),
            405,
            "method_not_allowed",
        ),
        ("GET", "/nothing", None, String::new(), 404, "not_found"),
    ];
    for (method, path, ct, body, status, code) in cases {
        let shown = body.chars().take(60).collect::<String>();
        let (s, v) = raw(&g, method, path, ct, body.into_bytes(), None).await;
        assert_eq!(
            (s, v["error"]["code"].as_str().unwrap_or("")),
            (status, code),
            "{method} {path} {shown}: {v}"
        );
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{v}"
        );
    }
    // Nothing was written.
    let (_, l) = g.get("/v1/messages").await;
    assert_eq!(l["messages"].as_array().unwrap().len(), 0, "{l}");
    assert_eq!(g.gw.hub.outbox.depth(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_are_enforced() {
    let hash = postern::secret::hash_secret("key-one");
    let g = gateway_full(&format!("keys = [\"{hash}\"]"), SANDBOX).await;
    let body = json!({"to": "+447400123123", "text": "x"})
        .to_string()
        .into_bytes();
    let j = Some("application/json");
    let (s, v) = raw(&g, "POST", "/v1/messages", j, body.clone(), None).await;
    assert_eq!(
        (s, v["error"]["code"].as_str().unwrap()),
        (401, "unauthorized")
    );
    let (s, v) = raw(
        &g,
        "POST",
        "/v1/messages",
        j,
        body.clone(),
        Some("Basic abc"),
    )
    .await;
    assert_eq!(
        (s, v["error"]["code"].as_str().unwrap()),
        (401, "unauthorized")
    );
    let (s, v) = raw(
        &g,
        "POST",
        "/v1/messages",
        j,
        body.clone(),
        Some("Bearer wrong"),
    )
    .await;
    assert_eq!(
        (s, v["error"]["code"].as_str().unwrap()),
        (403, "forbidden")
    );
    assert_eq!(g.gw.hub.outbox.depth(), 0);
    let (s, v) = raw(&g, "POST", "/v1/messages", j, body, Some("Bearer key-one")).await;
    assert_eq!(s, 202, "{v}");
    // health and metrics stay open for probes and scrapers
    let (s, _) = raw(&g, "GET", "/healthz", None, vec![], None).await;
    assert_eq!(s, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_answers_per_item_in_order() {
    let g = gateway(SANDBOX).await;
    let (s, v) = g
        .post(
            "/v1/messages/batch",
            json!({"messages": [
                {"to": "+447400123001", "text": "a"},
                {"to": "bad", "text": "b"},
                {"to": "+447400123003", "text": "c", "nope": 1},
                {"to": ["+447400123004", "+447400123005"], "text": "d"}
            ]}),
        )
        .await;
    assert_eq!(s, 202, "{v}");
    assert_eq!(v["accepted"], 3);
    let r = v["results"].as_array().unwrap();
    assert_eq!(r[0]["messages"][0]["to"], "+447400123001");
    assert_eq!(r[1]["error"]["code"], "invalid_destination");
    assert_eq!(r[2]["error"]["code"], "unknown_field");
    assert_eq!(r[3]["messages"].as_array().unwrap().len(), 2);
    for item in [&r[0], &r[3]] {
        for m in item["messages"].as_array().unwrap() {
            g.wait_state(m["id"].as_str().unwrap(), "delivered", 10)
                .await;
        }
    }
}

/// Numbers are checked against libphonenumber's metadata: Ofcom's drama range and a number with
/// no country are refused with the reason; `sms_number_types` narrows to mobiles; the operator's
/// switch back to the E.164 shape check takes ranges the metadata does not know.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numbers_are_checked_against_the_numbering_plan() {
    let g = gateway_full("sms_number_types = [\"mobile\", \"fixed_line_or_mobile\"]", SANDBOX).await;
    for (to, says) in [
        ("+447700900123", "numbering plan of +44"),
        ("+999999999", "no country calling code"),
        ("+442079460000", "FixedLine"),
    ] {
        let (s, v) = g.post("/v1/messages", json!({"to": to, "text": "x"})).await;
        assert_eq!((s, v["error"]["code"].as_str(), v["error"]["field"].as_str()), (422, Some("invalid_destination"), Some("to")), "{to}: {v}");
        assert!(v["error"]["message"].as_str().unwrap().contains(says), "{to}: {v}");
    }
    // Valid mobiles of several plans, written as people write them.
    for to in ["+44 7400 123456", "0033 6 12 34 56 78", "+1 (202) 555-0123", "+49 151 23456789"] {
        let (s, v) = g.post("/v1/messages", json!({"to": to, "text": "x"})).await;
        assert_eq!(s, 202, "{to}: {v}");
    }
    let (_, l) = g.get("/v1/messages").await;
    let mut tos: Vec<String> = l["messages"].as_array().unwrap().iter().map(|m| m["to"].as_str().unwrap().to_string()).collect();
    tos.sort();
    assert_eq!(tos, ["+12025550123", "+33612345678", "+447400123456", "+4915123456789"]);

    let shape = gateway_full("sms_number_check = \"e164\"", SANDBOX).await;
    let (s, v) = shape.post("/v1/messages", json!({"to": "+447700900123", "text": "x"})).await;
    assert_eq!(s, 202, "the shape check takes the drama range: {v}");
    let (s, _) = shape.post("/v1/messages", json!({"to": "+1234", "text": "x"})).await;
    assert_eq!(s, 422, "but not a number too short for E.164");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_key_has_its_own_rate_limit() {
    let (a, b) = (postern::secret::hash_secret("key-a"), postern::secret::hash_secret("key-b"));
    let g = Scenario::new().api(&format!("keys = [{a:?}, {b:?}]")).api("key_rps = 2").api("key_burst = 3").sandbox("sb", &[]).route(&["sb"], &[]).start().await;
    let get = |key: &'static str| {
        let (http, url) = (g.http.clone(), format!("{}/v1/connectors", g.base));
        async move { http.get(url).bearer_auth(key).send().await.unwrap() }
    };
    for _ in 0..3 {
        assert_eq!(get("key-a").await.status(), 200);
    }
    let r = get("key-a").await;
    assert_eq!(r.status(), 429);
    let wait: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&wait), "Retry-After {wait}");
    let e: serde_json::Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "rate_limited", "{e}");
    // Another key is not held back; a wrong key is refused as before, not rate limited.
    assert_eq!(get("key-b").await.status(), 200);
    assert_eq!(get("key-c").await.status(), 403);
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    assert_eq!(get("key-a").await.status(), 200, "a token back after half a second at 2/s");
}
