//! A process instance on disk, shared by the control plane and the agent: its directory
//! under `<state_dir>/vms/<id>/`, the spec the agent runs from, the pid, heartbeat and
//! ended files, the clean environment (so neither the agent nor the user's commands ever
//! hold the CLI's credentials), and the few process-control calls both sides need, each
//! checking a process's identity rather than trusting a bare pid. Starting the agent
//! (detached, so it outlives the CLI) is the control plane's, in `host.rs`.

use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use herd_core::{PurchaseOption, Tags};
use serde::{Deserialize, Serialize};

/// The layout of one VM directory.
#[derive(Debug, Clone)]
pub(crate) struct VmDir {
    pub root: PathBuf,
}

/// The variable every path of herd-guest's scripts is under (its `boot::ROOT_ENV`):
/// commands in a simulated instance see the VM's folder as their guest root.
pub const GUEST_ROOT_ENV: &str = "HERD_GUEST_ROOT";

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
    /// What `setup` / `command` print, where a cloud VM's boot script puts it
    /// (`$HERD_GUEST_ROOT/var/log/herd-<name>.log`), so `herd logs` reads both alike.
    pub fn log(&self, name: &str) -> PathBuf {
        self.root.join("var/log").join(format!("herd-{name}.log"))
    }
    /// How fast the logs grow (herd-guest's `lograte::FILE`, under the guest root).
    pub fn lograte(&self) -> PathBuf {
        self.root.join("run/herd/lograte")
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
    /// Written by the agent when it starts: `<pid> <start time>` (see [`AgentPid`]), so
    /// the agent can be found even when `sim.db` has lost it.
    pub fn pid(&self) -> PathBuf {
        self.root.join("agent.pid")
    }
    /// Its modification time is refreshed by the agent every second: the last instant
    /// the agent was seen alive, which is when a row whose agent vanished is ended.
    pub fn heartbeat(&self) -> PathBuf {
        self.root.join("heartbeat")
    }

    /// The last instant (Unix ms) this VM's agent is known to have been alive: when it
    /// wrote `ended`, else its last heartbeat, else when it recorded its pid. `None` if
    /// it never started.
    pub fn last_seen_alive(&self) -> Option<i64> {
        let mtime = |p: PathBuf| -> Option<i64> {
            let t = fs::metadata(p).ok()?.modified().ok()?;
            let d = t.duration_since(std::time::UNIX_EPOCH).ok()?;
            i64::try_from(d.as_millis()).ok()
        };
        mtime(self.ended())
            .or_else(|| mtime(self.heartbeat()))
            .or_else(|| mtime(self.pid()))
    }

    /// The agent recorded in `agent.pid`, if it is still that agent.
    pub fn live_agent(&self, id: &str) -> Option<i32> {
        let p = AgentPid::read(&self.pid())?;
        agent_alive(p.pid, id).then_some(p.pid)
    }
}

/// A process's identity: its pid and, where the OS tells (Linux), its start time in
/// clock ticks since boot, so a pid reused by another program is not mistaken for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AgentPid {
    pub pid: i32,
    pub start: Option<i64>,
}

impl AgentPid {
    /// This process.
    pub fn me() -> AgentPid {
        let pid = std::process::id() as i32;
        AgentPid {
            pid,
            start: start_time(pid),
        }
    }

    /// Whether this very process (same pid, same start time) still runs.
    pub fn alive(&self) -> bool {
        alive(self.pid)
            && match (self.start, start_time(self.pid)) {
                (Some(want), Some(got)) => want == got,
                // Unknown on this OS (or it exited between the calls): the pid is all we have.
                _ => true,
            }
    }

    pub fn write(&self, path: &Path) -> io::Result<()> {
        let start = self.start.map_or_else(String::new, |s| s.to_string());
        write_atomic(path, format!("{} {start}\n", self.pid).as_bytes())
    }

