//! SMS ↔ email through inbound routes, with real peers: an SMS from a simulated modem (the
//! project's modem simulator on a pseudo-terminal) that matches an inbound route is forwarded
//! as a templated mail to Python's aiosmtpd; the reply to that mail, sent with Python's smtplib
//! into Postern's SMTP listener with `In-Reply-To`, goes back to the phone as SMS through the
//! same modem. Each forward is its own tracked message, linked by `parent_id`.

mod common;
use common::mail::*;
use common::*;
use postern::connector::modem::hwdb::Profile;
use postern::sim::modem::{SimModem, SimSettings};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

async fn wait_for<F, Fut>(what: &str, secs: u64, mut f: F) -> Value
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<Value>>,
{
    let until = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < until, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sms_becomes_a_mail_and_the_reply_goes_back_to_the_phone() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = SimSettings::new(Profile::generic(), 0);
    settings.dlr_delay = Duration::from_millis(30);
    let modem = SimModem::start(settings, Some(&dir.path().join("modem0"))).unwrap();
    let peer = SmtpPeer::start(None);
    let bank = [
        format!("devices = [\"{}/modem*\"]", dir.path().display()),
        "rate_per_min = 0".into(), "rescan_s = 1".into(), "health_s = 2".into(), "poll_s = 1".into(),
        "command_timeout_ms = 800".into(), "prompt_timeout_ms = 800".into(), "send_timeout_ms = 3000".into(),
    ];
    let bank: Vec<&str> = bank.iter().map(String::as_str).collect();
    let mail = smtp_link(peer.port, "none", &[]);
    let mail: Vec<&str> = mail.iter().map(String::as_str).collect();
    let g = Scenario::new()
        .connector("bank", "modem", &bank)
        .connector("mail", "smtp", &mail)
        .connector("mailin", "smtp-server", &["listen = \"127.0.0.1:0\"", "domain = \"sms.example\"", "allow_senders = [\"@example.org\"]", "body = \"text\""])
        .raw(concat!(
            "[[templates]]\nname = \"sms-mail\"\nchannel = \"email\"\nsubject = \"SMS from {{ from }}: {{ keyword }}\"\n",
            "text = \"{{ text }}\\n\\nReceived {{ received_at }} on {{ connector }} (message {{ id }})\"\n\n",
            "[[routes]]\nmatch = { direction = \"inbound\", connector = \"bank\", keyword = [\"water\", \"help\"] }\n",
            "forward = { to = \"ops@example.org\", template = \"sms-mail\", reply_domain = \"sms.example\", from = \"gateway@postern.example\" }\n\n",
        ))
        .route(&["mail"], &["match = { channel = \"email\" }"])
        .route(&["bank"], &["match = { channel = \"sms\" }"])
        .start()
        .await;
    wait_for("the modem", 20, || async {
        let (_, v) = g.get("/v1/connectors").await;
        let up = v["connectors"].as_array()?.iter().find(|c| c["name"] == "bank")?["detail"]["modems"][0]["state"] == "ready";
        up.then_some(Value::Null)
    })
    .await;

    // One SMS matches the route's keyword, one does not.
    modem.inject_text("+447400123123", "Water point 4 is dry", 1, &[]).unwrap();
    modem.inject_text("+447400123124", "thanks", 2, &[]).unwrap();
    let inbound = wait_for("both SMS stored", 20, || async {
        let (_, v) = g.get("/v1/messages?direction=inbound").await;
        (v["messages"].as_array()?.len() == 2).then_some(v)
    })
    .await;
    let sms = inbound["messages"].as_array().unwrap().iter().find(|m| m["from"] == "+447400123123").unwrap().clone();
    let sms_id = sms["id"].as_str().unwrap().to_string();

    // The forward: an ordinary outbound email, linked to the SMS, delivered to the real server.
    let (_, emails) = g.get("/v1/messages?channel=email").await;
    let emails = emails["messages"].as_array().unwrap().clone();
    assert_eq!(emails.len(), 1, "only the matching SMS is forwarded: {emails:#?}");
    let email_id = emails[0]["id"].as_str().unwrap().to_string();
    assert_eq!(emails[0]["parent_id"], sms_id.as_str());
    assert_eq!(emails[0]["origin"]["type"], "forward");
    // Accepted by the relay is as far as SMTP reports (a later bounce would make it undelivered).
    g.wait_state(&email_id, "submitted", 15).await;
    let mails = peer.mails();
    assert_eq!(mails.len(), 1);
    let m = &mails[0];
    assert_eq!(m["subject"], "SMS from +447400123123: Water", "{m}");
    assert_eq!(m["reply_to"], "+447400123123@sms.example", "{m}");
    assert_eq!(m["from"], "gateway@postern.example");
    let text = m["text"].as_str().unwrap().replace("\r\n", "\n");
    assert!(text.starts_with("Water point 4 is dry\n\nReceived ") && text.contains(&sms_id) && text.contains("on bank"), "{text:?} {sms_id}");

    // The reply, threaded by In-Reply-To, goes back to the phone as SMS.
    let (host, port) = listener(&g);
    let r = smtplib(json!({"host": host, "port": port, "from": "duty@example.org", "to": ["+447400123123@sms.example"],
        "subject": "Re: SMS from +447400123123", "text": "Truck on its way", "headers": {"In-Reply-To": m["message_id"]}}));
    assert_eq!(r["ok"], true, "{r}");
    let reply = wait_for("the reply SMS", 10, || async {
        let (_, v) = g.get("/v1/messages?channel=sms&direction=outbound").await;
        v["messages"].as_array()?.first().cloned()
    })
    .await;
    assert_eq!(reply["to"], "+447400123123");
    assert_eq!(reply["text"], "Truck on its way");
    assert_eq!(reply["parent_id"], email_id.as_str(), "{reply}");
    g.wait_state(reply["id"].as_str().unwrap(), "delivered", 20).await;
    let sent = modem.sent();
    assert!(sent.iter().any(|s| s.to.ends_with("447400123123") && s.text.as_deref() == Some("Truck on its way")), "{sent:?}");

    // A reply without the thread is an ordinary mail-to-SMS: no parent.
    let r = smtplib(json!({"host": host, "port": port, "from": "duty@example.org", "to": ["+447400123124@sms.example"], "subject": "", "text": "Noted"}));
    assert_eq!(r["ok"], true, "{r}");
    let plain = wait_for("the unthreaded SMS", 10, || async {
        let (_, v) = g.get("/v1/messages?to=%2B447400123124&direction=outbound").await;
        v["messages"].as_array()?.first().cloned()
    })
    .await;
    assert_eq!(plain["parent_id"], Value::Null);
    assert_eq!(plain["origin"]["type"], "peer");
}

