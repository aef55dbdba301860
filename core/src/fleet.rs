//! Mixed fleets: several instance types and regions of one cloud in one launch, e.g.
//! 2,000 VMs, half ARM and half Intel, half east and half west. A fleet is one launch for
//! everything herd promises: one cluster, one launch id (the `herd-launch` tag on every
//! instance of every part, so `herd down --launch` and the Ctrl-C clean-up find them
//! all), and **one** budget reservation, the sum of the parts' worst cases, through
//! [`Journal::reserve`](crate::Journal::reserve) once. Its parts are ordinary launches
//! (batching, retries, roll-back, idempotency) under their own launch ids derived from
//! the fleet's (`<fleet>-p0`, `<fleet>-p1`, ...), sent concurrently, so each region's
//! rate limits pace only its own parts.
//!
//! When a part fails the rule is all or nothing ([`OnPartFailure::AllOrNothing`], the
//! default): the other parts send no further calls, everything the fleet started is
//! terminated, and the error names the failed part. [`OnPartFailure::KeepPartial`] keeps
//! the parts that started and ends only what the failed ones left.

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::{Error, ErrorKind, Operation, Result};
use crate::journal::LaunchIntent;
use crate::launcher::{LaunchPlan, LaunchReport, Launcher};
use crate::money::Money;
use crate::request::LaunchSpec;
use crate::tags;
use crate::types::{Instance, LaunchId};

/// Most parts in one fleet: a part is a type in a region, and a hundred of them is
/// already a matrix for `herd sweep`, not a fleet. Keeps part ids two digits long.
pub const MAX_PARTS: usize = 100;

/// Longest fleet launch id: room is kept for the part suffix (`-p99`), the Launcher's
/// batch suffix (`-b9999`) and its on-demand fallback suffix (`-od`) within the 64
/// characters a launch id may have, so no two parts' batches can ever share an id.
pub const MAX_FLEET_ID_LEN: usize = 48;

/// After a failure, how often and how far apart the fleet's launch tag is listed for
/// instances no answer named (a launch call whose answer was lost): until a look finds
/// nothing new, at most this many looks.
const SWEEP_LOOKS: u32 = 3;
const SWEEP_EVERY: Duration = Duration::from_secs(2);

/// One part of a fleet: how many of one type in one region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FleetPart {
    pub instance_type: String,
    pub region: String,
    pub count: u32,
}

impl FleetPart {
    pub fn new(instance_type: impl Into<String>, region: impl Into<String>, count: u32) -> Self {
        FleetPart {
            instance_type: instance_type.into(),
            region: region.into(),
            count,
        }
    }

    /// `m7g.large in us-east-1`, for messages.
    pub fn describe(&self) -> String {
        format!("{} × {} in {}", self.count, self.instance_type, self.region)
    }
}

/// What to do when one part of a fleet fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnPartFailure {
    /// Stop the other parts and terminate everything the fleet started.
    #[default]
    AllOrNothing,
    /// Keep the parts that started; end only what the failed parts left.
    KeepPartial,
}

/// Splits `total` instances over every type in every region (types outer, regions
/// inner: `a,b` × `east,west` is a/east, a/west, b/east, b/west), as evenly as whole
/// instances allow: each part gets `total / parts`, and the remainder goes one each to
/// the first parts. Refused when a part would get none.
pub fn split_even(types: &[String], regions: &[String], total: u32) -> Result<Vec<FleetPart>> {
    let pairs: Vec<(&String, &String)> = types.iter().flat_map(|t| regions.iter().map(move |r| (t, r))).collect();
    let weights: Vec<u32> = vec![1; pairs.len()];
    let counts = split_weighted(&weights, total)?;
    Ok(pairs
        .into_iter()
        .zip(counts)
        .map(|((t, r), n)| FleetPart::new(t.clone(), r.clone(), n))
        .collect())
}

