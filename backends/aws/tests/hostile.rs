//! The backend against a hostile EC2: the test proxy in front of moto ignores filters and
//! id lists (so moto answers with foreign resources planted straight in moto: no herd
//! tag, or another owner's), cuts answers short, repeats or never ends page tokens,
//! leaves ids out of answers, says "done" without doing, throttles forever and hangs.
//! Every test reads moto directly afterwards: nothing foreign is touched, every malformed
//! answer is an error, and every wait ends.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{quick_retry, Env, REGION, TYPE};
use herd_aws::testing::{check_planted, direct_client, make_busy, plant, without_items_mentioning, Fault, Planted};
use herd_aws::AwsProvider;
use herd_core::{
    tags, Error, ErrorKind, LaunchId, LaunchSpec, Leftover, ListRequest, Money, Provider, RetryPolicy, TerminateOutcome,
};

fn spec(n: u32) -> LaunchSpec {
    LaunchSpec::new(TYPE, n)
        .region(REGION)
        .deadline(Duration::from_secs(3600))
}

/// One region searched, so a test's calls stay few and its faults apply everywhere.
fn provider(env: &Env) -> Arc<AwsProvider> {
    env.provider_with(env.config().regions([REGION]))
}

const BOB: [(&str, &str); 2] = [(tags::OWNER, "bob"), (tags::CLUSTER, "bobs")];
const OURS: [(&str, &str); 1] = [(tags::OWNER, "tester")];

/// Foreign things in moto: one set with no tags at all, one of owner `bob`.
async fn plant_foreign(env: &Env) -> Planted {
    let e = env.moto.endpoint();
    let mut p = plant(&e, REGION, "untagged", &[]).await.unwrap();
    p.extend(plant(&e, REGION, "bobs", &BOB).await.unwrap());
    p
}

/// An error a person reads: a sentence, never the SDK's Debug.
fn readable(e: &Error) {
    let text = format!("{e} {}", e.hint().unwrap_or(""));
    for raw in [
        "SdkError",
        "DispatchFailure",
        "ServiceError {",
        "ResponseError",
        "ConnectorError",
        "source:",
    ] {
        assert!(!text.contains(raw), "raw SDK text in `{text}`");
    }
}

