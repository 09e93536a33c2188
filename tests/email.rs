//! Email out through a real SMTP server: Python's aiosmtpd (in a venv made by the test) over
//! STARTTLS with a test CA, the saved mail parsed back with Python's `email` package. HTML and
//! text, attachments from the blob store (by digest and inline base64), RFC 2047 subjects; a
//! 4xx answer retried, a 5xx failing the message; the API's refusals of bad email requests.

mod common;
use common::mail::*;
use common::*;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn html_and_attachments_over_starttls() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = test_cert(dir.path());
    let peer = SmtpPeer::start(Some((&cert, &key)));
    let ca = format!("tls_ca = {:?}", cert.display().to_string());
    // Two recipients per transaction: the mail (to, cc, bcc) goes out in two.
    let link = smtp_link(peer.port, "starttls", &[&ca, "max_recipients = 2"]);
    let g = Scenario::new()
        .connector("mail", "smtp", &link.iter().map(String::as_str).collect::<Vec<_>>())
        .route(&["mail"], &[])
        .start()
        .await;

    // One attachment uploaded first, one inline.
    let pdf: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
    let r = g.http.post(format!("{}/v1/blobs", g.base)).body(pdf.clone()).send().await.unwrap();
    let digest = r.json::<Value>().await.unwrap()["digest"].as_str().unwrap().to_string();
    use base64::Engine as _;
    let csv = b"name,count\nAmina,3\n".to_vec();
    let id = g
        .send(json!({
            "to": "Ana@Example.org",
            "subject": "Réunion ✓ demain",
            "text": "Bonjour, voir les pièces jointes.",
            "html": "<p>Bonjour, <b>voir</b> les pièces jointes.</p>",
            "cc": ["chef@example.org"],
            "bcc": ["archive@example.org"],
            "reply_to": "ops@postern.example",
            "attachments": [
                {"digest": digest, "filename": "report.pdf", "content_type": "application/pdf"},
                {"content_base64": base64::engine::general_purpose::STANDARD.encode(&csv), "filename": "counts.csv", "content_type": "text/csv"}
            ]
        }))
        .await;
    let m = g.wait_state(&id, "submitted", 20).await;
    assert_eq!(m["channel"], "email");
    assert_eq!(m["to"], "Ana@example.org");
    assert_eq!(m["subject"], "Réunion ✓ demain");
    assert_eq!(m["attachments"].as_array().unwrap().len(), 2);
    let message_id = m["remote_ids"][0].as_str().unwrap().to_string();
    assert!(message_id.starts_with(&format!("<{id}@")), "{message_id}");

    let mails = peer.mails();
    assert_eq!(mails.len(), 2, "three recipients, two per transaction");
    assert_eq!(mails[0]["message_id"], mails[1]["message_id"], "one mail");
    let mut rcpts: Vec<&str> = mails.iter().flat_map(|m| m["rcpts"].as_array().unwrap().iter().map(|r| r.as_str().unwrap())).collect();
    rcpts.sort();
    assert_eq!(rcpts, ["Ana@example.org", "archive@example.org", "chef@example.org"], "bcc gets it too");
    let mail = &mails[0];
    assert_eq!(mail["subject"], "Réunion ✓ demain", "RFC 2047 decoded back");
    assert_eq!(mail["from"], "alerts@postern.example");
    assert_eq!(mail["to"], "Ana@example.org");
    assert_eq!(mail["message_id"], message_id.as_str());
    assert_eq!(mail["cc"], "chef@example.org");
    assert_eq!(mail["bcc"], Value::Null, "no Bcc header on the wire");
    assert_eq!(mail["reply_to"], "ops@postern.example");
    let parts: Vec<&str> = mail["parts"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
    assert_eq!(parts[..4], ["multipart/mixed", "multipart/alternative", "text/plain", "text/html"], "{parts:?}");
    assert!(mail["text"].as_str().unwrap().contains("pièces jointes"));
    assert!(mail["html"].as_str().unwrap().contains("<b>voir</b>"));
    let att = mail["attachments"].as_array().unwrap();
    use sha2::Digest;
    assert_eq!(att[0]["filename"], "report.pdf");
    assert_eq!(att[0]["content_type"], "application/pdf");
    assert_eq!(att[0]["sha256"], hex::encode(sha2::Sha256::digest(&pdf)));
    assert_eq!(att[1]["filename"], "counts.csv");
    assert_eq!(att[1]["sha256"], hex::encode(sha2::Sha256::digest(&csv)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_4xx_is_retried_and_a_5xx_fails() {
    let peer = SmtpPeer::start(None);
    let link = smtp_link(peer.port, "none", &[]);
    let g = Scenario::new()
        .connector("mail", "smtp", &link.iter().map(String::as_str).collect::<Vec<_>>())
        .route(&["mail"], &[])
        .start()
        .await;
    let later = g.send(json!({"to": "later@example.org", "subject": "s", "text": "t"})).await;
    let rejected = g.send(json!({"to": "reject@example.org", "subject": "s", "text": "t"})).await;
    let l = g.wait_state(&later, "submitted", 20).await;
    assert_eq!(l["attempts"], 2, "{l}");
    assert_eq!(states(&l), ["queued", "sending", "queued", "sending", "submitted"], "{l}");
    let r = g.wait_state(&rejected, "failed", 20).await;
    assert_eq!(r["error"]["code"], "smtp_550", "{r}");
    assert!(r["error"]["message"].as_str().unwrap().contains("no such user"), "{r}");
    assert_eq!(peer.mails().len(), 1, "only the retried one arrived");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_email_requests_are_refused_and_nothing_is_stored() {
    let g = Scenario::new()
        .sandbox("sb", &["dlr_delay_ms = 10"])
        .connector("sms-only", "smpp", &["url = \"smpp://127.0.0.1:1\"", "system_id = \"x\"", "password = \"x\""])
        .raw("[[routes]]\nmatch = { prefix = \"+1\" }\nto = [\"sms-only\"]\n")
        .route(&["sb"], &[])
        .start()
        .await;
    let cases = [
        (json!({"to": "not an address@", "subject": "s", "text": "t"}), "invalid_destination", "to"),
        (json!({"to": "a@example.org", "text": "t"}), "empty_subject", "subject"),
        (json!({"to": "a@example.org", "subject": "s"}), "empty_body", "text"),
        (json!({"to": "a@example.org", "subject": "two\nlines", "text": "t"}), "invalid_field", "subject"),
        (json!({"to": "a@example.org", "subject": "s", "text": "t", "binary": "00"}), "invalid_field", "binary"),
        (json!({"to": "a@example.org", "subject": "s", "text": "t", "from": "nope"}), "invalid_sender", "from"),
        (json!({"to": "a@example.org", "subject": "s", "text": "t", "attachments": [{"digest": "00".repeat(32)}]}), "unknown_attachment", "attachments"),
        (json!({"to": "a@example.org", "subject": "s", "text": "t", "attachments": [{"content_base64": "%%%"}]}), "invalid_field", "attachments"),
        (json!({"to": "+447400123123", "text": "t", "subject": "s"}), "invalid_field", "subject"),
        (json!({"to": "a@example.org", "subject": "s", "text": "t", "cc": ["x"]}), "invalid_field", "cc"),
        (json!({"to": "a@example.org", "subject": "s", "text": "t", "reply_to": "y"}), "invalid_field", "reply_to"),
    ];
    for (body, code, field) in cases {
        let (s, v) = g.post("/v1/messages", body.clone()).await;
        assert!(s == 400 || s == 422, "{body}: {s} {v}");
        assert_eq!(v["error"]["code"], code, "{body}: {v}");
        assert_eq!(v["error"]["field"], field, "{body}: {v}");
    }
    // Limits: count, total size (one 2 MiB blob attached 13 times is 26 MiB), subject, body.
    let big = g.http.post(format!("{}/v1/blobs", g.base)).body(vec![7u8; 2 << 20]).send().await.unwrap();
    let big = big.json::<Value>().await.unwrap()["digest"].as_str().unwrap().to_string();
    let att = |n: usize| (0..n).map(|_| json!({"digest": big})).collect::<Vec<_>>();
    for (body, code) in [
        (json!({"to": "a@example.org", "subject": "s", "text": "t", "attachments": att(21)}), "too_many_attachments"),
        (json!({"to": "a@example.org", "subject": "s", "text": "t", "attachments": att(13)}), "attachments_too_large"),
        (json!({"to": "a@example.org", "subject": "s".repeat(999), "text": "t"}), "invalid_field"),
        (json!({"to": "a@example.org", "subject": "s", "text": "t".repeat((1 << 20) + 1)}), "body_too_large"),
    ] {
        let (s, v) = g.post("/v1/messages", body).await;
        assert_eq!((s, v["error"]["code"].as_str()), (422, Some(code)), "{v}");
    }
    let (_, list) = g.get("/v1/messages").await;
    assert_eq!(list["messages"].as_array().unwrap().len(), 0, "nothing stored");
    // A refused request leaves the media store as it was: its inline attachment is not kept.
    let (s, _) = g.post("/v1/messages", json!({"to": "a@example.org", "subject": "s", "text": "t", "from": "nope", "attachments": [{"content_base64": "aGVsbG8gd29ybGQ="}]})).await;
    assert_eq!(s, 422);
    let digest = "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"; // sha256("hello world")
    assert_eq!(g.get(&format!("/v1/media/{digest}")).await.0, 404, "no blob stored for a refused request");
    // An email only goes where a connector carries email: the sandbox here (it takes every
    // channel), never the SMPP link.
    let id = g.send(json!({"to": "a@example.org", "subject": "s", "text": "t"})).await;
    let m = g.wait_state(&id, "delivered", 10).await;
    assert_eq!(m["connector"], "sb");
    let sms = g.send(json!({"to": "+447400123123", "text": "t"})).await;
    let (_, only_email) = g.get("/v1/messages?channel=email").await;
    let ids: Vec<&str> = only_email["messages"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [id.as_str()], "{only_email}");
    let (_, only_sms) = g.get("/v1/messages?channel=sms").await;
    assert_eq!(only_sms["messages"][0]["id"], sms.as_str());
    let (s, e) = g.get("/v1/messages?channel=fax").await;
    assert_eq!((s, e["error"]["field"].clone()), (400, json!("channel")));
}

/// Mail into the SMTP listener from a real client (smtplib) becomes an SMS to the number it was
/// addressed to; refusals carry their codes; STARTTLS with a test CA.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_to_a_number_becomes_an_sms() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = test_cert(dir.path());
    let tls = format!("tls = {{ cert = {:?}, key = {:?} }}", cert.display().to_string(), key.display().to_string());
    let g = Scenario::new()
        .connector(
            "mailin",
            "smtp-server",
            &["listen = \"127.0.0.1:0\"", "domain = \"sms.example\"", "allow_senders = [\"@ops.example\"]", "body = \"subject_and_text\"", "sms_sender = \"Postern\"", "senders = { \"duty@ops.example\" = \"OpsDesk\" }", "max_bytes = 4096", &tls],
        )
        .sandbox("sb", &["dlr_delay_ms = 10"])
        .route(&["sb"], &[])
        .start()
        .await;
    let (host, port) = listener(&g);
    let base = json!({"host": host, "port": port, "from": "duty@ops.example", "to": ["+447400123123@sms.example"], "subject": "Alert", "text": "Water point 4 is dry"});
    let send = |patch: Value| smtplib(patched(&base, patch));

    let r = send(json!({}));
    assert_eq!(r["ok"], true, "{r}");
    let (_, list) = g.get("/v1/messages?to=%2B447400123123").await;
    let m = &list["messages"][0];
    assert_eq!(m["text"], "Alert\nWater point 4 is dry", "{list}");
    assert_eq!(m["from"], "OpsDesk", "mapped from the mail's sender");
    assert_eq!(m["metadata"]["email"]["from"], "duty@ops.example");
    assert_eq!(m["origin"]["type"], "peer");
    g.wait_state(m["id"].as_str().unwrap(), "delivered", 10).await;

    let r = send(json!({"to": ["ana@sms.example"]}));
    assert_eq!((r["ok"].clone(), r["code"].clone()), (json!(false), json!(550)), "{r}");
    assert!(r["error"].as_str().unwrap().starts_with("5.1.1"), "{r}");
    let r = send(json!({"from": "someone@elsewhere.example"}));
    assert_eq!(r["code"], 550, "{r}");
    assert!(r["error"].as_str().unwrap().starts_with("5.7.1"), "{r}");
    let r = send(json!({"pad": 5000}));
    assert_eq!(r["code"], 552, "{r}");
    let r = send(json!({"cafile": cert.display().to_string(), "to": ["447400123124@sms.example"], "from": "night@ops.example"}));
    assert_eq!((r["ok"].clone(), r["tls"].clone()), (json!(true), json!(true)), "{r}");
    let (_, list) = g.get("/v1/messages?to=%2B447400123124").await;
    assert_eq!(list["messages"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list["messages"][0]["from"], "Postern", "an unmapped sender gets the default");
    // Only the two accepted mails were stored.
    let (_, all) = g.get("/v1/messages").await;
    assert_eq!(all["messages"].as_array().unwrap().len(), 2, "{all}");
}

/// A bounce (RFC 3464 DSN) sent back to the SMTP listener's bounce address, naming the
/// Message-ID of an email Postern sent, marks that email `undelivered` with the DSN's status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bounce_marks_the_email_undelivered() {
    let peer = SmtpPeer::start(None);
    let link = smtp_link(peer.port, "none", &[]);
    let g = Scenario::new()
        .connector("mail", "smtp", &link.iter().map(String::as_str).collect::<Vec<_>>())
        .connector("mailin", "smtp-server", &["listen = \"127.0.0.1:0\"", "domain = \"sms.example\"", "bounces = [\"bounces@postern.example\"]"])
        .route(&["mail"], &[])
        .start()
        .await;
    let id = g.send(json!({"to": "gone@example.org", "subject": "s", "text": "t"})).await;
    let m = g.wait_state(&id, "submitted", 20).await;
    let message_id = m["remote_ids"][0].as_str().unwrap().to_string();
    let (host, port) = listener(&g);
    let dsn = format!(
        "From: MAILER-DAEMON@mx.example\r\nTo: bounces@postern.example\r\nSubject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n--b1\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example\r\n\r\nFinal-Recipient: rfc822; gone@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1 mailbox unavailable\r\n--b1\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: alerts@postern.example\r\nTo: gone@example.org\r\nMessage-ID: {message_id}\r\nSubject: s\r\n--b1--\r\n"
    );
    let r = smtplib(json!({"host": host, "port": port, "from": "", "to": ["bounces@postern.example"], "raw": dsn}));
    assert_eq!(r["ok"], true, "{r}");
    let m = g.wait_state(&id, "undelivered", 10).await;
    assert!(m["error"]["message"].as_str().unwrap().contains("5.1.1"), "{m}");
}

#[test]
fn null_sender_only_reaches_bounce_addresses() {
    // Covered end to end by `a_bounce_marks_the_email_undelivered` (MAIL FROM:<>); here the
    // refusal of an SMS from the null sender, through a real client.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let g = Scenario::new()
            .connector("mailin", "smtp-server", &["listen = \"127.0.0.1:0\"", "domain = \"sms.example\"", "allow_senders = [\"@ops.example\"]", "bounces = [\"bounces@postern.example\"]"])
            .sandbox("sb", &[])
            .route(&["sb"], &[])
            .start()
            .await;
        let (host, port) = listener(&g);
        let raw = "From: MAILER-DAEMON@mx.example\r\nSubject: s\r\n\r\nt\r\n";
        let r = smtplib(json!({"host": host, "port": port, "from": "", "to": ["+447400123123@sms.example"], "raw": raw}));
        assert_eq!(r["code"], 550, "{r}");
        let r = smtplib(json!({"host": host, "port": port, "from": "", "to": ["bounces@postern.example"], "raw": raw}));
        assert_eq!(r["ok"], true, "a bounce address takes mail from <> (a non-DSN is dropped): {r}");
        let (_, all) = g.get("/v1/messages").await;
        assert_eq!(all["messages"].as_array().unwrap().len(), 0, "{all}");
    });
}

/// Mail to one of the listener's mailboxes is stored as an inbound email; its attachment is a
/// blob readable at /v1/media.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_to_a_mailbox_is_an_inbound_email_with_its_attachments() {
    let g = Scenario::new()
        .connector("mailin", "smtp-server", &["listen = \"127.0.0.1:0\"", "domain = \"sms.example\"", "mailboxes = [\"support@postern.example\"]"])
        .sandbox("sb", &[])
        .route(&["sb"], &[])
        .start()
        .await;
    let (host, port) = listener(&g);
    let photo: Vec<u8> = (0..2000u32).map(|i| (i * 13 % 256) as u8).collect();
    let r = smtplib(json!({
        "host": host, "port": port, "from": "field@ops.example",
        "to": ["Support@postern.example"], "subject": "Pump broken", "text": "See the photo.",
        "attachments": [{"filename": "pump.jpg", "content_type": "image/jpeg", "hex": hex::encode(&photo)}]
    }));
    assert_eq!(r["ok"], true, "{r}");
    let (_, list) = g.get("/v1/messages?direction=inbound").await;
    let m = &list["messages"][0];
    assert_eq!(m["channel"], "email", "{list}");
    assert_eq!(m["state"], "received");
    assert_eq!(m["from"], "field@ops.example");
    assert_eq!(m["to"], "support@postern.example");
    assert_eq!(m["subject"], "Pump broken");
    assert!(m["text"].as_str().unwrap().contains("See the photo."), "{m}");
    let a = &m["attachments"][0];
    assert_eq!(a["filename"], "pump.jpg");
    assert_eq!(a["media_type"], "image/jpeg");
    assert_eq!(a["size"], 2000);
    let r = g.http.get(format!("{}/v1/media/{}", g.base, a["digest"].as_str().unwrap())).send().await.unwrap();
    assert_eq!(r.bytes().await.unwrap().to_vec(), photo);
}