/// Splits `total` by whole-number weights: part `i` gets `floor(total × wᵢ / Σw)`, and
/// what rounding leaves goes one each to the first parts (in order, whatever their
/// weight). Refused when a weight is zero or a part would get no instance.
pub fn split_weighted(weights: &[u32], total: u32) -> Result<Vec<u32>> {
    if weights.is_empty() {
        return Err(Error::invalid_spec("a fleet needs at least one part"));
    }
    if weights.contains(&0) {
        return Err(Error::invalid_spec("a fleet part has weight 0")
            .with_hint("give every part a weight of 1 or more, or leave it out"));
    }
    let sum: u64 = weights.iter().map(|w| u64::from(*w)).sum();
    let mut counts: Vec<u32> = weights
        .iter()
        .map(|w| (u64::from(total) * u64::from(*w) / sum) as u32)
        .collect();
    let mut left = total - counts.iter().sum::<u32>();
    for c in counts.iter_mut() {
        if left == 0 {
            break;
        }
        *c += 1;
        left -= 1;
    }
    if let Some(i) = counts.iter().position(|c| *c == 0) {
        return Err(Error::invalid_spec(format!(
            "{total} instance(s) cannot be split over {} parts: part {} would get none",
            weights.len(),
            i + 1
        ))
        .with_hint(format!(
            "launch at least {} instances (-n), or list fewer types or regions",
            weights.len()
        )));
    }
    Ok(counts)
}

/// A fleet to launch: the parts, and everything they share (market, deadline, idle
/// timeout, cluster, tags, setup, command, image, the launch id) in `template`, whose
/// own type, region and count are ignored.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct FleetSpec {
    pub template: LaunchSpec,
    pub parts: Vec<FleetPart>,
    pub on_failure: OnPartFailure,
}

impl FleetSpec {
    pub fn new(template: LaunchSpec, parts: Vec<FleetPart>) -> Self {
        FleetSpec {
            template,
            parts,
            on_failure: OnPartFailure::AllOrNothing,
        }
    }
    pub fn on_failure(mut self, rule: OnPartFailure) -> Self {
        self.on_failure = rule;
        self
    }
    pub fn count(&self) -> u32 {
        self.parts.iter().map(|p| p.count).sum()
    }
}

/// What a fleet would do and cost: each part's plan, and the fleet's total against the
/// budgets. `herd launch --dry-run` prints it.
#[derive(Debug, Serialize)]
#[non_exhaustive]
pub struct FleetPlan {
    pub launch_id: LaunchId,
    pub cluster: String,
    pub on_failure: OnPartFailure,
    /// One per part, in order; each request carries the fleet's cluster and launch tags
    /// and its own launch id (`<fleet>-p<N>`).
    pub parts: Vec<LaunchPlan>,
    pub count: u32,
    /// The parts' worst cases summed: what the fleet reserves, once.
    pub worst_case: Money,
    /// Every instance at its quoted price, per hour.
    pub hourly: Money,
    pub committed_today: Money,
    /// Why the budget would refuse the fleet, if it would.
    #[serde(serialize_with = "ser_err")]
    pub budget: Option<Error>,
    pub warnings: Vec<String>,
}

fn ser_err<S: serde::Serializer>(e: &Option<Error>, s: S) -> std::result::Result<S::Ok, S::Error> {
    match e {
        Some(e) => s.serialize_some(&e.to_string()),
        None => s.serialize_none(),
    }
}

/// What one part did.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct PartReport {
    pub part: FleetPart,
    pub launch_id: LaunchId,
    /// Instances running from this part (none if it failed or was stopped).
    pub instances: usize,
    pub calls: u64,
    pub throttled: u64,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    /// Why the part failed (`--partial` only; all or nothing returns the error instead).
    pub error: Option<String>,
}

/// What a fleet launch did.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct FleetReport {
    pub launch_id: LaunchId,
    pub cluster: String,
    pub parts: Vec<PartReport>,
    pub instances: Vec<Instance>,
    pub worst_case: Money,
    pub calls: u64,
    pub throttled: u64,
}

