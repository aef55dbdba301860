//! herd-gcp against the test kit's fake Compute Engine (every body held to the discovery
//! document): the requests that matter, asserted as sent, and the seeded faults.

use std::sync::Arc;
use std::time::Duration;

use herd_core::{tags, ErrorKind, LaunchSpec, Launcher, ListRequest, Market, Provider, RetryPolicy};
use herd_gcp::testing::{FakeGce, Faults};
use herd_gcp::{GcpConfig, GcpProvider, StaticToken, Token};

struct Env {
    fake: FakeGce,
    _keys: tempfile::TempDir,
    provider: Arc<GcpProvider>,
}

async fn env(faults: Faults) -> Env {
    let fake = FakeGce::start(faults).await;
    let keys = tempfile::tempdir().unwrap();
    let cfg = GcpConfig::new("tester", keys.path())
        .project("herd-test")
        .region("us-central1")
        .api_base(fake.uri())
        .attempt_timeout(Duration::from_secs(10));
    let provider = Arc::new(
        GcpProvider::builder(cfg)
            .tokens(Arc::new(StaticToken(Token::new("test-token"))))
            .build(),
    );
    Env {
        fake,
        _keys: keys,
        provider,
    }
}

fn launcher(p: Arc<GcpProvider>) -> Launcher {
    let retry = RetryPolicy {
        base: Duration::from_millis(5),
        cap: Duration::from_millis(50),
        rate_limit_patience: Duration::from_secs(1),
        patience: Duration::from_secs(20),
        ..RetryPolicy::default()
    };
    Launcher::builder(p)
        .guardrails(herd_core::Guardrails {
            owner: "tester".into(),
            min_deadline: Duration::from_secs(1),
            ..Default::default()
        })
        .retry(retry)
        .build()
}

