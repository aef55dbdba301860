//! How a person reaches an instance: a per-owner ed25519 key pair (kept by herd-guest,
//! the private half 0600, the public half imported into each region) and a security
//! group that admits SSH from one CIDR only (the caller's address, found by herd-guest,
//! unless configured). Both carry herd's owner tag, are reused by every launch of that
//! owner, and are reaped once no live instance uses them.
//!
//! What a lookup by name returns is compared with what was asked before it is used: the
//! key pair and the group must carry that name and this owner's `herd-owner` tag. A
//! foreign group that happens to be named `herd-<owner>` is never opened to SSH nor
//! launched into; the launch stops with an error saying whose it is. Two first launches
//! at once both try to create the group; the one that loses reads the winner's (checked
//! the same way) instead of failing on `InvalidGroup.Duplicate`.

use std::collections::HashMap;
use std::path::Path;

use aws_sdk_ec2::types::{Filter, IpPermission, IpRange, ResourceType, SecurityGroup, Tag, TagSpecification};
use herd_core::{tags, Error, ErrorKind, Result};
use tokio::sync::Mutex;

use crate::client::Ec2;
use crate::terminate::{owner_of, refusal, Owner};

/// The names herd gives an owner's key pair and security group: `herd-<owner>`, as the
/// key file herd-guest keeps.
pub fn resource_name(owner: &str) -> String {
    herd_guest::key::owner_name(owner)
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
    pub async fn ensure(&self, client: &Ec2, owner: &str, key_dir: &Path, cidr: &str) -> Result<Access> {
        let region = client.region();
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

pub use herd_guest::key::{local_key, private_key_path};

fn pairs(t: &[Tag]) -> impl Iterator<Item = (&str, &str)> {
    t.iter().filter_map(|t| Some((t.key()?, t.value().unwrap_or_default())))
}

/// The error for a key pair or group named like herd's that is not this owner's.
fn not_ours(client: &Ec2, what: &str, name: &str, who: &Owner) -> Error {
    let why = refusal(what, name, who).unwrap_or_default();
    client.context(
        Error::new(
            ErrorKind::PermissionDenied,
            format!("{why} (in {}); herd will not use it", client.region()),
        )
        .with_hint(format!(
            "herd names its {what} `{name}` after the owner: if it is yours, delete it and launch again; otherwise set another `owner` (HERD_OWNER)"
        ))
        .with_context("resource", name.to_string()),
    )
}

/// This owner's key pair named `name`, when the answer shows one.
async fn find_key(client: &Ec2, owner: &str, name: &str) -> Result<bool> {
    let existing = client
        .describe_key_pairs()
        .filters(Filter::builder().name("key-name").values(name).build())
        .send()
        .await
        .map_err(client.err())?;
    let Some(k) = existing.key_pairs().iter().find(|k| k.key_name() == Some(name)) else {
        return Ok(false);
    };
    match owner_of(pairs(k.tags()), owner) {
        Owner::Mine => Ok(true),
        other => Err(not_ours(client, "key pair", name, &other)),
    }
}

async fn ensure_key_pair(client: &Ec2, owner: &str, public: &str) -> Result<String> {
    let name = resource_name(owner);
    if find_key(client, owner, &name).await? {
        return Ok(name);
    }
    let r = client
        .import_key_pair()
        .key_name(&name)
        .public_key_material(aws_smithy_types::Blob::new(public.as_bytes()))
        .tag_specifications(owner_tags(owner, ResourceType::KeyPair))
        .send()
        .await;
    match r.map_err(client.err()) {
        Ok(k) if k.key_name().is_none_or(|n| n == name) => Ok(name),
        Ok(k) => Err(client.context(Error::unexpected(format!(
            "ImportKeyPair for `{name}` answered about key pair `{}`",
            k.key_name().unwrap_or_default()
        )))),
        // Another herd process imported it a moment ago: read it back, checked.
        Err(e) if e.kind() == ErrorKind::Conflict => {
            if find_key(client, owner, &name).await? {
                Ok(name)
            } else {
                Err(not_visible(client, "key pair", &name, e))
            }
        }
        Err(e) => Err(e),
    }
}

/// Just created (by us or a concurrent launch) yet not in the answer: EC2 catching up.
fn not_visible(client: &Ec2, what: &str, name: &str, e: Error) -> Error {
    client.context(
        Error::new(
            ErrorKind::Unavailable,
            format!("the {what} `{name}` exists but EC2 does not show it yet"),
        )
        .with_source(e),
    )
}

/// This owner's group named `name`, when the answer shows one; a foreign one of that
/// name (and none of ours) is an error.
async fn find_group(client: &Ec2, owner: &str, name: &str) -> Result<Option<SecurityGroup>> {
    let existing = client
        .describe_security_groups()
        .filters(Filter::builder().name("group-name").values(name).build())
        .send()
        .await
        .map_err(client.err())?;
    let named: Vec<&SecurityGroup> = existing
        .security_groups()
        .iter()
        .filter(|g| g.group_name() == Some(name) && g.group_id().is_some_and(|i| !i.is_empty()))
        .collect();
    if let Some(mine) = named.iter().find(|g| owner_of(pairs(g.tags()), owner) == Owner::Mine) {
        return Ok(Some((*mine).clone()));
    }
    match named.first() {
        Some(g) => Err(not_ours(
            client,
            "security group",
            name,
            &owner_of(pairs(g.tags()), owner),
        )),
        None => Ok(None),
    }
}

/// The group `id` just created, read back by id and checked: name and owner tag.
async fn read_back(client: &Ec2, owner: &str, name: &str, id: &str) -> Result<SecurityGroup> {
    let r = client
        .describe_security_groups()
        .group_ids(id)
        .send()
        .await
        .map_err(client.err());
    let r = match r {
        Ok(r) => r,
        Err(e) if e.kind() == ErrorKind::NotFound => return Err(not_visible(client, "security group", name, e)),
        Err(e) => return Err(e),
    };
    let Some(g) = r.security_groups().iter().find(|g| g.group_id() == Some(id)) else {
        return Err(client.context(Error::unexpected(format!(
            "EC2 created security group {id} but its answer about {id} does not include it"
        ))));
    };
    if g.group_name() != Some(name) {
        return Err(client.context(Error::unexpected(format!(
            "security group {id} was created as `{name}` but EC2 calls it `{}`",
            g.group_name().unwrap_or_default()
        ))));
    }
    match owner_of(pairs(g.tags()), owner) {
        Owner::Mine => Ok(g.clone()),
        other => Err(not_ours(client, "security group", name, &other)),
    }
}

async fn ensure_group(client: &Ec2, owner: &str, cidr: &str) -> Result<String> {
    let name = resource_name(owner);
    let group = match find_group(client, owner, &name).await? {
        Some(g) => g,
        None => {
            let r = client
                .create_security_group()
                .group_name(&name)
                .description("herd: SSH from the owner's address only")
                .tag_specifications(owner_tags(owner, ResourceType::SecurityGroup))
                .send()
                .await
                .map_err(client.err());
            match r {
                Ok(r) => {
                    let id = r.group_id().unwrap_or_default();
                    if id.is_empty() {
                        return Err(
                            client.context(Error::unexpected("CreateSecurityGroup answered without a group id"))
                        );
                    }
                    read_back(client, owner, &name, id).await?
                }
                // A concurrent first launch created it: use theirs, once checked.
                Err(e) if e.kind() == ErrorKind::Conflict => match find_group(client, owner, &name).await? {
                    Some(g) => g,
                    None => return Err(not_visible(client, "security group", &name, e)),
                },
                Err(e) => return Err(e),
            }
        }
    };
    let group_id = group.group_id().unwrap_or_default().to_string();
    let has_rule = group
        .ip_permissions()
        .iter()
        .any(|p| p.from_port() == Some(22) && p.ip_ranges().iter().any(|r| r.cidr_ip() == Some(cidr)));
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
            .map_err(client.err());
        match r {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::Conflict => {}
            Err(e) => return Err(e),
        }
    }
    Ok(group_id)
}

/// This machine's public address as a host CIDR, asked of checkip.amazonaws.com (plain
/// HTTP, 5 s) by herd-guest. Only used when no `ssh_cidr` is configured and no emulator
/// endpoint is set.
pub async fn caller_cidr() -> Result<String> {
    herd_guest::address::caller_cidr(&herd_guest::address::CheckIp::default())
        .await
        .map_err(|e| e.with_hint("set `ssh_cidr` under [aws] (e.g. \"203.0.113.7/32\") or HERD_AWS_SSH_CIDR"))
}
