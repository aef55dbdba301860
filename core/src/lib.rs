//! herd-core: the contract every herd backend implements and everything that must
//! behave the same whatever the cloud: errors, money, billing, the catalog model,
//! guardrails, retry and the [`Launcher`] handle that the CLI and the sweep runner hold.
//!
//! Backends implement [`Provider`]; users of the library hold a [`Launcher`], which adds
//! the capability check, input validation, budget reservation, journaling, error context
//! and the single retry layer in front of any provider.

pub mod billing;
pub mod capabilities;
pub mod catalog;
pub mod clock;
pub mod error;
pub mod fleet;
pub mod guardrails;
pub mod journal;
pub mod launcher;
pub mod money;
pub mod plumbing;
pub mod provider;
pub mod request;
pub mod retry;
pub mod rng;
pub mod suggest;
pub mod tags;
pub mod types;

pub use billing::BillingRule;
pub use capabilities::{Capabilities, DeadlineEnforcement, TagLimits};
pub use catalog::{Arch, Catalog, Gpu, InstanceType, Offer, PriceSource};
pub use clock::{Clock, SharedClock, SystemClock, TokioClock, VirtualClock};
pub use error::{Error, ErrorKind, Operation, Result};
pub use fleet::{FleetPart, FleetPlan, FleetReport, FleetSpec, OnPartFailure, PartReport};
pub use guardrails::{Budget, Guardrails};
pub use journal::{Journal, LaunchIntent, NoJournal};
pub use launcher::{LaunchPlan, LaunchReport, Launcher, LauncherBuilder};
pub use money::{Currency, Money};
pub use provider::{Provider, ProviderInfo};
pub use request::*;
pub use retry::{RetryObserver, RetryPolicy, SilentObserver};
pub use rng::SeededRng;
pub use types::{Cloud, Instance, InstanceState, LaunchId, Market, PurchaseOption, Tags};
