//! `herd launch a,b --region x,y -n N` and `herd launch --fleet FILE`: a mixed fleet of
//! one cloud in one launch. This file turns the flags or the file into parts, checks
//! they all name one cloud, and prints the plan and the outcome; the launch itself (one
//! reservation, concurrent parts, all or nothing) is `herd_core::fleet`'s. Ctrl-C ends
//! every part: they all carry the fleet's launch tag, which the clean-up lists by.

use std::path::Path;
use std::time::Duration;

use herd_core::fleet::{split_even, split_weighted};
use herd_core::guardrails::human;
use herd_core::{
    Cloud, Error, ErrorKind, FleetPart, FleetPlan, FleetReport, FleetSpec, Launcher, Money, OnPartFailure,
};
use serde::{Deserialize, Serialize};

use super::{interrupted, spec_of, Interrupts, WAIT_TIMEOUT};
use crate::args::LaunchArgs;
use crate::commands::Interrupted;
use crate::context::Context;
use crate::format;
use crate::printer::{Style, Table};
use crate::reporter::Spinner;

/// The fleet's parts when the flags ask for one (several types or regions, or a fleet
/// file); `None` for a plain launch, which stays exactly as it was.
pub(super) fn parts(ctx: &Context, a: &LaunchArgs) -> anyhow::Result<Option<Vec<FleetPart>>> {
    let regions = match ctx.settings.region.as_deref() {
        Some(r) => list("--region", r)?,
        None => Vec::new(),
    };
    if let Some(path) = &a.fleet {
        return Ok(Some(from_file(ctx, path, a.count, &regions)?));
    }
    let types = list("TYPE", a.instance_type.as_deref().unwrap_or_default())?;
    if types.len() < 2 && regions.len() < 2 {
        return Ok(None);
    }
    let regions = if regions.is_empty() {
        vec![ctx.launcher()?.info().default_region]
    } else {
        regions
    };
    let total = a.count.unwrap_or(1);
    Ok(Some(split_even(&types, &regions, total)?))
}

/// `a,b,c` as a list; an empty item (`a,,b`, a trailing comma) is refused.
fn list(what: &str, v: &str) -> Result<Vec<String>, Error> {
    let items: Vec<String> = v.split(',').map(|x| x.trim().to_string()).collect();
    if items.iter().any(String::is_empty) {
        return Err(Error::invalid_spec(format!("{what} `{v}` has an empty item"))
            .with_hint("separate several with commas and nothing else, e.g. m7g.large,m7i.large"));
    }
    let mut seen = Vec::new();
    for i in &items {
        if seen.contains(i) {
            return Err(Error::invalid_spec(format!("{what} `{v}` names `{i}` twice")));
        }
        seen.push(i.clone());
    }
    Ok(items)
}