/// Inbound routes are checked when the configuration loads.
#[test]
fn bad_inbound_routes_are_refused_at_load() {
    let base = "[connectors.sb]\ntype = \"sandbox\"\n[[routes]]\nto = [\"sb\"]\n";
    for (route, path) in [
        ("match = { direction = \"inbound\" }\n", "routes[1].forward"),
        ("match = { direction = \"inbound\" }\nforward = { to = \"not an address\" }\n", "routes[1].forward.to[0]"),
        ("match = { direction = \"inbound\", connector = \"nope\" }\nforward = { to = \"a@b.example\" }\n", "routes[1].match.connector[0]"),
        ("match = { keyword = \"HELP\" }\nto = [\"sb\"]\n", "routes[1].match.keyword"),
        ("match = { direction = \"inbound\" }\nto = [\"sb\"]\nforward = { to = \"a@b.example\" }\n", "routes[1].to"),
    ] {
        let text = format!("{base}[[routes]]\n{route}");
        let e = postern::config::Config::from_toml_with_env(&text, &|_| None).unwrap_err().to_string();
        assert!(e.contains(path), "{route} → {e}");
    }
}

/// Mail into a mailbox of the SMTP listener, forwarded as mail by an inbound route: its HTML
/// and attachments go along, to a real SMTP server (aiosmtpd), from the stored blobs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_to_a_mailbox_is_forwarded_with_its_attachments() {
    let peer = SmtpPeer::start(None);
    let mail = smtp_link(peer.port, "none", &[]);
    let mail: Vec<&str> = mail.iter().map(String::as_str).collect();
    let g = Scenario::new()
        .connector("mail", "smtp", &mail)
        .connector("mailin", "smtp-server", &["listen = \"127.0.0.1:0\"", "domain = \"postern.example\"", "mailboxes = [\"intake@postern.example\"]"])
        .raw("[[routes]]\nmatch = { direction = \"inbound\", connector = \"mailin\" }\nforward = { to = [\"ops@example.org\", \"+447400123125\"] }\n\n")
        .route(&["mail"], &["match = { channel = \"email\" }"])
        .sandbox("sb", &["dlr_delay_ms = 10"])
        .route(&["sb"], &["match = { channel = \"sms\" }"])
        .start()
        .await;
    let (host, port) = listener(&g);
    let csv = b"site,level\nP4,dry\n";
    let r = smtplib(json!({"host": host, "port": port, "from": "field@example.org", "to": ["intake@postern.example"],
        "subject": "Readings", "text": "See the file.", "attachments": [{"filename": "levels.csv", "content_type": "text/csv", "hex": hex::encode(csv)}]}));
    assert_eq!(r["ok"], true, "{r}");
    let fwd = wait_for("the forward", 10, || async {
        let (_, v) = g.get("/v1/messages?channel=email&direction=outbound").await;
        v["messages"].as_array()?.first().cloned()
    })
    .await;
    g.wait_state(fwd["id"].as_str().unwrap(), "submitted", 10).await;
    let mails = peer.mails();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0]["subject"], "Readings");
    assert_eq!(mails[0]["html"], Value::Null, "a text-only mail stays text-only");
    let att = &mails[0]["attachments"][0];
    assert_eq!(att["filename"], "levels.csv", "{}", mails[0]);
    use sha2::Digest;
    assert_eq!(att["sha256"], hex::encode(sha2::Sha256::digest(csv)));
    // The same mail to a phone: subject and text, cut to fit.
    let (_, sms) = g.get("/v1/messages?to=%2B447400123125").await;
    assert_eq!(sms["messages"][0]["text"].as_str().unwrap().trim_end(), "Readings: See the file.", "{sms}");
}

