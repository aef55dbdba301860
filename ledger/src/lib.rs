//! herd-ledger: herd's record of launches, instances (with the hourly price frozen at
//! launch), state changes and spend. The cloud's tags are the truth; the ledger is what
//! lets budgets, `herd ls` and `herd cost` answer without asking every region.
//!
//! Embedded SQLite by default. All SQL lives behind the `sqlite` module; see README.md
//! for the seam a PostgreSQL backend would plug into.

mod ledger;
mod model;

pub use ledger::{Ledger, LedgerOptions};
pub use model::{CostGroup, CostRow, InstanceFilter, LaunchFilter, LaunchRecord, LaunchStatus, StateChange};
