//! Mixed fleets through the public API, on an in-memory cloud that keeps its instances
//! with their tags: the split is exact, the fleet reserves once, its parts carry the
//! fleet's cluster and launch tags and run at the same time, and a failed part leaves
//! nothing running (all or nothing) or only the parts that started (`KeepPartial`).
//! The 4,000-VM proof on the simulator is `tests/tests/fleet.rs`; on moto,
//! `backends/aws/tests/fleet.rs`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use herd_core::catalog::Region;
use herd_core::fleet::{split_even, FleetPart, FleetSpec, OnPartFailure};
use herd_core::*;

/// A cloud in memory: instances with tags, per-region failures on demand.
#[derive(Debug)]
struct Cloud {
    caps: Capabilities,
    catalog: Catalog,
    clock: VirtualClock,
    live: Mutex<BTreeMap<String, Instance>>,
    /// Launch calls as they arrived: (launch id, region).
    calls: Mutex<Vec<(String, String)>>,
    /// Region whose launches fail with InsufficientCapacity after this many instances.
    short_region: Option<(String, u32)>,
    /// Region whose first launch starts its instances, then loses the answer.
    lost_answer_region: Option<String>,
    lost: AtomicU32,
    started_in: Mutex<BTreeMap<String, u32>>,
}

const TYPES: [&str; 2] = ["arm.large", "x86.large"];
const REGIONS: [&str; 2] = ["east", "west"];

impl Cloud {
    fn new(clock: VirtualClock) -> Self {
        let mut caps = Capabilities::none(BillingRule::LOCAL);
        caps.max_launch_batch = 100;
        caps.max_terminate_batch = 1000;
        caps.deadline = DeadlineEnforcement::Cloud;
        let src = PriceSource {
            name: "test".into(),
            as_of: chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
            licence: "-".into(),
        };
        let mut offers = Vec::new();
        for (t, price) in TYPES.iter().zip([1, 2]) {
            for r in REGIONS {
                offers.push(Offer::new(
                    herd_core::Cloud::Local,
                    *t,
                    r,
                    PurchaseOption::OnDemand,
                    Some(Money::usd(price.into())),
                    0,
                ));
            }
        }
        let catalog = Catalog::new(
            vec![
                InstanceType::new(herd_core::Cloud::Local, TYPES[0], "arm", 1, 1024, Arch::Arm64),
                InstanceType::new(herd_core::Cloud::Local, TYPES[1], "x86", 1, 1024, Arch::X86_64),
            ],
            offers,
            vec![src],
            REGIONS
                .iter()
                .map(|r| Region {
                    cloud: herd_core::Cloud::Local,
                    name: r.to_string(),
                    zones: vec![format!("{r}a")],
                })
                .collect(),
        );
        Cloud {
            caps,
            catalog,
            clock,
            live: Mutex::default(),
            calls: Mutex::default(),
            short_region: None,
            lost_answer_region: None,
            lost: AtomicU32::new(0),
            started_in: Mutex::default(),
        }
    }

    fn running(&self) -> Vec<Instance> {
        self.live.lock().unwrap().values().cloned().collect()
    }
}

