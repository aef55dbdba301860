//! `herd ssh ID [-- CMD]`: a shell on an instance as its owner, through the system `ssh`
//! so the terminal, agent forwarding and the user's `~/.ssh/config` work as ever. The
//! host key is pinned, never learnt: herd writes the instance's key (the one its launch
//! installed) into a known-hosts file of its own and tells `ssh` to trust nothing else.
//! On the simulator, the "instance" is a directory here: a shell opens in its volume.

use std::ffi::OsString;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::Command;

use herd_core::{Error, ErrorKind, Login, SshLogin};

use super::target;
use super::ExitWith;
use crate::args::{SshArgs, TargetArgs};
use crate::clouds;
use crate::context::Context;

/// `ssh` exits 255 when it could not connect, authenticate or verify the host.
const SSH_FAILED: i32 = 255;

pub fn run(ctx: &Context, a: &SshArgs) -> anyhow::Result<()> {
    let clouds_ = ctx.clouds(&[])?;
    let (launchers, failures) = clouds::launchers(ctx, &clouds_);
    clouds::warn(ctx, &failures);
    let none = TargetArgs {
        cluster: None,
        launch_id: None,
    };
    let login = ctx.block_on(async {
        let targets = target::select(ctx, &launchers, Some(&a.id), &none).await?;
        let (l, i) = &targets[0];
        anyhow::Ok(l.login(&i.id).await?)
    })??;
    let mut cmd = match &login {
        Login::Ssh(s) => ssh_command(s, &a.id, &a.command, std::io::stdin().is_terminal())?,
        Login::Local { dir, env } => local_command(dir, env, &a.command),
        _ => return Err(Error::unsupported("this backend's login is not known to this herd").into()),
    };
    if a.print {
        println!("{}", shown(&cmd));
        return Ok(());
    }
    if matches!(login, Login::Local { .. }) && a.command.is_empty() {
        ctx.printer.note(format!(
            "a shell in {}'s volume on this machine (the simulator); `exit` leaves it",
            a.id
        ));
    }
    let status = cmd.status().map_err(|e| {
        let program = cmd.get_program().to_string_lossy().into_owned();
        Error::new(ErrorKind::Unavailable, format!("cannot run `{program}`: {e}"))
            .with_hint("install the OpenSSH client (`apt-get install openssh-client`, or your OS's package)")
    })?;
    let code = status.code().unwrap_or(1);
    if code == SSH_FAILED && matches!(login, Login::Ssh(_)) {
        ctx.printer.note(
            "hint: ssh could not log in (its message is above). A host key that does not match \
             means this is not the instance herd launched: do not force it; `herd ls` shows \
             whether it is still running, and a changed address of yours needs its firewall rule again",
        );
    }
    if code == 0 {
        Ok(())
    } else {
        Err(ExitWith(u8::try_from(code).unwrap_or(1)).into())
    }
}

/// The alias the pinned key is filed under, so a reused address never meets a stale key.
fn alias(id: &str) -> String {
    format!("herd-{id}")
}

/// The system `ssh` with the owner's key only and the instance's host key as the only one
/// it accepts (written to a known-hosts file beside the owner key).
fn ssh_command(s: &SshLogin, id: &str, command: &[String], terminal: bool) -> anyhow::Result<Command> {
    let known = known_hosts_file(&s.identity, id, &s.host_key)?;
    let mut c = Command::new("ssh");
    c.arg("-i")
        .arg(&s.identity)
        .args(["-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=yes"])
        .arg("-o")
        .arg(opt("UserKnownHostsFile", known.as_os_str()))
        .args(["-o", "GlobalKnownHostsFile=/dev/null", "-o", "UpdateHostKeys=no"])
        .arg("-o")
        .arg(format!("HostKeyAlias={}", alias(id)))
        .args(["-p", &s.addr.port().to_string()]);
    let cd = s
        .work_dir
        .as_deref()
        .map(|d| format!("cd {d} 2>/dev/null; "))
        .unwrap_or_default();
    if command.is_empty() {
        // A login shell, in the folder herd's commands run in.
        c.arg("-t");
        c.arg(format!("{}@{}", s.user, s.addr.ip()));
        c.arg(format!("{cd}exec \"${{SHELL:-/bin/sh}}\" -l"));
    } else {
        if terminal {
            c.arg("-t");
        }
        c.arg(format!("{}@{}", s.user, s.addr.ip()));
        c.arg("--");
        c.arg(format!("{cd}{}", command.join(" ")));
    }
    Ok(c)
}

