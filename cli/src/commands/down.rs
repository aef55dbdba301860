//! `herd down`: terminate instances by id, cluster, launch or all of yours, on every
//! configured cloud at once. Idempotent: an instance that is already gone is reported as
//! such, not as an error -- but only once every cloud that could have it said so.
//!
//! Which cloud holds an id, a cluster or a launch comes from the ledger first, then from
//! the clouds themselves. Nothing is terminated that the cloud's own answer does not tag
//! as the caller's: an id that belongs to someone else (or to no one herd knows) stops
//! the command before any terminate call, naming the owner. `--all` is the kill switch:
//! it works from the clouds' tags when the ledger is missing, empty or corrupt.

use std::collections::{BTreeMap, BTreeSet};

use chrono::Utc;
use herd_core::{
    tags, Cloud, Error, ErrorKind, Instance, Launcher, ListRequest, Money, TerminateOutcome, TerminateResult,
};
use herd_ledger::{InstanceFilter, Ledger};
use serde::Serialize;

use crate::args::DownArgs;
use crate::clouds::{self, Failure};
use crate::context::Context;
use crate::format;
use crate::printer::{styled, Style, Table};

/// One line of the result: which cloud, which id, what happened.
#[derive(Debug, Serialize)]
struct Outcome {
    cloud: Option<Cloud>,
    #[serde(flatten)]
    result: TerminateResult,
}

