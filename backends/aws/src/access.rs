//! How a person reaches an instance: a per-owner ed25519 key pair (generated here, the
//! private half stored 0600, the public half imported into each region) and a security
//! group that admits SSH from one CIDR only. Both carry herd's owner tag, are reused by
//! every launch of that owner, and are reaped once no live instance uses them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use aws_sdk_ec2::types::{Filter, IpPermission, IpRange, ResourceType, Tag, TagSpecification};
use aws_sdk_ec2::Client;
use herd_core::{tags, Error, ErrorKind, Result};
use tokio::sync::Mutex;

use crate::error::from_sdk;

/// The names herd gives an owner's key pair and security group.
pub fn resource_name(owner: &str) -> String {
    format!("herd-{}", tags::sanitize_value(owner))
}

/// What a launch in one region needs to be reachable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    pub key_name: String,
    pub group_id: String,
}

/// Key pairs and groups already ensured, per region: a process checks each region once.
#[derive(Debug, Default)]
pub struct AccessCache(Mutex<HashMap<String, Access>>);

fn owner_tags(owner: &str, kind: ResourceType) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(kind)
        .tags(
            Tag::builder()
                .key(tags::OWNER)
                .value(tags::sanitize_value(owner))
                .build(),
        )
        .tags(Tag::builder().key("Name").value(resource_name(owner)).build())
        .build()
}

impl AccessCache {
    pub async fn ensure(
        &self,
        client: &Client,
        region: &str,
        owner: &str,
        key_dir: &Path,
        cidr: &str,
    ) -> Result<Access> {
        let mut cache = self.0.lock().await;
        if let Some(a) = cache.get(region) {
            return Ok(a.clone());
        }
        let public = local_key(key_dir, owner)?;
        let key_name = ensure_key_pair(client, owner, &public).await?;
        let group_id = ensure_group(client, owner, cidr).await?;
        let a = Access { key_name, group_id };
        cache.insert(region.to_string(), a.clone());
        Ok(a)
    }
}

/// The private key's path for `owner`.
pub fn private_key_path(key_dir: &Path, owner: &str) -> PathBuf {
    key_dir.join(format!("{}-ed25519", resource_name(owner)))
}

/// The owner's public key in OpenSSH format, generating the pair on first use.
pub fn local_key(key_dir: &Path, owner: &str) -> Result<String> {
    let private = private_key_path(key_dir, owner);
    let public = private.with_extension("pub");
    if let Ok(text) = std::fs::read_to_string(&public) {
        if private.exists() {
            // `type base64 [comment]`: the comment is for people, not for EC2.
            let key: Vec<&str> = text.split_whitespace().take(2).collect();
            return Ok(key.join(" "));
        }
    }
    let io = |what: &str, p: &Path, e: std::io::Error| {
        Error::config(format!("cannot {what} {}: {e}", p.display()))
            .with_hint("set `key_dir` under [aws] to a writable folder")
    };
    std::fs::create_dir_all(key_dir).map_err(|e| io("create", key_dir, e))?;
    let key = ssh_key::PrivateKey::random(&mut ssh_key::rand_core::OsRng, ssh_key::Algorithm::Ed25519)
        .map_err(|e| Error::unexpected(format!("cannot generate an ed25519 key: {e}")))?;
    let pem = key
        .to_openssh(ssh_key::LineEnding::LF)
        .map_err(|e| Error::unexpected(format!("cannot encode the key: {e}")))?;
    write_private(&private, pem.as_bytes()).map_err(|e| io("write", &private, e))?;
    let pubtext = key
        .public_key()
        .to_openssh()
        .map_err(|e| Error::unexpected(format!("cannot encode the public key: {e}")))?;
    std::fs::write(&public, format!("{pubtext} {}\n", resource_name(owner))).map_err(|e| io("write", &public, e))?;
    Ok(pubtext)
}

/// Created with mode 0600 from the start: never readable by others, not even briefly.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    o.mode(0o600);
    let mut f = o.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

