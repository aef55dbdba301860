//! The busy marker: how anything herd runs on a VM keeps it from ending as idle.
//!
//! The watchdog counts a file under `/run/herd/busy.d/` as activity when
//! - its first line is the pid of a live process (the holder runs), or
//! - its modification time is recent: it counts as activity at that time, so a holder
//!   that cannot name a process touches the file more often than the keepalive.
//!
//! A holder that crashes stops counting once its process is gone and the file's mtime
//! ages past the keepalive; the deadline ends the VM regardless of any marker.
//! `/run/herd/heartbeat` is read the same way (touch it to say "still here").
//! `herd exec` wraps what it runs with [`hold`].

use crate::boot::sq;

/// The marker directory's name under `/run/herd/`.
pub const DIR_NAME: &str = "busy.d";

/// The marker directory on the VM (under `$HERD_GUEST_ROOT` in tests).
pub const DIR: &str = "/run/herd/busy.d";

/// A bash snippet that runs `command` holding the marker `name` (letters, digits, `.`,
/// `_`, `-`; anything else becomes `_`): the marker names the shell running the command
/// and is removed when it ends, whatever its exit. The command's exit status is kept.
pub fn hold(name: &str, command: &str) -> String {
    let name: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let name = if name.is_empty() || name.starts_with('.') {
        format!("m{name}")
    } else {
        name
    };
    let marker = format!("\"${{HERD_GUEST_ROOT:-}}\"{}", sq(&format!("{DIR}/{name}")));
    // `$$` (not `$BASHPID`): the login shell may be dash. The marker is best effort: a
    // user who cannot write /run/herd still gets the command run, silently unmarked.
    // TERM/INT/HUP end the shell through `exit`, so the EXIT trap removes the marker
    // then too; after a KILL the pid is gone and the watchdog stops counting it. Only
    // builtins run before the marker is written once the folder exists (no `mkdir`
    // fork): a stop sent just after the command started finds it marked.
    format!(
        "{{ {{ [ -d \"${{HERD_GUEST_ROOT:-}}\"{dir} ] || mkdir -p \"${{HERD_GUEST_ROOT:-}}\"{dir}; }} && echo \"$$\" > {marker} && trap {remove} EXIT && trap 'exit 143' TERM && trap 'exit 130' INT && trap 'exit 129' HUP; }} 2>/dev/null\n{command}\n",
        dir = sq(DIR),
        remove = sq(&format!("rm -f -- {marker}")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_cannot_leave_the_marker_directory() {
        let s = hold("../../etc/passwd", "true");
        assert!(s.contains("/run/herd/busy.d/m.._.._etc_passwd'"), "{s}");
        assert!(!s.contains("busy.d/../"), "{s}");
        assert!(hold(".x", "true").contains("busy.d/m.x'"));
    }
}
