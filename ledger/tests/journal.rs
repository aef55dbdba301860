//! The Journal semantics the Launcher relies on, and the queries `herd ls` makes.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use herd_core::{Cloud, ErrorKind, InstanceState, Journal, LaunchId, Money, VirtualClock};
use herd_ledger::{InstanceFilter, LaunchFilter, LaunchStatus, Ledger, LedgerOptions, StateChange};
use InstanceState::*;

fn ledger_at(now: chrono::DateTime<chrono::Utc>) -> Ledger {
    Ledger::in_memory_with(LedgerOptions {
        clock: Arc::new(VirtualClock::new(now)),
        ..Default::default()
    })
    .unwrap()
}

fn all(l: &Ledger) -> Vec<herd_core::Instance> {
    l.instances(&InstanceFilter::default()).unwrap()
}

#[test]
fn launch_lifecycle_started_launched_failed() {
    let l = ledger_at(t(1, 0));
    l.launch_started(&intent("l-1", "alice", "exp", t(0, 0), "0.768"))
        .unwrap();
    let rec = &l.launches(&LaunchFilter::default()).unwrap()[0];
    assert_eq!(rec.status, LaunchStatus::Started);
    assert_eq!(rec.reservation, usd("0.768"));
    assert_eq!(rec.hourly_price, usd("0.096"));
    assert_eq!(rec.deadline, t(4, 0));

    l.instances_seen(&[inst("i-1", "l-1", Pending, t(0, 0), "0.096")])
        .unwrap();
    assert_eq!(
        l.launches(&LaunchFilter::default()).unwrap()[0].status,
        LaunchStatus::Launched
    );

    l.launch_failed(&LaunchId::new("l-1").unwrap(), "capacity ran out")
        .unwrap();
    l.launch_failed(&LaunchId::new("l-1").unwrap(), "a later, vaguer error")
        .unwrap();
    let rec = &l.launches(&LaunchFilter::default()).unwrap()[0];
    assert_eq!(rec.status, LaunchStatus::Failed);
    assert_eq!(rec.error.as_deref(), Some("capacity ran out"));
}

#[test]
fn the_first_price_is_frozen() {
    let l = ledger_at(t(1, 0));
    l.instances_seen(&[inst("i-1", "l-1", Pending, t(0, 0), "0.0416")])
        .unwrap();
    l.instances_seen(&[inst("i-1", "l-1", Running, t(0, 0), "0.5")])
        .unwrap();
    let got = all(&l);
    assert_eq!(got[0].hourly_price, usd("0.0416"));
    assert_eq!(got[0].hourly_price.amount.to_string(), "0.0416", "stored exactly");
    assert_eq!(got[0].state, Running, "the rest of the sighting is taken");
}

#[test]
fn states_never_go_backwards() {
    let l = ledger_at(t(2, 0));
    let mut run = inst("i-1", "l-1", Pending, t(0, 0), "1");
    l.instances_seen(std::slice::from_ref(&run)).unwrap();
    run.state = Running;
    run.addresses = vec!["10.0.0.1".into()];
    l.instances_seen(std::slice::from_ref(&run)).unwrap();
    // A stale page from before it started running changes nothing.
    let mut stale = inst("i-1", "l-1", Pending, t(0, 0), "1");
    stale.zone = "us-east-1b".into();
    l.instances_seen(&[stale]).unwrap();
    assert_eq!(all(&l)[0].state, Running);
    assert_eq!(all(&l)[0].zone, "us-east-1a");
    assert_eq!(all(&l)[0].addresses, vec!["10.0.0.1".to_string()]);

    let mut gone = ended(run.clone(), t(1, 30));
    gone.state_reason = Some("deadline".into());
    l.instances_seen(&[gone]).unwrap();
    l.instances_seen(&[run]).unwrap(); // stale again
    let i = &all(&l)[0];
    assert_eq!((i.state, i.ended_at), (Terminated, Some(t(1, 30))));

    let changes = l.state_changes("i-1").unwrap();
    let steps: Vec<_> = changes.iter().map(|c| (c.from, c.to)).collect();
    assert_eq!(
        steps,
        vec![(None, Pending), (Some(Pending), Running), (Some(Running), Terminated)]
    );
    assert_eq!(changes[0].at, t(0, 0), "first sighting dated at launch");
    assert_eq!(changes[1].at, t(2, 0), "undated transition dated by the clock");
    assert_eq!(
        changes[2],
        StateChange {
            instance_id: "i-1".into(),
            from: Some(Running),
            to: Terminated,
            at: t(1, 30),
            reason: Some("deadline".into()),
        }
    );
}

#[test]
fn terminated_without_an_end_time_ends_now_but_not_after_the_deadline() {
    let l = ledger_at(t(9, 0));
    let mut i = inst("i-1", "l-1", Terminated, t(0, 0), "1"); // deadline t(4, 0)
    i.ended_at = None;
    l.instances_seen(&[i]).unwrap();
    assert_eq!(all(&l)[0].ended_at, Some(t(4, 0)));
}

