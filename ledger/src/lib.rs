//! herd-ledger: herd's record of launches, instances (with the hourly price frozen at
//! launch), state changes and spend. The cloud's tags are the truth; the ledger is what
//! lets budgets, `herd ls` and `herd cost` answer without asking every region.
//!
//! Embedded SQLite by default. All SQL lives in the `sqlite` module behind the `Store`
//! trait; README.md describes the seam a PostgreSQL backend would plug into.

mod cost;
mod ledger;
mod model;
mod paths;
mod rules;
mod sqlite;
mod store;
mod sweeps;

pub use ledger::{Ledger, LedgerOptions};
pub use model::{CostGroup, CostRow, InstanceFilter, LaunchFilter, LaunchRecord, LaunchStatus, StateChange};
pub use sweeps::{SweepCellRecord, SweepData, SweepInstanceRecord, SweepRecord, SweepResultRecord};
