//! Running a plan: cells in parallel (at most `concurrency` at once), each on its own
//! instance: launch (trying the region's zones in turn when one has no capacity), wait
//! until running, ship files, set up, run the pending repetitions, terminate.
//!
//! Money safety does not depend on the happy path: every instance is tagged with the
//! sweep and cell before it exists (so `herd reap` and the final sweep below find it
//! after any crash), each cell terminates what it started whether it succeeded, failed,
//! timed out or was cancelled, and when all cells are over the runner terminates every
//! live instance still carrying the sweep's tag. The cloud's own deadline (the per-cell
//! timeout) is the last line.
//!
//! Every finished repetition is written to the ledger at once, so a sweep run again
//! after an interruption skips what is done.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use herd_core::clock::between;
use herd_core::{
    Cloud, Error, ErrorKind, ExecOutput, ExecRequest, Instance, LaunchSpec, Launcher, ListRequest, Result, Tags,
};
use herd_ledger::{Ledger, SweepCellRecord, SweepInstanceRecord, SweepRecord, SweepResultRecord};
use serde::Serialize;
use tokio::sync::{watch, Semaphore};

use crate::metric::{tail, Metric, TAIL_LINES};
use crate::plan::{Cell, Launchers, Plan};
use crate::spec::Spec;

/// Tag keys every sweep instance carries (besides herd's own).
pub const TAG_SWEEP: &str = herd_core::tags::SWEEP;
pub const TAG_CELL: &str = herd_core::tags::SWEEP_CELL;

/// The environment a run sees besides the spec's own.
pub const ENV_REPETITION: &str = "HERD_SWEEP_REPETITION";
pub const ENV_CELL: &str = "HERD_SWEEP_CELL";
/// The simulator's virtual mode reads this as the run's work (see backends/local).
pub const ENV_VIRTUAL_WORK: &str = "HERD_VIRTUAL_WORK";

/// What a front end hears while a sweep runs. Every method has a silent default.
pub trait Progress: Send + Sync {
    fn started(&self, _plan: &Plan, _todo: &BTreeMap<String, u32>) {}
    /// `launching`, `booting`, `setup`, `run 2/3`, ...
    fn stage(&self, _cell: &Cell, _stage: &str) {}
    fn repetition(&self, _cell: &Cell, _repetition: u32, _wall: Duration) {}
    fn event(&self, _cell: &Cell, _event: &str) {}
    /// A command ended on the cell's instance (shipping, setup, a run) having written
    /// `bytes` of output in `wall`: the front end's chatty-log warning measures it.
    fn output(&self, _cell: &Cell, _instance: &Instance, _bytes: u64, _wall: Duration) {}
    fn finished(&self, _cell: &Cell, _outcome: &CellOutcome) {}
}

#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;
impl Progress for NoProgress {}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CellStatus {
    Pending,
    Running,
    Done,
    Failed,
    /// Stopped by Ctrl-C; resumes next time.
    Cancelled,
}

impl CellStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CellStatus::Pending => "pending",
            CellStatus::Running => "running",
            CellStatus::Done => "done",
            CellStatus::Failed => "failed",
            CellStatus::Cancelled => "cancelled",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct CellOutcome {
    pub cell_id: String,
    pub status: CellStatus,
    pub error: Option<String>,
    /// The workload's last output lines, when it failed.
    pub output_tail: Option<String>,
    pub events: Vec<String>,
    /// Repetitions found done in the ledger and not run again.
    pub skipped: u32,
    pub ran: u32,
    /// Real time of the cell, and the part of it spent inside cloud calls (launch, wait,
    /// exec): the rest is the runner's own overhead.
    #[serde(skip)]
    pub elapsed: Duration,
    #[serde(skip)]
    pub in_cloud: Duration,
    /// Real time spent waiting for instances to boot.
    #[serde(skip)]
    pub boot_wait: Duration,
    /// Wall time of the commands themselves (shipping, setup, runs) as measured in the
    /// instance: with `boot_wait`, what is not overhead at all.
    #[serde(skip)]
    pub workload: Duration,
}

