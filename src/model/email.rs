//! The email channel's checks: addresses by RFC 5321/5322 syntax (lettre's parser, with IDN
//! domains), and the body (subject, text, HTML, attachments already stored as blobs).

use super::content::{BlobRef, Email};
use super::request::{Invalid, MessageRequest};

/// Most attachments on one message.
pub const MAX_ATTACHMENTS: usize = 20;
/// Most cc and bcc addresses together.
pub const MAX_COPIES: usize = 50;
/// Largest text or HTML part.
pub const MAX_PART_BYTES: usize = 1 << 20;
/// Longest subject (RFC 5322's line limit).
pub const MAX_SUBJECT: usize = 998;
/// Most bytes of attachments on one message (before base64: a mail of about 33 MiB, under the
/// 35 MiB most providers take).
pub const MAX_ATTACHMENT_BYTES: u64 = 25 << 20;

/// One attachment as the API gives it: a stored blob (`digest`) or the bytes themselves
/// (`content_base64`, stored by the API before validation, which fills in `digest` and `size`).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttachmentRequest {
    #[serde(default)]
    pub filename: Option<String>,
    #[serde(default)]
    pub content_type: Option<String>,
    #[serde(default)]
    pub digest: Option<String>,
    #[serde(default)]
    pub content_base64: Option<String>,
    /// Filled in by the API once the blob is known to exist.
    #[serde(skip)]
    pub size: Option<u64>,
}

/// A mailbox address, normalised (`User@Example.ORG` keeps its local part, lowercases the
/// domain); why not, otherwise.
pub fn address(raw: &str) -> Result<String, String> {
    let t = raw.trim();
    let a: lettre::Address = t
        .parse()
        .map_err(|e| format!("{t:?} is not an email address ({e})"))?;
    Ok(format!("{}@{}", a.user(), a.domain().to_lowercase()))
}

/// Check the email parts of a request and build its content.
pub fn content(req: &MessageRequest) -> Result<Email, Invalid> {
    if req.binary.is_some() || req.data_coding.is_some() || req.coding.is_some() {
        return Err(Invalid::new(
            "invalid_field",
            "binary",
            "binary, data_coding and coding are for SMS, not email",
        ));
    }
    let subject = req.subject.clone().unwrap_or_default();
    if subject.trim().is_empty() {
        return Err(Invalid::new("empty_subject", "subject", "an email needs a subject"));
    }
    if subject.len() > MAX_SUBJECT || subject.contains(['\r', '\n']) {
        return Err(Invalid::new(
            "invalid_field",
            "subject",
            format!("subject must be one line of at most {MAX_SUBJECT} bytes"),
        ));
    }
    let text = req.text.clone().filter(|t| !t.is_empty());
    let html = req.html.clone().filter(|t| !t.is_empty());
    if text.is_none() && html.is_none() {
        return Err(Invalid::new("empty_body", "text", "an email needs text or html"));
    }
    for (field, part) in [("text", &text), ("html", &html)] {
        if part.as_ref().is_some_and(|p| p.len() > MAX_PART_BYTES) {
            return Err(Invalid::new(
                "body_too_large",
                field,
                format!("{field} is larger than {MAX_PART_BYTES} bytes"),
            ));
        }
    }
    if req.attachments.len() > MAX_ATTACHMENTS {
        return Err(Invalid::new(
            "too_many_attachments",
            "attachments",
            format!("at most {MAX_ATTACHMENTS} attachments"),
        ));
    }
    let mut attachments = Vec::with_capacity(req.attachments.len());
    for a in &req.attachments {
        let (Some(digest), Some(size)) = (&a.digest, a.size) else {
            return Err(Invalid::new(
                "invalid_field",
                "attachments",
                "each attachment needs a digest (POST /v1/blobs) or content_base64",
            ));
        };
        let media_type = a
            .content_type
            .clone()
            .unwrap_or_else(|| "application/octet-stream".to_string());
        if media_type.parse::<lettre::message::header::ContentType>().is_err() {
            return Err(Invalid::new(
                "invalid_field",
                "attachments",
                format!("{media_type:?} is not a media type"),
            ));
        }
        if a.filename.as_ref().is_some_and(|f| f.is_empty() || f.len() > 255 || f.contains(['/', '\\', '\r', '\n'])) {
            return Err(Invalid::new(
                "invalid_field",
                "attachments",
                "a filename is 1-255 bytes without / \\ or line breaks",
            ));
        }
        attachments.push(BlobRef {
            digest: digest.to_lowercase(),
            size,
            media_type,
            filename: a.filename.clone(),
        });
    }
    let total: u64 = attachments.iter().map(|a| a.size).sum();
    if total > MAX_ATTACHMENT_BYTES {
        return Err(Invalid::new(
            "attachments_too_large",
            "attachments",
            format!("the attachments hold {total} bytes, more than {MAX_ATTACHMENT_BYTES}"),
        ));
    }
    if req.cc.len() + req.bcc.len() > MAX_COPIES {
        return Err(Invalid::new("too_many_recipients", "cc", format!("at most {MAX_COPIES} cc and bcc addresses")));
    }
    let list = |field: &'static str, v: &[String]| -> Result<Vec<String>, Invalid> {
        v.iter().map(|a| address(a).map_err(|e| Invalid::new("invalid_field", field, e))).collect()
    };
    let cc = list("cc", &req.cc)?;
    let bcc = list("bcc", &req.bcc)?;
    let reply_to = match &req.reply_to {
        Some(r) => Some(address(r).map_err(|e| Invalid::new("invalid_field", "reply_to", e))?),
        None => None,
    };
    Ok(Email { subject, cc, bcc, reply_to, text, html, attachments })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(address(" Alerts@Example.ORG ").unwrap(), "Alerts@example.org");
        assert!(address("no-at-sign").is_err());
        assert!(address("a@b@c").is_err());
        assert!(address("").is_err());
        assert!(address("user@bücher.example").is_ok(), "IDN domain");
    }
}
