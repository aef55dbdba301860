//! The simulated control plane in virtual mode (in memory, no processes, virtual clock):
//! lifecycle, lazy enforcement, idempotency, capacity, quota, faults, throttling,
//! pagination, leftovers, and scale.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use herd_core::{
    Clock, ErrorKind, InstanceState, LaunchSpec, ListRequest, Market, Provider, PurchaseOption, RetryPolicy,
    TerminateOutcome, VirtualClock,
};
use herd_local::{Faults, LocalProvider};

/// The error of a call expected to fail (without printing a huge `Ok` value).
fn err<T>(r: herd_core::Result<T>) -> herd_core::Error {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e,
    }
}

fn quick_boot() -> Faults {
    Faults {
        boot_delay: Some((secs(20), secs(40))),
        ..Faults::default()
    }
}

#[tokio::test]
async fn launch_boots_runs_and_terminates() {
    let (clock, p, l) = virtual_pair(1, quick_boot());
    let r = l
        .launch(LaunchSpec::new("l1.large", 3).deadline(secs(3600)).tag("team", "ml"))
        .await
        .unwrap();
    assert_eq!(r.instances.len(), 3);
    for i in &r.instances {
        assert_eq!(i.state, InstanceState::Pending);
        assert!(i.id.starts_with("i-") && i.id.len() == 19, "{}", i.id);
        assert_eq!(i.zone, "local-east-1a");
        assert_eq!(i.hourly_price.to_string(), "$0.0416");
        assert_eq!(i.tag("team"), Some("ml"));
        assert_eq!(i.tag("herd-owner"), Some("tester"));
    }
    let ids: Vec<String> = r.instances.iter().map(|i| i.id.clone()).collect();
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 3);
    let running = l.wait_until_running(&ids, secs(600)).await.unwrap();
    assert!(running.iter().all(|i| i.state == InstanceState::Running));
    let waited = herd_core::clock::between(r.instances[0].launched_at, clock.now());
    assert!(waited >= secs(20) && waited <= secs(60), "boot took {waited:?}");

    let out = l.terminate(&ids).await.unwrap();
    assert!(out.iter().all(|t| t.outcome == TerminateOutcome::Terminated));
    let again = l
        .terminate(&[ids[0].clone(), "i-00000000000000000".into()])
        .await
        .unwrap();
    assert!(again.iter().all(|t| t.outcome == TerminateOutcome::AlreadyGone));
    let gone = p.list(&ListRequest::new().ids(ids.clone())).await.unwrap();
    assert!(gone.iter().all(|i| i.state == InstanceState::Terminated));
    assert!(gone.iter().all(|i| i.state_reason.as_deref() == Some("terminated")));
    assert!(gone.iter().all(|i| i.ended_at == Some(clock.now())));
}

#[tokio::test]
async fn deadline_is_enforced_lazily_at_the_deadline_itself() {
    let (clock, p, l) = virtual_pair(2, quick_boot());
    let r = l
        .launch(LaunchSpec::new("l1.small", 2).deadline(secs(600)).keepalive(secs(0)))
        .await
        .unwrap();
    let deadline = r.instances[0].deadline;
    clock.advance(secs(3 * 3600));
    let got = p.list(&ListRequest::new()).await.unwrap();
    assert_eq!(got.len(), 2);
    for i in &got {
        assert_eq!(i.state, InstanceState::Terminated);
        assert_eq!(i.state_reason.as_deref(), Some("deadline"));
        // Billed until the deadline, not until someone looked.
        assert_eq!(i.ended_at, Some(deadline));
        assert_eq!(l.accrued(i, None, None), l.accrued(i, None, Some(deadline)));
    }
    assert!(p.list(&ListRequest::new().live()).await.unwrap().is_empty());
}

