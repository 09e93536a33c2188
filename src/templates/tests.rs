use super::*;
use serde_json::json;

fn spec(name: &str, channel: Option<Channel>, language: Option<&str>, text: &str) -> TemplateSpec {
    TemplateSpec { name: name.into(), channel, language: language.map(str::to_string), text: Some(text.into()), ..Default::default() }
}

fn outbox(dir: &std::path::Path) -> Arc<Outbox> {
    let cfg = crate::config::OutboxConfig { path: dir.to_path_buf(), shards: 1, ..Default::default() };
    Arc::new(Outbox::open(&cfg).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_versioned_and_kept_over_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let cat = Catalog::load(Some(outbox(dir.path())), &[], "en").unwrap();
    let t = cat.create(spec("alert", Some(Channel::Sms), None, "Alert: {{ what }}")).await.unwrap();
    assert_eq!((t.id.as_str(), t.version), ("alert:sms:en", 1));
    assert!(matches!(cat.create(spec("alert", Some(Channel::Sms), None, "again")).await, Err(TemplateError::Exists(_))));
    let parts = Rendered { text: Some("ALERT: {{ what }}".into()), ..Default::default() };
    assert!(matches!(cat.update("alert:sms:en", 7, parts.clone()).await, Err(TemplateError::Version { current: 1, .. })));
    let t = cat.update("alert:sms:en", 1, parts).await.unwrap();
    assert_eq!(t.version, 2);
    drop(cat);
    let cat = Catalog::load(Some(outbox(dir.path())), &[], "en").unwrap();
    let r = cat.render("alert", Channel::Sms, None, &json!({"what": "flood"})).unwrap();
    assert_eq!(r.text.as_deref(), Some("ALERT: flood"));
    assert_eq!(cat.get("alert:sms:en").unwrap().version, 2);
    cat.delete("alert:sms:en", Some(2)).await.unwrap();
    drop(cat);
    let cat = Catalog::load(Some(outbox(dir.path())), &[], "en").unwrap();
    assert!(cat.list(None).is_empty());
}

#[tokio::test]
async fn language_falls_back_and_channel_specific_wins() {
    let config = [
        spec("hello", None, Some("en"), "Hello {{ n }}"),
        spec("hello", None, Some("pt"), "Olá {{ n }}"),
        spec("hello", Some(Channel::Email), Some("pt-BR"), "Oi {{ n }}"),
    ];
    let cat = Catalog::load(None, &config, "en").unwrap();
    let r = |ch, lang| cat.render("hello", ch, lang, &json!({"n": 1})).unwrap().text.unwrap();
    assert_eq!(r(Channel::Sms, Some("pt-BR")), "Olá 1", "pt-BR → pt for SMS (the pt-BR one is email only)");
    assert_eq!(r(Channel::Email, Some("pt-BR")), "Oi 1");
    assert_eq!(r(Channel::Sms, Some("fr")), "Hello 1", "unknown language → the default");
    assert_eq!(r(Channel::Sms, None), "Hello 1");
    // Config templates are read-only through the API.
    assert!(matches!(cat.delete("hello:any:en", None).await, Err(TemplateError::ReadOnly(_))));
}

#[test]
fn bad_templates_are_refused_with_the_field() {
    let bad = |mut s: TemplateSpec| s.check("en").unwrap_err().field.into_owned();
    assert_eq!(bad(spec("has space", None, None, "x")), "name");
    assert_eq!(bad(spec("ok", None, Some("english!"), "x")), "language");
    assert_eq!(bad(spec("ok", None, None, "{% if %}")), "text");
    let mut sms_subject = spec("ok", Some(Channel::Sms), None, "x");
    sms_subject.subject = Some("s".into());
    assert_eq!(bad(sms_subject), "subject");
    let cat = Catalog::load(None, &[spec("t", None, None, "{{ a }} {{ b }}")], "en").unwrap();
    let e = cat.render("t", Channel::Sms, None, &json!({"a": 1})).unwrap_err();
    assert_eq!((e.code, e.field.as_ref()), ("undefined_variable", "params.b"));
    let e = cat.render("nope", Channel::Sms, None, &json!({})).unwrap_err();
    assert_eq!(e.code, "unknown_template");
}
