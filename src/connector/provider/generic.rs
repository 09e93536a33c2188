//! `preset = "generic"`: a request described in the config — method, URL, headers and body
//! as minijinja templates over the message (`id`, `to`, `from`, `text`, `callback_url`, with
//! the `urlencode` and `tojson` filters) — for an HTTP API no preset covers. Success is a
//! status in `success_status` (any 2xx when empty); `remote_id` is a JSON pointer into the
//! answer. Receipts come to `…/receipt`, carrying the connector's secret as `t` (it is in
//! `callback_url`), with the remote id and status named by `receipt_id` / `receipt_status`:
//! query or form parameters, or JSON pointers (`/data/status`) into a JSON body.

use super::config::{receipt_state, HttpConfig};
use super::{refused, same_secret, text_of, unbuildable, HttpLink};
use crate::connector::{DeliveryError, ErrorClass, ErrorKind, Outcome, PeerRequest, PeerResponse};
use crate::model::Message;
use bytes::Bytes;
use http_body_util::Full;
use minijinja::Environment;

/// The compiled request templates.
pub(super) struct Requests {
    env: Environment<'static>,
    headers: Vec<String>,
}

impl Requests {
    pub(super) fn new(cfg: &HttpConfig) -> Requests {
        let mut env = Environment::new();
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        // Validation has checked them; one that fails anyway fails each send, saying why.
        let _ = env.add_template_owned("url", cfg.url.clone());
        if let Some(b) = &cfg.body {
            let _ = env.add_template_owned("body", b.clone());
        }
        let mut headers = Vec::new();
        for (name, value) in &cfg.headers {
            let _ = env.add_template_owned(format!("h:{name}"), value.clone());
            headers.push(name.clone());
        }
        Requests { env, headers }
    }

    fn render(&self, name: &str, ctx: &minijinja::Value) -> Result<String, Outcome> {
        self.env.get_template(name).and_then(|t| t.render(ctx)).map_err(|e| Outcome::PermFail {
            error: DeliveryError::new(ErrorClass::Permanent, ErrorKind::Unencodable, format!("{name}: {e}")).with_code("template_error"),
        })
    }
}

/// The receipt URL with the connector's secret in it.
fn receipt_url(link: &HttpLink) -> Option<String> {
    let url = link.callback_url("receipt")?;
    let secret = link.callback_secret.as_deref()?;
    Some(format!("{url}?{}", form_urlencoded::Serializer::new(String::new()).append_pair("t", secret).finish()))
}

pub(super) async fn send(link: &HttpLink, msg: &Message) -> Outcome {
    let Some(r) = &link.generic else { return unbuildable("no request templates") };
    let text = match text_of(msg) {
        Ok(t) => t,
        Err(o) => return o,
    };
    let ctx = minijinja::context! {
        id => msg.id.to_string(),
        to => msg.envelope.to.to_string(),
        from => link.sender(msg),
        text => text,
        callback_url => receipt_url(link),
    };
    let built = (|| {
        let url = r.render("url", &ctx)?;
        let mut req = link.request(&link.cfg.method, url.trim());
        for h in &r.headers {
            req = req.header(h.as_str(), r.render(&format!("h:{h}"), &ctx)?);
        }
        if let Some(t) = &link.token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let body = match link.cfg.body {
            Some(_) => {
                req = req.header("content-type", link.cfg.content_type.as_str());
                r.render("body", &ctx)?
            }
            None => String::new(),
        };
        req.body(Full::new(Bytes::from(body))).map_err(unbuildable)
    })();
    let req = match built {
        Ok(r) => r,
        Err(o) => return o,
    };
    match link.call(req).await {
        Err(o) => o,
        Ok((status, headers, body)) => {
            let ok = if link.cfg.success_status.is_empty() {
                status.is_success()
            } else {
                link.cfg.success_status.contains(&status.as_u16())
            };
            if !ok {
                return refused(status, &headers, String::from_utf8_lossy(&body).trim());
            }
            let remote_id = match &link.cfg.remote_id {
                None => msg.id.to_string(),
                Some(ptr) => {
                    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                    match v.pointer(ptr) {
                        Some(serde_json::Value::String(s)) => s.clone(),
                        Some(n @ serde_json::Value::Number(_)) => n.to_string(),
                        // Taken, but without its id no receipt can find it.
                        _ => return Outcome::Submitted { remote_ids: Vec::new() },
                    }
                }
            };
            Outcome::Submitted { remote_ids: vec![remote_id] }
        }
    }
}

/// A receipt: the secret as `t`, then the id and status where the config says.
pub(super) async fn receipt(link: &HttpLink, req: &PeerRequest) -> PeerResponse {
    let params = req.params();
    let given = params.iter().find(|(k, _)| k == "t").map(|(_, v)| v.as_bytes());
    if !matches!((given, &link.callback_secret), (Some(g), Some(s)) if same_secret(g, s.as_bytes())) {
        return link.refuse(401, "bad_token", "the receipt URL's token is missing or wrong");
    }
    let json: Option<serde_json::Value> = serde_json::from_slice(&req.body).ok();
    let field = |name: &str| -> Option<String> {
        if name.starts_with('/') {
            match json.as_ref()?.pointer(name)? {
                serde_json::Value::String(s) => Some(s.clone()),
                serde_json::Value::Null => None,
                v => Some(v.to_string()),
            }
        } else {
            params.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        }
    };
    let c = &link.cfg;
    let (Some(id), Some(word)) = (field(&c.receipt_id), field(&c.receipt_status)) else {
        return link.refuse(400, "missing_field", format!("{} and {} are required", c.receipt_id, c.receipt_status));
    };
    // The configured words first, then the states' own names.
    let state = match c.receipt_states.get(&word) {
        Some(s) => receipt_state(s),
        None => receipt_state(&word.to_ascii_lowercase()),
    };
    let Some(state) = state else { return PeerResponse::ok() };
    let error = c.receipt_error.as_deref().and_then(field).filter(|e| !e.is_empty());
    link.settle(id, state, error).await
}
