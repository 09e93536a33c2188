//! Turning API input into messages: the JSON shape of `POST /v1/messages`, and validation per
//! channel (destination, sender, body, segments, schedule, validity). Errors carry a stable
//! code and the field they concern.

use super::address::{validate_sender, NumberPlan};
use super::message::{now_ms, Millis};
use super::{Address, Body, Content, Envelope, Origin, Sms};
use crate::time::parse_rfc3339;
use crate::codec::{gsm7, segment, Coding};
use super::{Channel, OneOrMany};
use serde::Deserialize;
use std::borrow::Cow;

use serde::Serialize;

/// `[sms]`: validation of the SMS channel.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmsConfig {
    pub max_segments: usize,
    /// Country code (digits) for national-format numbers, e.g. "44".
    pub country_code: Option<String>,
    /// Trunk prefix of national numbers, stripped before the country code is added.
    pub trunk_prefix: String,
    /// Sender used when a message has none.
    pub default_sender: Option<String>,
}

impl Default for SmsConfig {
    fn default() -> Self {
        SmsConfig {
            max_segments: 10,
            country_code: None,
            trunk_prefix: "0".into(),
            default_sender: None,
        }
    }
}

/// `POST /v1/messages` body (also one item of a batch).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageRequest {
    pub to: OneOrMany,
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub text: Option<String>,
    /// Hex payload, with `data_coding`.
    #[serde(default)]
    pub binary: Option<String>,
    #[serde(default)]
    pub data_coding: Option<u8>,
    /// `auto` (default), `gsm7` or `ucs2`.
    #[serde(default)]
    pub coding: Option<String>,
    #[serde(default)]
    pub channel: Option<Channel>,
    #[serde(default)]
    pub client_ref: Option<String>,
    #[serde(default)]
    pub metadata: Option<serde_json::Value>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub priority: Option<u8>,
    /// RFC 3339 time.
    #[serde(default)]
    pub send_at: Option<String>,
    /// Seconds (number) or an RFC 3339 expiry time.
    #[serde(default)]
    pub validity: Option<serde_json::Value>,
    #[serde(default)]
    pub callback_url: Option<String>,
    /// Email: the subject line.
    #[serde(default)]
    pub subject: Option<String>,
    /// Email: an HTML part beside (or instead of) `text`.
    #[serde(default)]
    pub html: Option<String>,
    /// Email: files, each a stored blob or its bytes in base64.
    #[serde(default)]
    pub attachments: Vec<super::email::AttachmentRequest>,
    /// Email: copies to these addresses (seen by all).
    #[serde(default)]
    pub cc: Vec<String>,
    /// Email: copies to these addresses (not shown).
    #[serde(default)]
    pub bcc: Vec<String>,
    /// Email: where replies go.
    #[serde(default)]
    pub reply_to: Option<String>,
    /// A template's name: it gives the body (`text`, and for email `subject` and `html`).
    #[serde(default)]
    pub template: Option<String>,
    /// The template's variables (a JSON object).
    #[serde(default)]
    pub params: Option<serde_json::Value>,
    /// The template's language (`pt-BR`; falls back to `pt`, then the default).
    #[serde(default)]
    pub language: Option<String>,
}

/// A validation failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub code: &'static str,
    pub message: String,
    /// The field concerned: `to`, or a path such as `params.name`.
    pub field: Cow<'static, str>,
}

impl Invalid {
    pub fn new(code: &'static str, field: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Invalid {
            code,
            message: message.into(),
            field: field.into(),
        }
    }
}

/// The result of validating one request: drafts per good recipient, rejections per bad one.
#[derive(Debug)]
pub struct Validated {
    pub drafts: Vec<Envelope>,
    pub rejected: Vec<(String, Invalid)>,
}

/// Limits the validation needs.
pub struct Rules<'a> {
    pub sms: &'a SmsConfig,
    pub plan: &'a NumberPlan,
    pub default_validity_s: u64,
    pub templates: &'a dyn super::template::Templates,
}

/// Fill the body from the request's template, if it names one.
fn apply_template(req: &mut MessageRequest, channel: Channel, rules: &Rules) -> Result<(), Invalid> {
    let Some(name) = req.template.as_deref() else {
        if req.params.is_some() || req.language.is_some() {
            let field = if req.params.is_some() { "params" } else { "language" };
            return Err(Invalid::new("invalid_field", field, format!("{field} goes with template")));
        }
        return Ok(());
    };
    if let Some(field) = [("text", req.text.is_some()), ("subject", req.subject.is_some()), ("html", req.html.is_some())]
        .into_iter()
        .find_map(|(f, given)| given.then_some(f))
    {
        return Err(Invalid::new("invalid_field", field, format!("give a template or {field}, not both")));
    }
    let params = req.params.clone().unwrap_or(serde_json::Value::Null);
    let r = rules.templates.render(name, channel, req.language.as_deref(), &params)?;
    req.text = r.text;
    if channel == Channel::Email {
        req.subject = r.subject;
        req.html = r.html;
    }
    Ok(())
}

