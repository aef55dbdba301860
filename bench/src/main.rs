//! herd's benchmarks. Each prints what it measured, the target, and the ratio against a
//! floor (what the machine cannot do faster: spawning `true`, the token bucket's refill)
//! or the target. Run with `scripts/bench.sh` (builds release binaries first).
//!
//! Usage: herd-bench [--herd PATH] [--runs N] [--only NAME]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use herd_core::{Budget, Clock, Guardrails, LaunchSpec, Launcher, Money, SharedClock, SystemClock, VirtualClock};
use herd_local::{Faults, LocalProvider};

mod aws;
mod azure;
mod catalog;
mod env;
mod fleet;
mod gcp;
mod report;
mod ssh;
mod sweep;

struct Args {
    herd: PathBuf,
    runs: usize,
    only: Option<String>,
}

fn args() -> Result<Args> {
    let mut a = Args {
        herd: default_herd(),
        runs: 40,
        only: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(x) = it.next() {
        match x.as_str() {
            "--herd" => a.herd = it.next().context("--herd needs a path")?.into(),
            "--runs" => a.runs = it.next().context("--runs needs a number")?.parse()?,
            "--only" => a.only = Some(it.next().context("--only needs a name")?),
            "-h" | "--help" => {
                println!(
                    "usage: herd-bench [--herd PATH] [--runs N] [--only startup|plan|catalog|pacing|fleet|memory|sweep|aws|gcp|azure|ssh|env|report]"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument `{other}`"),
        }
    }
    a.herd = std::fs::canonicalize(&a.herd).unwrap_or(a.herd);
    if !a.herd.exists() {
        bail!(
            "no herd binary at {} (build it: cargo build --release -p herd-cli)",
            a.herd.display()
        );
    }
    Ok(a)
}

fn default_herd() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    exe.with_file_name("herd")
}

/// Runs a command once; returns wall time and peak RSS (KiB) of the child.
fn run_once(cmd: &mut Command) -> Result<(Duration, u64)> {
    let start = Instant::now();
    let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn()?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: plain FFI; rusage is a plain struct the kernel fills.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = start.elapsed();
    if r < 0 {
        bail!("wait4 failed");
    }
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            use std::io::Read;
            let _ = e.read_to_string(&mut err);
        }
        bail!("{cmd:?} failed: {err}");
    }
    Ok((wall, usage.ru_maxrss as u64))
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

struct Env {
    _dir: tempfile::TempDir,
    vars: Vec<(String, PathBuf)>,
}

impl Env {
    fn new() -> Result<Env> {
        let dir = tempfile::tempdir()?;
        let p = dir.path().to_path_buf();
        let vars = vec![
            ("HOME".to_string(), p.join("home")),
            ("XDG_CONFIG_HOME".to_string(), p.join("config")),
            ("XDG_DATA_HOME".to_string(), p.join("data")),
            ("HERD_SIM_DIR".to_string(), p.join("sim")),
            ("HERD_LEDGER".to_string(), p.join("ledger.db")),
        ];
        for (_, v) in &vars {
            std::fs::create_dir_all(v.parent().unwrap_or(Path::new("/")))?;
        }
        std::fs::create_dir_all(p.join("home"))?;
        Ok(Env { _dir: dir, vars })
    }
    fn cmd(&self, herd: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(herd);
        c.args(args).env("NO_COLOR", "1").env("HERD_OWNER", "bench");
        for (k, v) in &self.vars {
            c.env(k, v);
        }
        c.current_dir(self._dir.path());
        c
    }
    fn var(&self, k: &str) -> &Path {
        &self.vars.iter().find(|(n, _)| n == k).expect("known var").1
    }
}

fn time_cmd(env: &Env, herd: &Path, args: &[&str], runs: usize) -> Result<Duration> {
    run_once(&mut env.cmd(herd, args))?; // warm the page cache
    let mut v = Vec::with_capacity(runs);
    for _ in 0..runs {
        v.push(run_once(&mut env.cmd(herd, args))?.0);
    }
    Ok(median(v))
}

fn floor_spawn(runs: usize) -> Result<Duration> {
    let mut v = Vec::with_capacity(runs);
    for _ in 0..runs {
        v.push(run_once(&mut Command::new("true"))?.0);
    }
    Ok(median(v))
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "ok"
    } else {
        "OVER TARGET"
    }
}

