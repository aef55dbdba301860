//! The one retry loop in herd. Backends never retry on their own; this loop retries only
//! temporary errors, with exponential backoff and "equal jitter" (half fixed, half
//! random), honouring a server's retry-after, and gives rate limits a time budget
//! rather than an attempt count, since a token bucket can need minutes to refill. Every
//! wait is told to a [`RetryObserver`] first, so a long wait is never silent, and every
//! operation has a total patience, so no wait is endless.

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
    /// How long one operation keeps trying while rate limited, counted from its first
    /// attempt (calls included).
    pub rate_limit_patience: Duration,
    /// How long one operation keeps trying after other temporary errors (outages,
    /// timeouts, hangs), counted from its first attempt, calls included: with a per-call
    /// timeout this bounds a hanging endpoint too, whatever `max_attempts` allows.
    pub patience: Duration,
}

impl RetryPolicy {
    /// EC2's RunInstances resource bucket holds 1,000 tokens and refills 2 a second
    /// (docs.aws.amazon.com/ec2/latest/devguide/ec2-api-throttling.html, "Resource token
    /// bucket sizes and refill rates"): a second 1,000-instance batch waits 500 s. Ten
    /// minutes covers that with room for the backoff cap, and no more: past it a person
    /// is better told to try later than kept waiting.
    pub const DEFAULT_RATE_LIMIT_PATIENCE: Duration = Duration::from_secs(10 * 60);
    /// An outage that lasts two minutes rarely ends in the third; a person would rather
    /// hear about it then.
    pub const DEFAULT_PATIENCE: Duration = Duration::from_secs(2 * 60);
    /// Neither patience may exceed this, whatever a config file says: beyond an hour a
    /// wait is a hang, not patience.
    pub const MAX_PATIENCE: Duration = Duration::from_secs(3600);
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 8,
            base: Duration::from_millis(250),
            cap: Duration::from_secs(30),
            rate_limit_patience: Self::DEFAULT_RATE_LIMIT_PATIENCE,
            patience: Self::DEFAULT_PATIENCE,
        }
    }
}

impl RetryPolicy {
    /// No retries at all (for tests that count raw calls).
    pub fn none() -> Self {
        RetryPolicy {
            max_attempts: 1,
            rate_limit_patience: Duration::ZERO,
            patience: Duration::ZERO,
            ..Default::default()
        }
    }

    /// This policy with both patiences set to `patience` (e.g. `[retry] patience` in
    /// herd.toml); refused when zero or longer than [`RetryPolicy::MAX_PATIENCE`], so a
    /// typo can neither disable retries silently nor make herd wait for days.
    pub fn with_patience(mut self, patience: Duration) -> Result<Self> {
        Self::check_patience(patience)?;
        self.patience = patience;
        self.rate_limit_patience = patience;
        Ok(self)
    }

    /// Checks a patience value from configuration (see [`RetryPolicy::with_patience`]).
    pub fn check_patience(patience: Duration) -> Result<()> {
        if patience.is_zero() || patience > Self::MAX_PATIENCE {
            return Err(crate::error::Error::config(format!(
                "retry patience {} is not between 1s and {}",
                crate::guardrails::human(patience),
                crate::guardrails::human(Self::MAX_PATIENCE)
            ))
            .with_hint("set `[retry] patience` to a few minutes, e.g. \"5m\""));
        }
        Ok(())
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

    /// Runs `op` until it succeeds, fails permanently, or the policy gives up, telling
    /// nobody about its waits (see [`RetryPolicy::run_observed`]).
    pub async fn run<T, F, Fut>(&self, clock: &dyn Clock, rng: &SeededRng, stats: &RetryStats, op: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        self.run_observed(clock, rng, stats, &SilentObserver, op).await
    }

    /// Runs `op` until it succeeds, fails permanently, or the policy gives up; before
    /// every wait `observer` hears how long this operation has waited, how long it will
    /// wait next, how many attempts failed and why.
    pub async fn run_observed<T, F, Fut>(
        &self,
        clock: &dyn Clock,
        rng: &SeededRng,
        stats: &RetryStats,
        observer: &dyn RetryObserver,
        mut op: F,
    ) -> Result<T>
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
                other_failures >= self.max_attempts || waited + wait > self.patience
            };
            if give_up {
                let attempts = attempt + 1;
                let patience = if rate_limited {
                    self.rate_limit_patience
                } else {
                    self.patience
                };
                let why = if !rate_limited && other_failures >= self.max_attempts {
                    String::new()
                } else {
                    format!(
                        " (patience {}, `[retry]` in herd.toml)",
                        crate::guardrails::human(patience)
                    )
                };
                return Err(err.with_hint(format!(
                    "gave up after {attempts} attempts over {}s{why}; the service kept failing temporarily, try again later",
                    waited.as_secs()
                )));
            }
            stats.retries.fetch_add(1, Ordering::Relaxed);
            observer.retrying(waited, wait, attempt + 1, &err);
            clock.sleep(wait).await;
            attempt += 1;
        }
    }
}

