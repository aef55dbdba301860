//! The backend against moto's EC2 server: what each call sends, and what comes back.

mod common;

use std::time::Duration;

use base64::Engine;
use common::{quick_retry, Env, REGION, TYPE};
use herd_aws::testing::Seen;
use herd_core::{tags, ErrorKind, LaunchSpec, ListRequest, Market, Provider, PurchaseOption, TerminateOutcome};

fn spec(n: u32) -> LaunchSpec {
    LaunchSpec::new(TYPE, n)
        .region(REGION)
        .deadline(Duration::from_secs(3600))
}

/// Tag values of one TagSpecification entry by resource type.
fn tag_spec(s: &Seen, resource: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for n in 1..=10 {
        if s.param(&format!("TagSpecification.{n}.ResourceType")) == Some(resource) {
            for t in 1..=60 {
                let (Some(k), Some(v)) = (
                    s.param(&format!("TagSpecification.{n}.Tag.{t}.Key")),
                    s.param(&format!("TagSpecification.{n}.Tag.{t}.Value")),
                ) else {
                    break;
                };
                out.push((k.to_string(), v.to_string()));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn launch_sends_what_matters_and_lists_back() {
    let env = Env::plain().await;
    let launcher = env.launcher(env.provider(), quick_retry());
    let r = launcher
        .launch(
            spec(3)
                .tag("team", "ml")
                .setup("echo setup")
                .command("echo run")
                .keepalive(Duration::from_secs(600)),
        )
        .await
        .unwrap();
    assert_eq!(r.instances.len(), 3);
    assert_eq!(r.calls, 1, "one provider call");

    let runs = env.proxy.calls("RunInstances");
    assert_eq!(runs.len(), 1, "one RunInstances for 3 instances");
    let run = &runs[0];
    assert_eq!(run.param("ClientToken"), Some(r.launch_id.as_str()));
    assert_eq!((run.param("MinCount"), run.param("MaxCount")), (Some("3"), Some("3")));
    assert_eq!(run.param("InstanceInitiatedShutdownBehavior"), Some("terminate"));
    assert!(
        run.param("InstanceMarketOptions.MarketType").is_none(),
        "on-demand sends no market options"
    );
    for resource in ["instance", "volume", "network-interface"] {
        let t = tag_spec(run, resource);
        for key in [
            tags::OWNER,
            tags::LAUNCH,
            tags::DEADLINE,
            tags::PRICE,
            tags::CLUSTER,
            "team",
        ] {
            assert!(t.iter().any(|(k, _)| k == key), "{resource} lacks {key}: {t:?}");
        }
    }
    let ud = base64::engine::general_purpose::STANDARD
        .decode(run.param("UserData").unwrap())
        .unwrap();
    let ud = String::from_utf8(ud).unwrap();
    assert!(ud.contains(herd_aws::userdata::WATCHDOG_MARKER), "{ud}");
    assert!(ud.contains(&format!("HERD_DEADLINE={}", r.instances[0].deadline.timestamp())));
    assert!(ud.contains("HERD_KEEPALIVE=600") && ud.contains("echo setup") && ud.contains("echo run"));
    assert!(run.param("KeyName").is_some_and(|k| k == "herd-tester"));
    assert!(run.param("SecurityGroupId.1").is_some());
    assert_eq!(run.param("BlockDeviceMapping.1.Ebs.DeleteOnTermination"), Some("true"));

    let listed = launcher
        .list(&ListRequest::new().tag(tags::LAUNCH, r.launch_id.as_str()))
        .await
        .unwrap();
    assert_eq!(listed.len(), 3);
    for i in &listed {
        assert_eq!(
            i.hourly_price, r.instances[0].hourly_price,
            "price comes back from the tag"
        );
        assert_eq!(i.deadline, r.instances[0].deadline);
        assert_eq!(i.tag("team"), Some("ml"));
        assert_eq!(i.region, REGION);
        assert!(!i.zone.is_empty());
    }
    let ids: Vec<String> = listed.iter().map(|i| i.id.clone()).collect();
    let t = launcher.terminate(&ids).await.unwrap();
    assert!(t.iter().all(|t| t.outcome == TerminateOutcome::Terminated), "{t:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spot_sends_market_options() {
    let env = Env::plain().await;
    let launcher = env.launcher(env.provider_with_spot(), quick_retry());
    let r = launcher.launch(spec(2).market(Market::Spot)).await.unwrap();
    assert!(r.instances.iter().all(|i| i.purchase == PurchaseOption::Spot));
    let run = &env.proxy.calls("RunInstances")[0];
    assert_eq!(run.param("InstanceMarketOptions.MarketType"), Some("spot"));
    assert_eq!(
        run.param("InstanceMarketOptions.SpotOptions.SpotInstanceType"),
        Some("one-time")
    );
    assert_eq!(
        run.param("InstanceMarketOptions.SpotOptions.InstanceInterruptionBehavior"),
        Some("terminate")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_pair_and_group_are_made_once_tagged_and_reaped_when_unused() {
    let env = Env::plain().await;
    let p = env.provider();
    let launcher = env.launcher(p.clone(), quick_retry());
    let a = launcher.launch(spec(1)).await.unwrap();
    // A second process (fresh caches) reuses both.
    let launcher2 = env.launcher(env.provider(), quick_retry());
    let b = launcher2.launch(spec(1)).await.unwrap();
    assert_eq!(env.proxy.calls("ImportKeyPair").len(), 1);
    assert_eq!(env.proxy.calls("CreateSecurityGroup").len(), 1);
    let sg = &env.proxy.calls("CreateSecurityGroup")[0];
    assert_eq!(sg.param("TagSpecification.1.ResourceType"), Some("security-group"));
    let ingress = &env.proxy.calls("AuthorizeSecurityGroupIngress")[0];
    assert_eq!(ingress.param("IpPermissions.1.FromPort"), Some("22"));
    assert_eq!(ingress.param("IpPermissions.1.IpRanges.1.CidrIp"), Some("127.0.0.1/32"));
    let key = std::fs::read_to_string(herd_aws::access::private_key_path(env.keys.path(), "tester")).unwrap();
    assert!(key.contains("OPENSSH PRIVATE KEY"));

    // In use: not leftovers.
    let left = launcher.leftovers(Some("tester")).await.unwrap();
    assert!(
        !left.iter().any(|l| l.kind == "security-group" || l.kind == "key-pair"),
        "{left:?}"
    );
    let ids = vec![a.instances[0].id.clone(), b.instances[0].id.clone()];
    launcher.terminate(&ids).await.unwrap();
    let left = launcher.leftovers(Some("tester")).await.unwrap();
    let kinds: Vec<&str> = left.iter().map(|l| l.kind.as_str()).collect();
    assert!(
        kinds.contains(&"security-group") && kinds.contains(&"key-pair"),
        "{left:?}"
    );
    assert!(left.iter().all(|l| l.region == REGION), "{left:?}");
    let reaped = launcher.reap(&left).await.unwrap();
    assert_eq!(reaped.len(), left.len());
    // moto sometimes answers InvalidGroup.NotFound for a group it still lists; the
    // invariant that matters is below: nothing of herd's is left.
    assert!(
        reaped.iter().any(|r| r.outcome == TerminateOutcome::Terminated),
        "{reaped:?}"
    );
    assert!(reaped.iter().all(|r| !r.is_failed()), "{reaped:?}");
    // Reaping again is no error: each is already gone.
    let again = launcher.reap(&left).await.unwrap();
    assert!(
        again
            .iter()
            .all(|r| !r.is_failed() && r.outcome == TerminateOutcome::AlreadyGone),
        "{again:?}"
    );
    let after = launcher.leftovers(Some("tester")).await.unwrap();
    assert!(after.is_empty(), "{after:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arch_mismatch_is_refused_before_run_instances() {
    let env = Env::plain().await;
    let launcher = env.launcher(env.provider(), quick_retry());
    // An arm64 Amazon Linux image on an x86 type.
    let p = env.provider();
    let arm = herd_aws::images::ImageCache::default()
        .resolve(&aws_client(&env).await, herd_core::Arch::Arm64, "t4g.micro", None)
        .await
        .unwrap();
    let e = launcher.launch(spec(1).image(&arm.id)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidSpec, "{e}");
    assert!(e.message().contains("arm64"), "{e}");
    assert!(env.proxy.calls("RunInstances").is_empty());
    drop(p);
    // The right arch resolves by itself.
    let ok = launcher
        .launch(
            LaunchSpec::new("t4g.micro", 1)
                .region(REGION)
                .deadline(Duration::from_secs(60)),
        )
        .await;
    let ok = ok.unwrap();
    let run = &env.proxy.calls("RunInstances")[0];
    assert_eq!(run.param("ImageId"), Some(arm.id.as_str()));
    assert_eq!(ok.instances.len(), 1);
}

async fn aws_client(env: &Env) -> herd_aws::Ec2 {
    let c = herd_aws::testing::direct_client(&env.moto.endpoint(), REGION);
    herd_aws::Ec2::new(c, Some(&env.moto.endpoint()), REGION)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_launch_id_twice_returns_the_first_and_other_spec_conflicts() {
    let env = Env::plain().await;
    let launcher = env.launcher(env.provider(), quick_retry());
    let id = herd_core::LaunchId::new("idem-aws-1").unwrap();
    let a = launcher.launch(spec(2).launch_id(id.clone())).await.unwrap();
    let b = launcher.launch(spec(2).launch_id(id.clone())).await.unwrap();
    let ids = |v: &[herd_core::Instance]| {
        let mut x: Vec<String> = v.iter().map(|i| i.id.clone()).collect();
        x.sort();
        x
    };
    assert_eq!(ids(&a.instances), ids(&b.instances));
    assert_eq!(env.proxy.calls("RunInstances").len(), 1, "the repeat started nothing");
    let e = launcher.launch(spec(3).launch_id(id)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminate_unknown_and_twice_is_already_gone() {
    let env = Env::plain().await;
    let p = env.provider();
    let launcher = env.launcher(p.clone(), quick_retry());
    let r = launcher.launch(spec(1)).await.unwrap();
    let id = r.instances[0].id.clone();
    let mixed = vec![id.clone(), "i-0000000000000dead".to_string()];
    let t = p.terminate(&mixed).await.unwrap();
    assert_eq!(t[0].outcome, TerminateOutcome::Terminated);
    assert_eq!(t[1].outcome, TerminateOutcome::AlreadyGone);
    let t = p.terminate(&mixed).await.unwrap();
    assert!(t.iter().all(|t| t.outcome == TerminateOutcome::AlreadyGone), "{t:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_pages_with_the_asked_size() {
    let env = Env::plain().await;
    let launcher = env.launcher(env.provider(), quick_retry());
    // Separate launches: moto pages by reservation (one per RunInstances).
    for _ in 0..6 {
        launcher.launch(spec(2)).await.unwrap();
    }
    env.proxy.clear();
    let got = launcher.list(&ListRequest::new().page_size(5)).await.unwrap();
    assert_eq!(got.len(), 12);
    let pages = env.proxy.calls("DescribeInstances");
    assert!(pages.len() >= 2, "{} pages", pages.len());
    assert!(pages.iter().all(|s| s.param("MaxResults") == Some("5")));
    assert!(
        pages[0].with_prefix("Filter.").iter().any(|(_, v)| *v == tags::OWNER),
        "always filtered to herd's instances"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_spot_prices_come_per_zone() {
    let env = Env::plain().await;
    let p = env.provider();
    let prices = p.spot_prices(REGION, &[TYPE.to_string()]).await.unwrap();
    // moto's prices are fake: only their shape is checked.
    assert!(!prices.is_empty());
    assert!(prices
        .iter()
        .all(|s| s.instance_type == TYPE && s.zone.starts_with(REGION)));
    let calls = env.proxy.calls("DescribeSpotPriceHistory");
    assert_eq!(calls[0].param("ProductDescription.1"), Some("Linux/UNIX"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminate_finds_an_instance_in_another_region() {
    let env = Env::plain().await;
    let launcher = env.launcher(env.provider(), quick_retry());
    let r = launcher
        .launch(
            LaunchSpec::new(TYPE, 1)
                .region("eu-west-1")
                .deadline(Duration::from_secs(600)),
        )
        .await
        .unwrap();
    // Another process, which never saw it, whose default region is us-east-1.
    let other = env.provider();
    let seen = other
        .list(&ListRequest::new().tag(tags::LAUNCH, r.launch_id.as_str()))
        .await
        .unwrap();
    assert_eq!(seen.len(), 1, "a list without regions looks in every enabled region");
    assert_eq!(seen[0].region, "eu-west-1");
    let other = env.provider();
    let t = other.terminate(&[r.instances[0].id.clone()]).await.unwrap();
    assert_eq!(
        t[0].outcome,
        TerminateOutcome::Terminated,
        "not mistaken for already gone"
    );
    let live = other
        .list(
            &ListRequest::new()
                .region("eu-west-1")
                .ids([r.instances[0].id.clone()])
                .live(),
        )
        .await
        .unwrap();
    assert!(live.is_empty(), "{live:?}");
}
