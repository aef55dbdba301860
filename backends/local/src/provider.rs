//! `LocalProvider`: the simulated control plane's API (the `Provider` impl). Every call
//! first pays its token (when throttling is on), may fail transiently (seeded), and
//! reconciles rows with their processes (`reconcile`) and settles the lazy timers
//! (deadline, spot interruption, idle) before doing anything.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use herd_core::clock::between;
use herd_core::plumbing::{check_owned, in_order, ZoneFallback};
use herd_core::{
    tags, BillingRule, Capabilities, Catalog, Cloud, DeadlineEnforcement, Error, ErrorKind, ExecOutput, ExecRequest,
    Instance, LaunchRequest, Leftover, ListRequest, Login, Money, OutputSink, OutputStream, Provider, ProviderInfo,
    PurchaseOption, ReapResult, Result, SeededRng, SharedClock, TerminateOutcome, TerminateResult,
};
use rust_decimal::Decimal;

use crate::buckets::{self, BucketSpec};
use crate::config::{AgentCommand, Faults};
use crate::error::{self, Fault};
use crate::exec;
use crate::host;
use crate::lifecycle::reason;
use crate::pricing::{self, Resources};
use crate::reconcile;
use crate::store::{self, Row, Store};
use crate::vm::{self, AgentPid, VmDir, VmRecord, VmSpec};
use crate::LocalBuilder;

pub use crate::pricing::DEFAULT_REGION;

/// Size of every instance's root volume: 8 GiB, the default root volume of Amazon
/// Linux AMIs, so leftovers are priced like a typical forgotten EBS volume.
const VOLUME_GIB: u32 = 8;

/// Default vCPU limit with real processes: generous, but a runaway loop cannot fork-bomb
/// the laptop.
const DEFAULT_PROCESS_VCPU_QUOTA: u32 = 64;

/// How long `terminate` waits for agents to stop their workloads before killing them.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// The local simulator. Several providers on one state dir (several shells) see the
/// same instances; cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct LocalProvider {
    store: Store,
    state_dir: Option<PathBuf>,
    processes: bool,
    clock: SharedClock,
    rng: SeededRng,
    seed: u64,
    faults: Faults,
    caps: Capabilities,
    account: String,
    agent: Mutex<Option<AgentCommand>>,
    api_calls: AtomicU64,
    /// Virtual mode: exec follows the declared work model.
    virtual_exec: bool,
    /// The owner (sanitized `herd-owner` value) this provider acts for, if known:
    /// terminate refuses anyone else's instances.
    owner: Option<String>,
    /// This process, recorded on rows it is launching (see `reconcile`).
    me: AgentPid,
    /// What opening the state found and repaired (also printed as warnings).
    warnings: Vec<String>,
}

/// Whether an injected transient fault hits this call, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transient {
    None,
    /// Fails before any effect.
    Before,
    /// The effect is committed, then the response is "lost".
    After,
}

/// A validated launch, before it touches the state.
struct Planned {
    resources: Resources,
    zones: Vec<String>,
    purchase: PurchaseOption,
    price: Money,
}

impl LocalProvider {
    pub fn builder() -> LocalBuilder {
        LocalBuilder::default()
    }

    pub(crate) fn from_builder(b: LocalBuilder) -> Result<LocalProvider> {
        b.faults.validate()?;
        let processes = b.processes && !b.in_memory;
        if processes && b.clock.is_virtual() {
            return Err(
                Error::config("the simulator cannot run real processes on a virtual clock")
                    .with_hint("use `.processes(false)` (or `virtual_provider`) with a VirtualClock"),
            );
        }
        let mut warnings = Vec::new();
        let (store, state_dir) = if b.in_memory {
            (Store::open_in_memory()?, None)
        } else {
            let dir = b.state_dir.unwrap_or_else(crate::default_state_dir);
            let (store, notes) = Store::open(&dir)?;
            warnings.extend(notes);
            let now = b.clock.now().timestamp_millis();
            let adopted = store.write(|tx| reconcile::adopt(tx, &dir, now))?;
            if !adopted.is_empty() {
                warnings.push(adoption_warning(&dir, &adopted));
            }
            (store, Some(dir))
        };
        for w in &warnings {
            eprintln!("warning: {w}");
        }
        let account = b.owner_account.unwrap_or_else(|| {
            state_dir
                .as_ref()
                .map_or_else(|| "memory".to_string(), |d| d.display().to_string())
        });
        let virtual_exec = b.virtual_exec && !processes;
        let mut caps = capabilities(b.spot, processes, b.max_launch_batch, &b.faults);
        caps.exec |= virtual_exec;
        Ok(LocalProvider {
            store,
            state_dir,
            processes,
            virtual_exec,
            caps,
            clock: b.clock,
            rng: SeededRng::new(b.seed),
            seed: b.seed,
            faults: b.faults,
            account,
            agent: Mutex::new(b.agent),
            api_calls: AtomicU64::new(0),
            owner: b.owner.as_deref().map(tags::sanitize_value),
            me: AgentPid::me(),
            warnings,
        })
    }

