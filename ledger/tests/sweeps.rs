//! Sweep records: written as a sweep runs, read back whole, resumable.

use chrono::{DateTime, Utc};
use herd_core::{Cloud, Money, PurchaseOption};
use herd_ledger::{Ledger, SweepCellRecord, SweepInstanceRecord, SweepRecord, SweepResultRecord};

fn t(s: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_767_225_600 + s, 0).unwrap()
}

fn sweep(id: &str, at: i64) -> SweepRecord {
    SweepRecord {
        sweep_id: id.into(),
        name: "demo".into(),
        owner: "ann".into(),
        plan: serde_json::json!({"cells": 2}),
        created_at: t(at),
        updated_at: t(at),
    }
}

fn instance(id: &str, price: &str) -> SweepInstanceRecord {
    SweepInstanceRecord {
        sweep_id: "demo-1".into(),
        cell_id: "c1".into(),
        instance_id: id.into(),
        cloud: Cloud::Local,
        region: "local-east-1".into(),
        zone: "local-east-1a".into(),
        instance_type: "l1.small".into(),
        purchase: PurchaseOption::Spot,
        hourly_price: Money::parse_usd(price).unwrap(),
        launched_at: t(0),
        running_at: None,
        ready_at: None,
        ended_at: None,
        end_reason: None,
    }
}

fn result(rep: u32, wall_ns: u64) -> SweepResultRecord {
    SweepResultRecord {
        sweep_id: "demo-1".into(),
        cell_id: "c1".into(),
        repetition: rep,
        instance_id: "i-1".into(),
        wall_ns,
        metric: wall_ns as f64 / 1e9,
        finished_at: t(10 + rep as i64),
    }
}

#[test]
fn a_sweep_round_trips_and_keeps_the_first_result_of_a_repetition() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.db");
    {
        let l = Ledger::open(&path).unwrap();
        l.upsert_sweep(&sweep("demo-1", 0)).unwrap();
        l.upsert_sweep_cell(&SweepCellRecord {
            sweep_id: "demo-1".into(),
            cell_id: "c1".into(),
            status: "running".into(),
            error: None,
            output_tail: None,
            events: vec!["capacity: local-east-1a full".into()],
            updated_at: t(1),
        })
        .unwrap();
        l.upsert_sweep_instance(&instance("i-1", "0.0104")).unwrap();
        let mut later = instance("i-1", "0.0104");
        later.running_at = Some(t(2));
        later.ended_at = Some(t(30));
        later.end_reason = Some("terminated".into());
        l.upsert_sweep_instance(&later).unwrap();
        l.insert_sweep_result(&result(0, 1_500_000_000)).unwrap();
        l.insert_sweep_result(&result(1, 1_600_000_000)).unwrap();
        // A repeated write of a finished repetition changes nothing.
        l.insert_sweep_result(&result(0, 9)).unwrap();
    }
    let l = Ledger::open(&path).unwrap();
    let d = l.sweep("demo-1").unwrap().unwrap();
    assert_eq!(d.sweep.plan["cells"], 2);
    assert_eq!(d.cells[0].events, ["capacity: local-east-1a full"]);
    assert_eq!(d.instances.len(), 1);
    assert_eq!(d.instances[0].ended_at, Some(t(30)));
    assert_eq!(d.instances[0].hourly_price, Money::parse_usd("0.0104").unwrap());
    assert_eq!(d.results.len(), 2);
    assert_eq!(d.results[0].wall_ns, 1_500_000_000);
    assert!(l.sweep("nope").unwrap().is_none());
}

#[test]
fn an_instance_price_stays_frozen() {
    let l = Ledger::in_memory().unwrap();
    l.upsert_sweep(&sweep("demo-1", 0)).unwrap();
    l.upsert_sweep_instance(&instance("i-1", "0.0104")).unwrap();
    // The upsert never touches the price, so a later sighting cannot re-price it.
    l.upsert_sweep_instance(&instance("i-1", "9.99")).unwrap();
    let d = l.sweep("demo-1").unwrap().unwrap();
    assert_eq!(d.instances[0].hourly_price, Money::parse_usd("0.0104").unwrap());
}

#[test]
fn sweeps_are_listed_newest_first() {
    let l = Ledger::in_memory().unwrap();
    l.upsert_sweep(&sweep("a-1", 0)).unwrap();
    l.upsert_sweep(&sweep("b-1", 5)).unwrap();
    let ids: Vec<_> = l.sweeps(None).unwrap().into_iter().map(|s| s.sweep_id).collect();
    assert_eq!(ids, ["b-1", "a-1"]);
    assert_eq!(l.sweeps(Some(1)).unwrap().len(), 1);
}
