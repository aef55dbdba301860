//! The control plane's side of `exec` (one SSH session): drop a request into the VM's
//! `exec/<name>/` directory, let the agent run it in the instance's volume under the
//! instance's CPU limits, and wait for its result file.
//!
//! Request and result are small JSON files written atomically, so either side may be
//! restarted without reading half a message.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use herd_core::{Error, ErrorKind, ExecOutput, ExecRequest, Result};
use serde::{Deserialize, Serialize};

use crate::error;
use crate::provider::LocalProvider;
use crate::store::{self, Row};
use crate::vm::{self, VmDir};

/// How often the provider looks for the result.
const POLL: Duration = Duration::from_millis(15);
/// How long past its own timeout an exec may go unanswered before herd gives up on the agent.
const AGENT_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ExecSpec {
    pub command: String,
    pub env: Vec<(String, String)>,
    pub timeout_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ExecResult {
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    /// Measured by the agent from spawn to exit, so polling never inflates it.
    pub wall_ns: u64,
    pub timed_out: bool,
}

/// File names inside one request's directory.
pub(crate) fn request_file(dir: &Path) -> PathBuf {
    dir.join("request.json")
}
pub(crate) fn result_file(dir: &Path) -> PathBuf {
    dir.join("result.json")
}
pub(crate) fn stdout_file(dir: &Path) -> PathBuf {
    dir.join("stdout")
}
pub(crate) fn stderr_file(dir: &Path) -> PathBuf {
    dir.join("stderr")
}

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

pub(crate) async fn run(p: &LocalProvider, vm: &VmDir, row: &Row, req: &ExecRequest) -> Result<ExecOutput> {
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
    let now = p.clock_ms();
    // A command is activity, before the agent even sees it.
    p.store().write(|tx| store::touch(tx, &row.id, now, None))?;
    vm::write_atomic(&request_file(&dir), &serde_json::to_vec(&spec).expect("serialize"))
        .map_err(|e| error::io(e, "cannot write the exec request", &dir))?;

    let started = Instant::now();
    let give_up = req.timeout.map(|t| t + AGENT_GRACE);
    let mut polls = 0u32;
    let result: ExecResult = loop {
        if let Ok(bytes) = fs::read(result_file(&dir)) {
            break serde_json::from_slice(&bytes)
                .map_err(|e| Error::unexpected(format!("unreadable exec result in {}: {e}", dir.display())))?;
        }
        polls += 1;
        if polls >= 20 {
            polls = 0;
            let r = p.store().read(|c| store::get(c, &row.id))?;
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
        tokio::time::sleep(POLL).await;
    };
    let read = |f: PathBuf| String::from_utf8_lossy(&fs::read(f).unwrap_or_default()).into_owned();
    let out = ExecOutput::new(
        result.exit_code,
        read(stdout_file(&dir)),
        read(stderr_file(&dir)),
        Duration::from_nanos(result.wall_ns),
        result.timed_out,
    );
    let _ = fs::remove_dir_all(&dir);
    Ok(out)
}
