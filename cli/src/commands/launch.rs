//! `herd launch TYPE`: plan (validate, price, check the budget), then launch and wait
//! until running. `--dry-run` stops after the plan and prints the worst case. Ctrl-C at
//! any moment ends what the launch started (see [`end_launch`]); a second Ctrl-C skips
//! that and prints the stop command at once; either way the exit code is 130.
//! Several types or regions (`a,b --region x,y`) or `--fleet FILE` make a mixed fleet
//! (`herd_core::fleet`): one launch in several parts, planned, printed and cleaned up
//! the same way.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use herd_core::guardrails::human;
use herd_core::{tags, Error, ErrorKind, Instance, LaunchId, LaunchPlan, LaunchSpec, Launcher, Market, Money};
use rust_decimal::Decimal;
use serde::Serialize;

use crate::args::LaunchArgs;
use crate::context::Context;
use crate::format;
use crate::reporter::Spinner;

use super::Interrupted;

mod fleet;

/// Longest wait for instances to boot before giving up (they keep their deadline).
const WAIT_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// After an interrupt, how long to keep looking for instances of the launch: a launch
/// call cut off mid-flight may still be carried out, and a cloud's listing can lag its
/// launches by a few seconds (EC2's API is eventually consistent: "Eventual consistency
/// in the Amazon EC2 API", EC2 API reference). At least [`LOOK_AT_LEAST`], until two
/// looks in a row find nothing new; never longer than [`LOOK_AT_MOST`].
const LOOK_AT_LEAST: Duration = Duration::from_secs(3);
const LOOK_AT_MOST: Duration = Duration::from_secs(20);
const LOOK_EVERY: Duration = Duration::from_millis(500);

pub fn run(ctx: &Context, a: &LaunchArgs) -> anyhow::Result<()> {
    if let Some(parts) = fleet::parts(ctx, a)? {
        return fleet::run(ctx, a, parts);
    }
    let spec = spec(ctx, a)?;
    let launcher = ctx.launcher()?;
    ctx.block_on(async {
        // From here on Ctrl-C is ours to handle: nothing this launch starts is left behind.
        let mut interrupts = Interrupts::install()?;
        launch(ctx, launcher, a, spec, &mut interrupts).await
    })?
}

/// SIGINT (Ctrl-C) as a stream, so a second one can be told from the first.
struct Interrupts {
    #[cfg(unix)]
    sig: tokio::signal::unix::Signal,
}

impl Interrupts {
    fn install() -> anyhow::Result<Self> {
        #[cfg(unix)]
        {
            let sig = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
                .map_err(|e| Error::unexpected("cannot listen for Ctrl-C").with_source(e))?;
            Ok(Interrupts { sig })
        }
        #[cfg(not(unix))]
        Ok(Interrupts {})
    }