#[tokio::test]
async fn idle_instances_end_keepalive_after_they_came_up() {
    let faults = Faults {
        boot_delay: Some((secs(30), secs(30))),
        ..Faults::default()
    };
    let (clock, p, l) = virtual_pair(3, faults);
    let r = l
        .launch(LaunchSpec::new("l1.small", 1).deadline(secs(7200)).keepalive(secs(300)))
        .await
        .unwrap();
    let launched = r.instances[0].launched_at;
    clock.advance(secs(320));
    let i = &p.list(&ListRequest::new()).await.unwrap()[0];
    assert_eq!(i.state, InstanceState::Running, "idle for 290 s of 300");
    clock.advance(secs(3600));
    let i = &p.list(&ListRequest::new()).await.unwrap()[0];
    assert_eq!(i.state_reason.as_deref(), Some("idle"));
    assert_eq!(i.ended_at, Some(launched + chrono::Duration::seconds(330)));
}

#[tokio::test]
async fn spot_instances_are_interrupted_with_seeded_timing() {
    let faults = Faults {
        spot_interruption_mean: Some(secs(600)),
        ..quick_boot()
    };
    let run = |seed| {
        let faults = faults.clone();
        async move {
            let (clock, p, l) = virtual_pair(seed, faults);
            let r = l
                .launch(
                    LaunchSpec::new("c1.large", 4)
                        .market(Market::Spot)
                        .deadline(secs(24 * 3600))
                        .keepalive(secs(0)),
                )
                .await
                .unwrap();
            assert!(r.instances.iter().all(|i| i.purchase == PurchaseOption::Spot));
            // Spot price frozen at launch: about a third of on-demand.
            assert!(r.instances[0].hourly_price < herd_core::Money::parse_usd("0.0340").unwrap());
            clock.advance(secs(24 * 3600));
            let got = p.list(&ListRequest::new()).await.unwrap();
            got.iter()
                .map(|i| {
                    assert_eq!(i.state_reason.as_deref(), Some("spot-interruption"));
                    let lived = herd_core::clock::between(i.launched_at, i.ended_at.unwrap());
                    assert!(lived >= secs(120), "the notice period comes first: {lived:?}");
                    assert!(i.ended_at.unwrap() < i.deadline);
                    lived
                })
                .collect::<Vec<_>>()
        }
    };
    let a = run(11).await;
    assert_eq!(a, run(11).await, "same seed, same interruptions");
    assert_ne!(a, run(12).await);
}

#[tokio::test]
async fn same_launch_id_same_instances_other_spec_conflict() {
    let clock = VirtualClock::at_epoch();
    let p = herd_local::virtual_provider(clock.clone(), 4, quick_boot());
    let req = request("l-idem-1", "l1.medium", 2, clock.now(), secs(3600));
    let a = p.launch(&req).await.unwrap();
    let b = p.launch(&req).await.unwrap();
    assert_eq!(
        a.iter().map(|i| &i.id).collect::<Vec<_>>(),
        b.iter().map(|i| &i.id).collect::<Vec<_>>()
    );
    assert_eq!(
        p.list(&ListRequest::new()).await.unwrap().len(),
        2,
        "nothing new started"
    );

    let mut other = req.clone();
    other.instance_type = "l1.large".into();
    let e = err(p.launch(&other).await);
    assert_eq!(e.kind(), ErrorKind::Conflict);
    assert!(e.message().contains("IdempotentParameterMismatch"), "{e}");

    // Even after they ended, a replay returns them rather than starting new ones.
    let ids: Vec<String> = a.iter().map(|i| i.id.clone()).collect();
    p.terminate(&ids).await.unwrap();
    let c = p.launch(&req).await.unwrap();
    assert!(c.iter().all(|i| i.state == InstanceState::Terminated));
    assert_eq!(c.iter().map(|i| i.id.clone()).collect::<Vec<_>>(), ids);
    assert_eq!(p.api_calls(), 6);
}

