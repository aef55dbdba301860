//! The simulator's safety rules with real agents: nothing billed that is not running
//! (rows whose process is gone are reconciled, a launcher killed mid-launch included),
//! nothing running that the state does not show (a lost or damaged `sim.db` is rebuilt
//! from the VM directories), private files, and terminate refusing other owners.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use common::processes_under;
use herd_core::{ErrorKind, InstanceState, ListRequest, Provider, TerminateOutcome};
use herd_local::{AgentCommand, Faults, LocalProvider};

fn fast() -> Faults {
    Faults {
        boot_delay: Some((Duration::from_millis(200), Duration::from_millis(200))),
        ..Faults::default()
    }
}

fn provider(dir: &Path) -> Arc<LocalProvider> {
    Arc::new(
        LocalProvider::builder()
            .state_dir(dir)
            .agent(AgentCommand::new(env!("CARGO_BIN_EXE_herd-vm")))
            .seed(42)
            .faults(fast())
            .build()
            .unwrap(),
    )
}

fn vm(dir: &Path, id: &str) -> PathBuf {
    dir.join("vms").join(id)
}

/// Agents (by command line) of one VM, zombies excluded.
fn agent_of(dir: &Path, id: &str) -> Option<i32> {
    let needle = vm(dir, id).display().to_string();
    processes_under(dir)
        .into_iter()
        .find(|(_, c)| c.contains(&needle) && c.contains(" run ") && !c.ends_with("[Z]"))
        .map(|(p, _)| p)
}