pub fn run(ctx: &Context, a: &DownArgs) -> anyhow::Result<()> {
    if a.ids.is_empty() && a.cluster.is_none() && a.launch_id.is_none() && !a.all {
        return Err(Error::invalid_spec("nothing selected to terminate")
            .with_hint("name instance ids, or use --cluster NAME, --launch ID or --all (`herd ls` shows them)")
            .into());
    }
    // The kill switch goes on without the ledger; everything else needs it to find clouds.
    let ledger = if a.all {
        ctx.ledger_or_warn().cloned()
    } else {
        Some(ctx.ledger()?.clone())
    };
    let mut clouds = ctx.clouds(&a.cloud)?;
    let known = match &ledger {
        Some(l) => Known::read(ctx, l, a)?,
        None => Known::default(),
    };
    if a.cloud.is_empty() {
        // Where the ledger says the selection lives, even if nothing else names that cloud.
        for c in known.clouds() {
            if !clouds.contains(&c) {
                clouds.push(c);
            }
        }
    }
    let (launchers, mut failures) = clouds::launchers(ctx, &clouds);
    ctx.block_on(async {
        let (found, failed) = clouds::each(&launchers, |cloud, l| select_on(a, &known, cloud, l)).await;
        failures.extend(failed);
        let mut sel = sort(ctx, a, &known, found, &failures)?;
        let probed = probe_unlisted(&known, &launchers, &failures, &sel.unlisted).await?;
        for (cloud, r) in probed {
            if r.outcome == TerminateOutcome::AlreadyGone {
                let k = known.ids.get(&r.id);
                if k.is_none() {
                    sel.never_seen.push(r.id.clone());
                }
                sel.gone.push((cloud.or_else(|| k.map(|i| i.cloud)), r.id));
            } else {
                sel.probed_terminated.push((cloud, r));
            }
        }
        for id in &sel.never_seen {
            ctx.printer.warn(format!(
                "{id} is not an instance herd knows of (no configured cloud has it and the ledger never saw it: a typo?)"
            ));
        }
        let mut results: Vec<Outcome> = sel
            .gone
            .iter()
            .map(|(cloud, id)| Outcome {
                cloud: *cloud,
                result: TerminateResult::new(id.clone(), TerminateOutcome::AlreadyGone),
            })
            .collect();
        results.extend(sel.probed_terminated.drain(..).map(|(cloud, result)| Outcome { cloud, result }));

        if sel.live.is_empty() {
            if !a.json && failures.is_empty() {
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
            let mut by_cloud: BTreeMap<Cloud, Vec<String>> = BTreeMap::new();
            for i in &sel.live {
                by_cloud.entry(i.cloud).or_default().push(i.id.clone());
            }
            let targets: Vec<(Cloud, &Launcher)> = launchers
                .iter()
                .filter(|(c, _)| by_cloud.contains_key(c))
                .copied()
                .collect();
            let (done, failed) = clouds::each(&targets, |cloud, l| {
                let ids = by_cloud.get(&cloud).cloned().unwrap_or_default();
                async move { Ok(l.terminate(&ids).await?) }
            })
            .await;
            failures.extend(failed);
            let mut stopped = Money::ZERO;
            let mut n = 0;
            for (cloud, rs) in done {
                for r in rs {
                    if let Some(i) = sel.live.iter().find(|i| i.id == r.id && i.cloud == cloud) {
                        stopped += i.hourly_price;
                        n += 1;
                    }
                    results.push(Outcome {
                        cloud: Some(cloud),
                        result: r,
                    });
                }
            }
            if !a.json {
                ctx.printer
                    .note(format!("terminated {n} instance(s); {stopped}/h stopped"));
            }
        }
        results.sort_by(|x, y| x.result.id.cmp(&y.result.id).then(x.cloud.cmp(&y.cloud)));
        clouds::warn(ctx, &failures);
        if a.json {
            ctx.printer.json(&results)?;
        } else if !results.is_empty() {
            let mut t = Table::new(&["ID", "CLOUD", "RESULT"]);
            for r in &results {
                t.row(vec![
                    r.result.id.clone().into(),
                    r.cloud.map_or("-".to_string(), |c| c.to_string()).into(),
                    match r.result.outcome {
                        TerminateOutcome::Terminated => styled("terminated", Style::Green),
                        TerminateOutcome::AlreadyGone => styled("already gone", Style::Dim),
                    },
                ]);
            }
            ctx.printer.table(&t);
        }
        match clouds::incomplete(&failures, "`herd down`") {
            Some(e) => Err(e),
            None => Ok(()),
        }
    })?
}

/// What the ledger knows about the selection: the cloud of each id it has seen, and the
/// clouds where the cluster or launch has live instances.
#[derive(Debug, Default)]
struct Known {
    ids: BTreeMap<String, Instance>,
    group_clouds: BTreeSet<Cloud>,
}

impl Known {
    fn read(ctx: &Context, ledger: &Ledger, a: &DownArgs) -> anyhow::Result<Known> {
        let mut k = Known::default();
        if !a.ids.is_empty() {
            for i in ledger.instances(&InstanceFilter {
                ids: a.ids.clone(),
                ..InstanceFilter::default()
            })? {
                k.ids.insert(i.id.clone(), i);
            }
        }
        if a.cluster.is_some() || a.launch_id.is_some() || a.all {
            let live = ledger.instances(&InstanceFilter {
                owner: Some(ctx.owner().to_string()),
                cluster: a.cluster.as_deref().map(tags::sanitize_value),
                launch_id: a.launch_id.clone(),
                live_only: true,
                ..InstanceFilter::default()
            })?;
            k.group_clouds.extend(live.iter().map(|i| i.cloud));
        }
        Ok(k)
    }

    /// Clouds the ledger places the selection on (ids only while it thinks them live).
    fn clouds(&self) -> BTreeSet<Cloud> {
        let mut out = self.group_clouds.clone();
        out.extend(self.ids.values().filter(|i| i.state.is_live()).map(|i| i.cloud));
        out
    }

    /// Whether `cloud` should be asked about `id`: the ledger's cloud for an id it knows,
    /// every cloud for one it does not.
    fn ask(&self, id: &str, cloud: Cloud) -> bool {
        self.ids.get(id).is_none_or(|i| i.cloud == cloud)
    }
}

/// What one cloud answered: the named ids it has (any state), and the caller's live
/// instances of the cluster / launch / everything.
#[derive(Debug, Default)]
struct Found {
    by_id: Vec<Instance>,
    asked: Vec<String>,
    group: Vec<Instance>,
}

async fn select_on(a: &DownArgs, known: &Known, cloud: Cloud, l: &Launcher) -> anyhow::Result<Found> {
    let mut f = Found::default();
    let ids: Vec<String> = a
        .ids
        .iter()
        .filter(|id| known.ask(id, cloud))
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if !ids.is_empty() {
        let req = ListRequest::new().ids(ids.iter().cloned());
        f.by_id = l.list(&req).await?.into_iter().filter(|i| req.matches(i)).collect();
        f.asked = ids;
    }
    if a.all || a.cluster.is_some() || a.launch_id.is_some() {
        let mut req = l.mine().live();
        if let Some(c) = &a.cluster {
            req = req.tag(tags::CLUSTER, tags::sanitize_value(c));
        }
        if let Some(id) = &a.launch_id {
            req = req.tag(tags::LAUNCH, tags::sanitize_value(id));
        }
        // The answer must match what was asked, tags included: filters are not trusted.
        f.group = l.list(&req).await?.into_iter().filter(|i| req.matches(i)).collect();
    }
    Ok(f)
}

/// What the arguments select, sorted into what there is to do.
#[derive(Debug, Default)]
struct Selection {
    live: Vec<Instance>,
    /// Ids that are already terminated (or that no cloud has any more), with the cloud
    /// when one is known.
    gone: Vec<(Option<Cloud>, String)>,
    /// Ids neither any cloud nor the ledger has ever heard of.
    never_seen: Vec<String>,
    /// Named ids no cloud listed: sent to their clouds' terminate, which checks ownership
    /// on the resource itself ("already gone" only on that word).
    unlisted: Vec<String>,
    /// Unlisted ids that their cloud found to be the caller's and terminated.
    probed_terminated: Vec<(Option<Cloud>, TerminateResult)>,
}

fn sort(
    ctx: &Context,
    a: &DownArgs,
    known: &Known,
    found: Vec<(Cloud, Found)>,
    failures: &[Failure],
) -> anyhow::Result<Selection> {
    let me = tags::sanitize_value(ctx.owner());
    let mut sel = Selection::default();
    let mut taken: BTreeSet<(Cloud, String)> = BTreeSet::new();
    let mut refused: Vec<String> = Vec::new();
    let mut unresolved: Vec<String> = Vec::new();
    let failed: BTreeSet<Cloud> = failures.iter().map(|(c, _)| *c).collect();

    let ids: BTreeSet<&String> = a.ids.iter().collect();
    for id in ids {
        let hits: Vec<&Instance> = found
            .iter()
            .flat_map(|(_, f)| f.by_id.iter())
            .filter(|i| &i.id == id)
            .collect();
        let live: Vec<&Instance> = hits.iter().copied().filter(|i| i.state.is_live()).collect();
        if !live.is_empty() {
            for i in live {
                if i.tag(tags::OWNER) == Some(me.as_str()) {
                    if taken.insert((i.cloud, i.id.clone())) {
                        sel.live.push(i.clone());
                    }
                } else {
                    refused.push(format!("{} on {}", clouds::whose(i), i.cloud));
                }
            }
        } else if let Some(i) = hits.first() {
            sel.gone.push((Some(i.cloud), id.clone()));
        } else if failed.iter().any(|c| known.ask(id, *c)) {
            // A cloud that could have it did not answer: not "gone" on its word.
            unresolved.push(id.clone());
        } else {
            // No cloud lists it as herd's: it may be gone, a typo, or an instance herd did
            // not launch (listing only shows herd's). Its cloud's terminate decides, on the
            // instance itself: it refuses what is not the caller's and calls the rest gone.
            sel.unlisted.push(id.clone());
        }
    }
    if !refused.is_empty() {
        return Err(Error::new(
            ErrorKind::PermissionDenied,
            format!(
                "refusing to terminate what is not yours ({}): {}; nothing was terminated",
                ctx.owner(),
                refused.join(", ")
            ),
        )
        .with_hint("herd only stops instances tagged herd-owner = you; leave these ids out (their owner can stop them)")
        .into());
    }
    for (cloud, f) in found {
        let group = clouds::keep_mine(ctx, cloud, f.group);
        for i in group {
            if taken.insert((i.cloud, i.id.clone())) {
                sel.live.push(i);
            }
        }
    }
    if !unresolved.is_empty() {
        ctx.printer.warn(format!(
            "not sure whether {} still run: a cloud that may have them did not answer (see below)",
            unresolved.join(", ")
        ));
    }
    sel.live.sort_by(|x, y| x.id.cmp(&y.id));
    Ok(sel)
}

/// Sends ids that no cloud listed to the terminate of every cloud that may have them (the
/// ledger's cloud for an id it knows). Backends check the owner tag on the instance
/// itself, so a foreign or untagged one is refused (PermissionDenied, naming whose it is)
/// instead of being reported "already gone" while it runs. An id no cloud has at all comes
/// back as gone with no cloud.
async fn probe_unlisted(
    known: &Known,
    launchers: &[(Cloud, &Launcher)],
    failures: &[Failure],
    ids: &[String],
) -> anyhow::Result<Vec<(Option<Cloud>, TerminateResult)>> {
    let mut out = Vec::new();
    for id in ids {
        let mut terminated = None;
        for (cloud, l) in launchers {
            if !known.ask(id, *cloud) || failures.iter().any(|(c, _)| c == cloud) {
                continue;
            }
            let r = l.terminate(std::slice::from_ref(id)).await?;
            if let Some(r) = r.into_iter().find(|r| r.outcome == TerminateOutcome::Terminated) {
                terminated = Some((Some(*cloud), r));
                break;
            }
        }
        out.push(terminated.unwrap_or_else(|| (None, TerminateResult::new(id.clone(), TerminateOutcome::AlreadyGone))));
    }
    Ok(out)
}

/// What is about to be terminated, on stderr, before asking.
fn preview(ctx: &Context, live: &[Instance], hourly: Money) {
    let t = format::instance_table(live, Utc::now());
    ctx.printer.table_err(&t);
    ctx.printer
        .note(format!("{} instance(s), {}/h in all", live.len(), hourly));
}
