//! The per-VM supervisor ("agent"): one detached process per simulated instance. It is
//! the eager half of the simulated cloud's enforcement: it boots the instance (waits out
//! the boot delay), runs setup, command and exec requests under the instance's real CPU
//! limits, writes the spot notice, and ends the instance at its deadline, interruption
//! or idle timeout, or when the control plane (or a deleted state dir) says so.
//!
//! Plain synchronous Rust with a few threads; no async runtime.

mod cpu;
mod supervisor;
mod wake;
mod workload;

use std::path::PathBuf;

pub use cpu::Preference as CpuPreference;

const USAGE: &str = "usage: herd-vm [--cpu auto|cgroup2|cgroup1|duty-cycle] run <vm-dir>";

/// The supervisor's entry point; `args` excludes the program name (and, for the herd
/// CLI, its hidden subcommand). Returns the process exit code. Call it before starting
/// any async runtime: it runs to the instance's end.
pub fn main(args: Vec<String>) -> i32 {
    let mut pref = CpuPreference::Auto;
    let mut it = args.into_iter();
    let mut dir: Option<PathBuf> = None;
    while let Some(a) = it.next() {
        match a.as_str() {
            "--cpu" => match it.next().map(|v| v.parse::<CpuPreference>()) {
                Some(Ok(p)) => pref = p,
                Some(Err(e)) => {
                    eprintln!("herd-vm: {e}");
                    return 2;
                }
                None => {
                    eprintln!("herd-vm: --cpu needs a value\n{USAGE}");
                    return 2;
                }
            },
            "run" => dir = it.next().map(PathBuf::from),
            "-h" | "--help" => {
                println!("{USAGE}\n\nThe local simulator's per-VM supervisor; herd starts it, you do not.");
                return 0;
            }
            other => {
                eprintln!("herd-vm: unexpected argument `{other}`\n{USAGE}");
                return 2;
            }
        }
    }
    let Some(dir) = dir else {
        eprintln!("{USAGE}");
        return 2;
    };
    supervisor::run(&dir, pref)
}

/// One line in `agent.log` (the agent's stderr), stamped with the wall-clock time.
pub(crate) fn log(msg: &str) {
    eprintln!(
        "{} {msg}",
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    );
}
