//! The [`Ledger`] handle: opening, queries, and the [`Journal`] the Launcher writes to.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use herd_core::tags::sanitize_value;
use herd_core::{Instance, Journal, LaunchId, LaunchIntent, Money, Result, SharedClock, SystemClock};

use crate::cost;
use crate::model::{CostGroup, CostRow, InstanceFilter, LaunchFilter, LaunchRecord, StateChange};
use crate::sqlite::SqliteStore;
use crate::store::Store;
use crate::sweeps::{SweepCellRecord, SweepData, SweepInstanceRecord, SweepRecord, SweepResultRecord};

/// How a ledger is opened.
#[derive(Debug, Clone)]
pub struct LedgerOptions {
    /// How long to wait for another herd process holding the database before giving up
    /// with a temporary `Unavailable` error.
    pub busy_timeout: Duration,
    /// Dates the state changes the cloud gives no instant for.
    pub clock: SharedClock,
}

impl Default for LedgerOptions {
    /// Ten seconds of patience for the write lock: budget reservations are serialized
    /// through it, so a burst of concurrent launches queues on it; a lock held longer
    /// than that is a stuck process, and the error says so.
    fn default() -> Self {
        LedgerOptions {
            busy_timeout: Duration::from_secs(10),
            clock: Arc::new(SystemClock),
        }
    }
}

/// herd's ledger. `Send + Sync`: one connection behind a mutex, shared by the Launcher
/// (as its [`Journal`]) and the CLI's queries.
#[derive(Debug)]
pub struct Ledger {
    store: Box<dyn Store>,
    path: Option<PathBuf>,
    clock: SharedClock,
}

const _: fn() = || {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Ledger>();
};

impl Ledger {
    /// Opens (creating it and its directory if needed) the ledger at `path`, migrating it
    /// to the latest schema. Errors: `ConfigInvalid` for a file that is empty (0 bytes),
    /// unreadable, not a ledger or written by a newer herd (never taken as a new ledger:
    /// that would forget the day's spend); `Unavailable` (temporary) when another process
    /// holds it past the busy timeout. A file that cannot be used is never modified. On
    /// Unix a new ledger is 0600 in a 0700 directory, and an existing one wider than 0600
    /// is tightened: it says what everyone launched and spent.
    pub fn open(path: &Path) -> Result<Ledger> {
        Ledger::open_with(path, LedgerOptions::default())
    }

    pub fn open_with(path: &Path, opts: LedgerOptions) -> Result<Ledger> {
        Ok(Ledger {
            store: Box::new(SqliteStore::open(path, opts.busy_timeout)?),
            path: Some(path.to_path_buf()),
            clock: opts.clock,
        })
    }

    /// A ledger that lives as long as this handle (tests, runs that keep no record).
    pub fn in_memory() -> Result<Ledger> {
        Ledger::in_memory_with(LedgerOptions::default())
    }

    pub fn in_memory_with(opts: LedgerOptions) -> Result<Ledger> {
        Ok(Ledger {
            store: Box::new(SqliteStore::in_memory(opts.busy_timeout)?),
            path: None,
            clock: opts.clock,
        })
    }

    /// `$HERD_LEDGER`, else `$XDG_DATA_HOME/herd/ledger.db`, else `$HOME/.local/share/herd/ledger.db`.
    pub fn default_path() -> PathBuf {
        crate::paths::default_path(|k| std::env::var_os(k))
    }

    /// The schema version this herd writes (`PRAGMA user_version`).
    pub fn schema_version() -> u32 {
        crate::sqlite::SCHEMA_VERSION
    }

    /// The database file, `None` when in memory.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Instances matching `f`, most recently launched first.
    pub fn instances(&self, f: &InstanceFilter) -> Result<Vec<Instance>> {
        self.store.instances(f)
    }

    /// Launches matching `f`, newest first.
    pub fn launches(&self, f: &LaunchFilter) -> Result<Vec<LaunchRecord>> {
        self.store.launches(f)
    }

    /// The recorded transitions of one instance, oldest first.
    pub fn state_changes(&self, instance_id: &str) -> Result<Vec<StateChange>> {
        self.store.state_changes(instance_id)
    }

    /// Spend within `[from, to]` (from the beginning when `from` is `None`) grouped by
    /// `by`, optionally for one owner; rows in key order. Instances the ledger still sees
    /// live are billed until `to` (never past their deadline); `projected` adds what they
    /// will cost until their deadline.
    pub fn cost_report(
        &self,
        by: CostGroup,
        from: Option<DateTime<Utc>>,
        to: DateTime<Utc>,
        owner: Option<&str>,
    ) -> Result<Vec<CostRow>> {
        let owner_key = owner.map(sanitize_value);
        let runs = self.store.runs_between(from, to, owner_key.as_deref())?;
        Ok(cost::report(&runs, by, from, to))
    }
}

/// Sweep records (see [`crate::sweeps`]): what `herd sweep run` resumes from and `herd
/// sweep report` reads.
impl Ledger {
    pub fn upsert_sweep(&self, s: &SweepRecord) -> Result<()> {
        self.store.upsert_sweep(s)
    }
    pub fn upsert_sweep_cell(&self, c: &SweepCellRecord) -> Result<()> {
        self.store.upsert_sweep_cell(c)
    }
    pub fn upsert_sweep_instance(&self, i: &SweepInstanceRecord) -> Result<()> {
        self.store.upsert_sweep_instance(i)
    }
    /// Idempotent: a repetition already recorded stays as it was.
    pub fn insert_sweep_result(&self, r: &SweepResultRecord) -> Result<()> {
        self.store.insert_sweep_result(r)
    }
    pub fn sweep(&self, sweep_id: &str) -> Result<Option<SweepData>> {
        self.store.sweep(sweep_id)
    }
    /// Sweeps, most recently updated first.
    pub fn sweeps(&self, limit: Option<usize>) -> Result<Vec<SweepRecord>> {
        self.store.sweeps(limit)
    }
}

impl Journal for Ledger {
    fn committed_since(&self, owner: &str, since: DateTime<Utc>) -> Result<Money> {
        let launches = self.store.launches_with_runs(&sanitize_value(owner), since)?;
        Ok(launches.iter().map(|(l, runs)| cost::committed(l, runs)).sum())
    }

    fn launch_started(&self, intent: &LaunchIntent) -> Result<()> {
        self.store.insert_launch(intent)
    }

    /// The day's total and the new launch's row in one immediate transaction, so ten
    /// herds launching at once (ten processes on one file) can never all fit in room
    /// meant for four: each waits for the write lock (the busy timeout), then sees what
    /// the others reserved.
    fn reserve(&self, intent: &LaunchIntent, per_day: Money) -> Result<()> {
        let since = herd_core::journal::day_start(intent.created_at);
        self.store
            .reserve_launch(intent, &sanitize_value(&intent.owner), since, &|launches| {
                let committed: Money = launches.iter().map(|(l, runs)| cost::committed(l, runs)).sum();
                herd_core::guardrails::check_daily_budget(per_day, intent.reservation, committed)
            })
    }

    fn launch_failed(&self, launch_id: &LaunchId, error: &str) -> Result<()> {
        self.store.fail_launch(launch_id.as_str(), error)
    }

    fn instances_seen(&self, instances: &[Instance]) -> Result<()> {
        self.store.record_sightings(instances, self.clock.now())
    }

    fn instances_ended(&self, ids: &[String], at: DateTime<Utc>, reason: &str) -> Result<()> {
        self.store.record_ends(ids, at, reason)
    }
}