    /// What opening the state found and repaired: a damaged `sim.db` moved aside,
    /// instances rebuilt from their VM directories. Also printed to stderr as warnings.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Reconciliation (on calls that `reconcile`) then the lazy timers: every row
    /// this call ended, for [`Self::after_settle`].
    fn settle(&self, tx: &rusqlite::Transaction<'_>, now: i64, reconcile: bool) -> rusqlite::Result<Vec<Row>> {
        let mut ended = match &self.state_dir {
            Some(dir) if reconcile => reconcile::reconcile(tx, dir)?,
            _ => Vec::new(),
        };
        ended.extend(store::settle(tx, now)?);
        Ok(ended)
    }

    /// Refuses (before any effect) to terminate instances that are not this provider's
    /// owner's, reading the owner from each instance's own tags (core's check).
    fn check_owner(&self, rows: &[Row]) -> Result<()> {
        let Some(me) = &self.owner else { return Ok(()) };
        check_owned("instance", me, rows.iter().map(|r| (r.id.as_str(), &r.tags)))
    }

    /// Calls that reached the simulated API (after the Launcher's checks), failed ones
    /// included. Tests use it to prove "refused before any API call".
    pub fn api_calls(&self) -> u64 {
        self.api_calls.load(Ordering::Relaxed)
    }

    /// Where the state lives (`None` in memory).
    pub fn state_dir(&self) -> Option<&Path> {
        self.state_dir.as_deref()
    }

    /// Whether instances are real process trees.
    pub fn runs_processes(&self) -> bool {
        self.processes
    }

    fn now_ms(&self) -> i64 {
        self.clock.now().timestamp_millis()
    }

    /// The start of every API call: count it, pay its request token, maybe fail.
    fn begin(&self, api: &BucketSpec) -> Result<Transient> {
        self.begin_in(api, None)
    }

    /// [`Self::begin`], paying from `region`'s own bucket (EC2 keeps them per region).
    fn begin_in(&self, api: &BucketSpec, region: Option<&str>) -> Result<Transient> {
        self.api_calls.fetch_add(1, Ordering::Relaxed);
        if self.faults.throttle {
            let now = self.now_ms();
            self.store
                .write(|tx| buckets::take_in(tx, api, region, 1, now))?
                .map_err(|_refill| Fault::Throttled { api: api.name })?;
        }
        let p = self.faults.transient_error_rate;
        let t = if p <= 0.0 {
            Transient::None
        } else {
            let u = self.rng.next_f64();
            if u < p / 2.0 {
                Transient::Before
            } else if u < p {
                Transient::After
            } else {
                Transient::None
            }
        };
        if t == Transient::Before {
            return Err(Fault::Transient {
                api: api.name,
                committed: false,
            }
            .into());
        }
        Ok(t)
    }

    /// The end of an API call whose effect is committed: maybe lose the response.
    fn finish(&self, api: &BucketSpec, t: Transient) -> Result<()> {
        if t == Transient::After {
            return Err(Fault::Transient {
                api: api.name,
                committed: true,
            }
            .into());
        }
        Ok(())
    }

    fn agent_command(&self) -> Result<AgentCommand> {
        let mut slot = self.agent.lock().expect("agent lock");
        if let Some(a) = slot.as_ref() {
            return Ok(a.clone());
        }
        let a = AgentCommand::discover()?;
        *slot = Some(a.clone());
        Ok(a)
    }

    fn vm_dir(&self, id: &str) -> Option<VmDir> {
        self.state_dir.as_ref().map(|d| VmDir::new(d, id))
    }

