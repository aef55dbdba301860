//! A mixed fleet on moto's EC2: 200 instances over two regions in one fleet, through the
//! fault proxy. The split is exact and read back from moto itself (not from herd's
//! answer), every instance carries the fleet's one cluster and launch tags, the fleet
//! reserves once, and when one part's RunInstances is refused (no capacity) nothing of
//! the fleet is left running in either region.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::{quick_retry, Env, TYPE};
use herd_aws::testing::{direct_client, pass, Failure, Fault, Rule};
use herd_core::fleet::split_even;
use herd_core::{
    tags, Budget, ErrorKind, FleetSpec, Guardrails, Instance, Journal, LaunchId, LaunchIntent, LaunchSpec, Launcher,
    Money, Result,
};

const REGIONS: [&str; 2] = ["us-east-1", "us-west-2"];

/// Keeps every reservation; the trait's default `reserve` (check, then record).
#[derive(Debug, Default)]
struct Book {
    reserved: Mutex<Vec<LaunchIntent>>,
}

impl Journal for Book {
    fn committed_since(&self, _: &str, _: DateTime<Utc>) -> Result<Money> {
        Ok(self.reserved.lock().unwrap().iter().map(|i| i.reservation).sum())
    }
    fn launch_started(&self, i: &LaunchIntent) -> Result<()> {
        self.reserved.lock().unwrap().push(i.clone());
        Ok(())
    }
    fn launch_failed(&self, _: &LaunchId, _: &str) -> Result<()> {
        Ok(())
    }
    fn instances_seen(&self, _: &[Instance]) -> Result<()> {
        Ok(())
    }
    fn instances_ended(&self, _: &[String], _: DateTime<Utc>, _: &str) -> Result<()> {
        Ok(())
    }
}

fn launcher(env: &Env, book: Arc<Book>) -> Launcher {
    let p = env.provider_with(env.config().regions(REGIONS));
    Launcher::builder(p)
        .guardrails(Guardrails {
            owner: "tester".into(),
            budget: Budget {
                per_launch: Money::parse_usd("1000").unwrap(),
                per_day: Money::parse_usd("1000").unwrap(),
            },
            ..Guardrails::default()
        })
        .journal(book)
        .retry(quick_retry())
        .seed(5)
        .build()
}

fn fleet(id: &str) -> FleetSpec {
    let types = vec![TYPE.to_string()];
    let regions: Vec<String> = REGIONS.iter().map(|r| r.to_string()).collect();
    FleetSpec::new(
        LaunchSpec::new("-", 0)
            .deadline(Duration::from_secs(3600))
            .launch_id(LaunchId::new(id).unwrap()),
        split_even(&types, &regions, 200).unwrap(),
    )
}

/// Live instances per region as moto itself holds them, with their tags.
async fn in_moto(env: &Env) -> BTreeMap<&'static str, Vec<BTreeMap<String, String>>> {
    in_moto_states(env, &["pending", "running"]).await
}

/// Instances in `states` per region as moto holds them, with their tags.
async fn in_moto_states(env: &Env, states: &[&str]) -> BTreeMap<&'static str, Vec<BTreeMap<String, String>>> {
    let mut out = BTreeMap::new();
    for region in REGIONS {
        let c = direct_client(&env.moto.endpoint(), region);
        let r = c
            .describe_instances()
            .filters(
                aws_sdk_ec2::types::Filter::builder()
                    .name("instance-state-name")
                    .set_values(Some(states.iter().map(|s| s.to_string()).collect()))
                    .build(),
            )
            .send()
            .await
            .unwrap();
        let live: Vec<BTreeMap<String, String>> = r
            .reservations()
            .iter()
            .flat_map(|res| res.instances())
            .map(|i| {
                i.tags()
                    .iter()
                    .map(|t| {
                        (
                            t.key().unwrap_or_default().to_string(),
                            t.value().unwrap_or_default().to_string(),
                        )
                    })
                    .collect()
            })
            .collect();
        out.insert(region, live);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_over_two_regions_is_one_fleet() {
    let env = Env::start(pass()).await;
    let book = Arc::new(Book::default());
    let l = launcher(&env, book.clone());
    let r = l.launch_fleet(&fleet("l-moto-fleet")).await.unwrap();
    assert!(r.complete());
    assert_eq!(r.instances.len(), 200);

    let live = in_moto(&env).await;
    for region in REGIONS {
        let mine: Vec<_> = live[region]
            .iter()
            .filter(|t| t.get(tags::LAUNCH).map(String::as_str) == Some("l-moto-fleet"))
            .collect();
        assert_eq!(mine.len(), 100, "{region}: the split is exact");
        assert!(
            mine.iter().all(|t| t.get(tags::CLUSTER) == Some(&r.cluster)),
            "{region}: one cluster"
        );
    }
    let reserved = book.reserved.lock().unwrap().clone();
    assert_eq!(reserved.len(), 1, "one reservation for the fleet");
    assert_eq!(reserved[0].count, 200);
    assert_eq!(reserved[0].region, "us-east-1,us-west-2");

    // The fleet's launch tag finds every part: what `herd down --launch` does.
    let ended = l
        .terminate_tagged(&BTreeMap::from([
            (tags::OWNER.to_string(), "tester".to_string()),
            (tags::LAUNCH.to_string(), "l-moto-fleet".to_string()),
        ]))
        .await
        .unwrap();
    assert_eq!(ended.len(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_part_refused_for_capacity_leaves_nothing_in_either_region() {
    // The second part's RunInstances (its ClientToken starts with its launch id) has no
    // capacity; the first part's goes through.
    let rule: Rule = Arc::new(|seen, _| {
        let token = seen.param("ClientToken").unwrap_or_default();
        if seen.action == "RunInstances" && token.starts_with("l-moto-short-p1") {
            Fault::reject(Failure::NoCapacity)
        } else {
            Fault::Pass
        }
    });
    let env = Env::start(rule).await;
    let book = Arc::new(Book::default());
    let l = launcher(&env, book.clone());
    let e = l.launch_fleet(&fleet("l-moto-short")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InsufficientCapacity, "{e}");
    assert!(
        e.message().contains("part 2 of 2 (100 × t3.micro in us-west-2) failed"),
        "{e}"
    );
    assert!(
        e.hint().unwrap().contains("nothing of it is left running"),
        "{:?}",
        e.hint()
    );
    assert!(
        !env.proxy.calls("RunInstances").is_empty(),
        "the launch reached the cloud"
    );
    let live = in_moto(&env).await;
    for region in REGIONS {
        let left: Vec<_> = live[region]
            .iter()
            .filter(|t| t.get(tags::LAUNCH).map(String::as_str) == Some("l-moto-short"))
            .collect();
        assert!(left.is_empty(), "{region}: {} left running", left.len());
    }
    // The first part did start, and was terminated again: a roll-back, not a refusal.
    let ended = in_moto_states(&env, &["shutting-down", "terminated"]).await;
    let started = ended[REGIONS[0]]
        .iter()
        .filter(|t| t.get(tags::LAUNCH).map(String::as_str) == Some("l-moto-short"))
        .count();
    assert_eq!(started, 100, "the first part ran and was ended");
    assert_eq!(book.reserved.lock().unwrap().len(), 1);
}