#[tokio::test]
async fn capacity_fills_zones_in_order_then_refuses() {
    let faults = Faults {
        capacity: BTreeMap::from([
            ("local-east-1a".to_string(), 2),
            ("local-east-1b".to_string(), 1),
            ("local-east-1c".to_string(), 0),
        ]),
        ..quick_boot()
    };
    let (_clock, p, l) = virtual_pair(5, faults);
    let a = l.launch(LaunchSpec::new("l1.small", 2)).await.unwrap();
    assert!(a.instances.iter().all(|i| i.zone == "local-east-1a"));
    let b = l.launch(LaunchSpec::new("l1.small", 1)).await.unwrap();
    assert_eq!(b.instances[0].zone, "local-east-1b");
    let e = err(l.launch(LaunchSpec::new("l1.small", 1)).await);
    assert_eq!(e.kind(), ErrorKind::InsufficientCapacity);
    assert!(
        e.message().contains("local-east-1a, local-east-1b, local-east-1c"),
        "{e}"
    );
    assert!(e.hint().unwrap().contains("another region"), "{e:?}");
    // Another region has room; a pinned zone is refused on its own.
    l.launch(LaunchSpec::new("l1.small", 1).region("local-west-1"))
        .await
        .unwrap();
    let e = err(l.launch(LaunchSpec::new("l1.small", 1).zone("local-east-1c")).await);
    assert_eq!(e.kind(), ErrorKind::InsufficientCapacity);
    // Capacity comes back when instances end.
    l.terminate(&[a.instances[0].id.clone()]).await.unwrap();
    let c = l.launch(LaunchSpec::new("l1.small", 1)).await.unwrap();
    assert_eq!(c.instances[0].zone, "local-east-1a");
    assert!(p.api_calls() > 0);
}

#[tokio::test]
async fn spot_or_on_demand_falls_back_through_the_launcher() {
    let faults = Faults {
        capacity: BTreeMap::from([("local-east-1a".to_string(), 0)]),
        ..quick_boot()
    };
    let (_clock, _p, l) = virtual_pair(5, faults);
    let spec = LaunchSpec::new("l1.small", 1)
        .zone("local-east-1a")
        .market(Market::SpotOrOnDemand);
    let e = err(l.launch(spec).await);
    // Both markets share the zone's capacity, so the fallback fails too, clearly.
    assert_eq!(e.kind(), ErrorKind::InsufficientCapacity);
}

#[tokio::test]
async fn vcpu_quota_is_an_account_limit() {
    let faults = Faults {
        vcpu_quota: Some(4),
        ..quick_boot()
    };
    let (_clock, _p, l) = virtual_pair(6, faults);
    let a = l.launch(LaunchSpec::new("l1.xlarge", 2)).await.unwrap();
    let e = err(l.launch(LaunchSpec::new("l1.small", 1)).await);
    assert_eq!(e.kind(), ErrorKind::QuotaExceeded);
    assert!(e.message().contains("limit of 4"), "{e}");
    assert!(e.hint().unwrap().contains("vcpu_quota"), "{e:?}");
    l.terminate(&[a.instances[0].id.clone()]).await.unwrap();
    l.launch(LaunchSpec::new("l1.small", 2)).await.unwrap();
}