    /// The instance's row once it is up (waiting for its boot, like waiting for SSH):
    /// an error if it is unknown or has ended.
    async fn running_row(&self, id: &str) -> Result<store::Row> {
        loop {
            let now = self.now_ms();
            let (row, ended) = self.store.write(|tx| {
                let ended = self.settle(tx, now, true)?;
                Ok((store::get(tx, id)?, ended))
            })?;
            self.after_settle(&ended);
            let Some(r) = row else {
                return Err(Error::not_found(format!("no instance `{id}` in the simulator"))
                    .with_hint("`herd ls` lists the instances"));
            };
            if r.ended_at.is_some() {
                return Err(Error::new(
                    ErrorKind::Conflict,
                    format!(
                        "instance {id} is terminated ({})",
                        r.state_reason.as_deref().unwrap_or("ended")
                    ),
                ));
            }
            if r.ready_at > now {
                // Like waiting for SSH to come up.
                self.clock.sleep(Duration::from_millis((r.ready_at - now) as u64)).await;
                continue;
            }
            return Ok(r);
        }
    }

    /// An instance id: `i-` + 17 hex digits, derived from the seed, the launch id and the
    /// position, so a retried launch draws the same ids and a seed reproduces a run.
    fn instance_id(&self, launch_id: &str, index: u32, attempt: u32) -> String {
        let h = launch_id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        let r = SeededRng::new(h ^ self.seed.rotate_left(17) ^ (u64::from(index) << 20) ^ u64::from(attempt));
        format!("i-{:x}{:016x}", r.next_u64() & 0xf, r.next_u64())
    }

    fn boot_delay(&self) -> Duration {
        let (lo, hi) = self.faults.boot_delay.unwrap_or(if self.processes {
            (Duration::from_secs(1), Duration::from_secs(3))
        } else {
            (Duration::from_secs(20), Duration::from_secs(60))
        });
        Duration::from_millis(self.rng.range_u64(lo.as_millis() as u64, hi.as_millis() as u64))
    }

    /// A spot interruption instant: after at least the notice, then exponential with the
    /// configured mean (seeded).
    fn interruption(&self, launched_at: i64) -> Option<i64> {
        let mean = self.faults.spot_interruption_mean?;
        let u = self.rng.next_f64();
        let wait = -(1.0 - u).ln() * mean.as_secs_f64();
        let notice = self.faults.spot_notice().as_millis() as i64;
        Some(launched_at + notice + (wait * 1000.0).min(1e15) as i64)
    }

    fn vcpu_quota(&self) -> Option<u32> {
        self.faults
            .vcpu_quota
            .or(self.processes.then_some(DEFAULT_PROCESS_VCPU_QUOTA))
    }

    fn plan(&self, req: &LaunchRequest) -> Result<Planned> {
        let catalog = pricing::local_catalog();
        if req.count == 0 {
            return Err(Error::invalid_spec("count must be at least 1"));
        }
        if req.count > self.caps.max_launch_batch {
            return Err(Error::invalid_spec(format!(
                "{} instances in one call is more than the simulator's limit of {}",
                req.count, self.caps.max_launch_batch
            ))
            .with_hint("launch through herd's Launcher, which splits large launches"));
        }
        catalog.find_type(Cloud::Local, &req.instance_type)?;
        let resources = pricing::resources(&req.instance_type)
            .ok_or_else(|| Error::unexpected(format!("no resources known for {}", req.instance_type)))?;
        let region = catalog.find_region(Cloud::Local, &req.region)?;
        let zones = match &req.zone {
            Some(z) if !region.zones.contains(z) => {
                return Err(Error::invalid_spec(format!("unknown zone `{z}` in {}", req.region))
                    .with_suggestions(herd_core::suggest::did_you_mean(
                        z,
                        region.zones.iter().map(String::as_str),
                        3,
                    ))
                    .with_hint(format!("zones in {}: {}", req.region, region.zones.join(", "))))
            }
            Some(z) => vec![z.clone()],
            None => region.zones.clone(),
        };
        let purchase = if req.market.wants_spot() {
            if !self.caps.spot {
                return Err(Error::unsupported("spot instances are switched off in this simulator")
                    .with_hint("launch on-demand"));
            }
            PurchaseOption::Spot
        } else {
            PurchaseOption::OnDemand
        };
        if req.deadline.timestamp_millis() <= self.now_ms() {
            return Err(Error::invalid_spec(format!(
                "the deadline {} has already passed",
                req.deadline
            )));
        }
        // Frozen at launch: the price herd quoted and tagged (core reads it), else the request's.
        let price = tags::HerdFields::decode(&req.tags)
            .price
            .or(match purchase {
                PurchaseOption::Spot => req.spot_price,
                PurchaseOption::OnDemand => None,
            })
            .unwrap_or(req.on_demand_price);
        Ok(Planned {
            resources,
            zones,
            purchase,
            price,
        })
    }