/// A fleet file, e.g.
///
/// ```toml
/// count = 2000              # the total, when the parts have weights
/// [[part]]
/// type = "m7g.large"
/// region = "us-east-1"
/// weight = 3                # or `count = 1500`
/// ```
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FleetFile {
    cloud: Option<String>,
    count: Option<u32>,
    #[serde(default, rename = "part")]
    parts: Vec<PartRow>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PartRow {
    #[serde(rename = "type")]
    instance_type: String,
    region: Option<String>,
    count: Option<u32>,
    weight: Option<u32>,
    cloud: Option<String>,
}

fn from_file(ctx: &Context, path: &Path, n: Option<u32>, regions: &[String]) -> anyhow::Result<Vec<FleetPart>> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::config(format!("cannot read the fleet file {shown}: {e}"))
            .with_hint("--fleet takes a TOML file with [[part]] tables (`herd launch --help` shows one)")
    })?;
    let file: FleetFile = toml::from_str(&text).map_err(|e| {
        let line = e
            .span()
            .map(|s| format!(", line {}", text[..s.start.min(text.len())].matches('\n').count() + 1))
            .unwrap_or_default();
        Error::config(format!("fleet file {shown}{line}: {}", e.message().trim()))
            .with_hint("each [[part]] takes `type`, `region`, and `count` or `weight`")
    })?;
    if file.parts.is_empty() {
        return Err(Error::config(format!("fleet file {shown} lists no [[part]]"))
            .with_hint("add [[part]] tables with `type`, `region`, and `count` or `weight`")
            .into());
    }
    // One cloud per fleet: the launch's (`--cloud`, `cloud` in herd.toml).
    let cloud = ctx.settings.cloud;
    let mut named: Vec<(String, Cloud)> = Vec::new();
    if let Some(c) = &file.cloud {
        named.push((shown.to_string(), parse_cloud(&shown.to_string(), c)?));
    }
    for (i, p) in file.parts.iter().enumerate() {
        if let Some(c) = &p.cloud {
            named.push((
                format!("part {} of {shown}", i + 1),
                parse_cloud(&shown.to_string(), c)?,
            ));
        }
    }
    if let Some((who, other)) = named.iter().find(|(_, c)| *c != cloud) {
        return Err(one_cloud(&format!("{who} names {other}"), cloud, *other).into());
    }
    if regions.len() > 1 {
        return Err(
            Error::invalid_spec("--region lists several regions, and --fleet names the regions itself")
                .with_hint("give each [[part]] its `region`, or one --region for the parts that name none")
                .into(),
        );
    }
    let default_region = match regions.first() {
        Some(r) => r.clone(),
        None => ctx.launcher()?.info().default_region,
    };
    let counts: Vec<Option<u32>> = file.parts.iter().map(|p| p.count).collect();
    let weighted = file.parts.iter().any(|p| p.weight.is_some());
    let counted = counts.iter().any(Option::is_some);
    if weighted && counted {
        return Err(Error::config(format!(
            "fleet file {shown} gives some parts a `count` and others a `weight`"
        ))
        .with_hint(
            "use counts for all parts (the total is their sum) or weights for all (with -n or `count` at the top)",
        )
        .into());
    }
    let total = n.or(file.count);
    let split: Vec<u32> = if counted {
        if let Some(i) = counts.iter().position(Option::is_none) {
            return Err(
                Error::config(format!("fleet file {shown}: part {} has no `count`", i + 1))
                    .with_hint("give every part a `count`, or every part a `weight`")
                    .into(),
            );
        }
        let counts: Vec<u32> = counts.into_iter().flatten().collect();
        if let Some(i) = counts.iter().position(|c| *c == 0) {
            return Err(Error::config(format!("fleet file {shown}: part {} has count 0", i + 1)).into());
        }
        let sum: u64 = counts.iter().map(|c| u64::from(*c)).sum();
        if let Some(t) = total.filter(|t| u64::from(*t) != sum) {
            return Err(Error::invalid_spec(format!(
                "the parts of {shown} add up to {sum} instances, but the total asked is {t}"
            ))
            .with_hint("drop -n (the parts' counts are the total), or give the parts weights instead")
            .into());
        }
        counts
    } else {
        let Some(total) = total else {
            return Err(
                Error::invalid_spec(format!("the parts of {shown} have weights but no total"))
                    .with_hint("say how many in all: -n N, or `count = N` at the top of the file")
                    .into(),
            );
        };
        let weights: Vec<u32> = file.parts.iter().map(|p| p.weight.unwrap_or(1)).collect();
        split_weighted(&weights, total)?
    };
    Ok(file
        .parts
        .iter()
        .zip(split)
        .map(|(p, n)| {
            FleetPart::new(
                &p.instance_type,
                p.region.clone().unwrap_or_else(|| default_region.clone()),
                n,
            )
        })
        .collect())
}

fn parse_cloud(file: &str, c: &str) -> Result<Cloud, Error> {
    c.parse::<Cloud>().map_err(|e: Error| {
        Error::config(format!("fleet file {file}: {}", e.message())).with_suggestions(e.suggestions().to_vec())
    })
}