impl FleetReport {
    /// Whether every part started (always, unless [`OnPartFailure::KeepPartial`]).
    pub fn complete(&self) -> bool {
        self.parts.iter().all(|p| p.error.is_none())
    }
}

/// Set once a part of an all-or-nothing fleet failed: the other parts then send no
/// further launch call (retries included) and roll back what they started.
#[derive(Debug, Default)]
pub(crate) struct Stop(OnceLock<String>);

/// Context key marking an error as "stopped because another part failed".
const STOPPED: &str = "fleet_stopped";

impl Stop {
    fn set(&self, why: String) {
        let _ = self.0.set(why);
    }
    /// The error a stopped part's launch call returns instead of being sent.
    pub(crate) fn error(&self) -> Option<Error> {
        self.0
            .get()
            .map(|why| Error::new(ErrorKind::Conflict, format!("stopped: {why}")).with_context(STOPPED, "yes"))
    }
}

impl Launcher {
    /// Validates, prices and checks the budget for every part and for the fleet as a
    /// whole, without launching anything.
    pub async fn plan_fleet(&self, spec: &FleetSpec) -> Result<FleetPlan> {
        self.plan_fleet_inner(spec).await.map_err(|e| {
            e.with_operation(Operation::Launch)
                .with_context("cloud", self.info().cloud.to_string())
        })
    }

    async fn plan_fleet_inner(&self, spec: &FleetSpec) -> Result<FleetPlan> {
        let g = self.guardrails();
        if spec.parts.is_empty() {
            return Err(Error::invalid_spec("a fleet needs at least one part"));
        }
        if spec.parts.len() > MAX_PARTS {
            return Err(Error::invalid_spec(format!(
                "a fleet of {} parts is more than the {MAX_PARTS} allowed",
                spec.parts.len()
            ))
            .with_hint("list fewer types and regions, or launch several fleets"));
        }
        let mut seen = BTreeSet::new();
        for p in &spec.parts {
            if !seen.insert((p.instance_type.as_str(), p.region.as_str())) {
                return Err(
                    Error::invalid_spec(format!("the fleet lists {} in {} twice", p.instance_type, p.region))
                        .with_hint("give each type and region one part, with the counts added up"),
                );
            }
        }
        let regions: BTreeSet<&str> = spec.parts.iter().map(|p| p.region.as_str()).collect();
        if let Some(z) = &spec.template.zone {
            if regions.len() > 1 {
                return Err(Error::invalid_spec(format!(
                    "zone `{z}` cannot hold a fleet over {} regions",
                    regions.len()
                ))
                .with_hint("drop --zone, or launch one region"));
            }
        }
        let count = spec.count();
        g.check_count(count)?;

        let now = self.clock().now();
        let launch_id = match &spec.template.launch_id {
            Some(id) => id.clone(),
            None => LaunchId::generate(now, self.fresh_u64()),
        };
        if launch_id.as_str().len() > MAX_FLEET_ID_LEN {
            return Err(Error::invalid_spec(format!(
                "launch id `{launch_id}` is {} characters; a fleet's may have at most {MAX_FLEET_ID_LEN}",
                launch_id.as_str().len()
            ))
            .with_hint("its parts' ids add a suffix to it; use a shorter --launch-id"));
        }
        let cluster = spec
            .template
            .cluster
            .clone()
            .unwrap_or_else(|| crate::launcher::default_cluster(&launch_id));
        let launch_tag = tags::sanitize_value(launch_id.as_str());

        let mut parts: Vec<LaunchPlan> = Vec::with_capacity(spec.parts.len());
        let mut warnings: Vec<String> = Vec::new();
        for (i, p) in spec.parts.iter().enumerate() {
            let mut s = spec.template.clone();
            s.instance_type = p.instance_type.clone();
            s.region = Some(p.region.clone());
            s.count = p.count;
            s.cluster = Some(cluster.clone());
            s.launch_id = Some(part_id(&launch_id, i));
            let mut plan = self.plan(&s).await.map_err(|e| {
                let e = e
                    .with_context("region", p.region.clone())
                    .with_context("fleet_part", format!("{} of {}", i + 1, spec.parts.len()));
                let mut out = Error::new(e.kind(), format!("part {} ({}): {}", i + 1, p.describe(), e.message()))
                    .with_suggestions(e.suggestions().to_vec())
                    .with_context("region", p.region.clone())
                    .with_context("instance_type", p.instance_type.clone());
                if let Some(h) = e.hint() {
                    out = out.with_hint(h.to_string());
                }
                // The message carries the part's own; its context (request ids) stays.
                for (k, v) in e.context() {
                    let k = if *k == "launch_id" { "part_launch_id" } else { k };
                    out = out.with_context(k, v.clone());
                }
                out
            })?;
            // Every part carries the fleet's launch tag, so whatever lists by launch
            // (`herd down --launch`, the Ctrl-C clean-up, the ledger) finds the whole
            // fleet; the part's own id stays its idempotency key.
            plan.request.tags.insert(tags::LAUNCH.into(), launch_tag.clone());
            // One deadline for the whole fleet: the first part's, to the second.
            if let Some(first) = parts.first() {
                plan.request.deadline = first.request.deadline;
                if let Some(d) = first.request.tags.get(tags::DEADLINE) {
                    plan.request.tags.insert(tags::DEADLINE.into(), d.clone());
                }
            }
            // The fleet's own check below decides; a part's share is not a launch.
            plan.budget = None;
            for w in std::mem::take(&mut plan.warnings) {
                let w = format!("part {} ({} in {}): {w}", i + 1, p.instance_type, p.region);
                if !warnings.contains(&w) {
                    warnings.push(w);
                }
            }
            parts.push(plan);
        }
        let worst_case: Money = parts.iter().map(|p| p.worst_case).sum();
        let hourly: Money = parts.iter().map(|p| p.quote.hourly.times(p.request.count.into())).sum();
        let committed_today = parts.first().map(|p| p.committed_today).unwrap_or(Money::ZERO);
        let budget = g.check_budget(worst_case, committed_today).err();
        Ok(FleetPlan {
            launch_id,
            cluster,
            on_failure: spec.on_failure,
            parts,
            count,
            worst_case,
            hourly,
            committed_today,
            budget,
            warnings,
        })
    }