    /// The control-plane half of a launch, in one transaction: idempotency, capacity,
    /// quota, resource tokens, then the rows. `Ok(Err(..))` is a refusal (rolled back).
    fn commit_launch(
        &self,
        tx: &rusqlite::Transaction<'_>,
        req: &LaunchRequest,
        plan: &Planned,
        now: i64,
    ) -> rusqlite::Result<Result<(Vec<Row>, bool)>> {
        let fingerprint = req.fingerprint();
        if let Some((fp, ids)) = store::launch(tx, req.launch_id.as_str())? {
            if fp != fingerprint {
                return Ok(Err(Fault::IdempotencyMismatch {
                    launch_id: req.launch_id.to_string(),
                }
                .into()));
            }
            return Ok(Ok((store::rows_by_ids(tx, &ids)?, false)));
        }
        // Core's zone fallback: the zones in order, those without capacity skipped.
        let mut fallback = ZoneFallback::new(&req.region, &req.instance_type, req.zone.as_deref());
        let mut zone = None;
        for z in &plan.zones {
            let fits = match self.faults.capacity.get(z) {
                None => true,
                Some(&cap) => store::live_in_zone(tx, z)? + req.count <= cap,
            };
            let placed = if fits {
                Ok(z.clone())
            } else {
                Err(Fault::Capacity {
                    instance_type: req.instance_type.clone(),
                    zones: vec![z.clone()],
                }
                .into())
            };
            match fallback.attempt(Some(z), placed) {
                Ok(Some(z)) => {
                    zone = Some(z);
                    break;
                }
                Ok(None) => {}
                Err(e) => return Ok(Err(e)),
            }
        }
        let Some(zone) = zone else {
            // EC2's wording names every zone; the fallback adds what was tried.
            let all = Fault::Capacity {
                instance_type: req.instance_type.clone(),
                zones: fallback.misses().to_vec(),
            };
            return Ok(Err(fallback.exhausted_as(Some(all.into()))));
        };
        let asked = req.count * plan.resources.vcpus;
        if let Some(limit) = self.vcpu_quota() {
            let live = store::live_vcpus(tx)?;
            if live + asked > limit {
                return Ok(Err(Fault::VcpuQuota { limit, live, asked }.into()));
            }
        }
        if self.faults.throttle {
            let region = Some(req.region.as_str());
            if let Err(_refill) = buckets::take_in(tx, &buckets::RUN_INSTANCES_RESOURCE, region, req.count, now)? {
                return Ok(Err(Fault::Throttled {
                    api: "RunInstances (instance tokens)",
                }
                .into()));
            }
        }
        let keepalive_ms = req.keepalive.map(|k| k.as_millis() as i64);
        let mut rows = Vec::with_capacity(req.count as usize);
        for index in 0..req.count {
            let mut attempt = 0;
            let id = loop {
                let id = self.instance_id(req.launch_id.as_str(), index, attempt);
                if !store::exists(tx, &id)? {
                    break id;
                }
                attempt += 1;
            };
            let ready_at = now + self.boot_delay().as_millis() as i64;
            let interrupt_at = match plan.purchase {
                PurchaseOption::Spot => self.interruption(now),
                PurchaseOption::OnDemand => None,
            };
            let mut r = Row {
                seq: 0,
                volume_id: format!("vol-{}", &id[2..]),
                id,
                region: req.region.clone(),
                zone: zone.clone(),
                instance_type: req.instance_type.clone(),
                vcpus: plan.resources.vcpus,
                purchase: plan.purchase,
                launch_id: req.launch_id.to_string(),
                tags: req.tags.clone(),
                hourly_price: plan.price,
                launched_at: now,
                ready_at,
                deadline: req.deadline.timestamp_millis(),
                keepalive_ms,
                interrupt_at,
                last_activity: ready_at,
                busy: false,
                ended_at: None,
                state_reason: None,
                process: self.processes,
                pid: None,
                cpu_mechanism: None,
                volume_gib: VOLUME_GIB,
                volume_deleted_at: None,
                volume_orphaned: false,
            };
            store::insert(tx, &r)?;
            r.seq = tx.last_insert_rowid();
            rows.push(r);
        }
        let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
        if self.processes {
            // Until each agent is recorded, these rows are ours: see `reconcile`.
            store::mark_launching(tx, &ids, self.me)?;
        }
        store::record_launch(tx, req.launch_id.as_str(), &fingerprint, &ids, now)?;
        Ok(Ok((rows, true)))
    }

