//! The agent's main loop: every tick (100 ms, or at once when woken: see `wake`) it checks what ends the instance, starts
//! what is due (setup after boot, command after setup, new exec requests), enforces exec
//! timeouts, and tells the control plane whether the instance is busy. It also leaves
//! the traces reconciliation needs: `agent.pid` at start, a heartbeat every second, and
//! follows `sim.db` if it is replaced (moved aside and rebuilt) under it.

use std::collections::HashSet;
use std::fs::{self, File};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::cpu::{CpuLimit, Preference};
use super::log;
use super::wake::Wake;
use super::workload::{self, Kind, Launch, Outcome, Workload};
use crate::lifecycle::{reason, Timers};
use crate::store::{self, Store};
use crate::vm::{self, VmDir, VmSpec};
use crate::wire::{self, ExecResult, ExecSpec};

const TICK: Duration = Duration::from_millis(100);
/// How often the heartbeat file's modification time is refreshed: the precision of
/// "when was this agent last alive" for a row whose agent vanished.
const HEARTBEAT: Duration = Duration::from_secs(1);
/// How long the agent keeps its instance running while its row is missing from the
/// state (which is rebuilt right after a new `sim.db` is created) before it stops.
/// How often the output logs' sizes are sampled for the chatty-log warning (herd-guest's
/// `lograte`: the same file and format as a cloud VM's watchdog writes).
const LOGRATE_EVERY: Duration = Duration::from_secs(5);
const ROW_GRACE: Duration = Duration::from_secs(5);
/// SIGTERM first; SIGKILL what is still there after this.
const KILL_GRACE: Duration = Duration::from_secs(2);

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop(_sig: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

pub(super) fn run(root: &Path, pref: Preference) -> i32 {
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(
            libc::SIGTERM,
            on_stop as extern "C" fn(libc::c_int) as libc::sighandler_t,
        );
        libc::signal(
            libc::SIGINT,
            on_stop as extern "C" fn(libc::c_int) as libc::sighandler_t,
        );
        libc::signal(
            libc::SIGHUP,
            on_stop as extern "C" fn(libc::c_int) as libc::sighandler_t,
        );
    }
    let vm = VmDir {
        root: root.to_path_buf(),
    };
    let spec: VmSpec = match fs::read(vm.spec())
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(s) => s,
        Err(e) => {
            log(&format!("cannot read {}: {e}", vm.spec().display()));
            return 1;
        }
    };
    if let Err(e) = vm::AgentPid::me().write(&vm.pid()) {
        log(&format!("cannot write {}: {e}", vm.pid().display()));
    }
    let beat = vm::private_file_options()
        .truncate(false)
        .open(vm.heartbeat())
        .map_err(|e| log(&format!("cannot create the heartbeat file: {e}")))
        .ok();
    let db_ino = db_inode(&spec.db());
    let store = match Store::open_existing(&spec.db()) {
        Ok(s) => s,
        Err(e) => {
            log(&format!("cannot open the control plane's state: {e}"));
            return 1;
        }
    };
    let cpu = CpuLimit::setup(&spec.id, spec.vcpus, spec.cpu_percent, pref);
    log(&format!(
        "{} ({}) up; cpu {}",
        spec.id,
        spec.instance_type,
        cpu.describe()
    ));
    let _ = fs::write(vm.cpu(), format!("{}\n", cpu.describe()));
    let _ = store.write(|tx| store::set_cpu_mechanism(tx, &spec.id, cpu.mechanism));
    let wake = Wake::open(&vm.wake());
    let mut s = Supervisor {
        wake,
        vm,
        spec,
        store,
        cpu,
        workloads: Vec::new(),
        seen_execs: HashSet::new(),
        setup_started: false,
        command_started: false,
        notice_written: false,
        busy: false,
        activity: 0,
        recorded: Vec::new(),
        beat,
        last_beat: None,
        lograte: None,
        db_ino,
    };
    s.run()
}

fn db_inode(path: &Path) -> Option<u64> {
    fs::metadata(path).ok().map(|m| m.ino())
}

