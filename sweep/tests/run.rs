//! The runner end to end on the simulator's virtual mode (virtual clock, declared work):
//! every cell terminates what it started, failures keep their reason and output, and a
//! sweep run again resumes.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use herd_core::{Cloud, ErrorKind, Launcher, ListRequest, VirtualClock};
use herd_ledger::Ledger;
use herd_local::{Faults, LocalBuilder, LocalProvider};
use herd_sweep::plan::Cell;
use herd_sweep::{cancel_pair, plan, score, CellStatus, Launchers, NoProgress, Progress, Runner, Spec};

struct Sim {
    provider: Arc<LocalProvider>,
    launchers: Launchers,
    ledger: Arc<Ledger>,
}

fn sim(faults: Faults) -> Sim {
    let clock = VirtualClock::at_epoch();
    let provider = Arc::new(
        LocalBuilder::default()
            .in_memory()
            .processes(false)
            .virtual_exec(true)
            .clock(Arc::new(clock.clone()))
            .seed(7)
            .faults(faults)
            .build()
            .unwrap(),
    );
    let launcher = Launcher::builder(provider.clone())
        .clock(Arc::new(clock))
        .seed(3)
        .build();
    Sim {
        provider,
        launchers: BTreeMap::from([(Cloud::Local, launcher)]),
        ledger: Arc::new(Ledger::in_memory().unwrap()),
    }
}

fn spec(extra_workload: &str, matrix: &str) -> Spec {
    let text = format!(
        "name = \"vt\"\nrepetitions = 3\ntimeout = \"30m\"\nconcurrency = 3\nbudget = \"5\"\n\
         [workload]\nrun = \"python3 work.py\"\nsetup = \"true\"\nfiles = [\"work.py\"]\nvirtual_work = \"20s\"\n{extra_workload}\n\
         [matrix]\n{matrix}\n"
    );
    Spec::parse_with(&text, "vt.toml", |_| Ok(b"print(1)".to_vec())).unwrap()
}

fn runner(s: &Sim, progress: Arc<dyn Progress>) -> Runner {
    Runner {
        launchers: s.launchers.clone(),
        ledger: s.ledger.clone(),
        progress,
        owner: "herd".into(),
    }
}

async fn live(s: &Sim) -> usize {
    s.launchers[&Cloud::Local]
        .list(&ListRequest::new().live())
        .await
        .unwrap()
        .len()
}

#[tokio::test]
async fn a_sweep_runs_every_cell_terminates_everything_and_ranks_the_bigger_type_faster() {
    let s = sim(Faults::default());
    let sp = spec(
        "",
        "types = [\"l1.small\", \"l1.large\", \"c1.xlarge\"]\nregions = [\"local-east-1\", \"local-eu-1\"]",
    );
    let p = plan(&sp, &s.launchers).unwrap();
    assert_eq!(p.cells.len(), 6);
    let (_tx, rx) = cancel_pair();
    let sum = runner(&s, Arc::new(NoProgress)).run(&sp, &p, rx).await.unwrap();
    assert_eq!(sum.count(CellStatus::Done), 6, "{:#?}", sum.outcomes);
    assert_eq!(live(&s).await, 0, "nothing is left running");
    assert_eq!(sum.swept_up, 0, "every cell cleaned up after itself");

    let data = s.ledger.sweep(&p.sweep_id).unwrap().unwrap();
    assert_eq!(data.results.len(), 6 * 3);
    assert!(data
        .instances
        .iter()
        .all(|i| i.ended_at.is_some() && i.ready_at.is_some()));
    let sc = score(&data).unwrap();
    let get = |t: &str, r: &str| {
        sc.cells
            .iter()
            .find(|c| c.cell.instance_type == t && c.cell.region == r)
            .unwrap()
    };
    let (small, large) = (get("l1.small", "local-east-1"), get("l1.large", "local-east-1"));
    // The declared model: 20 s of work at 25 % and 100 % of a core.
    assert_eq!(small.wall.unwrap().median, 80.0);
    assert_eq!(large.wall.unwrap().median, 20.0);
    assert!(large.time_to_result_s.unwrap() < small.time_to_result_s.unwrap());
    assert!(large.billed > herd_core::Money::ZERO);
    // Same work per dollar for the l1 sizes (price and speed both scale 4x) in one region;
    // eu is dearer, so east beats it.
    assert!(get("l1.large", "local-east-1").work_per_dollar > get("l1.large", "local-eu-1").work_per_dollar);
    assert!(sc.cells.iter().any(|c| c.pareto));
    assert_eq!(sc.by_work()[0].rank_work, Some(1));
}

