//! Adaptive pacing for a link whose peer says "slow down" (SMPP `ESME_RTHROTTLED` /
//! `ESME_RMSGQFUL`; later an HTTP provider's 429), shaped like TCP congestion control rather
//! than "halve on every refusal".
//!
//! Time is cut into rounds of [`ROUND`]. Each round counts the submits sent, accepted and
//! throttled. A round with throttles is one congestion event: the rate is cut **once**, from
//! the rate *measured* in that round, in proportion to how much of the traffic was throttled
//! (DCTCP's `rate × (1 − α/2)`, where α is a moving average of the throttled fraction). A
//! window of 1,000 submits answered with hundreds of throttles for one burst is one cut, not
//! hundreds; a carrier that throttles 1% of submits at random costs about 1% of the rate, not
//! all of it. Every round the rate also probes upward: multiplicatively (×1.5) back to the
//! last rate that was cut, then additively (+5% of it), so a carrier that throttled for a moment
//! is back at full speed within a second. A configured `tps` is a ceiling at all times. After
//! [`UNPACE_AFTER`] without a throttle (and with no ceiling) pacing switches off again.
//!
//! Submitters wait in line (FIFO) for their send time while paced; unpaced, [`Pacer::acquire`]
//! is one atomic load. Written by hand: no crate does rate-based congestion control for a
//! request/response peer.

use parking_lot::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Length of one measurement round (about one round trip of a busy carrier link).
pub const ROUND: Duration = Duration::from_millis(100);
/// Weight of the newest round in α (the moving average of the throttled fraction).
const GAIN: f64 = 0.25;
/// Additive probe per round above the last cut rate, as a fraction of that rate.
const PROBE: f64 = 0.05;
/// Multiplicative recovery per round while below the last cut rate.
const RECOVER: f64 = 1.5;
/// Pacing switches off after this long without a throttle (when no ceiling is set).
pub const UNPACE_AFTER: Duration = Duration::from_secs(30);
/// Never paced below this (messages per second).
const MIN_RATE: f64 = 1.0;
/// How far behind "now" the schedule may fall: a burst of up to this much time's worth of
/// sends goes out at once after a pause.
const SLACK: Duration = Duration::from_millis(10);

#[derive(Debug)]
struct State {
    /// Current pacing rate (messages/s); 0 = not paced.
    rate: f64,
    /// Moving average of the throttled fraction of answers.
    alpha: f64,
    /// The measured rate at the last cut (the "last good" rate probed back to).
    w_max: f64,
    round_start: Instant,
    sent: u64,
    ok: u64,
    throttled: u64,
    /// Send rate measured in the last round that sent anything.
    last_sent_rate: f64,
    last_throttle: Option<Instant>,
    /// When the next paced send may go.
    next_at: Instant,
}

/// An adaptive rate limiter shared by every session of one link.
#[derive(Debug)]
pub struct Pacer {
    state: Mutex<State>,
    /// The current rate's bits (`f64`), readable without the lock; 0 = unpaced.
    rate_bits: AtomicU64,
    /// Configured ceiling (messages/s); 0 = none.
    ceiling: f64,
    /// Submitters wait here in turn while paced.
    line: tokio::sync::Mutex<()>,
    throttles: AtomicU64,
    cuts: AtomicU64,
}

impl Pacer {
    /// A pacer with an optional ceiling (`tps`, 0 = none); unpaced below the ceiling until the
    /// peer throttles.
    pub fn new(ceiling: f64) -> Pacer {
        let ceiling = if ceiling.is_finite() && ceiling > 0.0 { ceiling } else { 0.0 };
        let now = Instant::now();
        Pacer {
            state: Mutex::new(State { rate: ceiling, alpha: 0.0, w_max: 0.0, round_start: now, sent: 0, ok: 0, throttled: 0, last_sent_rate: 0.0, last_throttle: None, next_at: now }),
            rate_bits: AtomicU64::new(ceiling.to_bits()),
            ceiling,
            line: tokio::sync::Mutex::new(()),
            throttles: AtomicU64::new(0),
            cuts: AtomicU64::new(0),
        }
    }

    /// The current rate (messages/s); 0 = unpaced.
    pub fn rate(&self) -> f64 {
        f64::from_bits(self.rate_bits.load(Ordering::Relaxed))
    }

