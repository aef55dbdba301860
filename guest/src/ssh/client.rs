//! Connecting: one TCP connection and SSH session per VM, opened under a shared limit
//! (a semaphore sized to the file descriptors this process may open), retried while the
//! VM boots (through the one retry loop, `herd_core::retry`), with keepalives, the
//! host key checked against the pinned ones before authenticating, and errors that say
//! what to check.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use chrono::{DateTime, Utc};
use herd_core::retry::RetryStats;
use herd_core::{
    Clock, Error, ErrorKind, Operation, Result, RetryObserver, RetryPolicy, SeededRng, SilentObserver, SystemClock,
};
use russh::client;
use russh::keys::{Algorithm, PrivateKey, PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use zeroize::Zeroizing;

use super::hostkey::HostKeyPolicy;

/// File descriptors kept for everything else the process opens (the ledger, logs,
/// HTTP clients to the cloud APIs, stdio): sessions never take these.
pub const RESERVED_FDS: usize = 128;

/// Sessions open at once unless the caller says otherwise: enough for a few hundred VMs
/// in flight, well under the 1,024 descriptors most systems allow by default.
pub const DEFAULT_MAX_SESSIONS: usize = 256;

/// How many sessions this process can hold open: its soft `RLIMIT_NOFILE` less
/// [`RESERVED_FDS`] (each session is one socket).
pub fn fd_budget() -> usize {
    nofile().0.saturating_sub(RESERVED_FDS).max(1)
}

/// Raises the soft open-file limit towards the hard one (at most `want`), as
/// `ulimit -n` would, and returns the soft limit now in force. For the CLI before a
/// large fan-out.
pub fn raise_fd_limit(want: usize) -> usize {
    let (soft, hard) = nofile();
    let target = want.min(hard);
    if target > soft {
        let lim = libc::rlimit {
            rlim_cur: target as libc::rlim_t,
            rlim_max: hard as libc::rlim_t,
        };
        // SAFETY: setrlimit reads a fully initialised struct we own.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } == 0 {
            return target;
        }
    }
    soft
}

fn nofile() -> (usize, usize) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass and nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return (1024, 1024);
    }
    let clamp = |v: libc::rlim_t| usize::try_from(v).unwrap_or(usize::MAX);
    (clamp(lim.rlim_cur), clamp(lim.rlim_max))
}

/// The owner's private key (ed25519, OpenSSH format), read once and shared by every
/// session. Never printed: `Debug` shows its path and public fingerprint only.
#[derive(Clone)]
pub struct ClientKey {
    key: Arc<PrivateKey>,
    path: PathBuf,
}

impl fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClientKey({}, {})", self.path.display(), self.fingerprint())
    }
}

impl ClientKey {
    /// Loads the private key at `path` (the owner key `herd_guest::key` keeps).
    pub fn load(path: &Path) -> Result<Self> {
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
            Error::config(format!("cannot read the SSH key {}: {e}", path.display()))
                .with_hint("herd creates the owner's key at the first launch; launch again or set `key_dir`")
        })?);
        let key = PrivateKey::from_openssh(text.as_bytes()).map_err(|e| {
            Error::config(format!("{} is not an OpenSSH private key: {e}", path.display())).with_hint(
                "herd expects the unencrypted ed25519 key it generated (`-----BEGIN OPENSSH PRIVATE KEY-----`)",
            )
        })?;
        if key.is_encrypted() {
            return Err(Error::config(format!("the SSH key {} is encrypted", path.display()))
                .with_hint("herd needs an unencrypted key; it generates its own per owner"));
        }
        Ok(ClientKey {
            key: Arc::new(key),
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `SHA256:...` of the public half.
    pub fn fingerprint(&self) -> String {
        self.key
            .public_key()
            .fingerprint(russh::keys::HashAlg::Sha256)
            .to_string()
    }
}

/// How to connect. The defaults suit a VM that was just launched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectOptions {
    /// One attempt's limit for the TCP connect, and again for the SSH handshake and
    /// again for authentication.
    pub connect_timeout: Duration,
    /// How long to keep retrying while the VM may still be booting (nothing listening
    /// yet, no answer, the connection dropped during the handshake).
    pub boot_patience: Duration,
    /// How long, from the first mismatch, a wrong host key is taken for "the boot
    /// script has not installed herd's key yet" and retried (never accepted) before it
    /// is refused for good. Zero: refuse at once (keys installed by cloud-config).
    pub host_key_settle: Duration,
    /// A keepalive after this long without hearing from the server...
    pub keepalive_interval: Duration,
    /// ...and the connection is declared lost after this many unanswered in a row.
    pub keepalive_max: usize,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            connect_timeout: Duration::from_secs(10),
            // A Linux image is usually reachable within a minute or two of "running";
            // five minutes covers a slow first boot without hiding a closed port.
            boot_patience: Duration::from_secs(5 * 60),
            // A boot script reaches its host key step within seconds of cloud-init's
            // final stage; two minutes covers a slow image without hiding an
            // interceptor for long.
            host_key_settle: Duration::from_secs(2 * 60),
            keepalive_interval: Duration::from_secs(15),
            keepalive_max: 4,
        }
    }
}

