//! Real CPU limits for a simulated instance, so a bigger type really runs faster:
//! cores through `sched_setaffinity`, CPU time through (in order of preference) cgroup v2
//! `cpu.max`, cgroup v1 `cpu.cfs_quota_us`, or a portable duty cycle that stops and
//! continues the workload's process groups. Time is never scaled.

use std::ffi::CString;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::log;
use crate::vm::signal_group;

/// The cgroup period: 100 ms, the kernel's default CFS period.
const PERIOD_US: u64 = 100_000;
/// The duty cycle's period.
const DUTY_PERIOD: Duration = Duration::from_millis(100);

/// Which mechanism to use; `Auto` tries them in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preference {
    Auto,
    Cgroup2,
    Cgroup1,
    DutyCycle,
}

impl Preference {
    fn name(self) -> &'static str {
        match self {
            Preference::Auto => "auto",
            Preference::Cgroup2 => "cgroup2",
            Preference::Cgroup1 => "cgroup1",
            Preference::DutyCycle => "duty-cycle",
        }
    }
}

impl std::str::FromStr for Preference {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Preference::Auto),
            "cgroup2" => Ok(Preference::Cgroup2),
            "cgroup1" => Ok(Preference::Cgroup1),
            "duty-cycle" => Ok(Preference::DutyCycle),
            _ => Err(format!(
                "unknown CPU mechanism `{s}` (auto, cgroup2, cgroup1, duty-cycle)"
            )),
        }
    }
}

/// The limits in force for one instance's workloads.
pub(crate) struct CpuLimit {
    /// `cgroup2`, `cgroup1`, `duty-cycle` or `cores-only` (no quota needed).
    pub mechanism: &'static str,
    pub cores: Vec<usize>,
    /// Percent of one core; `None` when the cores alone are the limit.
    pub quota_percent: Option<u32>,
    cgroup: Option<PathBuf>,
    /// `cgroup.procs` of the instance's cgroup, for workloads to join before exec.
    procs: Option<CString>,
    duty: Option<Duty>,
}

struct Duty {
    groups: Arc<Mutex<Vec<i32>>>,
    stop: Arc<AtomicBool>,
    /// In the stopped part of the cycle: a new workload is stopped on arrival.
    paused: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl CpuLimit {
    /// Sets up the limits of an instance with `vcpus` cores and `cpu_percent` of one
    /// core of CPU time.
    pub fn setup(id: &str, vcpus: u32, cpu_percent: u32, pref: Preference) -> CpuLimit {
        let allowed = allowed_cpus();
        let n = (vcpus.max(1) as usize).min(allowed.len().max(1));
        let start = id
            .bytes()
            .fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(b as usize));
        let cores: Vec<usize> = if allowed.is_empty() {
            Vec::new()
        } else {
            (0..n).map(|i| allowed[(start + i) % allowed.len()]).collect()
        };
        let full = 100 * n as u32;
        let mut limit = CpuLimit {
            mechanism: "cores-only",
            cores,
            quota_percent: None,
            cgroup: None,
            procs: None,
            duty: None,
        };
        if cpu_percent >= full {
            return limit;
        }
        limit.quota_percent = Some(cpu_percent);
        let tries: &[Preference] = match pref {
            Preference::Auto => &[Preference::Cgroup2, Preference::Cgroup1, Preference::DutyCycle],
            Preference::Cgroup2 => &[Preference::Cgroup2, Preference::DutyCycle],
            Preference::Cgroup1 => &[Preference::Cgroup1, Preference::DutyCycle],
            Preference::DutyCycle => &[Preference::DutyCycle],
        };
        // Cgroups are host-wide while instance ids are only unique within a state dir:
        // the agent's pid makes the name unique among live agents.
        let name = format!("{id}-{}", std::process::id());
        for t in tries {
            let made = match t {
                Preference::Cgroup2 => cgroup2(&name, cpu_percent).map(|d| ("cgroup2", d)),
                Preference::Cgroup1 => cgroup1(&name, cpu_percent).map(|d| ("cgroup1", d)),
                _ => Err("fallback".into()),
            };
            match made {
                Ok((name, dir)) => {
                    limit.mechanism = name;
                    limit.procs = CString::new(dir.join("cgroup.procs").into_os_string().into_encoded_bytes()).ok();
                    limit.cgroup = Some(dir);
                    return limit;
                }
                Err(e) if *t != Preference::DutyCycle => log(&format!("cpu: {} unavailable: {e}", t.name())),
                Err(_) => {}
            }
        }
        limit.mechanism = "duty-cycle";
        limit.duty = Some(Duty::start(f64::from(cpu_percent) / f64::from(full)));
        limit
    }