    /// Starts the agents of freshly committed process instances. On failure, ends what
    /// was started and forgets the launch, so nothing half-made survives.
    fn start_agents(&self, agent: &AgentCommand, req: &LaunchRequest, rows: &mut [Row]) -> Result<()> {
        let state_dir = self.state_dir.clone().expect("process mode has a state dir");
        let notice_ms = self.faults.spot_notice().as_millis() as i64;
        let mut failure = None;
        for r in rows.iter_mut() {
            let res = pricing::resources(&r.instance_type).expect("planned type");
            let spec = VmSpec {
                id: r.id.clone(),
                state_dir: state_dir.clone(),
                instance_type: r.instance_type.clone(),
                vcpus: res.vcpus,
                cpu_percent: res.cpu_percent,
                launched_at: r.launched_at,
                ready_at: r.ready_at,
                deadline: r.deadline,
                keepalive_ms: r.keepalive_ms,
                interrupt_at: r.interrupt_at,
                notice_ms,
                setup: req.setup.clone(),
                command: req.command.clone(),
                record: Some(VmRecord {
                    region: r.region.clone(),
                    zone: r.zone.clone(),
                    purchase: r.purchase,
                    launch_id: r.launch_id.clone(),
                    tags: r.tags.clone(),
                    hourly_price: r.hourly_price.amount.to_string(),
                    volume_id: r.volume_id.clone(),
                    volume_gib: r.volume_gib,
                }),
            };
            match host::start(agent, &spec) {
                Ok(pid) => {
                    self.store.write(|tx| store::set_agent(tx, &r.id, pid))?;
                    r.pid = Some(pid);
                }
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        let Some(e) = failure else { return Ok(()) };
        let now = self.now_ms();
        self.store.write(|tx| {
            for r in rows.iter() {
                store::end(tx, &r.id, now, reason::LAUNCH_FAILED)?;
                store::volume_deleted(tx, &r.id, now)?;
            }
            tx.execute("DELETE FROM launches WHERE launch_id = ?1", [req.launch_id.as_str()])?;
            Ok(())
        })?;
        for r in rows.iter() {
            if let Some(pid) = r.pid {
                vm::signal_group(pid, libc::SIGKILL);
            }
            if let Some(d) = self.vm_dir(&r.id) {
                let _ = std::fs::remove_dir_all(&d.root);
            }
        }
        Err(Error::unexpected(format!(
            "could not start the simulator's VM agent {}: {e}",
            agent.program.display()
        ))
        .with_hint("check the herd installation (the `herd-vm` binary), or set HERD_VM_AGENT"))
    }

    /// What the control plane does after the lazy timers ended instances: tell live
    /// agents (they clean up themselves); for dead ones, kill leftover workloads and
    /// delete the volume, as the cloud would.
    fn after_settle(&self, ended: &[Row]) {
        let now = self.now_ms();
        for r in ended.iter().filter(|r| r.process) {
            match r.pid {
                Some(pid) if vm::agent_alive(pid, &r.id) => vm::signal_group(pid, libc::SIGTERM),
                _ => {
                    if let Some(d) = self.vm_dir(&r.id) {
                        for pg in vm::recorded_workloads(&d) {
                            vm::signal_group(pg, libc::SIGKILL);
                        }
                        let _ = std::fs::remove_dir_all(d.disk());
                    }
                    let _ = self.store.write(|tx| store::volume_deleted(tx, &r.id, now));
                }
            }
        }
    }

    /// Stops the agents of terminated instances and deletes their volumes (unless the
    /// orphan fault makes terminate forget one).
    async fn tear_down(&self, rows: &[Row]) -> Result<()> {
        let pids: Vec<(i32, &Row)> = rows
            .iter()
            .filter_map(|r| r.pid.map(|p| (p, r)))
            .filter(|(p, r)| vm::agent_alive(*p, &r.id))
            .collect();
        for (pid, _) in &pids {
            vm::signal_group(*pid, libc::SIGTERM);
        }
        // Real processes, real time: the injected clock does not apply here.
        let started = std::time::Instant::now();
        // Agents stop within a few ms of SIGTERM (it ends their wait at once): look often
        // at first, less as time goes on.
        while pids.iter().any(|(p, _)| vm::alive(*p)) && started.elapsed() < STOP_GRACE {
            tokio::time::sleep((started.elapsed() / 8).clamp(Duration::from_millis(1), Duration::from_millis(10)))
                .await;
        }
        for (pid, r) in &pids {
            if vm::agent_alive(*pid, &r.id) {
                vm::signal_group(*pid, libc::SIGKILL);
            }
            if let Some(d) = self.vm_dir(&r.id) {
                for pg in vm::recorded_workloads(&d) {
                    vm::signal_group(pg, libc::SIGKILL);
                }
            }
        }
        let now = self.now_ms();
        let mut orphaned = Vec::new();
        let mut deleted = Vec::new();
        for r in rows {
            if self.rng.chance(self.faults.orphan_volume_rate) {
                orphaned.push(r.id.clone());
                continue;
            }
            if let Some(d) = self.vm_dir(&r.id).filter(|_| r.process) {
                match std::fs::remove_dir_all(d.disk()) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(error::io(e, "cannot delete the volume", &d.disk())),
                }
            }
            deleted.push(r.id.clone());
        }
        self.store.write(|tx| {
            for id in &orphaned {
                store::volume_orphaned(tx, id)?;
            }
            for id in &deleted {
                store::volume_deleted(tx, id, now)?;
            }
            Ok(())
        })
    }

    /// The price of a volume per day, like gp3: $0.08 per GiB-month
    /// (aws.amazon.com/ebs/pricing, US East), a month being 730 hours.
    fn volume_cost_per_day(gib: u32) -> Money {
        let per_gib_month = Decimal::new(8, 2);
        Money::usd(per_gib_month * Decimal::from(gib) * Decimal::from(24) / Decimal::from(730))
    }
}

/// The warning for rows rebuilt from VM directories.
fn adoption_warning(dir: &Path, a: &reconcile::Adopted) -> String {
    let list = |ids: &[String]| {
        let mut s = ids.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
        if ids.len() > 5 {
            s += &format!(" and {} more", ids.len() - 5);
        }
        s
    };
    let mut parts = Vec::new();
    if !a.running.is_empty() {
        parts.push(format!(
            "{} running ({}), shown and billed again",
            a.running.len(),
            list(&a.running)
        ));
    }
    if !a.ended.is_empty() {
        parts.push(format!(
            "{} whose agent is gone ({}), recorded as ended with their volumes as leftovers",
            a.ended.len(),
            list(&a.ended)
        ));
    }
    if !a.stopped.is_empty() {
        parts.push(format!(
            "{} with an unreadable spec.json ({}), whose agents were stopped",
            a.stopped.len(),
            list(&a.stopped)
        ));
    }
    format!(
        "the simulator state in {} did not know instances found in its vms/ directory: {}; rebuilt from their spec.json files",
        dir.display(),
        parts.join("; ")
    )
}

/// What the simulator can do, declared once.
fn capabilities(spot: bool, processes: bool, max_launch_batch: u32, faults: &Faults) -> Capabilities {
    let mut c = Capabilities::none(BillingRule::LOCAL);
    // Spot is a switch so tests can see `Unsupported` refusals.
    c.spot = spot;
    // The Launcher falls back from spot to on-demand; the simulator does not.
    c.spot_fallback = false;
    // No GPUs on a simulated host.
    c.gpu = false;
    c.tags = true;
    c.max_launch_batch = max_launch_batch.max(1);
    // EC2's documented TerminateInstances limit: up to 1000 instance ids per call.
    c.max_terminate_batch = 1000;
    c.regions = pricing::local_catalog()
        .regions(Cloud::Local)
        .map(|r| r.name.clone())
        .collect();
    // Launch ids are idempotency keys, like EC2's ClientToken.
    c.idempotent_launch = true;
    // The control plane itself ends instances at their deadline (lazily on every call,
    // eagerly in the agent).
    c.deadline = DeadlineEnforcement::Cloud;
    c.keepalive = true;
    // Commands run through the agent, so only with real processes.
    c.exec = processes;
    c.leftovers = true;
    c.spot_notice = faults.spot_notice();
    c
}

#[async_trait]
impl Provider for LocalProvider {
    fn info(&self) -> ProviderInfo {
        ProviderInfo::new(Cloud::Local, self.account.clone(), DEFAULT_REGION)
    }

    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    fn catalog(&self) -> &Catalog {
        pricing::local_catalog()
    }

