//! Time is injected: the system clock in production, a virtual clock in tests and in the
//! simulator's virtual mode, where sleeping advances time instantly.

use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

#[async_trait]
pub trait Clock: Send + Sync + Debug {
    fn now(&self) -> DateTime<Utc>;
    async fn sleep(&self, d: Duration);
    /// Whether time only moves when someone sleeps (a virtual clock).
    fn is_virtual(&self) -> bool {
        false
    }
}

pub type SharedClock = Arc<dyn Clock>;

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

#[async_trait]
impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
    async fn sleep(&self, d: Duration) {
        tokio::time::sleep(d).await
    }
}

/// A clock that starts at a fixed instant and moves only when slept on or advanced.
/// Concurrent sleepers each advance it; that is the point: a 500 s token-bucket wait
/// costs no wall time.
#[derive(Debug, Clone)]
pub struct VirtualClock {
    now: Arc<Mutex<DateTime<Utc>>>,
}

impl VirtualClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        VirtualClock {
            now: Arc::new(Mutex::new(start)),
        }
    }

    /// A clock at 2026-01-01T00:00:00Z, for reproducible tests.
    pub fn at_epoch() -> Self {
        VirtualClock::new(DateTime::from_timestamp(1_767_225_600, 0).expect("valid instant"))
    }

    pub fn advance(&self, d: Duration) {
        let mut now = self.now.lock().expect("clock lock");
        // Saturating: a test that sleeps "forever" ends at the end of time, not in a panic.
        *now = now
            .checked_add_signed(chrono_dur(d))
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
    }

    pub fn set(&self, t: DateTime<Utc>) {
        *self.now.lock().expect("clock lock") = t;
    }
}

#[async_trait]
impl Clock for VirtualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().expect("clock lock")
    }
    async fn sleep(&self, d: Duration) {
        self.advance(d);
        tokio::task::yield_now().await;
    }
    fn is_virtual(&self) -> bool {
        true
    }
}

/// `chrono` duration from a std duration, saturating instead of panicking.
pub fn chrono_dur(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// Non-negative std duration between two instants (zero when `later` is earlier).
pub fn between(earlier: DateTime<Utc>, later: DateTime<Utc>) -> Duration {
    (later - earlier).to_std().unwrap_or(Duration::ZERO)
}

/// A clock on tokio's time, for simulations on a paused runtime (`start_paused`): there
/// tokio moves time to the next timer whenever every task waits, so concurrent sleepers
/// overlap -- two parts of a fleet throttled in two regions wait at the same time, as
/// they would on a real clock -- where each sleeper on a [`VirtualClock`] adds its own
/// sleep. On a runtime that is not paused it is just the system's time from `start`.
#[derive(Debug, Clone)]
pub struct TokioClock {
    start: DateTime<Utc>,
    base: tokio::time::Instant,
}

impl TokioClock {
    /// Starts at `start` now; call it inside the runtime it is meant for.
    pub fn new(start: DateTime<Utc>) -> Self {
        TokioClock {
            start,
            base: tokio::time::Instant::now(),
        }
    }
}

#[async_trait]
impl Clock for TokioClock {
    fn now(&self) -> DateTime<Utc> {
        let since = tokio::time::Instant::now().saturating_duration_since(self.base);
        self.start
            .checked_add_signed(chrono_dur(since))
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }
    async fn sleep(&self, d: Duration) {
        tokio::time::sleep(d).await
    }
    /// Meant for a paused runtime, where time moves only while everyone waits.
    fn is_virtual(&self) -> bool {
        true
    }
}