    pub fn describe(&self) -> String {
        let cores = format!("cores {:?}", self.cores);
        match self.quota_percent {
            None => format!("{}: {cores}, no quota needed", self.mechanism),
            Some(q) => format!("{}: {cores}, {q}% of one core", self.mechanism),
        }
    }

    /// The process groups the duty cycle throttles (the running workloads).
    pub fn set_groups(&self, groups: &[i32]) {
        if let Some(d) = &self.duty {
            let mut current = d.groups.lock().expect("duty lock");
            if d.paused.load(Ordering::SeqCst) {
                for g in groups.iter().filter(|g| !current.contains(g)) {
                    signal_group(*g, libc::SIGSTOP);
                }
            }
            *current = groups.to_vec();
        }
    }

    /// Makes sure a started workload is in the instance's cgroup (the hook already asked
    /// for it; this covers a move that failed in the child), logging when it is not.
    pub fn adopt(&self, pid: i32) {
        let Some(dir) = &self.cgroup else { return };
        if let Err(e) = fs::write(dir.join("cgroup.procs"), format!("{pid}\n")) {
            if e.raw_os_error() != Some(libc::ESRCH) {
                log(&format!("cpu: cannot move {pid} into {}: {e}", dir.display()));
            }
        }
    }

    /// What a workload applies to itself between fork and exec.
    pub fn hook(&self) -> Hook {
        Hook {
            cores: self.cores.clone(),
            procs: self.procs.clone(),
        }
    }

    /// Stops throttling (continuing every stopped group), so workloads can be killed.
    pub fn release(&mut self) {
        if let Some(mut d) = self.duty.take() {
            d.stop.store(true, Ordering::SeqCst);
            if let Some(t) = d.thread.take() {
                let _ = t.join();
            }
            for g in d.groups.lock().expect("duty lock").iter() {
                signal_group(*g, libc::SIGCONT);
            }
        }
    }

    /// Removes the instance's cgroup once its processes are gone.
    pub fn remove(&mut self) {
        self.release();
        if let Some(dir) = self.cgroup.take() {
            for _ in 0..20 {
                if fs::remove_dir(&dir).is_ok() || !dir.exists() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            log(&format!("cpu: could not remove {}", dir.display()));
        }
    }
}

impl Duty {
    fn start(fraction: f64) -> Duty {
        let groups = Arc::new(Mutex::new(Vec::<i32>::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let paused = Arc::new(AtomicBool::new(false));
        let fraction = fraction.clamp(0.01, 1.0);
        let run = DUTY_PERIOD.mul_f64(fraction);
        let (g, s, p) = (groups.clone(), stop.clone(), paused.clone());
        let signal_all = move |sig| {
            for pg in g.lock().expect("duty lock").iter() {
                signal_group(*pg, sig);
            }
        };
        let thread = std::thread::Builder::new()
            .name("duty-cycle".into())
            .spawn(move || {
                while !s.load(Ordering::SeqCst) {
                    p.store(false, Ordering::SeqCst);
                    signal_all(libc::SIGCONT);
                    let ran = Instant::now();
                    std::thread::sleep(run);
                    if s.load(Ordering::SeqCst) {
                        break;
                    }
                    p.store(true, Ordering::SeqCst);
                    signal_all(libc::SIGSTOP);
                    // On a busy host this thread wakes late, and the workload ran longer
                    // than asked: pause in proportion to what it really ran.
                    std::thread::sleep(ran.elapsed().mul_f64((1.0 - fraction) / fraction));
                }
            })
            .ok();
        Duty {
            groups,
            stop,
            paused,
            thread,
        }
    }
}

/// Applied in the workload's child process after fork, before exec.
pub(crate) struct Hook {
    cores: Vec<usize>,
    procs: Option<CString>,
}

impl Hook {
    /// Only async-signal-safe calls: it runs between fork and exec.
    pub fn apply(&self) {
        #[cfg(target_os = "linux")]
        if !self.cores.is_empty() {
            // SAFETY: cpu_set_t is plain data; CPU_SET stays within the set's bounds
            // because the cores come from the kernel's own affinity mask.
            unsafe {
                let mut set: libc::cpu_set_t = std::mem::zeroed();
                for c in &self.cores {
                    libc::CPU_SET(*c, &mut set);
                }
                libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
            }
        }
        if let Some(p) = &self.procs {
            // Writing 0 to cgroup.procs moves the writer itself (v1 and v2).
            // SAFETY: open/write/close on a NUL-terminated path prepared before fork.
            unsafe {
                let fd = libc::open(p.as_ptr(), libc::O_WRONLY);
                if fd >= 0 {
                    libc::write(fd, b"0\n".as_ptr().cast(), 2);
                    libc::close(fd);
                }
            }
        }
    }
}

/// The CPUs this process may run on.
fn allowed_cpus() -> Vec<usize> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: sched_getaffinity fills a zeroed cpu_set_t of the size we pass.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) == 0 {
                let max = 8 * std::mem::size_of::<libc::cpu_set_t>();
                return (0..max).filter(|c| libc::CPU_ISSET(*c, &set)).collect();
            }
        }
    }
    let n = std::thread::available_parallelism().map_or(1, |n| n.get());
    (0..n).collect()
}

