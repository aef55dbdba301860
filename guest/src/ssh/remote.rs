//! `exec` on a cloud VM, for every backend: the SSH transport to the instance's public
//! address, as the configured login with the owner's key, pinning the host key its launch
//! installed (kept in the [`HostKeyStore`], found through the instance's `herd-request`
//! tag). One connection per instance is kept open for the process, so a sweep cell's
//! ship, setup and runs share one handshake. What runs is wrapped in a busy marker
//! (herd-guest's `busy::hold`), so the idle watchdog never ends a VM mid-command.
//!
//! Tests send addresses elsewhere with a backend's address-map variable
//! (`HERD_AWS_TEST_ADDRESS_MAP=*=127.0.0.1:PORT` or `IP=HOST:PORT,...`) and give every
//! launch one host key from a file, honoured only in builds with this crate's
//! `test-support` feature (which only the backends' test builds turn on): a release
//! binary cannot be pointed at another host by an environment variable.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::busy;
use crate::ssh::{
    shell_quote, ClientKey, ConnectOptions, ExecOptions, Exit, HostKey, HostKeyPolicy, HostKeyStore, Session, Stream,
    Transport,
};
use herd_core::{
    tags, Error, ErrorKind, ExecOutput, ExecRequest, Instance, InstanceState, Login, OutputSink, OutputStream, Result,
    SshLogin,
};
use tokio::sync::Mutex;

/// The port sshd listens on (herd's firewall rules open it to the caller only).
pub const SSH_PORT: u16 = 22;

/// Where commands run, relative to the login's home: shipped files land here too.
pub const WORK_DIR: &str = "herd-work";

/// Open sessions per instance and the transport they share.
#[derive(Debug, Default)]
pub struct Sessions {
    transport: Transport,
    open: Mutex<HashMap<String, Arc<Session>>>,
}

impl Sessions {
    /// The open session to `inst`, or a new one.
    pub async fn get(
        &self,
        inst: &Instance,
        addr: SocketAddr,
        user: &str,
        key: &ClientKey,
        store: &HostKeyStore,
    ) -> Result<Arc<Session>> {
        if let Some(s) = self.open.lock().await.get(&inst.id) {
            if !s.is_closed() {
                return Ok(s.clone());
            }
        }
        let pinned = pinned_key(inst, store)?;
        let request = inst.tag(tags::REQUEST).unwrap_or_default();
        // A wrong key is waited out only until the launch's VMs have shown herd's key once.
        let mut opts = ConnectOptions::default();
        if store.confirmed(request) {
            opts.host_key_settle = std::time::Duration::ZERO;
        }
        let s = Arc::new(
            self.transport
                .connect(addr, user, key, &HostKeyPolicy::pinned(pinned), &opts)
                .await?,
        );
        store.confirm(request)?;
        self.open.lock().await.insert(inst.id.clone(), s.clone());
        Ok(s)
    }

    /// Forgets a session that failed, so the next command connects again.
    pub async fn drop_session(&self, id: &str) {
        self.open.lock().await.remove(id);
    }
}

/// The host key `inst`'s launch installed, found through its `herd-request` tag.
pub fn pinned_key(inst: &Instance, store: &HostKeyStore) -> Result<HostKey> {
    let request = inst.tag(tags::REQUEST).ok_or_else(|| {
        Error::new(
            ErrorKind::NotFound,
            format!(
                "instance {} carries no {} tag, so herd cannot tell which host key it has",
                inst.id,
                tags::REQUEST
            ),
        )
        .with_hint("herd connects only to instances it launched itself")
    })?;
    store.pinned(request)
}

/// Where to reach `inst`: its public address on port 22 (through the map in `map_env`
/// in `test-support` builds).
pub fn address(inst: &Instance, map_env: &str) -> Result<SocketAddr> {
    if inst.state != InstanceState::Running {
        return Err(Error::new(
            ErrorKind::Conflict,
            format!("instance {} is {}, not running", inst.id, inst.state),
        )
        .with_hint("wait for it (`herd ls`) or launch another"));
    }
    let ip: IpAddr = inst.addresses.iter().find_map(|a| a.parse().ok()).ok_or_else(|| {
        Error::new(
            ErrorKind::NotFound,
            format!("instance {} has no IP address yet", inst.id),
        )
        .with_hint("the instance may still be starting; try again in a few seconds")
    })?;
    let addr = SocketAddr::new(ip, SSH_PORT);
    Ok(test_map(map_env, addr).unwrap_or(addr))
}

/// In `test-support` builds with `env` naming a key file: files that key as this
/// launch's (unless it has one already), so a test's sshd can serve it before herd
/// launches -- a sweep launches and connects within one run.
#[cfg(feature = "test-support")]
pub fn test_host_key(store: &HostKeyStore, launch_id: &str, env: &str) -> Result<()> {
    let Ok(path) = std::env::var(env) else {
        return Ok(());
    };
    let text = std::fs::read_to_string(&path).map_err(|e| Error::config(format!("{env}={path}: {e}")))?;
    store.install(launch_id, &crate::ssh::HostKeyPair::from_private_openssh(&text)?)
}

