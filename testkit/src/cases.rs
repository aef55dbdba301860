//! The fault cases, written once as data and run against every transport: a cloud's HTTP
//! API through the [`FaultProxy`](crate::proxy::FaultProxy) (AWS on moto today), and the
//! simulator, which has no HTTP, through the [`Faulty`] provider wrapper. Each case ends
//! with exactly N instances or a clear error, and nothing left running.
//!
//! A case says what goes wrong ([`Inject`]) in the words of [`Failure`] and [`Effect`],
//! never an action name: [`FaultCase::rule`] turns it into a proxy rule for any protocol,
//! [`Faulty`] into errors of herd's kinds. [`run`] checks the outcome the same way for both.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use herd_core::request::*;
use herd_core::{
    Capabilities, Catalog, Error, ErrorKind, Instance, LaunchSpec, Launcher, Provider, ProviderInfo, Result,
};

use crate::protocol::{Effect, Failure};
use crate::proxy::{Fault, Rule};

/// Which zones a capacity fault empties.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Zones {
    /// The region's first zone (and a launch that lets the cloud choose, which could land
    /// there): the launch must go to another.
    First,
    /// Every zone of the region.
    All,
}

/// What goes wrong, on launch calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inject {
    /// The first N launch calls are throttled, before any effect.
    ThrottleBurst(usize),
    /// The first launch call acts, then answers a server error: the caller cannot know.
    ErrorAfterEffect,
    /// No capacity in these zones.
    NoCapacity(Zones),
    /// The account's quota: refused, every time.
    Quota,
    /// The first launch call acts, then its answer is held this long, past the client's
    /// attempt timeout ([`FaultCase::attempt_timeout`]).
    Hang(Duration),
}

/// How a case must end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Exactly the count asked, each once, all live; with `elsewhere`, none in the
    /// region's first zone.
    Exactly { elsewhere: bool },
    /// This kind of error, and nothing running.
    Fails(ErrorKind),
}

/// One fault case.
#[derive(Debug, Clone, Copy)]
pub struct FaultCase {
    pub name: &'static str,
    pub inject: Inject,
    /// Instances asked for.
    pub count: u32,
    pub outcome: Outcome,
    /// Launch calls the transport must see, where every transport sees the same number
    /// (a retry after an effect is found by tag on one and by idempotency key on the
    /// other, and zones are tried below the wrapper on one, so those cases leave it `None`).
    pub launch_calls: Option<usize>,
}

/// Every case.
pub fn cases() -> Vec<FaultCase> {
    vec![
        FaultCase {
            name: "throttle_burst",
            inject: Inject::ThrottleBurst(3),
            count: 5,
            outcome: Outcome::Exactly { elsewhere: false },
            launch_calls: Some(4),
        },
        FaultCase {
            name: "error_after_effect",
            inject: Inject::ErrorAfterEffect,
            count: 4,
            outcome: Outcome::Exactly { elsewhere: false },
            launch_calls: None,
        },
        FaultCase {
            name: "no_capacity_in_one_zone",
            inject: Inject::NoCapacity(Zones::First),
            count: 3,
            outcome: Outcome::Exactly { elsewhere: true },
            launch_calls: None,
        },
        FaultCase {
            name: "no_capacity_anywhere",
            inject: Inject::NoCapacity(Zones::All),
            count: 2,
            outcome: Outcome::Fails(ErrorKind::InsufficientCapacity),
            launch_calls: None,
        },
        FaultCase {
            name: "quota_exceeded",
            inject: Inject::Quota,
            count: 2,
            outcome: Outcome::Fails(ErrorKind::QuotaExceeded),
            launch_calls: Some(1),
        },
        FaultCase {
            name: "hang_after_effect",
            inject: Inject::Hang(Duration::from_secs(3)),
            count: 3,
            outcome: Outcome::Exactly { elsewhere: false },
            launch_calls: None,
        },
    ]
}

/// One case by name (panics on a typo: a test must name a case that exists).
pub fn case(name: &str) -> FaultCase {
    cases()
        .into_iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no fault case `{name}`"))
}

impl FaultCase {
    /// The client's attempt timeout this case needs: shorter than a hang, so the hang is
    /// seen as a timeout; `None`: the transport's own.
    pub fn attempt_timeout(&self) -> Option<Duration> {
        match self.inject {
            Inject::Hang(t) => Some(t / 3),
            _ => None,
        }
    }