#[async_trait]
impl Provider for Cloud {
    fn info(&self) -> ProviderInfo {
        ProviderInfo::new(herd_core::Cloud::Local, "test", "east")
    }
    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }
    fn catalog(&self) -> &Catalog {
        &self.catalog
    }
    async fn launch(&self, req: &LaunchRequest) -> Result<Vec<Instance>> {
        self.calls
            .lock()
            .unwrap()
            .push((req.launch_id.to_string(), req.region.clone()));
        // Let the other parts run between calls, as a network call would.
        self.clock.sleep(Duration::from_secs(1)).await;
        if let Some((r, most)) = &self.short_region {
            let mut started = self.started_in.lock().unwrap();
            let n = started.entry(r.clone()).or_default();
            if req.region == *r && *n + req.count > *most {
                return Err(Error::new(
                    ErrorKind::InsufficientCapacity,
                    format!("no capacity for {} in {r}", req.instance_type),
                ));
            }
            if req.region == *r {
                *n += req.count;
            }
        }
        let now = Clock::now(&self.clock);
        let got: Vec<Instance> = (0..req.count)
            .map(|i| {
                let mut inst = Instance::new(
                    format!("i-{}-{i}", req.launch_id),
                    herd_core::Cloud::Local,
                    &req.region,
                    format!("{}a", req.region),
                    &req.instance_type,
                    req.launch_id.clone(),
                    now,
                    req.deadline,
                    req.on_demand_price,
                );
                inst.tags = req.tags.clone();
                inst.state = InstanceState::Running;
                inst
            })
            .collect();
        let mut live = self.live.lock().unwrap();
        for i in &got {
            live.insert(i.id.clone(), i.clone());
        }
        if self.lost_answer_region.as_deref() == Some(req.region.as_str())
            && self.lost.fetch_add(1, Ordering::SeqCst) == 0
        {
            return Err(Error::new(ErrorKind::Unexpected, "answer lost after the effect"));
        }
        Ok(got)
    }
    async fn terminate(&self, ids: &[String]) -> Result<Vec<TerminateResult>> {
        let mut live = self.live.lock().unwrap();
        Ok(ids
            .iter()
            .map(|id| {
                let outcome = if live.remove(id).is_some() {
                    TerminateOutcome::Terminated
                } else {
                    TerminateOutcome::AlreadyGone
                };
                TerminateResult::new(id, outcome)
            })
            .collect())
    }
    async fn list(&self, req: &ListRequest) -> Result<Vec<Instance>> {
        Ok(self
            .live
            .lock()
            .unwrap()
            .values()
            .filter(|i| req.matches(i))
            .cloned()
            .collect())
    }
}

/// Keeps what it is told; `reserve` is the trait's default (check, then record).
#[derive(Debug, Default)]
struct Book {
    reserved: Mutex<Vec<LaunchIntent>>,
    failed: Mutex<Vec<String>>,
}

impl Journal for Book {
    fn committed_since(&self, _: &str, _: DateTime<Utc>) -> Result<Money> {
        Ok(self.reserved.lock().unwrap().iter().map(|i| i.reservation).sum())
    }
    fn launch_started(&self, i: &LaunchIntent) -> Result<()> {
        self.reserved.lock().unwrap().push(i.clone());
        Ok(())
    }
    fn launch_failed(&self, id: &LaunchId, _: &str) -> Result<()> {
        self.failed.lock().unwrap().push(id.to_string());
        Ok(())
    }
    fn instances_seen(&self, _: &[Instance]) -> Result<()> {
        Ok(())
    }
    fn instances_ended(&self, _: &[String], _: DateTime<Utc>, _: &str) -> Result<()> {
        Ok(())
    }
}

fn rich(owner: &str) -> Guardrails {
    Guardrails {
        owner: owner.into(),
        budget: Budget {
            per_launch: Money::usd(100_000.into()),
            per_day: Money::usd(100_000.into()),
        },
        ..Guardrails::default()
    }
}

fn setup(cloud: Cloud, guard: Guardrails) -> (Arc<Cloud>, Arc<Book>, Launcher) {
    let clock = cloud.clock.clone();
    let cloud = Arc::new(cloud);
    let book = Arc::new(Book::default());
    let launcher = Launcher::builder(cloud.clone())
        .clock(Arc::new(clock))
        .journal(book.clone())
        .guardrails(guard)
        .retry(RetryPolicy::none())
        .build();
    (cloud, book, launcher)
}

fn fleet(total: u32) -> FleetSpec {
    let types: Vec<String> = TYPES.iter().map(|s| s.to_string()).collect();
    let regions: Vec<String> = REGIONS.iter().map(|s| s.to_string()).collect();
    FleetSpec::new(
        LaunchSpec::new("-", 0)
            .deadline(Duration::from_secs(3600))
            .launch_id(LaunchId::new("l-fleet").unwrap()),
        split_even(&types, &regions, total).unwrap(),
    )
}