struct Supervisor {
    /// Ends a tick early: a new exec request, a workload's end, a signal.
    wake: Wake,
    vm: VmDir,
    spec: VmSpec,
    store: Store,
    cpu: CpuLimit,
    workloads: Vec<Workload>,
    seen_execs: HashSet<String>,
    setup_started: bool,
    command_started: bool,
    notice_written: bool,
    /// What the control plane was last told.
    busy: bool,
    /// When the last workload ended (the control plane may not have heard yet).
    activity: i64,
    /// Process groups last written to the `workloads` file.
    recorded: Vec<i32>,
    /// `heartbeat`, kept open so each beat is one `futimens`.
    beat: Option<File>,
    last_beat: Option<Instant>,
    /// The last log-size sample: when, and the setup and command logs' bytes.
    lograte: Option<(Instant, i64, u64)>,
    /// The inode of `sim.db` the store has open: another one means it was replaced.
    db_ino: Option<u64>,
}

/// Why the loop stops.
enum End {
    /// The VM dir (the whole state dir, in tests) is gone: kill everything, touch nothing.
    Vanished,
    /// The control plane already ended it (terminate, or a lazy timer).
    Ended,
    /// The agent decides: record this end in the control plane.
    Due { at: i64, reason: &'static str },
}

impl Supervisor {
    fn run(&mut self) -> i32 {
        let mut db_failures = 0u32;
        let mut missing_since: Option<Instant> = None;
        let end = loop {
            if !self.vm.root.exists() {
                break End::Vanished;
            }
            self.heartbeat();
            self.sample_logs();
            self.follow_db(db_failures);
            let now = now_ms();
            let read = self.store.read(|c| store::get(c, &self.spec.id));
            let row = match read {
                Ok(Some(r)) => {
                    db_failures = 0;
                    missing_since = None;
                    Some(r)
                }
                Ok(None) => {
                    // No row: the state was replaced and not (yet) rebuilt by a provider
                    // (which does it as it opens). If that does not come, the agent records
                    // itself from its spec; if it cannot, nobody could see or stop this
                    // instance, so it stops.
                    if missing_since.get_or_insert_with(Instant::now).elapsed() >= ROW_GRACE {
                        if !self.record_itself() {
                            break End::Vanished;
                        }
                        missing_since = None;
                    }
                    None
                }
                Err(e) => {
                    db_failures += 1;
                    if db_failures == 1 || db_failures == 50 {
                        log(&format!("cannot read the control plane's state: {e}"));
                    }
                    None
                }
            };
            let Some(row) = row else {
                // `terminate` reaches an agent by signal even when no state is readable.
                if STOP.load(Ordering::SeqCst) {
                    break End::Due {
                        at: now,
                        reason: reason::AGENT_STOPPED,
                    };
                }
                // The deadline never depends on the database being readable.
                self.collect();
                let timers = Timers {
                    deadline: self.spec.deadline,
                    interrupt_at: self.spec.interrupt_at,
                    keepalive_ms: self.spec.keepalive_ms,
                    last_activity: self.spec.ready_at.max(self.activity),
                    busy: !self.workloads.is_empty(),
                };
                if let Some((at, reason)) = timers.due(now) {
                    break End::Due { at, reason };
                }
                self.wake.wait(TICK);
                continue;
            };
            if row.ended_at.is_some() {
                break End::Ended;
            }
            if STOP.load(Ordering::SeqCst) {
                break End::Due {
                    at: now,
                    reason: reason::AGENT_STOPPED,
                };
            }
            self.collect();
            let timers = Timers {
                busy: !self.workloads.is_empty(),
                last_activity: row.last_activity.max(self.activity),
                ..row.timers()
            };
            if let Some((at, why)) = timers.due(now) {
                break End::Due { at, reason: why };
            }
            self.spot_notice(now);
            if now >= self.spec.ready_at {
                self.start_due();
                self.start_execs();
            }
            self.enforce_timeouts();
            self.report();
            self.wake.wait(TICK);
        };
        self.finish(end);
        0
    }

    /// Inserts this instance's row, rebuilt from its spec, into a state that lacks it.
    fn record_itself(&mut self) -> bool {
        if self.spec.record.is_none() {
            log("my row is missing from the control plane's state and my spec cannot rebuild it: stopping");
            return false;
        }
        let mut row = store::row_from_spec(&self.spec, now_ms());
        row.pid = Some(std::process::id() as i32);
        row.cpu_mechanism = Some(self.cpu.mechanism.to_string());
        let id = self.spec.id.clone();
        let done = self.store.write(|tx| {
            if !store::exists(tx, &id)? {
                store::insert(tx, &row)?;
            }
            Ok(())
        });
        match done {
            Ok(()) => {
                log("my row was missing from the control plane's state: recorded it again from spec.json");
                self.busy = self.workloads.is_empty();
                true
            }
            Err(e) => {
                log(&format!("cannot record my row in the control plane's state: {e}"));
                false
            }
        }
    }

