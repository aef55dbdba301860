//! `herd reap`: what herd left behind that still costs money, on every configured cloud
//! at once -- leftovers the clouds report (volumes, addresses, ...) and your instances
//! already past their deadline (there should be none: the cloud enforces deadlines) --
//! deleted after confirmation. Only what the answer itself tags as yours is touched, and
//! every item that could not be deleted is reported, not hidden behind the first.

use chrono::Utc;
use herd_core::{tags, Cloud, Instance, Launcher, Leftover, Money, ReapResult, TerminateOutcome, TerminateResult};
use rust_decimal::Decimal;
use serde::Serialize;

use crate::args::ReapArgs;
use crate::clouds;
use crate::context::Context;
use crate::printer::{styled, Style, Table};

/// What one cloud has to reap.
#[derive(Serialize, Default)]
struct Found {
    leftovers: Vec<CloudLeftover>,
    overdue: Vec<Instance>,
    cost_per_day: Money,
}

#[derive(Serialize, Clone)]
struct CloudLeftover {
    cloud: Cloud,
    #[serde(flatten)]
    item: Leftover,
}

#[derive(Serialize)]
struct CloudReaped {
    cloud: Cloud,
    #[serde(flatten)]
    result: ReapResult,
}

#[derive(Serialize)]
struct CloudTerminated {
    cloud: Cloud,
    #[serde(flatten)]
    result: TerminateResult,
}

#[derive(Serialize)]
struct Reaped<'a> {
    found: &'a Found,
    reaped: Vec<CloudReaped>,
    terminated: Vec<CloudTerminated>,
}

pub fn run(ctx: &Context, a: &ReapArgs) -> anyhow::Result<()> {
    let clouds = ctx.clouds(&a.cloud)?;
    let (launchers, mut failures) = clouds::launchers(ctx, &clouds);
    ctx.block_on(async {
        let (scanned, failed) = clouds::each(&launchers, |cloud, l| scan(ctx, cloud, l)).await;
        failures.extend(failed);
        let mut found = Found::default();
        for (_, f) in scanned {
            found.leftovers.extend(f.leftovers);
            found.overdue.extend(f.overdue);
            found.cost_per_day += f.cost_per_day;
        }
        if found.leftovers.is_empty() && found.overdue.is_empty() {
            clouds::warn(ctx, &failures);
            if a.json {
                ctx.printer.json(&Reaped {
                    found: &found,
                    reaped: Vec::new(),
                    terminated: Vec::new(),
                })?;
            } else if failures.is_empty() {
                ctx.printer.note("nothing to reap");
            }
            return clouds::incomplete(&failures, "the search for leftovers").map_or(Ok(()), Err);
        }
        let n = found.leftovers.len() + found.overdue.len();
        if !a.json || !a.yes {
            let t = table(&found);
            if a.json {
                ctx.printer.table_err(&t);
            } else {
                ctx.printer.table(&t);
            }
        }
        clouds::warn(ctx, &failures);
        let question = format!("Delete {n} item(s) costing {}/day?", found.cost_per_day);
        if !super::confirmed(ctx, a.yes, &question, &format!("delete {n} item(s)"))? {
            return Err(super::aborted("nothing was deleted"));
        }
        let targets: Vec<(Cloud, &Launcher)> = launchers
            .iter()
            .filter(|(c, _)| {
                found.leftovers.iter().any(|l| l.cloud == *c) || found.overdue.iter().any(|i| i.cloud == *c)
            })
            .copied()
            .collect();
        let found_ref = &found;
        let (done, failed) = clouds::each(&targets, |cloud, l| async move {
            let items: Vec<Leftover> = found_ref
                .leftovers
                .iter()
                .filter(|x| x.cloud == cloud)
                .map(|x| x.item.clone())
                .collect();
            let reaped = if items.is_empty() {
                Vec::new()
            } else {
                l.reap(&items).await?
            };
            let ids: Vec<String> = found_ref
                .overdue
                .iter()
                .filter(|i| i.cloud == cloud)
                .map(|i| i.id.clone())
                .collect();
            let terminated = if ids.is_empty() {
                Vec::new()
            } else {
                l.terminate(&ids).await?
            };
            Ok((reaped, terminated))
        })
        .await;
        failures.extend(failed);
        let mut reaped = Vec::new();
        let mut terminated = Vec::new();
        for (cloud, (r, t)) in done {
            reaped.extend(r.into_iter().map(|result| CloudReaped { cloud, result }));
            terminated.extend(t.into_iter().map(|result| CloudTerminated { cloud, result }));
        }
        let item_failures: Vec<&CloudReaped> = reaped.iter().filter(|r| r.result.error.is_some()).collect();
        for f in &item_failures {
            ctx.printer.warn(format!(
                "{}: could not delete {} {}: {}",
                f.cloud,
                f.result.kind,
                f.result.id,
                f.result.error.as_deref().unwrap_or("")
            ));
        }
        clouds::warn(ctx, &failures);
        let failed_items = item_failures.len();
        if a.json {
            ctx.printer.json(&Reaped {
                found: &found,
                reaped,
                terminated,
            })?;
        } else {
            let deleted = reaped
                .iter()
                .filter(|r| r.result.error.is_none() && r.result.outcome == TerminateOutcome::Terminated)
                .count()
                + terminated
                    .iter()
                    .filter(|r| r.result.outcome == TerminateOutcome::Terminated)
                    .count();
            let gone = n.saturating_sub(deleted + failed_items);
            let mut parts = vec![format!("deleted {deleted} of {n}")];
            if gone > 0 {
                parts.push(format!("{gone} already gone"));
            }
            if failed_items > 0 {
                parts.push(format!("{failed_items} failed (still there, still billing)"));
            }
            ctx.printer.note(parts.join("; "));
        }
        if failed_items > 0 {
            return Err(herd_core::Error::new(
                herd_core::ErrorKind::Unavailable,
                format!("{failed_items} of {n} item(s) could not be deleted (see the warnings above)"),
            )
            .with_hint("run `herd reap` again; if the same items keep failing, their warning says why")
            .into());
        }
        clouds::incomplete(&failures, "`herd reap`").map_or(Ok(()), Err)
    })?
}

