//! herd-azure against the test kit's stateful ARM (every PUT body held to Azure's own
//! examples): the requests that matter, asserted as sent, each seeded fault, and bad
//! input refused before any billable call.

use std::sync::Arc;
use std::time::Duration;

use herd_azure::testing::{Delivery, FakeArm, Faults, Kind, Lost, LostAnswer, Quota};
use herd_azure::{AzureConfig, AzureProvider};
use herd_core::{tags, ErrorKind, LaunchSpec, Launcher, ListRequest, Market, Provider, RetryPolicy};

const SUB: &str = "00000000-0000-0000-0000-00000000beef";
const SIZE: &str = "Standard_D2s_v3";
const REGION: &str = "eastus";

struct Env {
    fake: FakeArm,
    _keys: tempfile::TempDir,
    provider: Arc<AzureProvider>,
}

fn no_env(_: &str) -> Option<String> {
    None
}

async fn env_with(faults: Faults, zones: &[&str]) -> Env {
    let fake = FakeArm::start(faults).await;
    let keys = tempfile::tempdir().unwrap();
    let cfg = AzureConfig::new("tester", keys.path())
        .subscription(SUB)
        .region(REGION)
        .api_base(fake.uri())
        .zones(zones.iter().map(|z| z.to_string()).collect())
        .max_poll(Duration::from_millis(20));
    let provider = Arc::new(AzureProvider::builder(cfg).token("test-token").env(no_env).build());
    Env {
        fake,
        _keys: keys,
        provider,
    }
}

async fn env(faults: Faults) -> Env {
    env_with(faults, &[]).await
}

