//! Budget reservations: `Journal::reserve` checks the day's total and records the launch
//! in one transaction, so concurrent launches, in threads or processes, never reserve
//! past the daily limit.

mod common;

use std::sync::{Arc, Barrier};

use common::*;
use herd_core::{ErrorKind, InstanceState, Journal, LaunchId, Money};
use herd_ledger::{LaunchFilter, Ledger};

#[test]
fn a_reservation_that_fits_is_recorded_and_one_that_does_not_is_refused_with_the_numbers() {
    let l = Ledger::in_memory().unwrap();
    // Yesterday's spend and someone else's never count.
    l.reserve(&intent("l-old", "alice", "c", t(-2, 0), "45"), usd("50"))
        .unwrap();
    l.reserve(&intent("l-1", "alice", "c", t(9, 0), "30"), usd("50"))
        .unwrap();
    l.reserve(&intent("l-bob", "bob", "c", t(9, 0), "45"), usd("50"))
        .unwrap();
    l.reserve(&intent("l-2", "alice", "c", t(10, 0), "20"), usd("50"))
        .unwrap();

    let e = l
        .reserve(&intent("l-3", "alice", "c", t(11, 0), "0.01"), usd("50"))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BudgetExceeded);
    assert_eq!(
        e.message(),
        "worst case $0.0100 plus $50.00 already committed today is over the daily budget of $50.00"
    );
    assert!(e.hint().unwrap().contains("budget.per_day"), "{:?}", e.hint());
    let ids: Vec<String> = l
        .launches(&LaunchFilter::default())
        .unwrap()
        .into_iter()
        .map(|r| r.launch_id.to_string())
        .collect();
    assert!(
        !ids.contains(&"l-3".to_string()),
        "a refused launch leaves no row: {ids:?}"
    );
    assert_eq!(l.committed_since("alice", t(0, 0)).unwrap(), usd("50"));
    assert_eq!(l.committed_since("alice", t(-24, 0)).unwrap(), usd("95"));
}

#[test]
fn what_a_launch_counts_follows_committed_since() {
    let l = Ledger::in_memory().unwrap();
    // Failed before starting anything: counts nothing.
    l.reserve(&intent("l-failed", "alice", "c", t(1, 0), "40"), usd("50"))
        .unwrap();
    l.launch_failed(&LaunchId::new("l-failed").unwrap(), "no capacity")
        .unwrap();
    // Ran 1 h at $2/h and ended: counts $2, not its $40 reservation.
    l.reserve(&intent("l-done", "alice", "c", t(2, 0), "40"), usd("50"))
        .unwrap();
    l.instances_seen(&[ended(
        inst("i-1", "l-done", InstanceState::Running, t(2, 0), "2"),
        t(3, 0),
    )])
    .unwrap();
    l.reserve(&intent("l-big", "alice", "c", t(4, 0), "48"), usd("50"))
        .unwrap();
    assert_eq!(l.committed_since("alice", t(0, 0)).unwrap(), usd("50"));
    assert!(l
        .reserve(&intent("l-more", "alice", "c", t(5, 0), "0.01"), usd("50"))
        .is_err());
}

#[test]
fn a_resume_is_not_counted_twice_and_a_different_request_under_its_id_is_refused() {
    let l = Ledger::in_memory().unwrap();
    let first = intent("l-1", "alice", "c", t(9, 0), "30");
    l.reserve(&first, usd("50")).unwrap();
    // The same request again (a retry of the whole launch): already reserved.
    l.reserve(&first, usd("50")).unwrap();
    assert_eq!(l.committed_since("alice", t(0, 0)).unwrap(), usd("30"));
    // A failed launch resumed reserves again, without counting its old self.
    l.launch_failed(&LaunchId::new("l-1").unwrap(), "boom").unwrap();
    l.reserve(&first, usd("30")).unwrap();
    assert_eq!(l.committed_since("alice", t(0, 0)).unwrap(), usd("30"));

    let mut other = intent("l-1", "alice", "c", t(9, 0), "30");
    other.fingerprint = "another request".into();
    assert_eq!(l.reserve(&other, usd("50")).unwrap_err().kind(), ErrorKind::Conflict);
}

/// Ten ledgers on one file, as ten herd processes hold it, reserving at the same
/// instant against a day that fits four: exactly four get in, every time.
#[test]
fn concurrent_reservations_on_one_file_never_pass_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.db");
    drop(Ledger::open(&path).unwrap());
    for round in 0..10 {
        let barrier = Arc::new(Barrier::new(10));
        let handles: Vec<_> = (0..10)
            .map(|n| {
                let path = path.clone();
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    let l = Ledger::open(&path).unwrap();
                    let owner = format!("owner-{round}");
                    barrier.wait();
                    l.reserve(
                        &intent(&format!("l-{round}-{n}"), &owner, "c", t(9, 0), "12.5"),
                        usd("50"),
                    )
                })
            })
            .collect();
        let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let ok = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(ok, 4, "round {round}: {results:?}");
        for e in results.iter().filter_map(|r| r.as_ref().err()) {
            assert_eq!(e.kind(), ErrorKind::BudgetExceeded, "round {round}: {e}");
        }
        let l = Ledger::open(&path).unwrap();
        let total = l.committed_since(&format!("owner-{round}"), t(0, 0)).unwrap();
        assert_eq!(total, usd("50"), "round {round}");
        assert!(total <= usd("50"));
    }
    let total: Money = Ledger::open(&path)
        .unwrap()
        .launches(&LaunchFilter::default())
        .unwrap()
        .iter()
        .map(|l| l.reservation)
        .sum();
    assert_eq!(total, usd("500"), "4 x $12.50 in each of 10 rounds");
}