/// The error for a fleet that would span clouds.
fn one_cloud(what: &str, launching: Cloud, other: Cloud) -> Error {
    Error::invalid_spec(format!(
        "{what}, but this fleet launches on {launching}: a fleet launches on one cloud"
    ))
    .with_hint(format!(
        "launch one fleet per cloud (`--cloud {other}` for that one); mixing clouds in one fleet is not supported"
    ))
}

/// Refuses a part whose type or region belongs to another cloud, naming that cloud,
/// before the plan would call it merely unknown.
fn check_one_cloud(launcher: &Launcher, parts: &[FleetPart]) -> Result<(), Error> {
    let cloud = launcher.info().cloud;
    let mine = launcher.catalog();
    let elsewhere = |known: &dyn Fn(Cloud) -> bool| Cloud::ALL.into_iter().find(|c| *c != cloud && known(*c));
    for p in parts {
        if mine.find_region(cloud, &p.region).is_err() {
            if let Some(other) = elsewhere(&|c| crate::catalogs::all().find_region(c, &p.region).is_ok()) {
                return Err(one_cloud(&format!("region `{}` is on {other}", p.region), cloud, other));
            }
        }
        if mine.find_type(cloud, &p.instance_type).is_err() {
            if let Some(other) = elsewhere(&|c| crate::catalogs::all().find_type(c, &p.instance_type).is_ok()) {
                return Err(one_cloud(
                    &format!("type `{}` is on {other}", p.instance_type),
                    cloud,
                    other,
                ));
            }
        }
    }
    Ok(())
}

pub(super) fn run(ctx: &Context, a: &LaunchArgs, parts: Vec<FleetPart>) -> anyhow::Result<()> {
    let launcher = ctx.launcher()?;
    check_one_cloud(launcher, &parts)?;
    let template = spec_of(ctx, a, "-", 0)?;
    let rule = if a.partial {
        OnPartFailure::KeepPartial
    } else {
        OnPartFailure::AllOrNothing
    };
    let spec = FleetSpec::new(template, parts).on_failure(rule);
    ctx.block_on(async {
        let mut interrupts = Interrupts::install()?;
        launch(ctx, launcher, a, spec, &mut interrupts).await
    })?
}