/// One line per timed command: median, its ratio to the target and to spawning `true`.
fn report_timing(label: &str, m: Duration, runs: usize, target: Duration, floor: Duration) {
    println!(
        "{label:<30} median {:>9} over {runs} runs | target {} ({:.2}x of target) | floor `true` {} ({:.1}x of floor)  {}",
        ms(m),
        ms(target),
        m.as_secs_f64() / target.as_secs_f64(),
        ms(floor),
        m.as_secs_f64() / floor.as_secs_f64(),
        verdict(m <= target)
    );
}

fn bench_startup(a: &Args) -> Result<()> {
    let env = Env::new()?;
    let floor = floor_spawn(a.runs)?;
    for args in [&["--version"][..], &["ls"][..]] {
        let m = time_cmd(&env, &a.herd, args, a.runs)?;
        let label = format!("startup  herd {}", args.join(" "));
        report_timing(&label, m, a.runs, Duration::from_millis(10), floor);
    }
    Ok(())
}

/// `herd plan` at its broadest (nearly every offer of every cloud matches `--vcpus 1`),
/// process start included: the case where ranking, not filtering, is the work.
fn bench_plan(a: &Args) -> Result<()> {
    let env = Env::new()?;
    let floor = floor_spawn(a.runs)?;
    let m = time_cmd(&env, &a.herd, &["plan", "--vcpus", "1"], a.runs)?;
    let offers = herd_local::local_catalog().offers().len()
        + herd_catalog::CLOUDS
            .iter()
            .map(|c| herd_catalog::bundled(*c).offers().len())
            .sum::<usize>();
    let label = format!("plan     herd plan --vcpus 1 ({offers} offers)");
    report_timing(&label, m, a.runs, Duration::from_millis(50), floor);
    Ok(())
}

fn rt() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?)
}

/// EC2's RunInstances buckets on a virtual clock: 2,000 instances in batches of 1,000.
/// The instance bucket (1,000, refill 2/s) forces (2,000 - 1,000) / 2 = 500 s.
fn bench_pacing(_a: &Args) -> Result<()> {
    rt()?.block_on(async {
        let clock = VirtualClock::at_epoch();
        let faults = Faults { throttle: true, boot_delay: Some((Duration::from_secs(1), Duration::from_secs(1))), ..Faults::default() };
        let provider = Arc::new(herd_local::virtual_provider(clock.clone(), 1, faults));
        let launcher = Launcher::builder(provider)
            .clock(Arc::new(clock.clone()) as SharedClock)
            .guardrails(big_budget("bench"))
            .build();
        let n: u32 = 2000;
        let batch = launcher.capabilities().max_launch_batch;
        let start = clock.now();
        let wall = Instant::now();
        let r = launcher.launch(LaunchSpec::new("l1.small", n).region("local-east-1").deadline(Duration::from_secs(3600))).await?;
        let took = (clock.now() - start).to_std()?;
        let floor = Duration::from_secs(u64::from(n.saturating_sub(1000)) / 2);
        let min_calls = n.div_ceil(batch) as u64;
        let ok = took.as_secs_f64() <= floor.as_secs_f64() * 1.1 && r.instances.len() == n as usize;
        println!(
            "pacing   {} instances in {:.1} s virtual ({:.3}x of the 500 s bucket floor, target <= 1.1x) | launch calls {} = {} successful (minimum {}) + {} throttled | {} instances, {} distinct | {:.0} ms wall  {}",
            n,
            took.as_secs_f64(),
            took.as_secs_f64() / floor.as_secs_f64(),
            r.calls,
            r.calls - r.throttled,
            min_calls,
            r.throttled,
            r.instances.len(),
            r.instances.iter().map(|i| &i.id).collect::<std::collections::HashSet<_>>().len(),
            wall.elapsed().as_secs_f64() * 1e3,
            verdict(ok && r.calls - r.throttled == min_calls)
        );
        Ok(())
    })
}