impl CellOutcome {
    /// Real time the runner itself spent on this cell (bookkeeping, ledger, metric).
    pub fn overhead(&self) -> Duration {
        self.elapsed.saturating_sub(self.in_cloud)
    }

    /// Everything but boot and the commands' own run time: the runner's overhead plus the
    /// cloud's API and command round trips (for the simulator: its agent's polling).
    pub fn overhead_with_transport(&self) -> Duration {
        self.elapsed
            .saturating_sub(self.boot_wait)
            .saturating_sub(self.workload)
    }
}

#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct RunSummary {
    pub sweep_id: String,
    pub outcomes: Vec<CellOutcome>,
    pub cancelled: bool,
    /// Instances the final clean-up terminated (left by a cancelled launch, a crash).
    pub swept_up: usize,
}

impl RunSummary {
    pub fn count(&self, s: CellStatus) -> usize {
        self.outcomes.iter().filter(|o| o.status == s).count()
    }
    pub fn skipped_repetitions(&self) -> u32 {
        self.outcomes.iter().map(|o| o.skipped).sum()
    }
}

/// Everything a sweep run needs besides the plan.
#[derive(Clone)]
pub struct Runner {
    pub launchers: Launchers,
    pub ledger: Arc<Ledger>,
    pub progress: Arc<dyn Progress>,
    pub owner: String,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}

/// Sends `true` to cancel a running sweep (the CLI wires Ctrl-C to it).
pub type Cancel = watch::Sender<bool>;

pub fn cancel_pair() -> (Cancel, watch::Receiver<bool>) {
    watch::channel(false)
}

impl Runner {
    /// Runs every cell of `plan` that still has repetitions to do. Refuses a plan over
    /// its budget or without cells before launching anything.
    pub async fn run(&self, spec: &Spec, plan: &Plan, cancel: watch::Receiver<bool>) -> Result<RunSummary> {
        plan.check()?;
        let metric = Metric::new(&plan.metric)?;
        let clock = self.any_launcher()?.clock().clone();
        let now = clock.now();
        let existing = self.ledger.sweep(&plan.sweep_id)?;
        self.ledger.upsert_sweep(&SweepRecord {
            sweep_id: plan.sweep_id.clone(),
            name: plan.name.clone(),
            owner: self.owner.clone(),
            plan: serde_json::to_value(plan).map_err(|e| Error::unexpected(format!("plan as JSON: {e}")))?,
            created_at: existing.as_ref().map_or(now, |d| d.sweep.created_at),
            updated_at: now,
        })?;
        let mut done: BTreeMap<String, BTreeSet<u32>> = BTreeMap::new();
        for r in existing.iter().flat_map(|d| &d.results) {
            done.entry(r.cell_id.clone()).or_default().insert(r.repetition);
        }
        let todo: BTreeMap<String, u32> = plan
            .cells
            .iter()
            .map(|c| {
                let d = done
                    .get(&c.id)
                    .map_or(0, |s| s.iter().filter(|r| **r < plan.repetitions).count() as u32);
                (c.id.clone(), plan.repetitions - d)
            })
            .collect();
        self.progress.started(plan, &todo);

        let shared = Arc::new(Shared {
            runner: self.clone(),
            spec: spec.clone(),
            sweep_id: plan.sweep_id.clone(),
            repetitions: plan.repetitions,
            timeout: plan.timeout,
            max_interruptions: spec.max_interruptions,
            metric,
            live: Mutex::new(BTreeMap::new()),
            stamps: Mutex::new(BTreeMap::new()),
        });
        let gate = Arc::new(Semaphore::new(plan.concurrency.max(1)));
        let mut tasks = tokio::task::JoinSet::new();
        for cell in plan.cells.clone() {
            let done = done.remove(&cell.id).unwrap_or_default();
            let (shared, gate, mut cancel) = (shared.clone(), gate.clone(), cancel.clone());
            tasks.spawn(async move {
                let skipped = done.len() as u32;
                if skipped >= shared.repetitions {
                    return CellOutcome::skipped(&cell, skipped);
                }
                let _permit = tokio::select! {
                    p = gate.acquire_owned() => p.expect("the semaphore is never closed"),
                    _ = cancelled(&mut cancel) => return CellOutcome::cancelled(&cell, skipped),
                };
                if *cancel.borrow() {
                    return CellOutcome::cancelled(&cell, skipped);
                }
                let out = shared.run_cell(&cell, done, cancel).await;
                shared.runner.progress.finished(&cell, &out);
                out
            });
        }
        let mut outcomes = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(o) => outcomes.push(o),
                Err(e) => outcomes.push(CellOutcome {
                    cell_id: "?".into(),
                    status: CellStatus::Failed,
                    error: Some(format!("the cell's task failed: {e}")),
                    output_tail: None,
                    events: Vec::new(),
                    skipped: 0,
                    ran: 0,
                    elapsed: Duration::ZERO,
                    in_cloud: Duration::ZERO,
                    boot_wait: Duration::ZERO,
                    workload: Duration::ZERO,
                }),
            }
        }
        // The guard that does not depend on any cell having finished well.
        let swept_up = shared.sweep_up().await?;
        outcomes.sort_by(|a, b| a.cell_id.cmp(&b.cell_id));
        Ok(RunSummary {
            sweep_id: plan.sweep_id.clone(),
            outcomes,
            cancelled: *cancel.borrow(),
            swept_up,
        })
    }

    fn any_launcher(&self) -> Result<&Launcher> {
        self.launchers
            .values()
            .next()
            .ok_or_else(|| Error::config("no cloud is configured for this sweep"))
    }
}

