//! Kannel-compatible `GET|POST /cgi-bin/sendsms`, so existing Kannel clients switch without
//! changes: the same parameters (`username`/`user`, `password`/`pass`, `to` with several
//! recipients separated by spaces, `from`, `text`, `coding`, `charset`, `udh`, `validity`,
//! `deferred`, `dlr-mask`, `dlr-url`, `smsc`, `priority`) and the same plain-text answers
//! (`0: Accepted for delivery`, status 202; `Authorization failed for sendsms`, 403; …).

use super::{read_body, text_response, Api, Resp};
use crate::codec::{ucs2, Coding};
use crate::config::SendsmsUser;
use crate::model::request::{check_body, BodySpec};
use crate::model::{now_ms, Address, Channel, Content, Envelope, KannelDlr, Origin};
use crate::hub::Accepted;
use crate::secret::{parse_hash, Verifier};
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use std::borrow::Cow;
use std::collections::HashMap;

/// Accounts allowed to use sendsms.
pub struct SendsmsUsers {
    users: HashMap<String, Verifier>,
}

impl SendsmsUsers {
    pub fn new(cfg: &[SendsmsUser]) -> Self {
        let users = cfg
            .iter()
            .filter_map(|u| {
                parse_hash(&u.password)
                    .ok()
                    .map(|h| (u.username.clone(), Verifier::new(vec![h])))
            })
            .collect();
        SendsmsUsers { users }
    }
}

const CT: &str = "text/plain; charset=utf-8";

fn reply(status: StatusCode, text: &str) -> Resp {
    text_response(status, text.to_string(), CT)
}

/// The request's parameters (query string, then a form body), as raw bytes: text may be in any
/// charset. The first occurrence of a name wins. Values without `+` or `%` are borrowed, not
/// copied (parsing allocated a dozen times per request before).
struct Params<'a> {
    pairs: Vec<(Cow<'a, [u8]>, Cow<'a, [u8]>)>,
}

/// Undo `application/x-www-form-urlencoded` escaping: `+` is a space, `%XX` a byte, a `%` not
/// followed by two hex digits stays as it is. One pass and one allocation (it was two of each
/// per escaped value, and every request has some: `%2B` in `to`, `+` in `text`).
fn form_decode(s: &[u8]) -> Cow<'_, [u8]> {
    if !s.iter().any(|&b| b == b'+' || b == b'%') {
        return Cow::Borrowed(s);
    }
    fn hex(b: &u8) -> Option<u8> {
        (*b as char).to_digit(16).map(|d| d as u8)
    }
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'+' => out.push(b' '),
            b'%' => match (s.get(i + 1).and_then(hex), s.get(i + 2).and_then(hex)) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    Cow::Owned(out)
}

impl<'a> Params<'a> {
    fn add_form(&mut self, raw: &'a [u8]) {
        for pair in raw.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
            let mut it = pair.splitn(2, |&b| b == b'=');
            let k = it.next().unwrap_or_default();
            let v = it.next().unwrap_or_default();
            self.pairs.push((form_decode(k), form_decode(v)));
        }
    }

    fn raw(&self, name: &str) -> Option<&[u8]> {
        self.pairs.iter().find(|(k, _)| &**k == name.as_bytes()).map(|(_, v)| &**v)
    }

    /// A value as text (invalid UTF-8 replaced).
    fn get(&self, name: &str) -> Option<Cow<'_, str>> {
        self.raw(name).map(String::from_utf8_lossy)
    }
}

fn decode_text(bytes: &[u8], charset: Option<&str>, coding: u8) -> Result<String, &'static str> {
    let cs = charset.map(|c| c.to_ascii_uppercase()).unwrap_or_else(|| {
        if coding == 2 {
            "UTF-16BE".into()
        } else {
            "UTF-8".into()
        }
    });
    match cs.as_str() {
        "UTF-8" | "UTF8" => {
            String::from_utf8(bytes.to_vec()).map_err(|_| "Text is not valid UTF-8, rejected")
        }
        "ISO-8859-1" | "LATIN1" | "ISO8859-1" | "WINDOWS-1252" | "CP1252" => {
            Ok(ucs2::decode_latin1(bytes))
        }
        "UTF-16BE" | "UCS-2" | "UCS2" | "UTF-16" => {
            ucs2::decode(bytes).map_err(|_| "Text is not valid UTF-16BE, rejected")
        }
        _ => Err("Unsupported charset, rejected"),
    }
}

