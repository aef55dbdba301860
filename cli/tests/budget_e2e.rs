//! The daily budget holds under concurrency, end to end: ten `herd launch` processes (the
//! real binary, on the simulator) started at once against a day that fits exactly four.
//! Before the reservation was one transaction, ten at once reserved up to 2.08 times the
//! limit (each read the day's total before any of the others wrote). Twenty rounds, each
//! under its own owner (so its own day's budget) in one sandbox; the first round also
//! races the creation of the ledger itself.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};

use herd_core::journal::day_start;
use herd_core::{Journal, Money};
use herd_ledger::{LaunchFilter, Ledger};
use herd_testkit::cli::Herd;
use rust_decimal::Decimal;
use serde_json::Value;

const HERD: &str = env!("CARGO_BIN_EXE_herd");
const ROUNDS: usize = 20;
const AT_ONCE: usize = 10;
const FITS: usize = 4;

/// herd-testkit's CLI harness, with the owners the rounds used; dropping it stops
/// whatever a round left running, owner by owner.
struct Sandbox {
    herd: Herd,
    owners: std::cell::RefCell<Vec<String>>,
}

impl Sandbox {
    fn new() -> Self {
        // Quick boots; nothing here waits for them (`--no-wait`). The harness's own
        // clean-up would act for the default owner only: this one's Drop does each.
        let herd = Herd::with_config(HERD, "[simulator.faults]\nboot_delay = [\"100ms\", \"200ms\"]\n").no_cleanup();
        Sandbox {
            herd,
            owners: Default::default(),
        }
    }

    fn ledger(&self) -> PathBuf {
        self.herd.ledger()
    }

    fn cmd(&self, owner: &str, per_day: Option<Money>, args: &[&str]) -> Command {
        let mut c = self.herd.cmd(args);
        c.env("HERD_OWNER", owner).stdout(Stdio::piped()).stderr(Stdio::piped());
        if let Some(m) = per_day {
            c.env("HERD_BUDGET_PER_DAY", m.amount.to_string());
        }
        c
    }

    fn down_all(&self, owner: &str) -> Output {
        self.cmd(owner, None, &["down", "--all", "--yes"]).output().unwrap()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        for o in self.owners.borrow().iter() {
            let _ = self.down_all(o);
        }
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The worst case of one launch as the plan prices it (what the ledger reserves).
fn worst_case(sb: &Sandbox, args: &[&str]) -> Money {
    let mut a = args.to_vec();
    a.extend(["--dry-run", "--json"]);
    let out = sb.cmd("probe", None, &a).output().unwrap();
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let amount = v["plan"]["worst_case"]["amount"]
        .as_str()
        .unwrap_or_else(|| panic!("no worst case in {v}"));
    Money::parse_usd(amount).unwrap()
}

#[test]
fn ten_concurrent_launches_never_reserve_past_the_daily_budget() {
    let sb = Sandbox::new();
    let launch = ["launch", "l1.small", "-n", "1", "--deadline", "1h", "--no-wait"];
    let one = worst_case(&sb, &launch);
    assert!(one > Money::ZERO);
    let per_day = one.times(Decimal::from(FITS as u64));

    let mut round = 0;
    let mut attempts = 0;
    while round < ROUNDS {
        attempts += 1;
        assert!(attempts <= ROUNDS + 2, "the UTC day kept changing under the test");
        let owner = format!("budget-e2e-{attempts}");
        sb.owners.borrow_mut().push(owner.clone());
        let day = chrono::Utc::now().date_naive();
        let children: Vec<Child> = (0..AT_ONCE)
            .map(|_| sb.cmd(&owner, Some(per_day), &launch).spawn().unwrap())
            .collect();
        let outs: Vec<Output> = children.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
        let down = sb.down_all(&owner);
        assert!(down.status.success(), "down --all: {}", text(&down.stderr));
        if chrono::Utc::now().date_naive() != day {
            // Launches on both sides of midnight UTC rightly draw on two days' budgets.
            continue;
        }

        let ok = outs.iter().filter(|o| o.status.success()).count();
        let refused: Vec<String> = outs
            .iter()
            .filter(|o| !o.status.success())
            .map(|o| text(&o.stderr))
            .collect();
        let l = Ledger::open(&sb.ledger()).unwrap();
        let rows: Vec<_> = l
            .launches(&LaunchFilter {
                owner: Some(owner.clone()),
                ..Default::default()
            })
            .unwrap();
        let reserved: Money = rows.iter().map(|r| r.reservation).sum();
        assert!(
            reserved <= per_day,
            "round {round}: {reserved} reserved against a daily budget of {per_day} ({} launches recorded)",
            rows.len()
        );
        assert_eq!(
            ok,
            FITS,
            "round {round}: {ok} of {AT_ONCE} launched; refused:\n{}",
            refused.join("\n")
        );
        assert_eq!(rows.len(), FITS, "round {round}: a refused launch leaves no row");
        for e in &refused {
            assert!(
                e.contains("daily budget of"),
                "round {round}: refused for another reason:\n{e}"
            );
            assert!(e.contains("hint: "), "round {round}: {e}");
        }
        let today = day_start(chrono::Utc::now());
        assert!(l.committed_since(&owner, today).unwrap() <= per_day, "round {round}");
        // `down --all` ended everything this round launched.
        let live = l
            .instances(&herd_ledger::InstanceFilter {
                owner: Some(owner.clone()),
                live_only: true,
                ..Default::default()
            })
            .unwrap();
        assert!(live.is_empty(), "round {round}: still live after down --all: {live:?}");
        round += 1;
    }
}