    async fn launch(&self, req: &LaunchRequest) -> Result<Vec<Instance>> {
        let api = &buckets::RUN_INSTANCES;
        let t = self.begin_in(api, Some(&req.region))?;
        let plan = self.plan(req)?;
        let agent = if self.processes {
            Some(self.agent_command()?)
        } else {
            None
        };
        let now = self.now_ms();
        let (mut rows, fresh, ended) = self.store.write_or(|tx| {
            // Reconciled first: lost rows must not hold capacity or quota.
            let ended = self.settle(tx, now, true)?;
            Ok(self
                .commit_launch(tx, req, &plan, now)?
                .map(|(rows, fresh)| (rows, fresh, ended)))
        })?;
        self.after_settle(&ended);
        if fresh {
            if let Some(agent) = &agent {
                self.start_agents(agent, req, &mut rows)?;
            }
        }
        self.finish(api, t)?;
        let now = self.now_ms();
        Ok(rows.iter().map(|r| r.to_instance(now)).collect())
    }

    async fn terminate(&self, ids: &[String]) -> Result<Vec<TerminateResult>> {
        let api = &buckets::TERMINATE_INSTANCES;
        let t = self.begin(api)?;
        let now = self.now_ms();
        let (ended_now, ended) = self.store.write_or(|tx| {
            let ended = self.settle(tx, now, true)?;
            let known = store::rows_by_ids(tx, ids)?;
            if let Err(e) = self.check_owner(&known) {
                return Ok(Err(e));
            }
            let live: Vec<Row> = known.into_iter().filter(|r| r.ended_at.is_none()).collect();
            if self.faults.throttle && !live.is_empty() {
                let n = live.len() as u32;
                if let Err(_refill) = buckets::take(tx, &buckets::TERMINATE_INSTANCES_RESOURCE, n, now)? {
                    return Ok(Err(Fault::Throttled {
                        api: "TerminateInstances (instance tokens)",
                    }
                    .into()));
                }
            }
            for r in &live {
                store::end(tx, &r.id, now, reason::TERMINATED)?;
            }
            Ok(Ok((live, ended)))
        })?;
        self.after_settle(&ended);
        self.tear_down(&ended_now).await?;
        // Every id answered, in the order asked (core's rule): ended now, or already gone.
        let mut settled: HashMap<String, TerminateOutcome> = ids
            .iter()
            .map(|id| (id.clone(), TerminateOutcome::AlreadyGone))
            .collect();
        for r in &ended_now {
            settled.insert(r.id.clone(), TerminateOutcome::Terminated);
        }
        let results = in_order(ids, &settled)?;
        self.finish(api, t)?;
        Ok(results)
    }

