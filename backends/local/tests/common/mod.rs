//! Helpers shared by the simulator's integration tests.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use herd_core::{Budget, Guardrails, LaunchId, LaunchRequest, Launcher, Money, RetryPolicy, VirtualClock};
use herd_local::{Faults, LocalProvider};

pub fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// A virtual (in-memory, no processes) simulator and a Launcher on the same clock.
pub fn virtual_pair(seed: u64, faults: Faults) -> (VirtualClock, Arc<LocalProvider>, Launcher) {
    let clock = VirtualClock::at_epoch();
    let p = Arc::new(herd_local::virtual_provider(clock.clone(), seed, faults));
    let l = launcher(&p, &clock, RetryPolicy::default());
    (clock, p, l)
}

pub fn launcher(p: &Arc<LocalProvider>, clock: &VirtualClock, retry: RetryPolicy) -> Launcher {
    Launcher::builder(p.clone())
        .clock(Arc::new(clock.clone()))
        .retry(retry)
        .guardrails(roomy())
        .seed(7)
        .build()
}

/// Guardrails with budgets large enough for scale tests.
pub fn roomy() -> Guardrails {
    Guardrails {
        owner: "tester".into(),
        budget: Budget {
            per_launch: Money::parse_usd("100000").unwrap(),
            per_day: Money::parse_usd("1000000").unwrap(),
        },
        max_count: 100_000,
        ..Guardrails::default()
    }
}

/// A raw provider request, as the Launcher would send it.
pub fn request(id: &str, itype: &str, count: u32, now: DateTime<Utc>, deadline: Duration) -> LaunchRequest {
    let mut r = LaunchRequest::new(
        LaunchId::new(id).unwrap(),
        itype,
        "local-east-1",
        count,
        now + chrono::Duration::from_std(deadline).unwrap(),
        Money::parse_usd("0.0416").unwrap(),
    );
    r.tags.insert("herd-owner".into(), "tester".into());
    r
}
