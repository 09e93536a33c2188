//! Bounces: a delivery status notification (RFC 3464, `multipart/report;
//! report-type=delivery-status`) about mail Postern sent. Our Message-IDs are
//! `<message id@domain>`, so the original's headers (`message/rfc822` or
//! `text/rfc822-headers`) name the message; its `Action` and `Status` fields say what happened.

use crate::model::{MessageId, State};
use mail_parser::MimeHeaders;

/// What a DSN says about one of our messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bounce {
    pub id: MessageId,
    pub state: State,
    /// `Status` (e.g. `5.1.1`) and `Diagnostic-Code`, when given.
    pub error: Option<String>,
}

/// The ids of ours in `Message-ID:`, `In-Reply-To:` and `References:` lines of `text`.
fn our_ids(text: &str) -> Vec<MessageId> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((name, value)) = line.split_once(':') else { continue };
        let name = name.trim().to_ascii_lowercase();
        if !matches!(name.as_str(), "message-id" | "in-reply-to" | "references" | "original-envelope-id") {
            continue;
        }
        for token in value.split(|c: char| c.is_whitespace() || c == '<' || c == '>').filter(|t| !t.is_empty()) {
            if let Some(local) = token.split('@').next() {
                if let Ok(id) = local.parse::<MessageId>() {
                    out.push(id);
                }
            }
        }
    }
    out
}

/// Read a DSN; `None` when the mail is not one or names none of our messages.
pub fn read(mail: &mail_parser::Message, raw: &[u8]) -> Option<Bounce> {
    let ct = mail.content_type()?;
    if !ct.ctype().eq_ignore_ascii_case("multipart") || !ct.subtype().is_some_and(|s| s.eq_ignore_ascii_case("report")) {
        return None;
    }
    let mut status_text = String::new();
    let mut headers_text = String::new();
    for part in mail.parts.iter() {
        let Some(pct) = part.content_type() else { continue };
        let kind = format!("{}/{}", pct.ctype(), pct.subtype().unwrap_or("")).to_ascii_lowercase();
        match (kind.as_str(), &part.body) {
            ("message/delivery-status" | "message/global-delivery-status", b) => {
                if let Some(t) = body_text(b) {
                    status_text.push_str(&t);
                }
            }
            ("text/rfc822-headers" | "message/rfc822-headers", b) => {
                if let Some(t) = body_text(b) {
                    headers_text.push_str(&t);
                }
            }
            (_, mail_parser::PartType::Message(inner)) => {
                if let Some(mid) = inner.message_id() {
                    headers_text.push_str(&format!("\nMessage-ID: <{mid}>\n"));
                }
            }
            _ => {}
        }
    }
    if headers_text.is_empty() {
        // Some reporters put the original headers in a part mail-parser does not type.
        headers_text = String::from_utf8_lossy(raw).into_owned();
    }
    let id = *our_ids(&headers_text).first()?;
    let field = |name: &str| {
        status_text.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    };
    let action = field("Action").unwrap_or_default().to_ascii_lowercase();
    let state = match action.as_str() {
        "failed" => State::Undelivered,
        "delivered" | "relayed" | "expanded" => State::Delivered,
        _ => return None, // delayed: not final
    };
    let error = match (field("Status"), field("Diagnostic-Code")) {
        (None, None) => None,
        (s, d) => Some([s, d].into_iter().flatten().collect::<Vec<_>>().join(" ")),
    };
    Some(Bounce { id, state, error })
}

fn body_text(b: &mail_parser::PartType) -> Option<String> {
    match b {
        mail_parser::PartType::Text(t) | mail_parser::PartType::Html(t) => Some(t.to_string()),
        mail_parser::PartType::Binary(b) | mail_parser::PartType::InlineBinary(b) => Some(String::from_utf8_lossy(b).into_owned()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_dsn_names_our_message() {
        let id = MessageId(0x0123_4567_89ab_cdef);
        let raw = format!(
            "From: MAILER-DAEMON@mx.example\r\nTo: bounces@postern.example\r\nSubject: Undelivered\r\nMessage-ID: <dsn1@mx.example>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nCould not deliver.\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example\r\n\r\nFinal-Recipient: rfc822; ana@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1 no such user\r\n--b\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: alerts@postern.example\r\nMessage-ID: <{id}@postern.example>\r\nSubject: s\r\n--b--\r\n"
        );
        let mail = mail_parser::MessageParser::default().parse(raw.as_bytes()).unwrap();
        let b = read(&mail, raw.as_bytes()).unwrap();
        assert_eq!(b.id, id);
        assert_eq!(b.state, State::Undelivered);
        assert_eq!(b.error.as_deref(), Some("5.1.1 smtp; 550 5.1.1 no such user"));
        let delayed = raw.replace("Action: failed", "Action: delayed");
        let mail = mail_parser::MessageParser::default().parse(delayed.as_bytes()).unwrap();
        assert_eq!(read(&mail, delayed.as_bytes()), None);
        let plain = "From: a@b.c\r\nSubject: hi\r\n\r\ntext\r\n";
        let mail = mail_parser::MessageParser::default().parse(plain.as_bytes()).unwrap();
        assert_eq!(read(&mail, plain.as_bytes()), None);
    }
}