#[test]
fn instances_ended_keeps_the_earliest_end() {
    let l = ledger_at(t(0, 5));
    l.instances_seen(&[inst("i-1", "l-1", Running, t(0, 0), "1")]).unwrap();
    l.instances_ended(&["i-1".into(), "i-unknown".into()], t(1, 0), "terminated")
        .unwrap();
    l.instances_ended(&["i-1".into()], t(2, 0), "terminated again").unwrap();
    let i = &all(&l)[0];
    assert_eq!((i.state, i.ended_at), (Terminated, Some(t(1, 0))));
    assert_eq!(i.state_reason.as_deref(), Some("terminated"));
    l.instances_ended(&["i-1".into()], t(0, 30), "earlier").unwrap();
    assert_eq!(all(&l)[0].ended_at, Some(t(0, 30)));
    assert_eq!(l.state_changes("i-1").unwrap().len(), 2, "one transition to terminated");
    assert_eq!(all(&l).len(), 1, "unknown ids are not invented");
}

#[test]
fn batches_and_fallbacks_fold_into_their_launch() {
    let l = ledger_at(t(1, 0));
    l.launch_started(&intent("l-abc", "alice", "exp", t(0, 0), "1"))
        .unwrap();
    // The Launcher's batch and on-demand fallback ids, with and without herd's tags.
    let b0 = inst("i-1", "l-abc-b0", Running, t(0, 0), "1");
    let b1 = tagged(
        inst("i-2", "l-abc-b1-od", Running, t(0, 0), "1"),
        "alice",
        "exp",
        "l-abc",
    );
    let other = inst("i-3", "l-other", Running, t(0, 0), "1");
    l.instances_seen(&[b0, b1, other]).unwrap();
    let f = InstanceFilter {
        launch_id: Some("l-abc".into()),
        ..Default::default()
    };
    let mine = l.instances(&f).unwrap();
    let mut ids: Vec<_> = mine.iter().map(|i| i.id.as_str()).collect();
    ids.sort();
    assert_eq!(ids, ["i-1", "i-2"]);
    assert!(
        mine.iter().any(|i| i.launch_id.as_str() == "l-abc-b1-od"),
        "reported id kept"
    );
    let by_batch = InstanceFilter {
        launch_id: Some("l-abc-b0".into()),
        ..Default::default()
    };
    assert_eq!(l.instances(&by_batch).unwrap().len(), 1);
    // Owner and cluster come from the launch for untagged batches.
    let by_owner = InstanceFilter {
        owner: Some("alice".into()),
        ..Default::default()
    };
    assert_eq!(l.instances(&by_owner).unwrap().len(), 2);
    // A failing batch fails its launch.
    l.launch_failed(&LaunchId::new("l-abc-b1").unwrap(), "boom").unwrap();
    assert_eq!(
        l.launches(&LaunchFilter::default()).unwrap()[0].status,
        LaunchStatus::Failed
    );
}

#[test]
fn a_reused_launch_id_must_be_the_same_request() {
    let l = ledger_at(t(1, 0));
    let first = intent("l-1", "alice", "exp", t(0, 0), "1");
    l.launch_started(&first).unwrap();
    l.launch_started(&first).unwrap(); // a resume: fine
    l.launch_failed(&LaunchId::new("l-1").unwrap(), "boom").unwrap();
    l.launch_started(&first).unwrap();
    let rec = &l.launches(&LaunchFilter::default()).unwrap()[0];
    assert_eq!((rec.status, rec.error.as_deref()), (LaunchStatus::Started, None));

    let mut different = first.clone();
    different.fingerprint = "another request".into();
    let e = l.launch_started(&different).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    assert!(e.message().contains("l-1"), "{e}");
    assert!(e.hint().is_some());
}

#[test]
fn instances_round_trip_every_field() {
    let l = ledger_at(t(1, 0));
    let mut i = tagged(
        inst("i-1", "l-1", Running, t(0, 0), "0.1234567"),
        "Alice@Example.com",
        "exp",
        "l-1",
    );
    i.state_reason = Some("user".into());
    i.purchase = herd_core::PurchaseOption::Spot;
    i.keepalive = Some(Duration::from_secs(1200));
    i.addresses = vec!["10.0.0.1".into(), "203.0.113.5".into()];
    i.launched_at += chrono::Duration::nanoseconds(123_456_789);
    i.tags.insert("team".into(), "ml".into());
    l.instances_seen(std::slice::from_ref(&i)).unwrap();
    assert_eq!(all(&l), vec![i]);
}

