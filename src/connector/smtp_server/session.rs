//! One SMTP session: commands parsed by `smtp-proto`, replies with enhanced status codes, the
//! DATA phase unstuffed by its `DataReceiver`, STARTTLS by swapping the stream, and the mail
//! turned into SMS submissions.

use super::config::pattern_matches;
use super::SmtpServer;
use crate::connector::SubmitError;
use crate::model::request::{check_body, BodySpec};
use crate::model::{now_ms, Address, Channel, Content, Envelope, Origin};
use smtp_proto::request::receiver::DataReceiver;
use smtp_proto::Request;
use std::io;
use std::sync::atomic::Ordering;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

/// A connection, plain or TLS.
pub(super) trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// The longest command line taken (RFC 5321 allows 512; extensions add some).
const MAX_LINE: usize = 4096;
/// Most recipients of one mail.
const MAX_RCPTS: usize = 100;

/// Over the session limit: refused with a temporary code.
pub(super) async fn busy(mut s: tokio::net::TcpStream) -> io::Result<()> {
    s.write_all(b"421 4.3.2 too many sessions, try again later\r\n").await
}

#[derive(Default)]
struct Transaction {
    from: Option<String>,
    /// E.164 numbers.
    to: Vec<String>,
    /// A bounce address is among the recipients.
    bounce: bool,
    /// Our mailboxes among the recipients.
    mailboxes: Vec<String>,
}

async fn reply(io: &mut BufReader<Box<dyn Stream>>, text: &str) -> io::Result<()> {
    io.get_mut().write_all(text.as_bytes()).await?;
    io.get_mut().flush().await
}

