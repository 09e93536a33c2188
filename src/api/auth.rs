//! API authentication: `Authorization: Bearer <key>` checked against hashed keys from the
//! configuration. With no keys configured the API is open, and the configuration only allows
//! a loopback listener (like Redis's protected mode). Each key has its own request rate limit
//! (`api.key_rps`, `api.key_burst`): past it, `429 rate_limited` with `Retry-After`.

use super::error::ApiError;
use crate::connector::ratelimit::TokenBucket;
use crate::secret::{parse_hash, Verifier};
use hyper::StatusCode;

/// The API's key check.
pub struct ApiAuth {
    keys: Verifier,
    /// One per key, when keys have a rate limit.
    limits: Vec<TokenBucket>,
}

impl ApiAuth {
    pub fn new(hashes: &[String]) -> Self {
        Self::with_limits(hashes, 0.0, 0)
    }

    /// Keys with `rps` requests a second each (0: unlimited), bursts of `burst`.
    pub fn with_limits(hashes: &[String], rps: f64, burst: u32) -> Self {
        let keys: Vec<_> = hashes.iter().filter_map(|h| parse_hash(h).ok()).collect();
        let limits = if rps > 0.0 { keys.iter().map(|_| TokenBucket::new(rps, burst)).collect() } else { Vec::new() };
        ApiAuth { keys: Verifier::new(keys), limits }
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
            Some(k) => match self.keys.find(k) {
                None => Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", "invalid API key")),
                Some(i) => match self.limits.get(i).map(TokenBucket::try_take) {
                    Some(Err(wait)) => Err(ApiError::new(
                        StatusCode::TOO_MANY_REQUESTS,
                        "rate_limited",
                        format!("this key is limited to {} requests a second", self.limits[i].rate()),
                    )
                    .retry_after(wait.as_secs_f64().ceil().max(1.0) as u32)),
                    _ => Ok(()),
                },
            },
        }
    }
}
