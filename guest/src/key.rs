//! The owner's SSH key: one ed25519 pair per herd owner, generated on first use, the
//! private half created 0600 and never rewritten, the public half in OpenSSH format for
//! every cloud (EC2 `ImportKeyPair`, GCE `ssh-keys` metadata, Azure `publicKeys`).
//!
//! The private file is the truth: the public one is derived from it (and rewritten when
//! missing). Two first launches at once both generate a pair, but only one can create
//! the private file (a hard link never replaces), and the other uses the winner's, so
//! every cloud gets the key whose private half is on disk.

use std::io::Write;
use std::path::{Path, PathBuf};

use herd_core::{tags, Error, ErrorKind, Result};

/// `herd-<owner>`, the owner's name as herd writes it into names (sanitized like the
/// owner tag); the key file is named after it and clouds name their key resources so.
pub fn owner_name(owner: &str) -> String {
    format!("herd-{}", tags::sanitize_value(owner))
}

/// The private key's path for `owner`: `<key_dir>/herd-<owner>-ed25519`.
pub fn private_key_path(key_dir: &Path, owner: &str) -> PathBuf {
    key_dir.join(format!("{}-ed25519", owner_name(owner)))
}

/// The public key's path, beside the private one (`.pub`).
pub fn public_key_path(key_dir: &Path, owner: &str) -> PathBuf {
    private_key_path(key_dir, owner).with_extension("pub")
}

fn io_error(what: &str, p: &Path, e: std::io::Error) -> Error {
    Error::config(format!("cannot {what} {}: {e}", p.display())).with_hint(
        "herd keeps the owner's SSH key there: make the folder writable, or set the cloud's `key_dir` to one that is",
    )
}

/// Refuses a secret file others can read (`what` names it: "the private key"), as ssh
/// does; `read_error` words a failed stat the caller's way.
pub(crate) fn private_only(path: &Path, what: &str, read_error: impl FnOnce(std::io::Error) -> Error) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).map_err(read_error)?.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(Error::new(
                ErrorKind::PermissionDenied,
                format!(
                    "{what} {} can be read by others (mode {:o})",
                    path.display(),
                    mode & 0o777
                ),
            )
            .with_hint(format!("chmod 600 {}", path.display())));
        }
    }
    #[cfg(not(unix))]
    let _ = (path, what, read_error);
    Ok(())
}

/// The owner's public key in OpenSSH format (`ssh-ed25519 AAAA...`, no comment),
/// generating the pair on first use.
pub fn local_key(key_dir: &Path, owner: &str) -> Result<String> {
    let private = private_key_path(key_dir, owner);
    if let Some(public) = existing(&private)? {
        write_public(key_dir, owner, &public)?;
        return Ok(public);
    }
    std::fs::create_dir_all(key_dir).map_err(|e| io_error("create", key_dir, e))?;
    let key = ssh_key::PrivateKey::random(&mut ssh_key::rand_core::OsRng, ssh_key::Algorithm::Ed25519)
        .map_err(|e| Error::unexpected(format!("cannot generate an ed25519 key: {e}")))?;
    let pem = key
        .to_openssh(ssh_key::LineEnding::LF)
        .map_err(|e| Error::unexpected(format!("cannot encode the key: {e}")))?;
    // Written whole under a name of our own, then linked into place: the link fails if
    // another process got there first, and then its key is the one.
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let tmp = key_dir.join(format!(
        ".{}-ed25519.{}-{}.tmp",
        owner_name(owner),
        std::process::id(),
        SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    write_private(&tmp, pem.as_bytes()).map_err(|e| io_error("write", &tmp, e))?;
    let linked = std::fs::hard_link(&tmp, &private);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            let public = public_of(&key)?;
            write_public(key_dir, owner, &public)?;
            Ok(public)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let public = existing(&private)?.ok_or_else(|| {
                Error::unexpected(format!(
                    "{} appeared and vanished while herd created it",
                    private.display()
                ))
            })?;
            write_public(key_dir, owner, &public)?;
            Ok(public)
        }
        Err(e) => Err(io_error("create", &private, e)),
    }
}

fn public_of(key: &ssh_key::PrivateKey) -> Result<String> {
    key.public_key()
        .to_openssh()
        .map_err(|e| Error::unexpected(format!("cannot encode the public key: {e}")))
}

