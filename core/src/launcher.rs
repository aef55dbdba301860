//! The handle users of the library hold (after OpenDAL's `Operator`). It wraps any
//! [`Provider`] with, in this order: input validation and the capability check (before
//! any API call), pricing and the budget reservation, the journal entry, batching, the
//! one retry loop, and error context (cloud, operation, region, type, launch id).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::capabilities::{Capabilities, DeadlineEnforcement};
use crate::catalog::Catalog;
use crate::clock::{SharedClock, SystemClock};
use crate::error::{Error, ErrorKind, Operation, Result};
use crate::guardrails::{human, Guardrails};
use crate::journal::{Journal, LaunchIntent, NoJournal};
use crate::money::Money;
use crate::provider::{Provider, ProviderInfo};
use crate::request::*;
use crate::retry::{RetryPolicy, RetryStats};
use crate::rng::SeededRng;
use crate::tags;
use crate::types::{Instance, InstanceState, LaunchId, Market, PurchaseOption, Tags};

#[derive(Debug, Clone)]
pub struct Launcher {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    provider: Arc<dyn Provider>,
    clock: SharedClock,
    rng: SeededRng,
    retry: RetryPolicy,
    guard: Guardrails,
    journal: Arc<dyn Journal>,
    observer: Arc<dyn crate::retry::RetryObserver>,
    stats: RetryStats,
    launch_stats: RetryStats,
}

#[derive(Debug)]
pub struct LauncherBuilder {
    provider: Arc<dyn Provider>,
    clock: SharedClock,
    seed: u64,
    retry: RetryPolicy,
    guard: Guardrails,
    journal: Arc<dyn Journal>,
    observer: Arc<dyn crate::retry::RetryObserver>,
}

impl LauncherBuilder {
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }
    pub fn guardrails(mut self, guard: Guardrails) -> Self {
        self.guard = guard;
        self
    }
    pub fn journal(mut self, journal: Arc<dyn Journal>) -> Self {
        self.journal = journal;
        self
    }
    /// Who hears about long retry waits (the CLI prints them on stderr).
    pub fn observer(mut self, observer: Arc<dyn crate::retry::RetryObserver>) -> Self {
        self.observer = observer;
        self
    }
    pub fn build(self) -> Launcher {
        Launcher {
            inner: Arc::new(Inner {
                provider: self.provider,
                clock: self.clock,
                rng: SeededRng::new(self.seed),
                retry: self.retry,
                guard: self.guard,
                journal: self.journal,
                observer: self.observer,
                stats: RetryStats::default(),
                launch_stats: RetryStats::default(),
            }),
        }
    }
}

/// What a launch would do and cost; `herd launch --dry-run` prints it.
#[derive(Debug, Serialize)]
#[non_exhaustive]
pub struct LaunchPlan {
    pub request: LaunchRequest,
    pub cluster: String,
    /// The price of what was asked for (spot price for spot).
    pub quote: Quote,
    /// count x on-demand price x deadline: what is reserved against the budgets.
    pub worst_case: Money,
    pub committed_today: Money,
    /// Why the budget would refuse it, if it would.
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

/// What a launch did.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct LaunchReport {
    pub launch_id: LaunchId,
    pub cluster: String,
    pub instances: Vec<Instance>,
    pub worst_case: Money,
    /// Launch calls sent (successful, throttled and failed).
    pub calls: u64,
    pub throttled: u64,
}

impl Launcher {
    pub fn builder(provider: Arc<dyn Provider>) -> LauncherBuilder {
        LauncherBuilder {
            provider,
            clock: Arc::new(SystemClock),
            seed: 0x5eed,
            retry: RetryPolicy::default(),
            guard: Guardrails::default(),
            journal: Arc::new(NoJournal),
            observer: Arc::new(crate::retry::SilentObserver),
        }
    }

    pub fn new(provider: Arc<dyn Provider>) -> Self {
        Self::builder(provider).build()
    }

    pub fn provider(&self) -> &Arc<dyn Provider> {
        &self.inner.provider
    }
    pub fn info(&self) -> ProviderInfo {
        self.inner.provider.info()
    }
    pub fn capabilities(&self) -> &Capabilities {
        self.inner.provider.capabilities()
    }
    pub fn catalog(&self) -> &Catalog {
        self.inner.provider.catalog()
    }
    pub fn clock(&self) -> &SharedClock {
        &self.inner.clock
    }
    pub fn guardrails(&self) -> &Guardrails {
        &self.inner.guard
    }
    pub fn journal(&self) -> &Arc<dyn Journal> {
        &self.inner.journal
    }
    /// Counters of all calls (calls, throttled, transient, retries).
    pub fn stats(&self) -> &RetryStats {
        &self.inner.stats
    }
    /// Counters of launch calls only.
    pub fn launch_stats(&self) -> &RetryStats {
        &self.inner.launch_stats
    }
    /// A random word from the launcher's seeded generator (fresh launch ids).
    pub(crate) fn fresh_u64(&self) -> u64 {
        self.inner.rng.next_u64()
    }

    fn ctx(&self, e: Error, op: Operation) -> Error {
        e.with_operation(op)
            .with_context("cloud", self.info().cloud.to_string())
    }

    async fn retried<T, F, Fut>(&self, stats: &RetryStats, op: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let i = &self.inner;
        i.retry
            .run_observed(i.clock.as_ref(), &i.rng, stats, i.observer.as_ref(), op)
            .await
    }

    /// Validates, prices and checks the budget, without launching anything.
    pub async fn plan(&self, spec: &LaunchSpec) -> Result<LaunchPlan> {
        self.plan_inner(spec).await.map_err(|e| {
            let e = e.with_context("instance_type", spec.instance_type.clone());
            self.ctx(e, Operation::Launch)
        })
    }

