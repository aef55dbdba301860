//! The [`Ledger`] handle: opening, queries, and the [`Journal`] the Launcher writes to.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use herd_core::{Error, Instance, Journal, LaunchId, LaunchIntent, Money, Result, SharedClock, SystemClock};

use crate::model::{CostGroup, CostRow, InstanceFilter, LaunchFilter, LaunchRecord, StateChange};

/// How a ledger is opened.
#[derive(Debug, Clone)]
pub struct LedgerOptions {
    /// How long to wait for another herd process holding the database before giving up
    /// with a temporary `Unavailable` error.
    pub busy_timeout: Duration,
    /// Time for state changes the cloud gives no instant for.
    pub clock: SharedClock,
}

impl Default for LedgerOptions {
    fn default() -> Self {
        LedgerOptions {
            busy_timeout: Duration::from_secs(2),
            clock: std::sync::Arc::new(SystemClock),
        }
    }
}

/// herd's ledger. Cheap to share: `Send + Sync`, one connection behind a mutex.
#[derive(Debug)]
pub struct Ledger {
    path: Option<PathBuf>,
}

fn not_yet() -> Error {
    Error::unexpected("the ledger is not implemented yet")
}

impl Ledger {
    /// Opens (creating if needed) the ledger at `path` and migrates it to the latest schema.
    pub fn open(path: &Path) -> Result<Ledger> {
        Ledger::open_with(path, LedgerOptions::default())
    }

    pub fn open_with(path: &Path, _opts: LedgerOptions) -> Result<Ledger> {
        Ok(Ledger {
            path: Some(path.to_path_buf()),
        })
    }

    /// A ledger that lives as long as this handle (tests, `--no-ledger` runs).
    pub fn in_memory() -> Result<Ledger> {
        Ledger::in_memory_with(LedgerOptions::default())
    }

    pub fn in_memory_with(_opts: LedgerOptions) -> Result<Ledger> {
        Ok(Ledger { path: None })
    }

    /// `$HERD_LEDGER`, else `$XDG_DATA_HOME/herd/ledger.db`, else `$HOME/.local/share/herd/ledger.db`.
    pub fn default_path() -> PathBuf {
        PathBuf::from("ledger.db")
    }

    /// The database file, `None` when in memory.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Instances matching `f`, newest launch first.
    pub fn instances(&self, _f: &InstanceFilter) -> Result<Vec<Instance>> {
        Err(not_yet())
    }

    /// Launches matching `f`, newest first.
    pub fn launches(&self, _f: &LaunchFilter) -> Result<Vec<LaunchRecord>> {
        Err(not_yet())
    }

    /// The recorded transitions of one instance, oldest first.
    pub fn state_changes(&self, _instance_id: &str) -> Result<Vec<StateChange>> {
        Err(not_yet())
    }

    /// Spend within `[from, to]` grouped by `by`, optionally for one owner.
    pub fn cost_report(
        &self,
        _by: CostGroup,
        _from: Option<DateTime<Utc>>,
        _to: DateTime<Utc>,
        _owner: Option<&str>,
    ) -> Result<Vec<CostRow>> {
        Err(not_yet())
    }
}

impl Journal for Ledger {
    fn committed_since(&self, _owner: &str, _since: DateTime<Utc>) -> Result<Money> {
        Err(not_yet())
    }
    fn launch_started(&self, _intent: &LaunchIntent) -> Result<()> {
        Err(not_yet())
    }
    fn launch_failed(&self, _launch_id: &LaunchId, _error: &str) -> Result<()> {
        Err(not_yet())
    }
    fn instances_seen(&self, _instances: &[Instance]) -> Result<()> {
        Err(not_yet())
    }
    fn instances_ended(&self, _ids: &[String], _at: DateTime<Utc>, _reason: &str) -> Result<()> {
        Err(not_yet())
    }
}
