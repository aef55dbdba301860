//! `herd ls`: your instances on every configured cloud, live from the clouds at once
//! (which also records them in the ledger); `--history` reads the ledger instead, ended
//! instances included. A cloud that fails is a warning beside the others' instances.

use chrono::Utc;
use herd_core::{tags, BillingRule, Cloud, Instance, InstanceState, Launcher, Money};
use herd_ledger::{InstanceFilter, StateChange};
use serde::Serialize;

use crate::args::LsArgs;
use crate::clouds;
use crate::context::Context;
use crate::format;

use super::chatty;

pub fn run(ctx: &Context, a: &LsArgs) -> anyhow::Result<()> {
    let state = a.state.as_deref().map(str::parse::<InstanceState>).transpose()?;
    let filtered = a.cluster.is_some() || a.launch_id.is_some() || a.region.is_some() || state.is_some();
    if a.history {
        return history(ctx, a, state, filtered);
    }
    let clouds = ctx.clouds(&a.cloud)?;
    let (launchers, mut failures) = clouds::launchers(ctx, &clouds);
    let launchers = with_region(launchers, a.region.as_deref())?;
    let (listed, failed) = ctx.block_on(clouds::each(&launchers, |cloud, l| list(ctx, a, state, cloud, l)))?;
    failures.extend(failed);
    let mut instances: Vec<Instance> = listed.into_iter().flat_map(|(_, v)| v).collect();
    instances.sort_by(|x, y| x.launched_at.cmp(&y.launched_at).then_with(|| x.id.cmp(&y.id)));

    clouds::warn(ctx, &failures);
    if a.json {
        ctx.printer.json(&instances)?;
    } else if instances.is_empty() {
        if failures.is_empty() {
            empty(ctx, filtered);
        }
    } else {
        ctx.printer.table(&format::instance_table(&instances, Utc::now()));
    }
    let probes = per_cluster(&launchers, &instances);
    if !probes.is_empty() {
        let warnings = ctx.block_on(chatty::check_each(ctx, &probes))?;
        chatty::print(ctx, &warnings);
    }
    match clouds::incomplete(&failures, "the list") {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Clusters `ls` asks for their output rate: one running instance stands for its
/// cluster (the projection multiplies by the cluster's size), on clouds that can run a
/// command; at most [`PROBED_CLUSTERS`], so `ls` stays quick on a big account.
fn per_cluster<'a>(
    launchers: &[(Cloud, &'a Launcher)],
    instances: &[Instance],
) -> Vec<(&'a Launcher, Instance, usize)> {
    let mut by: std::collections::BTreeMap<(Cloud, String), (Option<&Instance>, usize)> = Default::default();
    for i in instances.iter().filter(|i| i.state == InstanceState::Running) {
        let cluster = i.tag(tags::CLUSTER).unwrap_or("").to_string();
        let e = by.entry((i.cloud, cluster)).or_insert((None, 0));
        e.0.get_or_insert(i);
        e.1 += 1;
    }
    by.into_iter()
        .filter_map(|((cloud, _), (first, n))| {
            let l = launchers.iter().find(|(c, _)| *c == cloud)?.1;
            let first = first?.clone();
            l.capabilities().exec.then_some((l, first, n))
        })
        .take(PROBED_CLUSTERS)
        .collect()
}

const PROBED_CLUSTERS: usize = 20;

/// `--region R`: only the clouds that have such a region; none: the region is unknown,
/// with the configured cloud's suggestions.
fn with_region<'a>(
    launchers: Vec<(Cloud, &'a Launcher)>,
    region: Option<&str>,
) -> anyhow::Result<Vec<(Cloud, &'a Launcher)>> {
    let Some(r) = region else { return Ok(launchers) };
    let mut first_err = None;
    let mut kept = Vec::new();
    for (c, l) in launchers {
        match l.catalog().find_region(c, r) {
            Ok(_) => kept.push((c, l)),
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    match (kept.is_empty(), first_err) {
        (true, Some(e)) => Err(e.into()),
        _ => Ok(kept),
    }
}

async fn list(
    ctx: &Context,
    a: &LsArgs,
    state: Option<InstanceState>,
    cloud: Cloud,
    launcher: &Launcher,
) -> anyhow::Result<Vec<Instance>> {
    let mut req = launcher.mine();
    if let Some(c) = &a.cluster {
        req = req.tag(tags::CLUSTER, tags::sanitize_value(c));
    }
    if let Some(l) = &a.launch_id {
        req = req.tag(tags::LAUNCH, tags::sanitize_value(l));
    }
    if let Some(r) = &a.region {
        req = req.region(r);
    }
    req = match state {
        Some(s) => req.state(s),
        None if a.all_states => req,
        None => req.live(),
    };
    let found = launcher.list(&req).await?;
    // The answer, not the filter sent, says what is yours and what matches.
    Ok(clouds::keep_mine(ctx, cloud, found)
        .into_iter()
        .filter(|i| req.matches(i))
        .collect())
}

fn empty(ctx: &Context, filtered: bool) {
    if filtered {
        ctx.printer.note("no instances match");
    } else {
        ctx.printer.note("no instances; start one with `herd launch l1.small`");
    }
}

#[derive(Serialize)]
struct HistoryRow<'a> {
    #[serde(flatten)]
    instance: &'a Instance,
    /// What it cost (or has cost so far), at its frozen price.
    accrued: Money,
    #[serde(skip_serializing_if = "Option::is_none")]
    state_changes: Option<Vec<StateChange>>,
}

fn history(ctx: &Context, a: &LsArgs, state: Option<InstanceState>, filtered: bool) -> anyhow::Result<()> {
    let ledger = ctx.ledger()?;
    let filter = InstanceFilter {
        owner: Some(ctx.owner().to_string()),
        cluster: a.cluster.clone(),
        launch_id: a.launch_id.clone(),
        ..InstanceFilter::default()
    };
    let mut instances = ledger.instances(&filter)?;
    let clouds: Vec<Cloud> = a.cloud.iter().map(|c| c.parse::<Cloud>()).collect::<Result<_, _>>()?;
    instances.retain(|i| {
        a.region.as_ref().is_none_or(|r| &i.region == r)
            && state.is_none_or(|s| i.state == s)
            && (clouds.is_empty() || clouds.contains(&i.cloud))
    });
    // Oldest first, like the live view.
    instances.sort_by(|x, y| x.launched_at.cmp(&y.launched_at).then_with(|| x.id.cmp(&y.id)));
    let now = Utc::now();
    let accrued = |i: &Instance| {
        let end = i.ended_at.unwrap_or(now).max(i.launched_at);
        BillingRule::for_cloud(i.cloud).accrued(i.hourly_price, i.launched_at, end, None, None)
    };
    let mut rows = Vec::with_capacity(instances.len());
    for i in &instances {
        rows.push(HistoryRow {
            instance: i,
            accrued: accrued(i),
            state_changes: if ctx.verbose {
                Some(ledger.state_changes(&i.id)?)
            } else {
                None
            },
        });
    }
    if a.json {
        return ctx.printer.json(&rows);
    }
    if rows.is_empty() {
        empty(ctx, filtered);
        return Ok(());
    }
    let mut t = crate::printer::Table::new(&[
        "ID", "CLOUD", "TYPE", "ZONE", "STATE", "PURCHASE", ">$/H", "LAUNCHED", ">RAN", ">COST", "CLUSTER",
    ]);
    for r in &rows {
        let i = r.instance;
        t.row(vec![
            i.id.clone().into(),
            i.cloud.to_string().into(),
            i.instance_type.clone().into(),
            format::place(i).into(),
            format::state(i),
            i.purchase.to_string().into(),
            i.hourly_price.to_string().into(),
            format::instant(i.launched_at).into(),
            format::age(i, now).into(),
            r.accrued.to_string().into(),
            format::cluster(i).into(),
        ]);
    }
    let total: Money = rows.iter().map(|r| r.accrued).sum();
    t.footer(vec![
        format!("{} instance(s)", rows.len()).into(),
        "".into(),
        "".into(),
        "".into(),
        "".into(),
        "".into(),
        "".into(),
        "".into(),
        "".into(),
        total.to_string().into(),
    ]);
    ctx.printer.table(&t);
    for r in rows.iter().filter(|r| r.state_changes.is_some()) {
        let changes = r.state_changes.as_deref().unwrap_or_default();
        ctx.printer.line(format!("\n{}:", r.instance.id));
        for c in changes {
            let from = c.from.map_or("(new)".to_string(), |f| f.to_string());
            let why = c.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default();
            ctx.printer
                .line(format!("  {}  {from} -> {}{why}", format::instant_secs(c.at), c.to));
        }
    }
    Ok(())
}