fn opt(name: &str, value: &std::ffi::OsStr) -> OsString {
    let mut o = OsString::from(format!("{name}="));
    o.push(value);
    o
}

/// `<key dir>/known-hosts/<id>`: the instance's pinned key under its alias, rewritten on
/// each call (the key is public; the directory is the owner key's).
fn known_hosts_file(identity: &Path, id: &str, host_key: &str) -> anyhow::Result<PathBuf> {
    let dir = identity.parent().unwrap_or(Path::new(".")).join("known-hosts");
    std::fs::create_dir_all(&dir).map_err(|e| Error::unexpected(format!("cannot create {}: {e}", dir.display())))?;
    let safe: String = id
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' })
        .collect();
    let path = dir.join(safe);
    std::fs::write(&path, format!("{} {}\n", alias(id), host_key.trim()))
        .map_err(|e| Error::unexpected(format!("cannot write {}: {e}", path.display())))?;
    Ok(path)
}

/// A shell in the simulator's instance volume, with the variables its commands get.
fn local_command(dir: &Path, env: &[(String, String)], command: &[String]) -> Command {
    let shell = std::env::var_os("SHELL").unwrap_or_else(|| "/bin/sh".into());
    let mut c = Command::new(&shell);
    if !command.is_empty() {
        c.arg("-c").arg(command.join(" "));
    }
    c.current_dir(dir);
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

/// The command line as a user would paste it (`--print`).
fn shown(c: &Command) -> String {
    let mut parts = Vec::new();
    if let Some(d) = c.get_current_dir() {
        parts.push(format!("cd {} &&", quote(&d.to_string_lossy())));
    }
    for (k, v) in c.get_envs() {
        if let Some(v) = v {
            parts.push(format!("{}={}", k.to_string_lossy(), quote(&v.to_string_lossy())));
        }
    }
    parts.push(quote(&c.get_program().to_string_lossy()));
    parts.extend(c.get_args().map(|a| quote(&a.to_string_lossy())));
    parts.join(" ")
}

fn quote(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:@,+".contains(c)) {
        s.to_string()
    } else {
        herd_guest::ssh::shell_quote(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login(dir: &Path) -> SshLogin {
        SshLogin::new(
            "203.0.113.7:2222".parse().unwrap(),
            "ubuntu",
            dir.join("herd-alice-ed25519"),
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHostKeyForTest",
        )
        .work_dir("herd-work")
    }

    #[test]
    fn the_host_key_is_pinned_and_nothing_else_is_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let c = ssh_command(&login(dir.path()), "i-0abc", &[], false).unwrap();
        let line = shown(&c);
        assert!(line.contains("StrictHostKeyChecking=yes"), "{line}");
        assert!(line.contains("GlobalKnownHostsFile=/dev/null"), "{line}");
        assert!(line.contains("HostKeyAlias=herd-i-0abc"), "{line}");
        assert!(line.contains("IdentitiesOnly=yes"), "{line}");
        assert!(line.contains("-p 2222"), "{line}");
        assert!(line.contains("ubuntu@203.0.113.7"), "{line}");
        assert!(!line.contains("StrictHostKeyChecking=no"), "{line}");
        let known = std::fs::read_to_string(dir.path().join("known-hosts/i-0abc")).unwrap();
        assert_eq!(
            known,
            "herd-i-0abc ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHostKeyForTest\n"
        );
    }

    #[test]
    fn a_command_runs_in_the_work_dir_and_a_shell_gets_a_terminal() {
        let dir = tempfile::tempdir().unwrap();
        let shell = shown(&ssh_command(&login(dir.path()), "i-1", &[], false).unwrap());
        assert!(shell.contains(" -t "), "{shell}");
        assert!(
            shell.ends_with("'cd herd-work 2>/dev/null; exec \"${SHELL:-/bin/sh}\" -l'"),
            "{shell}"
        );
        let cmd = ["nproc".to_string()];
        let one = shown(&ssh_command(&login(dir.path()), "i-1", &cmd, false).unwrap());
        assert!(!one.contains(" -t "), "{one}");
        assert!(one.ends_with("-- 'cd herd-work 2>/dev/null; nproc'"), "{one}");
    }

    #[test]
    fn odd_ids_cannot_escape_the_known_hosts_folder() {
        let dir = tempfile::tempdir().unwrap();
        let p = known_hosts_file(&dir.path().join("k"), "../../etc/x", "ssh-ed25519 AAAA").unwrap();
        assert_eq!(p.parent().unwrap(), dir.path().join("known-hosts"));
    }
}
