//! Helpers shared by the simulator's integration tests.
#![allow(dead_code)]

use std::path::Path;
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

/// Processes belonging to a state dir: by command line (agents) or working directory
/// (workloads), zombies included.
pub fn processes_under(dir: &Path) -> Vec<(i32, String)> {
    let me = std::process::id() as i32;
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if pid == me {
            continue;
        }
        let cmdline = std::fs::read(e.path().join("cmdline"))
            .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
            .unwrap_or_default();
        let cwd = std::fs::read_link(e.path().join("cwd")).unwrap_or_default();
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        let zombie_child = stat
            .rsplit_once(')')
            .map(|(_, r)| {
                let f: Vec<&str> = r.split_whitespace().collect();
                f.first() == Some(&"Z") && f.get(1) == Some(&me.to_string().as_str())
            })
            .unwrap_or(false);
        if cmdline.contains(dir.to_str().unwrap()) || cwd.starts_with(dir) || zombie_child {
            out.push((
                pid,
                format!("{cmdline} [{}]", stat.split_whitespace().nth(2).unwrap_or("?")),
            ));
        }
    }
    out
}