    /// Every [`LOGRATE_EVERY`], the two latest sizes of the output logs into
    /// `run/herd/lograte` (`t0 b0 t1 b1`, epoch seconds and bytes), written whole.
    fn sample_logs(&mut self) {
        if self.lograte.is_some_and(|(t, _, _)| t.elapsed() < LOGRATE_EVERY) {
            return;
        }
        let bytes: u64 = ["setup", "command"]
            .iter()
            .filter_map(|n| fs::metadata(self.vm.log(n)).ok())
            .map(|m| m.len())
            .sum();
        let now = now_ms() / 1000;
        if let Some((_, t0, b0)) = self.lograte {
            let file = self.vm.lograte();
            if let Some(d) = file.parent() {
                let _ = fs::create_dir_all(d);
            }
            let tmp = file.with_extension("tmp");
            let text = format!("{t0} {b0} {now} {bytes}\n");
            if fs::write(&tmp, text).and_then(|()| fs::rename(&tmp, &file)).is_err() {
                let _ = fs::remove_file(&tmp);
            }
        }
        self.lograte = Some((Instant::now(), now, bytes));
    }

    /// Refreshes the heartbeat's modification time, at most once a [`HEARTBEAT`].
    fn heartbeat(&mut self) {
        if self.last_beat.is_some_and(|t| t.elapsed() < HEARTBEAT) {
            return;
        }
        if let Some(f) = &self.beat {
            let _ = f.set_modified(std::time::SystemTime::now());
        }
        self.last_beat = Some(Instant::now());
    }

    /// Reopens `sim.db` when the file at its path is another one (a damaged state moved
    /// aside and rebuilt, a deleted one recreated) or reads keep failing, so this agent
    /// sees the rows the control plane now serves. Until the new file is ready (schema
    /// and rebuilt rows are committed together) the old handle stays.
    fn follow_db(&mut self, failures: u32) {
        let path = self.spec.db();
        let ino = db_inode(&path);
        let replaced = ino.is_some() && ino != self.db_ino;
        let retry = failures > 0 && failures.is_multiple_of(10);
        if !(replaced || retry) {
            return;
        }
        match Store::open_existing(&path) {
            Ok(s) => {
                log(&format!("reopened the control plane's state {}", path.display()));
                self.store = s;
                self.db_ino = ino;
                // The new state has not heard whether this instance is busy: report it.
                self.busy = self.workloads.is_empty();
                let _ = self
                    .store
                    .write(|tx| store::set_cpu_mechanism(tx, &self.spec.id, self.cpu.mechanism));
            }
            Err(e) if failures.is_multiple_of(50) => log(&format!("cannot reopen the control plane's state: {e}")),
            Err(_) => {}
        }
    }

    fn env(&self) -> Vec<(String, String)> {
        vec![
            ("HERD_INSTANCE_ID".into(), self.spec.id.clone()),
            ("HERD_INSTANCE_TYPE".into(), self.spec.instance_type.clone()),
            ("HERD_VCPUS".into(), self.cpu.cores.len().max(1).to_string()),
            ("HERD_SPOT_NOTICE_FILE".into(), self.vm.notice().display().to_string()),
            (vm::GUEST_ROOT_ENV.into(), self.vm.root.display().to_string()),
            // herd-env's cache of built Python environments, shared by every simulated
            // instance (a second launch with the same lock reuses it; `herd --env`).
            (
                "HERD_ENV_CACHE".into(),
                self.spec.state_dir.join("envs").display().to_string(),
            ),
        ]
    }

    /// Drops finished workloads; a successful setup lets the command start.
    fn collect(&mut self) {
        let before = self.workloads.len();
        self.workloads.retain(|w| match w.outcome() {
            None => true,
            Some(o) => {
                log(&format!(
                    "{:?} ended: exit {:?}, signal {:?}, {:.3}s{}",
                    w.kind,
                    o.exit_code,
                    o.signal,
                    o.wall.as_secs_f64(),
                    if o.timed_out { ", timed out" } else { "" }
                ));
                false
            }
        });
        if self.workloads.len() < before {
            self.activity = now_ms();
        }
    }