    async fn list(&self, req: &ListRequest) -> Result<Vec<Instance>> {
        let api = &buckets::DESCRIBE_INSTANCES;
        // Any page size from 1 to 1000 (EC2's maximum), so callers can force many pages.
        // EC2's own minimum of 5 is the AWS backend's to apply, not the simulator's.
        let page_size = req.page_size.unwrap_or(1000).clamp(1, 1000);
        let mut out = Vec::new();
        let mut after = 0i64;
        loop {
            let t = self.begin(api)?;
            let now = self.now_ms();
            let (mut rows, ended) = self.store.write(|tx| {
                // Reconciled once per listing, on its first page.
                let ended = self.settle(tx, now, after == 0)?;
                Ok((store::page(tx, req, after, page_size, now)?, ended))
            })?;
            self.after_settle(&ended);
            // Nothing to commit on a read: a lost response is just a failure.
            self.finish(api, t)?;
            let more = rows.len() > page_size as usize;
            rows.truncate(page_size as usize);
            if let Some(last) = rows.last() {
                after = last.seq;
            }
            out.extend(rows.iter().map(|r| r.to_instance(now)));
            if !more {
                return Ok(out);
            }
        }
    }

    async fn leftovers(&self, owner: Option<&str>) -> Result<Vec<Leftover>> {
        let api = &buckets::DESCRIBE_VOLUMES;
        let t = self.begin(api)?;
        let now = self.now_ms();
        let (rows, ended) = self.store.write(|tx| {
            let ended = self.settle(tx, now, true)?;
            Ok((store::undeleted_volumes(tx)?, ended))
        })?;
        self.after_settle(&ended);
        let owner = owner.map(tags::sanitize_value);
        let mut out = Vec::new();
        for r in rows {
            if r.process {
                // An agent still cleaning up is not a leftover yet.
                if r.pid.is_some_and(|p| vm::agent_alive(p, &r.id)) && !r.volume_orphaned {
                    continue;
                }
                if let Some(d) = self.vm_dir(&r.id) {
                    if !d.disk().exists() {
                        self.store.write(|tx| store::volume_deleted(tx, &r.id, now))?;
                        continue;
                    }
                }
            }
            if owner
                .as_deref()
                .is_some_and(|o| r.tags.get(tags::OWNER).map(String::as_str) != Some(o))
            {
                continue;
            }
            let mut l = Leftover::new(
                "volume",
                &r.volume_id,
                &r.region,
                Self::volume_cost_per_day(r.volume_gib),
            );
            l.tags = r.tags.clone();
            l.reason = format!(
                "{} GiB volume of {} ({}), which ended {} ago ({})",
                r.volume_gib,
                r.id,
                r.instance_type,
                herd_core::guardrails::human(between(store::from_ms(r.ended_at.unwrap_or(now)), store::from_ms(now))),
                r.state_reason.as_deref().unwrap_or("ended")
            );
            out.push(l);
        }
        self.finish(api, t)?;
        Ok(out)
    }

