//! A process instance on disk: its directory under `<state_dir>/vms/<id>/`, the spec the
//! agent runs from, how the agent is started (detached, so it outlives the CLI), and the
//! few process-control calls the control plane needs.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

use crate::config::AgentCommand;

/// The layout of one VM directory.
#[derive(Debug, Clone)]
pub(crate) struct VmDir {
    pub root: PathBuf,
}

impl VmDir {
    pub fn new(state_dir: &Path, id: &str) -> VmDir {
        VmDir {
            root: state_dir.join("vms").join(id),
        }
    }
    pub fn spec(&self) -> PathBuf {
        self.root.join("spec.json")
    }
    /// The working directory of setup, command and exec: the instance's volume.
    pub fn disk(&self) -> PathBuf {
        self.root.join("disk")
    }
    /// One subdirectory per exec request.
    pub fn exec(&self) -> PathBuf {
        self.root.join("exec")
    }
    /// A FIFO the agent waits on between ticks: a byte written here wakes it at once
    /// (a new exec request), so commands do not wait for the next tick.
    pub fn wake(&self) -> PathBuf {
        self.root.join("wake")
    }
    /// Written before a spot interruption (`$HERD_SPOT_NOTICE_FILE`).
    pub fn notice(&self) -> PathBuf {
        self.root.join("notice")
    }
    pub fn agent_log(&self) -> PathBuf {
        self.root.join("agent.log")
    }
    pub fn log(&self, name: &str) -> PathBuf {
        self.root.join(format!("{name}.log"))
    }
    /// Exit status of setup / command, as JSON.
    pub fn result(&self, name: &str) -> PathBuf {
        self.root.join(format!("{name}.result.json"))
    }
    /// Process groups of running workloads, one per line, for whoever must kill them.
    pub fn workloads(&self) -> PathBuf {
        self.root.join("workloads")
    }
    /// The CPU mechanism in force.
    pub fn cpu(&self) -> PathBuf {
        self.root.join("cpu")
    }
    /// Written by the agent when it has finished: the reason.
    pub fn ended(&self) -> PathBuf {
        self.root.join("ended")
    }
}

/// What the agent needs to run an instance. Times are Unix milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct VmSpec {
    pub id: String,
    pub state_dir: PathBuf,
    pub instance_type: String,
    pub vcpus: u32,
    /// CPU time in percent of one core.
    pub cpu_percent: u32,
    pub launched_at: i64,
    pub ready_at: i64,
    pub deadline: i64,
    pub keepalive_ms: Option<i64>,
    pub interrupt_at: Option<i64>,
    pub notice_ms: i64,
    pub setup: Option<String>,
    pub command: Option<String>,
}

impl VmSpec {
    pub fn db(&self) -> PathBuf {
        self.state_dir.join("sim.db")
    }
}

/// Writes `bytes` so that a reader never sees half of it.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, bytes)?;
    fs::rename(&tmp, path)
}

/// Wakes the agent (see [`VmDir::wake`]). Best effort: with no agent reading, or an
/// agent too old to have the FIFO, the next tick picks the request up anyway.
pub(crate) fn poke(dir: &VmDir) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Ok(mut f) = fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(dir.wake())
    {
        let _ = f.write(&[1]);
    }
}

/// Creates the VM directory and starts its agent in a new session, stdio to
/// `agent.log`. Returns the agent's pid (also its process group and session id).
pub(crate) fn start(agent: &AgentCommand, spec: &VmSpec) -> io::Result<i32> {
    let dir = VmDir::new(&spec.state_dir, &spec.id);
    fs::create_dir_all(dir.disk())?;
    fs::create_dir_all(dir.exec())?;
    write_atomic(&dir.spec(), &serde_json::to_vec_pretty(spec).map_err(io::Error::other)?)?;
    let log = fs::OpenOptions::new().create(true).append(true).open(dir.agent_log())?;
    let mut cmd = Command::new(&agent.program);
    cmd.args(&agent.args)
        .arg("run")
        .arg(&dir.root)
        .current_dir(&dir.root)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    detach(&mut cmd);
    let mut child = cmd.spawn()?;
    let pid = child.id() as i32;
    // The agent is our child until we exit: reap it when it ends so it never lingers as
    // a zombie (then it is gone for everyone probing its pid).
    std::thread::Builder::new()
        .name(format!("reap-{}", spec.id))
        .spawn(move || {
            let _ = child.wait();
        })?;
    Ok(pid)
}

#[cfg(unix)]
fn detach(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() == -1 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[cfg(not(unix))]
fn detach(_cmd: &mut Command) {}

/// Whether a process exists and is not a zombie.
pub(crate) fn alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks for existence and permission.
    let exists = unsafe { libc::kill(pid, 0) } == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    if !exists {
        return false;
    }
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .map(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X']))
            .unwrap_or(true),
        Err(_) => true,
    }
}

/// Whether `pid` is a live agent of instance `id`: pids are reused (after a reboot, a
/// stored pid may name anything), so on Linux its command line must name the instance.
pub(crate) fn agent_alive(pid: i32, id: &str) -> bool {
    alive(pid)
        && match fs::read(format!("/proc/{pid}/cmdline")) {
            Ok(cmd) => String::from_utf8_lossy(&cmd).contains(id),
            Err(_) => !Path::new("/proc/self").exists(),
        }
}

/// Whether a recorded workload group still belongs to this VM (its leader works in the
/// VM's directory), so a reused pid is never killed.
pub(crate) fn workload_of(pgid: i32, dir: &VmDir) -> bool {
    match fs::read_link(format!("/proc/{pgid}/cwd")) {
        Ok(cwd) => cwd.starts_with(&dir.root),
        Err(_) => !Path::new("/proc/self").exists(),
    }
}

/// Sends `sig` to a whole process group (ignoring groups that are already gone).
pub(crate) fn signal_group(pgid: i32, sig: i32) {
    if pgid > 1 {
        // SAFETY: plain syscall; a negative pid addresses the process group.
        unsafe {
            libc::kill(-pgid, sig);
        }
    }
}

/// The workload process groups the agent last recorded that are still this VM's.
pub(crate) fn recorded_workloads(dir: &VmDir) -> Vec<i32> {
    fs::read_to_string(dir.workloads())
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .filter(|p| *p > 1 && workload_of(*p, dir))
        .collect()
}