fn launcher(p: Arc<AzureProvider>) -> Launcher {
    let retry = RetryPolicy {
        base: Duration::from_millis(5),
        cap: Duration::from_millis(50),
        rate_limit_patience: Duration::from_secs(10),
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
    LaunchSpec::new(SIZE, n)
        .region(REGION)
        .deadline(Duration::from_secs(3600))
        .cluster("c1")
}

fn vm_puts(f: &FakeArm) -> Vec<herd_azure::testing::Recorded> {
    f.requests_to("PUT", Kind::Vm)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_launch_sends_what_the_issue_asks_and_reads_back() {
    let e = env(Faults::default()).await;
    let l = launcher(e.provider.clone());
    let r = l.launch(spec(3).market(Market::Spot).tag("team", "ml")).await.unwrap();
    assert_eq!(r.instances.len(), 3);
    // One resource group per cluster, tagged, in the launch region.
    let groups = e.fake.resource_groups();
    assert_eq!(groups.len(), 1, "{groups:?}");
    assert_eq!(groups[0]["name"], "herd-tester-c1");
    assert_eq!(groups[0]["location"], REGION);
    assert_eq!(groups[0]["tags"][tags::OWNER], "tester");
    assert_eq!(groups[0]["tags"][tags::CLUSTER], "c1");
    // SSH only from the caller's /32.
    let nsg = e.fake.requests_to("PUT", Kind::NetworkSecurityGroup);
    let rule = &nsg[0].body["properties"]["securityRules"][0]["properties"];
    assert_eq!(rule["sourceAddressPrefix"], "127.0.0.1/32");
    assert_eq!(rule["destinationPortRange"], "22");
    assert_eq!(rule["access"], "Allow");
    // One PUT per VM: deterministic names, deleteOption on disk, NIC and IP, spot options, tags.
    let puts = vm_puts(&e.fake);
    assert_eq!(puts.len(), 3);
    let mut names: Vec<String> = puts
        .iter()
        .map(|p| p.path.rsplit('/').next().unwrap().to_string())
        .collect();
    names.sort();
    let want: Vec<String> = (0..3)
        .map(|i| herd_azure::launch::vm_name(r.launch_id.as_str(), i))
        .collect();
    assert_eq!(names, want);
    for p in &puts {
        let b = &p.body;
        let props = &b["properties"];
        assert_eq!(props["storageProfile"]["osDisk"]["deleteOption"], "Delete");
        let nic = &props["networkProfile"]["networkInterfaceConfigurations"][0];
        assert_eq!(nic["properties"]["deleteOption"], "Delete");
        let ip = &nic["properties"]["ipConfigurations"][0]["properties"]["publicIPAddressConfiguration"];
        assert_eq!(ip["properties"]["deleteOption"], "Delete");
        assert_eq!(props["priority"], "Spot");
        assert_eq!(props["evictionPolicy"], "Delete");
        assert_eq!(props["billingProfile"]["maxPrice"], -1.0);
        assert_eq!(b["tags"][tags::OWNER], "tester");
        assert_eq!(b["tags"]["team"], "ml");
        assert_eq!(b["tags"][tags::LAUNCH], r.launch_id.as_str());
        assert_eq!(b["identity"]["type"], "SystemAssigned");
        let script = String::from_utf8(base64_decode(props["osProfile"]["customData"].as_str().unwrap())).unwrap();
        assert!(script.contains("forceDeletion=true"), "the watchdog deletes its own VM");
        assert!(!script.contains("shutdown -h +"), "no stop that keeps billing");
    }
    // Tags on every resource herd creates itself (the group's, the NSG's, the VNet's).
    for v in e.fake.nsgs().iter().chain(e.fake.vnets().iter()) {
        assert_eq!(v["tags"][tags::OWNER], "tester", "{v}");
    }
    // Listed back, the tags checked by herd; the power state from the instance view.
    let listed = l
        .list(&ListRequest::new().tag(tags::LAUNCH, r.launch_id.as_str()))
        .await
        .unwrap();
    assert_eq!(listed.len(), 3);
    assert!(listed.iter().all(|i| i.purchase == herd_core::PurchaseOption::Spot));
    assert!(
        listed.iter().all(|i| i.state == herd_core::InstanceState::Running),
        "{listed:?}"
    );
    // The same launch again: no new VM.
    let before = vm_puts(&e.fake).len();
    let again = l
        .launch(
            spec(3)
                .market(Market::Spot)
                .tag("team", "ml")
                .launch_id(r.launch_id.clone()),
        )
        .await
        .unwrap()
        .instances;
    assert_eq!(again.len(), 3);
    assert_eq!(vm_puts(&e.fake).len(), before);
    // Down: VMs gone with their NICs, IPs and disks; then the group.
    let ids: Vec<String> = r.instances.iter().map(|i| i.id.clone()).collect();
    let t = l.terminate(&ids).await.unwrap();
    assert_eq!(t.len(), 3);
    assert!(e.fake.vms().is_empty());
    assert!(e.fake.nics().is_empty(), "{:?}", e.fake.nics());
    assert!(e.fake.public_ips().is_empty());
    assert!(e.fake.disks().is_empty());
    assert_eq!(e.fake.requests_to("DELETE", Kind::ResourceGroup).len(), 1);
    // Already gone: success.
    let t = l.terminate(&ids).await.unwrap();
    assert!(t.iter().all(|x| x.outcome == herd_core::TerminateOutcome::AlreadyGone));
}

fn base64_decode(s: &str) -> Vec<u8> {
    let table = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let mut buf = 0u32;
    let mut bits = 0;
    for c in s.chars().filter(|c| *c != '=') {
        buf = (buf << 6) | table.find(c).unwrap() as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
            buf &= (1 << bits) - 1;
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_answer_is_sent_again_under_the_same_names() {
    let faults = Faults {
        lost: vec![Lost {
            method: "PUT".into(),
            kind: "virtualMachines".into(),
            times: 1,
            answer: LostAnswer::Status500,
        }],
        ..Faults::default()
    };
    let e = env(faults).await;
    let r = launcher(e.provider.clone()).launch(spec(2)).await.unwrap();
    assert_eq!(r.instances.len(), 2);
    assert_eq!(e.fake.vms().len(), 2, "no VM twice");
    let want: Vec<String> = (0..2)
        .map(|i| herd_azure::launch::vm_name(r.launch_id.as_str(), i))
        .collect();
    for p in vm_puts(&e.fake) {
        assert!(want.iter().any(|w| p.path.ends_with(w.as_str())), "{}", p.path);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zone_without_capacity_moves_to_the_next_and_leaves_nothing() {
    for delivery in [Delivery::Sync, Delivery::Async] {
        let faults = Faults {
            zonal_allocation_failed: vec![(REGION.into(), "1".into())],
            delivery,
            ..Faults::default()
        };
        let e = env_with(faults, &["1", "2"]).await;
        let r = launcher(e.provider.clone()).launch(spec(2)).await.unwrap();
        assert!(
            r.instances.iter().all(|i| i.zone == "2"),
            "{delivery:?} {:?}",
            r.instances
        );
        assert_eq!(e.provider.capacity_misses(), ["1"]);
        assert_eq!(
            e.fake.vms().len(),
            2,
            "{delivery:?}: the failed attempt's VMs were deleted"
        );
        assert_eq!(e.fake.nics().len(), 2);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_capacity_anywhere_is_a_clear_error_and_nothing_left() {
    let faults = Faults {
        allocation_failed: vec![REGION.into()],
        ..Faults::default()
    };
    let e = env_with(faults, &["1", "2", "3"]).await;
    let err = launcher(e.provider.clone()).launch(spec(2)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InsufficientCapacity, "{err}");
    assert!(
        err.hint().unwrap_or("").contains("no zone of eastus"),
        "{:?}",
        err.hint()
    );
    assert!(e.fake.vms().is_empty() && e.fake.nics().is_empty() && e.fake.public_ips().is_empty());
    assert!(e.fake.disks().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sku_not_available_says_why_and_starts_nothing() {
    let faults = Faults {
        sku_not_available: vec![(REGION.into(), SIZE.into())],
        ..Faults::default()
    };
    let e = env_with(faults, &["1", "2"]).await;
    let err = launcher(e.provider.clone()).launch(spec(1)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InsufficientCapacity, "{err}");
    assert!(err.message().contains("SkuNotAvailable"), "{err}");
    assert_eq!(vm_puts(&e.fake).len(), 1, "not tried zone by zone");
    assert!(e.fake.vms().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sku_not_available_names_the_next_region_that_offers_it() {
    use herd_azure::testing::skus::sku;
    let faults = Faults {
        sku_not_available: vec![(REGION.into(), SIZE.into())],
        skus: Some(vec![
            sku(SIZE, "standardDSv3Family", REGION, &["1", "2"], 2, 8.0, "x64"),
            sku(SIZE, "standardDSv3Family", "westeurope", &["1"], 2, 8.0, "x64"),
            sku(SIZE, "standardDSv3Family", "westus2", &["1"], 2, 8.0, "x64"),
            sku(
                "Standard_E2s_v3",
                "standardESv3Family",
                "uksouth",
                &["1"],
                2,
                16.0,
                "x64",
            ),
        ]),
        ..Faults::default()
    };
    let e = env_with(faults, &["1", "2"]).await;
    let err = launcher(e.provider.clone()).launch(spec(1)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InsufficientCapacity, "{err}");
    let m = err.message();
    assert!(m.contains("SkuNotAvailable"), "ARM's reason stays: {m}");
    assert!(
        m.contains("offered to this subscription in") && m.contains("westus2") && m.contains("westeurope"),
        "{m}"
    );
    assert!(!m.contains("uksouth") && !m.contains(&format!("in {REGION},")), "{m}");
    let next = err.context_value("next_region").unwrap().to_string();
    assert!(
        err.hint().unwrap().contains(&format!("--region {next}")),
        "{:?}",
        err.hint()
    );
    let catalog = herd_azure::bundled_catalog();
    let price = |r: &str| {
        catalog
            .offer(herd_core::Cloud::Azure, SIZE, r, herd_core::PurchaseOption::OnDemand)
            .and_then(|o| o.hourly)
            .map(|m| m.to_micros())
            .unwrap_or(i64::MAX)
    };
    assert!(
        price(&next) <= price(if next == "westus2" { "westeurope" } else { "westus2" }),
        "cheapest first"
    );
    assert!(e.fake.vms().is_empty() && e.fake.nics().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_is_a_clear_error_with_the_numbers() {
    let faults = Faults {
        quota: Some(Quota {
            family: "standardDSv5Family".into(),
            sizes: vec![SIZE.into()],
            vcpus_per_vm: 2,
            limit: 4,
            usage: 2,
        }),
        ..Faults::default()
    };
    let e = env(faults).await;
    let err = launcher(e.provider.clone()).launch(spec(3)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::QuotaExceeded, "{err}");
    assert!(err.message().contains("standardDSv5Family"), "{err}");
    assert!(err.message().contains("is 4"), "{err}");
    assert!(
        e.fake
            .vms()
            .iter()
            .all(|v| v["properties"]["provisioningState"] == "Failed")
            || e.fake.vms().is_empty()
    );
    assert!(
        e.fake.vms().is_empty(),
        "all or nothing: the VMs that fit were deleted: {:?}",
        e.fake.vms()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_storm_is_waited_out_and_ends_with_exactly_n() {
    let faults = Faults {
        throttle_storm: 3,
        storm_retry_after: 1,
        ..Faults::default()
    };
    let e = env(faults).await;
    let r = launcher(e.provider.clone()).launch(spec(3)).await.unwrap();
    assert_eq!(r.instances.len(), 3);
    assert_eq!(e.fake.vms().len(), 3);
    assert!(e.fake.calls().throttled >= 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_still_deleting_is_waited_for() {
    let e = env(Faults::default()).await;
    let l = launcher(e.provider.clone());
    let r = l.launch(spec(1)).await.unwrap();
    l.terminate(&[r.instances[0].id.clone()]).await.unwrap();
    e.fake.set_deleting("herd-tester-c1", Duration::from_secs(1));
    let r2 = l.launch(spec(1)).await.unwrap();
    assert_eq!(r2.instances.len(), 1);
    assert_eq!(e.fake.vms().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_list_never_shows_foreign_vms() {
    let faults = Faults {
        ignore_filters: true,
        ..Faults::default()
    };
    let e = env(faults).await;
    let l = launcher(e.provider.clone());
    l.launch(spec(1)).await.unwrap();
    e.fake.plant(
        Kind::Vm,
        "someone-else",
        "theirs",
        serde_json::json!({"location": REGION, "tags": {"herd-owner": "mallory"},
            "properties": {"hardwareProfile": {"vmSize": SIZE}}}),
    );
    let mine = l.list(&ListRequest::new().tag(tags::OWNER, "tester")).await.unwrap();
    assert_eq!(mine.len(), 1);
    let err = l.terminate(&["theirs".to_string()]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
    assert!(e.fake.requests_to("DELETE", Kind::Vm).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leftovers_are_found_priced_and_reaped() {
    let e = env(Faults::default()).await;
    let l = launcher(e.provider.clone());
    l.launch(spec(1)).await.unwrap();
    e.fake.plant(
        Kind::Disk,
        "herd-tester-c1",
        "orphan",
        serde_json::json!({"location": REGION,
            "properties": {"diskSizeGB": 30, "creationData": {"createOption": "Empty"}}}),
    );
    let left = e.provider.leftovers(Some("tester")).await.unwrap();
    let disk = left.iter().find(|x| x.kind == "disk").expect("the orphaned disk");
    assert_eq!(disk.id, "herd-tester-c1/orphan");
    assert!(disk.cost_per_day > herd_core::Money::ZERO);
    let out = e.provider.reap(std::slice::from_ref(disk)).await.unwrap();
    assert!(out[0].error.is_none(), "{out:?}");
    assert!(e.fake.disks().iter().all(|d| d["name"] != "orphan"));
    // A herd group with no VM left (its VM deleted behind herd's back) is a leftover itself.
    e.fake.plant(
        Kind::ResourceGroup,
        "herd-tester-old",
        "herd-tester-old",
        serde_json::json!({"location": REGION, "tags": {"herd-owner": "tester", "herd-cluster": "old"}}),
    );
    let left = e.provider.leftovers(Some("tester")).await.unwrap();
    let group: Vec<_> = left.iter().filter(|x| x.kind == "resource-group").collect();
    assert_eq!(group.len(), 1, "{left:?}");
    assert_eq!(group[0].id, "herd-tester-old");
    e.provider.reap(&[group[0].clone()]).await.unwrap();
    assert_eq!(e.fake.requests_to("DELETE", Kind::ResourceGroup).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_before_any_call() {
    let e = env(Faults::default()).await;
    let l = launcher(e.provider.clone());
    let cases: Vec<(LaunchSpec, ErrorKind, &str)> = vec![
        (
            LaunchSpec::new("Standard_D2s_v33", 1)
                .region(REGION)
                .deadline(Duration::from_secs(600)),
            ErrorKind::InvalidSpec,
            "Standard_D2s_v3",
        ),
        (
            LaunchSpec::new(SIZE, 1)
                .region("eastuss")
                .deadline(Duration::from_secs(600)),
            ErrorKind::InvalidSpec,
            "eastus",
        ),
        (
            spec(1).image(herd_azure::images::UBUNTU_2404_ARM64),
            ErrorKind::InvalidSpec,
            "arm64",
        ),
        (spec(1).cluster("bad name!"), ErrorKind::InvalidSpec, "not valid"),
    ];
    for (s, kind, says) in cases {
        let err = l.launch(s).await.unwrap_err();
        assert_eq!(err.kind(), kind, "{err}");
        let text = format!("{err} {:?} {:?}", err.suggestions(), err.hint());
        assert!(text.contains(says), "{text}");
    }
    assert!(e.fake.requests().is_empty(), "{:?}", e.fake.requests());
    // No subscription, no credentials: before any call too.
    let keys = tempfile::tempdir().unwrap();
    let cfg = AzureConfig::new("tester", keys.path())
        .region(REGION)
        .api_base(e.fake.uri());
    let p = Arc::new(AzureProvider::builder(cfg.clone()).token("t").env(no_env).build());
    let err = launcher(p).launch(spec(1)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConfigInvalid, "{err}");
    let p = Arc::new(AzureProvider::builder(cfg.subscription(SUB)).env(no_env).build());
    let err = launcher(p).launch(spec(1)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthenticated, "{err}");
    assert!(err.hint().unwrap().contains("az login"));
    assert!(e.fake.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_itself_deletes_each_vm_at_its_deadline_with_herd_gone() {
    let e = env(Faults::default()).await;
    let l = launcher(e.provider.clone());
    let r = l.launch(spec(2).deadline(Duration::from_secs(3))).await.unwrap();
    assert_eq!(e.provider.scheduled_deletes(), herd_azure::schedule::Outcome::All);
    let posts: Vec<_> = e
        .fake
        .requests()
        .into_iter()
        .filter(|q| q.method == "POST" && q.path.ends_with("/virtualMachinesSubmitDelete"))
        .collect();
    assert_eq!(posts.len(), 1, "one request for the launch's VMs");
    let b = &posts[0].body;
    assert_eq!(b["resources"]["ids"].as_array().unwrap().len(), 2);
    assert_eq!(b["forceDeletion"], true);
    assert_eq!(b["schedule"]["timezone"], "UTC");
    let at = chrono::DateTime::parse_from_rfc3339(b["schedule"]["deadline"].as_str().unwrap()).unwrap();
    assert!(
        (at.timestamp() - r.instances[0].deadline.timestamp()).abs() <= 1,
        "{at} vs {}",
        r.instances[0].deadline
    );
    assert_eq!(e.fake.scheduled_deletes().len(), 2);
    assert_eq!(e.fake.vms().len(), 2);
    // herd is gone (no call of ours from here): Azure's schedule ends both VMs, and
    // their NICs, IPs and disks with them.
    drop(l);
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(e.fake.vms().is_empty(), "{:?}", e.fake.vms());
    assert!(e.fake.nics().is_empty() && e.fake.public_ips().is_empty() && e.fake.disks().is_empty());
    assert!(e.fake.scheduled_deletes().iter().all(|o| o["state"] == "Succeeded"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_scheduled_deletes_the_launch_stands_on_the_guest_watchdog() {
    let e = env(Faults {
        compute_schedule: false,
        ..Faults::default()
    })
    .await;
    let r = launcher(e.provider.clone()).launch(spec(1)).await.unwrap();
    assert_eq!(r.instances.len(), 1);
    match e.provider.scheduled_deletes() {
        herd_azure::schedule::Outcome::Unavailable(why) => {
            assert!(why.contains("MissingSubscriptionRegistration"), "{why}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(e.fake.vms().len(), 1);
}
