//! Semantic checks across the whole configuration. Each returns problems, never stops early.

use super::*;
use crate::check::Check;
use crate::connector::Resource;
use crate::secret;
use std::net::SocketAddr;

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

pub(super) fn validate(cfg: &Config, env: &dyn Fn(&str) -> Option<String>) -> Vec<Problem> {
    let mut c = Check::new(env);
    for (i, t) in cfg.templates.iter().enumerate() {
        if let Err(e) = t.clone().check(&cfg.api.default_language) {
            c.bad(&format!("templates[{i}].{}", e.field), e.message);
        }
    }
    let o = &cfg.outbox;
    c.range("outbox.shards", o.shards, 0, 64);
    c.range("outbox.group_commit_max", o.group_commit_max, 1, 65_536);
    c.range("outbox.ready_queue", o.ready_queue, 16, 10_000_000);
    c.range("outbox.max_depth", o.max_depth, 1, u64::MAX);
    c.range("outbox.blob_grace_s", o.blob_grace_s, 60, 365 * 86_400);
    c.range("outbox.inbound_dedup_s", o.inbound_dedup_s, 0, 86_400);
    if o.path.as_os_str().is_empty() {
        c.bad("outbox.path", "must not be empty");
    }
    let r = &o.retry;
    c.range("outbox.retry.max_attempts", r.max_attempts, 1, 1000);
    c.range(
        "outbox.retry.initial_delay_ms",
        r.initial_delay_ms,
        1,
        86_400_000,
    );
    c.range("outbox.retry.max_delay_s", r.max_delay_s, 1, 7 * 86_400);
    c.range("outbox.retry.multiplier", r.multiplier, 1.0, 10.0);
    c.share("outbox.retry.jitter", r.jitter);
    c.range(
        "outbox.retry.default_validity_s",
        r.default_validity_s,
        1,
        30 * 86_400,
    );

    let a = &cfg.api;
    match a.listen.parse::<SocketAddr>() {
        Err(e) => c.bad("api.listen", format!("must be IP:PORT, got {:?} ({e})", a.listen)),
        Ok(addr) if !addr.ip().is_loopback() && a.keys.is_empty() && a.sendsms_users.is_empty() => c.bad(
            "api.listen",
            format!("{addr} is not loopback and api.keys is empty: set keys (postern hash-password) or listen on 127.0.0.1"),
        ),
        Ok(addr) if !addr.ip().is_loopback() && a.tls.is_none() && !a.allow_plaintext => c.bad(
            "api.listen",
            format!("{addr} is not loopback and the API has no TLS: set [api.tls] (cert, key), or allow_plaintext = true behind a TLS proxy"),
        ),
        Ok(_) => {}
    }
    c.range("api.key_rps", a.key_rps, 0.0, 1_000_000.0);
    if let Some(t) = &a.tls {
        c.readable("api.tls.cert", &t.cert);
        c.readable("api.tls.key", &t.key);
        if let Some(ca) = &t.client_ca {
            c.readable("api.tls.client_ca", ca);
        }
    }
    for (i, k) in a.keys.iter().enumerate() {
        if let Err(e) = secret::parse_hash(k) {
            c.bad(format!("api.keys[{i}]"), e.to_string());
        }
    }
    for (i, u) in a.sendsms_users.iter().enumerate() {
        if u.username.is_empty() {
            c.bad(
                format!("api.sendsms_users[{i}].username"),
                "must not be empty",
            );
        }
        if let Err(e) = secret::parse_hash(&u.password) {
            c.bad(format!("api.sendsms_users[{i}].password"), e.to_string());
        }
    }
    c.range("api.max_batch", a.max_batch, 1, 100_000);
    c.range("api.max_body_bytes", a.max_body_bytes, 1024, 256 << 20);
    c.env_var("api.callback_secret_env", &a.callback_secret_env);
    if a.callback_secret.is_some() && a.callback_secret_env.is_some() {
        c.bad(
            "api.callback_secret",
            "set either callback_secret or callback_secret_env, not both",
        );
    }

    let s = &cfg.sms;
    c.range("sms.max_segments", s.max_segments, 1, 255);
    if let Some(cc) = &s.country_code {
        if cc.is_empty()
            || cc.len() > 3
            || !cc.bytes().all(|b| b.is_ascii_digit())
            || cc.starts_with('0')
        {
            c.bad(
                "sms.country_code",
                format!("must be 1-3 digits without + or leading 0, got {cc:?}"),
            );
        }
    }
    if !s.trunk_prefix.bytes().all(|b| b.is_ascii_digit()) {
        c.bad(
            "sms.trunk_prefix",
            format!("must be digits, got {:?}", s.trunk_prefix),
        );
    }
    if let Some(from) = &s.default_sender {
        if let Err(e) = crate::model::address::validate_sender(from) {
            c.bad("sms.default_sender", e.to_string());
        }
    }

    for (name, conn) in &cfg.connectors {
        let p = format!("connectors.{name}");
        if !valid_name(name) {
            c.bad(&p, "connector names are 1-64 characters of A-Z a-z 0-9 - _");
        }
        conn.validate(&p, &mut c);
    }

    // Nothing taken twice: the API's port, each connector's ports, devices and files.
    let mut taken: Vec<(Resource, String)> = Vec::new();
    if let Ok(a) = cfg.api.listen.parse() {
        taken.push((Resource::Listen(a), "api.listen".into()));
    }
    for (name, conn) in &cfg.connectors {
        for (r, path) in conn.resources(&format!("connectors.{name}")) {
            if let Some((_, first)) = taken.iter().find(|(t, _)| t.clashes(&r)) {
                c.bad(&path, format!("{r:?} is already taken by {first}"));
            }
            taken.push((r, path));
        }
    }

    if cfg.routes.is_empty() {
        c.bad(
            "routes",
            "no [[routes]]: every message would be rejected as unroutable",
        );
    }
    for (i, r) in cfg.routes.iter().enumerate() {
        let p = format!("routes[{i}]");
        if r.is_inbound() {
            inbound_route(&mut c, cfg, r, &p);
            continue;
        }
        if r.to.is_empty() {
            c.bad(format!("{p}.to"), "must name at least one connector");
        }
        if r.forward.is_some() {
            c.bad(format!("{p}.forward"), "forward is for routes with match.direction = \"inbound\"");
        }
        if let Some(m) = &r.matches {
            for (field, given) in [("keyword", m.keyword.is_some()), ("sender_prefix", m.sender_prefix.is_some()), ("connector", m.connector.is_some())] {
                if given {
                    c.bad(format!("{p}.match.{field}"), "only inbound routes (match.direction = \"inbound\") match this");
                }
            }
        }
        for (j, name) in r.to.iter().enumerate() {
            if !cfg.connectors.contains_key(name) {
                c.bad(
                    format!("{p}.to[{j}]"),
                    format!("no connector named {name:?}"),
                );
            }
        }
        match (r.strategy, r.weights.len()) {
            (Strategy::Weighted, n) if n != r.to.len() => c.bad(
                format!("{p}.weights"),
                format!(
                    "weighted needs one weight per connector: {} connectors, {n} weights",
                    r.to.len()
                ),
            ),
            (Strategy::Weighted, _) if r.weights.iter().all(|&w| w == 0) => c.bad(
                format!("{p}.weights"),
                "at least one weight must be above 0",
            ),
            (s, n) if s != Strategy::Weighted && n > 0 => c.bad(
                format!("{p}.weights"),
                "weights only apply to strategy = \"weighted\"",
            ),
            _ => {}
        }
        if let Some(m) = &r.matches {
            for (j, pre) in m
                .prefix
                .as_ref()
                .map(|p| p.to_vec())
                .unwrap_or_default()
                .iter()
                .enumerate()
            {
                let digits = pre.strip_prefix('+').unwrap_or("");
                if digits.is_empty()
                    || digits.len() > 15
                    || !digits.bytes().all(|b| b.is_ascii_digit())
                {
                    c.bad(
                        format!("{p}.match.prefix[{j}]"),
                        format!("must be + and 1-15 digits, got {pre:?}"),
                    );
                }
            }
        }
    }
    c.problems
}