#[tokio::test]
async fn a_fleet_is_one_launch_split_exactly_and_reserved_once() {
    let (cloud, book, launcher) = setup(Cloud::new(VirtualClock::at_epoch()), rich("alice"));
    let plan = launcher.plan_fleet(&fleet(2000)).await.unwrap();
    assert_eq!(plan.count, 2000);
    // 500 × $1/h × 1h twice, 500 × $2/h × 1h twice.
    assert_eq!(plan.worst_case, Money::usd(3000.into()));
    let r = launcher.launch_fleet_planned(plan).await.unwrap();
    assert!(r.complete());
    assert_eq!(r.instances.len(), 2000);
    let mut split: BTreeMap<(String, String), usize> = BTreeMap::new();
    for i in &r.instances {
        *split.entry((i.instance_type.clone(), i.region.clone())).or_default() += 1;
    }
    assert_eq!(split.len(), 4);
    assert!(split.values().all(|n| *n == 500), "{split:?}");

    let reserved = book.reserved.lock().unwrap().clone();
    assert_eq!(reserved.len(), 1, "one reservation for the whole fleet");
    assert_eq!(reserved[0].launch_id.as_str(), "l-fleet");
    assert_eq!(reserved[0].reservation, Money::usd(3000.into()));
    assert_eq!(reserved[0].count, 2000);

    // One cluster and the fleet's launch tag on every instance; each part under its own id.
    let live = cloud.running();
    assert_eq!(live.len(), 2000);
    assert!(live.iter().all(|i| i.tag(tags::LAUNCH) == Some("l-fleet")));
    assert!(live.iter().all(|i| i.tag(tags::CLUSTER) == Some(r.cluster.as_str())));
    let deadlines: std::collections::BTreeSet<_> = live.iter().map(|i| i.tag(tags::DEADLINE)).collect();
    assert_eq!(deadlines.len(), 1, "one deadline for the fleet");
    let parts: Vec<&str> = r.parts.iter().map(|p| p.launch_id.as_str()).collect();
    assert_eq!(parts, ["l-fleet-p0", "l-fleet-p1", "l-fleet-p2", "l-fleet-p3"]);
    assert!(live.iter().all(|i| parts
        .iter()
        .any(|p| i.launch_id.as_str().starts_with(&format!("{p}-b")))));

    // The parts ran at the same time: the first four calls went to four parts.
    let calls = cloud.calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 20, "500 per part in batches of 100");
    let first: std::collections::BTreeSet<&str> = calls[..4]
        .iter()
        .map(|(id, _)| id.rsplit_once("-b").unwrap().0)
        .collect();
    assert_eq!(first.len(), 4, "{calls:?}");
}

#[tokio::test]
async fn one_failed_part_ends_the_whole_fleet() {
    let mut c = Cloud::new(VirtualClock::at_epoch());
    // West has room for 300 instances: each west part fails after some batches.
    c.short_region = Some(("west".into(), 300));
    let (cloud, book, launcher) = setup(c, rich("alice"));
    let e = launcher.launch_fleet(&fleet(2000)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InsufficientCapacity);
    assert!(e.message().contains("in west) failed"), "{e}");
    assert!(e.message().contains("no capacity"), "{e}");
    let hint = e.hint().unwrap();
    assert!(hint.contains("nothing of it is left running"), "{hint}");
    assert_eq!(e.context_value("launch_id"), Some("l-fleet"));
    assert!(
        cloud.running().is_empty(),
        "nothing left running: {:?}",
        cloud.running().len()
    );
    assert_eq!(book.reserved.lock().unwrap().len(), 1);
    assert!(book.failed.lock().unwrap().contains(&"l-fleet".to_string()));
    // The east parts were stopped before they sent all their batches.
    let east_calls = cloud.calls.lock().unwrap().iter().filter(|(_, r)| r == "east").count();
    assert!(
        east_calls < 10,
        "east kept launching after west failed: {east_calls} calls"
    );
}

#[tokio::test]
async fn what_a_lost_answer_started_is_found_by_the_fleet_tag_and_ended() {
    let mut c = Cloud::new(VirtualClock::at_epoch());
    c.lost_answer_region = Some("west".into());
    let (cloud, _, launcher) = setup(c, rich("alice"));
    let e = launcher.launch_fleet(&fleet(400)).await.unwrap_err();
    assert!(e.message().contains("answer lost"), "{e}");
    assert!(cloud.running().is_empty(), "{} left running", cloud.running().len());
}

#[tokio::test]
async fn partial_keeps_what_started_and_ends_only_the_failed_part() {
    let mut c = Cloud::new(VirtualClock::at_epoch());
    c.lost_answer_region = Some("west".into());
    let (cloud, _, launcher) = setup(c, rich("alice"));
    let spec = fleet(400).on_failure(OnPartFailure::KeepPartial);
    let r = launcher.launch_fleet(&spec).await.unwrap();
    assert!(!r.complete());
    let failed: Vec<&FleetPart> = r.parts.iter().filter(|p| p.error.is_some()).map(|p| &p.part).collect();
    assert_eq!(failed.len(), 1, "{:?}", r.parts);
    assert_eq!(failed[0].region, "west");
    let live = cloud.running();
    assert_eq!(live.len(), 300, "three parts of 100 kept");
    assert!(
        !live
            .iter()
            .any(|i| i.region == failed[0].region && i.instance_type == failed[0].instance_type),
        "the failed part's instances were ended"
    );
    let ids: std::collections::BTreeSet<&str> = r.instances.iter().map(|i| i.id.as_str()).collect();
    assert!(live.iter().all(|i| ids.contains(i.id.as_str())));
}