/// Told by the retry loop while it keeps retrying, so a long wait is never silent: the
/// CLI prints a line on stderr (what, how long, the endpoint) after a few seconds.
/// `waited` is the time since the first attempt; `last` the error that made it wait
/// (its context carries the endpoint when the backend knows it); `attempt` how many
/// attempts have failed so far (1 after the first).
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

    /// Remembers every notice the loop gave.
    #[derive(Debug, Default)]
    struct Notes(std::sync::Mutex<Vec<(Duration, Duration, u32, ErrorKind)>>);

    impl RetryObserver for Notes {
        fn retrying(&self, waited: Duration, next: Duration, attempt: u32, last: &Error) {
            self.0.lock().unwrap().push((waited, next, attempt, last.kind()));
        }
    }

    #[tokio::test]
    async fn every_retry_is_told_to_the_observer() {
        let clock = VirtualClock::at_epoch();
        let stats = RetryStats::default();
        let notes = Notes::default();
        let n = AtomicU32::new(0);
        let r: Result<u32> = RetryPolicy::default()
            .run_observed(&clock, &SeededRng::new(1), &stats, &notes, || async {
                match n.fetch_add(1, Ordering::SeqCst) {
                    0 | 1 => Err(Error::new(ErrorKind::RateLimited, "slow down")),
                    2 => Err(Error::new(ErrorKind::Unavailable, "flaky")),
                    _ => Ok(7),
                }
            })
            .await;
        assert_eq!(r.unwrap(), 7);
        let notes = notes.0.into_inner().unwrap();
        assert_eq!(notes.len(), 3, "one notice per retry: {notes:?}");
        assert_eq!(
            notes.iter().map(|n| (n.2, n.3)).collect::<Vec<_>>(),
            vec![
                (1, ErrorKind::RateLimited),
                (2, ErrorKind::RateLimited),
                (3, ErrorKind::Unavailable)
            ]
        );
        assert_eq!(notes[0].0, Duration::ZERO, "nothing waited before the first retry");
        for w in notes.windows(2) {
            assert_eq!(w[1].0, w[0].0 + w[0].1, "waited so far = the sum of the waits before");
        }
        assert!(notes.iter().all(|n| !n.1.is_zero()));
        assert_eq!(stats.snapshot().3, 3);
    }

    #[tokio::test]
    async fn permanent_errors_and_successes_tell_the_observer_nothing() {
        let clock = VirtualClock::at_epoch();
        let notes = Notes::default();
        let stats = RetryStats::default();
        let _: Result<()> = RetryPolicy::default()
            .run_observed(&clock, &SeededRng::new(1), &stats, &notes, || async {
                Err(Error::invalid_spec("no"))
            })
            .await;
        let _: Result<()> = RetryPolicy::default()
            .run_observed(&clock, &SeededRng::new(1), &stats, &notes, || async { Ok(()) })
            .await;
        assert!(notes.0.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn total_patience_bounds_hanging_calls() {
        // Each call hangs 60 s (a per-call timeout) before failing: without a total
        // patience, 8 attempts would take 8 minutes.
        let clock = VirtualClock::at_epoch();
        let start = clock.now();
        let stats = RetryStats::default();
        let notes = Notes::default();
        let policy = RetryPolicy::default();
        let r: Result<()> = policy
            .run_observed(&clock, &SeededRng::new(1), &stats, &notes, || async {
                clock.sleep(Duration::from_secs(60)).await;
                Err(Error::new(ErrorKind::Timeout, "no answer from 127.0.0.1:9"))
            })
            .await;
        let e = r.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Timeout);
        assert!(e.hint().unwrap().contains("patience 2m"), "{:?}", e.hint());
        let took = between(start, clock.now());
        assert!(took <= policy.patience + Duration::from_secs(60), "{took:?}");
        assert!(
            stats.snapshot().0 < u64::from(policy.max_attempts),
            "{:?}",
            stats.snapshot()
        );
        let notes = notes.0.into_inner().unwrap();
        assert!(notes.iter().all(|n| n.0 + n.1 <= policy.patience), "{notes:?}");
        assert!(
            notes.last().unwrap().0 >= Duration::from_secs(60),
            "the observer saw the long wait"
        );
    }

    #[test]
    fn patience_is_bounded() {
        let p = RetryPolicy::default().with_patience(Duration::from_secs(300)).unwrap();
        assert_eq!(
            (p.patience, p.rate_limit_patience),
            (Duration::from_secs(300), Duration::from_secs(300))
        );
        for bad in [Duration::ZERO, Duration::from_secs(86_400)] {
            let e = RetryPolicy::default().with_patience(bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::ConfigInvalid);
            assert!(e.hint().unwrap().contains("[retry]"));
        }
        let d = RetryPolicy::default();
        assert!(d.rate_limit_patience <= Duration::from_secs(10 * 60) && d.patience <= d.rate_limit_patience);
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