/// Opens sessions under one limit, shared by every cloud and every command of the
/// process. Cheap to clone.
#[derive(Clone)]
pub struct Transport {
    limit: Arc<Semaphore>,
    max: usize,
    clock: Arc<dyn Clock>,
    rng: Arc<SeededRng>,
    observer: Arc<dyn RetryObserver>,
    stats: Arc<RetryStats>,
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transport")
            .field("max_sessions", &self.max)
            .field("available", &self.limit.available_permits())
            .finish()
    }
}

impl Default for Transport {
    fn default() -> Self {
        Transport::new(DEFAULT_MAX_SESSIONS)
    }
}

impl Transport {
    /// At most `max_sessions` open at once, and never more than [`fd_budget`] allows.
    pub fn new(max_sessions: usize) -> Self {
        let seed = Utc::now().timestamp_nanos_opt().unwrap_or_default() as u64;
        Transport::with(
            max_sessions,
            Arc::new(SystemClock),
            SeededRng::new(seed),
            Arc::new(SilentObserver),
        )
    }

    /// With an injected clock (retry waits), jitter source and retry observer (the CLI
    /// prints "waiting for sshd on ..." from it).
    pub fn with(max_sessions: usize, clock: Arc<dyn Clock>, rng: SeededRng, observer: Arc<dyn RetryObserver>) -> Self {
        let max = max_sessions.clamp(1, fd_budget());
        Transport {
            limit: Arc::new(Semaphore::new(max)),
            max,
            clock,
            rng: Arc::new(rng),
            observer,
            stats: Arc::new(RetryStats::default()),
        }
    }

    /// The limit in force (after the file-descriptor cap).
    pub fn max_sessions(&self) -> usize {
        self.max
    }

    /// What the connect retries did so far (attempts, retries), for `--verbose`.
    pub fn stats(&self) -> &RetryStats {
        &self.stats
    }

    /// Connects to `addr` as `user` with `key`, accepting only a host key `host_keys`
    /// pins. Waits for a free slot first; the session holds it until dropped.
    pub async fn connect(
        &self,
        addr: SocketAddr,
        user: &str,
        key: &ClientKey,
        host_keys: &HostKeyPolicy,
        opts: &ConnectOptions,
    ) -> Result<Session> {
        host_keys.check().map_err(|e| e.with_operation(Operation::Exec))?;
        let permit = self
            .limit
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error::unexpected("the SSH session limit was closed"))?;
        let policy = RetryPolicy {
            max_attempts: u32::MAX,
            base: Duration::from_millis(250),
            cap: Duration::from_secs(5),
            rate_limit_patience: opts.boot_patience,
            patience: opts.boot_patience,
        };
        let first_mismatch: Mutex<Option<DateTime<Utc>>> = Mutex::new(None);
        let last_hint: Mutex<Option<String>> = Mutex::new(None);
        let r = policy
            .run_observed(
                self.clock.as_ref(),
                &self.rng,
                &self.stats,
                self.observer.as_ref(),
                || async {
                    let r = attempt(addr, user, key, host_keys, opts, self.clock.as_ref(), &first_mismatch).await;
                    if let Err(e) = &r {
                        *last_hint.lock().unwrap() = e.hint().map(str::to_string);
                    }
                    r
                },
            )
            .await;
        match r {
            Ok(handle) => Ok(Session {
                handle,
                addr,
                user: user.to_string(),
                _permit: permit,
            }),
            Err(e) if e.is_temporary() => {
                // The retry loop's give-up replaces the hint: keep what to check first.
                let gave_up = e.hint().unwrap_or_default().to_string();
                let mine = last_hint.lock().unwrap().take().unwrap_or_default();
                let patience = herd_core::guardrails::human(opts.boot_patience);
                Err(e.with_hint(format!("{mine} (gave up after {patience} of trying: {gave_up})")))
            }
            Err(e) => Err(e),
        }
    }
}

/// An open SSH connection to one VM. Commands and uploads run on its channels.
pub struct Session {
    pub(crate) handle: client::Handle<Checker>,
    pub(crate) addr: SocketAddr,
    pub(crate) user: String,
    _permit: OwnedSemaphorePermit,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Session({}@{})", self.user, self.addr)
    }
}

