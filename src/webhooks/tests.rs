use super::*;
use crate::model::{Address, Content, Envelope, Sms};

fn msg(ids: &IdGen, connector: &str, tags: &[&str]) -> Message {
    let sms = Sms { body: crate::model::Body::Text("hi".into()), udh: None, coding: crate::codec::Coding::Gsm7, segments: 1 };
    let mut env = Envelope::new(Channel::Sms, Address::sms("+447400123123"), Content::Sms(sms), now_ms() + 60_000);
    env.tags = tags.iter().map(|t| t.to_string()).collect();
    let mut m = Message::new(ids.next(), Direction::Outbound, env, State::Queued, now_ms(), now_ms());
    m.delivery.connector = Some(connector.into());
    m
}

fn spec(url: &str) -> EndpointSpec {
    EndpointSpec { url: url.into(), ..Default::default() }
}

#[tokio::test]
async fn endpoints_are_checked_and_events_filtered() {
    let open = policy::UrlPolicy { allow_private: true };
    let reg = Registry::load(None, &[], open.clone(), vec![0, 5]).unwrap();
    let all = reg.create(spec("http://127.0.0.1:9/all")).await.unwrap();
    assert!(all.secrets[0].secret.starts_with("whsec_"));
    let failed_only = reg.create(EndpointSpec { events: vec!["message.failed".into()], connectors: vec!["smsc".into()], ..spec("http://127.0.0.1:9/f") }).await.unwrap();
    let tagged = reg.create(EndpointSpec { tags: vec!["alerts".into()], ..spec("http://127.0.0.1:9/t") }).await.unwrap();
    assert!(all.num != failed_only.num && failed_only.num != tagged.num);
    for (bad, field) in [
        (spec("ftp://x/"), "url"),
        (EndpointSpec { events: vec!["message.nope".into()], ..spec("http://127.0.0.1/") }, "events"),
        (EndpointSpec { secret: Some("plain".into()), ..spec("http://127.0.0.1/") }, "secret"),
        (EndpointSpec { max_in_flight: Some(0), ..spec("http://127.0.0.1/") }, "max_in_flight"),
    ] {
        assert!(matches!(reg.create(bad).await, Err(WebhookError::Invalid { field: f, .. }) if f == field), "{field}");
    }
    let strict = Registry::load(None, &[], policy::UrlPolicy::default(), vec![0]).unwrap();
    assert!(matches!(strict.create(spec("http://127.0.0.1:9/")).await, Err(WebhookError::Invalid { field: "url", .. })));

    let ids = IdGen::default();
    let mut ops = Changes::new();
    let m = msg(&ids, "smsc", &[]);
    assert_eq!(reg.on_state(&m, State::Submitted, now_ms(), &ids, &mut ops), 1, "only the all-events endpoint");
    assert_eq!(reg.on_state(&m, State::Failed, now_ms(), &ids, &mut ops), 3, "all: status and failed; failed_only: failed");
    let t = msg(&ids, "other", &["alerts"]);
    assert_eq!(reg.on_state(&t, State::Delivered, now_ms(), &ids, &mut ops), 2, "all + tagged");
    reg.delete(&tagged.id).await.unwrap();
    assert_eq!(reg.on_state(&t, State::Delivered, now_ms(), &ids, &mut ops), 1);
}