    /// Throttled answers seen, and rate cuts made (congestion events).
    pub fn throttles(&self) -> (u64, u64) {
        (self.throttles.load(Ordering::Relaxed), self.cuts.load(Ordering::Relaxed))
    }

    /// Wait for the next send slot, then count the send.
    pub async fn acquire(&self) {
        if self.rate() > 0.0 {
            let _turn = self.line.lock().await;
            loop {
                let wait = {
                    let mut s = self.state.lock();
                    let now = Instant::now();
                    self.roll(&mut s, now);
                    if s.rate <= 0.0 {
                        Duration::ZERO
                    } else if s.next_at <= now {
                        let from = s.next_at.max(now.checked_sub(SLACK).unwrap_or(now));
                        s.next_at = from + Duration::from_secs_f64(1.0 / s.rate);
                        Duration::ZERO
                    } else {
                        s.next_at - now
                    }
                };
                if wait.is_zero() {
                    break;
                }
                // In slices, so that a rate raised meanwhile takes effect at once.
                tokio::time::sleep(wait.min(Duration::from_millis(20))).await;
            }
        }
        let mut s = self.state.lock();
        let now = Instant::now();
        self.roll(&mut s, now);
        s.sent += 1;
    }

    /// The peer accepted a submit.
    pub fn accepted(&self) {
        let mut s = self.state.lock();
        self.roll(&mut s, Instant::now());
        s.ok += 1;
    }

    /// The peer throttled a submit.
    pub fn throttled(&self) {
        self.throttles.fetch_add(1, Ordering::Relaxed);
        let mut s = self.state.lock();
        let now = Instant::now();
        self.roll(&mut s, now);
        s.throttled += 1;
        s.last_throttle = Some(now);
    }

    /// Close every round that has ended by `now`.
    fn roll(&self, s: &mut State, now: Instant) {
        while now.saturating_duration_since(s.round_start) >= ROUND {
            self.close_round(s);
            s.round_start += ROUND;
            if now.saturating_duration_since(s.round_start) >= ROUND * 10 {
                // Idle for a while: rounds without traffic change nothing but α.
                let idle = (now.saturating_duration_since(s.round_start).as_secs_f64() / ROUND.as_secs_f64()) as i32;
                s.alpha *= (1.0 - GAIN).powi(idle);
                s.round_start = now;
            }
        }
    }

