//! Host keys, pinned: herd makes each cluster's ed25519 host key itself, hands the
//! private half to the boot script and keeps the public half, so the first connection
//! already knows which key the VM must show (no trust on first use). There is no
//! "accept any key" policy: [`HostKeyPolicy`] has one variant on purpose.
//! docs/decisions/0008-ssh-host-keys.md records the choice and its risks.

use std::fmt;

use herd_core::{Error, Result};
use russh::keys::{HashAlg, PublicKey};
use zeroize::Zeroizing;

/// Where the boot script puts the private half; sshd reads `HostKey` files from here
/// by default on every Linux image herd targets (sshd_config(5), `HostKey`).
pub const HOST_KEY_PATH: &str = "/etc/ssh/ssh_host_ed25519_key";

/// A host's public key, as pinned: parsed from an OpenSSH line (`ssh-ed25519 AAAA...`).
#[derive(Clone, PartialEq, Eq)]
pub struct HostKey(PublicKey);

impl HostKey {
    /// Parses `type base64 [comment]` (a `.pub` file or a `known_hosts` key field).
    pub fn parse(openssh: &str) -> Result<Self> {
        let text = openssh.trim();
        PublicKey::from_openssh(text).map(HostKey).map_err(|e| {
            Error::config(format!(
                "not an OpenSSH public key: `{}` ({e})",
                text.chars().take(40).collect::<String>()
            ))
            .with_hint("a pinned host key looks like `ssh-ed25519 AAAAC3Nza...`")
        })
    }

    /// `SHA256:...`, as `ssh-keygen -l` and ssh's own messages print it.
    pub fn fingerprint(&self) -> String {
        self.0.fingerprint(HashAlg::Sha256).to_string()
    }

    /// `ssh-ed25519 AAAA...` without a comment (for `known_hosts` and the ledger).
    pub fn to_openssh(&self) -> String {
        let mut k = self.0.clone();
        k.set_comment("");
        k.to_openssh().unwrap_or_default()
    }

    pub(crate) fn matches(&self, presented: &PublicKey) -> bool {
        // Key material only: a comment is not part of the key.
        self.0.key_data() == presented.key_data()
    }
}

impl fmt::Debug for HostKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HostKey({})", self.fingerprint())
    }
}

impl fmt::Display for HostKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.fingerprint())
    }
}

/// Which host keys a connection accepts. Only pinned keys: there is deliberately no
/// variant that accepts whatever the server shows, nor one that learns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostKeyPolicy {
    /// The server must present one of these keys (several during a key rotation).
    Pinned(Vec<HostKey>),
}

impl HostKeyPolicy {
    /// One pinned key.
    pub fn pinned(key: HostKey) -> Self {
        HostKeyPolicy::Pinned(vec![key])
    }

    pub(crate) fn accepts(&self, presented: &PublicKey) -> bool {
        match self {
            HostKeyPolicy::Pinned(keys) => keys.iter().any(|k| k.matches(presented)),
        }
    }

    pub(crate) fn describe(&self) -> String {
        match self {
            HostKeyPolicy::Pinned(keys) if keys.is_empty() => "no key at all".into(),
            HostKeyPolicy::Pinned(keys) => keys.iter().map(HostKey::fingerprint).collect::<Vec<_>>().join(" or "),
        }
    }

    /// Refuses an empty pin list before any connection: it could never match.
    pub(crate) fn check(&self) -> Result<()> {
        match self {
            HostKeyPolicy::Pinned(keys) if keys.is_empty() => Err(Error::config(
                "no host key is pinned for this connection; herd never connects without one",
            )
            .with_hint("pin the host key herd generated for the cluster (HostKeyPair::public)")),
            HostKeyPolicy::Pinned(_) => Ok(()),
        }
    }
}

/// A freshly generated ed25519 host key pair: the private half goes into the boot
/// script (and nowhere else: not the ledger, not logs), the public half is kept by herd.
pub struct HostKeyPair {
    private: Zeroizing<String>,
    public: HostKey,
}

impl fmt::Debug for HostKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostKeyPair")
            .field("public", &self.public)
            .field("private", &"<redacted>")
            .finish()
    }
}

impl HostKeyPair {
    /// A new pair from the operating system's random source.
    pub fn generate() -> Result<Self> {
        let key = ssh_key::PrivateKey::random(&mut ssh_key::rand_core::OsRng, ssh_key::Algorithm::Ed25519)
            .map_err(|e| Error::unexpected(format!("cannot generate an ed25519 host key: {e}")))?;
        let private = key
            .to_openssh(ssh_key::LineEnding::LF)
            .map_err(|e| Error::unexpected(format!("cannot encode the host key: {e}")))?;
        let public = key
            .public_key()
            .to_openssh()
            .map_err(|e| Error::unexpected(format!("cannot encode the host public key: {e}")))?;
        Ok(HostKeyPair {
            private: Zeroizing::new(private.to_string()),
            public: HostKey::parse(&public)?,
        })
    }