/// The body as given, before splitting into recipients.
pub struct BodySpec {
    pub text: Option<String>,
    pub binary: Option<Vec<u8>>,
    pub data_coding: Option<u8>,
    pub coding: Option<Coding>,
    pub udh: Option<Vec<u8>>,
}

fn check_url(u: &str, field: &'static str) -> Result<(), Invalid> {
    if (u.starts_with("http://") || u.starts_with("https://"))
        && u.len() <= 2048
        && !u.contains(char::is_whitespace)
    {
        Ok(())
    } else {
        Err(Invalid::new(
            "invalid_field",
            field,
            format!("{field} must be an http:// or https:// URL"),
        ))
    }
}

/// Measure and check an SMS body (with its UDH, if any).
pub fn check_body(spec: BodySpec, max_segments: usize) -> Result<Sms, Invalid> {
    let udh_len = spec.udh.as_ref().map_or(0, |u| u.len());
    if udh_len >= segment::USER_DATA_OCTETS {
        return Err(Invalid::new(
            "invalid_field",
            "udh",
            "udh is longer than one SMS",
        ));
    }
    let (body, coding, segments) = match (spec.text, spec.binary) {
        (Some(_), Some(_)) => {
            return Err(Invalid::new(
                "invalid_field",
                "text",
                "give either text or binary, not both",
            ))
        }
        (None, None) => {
            return Err(Invalid::new(
                "empty_body",
                "text",
                "a message needs text or binary",
            ))
        }
        (Some(t), None) => {
            if t.is_empty() {
                return Err(Invalid::new("empty_body", "text", "text is empty"));
            }
            // Measured once: the coding chosen for the text also gives its segment count.
            let (coding, measured) = match spec.coding {
                Some(Coding::Gsm7) => {
                    if let Err(e) = gsm7::septet_len(&t) {
                        return Err(Invalid::new(
                            "unencodable_text",
                            "text",
                            format!("coding gsm7: {e}"),
                        ));
                    }
                    (Coding::Gsm7, None)
                }
                Some(c) => (c, None),
                None => {
                    let m = segment::measure(&t);
                    (m.coding, Some(m.segments))
                }
            };
            let segments = if udh_len > 0 {
                // A client-supplied UDH (Kannel) means the client does the splitting: one part.
                let units = match coding {
                    Coding::Gsm7 => gsm7::septet_len(&t).unwrap_or(usize::MAX),
                    Coding::Ucs2 => crate::codec::ucs2::unit_len(&t),
                    Coding::Binary => t.len(),
                };
                if units > segment::capacity(coding, udh_len + 1) {
                    return Err(Invalid::new(
                        "too_many_segments",
                        "text",
                        "text with a udh must fit one SMS",
                    ));
                }
                1
            } else {
                measured.unwrap_or_else(|| segment::count(&t, coding))
            };
            (Body::Text(t), coding, segments)
        }
        (None, Some(data)) => {
            if data.is_empty() {
                return Err(Invalid::new("empty_body", "binary", "binary is empty"));
            }
            let dc = spec.data_coding.unwrap_or(0x04);
            let segments = if udh_len > 0 {
                if data.len() + udh_len + 1 > segment::USER_DATA_OCTETS {
                    return Err(Invalid::new(
                        "too_many_segments",
                        "binary",
                        "binary with a udh must fit one SMS",
                    ));
                }
                1
            } else {
                segment::split_binary(&data, segment::ConcatRef::Bits8).len()
            };
            (
                Body::Binary {
                    data,
                    data_coding: dc,
                },
                Coding::Binary,
                segments,
            )
        }
    };
    if segments > max_segments {
        return Err(Invalid::new(
            "too_many_segments",
            "text",
            format!(
                "the message needs {segments} segments, more than the maximum of {max_segments}"
            ),
        ));
    }
    Ok(Sms {
        body,
        udh: spec.udh,
        coding,
        segments: segments as u16,
    })
}

/// Parse `validity`: seconds from now (number) or an RFC 3339 expiry.
pub fn parse_validity(v: &serde_json::Value, now: Millis) -> Result<Millis, Invalid> {
    let bad = || {
        Invalid::new(
            "invalid_field",
            "validity",
            "validity must be seconds (1..=2592000) or an RFC 3339 time",
        )
    };
    match v {
        serde_json::Value::Number(n) => match n.as_u64() {
            Some(s) if (1..=30 * 86_400).contains(&s) => Ok(now + s as i64 * 1000),
            _ => Err(bad()),
        },
        serde_json::Value::String(s) => parse_rfc3339(s).filter(|&t| t > now).ok_or_else(bad),
        _ => Err(bad()),
    }
}

