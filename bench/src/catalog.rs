//! The catalog's speed: decoding every bundled catalog (AWS, GCP, Azure, all regions)
//! in a fresh process, and `herd plan --vcpus 8 --arch arm64` across all of it with
//! process start. Targets from issue 3: 20 ms cold load (release), 50 ms plan.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::{floor_spawn, median, ms, report_timing, time_cmd, verdict, Args, Env};

/// Run in a child (`herd-bench --catalog-load-once`): one cold load, printed in ns.
pub fn load_once() -> Result<()> {
    let start = Instant::now();
    let c = herd_catalog::Catalogs::load(None)?;
    let took = start.elapsed();
    println!(
        "{} {} {}",
        took.as_nanos(),
        c.catalog.offers().len(),
        c.catalog.types().len()
    );
    Ok(())
}

pub fn bench(a: &Args) -> Result<()> {
    let me = std::env::current_exe()?;
    let mut loads = Vec::with_capacity(a.runs);
    let (mut offers, mut types) = (0, 0);
    for _ in 0..a.runs {
        let out = Command::new(&me).arg("--catalog-load-once").output()?;
        anyhow::ensure!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8(out.stdout)?;
        let mut it = text.split_whitespace();
        let ns: u64 = it.next().context("no time")?.parse()?;
        offers = it.next().context("no count")?.parse()?;
        types = it.next().context("no count")?.parse()?;
        loads.push(Duration::from_nanos(ns));
    }
    let worst = *loads.iter().max().context("no runs")?;
    let m = median(loads);
    let target = Duration::from_millis(20);
    // How busy the machine is right now: on a shared box every figure here moves with it.
    let floor = floor_spawn(a.runs)?;
    println!(
        "{:<30} median {:>9}, worst {} over {} fresh processes | target {} ({:.2}x of target) | {offers} offers, {types} types | machine: `true` spawns in {}  {}",
        "catalog  cold load (3 clouds)",
        ms(m),
        ms(worst),
        a.runs,
        ms(target),
        m.as_secs_f64() / target.as_secs_f64(),
        ms(floor),
        verdict(m <= target)
    );

    let env = Env::new()?;
    let args = ["plan", "--vcpus", "8", "--arch", "arm64"];
    let m = time_cmd(&env, &a.herd, &args, a.runs)?;
    let out = env
        .cmd(&a.herd, &["plan", "--vcpus", "8", "--arch", "arm64", "--json"])
        .output()?;
    anyhow::ensure!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json = String::from_utf8(out.stdout)?;
    let scanned = json
        .lines()
        .find_map(|l| l.trim().strip_prefix("\"scanned\": "))
        .map(|s| s.trim_end_matches(',').to_string())
        .unwrap_or_else(|| "?".into());
    let label = format!("catalog  herd {} ({scanned} offers scanned)", args.join(" "));
    report_timing(&label, m, a.runs, Duration::from_millis(50), floor);
    Ok(())
}
