//! The Azure backend against the test kit's stateful ARM (issue 12), under ARM's own
//! buckets (writes 200 burst then 10/s, reads 250 then 25/s, per subscription):
//! - launch 1,000: calls made (one PUT per VM, NIC and IP inline) and herd's wall time
//!   against the floor the buckets set for those calls; target ratio <= 1.1;
//! - list 1,000: calls (pages) and wall time;
//! - terminate 1,000: calls and wall time against the buckets' floor; target <= 1.1.
//!
//! Between phases both buckets (ARM's and herd's pacer) refill, as they would between
//! two commands a person types; each floor is computed from a full bucket.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use herd_azure::testing::{FakeArm, Faults, Limits};
use herd_azure::{AzureConfig, AzureProvider};
use herd_core::{Budget, Guardrails, LaunchSpec, Launcher, ListRequest, Money, RetryPolicy};

use super::{ms, verdict, Args};

const N: u32 = 1000;
const SUB: &str = "00000000-0000-0000-0000-0000000be4c4";

fn no_env(_: &str) -> Option<String> {
    None
}

pub fn bench(_a: &Args) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(run())
}

async fn run() -> Result<()> {
    let limits = Limits::default();
    let fake = FakeArm::start(Faults {
        limits,
        ..Faults::default()
    })
    .await;
    let keys = tempfile::tempdir()?;
    let cfg = AzureConfig::new("bench", keys.path())
        .subscription(SUB)
        .region("eastus")
        .api_base(fake.uri())
        .zones(vec!["1".into()])
        .max_poll(Duration::from_millis(500));
    let p = Arc::new(AzureProvider::builder(cfg).token("bench").env(no_env).build());
    let launcher = Launcher::builder(p.clone())
        .guardrails(Guardrails {
            owner: "bench".into(),
            budget: Budget {
                per_launch: Money::parse_usd("100000")?,
                per_day: Money::parse_usd("1000000")?,
            },
            max_count: N,
            ..Guardrails::default()
        })
        .retry(RetryPolicy {
            rate_limit_patience: Duration::from_secs(300),
            ..RetryPolicy::default()
        })
        .build();

    let before = fake.calls();
    let t = Instant::now();
    let r = launcher
        .launch(
            LaunchSpec::new("Standard_D2s_v3", N)
                .region("eastus")
                .deadline(Duration::from_secs(3600))
                .cluster("bench"),
        )
        .await?;
    let wall = t.elapsed();
    anyhow::ensure!(r.instances.len() == N as usize, "launched {}", r.instances.len());
    let c = fake.calls();
    let (w, d, rd) = (
        c.writes - before.writes,
        c.deletes - before.deletes,
        c.reads - before.reads,
    );
    let refused = c.throttled - before.throttled;
    let vm_puts = fake.requests_to("PUT", herd_azure::testing::Kind::Vm).len();
    // The floor of the calls ARM accepted: a refused one (429) costs herd time, not ARM's bucket.
    let floor = limits.floor_of(w, d, rd.saturating_sub(refused));
    let ratio = wall.as_secs_f64() / floor.as_secs_f64();
    println!(
        "azure    launch {N}: {vm_puts} VM PUTs ({:.2} per VM, NIC and IP inline), {w} writes and {rd} reads in all, {} answered 429; herd {} vs the buckets' floor {}: ratio {ratio:.3} (target <= 1.1) {}",
        vm_puts as f64 / f64::from(N),
        refused,
        ms(wall),
        ms(floor),
        verdict(ratio <= 1.1 && vm_puts <= N as usize + 10)
    );

    refill(&limits).await;
    let before = fake.calls();
    let t = Instant::now();
    let listed = launcher
        .list(&ListRequest::new().tag(herd_core::tags::OWNER, "bench"))
        .await?;
    let c = fake.calls();
    println!(
        "azure    list {}: {} reads in {} {}",
        listed.len(),
        c.reads - before.reads,
        ms(t.elapsed()),
        verdict(listed.len() == N as usize)
    );

    refill(&limits).await;
    let ids: Vec<String> = r.instances.iter().map(|i| i.id.clone()).collect();
    let before = fake.calls();
    let t = Instant::now();
    let ended = launcher.terminate(&ids).await?;
    let wall = t.elapsed();
    anyhow::ensure!(ended.len() == N as usize, "terminated {}", ended.len());
    let c = fake.calls();
    let (w, d, rd) = (
        c.writes - before.writes,
        c.deletes - before.deletes,
        c.reads - before.reads,
    );
    let refused = c.throttled - before.throttled;
    let floor = limits.floor_of(w, d, rd.saturating_sub(refused));
    let ratio = wall.as_secs_f64() / floor.as_secs_f64();
    println!(
        "azure    terminate {N}: {d} deletes, {w} other writes, {rd} reads, {} answered 429; herd {} vs the buckets' floor {}: ratio {ratio:.3} (target <= 1.1) {}",
        refused,
        ms(wall),
        ms(floor),
        verdict(ratio <= 1.1)
    );
    anyhow::ensure!(fake.vms().is_empty(), "{} VMs left", fake.vms().len());
    Ok(())
}

/// Long enough for the fullest bucket to refill.
async fn refill(l: &Limits) {
    let secs = [l.writes, l.reads]
        .iter()
        .map(|b| f64::from(b.burst) / b.per_second)
        .fold(0.0, f64::max);
    tokio::time::sleep(Duration::from_secs_f64(secs + 0.5)).await;
}
