//! API authentication: `Authorization: Bearer <key>` checked against hashed keys from the
//! configuration. With no keys configured the API is open, and the configuration only allows
//! a loopback listener (like Redis's protected mode).

use super::error::ApiError;
use crate::secret::{parse_hash, Verifier};
use hyper::StatusCode;

/// The API's key check.
pub struct ApiAuth {
    keys: Verifier,
}

impl ApiAuth {
    pub fn new(hashes: &[String]) -> Self {
        ApiAuth {
            keys: Verifier::new(hashes.iter().filter_map(|h| parse_hash(h).ok()).collect()),
        }
    }

    pub fn is_open(&self) -> bool {
        self.keys.is_empty()
    }

    /// Check the `Authorization` header value.
    pub fn check(&self, header: Option<&str>) -> Result<(), ApiError> {
        if self.keys.is_empty() {
            return Ok(());
        }
        let Some(h) = header else {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "missing Authorization: Bearer <key>",
            ));
        };
        let key = h
            .strip_prefix("Bearer ")
            .or_else(|| h.strip_prefix("bearer "))
            .map(str::trim);
        match key {
            None => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Authorization must be Bearer <key>",
            )),
            Some(k) if self.keys.check(k) => Ok(()),
            Some(_) => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "invalid API key",
            )),
        }
    }
}
