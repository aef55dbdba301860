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

/// Midnight UTC of the day `t` falls in: where a per-day budget's day starts.
pub fn day_start(t: DateTime<Utc>) -> DateTime<Utc> {
    t.date_naive().and_time(chrono::NaiveTime::MIN).and_utc()
}

pub trait Journal: Send + Sync + Debug {
    /// Money committed by `owner` since `since`: worst-case reservations of launches
    /// still running, accrued cost of those that ended.
    fn committed_since(&self, owner: &str, since: DateTime<Utc>) -> Result<Money>;
    /// Written before the cloud is called: a crash after this leaves a trace to reap by.
    fn launch_started(&self, intent: &LaunchIntent) -> Result<()>;
    /// Checks the per-day budget and records the launch (as [`Journal::launch_started`])
    /// as one step: what `intent.owner` committed since the start of the UTC day of
    /// `intent.created_at`, plus `intent.reservation`, must fit in `per_day`, else
    /// `BudgetExceeded` and nothing is recorded. The Launcher calls this, not
    /// `launch_started`, because a check and a later write let concurrent launches each
    /// see room that only one of them has (ten at once once reserved 2.08 times the
    /// limit). Re-reserving a launch id already recorded with the same request (a resume)
    /// does not count it twice.
    ///
    /// The default runs the two steps one after the other, which is atomic only for a
    /// journal no one else writes to at the same time; a journal shared between threads
    /// or processes (the ledger) must override it with one transaction.
    fn reserve(&self, intent: &LaunchIntent, per_day: Money) -> Result<()> {
        let committed = self.committed_since(&intent.owner, day_start(intent.created_at))?;
        crate::guardrails::check_daily_budget(per_day, intent.reservation, committed)?;
        self.launch_started(intent)
    }
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