async fn launch(
    ctx: &Context,
    launcher: &Launcher,
    a: &LaunchArgs,
    spec: FleetSpec,
    interrupts: &mut Interrupts,
) -> anyhow::Result<()> {
    let p = &ctx.printer;
    let mut plan = tokio::select! {
        plan = launcher.plan_fleet(&spec) => plan?,
        _ = interrupts.next() => {
            return Err(Interrupted(Error::new(ErrorKind::Conflict, "interrupted before anything was launched")).into());
        }
    };
    for w in &plan.warnings {
        p.warn(w);
    }
    if a.dry_run {
        if a.json {
            p.json(&crate::commands::env::redacted(&DryRun {
                dry_run: true,
                fits: plan.budget.is_none(),
                budget_per_launch: ctx.settings.budget.per_launch,
                budget_per_day: ctx.settings.budget.per_day,
                fleet: FleetView::of(&plan),
            })?)?;
        } else {
            print_plan(ctx, &plan);
        }
        return match plan.budget.take() {
            Some(e) => Err(e.into()),
            None => Ok(()),
        };
    }

    let launch_id = plan.launch_id.clone();
    let spinner = Spinner::start(
        p,
        format!("launching {} instances in {} parts", plan.count, plan.parts.len()),
    );
    let launched = tokio::select! {
        // An interrupt that came while the parts ran wins over their answers.
        biased;
        _ = interrupts.next() => None,
        r = launcher.launch_fleet_planned(plan) => Some(r),
    };
    spinner.finish();
    let mut report = match launched {
        Some(r) => r?,
        None => return Err(interrupted(ctx, launcher, &launch_id, &[], interrupts).await),
    };
    let down_hint = format!("they stop at their deadline; `herd down --launch {launch_id}` stops them now");

    let wait = !a.no_wait && !report.instances.is_empty();
    if wait {
        let ids: Vec<String> = report.instances.iter().map(|i| i.id.clone()).collect();
        let spinner = Spinner::start(p, format!("waiting for {} instance(s) to boot", ids.len()));
        let waited = tokio::select! {
            biased;
            _ = interrupts.next() => None,
            r = launcher.wait_until_running(&ids, WAIT_TIMEOUT) => Some(r.map_err(|e| {
                Error::new(e.kind(), format!("fleet {launch_id} started, but its instances did not all come up"))
                    .with_hint(down_hint.clone())
                    .with_source(e)
            })),
        };
        spinner.finish();
        let Some(waited) = waited else {
            return Err(interrupted(ctx, launcher, &launch_id, &report.instances, interrupts).await);
        };
        match waited {
            Ok(running) => report.instances = running,
            Err(e) => {
                print_report(ctx, a, &mut report)?;
                return Err(e.into());
            }
        }
    }
    print_report(ctx, a, &mut report)?;
    let hourly = format::total_hourly(&report.instances);
    let started = report.parts.iter().filter(|x| x.error.is_none()).count();
    p.note(format!(
        "{} {} instance(s) in {started} part(s) (launch {launch_id}, cluster {}): {}/h, worst case {}; `herd down --cluster {}` stops them",
        if wait { "running" } else { "launched" },
        report.instances.len(),
        report.cluster,
        hourly,
        report.worst_case,
        report.cluster,
    ));
    if report.complete() {
        return Ok(());
    }
    // --partial: what started runs; say loudly what did not, and exit non-zero.
    let n = report.parts.len();
    for (i, part) in report.parts.iter().enumerate() {
        if let Some(e) = &part.error {
            p.warn(format!(
                "part {} of {n} ({}) did not start: {e}",
                i + 1,
                part.part.describe()
            ));
        }
    }
    let failed = report.parts.iter().filter(|x| x.error.is_some()).count();
    Err(Error::new(
        ErrorKind::Conflict,
        format!(
            "fleet {launch_id} started {started} of its {n} parts ({} instance(s)); {failed} part(s) failed and nothing of them runs",
            report.instances.len()
        ),
    )
    .with_hint(format!(
        "--partial kept the parts that started; `herd down --launch {launch_id}` stops them"
    ))
    .into())
}

fn print_report(ctx: &Context, a: &LaunchArgs, report: &mut FleetReport) -> anyhow::Result<()> {
    report.instances.sort_by(|x, y| x.id.cmp(&y.id));
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
    fleet: FleetView<'a>,
}

/// The plan as `--dry-run --json` shows it: per part what it launches and costs, and
/// the fleet's total against the budget.
#[derive(Serialize)]
struct FleetView<'a> {
    launch_id: &'a str,
    cluster: &'a str,
    on_failure: OnPartFailure,
    count: u32,
    hourly: Money,
    worst_case: Money,
    committed_today: Money,
    budget: Option<String>,
    parts: Vec<PartView<'a>>,
}

#[derive(Serialize)]
struct PartView<'a> {
    part: usize,
    launch_id: &'a str,
    instance_type: &'a str,
    region: &'a str,
    count: u32,
    market: String,
    /// The quoted price of one instance, per hour (spot for spot).
    hourly: Money,
    on_demand_hourly: Money,
    worst_case: Money,
}