    async fn plan_inner(&self, spec: &LaunchSpec) -> Result<LaunchPlan> {
        let g = &self.inner.guard;
        let caps = self.capabilities();
        let info = self.info();
        let cloud = info.cloud;
        let mut warnings = Vec::new();

        g.check_count(spec.count)?;
        let deadline = g.resolve_deadline(spec.deadline)?;
        let now = self.inner.clock.now();
        let deadline_at = g.deadline_at(now, deadline)?;
        let keepalive = g.resolve_keepalive(spec.keepalive);
        for (k, v) in &spec.tags {
            tags::validate_user_tag(k, v)?;
        }
        for (k, v) in &spec.herd_tags {
            tags::validate_herd_tag(k, v)?;
        }
        if spec.tags.len() > tags::MAX_USER_TAGS {
            return Err(Error::invalid_spec(format!(
                "{} tags is more than the {} allowed",
                spec.tags.len(),
                tags::MAX_USER_TAGS
            )));
        }
        if let Some(c) = &spec.cluster {
            if tags::sanitize_value(c) != *c || c.is_empty() {
                return Err(
                    Error::invalid_spec(format!("cluster name `{c}` is not valid")).with_hint(format!(
                        "use lowercase a-z, 0-9, `_` and `-`, e.g. `{}`",
                        tags::suggest_value(c, "my-cluster")
                    )),
                );
            }
        }

        // Capabilities: refuse before any API call.
        if caps.deadline == DeadlineEnforcement::None {
            return Err(Error::unsupported(format!(
                "{cloud} cannot enforce a deadline, and herd never launches without one"
            )));
        }
        if spec.market.wants_spot() && !caps.spot {
            return Err(
                Error::unsupported(format!("{cloud} does not offer spot instances here"))
                    .with_hint("launch on-demand (drop --spot)"),
            );
        }
        if spec.keepalive.is_some_and(|k| !k.is_zero()) && !caps.keepalive {
            return Err(
                Error::unsupported(format!("{cloud} cannot enforce an idle timeout")).with_hint("drop --keepalive")
            );
        }
        if keepalive.is_some() && !caps.keepalive {
            warnings.push(format!(
                "{cloud} cannot enforce the idle timeout; only the deadline applies"
            ));
        }

        let catalog = self.catalog();
        let itype = catalog.find_type(cloud, &spec.instance_type)?;
        if itype.gpu.is_some() && !caps.gpu {
            return Err(Error::unsupported(format!(
                "{} has GPUs, which this {cloud} backend cannot launch",
                itype.name
            )));
        }
        let region = spec.region.clone().unwrap_or_else(|| info.default_region.clone());
        if !caps.regions.is_empty() && !caps.regions.contains(&region) {
            catalog.find_region(cloud, &region)?;
            return Err(Error::invalid_spec(format!(
                "region `{region}` is not enabled for {cloud}"
            )));
        }
        let reg = catalog.find_region(cloud, &region)?;
        if let Some(z) = &spec.zone {
            if !reg.zones.is_empty() && !reg.zones.contains(z) {
                return Err(Error::invalid_spec(format!("unknown zone `{z}` in {region}"))
                    .with_suggestions(crate::suggest::did_you_mean(z, reg.zones.iter().map(String::as_str), 3))
                    .with_hint(format!("zones in {region}: {}", reg.zones.join(", "))));
            }
        }

        // Quotes come from the catalog (no API call); errors keep the launch's context.
        let provider = &self.inner.provider;
        let od = provider
            .cost(&QuoteRequest::new(
                &spec.instance_type,
                &region,
                PurchaseOption::OnDemand,
            ))
            .await?;
        let quote = if spec.market.wants_spot() {
            match provider
                .cost(&QuoteRequest::new(&spec.instance_type, &region, PurchaseOption::Spot))
                .await
            {
                Ok(q) => q,
                Err(e) if spec.market == Market::SpotOrOnDemand => {
                    warnings.push(format!("no spot price: {}; will launch on-demand", e.message()));
                    od.clone()
                }
                Err(e) => return Err(e),
            }
        } else {
            od.clone()
        };
        // Worst case at the on-demand price even for spot, to cover the fallback.
        let worst_case = od.for_duration(spec.count, deadline);
        // A preview: the binding check is `Journal::reserve` in `launch_planned`.
        let committed_today = self
            .inner
            .journal
            .committed_since(&g.owner, crate::journal::day_start(now))?;
        let budget = g.check_budget(worst_case, committed_today).err();

        let launch_id = match &spec.launch_id {
            Some(id) => id.clone(),
            None => LaunchId::generate(now, self.inner.rng.next_u64()),
        };
        let cluster = spec.cluster.clone().unwrap_or_else(|| default_cluster(&launch_id));
        let mut user_tags = spec.tags.clone();
        user_tags.extend(spec.herd_tags.clone());
        let tag_set = tags::herd_tags(
            &user_tags,
            &g.owner,
            &cluster,
            launch_id.as_str(),
            deadline_at,
            quote.hourly,
            keepalive.map(|k| k.as_secs()),
        );
        // The cloud's own limits, on everything that will be sent (herd's tags included).
        tags::check_limits(&caps.tag_limits, &tag_set)?;
        let mut req = LaunchRequest::new(
            launch_id,
            &spec.instance_type,
            region,
            spec.count,
            deadline_at,
            od.hourly,
        );
        req.zone = spec.zone.clone();
        req.market = spec.market;
        req.keepalive = keepalive;
        req.tags = tag_set;
        req.setup = spec.setup.clone();
        req.command = spec.command.clone();
        req.image = spec.image.clone();
        req.spot_price = spec
            .market
            .wants_spot()
            .then_some(quote.hourly)
            .filter(|_| quote.purchase == PurchaseOption::Spot);
        Ok(LaunchPlan {
            request: req,
            cluster,
            quote,
            worst_case,
            committed_today,
            budget,
            warnings,
        })
    }

    /// Launches exactly `spec.count` instances or none: on a permanent failure part-way,
    /// what was started is terminated again before the error is returned.
    pub async fn launch(&self, spec: LaunchSpec) -> Result<LaunchReport> {
        let plan = self.plan(&spec).await?;
        self.launch_planned(plan).await
    }

    /// Launches a plan from [`Launcher::plan`] (refused if over budget).
    pub async fn launch_planned(&self, plan: LaunchPlan) -> Result<LaunchReport> {
        self.launch_plan(plan, true, None).await
    }

    /// One part of a fleet ([`crate::fleet`]): the fleet reserved its whole worst case
    /// once, so the part reserves nothing; once `stop` is set (another part failed) it
    /// sends no further launch call and rolls back what it started.
    pub(crate) async fn launch_part(&self, plan: LaunchPlan, stop: &crate::fleet::Stop) -> Result<LaunchReport> {
        self.launch_plan(plan, false, Some(stop)).await
    }