/// An inbound route: what it matches exists, and what it forwards to is an address.
fn inbound_route(c: &mut Check, cfg: &Config, r: &RouteConfig, p: &str) {
    if !r.to.is_empty() {
        c.bad(format!("{p}.to"), "an inbound route forwards (forward = { to = ... }); it sends through no connector itself");
    }
    let Some(f) = &r.forward else {
        c.bad(format!("{p}.forward"), "an inbound route needs forward = { to = ... }");
        return;
    };
    let plan = crate::model::address::NumberPlan::default();
    let targets = f.to.to_vec();
    if targets.is_empty() {
        c.bad(format!("{p}.forward.to"), "must name at least one address");
    }
    for (j, t) in targets.iter().enumerate() {
        let ok = if t.contains('@') {
            crate::model::email::address(t).map(|_| ())
        } else {
            plan.destination(t).map(|_| ()).map_err(|e| e.to_string())
        };
        if let Err(e) = ok {
            c.bad(format!("{p}.forward.to[{j}]"), e);
        }
    }
    for (j, name) in r.matches.as_ref().and_then(|m| m.connector.as_ref()).map(|n| n.to_vec()).unwrap_or_default().iter().enumerate() {
        if !cfg.connectors.contains_key(name) {
            c.bad(format!("{p}.match.connector[{j}]"), format!("no connector named {name:?}"));
        }
    }
}