/// An SMS from the SMSC simulator (MO over an SMPP bind) matching an inbound route by the
/// number it was sent to becomes a templated mail at the real SMTP server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sms_from_the_smsc_becomes_a_mail() {
    use postern::sim::smsc::{SimConfig, SmscSim};
    let smsc = SmscSim::start(SimConfig { mo_rate: 5.0, mo_text: "Clinic 7 needs vaccine".into(), ..Default::default() }).await.unwrap();
    let peer = SmtpPeer::start(None);
    let mail = smtp_link(peer.port, "none", &[]);
    let mail: Vec<&str> = mail.iter().map(String::as_str).collect();
    let url = format!("url = \"smpp://{}\"", smsc.addr);
    let g = Scenario::new()
        .connector("op", "smpp", &[&url, "system_id = \"postern\"", "password = \"secret\""])
        .connector("mail", "smtp", &mail)
        .raw(concat!(
            "[[templates]]\nname = \"mo\"\nchannel = \"email\"\nsubject = \"[{{ to }}] {{ from }}\"\ntext = \"{{ text }}\"\n\n",
            "[[routes]]\nmatch = { direction = \"inbound\", prefix = \"12345\", sender_prefix = \"44\" }\n",
            "forward = { to = \"duty@example.org\", template = \"mo\" }\n\n",
        ))
        .route(&["mail"], &["match = { channel = \"email\" }"])
        .route(&["op"], &["match = { channel = \"sms\" }"])
        .start()
        .await;
    let mails = wait_for("a forwarded MO", 20, || async {
        let m = peer.mails();
        (!m.is_empty()).then(|| Value::Array(m))
    })
    .await;
    let m = &mails[0];
    assert!(m["subject"].as_str().unwrap().starts_with("[12345] 4474001"), "{m}");
    assert_eq!(m["text"].as_str().unwrap().trim_end(), "Clinic 7 needs vaccine");
    let (_, inbound) = g.get("/v1/messages?direction=inbound").await;
    let first = &inbound["messages"].as_array().unwrap().last().unwrap()["id"];
    let (_, emails) = g.get("/v1/messages?channel=email").await;
    assert!(emails["messages"].as_array().unwrap().iter().any(|e| &e["parent_id"] == first), "{emails}");
}