    /// Plans and launches a fleet (see [`Launcher::launch_fleet_planned`]).
    pub async fn launch_fleet(&self, spec: &FleetSpec) -> Result<FleetReport> {
        let plan = self.plan_fleet(spec).await?;
        self.launch_fleet_planned(plan).await
    }

    /// Reserves the fleet's whole worst case once, then launches every part at the same
    /// time. All or nothing: when a part fails, the others stop, everything the fleet
    /// started is terminated, and the error names the part. With
    /// [`OnPartFailure::KeepPartial`] the parts that started are kept and the report
    /// says which failed ([`FleetReport::complete`]).
    pub async fn launch_fleet_planned(&self, plan: FleetPlan) -> Result<FleetReport> {
        let wrap = |e: Error| {
            e.with_context("launch_id", plan.launch_id.to_string())
                .with_context("cloud", self.info().cloud.to_string())
                .with_operation(Operation::Launch)
        };
        if let Some(e) = plan.budget {
            return Err(wrap(e));
        }
        let info = self.info();
        let join = |f: &dyn Fn(&LaunchPlan) -> String| {
            let mut v: Vec<String> = Vec::new();
            for p in &plan.parts {
                let x = f(p);
                if !v.contains(&x) {
                    v.push(x);
                }
            }
            v.join(",")
        };
        let first = &plan.parts[0].request;
        let intent = LaunchIntent {
            launch_id: plan.launch_id.clone(),
            cloud: info.cloud,
            account: info.account.clone(),
            owner: self.guardrails().owner.clone(),
            cluster: plan.cluster.clone(),
            fingerprint: fleet_fingerprint(&plan.parts),
            instance_type: join(&|p| p.request.instance_type.clone()),
            region: join(&|p| p.request.region.clone()),
            count: plan.count,
            market: first.market,
            // The dearest part's price: a launch row has one price, and the budget
            // uses the reservation, not this.
            hourly_price: plan.parts.iter().map(|p| p.quote.hourly).max().unwrap_or(Money::ZERO),
            reservation: plan.worst_case,
            deadline: first.deadline,
            created_at: self.clock().now(),
        };
        // The fleet's one reservation: its parts reserve nothing of their own.
        self.journal()
            .reserve(&intent, self.guardrails().budget.per_day)
            .map_err(wrap)?;

        let stop = Stop::default();
        let all_or_nothing = plan.on_failure == OnPartFailure::AllOrNothing;
        let n = plan.parts.len();
        let specs: Vec<FleetPart> = plan
            .parts
            .iter()
            .map(|p| FleetPart::new(&p.request.instance_type, &p.request.region, p.request.count))
            .collect();
        let runs: Vec<Pin<Box<dyn Future<Output = PartRun> + Send + '_>>> = plan
            .parts
            .into_iter()
            .enumerate()
            .map(|(i, p)| {
                let stop = &stop;
                let part = specs[i].clone();
                let fut: Pin<Box<dyn Future<Output = PartRun> + Send + '_>> = Box::pin(async move {
                    let started_at = self.clock().now();
                    let launch_id = p.request.launch_id.clone();
                    let r = self.launch_part(p, stop).await;
                    if let Err(e) = &r {
                        if all_or_nothing && e.context_value(STOPPED).is_none() {
                            stop.set(format!("part {} of the fleet ({}) failed", i + 1, part.describe()));
                        }
                    }
                    PartRun {
                        part,
                        launch_id,
                        started_at,
                        finished_at: self.clock().now(),
                        result: r,
                    }
                });
                fut
            })
            .collect();
        let runs = join_all(runs).await;

        let mut reports = Vec::with_capacity(n);
        let mut instances = Vec::new();
        let mut failures: Vec<(usize, Error)> = Vec::new();
        let (mut calls, mut throttled) = (0, 0);
        for (i, run) in runs.into_iter().enumerate() {
            let (count, error, c, t) = match run.result {
                Ok(r) => {
                    let k = r.instances.len();
                    instances.extend(r.instances);
                    (k, None, r.calls, r.throttled)
                }
                Err(e) => {
                    let msg = e.to_string();
                    if e.context_value(STOPPED).is_none() {
                        failures.push((i, e));
                    }
                    (0, Some(msg), 0, 0)
                }
            };
            calls += c;
            throttled += t;
            reports.push(PartReport {
                part: run.part,
                launch_id: run.launch_id,
                instances: count,
                calls: c,
                throttled: t,
                started_at: run.started_at,
                finished_at: run.finished_at,
                error,
            });
        }
        if failures.is_empty() {
            return Ok(FleetReport {
                launch_id: plan.launch_id,
                cluster: plan.cluster,
                parts: reports,
                instances,
                worst_case: plan.worst_case,
                calls,
                throttled,
            });
        }

        let (first_i, first_e) = failures.remove(0);
        let part = &specs[first_i];
        if all_or_nothing {
            let known: Vec<String> = instances.iter().map(|i| i.id.clone()).collect();
            let swept = self.sweep_fleet(&plan.launch_id, &specs, &known, |_| true).await;
            let others = if failures.is_empty() {
                String::new()
            } else {
                format!(" ({} other part(s) failed too)", failures.len())
            };
            let _ = self
                .journal()
                .launch_failed(&plan.launch_id, &format!("part {} failed: {first_e}", first_i + 1));
            let note = match swept {
                Ok(k) => format!(
                    "all or nothing: the other parts were stopped and {k} instance(s) of fleet {} terminated; nothing of it is left running",
                    plan.launch_id
                ),
                Err(t) => format!(
                    "all or nothing, but the clean-up failed ({}); `herd down --launch {}` stops what is left",
                    t.message(),
                    plan.launch_id
                ),
            };
            let hint = match first_e.hint() {
                Some(h) if !h.is_empty() => format!("{h}; {note}"),
                _ => note,
            };
            let mut e = Error::new(
                first_e.kind(),
                format!(
                    "part {} of {n} ({}) failed{others}: {}",
                    first_i + 1,
                    part.describe(),
                    first_e.message()
                ),
            )
            .with_hint(hint)
            .with_context("region", part.region.clone())
            .with_context("instance_type", part.instance_type.clone())
            .with_context("fleet_part", format!("{} of {n}", first_i + 1));
            // The message carries the part's own; its context (request ids) stays.
            for (k, v) in first_e.context() {
                let k = if *k == "launch_id" { "part_launch_id" } else { k };
                e = e.with_context(k, v.clone());
            }
            return Err(wrap(e));
        }

        // Keep what started; end whatever the failed parts may have left behind (a lost
        // answer): the fleet's instances of a failed part's type and region.
        let mut failed: Vec<usize> = vec![first_i];
        failed.extend(failures.iter().map(|(i, _)| *i));
        let keep: BTreeSet<String> = instances.iter().map(|i| i.id.clone()).collect();
        let failed_parts: Vec<&FleetPart> = failed.iter().map(|i| &specs[*i]).collect();
        let swept = self
            .sweep_fleet(&plan.launch_id, &specs, &[], |i| {
                !keep.contains(&i.id)
                    && failed_parts
                        .iter()
                        .any(|p| p.region == i.region && p.instance_type == i.instance_type)
            })
            .await;
        if let Err(t) = swept {
            let r = &mut reports[first_i];
            r.error = Some(format!(
                "{}; what it may have started could not be checked ({}): `herd down --launch {}` finds it",
                r.error.take().unwrap_or_default(),
                t.message(),
                plan.launch_id
            ));
        }
        Ok(FleetReport {
            launch_id: plan.launch_id,
            cluster: plan.cluster,
            parts: reports,
            instances,
            worst_case: plan.worst_case,
            calls,
            throttled,
        })
    }

    /// Terminates `known` and every live instance of this owner under the fleet's launch
    /// tag that `pick` selects, both checked on the answer (a filter the cloud ignored
    /// must not make someone else's instance look like the fleet's). Looks again until a
    /// look finds nothing new, since an instance whose launch answer was lost can show
    /// up late. Returns how many it terminated.
    async fn sweep_fleet(
        &self,
        launch_id: &LaunchId,
        parts: &[FleetPart],
        known: &[String],
        pick: impl Fn(&Instance) -> bool,
    ) -> Result<usize> {
        let owner = tags::sanitize_value(&self.guardrails().owner);
        let tag = tags::sanitize_value(launch_id.as_str());
        let mut req = self.mine().tag(tags::LAUNCH, tag.clone()).live();
        let regions: BTreeSet<&str> = parts.iter().map(|p| p.region.as_str()).collect();
        for r in regions {
            req = req.region(r);
        }
        let mut ended: BTreeSet<String> = BTreeSet::new();
        let mut todo: Vec<String> = known.to_vec();
        for look in 0..SWEEP_LOOKS {
            let found = self.list(&req).await?;
            todo.extend(
                found
                    .into_iter()
                    .filter(|i| {
                        i.tag(tags::LAUNCH) == Some(tag.as_str())
                            && i.tag(tags::OWNER) == Some(owner.as_str())
                            && i.state.is_live()
                            && pick(i)
                    })
                    .map(|i| i.id),
            );
            todo.retain(|id| !ended.contains(id));
            todo.sort();
            todo.dedup();
            if todo.is_empty() && look > 0 {
                break;
            }
            if !todo.is_empty() {
                self.terminate(&todo).await?;
                ended.extend(todo.drain(..));
            }
            if look + 1 < SWEEP_LOOKS {
                self.clock().sleep(SWEEP_EVERY).await;
            }
        }
        Ok(ended.len())
    }
}