#[tokio::test]
async fn transient_faults_are_seeded_and_idempotent_launch_copes() {
    let faults = Faults {
        transient_error_rate: 0.5,
        ..quick_boot()
    };
    // Raw calls: some fail before any effect, some after it was committed.
    let clock = VirtualClock::at_epoch();
    let p = herd_local::virtual_provider(clock.clone(), 99, faults.clone());
    let mut committed = 0;
    let mut failed = 0;
    for n in 0..40 {
        let req = request(&format!("l-t{n}"), "l1.small", 1, clock.now(), secs(3600));
        match p.launch(&req).await {
            Ok(_) => {}
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::Unavailable);
                assert!(e.is_temporary());
                failed += 1;
                if e.message().contains("response was lost") {
                    committed += 1;
                }
            }
        }
    }
    assert!(
        failed > 5 && committed > 0 && committed < failed,
        "{failed} {committed}"
    );
    assert_eq!(p.api_calls(), 40);

    // Through the Launcher (one retry loop, same launch id): exactly the count, no duplicates.
    let (_clock, p, l) = virtual_pair(99, faults);
    for n in 0..10 {
        let r = l
            .launch(LaunchSpec::new("l1.small", 3).cluster(format!("c{n}")))
            .await
            .unwrap();
        assert_eq!(r.instances.len(), 3);
    }
    let all = loop {
        // Listing may fail transiently too; the Launcher retries it.
        if let Ok(v) = l.list(&ListRequest::new()).await {
            break v;
        }
    };
    assert_eq!(all.len(), 30, "no duplicate instances from retried launches");
    assert!(p.api_calls() > 11, "faults really happened");
}

#[tokio::test]
async fn throttling_uses_ec2_token_buckets_and_launches_nothing_when_throttled() {
    let faults = Faults {
        throttle: true,
        ..quick_boot()
    };
    let clock = VirtualClock::at_epoch();
    let p = herd_local::virtual_provider(clock.clone(), 8, faults);
    // RunInstances: 5 requests at once, then 2 a second.
    for n in 0..5 {
        p.launch(&request(&format!("l-r{n}"), "l1.small", 1, clock.now(), secs(3600)))
            .await
            .unwrap();
    }
    let e = err(p.launch(&request("l-r5", "l1.small", 1, clock.now(), secs(3600))).await);
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    assert!(e.is_temporary());
    assert_eq!(e.retry_after(), None, "EC2 gives no retry hint, nor does the simulator");
    clock.advance(Duration::from_millis(500));
    p.launch(&request("l-r5", "l1.small", 1, clock.now(), secs(3600)))
        .await
        .unwrap();

    // Resource tokens: 1000 instances at once, then 2 a second, all or nothing. Six are
    // spent; one second later the request bucket has 2 tokens, the instance bucket 997.
    clock.advance(secs(1));
    let e = err(p
        .launch(&request("l-big", "l1.small", 998, clock.now(), secs(3600)))
        .await);
    assert_eq!(e.kind(), ErrorKind::RateLimited, "{e}");
    assert!(e.message().contains("instance tokens"), "{e}");
    assert_eq!(p.list(&ListRequest::new()).await.unwrap().len(), 6, "nothing launched");
    // The refused call took its request token but no instance tokens.
    let got = p
        .launch(&request("l-big2", "l1.small", 997, clock.now(), secs(3600)))
        .await
        .unwrap();
    assert_eq!(got.len(), 997);
    let e = err(p
        .launch(&request("l-big3", "l1.small", 1, clock.now(), secs(3600)))
        .await);
    assert!(e.message().contains("RunInstances"), "request bucket empty again: {e}");
    let calls = p.api_calls();
    assert_eq!(calls, 11);
}

#[tokio::test]
async fn the_launcher_rides_out_throttling_on_the_virtual_clock() {
    let faults = Faults {
        throttle: true,
        ..quick_boot()
    };
    let (clock, p, l) = virtual_pair(9, faults);
    let t0 = clock.now();
    for n in 0..12 {
        l.launch(LaunchSpec::new("l1.small", 1).cluster(format!("c{n}")))
            .await
            .unwrap();
    }
    let took = herd_core::clock::between(t0, clock.now());
    // 5 at once, then 2 per second: at least 3.5 s of (virtual) waiting.
    assert!(took >= Duration::from_millis(3500), "{took:?}");
    assert!(l.launch_stats().snapshot().1 > 0, "throttled calls were seen");
    assert!(p.api_calls() > 12);
}

