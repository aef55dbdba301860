//! The database file: migrations, damaged and newer files, sharing and locking.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use herd_core::{ErrorKind, InstanceState, Journal};
use herd_ledger::{InstanceFilter, LaunchFilter, Ledger, LedgerOptions};
use rusqlite::Connection;

fn opts(busy_timeout: Duration) -> LedgerOptions {
    LedgerOptions {
        busy_timeout,
        ..Default::default()
    }
}

fn user_version(path: &Path) -> u32 {
    Connection::open(path)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn a_fresh_ledger_is_created_and_migrated_to_the_latest_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deep/er/ledger.db");
    let l = Ledger::open(&path).unwrap();
    assert_eq!(l.path(), Some(path.as_path()));
    assert!(path.exists());
    assert!(Ledger::schema_version() >= 1);
    assert_eq!(user_version(&path), Ledger::schema_version());
    let c = Connection::open(&path).unwrap();
    let mode: String = c.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
    assert_eq!(mode, "wal");
    let tables: Vec<String> = c
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        tables,
        [
            "instances",
            "launches",
            "state_changes",
            "sweep_cells",
            "sweep_instances",
            "sweep_results",
            "sweeps"
        ]
    );

    // Reopening keeps what was recorded.
    l.launch_started(&intent("l-1", "alice", "c", t(0, 0), "1")).unwrap();
    drop(l);
    let again = Ledger::open(&path).unwrap();
    assert_eq!(again.launches(&LaunchFilter::default()).unwrap().len(), 1);
    assert_eq!(user_version(&path), Ledger::schema_version());
}

#[test]
fn a_ledger_from_a_newer_herd_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.db");
    drop(Ledger::open(&path).unwrap());
    let newer = Ledger::schema_version() + 7;
    Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", newer)
        .unwrap();
    let before = std::fs::read(&path).unwrap();

    let e = Ledger::open(&path).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConfigInvalid);
    let expected = format!(
        "ledger {} was written by a newer herd (schema v{newer}, this herd knows v{})",
        path.display(),
        Ledger::schema_version()
    );
    assert_eq!(e.message(), expected);
    assert!(e.hint().unwrap().contains("HERD_LEDGER"), "{:?}", e.hint());
    assert_eq!(std::fs::read(&path).unwrap(), before);
    assert_eq!(user_version(&path), newer);
}

#[test]
fn a_file_that_is_not_a_ledger_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.db");
    let junk: Vec<u8> = (0..8192u32).map(|i| (i * 7 + 3) as u8).collect();
    std::fs::write(&path, &junk).unwrap();

    let e = Ledger::open(&path).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConfigInvalid);
    assert!(!e.is_temporary());
    assert!(e.message().contains(&path.display().to_string()), "{e}");
    let hint = e.hint().unwrap();
    assert!(hint.contains("move it aside") && hint.contains("herd ls"), "{hint}");
    assert_eq!(std::fs::read(&path).unwrap(), junk, "never overwritten");
}

#[test]
fn a_ledger_damaged_after_opening_reports_it_on_use() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.db");
    {
        let l = Ledger::open(&path).unwrap();
        let many: Vec<_> = (0..500)
            .map(|n| inst(&format!("i-{n}"), "l-1", InstanceState::Running, t(0, 0), "1"))
            .collect();
        l.instances_seen(&many).unwrap();
    }
    // Fold the WAL into the file, then scribble over everything after the first page.
    Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    assert!(bytes.len() > 3 * 4096);
    for b in &mut bytes[4096..] {
        *b = 0xA5;
    }
    std::fs::write(&path, &bytes).unwrap();

    let e = match Ledger::open(&path) {
        Err(e) => e,
        Ok(l) => l.instances(&InstanceFilter::default()).unwrap_err(),
    };
    assert_eq!(e.kind(), ErrorKind::ConfigInvalid, "{e:?}");
    assert!(e.hint().unwrap().contains("move it aside"));
}

#[test]
fn two_handles_on_one_file_see_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.db");
    let a = Ledger::open(&path).unwrap();
    let b = Ledger::open(&path).unwrap();
    a.launch_started(&intent("l-1", "alice", "c", t(0, 0), "1")).unwrap();
    a.instances_seen(&[inst("i-1", "l-1", InstanceState::Running, t(0, 0), "1")])
        .unwrap();
    assert_eq!(b.launches(&LaunchFilter::default()).unwrap().len(), 1);
    assert_eq!(b.instances(&InstanceFilter::default()).unwrap()[0].id, "i-1");
    b.instances_ended(&["i-1".into()], t(1, 0), "terminated").unwrap();
    assert_eq!(
        a.instances(&InstanceFilter::default()).unwrap()[0].state,
        InstanceState::Terminated
    );
}

#[test]
fn a_ledger_held_by_another_writer_is_unavailable_after_the_busy_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.db");
    let timeout = Duration::from_millis(150);
    let l = Ledger::open_with(&path, opts(timeout)).unwrap();

    let mut other = Connection::open(&path).unwrap();
    let tx = other
        .transaction_with_behavior(rusqlite::TransactionBehavior::Exclusive)
        .unwrap();
    // Readers are not blocked (WAL)...
    assert!(l.launches(&LaunchFilter::default()).unwrap().is_empty());
    // ...writers wait the busy timeout, then give up with a temporary error.
    let started = Instant::now();
    let e = l
        .launch_started(&intent("l-1", "alice", "c", t(0, 0), "1"))
        .unwrap_err();
    let waited = started.elapsed();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e:?}");
    assert!(e.is_temporary());
    assert!(e.message().contains("busy") && e.message().contains(&path.display().to_string()));
    assert!(e.hint().is_some());
    assert!(waited >= timeout, "gave up after {waited:?}, before the busy timeout");
    assert!(waited < timeout * 20, "waited {waited:?}, far past the busy timeout");

    // Once the other writer is done, the same handle works again.
    tx.rollback().unwrap();
    l.launch_started(&intent("l-1", "alice", "c", t(0, 0), "1")).unwrap();
}