    pub fn read(path: &Path) -> Option<AgentPid> {
        let text = fs::read_to_string(path).ok()?;
        let mut parts = text.split_whitespace();
        let pid = parts.next()?.parse().ok()?;
        let start = parts.next().and_then(|s| s.parse().ok());
        Some(AgentPid { pid, start })
    }
}

/// A process's start time (field 22 of `/proc/<pid>/stat`), on Linux.
pub(crate) fn start_time(pid: i32) -> Option<i64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name (which may hold spaces): state is
    // field 3, so start time (22) is the 20th after the name.
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(19)?.parse().ok()
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
    /// What the control plane knows about the instance beyond what the agent runs, so
    /// that its row can be rebuilt from this file if `sim.db` is lost. Absent in specs
    /// written before they were recorded.
    #[serde(default)]
    pub record: Option<VmRecord>,
}

/// The row fields the agent does not need (see [`VmSpec::record`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct VmRecord {
    pub region: String,
    pub zone: String,
    pub purchase: PurchaseOption,
    pub launch_id: String,
    pub tags: Tags,
    /// The hourly price frozen at launch, in USD (`Money::parse_usd`).
    pub hourly_price: String,
    pub volume_id: String,
    pub volume_gib: u32,
}

impl VmSpec {
    pub fn db(&self) -> PathBuf {
        self.state_dir.join("sim.db")
    }
}

/// Writes `bytes` so that a reader never sees half of it; the file is private (0600).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut f = private_file_options().truncate(true).open(&tmp)?;
    f.write_all(bytes)?;
    drop(f);
    fs::rename(&tmp, path)
}

/// Options that create a file readable by its owner only.
pub(crate) fn private_file_options() -> fs::OpenOptions {
    let mut o = fs::OpenOptions::new();
    o.write(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o
}

/// Creates `dir` (and missing parents) as 0700, and tightens it to 0700 if it exists
/// wider: the simulator's state holds instances' tags, commands and outputs.
pub(crate) fn private_dir(dir: &Path) -> io::Result<()> {
    let mut b = fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)?;
    tighten(dir, 0o700)
}

/// Removes group and other permissions from an existing path (no-op when it is missing
/// or already private), leaving the owner's bits as they are capped by `mode`.
pub(crate) fn tighten(path: &Path, mode: u32) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = match fs::symlink_metadata(path) {
            Ok(m) if !m.file_type().is_symlink() => m,
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let cur = meta.permissions().mode() & 0o7777;
        if cur & 0o077 != 0 {
            fs::set_permissions(path, fs::Permissions::from_mode(cur & mode & 0o700))?;
        }
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
    Ok(())
}

/// Variables a VM process may take from the launching environment: what a shell and
/// locale need, nothing that could carry a credential. Everything else (`AWS_*`,
/// `GOOGLE_*`, `AZURE_*`, `HERD_GCP_API_KEY`, tokens, secrets) stays out, as on a fresh
/// VM. The agent needs no variable of its own: it reads everything from `spec.json`.
const INHERITED: [&str; 9] = [
    "PATH", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TERM", "USER", "LOGNAME", "SHELL",
];

/// Whether a variable of the launching environment may reach a VM process.
pub(crate) fn inherited(key: &str) -> bool {
    let upper = key.to_ascii_uppercase();
    // Defence in depth: even an allowed prefix never lets a credential-looking name in.
    let secret = ["SECRET", "TOKEN", "PASSWORD", "CREDENTIAL", "KEY"]
        .iter()
        .any(|w| upper.contains(w));
    !secret && (INHERITED.contains(&key) || key.starts_with("LC_"))
}

/// The environment of a VM process: the allowed part of this process's environment,
/// with `HOME` set to `home`.
pub(crate) fn clean_env(home: &Path) -> Vec<(OsString, OsString)> {
    let mut env: Vec<(OsString, OsString)> = std::env::vars_os()
        .filter(|(k, _)| k.to_str().is_some_and(inherited))
        .collect();
    env.push(("HOME".into(), home.as_os_str().to_owned()));
    env
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