impl Session {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn user(&self) -> &str {
        &self.user
    }

    /// Whether the connection has ended (keepalives unanswered, server gone).
    pub fn is_closed(&self) -> bool {
        self.handle.is_closed()
    }

    /// Says goodbye to the server and frees the slot.
    pub async fn close(self) -> Result<()> {
        self.handle
            .disconnect(russh::Disconnect::ByApplication, "", "en")
            .await
            .map_err(|e| lost(self.addr, "closing the connection", e))
    }

    pub(crate) fn error(&self, kind: ErrorKind, message: impl Into<String>) -> Error {
        base(kind, self.addr, message)
    }
}

/// Checks the server's key during the handshake and remembers what it showed, so a
/// mismatch can name both fingerprints.
pub(crate) struct Checker {
    policy: HostKeyPolicy,
    presented: Arc<Mutex<Option<String>>>,
}

impl client::Handler for Checker {
    type Error = russh::Error;

    async fn check_server_key(&mut self, key: &PublicKeyOrCertificate) -> Result<bool, Self::Error> {
        let (shown, ok) = match key {
            PublicKeyOrCertificate::PublicKey { key, .. } => (
                key.fingerprint(russh::keys::HashAlg::Sha256).to_string(),
                self.policy.accepts(key),
            ),
            // herd never asks for certificates (Preferred::host_key_certificates stays empty).
            PublicKeyOrCertificate::Certificate(_) => ("a host certificate".to_string(), false),
        };
        *self.presented.lock().unwrap() = Some(shown);
        Ok(ok)
    }
}

fn base(kind: ErrorKind, addr: SocketAddr, message: impl Into<String>) -> Error {
    Error::new(kind, message)
        .with_operation(Operation::Exec)
        .with_context("address", addr.to_string())
}

/// A connection that failed after it was up.
pub(crate) fn lost(addr: SocketAddr, doing: &str, e: russh::Error) -> Error {
    base(
        ErrorKind::Unavailable,
        addr,
        format!("the SSH connection to {addr} failed while {doing}: {e}"),
    )
    .with_hint("the VM may have stopped or its network dropped; check it with `herd ls`")
}

fn config(opts: &ConnectOptions) -> Arc<client::Config> {
    // Only ed25519 host keys: what herd pins. A server with another key type only
    // fails negotiation, and is never accepted on a key herd did not make.
    let preferred = russh::Preferred {
        key: std::borrow::Cow::Borrowed(&[Algorithm::Ed25519]),
        ..Default::default()
    };
    Arc::new(client::Config {
        keepalive_interval: Some(opts.keepalive_interval),
        keepalive_max: opts.keepalive_max,
        inactivity_timeout: None,
        nodelay: true,
        preferred,
        ..Default::default()
    })
}