#[tokio::test]
async fn a_sweep_run_again_skips_finished_repetitions() {
    let s = sim(Faults::default());
    let sp = spec("", "types = [\"l1.small\", \"l1.large\"]");
    let p = plan(&sp, &s.launchers).unwrap();

    /// Cancels the sweep after the fourth finished repetition (a Ctrl-C).
    struct CancelAfter(AtomicU32, Mutex<Option<herd_sweep::Cancel>>);
    impl Progress for CancelAfter {
        fn repetition(&self, _: &Cell, _: u32, _: Duration) {
            if self.0.fetch_add(1, Ordering::SeqCst) + 1 == 4 {
                if let Some(tx) = self.1.lock().unwrap().as_ref() {
                    let _ = tx.send(true);
                }
            }
        }
    }
    let (tx, rx) = cancel_pair();
    let cancel = Arc::new(CancelAfter(AtomicU32::new(0), Mutex::new(Some(tx))));
    let first = runner(&s, cancel.clone()).run(&sp, &p, rx).await.unwrap();
    assert!(first.cancelled);
    assert!(first.count(CellStatus::Cancelled) >= 1, "{:#?}", first.outcomes);
    assert_eq!(live(&s).await, 0, "a cancelled sweep leaves nothing running");
    let done_before = s.ledger.sweep(&p.sweep_id).unwrap().unwrap().results.len();
    assert!((4..6).contains(&done_before), "{done_before}");

    let (_tx, rx) = cancel_pair();
    let second = runner(&s, Arc::new(NoProgress)).run(&sp, &p, rx).await.unwrap();
    assert_eq!(second.count(CellStatus::Done), 2);
    assert_eq!(second.skipped_repetitions() as usize, done_before);
    let ran: u32 = second.outcomes.iter().map(|o| o.ran).sum();
    assert_eq!(ran as usize, 6 - done_before, "only what was missing ran");
    assert_eq!(s.ledger.sweep(&p.sweep_id).unwrap().unwrap().results.len(), 6);

    // A third run has nothing to do and launches nothing.
    let calls = s.provider.api_calls();
    let (_tx, rx) = cancel_pair();
    let third = runner(&s, Arc::new(NoProgress)).run(&sp, &p, rx).await.unwrap();
    assert_eq!(third.skipped_repetitions(), 6);
    assert!(s.provider.api_calls() - calls <= 2, "only the final clean-up listed");
}

#[tokio::test]
async fn a_full_zone_falls_back_to_the_next_and_says_so() {
    let s = sim(Faults {
        capacity: BTreeMap::from([("local-east-1a".to_string(), 0)]),
        ..Faults::default()
    });
    let sp = spec("", "types = [\"l1.large\"]");
    let p = plan(&sp, &s.launchers).unwrap();
    let (_tx, rx) = cancel_pair();
    let sum = runner(&s, Arc::new(NoProgress)).run(&sp, &p, rx).await.unwrap();
    assert_eq!(sum.count(CellStatus::Done), 1);
    let ev = &sum.outcomes[0].events;
    assert!(ev.iter().any(|e| e.contains("local-east-1a")), "{ev:?}");
    let data = s.ledger.sweep(&p.sweep_id).unwrap().unwrap();
    assert_eq!(data.instances[0].zone, "local-east-1b");
    assert_eq!(data.cells[0].events, *ev, "the fallback is recorded");
}

#[tokio::test]
async fn no_capacity_anywhere_fails_the_cell_with_the_zones_tried() {
    let s = sim(Faults {
        capacity: ["local-east-1a", "local-east-1b", "local-east-1c"]
            .into_iter()
            .map(|z| (z.to_string(), 0))
            .collect(),
        ..Faults::default()
    });
    let sp = spec("", "types = [\"l1.large\", \"l1.small\"]");
    let p = plan(&sp, &s.launchers).unwrap();
    let (_tx, rx) = cancel_pair();
    let sum = runner(&s, Arc::new(NoProgress)).run(&sp, &p, rx).await.unwrap();
    assert_eq!(sum.count(CellStatus::Failed), 2);
    let err = sum.outcomes[0].error.as_deref().unwrap();
    assert!(err.contains("no capacity") && err.contains("local-east-1c"), "{err}");
    let sc = score(&s.ledger.sweep(&p.sweep_id).unwrap().unwrap()).unwrap();
    assert!(
        sc.cells.iter().all(|c| c.status == "failed" && c.error.is_some()),
        "failed cells are reported"
    );
}

