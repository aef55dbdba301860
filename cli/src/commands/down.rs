//! `herd down`: terminate instances by id, cluster, launch or all of yours. Idempotent:
//! an instance that is already gone is reported as such, not as an error.

use std::collections::BTreeSet;

use chrono::Utc;
use herd_core::{tags, Error, Instance, ListRequest, Money, TerminateOutcome, TerminateResult};
use herd_ledger::InstanceFilter;

use crate::args::DownArgs;
use crate::context::Context;
use crate::format;
use crate::printer::{styled, Style, Table};

pub fn run(ctx: &Context, a: &DownArgs) -> anyhow::Result<()> {
    if a.ids.is_empty() && a.cluster.is_none() && a.launch_id.is_none() && !a.all {
        return Err(Error::invalid_spec("nothing selected to terminate")
            .with_hint("name instance ids, or use --cluster NAME, --launch ID or --all (`herd ls` shows them)")
            .into());
    }
    let launcher = ctx.launcher()?;
    ctx.block_on(async {
        let sel = select(ctx, a).await?;
        for id in &sel.never_seen {
            ctx.printer.warn(format!(
                "{id} is not an instance herd knows of (never launched by herd here, or a typo)"
            ));
        }
        let mut results: Vec<TerminateResult> = sel
            .gone
            .iter()
            .map(|id| TerminateResult::new(id.clone(), TerminateOutcome::AlreadyGone))
            .collect();

        if sel.live.is_empty() {
            if !a.json {
                ctx.printer.note(if results.is_empty() {
                    "no live instances match; nothing to terminate"
                } else {
                    "already gone; nothing to terminate"
                });
            }
        } else {
            let hourly = format::total_hourly(&sel.live);
            if !a.yes {
                preview(ctx, &sel.live, hourly);
            }
            let question = format!("Terminate {} instance(s) ({}/h)?", sel.live.len(), hourly);
            let what = format!("terminate {} instance(s)", sel.live.len());
            if !super::confirmed(ctx, a.yes, &question, &what)? {
                return Err(super::aborted("nothing was terminated"));
            }
            let ids: Vec<String> = sel.live.iter().map(|i| i.id.clone()).collect();
            results.extend(launcher.terminate(&ids).await?);
            let stopped: Money = sel.live.iter().map(|i| i.hourly_price).sum();
            if !a.json {
                ctx.printer
                    .note(format!("terminated {} instance(s); {}/h stopped", ids.len(), stopped));
            }
        }
        results.sort_by(|x, y| x.id.cmp(&y.id));
        if a.json {
            return ctx.printer.json(&results);
        }
        if !results.is_empty() {
            let mut t = Table::new(&["ID", "RESULT"]);
            for r in &results {
                t.row(vec![
                    r.id.clone().into(),
                    match r.outcome {
                        TerminateOutcome::Terminated => styled("terminated", Style::Green),
                        TerminateOutcome::AlreadyGone => styled("already gone", Style::Dim),
                    },
                ]);
            }
            ctx.printer.table(&t);
        }
        Ok(())
    })?
}

/// What the arguments select, sorted into what there is to do.
#[derive(Debug, Default)]
struct Selection {
    live: Vec<Instance>,
    /// Ids herd knows that are already terminated (or no longer known to the cloud).
    gone: Vec<String>,
    /// Ids neither the cloud nor the ledger has ever heard of.
    never_seen: Vec<String>,
}

async fn select(ctx: &Context, a: &DownArgs) -> anyhow::Result<Selection> {
    let launcher = ctx.launcher()?;
    let mut sel = Selection::default();
    let mut seen = BTreeSet::new();

    if !a.ids.is_empty() {
        let ids: Vec<String> = a.ids.iter().cloned().collect::<BTreeSet<_>>().into_iter().collect();
        let found = launcher.list(&ListRequest::new().ids(ids.iter().cloned())).await?;
        let mut missing = Vec::new();
        for id in &ids {
            match found.iter().find(|i| &i.id == id) {
                Some(i) if i.state.is_live() => {
                    seen.insert(i.id.clone());
                    sel.live.push(i.clone());
                }
                Some(_) => sel.gone.push(id.clone()),
                None => missing.push(id.clone()),
            }
        }
        if !missing.is_empty() {
            let known = ctx.ledger()?.instances(&InstanceFilter {
                ids: missing.clone(),
                ..InstanceFilter::default()
            })?;
            for id in missing {
                if !known.iter().any(|i| i.id == id) {
                    sel.never_seen.push(id.clone());
                }
                sel.gone.push(id);
            }
        }
    }

    if a.all || a.cluster.is_some() || a.launch_id.is_some() {
        let mut req = launcher.mine().live();
        if let Some(c) = &a.cluster {
            req = req.tag(tags::CLUSTER, tags::sanitize_value(c));
        }
        if let Some(l) = &a.launch_id {
            req = req.tag(tags::LAUNCH, tags::sanitize_value(l));
        }
        for i in launcher.list(&req).await? {
            if seen.insert(i.id.clone()) {
                sel.live.push(i);
            }
        }
    }
    sel.live.sort_by(|x, y| x.id.cmp(&y.id));
    Ok(sel)
}

/// What is about to be terminated, on stderr, before asking.
fn preview(ctx: &Context, live: &[Instance], hourly: Money) {
    let t = format::instance_table(live, Utc::now());
    ctx.printer.table_err(&t);
    ctx.printer
        .note(format!("{} instance(s), {}/h in all", live.len(), hourly));
}