/// The launch id of part `i`: the fleet's with `-p<i>`.
pub fn part_id(fleet: &LaunchId, i: usize) -> LaunchId {
    // The fleet id is at most MAX_FLEET_ID_LEN long and `i` below MAX_PARTS (checked in
    // the plan), so this always fits; `new` checks it anyway.
    LaunchId::new(format!("{fleet}-p{i}")).unwrap_or_else(|_| fleet.batch(i))
}

/// What makes two fleets the same request: their parts' fingerprints, in order.
fn fleet_fingerprint(parts: &[LaunchPlan]) -> String {
    let all: Vec<String> = parts.iter().map(|p| p.request.fingerprint()).collect();
    let mut req = parts[0].request.clone();
    req.instance_type = format!("fleet:{}", all.join(","));
    req.region = String::new();
    req.count = 0;
    req.fingerprint()
}

struct PartRun {
    part: FleetPart,
    launch_id: LaunchId,
    started_at: DateTime<Utc>,
    finished_at: DateTime<Utc>,
    result: Result<LaunchReport>,
}

/// Polls every future in turn until all are done, so the parts run at the same time on
/// one task (core has no executor of its own and no `futures` dependency).
async fn join_all<T>(mut fs: Vec<Pin<Box<dyn Future<Output = T> + Send + '_>>>) -> Vec<T> {
    let mut out: Vec<Option<T>> = fs.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, o) in fs.iter_mut().zip(out.iter_mut()) {
            if o.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *o = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().map(|o| o.expect("every future finished")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn an_even_split_is_exact_and_the_remainder_goes_first() {
        let parts = split_even(&s(&["a", "b"]), &s(&["east", "west"]), 2000).unwrap();
        assert_eq!(
            parts,
            vec![
                FleetPart::new("a", "east", 500),
                FleetPart::new("a", "west", 500),
                FleetPart::new("b", "east", 500),
                FleetPart::new("b", "west", 500),
            ]
        );
        let counts: Vec<u32> = split_even(&s(&["a", "b"]), &s(&["east", "west"]), 2003)
            .unwrap()
            .iter()
            .map(|p| p.count)
            .collect();
        assert_eq!(counts, vec![501, 501, 501, 500]);
    }

    #[test]
    fn weights_split_in_proportion() {
        assert_eq!(split_weighted(&[3, 1], 2000).unwrap(), vec![1500, 500]);
        assert_eq!(split_weighted(&[1, 1, 1], 10).unwrap(), vec![4, 3, 3]);
        assert_eq!(split_weighted(&[2, 1], 1000).unwrap(), vec![667, 333]);
    }

    #[test]
    fn a_part_with_nothing_is_refused() {
        let e = split_even(&s(&["a", "b"]), &s(&["east", "west"]), 3).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidSpec);
        assert!(e.message().contains("part 4 would get none"), "{e}");
        assert!(e.hint().unwrap().contains("at least 4"), "{:?}", e.hint());
        assert!(split_weighted(&[1, 0], 10).is_err());
        assert!(split_weighted(&[], 10).is_err());
    }

    #[test]
    fn part_ids_leave_room_for_batches() {
        let fleet = LaunchId::new("x".repeat(MAX_FLEET_ID_LEN)).unwrap();
        let p = part_id(&fleet, MAX_PARTS - 1);
        assert!(p.as_str().ends_with("-p99"), "{p}");
        let b = p.batch(9999);
        assert!(b.as_str().ends_with("-p99-b9999"), "{b}");
        assert!(b.as_str().len() + "-od".len() <= 64);
    }
}