async fn eventually(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn launch(p: &LocalProvider, launch_id: &str, count: u32, owner: &str) -> Vec<String> {
    let mut req = common::request(launch_id, "l1.small", count, Utc::now(), Duration::from_secs(60));
    req.tags.insert("herd-owner".into(), owner.into());
    req.command = Some("sleep 60".into());
    p.launch(&req).await.unwrap().into_iter().map(|i| i.id).collect()
}

async fn all(p: &LocalProvider) -> Vec<herd_core::Instance> {
    p.list(&ListRequest::new()).await.unwrap()
}

fn kill9(pid: i32) {
    // SAFETY: plain syscall.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
}

fn db(dir: &Path) -> rusqlite::Connection {
    let c = rusqlite::Connection::open(dir.join("sim.db")).unwrap();
    c.busy_timeout(Duration::from_secs(10)).unwrap();
    c
}

/// A process that has exited (and been reaped): its pid names nothing, or something else.
fn dead_pid() -> i32 {
    let mut c = std::process::Command::new("true").spawn().unwrap();
    let pid = c.id() as i32;
    c.wait().unwrap();
    pid
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_without_a_live_agent_are_ended_when_it_was_last_seen() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let p = provider(dir);
    let ids = launch(&p, "l-lost", 5, "tester").await;
    for id in &ids {
        let (d, id) = (dir.to_path_buf(), id.clone());
        eventually("the agents", Duration::from_secs(5), move || {
            agent_of(&d, &id).is_some()
        })
        .await;
    }
    let launched = all(&p).await[0].launched_at.timestamp_millis();
    // Let the heartbeats show the agents alive for a while.
    tokio::time::sleep(Duration::from_millis(1200)).await;

    // 0: its agent killed with -9 (no chance to record anything).
    let a0 = agent_of(dir, &ids[0]).unwrap();
    kill9(a0);
    // 1: launched by a process that died before starting its agent: no pid, no traces.
    // 2: the same, but the launcher still lives (this test process): left alone.
    // 3: the launcher's pid is alive but is another process (other start time): reaped.
    // 4: its recorded pid is now another program (pid reuse): reaped.
    for id in &ids[1..4] {
        kill9(agent_of(dir, id).unwrap());
        for f in ["agent.pid", "heartbeat", "ended"] {
            let _ = std::fs::remove_file(vm(dir, id).join(f));
        }
    }
    let me = std::process::id() as i32;
    let my_start: i64 = std::fs::read_to_string("/proc/self/stat")
        .unwrap()
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .nth(19)
        .unwrap()
        .parse()
        .unwrap();
    let sleeper = std::process::Command::new("sleep").arg("30").spawn().unwrap();
    let c = db(dir);
    let set = |id: &str, pid: Option<i32>, lp: Option<i32>, ls: Option<i64>| {
        c.execute(
            "UPDATE instances SET pid = ?2, launcher_pid = ?3, launcher_start = ?4 WHERE id = ?1",
            rusqlite::params![id, pid, lp, ls],
        )
        .unwrap();
    };
    set(&ids[1], None, Some(dead_pid()), None);
    set(&ids[2], None, Some(me), Some(my_start));
    set(&ids[3], None, Some(me), Some(my_start - 1));
    kill9(agent_of(dir, &ids[4]).unwrap());
    set(&ids[4], Some(sleeper.id() as i32), None, None);
    let killed_at = Utc::now();

    let got = all(&p).await;
    let by = |id: &str| got.iter().find(|i| i.id == id).unwrap().clone();
    let i0 = by(&ids[0]);
    assert_eq!(
        (i0.state, i0.state_reason.as_deref()),
        (InstanceState::Terminated, Some("lost: no process"))
    );
    let end0 = i0.ended_at.unwrap();
    assert!(
        end0 <= killed_at && end0 >= killed_at - chrono::Duration::milliseconds(2500),
        "ended when last seen alive (heartbeat), not now and not at launch: {end0} vs kill at {killed_at}"
    );
    for id in [&ids[1], &ids[3]] {
        let i = by(id);
        assert_eq!(
            (i.state, i.state_reason.as_deref()),
            (InstanceState::Terminated, Some("lost: never started")),
            "{id}"
        );
        assert_eq!(i.ended_at.unwrap().timestamp_millis(), launched, "never billed");
    }
    let i2 = by(&ids[2]);
    assert_eq!(
        i2.state,
        InstanceState::Running,
        "a live launcher's row is not reaped: {i2:?}"
    );
    let i4 = by(&ids[4]);
    assert_eq!(i4.state_reason.as_deref(), Some("lost: no process"), "{i4:?}");
    // The pid-reusing program was not signalled.
    let mut sleeper = sleeper;
    assert!(sleeper.try_wait().unwrap().is_none(), "a foreign process was killed");
    sleeper.kill().unwrap();
    let _ = sleeper.wait();
    // Lost instances' volumes go with them (as when a cloud instance dies).
    assert!(!vm(dir, &ids[0]).join("disk").exists());
    assert!(p.leftovers(None).await.unwrap().is_empty());

    // Once this "launcher" is gone the last one is reconciled too (by another shell).
    set(&ids[2], None, Some(dead_pid()), None);
    let other = provider(dir);
    let i2 = all(&other).await.into_iter().find(|i| i.id == ids[2]).unwrap();
    assert_eq!(i2.state_reason.as_deref(), Some("lost: never started"));
    let t = other.terminate(&ids).await.unwrap();
    assert!(t.iter().all(|r| r.outcome == TerminateOutcome::AlreadyGone), "{t:?}");
    eventually("nothing left", Duration::from_secs(5), || {
        processes_under(dir).is_empty()
    })
    .await;
}

/// The launcher role of the kill -9 trials: launch 40 instances, then wait to be killed.
const CHILD_DIR: &str = "HERD_SAFETY_TEST_LAUNCHER_DIR";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_a_launcher_mid_launch_leaves_nothing_billed_that_is_not_running() {
    if let Some(dir) = std::env::var_os(CHILD_DIR) {
        // Re-executed by the parent below: be the launcher it kills.
        let p = provider(Path::new(&dir));
        launch(&p, "l-killed", 40, "tester").await;
        println!("launched");
        tokio::time::sleep(Duration::from_secs(60)).await;
        return;
    }
    let exe = std::env::current_exe().unwrap();
    // Delays after the rows appear: before any agent, among the spawns, after them.
    for (trial, delay_ms) in [0u64, 3, 10, 25, 60, 400].into_iter().enumerate() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let mut child = std::process::Command::new(&exe)
            .args([
                "--exact",
                "kill_9_of_a_launcher_mid_launch_leaves_nothing_billed_that_is_not_running",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_DIR, dir)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let db_path = dir.join("sim.db");
        let t0 = Instant::now();
        loop {
            let rows = rusqlite::Connection::open_with_flags(&db_path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .and_then(|c| c.query_row("SELECT count(*) FROM instances", [], |r| r.get::<_, i64>(0)))
                .unwrap_or(0);
            if rows > 0 {
                break;
            }
            assert!(t0.elapsed() < Duration::from_secs(20), "the child never launched");
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_millis(delay_ms));
        // Another shell looks while the launch is under way: nothing of a live
        // launcher may be reaped.
        let p = provider(dir);
        let mid = all(&p).await;
        assert!(
            mid.iter().all(|i| i.state != InstanceState::Terminated),
            "trial {trial}: a live launcher's rows were reaped: {:?}",
            mid.iter()
                .filter(|i| i.state == InstanceState::Terminated)
                .collect::<Vec<_>>()
        );
        kill9(child.id() as i32);
        let _ = child.wait();
        let after = all(&p).await;
        assert_eq!(after.len(), 40, "trial {trial}");
        // Every instance is either shown as running with its agent alive, or ended and
        // billed only for time it ran.
        for i in &after {
            match i.state {
                InstanceState::Pending | InstanceState::Running => {
                    assert!(
                        agent_of(dir, &i.id).is_some(),
                        "trial {trial}: {} shown running with no agent",
                        i.id
                    )
                }
                InstanceState::Terminated => {
                    let why = i.state_reason.as_deref().unwrap_or_default();
                    assert!(why.starts_with("lost: "), "trial {trial}: {i:?}");
                    if why == "lost: never started" {
                        assert_eq!(i.ended_at, Some(i.launched_at), "trial {trial}");
                    }
                    assert!(i.ended_at.unwrap() <= Utc::now());
                }
                other => panic!("trial {trial}: {other:?}"),
            }
        }
        // Agents whose row was reconciled stop by themselves; the rest are stopped by
        // terminate, and then nothing is left.
        let running: Vec<String> = after
            .iter()
            .filter(|i| i.state != InstanceState::Terminated)
            .map(|i| i.id.clone())
            .collect();
        let ended: Vec<String> = after
            .iter()
            .filter(|i| i.state == InstanceState::Terminated)
            .map(|i| i.id.clone())
            .collect();
        {
            let d = dir.to_path_buf();
            eventually("agents of ended rows to stop", Duration::from_secs(8), move || {
                ended.iter().all(|id| agent_of(&d, id).is_none())
            })
            .await;
        }
        let t = p.terminate(&running).await.unwrap();
        assert!(
            t.iter().all(|r| r.outcome == TerminateOutcome::Terminated),
            "trial {trial}"
        );
        eventually("nothing left", Duration::from_secs(8), || {
            processes_under(dir).is_empty()
        })
        .await;
        let billed = all(&p).await;
        assert!(billed.iter().all(|i| i.state == InstanceState::Terminated));
        eprintln!(
            "trial {trial} (+{delay_ms} ms): {} running kept, {} reconciled",
            running.len(),
            40 - running.len()
        );
    }
}

/// Which files make up the state, as a (path, bytes) list, for a before/after check.
fn db_files(dir: &Path) -> Vec<PathBuf> {
    ["sim.db", "sim.db-wal", "sim.db-shm"]
        .iter()
        .map(|f| dir.join(f))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_empty_or_damaged_state_never_hides_running_instances() {
    for how in ["deleted", "emptied", "damaged"] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let p = provider(dir);
        let ids = launch(&p, "l-state", 2, "tester").await;
        let dead = launch(&p, "l-dead", 1, "tester").await;
        for id in ids.iter().chain(&dead) {
            let (d, id) = (dir.to_path_buf(), id.clone());
            eventually("the agents", Duration::from_secs(5), move || {
                agent_of(&d, &id).is_some()
            })
            .await;
        }
        let before = all(&p).await;
        // One agent dies with the state: its disk stays, a leftover to find.
        kill9(agent_of(dir, &dead[0]).unwrap());
        drop(p);
        match how {
            "deleted" => {
                for f in db_files(dir) {
                    let _ = std::fs::remove_file(f);
                }
            }
            "emptied" => {
                for f in db_files(dir) {
                    let _ = std::fs::remove_file(f);
                }
                std::fs::write(dir.join("sim.db"), b"").unwrap();
            }
            _ => {
                for f in db_files(dir) {
                    let _ = std::fs::remove_file(f);
                }
                std::fs::write(dir.join("sim.db"), vec![0x5au8; 4096]).unwrap();
            }
        }
        let p = provider(dir);
        let w = p.warnings().join("\n");
        assert!(
            w.contains("2 running") && w.contains(&ids[0]) && w.contains("rebuilt"),
            "{how}: {w}"
        );
        assert!(w.contains("1 whose agent is gone"), "{how}: {w}");
        if how == "damaged" {
            assert!(w.contains("moved it aside"), "{w}");
            let aside = std::fs::read_dir(dir)
                .unwrap()
                .filter_map(|e| e.ok())
                .find(|e| e.file_name().to_string_lossy().starts_with("sim.db.corrupt-"))
                .expect("the damaged file is kept");
            assert_eq!(std::fs::read(aside.path()).unwrap(), vec![0x5au8; 4096]);
        }
        let now = all(&p).await;
        for id in &ids {
            let i = now.iter().find(|i| &i.id == id).unwrap();
            let was = before.iter().find(|b| &b.id == id).unwrap();
            assert!(
                matches!(i.state, InstanceState::Running | InstanceState::Pending),
                "{how}: {i:?}"
            );
            assert_eq!(
                (
                    &i.tags,
                    i.hourly_price,
                    &i.region,
                    &i.zone,
                    i.deadline,
                    i.launch_id.as_str()
                ),
                (
                    &was.tags,
                    was.hourly_price,
                    &was.region,
                    &was.zone,
                    was.deadline,
                    was.launch_id.as_str()
                ),
                "{how}: rebuilt as it was"
            );
        }
        let d = now.iter().find(|i| i.id == dead[0]).unwrap();
        assert_eq!(d.state_reason.as_deref(), Some("lost: no process"), "{how}");
        let left = p.leftovers(Some("tester")).await.unwrap();
        assert_eq!(left.len(), 1, "{how}: the dead one's volume: {left:?}");
        p.reap(&left).await.unwrap();
        // A second open adopts nothing more and warns no more.
        assert!(provider(dir).warnings().is_empty(), "{how}");
        // The kill switch works on the rebuilt state.
        let t = p.terminate(&ids).await.unwrap();
        assert!(t.iter().all(|r| r.outcome == TerminateOutcome::Terminated), "{how}");
        eventually("nothing left", Duration::from_secs(8), || {
            processes_under(dir).is_empty()
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_follows_a_rebuilt_state() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let p = provider(dir);
    let mut req = common::request("l-follow", "l1.small", 1, Utc::now(), Duration::from_secs(60));
    req.keepalive = Some(Duration::from_secs(30));
    req.command = Some("sleep 60".into());
    let id = p.launch(&req).await.unwrap()[0].id.clone();
    {
        // The agent, and the pid file it writes once started (the rebuild finds it by
        // that file; under load the process shows before the file does).
        let (d, id) = (dir.to_path_buf(), id.clone());
        eventually("the agent and its agent.pid", Duration::from_secs(10), move || {
            agent_of(&d, &id).is_some() && vm(&d, &id).join("agent.pid").exists()
        })
        .await;
    }
    drop(p);
    for f in db_files(dir) {
        let _ = std::fs::remove_file(f);
    }
    let p = provider(dir);
    assert!(!p.warnings().is_empty());
    // The agent reopens the new state and tells it the instance is busy (its command runs),
    // and it stays up: it is not mistaken for a vanished instance.
    let c = db(dir);
    eventually(
        "the agent to report busy to the new state",
        Duration::from_secs(5),
        || {
            c.query_row("SELECT busy FROM instances WHERE id = ?1", [&id], |r| {
                r.get::<_, bool>(0)
            })
            .unwrap_or(false)
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(
        agent_of(dir, &id).is_some(),
        "the agent stopped after the state was rebuilt"
    );
    assert_eq!(all(&p).await[0].state, InstanceState::Running);
    drop((p, c));

    // Replaced by an old copy that never knew it, and no herd command runs: after a grace
    // the agent records itself again rather than run unseen or stop.
    let blank = tempfile::tempdir().unwrap();
    drop(provider(blank.path()));
    for f in db_files(dir) {
        let _ = std::fs::remove_file(f);
    }
    std::fs::copy(blank.path().join("sim.db"), dir.join("sim.db")).unwrap();
    let c = db(dir);
    eventually("the agent to record itself", Duration::from_secs(10), || {
        c.query_row(
            "SELECT count(*) FROM instances WHERE id = ?1 AND pid IS NOT NULL",
            [&id],
            |r| r.get::<_, i64>(0),
        )
        .unwrap_or(0)
            == 1
    })
    .await;
    let p = provider(dir);
    assert!(p.warnings().is_empty(), "{:?}", p.warnings());
    let i = all(&p).await.remove(0);
    assert_eq!((i.state, &i.tags), (InstanceState::Running, &req.tags));
    assert!(agent_of(dir, &id).is_some());
    p.terminate(std::slice::from_ref(&id)).await.unwrap();
    eventually("nothing left", Duration::from_secs(8), || {
        processes_under(dir).is_empty()
    })
    .await;
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vm_directories_and_specs_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("state");
    let p = provider(&dir);
    let id = launch(&p, "l-private", 1, "tester").await.remove(0);
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("sim.db")), 0o600);
    assert_eq!(mode(&dir.join("vms")), 0o700);
    assert_eq!(mode(&vm(&dir, &id)), 0o700);
    assert_eq!(mode(&vm(&dir, &id).join("disk")), 0o700);
    assert_eq!(mode(&vm(&dir, &id).join("spec.json")), 0o600);
    assert_eq!(mode(&vm(&dir, &id).join("agent.log")), 0o600);
    {
        let (d, id) = (dir.clone(), id.clone());
        eventually("agent.pid", Duration::from_secs(5), move || {
            vm(&d, &id).join("agent.pid").exists()
        })
        .await;
    }
    assert_eq!(mode(&vm(&dir, &id).join("agent.pid")), 0o600);
    {
        let (d, id) = (dir.clone(), id.clone());
        eventually("the command's log", Duration::from_secs(5), move || {
            vm(&d, &id).join("var/log/herd-command.log").exists() && vm(&d, &id).join("heartbeat").exists()
        })
        .await;
    }
    assert_eq!(mode(&vm(&dir, &id).join("heartbeat")), 0o600);
    assert_eq!(mode(&vm(&dir, &id).join("var/log/herd-command.log")), 0o600);
    // Left wider by an older herd: tightened when the state is opened.
    for d in [dir.clone(), dir.join("vms"), vm(&dir, &id)] {
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::set_permissions(vm(&dir, &id).join("spec.json"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let other = provider(&dir);
    for d in [dir.clone(), dir.join("vms"), vm(&dir, &id)] {
        assert_eq!(mode(&d), 0o700, "{}", d.display());
    }
    assert_eq!(mode(&vm(&dir, &id).join("spec.json")), 0o600);
    other.terminate(&[id]).await.unwrap();
    eventually("nothing left", Duration::from_secs(8), || {
        processes_under(&dir).is_empty()
    })
    .await;
}

#[tokio::test]
async fn terminate_refuses_another_owners_instances() {
    let tmp = tempfile::tempdir().unwrap();
    let plain = LocalProvider::builder()
        .state_dir(tmp.path())
        .processes(false)
        .build()
        .unwrap();
    let mine = launch_virtual(&plain, "l-mine", Some("Ann@Example.com")).await;
    let bobs = launch_virtual(&plain, "l-bob", Some("bob")).await;
    let untagged = launch_virtual(&plain, "l-none", None).await;
    let ann = LocalProvider::builder()
        .state_dir(tmp.path())
        .processes(false)
        .owner("Ann@Example.com")
        .build()
        .unwrap();
    let e = ann.terminate(&[mine.clone(), bobs.clone()]).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    assert!(
        e.message().contains(&format!("{bobs} belongs to herd owner `bob`")),
        "{e}"
    );
    assert!(e.message().contains("ann-example-com"), "names who we are: {e}");
    assert!(!e.message().contains(&mine), "{e}");
    assert!(e.hint().is_some());
    let e = ann.terminate(std::slice::from_ref(&untagged)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied);
    assert!(e.message().contains("has no herd tags"), "{e}");
    // Refused before any effect: nothing was terminated, not even the caller's own.
    assert!(all(&ann).await.iter().all(|i| i.state != InstanceState::Terminated));
    let t = ann.terminate(std::slice::from_ref(&mine)).await.unwrap();
    assert_eq!(t[0].outcome, TerminateOutcome::Terminated);
    // An unknown id is still simply gone; without an owner the simulator terminates anything.
    let t = ann.terminate(&["i-00000000000000000".to_string()]).await.unwrap();
    assert_eq!(t[0].outcome, TerminateOutcome::AlreadyGone);
    let t = plain.terminate(&[bobs, untagged]).await.unwrap();
    assert!(t.iter().all(|r| r.outcome == TerminateOutcome::Terminated));
}

async fn launch_virtual(p: &LocalProvider, launch_id: &str, owner: Option<&str>) -> String {
    let mut req = common::request(launch_id, "l1.small", 1, Utc::now(), Duration::from_secs(600));
    match owner {
        Some(o) => {
            req.tags.insert("herd-owner".into(), herd_core::tags::sanitize_value(o));
        }
        None => {
            req.tags.remove("herd-owner");
        }
    }
    p.launch(&req).await.unwrap().remove(0).id
}