    /// The pair from its private half in OpenSSH format (what [`Self::private_openssh`]
    /// gives): how a stored launch key is read back. Only ed25519.
    pub fn from_private_openssh(text: &str) -> Result<Self> {
        let key = ssh_key::PrivateKey::from_openssh(text.as_bytes())
            .map_err(|e| Error::config(format!("not an OpenSSH private host key: {e}")))?;
        if key.algorithm() != ssh_key::Algorithm::Ed25519 || key.is_encrypted() {
            return Err(Error::config("a herd host key is an unencrypted ed25519 key"));
        }
        let public = key
            .public_key()
            .to_openssh()
            .map_err(|e| Error::unexpected(format!("cannot encode the host public key: {e}")))?;
        Ok(HostKeyPair {
            private: Zeroizing::new(ensure_newline(text)),
            public: HostKey::parse(&public)?,
        })
    }

    pub fn public(&self) -> &HostKey {
        &self.public
    }

    /// The private key in OpenSSH format. A secret: only the boot script may carry it.
    pub fn private_openssh(&self) -> &str {
        &self.private
    }

    /// Bash for the boot script (run as root): installs this pair as the ed25519 host
    /// key (private half 0600 from the start) and restarts sshd so it serves it. Until
    /// the restart the VM shows its image's own key, which herd refuses; see
    /// `ConnectOptions::host_key_settle`.
    pub fn install_script(&self) -> String {
        let mut s = String::new();
        s.push_str("# herd: the host key herd pinned before launch (no trust on first use)\n");
        s.push_str(&format!(
            "(umask 077; cat > {HOST_KEY_PATH}.herd <<'HERD_HOSTKEY_EOF'\n{}HERD_HOSTKEY_EOF\n)\n",
            ensure_newline(&self.private)
        ));
        s.push_str(&format!(
            "echo '{} herd' > {HOST_KEY_PATH}.pub.herd\n",
            self.public.to_openssh()
        ));
        s.push_str(&format!(
            "mv -f {HOST_KEY_PATH}.herd {HOST_KEY_PATH} && mv -f {HOST_KEY_PATH}.pub.herd {HOST_KEY_PATH}.pub\n"
        ));
        s.push_str(
            "systemctl restart ssh 2>/dev/null || systemctl restart sshd 2>/dev/null || service ssh restart 2>/dev/null || true\n",
        );
        s
    }

    /// The same pair as cloud-config `ssh_keys` (cloud-init's cc_ssh module), which
    /// installs it before sshd first starts: no window in which the image's key is
    /// served. For a multi-part user data with a `#cloud-config` part.
    pub fn cloud_config(&self) -> String {
        let mut s = String::from("ssh_deletekeys: true\nssh_genkeytypes: []\nssh_keys:\n  ed25519_private: |\n");
        for line in self.private.lines() {
            s.push_str("    ");
            s.push_str(line);
            s.push('\n');
        }
        s.push_str(&format!("  ed25519_public: {}\n", self.public.to_openssh()));
        s
    }
}

fn ensure_newline(s: &str) -> String {
    if s.ends_with('\n') {
        s.to_string()
    } else {
        format!("{s}\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_pair_round_trips_and_never_prints_its_secret() {
        let pair = HostKeyPair::generate().unwrap();
        assert!(pair.private_openssh().contains("OPENSSH PRIVATE KEY"));
        let text = pair.public().to_openssh();
        assert!(text.starts_with("ssh-ed25519 "), "{text}");
        assert_eq!(&HostKey::parse(&text).unwrap(), pair.public());
        assert!(pair.public().fingerprint().starts_with("SHA256:"));
        let debug = format!("{pair:?}");
        assert!(!debug.contains("PRIVATE"), "{debug}");
        assert!(debug.contains("redacted"));
        let back = HostKeyPair::from_private_openssh(pair.private_openssh()).unwrap();
        assert_eq!(back.public(), pair.public());
        let other = HostKeyPair::generate().unwrap();
        assert_ne!(other.public(), pair.public(), "two pairs, two keys");
    }

    #[test]
    fn a_comment_does_not_change_the_key() {
        let pair = HostKeyPair::generate().unwrap();
        let with = format!("{} root@somewhere", pair.public().to_openssh());
        let parsed = HostKey::parse(&with).unwrap();
        assert!(HostKeyPolicy::pinned(parsed).accepts(&pair.public().0));
    }

    #[test]
    fn bad_text_and_empty_pins_are_refused() {
        let e = HostKey::parse("ssh-ed25519 not-base64!").unwrap_err();
        assert_eq!(e.kind(), herd_core::ErrorKind::ConfigInvalid);
        assert!(e.hint().unwrap().contains("ssh-ed25519"));
        assert!(HostKeyPolicy::Pinned(vec![]).check().is_err());
    }

    #[test]
    fn boot_snippets_carry_the_pair() {
        let pair = HostKeyPair::generate().unwrap();
        let script = pair.install_script();
        assert!(script.contains(pair.private_openssh().trim_end()));
        assert!(script.contains(&pair.public().to_openssh()));
        assert!(script.contains("umask 077"));
        let cc = pair.cloud_config();
        assert!(cc.contains("ed25519_private: |\n    -----BEGIN OPENSSH PRIVATE KEY-----"));
        assert!(cc.contains(&format!("ed25519_public: {}", pair.public().to_openssh())));
    }
}