#[cfg(not(feature = "test-support"))]
pub fn test_host_key(_store: &HostKeyStore, _launch_id: &str, _env: &str) -> Result<()> {
    Ok(())
}

#[cfg(feature = "test-support")]
fn test_map(env: &str, addr: SocketAddr) -> Option<SocketAddr> {
    let map = std::env::var(env).ok()?;
    map.split(',').find_map(|pair| {
        let (from, to) = pair.trim().split_once('=')?;
        (from == "*" || from.parse::<IpAddr>().ok() == Some(addr.ip()))
            .then(|| to.parse().ok())
            .flatten()
    })
}

#[cfg(not(feature = "test-support"))]
fn test_map(_env: &str, _addr: SocketAddr) -> Option<SocketAddr> {
    None
}

/// The remote command: `herd-work` made and entered, the request's variables exported,
/// the user's command held by a busy marker named after this exec.
pub fn wrap(req: &ExecRequest) -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let mut s = format!("mkdir -p {WORK_DIR} && cd {WORK_DIR} || exit 125\n");
    for (k, v) in &req.env {
        if !k.is_empty()
            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !k.starts_with(|c: char| c.is_ascii_digit())
        {
            s.push_str(&format!("export {k}={}\n", shell_quote(v)));
        }
    }
    let name = format!("exec-{}-{}", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed));
    s.push_str(&busy::hold(&name, &req.command));
    s
}

/// How a backend reaches its VMs over SSH: its sessions, the owner's key, the login user
/// and (test builds) the variable that redirects addresses. One backend's `exec` and
/// `login` are then [`Access::exec`] and [`Access::login`] on an instance it has
/// checked is the owner's.
#[derive(Debug)]
pub struct Access<'a> {
    pub sessions: &'a Sessions,
    pub key_dir: &'a std::path::Path,
    pub owner: &'a str,
    pub user: &'a str,
    pub map_env: &'a str,
}

impl Access<'_> {
    /// Runs `req` on `inst` (one session per instance, reopened after a failure).
    pub async fn exec(&self, inst: &Instance, req: &ExecRequest, sink: OutputSink<'_>) -> Result<ExecOutput> {
        let addr = match address(inst, self.map_env) {
            Ok(a) => a,
            Err(e) => {
                self.sessions.drop_session(&inst.id).await;
                return Err(e);
            }
        };
        let key = ClientKey::load(&crate::key::private_key_path(self.key_dir, self.owner))?;
        let store = HostKeyStore::under(self.key_dir);
        let session = self.sessions.get(inst, addr, self.user, &key, &store).await?;
        let r = run(&session, req, sink).await;
        if r.is_err() {
            self.sessions.drop_session(&inst.id).await;
        }
        r
    }

    /// The system `ssh` to `inst`: its address, herd's key, its launch's host key pinned.
    pub fn login(&self, inst: &Instance) -> Result<Login> {
        let pinned = pinned_key(inst, &HostKeyStore::under(self.key_dir))?;
        let addr = address(inst, self.map_env)?;
        let identity = crate::key::private_key_path(self.key_dir, self.owner);
        Ok(Login::Ssh(
            SshLogin::new(addr, self.user, identity, pinned.to_openssh()).work_dir(WORK_DIR),
        ))
    }
}

/// Runs `req` on an open session, its output to `sink`.
pub async fn run(session: &Session, req: &ExecRequest, sink: OutputSink<'_>) -> Result<ExecOutput> {
    let mut opts = ExecOptions::default();
    if let Some(t) = req.timeout {
        opts.timeout = t;
    }
    let mut forward = |s: Stream, b: &[u8]| {
        sink(
            match s {
                Stream::Stdout => OutputStream::Stdout,
                Stream::Stderr => OutputStream::Stderr,
            },
            b,
        )
    };
    let out = session.exec(&wrap(req), &opts, &mut forward).await?;
    let code = match &out.exit {
        Exit::Code(_) => Some(out.code()),
        Exit::Signal(_) | Exit::TimedOut => None,
    };
    Ok(ExecOutput::new(
        code,
        out.stdout.text(),
        out.stderr.text(),
        out.elapsed,
        out.exit == Exit::TimedOut,
    )
    .with_output_bytes(out.stdout.total() + out.stderr.total()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wrapper_exports_only_valid_names_and_holds_a_marker() {
        let req = ExecRequest::new("echo hi")
            .env("A_1", "it's")
            .env("bad name", "x")
            .env("1X", "y");
        let w = wrap(&req);
        assert!(w.contains("export A_1='it'\\''s'\n"), "{w}");
        assert!(!w.contains("bad name") && !w.contains("1X"), "{w}");
        assert!(w.contains(busy::DIR) && w.ends_with("echo hi\n"), "{w}");
        assert!(w.starts_with("mkdir -p herd-work && cd herd-work"));
    }
}
