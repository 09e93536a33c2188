//! Token bucket (messages/second with a burst) shared by all sessions of one connector. Callers
//! reserve a token and are told how long to wait, so waiters queue fairly and nobody spins.
//! The rate can be changed at run time (adaptive throttling).

use parking_lot::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug)]
struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

/// A token bucket; rate 0 means unlimited.
#[derive(Debug)]
pub struct TokenBucket {
    inner: Mutex<Bucket>,
}

impl TokenBucket {
    pub fn new(rate: f64, burst: u32) -> Self {
        let burst = if burst == 0 {
            rate.max(1.0)
        } else {
            burst as f64
        };
        TokenBucket {
            inner: Mutex::new(Bucket {
                rate,
                burst,
                tokens: burst,
                last: Instant::now(),
            }),
        }
    }

    /// Reserve one token; returns how long to wait before using it.
    pub fn reserve(&self) -> Duration {
        let mut b = self.inner.lock();
        if b.rate <= 0.0 {
            return Duration::ZERO;
        }
        let now = Instant::now();
        let elapsed = now.duration_since(b.last).as_secs_f64();
        b.last = now;
        b.tokens = (b.tokens + elapsed * b.rate).min(b.burst);
        b.tokens -= 1.0;
        if b.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-b.tokens / b.rate)
        }
    }

    /// Take a token if one is there; else how long until one is (nothing taken).
    pub fn try_take(&self) -> Result<(), Duration> {
        let mut b = self.inner.lock();
        if b.rate <= 0.0 {
            return Ok(());
        }
        let now = Instant::now();
        let elapsed = now.duration_since(b.last).as_secs_f64();
        b.last = now;
        b.tokens = (b.tokens + elapsed * b.rate).min(b.burst);
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / b.rate))
        }
    }

    /// Wait for a token.
    pub async fn acquire(&self) {
        let d = self.reserve();
        if !d.is_zero() {
            tokio::time::sleep(d).await;
        }
    }

    pub fn rate(&self) -> f64 {
        self.inner.lock().rate
    }

    /// Change the rate (0 = unlimited), keeping the tokens earned so far.
    pub fn set_rate(&self, rate: f64) {
        let mut b = self.inner.lock();
        b.rate = rate;
        if b.tokens > b.burst {
            b.tokens = b.burst;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_paced() {
        let b = TokenBucket::new(100.0, 5);
        for _ in 0..5 {
            assert_eq!(b.reserve(), Duration::ZERO);
        }
        let d = b.reserve();
        assert!(
            d > Duration::from_millis(5) && d <= Duration::from_millis(11),
            "{d:?}"
        );
        let d2 = b.reserve();
        assert!(d2 > d, "waiters queue: {d:?} then {d2:?}");
        assert_eq!(TokenBucket::new(0.0, 0).reserve(), Duration::ZERO);
    }
}