#[tokio::test]
async fn refused_before_any_api_call() {
    let clock = VirtualClock::at_epoch();
    let p = Arc::new(
        LocalProvider::builder()
            .in_memory()
            .clock(Arc::new(clock.clone()))
            .spot(false)
            .build()
            .unwrap(),
    );
    let l = launcher(&p, &clock, RetryPolicy::none());
    let e = err(l.launch(LaunchSpec::new("l1.small", 1).market(Market::Spot)).await);
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    let e = err(l.launch(LaunchSpec::new("l1.smal", 1)).await);
    assert_eq!(e.kind(), ErrorKind::InvalidSpec);
    assert_eq!(e.suggestions()[0], "l1.small");
    let e = err(l.exec("i-x", &herd_core::ExecRequest::new("true")).await);
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    assert_eq!(p.api_calls(), 0);
}

#[tokio::test]
async fn list_paginates_filters_and_counts_pages() {
    let (_clock, p, l) = virtual_pair(10, quick_boot());
    l.launch(LaunchSpec::new("l1.small", 1500).cluster("big"))
        .await
        .unwrap();
    l.launch(LaunchSpec::new("l1.small", 700).cluster("small").region("local-eu-1"))
        .await
        .unwrap();
    let before = p.api_calls();
    let all = p.list(&ListRequest::new()).await.unwrap();
    assert_eq!(all.len(), 2200);
    assert_eq!(p.api_calls() - before, 3, "pages of 1000");
    assert_eq!(all.iter().map(|i| &i.id).collect::<HashSet<_>>().len(), 2200);

    let before = p.api_calls();
    let eu = p
        .list(&ListRequest::new().region("local-eu-1").page_size(100))
        .await
        .unwrap();
    assert_eq!(eu.len(), 700);
    assert_eq!(p.api_calls() - before, 7);

    // Page size 1 really pages: one call per instance, none repeated or lost.
    l.launch(LaunchSpec::new("l1.small", 3).cluster("tiny").region("local-west-1"))
        .await
        .unwrap();
    let before = p.api_calls();
    let tiny = p
        .list(&ListRequest::new().tag("herd-cluster", "tiny").page_size(1))
        .await
        .unwrap();
    assert_eq!(tiny.iter().map(|i| &i.id).collect::<HashSet<_>>().len(), 3);
    assert_eq!(p.api_calls() - before, 3, "three pages of one");
    let big = p.list(&ListRequest::new().tag("herd-cluster", "big")).await.unwrap();
    assert_eq!(big.len(), 1500);
    let pending = p.list(&ListRequest::new().state(InstanceState::Pending)).await.unwrap();
    assert_eq!(pending.len(), 2203);
    let none = p
        .list(&ListRequest::new().state(InstanceState::Terminated))
        .await
        .unwrap();
    assert!(none.is_empty());
}

#[tokio::test]
async fn orphaned_volumes_are_priced_leftovers_until_reaped() {
    let faults = Faults {
        orphan_volume_rate: 1.0,
        ..quick_boot()
    };
    let (clock, p, l) = virtual_pair(12, faults);
    let r = l.launch(LaunchSpec::new("m1.large", 2).cluster("lab")).await.unwrap();
    assert!(
        l.leftovers(None).await.unwrap().is_empty(),
        "running instances' volumes are in use"
    );
    let ids: Vec<String> = r.instances.iter().map(|i| i.id.clone()).collect();
    l.terminate(&ids).await.unwrap();
    clock.advance(secs(3600));
    let left = l.leftovers(Some("tester")).await.unwrap();
    assert_eq!(left.len(), 2);
    for v in &left {
        assert_eq!(v.kind, "volume");
        assert!(v.id.starts_with("vol-"));
        assert_eq!(v.tags.get("herd-cluster").map(String::as_str), Some("lab"));
        assert_eq!(v.cost_per_day.to_string(), "$0.0210");
        assert!(v.reason.contains("1h"), "{}", v.reason);
    }
    assert!(l.leftovers(Some("someone-else")).await.unwrap().is_empty());
    let reaped = l.reap(&left).await.unwrap();
    assert!(reaped.iter().all(|r| r.outcome == TerminateOutcome::Terminated));
    let again = l.reap(&left).await.unwrap();
    assert!(again.iter().all(|r| r.outcome == TerminateOutcome::AlreadyGone));
    assert!(l.leftovers(None).await.unwrap().is_empty());
    assert!(p.api_calls() > 0);
}

