//! Where herd keeps each launch's host key between commands: `herd exec` in a new
//! process must pin the key the launch installed. One pair per launch id, in
//! `<key_dir>/host-keys/<launch-id>` (private half, 0600) and `<launch-id>.pub`, beside
//! the owner's private key, which already lets its holder into every VM of that owner.
//!
//! The private half stays because a launch retried under the same id (EC2's
//! `ClientToken`) must send the same user data, and so the same key; a file, not the
//! ledger, so the ledger never holds a secret. Created like the owner key: written whole
//! under a temporary name, then hard-linked into place (never replaced), so two
//! processes launching the same id end with one key. See
//! docs/decisions/0008-ssh-host-keys.md.

use std::io::Write;
use std::path::{Path, PathBuf};

use herd_core::{Error, ErrorKind, Result};

use super::hostkey::{HostKey, HostKeyPair};

/// The host keys of every launch, under one folder.
#[derive(Debug, Clone)]
pub struct HostKeyStore {
    dir: PathBuf,
}

fn io_error(what: &str, p: &Path, e: std::io::Error) -> Error {
    Error::config(format!("cannot {what} {}: {e}", p.display()))
        .with_hint("herd keeps each launch's SSH host key there, beside the owner's key: make the folder writable")
}

impl HostKeyStore {
    /// The store under the owner keys' folder (`key_dir/host-keys`).
    pub fn under(key_dir: &Path) -> Self {
        HostKeyStore {
            dir: key_dir.join("host-keys"),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn name(launch_id: &str) -> Result<&str> {
        let ok = !launch_id.is_empty()
            && launch_id.len() <= 128
            && launch_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
            && !launch_id.starts_with('-');
        if ok {
            Ok(launch_id)
        } else {
            Err(Error::invalid_spec(format!(
                "`{launch_id}` cannot name a host key file (letters, digits, `-`, `_` only)"
            )))
        }
    }

    /// The private key's path for `launch_id`.
    pub fn private_path(&self, launch_id: &str) -> Result<PathBuf> {
        Ok(self.dir.join(Self::name(launch_id)?))
    }

    fn public_path(&self, launch_id: &str) -> Result<PathBuf> {
        Ok(self.dir.join(format!("{}.pub", Self::name(launch_id)?)))
    }

    /// The pair for `launch_id`: the stored one, else a new one stored first (so a
    /// retried launch sends the same key).
    pub fn for_launch(&self, launch_id: &str) -> Result<HostKeyPair> {
        let path = self.private_path(launch_id)?;
        if let Some(pair) = self.load(launch_id)? {
            return Ok(pair);
        }
        std::fs::create_dir_all(&self.dir).map_err(|e| io_error("create", &self.dir, e))?;
        let pair = HostKeyPair::generate()?;
        let tmp = self.dir.join(format!(".{launch_id}.{}.tmp", std::process::id()));
        write_private(&tmp, pair.private_openssh().as_bytes()).map_err(|e| io_error("write", &tmp, e))?;
        let linked = std::fs::hard_link(&tmp, &path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return self
                    .load(launch_id)?
                    .ok_or_else(|| Error::unexpected(format!("{} vanished while herd created it", path.display())))
            }
            Err(e) => return Err(io_error("create", &path, e)),
        }
        let public = self.public_path(launch_id)?;
        std::fs::write(&public, format!("{}\n", pair.public().to_openssh()))
            .map_err(|e| io_error("write", &public, e))?;
        Ok(pair)
    }

    /// Files `pair` as `launch_id`'s when it has none yet (a key made elsewhere, e.g. by
    /// a test's sshd); an existing key is kept.
    pub fn install(&self, launch_id: &str, pair: &HostKeyPair) -> Result<()> {
        let path = self.private_path(launch_id)?;
        if path.exists() {
            return Ok(());
        }
        std::fs::create_dir_all(&self.dir).map_err(|e| io_error("create", &self.dir, e))?;
        match write_private(&path, pair.private_openssh().as_bytes()) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
            Err(e) => return Err(io_error("write", &path, e)),
        }
        let public = self.public_path(launch_id)?;
        std::fs::write(&public, format!("{}\n", pair.public().to_openssh())).map_err(|e| io_error("write", &public, e))
    }

    /// The stored pair, if any. A private file others can read is refused.
    pub fn load(&self, launch_id: &str) -> Result<Option<HostKeyPair>> {
        let path = self.private_path(launch_id)?;
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => zeroize::Zeroizing::new(t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error("read", &path, e)),
        };
        crate::key::private_only(&path, "the host key", |e| io_error("read", &path, e))?;
        HostKeyPair::from_private_openssh(&text).map(Some)
    }

    /// The public half herd pins for `launch_id`, or a `NotFound` saying what is missing.
    pub fn pinned(&self, launch_id: &str) -> Result<HostKey> {
        match self.load(launch_id)? {
            Some(p) => Ok(p.public().clone()),
            None => Err(Error::new(
                ErrorKind::NotFound,
                format!("herd has no host key for launch {launch_id} on this machine"),
            )
            .with_hint(format!(
                "the launch was made elsewhere or its key was removed from {}; herd never connects without the pinned key: copy that file from the machine that launched it, or launch again",
                self.dir.display()
            ))),
        }
    }

    /// Records that a VM of `launch_id` has shown herd's key: its boot script has run, so
    /// from now on a different key is refused at once instead of waited out
    /// ([`super::ConnectOptions::host_key_settle`]).
    pub fn confirm(&self, launch_id: &str) -> Result<()> {
        let p = self.dir.join(format!("{}.seen", Self::name(launch_id)?));
        if !p.exists() {
            std::fs::write(&p, b"").map_err(|e| io_error("write", &p, e))?;
        }
        Ok(())
    }

    /// Whether [`HostKeyStore::confirm`] was called for `launch_id` (by any process).
    pub fn confirmed(&self, launch_id: &str) -> bool {
        Self::name(launch_id).is_ok_and(|n| self.dir.join(format!("{n}.seen")).exists())
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    let mut f = o.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_launch_is_confirmed_once_seen_and_only_that_launch() {
        let d = tempfile::tempdir().unwrap();
        let s = HostKeyStore::under(d.path());
        s.for_launch("l-1").unwrap();
        assert!(!s.confirmed("l-1"));
        s.confirm("l-1").unwrap();
        s.confirm("l-1").unwrap();
        assert!(s.confirmed("l-1"));
        assert!(!s.confirmed("l-2"));
        assert!(!s.confirmed("../l-1"));
    }

    #[test]
    fn one_key_per_launch_kept_across_calls_and_0600() {
        let d = tempfile::tempdir().unwrap();
        let s = HostKeyStore::under(d.path());
        let a = s.for_launch("l-123").unwrap();
        let again = s.for_launch("l-123").unwrap();
        assert_eq!(a.public(), again.public());
        assert_eq!(s.pinned("l-123").unwrap(), *a.public());
        assert_ne!(s.for_launch("l-456").unwrap().public(), a.public());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(s.private_path("l-123").unwrap())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(s.pinned("nope").unwrap_err().kind(), ErrorKind::NotFound);
        assert!(s.for_launch("../x").is_err());
        std::fs::set_permissions(s.private_path("l-123").unwrap(), std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(s.load("l-123").unwrap_err().kind(), ErrorKind::PermissionDenied);
    }
}
