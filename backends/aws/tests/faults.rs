//! Faults moto lacks, injected by a proxy in front of it on the real request path:
//! throttling bursts, no capacity in one zone, 5xx before and after the effect, slow
//! answers. Under each, a launch yields exactly N instances, or a clear error and
//! nothing left running.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{quick_retry, Env, REGION, TYPE};
use herd_aws::testing::Fault;
use herd_core::{tags, ErrorKind, LaunchSpec, ListRequest, Provider};

fn spec(n: u32) -> LaunchSpec {
    LaunchSpec::new(TYPE, n)
        .region(REGION)
        .deadline(Duration::from_secs(3600))
}

/// Instances of the owner still live in moto, whatever herd thinks.
async fn live(env: &Env) -> usize {
    let p = env.provider();
    p.list(&ListRequest::new().tag(tags::OWNER, "tester").live())
        .await
        .unwrap()
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_burst_still_yields_exactly_n() {
    let env = Env::start(Arc::new(|s, nth| {
        if s.action == "RunInstances" && nth < 3 {
            Fault::fail(503, "RequestLimitExceeded")
        } else {
            Fault::Pass
        }
    }))
    .await;
    let launcher = env.launcher(env.provider(), quick_retry());
    let r = launcher.launch(spec(5)).await.unwrap();
    assert_eq!(r.instances.len(), 5);
    assert_eq!(r.throttled, 3, "three throttled calls were counted");
    assert_eq!(env.proxy.calls("RunInstances").len(), 4);
    // Every attempt carried the same token: a retry can never double the launch.
    let tokens: Vec<_> = env
        .proxy
        .calls("RunInstances")
        .iter()
        .map(|s| s.param("ClientToken").unwrap().to_string())
        .collect();
    assert!(tokens.iter().all(|t| t == r.launch_id.as_str()), "{tokens:?}");
    assert_eq!(live(&env).await, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_capacity_in_one_zone_lands_in_another_and_says_where() {
    let env = Env::start(Arc::new(|s, _| {
        let zone = s.param("Placement.AvailabilityZone");
        if s.action == "RunInstances" && (zone.is_none() || zone == Some("us-east-1a")) {
            Fault::fail(500, "InsufficientInstanceCapacity")
        } else {
            Fault::Pass
        }
    }))
    .await;
    let p = env.provider();
    let launcher = env.launcher(p.clone(), quick_retry());
    let r = launcher.launch(spec(3)).await.unwrap();
    assert_eq!(r.instances.len(), 3);
    assert!(r.instances.iter().all(|i| i.zone == "us-east-1b"), "{:?}", r.instances);
    assert_eq!(p.capacity_misses(), vec!["us-east-1a".to_string()]);
    let runs = env.proxy.calls("RunInstances");
    assert_eq!(runs.len(), 3, "anywhere, then 1a, then 1b");
    assert_eq!(runs[2].param("Placement.AvailabilityZone"), Some("us-east-1b"));
    assert_eq!(live(&env).await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_capacity_anywhere_is_a_clear_error_with_nothing_running() {
    let env = Env::start(Arc::new(|s, _| {
        if s.action == "RunInstances" {
            Fault::fail(500, "InsufficientInstanceCapacity")
        } else {
            Fault::Pass
        }
    }))
    .await;
    let launcher = env.launcher(env.provider(), quick_retry());
    let e = launcher.launch(spec(2)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InsufficientCapacity, "{e}");
    let hint = e.hint().unwrap();
    assert!(
        hint.contains("us-east-1a") && hint.contains("try another region"),
        "{hint}"
    );
    assert_eq!(live(&env).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_error_after_the_launch_happened_does_not_double_it() {
    let env = Env::start(Arc::new(|s, nth| {
        if s.action == "RunInstances" && nth == 0 {
            Fault::fail_after(500, "InternalError")
        } else {
            Fault::Pass
        }
    }))
    .await;
    let launcher = env.launcher(env.provider(), quick_retry());
    let r = launcher.launch(spec(4)).await.unwrap();
    assert_eq!(r.instances.len(), 4);
    // The retry found the first call's instances by their request tag.
    assert_eq!(env.proxy.calls("RunInstances").len(), 1);
    assert_eq!(live(&env).await, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_after_the_launch_happened_does_not_double_it() {
    let env = Env::start(Arc::new(|s, nth| {
        if s.action == "RunInstances" && nth == 0 {
            Fault::Delay(Duration::from_secs(4))
        } else {
            Fault::Pass
        }
    }))
    .await;
    let cfg = env.config().attempt_timeout(Duration::from_millis(1500));
    let launcher = env.launcher(env.provider_with(cfg), quick_retry());
    let r = launcher.launch(spec(3)).await.unwrap();
    assert_eq!(r.instances.len(), 3);
    assert_eq!(live(&env).await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_errors_before_the_effect_are_retried_by_herd() {
    let env = Env::start(Arc::new(|s, nth| match s.action.as_str() {
        "RunInstances" if nth < 2 => Fault::fail(503, "Unavailable"),
        "DescribeInstances" if nth < 2 => Fault::fail(500, "InternalError"),
        _ => Fault::Pass,
    }))
    .await;
    let launcher = env.launcher(env.provider(), quick_retry());
    let r = launcher.launch(spec(2)).await.unwrap();
    assert_eq!(r.instances.len(), 2);
    let listed = launcher
        .list(&ListRequest::new().tag(tags::LAUNCH, r.launch_id.as_str()))
        .await
        .unwrap();
    assert_eq!(listed.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_errors_are_not_retried_and_say_what_to_do() {
    let env = Env::start(Arc::new(|s, _| {
        if s.action == "RunInstances" {
            Fault::fail(400, "VcpuLimitExceeded")
        } else {
            Fault::Pass
        }
    }))
    .await;
    let launcher = env.launcher(env.provider(), quick_retry());
    let e = launcher.launch(spec(2)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::QuotaExceeded);
    assert!(e.hint().unwrap().contains("quota"), "{:?}", e.hint());
    assert_eq!(env.proxy.calls("RunInstances").len(), 1);
    assert_eq!(live(&env).await, 0);
}