/// With accounts, the listener takes mail only after AUTH (PLAIN or LOGIN, over STARTTLS).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_is_required_when_accounts_are_set() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = test_cert(dir.path());
    let tls = format!("tls = {{ cert = {:?}, key = {:?} }}", cert.display().to_string(), key.display().to_string());
    let account = format!("accounts = [{{ username = \"ops\", password = \"{}\" }}]", postern::secret::hash_secret("s3cret"));
    let g = Scenario::new()
        .connector("mailin", "smtp-server", &["listen = \"127.0.0.1:0\"", "domain = \"sms.example\"", &tls, &account])
        .sandbox("sb", &[])
        .route(&["sb"], &[])
        .start()
        .await;
    let (host, port) = listener(&g);
    let cafile = cert.display().to_string();
    let base = json!({"host": host, "port": port, "from": "ops@example.org", "to": ["+447400123123@sms.example"], "subject": "s", "text": "t", "cafile": cafile});
    let send = |patch: Value| smtplib(patched(&base, patch));
    assert_eq!(send(json!({}))["code"], 530, "no AUTH: refused");
    assert_eq!(send(json!({"login": ["ops", "wrong"]}))["code"], 535);
    let r = send(json!({"login": ["ops", "s3cret"]}));
    assert_eq!((r["ok"].clone(), r["auth"].clone()), (json!(true), json!(true)), "PLAIN: {r}");
    let r = send(json!({"login": ["ops", "s3cret"], "mechanism": "LOGIN"}));
    assert_eq!(r["ok"], true, "LOGIN: {r}");
    let (_, all) = g.get("/v1/messages").await;
    assert_eq!(all["messages"].as_array().unwrap().len(), 2, "{all}");
}