#[test]
fn filters_and_newest_first() {
    let l = ledger_at(t(10, 0));
    l.launch_started(&intent("l-a", "Alice@Example.com", "Exp One", t(0, 0), "1"))
        .unwrap();
    l.launch_started(&intent("l-b", "bob", "other", t(1, 0), "1")).unwrap();
    let mut gcp = inst("g-1", "l-b", Running, t(3, 0), "1");
    gcp.cloud = Cloud::Gcp;
    l.instances_seen(&[
        inst("a-1", "l-a", Running, t(0, 0), "1"),
        ended(inst("a-2", "l-a", Running, t(1, 0), "1"), t(2, 0)),
        inst("b-1", "l-b", Running, t(2, 0), "1"),
        gcp,
    ])
    .unwrap();
    let ids = |f: InstanceFilter| -> Vec<String> { l.instances(&f).unwrap().into_iter().map(|i| i.id).collect() };
    assert_eq!(ids(InstanceFilter::default()), ["g-1", "b-1", "a-2", "a-1"]);
    // Owner and cluster match as typed or as sanitized in the tags.
    for owner in ["Alice@Example.com", "alice-example-com"] {
        let f = InstanceFilter {
            owner: Some(owner.into()),
            ..Default::default()
        };
        assert_eq!(ids(f), ["a-2", "a-1"]);
    }
    let f = InstanceFilter {
        cluster: Some("exp-one".into()),
        live_only: true,
        ..Default::default()
    };
    assert_eq!(ids(f), ["a-1"]);
    let f = InstanceFilter {
        cloud: Some(Cloud::Gcp),
        ..Default::default()
    };
    assert_eq!(ids(f), ["g-1"]);
    let f = InstanceFilter {
        ids: vec!["a-1".into(), "b-1".into(), "nope".into()],
        ..Default::default()
    };
    assert_eq!(ids(f), ["b-1", "a-1"]);
    let f = InstanceFilter {
        since: Some(t(1, 0)),
        limit: Some(2),
        ..Default::default()
    };
    assert_eq!(ids(f), ["g-1", "b-1"]);

    let launches = |f: LaunchFilter| -> Vec<String> {
        l.launches(&f)
            .unwrap()
            .into_iter()
            .map(|r| r.launch_id.to_string())
            .collect()
    };
    assert_eq!(launches(LaunchFilter::default()), ["l-b", "l-a"]);
    let f = LaunchFilter {
        owner: Some("alice-example-com".into()),
        ..Default::default()
    };
    assert_eq!(launches(f), ["l-a"]);
    let f = LaunchFilter {
        cluster: Some("Exp One".into()),
        ..Default::default()
    };
    assert_eq!(launches(f), ["l-a"]);
    let f = LaunchFilter {
        since: Some(t(0, 30)),
        limit: Some(5),
        ..Default::default()
    };
    assert_eq!(launches(f), ["l-b"]);
}

#[test]
fn instances_from_elsewhere_are_recorded_by_their_tags() {
    let l = ledger_at(t(1, 0));
    let i = tagged(
        inst("i-9", "l-elsewhere-b2", Running, t(0, 0), "1"),
        "carol",
        "remote",
        "l-elsewhere",
    );
    l.instances_seen(&[i]).unwrap();
    let f = InstanceFilter {
        owner: Some("carol".into()),
        cluster: Some("remote".into()),
        launch_id: Some("l-elsewhere".into()),
        ..Default::default()
    };
    assert_eq!(l.instances(&f).unwrap().len(), 1);
    assert!(l.launches(&LaunchFilter::default()).unwrap().is_empty());
}

#[test]
fn committed_since_across_a_day_boundary() {
    let l = ledger_at(t(30, 0));
    // Day 1, 23:00: still running -> its reservation counts.
    l.launch_started(&intent("l-late", "alice", "c", t(23, 0), "7.5"))
        .unwrap();
    l.instances_seen(&[inst("i-late", "l-late", Running, t(23, 0), "1")])
        .unwrap();
    // Day 2, 01:00: ran 90 minutes at $2/h and ended -> its accrued cost, $3.
    l.launch_started(&intent("l-done", "alice", "c", t(25, 0), "100"))
        .unwrap();
    l.instances_seen(&[ended(inst("i-done", "l-done", Running, t(25, 0), "2"), t(26, 30))])
        .unwrap();
    // Day 2: sent to the cloud, nothing seen yet -> reservation.
    l.launch_started(&intent("l-pending", "alice", "c", t(27, 0), "4"))
        .unwrap();
    // Day 2: failed before starting anything -> nothing.
    l.launch_started(&intent("l-failed", "alice", "c", t(28, 0), "50"))
        .unwrap();
    l.launch_failed(&LaunchId::new("l-failed").unwrap(), "no capacity")
        .unwrap();
    // Someone else's launch never counts.
    l.launch_started(&intent("l-bob", "bob", "c", t(25, 0), "1000"))
        .unwrap();

    let day2 = t(24, 0);
    assert_eq!(l.committed_since("alice", day2).unwrap(), usd("7"));
    assert_eq!(l.committed_since("alice", t(0, 0)).unwrap(), usd("14.5"));
    // Once the late one ends, it counts what it cost: 2 h at $1 (the frozen price).
    l.instances_ended(&["i-late".into()], t(25, 0), "terminated").unwrap();
    assert_eq!(l.committed_since("alice", t(0, 0)).unwrap(), usd("9"));
    assert_eq!(l.committed_since("nobody", t(0, 0)).unwrap(), Money::ZERO);
}
