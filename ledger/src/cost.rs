//! Money from records: what a launch still commits against a budget, and cost reports.
//! All arithmetic is `Decimal` through `Money` and `BillingRule`, never `f64`.

use std::collections::BTreeMap;

use chrono::{DateTime, Days, NaiveDate, Utc};
use herd_core::{BillingRule, Money};

use crate::model::{CostGroup, CostRow, LaunchRecord, LaunchStatus};
use crate::store::Run;

/// What a launch counts against its owner's budget: its worst-case reservation while
/// anything of it may still run, what it really cost once all of it ended, nothing if it
/// failed before starting anything.
pub(crate) fn committed(launch: &LaunchRecord, runs: &[Run]) -> Money {
    if runs.iter().any(|r| r.state.is_live()) {
        return launch.reservation;
    }
    if runs.is_empty() {
        return match launch.status {
            LaunchStatus::Started => launch.reservation,
            LaunchStatus::Launched | LaunchStatus::Failed => Money::ZERO,
        };
    }
    runs.iter()
        .map(|r| {
            let end = r.ended_at.unwrap_or(r.deadline).max(r.launched_at);
            BillingRule::for_cloud(r.cloud).accrued(r.hourly_price, r.launched_at, end, None, None)
        })
        .sum()
}

/// Until when a run bills, as far as a report at `to` knows: its end, else now (`to`),
/// but never past the deadline the cloud enforces.
fn billed_until(r: &Run, to: DateTime<Utc>) -> DateTime<Utc> {
    r.ended_at.unwrap_or_else(|| to.min(r.deadline)).max(r.launched_at)
}

/// Whether a run is still going at the end of the report's period.
fn live_at(r: &Run, to: DateTime<Utc>) -> bool {
    r.launched_at <= to && r.ended_at.is_none_or(|e| e > to) && r.deadline > to
}

/// Totals of one report row while it is being summed.
#[derive(Default)]
struct Acc {
    instances: u32,
    live: u32,
    accrued: Money,
    to_come: Money,
    hourly_now: Money,
}

/// One run's share of the report: accrued per key, and (for live runs) what is still to
/// come, counted under the run's last key.
fn pieces(r: &Run, by: CostGroup, from: Option<DateTime<Utc>>, to: DateTime<Utc>) -> Vec<(String, Money)> {
    let rule = BillingRule::for_cloud(r.cloud);
    let end = billed_until(r, to);
    let total = rule.accrued(r.hourly_price, r.launched_at, end, from, Some(to));
    let key = match by {
        CostGroup::Cluster => r.cluster.clone().unwrap_or_else(|| "(none)".to_string()),
        CostGroup::Launch => r.launch_id.clone(),
        CostGroup::InstanceType => r.instance_type.clone(),
        CostGroup::Cloud => r.cloud.as_str().to_string(),
        CostGroup::Day => return day_pieces(r, rule, end, total, from, to),
    };
    vec![(key, total)]
}

/// Splits a run's accrued cost across the UTC days it ran within `[from, to]`. Every day
/// but the last is priced by the billing rule; the last gets the remainder, so the days
/// always add up to the whole, whatever rounding the rule does.
fn day_pieces(
    r: &Run,
    rule: BillingRule,
    end: DateTime<Utc>,
    total: Money,
    from: Option<DateTime<Utc>>,
    to: DateTime<Utc>,
) -> Vec<(String, Money)> {
    let ws = from.map_or(r.launched_at, |f| f.max(r.launched_at));
    let we = to.min(end);
    let first = ws.date_naive();
    let mut last = we.date_naive();
    if we > ws && we == midnight(last) {
        // Ending exactly at midnight: nothing ran on the new day.
        last = last.pred_opt().unwrap_or(last);
    }
    let mut out = Vec::new();
    let mut sum = Money::ZERO;
    let mut day = first;
    while day < last {
        let next = day.checked_add_days(Days::new(1)).unwrap_or(last);
        let start = ws.max(midnight(day));
        let piece = rule.accrued(r.hourly_price, r.launched_at, end, Some(start), Some(midnight(next)));
        sum += piece;
        out.push((day_key(day), piece));
        day = next;
    }
    out.push((day_key(last), Money::usd(total.amount - sum.amount)));
    out
}

fn midnight(d: NaiveDate) -> DateTime<Utc> {
    d.and_time(chrono::NaiveTime::MIN).and_utc()
}

