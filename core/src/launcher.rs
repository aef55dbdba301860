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
use crate::clock::{chrono_dur, SharedClock, SystemClock};
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
        i.retry.run(i.clock.as_ref(), &i.rng, stats, op).await
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
        let keepalive = g.resolve_keepalive(spec.keepalive);
        for (k, v) in &spec.tags {
            tags::validate_user_tag(k, v)?;
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
                        tags::sanitize_value(c)
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
        let now = self.inner.clock.now();
        let day_start = now.date_naive().and_hms_opt(0, 0, 0).expect("midnight").and_utc();
        let committed_today = self.inner.journal.committed_since(&g.owner, day_start)?;
        let budget = g.check_budget(worst_case, committed_today).err();

        let launch_id = match &spec.launch_id {
            Some(id) => id.clone(),
            None => LaunchId::generate(now, self.inner.rng.next_u64()),
        };
        let cluster = spec.cluster.clone().unwrap_or_else(|| {
            format!(
                "c-{}",
                &launch_id.as_str()[launch_id.as_str().len().saturating_sub(6)..]
            )
        });
        let deadline_at = now + chrono_dur(deadline);
        let tag_set = tags::herd_tags(
            &spec.tags,
            &g.owner,
            &cluster,
            launch_id.as_str(),
            deadline_at,
            quote.hourly,
            keepalive.map(|k| k.as_secs()),
        );
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
        self.inner.journal.launch_started(&intent).map_err(wrap)?;

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
            match self.launch_batch(&sub, caps, &mine).await {
                Ok(got) => {
                    let recorded = self.inner.journal.instances_seen(&got);
                    launched.extend(got);
                    // Instances the ledger could not record are not left running.
                    if let Err(e) = recorded {
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
    ) -> Result<Vec<Instance>> {
        let provider = &self.inner.provider;
        let first = self.retried(stats, || provider.launch(sub)).await;
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
                self.retried(stats, || provider.launch(&od)).await?
            }
            other => other?,
        };
        if got.len() != sub.count as usize {
            let e = Error::unexpected(format!(
                "asked for {} instances, the cloud returned {}",
                sub.count,
                got.len()
            ));
            let e = self.roll_back(&sub.launch_id, &got, e).await;
            return Err(e);
        }
        Ok(got)
    }

    /// Terminates what a failed launch started; the original error is returned, with a
    /// note if the clean-up itself failed (then `herd reap` finds them by tag).
    async fn roll_back(&self, launch_id: &LaunchId, launched: &[Instance], e: Error) -> Error {
        let _ = self.inner.journal.launch_failed(launch_id, &e.to_string());
        if launched.is_empty() {
            return e;
        }
        let ids: Vec<String> = launched.iter().map(|i| i.id.clone()).collect();
        match self.terminate(&ids).await {
            Ok(_) => {
                let hint = format!("{} instance(s) already started were terminated again; nothing is left running", ids.len());
                e.with_hint(hint)
            }
            Err(t) => e.with_hint(format!(
                "{} instance(s) may still be running ({}); `herd reap` or `herd down --launch {launch_id}` will find them",
                ids.len(),
                t.message()
            )),
        }
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