    /// The proxy rule for this case, for any protocol; `zones` are the region's, in order.
    pub fn rule(&self, zones: &[String]) -> Rule {
        let inject = self.inject;
        let first = zones.first().cloned();
        Arc::new(move |s, nth| {
            if s.effect != Effect::Launch {
                return Fault::Pass;
            }
            match inject {
                Inject::ThrottleBurst(n) if nth < n => Fault::reject(Failure::Throttled),
                Inject::ErrorAfterEffect if nth == 0 => Fault::reject_after(Failure::Internal),
                Inject::NoCapacity(Zones::All) => Fault::reject(Failure::NoCapacity),
                Inject::NoCapacity(Zones::First) if s.zone.is_none() || s.zone == first => {
                    Fault::reject(Failure::NoCapacity)
                }
                Inject::Quota => Fault::reject(Failure::Quota),
                Inject::Hang(t) if nth == 0 => Fault::Delay(t),
                _ => Fault::Pass,
            }
        })
    }

    /// Per-zone capacity for a transport whose zones are chosen below the wrapper (the
    /// simulator picks a zone inside its own transaction): the zones this case empties.
    pub fn zone_capacity(&self, zones: &[String]) -> BTreeMap<String, u32> {
        match self.inject {
            Inject::NoCapacity(Zones::First) => zones.iter().take(1).map(|z| (z.clone(), 0)).collect(),
            Inject::NoCapacity(Zones::All) => zones.iter().map(|z| (z.clone(), 0)).collect(),
            _ => BTreeMap::new(),
        }
    }
}

/// A provider with a case's fault between the launcher and it: the simulator's
/// transport, which has no HTTP for the proxy to stand on.
#[derive(Debug)]
pub struct Faulty {
    inner: Arc<dyn Provider>,
    inject: Inject,
    first_zone: Option<String>,
    attempt_timeout: Duration,
    launches: AtomicUsize,
}

impl Faulty {
    /// `inner` behind `case`'s fault; `zones` are the region's, in order.
    pub fn new(inner: Arc<dyn Provider>, case: &FaultCase, zones: &[String]) -> Self {
        Faulty {
            inner,
            inject: case.inject,
            first_zone: zones.first().cloned(),
            attempt_timeout: case.attempt_timeout().unwrap_or(Duration::from_secs(30)),
            launches: AtomicUsize::new(0),
        }
    }

    /// Launch calls so far.
    pub fn launch_calls(&self) -> usize {
        self.launches.load(Ordering::SeqCst)
    }

    pub fn inner(&self) -> &Arc<dyn Provider> {
        &self.inner
    }
}

fn injected(kind: ErrorKind, what: &str) -> Error {
    Error::new(kind, format!("{what} (injected by herd's test kit)"))
}

#[async_trait]
impl Provider for Faulty {
    fn info(&self) -> ProviderInfo {
        self.inner.info()
    }
    fn capabilities(&self) -> &Capabilities {
        self.inner.capabilities()
    }
    fn catalog(&self) -> &Catalog {
        self.inner.catalog()
    }
    async fn launch(&self, req: &LaunchRequest) -> Result<Vec<Instance>> {
        let nth = self.launches.fetch_add(1, Ordering::SeqCst);
        match self.inject {
            Inject::ThrottleBurst(n) if nth < n => Err(injected(ErrorKind::RateLimited, "throttled")),
            Inject::ErrorAfterEffect if nth == 0 => {
                let _ = self.inner.launch(req).await;
                Err(injected(ErrorKind::Unavailable, "server error after the launch"))
            }
            // A launch pinned to an emptied zone (the simulator's own capacity empties the
            // zones it chooses from: `FaultCase::zone_capacity`).
            Inject::NoCapacity(z) if req.zone.is_some() && (z == Zones::All || req.zone == self.first_zone) => {
                Err(injected(
                    ErrorKind::InsufficientCapacity,
                    &format!("no capacity in {}", req.zone.as_deref().unwrap_or("")),
                ))
            }
            Inject::Quota => {
                Err(injected(ErrorKind::QuotaExceeded, "vCPU quota exceeded").with_hint("ask for a quota increase"))
            }
            Inject::Hang(t) if nth == 0 => {
                // The call acts, its answer is held past the client's attempt timeout.
                let held = async {
                    let _ = self.inner.launch(req).await;
                    tokio::time::sleep(t).await;
                };
                let _ = tokio::time::timeout(self.attempt_timeout, held).await;
                Err(injected(
                    ErrorKind::Timeout,
                    &format!("no answer within {:?}", self.attempt_timeout),
                ))
            }
            _ => self.inner.launch(req).await,
        }
    }
    async fn terminate(&self, ids: &[String]) -> Result<Vec<TerminateResult>> {
        self.inner.terminate(ids).await
    }
    async fn list(&self, req: &ListRequest) -> Result<Vec<Instance>> {
        self.inner.list(req).await
    }
    async fn cost(&self, req: &QuoteRequest) -> Result<Quote> {
        self.inner.cost(req).await
    }
    async fn leftovers(&self, owner: Option<&str>) -> Result<Vec<Leftover>> {
        self.inner.leftovers(owner).await
    }
    async fn reap(&self, items: &[Leftover]) -> Result<Vec<ReapResult>> {
        self.inner.reap(items).await
    }
    async fn exec(&self, id: &str, req: &ExecRequest) -> Result<ExecOutput> {
        self.inner.exec(id, req).await
    }
}