    async fn reap(&self, items: &[Leftover]) -> Result<Vec<ReapResult>> {
        let api = &buckets::DELETE_VOLUME;
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            // One DeleteVolume call per volume, as on EC2.
            let t = self.begin(api)?;
            let now = self.now_ms();
            let row = if item.kind == "volume" {
                self.store.read(|c| store::by_volume(c, &item.id))?
            } else {
                None
            };
            let outcome = match row {
                Some(r) if r.volume_deleted_at.is_none() => {
                    if r.ended_at.is_none() {
                        return Err(Error::new(
                            ErrorKind::Conflict,
                            format!(
                                "VolumeInUse: {} is attached to {}, which is still running",
                                r.volume_id, r.id
                            ),
                        )
                        .with_hint(format!("terminate {} first", r.id)));
                    }
                    if let Some(d) = self.vm_dir(&r.id).filter(|_| r.process) {
                        match std::fs::remove_dir_all(&d.root) {
                            Ok(()) => {}
                            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                            Err(e) => return Err(error::io(e, "cannot delete the volume", &d.root)),
                        }
                    }
                    self.store.write(|tx| store::volume_deleted(tx, &r.id, now))?;
                    TerminateOutcome::Terminated
                }
                _ => TerminateOutcome::AlreadyGone,
            };
            self.finish(api, t)?;
            out.push(ReapResult::new(&item.kind, &item.id, outcome));
        }
        Ok(out)
    }

    async fn exec(&self, id: &str, req: &ExecRequest) -> Result<ExecOutput> {
        self.exec_streaming(id, req, &mut |_, _| {}).await
    }

    /// The agent writes the command's streams to files; herd follows them as they grow.
    async fn exec_streaming(&self, id: &str, req: &ExecRequest, sink: OutputSink<'_>) -> Result<ExecOutput> {
        if !self.processes && !self.virtual_exec {
            return Err(Error::unsupported(
                "this simulator runs virtual instances (no processes), so there is nothing to run commands in",
            )
            .with_hint("build the simulator with processes enabled"));
        }
        let row = self.running_row(id).await?;
        if self.virtual_exec {
            let out = exec::virtual_run(&self.store, &self.clock, &row, req).await?;
            sink(OutputStream::Stdout, out.stdout.as_bytes());
            return Ok(out);
        }
        let dir = self.vm_dir(id).expect("process mode has a state dir");
        exec::run(&self.store, &self.clock, &dir, &row, req, sink).await
    }

    /// A shell in the instance's volume, where its commands run, with the variables they
    /// get. It is a process of this machine, outside the instance's CPU limit.
    async fn login(&self, id: &str) -> Result<Login> {
        if !self.processes {
            return Err(Error::unsupported(
                "this simulator runs virtual instances (no processes), so there is nowhere to log in",
            ));
        }
        let row = self.running_row(id).await?;
        self.check_owner(std::slice::from_ref(&row))?;
        let dir = self.vm_dir(id).expect("process mode has a state dir");
        Ok(Login::Local {
            dir: dir.disk(),
            env: vec![
                ("HERD_INSTANCE_ID".into(), row.id.clone()),
                ("HERD_INSTANCE_TYPE".into(), row.instance_type.clone()),
            ],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_price_is_gp3_per_day() {
        // 8 GiB x $0.08 / 730 h x 24 h = $0.0210... a day.
        let p = LocalProvider::volume_cost_per_day(8);
        assert_eq!(p.amount.round_dp(6), Decimal::new(21_041, 6));
    }

    #[test]
    fn capabilities_follow_the_switches() {
        let c = capabilities(false, false, 10, &Faults::default());
        assert!(!c.spot && !c.exec && !c.gpu && c.leftovers && c.idempotent_launch);
        assert_eq!(c.max_launch_batch, 10);
        assert_eq!(c.max_terminate_batch, 1000);
        assert_eq!(c.spot_notice, Duration::from_secs(120));
        assert_eq!(c.regions.len(), 3);
        assert!(capabilities(true, true, 1000, &Faults::default()).exec);
    }
}