fn ids(v: &[herd_core::Instance]) -> Vec<String> {
    let mut x: Vec<String> = v.iter().map(|i| i.id.clone()).collect();
    x.sort();
    x
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_shows_only_herds_instances_when_the_server_ignores_filters() {
    let env = Env::start(Arc::new(|_, _| Fault::Unfiltered { ids_too: true })).await;
    let foreign = plant_foreign(&env).await;
    let p = provider(&env);
    let launcher = env.launcher(p.clone(), quick_retry());
    // The launch itself faced the foreign answers (images, key pairs, groups, its own
    // earlier-launch lookup) and used only what is herd's.
    let r = launcher.launch(spec(2)).await.unwrap();
    assert_eq!(r.instances.len(), 2);

    let mine = launcher.list_mine(false).await.unwrap();
    assert_eq!(
        ids(&mine),
        ids(&r.instances),
        "only the owner's, though moto answered with all"
    );
    let anyone = p.list(&ListRequest::new()).await.unwrap();
    let bobs = &foreign.instances[1];
    assert!(
        anyone.iter().any(|i| &i.id == bobs),
        "another owner's herd instance is herd's"
    );
    assert!(
        !anyone.iter().any(|i| i.id == foreign.instances[0]),
        "an instance with no herd tag is never listed"
    );
    assert_eq!(anyone.len(), 3, "{anyone:?}");
    // A filter the server dropped is applied here.
    let one = p
        .list(&ListRequest::new().ids([r.instances[0].id.clone()]))
        .await
        .unwrap();
    assert_eq!(ids(&one), vec![r.instances[0].id.clone()]);
    let none = p
        .list(&ListRequest::new().tag(tags::CLUSTER, "no-such-cluster"))
        .await
        .unwrap();
    assert!(none.is_empty(), "{none:?}");
    assert!(check_planted(&env.moto.endpoint(), REGION, &foreign).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn down_refuses_foreign_instances_and_says_whose_they_are() {
    let env = Env::start(Arc::new(|_, _| Fault::Unfiltered { ids_too: true })).await;
    let foreign = plant_foreign(&env).await;
    let p = provider(&env);
    let launcher = env.launcher(p.clone(), quick_retry());
    let mine = launcher.launch(spec(1)).await.unwrap().instances[0].id.clone();
    let (untagged, bobs) = (foreign.instances[0].clone(), foreign.instances[1].clone());

    let e = p.terminate(std::slice::from_ref(&bobs)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    assert!(
        e.message().contains(&format!("{bobs} belongs to herd owner `bob`")),
        "{e}"
    );
    assert!(e.hint().is_some());
    readable(&e);
    let e = p.terminate(std::slice::from_ref(&untagged)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    assert!(e.message().contains("has no herd tags: herd did not launch it"), "{e}");

    // One foreign id refuses the whole call: the owner's own is not terminated either.
    let e = launcher.terminate(&[mine.clone(), bobs.clone()]).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    assert!(
        env.proxy.calls("TerminateInstances").is_empty(),
        "no TerminateInstances was sent"
    );
    let live = p.list(&ListRequest::new().ids([mine.clone()]).live()).await.unwrap();
    assert_eq!(live.len(), 1);

    // Asked alone, the owner's goes, and only it.
    let t = launcher.terminate(std::slice::from_ref(&mine)).await.unwrap();
    assert_eq!(t[0].outcome, TerminateOutcome::Terminated);
    let sent = env.proxy.calls("TerminateInstances");
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].with_prefix("InstanceId."),
        vec![("InstanceId.1", mine.as_str())]
    );
    assert!(check_planted(&env.moto.endpoint(), REGION, &foreign).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_missing_from_the_terminate_answer_is_an_error_not_gone() {
    let env = Env::plain().await;
    let p = provider(&env);
    let launcher = env.launcher(p.clone(), quick_retry());
    let r = launcher.launch(spec(2)).await.unwrap();
    let (a, b) = (r.instances[0].id.clone(), r.instances[1].id.clone());
    let dropped = b.clone();
    env.proxy.set_rule(Arc::new(move |s, _| {
        if s.action == "TerminateInstances" {
            let id = dropped.clone();
            Fault::rewrite(move |body| without_items_mentioning(body, &id))
        } else {
            Fault::Pass
        }
    }));
    let e = p.terminate(&[a.clone(), b.clone()]).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unexpected, "{e}");
    assert!(
        e.is_temporary(),
        "terminating is idempotent: the retry loop may ask again"
    );
    assert!(e.message().contains(&b) && e.message().contains("left out"), "{e}");
    assert_eq!(e.context_value("endpoint"), Some(env.proxy.endpoint().as_str()));
    readable(&e);
    // Once the answer is whole again, both are accounted for, id by id.
    env.proxy.set_rule(herd_aws::testing::pass());
    // (moto did terminate both: the answer was cut after the fact.)
    let t = p.terminate(&[a, b]).await.unwrap();
    assert_eq!(t.len(), 2);
    assert!(t.iter().all(|t| t.outcome == TerminateOutcome::AlreadyGone), "{t:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_just_launched_that_ec2_does_not_show_yet_is_retried_before_gone() {
    let env = Env::plain().await;
    let p = provider(&env);
    let launcher = env.launcher(p.clone(), quick_retry());
    let id = launcher.launch(spec(1)).await.unwrap().instances[0].id.clone();
    // EC2 does not know it yet, by id, whatever is asked.
    env.proxy.set_rule(Arc::new(|s, _| {
        if s.action == "DescribeInstances" && s.param("InstanceId.1").is_some() {
            Fault::fail(400, "InvalidInstanceID.NotFound")
        } else {
            Fault::Pass
        }
    }));
    for _ in 0..herd_aws::NOT_FOUND_PATIENCE {
        let e = p.terminate(std::slice::from_ref(&id)).await.unwrap_err();
        assert!(e.is_temporary(), "{e}");
        assert!(
            e.message().contains("does not show instance") && e.message().contains(&id),
            "{e}"
        );
    }
    // Bounded: after that it is gone (it really is not there as far as EC2 says).
    let t = p.terminate(std::slice::from_ref(&id)).await.unwrap();
    assert_eq!(t[0].outcome, TerminateOutcome::AlreadyGone);
    assert!(env.proxy.calls("TerminateInstances").is_empty());

    // Through the Launcher the retry loop does the waiting: EC2 catches up on the 3rd ask.
    let id2 = launcher.launch(spec(1)).await.unwrap().instances[0].id.clone();
    env.proxy.set_rule(Arc::new(|s, nth| {
        if s.action == "DescribeInstances" && s.param("InstanceId.1").is_some() && nth < 2 {
            Fault::fail(400, "InvalidInstanceID.NotFound")
        } else {
            Fault::Pass
        }
    }));
    env.proxy.clear();
    let t = launcher.terminate(std::slice::from_ref(&id2)).await.unwrap();
    assert_eq!(t[0].outcome, TerminateOutcome::Terminated, "not mistaken for gone");

    // A process that did not launch it takes EC2's word at once.
    let other = provider(&env);
    env.proxy.set_rule(Arc::new(|s, _| {
        if s.action == "DescribeInstances" && s.param("InstanceId.1").is_some() {
            Fault::fail(400, "InvalidInstanceID.NotFound")
        } else {
            Fault::Pass
        }
    }));
    let t = other.terminate(&["i-0000000000000dead".to_string()]).await.unwrap();
    assert_eq!(t[0].outcome, TerminateOutcome::AlreadyGone);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_or_endless_page_tokens_stop_with_an_error() {
    let env = Env::plain().await;
    let p = provider(&env);
    env.launcher(p.clone(), quick_retry()).launch(spec(1)).await.unwrap();
    env.proxy.set_rule(Arc::new(|s, _| {
        if s.action == "DescribeInstances" {
            Fault::repeat_token()
        } else {
            Fault::Pass
        }
    }));
    env.proxy.clear();
    let e = p.list(&ListRequest::new()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unexpected, "{e}");
    assert!(e.message().contains("same page token"), "{e}");
    assert_eq!(e.context_value("endpoint"), Some(env.proxy.endpoint().as_str()));
    assert_eq!(
        env.proxy.calls("DescribeInstances").len(),
        2,
        "stopped at the first repeat"
    );
    readable(&e);
    // Leftovers page too.
    env.proxy.set_rule(Arc::new(|s, _| {
        if s.action == "DescribeVolumes" {
            Fault::repeat_token()
        } else {
            Fault::Pass
        }
    }));
    let e = p.leftovers(Some("tester")).await.unwrap_err();
    assert!(e.message().contains("same page token"), "{e}");

    // Fresh tokens forever: bounded by the most pages an account could need.
    let endless = Fault::endless_tokens();
    env.proxy.set_rule(Arc::new(move |s, _| {
        if s.action == "DescribeInstances" {
            endless.clone()
        } else {
            Fault::Pass
        }
    }));
    env.proxy.clear();
    let e = p.list(&ListRequest::new()).await.unwrap_err();
    assert!(e.message().contains("more pages"), "{e}");
    let n = env.proxy.calls("DescribeInstances").len() as u32;
    let bound = herd_aws::list::MAX_LISTED.div_ceil(herd_aws::list::MAX_PAGE as u32) + 10;
    assert!(n <= bound, "{n} calls");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_answer_is_an_error_never_no_instances() {
    let env = Env::plain().await;
    let p = provider(&env);
    let launcher = env.launcher(p.clone(), quick_retry());
    launcher.launch(spec(2)).await.unwrap();
    for percent in [5, 30, 60, 90, 99] {
        env.proxy.set_rule(Arc::new(move |s, _| {
            if s.action == "DescribeInstances" {
                Fault::Truncate { percent }
            } else {
                Fault::Pass
            }
        }));
        let e = p.list(&ListRequest::new()).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unexpected, "{percent}%: {e}");
        assert!(e.is_temporary(), "a whole answer may come next time");
        assert!(e.message().contains("malformed"), "{e}");
        assert!(e.message().contains(&env.proxy.endpoint()), "names the endpoint: {e}");
        assert_eq!(e.context_value("endpoint"), Some(env.proxy.endpoint().as_str()));
        assert_eq!(e.context_value("action"), Some("DescribeInstances"));
        readable(&e);
    }
    // Through the retry loop it stays an error (bounded), never an empty list.
    let e = launcher.list_mine(false).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unexpected, "{e}");
    // Every kind of answer is checked: a cut DescribeVolumes fails leftovers too.
    env.proxy.set_rule(Arc::new(|s, _| {
        if s.action == "DescribeVolumes" {
            Fault::Truncate { percent: 50 }
        } else {
            Fault::Pass
        }
    }));
    assert!(p.leftovers(Some("tester")).await.is_err());
    env.proxy.set_rule(herd_aws::testing::pass());
    assert_eq!(p.list(&ListRequest::new()).await.unwrap().len(), 2);
}

/// Resources of the owner's that are free: planted tagged `tester`, instance terminated.
async fn plant_free_of_ours(env: &Env, label: &str) -> Planted {
    let e = env.moto.endpoint();
    let free = plant(&e, REGION, label, &OURS).await.unwrap();
    direct_client(&e, REGION)
        .terminate_instances()
        .set_instance_ids(Some(free.instances.clone()))
        .send()
        .await
        .unwrap();
    free
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reap_deletes_only_the_owners_free_leftovers_whatever_the_server_returns() {
    let env = Env::start(Arc::new(|_, _| Fault::Unfiltered { ids_too: true })).await;
    let e = env.moto.endpoint();
    let foreign = plant_foreign(&env).await;
    // The owner's, but busy: attached volume and interface, associated address, and the
    // group and key its live instance uses.
    let busy = plant(&e, REGION, "busy", &OURS).await.unwrap();
    make_busy(&e, REGION, &busy).await.unwrap();
    let free = plant_free_of_ours(&env, "free").await;

    let p = provider(&env);
    let left = p.leftovers(Some("tester")).await.unwrap();
    let of = |kind: &str| sorted(left.iter().filter(|l| l.kind == kind).map(|l| l.id.clone()).collect());
    assert_eq!(of("volume"), free.volumes, "{left:#?}");
    assert_eq!(of("network-interface"), free.interfaces, "{left:#?}");
    assert_eq!(of("address"), free.addresses, "{left:#?}");
    assert_eq!(of("security-group"), free.groups, "{left:#?}");
    assert_eq!(of("key-pair"), free.keys, "{left:#?}");
    // Anyone's herd leftovers: bob's free ones too, never the untagged.
    let anyone = p.leftovers(None).await.unwrap();
    assert!(
        anyone.iter().any(|l| l.id == foreign.volumes[1]),
        "bob's volume is herd's"
    );
    assert!(
        !anyone.iter().any(|l| l.id == foreign.volumes[0]),
        "untagged is not herd's"
    );

    let reaped = p.reap(&left).await.unwrap();
    assert_eq!(reaped.len(), left.len());
    assert!(reaped.iter().all(|r| !r.is_failed()), "{reaped:#?}");
    assert!(
        check_planted(&e, REGION, &foreign).await.is_empty(),
        "nothing foreign touched"
    );
    assert!(
        check_planted(&e, REGION, &busy).await.is_empty(),
        "nothing busy touched"
    );
    let gone = check_planted(&e, REGION, &free).await;
    assert_eq!(gone.len(), 6, "the free ones are gone: {gone:?}");

    // Reap is handed foreign items directly (a stale or forged list): each is re-checked
    // on the resource itself and refused, and the rest still go.
    let more = plant_free_of_ours(&env, "more").await;
    let item = |kind: &str, id: &str| Leftover::new(kind, id, REGION, Money::ZERO);
    let forged = vec![
        item("volume", &foreign.volumes[0]),
        item("volume", &foreign.volumes[1]),
        item("network-interface", &foreign.interfaces[1]),
        item("address", &foreign.addresses[0]),
        item("security-group", &foreign.groups[1]),
        item("key-pair", &foreign.keys[0]),
        item("volume", &busy.volumes[0]),
        item("address", &busy.addresses[0]),
        item("key-pair", &busy.keys[0]),
        item("volume", &more.volumes[0]),
        item("key-pair", &more.keys[0]),
    ];
    let r = p.reap(&forged).await.unwrap();
    let by = |id: &str| r.iter().find(|x| x.id == id).unwrap().clone();
    assert!(by(&foreign.volumes[0]).error.unwrap().contains("has no herd tags"));
    assert!(by(&foreign.volumes[1])
        .error
        .unwrap()
        .contains("belongs to herd owner `bob`"));
    assert!(by(&foreign.interfaces[1]).is_failed());
    assert!(by(&foreign.addresses[0]).is_failed());
    assert!(by(&foreign.groups[1]).is_failed());
    assert!(by(&foreign.keys[0]).is_failed());
    assert!(by(&busy.volumes[0]).error.unwrap().contains("attached to"), "{r:?}");
    assert!(by(&busy.addresses[0]).error.unwrap().contains("associated"), "{r:?}");
    assert!(by(&busy.keys[0]).error.unwrap().contains("is used by"), "{r:?}");
    assert!(!by(&more.volumes[0]).is_failed(), "{r:?}");
    assert!(!by(&more.keys[0]).is_failed(), "{r:?}");
    assert!(check_planted(&e, REGION, &foreign).await.is_empty());
    assert!(check_planted(&e, REGION, &busy).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reap_goes_on_past_a_failed_item_and_a_200_that_did_nothing_is_not_deleted() {
    let env = Env::plain().await;
    let free = plant_free_of_ours(&env, "free").await;
    let p = provider(&env);
    let left = p.leftovers(Some("tester")).await.unwrap();
    assert_eq!(left.len(), 5, "{left:#?}");
    env.proxy.set_rule(Arc::new(|s, _| match s.action.as_str() {
        // "200, any body": nothing reached moto, nothing was deleted.
        "DeleteVolume" => Fault::Answer {
            status: 200,
            body: "<?xml version=\"1.0\"?><DeleteVolumeResponse><requestId>x</requestId></DeleteVolumeResponse>".into(),
        },
        "ReleaseAddress" => Fault::Answer {
            status: 200,
            body: "<ReleaseAddressResponse><return>false</return></ReleaseAddressResponse>".into(),
        },
        "DeleteNetworkInterface" => Fault::fail(500, "InternalError"),
        _ => Fault::Pass,
    }));
    let r = p.reap(&left).await.unwrap();
    assert_eq!(r.len(), 5);
    let by = |kind: &str| r.iter().find(|x| x.kind == kind).unwrap().clone();
    let v = by("volume").error.expect("volume not deleted");
    assert!(v.contains("EC2 accepted DeleteVolume but still shows"), "{v}");
    let a = by("address").error.expect("address not released");
    assert!(a.contains("return=false"), "{a}");
    assert!(by("network-interface").is_failed());
    // Past the failures, the group and key pair went.
    assert!(!by("security-group").is_failed(), "{r:?}");
    assert!(!by("key-pair").is_failed(), "{r:?}");
    let missing = check_planted(&env.moto.endpoint(), REGION, &free).await;
    assert!(missing.iter().any(|m| m.starts_with("security group")), "{missing:?}");
    assert!(
        !missing.iter().any(|m| m.starts_with("volume")),
        "the volume is still there: {missing:?}"
    );
    assert!(!missing.iter().any(|m| m.starts_with("address")), "{missing:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn launch_never_uses_a_foreign_group_or_key_named_like_herds() {
    let env = Env::plain().await;
    let c = direct_client(&env.moto.endpoint(), REGION);
    // Someone else's group, named as herd names the owner's.
    let sg = c
        .create_security_group()
        .group_name("herd-tester")
        .description("not herd's")
        .send()
        .await
        .unwrap()
        .group_id()
        .unwrap()
        .to_string();
    let launcher = env.launcher(provider(&env), quick_retry());
    let e = launcher.launch(spec(1)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    assert!(
        e.message().contains("security group herd-tester has no herd tags"),
        "{e}"
    );
    assert!(e.hint().unwrap().contains("delete it"), "{e:?}");
    readable(&e);
    assert!(env.proxy.calls("RunInstances").is_empty());
    assert!(
        env.proxy.calls("AuthorizeSecurityGroupIngress").is_empty(),
        "port 22 never opened on it"
    );
    let g = c.describe_security_groups().group_ids(&sg).send().await.unwrap();
    assert!(g.security_groups()[0].ip_permissions().is_empty());

    // Another owner's key pair of that name (the first try imported herd's own: gone now).
    c.delete_security_group().group_id(&sg).send().await.unwrap();
    c.delete_key_pair().key_name("herd-tester").send().await.unwrap();
    let public = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIETnenGbDQxFMBYXesrtkftI9b8WcHnzAZ8GAjfIUP7h bob";
    c.import_key_pair()
        .key_name("herd-tester")
        .public_key_material(aws_smithy_types::Blob::new(public.as_bytes()))
        .tag_specifications(
            aws_sdk_ec2::types::TagSpecification::builder()
                .resource_type(aws_sdk_ec2::types::ResourceType::KeyPair)
                .tags(aws_sdk_ec2::types::Tag::builder().key(tags::OWNER).value("bob").build())
                .build(),
        )
        .send()
        .await
        .unwrap();
    let launcher = env.launcher(provider(&env), quick_retry());
    let e = launcher.launch(spec(1)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    assert!(
        e.message().contains("key pair herd-tester belongs to herd owner `bob`"),
        "{e}"
    );
    assert!(env.proxy.calls("RunInstances").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asked_for_one_image_it_launches_that_one_or_none() {
    let env = Env::start(Arc::new(|_, _| Fault::Unfiltered { ids_too: true })).await;
    let c = herd_aws::Ec2::new(direct_client(&env.moto.endpoint(), REGION), None, REGION);
    let x86 = herd_aws::images::ImageCache::default()
        .resolve(&c, herd_core::Arch::X86_64, TYPE, None)
        .await
        .unwrap();
    // The server answers DescribeImages with every image it has; herd takes the asked one.
    let launcher = env.launcher(provider(&env), quick_retry());
    let r = launcher.launch(spec(1).image(&x86.id)).await.unwrap();
    assert_eq!(r.instances.len(), 1);
    let run = &env.proxy.calls("RunInstances")[0];
    assert_eq!(run.param("ImageId"), Some(x86.id.as_str()));
    // An image the region does not have: moto answers with others, herd launches none.
    env.proxy.clear();
    let e = launcher
        .launch(spec(1).image("ami-0000000000000dead"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidSpec, "{e}");
    assert!(e.message().contains("ami-0000000000000dead does not exist"), "{e}");
    assert!(e.hint().unwrap().contains("other image"), "{e:?}");
    assert!(env.proxy.calls("RunInstances").is_empty());
    // Resolved by filter, the image is Amazon Linux 2023 of the arch, whatever else came back.
    assert!(herd_aws::images::glob(
        &herd_aws::images::al2023_pattern(herd_core::Arch::X86_64),
        &{
            let d = direct_client(&env.moto.endpoint(), REGION)
                .describe_images()
                .image_ids(&x86.id)
                .send()
                .await
                .unwrap();
            d.images()[0].name().unwrap().to_string()
        }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concurrent_first_launch_that_loses_the_group_race_uses_the_winners() {
    // The group exists when herd's CreateSecurityGroup lands: EC2 says Duplicate.
    let env = Env::start(Arc::new(|s, nth| {
        if s.action == "CreateSecurityGroup" && nth == 0 {
            Fault::fail_after(400, "InvalidGroup.Duplicate")
        } else {
            Fault::Pass
        }
    }))
    .await;
    let launcher = env.launcher(provider(&env), quick_retry());
    let r = launcher.launch(spec(1)).await.unwrap();
    assert_eq!(r.instances.len(), 1);
    assert_eq!(env.proxy.calls("CreateSecurityGroup").len(), 1);
    // Three fresh processes at once: all launch, one group between them.
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..3 {
        let l = env.launcher(provider(&env), quick_retry());
        set.spawn(async move { l.launch(spec(1)).await });
    }
    while let Some(r) = set.join_next().await {
        r.unwrap().unwrap();
    }
    let c = direct_client(&env.moto.endpoint(), REGION);
    let groups = c.describe_security_groups().send().await.unwrap();
    let named = groups
        .security_groups()
        .iter()
        .filter(|g| g.group_name() == Some("herd-tester"))
        .count();
    assert_eq!(named, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_that_finds_part_of_its_launch_completes_it() {
    let env = Env::plain().await;
    let launcher = env.launcher(provider(&env), quick_retry());
    let id = LaunchId::new("partial-aws-1").unwrap();
    let first = launcher.launch(spec(4).launch_id(id.clone())).await.unwrap();
    // Two of the four lose their request tag: the retry sees 2 of 4.
    let c = direct_client(&env.moto.endpoint(), REGION);
    c.delete_tags()
        .resources(&first.instances[0].id)
        .resources(&first.instances[1].id)
        .tags(
            aws_sdk_ec2::types::Tag::builder()
                .key(herd_aws::launch::REQUEST_TAG)
                .build(),
        )
        .send()
        .await
        .unwrap();
    env.proxy.clear();
    let again = env
        .launcher(provider(&env), quick_retry())
        .launch(spec(4).launch_id(id.clone()))
        .await
        .unwrap();
    assert_eq!(again.instances.len(), 4, "completed, not an error");
    let runs = env.proxy.calls("RunInstances");
    assert_eq!(runs.len(), 1, "one call for the missing two");
    assert_eq!(
        (runs[0].param("MinCount"), runs[0].param("MaxCount")),
        (Some("2"), Some("2"))
    );
    assert_eq!(runs[0].param("ClientToken"), Some("partial-aws-1-fill2"));
    // A further retry finds all four and starts nothing.
    env.proxy.clear();
    let third = env
        .launcher(provider(&env), quick_retry())
        .launch(spec(4).launch_id(id))
        .await
        .unwrap();
    assert_eq!(ids(&third.instances), ids(&again.instances));
    assert!(env.proxy.calls("RunInstances").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_launch_that_cannot_be_completed_is_ended() {
    let env = Env::plain().await;
    let launcher = env.launcher(provider(&env), quick_retry());
    let id = LaunchId::new("partial-aws-2").unwrap();
    let first = launcher.launch(spec(3).launch_id(id.clone())).await.unwrap();
    let c = direct_client(&env.moto.endpoint(), REGION);
    c.delete_tags()
        .resources(&first.instances[0].id)
        .tags(
            aws_sdk_ec2::types::Tag::builder()
                .key(herd_aws::launch::REQUEST_TAG)
                .build(),
        )
        .send()
        .await
        .unwrap();
    env.proxy.set_rule(Arc::new(|s, _| {
        if s.action == "RunInstances" {
            Fault::fail(400, "VcpuLimitExceeded")
        } else {
            Fault::Pass
        }
    }));
    let e = env
        .launcher(provider(&env), quick_retry())
        .launch(spec(3).launch_id(id))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::QuotaExceeded, "{e}");
    assert!(
        e.message().contains("2 of 3") && e.message().contains("were terminated"),
        "{e}"
    );
    readable(&e);
    // The two it found are ended; nothing of the launch is left half-running.
    let d = c
        .describe_instances()
        .instance_ids(&first.instances[1].id)
        .instance_ids(&first.instances[2].id)
        .send()
        .await
        .unwrap();
    for i in d.reservations().iter().flat_map(|r| r.instances()) {
        let s = i.state().and_then(|s| s.name()).unwrap().as_str().to_string();
        assert!(s == "shutting-down" || s == "terminated", "{s}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_endpoint_ends_as_a_timeout_that_names_it() {
    let env = Env::start(Arc::new(|s, _| {
        if s.action == "DescribeInstances" {
            Fault::Hang
        } else {
            Fault::Pass
        }
    }))
    .await;
    let cfg = env
        .config()
        .regions([REGION])
        .attempt_timeout(Duration::from_millis(500));
    let p = env.provider_with(cfg);
    let e = p.list(&ListRequest::new()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(e.is_temporary());
    assert_eq!(e.context_value("endpoint"), Some(env.proxy.endpoint().as_str()));
    assert!(e.message().contains(&env.proxy.endpoint()), "{e}");
    readable(&e);
    // Through the Launcher, bounded by its patience, still a timeout.
    let policy = RetryPolicy {
        max_attempts: 3,
        ..quick_retry()
    };
    let launcher = env.launcher(p.clone(), policy);
    let e = launcher.list_mine(false).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert_eq!(env.proxy.calls("DescribeInstances").len(), 1 + 3);
    // terminate, reap and launch too: every call has the same bound.
    assert_eq!(
        p.terminate(&["i-0123456789abcdef0".into()]).await.unwrap_err().kind(),
        ErrorKind::Timeout
    );
    assert_eq!(
        p.leftovers(Some("tester")).await.unwrap_err().kind(),
        ErrorKind::Timeout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_forever_ends_within_the_patience_and_names_the_endpoint() {
    let env = Env::start(Arc::new(|_, _| Fault::fail(503, "RequestLimitExceeded"))).await;
    let p = provider(&env);
    let policy = RetryPolicy {
        rate_limit_patience: Duration::from_millis(300),
        ..quick_retry()
    };
    let launcher = env.launcher(p, policy);
    let e = launcher.list_mine(false).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited, "{e}");
    assert_eq!(e.context_value("endpoint"), Some(env.proxy.endpoint().as_str()));
    let e = launcher.launch(spec(1)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited, "{e}");
    assert!(env.proxy.calls("RunInstances").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_instance_shows_as_stopped_and_down_still_ends_it() {
    let env = Env::plain().await;
    let p = provider(&env);
    let launcher = env.launcher(p.clone(), quick_retry());
    let id = launcher.launch(spec(1)).await.unwrap().instances[0].id.clone();
    direct_client(&env.moto.endpoint(), REGION)
        .stop_instances()
        .instance_ids(&id)
        .send()
        .await
        .unwrap();
    let got = launcher.list_mine(false).await.unwrap();
    assert_eq!(got.len(), 1, "stopped still holds its volumes: listed as live");
    assert_eq!(got[0].state_reason.as_deref(), Some("stopped"), "{:?}", got[0]);
    let t = launcher.terminate(std::slice::from_ref(&id)).await.unwrap();
    assert_eq!(t[0].outcome, TerminateOutcome::Terminated);
}
