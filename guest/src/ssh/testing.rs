//! A real OpenSSH `sshd` on 127.0.0.1 for tests and benchmarks: throwaway host and
//! client keys and config in a scratch folder, a free port, the current user allowed in
//! by key only, `MaxStartups`/`MaxSessions` raised for fan-out. Missing `sshd` is an
//! error carrying the install command, never a skip.

use std::fmt;
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::hostkey::{HostKey, HostKeyPair, HostKeyPolicy};

/// Where Debian and Ubuntu's `openssh-server` puts the daemon.
pub const SSHD: &str = "/usr/sbin/sshd";

/// What to run when it is missing.
pub const INSTALL: &str = "apt-get install -y openssh-server";

/// An sshd (running once [`Sshd::run`] or [`Sshd::start`] succeeded); stopped and its
/// folder removed when dropped.
pub struct Sshd {
    child: Option<Child>,
    dir: PathBuf,
    addr: SocketAddr,
    host: HostKeyPair,
    user: String,
}

impl fmt::Debug for Sshd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sshd")
            .field("addr", &self.addr)
            .field("dir", &self.dir)
            .field("user", &self.user)
            .field("running", &self.child.is_some())
            .finish()
    }
}

static SEQ: AtomicU64 = AtomicU64::new(0);

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    o.mode(0o600);
    o.open(path)?.write_all(text.as_bytes())
}

/// The user running the tests, whom [`Sshd`] admits (and a backend under test logs in as).
pub fn current_user() -> Result<String, String> {
    let out = Command::new("id")
        .arg("-un")
        .output()
        .map_err(|e| format!("cannot run `id -un`: {e}"))?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port on 127.0.0.1: {e}"))
}

impl Sshd {
    /// Starts one on a free port. Errors say what is missing (`sshd`: install it).
    pub fn start() -> Result<Sshd, String> {
        Sshd::start_as(None, &[])
    }

    /// [`Sshd::prepare_as`], then running.
    pub fn start_as(host: Option<HostKeyPair>, authorized: &[String]) -> Result<Sshd, String> {
        let mut s = Sshd::prepare_as(host, authorized)?;
        // The port was free a moment ago; a concurrent test may take it in between,
        // so a failed start tries another one.
        let mut last = String::new();
        for _ in 0..5 {
            match s.run() {
                Ok(()) => return Ok(s),
                Err(e) => last = e,
            }
            s.addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        }
        Err(last)
    }

    /// Keys, config and a port chosen, not yet running ([`Sshd::run`] starts it): a
    /// test can connect first, as herd does to a VM that is still booting.
    pub fn prepare() -> Result<Sshd, String> {
        Sshd::prepare_as(None, &[])
    }

