//! Where the Launcher records what it did, before and after each cloud call, so that
//! nothing it starts is ever untracked. The ledger implements it; the cloud's tags stay
//! the source of truth.

use std::fmt::Debug;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::money::Money;
use crate::types::{Cloud, Instance, LaunchId, Market};

/// A launch as it is about to be sent to the cloud.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LaunchIntent {
    pub launch_id: LaunchId,
    pub cloud: Cloud,
    pub account: String,
    pub owner: String,
    pub cluster: String,
    pub fingerprint: String,
    pub instance_type: String,
    pub region: String,
    pub count: u32,
    pub market: Market,
    pub hourly_price: Money,
    /// count x on-demand price x deadline, under the billing rule.
    pub reservation: Money,
    pub deadline: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

pub trait Journal: Send + Sync + Debug {
    /// Money committed by `owner` since `since`: worst-case reservations of launches
    /// still running, accrued cost of those that ended.
    fn committed_since(&self, owner: &str, since: DateTime<Utc>) -> Result<Money>;
    /// Written before the cloud is called: a crash after this leaves a trace to reap by.
    fn launch_started(&self, intent: &LaunchIntent) -> Result<()>;
    /// The launch ended in an error; `launched` instances (if any) were seen first.
    fn launch_failed(&self, launch_id: &LaunchId, error: &str) -> Result<()>;
    /// Upserts instances as the cloud reports them; records state changes; keeps the
    /// price of the first sighting (frozen at launch).
    fn instances_seen(&self, instances: &[Instance]) -> Result<()>;
    /// Marks instances ended at `at` (terminate), unless they already ended earlier.
    fn instances_ended(&self, ids: &[String], at: DateTime<Utc>, reason: &str) -> Result<()>;
}

/// For library users and tests that keep no ledger.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoJournal;

impl Journal for NoJournal {
    fn committed_since(&self, _owner: &str, _since: DateTime<Utc>) -> Result<Money> {
        Ok(Money::ZERO)
    }
    fn launch_started(&self, _intent: &LaunchIntent) -> Result<()> {
        Ok(())
    }
    fn launch_failed(&self, _launch_id: &LaunchId, _error: &str) -> Result<()> {
        Ok(())
    }
    fn instances_seen(&self, _instances: &[Instance]) -> Result<()> {
        Ok(())
    }
    fn instances_ended(&self, _ids: &[String], _at: DateTime<Utc>, _reason: &str) -> Result<()> {
        Ok(())
    }
}