#[test]
fn opening_a_ledger_locked_by_another_process_is_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.db");
    // A rollback-journal database held exclusively: even reading the schema version waits.
    let mut other = Connection::open(&path).unwrap();
    other
        .execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
        .unwrap();
    let tx = other
        .transaction_with_behavior(rusqlite::TransactionBehavior::Exclusive)
        .unwrap();
    tx.execute("INSERT INTO t VALUES (2)", []).unwrap();
    let e = Ledger::open_with(&path, opts(Duration::from_millis(100))).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e:?}");
    assert!(e.is_temporary());
    drop(tx);
}

#[test]
fn in_memory_ledgers_have_no_path_and_work() {
    let l = Ledger::in_memory().unwrap();
    assert_eq!(l.path(), None);
    l.launch_started(&intent("l-1", "alice", "c", t(0, 0), "1")).unwrap();
    assert_eq!(l.launches(&LaunchFilter::default()).unwrap().len(), 1);
}

#[test]
fn another_programs_database_is_not_taken_over() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.db");
    Connection::open(&path)
        .unwrap()
        .execute_batch("CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('keep me');")
        .unwrap();
    let before = std::fs::read(&path).unwrap();
    let e = Ledger::open(&path).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConfigInvalid);
    assert!(e.message().contains("not a herd ledger"), "{e}");
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

/// The hint every unusable ledger gets: how to move it aside, and that the kill switch
/// does not need it.
fn assert_move_aside_hint(e: &herd_core::Error, path: &Path) {
    let hint = e.hint().unwrap();
    assert!(
        hint.contains(&format!("mv {} {}.bad", path.display(), path.display())),
        "{hint}"
    );
    assert!(hint.contains("herd down --all"), "{hint}");
}

#[test]
fn an_empty_ledger_file_is_refused_not_taken_as_new() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.db");
    std::fs::write(&path, b"").unwrap();
    let e = Ledger::open(&path).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConfigInvalid);
    assert!(!e.is_temporary());
    assert!(e.message().contains(&path.display().to_string()), "{e}");
    assert!(e.message().contains("empty (0 bytes)"), "{e}");
    assert_move_aside_hint(&e, &path);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 0, "left as it was");
    assert!(!dir.path().join("ledger.db-wal").exists());
}

#[test]
fn short_foreign_and_non_file_ledgers_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let short = dir.path().join("short.db");
    std::fs::write(&short, b"SQLite").unwrap();
    let e = Ledger::open(&short).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConfigInvalid);
    assert!(e.message().contains("not a readable herd ledger"), "{e}");
    assert_move_aside_hint(&e, &short);
    assert_eq!(std::fs::read(&short).unwrap(), b"SQLite");

    let text = dir.path().join("text.db");
    std::fs::write(&text, "owner = \"alice\"\n[budget]\nper_day = 50\n").unwrap();
    let e = Ledger::open(&text).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConfigInvalid);
    assert_move_aside_hint(&e, &text);

    let a_dir = dir.path().join("dir.db");
    std::fs::create_dir(&a_dir).unwrap();
    let e = Ledger::open(&a_dir).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConfigInvalid);
    assert!(e.message().contains("is not a file"), "{e}");
}

#[test]
fn many_herds_creating_the_ledger_at_once_end_with_one_good_ledger() {
    for _ in 0..5 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new/ledger.db");
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));
        let handles: Vec<_> = (0..8)
            .map(|n| {
                let (path, barrier) = (path.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    let l = Ledger::open(&path)?;
                    l.launch_started(&intent(&format!("l-{n}"), "alice", "c", t(0, 0), "1"))
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap().unwrap();
        }
        let l = Ledger::open(&path).unwrap();
        assert_eq!(
            l.launches(&LaunchFilter::default()).unwrap().len(),
            8,
            "no herd's launch was lost"
        );
        let litter: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".new-"))
            .collect();
        assert!(litter.is_empty(), "{litter:?}");
    }
}

#[cfg(unix)]
mod permissions {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_new_ledger_is_0600_in_a_0700_directory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("share/herd/ledger.db");
        let l = Ledger::open(&path).unwrap();
        l.launch_started(&intent("l-1", "alice", "c", t(0, 0), "1")).unwrap();
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        assert_eq!(mode(&dir.path().join("share")), 0o700, "every directory herd made");
        let wal = dir.path().join("share/herd/ledger.db-wal");
        assert!(wal.exists());
        assert_eq!(mode(&wal), 0o600, "SQLite's files beside it too");
    }

    #[test]
    fn an_existing_ledger_wider_than_0600_is_tightened() {
        let dir = tempfile::tempdir().unwrap();
        let herd_dir = dir.path().join("herd");
        let path = herd_dir.join("ledger.db");
        drop(Ledger::open(&path).unwrap());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::set_permissions(&herd_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let l = Ledger::open(&path).unwrap();
        l.launch_started(&intent("l-1", "alice", "c", t(0, 0), "1")).unwrap();
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&herd_dir), 0o700, "herd's own directory is tightened");
    }

    #[test]
    fn a_directory_the_user_chose_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let project = dir.path().join("project");
        std::fs::create_dir(&project).unwrap();
        std::fs::set_permissions(&project, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = project.join("ledger.db");
        drop(Ledger::open(&path).unwrap());
        assert_eq!(mode(&project), 0o755);
        assert_eq!(mode(&path), 0o600);
    }
}
