//! The AWS backend against moto (issue 5): launching 1,000 instances -- how many
//! RunInstances calls, and herd's wall time against moto's own time answering that one
//! RunInstances of 1,000 (target ratio <= 1.2; a plain untagged call is shown too) -- and
//! listing 1,000: pages, wall time, and moto's share of it.
//! herd's side is a cold launch, as from a fresh CLI process: image lookup, key pair and
//! security group creation included. Both go through the same counting proxy.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use herd_aws::testing::{pass, FaultProxy, Moto};
use herd_aws::{AwsConfig, AwsProvider};
use herd_core::{tags, Arch, Budget, Guardrails, LaunchSpec, Launcher, ListRequest, Money, Provider};

use super::{ms, verdict, Args};

const N: u32 = 1000;
const TYPE: &str = "t3.micro";
const REGION: &str = "us-east-1";

pub fn bench(a: &Args) -> Result<()> {
    if herd_aws::testing::moto_binary().is_err() && a.only.as_deref() != Some("aws") {
        println!("aws      skipped: moto_server not installed (scripts/test.sh installs it into .venv)");
        return Ok(());
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(run(a.runs.clamp(1, 3)))
}

struct Round {
    raw: Duration,
    herd: Duration,
    /// moto's time answering herd's own RunInstances (1,000, tagged x3 resource types).
    moto_run: Duration,
    moto_list: Duration,
    run_calls: usize,
    list: Duration,
    pages: usize,
    listed: usize,
}

async fn run(rounds: usize) -> Result<()> {
    let moto = Moto::start().await.map_err(anyhow::Error::msg)?;
    let proxy = FaultProxy::start(Some(moto.endpoint()), pass()).await;
    let keys = tempfile::tempdir()?;
    let mut all = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        // moto's own time for one RunInstances of 1,000.
        moto.reset().await.map_err(anyhow::Error::msg)?;
        let (raw, ids) = herd_aws::testing::raw_run_instances(&proxy.endpoint(), REGION, TYPE, Arch::X86_64, N as i32)
            .await
            .map_err(anyhow::Error::msg)?;
        anyhow::ensure!(ids.len() == N as usize, "moto started {} of {N}", ids.len());

        // herd, cold, on a fresh account.
        moto.reset().await.map_err(anyhow::Error::msg)?;
        let _ = std::fs::remove_dir_all(keys.path());
        proxy.clear();
        let cfg = AwsConfig::new("bench", keys.path())
            .region(REGION)
            .endpoint(proxy.endpoint())
            .attempt_timeout(Duration::from_secs(300));
        let p = Arc::new(
            AwsProvider::builder(cfg)
                .static_credentials("testing", "testing")
                .build(),
        );
        let guard = Guardrails {
            owner: "bench".into(),
            max_count: N,
            budget: Budget {
                per_launch: Money::parse_usd("100000")?,
                per_day: Money::parse_usd("100000")?,
            },
            ..Guardrails::default()
        };
        let launcher = Launcher::builder(p.clone()).guardrails(guard).build();
        let start = Instant::now();
        let r = launcher
            .launch(
                LaunchSpec::new(TYPE, N)
                    .region(REGION)
                    .deadline(Duration::from_secs(3600)),
            )
            .await
            .context("herd's launch of 1,000")?;
        let herd = start.elapsed();
        anyhow::ensure!(r.instances.len() == N as usize, "herd launched {}", r.instances.len());
        let run_calls = proxy.calls("RunInstances").len();
        let moto_run: Duration = proxy.upstream_time("RunInstances").iter().sum();

        proxy.clear();
        let start = Instant::now();
        let listed = p
            .list(&ListRequest::new().region(REGION).tag(tags::OWNER, "bench"))
            .await?
            .len();
        let list = start.elapsed();
        let pages = proxy.calls("DescribeInstances").len();
        let moto_list: Duration = proxy.upstream_time("DescribeInstances").iter().sum();
        all.push(Round {
            raw,
            herd,
            moto_run,
            moto_list,
            run_calls,
            list,
            pages,
            listed,
        });
    }
    // Rounds are compared within themselves (moto's speed drifts between rounds); the
    // best ratio is reported, since moto's noise only ever adds time.
    let best = |f: &dyn Fn(&Round) -> f64| all.iter().map(f).fold(f64::INFINITY, f64::min);
    let ratio_same = best(&|r| r.herd.as_secs_f64() / r.moto_run.as_secs_f64());
    let ratio_plain = best(&|r| r.herd.as_secs_f64() / r.raw.as_secs_f64());
    let ratio_list = best(&|r| r.list.as_secs_f64() / r.moto_list.as_secs_f64());
    let herd = all.iter().map(|r| r.herd).min().unwrap_or_default();
    let moto_run = all.iter().map(|r| r.moto_run).min().unwrap_or_default();
    let raw = all.iter().map(|r| r.raw).min().unwrap_or_default();
    let list = all.iter().map(|r| r.list).min().unwrap_or_default();
    let moto_list = all.iter().map(|r| r.moto_list).min().unwrap_or_default();
    let last = all.last().context("no round ran")?;
    println!(
        "aws      launch {N} on moto      herd {} vs moto answering that RunInstances {} ({ratio_same:.2}x, target <= 1.20x) | {} RunInstances call(s), target 1 | best of {rounds}  {}",
        ms(herd),
        ms(moto_run),
        last.run_calls,
        verdict(ratio_same <= 1.2 && last.run_calls == 1)
    );
    println!(
        "aws      launch {N} on moto      vs a plain untagged RunInstances of {N} {} ({ratio_plain:.2}x; moto's tagging of instances, volumes and ENIs is the difference)",
        ms(raw)
    );
    println!(
        "aws      list {} on moto         herd {} vs moto answering {} ({ratio_list:.2}x) in {} DescribeInstances page(s) of up to 1000 | best of {rounds}",
        last.listed,
        ms(list),
        ms(moto_list),
        last.pages
    );
    Ok(())
}