/// `multipart/form-data` uploads (sent by curl, a real client): a `message` JSON part and file
/// parts that become attachments; malformed forms are refused with the part concerned, and
/// nothing (message or media) is stored for them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_uploads_attach_their_files() {
    let g = Scenario::new().sandbox("sb", &["dlr_delay_ms = 10"]).route(&["sb"], &[]).start().await;
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("report.csv");
    std::fs::write(&csv, "site,level\nP4,dry\n").unwrap();
    let pdf = dir.path().join("map.pdf");
    std::fs::write(&pdf, b"%PDF-1.4 not really a map").unwrap();
    let curl = |args: Vec<String>| {
        let o = std::process::Command::new("curl")
            .args(["-s", "-w", "\n%{http_code}", &format!("{}/v1/messages", g.base)])
            .args(args)
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&o.stdout).to_string();
        let (body, code) = out.rsplit_once('\n').unwrap();
        (code.parse::<u16>().unwrap(), serde_json::from_str::<Value>(body).unwrap_or(Value::Null))
    };
    let message = r#"message={"to": "ana@example.org", "subject": "Water report", "text": "Attached."};type=application/json"#;
    let (s, v) = curl(vec!["-F".into(), message.into(), "-F".into(), format!("file=@{};type=text/csv", csv.display()), "-F".into(), format!("map=@{};type=application/pdf", pdf.display())]);
    assert_eq!(s, 202, "{v}");
    let id = v["messages"][0]["id"].as_str().unwrap().to_string();
    let (_, m) = g.get(&format!("/v1/messages/{id}")).await;
    let atts = m["attachments"].as_array().unwrap();
    assert_eq!(atts.len(), 2, "{m}");
    assert_eq!((atts[0]["filename"].clone(), atts[0]["content_type"].clone()), (json!("report.csv"), json!("text/csv")));
    let digest = atts[1]["digest"].as_str().unwrap();
    let r = reqwest::get(format!("{}/v1/media/{digest}", g.base)).await.unwrap();
    assert_eq!(r.bytes().await.unwrap().as_ref(), b"%PDF-1.4 not really a map");

    let other = dir.path().join("other.txt");
    std::fs::write(&other, "never stored").unwrap();
    let file = format!("file=@{}", other.display());
    for (args, code, field) in [
        (vec!["-F".to_string(), file.clone()], "invalid_multipart", "message"),
        (vec!["-F".into(), message.into(), "-F".into(), message.into(), "-F".into(), file.clone()], "invalid_multipart", "message"),
        (vec!["-F".into(), message.into(), "-F".into(), "note=plain field".into(), "-F".into(), file.clone()], "invalid_multipart", "attachments"),
        (vec!["-F".into(), r#"message={"to": "ana@example.org", "text": "no subject"}"#.into(), "-F".into(), file.clone()], "empty_subject", "subject"),
        (vec!["-F".into(), "message={not json".into(), "-F".into(), file.clone()], "invalid_json", ""),
        (vec!["-H".into(), "Content-Type: multipart/form-data".into(), "--data-binary".into(), "--x--".into()], "invalid_multipart", "body"),
    ] {
        let (s, v) = curl(args.clone());
        assert!(s == 400 || s == 422, "{args:?}: {s} {v}");
        assert_eq!(v["error"]["code"], code, "{args:?}: {v}");
        if !field.is_empty() {
            assert_eq!(v["error"]["field"], field, "{args:?}: {v}");
        }
    }
    let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b"never stored"));
    assert_eq!(g.get(&format!("/v1/media/{digest}")).await.0, 404, "refused forms store no media");
    let (_, all) = g.get("/v1/messages").await;
    assert_eq!(all["messages"].as_array().unwrap().len(), 1);
}
