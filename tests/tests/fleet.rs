//! The mixed-fleet proof on the simulator: 4,000 VMs over two types and two regions in
//! one fleet, in virtual mode (no processes) with EC2's RunInstances token buckets per
//! region, journaling into a real (in-memory) ledger. Time is tokio's, paused: it jumps
//! to the next timer whenever every part waits, so throttled parts in two regions wait
//! at the same time, as on a real clock, and 500 s of bucket refill cost no wall time.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use herd_core::fleet::split_even;
use herd_core::{tags, Budget, ErrorKind, FleetSpec, Guardrails, LaunchSpec, Launcher, ListRequest, Money, TokioClock};
use herd_ledger::{InstanceFilter, LaunchFilter, LaunchStatus, Ledger, LedgerOptions};
use herd_local::{Faults, LocalProvider};

const TYPES: [&str; 2] = ["l1.small", "l1.large"];
const REGIONS: [&str; 2] = ["local-east-1", "local-west-1"];

struct Rig {
    launcher: Launcher,
    ledger: Arc<Ledger>,
}

fn rig(capacity: BTreeMap<String, u32>) -> Rig {
    let clock = TokioClock::new(chrono::DateTime::from_timestamp(1_767_225_600, 0).unwrap());
    let provider = LocalProvider::builder()
        .in_memory()
        .processes(false)
        .clock(Arc::new(clock.clone()))
        .seed(7)
        .faults(Faults {
            throttle: true,
            boot_delay: Some((Duration::from_secs(1), Duration::from_secs(1))),
            capacity,
            ..Faults::default()
        })
        .build()
        .unwrap();
    let ledger = Arc::new(
        Ledger::in_memory_with(LedgerOptions {
            clock: Arc::new(clock.clone()),
            ..LedgerOptions::default()
        })
        .unwrap(),
    );
    let launcher = Launcher::builder(Arc::new(provider))
        .clock(Arc::new(clock))
        .journal(ledger.clone())
        .guardrails(Guardrails {
            owner: "fleet-test".into(),
            budget: Budget {
                per_launch: Money::parse_usd("100000").unwrap(),
                per_day: Money::parse_usd("100000").unwrap(),
            },
            ..Guardrails::default()
        })
        .build();
    Rig { launcher, ledger }
}

fn fleet(total: u32) -> FleetSpec {
    let types: Vec<String> = TYPES.iter().map(|s| s.to_string()).collect();
    let regions: Vec<String> = REGIONS.iter().map(|s| s.to_string()).collect();
    FleetSpec::new(
        LaunchSpec::new("-", 0).deadline(Duration::from_secs(3600)),
        split_even(&types, &regions, total).unwrap(),
    )
}

#[tokio::test(start_paused = true)]
async fn four_thousand_vms_over_two_types_and_two_regions_in_one_fleet() {
    let rig = rig(BTreeMap::new());
    let l = &rig.launcher;
    let plan = l.plan_fleet(&fleet(4000)).await.unwrap();
    let worst_case = plan.worst_case;
    let r = l.launch_fleet_planned(plan).await.unwrap();
    assert!(r.complete());
    assert_eq!(r.instances.len(), 4000);

    // Exactly the asked split, read back from the simulator.
    let live = l.list(&l.mine().live()).await.unwrap();
    assert_eq!(live.len(), 4000);
    let mut split: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for i in &live {
        *split.entry((i.instance_type.as_str(), i.region.as_str())).or_default() += 1;
    }
    assert_eq!(split.len(), 4, "{split:?}");
    assert!(split.values().all(|n| *n == 1000), "{split:?}");

    // One cluster, one launch tag.
    let clusters: BTreeSet<_> = live.iter().map(|i| i.tag(tags::CLUSTER)).collect();
    assert_eq!(clusters, BTreeSet::from([Some(r.cluster.as_str())]));
    let launches: BTreeSet<_> = live.iter().map(|i| i.tag(tags::LAUNCH)).collect();
    assert_eq!(launches, BTreeSet::from([Some(r.launch_id.as_str())]));

    // One reservation, on the ledger: one launch row holding the fleet's whole worst
    // case, and every instance linked to it.
    let rows = rig.ledger.launches(&LaunchFilter::default()).unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].launch_id, r.launch_id);
    assert_eq!(rows[0].reservation, worst_case);
    assert_eq!(rows[0].count, 4000);
    assert_eq!(rows[0].status, LaunchStatus::Launched);
    let linked = rig
        .ledger
        .instances(&InstanceFilter {
            launch_id: Some(r.launch_id.to_string()),
            ..InstanceFilter::default()
        })
        .unwrap();
    assert_eq!(linked.len(), 4000);

    // The regions overlapped: each began launching before the other finished.
    let span = |region: &str| {
        let times: Vec<_> = r
            .instances
            .iter()
            .filter(|i| i.region == region)
            .map(|i| i.launched_at)
            .collect();
        (*times.iter().min().unwrap(), *times.iter().max().unwrap())
    };
    let (east, west) = (span(REGIONS[0]), span(REGIONS[1]));
    assert!(east.0 < west.1 && west.0 < east.1, "east {east:?}, west {west:?}");
    // Each region's second 1,000 waited for its own bucket, not for the other region's.
    assert!(east.1 > east.0 && west.1 > west.0, "east {east:?}, west {west:?}");
}

#[tokio::test(start_paused = true)]
async fn a_region_out_of_capacity_leaves_nothing_of_the_fleet_running() {
    // West holds 1,000 in one zone and none in the other: its first part fits, its
    // second does not.
    let rig = rig(BTreeMap::from([
        ("local-west-1a".to_string(), 1000),
        ("local-west-1b".to_string(), 0),
    ]));
    let l = &rig.launcher;
    let e = l.launch_fleet(&fleet(4000)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InsufficientCapacity, "{e}");
    assert!(e.message().contains("in local-west-1) failed"), "{e}");
    let hint = e.hint().unwrap();
    assert!(hint.contains("nothing of it is left running"), "{hint}");

    let live = l.list(&ListRequest::new().live()).await.unwrap();
    assert!(live.is_empty(), "{} instance(s) left running", live.len());

    // Something did start before the failure (this is a roll-back, not a refusal), the
    // ledger saw it all end, and the one reservation is marked failed.
    let seen = rig.ledger.instances(&InstanceFilter::default()).unwrap();
    assert!(seen.len() >= 1000, "only {} instance(s) ever started", seen.len());
    let still = rig
        .ledger
        .instances(&InstanceFilter {
            live_only: true,
            ..InstanceFilter::default()
        })
        .unwrap();
    assert!(still.is_empty(), "the ledger still sees {} live", still.len());
    let rows = rig.ledger.launches(&LaunchFilter::default()).unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].status, LaunchStatus::Failed);
}