    async fn launch_plan(
        &self,
        plan: LaunchPlan,
        reserve: bool,
        stop: Option<&crate::fleet::Stop>,
    ) -> Result<LaunchReport> {
        let req = plan.request;
        let wrap = |e: Error| {
            self.ctx(
                e.with_context("region", req.region.clone())
                    .with_context("instance_type", req.instance_type.clone())
                    .with_context("launch_id", req.launch_id.to_string()),
                Operation::Launch,
            )
        };
        if let Some(e) = plan.budget {
            return Err(wrap(e));
        }
        let info = self.info();
        let intent = LaunchIntent {
            launch_id: req.launch_id.clone(),
            cloud: info.cloud,
            account: info.account.clone(),
            owner: self.inner.guard.owner.clone(),
            cluster: plan.cluster.clone(),
            fingerprint: req.fingerprint(),
            instance_type: req.instance_type.clone(),
            region: req.region.clone(),
            count: req.count,
            market: req.market,
            hourly_price: plan.quote.hourly,
            reservation: plan.worst_case,
            deadline: req.deadline,
            created_at: self.inner.clock.now(),
        };
        // Check and reserve in one step: the plan's check may be stale by now, since
        // other launches (other processes too) reserve from the same day's budget.
        if reserve {
            self.inner
                .journal
                .reserve(&intent, self.inner.guard.budget.per_day)
                .map_err(wrap)?;
        }

        // This launch's own counters: the launcher's totals are shared by concurrent launches.
        let mine = RetryStats::default();
        let caps = self.capabilities();
        let batch = caps.max_launch_batch.max(1);
        let batches = req.count.div_ceil(batch) as usize;
        let mut launched: Vec<Instance> = Vec::with_capacity(req.count as usize);
        for b in 0..batches {
            let mut sub = req.clone();
            sub.count = batch.min(req.count - b as u32 * batch);
            if batches > 1 {
                sub.launch_id = req.launch_id.batch(b);
            }
            match self.launch_batch(&sub, caps, &mine, stop).await {
                Ok(got) => {
                    // A wrong count (a retry that found 43 of 50 by the idempotency key, or
                    // an answer with extra instances) is recorded like any other, so the
                    // ledger knows what ran and bills it, and then rolled back: a launch
                    // is all of its instances or none, never a part left running.
                    // Another owner's instance in the answer is neither recorded as ours
                    // nor terminated (see `roll_back`), and makes the answer wrong.
                    let asked = sub.count as usize;
                    let found = got.len();
                    let (ours, foreign): (Vec<Instance>, Vec<Instance>) =
                        got.into_iter().partition(|i| self.is_ours(i));
                    let recorded = self.inner.journal.instances_seen(&ours);
                    launched.extend(ours);
                    let failed = match recorded {
                        // Instances the ledger could not record are not left running.
                        Err(e) => Some(e),
                        Ok(()) if found != asked || !foreign.is_empty() => Some(Error::unexpected(format!(
                            "asked the cloud for {asked} instances, it returned {found}{}",
                            if foreign.is_empty() {
                                String::new()
                            } else {
                                format!(", {} of them another owner's", foreign.len())
                            }
                        ))),
                        Ok(()) => None,
                    };
                    launched.extend(foreign);
                    if let Some(e) = failed {
                        self.inner.launch_stats.absorb(&mine);
                        let e = self.roll_back(&req.launch_id, &launched, e).await;
                        return Err(wrap(e));
                    }
                }
                Err(e) => {
                    self.inner.launch_stats.absorb(&mine);
                    let e = self.roll_back(&req.launch_id, &launched, e).await;
                    return Err(wrap(e));
                }
            }
        }
        self.inner.launch_stats.absorb(&mine);
        let (calls, throttled, _, _) = mine.snapshot();
        Ok(LaunchReport {
            launch_id: req.launch_id,
            cluster: plan.cluster,
            instances: launched,
            worst_case: plan.worst_case,
            calls,
            throttled,
        })
    }

    async fn launch_batch(
        &self,
        sub: &LaunchRequest,
        caps: &Capabilities,
        stats: &RetryStats,
        stop: Option<&crate::fleet::Stop>,
    ) -> Result<Vec<Instance>> {
        let provider = &self.inner.provider;
        // A stopped fleet part sends nothing more, retries included.
        let send = |r: &LaunchRequest| {
            let stopped = stop.and_then(crate::fleet::Stop::error);
            let r = r.clone();
            async move {
                match stopped {
                    Some(e) => Err(e),
                    None => provider.launch(&r).await,
                }
            }
        };
        let first = self.retried(stats, || send(sub)).await;
        let got = match first {
            Err(e)
                if sub.market == Market::SpotOrOnDemand
                    && !caps.spot_fallback
                    && e.kind() == ErrorKind::InsufficientCapacity =>
            {
                // The backend cannot fall back itself: ask again, on-demand, under its own key.
                let mut od = sub.clone();
                od.market = Market::OnDemand;
                od.spot_price = None;
                od.launch_id = LaunchId::new(format!(
                    "{}-od",
                    &sub.launch_id.as_str()[..sub.launch_id.as_str().len().min(61)]
                ))?;
                od.tags
                    .insert(tags::PRICE.into(), sub.on_demand_price.to_micros().to_string());
                self.retried(stats, || send(&od)).await?
            }
            other => other?,
        };
        // The caller checks the count, after recording what came back.
        Ok(got)
    }