fn big_budget(owner: &str) -> Guardrails {
    Guardrails {
        owner: owner.into(),
        budget: Budget {
            per_launch: Money::parse_usd("1000000").unwrap(),
            per_day: Money::parse_usd("1000000").unwrap(),
        },
        ..Guardrails::default()
    }
}

/// Fills a simulator state dir with `n` instances without processes. Runs in a child
/// process (`herd-bench --populate DIR N`): a child's peak RSS includes whatever its
/// parent had touched before the fork, so the measuring process must stay small.
fn populate(dir: &Path, n: u32) -> Result<()> {
    rt()?.block_on(async {
        let provider = LocalProvider::builder()
            .state_dir(dir)
            .processes(false)
            .faults(Faults {
                boot_delay: Some((Duration::ZERO, Duration::ZERO)),
                ..Faults::default()
            })
            .build()?;
        let launcher = Launcher::builder(Arc::new(provider))
            .clock(Arc::new(SystemClock))
            .guardrails(big_budget("bench"))
            .build();
        launcher
            .launch(
                LaunchSpec::new("l1.small", n)
                    .region("local-east-1")
                    .deadline(Duration::from_secs(3600)),
            )
            .await?;
        anyhow::Ok(())
    })
}

/// 10,000 instances (no processes) in a state dir, then `herd ls` over them.
fn bench_memory(a: &Args) -> Result<()> {
    let env = Env::new()?;
    let n: u32 = 10_000;
    let t = Instant::now();
    let me = std::env::current_exe()?;
    run_once(
        Command::new(me)
            .arg("--populate")
            .arg(env.var("HERD_SIM_DIR"))
            .arg(n.to_string()),
    )?;
    let setup = t.elapsed();
    let runs = a.runs.min(5);
    let mut peak = 0u64;
    let mut walls = Vec::new();
    let (_, empty_rss) = run_once(&mut env.cmd(&a.herd, &["--version"]))?;
    for _ in 0..runs {
        let (w, rss) = run_once(&mut env.cmd(&a.herd, &["ls"]))?;
        peak = peak.max(rss);
        walls.push(w);
    }
    let mut out = env.cmd(&a.herd, &["ls", "--json"]);
    let listed = out.output()?;
    let text = String::from_utf8_lossy(&listed.stdout);
    let count = text.matches("\"id\"").count();
    let target_kib = 50 * 1024;
    println!(
        "memory   herd ls over {n} instances ({count} listed): peak RSS {:.1} MiB | target 50 MiB ({:.2}x of target) | `herd --version` {:.1} MiB | median {} | setup {:.1} s  {}",
        peak as f64 / 1024.0,
        peak as f64 / target_kib as f64,
        empty_rss as f64 / 1024.0,
        ms(median(walls)),
        setup.as_secs_f64(),
        verdict(peak <= target_kib && count == n as usize)
    );
    Ok(())
}

fn main() -> Result<()> {
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some("--populate") {
        let dir = argv.get(2).context("--populate DIR N")?;
        let n = argv.get(3).context("--populate DIR N")?.parse()?;
        return populate(Path::new(dir), n);
    }
    if argv.get(1).map(String::as_str) == Some("--catalog-load-once") {
        return catalog::load_once();
    }
    let a = args()?;
    type Bench = fn(&Args) -> Result<()>;
    // Memory before pacing: a child's peak RSS counts its parent's, and pacing grows ours.
    let benches: [(&str, Bench); 13] = [
        ("catalog", catalog::bench),
        ("startup", bench_startup),
        ("plan", bench_plan),
        ("memory", bench_memory),
        ("pacing", bench_pacing),
        ("fleet", fleet::bench),
        ("aws", aws::bench),
        ("gcp", gcp::bench),
        ("azure", azure::bench),
        ("ssh", ssh::bench),
        ("sweep", sweep::bench),
        ("env", env::bench),
        ("report", report::bench),
    ];
    for (name, f) in benches {
        if a.only.as_deref().is_none_or(|o| o == name) {
            f(&a).with_context(|| format!("benchmark `{name}`"))?;
        }
    }
    Ok(())
}