/// The sender and content of an SMS request.
fn sms_parts(req: &MessageRequest, rules: &Rules) -> Result<(Option<Address>, Content), Invalid> {
    let email_field = if req.subject.is_some() {
        Some("subject")
    } else if req.html.is_some() {
        Some("html")
    } else if !req.attachments.is_empty() {
        Some("attachments")
    } else if !req.cc.is_empty() || !req.bcc.is_empty() || req.reply_to.is_some() {
        Some("cc")
    } else {
        None
    };
    if let Some(field) = email_field {
        return Err(Invalid::new(
            "invalid_field",
            field,
            "subject, html and attachments are for email, not SMS",
        ));
    }
    let from = match req.from.clone().or_else(|| rules.sms.default_sender.clone()) {
        Some(f) => {
            validate_sender(&f)
                .map_err(|e| Invalid::new("invalid_sender", "from", e.to_string()))?;
            Some(Address::sms(f))
        }
        None => None,
    };
    let coding = match req.coding.as_deref() {
        None | Some("auto") => None,
        Some("gsm7") => Some(Coding::Gsm7),
        Some("ucs2") => Some(Coding::Ucs2),
        Some(other) => {
            return Err(Invalid::new(
                "invalid_field",
                "coding",
                format!("coding must be auto, gsm7 or ucs2, got {other:?}"),
            ))
        }
    };
    let binary = match &req.binary {
        Some(h) => Some(
            hex::decode(h)
                .map_err(|_| Invalid::new("invalid_field", "binary", "binary must be hex"))?,
        ),
        None => None,
    };
    if req.data_coding.is_some() && binary.is_none() {
        return Err(Invalid::new(
            "invalid_field",
            "data_coding",
            "data_coding goes with binary",
        ));
    }
    let content = Content::Sms(check_body(
        BodySpec {
            text: req.text.clone(),
            binary,
            data_coding: req.data_coding,
            coding,
            udh: None,
        },
        rules.sms.max_segments,
    )?);
    Ok((from, content))
}

/// Most bytes of an XMPP message's text (servers refuse large stanzas: Prosody's default
/// `c2s_stanza_size_limit` is 256 KiB).
pub const MAX_CHAT_BYTES: usize = 64 * 1024;

/// A bare JID (`user@domain`, an `xmpp:` URI's path too), normalised as RFC 7622 says; a full
/// JID's resource is refused (messages go to the account, the server picks the session).
pub fn jid(raw: &str) -> Result<String, String> {
    let raw = raw.trim();
    let raw = raw.strip_prefix("xmpp:").unwrap_or(raw);
    let j: jid::Jid = raw.parse().map_err(|e| format!("not a JID: {e}"))?;
    if j.node().is_none() {
        return Err("a JID with a user part (user@domain) is needed".into());
    }
    if j.resource().is_some() {
        return Err("a bare JID (user@domain), without a resource".into());
    }
    Ok(j.to_string())
}

/// Where a social post goes: an audience (`public`, `unlisted`, `followers`), a handle to
/// mention (`@user`, `@user@instance`), or `dm:<numeric account id>`.
pub fn social(raw: &str) -> Result<String, String> {
    let raw = raw.trim();
    let handle_ok = |s: &str| !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    let host_ok = |s: &str| !s.is_empty() && s.len() <= 253 && s.contains('.') && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
    let ok = match raw {
        "public" | "unlisted" | "followers" => true,
        _ if raw.starts_with("dm:") => raw[3..].len() <= 32 && !raw[3..].is_empty() && raw[3..].bytes().all(|b| b.is_ascii_digit()),
        _ => match raw.strip_prefix('@').map(|r| r.split_once('@').unwrap_or((r, ""))) {
            Some((user, "")) => handle_ok(user),
            Some((user, host)) => handle_ok(user) && host_ok(host),
            None => false,
        },
    };
    if ok {
        Ok(raw.to_string())
    } else {
        Err("public, unlisted, followers, @user, @user@instance or dm:<account id>".into())
    }
}