async fn scan(ctx: &Context, cloud: Cloud, launcher: &Launcher) -> anyhow::Result<Found> {
    let mut found = Found::default();
    let me = tags::sanitize_value(ctx.owner());
    if launcher.capabilities().leftovers {
        let items = launcher.leftovers(Some(ctx.owner())).await?;
        // An item the answer tags as someone else's is never ours to delete.
        let (mine, theirs): (Vec<Leftover>, Vec<Leftover>) = items
            .into_iter()
            .partition(|l| l.tags.get(tags::OWNER).is_none_or(|o| *o == me));
        if !theirs.is_empty() {
            let names: Vec<String> = theirs
                .iter()
                .map(|l| {
                    format!(
                        "{} {} (owner {})",
                        l.kind,
                        l.id,
                        l.tags.get(tags::OWNER).map_or("?", |o| o)
                    )
                })
                .collect();
            ctx.printer.warn(format!(
                "{cloud} answered with {} item(s) that are not yours, left alone: {}",
                theirs.len(),
                names.join(", ")
            ));
        }
        found.leftovers = mine.into_iter().map(|item| CloudLeftover { cloud, item }).collect();
    }
    let now = Utc::now();
    found.overdue = clouds::keep_mine(ctx, cloud, launcher.list_mine(false).await?)
        .into_iter()
        .filter(|i| i.deadline < now)
        .collect();
    found.cost_per_day = found.leftovers.iter().map(|l| l.item.cost_per_day).sum::<Money>()
        + found
            .overdue
            .iter()
            .map(|i| i.hourly_price.times(Decimal::from(24)))
            .sum::<Money>();
    Ok(found)
}

fn table(found: &Found) -> Table {
    let mut t = Table::new(&["KIND", "ID", "CLOUD", "REGION", ">$/DAY", "WHY"]);
    for x in &found.leftovers {
        let l = &x.item;
        t.row(vec![
            l.kind.clone().into(),
            l.id.clone().into(),
            x.cloud.to_string().into(),
            l.region.clone().into(),
            l.cost_per_day.to_string().into(),
            l.reason.clone().into(),
        ]);
    }
    for i in &found.overdue {
        t.row(vec![
            "instance".into(),
            i.id.clone().into(),
            i.cloud.to_string().into(),
            i.region.clone().into(),
            i.hourly_price.times(Decimal::from(24)).to_string().into(),
            styled(
                format!("past its deadline ({})", crate::format::instant(i.deadline)),
                Style::Red,
            ),
        ]);
    }
    t.footer(vec![
        styled("total", Style::Bold),
        "".into(),
        "".into(),
        "".into(),
        found.cost_per_day.to_string().into(),
    ]);
    t
}