    /// Terminates what a failed launch started; the original error is returned, with a
    /// note if the clean-up itself failed (then `herd reap` finds them by tag). An
    /// instance in the answer whose `herd-owner` tag names someone else is never
    /// terminated (the answer is not trusted to be ours); the error names it instead.
    async fn roll_back(&self, launch_id: &LaunchId, launched: &[Instance], e: Error) -> Error {
        let _ = self.inner.journal.launch_failed(launch_id, &e.to_string());
        let mut launched = launched.to_vec();
        let mut unchecked = None;
        if effect_unknown(e.kind()) {
            // The cloud may have started instances no answer told us about (a response
            // lost after the effect, a batch that gave up part-way): look for this
            // launch's tag, as `herd down --launch` would, and end those too.
            match self.started_by(launch_id).await {
                Ok(found) => {
                    for i in found {
                        if !launched.iter().any(|l| l.id == i.id) {
                            launched.push(i);
                        }
                    }
                }
                Err(l) => unchecked = Some(l),
            }
        }
        let e = match unchecked {
            Some(l) => add_hint(
                e,
                format!(
                    "could not check what else the cloud started ({}); `herd down --launch {launch_id}` will find it",
                    l.message()
                ),
            ),
            None => e,
        };
        if launched.is_empty() {
            return e;
        }
        let (ours, foreign): (Vec<&Instance>, Vec<&Instance>) = launched.iter().partition(|i| self.is_ours(i));
        let left_alone = if foreign.is_empty() {
            String::new()
        } else {
            let names: Vec<String> = foreign
                .iter()
                .map(|i| format!("{} (owner {})", i.id, i.tag(tags::OWNER).unwrap_or("?")))
                .collect();
            format!(
                "; the cloud's answer also named {} instance(s) that are not yours, left alone: {}",
                foreign.len(),
                names.join(", ")
            )
        };
        if ours.is_empty() {
            return add_hint(e, format!("nothing of yours was started{left_alone}"));
        }
        let ids: Vec<String> = ours.iter().map(|i| i.id.clone()).collect();
        match self.terminate(&ids).await {
            Ok(_) => add_hint(
                e,
                format!(
                    "{} instance(s) already started were terminated again; nothing is left running{left_alone}",
                    ids.len()
                ),
            ),
            Err(t) => add_hint(
                e,
                format!(
                    "{} instance(s) may still be running ({}); `herd reap` or `herd down --launch {launch_id}` will find them{left_alone}",
                    ids.len(),
                    t.message()
                ),
            ),
        }
    }

    /// Live instances carrying this launch's `herd-launch` tag and this owner's
    /// `herd-owner` tag, both checked on the answer (a filter the cloud ignored must not
    /// make another launch's instances look like this one's).
    async fn started_by(&self, launch_id: &LaunchId) -> Result<Vec<Instance>> {
        let tag = tags::sanitize_value(launch_id.as_str());
        let req = self.mine().tag(tags::LAUNCH, tag.clone()).live();
        let provider = &self.inner.provider;
        let found = self.retried(&self.inner.stats, || provider.list(&req)).await?;
        Ok(found
            .into_iter()
            .filter(|i| {
                i.tag(tags::LAUNCH) == Some(tag.as_str())
                    && i.tag(tags::OWNER).is_some()
                    && self.is_ours(i)
                    && i.state.is_live()
            })
            .collect())
    }

    /// Whether an instance in a launch answer may be treated as this owner's: its
    /// `herd-owner` tag, when the answer carries tags, must be ours.
    fn is_ours(&self, i: &Instance) -> bool {
        i.tag(tags::OWNER)
            .is_none_or(|o| o == tags::sanitize_value(&self.inner.guard.owner))
    }

    /// Terminates instances; unknown and already-terminated ids are `AlreadyGone`.
    pub async fn terminate(&self, ids: &[String]) -> Result<Vec<TerminateResult>> {
        let caps = self.capabilities();
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(caps.max_terminate_batch.max(1) as usize) {
            let provider = &self.inner.provider;
            let r = self
                .retried(&self.inner.stats, || provider.terminate(chunk))
                .await
                .map_err(|e| self.ctx(e, Operation::Terminate))?;
            let now = self.inner.clock.now();
            let done: Vec<String> = r.iter().map(|t| t.id.clone()).collect();
            self.inner
                .journal
                .instances_ended(&done, now, "terminated")
                .map_err(|e| self.ctx(e, Operation::Terminate))?;
            out.extend(r);
        }
        Ok(out)
    }

    /// Lists instances (all pages) and records what it saw in the journal.
    pub async fn list(&self, req: &ListRequest) -> Result<Vec<Instance>> {
        let provider = &self.inner.provider;
        let r = self
            .retried(&self.inner.stats, || provider.list(req))
            .await
            .map_err(|e| self.ctx(e, Operation::List))?;
        self.inner
            .journal
            .instances_seen(&r)
            .map_err(|e| self.ctx(e, Operation::List))?;
        Ok(r)
    }

    /// A list request for this owner's instances, to narrow further (cluster, launch, ...).
    pub fn mine(&self) -> ListRequest {
        ListRequest::new().tag(tags::OWNER, tags::sanitize_value(&self.inner.guard.owner))
    }

    /// Instances of this owner (live ones unless `all_states`).
    pub async fn list_mine(&self, all_states: bool) -> Result<Vec<Instance>> {
        let mut req = self.mine();
        if !all_states {
            req = req.live();
        }
        self.list(&req).await
    }

    pub async fn quote(&self, req: &QuoteRequest) -> Result<Quote> {
        self.inner
            .provider
            .cost(req)
            .await
            .map_err(|e| self.ctx(e.with_context("region", req.region.clone()), Operation::Cost))
    }

    /// What an instance has cost within `[from, to]` (or its whole life), at its frozen price.
    pub fn accrued(&self, i: &Instance, from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>) -> Money {
        let rule = crate::billing::BillingRule::for_cloud(i.cloud);
        let end = i.ended_at.unwrap_or_else(|| self.inner.clock.now()).max(i.launched_at);
        rule.accrued(i.hourly_price, i.launched_at, end, from, to)
    }

    pub async fn leftovers(&self, owner: Option<&str>) -> Result<Vec<Leftover>> {
        let provider = &self.inner.provider;
        self.retried(&self.inner.stats, || provider.leftovers(owner))
            .await
            .map_err(|e| self.ctx(e, Operation::Leftovers))
    }

    pub async fn reap(&self, items: &[Leftover]) -> Result<Vec<ReapResult>> {
        if !self.capabilities().leftovers {
            return Err(self.ctx(
                Error::unsupported("this backend cannot reap leftovers"),
                Operation::Reap,
            ));
        }
        let provider = &self.inner.provider;
        self.retried(&self.inner.stats, || provider.reap(items))
            .await
            .map_err(|e| self.ctx(e, Operation::Reap))
    }