/// The public half of the private key at `private`, if there is one; a key others can
/// read, or one herd cannot parse, is an error (ssh would refuse it too).
fn existing(private: &Path) -> Result<Option<String>> {
    let text = match std::fs::read_to_string(private) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error("read", private, e)),
    };
    private_only(private, "the private key", |e| io_error("read", private, e))?;
    let key = ssh_key::PrivateKey::from_openssh(text.as_bytes()).map_err(|e| {
        Error::config(format!("{} is not an OpenSSH private key herd can read: {e}", private.display()))
            .with_hint("move it away: herd generates a new pair on the next launch (instances launched with the old one become unreachable)")
    })?;
    if key.is_encrypted() {
        return Err(
            Error::config(format!("{} is encrypted with a passphrase", private.display())).with_hint(
                "herd's key is used unattended: remove the passphrase (ssh-keygen -p) or move the file away",
            ),
        );
    }
    public_of(&key).map(Some)
}

/// `<public> herd-<owner>`: the comment is for people, no cloud reads it.
fn write_public(key_dir: &Path, owner: &str, public: &str) -> Result<()> {
    let path = public_key_path(key_dir, owner);
    let text = format!("{public} {}\n", owner_name(owner));
    if std::fs::read_to_string(&path).is_ok_and(|t| t == text) {
        return Ok(());
    }
    std::fs::write(&path, text).map_err(|e| io_error("write", &path, e))
}

/// Created with mode 0600 from the start: never readable by others, not even briefly.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    o.mode(0o600);
    let mut f = match o.open(path) {
        // A temp file left by a crashed run that had our pid: ours to replace.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            std::fs::remove_file(path)?;
            o.open(path)?
        }
        r => r?,
    };
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_generated_once_private_0600() {
        let dir = tempfile::tempdir().unwrap();
        let a = local_key(dir.path(), "Alice").unwrap();
        assert!(a.starts_with("ssh-ed25519 "), "{a}");
        assert_eq!(a.split_whitespace().count(), 2, "no comment: {a}");
        let b = local_key(dir.path(), "Alice").unwrap();
        assert_eq!(a, b, "reused, not regenerated");
        let p = private_key_path(dir.path(), "Alice");
        assert!(p.ends_with("herd-alice-ed25519"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        }
        assert!(std::fs::read_to_string(&p).unwrap().contains("OPENSSH PRIVATE KEY"));
        let public = std::fs::read_to_string(public_key_path(dir.path(), "Alice")).unwrap();
        assert_eq!(public, format!("{a} herd-alice\n"));
        // No temp file left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn a_lost_public_half_is_derived_never_a_new_pair() {
        let dir = tempfile::tempdir().unwrap();
        let a = local_key(dir.path(), "bob").unwrap();
        let private = std::fs::read(private_key_path(dir.path(), "bob")).unwrap();
        std::fs::remove_file(public_key_path(dir.path(), "bob")).unwrap();
        assert_eq!(local_key(dir.path(), "bob").unwrap(), a);
        assert_eq!(std::fs::read(private_key_path(dir.path(), "bob")).unwrap(), private);
        // A public file saying something else is corrected from the private one.
        std::fs::write(public_key_path(dir.path(), "bob"), "ssh-ed25519 AAAAother x\n").unwrap();
        assert_eq!(local_key(dir.path(), "bob").unwrap(), a);
    }

    #[test]
    fn concurrent_first_uses_agree_on_one_key() {
        let dir = tempfile::tempdir().unwrap();
        let keys: Vec<String> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..8)
                .map(|_| s.spawn(|| local_key(dir.path(), "carol").unwrap()))
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(keys.iter().all(|k| *k == keys[0]), "{keys:?}");
        assert_eq!(local_key(dir.path(), "carol").unwrap(), keys[0]);
    }

    #[cfg(unix)]
    #[test]
    fn a_readable_or_foreign_private_key_is_refused_not_replaced() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        local_key(dir.path(), "dan").unwrap();
        let p = private_key_path(dir.path(), "dan");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = local_key(dir.path(), "dan").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PermissionDenied);
        assert!(e.to_string().contains("can be read by others"), "{e}");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(&p, "not a key").unwrap();
        let e = local_key(dir.path(), "dan").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ConfigInvalid);
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "not a key", "never overwritten");
    }
}
