//! From records to a verdict: per cell, the billed cost (each instance's whole life under
//! its cloud's [`BillingRule`](herd_core::BillingRule) at the price frozen at launch), the
//! spread of wall time and metric over repetitions, time-to-result (boot + setup + one
//! run), work per dollar, and the Pareto front of cost-per-result against time-to-result.
//!
//! Work per dollar is a score, not an amount, so it is an `f64`; every amount stays money.
//! A higher-is-better metric is read as a rate (work per second), a lower-is-better one
//! (wall time by default) as seconds per unit of work; either way work per dollar is what
//! one dollar of this cell's hourly price buys at the median.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use herd_core::clock::between;
use herd_core::{Error, Money, Result};
use herd_ledger::{SweepData, SweepInstanceRecord};
use rust_decimal::prelude::ToPrimitive;
use serde::Serialize;

use crate::plan::{Cell, Plan};
use crate::spec::{Better, MetricSpec};

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Stats {
    pub n: usize,
    pub min: f64,
    pub median: f64,
    pub max: f64,
    pub mean: f64,
    /// Sample standard deviation (0 for one value).
    pub stdev: f64,
}

impl Stats {
    pub fn of(values: &[f64]) -> Option<Stats> {
        if values.is_empty() {
            return None;
        }
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        let mean = v.iter().sum::<f64>() / n as f64;
        let var = if n > 1 {
            v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64
        } else {
            0.0
        };
        Some(Stats {
            n,
            min: v[0],
            median,
            max: v[n - 1],
            mean,
            stdev: var.sqrt(),
        })
    }

