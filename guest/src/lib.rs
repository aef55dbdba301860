//! herd-guest: what herd puts on a VM, written once for every cloud.
//!
//! A VM herd launches must end itself: by its deadline, and sooner when idle past its
//! keepalive, even when the machine that launched it is gone. The boot script
//! ([`boot`]) installs a watchdog that takes the cloud's [`expiry::Expiry`] action:
//! AWS powers off (shutdown behaviour `terminate` turns that into a termination), GCP
//! and Azure delete the VM through their API (a stopped VM there keeps billing its
//! disks). The owner's SSH key ([`key`]) and the caller's public address
//! ([`address`]) are how a person reaches the VM, on every cloud.

pub mod address;
pub mod boot;
pub mod busy;
pub mod expiry;
pub mod key;
pub mod lograte;
pub mod ssh;
