//! Inbound routes (`[[routes]]` with `match.direction = "inbound"`): a received message that
//! matches one (the number or address it was sent to, a keyword, a sender prefix, the connector
//! it came in on, its channel) is sent on to the route's `forward.to` addresses on whatever
//! channel each is (an SMS to a mailbox, a mail to a phone), its body from a template or the
//! text as it came. A forward is an ordinary outbound message (routed, retried, tracked) whose
//! origin names the message it came from (`parent_id`), written in the same outbox write as the
//! received message: both are stored, or neither.
//!
//! Mail forwarded as mail keeps its HTML and attachments (the stored blobs, not copied).
//!
//! The way back: a forwarded mail carries `Reply-To: <sender-number>@<reply_domain>`; a reply
//! to it reaches the `smtp-server` connector, which sends it to the phone as SMS, from the
//! number the phone first wrote to, threaded by `In-Reply-To` ([`Hub::thread`]).

use super::Hub;
use crate::config::{ForwardConfig, RouteConfig};
use crate::model::email::AttachmentRequest;
use crate::model::request::{self, MessageRequest, Rules};
use crate::model::{Body, Channel, Content, Direction, Envelope, Message, MessageId, Origin};
use serde_json::json;

/// One inbound route, compiled.
struct Rule {
    index: usize,
    to_prefixes: Vec<String>,
    keywords: Vec<String>,
    sender_prefixes: Vec<String>,
    senders: Vec<String>,
    connectors: Vec<String>,
    channel: Option<Channel>,
    forward: ForwardConfig,
}

/// The inbound routes, in order.
pub struct Forwards {
    rules: Vec<Rule>,
}

fn list(v: &Option<crate::model::OneOrMany>) -> Vec<String> {
    v.as_ref().map(|x| x.to_vec()).unwrap_or_default()
}

/// The inbound text: an SMS's text (binary as hex), or a mail's text part.
fn text_of(m: &Message) -> (String, Option<String>) {
    match &m.envelope.content {
        Content::Sms(s) => match &s.body {
            Body::Text(t) => (t.clone(), None),
            Body::Binary { data, .. } => (hex::encode(data), None),
        },
        Content::Email(e) => (e.text.clone().unwrap_or_default(), Some(e.subject.clone())),
        Content::Chat(c) => (c.text.clone(), None),
    }
}

impl Forwards {
    pub fn new(routes: &[RouteConfig]) -> Forwards {
        let rules = routes
            .iter()
            .enumerate()
            .filter(|(_, r)| r.is_inbound())
            .filter_map(|(index, r)| {
                let m = r.matches.clone().unwrap_or_default();
                Some(Rule {
                    index,
                    to_prefixes: list(&m.prefix),
                    keywords: list(&m.keyword).iter().map(|k| k.to_uppercase()).collect(),
                    sender_prefixes: list(&m.sender_prefix),
                    senders: list(&m.sender),
                    connectors: list(&m.connector),
                    channel: m.channel,
                    forward: r.forward.clone()?,
                })
            })
            .collect();
        Forwards { rules }
    }

    fn matching(&self, m: &Message) -> Option<&Rule> {
        let from = m.envelope.from.as_deref().unwrap_or("");
        let connector = m.delivery.connector.as_deref().unwrap_or("");
        let (text, _) = text_of(m);
        let keyword = text.split_whitespace().next().unwrap_or("").to_uppercase();
        self.rules.iter().find(|r| {
            (r.to_prefixes.is_empty() || r.to_prefixes.iter().any(|p| m.envelope.to.starts_with(p.as_str())))
                && (r.keywords.is_empty() || r.keywords.contains(&keyword))
                && (r.sender_prefixes.is_empty() || r.sender_prefixes.iter().any(|p| from.starts_with(p.as_str())))
                && (r.senders.is_empty() || r.senders.iter().any(|s| s == from))
                && (r.connectors.is_empty() || r.connectors.iter().any(|c| c == connector))
                && r.channel.is_none_or(|c| c == m.envelope.channel)
        })
    }
}