    /// Spread as a percentage of the mean (coefficient of variation).
    pub fn spread_percent(&self) -> f64 {
        if self.mean == 0.0 {
            0.0
        } else {
            100.0 * self.stdev / self.mean.abs()
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct CellScore {
    pub cell: Cell,
    pub status: String,
    pub error: Option<String>,
    pub output_tail: Option<String>,
    pub events: Vec<String>,
    pub repetitions: usize,
    /// Wall time of a run, seconds.
    pub wall: Option<Stats>,
    pub metric: Option<Stats>,
    /// The metric of each repetition, in repetition order (the spread behind the median).
    pub metric_values: Vec<f64>,
    pub boot_s: Option<f64>,
    pub setup_s: Option<f64>,
    /// Boot + setup + the median run: how long until a first answer.
    pub time_to_result_s: Option<f64>,
    /// The hourly price frozen at launch (of the first instance).
    pub hourly: Money,
    /// What the cell's instances were billed, whole lives, under the cloud's rule.
    pub billed: Money,
    /// `billed`, split by where the time went; `None` when no instance was recorded.
    pub billed_split: Option<BilledSplit>,
    /// What one answer costs: the billing rule applied to time-to-result.
    pub cost_per_result: Option<Money>,
    pub work_per_dollar: Option<f64>,
    /// 1 = most work per dollar.
    pub rank_work: Option<usize>,
    /// 1 = fastest time-to-result.
    pub rank_time: Option<usize>,
    /// On the Pareto front of cost-per-result vs time-to-result.
    pub pareto: bool,
}

/// What a cell was billed, by phase of its instances' lives: launch to running (boot),
/// running to ready (shipping the files and the setup command), ready to the end (the
/// runs), each at the hourly price frozen at launch for the time it took; and what the
/// billing rule added on top (its minimum and rounding up to its increment). The four add
/// up to the cell's `billed`.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
#[non_exhaustive]
pub struct BilledSplit {
    pub boot: Money,
    pub setup: Money,
    pub run: Money,
    /// The billing minimum and rounding: what was billed beyond the time used.
    pub minimum: Money,
}

impl BilledSplit {
    pub fn total(&self) -> Money {
        self.boot + self.setup + self.run + self.minimum
    }

    /// One instance that ran from `launched` until `end`, running at `running`, ready at
    /// `ready`, billed `billed` in all.
    fn of(
        hourly: Money,
        launched: DateTime<Utc>,
        running: Option<DateTime<Utc>>,
        ready: Option<DateTime<Utc>>,
        end: DateTime<Utc>,
        billed: Money,
    ) -> BilledSplit {
        let running = running.unwrap_or(end).min(end);
        let ready = ready.unwrap_or(end).clamp(running, end);
        let part = |a: DateTime<Utc>, b: DateTime<Utc>| {
            let ms = between(a, b).as_millis();
            Money::usd(hourly.amount * rust_decimal::Decimal::from(ms as u64) / rust_decimal::Decimal::from(3_600_000))
        };
        let (boot, setup, run) = (part(launched, running), part(running, ready), part(ready, end));
        let used = boot + setup + run;
        let minimum = if billed.amount > used.amount {
            Money::usd(billed.amount - used.amount)
        } else {
            Money::ZERO
        };
        BilledSplit {
            boot,
            setup,
            run,
            minimum,
        }
    }
}

impl std::ops::Add for BilledSplit {
    type Output = BilledSplit;
    fn add(self, o: BilledSplit) -> BilledSplit {
        BilledSplit {
            boot: self.boot + o.boot,
            setup: self.setup + o.setup,
            run: self.run + o.run,
            minimum: self.minimum + o.minimum,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Scores {
    pub sweep_id: String,
    pub name: String,
    pub metric: MetricSpec,
    pub repetitions: u32,
    pub created_at: DateTime<Utc>,
    pub cells: Vec<CellScore>,
    pub billed_total: Money,
    pub dropped: usize,
}

impl Scores {
    /// Cells best first: by work per dollar, cells without a result last.
    pub fn by_work(&self) -> Vec<&CellScore> {
        let mut v: Vec<&CellScore> = self.cells.iter().collect();
        v.sort_by(|a, b| {
            a.rank_work
                .unwrap_or(usize::MAX)
                .cmp(&b.rank_work.unwrap_or(usize::MAX))
                .then_with(|| a.cell.id.cmp(&b.cell.id))
        });
        v
    }
}

/// Scores a sweep from what the ledger recorded. `now` bills instances the ledger never
/// saw end (a crashed run) up to their last record, never past their deadline.
pub fn score(data: &SweepData) -> Result<Scores> {
    let plan: Plan = serde_json::from_value(data.sweep.plan.clone()).map_err(|e| {
        Error::unexpected(format!(
            "the plan recorded for sweep {} is unreadable: {e}",
            data.sweep.sweep_id
        ))
    })?;
    let mut cells = Vec::with_capacity(plan.cells.len());
    for cell in &plan.cells {
        let rec = data.cells.iter().find(|c| c.cell_id == cell.id);
        let insts: Vec<&SweepInstanceRecord> = data.instances.iter().filter(|i| i.cell_id == cell.id).collect();
        let mut results: Vec<_> = data
            .results
            .iter()
            .filter(|r| r.cell_id == cell.id && r.repetition < plan.repetitions)
            .collect();
        results.sort_by_key(|r| r.repetition);
        let walls: Vec<f64> = results.iter().map(|r| r.wall_ns as f64 / 1e9).collect();
        let metrics: Vec<f64> = results.iter().map(|r| r.metric).collect();
        let last_result = results.iter().map(|r| r.finished_at).max();
        let mut billed = Money::ZERO;
        let mut billed_split: Option<BilledSplit> = None;
        for i in &insts {
            let end = i
                .ended_at
                .or(last_result)
                .or(i.ready_at)
                .or(i.running_at)
                .unwrap_or(i.launched_at);
            let charge = cell.billing.charge(i.hourly_price, between(i.launched_at, end));
            billed += charge;
            let split = BilledSplit::of(i.hourly_price, i.launched_at, i.running_at, i.ready_at, end, charge);
            billed_split = Some(billed_split.map_or(split, |s| s + split));
        }
        // Boot and setup of the instance that produced results (the first one otherwise).
        let main = results
            .first()
            .and_then(|r| insts.iter().find(|i| i.instance_id == r.instance_id))
            .or(insts.first());
        let boot_s = main.and_then(|i| i.running_at.map(|r| between(i.launched_at, r).as_secs_f64()));
        let setup_s = main.and_then(|i| match (i.running_at, i.ready_at) {
            (Some(a), Some(b)) => Some(between(a, b).as_secs_f64()),
            _ => None,
        });
        let hourly = main.map_or(cell.hourly, |i| i.hourly_price);
        let wall = Stats::of(&walls);
        let metric = Stats::of(&metrics);
        let time_to_result_s = match (boot_s, setup_s, wall) {
            (Some(b), Some(s), Some(w)) => Some(b + s + w.median),
            _ => None,
        };
        let cost_per_result = time_to_result_s.map(|t| {
            cell.billing
                .charge(hourly, std::time::Duration::from_secs_f64(t.max(0.0)))
        });
        let work_per_dollar = metric.and_then(|m| work_per_dollar(&plan.metric, m.median, hourly));
        cells.push(CellScore {
            cell: cell.clone(),
            status: rec.map_or("pending".into(), |r| r.status.clone()),
            error: rec.and_then(|r| r.error.clone()),
            output_tail: rec.and_then(|r| r.output_tail.clone()),
            events: rec.map(|r| r.events.clone()).unwrap_or_default(),
            repetitions: results.len(),
            wall,
            metric,
            metric_values: metrics.clone(),
            boot_s,
            setup_s,
            time_to_result_s,
            hourly,
            billed,
            billed_split,
            cost_per_result,
            work_per_dollar,
            rank_work: None,
            rank_time: None,
            pareto: false,
        });
    }
    rank(&mut cells);
    let billed_total = cells.iter().map(|c| c.billed).sum();
    Ok(Scores {
        sweep_id: data.sweep.sweep_id.clone(),
        name: data.sweep.name.clone(),
        metric: plan.metric.clone(),
        repetitions: plan.repetitions,
        created_at: data.sweep.created_at,
        cells,
        billed_total,
        dropped: plan.dropped.len(),
    })
}

/// Units of work one dollar buys at `hourly`, given the median metric.
pub fn work_per_dollar(metric: &MetricSpec, median: f64, hourly: Money) -> Option<f64> {
    let per_hour = hourly.amount.to_f64()?;
    if per_hour <= 0.0 || median <= 0.0 {
        return None;
    }
    Some(match metric.better {
        // A rate: work per second, 3600 seconds an hour.
        Better::Higher => median * 3600.0 / per_hour,
        // Seconds per unit of work.
        Better::Lower => 3600.0 / (median * per_hour),
    })
}

fn rank(cells: &mut [CellScore]) {
    let order = |key: &dyn Fn(&CellScore) -> Option<f64>, desc: bool| -> BTreeMap<usize, usize> {
        let mut idx: Vec<(usize, f64)> = cells
            .iter()
            .enumerate()
            .filter_map(|(i, c)| key(c).map(|v| (i, v)))
            .collect();
        idx.sort_by(|a, b| if desc { b.1.total_cmp(&a.1) } else { a.1.total_cmp(&b.1) });
        idx.iter().enumerate().map(|(r, (i, _))| (*i, r + 1)).collect()
    };
    let by_work = order(&|c| c.work_per_dollar, true);
    let by_time = order(&|c| c.time_to_result_s, false);
    let points: Vec<Option<(Money, f64)>> = cells
        .iter()
        .map(|c| Some((c.cost_per_result?, c.time_to_result_s?)))
        .collect();
    for (i, c) in cells.iter_mut().enumerate() {
        c.rank_work = by_work.get(&i).copied();
        c.rank_time = by_time.get(&i).copied();
        c.pareto = match points[i] {
            None => false,
            Some((cost, t)) => !points
                .iter()
                .enumerate()
                .any(|(j, p)| j != i && p.is_some_and(|(oc, ot)| oc <= cost && ot <= t && (oc < cost || ot < t))),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::MetricSource;

    #[test]
    fn stats_median_and_spread() {
        let s = Stats::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.min, s.median, s.max, s.n), (1.0, 2.0, 3.0, 3));
        assert!((s.stdev - 1.0).abs() < 1e-12);
        assert!((s.spread_percent() - 50.0).abs() < 1e-9);
        assert_eq!(Stats::of(&[4.0, 2.0]).unwrap().median, 3.0);
        assert!(Stats::of(&[]).is_none());
    }

    #[test]
    fn work_per_dollar_reads_rates_and_times() {
        let hourly = Money::parse_usd("0.36").unwrap();
        let wall = MetricSpec {
            name: "wall time".into(),
            unit: "s".into(),
            source: MetricSource::WallTime,
            better: Better::Lower,
        };
        // 10 s a run at $0.36/h: a dollar buys 10000 s, 1000 runs.
        assert!((work_per_dollar(&wall, 10.0, hourly).unwrap() - 1000.0).abs() < 1e-9);
        let rate = MetricSpec {
            better: Better::Higher,
            ..wall
        };
        // 5 units/s for 10000 s.
        assert!((work_per_dollar(&rate, 5.0, hourly).unwrap() - 50_000.0).abs() < 1e-6);
        assert!(work_per_dollar(&rate, 5.0, Money::ZERO).is_none());
    }
}