    fn spot_notice(&mut self, now: i64) {
        let Some(at) = self.spec.interrupt_at else { return };
        if self.notice_written || now < at - self.spec.notice_ms {
            return;
        }
        self.notice_written = true;
        let body = format!(
            "{{\"action\": \"terminate\", \"time\": \"{}\"}}\n",
            store::from_ms(at).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
        match vm::write_atomic(&self.vm.notice(), body.as_bytes()) {
            Ok(()) => log(&format!(
                "spot interruption notice: reclaimed at {}",
                store::from_ms(at)
            )),
            Err(e) => log(&format!("cannot write the spot notice: {e}")),
        }
    }

    /// Setup once the instance is up, then the command once setup succeeded.
    fn start_due(&mut self) {
        if !self.setup_started {
            self.setup_started = true;
            if let Some(setup) = self.spec.setup.clone() {
                self.start_phase(Kind::Setup, "setup", &setup);
                return;
            }
        }
        if self.command_started || self.workloads.iter().any(|w| w.kind == Kind::Setup) {
            return;
        }
        if self.spec.setup.is_some() {
            let ok = fs::read(self.vm.result("setup"))
                .ok()
                .and_then(|b| serde_json::from_slice::<ExecResult>(&b).ok())
                .is_some_and(|r| r.exit_code == Some(0));
            if !ok {
                if !self.command_started {
                    log("setup failed: the command will not run");
                }
                self.command_started = true;
                return;
            }
        }
        self.command_started = true;
        if let Some(command) = self.spec.command.clone() {
            self.start_phase(Kind::Command, "command", &command);
        }
    }

    fn start_phase(&mut self, kind: Kind, name: &str, command: &str) {
        let log_path = self.vm.log(name);
        let result_path = self.vm.result(name);
        if let Some(d) = log_path.parent() {
            let _ = std::fs::create_dir_all(d);
        }
        let opened = vm::private_file_options()
            .append(true)
            .open(&log_path)
            .and_then(|f| Ok((f.try_clone()?, f)));
        let (out, err) = match opened {
            Ok(p) => p,
            Err(e) => {
                log(&format!("cannot open {}: {e}", log_path.display()));
                return;
            }
        };
        let launch = Launch {
            kind: kind.clone(),
            command,
            cwd: &self.vm.disk(),
            env: self.env(),
            stdout: out,
            stderr: err,
            timeout: None,
        };
        self.spawn_or_fail(launch, &result_path, &format!("{kind:?}"));
    }

    /// Starts a workload under the instance's CPU limits. If it cannot start, its result
    /// says so (exit 127), so whoever waits on `result_path` is never left hanging.
    fn spawn_or_fail(&mut self, launch: Launch<'_>, result_path: &Path, label: &str) {
        let rp = result_path.to_path_buf();
        let wake = self.wake.clone();
        let on_exit = move |o: &Outcome| {
            write_result(&rp, o);
            // The next step (the command after setup, idle reporting) need not wait a tick.
            wake.poke();
        };
        match workload::spawn(launch, self.cpu.hook(), on_exit) {
            Ok(w) => {
                self.cpu.adopt(w.pgid);
                log(&format!("{label} started (pgid {})", w.pgid));
                self.workloads.push(w);
                self.throttle_now();
            }
            Err(e) => {
                log(&format!("{label}: cannot start: {e}"));
                write_result(result_path, &Outcome::not_started());
            }
        }
    }

    /// Starts every exec request not seen before.
    fn start_execs(&mut self) {
        let Ok(entries) = fs::read_dir(self.vm.exec()) else {
            return;
        };
        let present: HashSet<String> = entries.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect();
        // Forget requests whose directories the control plane removed.
        self.seen_execs.retain(|n| present.contains(n));
        let mut names: Vec<String> = present.into_iter().filter(|n| !self.seen_execs.contains(n)).collect();
        // Names start with zero-padded nanoseconds: this is submission order.
        names.sort();
        for name in names {
            let dir = self.vm.exec().join(&name);
            let Ok(bytes) = fs::read(wire::request_file(&dir)) else {
                continue; // not written yet
            };
            self.seen_execs.insert(name.clone());
            if wire::result_file(&dir).exists() {
                continue;
            }
            let result_path = wire::result_file(&dir);
            let req: ExecSpec = match serde_json::from_slice(&bytes) {
                Ok(r) => r,
                Err(e) => {
                    log(&format!("exec {name}: unreadable request: {e}"));
                    write_result(&result_path, &Outcome::not_started());
                    continue;
                }
            };
            let files = create_private(&wire::stdout_file(&dir))
                .and_then(|o| Ok((o, create_private(&wire::stderr_file(&dir))?)));
            let (out, err) = match files {
                Ok(f) => f,
                Err(e) => {
                    log(&format!("exec {name}: {e}"));
                    write_result(&result_path, &Outcome::not_started());
                    continue;
                }
            };
            let mut env = self.env();
            env.extend(req.env.iter().cloned());
            let launch = Launch {
                kind: Kind::Exec(name.clone()),
                command: &req.command,
                cwd: &self.vm.disk(),
                env,
                stdout: out,
                stderr: err,
                timeout: req.timeout_ms.map(Duration::from_millis),
            };
            self.spawn_or_fail(launch, &result_path, &format!("exec {name}"));
        }
    }

    /// Hands a new workload to the duty cycle at once rather than at the next tick.
    fn throttle_now(&self) {
        let groups: Vec<i32> = self.workloads.iter().map(|w| w.pgid).collect();
        self.cpu.set_groups(&groups);
    }

    fn enforce_timeouts(&mut self) {
        for w in &self.workloads {
            if w.outcome().is_none() && w.timeout.is_some_and(|t| w.started.elapsed() >= t) {
                w.time_out();
                vm::signal_group(w.pgid, libc::SIGKILL);
                vm::signal_group(w.pgid, libc::SIGCONT);
            }
        }
    }

    /// Tells the control plane when the instance turns busy or idle (the idle clock
    /// starts when the last workload ends), and records the running process groups.
    fn report(&mut self) {
        let groups: Vec<i32> = self.workloads.iter().map(|w| w.pgid).collect();
        if groups != self.recorded {
            let body: String = groups.iter().map(|g| format!("{g}\n")).collect();
            let _ = vm::write_atomic(&self.vm.workloads(), body.as_bytes());
            self.cpu.set_groups(&groups);
            self.recorded = groups;
        }
        let busy = !self.workloads.is_empty();
        if busy != self.busy {
            let now = now_ms();
            if self
                .store
                .write(|tx| store::touch(tx, &self.spec.id, now, Some(busy)))
                .is_ok()
            {
                self.busy = busy;
            }
        }
    }

    /// Kills the workloads (TERM, then KILL after a grace), records the end, deletes the
    /// volume unless `terminate` owns that, and removes the cgroup.
    fn finish(&mut self, end: End) {
        self.cpu.release();
        for w in &self.workloads {
            vm::signal_group(w.pgid, libc::SIGTERM);
            vm::signal_group(w.pgid, libc::SIGCONT);
        }
        let t0 = Instant::now();
        while self.workloads.iter().any(|w| w.outcome().is_none()) && t0.elapsed() < KILL_GRACE {
            std::thread::sleep(Duration::from_millis(20));
        }
        for w in &self.workloads {
            // The group may outlive its leader (background children): kill it anyway.
            vm::signal_group(w.pgid, libc::SIGKILL);
        }
        let t1 = Instant::now();
        while self.workloads.iter().any(|w| w.outcome().is_none()) && t1.elapsed() < KILL_GRACE {
            std::thread::sleep(Duration::from_millis(10));
        }
        self.cpu.remove();
        let mut why = match end {
            End::Vanished => {
                log("the VM directory is gone: stopping");
                return;
            }
            End::Ended => "ended".to_string(),
            End::Due { at, reason } => {
                let _ = self.store.write(|tx| store::end(tx, &self.spec.id, at, reason));
                reason.to_string()
            }
        };
        // Whoever ended it first (this agent, a lazy timer, `terminate`) wrote the reason.
        if let Ok(Some(r)) = self.store.read(|c| store::get(c, &self.spec.id)) {
            if let Some(recorded) = r.state_reason {
                why = recorded;
            }
        }
        if why != reason::TERMINATED {
            // Ended by the cloud itself: its volume goes with it.
            match fs::remove_dir_all(self.vm.disk()) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => log(&format!("cannot delete the volume: {e}")),
            }
            let now = now_ms();
            let _ = self.store.write(|tx| store::volume_deleted(tx, &self.spec.id, now));
        }
        let _ = fs::remove_file(self.vm.workloads());
        let _ = fs::write(self.vm.ended(), format!("{why}\n"));
        log(&format!("{} ended: {why}", self.spec.id));
    }
}

/// A fresh output file only the user can read.
fn create_private(path: &Path) -> std::io::Result<File> {
    vm::private_file_options().truncate(true).open(path)
}

fn write_result(path: &Path, o: &Outcome) {
    let r = ExecResult {
        exit_code: o.exit_code,
        signal: o.signal,
        wall_ns: o.wall.as_nanos() as u64,
        timed_out: o.timed_out,
    };
    if let Ok(bytes) = serde_json::to_vec(&r) {
        let _ = vm::write_atomic(path, &bytes);
    }
}