#[tokio::test]
async fn a_metric_that_never_matches_fails_the_cell_with_the_output() {
    let s = sim(Faults::default());
    let sp = spec(
        "[workload.metric]\nregex = 'throughput: ([0-9.]+)'\nbetter = \"higher\"",
        "types = [\"l1.large\"]",
    );
    let p = plan(&sp, &s.launchers).unwrap();
    let (_tx, rx) = cancel_pair();
    let sum = runner(&s, Arc::new(NoProgress)).run(&sp, &p, rx).await.unwrap();
    let o = &sum.outcomes[0];
    assert_eq!(o.status, CellStatus::Failed);
    assert!(o.error.as_deref().unwrap().contains("matched nothing"), "{o:?}");
    assert!(o.output_tail.as_deref().unwrap().contains("herd-virtual-exec"), "{o:?}");
    assert_eq!(live(&s).await, 0);
    let data = s.ledger.sweep(&p.sweep_id).unwrap().unwrap();
    assert!(data.cells[0]
        .output_tail
        .as_deref()
        .unwrap()
        .contains("herd-virtual-exec"));
}

#[tokio::test]
async fn a_workload_longer_than_the_timeout_times_out_and_is_terminated() {
    let s = sim(Faults::default());
    let mut sp = spec("", "types = [\"l1.small\"]");
    // 20 s of work at 25 % is 80 s; the cell has 2 minutes including a 20-60 s boot.
    sp.timeout = Duration::from_secs(120);
    let p = plan(&sp, &s.launchers).unwrap();
    let (_tx, rx) = cancel_pair();
    let sum = runner(&s, Arc::new(NoProgress)).run(&sp, &p, rx).await.unwrap();
    let o = &sum.outcomes[0];
    assert_eq!(o.status, CellStatus::Failed);
    assert!(o.error.as_deref().unwrap().contains("timeout"), "{o:?}");
    assert_eq!(live(&s).await, 0);
}

#[tokio::test]
async fn a_budget_too_small_launches_nothing() {
    let s = sim(Faults::default());
    let mut sp = spec("", "types = [\"c1.2xlarge\"]\nregions = [\"local-*\"]");
    sp.budget = herd_core::Money::parse_usd("0.01").unwrap();
    let p = plan(&sp, &s.launchers).unwrap();
    let (_tx, rx) = cancel_pair();
    let e = runner(&s, Arc::new(NoProgress)).run(&sp, &p, rx).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BudgetExceeded);
    assert_eq!(s.provider.api_calls(), 0);
}

#[tokio::test]
async fn spot_interruptions_requeue_the_repetition_on_a_new_instance() {
    let s = sim(Faults {
        spot_interruption_mean: Some(Duration::from_secs(60)),
        spot_notice: Some(Duration::from_secs(30)),
        ..Faults::default()
    });
    let mut sp = spec("", "types = [\"l1.large\"]\nmarkets = [\"spot\"]");
    sp.max_interruptions = 50;
    let p = plan(&sp, &s.launchers).unwrap();
    let (_tx, rx) = cancel_pair();
    let sum = runner(&s, Arc::new(NoProgress)).run(&sp, &p, rx).await.unwrap();
    let o = &sum.outcomes[0];
    assert!(o.events.iter().any(|e| e.contains("spot interruption")), "{o:?}");
    assert_eq!(o.status, CellStatus::Done, "{o:?}");
    let data = s.ledger.sweep(&p.sweep_id).unwrap().unwrap();
    assert_eq!(data.results.len(), 3);
    assert!(data.instances.len() > 1, "the cell moved to new instances");
    assert_eq!(live(&s).await, 0);
}

#[tokio::test]
async fn the_report_is_written_in_every_format() {
    let s = sim(Faults::default());
    let sp = spec("", "types = [\"l1.small\", \"l1.large\", \"c1.xlarge\", \"m1.large\"]\nregions = [\"local-east-1\", \"local-west-1\"]");
    let p = plan(&sp, &s.launchers).unwrap();
    let (_tx, rx) = cancel_pair();
    runner(&s, Arc::new(NoProgress)).run(&sp, &p, rx).await.unwrap();
    let sc = score(&s.ledger.sweep(&p.sweep_id).unwrap().unwrap()).unwrap();
    let dir = std::env::var_os("HERD_SWEEP_TEST_REPORT_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| tempfile::tempdir().unwrap().keep());
    let files = herd_sweep::report::write_all(&sc, &dir).unwrap();
    // The page, CSV, JSON, and four charts as SVG and PNG.
    assert_eq!(files.len(), 11);
    let png = std::fs::read(dir.join("scatter.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    let csv = std::fs::read_to_string(dir.join("report.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 8);
    let html = std::fs::read_to_string(dir.join("index.html")).unwrap();
    assert!(html.contains("<svg") && html.contains("l1.large@local-east-1"));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(json["cells"].as_array().unwrap().len(), 8);
    let rows = herd_sweep::report::table(&sc);
    assert_eq!(rows[0][0], "1");
}