impl Hub {
    /// The messages to send on for a received message (none when no inbound route matches).
    /// A forward that cannot be made (a template variable missing, an address refused) is
    /// logged and counted; the received message is stored all the same.
    pub(super) fn forwards_for(&self, m: &Message) -> Vec<Envelope> {
        let Some(rule) = self.forwards.matching(m) else { return Vec::new() };
        let f = &rule.forward;
        let (text, subject) = text_of(m);
        let from = m.envelope.from.as_deref().unwrap_or("").to_string();
        let params = json!({
            "id": m.id.to_string(), "from": from, "to": m.envelope.to.as_str(), "text": text,
            "subject": subject, "connector": m.delivery.connector, "channel": m.envelope.channel.as_str(),
            "received_at": crate::time::rfc3339(m.created_at),
            "keyword": text.split_whitespace().next().unwrap_or(""),
        });
        let rules = Rules {
            sms: &self.cfg.sms,
            plan: &self.plan,
            default_validity_s: self.cfg.outbox.retry.default_validity_s,
            templates: &*self.templates,
        };
        let mut out = Vec::new();
        for target in f.to.to_vec() {
            let email = target.contains('@');
            let mut req = json!({"to": target, "from": f.from});
            match (&f.template, email) {
                (Some(t), _) => {
                    req["template"] = json!(t);
                    req["params"] = params.clone();
                    req["language"] = json!(f.language);
                }
                (None, true) => {
                    let given = subject.clone().filter(|s| !s.trim().is_empty());
                    req["subject"] = json!(given.unwrap_or_else(|| format!("Message from {from}")));
                    req["text"] = json!(text);
                }
                (None, false) => {
                    let body = match &subject {
                        Some(s) if !s.is_empty() => format!("{s}: {text}"),
                        _ => text.clone(),
                    };
                    req["text"] = json!(crate::codec::segment::fit(&body, self.cfg.sms.max_segments));
                }
            }
            if email && m.envelope.channel == Channel::Sms {
                if let Some(d) = &f.reply_domain {
                    req["reply_to"] = json!(format!("{from}@{d}"));
                }
            }
            let made = serde_json::from_value::<MessageRequest>(req)
                .map_err(|e| e.to_string())
                .map(|mut r| {
                    if let (true, Content::Email(e)) = (email, &m.envelope.content) {
                        // Mail to mail: its HTML (unless a template makes the body) and its
                        // attachments (already stored) go along.
                        if f.template.is_none() {
                            r.html = e.html.clone();
                            if r.html.is_some() && text.is_empty() {
                                r.text = None;
                            }
                        }
                        r.attachments = e.attachments.iter().map(|a| AttachmentRequest {
                            filename: a.filename.clone(),
                            content_type: Some(a.media_type.clone()),
                            digest: Some(a.digest.clone()),
                            content_base64: None,
                            size: Some(a.size),
                        }).collect();
                    }
                    r
                })
                .and_then(|r| request::validate(r, &rules).map_err(|e| format!("{}: {}", e.field, e.message)));
            match made {
                Ok(v) => {
                    for (to, why) in v.rejected {
                        tracing::warn!(route = rule.index, %to, error = %why.message, "forward refused");
                    }
                    out.extend(v.drafts.into_iter().map(|mut d| {
                        d.origin = Origin::Forward { parent: m.id };
                        d
                    }));
                }
                Err(e) => {
                    metrics::counter!(crate::metrics::FORWARD_FAILED_TOTAL).increment(1);
                    tracing::warn!(route = rule.index, to = %target, error = %e, "cannot forward a received message")
                }
            }
        }
        out
    }

    /// The thread a reply mail continues: `In-Reply-To` names a mail we sent (its Message-ID is
    /// `<id@domain>`) that forwarded an SMS from `number`. Answers the mail's id (the reply's
    /// parent) and the number that SMS was sent to (the reply's sender, so the phone sees one
    /// conversation).
    pub fn thread(&self, in_reply_to: &str, number: &str) -> Option<(MessageId, String)> {
        let local = in_reply_to.trim().trim_start_matches('<').split('@').next()?;
        let mail = self.outbox.get(local.parse().ok()?).ok()??;
        let Origin::Forward { parent } = mail.envelope.origin else { return None };
        let sms = self.outbox.get(parent).ok()??;
        (sms.direction == Direction::Inbound && sms.envelope.from.as_deref() == Some(number))
            .then(|| (mail.id, sms.envelope.to.to_string()))
    }
}