/// One try: TCP, handshake (host key checked), public-key authentication.
async fn attempt(
    addr: SocketAddr,
    user: &str,
    key: &ClientKey,
    host_keys: &HostKeyPolicy,
    opts: &ConnectOptions,
    clock: &dyn Clock,
    first_mismatch: &Mutex<Option<DateTime<Utc>>>,
) -> Result<client::Handle<Checker>> {
    let t = opts.connect_timeout;
    let secs = herd_core::guardrails::human(t);
    let port = addr.port();
    let tcp = match tokio::time::timeout(t, TcpStream::connect(addr)).await {
        Err(_) => {
            return Err(base(ErrorKind::Timeout, addr, format!("no answer from {addr} within {secs}")).with_hint(
                format!(
                    "check that the firewall rule still admits this machine: herd opened port {port} to the address it saw at launch, and if your public address changed since (another network, a VPN) the VM cannot answer; set `ssh_cidr` and launch again. Otherwise the VM may still be booting, or {addr} is not its address"
                ),
            ))
        }
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            return Err(base(ErrorKind::Unavailable, addr, format!("{addr} refused the connection (port {port} closed)"))
                .with_hint(format!(
                    "nothing listens on port {port} yet: the VM is probably still booting; if it has run for minutes, sshd is not running on it or listens on another port"
                )))
        }
        Ok(Err(e)) => {
            return Err(base(ErrorKind::Unavailable, addr, format!("cannot connect to {addr}: {e}")).with_hint(
                "check this machine's network and the VM's address (`herd ls`); the VM may still be booting",
            ))
        }
        Ok(Ok(s)) => s,
    };
    // Small packets (a channel open, an exec request) must leave at once: Nagle's
    // algorithm against the server's delayed ACKs costs 40 ms per exchange otherwise.
    let _ = tcp.set_nodelay(true);
    quickack(&tcp);
    let presented = Arc::new(Mutex::new(None));
    let checker = Checker {
        policy: host_keys.clone(),
        presented: presented.clone(),
    };
    let handshake = tokio::time::timeout(t, client::connect_stream(config(opts), QuickAck(tcp), checker)).await;
    let mut handle = match handshake {
        Err(_) => {
            return Err(base(
                ErrorKind::Timeout,
                addr,
                format!("{addr} accepted the connection but sent no SSH greeting within {secs}"),
            )
            .with_hint("the VM is probably still booting (sshd starting, or overloaded by many connections at once)"))
        }
        Ok(Err(russh::Error::UnknownKey)) => {
            let shown = presented
                .lock()
                .unwrap()
                .clone()
                .unwrap_or_else(|| "an unknown key".into());
            return Err(mismatch(addr, &shown, host_keys, opts, clock, first_mismatch));
        }
        Ok(Err(e @ russh::Error::NoCommonAlgo { .. })) => {
            return Err(base(
                ErrorKind::Unsupported,
                addr,
                format!("{addr} and herd share no SSH algorithm: {e}"),
            )
            .with_hint("herd pins ed25519 host keys; the VM's sshd must offer one (OpenSSH 6.5 or later)"))
        }
        Ok(Err(e)) => {
            return Err(base(
                ErrorKind::Unavailable,
                addr,
                format!("{addr} closed the connection during the SSH handshake: {e}"),
            )
            .with_hint("the VM is probably still booting, or its sshd refuses new connections for now (MaxStartups)"))
        }
        Ok(Ok(h)) => h,
    };
    let auth = tokio::time::timeout(
        t,
        handle.authenticate_publickey(user, PrivateKeyWithHashAlg::new(key.key.clone(), None)),
    )
    .await;
    match auth {
        Err(_) => Err(base(
            ErrorKind::Timeout,
            addr,
            format!("{addr} did not answer authentication within {secs}"),
        )
        .with_hint("the VM may be overloaded; try again")),
        Ok(Err(e)) => Err(lost(addr, "authenticating", e)),
        Ok(Ok(r)) if r.success() => Ok(handle),
        Ok(Ok(_)) => Err(base(
            ErrorKind::Unauthenticated,
            addr,
            format!(
                "{addr} refused the key {} ({}) for user `{user}`",
                key.path.display(),
                key.fingerprint()
            ),
        )
        .with_hint(
            "check the user name for the VM's image (e.g. `ubuntu`, `ec2-user`) and that the VM was launched with this owner's key; herd keeps one key per owner in `key_dir`",
        )),
    }
}

/// The connection's socket, acknowledging every read at once. sshd does not disable
/// Nagle's algorithm for non-interactive sessions, so each of its small packets
/// (channel confirmation, exit status) waits for our ACK of the one before, which
/// Linux delays by up to 40 ms when we have nothing to send. `TCP_QUICKACK` is not
/// sticky, hence re-armed after each read.
struct QuickAck(TcpStream);

#[cfg(target_os = "linux")]
fn quickack(s: &TcpStream) {
    use std::os::fd::AsRawFd;
    let one: libc::c_int = 1;
    // SAFETY: a valid socket descriptor, a c_int option value and its exact size.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_QUICKACK,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn quickack(_: &TcpStream) {}

impl AsyncRead for QuickAck {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let r = Pin::new(&mut self.0).poll_read(cx, buf);
        if r.is_ready() {
            quickack(&self.0);
        }
        r
    }
}

impl AsyncWrite for QuickAck {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}

/// A wrong host key: retried while the boot script may still be installing herd's key,
/// then refused for good. Never accepted either way.
fn mismatch(
    addr: SocketAddr,
    shown: &str,
    host_keys: &HostKeyPolicy,
    opts: &ConnectOptions,
    clock: &dyn Clock,
    first_mismatch: &Mutex<Option<DateTime<Utc>>>,
) -> Error {
    let now = clock.now();
    let first = *first_mismatch.lock().unwrap().get_or_insert(now);
    let settling = herd_core::clock::between(first, now) < opts.host_key_settle;
    let message = format!(
        "{addr} presented host key {shown}, but herd pinned {} for it",
        host_keys.describe()
    );
    if settling {
        return base(ErrorKind::Unavailable, addr, message).with_hint(
            "the VM may not have installed herd's host key yet (its boot script is still running); herd refuses the key and tries again",
        );
    }
    base(ErrorKind::PermissionDenied, addr, format!("refused: {message}"))
        .temporary(false)
        .with_hint(
            "herd never connects to a host whose key it did not pin: either this address now belongs to another machine (the VM was replaced: check `herd ls`), the boot script could not install the key (read the console output), or someone is intercepting the connection",
        )
}