async fn cancelled(rx: &mut watch::Receiver<bool>) {
    while !*rx.borrow() {
        if rx.changed().await.is_err() {
            // The sender is gone: nobody can cancel any more.
            std::future::pending::<()>().await;
        }
    }
}

struct Shared {
    runner: Runner,
    spec: Spec,
    sweep_id: String,
    repetitions: u32,
    timeout: Duration,
    max_interruptions: u32,
    metric: Metric,
    /// Instances started and not yet terminated, whatever their cell is doing.
    live: Mutex<BTreeMap<String, Cloud>>,
    /// When each instance became running and ready, for the record of its end.
    stamps: Mutex<BTreeMap<String, Stamps>>,
}

type Stamps = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// Why a cell stopped early.
struct Failure {
    error: Error,
    tail: Option<String>,
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Failure { error, tail: None }
    }
}

/// One cell's mutable state while it runs.
struct CellRun<'a> {
    cell: &'a Cell,
    launcher: &'a Launcher,
    started: DateTime<Utc>,
    pending: VecDeque<u32>,
    events: Vec<String>,
    ran: u32,
    in_cloud: Duration,
    boot_wait: Duration,
    workload: Duration,
    instances: Vec<String>,
}

impl CellRun<'_> {
    /// Awaits a cloud call, counting its real time as the cloud's, not the runner's.
    async fn cloud<T>(&mut self, f: impl std::future::Future<Output = T>) -> T {
        let t = Instant::now();
        let out = f.await;
        self.in_cloud += t.elapsed();
        out
    }
}

