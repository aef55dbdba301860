//! One workload of an instance (setup, command, or an exec): `sh -c` in the volume, in
//! its own process group (so it can be throttled and killed as a whole), under the
//! instance's CPU limits. A waiter thread reaps it the moment it exits, measures its
//! wall time and writes its result.

use std::fs::File;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::cpu::Hook;

/// How a workload ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Outcome {
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub wall: Duration,
    pub timed_out: bool,
}

impl Outcome {
    /// What a command that never started reports: the shell's "command not found".
    pub fn not_started() -> Outcome {
        Outcome {
            exit_code: Some(127),
            signal: None,
            wall: Duration::ZERO,
            timed_out: false,
        }
    }
}

/// What a workload is, for the supervisor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    Setup,
    Command,
    Exec(String),
}

pub(crate) struct Workload {
    pub kind: Kind,
    pub pgid: i32,
    pub started: Instant,
    pub timeout: Option<Duration>,
    timed_out: Arc<AtomicBool>,
    done: Arc<Mutex<Option<Outcome>>>,
}

impl Workload {
    pub fn outcome(&self) -> Option<Outcome> {
        *self.done.lock().expect("workload lock")
    }

    /// Marks it timed out; the caller kills its group.
    pub fn time_out(&self) {
        self.timed_out.store(true, Ordering::SeqCst);
    }
}

/// What to run and where its output goes.
pub(crate) struct Launch<'a> {
    pub kind: Kind,
    pub command: &'a str,
    pub cwd: &'a Path,
    pub env: Vec<(String, String)>,
    pub stdout: File,
    pub stderr: File,
    pub timeout: Option<Duration>,
}

/// Starts a workload; `on_exit` runs on the waiter thread with the outcome, before the
/// supervisor sees it as done (so a result file is on disk by then).
pub(crate) fn spawn(
    l: Launch<'_>,
    hook: Hook,
    on_exit: impl FnOnce(&Outcome) + Send + 'static,
) -> std::io::Result<Workload> {
    let mut cmd = Command::new("sh");
    // Like a fresh VM: the launching shell's environment (credentials included) stays
    // out; only the basics a shell needs come in (the agent's own environment is already
    // clean; this holds for an agent started by hand too). HOME is the volume, which is
    // also the working directory, like a login directory.
    cmd.env_clear()
        .envs(crate::vm::clean_env(l.cwd))
        .arg("-c")
        .arg(l.command)
        .current_dir(l.cwd)
        .envs(l.env)
        .stdin(Stdio::null())
        .stdout(l.stdout)
        .stderr(l.stderr);
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
        // SAFETY: the hook only makes async-signal-safe syscalls on data prepared
        // before the fork.
        unsafe {
            cmd.pre_exec(move || {
                hook.apply();
                Ok(())
            });
        }
    }
    let started = Instant::now();
    let mut child = cmd.spawn()?;
    let pgid = child.id() as i32;
    let timed_out = Arc::new(AtomicBool::new(false));
    let done = Arc::new(Mutex::new(None));
    let (t, d) = (timed_out.clone(), done.clone());
    std::thread::Builder::new()
        .name(format!("wait-{pgid}"))
        .spawn(move || {
            let status = child.wait();
            let wall = started.elapsed();
            let (exit_code, signal) = match status {
                Ok(s) => decode(s),
                Err(_) => (None, None),
            };
            let timed_out = t.load(Ordering::SeqCst);
            let o = Outcome {
                exit_code: if timed_out { None } else { exit_code },
                signal,
                wall,
                timed_out,
            };
            on_exit(&o);
            *d.lock().expect("workload lock") = Some(o);
        })?;
    Ok(Workload {
        kind: l.kind,
        pgid,
        started,
        timeout: l.timeout,
        timed_out,
        done,
    })
}

fn decode(s: ExitStatus) -> (Option<i32>, Option<i32>) {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        (s.code(), s.signal())
    }
    #[cfg(not(unix))]
    {
        (s.code(), None)
    }
}

#[cfg(test)]
mod tests {
    use crate::vm::inherited;

    #[test]
    fn secrets_do_not_reach_workloads() {
        assert!(inherited("PATH") && inherited("LC_ALL") && inherited("TZ"));
        for k in [
            "AWS_SECRET_ACCESS_KEY",
            "AWS_ACCESS_KEY_ID",
            "AWS_SESSION_TOKEN",
            "GOOGLE_APPLICATION_CREDENTIALS",
            "AZURE_CLIENT_SECRET",
            "HERD_GCP_API_KEY",
            "GITHUB_TOKEN",
            "MY_SECRET_THING",
            "HOME",
            "LC_SECRET",
        ] {
            assert!(!inherited(k), "{k} must not be inherited");
        }
    }
}
