//! The ledger's public records and query filters: what the CLI reads back.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use herd_core::suggest::did_you_mean;
use herd_core::{Cloud, Error, InstanceState, LaunchId, Market, Money};
use serde::Serialize;

/// Which instances [`crate::Ledger::instances`] returns. Empty fields match everything.
#[derive(Default, Clone, Debug)]
pub struct InstanceFilter {
    pub cloud: Option<Cloud>,
    /// The launching owner (raw, or as sanitized in the `herd-owner` tag).
    pub owner: Option<String>,
    pub cluster: Option<String>,
    /// A launch id; also matches the instances of its batches (`<id>-b0`, `<id>-od`).
    pub launch_id: Option<String>,
    /// Instance ids; empty means any.
    pub ids: Vec<String>,
    /// Only instances the ledger last saw live (not terminated).
    pub live_only: bool,
    /// Launched at or after this instant.
    pub since: Option<DateTime<Utc>>,
    pub limit: Option<usize>,
}

/// Which launches [`crate::Ledger::launches`] returns. Empty fields match everything.
#[derive(Default, Clone, Debug)]
pub struct LaunchFilter {
    pub owner: Option<String>,
    pub cluster: Option<String>,
    /// Created at or after this instant.
    pub since: Option<DateTime<Utc>>,
    pub limit: Option<usize>,
}

/// Where a launch got to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LaunchStatus {
    /// Recorded before the cloud was called; no instance seen yet.
    Started,
    /// At least one of its instances was seen.
    Launched,
    /// The launch returned an error (instances it started were rolled back).
    Failed,
}

impl LaunchStatus {
    pub const ALL: [LaunchStatus; 3] = [LaunchStatus::Started, LaunchStatus::Launched, LaunchStatus::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            LaunchStatus::Started => "started",
            LaunchStatus::Launched => "launched",
            LaunchStatus::Failed => "failed",
        }
    }
}

impl fmt::Display for LaunchStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for LaunchStatus {
    type Err = Error;
    fn from_str(s: &str) -> herd_core::Result<Self> {
        LaunchStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| Error::unexpected(format!("unknown launch status `{s}` in the ledger")))
    }
}

/// A launch as the ledger recorded it.
#[derive(Clone, Debug, Serialize)]
pub struct LaunchRecord {
    pub launch_id: LaunchId,
    pub cloud: Cloud,
    pub account: String,
    pub owner: String,
    pub cluster: String,
    /// The request's fingerprint, to tell a retry from a different launch under one id.
    pub fingerprint: String,
    pub instance_type: String,
    pub region: String,
    pub count: u32,
    pub market: Market,
    /// The hourly price quoted at launch.
    pub hourly_price: Money,
    /// The worst case reserved against the budget: count x on-demand price x deadline.
    pub reservation: Money,
    pub deadline: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub status: LaunchStatus,
    pub error: Option<String>,
}

/// One observed transition of an instance's state.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StateChange {
    pub instance_id: String,
    /// `None` for the first sighting.
    pub from: Option<InstanceState>,
    pub to: InstanceState,
    pub at: DateTime<Utc>,
    pub reason: Option<String>,
}

/// How [`crate::Ledger::cost_report`] groups instances.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CostGroup {
    Cluster,
    Launch,
    /// UTC calendar days; an instance running over midnight is split between them.
    Day,
    InstanceType,
    Cloud,
}

impl CostGroup {
    pub const ALL: [CostGroup; 5] = [
        CostGroup::Cluster,
        CostGroup::Launch,
        CostGroup::Day,
        CostGroup::InstanceType,
        CostGroup::Cloud,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CostGroup::Cluster => "cluster",
            CostGroup::Launch => "launch",
            CostGroup::Day => "day",
            CostGroup::InstanceType => "instance-type",
            CostGroup::Cloud => "cloud",
        }
    }
}

impl fmt::Display for CostGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CostGroup {
    type Err = Error;
    fn from_str(s: &str) -> herd_core::Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "cluster" => Ok(CostGroup::Cluster),
            "launch" => Ok(CostGroup::Launch),
            "day" | "date" => Ok(CostGroup::Day),
            "instance-type" | "instance_type" | "type" => Ok(CostGroup::InstanceType),
            "cloud" => Ok(CostGroup::Cloud),
            _ => Err(Error::invalid_spec(format!("unknown cost grouping `{s}`"))
                .with_suggestions(did_you_mean(s, CostGroup::ALL.iter().map(|g| g.as_str()), 2))
                .with_hint("group by one of: cluster, launch, day, instance-type, cloud")),
        }
    }
}

/// One line of a cost report.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CostRow {
    /// The group's value: a cluster, launch id, `YYYY-MM-DD`, instance type or cloud.
    pub key: String,
    /// Instances that ran within the period.
    pub instances: u32,
    /// Of those, the ones still live at the end of the period.
    pub live: u32,
    /// Cost accrued within the period, at the prices frozen at launch.
    pub accrued: Money,
    /// `accrued` plus what live instances will cost until their deadline: the worst case still to come.
    pub projected: Money,
    /// Summed hourly price of the live instances.
    pub hourly_now: Money,
}