/// Validate a JSON request into drafts.
pub fn validate(mut req: MessageRequest, rules: &Rules) -> Result<Validated, Invalid> {
    let now = now_ms();
    // Explicit, or from the first recipient: an address with `@` is email.
    let first_to = req.to.to_vec().into_iter().next().unwrap_or_default();
    let channel = req
        .channel
        .unwrap_or(if first_to.contains('@') { Channel::Email } else { Channel::Sms });
    apply_template(&mut req, channel, rules)?;
    let (from, content) = match channel {
        Channel::Sms => sms_parts(&req, rules)?,
        Channel::Email => {
            let from = match &req.from {
                Some(f) => Some(Address::Email(
                    super::email::address(f).map_err(|e| Invalid::new("invalid_sender", "from", e))?,
                )),
                None => None,
            };
            (from, Content::Email(super::email::content(&req)?))
        }
        Channel::Xmpp | Channel::Social => {
            let from = match &req.from {
                Some(_) if channel == Channel::Social => {
                    return Err(Invalid::new("invalid_field", "from", "a social post goes out as the connector's account"))
                }
                Some(f) => Some(Address::Jid(jid(f).map_err(|e| Invalid::new("invalid_sender", "from", e))?)),
                None => None,
            };
            let text = match &req.text {
                Some(t) if !t.is_empty() => t.clone(),
                _ => return Err(Invalid::new("missing_field", "text", format!("a {} message needs text", channel.as_str()))),
            };
            if text.len() > MAX_CHAT_BYTES {
                return Err(Invalid::new("text_too_long", "text", format!("at most {MAX_CHAT_BYTES} bytes")));
            }
            if req.binary.is_some() || req.subject.is_some() || req.html.is_some() || !req.attachments.is_empty() {
                return Err(Invalid::new("invalid_field", "channel", format!("a {} message is text only", channel.as_str())));
            }
            (from, Content::Chat(super::Chat { text }))
        }
    };
    let send_at = match &req.send_at {
        Some(s) => Some(parse_rfc3339(s).ok_or_else(|| {
            Invalid::new(
                "invalid_field",
                "send_at",
                "send_at must be an RFC 3339 time",
            )
        })?),
        None => None,
    };
    let expires_at = match &req.validity {
        Some(v) => parse_validity(v, now)?,
        None => send_at.unwrap_or(now).max(now) + rules.default_validity_s as i64 * 1000,
    };
    if send_at.is_some_and(|s| s >= expires_at) {
        return Err(Invalid::new(
            "invalid_field",
            "send_at",
            "send_at is after the message expires",
        ));
    }
    if let Some(u) = &req.callback_url {
        check_url(u, "callback_url")?;
    }
    let metadata = match req.metadata {
        None | Some(serde_json::Value::Null) => None,
        Some(v @ serde_json::Value::Object(_)) => {
            let s = v.to_string();
            if s.len() > 4096 {
                return Err(Invalid::new(
                    "invalid_field",
                    "metadata",
                    "metadata is larger than 4096 bytes",
                ));
            }
            Some(v)
        }
        Some(_) => {
            return Err(Invalid::new(
                "invalid_field",
                "metadata",
                "metadata must be a JSON object",
            ))
        }
    };
    if req.client_ref.as_ref().is_some_and(|r| r.len() > 256) {
        return Err(Invalid::new(
            "invalid_field",
            "client_ref",
            "client_ref is longer than 256 bytes",
        ));
    }
    if req.tags.len() > 16 || req.tags.iter().any(|t| t.is_empty() || t.len() > 64) {
        return Err(Invalid::new(
            "invalid_field",
            "tags",
            "at most 16 tags of 1-64 bytes",
        ));
    }
    let priority = req.priority.unwrap_or(0);
    if priority > 3 {
        return Err(Invalid::new(
            "invalid_field",
            "priority",
            "priority must be 0..=3",
        ));
    }
    let recipients = req.to.to_vec();
    if recipients.is_empty() {
        return Err(Invalid::new("invalid_destination", "to", "no recipient"));
    }
    if recipients.len() > 1000 {
        return Err(Invalid::new(
            "too_many_recipients",
            "to",
            "at most 1000 recipients per request",
        ));
    }
    let mut drafts = Vec::with_capacity(recipients.len());
    let mut rejected = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for raw in recipients {
        let to = match channel {
            Channel::Sms => rules.plan.destination(&raw).map(Address::Msisdn).map_err(|e| e.to_string()),
            Channel::Email => super::email::address(&raw).map(Address::Email),
            Channel::Xmpp => jid(&raw).map(Address::Jid),
            Channel::Social => social(&raw).map(Address::Social),
        };
        match to {
            Ok(to) => {
                if !seen.insert(to.clone()) {
                    rejected.push((
                        raw,
                        Invalid::new("duplicate_destination", "to", "recipient listed twice"),
                    ));
                    continue;
                }
                drafts.push(Envelope {
                    channel,
                    from: from.clone(),
                    to,
                    content: content.clone(),
                    client_ref: req.client_ref.clone(),
                    metadata: metadata.clone(),
                    tags: req.tags.clone(),
                    priority,
                    send_at,
                    expires_at,
                    origin: Origin::Api {
                        callback_url: req.callback_url.clone(),
                        kannel_dlr: None,
                    },
                });
            }
            Err(e) => rejected.push((
                raw,
                Invalid::new("invalid_destination", "to", e),
            )),
        }
    }
    Ok(Validated { drafts, rejected })
}