/// Mount points of a cgroup file system, from `/proc/mounts`.
fn mounts(fstype: &str, option: Option<&str>) -> Vec<PathBuf> {
    fs::read_to_string("/proc/mounts")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 4 && f[2] == fstype && option.is_none_or(|o| f[3].split(',').any(|x| x == o)))
                .then(|| PathBuf::from(f[1]))
        })
        .collect()
}

fn write(path: &Path, value: &str) -> Result<(), String> {
    fs::write(path, value).map_err(|e| format!("write {}: {e}", path.display()))
}

/// `<cgroup2 root>/herd/<name>` with `cpu.max`; needs the cpu controller delegated to us.
fn cgroup2(name: &str, percent: u32) -> Result<PathBuf, String> {
    let root = mounts("cgroup2", None)
        .into_iter()
        .find(|m| {
            fs::read_to_string(m.join("cgroup.controllers")).is_ok_and(|c| c.split_whitespace().any(|x| x == "cpu"))
        })
        .ok_or("no cgroup2 hierarchy with the cpu controller")?;
    let subtree = |dir: &Path| -> Result<(), String> {
        let cur = fs::read_to_string(dir.join("cgroup.subtree_control")).unwrap_or_default();
        if cur.split_whitespace().any(|x| x == "cpu") {
            return Ok(());
        }
        write(&dir.join("cgroup.subtree_control"), "+cpu")
    };
    subtree(&root)?;
    let herd = root.join("herd");
    fs::create_dir_all(&herd).map_err(|e| format!("mkdir {}: {e}", herd.display()))?;
    subtree(&herd)?;
    let dir = herd.join(name);
    fs::create_dir_all(&dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
    let quota = u64::from(percent) * PERIOD_US / 100;
    if let Err(e) = write(&dir.join("cpu.max"), &format!("{quota} {PERIOD_US}")) {
        let _ = fs::remove_dir(&dir);
        return Err(e);
    }
    Ok(dir)
}

/// `<cgroup1 cpu mount>/herd/<name>` with `cpu.cfs_quota_us`.
fn cgroup1(name: &str, percent: u32) -> Result<PathBuf, String> {
    let root = mounts("cgroup", Some("cpu"))
        .into_iter()
        .next()
        .ok_or("no cgroup v1 cpu hierarchy")?;
    let dir = root.join("herd").join(name);
    fs::create_dir_all(&dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
    let quota = u64::from(percent) * PERIOD_US / 100;
    let res = write(&dir.join("cpu.cfs_period_us"), &PERIOD_US.to_string())
        .and_then(|_| write(&dir.join("cpu.cfs_quota_us"), &quota.to_string()));
    if let Err(e) = res {
        let _ = fs::remove_dir(&dir);
        return Err(e);
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_cores_need_no_quota() {
        let l = CpuLimit::setup("i-test", 1, 100, Preference::DutyCycle);
        assert_eq!(l.mechanism, "cores-only");
        assert_eq!(l.cores.len(), 1);
        assert!(l.quota_percent.is_none());
    }

    #[test]
    fn partial_core_gets_a_quota() {
        let mut l = CpuLimit::setup("i-test2", 1, 25, Preference::DutyCycle);
        assert_eq!(l.mechanism, "duty-cycle");
        assert_eq!(l.quota_percent, Some(25));
        assert!(l.describe().contains("25%"));
        l.remove();
        assert!("warp".parse::<Preference>().is_err());
    }
}
