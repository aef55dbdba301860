//! The one retry loop in herd. Backends never retry on their own; this loop retries only
//! temporary errors, with exponential backoff and "equal jitter" (half fixed, half
//! random), honouring a server's retry-after, and gives rate limits a time budget
//! rather than an attempt count, since a token bucket can need minutes to refill.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::clock::{between, Clock};
use crate::error::{ErrorKind, Result};
use crate::rng::SeededRng;

#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts for temporary errors other than rate limiting (first call included).
    pub max_attempts: u32,
    pub base: Duration,
    /// Longest single wait. It also bounds how far past a refilled token bucket a
    /// throttled caller may oversleep.
    pub cap: Duration,
    /// How long to keep trying while rate limited.
    pub rate_limit_patience: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 8,
            base: Duration::from_millis(250),
            cap: Duration::from_secs(30),
            rate_limit_patience: Duration::from_secs(20 * 60),
        }
    }
}

impl RetryPolicy {
    /// No retries at all (for tests that count raw calls).
    pub fn none() -> Self {
        RetryPolicy {
            max_attempts: 1,
            rate_limit_patience: Duration::ZERO,
            ..Default::default()
        }
    }

    /// The wait before retry number `attempt` (0-based).
    pub fn backoff(&self, attempt: u32, rng: &SeededRng) -> Duration {
        let exp = self
            .base
            .saturating_mul(1u32.checked_shl(attempt.min(30)).unwrap_or(u32::MAX));
        let d = exp.min(self.cap);
        let half = d / 2;
        half + Duration::from_nanos(rng.range_u64(0, half.as_nanos() as u64))
    }

    /// Runs `op` until it succeeds, fails permanently, or the policy gives up.
    pub async fn run<T, F, Fut>(&self, clock: &dyn Clock, rng: &SeededRng, stats: &RetryStats, mut op: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let start = clock.now();
        let mut attempt: u32 = 0;
        let mut other_failures: u32 = 0;
        loop {
            stats.calls.fetch_add(1, Ordering::Relaxed);
            let err = match op().await {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            if !err.is_temporary() {
                return Err(err);
            }
            let rate_limited = err.kind() == ErrorKind::RateLimited;
            if rate_limited {
                stats.throttled.fetch_add(1, Ordering::Relaxed);
            } else {
                other_failures += 1;
                stats.transient.fetch_add(1, Ordering::Relaxed);
            }
            let mut wait = self.backoff(attempt, rng);
            if let Some(ra) = err.retry_after() {
                wait = wait.max(ra);
            }
            let waited = between(start, clock.now());
            let give_up = if rate_limited {
                waited + wait > self.rate_limit_patience
            } else {
                other_failures >= self.max_attempts
            };
            if give_up {
                let attempts = attempt + 1;
                return Err(err.with_hint(format!(
                    "gave up after {attempts} attempts over {}s; the service kept failing temporarily, try again later",
                    waited.as_secs()
                )));
            }
            stats.retries.fetch_add(1, Ordering::Relaxed);
            clock.sleep(wait).await;
            attempt += 1;
        }
    }
}

/// Told by the retry loop while it keeps retrying, so a long wait is never silent: the
/// CLI prints a line on stderr (what, how long, the endpoint) after a few seconds.
/// `waited` is the time since the first attempt; `last` the error that made it wait
/// (its context carries the endpoint when the backend knows it).
pub trait RetryObserver: Send + Sync + std::fmt::Debug {
    fn retrying(&self, waited: Duration, next_wait: Duration, attempt: u32, last: &crate::error::Error);
}

/// Says nothing (library users and tests).
#[derive(Debug, Default, Clone, Copy)]
pub struct SilentObserver;

impl RetryObserver for SilentObserver {
    fn retrying(&self, _: Duration, _: Duration, _: u32, _: &crate::error::Error) {}
}

/// Counters of what the retry loop did; benchmarks and `--verbose` report them.
#[derive(Debug, Default)]
pub struct RetryStats {
    pub calls: AtomicU64,
    pub throttled: AtomicU64,
    pub transient: AtomicU64,
    pub retries: AtomicU64,
}

impl RetryStats {
    /// Adds another set of counters to these (one operation's counts into the totals).
    pub fn absorb(&self, other: &RetryStats) {
        for (mine, theirs) in [
            (&self.calls, &other.calls),
            (&self.throttled, &other.throttled),
            (&self.transient, &other.transient),
            (&self.retries, &other.retries),
        ] {
            mine.fetch_add(theirs.load(Ordering::Relaxed), Ordering::Relaxed);
        }
    }

    pub fn snapshot(&self) -> (u64, u64, u64, u64) {
        (
            self.calls.load(Ordering::Relaxed),
            self.throttled.load(Ordering::Relaxed),
            self.transient.load(Ordering::Relaxed),
            self.retries.load(Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::VirtualClock;
    use crate::error::Error;
    use std::sync::atomic::AtomicU32;

    #[tokio::test]
    async fn retries_temporary_then_succeeds() {
        let clock = VirtualClock::at_epoch();
        let rng = SeededRng::new(1);
        let stats = RetryStats::default();
        let n = AtomicU32::new(0);
        let r: Result<u32> = RetryPolicy::default()
            .run(&clock, &rng, &stats, || async {
                if n.fetch_add(1, Ordering::SeqCst) < 3 {
                    Err(Error::new(ErrorKind::Unavailable, "flaky"))
                } else {
                    Ok(7)
                }
            })
            .await;
        assert_eq!(r.unwrap(), 7);
        assert_eq!(stats.snapshot(), (4, 0, 3, 3));
    }

    #[tokio::test]
    async fn permanent_errors_are_not_retried() {
        let clock = VirtualClock::at_epoch();
        let stats = RetryStats::default();
        let r: Result<()> = RetryPolicy::default()
            .run(&clock, &SeededRng::new(1), &stats, || async {
                Err(Error::invalid_spec("no"))
            })
            .await;
        assert_eq!(r.unwrap_err().kind(), ErrorKind::InvalidSpec);
        assert_eq!(stats.snapshot().0, 1);
    }

    #[tokio::test]
    async fn rate_limits_get_a_time_budget_and_backoff_is_capped() {
        let clock = VirtualClock::at_epoch();
        let start = clock.now();
        let stats = RetryStats::default();
        let policy = RetryPolicy::default();
        let r: Result<()> = policy
            .run(&clock, &SeededRng::new(1), &stats, || async {
                Err(Error::new(ErrorKind::RateLimited, "slow down"))
            })
            .await;
        assert!(r.is_err());
        let waited = between(start, clock.now());
        assert!(waited <= policy.rate_limit_patience, "{waited:?}");
        assert!(waited >= policy.rate_limit_patience - policy.cap, "{waited:?}");
        for a in 0..40 {
            assert!(policy.backoff(a, &SeededRng::new(a as u64)) <= policy.cap);
        }
    }
}
