//! The storage seam. Everything the ledger persists goes through [`Store`]; the SQLite
//! implementation lives in `sqlite/`, and a PostgreSQL one for a shared team ledger
//! would implement the same trait. Stores persist and query; the decisions (forward-only
//! states, frozen prices, which launch an instance belongs to) live in `rules.rs`, and
//! all money arithmetic in `cost.rs`, so every backend behaves the same.

use std::fmt::Debug;

use chrono::{DateTime, Utc};
use herd_core::{Cloud, Instance, InstanceState, LaunchIntent, Money, Result};

use crate::model::{InstanceFilter, LaunchFilter, LaunchRecord, StateChange};

/// The billing facts of one instance, with the keys a cost report groups by.
#[derive(Clone, Debug)]
pub(crate) struct Run {
    pub cloud: Cloud,
    /// The launch it belongs to (batches folded into their launch).
    pub launch_id: String,
    pub cluster: Option<String>,
    pub instance_type: String,
    pub state: InstanceState,
    /// Frozen at the first sighting.
    pub hourly_price: Money,
    pub launched_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub deadline: DateTime<Utc>,
}

/// Decides, from the launches an owner made since the start of the day (each with its
/// instances), whether one more may be reserved: `Err` refuses it.
pub(crate) type Admit<'a> = &'a dyn Fn(&[(LaunchRecord, Vec<Run>)]) -> Result<()>;

pub(crate) trait Store: crate::sweeps::SweepStore + Send + Sync + Debug {
    /// Records a launch about to be sent to the cloud (status `started`).
    fn insert_launch(&self, intent: &LaunchIntent) -> Result<()>;
    /// `insert_launch` only if `admit` accepts the other launches `owner_key` created
    /// since `since`, read in the same write transaction (so two stores on one database,
    /// in two processes, can never both admit into the same room). A launch already
    /// recorded and not failed is a resume: it was admitted before and is not checked.
    fn reserve_launch(
        &self,
        intent: &LaunchIntent,
        owner_key: &str,
        since: DateTime<Utc>,
        admit: Admit<'_>,
    ) -> Result<()>;
    /// Marks a launch (or the launch a batch id belongs to) failed.
    fn fail_launch(&self, launch_id: &str, error: &str) -> Result<()>;
    /// Upserts sightings in one transaction, following `rules::step`.
    fn record_sightings(&self, seen: &[Instance], now: DateTime<Utc>) -> Result<()>;
    /// Marks instances terminated at `at` unless they ended earlier, in one transaction.
    fn record_ends(&self, ids: &[String], at: DateTime<Utc>, reason: &str) -> Result<()>;

    fn instances(&self, f: &InstanceFilter) -> Result<Vec<Instance>>;
    fn launches(&self, f: &LaunchFilter) -> Result<Vec<LaunchRecord>>;
    fn state_changes(&self, instance_id: &str) -> Result<Vec<StateChange>>;
    /// Launches created by `owner_key` (a sanitized owner) since `since`, each with its instances.
    fn launches_with_runs(&self, owner_key: &str, since: DateTime<Utc>) -> Result<Vec<(LaunchRecord, Vec<Run>)>>;
    /// Instances launched by `to` and not ended before `from`, optionally of one owner key.
    fn runs_between(&self, from: Option<DateTime<Utc>>, to: DateTime<Utc>, owner_key: Option<&str>)
        -> Result<Vec<Run>>;
}
