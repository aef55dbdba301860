//! The mixed-fleet benchmark: 4,000 VMs over two types and two regions in one fleet, on
//! the simulator in virtual mode with EC2's RunInstances buckets per region (1,000
//! instance tokens, refill 2/s: "Request throttling for the Amazon EC2 API",
//! docs.aws.amazon.com/ec2/latest/devguide/ec2-api-throttling.html). Each region
//! launches 2,000: a burst of 1,000, then (2,000 - 1,000) / 2 = 500 s of refill. That is
//! the floor if the regions overlap; queued one after the other they would take twice
//! as long. Time is tokio's, paused, so concurrent waits overlap as on a real clock and
//! cost no wall time. Prints the ratio against the floor (target <= 1.1x) and each
//! region's span.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use herd_core::fleet::split_even;
use herd_core::{Clock, FleetSpec, LaunchSpec, Launcher, TokioClock};
use herd_local::{Faults, LocalProvider};

use crate::{big_budget, verdict, Args};

const TYPES: [&str; 2] = ["l1.small", "l1.large"];
const REGIONS: [&str; 2] = ["local-east-1", "local-west-1"];

pub fn bench(_a: &Args) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()?;
    rt.block_on(async {
        let clock = TokioClock::new(chrono::DateTime::from_timestamp(1_767_225_600, 0).expect("valid"));
        let provider = LocalProvider::builder()
            .in_memory()
            .processes(false)
            .clock(Arc::new(clock.clone()))
            .seed(1)
            .faults(Faults {
                throttle: true,
                boot_delay: Some((Duration::from_secs(1), Duration::from_secs(1))),
                ..Faults::default()
            })
            .build()?;
        let launcher = Launcher::builder(Arc::new(provider))
            .clock(Arc::new(clock.clone()))
            .guardrails(big_budget("bench"))
            .build();
        let n: u32 = 4000;
        let types: Vec<String> = TYPES.iter().map(|s| s.to_string()).collect();
        let regions: Vec<String> = REGIONS.iter().map(|s| s.to_string()).collect();
        let spec = FleetSpec::new(
            LaunchSpec::new("-", 0).deadline(Duration::from_secs(3600)),
            split_even(&types, &regions, n)?,
        );
        let start = clock.now();
        let wall = Instant::now();
        let r = launcher.launch_fleet(&spec).await?;
        let took = (clock.now() - start).to_std()?;
        let per_region = u64::from(n) / REGIONS.len() as u64;
        let floor = Duration::from_secs(per_region.saturating_sub(1000) / 2);
        let ratio = took.as_secs_f64() / floor.as_secs_f64();
        let mut spans = Vec::new();
        for region in REGIONS {
            let times: Vec<_> = r.instances.iter().filter(|i| i.region == region).map(|i| i.launched_at).collect();
            let first = times.iter().min().copied().unwrap_or(start);
            let last = times.iter().max().copied().unwrap_or(start);
            let secs = |t: chrono::DateTime<chrono::Utc>| (t - start).num_milliseconds() as f64 / 1e3;
            spans.push((region, times.len(), secs(first), secs(last)));
        }
        let overlap = spans.iter().all(|a| spans.iter().all(|b| a.2 < b.3));
        let split_ok = r.instances.len() == n as usize && r.parts.iter().all(|p| p.instances == (n / 4) as usize);
        let shown: Vec<String> = spans
            .iter()
            .map(|(reg, k, a, b)| format!("{reg} {k} in {a:.1}-{b:.1} s"))
            .collect();
        println!(
            "fleet    {} instances ({} parts, 2 types x 2 regions) in {:.1} s virtual ({:.3}x of the {} s floor of the slowest region's buckets, target <= 1.1x) | {} | regions {} | launch calls {} ({} throttled) | {:.0} ms wall  {}",
            r.instances.len(),
            r.parts.len(),
            took.as_secs_f64(),
            ratio,
            floor.as_secs(),
            shown.join(", "),
            if overlap { "overlap" } else { "QUEUED" },
            r.calls,
            r.throttled,
            wall.elapsed().as_secs_f64() * 1e3,
            verdict(ratio <= 1.1 && overlap && split_ok)
        );
        Ok(())
    })
}
