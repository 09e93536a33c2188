//! Templates: managed at /v1/templates (versions, conflicts, read-only config ones), kept over a
//! restart, rendered strictly into messages (a missing variable is a 422 naming it and nothing
//! is stored), the language fallback chain, and `postern template render` offline and against
//! a running gateway.

mod common;
use common::*;
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;

fn scenario() -> Scenario {
    Scenario::new()
        .sandbox("sb", &["dlr_delay_ms = 10"])
        .route(&["sb"], &[])
        .raw("[[templates]]\nname = \"welcome\"\nlanguage = \"en\"\ntext = \"Welcome {{ name }}\"\n\n[[templates]]\nname = \"welcome\"\nlanguage = \"pt\"\ntext = \"Bem-vindo {{ name }}\"\n")
}

async fn count(g: &TestGateway) -> usize {
    g.get("/v1/messages").await.1["messages"].as_array().map_or(0, |a| a.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn templates_are_managed_versioned_and_kept() {
    let g = scenario().start().await;
    let (s, t) = g.post("/v1/templates", json!({"name": "alert", "channel": "sms", "text": "Alert {{ place }}: {{ what }}"})).await;
    assert_eq!(s, 201, "{t}");
    assert_eq!((t["id"].clone(), t["version"].clone(), t["source"].clone()), (json!("alert:sms:en"), json!(1), json!("api")));
    let (s, e) = g.post("/v1/templates", json!({"name": "alert", "channel": "sms", "text": "again"})).await;
    assert_eq!((s, e["error"]["code"].clone()), (409, json!("exists")));
    // Bad templates: precise errors with the field.
    for (body, field) in [
        (json!({"name": "bad name", "text": "x"}), "name"),
        (json!({"name": "x", "text": "{% if %}"}), "text"),
        (json!({"name": "x", "channel": "sms", "text": "x", "html": "<b>x</b>"}), "subject"),
        (json!({"name": "x", "language": "not a tag", "text": "x"}), "language"),
        (json!({"name": "x", "txt": "x"}), ""),
    ] {
        let (s, e) = g.post("/v1/templates", body.clone()).await;
        assert_eq!(s, 422, "{body} → {e}");
        if !field.is_empty() {
            assert_eq!(e["error"]["field"], field, "{body} → {e}");
        }
    }
    // Update needs the version read.
    let (s, e) = g.call(Method::PUT, "/v1/templates/alert:sms:en", Some(json!({"version": 5, "text": "x"}))).await;
    assert_eq!((s, e["error"]["code"].clone()), (409, json!("version_conflict")), "{e}");
    let (s, t) = g.call(Method::PUT, "/v1/templates/alert:sms:en", Some(json!({"version": 1, "text": "ALERT {{ place }}: {{ what }}"}))).await;
    assert_eq!((s, t["version"].clone()), (200, json!(2)), "{t}");
    // Config templates are listed and read-only.
    let (_, list) = g.get("/v1/templates?name=welcome").await;
    assert_eq!(list["templates"].as_array().unwrap().len(), 2, "{list}");
    let (s, e) = g.call(Method::DELETE, "/v1/templates/welcome:any:en", None).await;
    assert_eq!((s, e["error"]["code"].clone()), (409, json!("read_only")));

    // A message naming the template.
    let id = g.send(json!({"to": "+447400123123", "template": "alert", "params": {"place": "Point 4", "what": "dry"}})).await;
    let (_, m) = g.get(&format!("/v1/messages/{id}")).await;
    assert_eq!(m["text"], "ALERT Point 4: dry");
    // A variable missing: 422 naming it, nothing stored.
    let before = count(&g).await;
    let (s, e) = g.post("/v1/messages", json!({"to": "+447400123124", "template": "alert", "params": {"place": "Point 4"}})).await;
    assert_eq!(s, 422, "{e}");
    assert_eq!((e["error"]["code"].clone(), e["error"]["field"].clone()), (json!("undefined_variable"), json!("params.what")), "{e}");
    assert!(e["error"]["message"].as_str().unwrap().contains("what"));
    for (body, code, field) in [
        (json!({"to": "+447400123124", "template": "nope"}), "unknown_template", "template"),
        (json!({"to": "+447400123124", "template": "alert", "text": "both"}), "invalid_field", "text"),
        (json!({"to": "+447400123124", "template": "alert", "params": [1]}), "invalid_field", "params"),
        (json!({"to": "+447400123124", "text": "x", "params": {"a": 1}}), "invalid_field", "params"),
    ] {
        let (s, e) = g.post("/v1/messages", body.clone()).await;
        assert_eq!((s, e["error"]["code"].as_str(), e["error"]["field"].as_str()), (422, Some(code), Some(field)), "{body} → {e}");
    }
    assert_eq!(count(&g).await, before, "nothing stored for refused requests");

    // Languages: pt-BR falls back to pt; an unknown language to the default.
    let id = g.send(json!({"to": "+447400123125", "template": "welcome", "language": "pt-BR", "params": {"name": "Ana"}})).await;
    assert_eq!(g.get(&format!("/v1/messages/{id}")).await.1["text"], "Bem-vindo Ana");
    let id = g.send(json!({"to": "+447400123126", "template": "welcome", "language": "sw", "params": {"name": "Juma"}})).await;
    assert_eq!(g.get(&format!("/v1/messages/{id}")).await.1["text"], "Welcome Juma");

    // The CLI against the running gateway (it knows the API's templates).
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_postern"))
        .args(["template", "render", "alert", "--params", r#"{"place": "P", "what": "w"}"#, "--api", &g.base])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["text"], "ALERT P: w");

    // Kept over a restart, at its version.
    // (In-process, the stopped gateway's tasks still hold the database open: the restart runs
    // on a copy of its files, as a new process would find them.)
    let TestGateway { gw, dir, .. } = g;
    gw.stop(Duration::from_millis(500)).await;
    let copy = tempfile::tempdir().unwrap();
    let ok = std::process::Command::new("cp").arg("-a").arg(format!("{}/.", dir.path().display())).arg(copy.path()).status().unwrap();
    assert!(ok.success());
    let g = scenario().start_in(copy).await;
    let (s, t) = g.get("/v1/templates/alert:sms:en").await;
    assert_eq!((s, t["version"].clone(), t["text"].clone()), (200, json!(2), json!("ALERT {{ place }}: {{ what }}")));
    let (s, _) = g.call(Method::DELETE, "/v1/templates/alert:sms:en?version=2", None).await;
    assert_eq!(s, 200);
    assert_eq!(g.get("/v1/templates/alert:sms:en").await.0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_templates_fill_subject_text_and_html() {
    let g = Scenario::new()
        .sandbox("mail", &[])
        .route(&["mail"], &[])
        .start()
        .await;
    let (s, t) = g
        .post("/v1/templates", json!({"name": "report", "channel": "email", "subject": "Report for {{ week }}", "text": "{{ rows|length }} rows", "html": "<ul>{% for r in rows %}<li>{{ r }}</li>{% endfor %}</ul>"}))
        .await;
    assert_eq!(s, 201, "{t}");
    let id = g.send(json!({"to": "ops@example.org", "template": "report", "params": {"week": "W49", "rows": ["a<b", "c"]}})).await;
    let (_, m) = g.get(&format!("/v1/messages/{id}")).await;
    assert_eq!(m["subject"], "Report for W49", "{m}");
    assert_eq!(m["text"], "2 rows");
    assert_eq!(m["html"], "<ul><li>a&lt;b</li><li>c</li></ul>", "HTML is escaped in an html part");
}

#[test]
fn the_cli_renders_a_config_template_offline() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("postern.toml");
    std::fs::write(&cfg, scenario().toml(dir.path())).unwrap();
    let run = |params: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_postern"))
            .args(["template", "render", "welcome", "--language", "pt", "--params", params, "--config"])
            .arg(&cfg)
            .output()
            .unwrap()
    };
    let out = run(r#"{"name": "Ana"}"#);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(serde_json::from_slice::<Value>(&out.stdout).unwrap()["text"], "Bem-vindo Ana");
    let out = run("{}");
    assert!(!out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["error"]["field"], "params.name", "{v}");
}
