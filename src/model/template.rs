//! What a message needs of templates: the shape of a template as given (API or config), and the
//! [`Templates`] a request is rendered against. The catalog itself (storage, versions, language
//! fallback, minijinja) is [`crate::templates`].

use super::request::Invalid;
use super::Channel;
use minijinja::{Environment, UndefinedBehavior};
use serde::{Deserialize, Serialize};
use std::sync::LazyLock;

/// A template as given: `[[templates]]` in the config or `POST /v1/templates`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateSpec {
    /// Letters, digits, `_`, `-`, `.`; 1–64.
    pub name: String,
    /// `sms` or `email`; none: either.
    #[serde(default)]
    pub channel: Option<Channel>,
    /// A language tag (`en`, `pt-BR`); none: the catalog's default language.
    #[serde(default)]
    pub language: Option<String>,
    #[serde(default)]
    pub subject: Option<String>,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub html: Option<String>,
}

/// Longest part, in bytes.
const MAX_PART: usize = 64 * 1024;

/// The one minijinja environment: strict (an undefined value is an error, never empty text).
pub static ENV: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env
});

/// A minijinja error in a line: its kind, where, and what.
pub fn describe(e: &minijinja::Error) -> String {
    match (e.detail(), e.line()) {
        (Some(d), Some(l)) => format!("{} at line {l}: {d}", e.kind()),
        (Some(d), None) => format!("{}: {d}", e.kind()),
        (None, Some(l)) => format!("{} at line {l}", e.kind()),
        (None, None) => e.kind().to_string(),
    }
}

impl TemplateSpec {
    /// Check a template as given (names, language tag, parts that compile); fill in its
    /// language.
    pub fn check(&mut self, default_language: &str) -> Result<(), Invalid> {
        let spec = self;
        let name_ok = |s: &str, max: usize| {
            !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
        };
        if !name_ok(&spec.name, 64) {
            return Err(Invalid::new("invalid_field", "name", "name is 1-64 letters, digits, '_', '-' or '.'"));
        }
        let lang = spec.language.get_or_insert_with(|| default_language.to_string());
        let lang_ok = lang.split('-').enumerate().all(|(i, p)| {
            (if i == 0 { (2..=3).contains(&p.len()) } else { (2..=8).contains(&p.len()) })
                && p.bytes().all(|b| b.is_ascii_alphanumeric())
        });
        if !lang_ok {
            return Err(Invalid::new("invalid_field", "language", "language is a tag such as en or pt-BR"));
        }
        if spec.text.is_none() && spec.html.is_none() {
            return Err(Invalid::new("empty_body", "text", "a template needs text (or, for email, html)"));
        }
        if spec.channel == Some(Channel::Sms) && (spec.subject.is_some() || spec.html.is_some()) {
            return Err(Invalid::new("invalid_field", "subject", "subject and html are for email templates"));
        }
        if spec.channel != Some(Channel::Email) && spec.text.is_none() {
            return Err(Invalid::new("empty_body", "text", "an SMS template needs text"));
        }
        for (field, part) in [("subject", &spec.subject), ("text", &spec.text), ("html", &spec.html)] {
            if let Some(p) = part {
                if p.len() > MAX_PART {
                    return Err(Invalid::new("too_large", field, format!("{field} is larger than {MAX_PART} bytes")));
                }
                ENV.template_from_str(p).map_err(|e| {
                    Invalid::new("invalid_template", field, format!("{field}: {}", describe(&e)))
                })?;
            }
        }
        Ok(())
    }
}

/// A template rendered for one message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rendered {
    pub subject: Option<String>,
    pub text: Option<String>,
    pub html: Option<String>,
}

/// Templates a request can name.
pub trait Templates: Send + Sync {
    /// Render `name` for `channel` in `language` (or the nearest in its fallback chain) with
    /// `params`. An unknown template, or a variable the params do not give, is an [`Invalid`]
    /// naming it: nothing half-rendered is ever returned.
    fn render(&self, name: &str, channel: Channel, language: Option<&str>, params: &serde_json::Value) -> Result<Rendered, Invalid>;
}

/// No templates at all (tools and tests that build requests without a hub).
pub struct NoTemplates;

impl Templates for NoTemplates {
    fn render(&self, name: &str, _: Channel, _: Option<&str>, _: &serde_json::Value) -> Result<Rendered, Invalid> {
        Err(Invalid::new("unknown_template", "template", format!("no template {name:?}")))
    }
}