#[tokio::test]
async fn state_survives_across_providers_on_one_dir() {
    let dir = tempfile::tempdir().unwrap();
    let clock = VirtualClock::at_epoch();
    let open = || {
        Arc::new(
            LocalProvider::builder()
                .state_dir(dir.path())
                .processes(false)
                .clock(Arc::new(clock.clone()))
                .faults(Faults {
                    throttle: true,
                    ..quick_boot()
                })
                .build()
                .unwrap(),
        )
    };
    let a = open();
    let la = launcher(&a, &clock, RetryPolicy::none());
    let r = la.launch(LaunchSpec::new("c1.xlarge", 2)).await.unwrap();
    for _ in 0..4 {
        a.list(&ListRequest::new()).await.unwrap();
    }
    // Another shell: sees the instances, and the same drained RunInstances bucket.
    let b = open();
    let seen = b.list(&ListRequest::new()).await.unwrap();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].id, r.instances[0].id);
    assert_eq!(seen[0].hourly_price, r.instances[0].hourly_price);
    for n in 0..4 {
        b.launch(&request(&format!("l-b{n}"), "l1.small", 1, clock.now(), secs(3600)))
            .await
            .unwrap();
    }
    let e = err(b.launch(&request("l-b9", "l1.small", 1, clock.now(), secs(3600))).await);
    assert_eq!(e.kind(), ErrorKind::RateLimited, "throttling spans providers");
    b.terminate(&[r.instances[0].id.clone()]).await.unwrap();
    let after = a
        .list(&ListRequest::new().ids([r.instances[0].id.clone()]))
        .await
        .unwrap();
    assert_eq!(after[0].state, InstanceState::Terminated);
    assert!(a.info().account.contains(dir.path().to_str().unwrap()));
}

#[tokio::test]
async fn a_state_dir_from_a_newer_herd_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(
        LocalProvider::builder()
            .state_dir(dir.path())
            .processes(false)
            .build()
            .unwrap(),
    );
    let c = rusqlite_user_version(dir.path(), 42);
    assert!(c);
    let e = LocalProvider::builder()
        .state_dir(dir.path())
        .processes(false)
        .build()
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConfigInvalid);
    assert!(e.message().contains("schema v42"), "{e}");
    assert!(e.hint().unwrap().contains("upgrade"), "{e:?}");
}

/// Bumps the schema version the way a newer herd would.
fn rusqlite_user_version(dir: &std::path::Path, v: u32) -> bool {
    let c = rusqlite::Connection::open(dir.join("sim.db")).unwrap();
    c.execute_batch(&format!("PRAGMA user_version = {v}")).is_ok()
}

#[tokio::test]
async fn thousands_of_virtual_instances() {
    let (clock, p, l) = virtual_pair(13, quick_boot());
    let r = l
        .launch(LaunchSpec::new("l1.small", 5000).deadline(secs(3600)))
        .await
        .unwrap();
    assert_eq!(r.instances.len(), 5000);
    assert_eq!(r.calls, 5, "batches of 1000");
    let ids: Vec<String> = r.instances.iter().map(|i| i.id.clone()).collect();
    let up = l.wait_until_running(&ids, secs(600)).await.unwrap();
    assert_eq!(up.len(), 5000);
    let half: Vec<String> = ids[..2500].to_vec();
    let t = l.terminate(&half).await.unwrap();
    assert_eq!(t.len(), 2500);
    clock.advance(secs(7200));
    let live = p.list(&ListRequest::new().live()).await.unwrap();
    assert!(live.is_empty(), "the rest ended at their deadline");
}
