//! `herd reap`: what herd left behind that still costs money -- leftovers the cloud
//! reports (volumes, addresses, ...) and your instances already past their deadline
//! (there should be none: the cloud enforces deadlines) -- deleted after confirmation.

use chrono::Utc;
use herd_core::{Instance, Launcher, Leftover, Money, ReapResult, TerminateOutcome, TerminateResult};
use rust_decimal::Decimal;
use serde::Serialize;

use crate::args::ReapArgs;
use crate::context::Context;
use crate::printer::{styled, Style, Table};

#[derive(Serialize, Default)]
struct Found {
    leftovers: Vec<Leftover>,
    overdue: Vec<Instance>,
    cost_per_day: Money,
}

#[derive(Serialize)]
struct Reaped<'a> {
    found: &'a Found,
    reaped: Vec<ReapResult>,
    terminated: Vec<TerminateResult>,
}

pub fn run(ctx: &Context, a: &ReapArgs) -> anyhow::Result<()> {
    // Every configured cloud; today a build knows one at a time.
    let launcher = ctx.launcher()?;
    ctx.block_on(async {
        let found = scan(ctx, launcher).await?;
        if found.leftovers.is_empty() && found.overdue.is_empty() {
            if a.json {
                return ctx.printer.json(&Reaped {
                    found: &found,
                    reaped: Vec::new(),
                    terminated: Vec::new(),
                });
            }
            ctx.printer.note("nothing to reap");
            return Ok(());
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
        let question = format!("Delete {n} item(s) costing {}/day?", found.cost_per_day);
        if !super::confirmed(ctx, a.yes, &question, &format!("delete {n} item(s)"))? {
            return Err(super::aborted("nothing was deleted"));
        }
        let reaped = if found.leftovers.is_empty() {
            Vec::new()
        } else {
            launcher.reap(&found.leftovers).await?
        };
        let ids: Vec<String> = found.overdue.iter().map(|i| i.id.clone()).collect();
        let terminated = if ids.is_empty() {
            Vec::new()
        } else {
            launcher.terminate(&ids).await?
        };
        if a.json {
            return ctx.printer.json(&Reaped {
                found: &found,
                reaped,
                terminated,
            });
        }
        let deleted = reaped
            .iter()
            .filter(|r| r.outcome == TerminateOutcome::Terminated)
            .count()
            + terminated
                .iter()
                .filter(|r| r.outcome == TerminateOutcome::Terminated)
                .count();
        let gone = if deleted < n {
            " (the rest were already gone)"
        } else {
            ""
        };
        ctx.printer.note(format!(
            "deleted {deleted} of {n}{gone}; {}/day saved",
            found.cost_per_day
        ));
        Ok(())
    })?
}

async fn scan(ctx: &Context, launcher: &Launcher) -> anyhow::Result<Found> {
    let mut found = Found::default();
    if launcher.capabilities().leftovers {
        found.leftovers = launcher.leftovers(Some(ctx.owner())).await?;
    }
    let now = Utc::now();
    found.overdue = launcher
        .list_mine(false)
        .await?
        .into_iter()
        .filter(|i| i.deadline < now)
        .collect();
    found.cost_per_day = found.leftovers.iter().map(|l| l.cost_per_day).sum::<Money>()
        + found
            .overdue
            .iter()
            .map(|i| i.hourly_price.times(Decimal::from(24)))
            .sum::<Money>();
    Ok(found)
}

fn table(found: &Found) -> Table {
    let mut t = Table::new(&["KIND", "ID", "REGION", ">$/DAY", "WHY"]);
    for l in &found.leftovers {
        t.row(vec![
            l.kind.clone().into(),
            l.id.clone().into(),
            l.region.clone().into(),
            l.cost_per_day.to_string().into(),
            l.reason.clone().into(),
        ]);
    }
    for i in &found.overdue {
        t.row(vec![
            "instance".into(),
            i.id.clone().into(),
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
        found.cost_per_day.to_string().into(),
    ]);
    t
}
