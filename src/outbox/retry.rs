//! Retry policy: exponential backoff with jitter, capped; and the error classes that decide
//! whether a failure spends an attempt.

use crate::config::RetryConfig;
use std::time::Duration;

/// The delay before attempt `attempt + 1`, after `attempt` attempts (1-based) failed.
pub fn backoff(cfg: &RetryConfig, attempt: u32) -> Duration {
    let base = cfg.initial_delay_ms as f64
        * cfg
            .multiplier
            .powi(attempt.saturating_sub(1).min(60) as i32);
    let capped = base.min(cfg.max_delay_s as f64 * 1000.0);
    let jitter = if cfg.jitter > 0.0 {
        (rand::random::<f64>() * 2.0 - 1.0) * cfg.jitter
    } else {
        0.0
    };
    Duration::from_millis((capped * (1.0 + jitter)).max(1.0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_and_caps() {
        let cfg = RetryConfig {
            jitter: 0.0,
            initial_delay_ms: 100,
            multiplier: 2.0,
            max_delay_s: 1,
            ..Default::default()
        };
        assert_eq!(backoff(&cfg, 1), Duration::from_millis(100));
        assert_eq!(backoff(&cfg, 2), Duration::from_millis(200));
        assert_eq!(backoff(&cfg, 4), Duration::from_millis(800));
        assert_eq!(backoff(&cfg, 5), Duration::from_millis(1000));
        assert_eq!(backoff(&cfg, 500), Duration::from_millis(1000));
        let j = RetryConfig {
            jitter: 0.2,
            initial_delay_ms: 1000,
            ..Default::default()
        };
        for _ in 0..100 {
            let d = backoff(&j, 1).as_millis();
            assert!((800..=1200).contains(&d), "{d}");
        }
    }
}