impl Shared {
    async fn run_cell(&self, cell: &Cell, done: BTreeSet<u32>, mut cancel: watch::Receiver<bool>) -> CellOutcome {
        let t0 = Instant::now();
        let Some(launcher) = self.runner.launchers.get(&cell.cloud) else {
            return CellOutcome::failed(cell, format!("no {} backend configured", cell.cloud), None, 0);
        };
        let skipped = done.len() as u32;
        let mut run = CellRun {
            cell,
            launcher,
            started: launcher.clock().now(),
            pending: (0..self.repetitions).filter(|r| !done.contains(r)).collect(),
            events: Vec::new(),
            ran: 0,
            in_cloud: Duration::ZERO,
            boot_wait: Duration::ZERO,
            workload: Duration::ZERO,
            instances: Vec::new(),
        };
        let _ = self.record_cell(cell, CellStatus::Running, None, None, &[]);
        let result = tokio::select! {
            r = self.cell_body(&mut run) => Some(r),
            _ = cancelled(&mut cancel) => None,
        };
        // Always: whatever happened above, what this cell started is ended now.
        let instances = std::mem::take(&mut run.instances);
        let ended = run.cloud(self.terminate_all(launcher, cell, &instances)).await;
        let (status, error, tail) = match (result, ended) {
            (None, _) => (CellStatus::Cancelled, Some("cancelled".to_string()), None),
            (Some(Ok(())), Ok(())) => (CellStatus::Done, None, None),
            (Some(Ok(())), Err(e)) => (CellStatus::Failed, Some(format!("cannot terminate: {e}")), None),
            (Some(Err(f)), _) => (CellStatus::Failed, Some(describe(&f.error)), f.tail),
        };
        let _ = self.record_cell(cell, status, error.as_deref(), tail.as_deref(), &run.events);
        CellOutcome {
            cell_id: cell.id.clone(),
            status,
            error,
            output_tail: tail,
            events: run.events,
            skipped,
            ran: run.ran,
            elapsed: t0.elapsed(),
            in_cloud: run.in_cloud,
            boot_wait: run.boot_wait,
            workload: run.workload,
        }
    }

    /// Instances, one after another, until no repetition is pending. A spot interruption
    /// puts the repetition back and starts over on a new instance.
    async fn cell_body(&self, run: &mut CellRun<'_>) -> std::result::Result<(), Failure> {
        let mut interruptions = 0u32;
        while !run.pending.is_empty() {
            let inst = self.launch(run).await?;
            let used = self.use_instance(run, &inst).await;
            let reason = match &used {
                Ok(()) => None,
                Err(_) => self.end_reason(run, &inst.id).await,
            };
            match used {
                Ok(()) => {}
                Err(f) if reason.as_deref() == Some("deadline") => {
                    return Err(Failure {
                        error: Error::new(
                            ErrorKind::Timeout,
                            format!(
                                "the cell's {} timeout ran out (the instance reached its deadline): {}",
                                herd_core::guardrails::human(self.timeout),
                                f.error.message()
                            ),
                        )
                        .with_hint("raise `timeout` in the spec; finished repetitions are kept"),
                        tail: f.tail,
                    });
                }
                Err(f)
                    if reason
                        .as_deref()
                        .is_some_and(|r| r.contains("spot") || r.contains("interrupt")) =>
                {
                    interruptions += 1;
                    let ev = format!("spot interruption of {} ({})", inst.id, f.error.message());
                    self.event(run, ev);
                    if interruptions > self.max_interruptions {
                        return Err(Failure {
                            error: Error::new(
                                ErrorKind::InsufficientCapacity,
                                format!("{interruptions} spot interruptions; giving up on this cell"),
                            )
                            .with_hint("raise `max_interruptions` or sweep on-demand"),
                            tail: None,
                        });
                    }
                }
                Err(f) => return Err(f),
            }
            let (launcher, cell) = (run.launcher, run.cell);
            let ended = run
                .cloud(self.terminate_all(launcher, cell, std::slice::from_ref(&inst.id)))
                .await;
            ended.map_err(Failure::from)?;
        }
        Ok(())
    }