#[tokio::test]
async fn the_budget_is_the_fleets_not_each_parts() {
    let mut g = rich("alice");
    // Each part's worst case ($500 or $1,000) fits; the fleet's $3,000 does not.
    g.budget.per_launch = Money::usd(1000.into());
    let (cloud, book, launcher) = setup(Cloud::new(VirtualClock::at_epoch()), g);
    let plan = launcher.plan_fleet(&fleet(2000)).await.unwrap();
    let refusal = plan.budget.as_ref().expect("refused");
    assert_eq!(refusal.kind(), ErrorKind::BudgetExceeded);
    assert!(plan.parts.iter().all(|p| p.budget.is_none()));
    let e = launcher.launch_fleet_planned(plan).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BudgetExceeded);
    assert!(cloud.calls.lock().unwrap().is_empty());
    assert!(book.reserved.lock().unwrap().is_empty());
}

#[tokio::test]
async fn malformed_fleets_are_refused_before_any_call() {
    let (cloud, _, launcher) = setup(Cloud::new(VirtualClock::at_epoch()), rich("alice"));
    let template = LaunchSpec::new("-", 0).deadline(Duration::from_secs(3600));
    let twice = FleetSpec::new(
        template.clone(),
        vec![
            FleetPart::new("arm.large", "east", 1),
            FleetPart::new("arm.large", "east", 2),
        ],
    );
    let e = launcher.plan_fleet(&twice).await.unwrap_err();
    assert!(e.message().contains("twice"), "{e}");

    let zoned = FleetSpec::new(
        template.clone().zone("easta"),
        vec![
            FleetPart::new("arm.large", "east", 1),
            FleetPart::new("arm.large", "west", 1),
        ],
    );
    let e = launcher.plan_fleet(&zoned).await.unwrap_err();
    assert!(e.hint().unwrap().contains("drop --zone"), "{e}");

    let long = FleetSpec::new(
        template.clone().launch_id(LaunchId::new("x".repeat(60)).unwrap()),
        vec![FleetPart::new("arm.large", "east", 1)],
    );
    let e = launcher.plan_fleet(&long).await.unwrap_err();
    assert!(e.message().contains("at most 48"), "{e}");

    let unknown = FleetSpec::new(
        template.clone(),
        vec![
            FleetPart::new("arm.large", "east", 1),
            FleetPart::new("arm.lrage", "west", 1),
        ],
    );
    let e = launcher.plan_fleet(&unknown).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidSpec);
    assert!(e.message().starts_with("part 2 (1 × arm.lrage in west)"), "{e}");

    let too_many = FleetSpec::new(
        template,
        vec![
            FleetPart::new("arm.large", "east", 6000),
            FleetPart::new("arm.large", "west", 6000),
        ],
    );
    let e = launcher.plan_fleet(&too_many).await.unwrap_err();
    assert!(e.message().contains("count 12000"), "the limit is the fleet's: {e}");
    assert!(cloud.calls.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_fleet_planned_again_keeps_its_parts_ids_and_fingerprints() {
    let (cloud, book, launcher) = setup(Cloud::new(VirtualClock::at_epoch()), rich("alice"));
    let plan = launcher.plan_fleet(&fleet(40)).await.unwrap();
    let again = launcher.plan_fleet(&fleet(40)).await.unwrap();
    let fp = |p: &herd_core::FleetPlan| -> Vec<String> { p.parts.iter().map(|x| x.request.fingerprint()).collect() };
    assert_eq!(fp(&plan), fp(&again), "same parts, same fingerprints");
    let ids =
        |p: &herd_core::FleetPlan| -> Vec<String> { p.parts.iter().map(|x| x.request.launch_id.to_string()).collect() };
    assert_eq!(ids(&plan), ids(&again), "each part keeps its idempotency key");
    launcher.launch_fleet_planned(plan).await.unwrap();
    assert_eq!(cloud.running().len(), 40);
    assert_eq!(book.reserved.lock().unwrap().len(), 1);
}