    fn close_round(&self, s: &mut State) {
        let answers = s.ok + s.throttled;
        let fraction = if answers > 0 { s.throttled as f64 / answers as f64 } else { 0.0 };
        s.alpha = (1.0 - GAIN) * s.alpha + GAIN * fraction;
        let secs = ROUND.as_secs_f64();
        let sent_rate = s.sent as f64 / secs;
        if s.sent > 0 {
            s.last_sent_rate = sent_rate;
        }
        let measured = if sent_rate > 0.0 { sent_rate } else { s.last_sent_rate };
        if s.throttled > 0 {
            // One cut per round, from what was actually sent (not from a rate never reached).
            let base = if measured > 0.0 { measured } else { (answers as f64 / secs).max(MIN_RATE) };
            let base = if s.rate > 0.0 { base.min(s.rate) } else { base };
            s.w_max = base;
            // This round's own share counts in full: a sudden burst of throttles is cut at once.
            let a = s.alpha.max(fraction);
            s.rate = base * (1.0 - a / 2.0) + base * PROBE * (1.0 - a);
            self.cuts.fetch_add(1, Ordering::Relaxed);
        } else if s.rate > 0.0 && s.last_throttle.is_some() {
            let quiet = s.last_throttle.map(|t| t.elapsed()).unwrap_or_default();
            if self.ceiling <= 0.0 && quiet >= UNPACE_AFTER {
                s.rate = 0.0;
                s.last_throttle = None;
            } else if measured >= 0.8 * s.rate {
                // The pace is what holds the link back: probe upward.
                s.rate = if s.rate < s.w_max { (s.rate * RECOVER).min(s.w_max) } else { s.rate + (s.w_max * PROBE).max(MIN_RATE) };
            }
        }
        if s.rate > 0.0 {
            s.rate = s.rate.max(MIN_RATE);
        }
        if self.ceiling > 0.0 && (s.rate <= 0.0 || s.rate > self.ceiling) {
            s.rate = self.ceiling;
        }
        self.rate_bits.store(s.rate.to_bits(), Ordering::Relaxed);
        s.sent = 0;
        s.ok = 0;
        s.throttled = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Drive the pacer's rounds by hand: `per_round` sends in a round, `throttle(i)` says which
    /// of them the peer throttles. Returns the rate after each round.
    fn simulate(p: &Pacer, rounds: usize, mut per_round: impl FnMut(f64) -> u64, throttle: impl Fn(u64) -> bool) -> Vec<f64> {
        let mut n = 0u64;
        let mut rates = Vec::new();
        let mut s = p.state.lock();
        let t0 = s.round_start;
        for r in 0..rounds {
            let sends = per_round(s.rate);
            for _ in 0..sends {
                n += 1;
                s.sent += 1;
                if throttle(n) {
                    s.throttled += 1;
                    s.last_throttle = Some(Instant::now());
                } else {
                    s.ok += 1;
                }
            }
            p.roll(&mut s, t0 + ROUND * (r as u32 + 1));
            rates.push(s.rate);
        }
        rates
    }

    /// At most `offered` per round, or what the rate allows.
    fn offered(max_per_round: u64) -> impl FnMut(f64) -> u64 {
        move |rate| if rate <= 0.0 { max_per_round } else { ((rate * ROUND.as_secs_f64()) as u64).min(max_per_round).max(1) }
    }

    #[test]
    fn unpaced_until_throttled() {
        let p = Pacer::new(0.0);
        let rates = simulate(&p, 20, offered(1000), |_| false);
        assert!(rates.iter().all(|r| *r == 0.0));
    }

    #[test]
    fn sparse_throttling_costs_little() {
        // 1 in 100 throttled at 10,000/s offered: the rate must stay near what is offered.
        let p = Pacer::new(0.0);
        let rates = simulate(&p, 300, offered(1000), |n| n % 100 == 0);
        let last = *rates.last().unwrap();
        assert!(last >= 9_000.0, "rate collapsed to {last}: {:?}", &rates[..20]);
    }

    #[test]
    fn a_burst_of_throttles_is_one_cut() {
        let p = Pacer::new(0.0);
        // One round where 300 of 1,000 are throttled, then none.
        let rates = simulate(&p, 1, offered(1000), |n| n <= 300);
        assert_eq!(p.throttles().1, 1);
        assert!(rates[0] >= 8_000.0 && rates[0] < 10_000.0, "{rates:?}");
        let later = simulate(&p, 10, offered(1000), |_| false);
        assert!(*later.last().unwrap() >= 10_000.0, "recovers to the offered rate: {later:?}");
    }

    #[test]
    fn converges_to_a_strict_limit() {
        // The carrier takes 2,000/s (200 a round) and throttles the rest of each round.
        let p3 = Pacer::new(0.0);
        let mut rates = Vec::new();
        for _ in 0..80 {
            let mut s = p3.state.lock();
            let sends = if s.rate <= 0.0 { 1000 } else { ((s.rate * ROUND.as_secs_f64()) as u64).clamp(1, 1000) };
            for i in 0..sends {
                s.sent += 1;
                if i >= 200 {
                    s.throttled += 1;
                    s.last_throttle = Some(Instant::now());
                } else {
                    s.ok += 1;
                }
            }
            let next = s.round_start + ROUND;
            p3.roll(&mut s, next);
            rates.push(s.rate);
        }
        let tail = &rates[40..];
        let avg = tail.iter().sum::<f64>() / tail.len() as f64;
        assert!(avg > 1_800.0 && avg < 2_600.0, "settles near the carrier's 2,000/s: {avg} {rates:?}");
    }

    #[test]
    fn ceiling_always_holds() {
        let p = Pacer::new(500.0);
        assert_eq!(p.rate(), 500.0);
        let rates = simulate(&p, 50, offered(1000), |_| false);
        assert!(rates.iter().all(|r| *r == 500.0), "{rates:?}");
    }

    #[tokio::test]
    async fn paced_sends_are_spaced() {
        let p = Pacer::new(200.0);
        let t = Instant::now();
        for _ in 0..21 {
            p.acquire().await;
        }
        let took = t.elapsed();
        // 20 intervals of 5 ms, less the slack of a first burst.
        assert!(took >= Duration::from_millis(85), "{took:?}");
    }
}
