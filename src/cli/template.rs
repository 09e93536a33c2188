//! `postern template render NAME --params JSON`: a template filled in, to check it before
//! sending. With `--config FILE` it renders the file's `[[templates]]` here, without a running
//! gateway; otherwise it asks the gateway (`POST /v1/templates/render`), which also knows the
//! templates made through the API.

use anyhow::{anyhow, Context, Result};
use postern::model::template::Templates;
use postern::model::Channel;
use std::path::Path;
use std::process::ExitCode;

pub(crate) struct RenderArgs<'a> {
    pub name: &'a str,
    pub params: &'a str,
    pub channel: Channel,
    pub language: Option<&'a str>,
    pub config: Option<&'a Path>,
    pub api: &'a str,
    pub key: Option<&'a str>,
}

pub(crate) fn render(a: RenderArgs) -> Result<ExitCode> {
    let params: serde_json::Value = serde_json::from_str(a.params).context("--params is not JSON")?;
    let (ok, out) = match a.config {
        Some(path) => {
            let cfg = postern::config::Config::load(Some(path)).map_err(|e| anyhow!("{e}"))?;
            let cat = postern::templates::Catalog::load(None, &cfg.templates, &cfg.api.default_language)?;
            match cat.render(a.name, a.channel, a.language, &params) {
                Ok(r) => (true, serde_json::json!({"subject": r.subject, "text": r.text, "html": r.html})),
                Err(e) => (false, serde_json::json!({"error": {"code": e.code, "message": e.message, "field": e.field}})),
            }
        }
        None => {
            let body = serde_json::json!({"template": a.name, "channel": a.channel, "language": a.language, "params": params});
            let (status, v) = super::remote::http("POST", &format!("{}/v1/templates/render", a.api), a.key, Some(body.to_string()))?;
            (status < 300, v)
        }
    };
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
