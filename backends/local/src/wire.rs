//! The file protocol between the simulator's two sides, the control plane (the
//! provider, in the CLI's process) and the per-VM agent (`herd-vm`, its own process):
//! what one writes and the other reads. With `vm.rs` (the VM directory's layout, the
//! spec, pid and heartbeat files) this is everything the two share; neither imports the
//! other's code.
//!
//! An exec request is a directory `exec/<name>/` holding `request.json` (an
//! [`ExecSpec`]); the agent runs it and writes `stdout`, `stderr` and, last,
//! `result.json` (an [`ExecResult`]). JSON files are written atomically
//! (`vm::write_atomic`), so either side may restart without reading half a message.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// `request.json`: the command, as the agent runs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ExecSpec {
    pub command: String,
    pub env: Vec<(String, String)>,
    pub timeout_ms: Option<u64>,
}

/// `result.json`: how it ended, written by the agent after its output files.
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

#[cfg(test)]
mod layering {
    //! The dependency goes one way: the agent uses only the shared modules, the shared
    //! modules use nothing of the control plane, and the exec client does not know the
    //! provider. Read from the sources, so a new import that tangles them fails here.

    /// The modules a file's code (not its comments, not its tests) names after `crate::`.
    fn uses(src: &str) -> Vec<String> {
        let code = src.split("#[cfg(test)]\nmod ").next().unwrap_or_default();
        let mut out = Vec::new();
        for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
            let mut rest = line;
            while let Some(i) = rest.find("crate::") {
                rest = &rest[i + "crate::".len()..];
                assert!(
                    !rest.starts_with('{'),
                    "write `use crate::a; use crate::b;`, not a group: {line}"
                );
                let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                out.push(name);
            }
        }
        out
    }

    const AGENT: [(&str, &str); 5] = [
        ("agent/mod.rs", include_str!("agent/mod.rs")),
        ("agent/supervisor.rs", include_str!("agent/supervisor.rs")),
        ("agent/cpu.rs", include_str!("agent/cpu.rs")),
        ("agent/wake.rs", include_str!("agent/wake.rs")),
        ("agent/workload.rs", include_str!("agent/workload.rs")),
    ];
    /// Shared by both sides. `store` is among them: the agent records its own instance's
    /// activity and end in the simulated cloud's state (as a hypervisor reports to its
    /// cloud), and re-records its row when the state was replaced.
    const SHARED: [(&str, &str); 6] = [
        ("vm.rs", include_str!("vm.rs")),
        ("wire.rs", include_str!("wire.rs")),
        ("lifecycle.rs", include_str!("lifecycle.rs")),
        ("store.rs", include_str!("store.rs")),
        ("pricing.rs", include_str!("pricing.rs")),
        ("error.rs", include_str!("error.rs")),
    ];
    const CONTROL_PLANE: [&str; 8] = [
        "provider",
        "exec",
        "host",
        "reconcile",
        "config",
        "buckets",
        "LocalBuilder",
        "LocalProvider",
    ];

    #[test]
    fn the_agent_uses_only_the_shared_modules() {
        let shared: Vec<&str> = SHARED.iter().map(|(f, _)| f.trim_end_matches(".rs")).collect();
        for (file, src) in AGENT {
            for m in uses(src) {
                assert!(
                    shared.contains(&m.as_str()),
                    "{file} uses crate::{m}, which is not shared"
                );
            }
        }
    }

    #[test]
    fn the_shared_modules_use_nothing_of_the_control_plane() {
        for (file, src) in SHARED {
            for m in uses(src) {
                assert!(!CONTROL_PLANE.contains(&m.as_str()), "{file} uses crate::{m}");
            }
        }
        for m in uses(include_str!("exec.rs")) {
            assert!(
                !["provider", "LocalProvider"].contains(&m.as_str()),
                "exec.rs uses crate::{m}"
            );
        }
        assert_eq!(uses("use crate::vm::{self, VmDir};\n// crate::provider\n"), ["vm"]);
        assert_eq!(
            uses("x\n#[cfg(test)]\nmod t { use crate::provider; }\n"),
            Vec::<String>::new()
        );
    }
}
