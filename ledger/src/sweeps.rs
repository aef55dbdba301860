//! Sweep records: a sweep (its plan), its cells' status, the instances each cell ran on
//! (price frozen at launch) and one row per finished repetition. A repetition row is
//! written the moment it finishes, so `herd sweep run` after an interruption knows
//! exactly what is left to do.

use chrono::{DateTime, Utc};
use herd_core::{Cloud, Money, PurchaseOption, Result};
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SweepRecord {
    pub sweep_id: String,
    pub name: String,
    pub owner: String,
    /// The plan as the sweep runner wrote it (cells, metric, prices quoted).
    pub plan: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SweepCellRecord {
    pub sweep_id: String,
    pub cell_id: String,
    /// `pending`, `running`, `done`, `failed` (the runner's words).
    pub status: String,
    pub error: Option<String>,
    /// The workload's last output lines when the cell failed.
    pub output_tail: Option<String>,
    /// What happened on the way: capacity fallbacks, spot interruptions.
    pub events: Vec<String>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SweepInstanceRecord {
    pub sweep_id: String,
    pub cell_id: String,
    pub instance_id: String,
    pub cloud: Cloud,
    pub region: String,
    pub zone: String,
    pub instance_type: String,
    pub purchase: PurchaseOption,
    /// Frozen at launch; never updated.
    pub hourly_price: Money,
    pub launched_at: DateTime<Utc>,
    pub running_at: Option<DateTime<Utc>>,
    /// When files were shipped and setup finished.
    pub ready_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub end_reason: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SweepResultRecord {
    pub sweep_id: String,
    pub cell_id: String,
    /// 0-based.
    pub repetition: u32,
    pub instance_id: String,
    /// Measured in the instance.
    pub wall_ns: u64,
    pub metric: f64,
    pub finished_at: DateTime<Utc>,
}

/// Everything recorded about one sweep.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SweepData {
    pub sweep: SweepRecord,
    pub cells: Vec<SweepCellRecord>,
    pub instances: Vec<SweepInstanceRecord>,
    pub results: Vec<SweepResultRecord>,
}

/// The storage side of sweeps; part of [`crate::store::Store`].
pub(crate) trait SweepStore {
    /// Inserts the sweep, or updates its plan and `updated_at` when it exists.
    fn upsert_sweep(&self, s: &SweepRecord) -> Result<()>;
    fn upsert_sweep_cell(&self, c: &SweepCellRecord) -> Result<()>;
    /// Inserts or updates (running/ready/ended instants); the price is never changed.
    fn upsert_sweep_instance(&self, i: &SweepInstanceRecord) -> Result<()>;
    /// A repetition already recorded is left as it was.
    fn insert_sweep_result(&self, r: &SweepResultRecord) -> Result<()>;
    fn sweep(&self, sweep_id: &str) -> Result<Option<SweepData>>;
    /// Newest first.
    fn sweeps(&self, limit: Option<usize>) -> Result<Vec<SweepRecord>>;
}