    /// Runs a command in an instance. Not retried: a command may not be idempotent.
    pub async fn exec(&self, id: &str, req: &ExecRequest) -> Result<ExecOutput> {
        if !self.capabilities().exec {
            return Err(self.ctx(
                Error::unsupported("this backend cannot run commands in instances"),
                Operation::Exec,
            ));
        }
        self.inner
            .provider
            .exec(id, req)
            .await
            .map_err(|e| self.ctx(e.with_context("instance", id.to_string()), Operation::Exec))
    }

    /// Where and how to open a shell on an instance (`herd ssh`). Not retried either: the
    /// backend's own lookups are, inside it.
    pub async fn login(&self, id: &str) -> Result<Login> {
        self.inner
            .provider
            .login(id)
            .await
            .map_err(|e| self.ctx(e.with_context("instance", id.to_string()), Operation::Exec))
    }

    /// [`Launcher::exec`] with the output streamed to `sink` as it arrives.
    pub async fn exec_streaming(&self, id: &str, req: &ExecRequest, sink: OutputSink<'_>) -> Result<ExecOutput> {
        if !self.capabilities().exec {
            return Err(self.ctx(
                Error::unsupported("this backend cannot run commands in instances"),
                Operation::Exec,
            ));
        }
        self.inner
            .provider
            .exec_streaming(id, req, sink)
            .await
            .map_err(|e| self.ctx(e.with_context("instance", id.to_string()), Operation::Exec))
    }

    /// Polls until every id is running (or gone), or `timeout` passes.
    pub async fn wait_until_running(&self, ids: &[String], timeout: Duration) -> Result<Vec<Instance>> {
        let start = self.inner.clock.now();
        let mut poll = Duration::from_millis(100);
        loop {
            let got = self.list(&ListRequest::new().ids(ids.iter().cloned())).await?;
            let gone: Vec<&Instance> = got.iter().filter(|i| i.state >= InstanceState::ShuttingDown).collect();
            if let Some(g) = gone.first() {
                return Err(self.ctx(
                    Error::new(
                        ErrorKind::Conflict,
                        format!(
                            "instance {} is {} ({})",
                            g.id,
                            g.state,
                            g.state_reason.as_deref().unwrap_or("no reason given")
                        ),
                    ),
                    Operation::Launch,
                ));
            }
            if got.len() == ids.len() && got.iter().all(|i| i.state == InstanceState::Running) {
                return Ok(got);
            }
            if crate::clock::between(start, self.inner.clock.now()) >= timeout {
                return Err(self.ctx(
                    Error::new(
                        ErrorKind::Timeout,
                        format!("instances not running after {}", human(timeout)),
                    ),
                    Operation::Launch,
                ));
            }
            self.inner.clock.sleep(poll).await;
            poll = (poll * 2).min(Duration::from_secs(2));
        }
    }

    /// Terminates every live instance carrying all of `tags`.
    pub async fn terminate_tagged(&self, tags: &Tags) -> Result<Vec<TerminateResult>> {
        let mut req = ListRequest::new().live();
        req.tags = tags.clone();
        let ids: Vec<String> = self.list(&req).await?.into_iter().map(|i| i.id).collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        self.terminate(&ids).await
    }
}

/// The cluster of a launch that names none: `c-` and the launch id's last six characters.
pub(crate) fn default_cluster(launch_id: &LaunchId) -> String {
    format!(
        "c-{}",
        &launch_id.as_str()[launch_id.as_str().len().saturating_sub(6)..]
    )
}

/// Whether a failed launch call may still have started something: errors that say the
/// cloud refused (capacity, quota, permissions, a bad request) do not; lost answers,
/// timeouts and give-ups might.
fn effect_unknown(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::Unexpected | ErrorKind::Timeout | ErrorKind::Unavailable | ErrorKind::RateLimited
    )
}

