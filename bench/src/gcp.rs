//! The GCP backend against the test kit's fake Compute Engine (issue 11), through the
//! GCE fault proxy that times the fake's own answers:
//! - launch 1,000: bulkInsert calls (1) and herd's cold wall time against the fake's time
//!   for that call (the bulkInsert answer plus the waits until its operation is DONE);
//!   target ratio <= 1.1;
//! - list 1,000: aggregatedList calls (pages of 500: 2);
//! - terminate 1,000 under a per-window delete quota, against that quota's floor (the
//!   windows 1,000 deletes need); target ratio <= 1.1.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use herd_core::{tags, Budget, Guardrails, LaunchSpec, Launcher, ListRequest, Money, RetryPolicy};
use herd_gcp::testing::{FakeGce, FaultProxy, Faults, GceJson};
use herd_gcp::{GcpConfig, GcpProvider, StaticToken, Token};

use super::{ms, verdict, Args};

const N: u32 = 1000;
/// A bulk insert of 1,000 takes its time at GCE; the fake's operation lasts this long.
const OP: Duration = Duration::from_secs(3);
/// The delete quota the terminate runs under: QUOTA per WINDOW (GCE's window is a minute;
/// shortened so the benchmark takes seconds; the ratio is what counts).
const QUOTA: u32 = 400;
const WINDOW: Duration = Duration::from_secs(2);

pub fn bench(a: &Args) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(run(a.runs.clamp(1, 3)))
}

async fn run(rounds: usize) -> Result<()> {
    let faults = Faults {
        op_delay: OP,
        wait_cap: Duration::from_secs(1),
        per_minute: vec![("compute.instances.delete".into(), QUOTA)],
        window: WINDOW,
        ..Faults::default()
    };
    let fake = FakeGce::start(faults).await;
    let proxy = FaultProxy::start_with(Arc::new(GceJson), Some(fake.uri()), herd_gcp::testing::pass()).await;
    let keys = tempfile::tempdir()?;
    for round in 0..rounds {
        fake.reset();
        proxy.clear();
        let cfg = GcpConfig::new("bench", keys.path())
            .project("herd-bench")
            .region("us-central1")
            .api_base(proxy.endpoint());
        let p = Arc::new(
            GcpProvider::builder(cfg)
                .tokens(Arc::new(StaticToken(Token::new("bench"))))
                .build(),
        );
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
                base: Duration::from_millis(50),
                cap: Duration::from_millis(250),
                ..RetryPolicy::default()
            })
            .build();
        let t = Instant::now();
        let r = launcher
            .launch(
                LaunchSpec::new("e2-micro", N)
                    .region("us-central1")
                    .deadline(Duration::from_secs(3600)),
            )
            .await?;
        let herd = t.elapsed();
        anyhow::ensure!(r.instances.len() == N as usize, "launched {}", r.instances.len());
        let bulk: Duration = proxy.upstream_time("instances.bulkInsert").iter().sum();
        let waits: Duration = proxy.upstream_time("operations.wait").iter().sum();
        let own = bulk + waits;
        let calls = proxy.calls("instances.bulkInsert").len();
        let ratio = herd.as_secs_f64() / own.as_secs_f64();
        println!(
            "gcp      launch {N} (round {round}): {calls} bulkInsert call(s), {} waits; herd {} vs the fake's {} for that call: ratio {ratio:.3} (target <= 1.1) {}",
            proxy.calls("operations.wait").len(),
            ms(herd),
            ms(own),
            verdict(ratio <= 1.1 && calls == 1)
        );

        proxy.clear();
        let t = Instant::now();
        let listed = launcher.list(&ListRequest::new().tag(tags::OWNER, "bench")).await?;
        let pages = proxy.calls("instances.aggregatedList").len();
        println!(
            "gcp      list {}: {pages} aggregatedList call(s) of 500 in {} {}",
            listed.len(),
            ms(t.elapsed()),
            verdict(pages == 2 && listed.len() == N as usize)
        );

        proxy.clear();
        let ids: Vec<String> = r.instances.iter().map(|i| i.id.clone()).collect();
        let t = Instant::now();
        let ended = launcher.terminate(&ids).await?;
        let wall = t.elapsed();
        anyhow::ensure!(
            ended.len() == N as usize && fake.instances().is_empty(),
            "terminate left some"
        );
        // The floor: 1,000 deletes need ceil(N / QUOTA) windows; the last starts after the others.
        let floor = WINDOW * (N.div_ceil(QUOTA) - 1);
        let ratio = wall.as_secs_f64() / floor.as_secs_f64();
        println!(
            "gcp      terminate {N} at {QUOTA} deletes per {}s: {} delete calls ({} refused) in {} vs the quota's floor {}: ratio {ratio:.3} (target <= 1.1) {}",
            WINDOW.as_secs(),
            proxy.calls("instances.delete").len(),
            fake.requests("compute.instances.delete").iter().filter(|r| r.status == 403).count(),
            ms(wall),
            ms(floor),
            verdict(ratio <= 1.1)
        );
    }
    Ok(())
}
