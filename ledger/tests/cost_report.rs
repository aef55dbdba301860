//! `herd cost`: accrued, projected and per-day spend at frozen prices.

mod common;

use common::*;
use herd_core::{Cloud, InstanceState, Journal, Money};
use herd_ledger::{CostGroup, CostRow, Ledger};
use InstanceState::*;

fn total(rows: &[CostRow]) -> (Money, Money, Money) {
    (
        rows.iter().map(|r| r.accrued).sum(),
        rows.iter().map(|r| r.projected).sum(),
        rows.iter().map(|r| r.hourly_now).sum(),
    )
}

/// Three launches over three UTC days, with sub-second instants and odd prices.
fn sample() -> Ledger {
    let l = Ledger::in_memory().unwrap();
    l.launch_started(&intent("l-a", "alice", "exp-a", t(20, 0), "10"))
        .unwrap();
    l.launch_started(&intent("l-b", "bob", "exp-b", t(30, 0), "10"))
        .unwrap();
    let ms = chrono::Duration::milliseconds;
    let mut long = inst("a-1", "l-a", Running, t(20, 0) + ms(1500), "0.0416");
    long.deadline = t(60, 0);
    let long = ended(long, t(50, 0) + ms(700));
    let short = ended(inst("a-2", "l-a", Running, t(23, 59), "3.06"), t(24, 0) + ms(30_250));
    let mut live = inst("b-1", "l-b", Running, t(30, 0), "1.5");
    live.deadline = t(62, 0);
    let mut azure = inst("z-1", "l-b", Running, t(47, 10), "0.77");
    azure.cloud = Cloud::Azure;
    azure.deadline = t(49, 0);
    l.instances_seen(&[long, short, live, azure]).unwrap();
    l
}

#[test]
fn days_add_up_to_the_whole() {
    let l = sample();
    let to = t(55, 0);
    for from in [
        None,
        Some(t(22, 30)),
        Some(t(24, 0) + chrono::Duration::milliseconds(10)),
    ] {
        let whole = l.cost_report(CostGroup::Cloud, from, to, None).unwrap();
        let days = l.cost_report(CostGroup::Day, from, to, None).unwrap();
        assert_eq!(total(&days), total(&whole), "from {from:?}");
        assert!(days.windows(2).all(|w| w[0].key < w[1].key));
    }
    let days = l.cost_report(CostGroup::Day, None, to, None).unwrap();
    let keys: Vec<_> = days.iter().map(|d| d.key.as_str()).collect();
    assert_eq!(keys, ["2026-01-01", "2026-01-02", "2026-01-03"]);
    // The live instance's remaining worst case sits on the last day only.
    assert_eq!(days.iter().map(|d| d.live).collect::<Vec<_>>(), [0, 0, 1]);
}

#[test]
fn every_grouping_reports_the_same_totals() {
    let l = sample();
    let to = t(48, 0);
    let reference = total(&l.cost_report(CostGroup::Cloud, None, to, None).unwrap());
    for by in CostGroup::ALL {
        assert_eq!(total(&l.cost_report(by, None, to, None).unwrap()), reference, "{by}");
    }
    let by_launch = l.cost_report(CostGroup::Launch, None, to, None).unwrap();
    assert_eq!(
        by_launch.iter().map(|r| r.key.as_str()).collect::<Vec<_>>(),
        ["l-a", "l-b"]
    );
    let by_cluster = l.cost_report(CostGroup::Cluster, None, to, None).unwrap();
    assert_eq!(
        by_cluster.iter().map(|r| r.key.as_str()).collect::<Vec<_>>(),
        ["exp-a", "exp-b"]
    );
}

#[test]
fn accrued_projected_and_hourly_now() {
    let l = sample();
    // At t(48): a-1 runs until t(50), b-1 until its deadline t(62), z-1 until t(49).
    let to = t(48, 0);
    let rows = l
        .cost_report(CostGroup::Launch, Some(t(30, 0)), to, Some("bob"))
        .unwrap();
    assert_eq!(rows.len(), 1);
    let b = &rows[0];
    assert_eq!((b.key.as_str(), b.instances, b.live), ("l-b", 2, 2));
    // b-1: 18 h at $1.50; z-1: 50 min at $0.77 (Azure, per minute).
    assert_eq!(
        b.accrued,
        usd("27") + usd("0.77").times(rust_decimal::Decimal::new(50, 0) / rust_decimal::Decimal::new(60, 0))
    );
    // Still to come: b-1 14 h at $1.50, z-1 1 h at $0.77.
    assert_eq!(b.projected, b.accrued + usd("21") + usd("0.77"));
    assert_eq!(b.hourly_now, usd("2.27"));

    // Alice's instances ended by t(51): nothing live, nothing more to come.
    let a = &l.cost_report(CostGroup::Launch, None, t(51, 0), Some("alice")).unwrap()[0];
    assert_eq!((a.live, a.hourly_now), (0, Money::ZERO));
    assert_eq!(a.projected, a.accrued);
}

#[test]
fn the_period_bounds_what_is_counted() {
    let l = sample();
    // Before anything launched: nothing.
    assert!(l.cost_report(CostGroup::Day, None, t(10, 0), None).unwrap().is_empty());
    // After alice's instances ended: only bob's.
    let rows = l
        .cost_report(CostGroup::Launch, Some(t(51, 0)), t(52, 0), None)
        .unwrap();
    assert_eq!(rows.iter().map(|r| r.key.as_str()).collect::<Vec<_>>(), ["l-b"]);
    assert_eq!(rows[0].accrued, usd("1.5"));
    assert_eq!(rows[0].instances, 1);
}

#[test]
fn frozen_prices_drive_the_report() {
    let l = Ledger::in_memory().unwrap();
    l.instances_seen(&[inst("i-1", "l-1", Running, t(0, 0), "2")]).unwrap();
    l.instances_seen(&[ended(inst("i-1", "l-1", Running, t(0, 0), "200"), t(3, 0))])
        .unwrap();
    let rows = l.cost_report(CostGroup::Cloud, None, t(5, 0), None).unwrap();
    assert_eq!(rows[0].accrued, usd("6"));
}

#[test]
fn groupings_parse_with_suggestions() {
    assert_eq!("day".parse::<CostGroup>().unwrap(), CostGroup::Day);
    assert_eq!("instance-type".parse::<CostGroup>().unwrap(), CostGroup::InstanceType);
    for g in CostGroup::ALL {
        assert_eq!(g.to_string().parse::<CostGroup>().unwrap(), g);
    }
    let e = "clustr".parse::<CostGroup>().unwrap_err();
    assert_eq!(e.suggestions(), ["cluster".to_string()]);
    assert!(e.hint().is_some());
}
