//! The SSH transport every cloud backend shares: how herd runs commands on its VMs and
//! ships files to them, in process (no `ssh` binary, no `~/.ssh/config`), so a person
//! never types an SSH option.
//!
//! - **One [`Transport`] per process** holds the limit on open sessions (a semaphore no
//!   larger than the open-file limit allows, [`fd_budget`]), so `herd exec` on 2,000 VMs
//!   queues instead of failing with "too many open files".
//! - **[`Transport::connect`]** opens a [`Session`]: TCP, the SSH handshake, the host key
//!   checked against the [`HostKeyPolicy`] (pinned keys only, see [`HostKeyPair`] and
//!   docs/decisions/0008-ssh-host-keys.md), then the owner's ed25519 [`ClientKey`]. While
//!   the VM boots (port closed, no greeting, dropped handshake) it retries through
//!   `herd_core::retry` for [`ConnectOptions::boot_patience`]. Errors are
//!   `herd_core::Error`s whose kind says what happened (`Timeout`, `Unavailable`,
//!   `Unauthenticated`, `PermissionDenied` for a wrong host key) and whose hint says what
//!   to check (a firewall rule made for an address that changed, a VM still booting, a
//!   closed port, the image's user name). Keepalives detect a dead VM.
//! - **[`Session::exec`]** runs a command with a time limit, streaming its output to a
//!   callback and keeping only the last bytes ([`Tail`]), and returns the exit code as a
//!   shell reports it; on timeout the command's process group gets TERM, then KILL.
//! - **[`Session::upload`]** ships files over the same connection (`cat` per file on its
//!   own channel, checked for size, renamed when whole).
//! - **[`testing::Sshd`]** starts a real OpenSSH `sshd` on 127.0.0.1 for tests.
//!
//! The crate is `russh` (pure Rust, maintained, tokio-native) with ring for ciphers: no
//! OpenSSL and no C build beyond ring's, which the workspace already compiles.

mod client;
mod exec;
mod hostkey;
pub mod remote;
mod store;
pub mod testing;
mod upload;

pub use client::{
    fd_budget, raise_fd_limit, ClientKey, ConnectOptions, Session, Transport, DEFAULT_MAX_SESSIONS, RESERVED_FDS,
};
pub use exec::{ExecOptions, ExecOutcome, Exit, Stream, Tail};
pub use hostkey::{HostKey, HostKeyPair, HostKeyPolicy, HOST_KEY_PATH};
pub use store::HostKeyStore;
pub use upload::{shell_quote, Uploaded};
