//! The sweep runner's two targets (issue 4):
//!
//! - overhead: a sweep on the simulator with real processes and a near-empty workload;
//!   per cell, everything but boot and the commands' own run time. Printed twice: the
//!   runner's own time (outside any cloud call), and with the simulator's API and exec
//!   round trips included. Targets: <= 50 ms, and <= 1 % of a 10 s workload.
//! - scale: 200 cells on the simulator's virtual mode (virtual clock, declared work), from
//!   plan to written report. Target: <= 5 s. The simulator's catalog has 54 distinct
//!   (type, region, market) cells, so the 200 are those repeated under distinct cell ids,
//!   each on its own instance: the runner does the same work per cell either way.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use herd_core::{Cloud, Launcher, Money, VirtualClock};
use herd_ledger::Ledger;
use herd_local::{Faults, LocalProvider};
use herd_sweep::{cancel_pair, NoProgress, Runner, Spec};

use crate::{big_budget, ms, rt, verdict, Args};

pub fn bench(a: &Args) -> Result<()> {
    overhead(a)?;
    scale()
}

fn spec(text_matrix: &str, metric: &str) -> Result<Spec> {
    let text = format!(
        "name = \"bench\"\nrepetitions = 3\ntimeout = \"2h\"\nconcurrency = 2\nbudget = \"10000\"\n\
         [workload]\nfiles = [\"w.sh\"]\nsetup = \"true\"\nrun = \"sh w.sh\"\nvirtual_work = \"8s\"\n\
         {metric}\n[matrix]\n{text_matrix}\n"
    );
    Ok(Spec::parse_with(&text, "bench.toml", |_| {
        Ok(b"echo score: 1\n".to_vec())
    })?)
}

/// The real workload prints its score; virtual runs are measured by wall time.
const METRIC: &str = "[workload.metric]\nregex = 'score: ([0-9]+)'\nbetter = \"higher\"";

fn overhead(a: &Args) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let faults = Faults {
        boot_delay: Some((Duration::from_millis(100), Duration::from_millis(200))),
        ..Faults::default()
    };
    let provider = LocalProvider::builder()
        .state_dir(dir.path().join("sim"))
        .faults(faults)
        // The herd binary doubles as the VM agent, as in the CLI.
        .agent(herd_local::AgentCommand {
            program: a.herd.clone(),
            args: vec!["__vm-agent".into()],
        })
        .build()?;
    let launcher = Launcher::builder(Arc::new(provider))
        .guardrails(big_budget("bench"))
        .build();
    let launchers = BTreeMap::from([(Cloud::Local, launcher)]);
    let sp = spec(
        "types = [\"l1.large\", \"c1.large\", \"m1.large\", \"c1.xlarge\"]",
        METRIC,
    )?;
    let mut plan = herd_sweep::plan(&sp, &launchers)?;
    // One cell at a time: nothing else competes for the host while a cell is timed.
    plan.concurrency = 1;
    let runner = Runner {
        launchers,
        ledger: Arc::new(Ledger::open(&dir.path().join("ledger.db"))?),
        progress: Arc::new(NoProgress),
        owner: "bench".into(),
    };
    let summary = rt()?.block_on(async {
        let (_tx, rx) = cancel_pair();
        runner.run(&sp, &plan, rx).await
    })?;
    let done = summary
        .outcomes
        .iter()
        .filter(|o| o.status == herd_sweep::CellStatus::Done)
        .count();
    let med = |f: &dyn Fn(&herd_sweep::CellOutcome) -> Duration| {
        let mut v: Vec<Duration> = summary.outcomes.iter().map(f).collect();
        v.sort();
        v[v.len() / 2]
    };
    let own = med(&|o| o.overhead());
    let all = med(&|o| o.overhead_with_transport());
    let target = Duration::from_millis(50);
    let ten = Duration::from_secs(10);
    for (what, d) in [("runner's own", own), ("incl. sim API + exec round trips", all)] {
        println!(
            "sweep    overhead per cell, {what:<34} median {:>10} over {} cells x {} runs | target {} ({:.3}x) | {:.3}% of a 10 s workload (target <= 1%)  {}",
            ms(d),
            summary.outcomes.len(),
            plan.repetitions,
            ms(target),
            d.as_secs_f64() / target.as_secs_f64(),
            100.0 * d.as_secs_f64() / ten.as_secs_f64(),
            verdict(d <= target && done == summary.outcomes.len())
        );
    }
    Ok(())
}

fn scale() -> Result<()> {
    let wall = Instant::now();
    let clock = VirtualClock::at_epoch();
    let provider = LocalProvider::builder()
        .in_memory()
        .processes(false)
        .virtual_exec(true)
        .clock(Arc::new(clock.clone()))
        .seed(11)
        .build()?;
    let launcher = Launcher::builder(Arc::new(provider))
        .clock(Arc::new(clock.clone()))
        .guardrails(big_budget("bench"))
        .build();
    let launchers = BTreeMap::from([(Cloud::Local, launcher)]);
    let sp = spec(
        "types = [\"*\"]\nregions = [\"local-*\"]\nmarkets = [\"on-demand\", \"spot\"]",
        "",
    )?;
    let mut plan = herd_sweep::plan(&sp, &launchers)?;
    let distinct = plan.cells.len();
    let base = plan.cells.clone();
    plan.cells = (0..200)
        .map(|i| {
            let mut c = base[i % distinct].clone();
            c.id = format!("{}-{}", c.id, i / distinct);
            c
        })
        .collect();
    plan.worst_case = plan.cells.iter().map(|c| c.worst_case).sum();
    plan.budget = plan.worst_case.max(Money::ZERO);
    plan.concurrency = 16;
    let ledger = Arc::new(Ledger::in_memory()?);
    let runner = Runner {
        launchers,
        ledger: ledger.clone(),
        progress: Arc::new(NoProgress),
        owner: "bench".into(),
    };
    let summary = rt()?.block_on(async {
        let (_tx, rx) = cancel_pair();
        runner.run(&sp, &plan, rx).await
    })?;
    let data = ledger
        .sweep(&plan.sweep_id)?
        .ok_or_else(|| anyhow::anyhow!("no sweep recorded"))?;
    let scores = herd_sweep::score(&data)?;
    let out = tempfile::tempdir()?;
    herd_sweep::report::write_all(&scores, out.path())?;
    let took = wall.elapsed();
    let done = summary.count(herd_sweep::CellStatus::Done);
    if let Some(f) = summary
        .outcomes
        .iter()
        .find(|o| o.status != herd_sweep::CellStatus::Done)
    {
        println!("sweep    first cell that did not finish: {} {:?}", f.cell_id, f.error);
    }
    let target = Duration::from_secs(5);
    println!(
        "sweep    200 cells ({distinct} distinct) x 3 runs, virtual mode, plan + run + report: {} ({done} done, {} results) | target {} ({:.3}x)  {}",
        ms(took),
        data.results.len(),
        ms(target),
        took.as_secs_f64() / target.as_secs_f64(),
        verdict(took <= target && done == 200 && data.results.len() == 600)
    );
    Ok(())
}
