//! A fixed sweep, built in code, for the report's tests and the bench: what the ledger
//! would hold after a sweep over the four clouds (local, aws, gcp, azure), both CPU
//! architectures, with one failed cell (when there are more than two) and one combination
//! dropped in planning. Deterministic: the same `n` gives the same sweep, byte for byte.

use chrono::{DateTime, Duration as Span, TimeZone, Utc};
use herd_core::{Arch, BillingRule, Cloud, Market, Money, PurchaseOption};
use herd_ledger::{SweepCellRecord, SweepData, SweepInstanceRecord, SweepRecord, SweepResultRecord};
use rust_decimal::Decimal;

use crate::plan::{Cell, Dropped, Plan};
use crate::score::Scores;
use crate::spec::{Better, MetricSource, MetricSpec};

const CLOUDS: [(Cloud, &str, [&str; 2]); 4] = [
    (Cloud::Local, "local-east-1", ["l1.large", "a1.large"]),
    (Cloud::Aws, "us-east-1", ["m6i.large", "m6g.large"]),
    (Cloud::Gcp, "us-central1", ["n2-standard-2", "t2a-standard-2"]),
    (Cloud::Azure, "eastus", ["Standard_D2s_v5", "Standard_D2ps_v5"]),
];

/// The index of the cell that fails (when the sweep has more than two cells).
pub const FAILED: usize = 2;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 2, 9, 30, 0)
        .single()
        .expect("a valid instant")
}

/// A small deterministic generator (an LCG): values in [0, 1).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The sweep of `n` cells as the ledger records it.
pub fn sweep_data(n: usize) -> SweepData {
    let mut rng = Rng(n as u64 * 7919 + 17);
    let sweep_id = format!("fixture-{n}");
    let metric = MetricSpec {
        name: "throughput".into(),
        unit: "MB/s".into(),
        source: MetricSource::Regex("throughput: ([0-9.]+) MB/s".into()),
        better: Better::Higher,
    };
    let repetitions = 3u32;
    let mut cells = Vec::with_capacity(n);
    let mut cell_recs = Vec::new();
    let mut instances = Vec::new();
    let mut results = Vec::new();
    for i in 0..n {
        let (cloud, region, types) = CLOUDS[i % 4];
        let arm = (i + i / 4) % 2 == 1;
        let base = types[usize::from(arm)];
        let instance_type = if i < 8 {
            base.to_string()
        } else {
            format!("{base}-{}", i / 8)
        };
        let vcpus = 2u32 << (i % 3);
        // About a cent and a half to five cents a vCPU-hour, arm a little cheaper.
        let per_vcpu = [0.03, 0.042, 0.034, 0.04][i % 4] * if arm { 0.8 } else { 1.0 };
        let hourly_milli = (f64::from(vcpus) * per_vcpu * (0.8 + 0.4 * rng.next()) * 1e4) as i64;
        let hourly = Money::usd(Decimal::new(hourly_milli, 4));
        let market = if i % 5 == 4 { Market::Spot } else { Market::OnDemand };
        let id = format!("c{i:03}-{}", instance_type.to_lowercase().replace(['_', '.'], "-"));
        let cell = Cell {
            id: id.clone(),
            cloud,
            region: region.into(),
            zones: vec![format!("{region}a")],
            instance_type: instance_type.clone(),
            family: base.split(['.', '-', '_']).next().unwrap_or(base).into(),
            vcpus,
            memory_mib: u64::from(vcpus) * 4096,
            arch: if arm { Arch::Arm64 } else { Arch::X86_64 },
            gpu: None,
            market,
            hourly,
            on_demand: hourly,
            billing: BillingRule::for_cloud(cloud),
            max_instances: 1,
            worst_case: hourly.per_hour_for_seconds(3600),
        };
        cells.push(cell);
        let launched = t0() + Span::seconds(i as i64 * 7);
        let boot = 15 + (rng.next() * 45.0) as i64;
        let setup = 3 + (rng.next() * 20.0) as i64;
        let running = launched + Span::seconds(boot);
        let ready = running + Span::seconds(setup);
        let instance_id = format!("i-{i:04}");
        let failed = n > 2 && i == FAILED;
        // Faster types do more MB/s; arm a little cheaper and a little slower.
        let speed = f64::from(vcpus) * (if arm { 90.0 } else { 110.0 }) * (0.6 + rng.next());
        let mut at = ready;
        // The failed cell's first run printed no metric: nothing was recorded.
        let reps = if failed { 0 } else { repetitions };
        for r in 0..reps {
            let noise = 0.9 + rng.next() * 0.2;
            let mbps = (speed * noise * 10.0).round() / 10.0;
            let wall_s = 2000.0 / mbps;
            at += Span::milliseconds((wall_s * 1000.0) as i64);
            results.push(SweepResultRecord {
                sweep_id: sweep_id.clone(),
                cell_id: id.clone(),
                repetition: r,
                instance_id: instance_id.clone(),
                wall_ns: (wall_s * 1e9) as u64,
                metric: mbps,
                finished_at: at,
            });
        }
        let ended = at + Span::seconds(2);
        instances.push(SweepInstanceRecord {
            sweep_id: sweep_id.clone(),
            cell_id: id.clone(),
            instance_id,
            cloud,
            region: region.into(),
            zone: format!("{region}a"),
            instance_type,
            purchase: if market == Market::Spot {
                PurchaseOption::Spot
            } else {
                PurchaseOption::OnDemand
            },
            hourly_price: hourly,
            launched_at: launched,
            running_at: Some(running),
            ready_at: Some(ready),
            ended_at: Some(ended),
            end_reason: Some(if failed { "failed" } else { "done" }.into()),
        });
        cell_recs.push(SweepCellRecord {
            sweep_id: sweep_id.clone(),
            cell_id: id,
            status: if failed { "failed" } else { "done" }.into(),
            error: failed.then(|| "metric regex `throughput: ([0-9.]+) MB/s` matched nothing in the output".into()),
            output_tail: failed.then(|| "compressing 2000 MB\nKilled (out of memory)".into()),
            events: Vec::new(),
            updated_at: ended,
        });
    }
    let plan = Plan {
        sweep_id: sweep_id.clone(),
        name: "fixture".into(),
        worst_case: cells.iter().map(|c| c.worst_case).sum(),
        cells,
        dropped: vec![Dropped {
            cloud: Cloud::Gcp,
            region: "europe-west4".into(),
            instance_type: "t2a-standard-2".into(),
            market: Market::Spot,
            reason: "not offered in europe-west4".into(),
        }],
        repetitions,
        timeout: std::time::Duration::from_secs(3600),
        concurrency: 4,
        metric,
        budget: Money::usd(Decimal::new(1000, 0)),
    };
    SweepData {
        sweep: SweepRecord {
            sweep_id,
            name: plan.name.clone(),
            owner: "fixture".into(),
            plan: serde_json::to_value(&plan).expect("a plan serializes"),
            created_at: t0(),
            updated_at: t0() + Span::hours(1),
        },
        cells: cell_recs,
        instances,
        results,
    }
}

/// The fixed sweep of `n` cells, scored.
pub fn scores(n: usize) -> Scores {
    crate::score::score(&sweep_data(n)).expect("the fixture scores")
}
