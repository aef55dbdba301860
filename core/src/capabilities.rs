//! What a backend can do, declared once as data (after OpenDAL's `Capability`). The
//! Launcher checks requests against it before any API call, and the conformance suite
//! picks its cases from it.

use std::time::Duration;

use serde::Serialize;

use crate::billing::BillingRule;

/// Who makes sure an instance is gone by its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeadlineEnforcement {
    /// The cloud's control plane deletes it (GCE `maxRunDuration`, the simulator).
    Cloud,
    /// A watchdog in the guest shuts it down and the cloud then terminates it (EC2).
    Guest,
    /// Nothing does: launches are refused, since every launch must have a deadline.
    None,
}

#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Capabilities {
    pub spot: bool,
    /// spot-or-on-demand handled by the backend itself.
    pub spot_fallback: bool,
    pub gpu: bool,
    pub tags: bool,
    /// Most instances one launch call may ask for; larger launches are split.
    pub max_launch_batch: u32,
    /// Most instances one terminate call may name.
    pub max_terminate_batch: u32,
    /// Regions this backend serves.
    pub regions: Vec<String>,
    /// Same launch id twice yields the same instances.
    pub idempotent_launch: bool,
    pub deadline: DeadlineEnforcement,
    pub keepalive: bool,
    /// Commands can be run inside an instance (`Provider::exec`).
    pub exec: bool,
    pub leftovers: bool,
    pub billing: BillingRule,
    /// Warning given before a spot instance is reclaimed.
    pub spot_notice: Duration,
}

impl Capabilities {
    /// Nothing supported; backends switch on what they have.
    pub fn none(billing: BillingRule) -> Self {
        Capabilities {
            spot: false,
            spot_fallback: false,
            gpu: false,
            tags: false,
            max_launch_batch: 1,
            max_terminate_batch: 1,
            regions: Vec::new(),
            idempotent_launch: false,
            deadline: DeadlineEnforcement::None,
            keepalive: false,
            exec: false,
            leftovers: false,
            billing,
            spot_notice: Duration::ZERO,
        }
    }
}