    async fn use_instance(&self, run: &mut CellRun<'_>, inst: &Instance) -> std::result::Result<(), Failure> {
        let cell = run.cell;
        let launcher = run.launcher;
        let ids = [inst.id.clone()];
        self.stage(cell, "booting");
        let remaining = self.remaining(run)?;
        let booting = Instant::now();
        run.cloud(launcher.wait_until_running(&ids, remaining)).await?;
        run.boot_wait += booting.elapsed();
        let running_at = launcher.clock().now();
        self.record_instance(cell, inst, Some(running_at), None, None, None)?;

        self.stage(cell, "setup");
        for cmd in crate::ship::commands(&self.spec.workload.files) {
            self.exec_ok(run, inst, cmd, "shipping files", None).await?;
        }
        if let Some(setup) = self.spec.workload.setup.clone() {
            self.exec_ok(run, inst, setup, "setup", None).await?;
        }
        let ready_at = launcher.clock().now();
        self.record_instance(cell, inst, Some(running_at), Some(ready_at), None, None)?;

        while let Some(&rep) = run.pending.front() {
            self.stage(cell, &format!("run {}/{}", rep + 1, self.repetitions));
            let cmd = self.spec.workload.run.clone();
            let out = self.exec_ok(run, inst, cmd, "the run", Some(rep)).await?;
            let value = self.metric.extract(&out.stdout, out.wall).map_err(|e| Failure {
                tail: Some(both_tails(&out)),
                error: e,
            })?;
            self.runner.ledger.insert_sweep_result(&SweepResultRecord {
                sweep_id: self.sweep_id.clone(),
                cell_id: cell.id.clone(),
                repetition: rep,
                instance_id: inst.id.clone(),
                wall_ns: out.wall.as_nanos() as u64,
                metric: value,
                finished_at: launcher.clock().now(),
            })?;
            run.pending.pop_front();
            run.ran += 1;
            self.runner.progress.repetition(cell, rep, out.wall);
        }
        Ok(())
    }