/// Adds `note` to an error's hint, keeping the hint it had (what to do about the error
/// itself).
fn add_hint(e: Error, note: String) -> Error {
    let hint = match e.hint() {
        Some(h) => format!("{h}; {note}"),
        None => note,
    };
    e.with_hint(hint)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::billing::BillingRule;
    use crate::catalog::{Arch, InstanceType, Offer, PriceSource, Region};
    use crate::clock::VirtualClock;
    use crate::types::Cloud;
    use async_trait::async_trait;

    /// A cloud that yields inside every launch, so concurrent launches interleave.
    #[derive(Debug)]
    struct Yielding {
        caps: Capabilities,
        catalog: Catalog,
        clock: VirtualClock,
    }

    impl Yielding {
        fn new(clock: VirtualClock) -> Self {
            let mut caps = Capabilities::none(BillingRule::LOCAL);
            caps.max_launch_batch = 10;
            caps.max_terminate_batch = 10;
            caps.deadline = DeadlineEnforcement::Cloud;
            let src = PriceSource {
                name: "test".into(),
                as_of: chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
                licence: "-".into(),
            };
            let catalog = Catalog::new(
                vec![InstanceType::new(Cloud::Local, "t.small", "t", 1, 1024, Arch::X86_64)],
                vec![Offer::new(
                    Cloud::Local,
                    "t.small",
                    "r1",
                    PurchaseOption::OnDemand,
                    Some(Money::usd(1.into())),
                    0,
                )],
                vec![src],
                vec![Region {
                    cloud: Cloud::Local,
                    name: "r1".into(),
                    zones: vec!["r1a".into()],
                }],
            );
            Yielding { caps, catalog, clock }
        }
    }

    #[async_trait]
    impl Provider for Yielding {
        fn info(&self) -> ProviderInfo {
            ProviderInfo::new(Cloud::Local, "test", "r1")
        }
        fn capabilities(&self) -> &Capabilities {
            &self.caps
        }
        fn catalog(&self) -> &Catalog {
            &self.catalog
        }
        async fn launch(&self, req: &LaunchRequest) -> Result<Vec<Instance>> {
            tokio::task::yield_now().await;
            let now = crate::clock::Clock::now(&self.clock);
            Ok((0..req.count)
                .map(|i| {
                    let id = format!("{}-{i}", req.launch_id);
                    let region = req.region.clone();
                    Instance::new(
                        id,
                        Cloud::Local,
                        region,
                        "r1a",
                        &req.instance_type,
                        req.launch_id.clone(),
                        now,
                        req.deadline,
                        req.on_demand_price,
                    )
                })
                .collect())
        }
        async fn terminate(&self, ids: &[String]) -> Result<Vec<TerminateResult>> {
            Ok(ids
                .iter()
                .map(|id| TerminateResult::new(id, TerminateOutcome::Terminated))
                .collect())
        }
        async fn list(&self, _req: &ListRequest) -> Result<Vec<Instance>> {
            Ok(Vec::new())
        }
    }

    /// A ledger that fails to record instances (disk full, locked).
    #[derive(Debug, Default)]
    struct BrokenJournal {
        ended: std::sync::Mutex<Vec<String>>,
    }

    impl Journal for BrokenJournal {
        fn committed_since(&self, _: &str, _: DateTime<Utc>) -> Result<Money> {
            Ok(Money::ZERO)
        }
        fn launch_started(&self, _: &LaunchIntent) -> Result<()> {
            Ok(())
        }
        fn launch_failed(&self, _: &LaunchId, _: &str) -> Result<()> {
            Ok(())
        }
        fn instances_seen(&self, _: &[Instance]) -> Result<()> {
            Err(Error::new(ErrorKind::Unavailable, "ledger is locked"))
        }
        fn instances_ended(&self, ids: &[String], _: DateTime<Utc>, _: &str) -> Result<()> {
            self.ended.lock().unwrap().extend(ids.iter().cloned());
            Ok(())
        }
    }

    #[tokio::test]
    async fn instances_the_ledger_cannot_record_are_terminated() {
        let clock = VirtualClock::at_epoch();
        let journal = Arc::new(BrokenJournal::default());
        let launcher = Launcher::builder(Arc::new(Yielding::new(clock.clone())))
            .clock(Arc::new(clock))
            .journal(journal.clone())
            .retry(RetryPolicy::none())
            .build();
        let e = launcher
            .launch(LaunchSpec::new("t.small", 3).deadline(Duration::from_secs(60)))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        assert!(e.hint().unwrap().contains("terminated again"), "{:?}", e.hint());
        assert_eq!(
            journal.ended.lock().unwrap().len(),
            3,
            "every started instance was terminated"
        );
    }

    /// A cloud whose launch answer has the wrong size: `short` instances fewer than asked
    /// (a retry that found only part of a launch by its idempotency key), plus `foreign`
    /// instances tagged with another owner (a hostile or broken endpoint). Every
    /// instance it returns is tagged as the request asked; it remembers what it was
    /// asked to terminate.
    #[derive(Debug)]
    struct WrongCount {
        inner: Yielding,
        short: u32,
        foreign: u32,
        terminated: std::sync::Mutex<Vec<String>>,
    }

    #[async_trait]
    impl Provider for WrongCount {
        fn info(&self) -> ProviderInfo {
            self.inner.info()
        }
        fn capabilities(&self) -> &Capabilities {
            &self.inner.caps
        }
        fn catalog(&self) -> &Catalog {
            &self.inner.catalog
        }
        async fn launch(&self, req: &LaunchRequest) -> Result<Vec<Instance>> {
            let mut shorter = req.clone();
            shorter.count = req.count - self.short;
            let mut got = self.inner.launch(&shorter).await?;
            for i in &mut got {
                i.tags = req.tags.clone();
            }
            for n in 0..self.foreign {
                let mut other = got[0].clone();
                other.id = format!("theirs-{n}");
                other.tags.insert(tags::OWNER.into(), "mallory".into());
                got.push(other);
            }
            Ok(got)
        }
        async fn terminate(&self, ids: &[String]) -> Result<Vec<TerminateResult>> {
            self.terminated.lock().unwrap().extend(ids.iter().cloned());
            self.inner.terminate(ids).await
        }
        async fn list(&self, req: &ListRequest) -> Result<Vec<Instance>> {
            self.inner.list(req).await
        }
    }

    /// A journal that keeps what it is told, with the default (in-process) `reserve`.
    #[derive(Debug, Default)]
    struct Recording {
        reserved: std::sync::Mutex<Vec<Money>>,
        seen: std::sync::Mutex<Vec<String>>,
        ended: std::sync::Mutex<Vec<String>>,
        failed: std::sync::Mutex<Vec<String>>,
    }

    impl Journal for Recording {
        fn committed_since(&self, _: &str, _: DateTime<Utc>) -> Result<Money> {
            Ok(self.reserved.lock().unwrap().iter().copied().sum())
        }
        fn launch_started(&self, i: &LaunchIntent) -> Result<()> {
            self.reserved.lock().unwrap().push(i.reservation);
            Ok(())
        }
        fn launch_failed(&self, id: &LaunchId, _: &str) -> Result<()> {
            self.failed.lock().unwrap().push(id.to_string());
            Ok(())
        }
        fn instances_seen(&self, seen: &[Instance]) -> Result<()> {
            self.seen.lock().unwrap().extend(seen.iter().map(|i| i.id.clone()));
            Ok(())
        }
        fn instances_ended(&self, ids: &[String], _: DateTime<Utc>, _: &str) -> Result<()> {
            self.ended.lock().unwrap().extend(ids.iter().cloned());
            Ok(())
        }
    }

    fn wrong_count(short: u32, foreign: u32) -> (Arc<WrongCount>, Arc<Recording>, Launcher) {
        let clock = VirtualClock::at_epoch();
        let mut inner = Yielding::new(clock.clone());
        inner.caps.max_launch_batch = 100;
        inner.caps.max_terminate_batch = 100;
        let p = Arc::new(WrongCount {
            inner,
            short,
            foreign,
            terminated: Default::default(),
        });
        let journal = Arc::new(Recording::default());
        let launcher = Launcher::builder(p.clone())
            .clock(Arc::new(clock))
            .journal(journal.clone())
            .guardrails(Guardrails {
                owner: "alice".into(),
                ..Guardrails::default()
            })
            .retry(RetryPolicy::none())
            .build();
        (p, journal, launcher)
    }

    fn spec50() -> LaunchSpec {
        LaunchSpec::new("t.small", 50).deadline(Duration::from_secs(60))
    }

    #[tokio::test]
    async fn a_partial_answer_is_recorded_then_ended_never_left_running() {
        let (p, journal, launcher) = wrong_count(7, 0);
        let e = launcher.launch(spec50()).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unexpected);
        assert!(e.message().contains("for 50 instances, it returned 43"), "{e}");
        assert!(
            e.hint()
                .unwrap()
                .contains("43 instance(s) already started were terminated again"),
            "{:?}",
            e.hint()
        );
        let mut found = journal.seen.lock().unwrap().clone();
        found.sort();
        assert_eq!(found.len(), 43, "the ledger knows what ran, so it is billed");
        let mut ended = p.terminated.lock().unwrap().clone();
        ended.sort();
        assert_eq!(ended, found, "all 43 terminated, nothing else");
        assert_eq!(journal.ended.lock().unwrap().len(), 43);
        assert_eq!(journal.failed.lock().unwrap().len(), 1, "the launch is marked failed");
    }

    #[tokio::test]
    async fn extra_instances_of_another_owner_are_named_not_touched() {
        let (p, journal, launcher) = wrong_count(0, 2);
        let e = launcher.launch(spec50()).await.unwrap_err();
        assert!(e.message().contains("returned 52, 2 of them another owner's"), "{e}");
        let hint = e.hint().unwrap();
        assert!(
            hint.contains("50 instance(s) already started were terminated again"),
            "{hint}"
        );
        assert!(
            hint.contains("theirs-0 (owner mallory)") && hint.contains("left alone"),
            "{hint}"
        );
        let terminated = p.terminated.lock().unwrap().clone();
        assert_eq!(terminated.len(), 50);
        assert!(terminated.iter().all(|id| !id.starts_with("theirs")), "{terminated:?}");
        assert!(journal.seen.lock().unwrap().iter().all(|id| !id.starts_with("theirs")));
    }

    /// A cloud that starts the instances, then loses the answer (the call fails), and
    /// whose list ignores filters: it answers with this launch's instances, another
    /// launch's, and one tagged with this launch but another owner.
    #[derive(Debug)]
    struct LostAnswer {
        inner: Yielding,
        started: std::sync::Mutex<Vec<Instance>>,
        terminated: std::sync::Mutex<Vec<String>>,
    }

    #[async_trait]
    impl Provider for LostAnswer {
        fn info(&self) -> ProviderInfo {
            self.inner.info()
        }
        fn capabilities(&self) -> &Capabilities {
            &self.inner.caps
        }
        fn catalog(&self) -> &Catalog {
            &self.inner.catalog
        }
        async fn launch(&self, req: &LaunchRequest) -> Result<Vec<Instance>> {
            let mut got = self.inner.launch(req).await?;
            for i in &mut got {
                i.tags = req.tags.clone();
                i.state = InstanceState::Running;
            }
            let mut other = got[0].clone();
            other.id = "other-launch".into();
            other.tags.insert(tags::LAUNCH.into(), "l-someone-else".into());
            let mut theirs = got[0].clone();
            theirs.id = "other-owner".into();
            theirs.tags.insert(tags::OWNER.into(), "mallory".into());
            got.extend([other, theirs]);
            self.started.lock().unwrap().extend(got);
            Err(Error::new(
                ErrorKind::Unexpected,
                "connection reset after the request was sent",
            ))
        }
        async fn terminate(&self, ids: &[String]) -> Result<Vec<TerminateResult>> {
            self.terminated.lock().unwrap().extend(ids.iter().cloned());
            self.inner.terminate(ids).await
        }
        async fn list(&self, _req: &ListRequest) -> Result<Vec<Instance>> {
            Ok(self.started.lock().unwrap().clone())
        }
    }

    #[tokio::test]
    async fn instances_started_behind_a_lost_answer_are_found_by_tag_and_ended() {
        let clock = VirtualClock::at_epoch();
        let p = Arc::new(LostAnswer {
            inner: Yielding::new(clock.clone()),
            started: Default::default(),
            terminated: Default::default(),
        });
        let launcher = Launcher::builder(p.clone())
            .clock(Arc::new(clock))
            .guardrails(Guardrails {
                owner: "alice".into(),
                ..Guardrails::default()
            })
            .retry(RetryPolicy::none())
            .build();
        let e = launcher
            .launch(LaunchSpec::new("t.small", 3).deadline(Duration::from_secs(60)))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unexpected);
        assert!(
            e.hint()
                .unwrap()
                .contains("3 instance(s) already started were terminated again"),
            "{:?}",
            e.hint()
        );
        let mut ended = p.terminated.lock().unwrap().clone();
        ended.sort();
        assert_eq!(ended.len(), 3, "{ended:?}");
        assert!(
            ended.iter().all(|id| !id.starts_with("other")),
            "another launch's and another owner's are never touched: {ended:?}"
        );
    }

    #[tokio::test]
    async fn the_right_count_launches() {
        let (p, journal, launcher) = wrong_count(0, 0);
        let r = launcher.launch(spec50()).await.unwrap();
        assert_eq!(r.instances.len(), 50);
        assert!(p.terminated.lock().unwrap().is_empty());
        assert_eq!(journal.reserved.lock().unwrap().len(), 1);
    }

    /// A journal that refuses every reservation, as the ledger does when another
    /// process took the day's last room after this launch's plan was made.
    #[derive(Debug, Default)]
    struct Full(Recording);

    impl Journal for Full {
        fn committed_since(&self, _: &str, _: DateTime<Utc>) -> Result<Money> {
            Ok(Money::ZERO)
        }
        fn launch_started(&self, i: &LaunchIntent) -> Result<()> {
            self.0.launch_started(i)
        }
        fn reserve(&self, i: &LaunchIntent, per_day: Money) -> Result<()> {
            crate::guardrails::check_daily_budget(per_day, i.reservation, per_day)
        }
        fn launch_failed(&self, id: &LaunchId, e: &str) -> Result<()> {
            self.0.launch_failed(id, e)
        }
        fn instances_seen(&self, seen: &[Instance]) -> Result<()> {
            self.0.instances_seen(seen)
        }
        fn instances_ended(&self, ids: &[String], at: DateTime<Utc>, r: &str) -> Result<()> {
            self.0.instances_ended(ids, at, r)
        }
    }

    #[tokio::test]
    async fn the_reservation_decides_not_the_plan() {
        let clock = VirtualClock::at_epoch();
        let (p, _, _) = wrong_count(0, 0);
        let journal = Arc::new(Full::default());
        let launcher = Launcher::builder(p.clone())
            .clock(Arc::new(clock))
            .journal(journal.clone())
            .build();
        let plan = launcher.plan(&spec50()).await.unwrap();
        assert!(plan.budget.is_none(), "the preview saw room");
        let e = launcher.launch_planned(plan).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BudgetExceeded);
        assert!(e.message().contains("daily budget"), "{e}");
        assert!(e.context_value("launch_id").is_some(), "{e}");
        assert!(journal.0.seen.lock().unwrap().is_empty(), "nothing was launched");
        assert!(journal.0.reserved.lock().unwrap().is_empty(), "nothing was recorded");
    }

    #[tokio::test]
    async fn concurrent_launches_never_reserve_past_the_day() {
        // In one process the default `reserve` is enough (nothing yields between its
        // check and its write); the ledger makes it one transaction across processes.
        let clock = VirtualClock::at_epoch();
        let journal = Arc::new(Recording::default());
        let launcher = Launcher::builder(Arc::new(Yielding::new(clock.clone())))
            .clock(Arc::new(clock))
            .journal(journal.clone())
            .build();
        let one = LaunchSpec::new("t.small", 1).deadline(Duration::from_secs(3600));
        let per_day = launcher.guardrails().budget.per_day;
        let plans = futures_join_all((0..60).map(|_| launcher.plan(&one))).await;
        let outcomes = futures_join_all(plans.into_iter().map(|p| launcher.launch_planned(p.unwrap()))).await;
        let ok = outcomes.iter().filter(|r| r.is_ok()).count();
        let total: Money = journal.reserved.lock().unwrap().iter().copied().sum();
        assert_eq!(ok, 50, "$1/h for 1h each against $50 a day");
        assert!(total <= per_day, "{total} reserved");
        assert!(outcomes
            .iter()
            .filter_map(|r| r.as_ref().err())
            .all(|e| e.kind() == ErrorKind::BudgetExceeded));
    }

    /// Polls every future in turn until all are done, so they interleave (no `futures`
    /// dependency in core).
    async fn futures_join_all<F: std::future::Future>(fs: impl IntoIterator<Item = F>) -> Vec<F::Output> {
        let mut fs: Vec<_> = fs.into_iter().map(Box::pin).collect();
        let mut out: Vec<Option<F::Output>> = fs.iter().map(|_| None).collect();
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
        out.into_iter().map(|o| o.expect("done")).collect()
    }

    /// A cloud that throttles its first two launch calls.
    #[derive(Debug)]
    struct Throttled {
        inner: Yielding,
        calls: std::sync::atomic::AtomicU32,
    }

    #[async_trait]
    impl Provider for Throttled {
        fn info(&self) -> ProviderInfo {
            self.inner.info()
        }
        fn capabilities(&self) -> &Capabilities {
            &self.inner.caps
        }
        fn catalog(&self) -> &Catalog {
            &self.inner.catalog
        }
        async fn launch(&self, req: &LaunchRequest) -> Result<Vec<Instance>> {
            if self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 2 {
                return Err(Error::new(ErrorKind::RateLimited, "RequestLimitExceeded")
                    .with_context("endpoint", "http://127.0.0.1:1"));
            }
            self.inner.launch(req).await
        }
        async fn terminate(&self, ids: &[String]) -> Result<Vec<TerminateResult>> {
            self.inner.terminate(ids).await
        }
        async fn list(&self, req: &ListRequest) -> Result<Vec<Instance>> {
            self.inner.list(req).await
        }
    }

    #[derive(Debug, Default)]
    struct Heard(std::sync::Mutex<Vec<(u32, String)>>);

    impl crate::retry::RetryObserver for Heard {
        fn retrying(&self, _: Duration, _: Duration, attempt: u32, last: &Error) {
            let endpoint = last.context_value("endpoint").unwrap_or("-").to_string();
            self.0.lock().unwrap().push((attempt, endpoint));
        }
    }

    #[tokio::test]
    async fn the_launcher_tells_its_observer_about_every_retry() {
        let clock = VirtualClock::at_epoch();
        let heard = Arc::new(Heard::default());
        let launcher = Launcher::builder(Arc::new(Throttled {
            inner: Yielding::new(clock.clone()),
            calls: Default::default(),
        }))
        .clock(Arc::new(clock))
        .observer(heard.clone())
        .build();
        launcher
            .launch(LaunchSpec::new("t.small", 1).deadline(Duration::from_secs(60)))
            .await
            .unwrap();
        assert_eq!(
            *heard.0.lock().unwrap(),
            vec![
                (1, "http://127.0.0.1:1".to_string()),
                (2, "http://127.0.0.1:1".to_string())
            ]
        );
    }

    #[tokio::test]
    async fn absurd_deadlines_and_names_are_refused_with_hints() {
        let clock = VirtualClock::at_epoch();
        let launcher = Launcher::builder(Arc::new(Yielding::new(clock.clone())))
            .clock(Arc::new(clock))
            .guardrails(Guardrails {
                max_deadline: Duration::MAX,
                ..Guardrails::default()
            })
            .build();
        let e = launcher
            .plan(&LaunchSpec::new("t.small", 1).deadline(Duration::MAX))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidSpec);
        assert!(e.message().contains("does not fit in a date"), "{e}");
        let e = launcher
            .plan(&LaunchSpec::new("t.small", 1).cluster("Ünïcode"))
            .await
            .unwrap_err();
        assert!(e.hint().unwrap().contains("`unicode`"), "{:?}", e.hint());
    }

    #[tokio::test]
    async fn concurrent_launches_each_report_their_own_calls() {
        let clock = VirtualClock::at_epoch();
        let launcher = Launcher::builder(Arc::new(Yielding::new(clock.clone())))
            .clock(Arc::new(clock))
            .build();
        let spec = || LaunchSpec::new("t.small", 25).deadline(Duration::from_secs(60));
        let (a, b) = tokio::join!(launcher.launch(spec()), launcher.launch(spec()));
        let (a, b) = (a.unwrap(), b.unwrap());
        // 25 instances in batches of 10: three calls each, whatever the other launch did.
        assert_eq!((a.calls, b.calls), (3, 3));
        assert_eq!((a.instances.len(), b.instances.len()), (25, 25));
        assert_eq!(launcher.launch_stats().snapshot().0, 6, "the totals still count both");
    }
}
