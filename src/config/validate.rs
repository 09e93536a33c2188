//! Semantic checks across the whole configuration. Each returns problems, never stops early.

use super::*;
use crate::secret;
use std::net::SocketAddr;

struct Check<'a> {
    problems: Vec<Problem>,
    env: &'a dyn Fn(&str) -> Option<String>,
}

impl Check<'_> {
    fn bad(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            path: path.into(),
            message: message.into(),
        });
    }
    fn range<T: PartialOrd + std::fmt::Display + Copy>(&mut self, path: &str, v: T, lo: T, hi: T) {
        if v < lo || v > hi {
            self.bad(path, format!("must be {lo}..={hi}, got {v}"));
        }
    }
    fn share(&mut self, path: &str, v: f64) {
        if !(0.0..=1.0).contains(&v) {
            self.bad(path, format!("must be a share between 0 and 1, got {v}"));
        }
    }
    fn env_var(&mut self, path: &str, name: &Option<String>) {
        if let Some(n) = name {
            if (self.env)(n).is_none() {
                self.bad(path, format!("environment variable {n} is not set"));
            }
        }
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

pub(super) fn validate(cfg: &Config, env: &dyn Fn(&str) -> Option<String>) -> Vec<Problem> {
    let mut c = Check {
        problems: Vec::new(),
        env,
    };
    let o = &cfg.outbox;
    c.range("outbox.shards", o.shards, 0, 64);
    c.range("outbox.group_commit_max", o.group_commit_max, 1, 65_536);
    c.range("outbox.ready_queue", o.ready_queue, 16, 10_000_000);
    c.range("outbox.max_depth", o.max_depth, 1, u64::MAX);
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
        Ok(_) => {}
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
        let l = conn.limits();
        let window = match conn {
            ConnectorConfig::Smpp(s) => s.window,
            _ => l.window,
        };
        c.range(&format!("{p}.window"), window, 1, 1024);
        c.range(&format!("{p}.tps"), l.tps, 0.0, 1_000_000.0);
        match conn {
            ConnectorConfig::Sandbox(sb) => {
                c.share(&format!("{p}.undelivered_share"), sb.undelivered_share);
                c.share(&format!("{p}.temp_fail_share"), sb.temp_fail_share);
                c.range(&format!("{p}.dlr_delay_ms"), sb.dlr_delay_ms, 0, 86_400_000);
                c.range(
                    &format!("{p}.submit_delay_ms"),
                    sb.submit_delay_ms,
                    0,
                    600_000,
                );
            }
            ConnectorConfig::Smpp(sm) => {
                if crate::connector::smpp::client::parse_url(&sm.url).is_err() {
                    c.bad(
                        format!("{p}.url"),
                        format!(
                            "must be smpp://host:port or smpps://host:port, got {:?}",
                            sm.url
                        ),
                    );
                }
                if sm.system_id.is_empty() || sm.system_id.len() > 15 {
                    c.bad(format!("{p}.system_id"), "must be 1-15 characters");
                }
                match (&sm.password, &sm.password_env) {
                    (Some(_), Some(_)) => c.bad(
                        format!("{p}.password"),
                        "set either password or password_env, not both",
                    ),
                    (None, None) => c.bad(format!("{p}.password"), "set password or password_env"),
                    (Some(pw), None) if pw.len() > 8 => c.bad(
                        format!("{p}.password"),
                        "SMPP passwords are at most 8 characters",
                    ),
                    _ => {}
                }
                c.env_var(&format!("{p}.password_env"), &sm.password_env);
                for k in sm.errors.keys() {
                    if crate::connector::smpp::client::parse_status(k).is_none() {
                        c.bad(
                            format!("{p}.errors.{k}"),
                            "keys are command_status values: 0x0B or 11",
                        );
                    }
                }
                if let Some(ca) = &sm.tls_ca {
                    if std::fs::metadata(ca).is_err() {
                        c.bad(
                            format!("{p}.tls_ca"),
                            format!("cannot read {}", ca.display()),
                        );
                    }
                }
                c.range(&format!("{p}.binds"), sm.binds, 1, 64);
                c.range(
                    &format!("{p}.response_timeout_s"),
                    sm.response_timeout_s,
                    1,
                    300,
                );
                c.range(&format!("{p}.enquire_link_s"), sm.enquire_link_s, 1, 3600);
            }
            ConnectorConfig::Modem(mb) => {
                if mb.devices.is_empty() {
                    c.bad(
                        format!("{p}.devices"),
                        "a modem bank needs at least one device path or glob",
                    );
                }
                for (i, d) in mb.devices.iter().enumerate() {
                    if let Err(e) = glob::Pattern::new(d) {
                        c.bad(
                            format!("{p}.devices[{i}]"),
                            format!("not a valid path or glob: {e}"),
                        );
                    }
                }
                c.env_var(&format!("{p}.pin_env"), &mb.pin_env);
                if let Some(r) = mb.rate_per_min {
                    c.range(&format!("{p}.rate_per_min"), r, 0.0, 100_000.0);
                }
                let db = match &mb.hwdb_dir {
                    Some(dir) => match crate::connector::modem::hwdb::Hwdb::load_dir(dir) {
                        Ok(db) => Some(db),
                        Err(errs) => {
                            for e in errs {
                                c.bad(format!("{p}.hwdb_dir"), e.to_string());
                            }
                            None
                        }
                    },
                    None => None,
                };
                if let Some(id) = &mb.profile {
                    let known = id == "generic"
                        || crate::connector::modem::hwdb::Hwdb::embedded()
                            .get(id)
                            .is_some()
                        || db.as_ref().is_some_and(|d| d.get(id).is_some());
                    if !known {
                        c.bad(
                            format!("{p}.profile"),
                            format!("no hwdb entry {id:?} (see `postern hwdb list`)"),
                        );
                    }
                }
                if mb.strategy == crate::config::ModemStrategy::OperatorPrefix
                    && mb.operators.is_empty()
                {
                    c.bad(format!("{p}.operators"), "strategy \"operator_prefix\" needs operators = { \"MCCMNC\" = [\"+prefix\"] }");
                }
                for k in mb.operators.keys() {
                    if !(5..=6).contains(&k.len()) || !k.bytes().all(|b| b.is_ascii_digit()) {
                        c.bad(
                            format!("{p}.operators.{k}"),
                            "keys are MCC+MNC: 5 or 6 digits",
                        );
                    }
                }
                c.range(&format!("{p}.rescan_s"), mb.rescan_s, 1, 3600);
                c.range(&format!("{p}.health_s"), mb.health_s, 1, 3600);
            }
            ConnectorConfig::SmppServer(sv) => {
                if sv.listen.parse::<SocketAddr>().is_err() {
                    c.bad(
                        format!("{p}.listen"),
                        format!("must be IP:PORT, got {:?}", sv.listen),
                    );
                }
                if let Some(t) = &sv.tls {
                    for (k, f) in [("cert", &t.cert), ("key", &t.key)] {
                        if std::fs::metadata(f).is_err() {
                            c.bad(
                                format!("{p}.tls.{k}"),
                                format!("cannot read {}", f.display()),
                            );
                        }
                    }
                }
                if sv.accounts.is_empty() {
                    c.bad(
                        format!("{p}.accounts"),
                        "an SMPP server needs at least one [[accounts]]",
                    );
                }
                for (i, a) in sv.accounts.iter().enumerate() {
                    if a.system_id.is_empty() || a.system_id.len() > 15 {
                        c.bad(
                            format!("{p}.accounts[{i}].system_id"),
                            "must be 1-15 characters",
                        );
                    }
                    if let Err(e) = secret::parse_hash(&a.password) {
                        c.bad(format!("{p}.accounts[{i}].password"), e.to_string());
                    }
                    c.range(&format!("{p}.accounts[{i}].max_binds"), a.max_binds, 1, 64);
                }
            }
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
        if r.to.is_empty() {
            c.bad(format!("{p}.to"), "must name at least one connector");
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
