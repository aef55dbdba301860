//! The control plane's side of `exec` (one SSH session): drop a request into the VM's
//! `exec/<name>/` directory, let the agent run it in the instance's volume under the
//! instance's CPU limits, and wait for its result file (the files are `wire`'s).
//!
//! It needs the state and the clock only, passed in by the provider: this module does
//! not know the provider, and the agent does not know this module.

use std::fs;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use herd_core::{Error, ErrorKind, ExecOutput, ExecRequest, OutputSink, OutputStream, OutputTail, Result, SharedClock};

use crate::error;
use crate::store::{self, Row, Store};
use crate::vm::{self, VmDir};
use crate::wire::{request_file, result_file, stderr_file, stdout_file, ExecResult, ExecSpec};

/// How often the provider looks for the result: an eighth of the time waited so far,
/// within these bounds, so a short command is seen within about 1 ms of its end and a
/// long one costs few reads.
const POLL_FIRST: Duration = Duration::from_millis(1);
const POLL_MAX: Duration = Duration::from_millis(15);
/// How long past its own timeout an exec may go unanswered before herd gives up on the agent.
const AGENT_GRACE: Duration = Duration::from_secs(10);

/// A fresh request directory, named so that names sort in submission order and never
/// repeat (an agent remembers the names it has run): nanoseconds, pid, counter.
fn new_request_dir(vm: &VmDir) -> io::Result<PathBuf> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let base = vm.exec();
    fs::create_dir_all(&base)?;
    loop {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let d = base.join(format!("{nanos:020}-{}-{n}", std::process::id()));
        match fs::create_dir(&d) {
            Ok(()) => return Ok(d),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Bytes of each stream kept in the result, as over SSH: the rest only streams by, so a
/// command's 100 MB cost its tail.
const KEEP: usize = 64 * 1024;

/// One output file the agent writes, read as it grows: new bytes go to the sink, the
/// end is kept.
struct Follow {
    path: PathBuf,
    stream: OutputStream,
    file: Option<fs::File>,
    tail: OutputTail,
}

impl Follow {
    fn new(path: PathBuf, stream: OutputStream) -> Self {
        Follow {
            path,
            stream,
            file: None,
            tail: OutputTail::new(KEEP),
        }
    }

    /// Passes on whatever the file gained since the last call (nothing before the agent
    /// has created it).
    fn drain(&mut self, sink: &mut OutputSink<'_>) {
        use std::io::Read;
        if self.file.is_none() {
            self.file = fs::File::open(&self.path).ok();
        }
        let Some(f) = self.file.as_mut() else { return };
        let mut buf = [0u8; 64 * 1024];
        while let Ok(n @ 1..) = f.read(&mut buf) {
            self.tail.push(&buf[..n]);
            sink(self.stream, &buf[..n]);
        }
    }
}

pub(crate) async fn run(
    state: &Store,
    clock: &SharedClock,
    vm: &VmDir,
    row: &Row,
    req: &ExecRequest,
    mut sink: OutputSink<'_>,
) -> Result<ExecOutput> {
    let pid = row.pid.filter(|pid| vm::agent_alive(*pid, &row.id)).ok_or_else(|| {
        Error::unexpected(format!("the agent of {} is not running", row.id))
            .with_hint("the instance's host process died; terminate it (`herd down`) and launch another")
    })?;
    let dir = new_request_dir(vm).map_err(|e| error::io(e, "cannot create an exec request in", &vm.exec()))?;
    let spec = ExecSpec {
        command: req.command.clone(),
        env: req.env.clone(),
        timeout_ms: req.timeout.map(|t| t.as_millis() as u64),
    };
    let now = clock.now().timestamp_millis();
    // A command is activity, before the agent even sees it.
    state.write(|tx| store::touch(tx, &row.id, now, None))?;
    vm::write_atomic(&request_file(&dir), &serde_json::to_vec(&spec).expect("serialize"))
        .map_err(|e| error::io(e, "cannot write the exec request", &dir))?;
    vm::poke(vm);

    let started = Instant::now();
    let give_up = req.timeout.map(|t| t + AGENT_GRACE);
    let mut polls = 0u32;
    let mut out = Follow::new(stdout_file(&dir), OutputStream::Stdout);
    let mut err = Follow::new(stderr_file(&dir), OutputStream::Stderr);
    let result: ExecResult = loop {
        out.drain(&mut sink);
        err.drain(&mut sink);
        if let Ok(bytes) = fs::read(result_file(&dir)) {
            break serde_json::from_slice(&bytes)
                .map_err(|e| Error::unexpected(format!("unreadable exec result in {}: {e}", dir.display())))?;
        }
        polls += 1;
        if polls >= 20 {
            polls = 0;
            let r = state.read(|c| store::get(c, &row.id))?;
            if let Some(reason) = r.as_ref().and_then(|r| r.ended_at.map(|_| r.state_reason.clone())) {
                let _ = fs::remove_dir_all(&dir);
                return Err(Error::new(
                    ErrorKind::Conflict,
                    format!(
                        "instance {} ended ({}) while the command ran",
                        row.id,
                        reason.as_deref().unwrap_or("ended")
                    ),
                ));
            }
            if !vm::alive(pid) && !result_file(&dir).exists() {
                return Err(Error::unexpected(format!(
                    "the agent of {} stopped while the command ran",
                    row.id
                )));
            }
        }
        if give_up.is_some_and(|g| started.elapsed() > g) {
            return Err(Error::new(
                ErrorKind::Timeout,
                format!("the agent of {} did not report the command's end in time", row.id),
            ));
        }
        tokio::time::sleep((started.elapsed() / 8).clamp(POLL_FIRST, POLL_MAX)).await;
    };
    // The result is written after the command's streams are closed: what is left of them
    // is final.
    out.drain(&mut sink);
    err.drain(&mut sink);
    let out = ExecOutput::new(
        result.exit_code,
        out.tail.text(),
        err.tail.text(),
        Duration::from_nanos(result.wall_ns),
        result.timed_out,
    )
    .with_output_bytes(out.tail.total() + err.tail.total());
    let _ = fs::remove_dir_all(&dir);
    Ok(out)
}

/// The environment variable a virtual exec reads its work from.
pub const VIRTUAL_WORK_ENV: &str = "HERD_VIRTUAL_WORK";

/// `exec` in virtual mode (opt-in: [`crate::LocalBuilder::virtual_exec`]), for scale tests
/// and benchmarks of whatever drives exec (the sweep runner), never for results.
///
/// The model, deterministic and declared: a command does `$HERD_VIRTUAL_WORK` seconds of
/// one core's CPU work (0 when unset, so shipping files and setup are instant) and takes
/// `work x 100 / cpu_percent` virtual seconds on the injected clock, with the type's CPU
/// share from the price list. It exits 0 and prints one line saying so; the command text
/// itself is not run. A timeout shorter than that ends it as timed out at the timeout;
/// an instance that ends meanwhile (deadline, spot interruption) fails it with
/// `Conflict`, as in process mode.
pub(crate) async fn virtual_run(
    state: &Store,
    clock: &SharedClock,
    row: &Row,
    req: &ExecRequest,
) -> Result<ExecOutput> {
    let work = req
        .env
        .iter()
        .rev()
        .find(|(k, _)| k == VIRTUAL_WORK_ENV)
        .map(|(_, v)| {
            v.parse::<f64>()
                .ok()
                .filter(|w| w.is_finite() && *w >= 0.0)
                .ok_or_else(|| Error::invalid_spec(format!("{VIRTUAL_WORK_ENV}=`{v}` is not a number of seconds")))
        })
        .transpose()?
        .unwrap_or(0.0);
    let cpu = crate::pricing::resources(&row.instance_type).map_or(100, |r| r.cpu_percent.max(1));
    let need = Duration::from_secs_f64(work * 100.0 / f64::from(cpu));
    let (wall, timed_out) = match req.timeout {
        Some(t) if t < need => (t, true),
        _ => (need, false),
    };
    let start = clock.now().timestamp_millis();
    state.write(|tx| store::touch(tx, &row.id, start, None))?;
    clock.sleep(wall).await;
    let now = clock.now().timestamp_millis();
    let after = state.write(|tx| {
        store::settle(tx, now)?;
        store::get(tx, &row.id)
    })?;
    if let Some(r) = after.filter(|r| r.ended_at.is_some()) {
        return Err(Error::new(
            ErrorKind::Conflict,
            format!(
                "instance {} ended ({}) while the command ran",
                row.id,
                r.state_reason.as_deref().unwrap_or("ended")
            ),
        ));
    }
    state.write(|tx| store::touch(tx, &row.id, now, None))?;
    let stdout = if timed_out {
        String::new()
    } else {
        format!(
            "herd-virtual-exec: {work}s of work at {cpu}% of a core took {:.3}s\n",
            wall.as_secs_f64()
        )
    };
    Ok(ExecOutput::new(
        (!timed_out).then_some(0),
        stdout,
        String::new(),
        wall,
        timed_out,
    ))
}

#[cfg(test)]
mod virtual_tests {
    use std::sync::Arc;

    use herd_core::{Clock, ExecRequest, LaunchSpec, Launcher, VirtualClock};

    use crate::LocalBuilder;

    fn launcher(clock: &VirtualClock) -> Launcher {
        let sim = LocalBuilder::default()
            .in_memory()
            .processes(false)
            .virtual_exec(true)
            .clock(Arc::new(clock.clone()))
            .build()
            .unwrap();
        Launcher::builder(Arc::new(sim)).clock(Arc::new(clock.clone())).build()
    }

    #[tokio::test]
    async fn work_takes_virtual_time_in_proportion_to_the_cpu_share() {
        let clock = VirtualClock::at_epoch();
        let l = launcher(&clock);
        assert!(l.capabilities().exec);
        let mut took = Vec::new();
        for t in ["l1.small", "l1.large", "c1.xlarge"] {
            let r = l.launch(LaunchSpec::new(t, 1)).await.unwrap();
            let id = r.instances[0].id.clone();
            let req = ExecRequest::new("anything").env(super::VIRTUAL_WORK_ENV, "10");
            let t0 = clock.now();
            let out = l.exec(&id, &req).await.unwrap();
            assert_eq!(out.exit_code, Some(0));
            assert!(out.stdout.contains("10s of work"), "{}", out.stdout);
            assert!(clock.now() - t0 >= chrono::Duration::from_std(out.wall).unwrap());
            took.push(out.wall.as_secs_f64());
            // No work declared: instant (shipping files, setup).
            assert_eq!(l.exec(&id, &ExecRequest::new("setup")).await.unwrap().wall.as_secs(), 0);
        }
        assert_eq!(took, [40.0, 10.0, 5.0]);
    }

    #[tokio::test]
    async fn a_short_timeout_times_out_and_a_bad_work_is_refused() {
        let clock = VirtualClock::at_epoch();
        let l = launcher(&clock);
        let id = l.launch(LaunchSpec::new("l1.small", 1)).await.unwrap().instances[0]
            .id
            .clone();
        let req = ExecRequest::new("x")
            .env(super::VIRTUAL_WORK_ENV, "10")
            .timeout(std::time::Duration::from_secs(5));
        let out = l.exec(&id, &req).await.unwrap();
        assert!(out.timed_out);
        assert_eq!(out.exit_code, None);
        let bad = ExecRequest::new("x").env(super::VIRTUAL_WORK_ENV, "lots");
        assert!(l.exec(&id, &bad).await.is_err());
    }
}