impl<'a> FleetView<'a> {
    fn of(plan: &'a FleetPlan) -> Self {
        FleetView {
            launch_id: plan.launch_id.as_str(),
            cluster: &plan.cluster,
            on_failure: plan.on_failure,
            count: plan.count,
            hourly: plan.hourly,
            worst_case: plan.worst_case,
            committed_today: plan.committed_today,
            budget: plan.budget.as_ref().map(|e| e.to_string()),
            parts: plan
                .parts
                .iter()
                .enumerate()
                .map(|(i, p)| PartView {
                    part: i + 1,
                    launch_id: p.request.launch_id.as_str(),
                    instance_type: &p.request.instance_type,
                    region: &p.request.region,
                    count: p.request.count,
                    market: p.request.market.to_string(),
                    hourly: p.quote.hourly,
                    on_demand_hourly: p.request.on_demand_price,
                    worst_case: p.worst_case,
                })
                .collect(),
        }
    }
}

fn print_plan(ctx: &Context, plan: &FleetPlan) {
    let p = &ctx.printer;
    let budget = &ctx.settings.budget;
    let first = &plan.parts[0].request;
    let now = chrono::Utc::now();
    let deadline = (first.deadline - now).to_std().unwrap_or(Duration::ZERO);
    let deadline = Duration::from_secs((deadline.as_millis() as u64).div_ceil(1000));
    let line = |k: &str, v: String| p.line(format!("{:<11} {v}", p.paint(Style::Bold, k)));
    p.note(p.paint_err(Style::Dim, "dry run: nothing launched"));
    line(
        "fleet",
        format!(
            "{} instances in {} parts, {}",
            plan.count,
            plan.parts.len(),
            first.market
        ),
    );
    line(
        "deadline",
        format!("{}, until {}", human(deadline), format::instant(first.deadline)),
    );
    line("keepalive", first.keepalive.map_or("off".to_string(), human));
    line("launch id", plan.launch_id.to_string());
    line("cluster", plan.cluster.clone());
    line(
        "on failure",
        match plan.on_failure {
            OnPartFailure::AllOrNothing => "all or nothing: a failed part ends the whole fleet".to_string(),
            OnPartFailure::KeepPartial => "--partial: the parts that started are kept".to_string(),
        },
    );
    let mut t = Table::new(&[
        ">PART",
        ">COUNT",
        "TYPE",
        "REGION",
        ">$/H EACH",
        ">$/H",
        ">WORST CASE",
        "LAUNCH ID",
    ]);
    for (i, part) in plan.parts.iter().enumerate() {
        let r = &part.request;
        t.row(vec![
            (i + 1).to_string().into(),
            r.count.to_string().into(),
            r.instance_type.clone().into(),
            r.region.clone().into(),
            part.quote.hourly.to_string().into(),
            part.quote.hourly.times(r.count.into()).to_string().into(),
            part.worst_case.to_string().into(),
            r.launch_id.to_string().into(),
        ]);
    }
    t.footer(vec![
        "".into(),
        plan.count.to_string().into(),
        "".into(),
        "".into(),
        "".into(),
        plan.hourly.to_string().into(),
        plan.worst_case.to_string().into(),
        "".into(),
    ]);
    p.table(&t);
    line(
        "worst case",
        format!(
            "{} for the whole fleet (each part: count × on-demand price × {}), reserved once",
            plan.worst_case,
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
        None => p.paint(Style::Green, &format!("fits (per launch {})", budget.per_launch)),
        Some(e) => p.paint(Style::Red, &format!("would be refused: {}", e.message())),
    };
    line("budget", verdict);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_refuse_empty_and_repeated_items() {
        assert_eq!(list("TYPE", "a, b").unwrap(), vec!["a", "b"]);
        let e = list("TYPE", "a,,b").unwrap_err();
        assert!(e.message().contains("empty item"), "{e}");
        assert!(list("--region", "x,").is_err());
        let e = list("--region", "x,x").unwrap_err();
        assert!(e.message().contains("twice"), "{e}");
    }

    #[test]
    fn mixing_clouds_says_so() {
        let e = one_cloud("region `us-east-1` is on aws", Cloud::Local, Cloud::Aws);
        assert!(e.message().contains("a fleet launches on one cloud"), "{e}");
        assert!(e.hint().unwrap().contains("--cloud aws"), "{:?}", e.hint());
    }
}
