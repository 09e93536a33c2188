//! The template catalog: named templates per channel and language, from the config (read-only)
//! and from `/v1/templates` (stored as records in the outbox's database, synced before the API
//! answers, versioned for updates), held in memory for rendering. A message names a template;
//! the catalog picks the one for its channel and the nearest language (`pt-BR` → `pt` → the
//! default language → any), and [`render`] fills it strictly.

pub mod render;

use crate::model::request::Invalid;
use crate::model::template::{Rendered, TemplateSpec, Templates};
use crate::model::{now_ms, Channel, Millis};
use crate::outbox::{Outbox, OutboxError, StoreError};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use thiserror::Error;

/// The records collection templates are stored in.
const COLLECTION: &str = "templates";

/// A stored template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Template {
    /// `name:channel:language` (`channel` is `any` when the template serves both).
    pub id: String,
    #[serde(flatten)]
    pub spec: TemplateSpec,
    /// 1 when created, +1 on each update.
    pub version: u64,
    pub updated_at: Millis,
    /// From the config: not changed through the API.
    #[serde(default)]
    pub from_config: bool,
}

/// Why a catalog change was refused.
#[derive(Debug, Error)]
pub enum TemplateError {
    #[error("{}", .0.message)]
    Invalid(Invalid),
    #[error("no template {0:?}")]
    NotFound(String),
    #[error("template {0:?} exists")]
    Exists(String),
    #[error("template {id:?} is at version {current}, not {given}")]
    Version { id: String, current: u64, given: u64 },
    #[error("template {0:?} comes from the configuration; change it there")]
    ReadOnly(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Read(#[from] OutboxError),
}

fn id_of(spec: &TemplateSpec, default_language: &str) -> String {
    let channel = spec.channel.map_or("any", Channel::as_str);
    format!("{}:{channel}:{}", spec.name, spec.language.as_deref().unwrap_or(default_language))
}

/// The catalog.
pub struct Catalog {
    outbox: Option<Arc<Outbox>>,
    default_language: String,
    by_id: RwLock<BTreeMap<String, Arc<Template>>>,
    /// Serialises changes (a version check and its write are one step).
    changing: tokio::sync::Mutex<()>,
}

impl Catalog {
    /// Templates from the config, then those stored (a stored one of the same id is shadowed).
    pub fn load(outbox: Option<Arc<Outbox>>, config: &[TemplateSpec], default_language: &str) -> Result<Catalog, TemplateError> {
        let mut by_id = BTreeMap::new();
        if let Some(ob) = &outbox {
            for (id, bytes) in ob.records(COLLECTION)? {
                match serde_json::from_slice::<Template>(&bytes) {
                    Ok(t) => {
                        by_id.insert(id, Arc::new(t));
                    }
                    Err(e) => tracing::error!(id, error = %e, "unreadable stored template skipped"),
                }
            }
        }
        for spec in config {
            let mut spec = spec.clone();
            spec.check(default_language).map_err(TemplateError::Invalid)?;
            let id = id_of(&spec, default_language);
            let t = Template { id: id.clone(), spec, version: 1, updated_at: 0, from_config: true };
            by_id.insert(id, Arc::new(t));
        }
        Ok(Catalog {
            outbox,
            default_language: default_language.to_string(),
            by_id: RwLock::new(by_id),
            changing: tokio::sync::Mutex::new(()),
        })
    }

    pub fn list(&self, name: Option<&str>) -> Vec<Arc<Template>> {
        self.by_id.read().values().filter(|t| name.is_none_or(|n| t.spec.name == n)).cloned().collect()
    }

    pub fn get(&self, id: &str) -> Option<Arc<Template>> {
        self.by_id.read().get(id).cloned()
    }

    async fn store(&self, t: &Template) -> Result<(), TemplateError> {
        if let Some(ob) = &self.outbox {
            let bytes = serde_json::to_vec(t).map_err(|e| StoreError::Unavailable(e.to_string()))?;
            ob.put_record(COLLECTION, &t.id, bytes).await?;
        }
        Ok(())
    }

    /// Add a new template.
    pub async fn create(&self, mut spec: TemplateSpec) -> Result<Arc<Template>, TemplateError> {
        spec.check(&self.default_language).map_err(TemplateError::Invalid)?;
        let id = id_of(&spec, &self.default_language);
        let _one = self.changing.lock().await;
        if self.by_id.read().contains_key(&id) {
            return Err(TemplateError::Exists(id));
        }
        let t = Arc::new(Template { id: id.clone(), spec, version: 1, updated_at: now_ms(), from_config: false });
        self.store(&t).await?;
        self.by_id.write().insert(id, t.clone());
        Ok(t)
    }

    /// Replace a template's parts, if it is still at `version`. Name, channel and language are
    /// its id and stay.
    pub async fn update(&self, id: &str, version: u64, parts: Rendered) -> Result<Arc<Template>, TemplateError> {
        let _one = self.changing.lock().await;
        let cur = self.get(id).ok_or_else(|| TemplateError::NotFound(id.to_string()))?;
        if cur.from_config {
            return Err(TemplateError::ReadOnly(id.to_string()));
        }
        if cur.version != version {
            return Err(TemplateError::Version { id: id.to_string(), current: cur.version, given: version });
        }
        let mut spec = cur.spec.clone();
        (spec.subject, spec.text, spec.html) = (parts.subject, parts.text, parts.html);
        spec.check(&self.default_language).map_err(TemplateError::Invalid)?;
        let t = Arc::new(Template { id: id.to_string(), spec, version: version + 1, updated_at: now_ms(), from_config: false });
        self.store(&t).await?;
        self.by_id.write().insert(id.to_string(), t.clone());
        Ok(t)
    }

    pub async fn delete(&self, id: &str, version: Option<u64>) -> Result<(), TemplateError> {
        let _one = self.changing.lock().await;
        let cur = self.get(id).ok_or_else(|| TemplateError::NotFound(id.to_string()))?;
        if cur.from_config {
            return Err(TemplateError::ReadOnly(id.to_string()));
        }
        if let Some(v) = version.filter(|v| *v != cur.version) {
            return Err(TemplateError::Version { id: id.to_string(), current: cur.version, given: v });
        }
        if let Some(ob) = &self.outbox {
            ob.delete_record(COLLECTION, id).await?;
        }
        self.by_id.write().remove(id);
        Ok(())
    }

    /// The template `name` for `channel`, nearest to `language`: the tag, each shorter prefix
    /// of it, the default language, then any; a template for the channel before one for any.
    pub fn find(&self, name: &str, channel: Channel, language: Option<&str>) -> Option<Arc<Template>> {
        let mut chain: Vec<String> = Vec::new();
        if let Some(l) = language {
            let mut tag = l.to_string();
            loop {
                chain.push(tag.clone());
                match tag.rfind('-') {
                    Some(i) => tag.truncate(i),
                    None => break,
                }
            }
        }
        chain.push(self.default_language.clone());
        let map = self.by_id.read();
        for lang in &chain {
            for ch in [Some(channel), None] {
                let hit = map.values().find(|t| {
                    t.spec.name == name
                        && t.spec.channel == ch
                        && t.spec.language.as_deref().is_some_and(|x| x.eq_ignore_ascii_case(lang))
                });
                if let Some(t) = hit {
                    return Some(t.clone());
                }
            }
        }
        map.values().find(|t| t.spec.name == name && t.spec.channel.is_none_or(|c| c == channel)).cloned()
    }
}

impl Templates for Catalog {
    fn render(&self, name: &str, channel: Channel, language: Option<&str>, params: &serde_json::Value) -> Result<Rendered, Invalid> {
        let t = self.find(name, channel, language).ok_or_else(|| {
            Invalid::new("unknown_template", "template", format!("no template {name:?} for {channel:?}"))
        })?;
        if !params.is_object() && !params.is_null() {
            return Err(Invalid::new("invalid_field", "params", "params must be a JSON object"));
        }
        let empty = serde_json::json!({});
        let params = if params.is_null() { &empty } else { params };
        let part = |which: &str, src: &Option<String>| src.as_deref().map(|s| render::render(name, which, s, params)).transpose();
        Ok(Rendered {
            subject: part("subject", &t.spec.subject)?,
            text: part("text", &t.spec.text)?,
            html: part("html", &t.spec.html)?,
        })
    }
}

#[cfg(test)]
mod tests;
