//! The ledger must never be what makes herd slow: a 10,000-instance listing is recorded
//! well under a second, and `herd ls` on an existing ledger opens it in a few ms.
//! Bounds are generous for unoptimised test builds on a shared machine, yet far below
//! what a per-row transaction or a migration on every open would take.

mod common;

use std::time::{Duration, Instant};

use common::*;
use herd_core::{InstanceState, Journal};
use herd_ledger::{InstanceFilter, Ledger};

fn bound(release: Duration) -> Duration {
    if cfg!(debug_assertions) {
        release * 3
    } else {
        release
    }
}

#[test]
fn ten_thousand_sightings_in_one_call() {
    let dir = tempfile::tempdir().unwrap();
    let l = Ledger::open(&dir.path().join("ledger.db")).unwrap();
    l.launch_started(&intent("l-big", "alice", "c", t(0, 0), "1")).unwrap();
    let mut seen: Vec<_> = (0..10_000)
        .map(|n| inst(&format!("i-{n:05}"), "l-big", InstanceState::Pending, t(0, 0), "0.096"))
        .collect();

    let started = Instant::now();
    l.instances_seen(&seen).unwrap();
    let inserts = started.elapsed();

    for i in &mut seen {
        i.state = InstanceState::Running;
    }
    let started = Instant::now();
    l.instances_seen(&seen).unwrap();
    let updates = started.elapsed();

    let started = Instant::now();
    let live = l
        .instances(&InstanceFilter {
            live_only: true,
            ..Default::default()
        })
        .unwrap();
    let listed = started.elapsed();
    assert_eq!(live.len(), 10_000);
    eprintln!("10k: insert {inserts:?}, update {updates:?}, list {listed:?}");
    assert!(inserts < bound(Duration::from_millis(1000)), "insert took {inserts:?}");
    assert!(updates < bound(Duration::from_millis(1000)), "update took {updates:?}");
}

#[test]
fn opening_an_existing_ledger_and_listing_nothing_is_cheap() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.db");
    drop(Ledger::open(&path).unwrap()); // created and migrated once
    let mut best = Duration::MAX;
    for _ in 0..5 {
        let started = Instant::now();
        let l = Ledger::open(&path).unwrap();
        assert!(l.instances(&InstanceFilter::default()).unwrap().is_empty());
        best = best.min(started.elapsed());
    }
    eprintln!("open + empty ls: {best:?}");
    assert!(best < bound(Duration::from_millis(5)), "open + ls took {best:?}");
}