pub(super) async fn sendsms(api: &Api, req: Request<Incoming>) -> Resp {
    let (parts, body) = req.into_parts();
    let is_form = parts
        .headers
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    let body = if parts.method == hyper::Method::POST {
        match read_body(body, api.hub.cfg.api.max_body_bytes).await {
            Ok(b) => b,
            Err(e) => return reply(e.status, &e.message),
        }
    } else {
        hyper::body::Bytes::new()
    };
    let mut p = Params { pairs: Vec::with_capacity(16) };
    p.add_form(parts.uri.query().unwrap_or("").as_bytes());
    if is_form {
        p.add_form(&body);
    } else if !body.is_empty() {
        // Kannel's POST form: the body is the message text.
        p.pairs.push((Cow::Borrowed(b"text"), Cow::Borrowed(&body)));
    }
    let get = |k: &str| p.get(k).map(Cow::into_owned);
    let get2 = |a: &str, b: &str| p.get(a).or_else(|| p.get(b));

    // Authorisation: configured users; with none, open only when the API itself is open.
    let user = get2("username", "user");
    let pass = get2("password", "pass");
    let authorised = if api.sendsms.users.is_empty() {
        api.auth.is_open()
    } else {
        matches!((&user, &pass), (Some(u), Some(pw)) if api.sendsms.users.get(&**u).is_some_and(|v| v.check(pw)))
    };
    if !authorised {
        metrics::counter!(crate::metrics::API_REJECTED_TOTAL, crate::metrics::L_CODE => "unauthorized").increment(1);
        return reply(StatusCode::FORBIDDEN, "Authorization failed for sendsms");
    }

    let to = p.get("to").unwrap_or_default();
    let receivers: Vec<&str> = to
        .split([' ', ',', ';'])
        .filter(|s| !s.is_empty())
        .collect();
    if receivers.is_empty() {
        return reply(
            StatusCode::BAD_REQUEST,
            "Empty receiver number not allowed, rejected",
        );
    }
    let coding: u8 = match p.get("coding").map(|c| c.trim().parse::<u8>()) {
        None => 0,
        Some(Ok(c)) if c <= 2 => c,
        Some(_) => return reply(StatusCode::BAD_REQUEST, "Invalid coding, rejected"),
    };
    let udh = p.raw("udh").map(<[u8]>::to_vec);
    if let Some(u) = &udh {
        if u.is_empty() || u.len() != u[0] as usize + 1 {
            return reply(StatusCode::BAD_REQUEST, "UDH field misformed, rejected");
        }
    }
    let raw_text = p.raw("text").unwrap_or_default();
    if raw_text.is_empty() && udh.is_none() {
        return reply(StatusCode::BAD_REQUEST, "Empty text not allowed, rejected.");
    }
    let spec = if coding == 1 {
        BodySpec {
            text: None,
            binary: Some(raw_text.to_vec()),
            data_coding: Some(0x04),
            coding: None,
            udh: udh.clone(),
        }
    } else {
        let text = match decode_text(raw_text, p.get("charset").as_deref(), coding) {
            Ok(t) => t,
            Err(msg) => return reply(StatusCode::BAD_REQUEST, msg),
        };
        let coding = if coding == 2 {
            Some(Coding::Ucs2)
        } else {
            None
        };
        BodySpec {
            text: Some(text),
            binary: None,
            data_coding: None,
            coding,
            udh: udh.clone(),
        }
    };
    let sms = match check_body(spec, api.hub.cfg.sms.max_segments) {
        Ok(b) => Content::Sms(b),
        Err(i) if i.code == "too_many_segments" => {
            return reply(StatusCode::BAD_REQUEST, "Message too long, rejected")
        }
        Err(i) if i.code == "unencodable_text" => {
            return reply(StatusCode::BAD_REQUEST, "Text cannot be encoded, rejected")
        }
        Err(_) => return reply(StatusCode::BAD_REQUEST, "Empty text not allowed, rejected."),
    };
    let from = get("from").or_else(|| api.hub.cfg.sms.default_sender.clone());
    if let Some(f) = &from {
        if crate::model::address::validate_sender(f).is_err() {
            return reply(StatusCode::BAD_REQUEST, "Invalid sender, rejected");
        }
    }
    let minutes = |k: &str| -> Result<Option<i64>, ()> {
        match p.get(k) {
            None => Ok(None),
            Some(v) => v
                .trim()
                .parse::<i64>()
                .map(Some)
                .map_err(|_| ())
                .and_then(|m| {
                    if m.is_some_and(|m| (0..=43_200).contains(&m)) {
                        Ok(m)
                    } else {
                        Err(())
                    }
                }),
        }
    };
    let now = now_ms();
    let (Ok(validity), Ok(deferred)) = (minutes("validity"), minutes("deferred")) else {
        return reply(
            StatusCode::BAD_REQUEST,
            "Invalid validity or deferred, rejected",
        );
    };
    let send_at = deferred.filter(|&m| m > 0).map(|m| now + m * 60_000);
    let expires_at = match validity.filter(|&m| m > 0) {
        Some(m) => send_at.unwrap_or(now) + m * 60_000,
        None => send_at.unwrap_or(now) + api.hub.cfg.outbox.retry.default_validity_s as i64 * 1000,
    };
    let kannel_dlr = match (
        get("dlr-url"),
        p.get("dlr-mask").and_then(|m| m.trim().parse::<u8>().ok()),
    ) {
        (Some(url), Some(mask))
            if mask != 0 && (url.starts_with("http://") || url.starts_with("https://")) =>
        {
            Some(KannelDlr { url, mask })
        }
        (Some(_), Some(mask)) if mask != 0 => {
            return reply(StatusCode::BAD_REQUEST, "Invalid dlr-url, rejected")
        }
        _ => None,
    };
    let priority = p.get("priority")
        .and_then(|p| p.trim().parse::<u8>().ok())
        .unwrap_or(0)
        .min(3);
    let tags: Vec<String> = p.get("smsc")
        .filter(|s| !s.is_empty())
        .map(|s| vec![format!("smsc={s}")])
        .unwrap_or_default();
    let meta = p.get("meta-data").map(|m| serde_json::json!({"kannel_meta_data": m}));
    let from = from.map(Address::sms);

    let mut drafts = Vec::with_capacity(receivers.len());
    let mut bad = Vec::new();
    for r in receivers {
        let dest = api.hub.plan.destination(r).or_else(|e| {
            // Kannel clients often send international numbers without '+'.
            let digits = r.trim();
            if (8..=15).contains(&digits.len())
                && digits.bytes().all(|b| b.is_ascii_digit())
                && !digits.starts_with('0')
            {
                api.hub.plan.destination(&format!("+{digits}"))
            } else {
                Err(e)
            }
        });
        match dest {
            Ok(to) => drafts.push(Envelope {
                channel: Channel::Sms,
                from: from.clone(),
                to: Address::Msisdn(to),
                content: sms.clone(),
                client_ref: None,
                metadata: meta.clone(),
                tags: tags.clone(),
                priority,
                send_at,
                expires_at,
                origin: Origin::Api {
                    callback_url: None,
                    kannel_dlr: kannel_dlr.clone(),
                },
            }),
            Err(_) => bad.push(r.to_string()),
        }
    }
    if drafts.is_empty() {
        return reply(
            StatusCode::BAD_REQUEST,
            "Invalid receiver number(s), rejected",
        );
    }
    match api.hub.accept(drafts).await {
        Ok(results) => {
            let failed: Vec<String> = results
                .iter()
                .filter_map(|r| match r {
                    Accepted::NoRoute(d) => Some(d.to.to_string()),
                    Accepted::Stored(_) => None,
                })
                .chain(bad)
                .collect();
            if results.iter().all(|r| matches!(r, Accepted::NoRoute(_))) {
                return reply(
                    StatusCode::BAD_REQUEST,
                    "No route for receiver(s), rejected",
                );
            }
            let head = if send_at.is_some() {
                "3: Queued for later delivery"
            } else {
                "0: Accepted for delivery"
            };
            if failed.is_empty() {
                reply(StatusCode::ACCEPTED, head)
            } else {
                reply(
                    StatusCode::ACCEPTED,
                    &format!("{head}\nFailed receivers: {}", failed.join(" ")),
                )
            }
        }
        Err(e) => {
            let e = super::error::ApiError::from(e);
            super::with_retry_after(
                reply(e.status, "Queue full, rejected; try again later"),
                e.retry_after,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::form_decode;
    use proptest::prelude::*;

    /// The reference: `+` to space, then percent-decoding as the `percent-encoding` crate does.
    fn reference(s: &[u8]) -> Vec<u8> {
        let plus: Vec<u8> = s.iter().map(|&b| if b == b'+' { b' ' } else { b }).collect();
        percent_encoding::percent_decode(&plus).collect()
    }

    #[test]
    fn decodes_like_a_form() {
        assert_eq!(&*form_decode(b"%2B4477+x%e2%82%AC"), "+4477 x\u{20ac}".as_bytes());
        assert_eq!(&*form_decode(b"100%"), b"100%");
        assert_eq!(&*form_decode(b"%4"), b"%4");
        assert_eq!(&*form_decode(b"%zz%+1"), b"%zz% 1");
        assert!(matches!(form_decode(b"plain"), std::borrow::Cow::Borrowed(_)));
    }

    proptest! {
        #[test]
        fn agrees_with_the_reference(s in proptest::collection::vec(prop_oneof![
            Just(b'%'), Just(b'+'), Just(b'2'), Just(b'b'), Just(b'F'), Just(b'g'), any::<u8>()
        ], 0..24)) {
            prop_assert_eq!(form_decode(&s).into_owned(), reference(&s));
        }
    }
}
