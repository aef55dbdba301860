//! How each cloud turns running time into a bill. The rules are data so that quotes,
//! accrued costs and the simulator all use the same arithmetic.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::clock::between;
use crate::money::Money;
use crate::types::Cloud;

/// Billing granularity and minimum charge for one run of an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BillingRule {
    /// Usage is rounded up to a multiple of this.
    pub increment: Duration,
    /// Each run is charged at least this much.
    pub minimum: Duration,
}

impl BillingRule {
    /// AWS EC2, Linux on-demand and spot: "per-second billing, with a minimum of 60
    /// seconds" (aws.amazon.com/ec2/pricing, "Per Second Billing").
    pub const AWS: BillingRule = BillingRule {
        increment: Duration::from_secs(1),
        minimum: Duration::from_secs(60),
    };
    /// GCE: "All vCPUs, GPUs, and GB of memory are charged a minimum of 1 minute ...
    /// After 1 minute, instances are charged in 1 second increments"
    /// (cloud.google.com/compute/vm-instance-pricing, "Billing model").
    pub const GCP: BillingRule = BillingRule {
        increment: Duration::from_secs(1),
        minimum: Duration::from_secs(60),
    };
    /// Azure VMs are metered per minute: "you are billed ... for the number of minutes"
    /// a VM is allocated; partial minutes round up (azure.microsoft.com pricing FAQ for
    /// Linux Virtual Machines).
    pub const AZURE: BillingRule = BillingRule {
        increment: Duration::from_secs(60),
        minimum: Duration::from_secs(60),
    };
    /// The simulator bills like EC2 so its numbers look like a real bill.
    pub const LOCAL: BillingRule = BillingRule::AWS;

    pub fn for_cloud(cloud: Cloud) -> BillingRule {
        match cloud {
            Cloud::Aws => Self::AWS,
            Cloud::Gcp => Self::GCP,
            Cloud::Azure => Self::AZURE,
            Cloud::Local => Self::LOCAL,
        }
    }

    /// Seconds billed for `used` of running time.
    pub fn billable_seconds(&self, used: Duration) -> u64 {
        // Nothing ran, nothing billed: the minimum applies to a run, and an instance that
        // ended before it started (EC2 bills from `running`; the simulator's `lost: never
        // started`) had none.
        if used.is_zero() {
            return 0;
        }
        let used = used.max(self.minimum);
        let inc = self.increment.as_secs().max(1);
        // Saturating, so an absurd duration costs an absurd amount instead of a panic.
        let secs = used.as_secs().saturating_add(u64::from(used.subsec_nanos() > 0));
        secs.div_ceil(inc).saturating_mul(inc)
    }

    /// The charge for running `used` at `hourly`.
    pub fn charge(&self, hourly: Money, used: Duration) -> Money {
        hourly.per_hour_for_seconds(self.billable_seconds(used))
    }

    /// The charge of an instance that ran from `start` until `end`, counted within the
    /// window `[from, to]` (a report's period). The minimum applies to the whole run,
    /// and is charged in the window that holds the start.
    pub fn accrued(
        &self,
        hourly: Money,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
    ) -> Money {
        let whole = self.billable_seconds(between(start, end));
        let ws = from.map_or(start, |f| f.max(start));
        let we = to.map_or(end, |t| t.min(end));
        if we < ws {
            return Money::ZERO;
        }
        let inside = between(ws, we).as_secs();
        let run = between(start, end).as_secs();
        // Whatever the minimum or the rounding added beyond the real run is charged at
        // the start of the run.
        let extra = whole.saturating_sub(run);
        let secs = inside + if ws == start { extra } else { 0 };
        hourly.per_hour_for_seconds(secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::Decimal;

    #[test]
    fn minimum_and_increments() {
        assert_eq!(BillingRule::AWS.billable_seconds(Duration::from_secs(5)), 60);
        assert_eq!(BillingRule::AWS.billable_seconds(Duration::from_millis(61_200)), 62);
        assert_eq!(BillingRule::AZURE.billable_seconds(Duration::from_secs(61)), 120);
        assert_eq!(BillingRule::GCP.billable_seconds(Duration::from_secs(3600)), 3600);
    }

    #[test]
    fn accrued_over_windows_adds_up() {
        let hourly = Money::usd(Decimal::new(36, 1)); // $3.60/h = $0.001/s
        let t0 = DateTime::from_timestamp(1_000_000, 0).unwrap();
        let t1 = t0 + chrono::Duration::seconds(30);
        let mid = t0 + chrono::Duration::seconds(10);
        let whole = BillingRule::AWS.accrued(hourly, t0, t1, None, None);
        assert_eq!(whole.amount, Decimal::new(6, 2)); // 60 s minimum
        let a = BillingRule::AWS.accrued(hourly, t0, t1, None, Some(mid));
        let b = BillingRule::AWS.accrued(hourly, t0, t1, Some(mid), None);
        assert_eq!(a + b, whole);
    }

    #[test]
    fn an_instance_that_never_ran_costs_nothing() {
        let hourly = Money::usd(Decimal::new(36, 1));
        let t0 = DateTime::from_timestamp(1_000_000, 0).unwrap();
        assert_eq!(BillingRule::AWS.accrued(hourly, t0, t0, None, None), Money::ZERO);
        assert_eq!(BillingRule::AWS.billable_seconds(Duration::from_millis(1)), 60);
    }
}