/// One line, up to `MAX_LINE` bytes (longer: the rest is skipped and `Ok(None)` returned).
async fn read_line(io: &mut BufReader<Box<dyn Stream>>) -> io::Result<Option<Vec<u8>>> {
    let mut line = Vec::new();
    loop {
        let buf = io.fill_buf().await?;
        if buf.is_empty() {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let (take, end) = match buf.iter().position(|&c| c == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        // Kept up to one byte over the limit: enough to know the line is too long.
        let room = (MAX_LINE + 1).saturating_sub(line.len());
        line.extend_from_slice(&buf[..take.min(room)]);
        io.consume(take);
        if end {
            return Ok((line.len() <= MAX_LINE).then_some(line));
        }
    }
}

pub(super) async fn run(srv: &SmtpServer, stream: Box<dyn Stream>) -> io::Result<()> {
    let domain = srv.cfg.domain.clone();
    let mut io = BufReader::new(stream);
    reply(&mut io, &format!("220 {domain} ESMTP Postern\r\n")).await?;
    let mut tls_on = false;
    let mut greeted = false;
    let mut authed = false;
    let mut tx = Transaction::default();
    loop {
        let Some(line) = read_line(&mut io).await? else {
            reply(&mut io, "500 5.5.6 line too long\r\n").await?;
            continue;
        };
        let req = Request::parse(&mut line.iter()).map(|r| match r {
            Request::Mail { from } => Request::Mail { from: from.into_owned() },
            Request::Rcpt { to } => Request::Rcpt { to: to.into_owned() },
            Request::Ehlo { host } => Request::Ehlo { host: host.into_owned() },
            Request::Helo { host } => Request::Helo { host: host.into_owned() },
            Request::StartTls => Request::StartTls,
            Request::Data => Request::Data,
            Request::Rset => Request::Rset,
            Request::Quit => Request::Quit,
            Request::Noop { .. } => Request::Noop { value: String::new() },
            Request::Vrfy { .. } => Request::Vrfy { value: String::new() },
            Request::Auth { mechanism, initial_response } => Request::Auth { mechanism, initial_response: initial_response.into_owned() },
            _ => Request::Help { value: String::new() },
        });
        match req {
            Ok(Request::Ehlo { host }) => {
                greeted = true;
                tx = Transaction::default();
                let tls = if srv.tls.get().is_some() && !tls_on { "250-STARTTLS\r\n" } else { "" };
                let auth = if tls_on && !srv.cfg.accounts.is_empty() { "250-AUTH PLAIN LOGIN\r\n" } else { "" };
                let text = format!(
                    "250-{domain} greets {host}\r\n250-SIZE {}\r\n250-8BITMIME\r\n{tls}{auth}250 ENHANCEDSTATUSCODES\r\n",
                    srv.cfg.max_bytes
                );
                reply(&mut io, &text).await?;
            }
            Ok(Request::Helo { host }) => {
                greeted = true;
                tx = Transaction::default();
                reply(&mut io, &format!("250 {domain} greets {host}\r\n")).await?;
            }
            Ok(Request::StartTls) => match (srv.tls.get(), tls_on) {
                (Some(acceptor), false) => {
                    reply(&mut io, "220 2.0.0 ready to start TLS\r\n").await?;
                    let tls = acceptor.accept(io.into_inner()).await?;
                    io = BufReader::new(Box::new(tls));
                    tls_on = true;
                    greeted = false;
                    authed = false;
                    tx = Transaction::default();
                }
                _ => reply(&mut io, "454 4.7.0 TLS not available\r\n").await?,
            },
            Ok(Request::Mail { from }) => {
                if !greeted {
                    reply(&mut io, "503 5.5.1 EHLO first\r\n").await?;
                } else if !srv.cfg.accounts.is_empty() && !authed {
                    reply(&mut io, "530 5.7.0 authentication required\r\n").await?;
                } else if from.size > srv.cfg.max_bytes {
                    reply(&mut io, "552 5.3.4 message too large\r\n").await?;
                } else if !from.address.is_empty() && !allowed(&srv.cfg.allow_senders, &from.address) {
                    // (The null sender `<>` is how bounces come: always taken, but only for a
                    // bounce address, below.)
                    srv.refused.fetch_add(1, Ordering::Relaxed);
                    reply(&mut io, "550 5.7.1 sender not allowed\r\n").await?;
                } else {
                    tx = Transaction { from: Some(from.address), ..Default::default() };
                    reply(&mut io, "250 2.1.0 OK\r\n").await?;
                }
            }
            Ok(Request::Rcpt { to }) => {
                if tx.from.is_none() {
                    reply(&mut io, "503 5.5.1 MAIL first\r\n").await?;
                } else if tx.to.len() >= MAX_RCPTS {
                    reply(&mut io, "452 4.5.3 too many recipients\r\n").await?;
                } else {
                    let bounce = srv.cfg.bounces.iter().any(|b| b.eq_ignore_ascii_case(&to.address));
                    if bounce {
                        tx.bounce = true;
                        reply(&mut io, "250 2.1.5 OK\r\n").await?;
                        continue;
                    }
                    let null_sender = tx.from.as_deref() == Some("");
                    if let Some(mb) = srv.cfg.mailboxes.iter().find(|m| !null_sender && m.eq_ignore_ascii_case(&to.address)) {
                        tx.mailboxes.push(mb.clone());
                        reply(&mut io, "250 2.1.5 OK\r\n").await?;
                        continue;
                    }
                    if tx.from.as_deref() == Some("") {
                        srv.refused.fetch_add(1, Ordering::Relaxed);
                        reply(&mut io, "550 5.7.1 the null sender may only write to a bounce address\r\n").await?;
                        continue;
                    }
                    match number_of(&to.address, &domain) {
                        Some(n) => {
                            tx.to.push(n);
                            reply(&mut io, "250 2.1.5 OK\r\n").await?;
                        }
                        None => {
                            srv.refused.fetch_add(1, Ordering::Relaxed);
                            reply(&mut io, "550 5.1.1 no such recipient here\r\n").await?;
                        }
                    }
                }
            }
            Ok(Request::Data) => {
                if tx.to.is_empty() && !tx.bounce && tx.mailboxes.is_empty() {
                    reply(&mut io, "503 5.5.1 RCPT first\r\n").await?;
                    continue;
                }
                reply(&mut io, "354 end with <CRLF>.<CRLF>\r\n").await?;
                let data = read_data(&mut io, srv.cfg.max_bytes).await?;
                let answer = match data {
                    None => "552 5.3.4 message too large\r\n".to_string(),
                    Some(d) => submit(srv, &tx, &d).await,
                };
                tx = Transaction::default();
                reply(&mut io, &answer).await?;
            }
            Ok(Request::Auth { mechanism, initial_response }) => {
                if srv.cfg.accounts.is_empty() {
                    reply(&mut io, "502 5.5.1 AUTH not offered\r\n").await?;
                } else if !tls_on {
                    reply(&mut io, "538 5.7.11 encryption required for AUTH\r\n").await?;
                } else if authed {
                    reply(&mut io, "503 5.5.1 already authenticated\r\n").await?;
                } else {
                    let ok = match auth(&mut io, mechanism, &initial_response).await? {
                        Some((user, pass)) => check_account(&srv.cfg.accounts, &user, &pass),
                        None => false,
                    };
                    if ok {
                        authed = true;
                        reply(&mut io, "235 2.7.0 authenticated\r\n").await?;
                    } else {
                        srv.refused.fetch_add(1, Ordering::Relaxed);
                        reply(&mut io, "535 5.7.8 authentication failed\r\n").await?;
                    }
                }
            }
            Ok(Request::Rset) => {
                tx = Transaction::default();
                reply(&mut io, "250 2.0.0 OK\r\n").await?;
            }
            Ok(Request::Noop { .. }) => reply(&mut io, "250 2.0.0 OK\r\n").await?,
            Ok(Request::Vrfy { .. }) => reply(&mut io, "252 2.5.0 cannot verify\r\n").await?,
            Ok(Request::Quit) => {
                reply(&mut io, "221 2.0.0 bye\r\n").await?;
                return Ok(());
            }
            Ok(_) => reply(&mut io, "502 5.5.1 not implemented\r\n").await?,
            Err(_) => reply(&mut io, "500 5.5.2 syntax error\r\n").await?,
        }
    }
}

/// The credentials of an AUTH exchange (PLAIN, with or without an initial response, or LOGIN),
/// or `None` when they are malformed or the mechanism is not offered.
async fn auth(io: &mut BufReader<Box<dyn Stream>>, mechanism: u64, initial: &str) -> io::Result<Option<(String, String)>> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let decode = |s: &str| b64.decode(s.trim()).ok().and_then(|b| String::from_utf8(b).ok());
    if mechanism == smtp_proto::AUTH_PLAIN {
        let resp = if initial.is_empty() { ask(io, "334 \r\n").await?.unwrap_or_default() } else { initial.to_string() };
        let Some(text) = decode(&resp) else { return Ok(None) };
        let mut it = text.split('\0');
        let (_authz, user, pass) = (it.next(), it.next(), it.next());
        return Ok(user.zip(pass).map(|(u, p)| (u.to_string(), p.to_string())));
    }
    if mechanism == smtp_proto::AUTH_LOGIN {
        let user = if initial.is_empty() { ask(io, "334 VXNlcm5hbWU6\r\n").await?.unwrap_or_default() } else { initial.to_string() };
        let pass = ask(io, "334 UGFzc3dvcmQ6\r\n").await?.unwrap_or_default();
        return Ok(decode(&user).zip(decode(&pass)));
    }
    Ok(None)
}

/// Send a 334 prompt and read the client's line.
async fn ask(io: &mut BufReader<Box<dyn Stream>>, prompt: &str) -> io::Result<Option<String>> {
    reply(io, prompt).await?;
    Ok(read_line(io).await?.map(|l| String::from_utf8_lossy(&l).trim().to_string()))
}

fn check_account(accounts: &[super::config::SmtpAccount], user: &str, pass: &str) -> bool {
    accounts
        .iter()
        .filter(|a| a.username == user)
        .any(|a| crate::secret::parse_hash(&a.password).is_ok_and(|h| h.verify(pass)))
}

/// The mail after DATA, unstuffed; `None` when over `max` (read to its end all the same).
async fn read_data(io: &mut BufReader<Box<dyn Stream>>, max: usize) -> io::Result<Option<Vec<u8>>> {
    let mut rx = DataReceiver::new();
    let mut data = Vec::new();
    let mut too_big = false;
    loop {
        let buf = io.fill_buf().await?;
        if buf.is_empty() {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let mut it = buf.iter();
        let done = rx.ingest(&mut it, &mut data);
        let used = buf.len() - it.as_slice().len();
        io.consume(used);
        if data.len() > max {
            too_big = true;
            data.clear();
        }
        if done {
            return Ok((!too_big).then_some(data));
        }
    }
}

fn allowed(list: &[String], sender: &str) -> bool {
    list.is_empty() || list.iter().any(|p| pattern_matches(p, sender))
}

/// The SMS sender for mail from `mail_from`: by address, then by domain, then the default.
fn sms_sender(cfg: &super::config::SmtpServerConfig, mail_from: &str) -> Option<String> {
    let by = |domain: bool| {
        cfg.senders
            .iter()
            .find(|(p, _)| p.starts_with('@') == domain && pattern_matches(p, mail_from))
            .map(|(_, v)| v.clone())
    };
    by(false).or_else(|| by(true)).or_else(|| cfg.sms_sender.clone())
}

/// `+447400123123@domain` or `447400123123@domain` → `+447400123123`.
fn number_of(address: &str, domain: &str) -> Option<String> {
    let (local, d) = address.rsplit_once('@')?;
    if !d.eq_ignore_ascii_case(domain) {
        return None;
    }
    let digits = local.strip_prefix('+').unwrap_or(local);
    crate::model::address::NumberPlan::default().destination(&format!("+{digits}")).ok()
}

/// The subject of a parsed mail and the SMS made of it (`body` chooses what; cut to `max`
/// segments), or why none can be made.
pub fn sms_of_mail(
    mail: &mail_parser::Message,
    body: super::config::SmsBody,
    max: usize,
) -> Result<(String, crate::model::Sms), String> {
    use super::config::SmsBody;
    let subject = mail.subject().unwrap_or("").trim().to_string();
    let text = mail.body_text(0).map(|t| t.trim().to_string()).unwrap_or_default();
    let text = match body {
        SmsBody::Subject => subject.clone(),
        SmsBody::Text => text,
        SmsBody::SubjectAndText if subject.is_empty() => text,
        SmsBody::SubjectAndText => format!("{subject}\n{text}").trim().to_string(),
    };
    let spec = BodySpec { text: Some(crate::codec::segment::fit(&text, max)), binary: None, data_coding: None, coding: None, udh: None };
    check_body(spec, max)
        .map(|sms| (subject, sms))
        .map_err(|e| format!("no text for an SMS: {}", e.message))
}

/// Store the mail as an inbound email to `mailbox`, its attachments as blobs; the message id, or
/// the reply to send.
async fn store_mail(
    srv: &SmtpServer,
    hub: &std::sync::Arc<dyn crate::connector::HubSink>,
    tx: &Transaction,
    mailbox: &str,
    mail: &mail_parser::Message<'_>,
) -> Result<String, String> {
    use mail_parser::MimeHeaders;
    let busy = |_| "451 4.3.0 cannot take mail now, try again later\r\n".to_string();
    let mut attachments = Vec::new();
    for a in mail.attachments() {
        let bytes = a.contents();
        if bytes.is_empty() {
            continue;
        }
        let digest = hub.put_blob(bytes).await.map_err(busy)?;
        let media_type = a
            .content_type()
            .map(|c| format!("{}/{}", c.ctype(), c.subtype().unwrap_or("octet-stream")))
            .unwrap_or_else(|| "application/octet-stream".into());
        attachments.push(crate::model::BlobRef {
            digest,
            size: bytes.len() as u64,
            media_type,
            filename: a.attachment_name().map(str::to_string),
        });
    }
    let from = tx.from.clone().unwrap_or_default();
    let env = Envelope {
        channel: Channel::Email,
        from: (!from.is_empty()).then(|| Address::Email(from.clone())),
        to: Address::Email(mailbox.to_string()),
        content: Content::Email(crate::model::Email {
            subject: mail.subject().unwrap_or("").to_string(),
            cc: Vec::new(),
            bcc: Vec::new(),
            reply_to: None,
            text: mail.body_text(0).map(|t| t.to_string()),
            // (mail-parser offers a text part as HTML too: only a real text/html part counts.)
            html: mail
                .html_part(0)
                .filter(|p| matches!(p.body, mail_parser::PartType::Html(_)))
                .and_then(|_| mail.body_html(0))
                .map(|h| h.to_string()),
            attachments,
        }),
        client_ref: None,
        metadata: Some(serde_json::json!({"email": {"message_id": mail.message_id()}})),
        tags: Vec::new(),
        priority: 0,
        send_at: None,
        expires_at: now_ms(),
        origin: Origin::Network,
    };
    // A client that re-sends after a lost 250 sends the same Message-ID: stored once.
    let peer_id = mail.message_id().map(|m| format!("{mailbox} {m}"));
    hub.receive_envelope(srv.name.clone(), env, peer_id).await.map(|id| id.to_string()).map_err(busy)
}

/// Turn the mail into one SMS per recipient; the reply to send.
async fn submit(srv: &SmtpServer, tx: &Transaction, data: &[u8]) -> String {
    let Some(hub) = srv.hub.get() else {
        return "451 4.3.0 not ready\r\n".into();
    };
    let Some(mail) = mail_parser::MessageParser::default().parse(data) else {
        return "554 5.6.0 malformed message\r\n".into();
    };
    if tx.bounce {
        match super::dsn::read(&mail, data) {
            Some(b) => {
                tracing::info!(connector = %srv.name, id = %b.id, state = b.state.as_str(), "bounce received");
                hub.report_for(b.id, b.state, b.error);
            }
            None => tracing::debug!(connector = %srv.name, "mail to a bounce address that is no DSN of ours: dropped"),
        }
    }
    let mut ids = Vec::new();
    for mailbox in &tx.mailboxes {
        match store_mail(srv, hub, tx, mailbox, &mail).await {
            Ok(id) => ids.push(id),
            Err(reply) => return reply,
        }
    }
    if tx.to.is_empty() {
        srv.received.fetch_add(1, Ordering::Relaxed);
        return format!("250 2.0.0 OK {}\r\n", ids.join(","));
    }
    let (subject, sms) = match sms_of_mail(&mail, srv.cfg.body, srv.cfg.max_segments) {
        Ok(x) => x,
        Err(why) => return format!("554 5.6.0 {why}\r\n"),
    };
    let from = tx.from.clone().unwrap_or_default();
    let now = now_ms();
    let mut ids = Vec::new();
    // A reply to a mail that forwarded an SMS: back to the phone from the number it wrote to.
    let in_reply_to = mail.in_reply_to().as_text().or_else(|| mail.in_reply_to().as_text_list().and_then(|l| l.first().map(|c| c.as_ref())));
    for to in &tx.to {
        let thread = in_reply_to.and_then(|r| hub.thread(r, to));
        // (A modem does not know its own number: its SMS then come from the bank's default.)
        let env = Envelope {
            channel: Channel::Sms,
            from: match &thread {
                Some((_, number)) if !number.is_empty() => Some(Address::sms(number.clone())),
                _ => sms_sender(&srv.cfg, &from).map(Address::sms),
            },
            to: Address::Msisdn(to.clone()),
            content: Content::Sms(sms.clone()),
            client_ref: None,
            metadata: Some(serde_json::json!({"email": {
                "from": from,
                "subject": subject,
                "message_id": mail.message_id(),
            }})),
            tags: Vec::new(),
            priority: 0,
            send_at: None,
            expires_at: now + 48 * 3600 * 1000,
            origin: match thread {
                Some((parent, _)) => Origin::Forward { parent },
                None => Origin::Peer { connector: srv.name.to_string(), account: from.clone() },
            },
        };
        match hub.submit(env).await {
            Ok(id) => ids.push(id.to_string()),
            Err(SubmitError::NoRoute) => return format!("554 5.7.1 no route for {to}\r\n"),
            Err(SubmitError::Busy) | Err(SubmitError::Store(_)) => {
                return "451 4.3.0 cannot take mail now, try again later\r\n".into()
            }
        }
    }
    srv.received.fetch_add(1, Ordering::Relaxed);
    format!("250 2.0.0 OK queued as {}\r\n", ids.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_senders_and_fitting() {
        assert_eq!(number_of("+447400123123@sms.example", "sms.example").as_deref(), Some("+447400123123"));
        assert_eq!(number_of("447400123123@SMS.example", "sms.example").as_deref(), Some("+447400123123"));
        assert_eq!(number_of("ana@sms.example", "sms.example"), None);
        assert_eq!(number_of("+447400123123@other.example", "sms.example"), None);
        assert!(allowed(&[], "x@y.z"));
        assert!(allowed(&["@ops.example".into()], "Ana@OPS.example"));
        assert!(!allowed(&["@ops.example".into()], "ana@evil.example"));
        assert!(allowed(&["ana@ops.example".into()], "ANA@ops.example"));
    }
}
