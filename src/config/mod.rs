//! Configuration: TOML parsed with `deny_unknown_fields`, then validated as a whole so that
//! every problem is reported at once with its key path (`connectors.op-a.window: ...`).
//! Nothing here opens a port or a file other than the config file itself.

mod types;
mod validate;

pub use types::*;

use std::path::Path;
use thiserror::Error;

/// The configuration used when none is given.
pub const EMBEDDED_DEFAULT: &str = include_str!("default.toml");

pub use crate::check::Problem;

/// Why a configuration could not be loaded.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{} problem(s) in the configuration:\n{}", .0.len(), .0.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Problem>),
}

impl ConfigError {
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Invalid(p) => p,
            ConfigError::Read { .. } => &[],
        }
    }
}

impl Config {
    /// Parse and validate TOML text. Environment variables named by `*_env` keys are read.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        Self::from_toml_with_env(text, &|k| std::env::var(k).ok())
    }

    /// As [`Config::from_toml`], with an explicit environment (for tests).
    pub fn from_toml_with_env(
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let value: toml::Table = toml::from_str(text).map_err(|e| {
            ConfigError::Invalid(vec![Problem {
                path: String::new(),
                message: format!("TOML syntax: {e}"),
            }])
        })?;
        let (cfg, mut problems) = types::parse_sections(value);
        if let Some(cfg) = &cfg {
            problems.extend(validate::validate(cfg, env));
        }
        match cfg {
            Some(cfg) if problems.is_empty() => Ok(cfg),
            _ => Err(ConfigError::Invalid(problems)),
        }
    }

    /// Load from a file, or the embedded default when `path` is `None`.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        match path {
            None => Self::from_toml(EMBEDDED_DEFAULT),
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.display().to_string(),
                    source,
                })?;
                Self::from_toml(&text)
            }
        }
    }
}

#[cfg(test)]
mod tests;