async fn ensure_key_pair(client: &Client, owner: &str, public: &str) -> Result<String> {
    let name = resource_name(owner);
    let existing = client
        .describe_key_pairs()
        .filters(Filter::builder().name("key-name").values(&name).build())
        .send()
        .await
        .map_err(from_sdk)?;
    if !existing.key_pairs().is_empty() {
        return Ok(name);
    }
    let r = client
        .import_key_pair()
        .key_name(&name)
        .public_key_material(aws_smithy_types::Blob::new(public.as_bytes()))
        .tag_specifications(owner_tags(owner, ResourceType::KeyPair))
        .send()
        .await;
    match r.map_err(from_sdk) {
        Ok(_) => Ok(name),
        // Another herd process imported it a moment ago: same name, reuse it.
        Err(e) if e.kind() == ErrorKind::Conflict => Ok(name),
        Err(e) => Err(e),
    }
}

async fn ensure_group(client: &Client, owner: &str, cidr: &str) -> Result<String> {
    let name = resource_name(owner);
    let existing = client
        .describe_security_groups()
        .filters(Filter::builder().name("group-name").values(&name).build())
        .send()
        .await
        .map_err(from_sdk)?;
    let group_id = match existing.security_groups().first().and_then(|g| g.group_id()) {
        Some(id) => id.to_string(),
        None => {
            let r = client
                .create_security_group()
                .group_name(&name)
                .description("herd: SSH from the owner's address only")
                .tag_specifications(owner_tags(owner, ResourceType::SecurityGroup))
                .send()
                .await
                .map_err(from_sdk)?;
            r.group_id().unwrap_or_default().to_string()
        }
    };
    let has_rule = existing.security_groups().iter().any(|g| {
        g.ip_permissions()
            .iter()
            .any(|p| p.from_port() == Some(22) && p.ip_ranges().iter().any(|r| r.cidr_ip() == Some(cidr)))
    });
    if !has_rule {
        let r = client
            .authorize_security_group_ingress()
            .group_id(&group_id)
            .ip_permissions(
                IpPermission::builder()
                    .ip_protocol("tcp")
                    .from_port(22)
                    .to_port(22)
                    .ip_ranges(IpRange::builder().cidr_ip(cidr).description("herd: ssh").build())
                    .build(),
            )
            .send()
            .await
            .map_err(from_sdk);
        match r {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::Conflict => {}
            Err(e) => return Err(e),
        }
    }
    Ok(group_id)
}

/// This machine's public address as a /32, asked of checkip.amazonaws.com (plain HTTP,
/// 5 s). Only used when no `ssh_cidr` is configured and no emulator endpoint is set.
pub async fn caller_cidr() -> Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let fail = |m: String| {
        Error::new(
            ErrorKind::Unavailable,
            format!("cannot find this machine's public address: {m}"),
        )
        .with_hint("set `ssh_cidr` under [aws] (e.g. \"203.0.113.7/32\") or HERD_AWS_SSH_CIDR")
    };
    let io = async {
        let mut s = tokio::net::TcpStream::connect("checkip.amazonaws.com:80").await?;
        s.write_all(b"GET / HTTP/1.0\r\nHost: checkip.amazonaws.com\r\n\r\n")
            .await?;
        let mut body = String::new();
        s.read_to_string(&mut body).await?;
        Ok::<_, std::io::Error>(body)
    };
    let body = tokio::time::timeout(std::time::Duration::from_secs(5), io)
        .await
        .map_err(|_| fail("timed out".into()))?
        .map_err(|e| fail(e.to_string()))?;
    let ip = body.rsplit("\r\n\r\n").next().unwrap_or("").trim();
    ip.parse::<std::net::Ipv4Addr>()
        .map(|a| format!("{a}/32"))
        .map_err(|_| fail(format!("unexpected answer `{ip}`")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_generated_once_private_0600() {
        let dir = tempfile::tempdir().unwrap();
        let a = local_key(dir.path(), "Alice").unwrap();
        assert!(a.starts_with("ssh-ed25519 "), "{a}");
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
    }
}