    /// Runs a command; a non-zero exit or a timeout fails the cell with the output's end.
    async fn exec_ok(
        &self,
        run: &mut CellRun<'_>,
        inst: &Instance,
        command: String,
        what: &str,
        rep: Option<u32>,
    ) -> std::result::Result<ExecOutput, Failure> {
        let remaining = self.remaining(run)?;
        let mut req = ExecRequest::new(command).timeout(remaining);
        for (k, v) in &self.spec.workload.env {
            req = req.env(k, v);
        }
        req = req.env(ENV_CELL, &run.cell.id);
        if let Some(r) = rep {
            req = req.env(ENV_REPETITION, r.to_string());
            if let Some(w) = self.spec.workload.virtual_work {
                req = req.env(ENV_VIRTUAL_WORK, format!("{}", w.as_secs_f64()));
            }
        }
        let launcher = run.launcher;
        let out = run.cloud(launcher.exec(&inst.id, &req)).await?;
        run.workload += out.wall;
        self.runner.progress.output(run.cell, inst, out.output_bytes, out.wall);
        if out.timed_out {
            return Err(Failure {
                error: Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "{what} was still running when the cell's {} timeout ran out",
                        herd_core::guardrails::human(self.timeout)
                    ),
                )
                .with_hint("raise `timeout` in the spec, or check the workload for a hang"),
                tail: Some(both_tails(&out)),
            });
        }
        if out.exit_code != Some(0) {
            let code = out
                .exit_code
                .map_or("a signal".to_string(), |c| format!("exit code {c}"));
            return Err(Failure {
                error: Error::new(ErrorKind::InvalidSpec, format!("{what} failed with {code}")),
                tail: Some(both_tails(&out)),
            });
        }
        Ok(out)
    }

    /// Launches one instance, trying the region's zones in order on capacity errors.
    async fn launch(&self, run: &mut CellRun<'_>) -> std::result::Result<Instance, Failure> {
        let cell = run.cell;
        self.stage(cell, "launching");
        let zones: Vec<Option<String>> = if cell.zones.is_empty() {
            vec![None]
        } else {
            cell.zones.iter().cloned().map(Some).collect()
        };
        let mut full = Vec::new();
        for zone in zones {
            self.remaining(run)?;
            let mut spec = LaunchSpec::new(&cell.instance_type, 1)
                .region(&cell.region)
                .market(cell.market)
                // The cell's own timer ends it at `timeout`; the cloud's deadline backs it
                // up, never shorter than the launcher accepts (the billing minimum).
                .deadline(self.timeout.max(run.launcher.guardrails().min_deadline))
                .cluster(herd_core::tags::sanitize_value(&self.sweep_id))
                .herd_tag(TAG_SWEEP, &self.sweep_id)
                .herd_tag(TAG_CELL, &cell.id);
            if let Some(z) = &zone {
                spec = spec.zone(z);
            }
            let launcher = run.launcher;
            match run.cloud(launcher.launch(spec)).await {
                Ok(report) => {
                    let inst = report.instances.into_iter().next().ok_or_else(|| {
                        Failure::from(Error::unexpected("the cloud started no instance and reported no error"))
                    })?;
                    self.live().insert(inst.id.clone(), cell.cloud);
                    run.instances.push(inst.id.clone());
                    self.record_instance(cell, &inst, None, None, None, None)?;
                    return Ok(inst);
                }
                Err(e) if e.kind() == ErrorKind::InsufficientCapacity && zone.is_some() => {
                    let z = zone.unwrap_or_default();
                    self.event(run, format!("no capacity in {z}: trying the next zone"));
                    full.push(z);
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::new(
            ErrorKind::InsufficientCapacity,
            format!(
                "no capacity for {} in any zone of {} ({})",
                cell.instance_type,
                cell.region,
                full.join(", ")
            ),
        )
        .with_hint("run the sweep again later (finished repetitions are kept), or drop this region")
        .into())
    }

    /// Why the cloud ended an instance (`deadline`, `spot-interruption`), if it did.
    async fn end_reason(&self, run: &mut CellRun<'_>, id: &str) -> Option<String> {
        let req = ListRequest::new().ids([id.to_string()]);
        let launcher = run.launcher;
        let l = run.cloud(launcher.list(&req)).await.ok()?;
        let i = l.into_iter().next()?;
        if i.state.is_live() && i.state != herd_core::InstanceState::ShuttingDown {
            return None;
        }
        i.state_reason
    }

    fn remaining(&self, run: &CellRun<'_>) -> std::result::Result<Duration, Failure> {
        let used = between(run.started, run.launcher.clock().now());
        match self.timeout.checked_sub(used) {
            Some(r) if !r.is_zero() => Ok(r),
            _ => Err(Error::new(
                ErrorKind::Timeout,
                format!(
                    "the cell ran out of its {} timeout",
                    herd_core::guardrails::human(self.timeout)
                ),
            )
            .with_hint("raise `timeout` in the spec; finished repetitions are kept")
            .into()),
        }
    }

    fn live(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Cloud>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Terminates and records the end of those of `ids` still live.
    async fn terminate_all(&self, launcher: &Launcher, cell: &Cell, ids: &[String]) -> Result<()> {
        let ids: Vec<String> = {
            let live = self.live();
            ids.iter().filter(|i| live.contains_key(*i)).cloned().collect()
        };
        if ids.is_empty() {
            return Ok(());
        }
        launcher.terminate(&ids).await?;
        let now = launcher.clock().now();
        let seen = launcher
            .list(&ListRequest::new().ids(ids.iter().cloned()))
            .await
            .unwrap_or_default();
        for id in &ids {
            self.live().remove(id);
            if let Some(i) = seen.iter().find(|i| &i.id == id) {
                let end = i.ended_at.unwrap_or(now);
                let reason = i.state_reason.clone().unwrap_or_else(|| "terminated".into());
                let _ = self.record_end(cell, i, end, &reason);
            }
        }
        Ok(())
    }

    /// Terminates every live instance tagged with this sweep (per cloud): what a
    /// cancelled launch or a crashed task may have left.
    async fn sweep_up(&self) -> Result<usize> {
        let mut n = 0;
        for launcher in self.runner.launchers.values() {
            let mut tags = Tags::new();
            tags.insert(TAG_SWEEP.into(), self.sweep_id.clone());
            tags.insert(
                herd_core::tags::OWNER.into(),
                herd_core::tags::sanitize_value(&self.runner.owner),
            );
            n += launcher.terminate_tagged(&tags).await?.len();
        }
        self.live().clear();
        Ok(n)
    }

    fn stage(&self, cell: &Cell, s: &str) {
        self.runner.progress.stage(cell, s);
    }

    fn event(&self, run: &mut CellRun<'_>, ev: String) {
        self.runner.progress.event(run.cell, &ev);
        run.events.push(ev);
    }

    fn record_cell(
        &self,
        cell: &Cell,
        status: CellStatus,
        error: Option<&str>,
        tail: Option<&str>,
        events: &[String],
    ) -> Result<()> {
        let now = self
            .runner
            .launchers
            .get(&cell.cloud)
            .map_or_else(Utc::now, |l| l.clock().now());
        self.runner.ledger.upsert_sweep_cell(&SweepCellRecord {
            sweep_id: self.sweep_id.clone(),
            cell_id: cell.id.clone(),
            status: status.as_str().to_string(),
            error: error.map(str::to_string),
            output_tail: tail.map(str::to_string),
            events: events.to_vec(),
            updated_at: now,
        })
    }

    fn record_instance(
        &self,
        cell: &Cell,
        i: &Instance,
        running_at: Option<DateTime<Utc>>,
        ready_at: Option<DateTime<Utc>>,
        ended_at: Option<DateTime<Utc>>,
        end_reason: Option<&str>,
    ) -> Result<()> {
        if ended_at.is_none() {
            self.stamps
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(i.id.clone(), (running_at, ready_at));
        }
        self.runner.ledger.upsert_sweep_instance(&SweepInstanceRecord {
            sweep_id: self.sweep_id.clone(),
            cell_id: cell.id.clone(),
            instance_id: i.id.clone(),
            cloud: i.cloud,
            region: i.region.clone(),
            zone: i.zone.clone(),
            instance_type: i.instance_type.clone(),
            purchase: i.purchase,
            hourly_price: i.hourly_price,
            launched_at: i.launched_at,
            running_at,
            ready_at,
            ended_at,
            end_reason: end_reason.map(str::to_string),
        })
    }

    /// Records an end while keeping the instants already recorded.
    fn record_end(&self, cell: &Cell, i: &Instance, end: DateTime<Utc>, reason: &str) -> Result<()> {
        let (running, ready) = self
            .stamps
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&i.id)
            .unwrap_or_default();
        self.record_instance(cell, i, running, ready, Some(end), Some(reason))
    }
}

impl CellOutcome {
    fn skipped(cell: &Cell, skipped: u32) -> Self {
        CellOutcome {
            status: CellStatus::Done,
            ..CellOutcome::failed(cell, String::new(), None, skipped)
        }
        .no_error()
    }
    fn cancelled(cell: &Cell, skipped: u32) -> Self {
        CellOutcome {
            status: CellStatus::Cancelled,
            ..CellOutcome::failed(cell, "cancelled".into(), None, skipped)
        }
    }
    fn failed(cell: &Cell, error: String, tail: Option<String>, skipped: u32) -> Self {
        CellOutcome {
            cell_id: cell.id.clone(),
            status: CellStatus::Failed,
            error: Some(error),
            output_tail: tail,
            events: Vec::new(),
            skipped,
            ran: 0,
            elapsed: Duration::ZERO,
            in_cloud: Duration::ZERO,
            boot_wait: Duration::ZERO,
            workload: Duration::ZERO,
        }
    }
    fn no_error(mut self) -> Self {
        self.error = None;
        self
    }
}

/// An error as one line with its hint, for the ledger and the report.
fn describe(e: &Error) -> String {
    let mut s = e.message().to_string();
    if let Some(h) = e.hint() {
        if !h.contains('\n') {
            s.push_str(&format!(" (hint: {h})"));
        }
    }
    s
}

fn both_tails(out: &ExecOutput) -> String {
    let mut s = tail(&out.stdout, TAIL_LINES);
    let err = tail(&out.stderr, TAIL_LINES);
    if !err.is_empty() {
        if !s.is_empty() {
            s.push('\n');
        }
        s.push_str(&err);
    }
    s
}
