//! What a backend provides to the suite: fresh accounts, a clock, a way to let time
//! pass, and a couple of cheap instance types.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use herd_core::journal::Journal;
use herd_core::{Budget, Guardrails, Launcher, Provider, RetryPolicy, SharedClock};

use crate::wrap::{Counting, Restricted};

/// Knobs a case may ask of a fixture. A fixture that cannot honour one says so through
/// [`Fixture::supports_faults`]; cases that need it then check something weaker.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Probability that any API call fails temporarily (half before, half after its effect).
    pub transient_error_rate: f64,
}

#[async_trait]
pub trait Fixture: Send + Sync {
    fn name(&self) -> String;
    /// A fresh, empty account on this backend.
    async fn provider(&self, opts: &Options) -> anyhow::Result<Arc<dyn Provider>>;
    /// The clock the provider runs on.
    fn clock(&self) -> SharedClock;
    /// Lets `d` pass: advances a virtual clock, or sleeps.
    async fn pass(&self, d: Duration);
    /// A cheap instance type and a different one.
    fn types(&self) -> (String, String);
    fn region(&self) -> String;
    /// A deadline short enough to watch pass in a test, or `None` if this backend's
    /// deadlines cannot be observed here (emulators that do not run the guest).
    fn observable_deadline(&self) -> Option<Duration>;
    /// Whether [`Options::transient_error_rate`] is honoured.
    fn supports_faults(&self) -> bool;
    /// How long instances may take to be running.
    fn boot_timeout(&self) -> Duration {
        Duration::from_secs(60)
    }
}

/// A provider under test with its launcher and call counter.
#[derive(Debug)]
pub struct TestCloud {
    pub launcher: Launcher,
    pub calls: Arc<Counting>,
}

impl TestCloud {
    /// API calls that reached the provider (quotes from the catalog do not count).
    pub fn api_calls(&self) -> u64 {
        self.calls.calls()
    }
}

/// Guardrails for tests: a test owner, generous budgets, deadlines down to a second.
pub fn test_guardrails() -> Guardrails {
    Guardrails {
        owner: "conformance".into(),
        budget: Budget {
            per_launch: herd_core::Money::parse_usd("1000").unwrap(),
            per_day: herd_core::Money::parse_usd("100000").unwrap(),
        },
        min_deadline: Duration::from_secs(1),
        ..Guardrails::default()
    }
}

/// Takes capabilities away from a backend for one case.
pub type Restriction<'a> = Box<dyn Fn(&mut herd_core::Capabilities) + Send + Sync + 'a>;

pub struct Setup<'a> {
    pub opts: Options,
    pub guard: Guardrails,
    pub journal: Option<Arc<dyn Journal>>,
    pub restrict: Option<Restriction<'a>>,
}

impl std::fmt::Debug for Setup<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Setup")
            .field("opts", &self.opts)
            .field("guard", &self.guard)
            .finish_non_exhaustive()
    }
}

impl Default for Setup<'_> {
    fn default() -> Self {
        Setup {
            opts: Options::default(),
            guard: test_guardrails(),
            journal: None,
            restrict: None,
        }
    }
}

/// Builds a launcher over a fresh account with the suite's layers.
pub async fn cloud(f: &dyn Fixture, setup: Setup<'_>) -> anyhow::Result<TestCloud> {
    let provider = f.provider(&setup.opts).await?;
    let provider: Arc<dyn Provider> = match setup.restrict {
        Some(r) => Arc::new(Restricted::new(provider, r)),
        None => provider,
    };
    let calls = Arc::new(Counting::new(provider));
    let mut b = Launcher::builder(calls.clone())
        .clock(f.clock())
        .guardrails(setup.guard)
        .seed(7)
        .retry(RetryPolicy::default());
    if let Some(j) = setup.journal {
        b = b.journal(j);
    }
    Ok(TestCloud {
        launcher: b.build(),
        calls,
    })
}
