//! Starting an instance's agent: the control plane's side of a VM's birth. It writes the
//! VM directory (`vm.rs`'s layout) and its spec, then starts `herd-vm run <dir>` in its
//! own session with a cleared environment. Here rather than in `vm.rs`, which the agent
//! uses too, because how to start the agent (`AgentCommand`) is the provider's setting.

use std::io;
use std::process::{Command, Stdio};

use crate::config::AgentCommand;
use crate::vm::{clean_env, private_dir, private_file_options, write_atomic, VmDir, VmSpec};

/// Creates the VM directory and starts its agent in a new session, stdio to
/// `agent.log`. Returns the agent's pid (also its process group and session id).
pub(crate) fn start(agent: &AgentCommand, spec: &VmSpec) -> io::Result<i32> {
    let dir = VmDir::new(&spec.state_dir, &spec.id);
    private_dir(&dir.root)?;
    private_dir(&dir.disk())?;
    private_dir(&dir.exec())?;
    write_atomic(&dir.spec(), &serde_json::to_vec_pretty(spec).map_err(io::Error::other)?)?;
    let log = private_file_options().append(true).open(dir.agent_log())?;
    let mut cmd = Command::new(&agent.program);
    // A cleared environment: the CLI's credentials never reach the agent, nor through
    // it the user's commands.
    cmd.env_clear()
        .envs(clean_env(&dir.root))
        .args(&agent.args)
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