fn day_key(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

/// Cost within `[from, to]` grouped by `by`, rows in key order. What live runs will still
/// cost until their deadline is added to `projected` of the row holding their last piece
/// (for days: the last day), so every grouping's columns sum to the same totals.
pub(crate) fn report(runs: &[Run], by: CostGroup, from: Option<DateTime<Utc>>, to: DateTime<Utc>) -> Vec<CostRow> {
    let mut rows: BTreeMap<String, Acc> = BTreeMap::new();
    for r in runs {
        let end = billed_until(r, to);
        if r.launched_at > to || from.is_some_and(|f| end < f) {
            continue;
        }
        let pieces = pieces(r, by, from, to);
        let last = pieces.len() - 1;
        for (i, (key, money)) in pieces.into_iter().enumerate() {
            let acc = rows.entry(key).or_default();
            acc.instances += 1;
            acc.accrued += money;
            if i == last && live_at(r, to) {
                acc.live += 1;
                acc.hourly_now += r.hourly_price;
                let until = r.ended_at.unwrap_or(r.deadline).min(r.deadline);
                acc.to_come +=
                    BillingRule::for_cloud(r.cloud).accrued(r.hourly_price, r.launched_at, until, Some(to), None);
            }
        }
    }
    rows.into_iter()
        .map(|(key, a)| CostRow {
            key,
            instances: a.instances,
            live: a.live,
            accrued: a.accrued,
            projected: a.accrued + a.to_come,
            hourly_now: a.hourly_now,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use herd_core::{Cloud, InstanceState, LaunchId, Market};
    use rust_decimal::Decimal;

    fn t(h: i64, m: i64) -> DateTime<Utc> {
        // 2026-01-01T00:00:00Z plus h hours and m minutes.
        DateTime::from_timestamp(1_767_225_600 + h * 3600 + m * 60, 0).unwrap()
    }

    fn run(start: DateTime<Utc>, end: Option<DateTime<Utc>>, deadline: DateTime<Utc>, price: &str) -> Run {
        Run {
            cloud: Cloud::Aws,
            launch_id: "l-1".into(),
            cluster: Some("c".into()),
            instance_type: "m5.large".into(),
            state: if end.is_some() {
                InstanceState::Terminated
            } else {
                InstanceState::Running
            },
            hourly_price: Money::parse_usd(price).unwrap(),
            launched_at: start,
            ended_at: end,
            deadline,
        }
    }

    fn launch(status: LaunchStatus) -> LaunchRecord {
        LaunchRecord {
            launch_id: LaunchId::new("l-1").unwrap(),
            cloud: Cloud::Aws,
            account: "a".into(),
            owner: "o".into(),
            cluster: "c".into(),
            fingerprint: "f".into(),
            instance_type: "m5.large".into(),
            region: "r".into(),
            count: 1,
            market: Market::OnDemand,
            hourly_price: Money::parse_usd("1").unwrap(),
            reservation: Money::parse_usd("10").unwrap(),
            deadline: t(10, 0),
            created_at: t(0, 0),
            status,
            error: None,
        }
    }

    #[test]
    fn committed_follows_the_launch_lifecycle() {
        let ten = Money::parse_usd("10").unwrap();
        assert_eq!(committed(&launch(LaunchStatus::Started), &[]), ten);
        assert_eq!(committed(&launch(LaunchStatus::Failed), &[]), Money::ZERO);
        let live = run(t(0, 0), None, t(10, 0), "1");
        let done = run(t(0, 0), Some(t(2, 0)), t(10, 0), "1");
        assert_eq!(committed(&launch(LaunchStatus::Launched), &[live, done.clone()]), ten);
        assert_eq!(
            committed(&launch(LaunchStatus::Launched), &[done.clone(), done]),
            Money::parse_usd("4").unwrap()
        );
    }

    #[test]
    fn live_runs_project_to_their_deadline() {
        let r = run(t(0, 0), None, t(10, 0), "1.5");
        let rows = report(&[r], CostGroup::Cloud, None, t(4, 0));
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].accrued.amount, Decimal::new(6, 0));
        assert_eq!(rows[0].projected.amount, Decimal::new(15, 0));
        assert_eq!(rows[0].hourly_now.amount, Decimal::new(15, 1));
        assert_eq!((rows[0].instances, rows[0].live), (1, 1));
    }

    #[test]
    fn past_deadline_stops_billing_and_projection() {
        let r = run(t(0, 0), None, t(2, 0), "1");
        let rows = report(&[r], CostGroup::Cloud, None, t(5, 0));
        assert_eq!(rows[0].accrued.amount, Decimal::new(2, 0));
        assert_eq!(rows[0].projected, rows[0].accrued);
        assert_eq!(rows[0].live, 0);
    }

    #[test]
    fn days_add_up_even_with_fractional_seconds() {
        let start = t(20, 0) + chrono::Duration::milliseconds(1500);
        let end = t(50, 0) + chrono::Duration::milliseconds(700);
        let r = run(start, Some(end), t(60, 0), "0.0416");
        let whole = report(std::slice::from_ref(&r), CostGroup::Cloud, None, t(70, 0));
        let days = report(&[r], CostGroup::Day, None, t(70, 0));
        assert_eq!(
            days.iter().map(|d| d.key.as_str()).collect::<Vec<_>>(),
            ["2026-01-01", "2026-01-02", "2026-01-03"]
        );
        let sum: Money = days.iter().map(|d| d.accrued).sum();
        assert_eq!(sum, whole[0].accrued);
    }

    #[test]
    fn ending_at_midnight_stays_on_its_day() {
        let r = run(t(23, 0), Some(t(24, 0)), t(30, 0), "1");
        let days = report(&[r], CostGroup::Day, None, t(30, 0));
        assert_eq!(days.len(), 1);
        assert_eq!(days[0].key, "2026-01-01");
    }
}