    async fn next(&mut self) {
        #[cfg(unix)]
        {
            if self.sig.recv().await.is_none() {
                std::future::pending::<()>().await;
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

fn spec(ctx: &Context, a: &LaunchArgs) -> anyhow::Result<LaunchSpec> {
    spec_of(
        ctx,
        a,
        a.instance_type.as_deref().unwrap_or_default(),
        a.count.unwrap_or(1),
    )
}

/// Everything the flags say about a launch, for `instance_type` × `count` (a fleet's
/// template takes all but those, and the region).
fn spec_of(ctx: &Context, a: &LaunchArgs, instance_type: &str, count: u32) -> anyhow::Result<LaunchSpec> {
    let s = &ctx.settings;
    let market = if a.spot {
        Market::Spot
    } else if a.spot_fallback {
        Market::SpotOrOnDemand
    } else {
        Market::OnDemand
    };
    let mut spec = LaunchSpec::new(instance_type, count)
        .market(market)
        .deadline(s.deadline);
    if s.keepalive_explicit {
        spec = spec.keepalive(s.keepalive.unwrap_or(Duration::ZERO));
    }
    if let Some(r) = &s.region {
        spec = spec.region(r);
    }
    if let Some(z) = &a.zone {
        spec = spec.zone(z);
    }
    if let Some(c) = &a.cluster {
        spec = spec.cluster(c);
    }
    for t in &a.tags {
        let (k, v) = parse_tag(t)?;
        spec = spec.tag(k, v);
    }
    // `--env`: the environment is built first, and the command runs inside it.
    let types = if instance_type == "-" {
        fleet::parts(ctx, a)?
            .unwrap_or_default()
            .into_iter()
            .map(|p| p.instance_type)
            .collect()
    } else {
        vec![instance_type.to_string()]
    };
    let env = super::env::for_launch(ctx, a.env.as_deref(), &types)?;
    match &env {
        Some(e) => spec = spec.setup(e.setup(a.setup.as_deref())),
        None => {
            if let Some(x) = &a.setup {
                spec = spec.setup(x);
            }
        }
    }
    if let Some(x) = &a.command {
        spec = match &env {
            Some(e) => spec.command(e.command(x)),
            None => spec.command(x),
        };
    }
    if let Some(x) = &a.image {
        spec = spec.image(x);
    }
    if let Some(id) = &a.launch_id {
        spec = spec.launch_id(LaunchId::new(id)?);
    }
    Ok(spec)
}

/// `key=value`; the key and value rules themselves are core's (checked in the plan).
fn parse_tag(t: &str) -> Result<(&str, &str), Error> {
    t.split_once('=').ok_or_else(|| {
        Error::invalid_spec(format!("tag `{t}` is not key=value")).with_hint("write tags like --tag team=ml")
    })
}

async fn launch(
    ctx: &Context,
    launcher: &Launcher,
    a: &LaunchArgs,
    spec: LaunchSpec,
    interrupts: &mut Interrupts,
) -> anyhow::Result<()> {
    let p = &ctx.printer;
    let mut plan = tokio::select! {
        plan = launcher.plan(&spec) => plan?,
        _ = interrupts.next() => {
            return Err(Interrupted(Error::new(ErrorKind::Conflict, "interrupted before anything was launched")).into());
        }
    };
    for w in &plan.warnings {
        p.warn(w);
    }
    if a.dry_run {
        if a.json {
            p.json(&super::env::redacted(&DryRun {
                dry_run: true,
                fits: plan.budget.is_none(),
                budget_per_launch: ctx.settings.budget.per_launch,
                budget_per_day: ctx.settings.budget.per_day,
                plan: &plan,
            })?)?;
        } else {
            print_plan(ctx, &plan);
        }
        return match plan.budget.take() {
            Some(e) => Err(e.into()),
            None => Ok(()),
        };
    }

    let count = plan.request.count;
    let launch_id = plan.request.launch_id.clone();
    let spinner = Spinner::start(p, format!("launching {count} × {}", plan.request.instance_type));
    let launched = tokio::select! {
        // An interrupt that came while the launch call ran wins over its answer.
        biased;
        _ = interrupts.next() => None,
        r = launcher.launch_planned(plan) => Some(r),
    };
    spinner.finish();
    let mut report = match launched {
        Some(r) => r?,
        None => return Err(interrupted(ctx, launcher, &launch_id, &[], interrupts).await),
    };
    let down_hint = format!("they stop at their deadline; `herd down --launch {launch_id}` stops them now");

    let wait = !a.no_wait;
    if wait {
        let ids: Vec<String> = report.instances.iter().map(|i| i.id.clone()).collect();
        let spinner = Spinner::start(p, format!("waiting for {} instance(s) to boot", ids.len()));
        let waited = tokio::select! {
            biased;
            _ = interrupts.next() => None,
            r = launcher.wait_until_running(&ids, WAIT_TIMEOUT) => Some(r.map_err(|e| {
                Error::new(e.kind(), format!("launch {launch_id} started, but its instances did not all come up"))
                    .with_hint(down_hint.clone())
                    .with_source(e)
            })),
        };
        spinner.finish();
        let Some(waited) = waited else {
            return Err(interrupted(ctx, launcher, &launch_id, &report.instances, interrupts).await);
        };
        match waited {
            Ok(mut running) => {
                running.sort_by(|x, y| x.id.cmp(&y.id));
                report.instances = running;
            }
            Err(e) => {
                print_instances(ctx, a, &report)?;
                return Err(e.into());
            }
        }
    }
    report.instances.sort_by(|x, y| x.id.cmp(&y.id));
    print_instances(ctx, a, &report)?;
    let hourly = format::total_hourly(&report.instances);
    p.note(format!(
        "{} {} × {} (launch {launch_id}, cluster {}): {}/h, worst case {}; `herd down --cluster {}` stops them",
        if wait { "running" } else { "launched" },
        report.instances.len(),
        report.instances.first().map_or("-", |i| i.instance_type.as_str()),
        report.cluster,
        hourly,
        report.worst_case,
        report.cluster,
    ));
    Ok(())
}

/// Ctrl-C: ends what this launch started and says so, with the launch id and the stop
/// command whatever happened. A second Ctrl-C stops the clean-up at once.
async fn interrupted(
    ctx: &Context,
    launcher: &Launcher,
    launch_id: &LaunchId,
    known: &[Instance],
    interrupts: &mut Interrupts,
) -> anyhow::Error {
    let stop = format!("herd down --launch {launch_id}");
    ctx.printer.note(format!(
        "interrupted: ending launch {launch_id} (Ctrl-C again to skip; `{stop}` stops it later)"
    ));
    let ended = RefCell::new(BTreeSet::new());
    let outcome = tokio::select! {
        biased;
        _ = interrupts.next() => None,
        r = end_launch(ctx, launcher, launch_id, known, &ended) => Some(r),
    };
    if let Some(Ok(_)) = &outcome {
        // Nothing of it runs: its worst case no longer holds today's budget (the ledger
        // bills the instances it saw for the time they ran).
        let _ = launcher
            .journal()
            .launch_failed(launch_id, "interrupted (Ctrl-C); what it started was terminated");
    }
    let e = match outcome {
        None => Error::new(
            ErrorKind::Conflict,
            format!(
                "interrupted twice: the clean-up of launch {launch_id} stopped after terminating {} instance(s); \
                 more of it may be running",
                ended.borrow().len()
            ),
        )
        .with_hint(format!("`{stop}` stops it (instances stop at their deadline anyway)")),
        Some(Ok(n)) => Error::new(
            ErrorKind::Conflict,
            format!("interrupted: launch {launch_id} ended, {n} instance(s) terminated"),
        )
        .with_hint(format!(
            "should anything of it still show in `herd ls`, `{stop}` stops it"
        )),
        Some(Err(e)) => Error::new(
            e.kind(),
            format!("interrupted: launch {launch_id} could not be cleaned up and may be running"),
        )
        .with_hint(format!("`{stop}` stops it (instances stop at their deadline anyway)"))
        .with_source(e),
    };
    Interrupted(e).into()
}

/// Terminates every instance of the launch: those the launch returned and those the
/// cloud lists under its launch tag and the caller's owner tag (a launch call cut off
/// mid-flight returns nothing, yet may have started some). Looks again for a while,
/// since such instances can show up a moment later. Returns how many it terminated.
async fn end_launch(
    ctx: &Context,
    launcher: &Launcher,
    launch_id: &LaunchId,
    known: &[Instance],
    ended: &RefCell<BTreeSet<String>>,
) -> Result<usize, Error> {
    let req = launcher
        .mine()
        .tag(tags::LAUNCH, tags::sanitize_value(launch_id.as_str()))
        .live();
    let start = Instant::now();
    let cloud = launcher.info().cloud;
    let mut todo: Vec<String> = crate::clouds::keep_mine(ctx, cloud, known.to_vec())
        .into_iter()
        .map(|i| i.id)
        .collect();
    let mut quiet = 0;
    loop {
        let found = launcher.list(&req).await?;
        let found = crate::clouds::keep_mine(ctx, cloud, found);
        todo.extend(found.into_iter().map(|i| i.id));
        todo.retain(|id| !ended.borrow().contains(id));
        todo.sort();
        todo.dedup();
        if todo.is_empty() {
            quiet += 1;
        } else {
            quiet = 0;
            launcher.terminate(&todo).await?;
            ended.borrow_mut().extend(todo.drain(..));
        }
        let elapsed = start.elapsed();
        if (quiet >= 2 && elapsed >= LOOK_AT_LEAST) || elapsed >= LOOK_AT_MOST {
            return Ok(ended.borrow().len());
        }
        tokio::time::sleep(LOOK_EVERY).await;
    }
}

fn print_instances(ctx: &Context, a: &LaunchArgs, report: &herd_core::LaunchReport) -> anyhow::Result<()> {
    if a.json {
        return ctx.printer.json(report);
    }
    let now = chrono::Utc::now();
    ctx.printer.table(&format::instance_table(&report.instances, now));
    Ok(())
}

#[derive(Serialize)]
struct DryRun<'a> {
    dry_run: bool,
    fits: bool,
    budget_per_launch: Money,
    budget_per_day: Money,
    plan: &'a LaunchPlan,
}

fn print_plan(ctx: &Context, plan: &LaunchPlan) {
    let p = &ctx.printer;
    let r = &plan.request;
    let budget = &ctx.settings.budget;
    let now = chrono::Utc::now();
    let deadline = (r.deadline - now).to_std().unwrap_or(Duration::ZERO);
    // Round to whole seconds: the plan was made a moment ago.
    let deadline = Duration::from_secs((deadline.as_millis() as u64).div_ceil(1000));
    let line = |k: &str, v: String| p.line(format!("{:<11} {v}", p.paint(crate::printer::Style::Bold, k)));
    p.note(p.paint_err(crate::printer::Style::Dim, "dry run: nothing launched"));
    line("type", format!("{} × {}, {}", r.count, r.instance_type, r.market));
    line(
        "region",
        format!("{} (zone: {})", r.region, r.zone.as_deref().unwrap_or("any")),
    );
    line(
        "deadline",
        format!("{}, until {}", human(deadline), format::instant(r.deadline)),
    );
    line("keepalive", r.keepalive.map_or("off".to_string(), human));
    line("launch id", r.launch_id.to_string());
    line("cluster", plan.cluster.clone());
    let all = plan.quote.hourly.times(Decimal::from(r.count));
    line(
        "price",
        format!(
            "{}/h each, {}/h in all ({}, as of {})",
            plan.quote.hourly, all, plan.quote.source, plan.quote.as_of
        ),
    );
    line(
        "worst case",
        format!(
            "{} = {} × {}/h on-demand × {}",
            plan.worst_case,
            r.count,
            r.on_demand_price,
            human(deadline)
        ),
    );
    line(
        "today",
        format!(
            "{} committed of the {} daily budget",
            plan.committed_today, budget.per_day
        ),
    );
    let verdict = match &plan.budget {
        None => p.paint(
            crate::printer::Style::Green,
            &format!("fits (per launch {})", budget.per_launch),
        ),
        Some(e) => p.paint(
            crate::printer::Style::Red,
            &format!("would be refused: {}", e.message()),
        ),
    };
    line("budget", verdict);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_need_an_equals_sign() {
        assert_eq!(parse_tag("team=ml").unwrap(), ("team", "ml"));
        assert_eq!(parse_tag("a=b=c").unwrap(), ("a", "b=c"));
        let e = parse_tag("team").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidSpec);
        assert!(e.hint().unwrap().contains("--tag team=ml"));
    }
}