fn spec(n: u32) -> LaunchSpec {
    LaunchSpec::new("e2-micro", n)
        .region("us-central1")
        .deadline(Duration::from_secs(3600))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_launch_sends_what_the_issue_asks_and_reads_back() {
    let e = env(Faults::default()).await;
    let l = launcher(e.provider.clone());
    let r = l.launch(spec(3).market(Market::Spot).tag("team", "ml")).await.unwrap();
    assert_eq!(r.instances.len(), 3);
    let bulk = e.fake.requests("compute.instances.bulkInsert");
    assert_eq!(bulk.len(), 1);
    let b = &bulk[0].body;
    assert_eq!((b["count"].as_str(), b["minCount"].as_str()), (Some("3"), Some("3")));
    assert!(b.get("namePattern").is_none());
    let names: Vec<&String> = b["perInstanceProperties"].as_object().unwrap().keys().collect();
    let want: Vec<String> = (0..3)
        .map(|i| herd_gcp::launch::instance_name(r.launch_id.as_str(), i))
        .collect();
    assert_eq!(names, want.iter().collect::<Vec<_>>());
    assert_eq!(
        bulk[0].query["requestId"],
        herd_gcp::launch::request_id(&format!("{}@us-central1-a", r.launch_id))
    );
    let p = &b["instanceProperties"];
    assert_eq!(p["scheduling"]["instanceTerminationAction"], "DELETE");
    assert_eq!(p["scheduling"]["provisioningModel"], "SPOT");
    let tt = chrono::DateTime::parse_from_rfc3339(p["scheduling"]["terminationTime"].as_str().unwrap()).unwrap();
    assert_eq!(tt.timestamp(), r.instances[0].deadline.timestamp());
    assert_eq!(p["disks"][0]["autoDelete"], true);
    assert_eq!(p["labels"][tags::OWNER], "tester");
    assert_eq!(p["labels"]["team"], "ml");
    assert_eq!(
        p["labels"][tags::DEADLINE],
        r.instances[0].deadline.timestamp().to_string()
    );
    assert_eq!(p["tags"]["items"][0], "herd-tester");
    let md: Vec<&str> = p["metadata"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["key"].as_str().unwrap())
        .collect();
    assert_eq!(md, ["ssh-keys", "startup-script"]);
    assert!(p["metadata"]["items"][0]["value"]
        .as_str()
        .unwrap()
        .starts_with("herd:ssh-ed25519 "));
    let script = p["metadata"]["items"][1]["value"].as_str().unwrap();
    assert!(script.contains("/instances/"), "the watchdog deletes its own VM");
    let fw = e.fake.requests("compute.firewalls.insert");
    assert_eq!(fw.len(), 1);
    assert_eq!(fw[0].body["sourceRanges"][0], "127.0.0.1/32");
    assert_eq!(fw[0].body["targetTags"][0], "herd-tester");
    // Listed back by the owner label, labels checked by herd.
    let listed = l
        .list(&ListRequest::new().tag(tags::LAUNCH, r.launch_id.as_str()))
        .await
        .unwrap();
    assert_eq!(listed.len(), 3);
    assert!(listed.iter().all(|i| i.purchase == herd_core::PurchaseOption::Spot));
    // No token in any URL, every request authorised (the fake refuses otherwise).
    assert!(e.fake.all_requests().iter().all(|r| r.status != 401));
    // A second launch reuses the firewall rule.
    l.launch(spec(1)).await.unwrap();
    assert_eq!(e.fake.requests("compute.firewalls.insert").len(), 1);
    let ids: Vec<String> = r.instances.iter().map(|i| i.id.clone()).collect();
    let t = l.terminate(&ids).await.unwrap();
    assert_eq!(t.len(), 3);
    assert_eq!(e.fake.requests("compute.instances.delete").len(), 3);
    // Terminating again: all already gone, no delete sent.
    l.terminate(&ids).await.unwrap();
    assert_eq!(e.fake.requests("compute.instances.delete").len(), 3);
    assert_eq!(e.fake.instances().len(), 1);
    assert!(e.fake.disks().len() == 1, "boot disks went with their VMs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_answer_is_retried_with_the_same_request_id_and_makes_n() {
    let f = Faults {
        lost_after_effect: vec![("compute.instances.bulkInsert".into(), 1)],
        unavailable: vec![("compute.zoneOperations.wait".into(), 1)],
        ..Faults::default()
    };
    let e = env(f).await;
    let l = launcher(e.provider.clone());
    let r = l.launch(spec(4)).await.unwrap();
    assert_eq!(r.instances.len(), 4);
    assert_eq!(e.fake.instances().len(), 4);
    let ids: Vec<String> = e
        .fake
        .requests("compute.instances.bulkInsert")
        .iter()
        .map(|r| r.query["requestId"].clone())
        .collect();
    assert!(!ids.is_empty() && ids.iter().all(|i| *i == ids[0]), "{ids:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zone_exhaustion_moves_to_the_zone_gce_names() {
    let f = Faults {
        exhausted: vec!["us-central1-a".into()],
        zones_available: vec!["us-central1-f".into()],
        ..Faults::default()
    };
    let e = env(f).await;
    let l = launcher(e.provider.clone());
    let r = l.launch(spec(2)).await.unwrap();
    assert!(
        r.instances.iter().all(|i| i.zone == "us-central1-f"),
        "{:?}",
        r.instances
    );
    assert_eq!(e.provider.capacity_misses(), ["us-central1-a"]);
    let zones: Vec<String> = e
        .fake
        .requests("compute.instances.bulkInsert")
        .iter()
        .map(|r| r.path.split('/').nth(3).unwrap().to_string())
        .collect();
    assert_eq!(zones, ["us-central1-a", "us-central1-f"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_in_the_operation_is_a_clear_error_with_nothing_running() {
    let e = env(Faults {
        quota: true,
        ..Faults::default()
    })
    .await;
    let l = launcher(e.provider.clone());
    let err = l.launch(spec(2)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::QuotaExceeded);
    assert!(
        err.message().contains("compute.googleapis.com/cpus") && err.message().contains("us-central1"),
        "{err}"
    );
    assert!(e.fake.instances().is_empty());
    assert_eq!(
        e.fake.requests("compute.instances.bulkInsert").len(),
        1,
        "a quota is not retried"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_and_503s_are_retried_by_herds_loop() {
    let e = env(Faults {
        unavailable: vec![("compute.instances.aggregatedList".into(), 2)],
        per_minute: vec![("compute.instances.bulkInsert".into(), 0)],
        ..Faults::default()
    })
    .await;
    let l = launcher(e.provider.clone());
    let err = l.launch(spec(1)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RateLimited, "{err}");
    assert!(e.fake.instances().is_empty());
    e.fake.set_faults(Faults::default());
    let r = l.launch(spec(1)).await.unwrap();
    assert_eq!(r.instances.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_before_any_call() {
    let e = env(Faults::default()).await;
    let l = launcher(e.provider.clone());
    let err = l
        .launch(LaunchSpec::new("e2-mikro", 1).region("us-central1"))
        .await
        .unwrap_err();
    assert!(!err.suggestions().is_empty(), "{err:?}");
    let err = l.launch(spec(1).zone("us-central1-q")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidSpec, "{err}");
    assert!(err.hint().unwrap().contains("us-central1-a"), "{err:?}");
    let err = l.launch(spec(1).tag("Team", "x")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidSpec, "{err}");
    let err = l
        .launch(spec(1).image(herd_gcp::images::DEBIAN_ARM64))
        .await
        .unwrap_err();
    assert!(err.message().contains("arm64"), "{err}");
    // Reads at most (the region's zones), nothing that could bill.
    let sent: Vec<String> = e.fake.all_requests().iter().map(|r| r.method.clone()).collect();
    assert!(sent.iter().all(|m| m == "compute.regions.get"), "{sent:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_owners_vm_refuses_the_whole_terminate() {
    let e = env(Faults::default()).await;
    let l = launcher(e.provider.clone());
    let r = l.launch(spec(1)).await.unwrap();
    e.fake.plant(
        "instance",
        "us-central1-b",
        "bobs-vm",
        serde_json::json!({"labels": {"herd-owner": "bob"}}),
    );
    let err = e
        .provider
        .terminate(&[r.instances[0].id.clone(), "bobs-vm".into()])
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied);
    assert!(e.fake.requests("compute.instances.delete").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reap_finds_unused_disks_addresses_and_firewalls() {
    let e = env(Faults::default()).await;
    let l = launcher(e.provider.clone());
    let r = l.launch(spec(1)).await.unwrap();
    e.fake.plant(
        "disk",
        "us-central1-a",
        "orphan",
        serde_json::json!({"sizeGb": "30", "labels": {"herd-owner": "tester"}, "users": []}),
    );
    e.fake.plant(
        "address",
        "us-central1",
        "ip1",
        serde_json::json!({"status": "RESERVED", "labels": {"herd-owner": "tester"}}),
    );
    e.fake.plant(
        "disk",
        "us-central1-a",
        "someone-elses",
        serde_json::json!({"sizeGb": "30", "users": []}),
    );
    let left = e.provider.leftovers(Some("tester")).await.unwrap();
    let kinds: Vec<(&str, &str)> = left.iter().map(|l| (l.kind.as_str(), l.id.as_str())).collect();
    assert_eq!(
        kinds,
        [("address", "us-central1/ip1"), ("disk", "us-central1-a/orphan")],
        "the firewall is still needed"
    );
    assert_eq!(left[1].cost_per_day.to_micros(), 40_000, "30 GB at $0.04 per GB-month");
    assert_eq!(left[0].cost_per_day.to_micros(), 240_000);
    let ids: Vec<String> = r.instances.iter().map(|i| i.id.clone()).collect();
    l.terminate(&ids).await.unwrap();
    let left = e.provider.leftovers(Some("tester")).await.unwrap();
    assert_eq!(left.len(), 3, "{left:?}");
    let done = e.provider.reap(&left).await.unwrap();
    assert!(done.iter().all(|d| !d.is_failed()), "{done:?}");
    assert!(e.provider.leftovers(Some("tester")).await.unwrap().is_empty());
    assert_eq!(e.fake.disks().len(), 1, "only the foreign disk is left");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_missing_an_unreachable_zone_is_an_error_naming_it() {
    let e = env(Faults::default()).await;
    let l = launcher(e.provider.clone());
    let r = l.launch(spec(1)).await.unwrap();
    e.fake.plant(
        "instance",
        "us-central1-b",
        "herd-other-0000",
        serde_json::json!({"labels": {"herd-owner": "tester", "herd-launch": "l-other"}}),
    );
    let all = e.provider.list(&l.mine()).await.unwrap();
    assert_eq!(all.len(), 2, "{all:?}");

    e.fake.set_faults(Faults {
        unreachable: vec!["us-central1-b".into()],
        ..Faults::default()
    });
    let err = e.provider.list(&l.mine()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(err.is_temporary());
    assert!(err.to_string().contains("zones/us-central1-b"), "{err}");
    // Terminating "everything of mine" must not act on the partial list either.
    let impatient = Launcher::builder(e.provider.clone())
        .guardrails(herd_core::Guardrails {
            owner: "tester".into(),
            ..Default::default()
        })
        .retry(RetryPolicy {
            base: Duration::from_millis(5),
            cap: Duration::from_millis(20),
            patience: Duration::from_millis(300),
            ..RetryPolicy::default()
        })
        .build();
    let down = impatient.terminate_tagged(&l.mine().tags).await;
    assert!(down.is_err(), "{down:?}");
    assert!(e.fake.requests("compute.instances.delete").is_empty());

    e.fake.set_faults(Faults::default());
    let ids: Vec<_> = e
        .provider
        .list(&l.mine())
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect();
    assert!(ids.contains(&r.instances[0].id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_terminate_reads_owners_from_the_vms_and_still_refuses_a_foreign_one() {
    let e = env(Faults::default()).await;
    let l = launcher(e.provider.clone());
    let r = l.launch(spec(150)).await.unwrap();
    e.fake.plant(
        "instance",
        "us-central1-b",
        "bobs-vm",
        serde_json::json!({"labels": {"herd-owner": "bob"}}),
    );
    let mut ids: Vec<String> = r.instances.iter().map(|i| i.id.clone()).collect();
    ids.push("bobs-vm".into());
    let err = e.provider.terminate(&ids).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
    assert!(err.to_string().contains("bobs-vm"), "{err}");
    assert!(e.fake.requests("compute.instances.delete").is_empty());
    // Without it: one list of the owner's VMs answers for all 150 (pages of 500).
    let before = e.fake.requests("compute.instances.aggregatedList").len();
    ids.pop();
    let done = e.provider.terminate(&ids).await.unwrap();
    assert_eq!(done.len(), 150);
    assert_eq!(e.fake.requests("compute.instances.aggregatedList").len() - before, 1);
    assert_eq!(e.fake.requests("compute.instances.delete").len(), 150);
    assert!(e.fake.instances().iter().all(|v| v["name"] == "bobs-vm"));
}
