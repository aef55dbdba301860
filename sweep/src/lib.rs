//! herd-sweep: one workload across clouds, regions, instance types and markets, and a
//! price-performance report people can trust.
//!
//! [`spec`] reads the TOML spec, [`plan`] expands the matrix through the catalog and
//! prices its worst case, [`run`] runs the cells with bounded concurrency through the
//! [`herd_core::Launcher`] (always terminating what it started), recording every
//! repetition in the ledger so an interrupted sweep resumes, [`score`] turns records into
//! billed costs, work per dollar, time-to-result and the Pareto front, and [`report`]
//! writes the table, CSV, JSON, SVG/PNG charts and an HTML page.

pub mod fixture;
pub mod metric;
pub mod plan;
pub mod report;
pub mod run;
pub mod score;
pub mod ship;
pub mod spec;

pub use plan::{plan, Cell, Dropped, Launchers, Plan};
pub use run::{cancel_pair, Cancel, CellOutcome, CellStatus, NoProgress, Progress, RunSummary, Runner};
pub use score::{score, BilledSplit, CellScore, Scores, Stats};
pub use spec::Spec;
