//! `herd launch TYPE`: plan (validate, price, check the budget), then launch and wait
//! until running. `--dry-run` stops after the plan and prints the worst case.

use std::time::Duration;

use herd_core::guardrails::human;
use herd_core::{Error, ErrorKind, LaunchId, LaunchPlan, LaunchSpec, Launcher, Market, Money};
use rust_decimal::Decimal;
use serde::Serialize;

use crate::args::LaunchArgs;
use crate::context::Context;
use crate::format;
use crate::reporter::Spinner;

/// Longest wait for instances to boot before giving up (they keep their deadline).
const WAIT_TIMEOUT: Duration = Duration::from_secs(10 * 60);

pub fn run(ctx: &Context, a: &LaunchArgs) -> anyhow::Result<()> {
    let spec = spec(ctx, a)?;
    let launcher = ctx.launcher()?;
    ctx.block_on(launch(ctx, launcher, a, spec))?
}

fn spec(ctx: &Context, a: &LaunchArgs) -> anyhow::Result<LaunchSpec> {
    let s = &ctx.settings;
    let market = if a.spot {
        Market::Spot
    } else if a.spot_fallback {
        Market::SpotOrOnDemand
    } else {
        Market::OnDemand
    };
    let mut spec = LaunchSpec::new(&a.instance_type, a.count)
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
    if let Some(x) = &a.setup {
        spec = spec.setup(x);
    }
    if let Some(x) = &a.command {
        spec = spec.command(x);
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

async fn launch(ctx: &Context, launcher: &Launcher, a: &LaunchArgs, spec: LaunchSpec) -> anyhow::Result<()> {
    let p = &ctx.printer;
    let mut plan = launcher.plan(&spec).await?;
    for w in &plan.warnings {
        p.warn(w);
    }
    if a.dry_run {
        if a.json {
            p.json(&DryRun {
                dry_run: true,
                fits: plan.budget.is_none(),
                budget_per_launch: ctx.settings.budget.per_launch,
                budget_per_day: ctx.settings.budget.per_day,
                plan: &plan,
            })?;
        } else {
            print_plan(ctx, &plan);
        }
        return match plan.budget.take() {
            Some(e) => Err(e.into()),
            None => Ok(()),
        };
    }

    let count = plan.request.count;
    let spinner = Spinner::start(p, format!("launching {count} × {}", plan.request.instance_type));
    let launched = launcher.launch_planned(plan).await;
    spinner.finish();
    let mut report = launched?;
    let launch_id = report.launch_id.clone();
    let down_hint = format!("they stop at their deadline; `herd down --launch {launch_id}` stops them now");

    let wait = !a.no_wait;
    if wait {
        let ids: Vec<String> = report.instances.iter().map(|i| i.id.clone()).collect();
        let spinner = Spinner::start(p, format!("waiting for {} instance(s) to boot", ids.len()));
        let waited = tokio::select! {
            r = launcher.wait_until_running(&ids, WAIT_TIMEOUT) => r.map_err(|e| {
                Error::new(e.kind(), format!("launch {launch_id} started, but its instances did not all come up"))
                    .with_hint(down_hint.clone())
                    .with_source(e)
            }),
            _ = tokio::signal::ctrl_c() => Err(Error::new(
                ErrorKind::Unexpected,
                format!("interrupted while waiting for launch {launch_id}"),
            ).with_hint(down_hint.clone())),
        };
        spinner.finish();
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
