//! ARM's request throttling as a token bucket per subscription, so herd's launch of
//! 1,000 VMs meets the limit it meets in Azure and a benchmark can compute the floor.
//!
//! Ref: learn.microsoft.com/azure/azure-resource-manager/management/request-limits-and-throttling
//! ("Subscription and tenant limits", token bucket algorithm): writes 200 bucket, 10 per
//! second refill; reads 250 bucket, 25 per second; deletes 200 bucket, 10 per second.
//! The fake counts deletes in the writes bucket unless [`Limits::deletes`] is set (the
//! lead's brief asks for one write bucket for PUT, DELETE and POST). Time is real
//! (`std::time::Instant`): [`Limits::floor`] is the least time any client needs.

use std::time::{Duration, Instant};

/// One bucket's size and refill rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    pub burst: u32,
    pub per_second: f64,
}

/// The buckets of one subscription.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    pub writes: Bucket,
    pub reads: Bucket,
    /// A bucket of their own for DELETEs (as Azure documents); `None`: they are writes.
    pub deletes: Option<Bucket>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            writes: Bucket {
                burst: 200,
                per_second: 10.0,
            },
            reads: Bucket {
                burst: 250,
                per_second: 25.0,
            },
            deletes: None,
        }
    }
}

impl Limits {
    /// The least wall time `calls` requests of one bucket can take: the burst is free,
    /// the rest arrive at the refill rate.
    pub fn floor(b: Bucket, calls: u32) -> Duration {
        let over = calls.saturating_sub(b.burst) as f64;
        Duration::from_secs_f64(over / b.per_second)
    }

    /// The floor of a run that makes `writes` PUTs and POSTs, `deletes` DELETEs and
    /// `reads` GETs: the slowest bucket's (they refill side by side).
    pub fn floor_of(&self, writes: u32, deletes: u32, reads: u32) -> Duration {
        let w = match self.deletes {
            Some(d) => Limits::floor(self.writes, writes).max(Limits::floor(d, deletes)),
            None => Limits::floor(self.writes, writes + deletes),
        };
        w.max(Limits::floor(self.reads, reads))
    }
}

/// Which bucket a call draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CallKind {
    Read,
    Write,
    Delete,
}

impl CallKind {
    pub fn of(method: &str) -> CallKind {
        match method {
            "GET" | "HEAD" => CallKind::Read,
            "DELETE" => CallKind::Delete,
            _ => CallKind::Write,
        }
    }

    /// The header ARM reports the bucket's remaining tokens in.
    pub fn header(self) -> &'static str {
        match self {
            CallKind::Read => "x-ms-ratelimit-remaining-subscription-reads",
            CallKind::Write => "x-ms-ratelimit-remaining-subscription-writes",
            CallKind::Delete => "x-ms-ratelimit-remaining-subscription-deletes",
        }
    }
}

#[derive(Debug)]
struct Level {
    tokens: f64,
    at: Instant,
}

/// The live buckets.
#[derive(Debug)]
pub struct Throttle {
    limits: Limits,
    reads: Level,
    writes: Level,
    deletes: Level,
}

impl Throttle {
    pub fn new(limits: Limits) -> Throttle {
        let full = |b: Bucket| Level {
            tokens: b.burst as f64,
            at: Instant::now(),
        };
        Throttle {
            limits,
            reads: full(limits.reads),
            writes: full(limits.writes),
            deletes: full(limits.deletes.unwrap_or(limits.writes)),
        }
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Takes a token: `Ok(remaining)` or `Err(wait until one is there)`. The header named
    /// by `kind.header()` carries the remaining count either way.
    pub fn take(&mut self, kind: CallKind) -> Result<u32, Duration> {
        let (b, l) = match (kind, self.limits.deletes) {
            (CallKind::Read, _) => (self.limits.reads, &mut self.reads),
            (CallKind::Delete, Some(d)) => (d, &mut self.deletes),
            _ => (self.limits.writes, &mut self.writes),
        };
        let now = Instant::now();
        l.tokens = (l.tokens + now.duration_since(l.at).as_secs_f64() * b.per_second).min(b.burst as f64);
        l.at = now;
        if l.tokens >= 1.0 {
            l.tokens -= 1.0;
            Ok(l.tokens as u32)
        } else {
            Err(Duration::from_secs_f64((1.0 - l.tokens) / b.per_second))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_burst_then_the_refill() {
        let b = Bucket {
            burst: 3,
            per_second: 100.0,
        };
        let mut t = Throttle::new(Limits {
            writes: b,
            ..Limits::default()
        });
        assert_eq!(t.take(CallKind::Write), Ok(2));
        assert_eq!(t.take(CallKind::Write), Ok(1));
        assert_eq!(t.take(CallKind::Delete), Ok(0));
        let wait = t.take(CallKind::Write).unwrap_err();
        assert!(wait <= Duration::from_millis(10), "{wait:?}");
        assert!(t.take(CallKind::Read).is_ok(), "reads have their own bucket");
        std::thread::sleep(Duration::from_millis(15));
        assert!(t.take(CallKind::Write).is_ok());
        assert_eq!(Limits::floor(Limits::default().writes, 1200), Duration::from_secs(100));
        assert_eq!(Limits::floor(Limits::default().writes, 150), Duration::ZERO);
        // 1,000 PUTs + 1,000 DELETEs share the write bucket: 1,800 / 10 s; 2,000 reads: 70 s.
        assert_eq!(Limits::default().floor_of(1000, 1000, 2000), Duration::from_secs(180));
        let apart = Limits {
            deletes: Some(Limits::default().writes),
            ..Limits::default()
        };
        assert_eq!(apart.floor_of(1000, 1000, 2000), Duration::from_secs(80));
    }
}