    /// Like [`Sshd::prepare`], standing in for a VM herd launched: serving `host` (the
    /// pair herd generated for the launch, installed as the boot script would) and
    /// admitting `authorized` public keys (the owner's) beside the test's own client key.
    pub fn prepare_as(host: Option<HostKeyPair>, authorized: &[String]) -> Result<Sshd, String> {
        if !Path::new(SSHD).exists() {
            return Err(format!("{SSHD} is missing: install it: {INSTALL}"));
        }
        let user = current_user()?;
        if user == "root" {
            // sshd's privilege separation needs its empty chroot folder.
            std::fs::create_dir_all("/run/sshd").map_err(|e| format!("cannot create /run/sshd: {e}"))?;
        }
        let dir = std::env::temp_dir().join(format!(
            "herd-sshd-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let io = |what: &str, e: std::io::Error| format!("cannot {what} in {}: {e}", dir.display());
        let host = match host {
            Some(h) => h,
            None => HostKeyPair::generate().map_err(|e| e.to_string())?,
        };
        let s = Sshd {
            child: None,
            dir: dir.clone(),
            addr: SocketAddr::from(([127, 0, 0, 1], free_port()?)),
            host,
            user,
        };
        // From here `s` owns the folder: dropping it on an error removes it.
        write_private(&dir.join("host_ed25519"), s.host.private_openssh()).map_err(|e| io("write the host key", e))?;
        let client = ssh_key::PrivateKey::random(&mut ssh_key::rand_core::OsRng, ssh_key::Algorithm::Ed25519)
            .map_err(|e| e.to_string())?;
        let pem = client.to_openssh(ssh_key::LineEnding::LF).map_err(|e| e.to_string())?;
        write_private(&dir.join("client_ed25519"), &pem).map_err(|e| io("write the client key", e))?;
        let public = client.public_key().to_openssh().map_err(|e| e.to_string())?;
        let mut keys = format!("{public} herd-test\n");
        for k in authorized {
            keys.push_str(k.trim());
            keys.push('\n');
        }
        std::fs::write(dir.join("authorized_keys"), keys).map_err(|e| io("write authorized_keys", e))?;
        std::fs::create_dir_all(dir.join("home")).map_err(|e| io("create the sessions' home", e))?;
        Ok(s)
    }

    /// Starts sshd on the prepared address and waits until it accepts connections.
    pub fn run(&mut self) -> Result<(), String> {
        if self.child.is_some() {
            return Ok(());
        }
        let dir = self.dir.clone();
        let io = |what: &str, e: std::io::Error| format!("cannot {what} in {}: {e}", dir.display());
        let cfg = dir.join("sshd_config");
        std::fs::write(&cfg, config(&dir, self.port())).map_err(|e| io("write sshd_config", e))?;
        let log = std::fs::File::create(dir.join("sshd.log")).map_err(|e| io("create sshd.log", e))?;
        let mut cmd = Command::new(SSHD);
        // sshd ends with the thread that started it, even when a test process exits
        // without dropping this (a fixture kept for the whole process).
        #[cfg(target_os = "linux")]
        {
            use std::os::unix::process::CommandExt;
            // SAFETY: prctl is async-signal-safe and touches only this child's state.
            unsafe {
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
        }
        let mut child = cmd
            .arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start {SSHD}: {e}"))?;
        let addr = self.addr;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("{SSHD} exited ({status}): {}", self.log().trim()));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{SSHD} did not listen on {addr} within 10s: {}",
                    self.log().trim()
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Becomes the VM of a new launch on the same address: stops, then serves `host`
    /// and admits `authorized` too, as that launch's boot script would set it up.
    pub fn restart_as(&mut self, host: HostKeyPair, authorized: &[String]) -> Result<(), String> {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let io = |what: &str, e: std::io::Error| format!("cannot {what}: {e}");
        write_private(&self.dir.join("host_ed25519"), host.private_openssh())
            .map_err(|e| io("write the host key", e))?;
        let mut keys = std::fs::read_to_string(self.dir.join("authorized_keys")).unwrap_or_default();
        for k in authorized {
            if !keys.lines().any(|l| l.trim() == k.trim()) {
                keys.push_str(k.trim());
                keys.push('\n');
            }
        }
        std::fs::write(self.dir.join("authorized_keys"), keys).map_err(|e| io("write authorized_keys", e))?;
        self.host = host;
        self.run()
    }

    /// The listening daemon's process id, while it runs (benchmarks read its CPU time).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The user sshd admits (the one running the tests).
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The host key this sshd serves, as herd would pin it.
    pub fn host_key(&self) -> &HostKey {
        self.host.public()
    }

    pub fn pinned(&self) -> HostKeyPolicy {
        HostKeyPolicy::pinned(self.host.public().clone())
    }

    /// The private key sshd accepts for [`Sshd::user`].
    pub fn client_key_path(&self) -> PathBuf {
        self.dir.join("client_ed25519")
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.join("sshd_config")
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A `known_hosts` file pinning this sshd's key (for the system `ssh` in benchmarks).
    pub fn known_hosts(&self) -> std::io::Result<PathBuf> {
        let p = self.dir.join("known_hosts");
        std::fs::write(
            &p,
            format!("[127.0.0.1]:{} {}\n", self.port(), self.host.public().to_openssh()),
        )?;
        Ok(p)
    }

    /// What sshd wrote on stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("sshd.log")).unwrap_or_default()
    }
}

/// The daemon's settings. `SetEnv HOME` gives every session a scratch home, as a fresh
/// cloud VM's login has: without it the shell sshd starts reads the tester's own
/// `~/.bashrc` even for a non-interactive command (Debian's bash does, when run by
/// sshd), and a machine whose rc files start pyenv or conda pays for that on every
/// command, hiding herd's own cost and changing the PATH a remote command sees.
fn config(dir: &Path, port: u16) -> String {
    let d = dir.display();
    format!(
        "Port {port}
ListenAddress 127.0.0.1
HostKey {d}/host_ed25519
AuthorizedKeysFile {d}/authorized_keys
PidFile {d}/sshd.pid
StrictModes no
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
MaxStartups 1000:30:2000
MaxSessions 1000
MaxAuthTries 6
LoginGraceTime 30
LogLevel ERROR
SetEnv HOME={d}/home
"
    )
}

impl Drop for Sshd {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