/// A transport the cases run against.
#[async_trait]
pub trait Transport: Send + Sync {
    fn name(&self) -> String;
    /// The region's zones, in order.
    fn zones(&self) -> Vec<String>;
    /// A fresh account with `case`'s fault armed, and a launcher on it.
    async fn arm(&self, case: &FaultCase) -> Launcher;
    /// What to launch (`count` of the transport's cheap type in its region).
    fn spec(&self, count: u32) -> LaunchSpec;
    /// Launch calls the transport saw since [`Transport::arm`].
    fn launch_calls(&self) -> usize;
    /// The test owner's live instances, read with no fault in the way.
    async fn live(&self) -> Vec<Instance>;
}

/// Runs `case` on `t` and checks how it ended; `Err` says what went wrong.
pub async fn run(case: &FaultCase, t: &dyn Transport) -> std::result::Result<(), String> {
    let on = format!("fault case `{}` on {}", case.name, t.name());
    let launcher = t.arm(case).await;
    let got = launcher.launch(t.spec(case.count)).await;
    let calls = t.launch_calls();
    let live = t.live().await;
    if let Some(want) = case.launch_calls {
        if calls != want {
            return Err(format!("{on}: {calls} launch calls, expected {want}"));
        }
    }
    match (case.outcome, got) {
        (Outcome::Exactly { elsewhere }, Ok(r)) => {
            let mut ids: Vec<&str> = r.instances.iter().map(|i| i.id.as_str()).collect();
            ids.sort();
            ids.dedup();
            if r.instances.len() != case.count as usize || ids.len() != r.instances.len() {
                return Err(format!(
                    "{on}: asked {}, got {} ({} distinct)",
                    case.count,
                    r.instances.len(),
                    ids.len()
                ));
            }
            let mut running: Vec<&str> = live.iter().map(|i| i.id.as_str()).collect();
            running.sort();
            if running != ids {
                return Err(format!("{on}: launched {ids:?} but {running:?} are live"));
            }
            if elsewhere {
                let first = t.zones().first().cloned().unwrap_or_default();
                if let Some(i) = r.instances.iter().find(|i| i.zone == first) {
                    return Err(format!("{on}: {} is in {first}, which had no capacity", i.id));
                }
            }
            let all: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
            launcher
                .terminate(&all)
                .await
                .map_err(|e| format!("{on}: clean-up: {e}"))?;
            let left = t.live().await;
            if !left.is_empty() {
                return Err(format!("{on}: {} still live after terminate", left.len()));
            }
            Ok(())
        }
        (Outcome::Exactly { .. }, Err(e)) => Err(format!("{on}: expected {} instances, got: {e}", case.count)),
        (Outcome::Fails(kind), Ok(r)) => Err(format!("{on}: expected a {kind} error, launched {}", r.instances.len())),
        (Outcome::Fails(kind), Err(e)) => {
            if e.kind() != kind {
                return Err(format!("{on}: expected a {kind} error, got {}: {e}", e.kind()));
            }
            if e.message().is_empty() {
                return Err(format!("{on}: the error says nothing"));
            }
            if !live.is_empty() {
                return Err(format!("{on}: failed, but {} instance(s) are live", live.len()));
            }
            Ok(())
        }
    }
}
