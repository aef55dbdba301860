//! What herd's launches can leave behind, found by tag in every enabled region, priced
//! per day, and deleted on request: unattached volumes and network interfaces,
//! unassociated Elastic IPs, and the owner's security groups and key pairs once no live
//! instance uses them.
//!
//! Nothing is taken on the server's word. A candidate is kept only if the answer itself
//! shows this owner's `herd-owner` tag and a free state (a volume `available` with no
//! attachment, an interface `available` with none, an address with no association, a
//! group or key no live instance uses), whatever filters the server honoured. Just before
//! each delete the item is described again by id and checked again; after it, the item is
//! described once more, so an output-less call's "200" does not count as deleted unless
//! the thing is gone (or `deleting`). A failed item is reported and the others still go.

use std::collections::BTreeSet;

use aws_sdk_ec2::types::{
    Address, Filter, Instance as Ec2Instance, InstanceStateName, KeyPairInfo, NetworkInterface, NetworkInterfaceStatus,
    SecurityGroup, Tag as Ec2Tag, Volume, VolumeState, VolumeType,
};
use herd_core::{tags, Error, ErrorKind, Leftover, Money, ReapResult, Result, Tags, TerminateOutcome};
use rust_decimal::Decimal;

use crate::client::Ec2;
use crate::list::Pages;
use crate::terminate::{owner_of, refusal, Owner};

/// EBS prices per GB-month, us-east-1, from aws.amazon.com/ebs/pricing (2025). Other
/// regions cost about the same or more; a leftover's price is a reminder, not a bill.
fn volume_gb_month(kind: Option<&VolumeType>) -> Decimal {
    match kind {
        Some(VolumeType::Gp3) => Decimal::new(8, 2),
        Some(VolumeType::Gp2) => Decimal::new(10, 2),
        Some(VolumeType::Io1) | Some(VolumeType::Io2) => Decimal::new(125, 3),
        Some(VolumeType::St1) => Decimal::new(45, 3),
        Some(VolumeType::Sc1) => Decimal::new(15, 3),
        _ => Decimal::new(5, 2),
    }
}

/// A public IPv4 address costs $0.005 per hour, attached or not (AWS, from Feb 2024).
fn address_per_day() -> Money {
    Money::usd(Decimal::new(5, 3) * Decimal::from(24))
}

pub const VOLUME: &str = "volume";
pub const NETWORK_INTERFACE: &str = "network-interface";
pub const ADDRESS: &str = "address";
pub const SECURITY_GROUP: &str = "security-group";
pub const KEY_PAIR: &str = "key-pair";

/// Most pages of one Describe call in a leftovers search (at EC2's default page sizes,
/// far more resources than a region holds).
const MAX_PAGES: u32 = 1000;

fn owner_filter(owner: Option<&str>) -> Filter {
    match owner {
        Some(o) => Filter::builder()
            .name(format!("tag:{}", tags::OWNER))
            .values(tags::sanitize_value(o))
            .build(),
        None => Filter::builder().name("tag-key").values(tags::OWNER).build(),
    }
}

fn tag_map(t: &[Ec2Tag]) -> Tags {
    t.iter()
        .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or_default().to_string())))
        .collect()
}

fn pairs(t: &[Ec2Tag]) -> impl Iterator<Item = (&str, &str)> {
    t.iter().filter_map(|t| Some((t.key()?, t.value().unwrap_or_default())))
}

/// Whether tags from an answer say `owner` (or, with `None`, any herd owner).
fn owned_by(t: &[Ec2Tag], owner: Option<&str>) -> bool {
    match owner {
        Some(o) => owner_of(pairs(t), o) == Owner::Mine,
        None => pairs(t).any(|(k, _)| k == tags::OWNER),
    }
}

fn item(kind: &str, id: &str, region: &str, per_day: Money, t: Tags, reason: &str) -> Leftover {
    let mut l = Leftover::new(kind, id, region, per_day);
    l.tags = t;
    l.reason = reason.to_string();
    l
}

/// Regions the account can use (opted in, or needing no opt-in), as the answer says.
pub async fn enabled_regions(ec2: &Ec2) -> Result<Vec<String>> {
    let r = ec2
        .describe_regions()
        .filters(
            Filter::builder()
                .name("opt-in-status")
                .values("opt-in-not-required")
                .values("opted-in")
                .build(),
        )
        .send()
        .await
        .map_err(ec2.err())?;
    let mut v: Vec<String> = r
        .regions()
        .iter()
        .filter(|r| {
            r.opt_in_status()
                .is_none_or(|s| s == "opt-in-not-required" || s == "opted-in")
        })
        .filter_map(|r| r.region_name().map(str::to_string))
        .filter(|r| !r.is_empty())
        .collect();
    v.sort();
    v.dedup();
    if v.is_empty() {
        return Err(ec2.context(Error::unexpected("EC2 says this account has no enabled region")));
    }
    Ok(v)
}

/// Is `s` a state in which an instance holds its key pair and groups?
fn is_live(i: &Ec2Instance) -> bool {
    !matches!(i.state().and_then(|s| s.name()), Some(InstanceStateName::Terminated))
}

const LIVE_STATES: [&str; 5] = ["pending", "running", "shutting-down", "stopping", "stopped"];

/// Live instances matching `filters` (any owner: a hand-made instance using herd's
/// group still uses it), every page.
async fn live_instances(ec2: &Ec2, filters: Vec<Filter>) -> Result<Vec<Ec2Instance>> {
    let mut out = Vec::new();
    let mut pages = Pages::new("DescribeInstances", MAX_PAGES);
    let mut token = None;
    let mut f = filters;
    let mut state = Filter::builder().name("instance-state-name");
    for s in LIVE_STATES {
        state = state.values(s);
    }
    f.push(state.build());
    loop {
        let r = ec2
            .describe_instances()
            .set_filters(Some(f.clone()))
            .set_next_token(token.take())
            .send()
            .await
            .map_err(ec2.err())?;
        out.extend(
            r.reservations()
                .iter()
                .flat_map(|r| r.instances())
                .filter(|i| is_live(i))
                .cloned(),
        );
        match pages.next(r.next_token()).map_err(|e| ec2.context(e))? {
            Some(t) => token = Some(t),
            None => return Ok(out),
        }
    }
}

fn groups_of(i: &Ec2Instance) -> impl Iterator<Item = &str> {
    i.security_groups().iter().filter_map(|g| g.group_id()).chain(
        i.network_interfaces()
            .iter()
            .flat_map(|n| n.groups())
            .filter_map(|g| g.group_id()),
    )
}

async fn volumes(ec2: &Ec2, filters: Vec<Filter>, ids: Vec<String>) -> Result<Vec<Volume>> {
    let mut out = Vec::new();
    let mut pages = Pages::new("DescribeVolumes", MAX_PAGES);
    let mut token = None;
    loop {
        let r = ec2
            .describe_volumes()
            .set_filters((!filters.is_empty()).then(|| filters.clone()))
            .set_volume_ids((!ids.is_empty()).then(|| ids.clone()))
            .set_next_token(token.take())
            .send()
            .await
            .map_err(ec2.err())?;
        out.extend(r.volumes().iter().cloned());
        match pages.next(r.next_token()).map_err(|e| ec2.context(e))? {
            Some(t) => token = Some(t),
            None => return Ok(out),
        }
    }
}

async fn interfaces(ec2: &Ec2, filters: Vec<Filter>, ids: Vec<String>) -> Result<Vec<NetworkInterface>> {
    let mut out = Vec::new();
    let mut pages = Pages::new("DescribeNetworkInterfaces", MAX_PAGES);
    let mut token = None;
    loop {
        let r = ec2
            .describe_network_interfaces()
            .set_filters((!filters.is_empty()).then(|| filters.clone()))
            .set_network_interface_ids((!ids.is_empty()).then(|| ids.clone()))
            .set_next_token(token.take())
            .send()
            .await
            .map_err(ec2.err())?;
        out.extend(r.network_interfaces().iter().cloned());
        match pages.next(r.next_token()).map_err(|e| ec2.context(e))? {
            Some(t) => token = Some(t),
            None => return Ok(out),
        }
    }
}

async fn groups(ec2: &Ec2, filters: Vec<Filter>, ids: Vec<String>) -> Result<Vec<SecurityGroup>> {
    let mut out = Vec::new();
    let mut pages = Pages::new("DescribeSecurityGroups", MAX_PAGES);
    let mut token = None;
    loop {
        let r = ec2
            .describe_security_groups()
            .set_filters((!filters.is_empty()).then(|| filters.clone()))
            .set_group_ids((!ids.is_empty()).then(|| ids.clone()))
            .set_next_token(token.take())
            .send()
            .await
            .map_err(ec2.err())?;
        out.extend(r.security_groups().iter().cloned());
        match pages.next(r.next_token()).map_err(|e| ec2.context(e))? {
            Some(t) => token = Some(t),
            None => return Ok(out),
        }
    }
}

async fn addresses(ec2: &Ec2, filters: Vec<Filter>, ids: Vec<String>) -> Result<Vec<Address>> {
    // DescribeAddresses has no pages (API reference).
    let r = ec2
        .describe_addresses()
        .set_filters((!filters.is_empty()).then_some(filters))
        .set_allocation_ids((!ids.is_empty()).then_some(ids))
        .send()
        .await
        .map_err(ec2.err())?;
    Ok(r.addresses().to_vec())
}

async fn key_pairs(ec2: &Ec2, filters: Vec<Filter>, names: Vec<String>) -> Result<Vec<KeyPairInfo>> {
    // DescribeKeyPairs has no pages (API reference).
    let r = ec2
        .describe_key_pairs()
        .set_filters((!filters.is_empty()).then_some(filters))
        .set_key_names((!names.is_empty()).then_some(names))
        .send()
        .await
        .map_err(ec2.err())?;
    Ok(r.key_pairs().to_vec())
}

fn volume_is_free(v: &Volume) -> bool {
    v.state() == Some(&VolumeState::Available) && v.attachments().is_empty()
}

fn interface_is_free(n: &NetworkInterface) -> bool {
    n.status() == Some(&NetworkInterfaceStatus::Available) && n.attachment().is_none()
}

fn address_is_free(a: &Address) -> bool {
    let set = |s: Option<&str>| s.is_some_and(|s| !s.is_empty());
    !set(a.association_id()) && !set(a.instance_id()) && !set(a.network_interface_id())
}

fn volume_price(v: &Volume) -> Money {
    let gb = Decimal::from(v.size().unwrap_or(0).max(0));
    Money::usd(gb * volume_gb_month(v.volume_type()) / Decimal::from(30))
}

/// One region's leftovers: only what the answers show is `owner`'s (any herd owner's
/// with `None`) and free.
pub async fn leftovers_in(ec2: &Ec2, region: &str, owner: Option<&str>) -> Result<Vec<Leftover>> {
    let mut out = Vec::new();
    let status = |v: &str| Filter::builder().name("status").values(v).build();
    for v in volumes(ec2, vec![owner_filter(owner), status("available")], Vec::new()).await? {
        let Some(id) = v.volume_id().filter(|i| !i.is_empty()) else {
            continue;
        };
        if owned_by(v.tags(), owner) && volume_is_free(&v) && !out.iter().any(|l: &Leftover| l.id == id) {
            out.push(item(
                VOLUME,
                id,
                region,
                volume_price(&v),
                tag_map(v.tags()),
                "unattached volume",
            ));
        }
    }
    for n in interfaces(ec2, vec![owner_filter(owner), status("available")], Vec::new()).await? {
        let Some(id) = n.network_interface_id().filter(|i| !i.is_empty()) else {
            continue;
        };
        if owned_by(n.tag_set(), owner) && interface_is_free(&n) && !out.iter().any(|l| l.id == id) {
            let public = n.association().and_then(|a| a.public_ip()).is_some();
            let per_day = if public { address_per_day() } else { Money::ZERO };
            out.push(item(
                NETWORK_INTERFACE,
                id,
                region,
                per_day,
                tag_map(n.tag_set()),
                "unattached network interface",
            ));
        }
    }
    for a in addresses(ec2, vec![owner_filter(owner)], Vec::new()).await? {
        // Only VPC addresses, by allocation id: the id release acts on.
        let Some(id) = a.allocation_id().filter(|i| !i.is_empty()) else {
            continue;
        };
        if owned_by(a.tags(), owner) && address_is_free(&a) && !out.iter().any(|l| l.id == id) {
            out.push(item(
                ADDRESS,
                id,
                region,
                address_per_day(),
                tag_map(a.tags()),
                "Elastic IP not associated",
            ));
        }
    }

    // Groups and key pairs are free, but they are herd's; gone once nothing uses them.
    // Every live instance counts, whoever launched it.
    let live = live_instances(ec2, Vec::new()).await?;
    let used_keys: BTreeSet<&str> = live.iter().filter_map(|i| i.key_name()).collect();
    let used_groups: BTreeSet<&str> = live.iter().flat_map(groups_of).collect();
    for g in groups(ec2, vec![owner_filter(owner)], Vec::new()).await? {
        let Some(id) = g.group_id().filter(|i| !i.is_empty()) else {
            continue;
        };
        if owned_by(g.tags(), owner) && !used_groups.contains(id) && !out.iter().any(|l| l.id == id) {
            out.push(item(
                SECURITY_GROUP,
                id,
                region,
                Money::ZERO,
                tag_map(g.tags()),
                "no live instance uses it",
            ));
        }
    }
    for k in key_pairs(ec2, vec![owner_filter(owner)], Vec::new()).await? {
        let Some(name) = k.key_name().filter(|n| !n.is_empty()) else {
            continue;
        };
        let dup = out.iter().any(|l| l.kind == KEY_PAIR && l.id == name);
        if owned_by(k.tags(), owner) && !used_keys.contains(name) && !dup {
            out.push(item(
                KEY_PAIR,
                name,
                region,
                Money::ZERO,
                tag_map(k.tags()),
                "no live instance uses it",
            ));
        }
    }
    Ok(out)
}

/// What a check or delete of one item came to.
enum Step {
    /// Gone already, or deleted and verified gone.
    Gone(TerminateOutcome),
    Failed(String),
}

fn failed(why: impl Into<String>) -> Step {
    Step::Failed(why.into())
}

/// `Ok(None)`: EC2 says there is no such thing.
fn found<T>(r: Result<Vec<T>>) -> Result<Option<Vec<T>>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn not_in_answer(what: &str, id: &str) -> Step {
    failed(format!(
        "EC2's answer about {what} {id} did not include it; not deleted"
    ))
}

fn foreign(what: &str, id: &str, who: &Owner) -> Option<Step> {
    refusal(what, id, who).map(|r| failed(format!("{r}; not deleted")))
}

/// Deletes one leftover after checking it again on the resource itself; already gone is
/// success, and any failure is this item's (the rest still go).
pub async fn reap_one(ec2: &Ec2, l: &Leftover, owner: &str) -> ReapResult {
    let step = match l.kind.as_str() {
        VOLUME => reap_volume(ec2, &l.id, owner).await,
        NETWORK_INTERFACE => reap_interface(ec2, &l.id, owner).await,
        ADDRESS => reap_address(ec2, &l.id, owner).await,
        SECURITY_GROUP => reap_group(ec2, &l.id, owner).await,
        KEY_PAIR => reap_key(ec2, &l.id, owner).await,
        other => Ok(failed(format!("herd cannot reap a `{other}` on AWS"))),
    };
    match step {
        Ok(Step::Gone(o)) => ReapResult::new(&l.kind, &l.id, o),
        Ok(Step::Failed(why)) => ReapResult::failed(&l.kind, &l.id, why),
        Err(e) => ReapResult::failed(&l.kind, &l.id, e.message().to_string()),
    }
}

/// After a delete call: gone (or on its way) is done; still there is a failure.
fn after_delete<T>(
    what: &str,
    call: &str,
    id: &str,
    now: Option<Vec<T>>,
    still: impl Fn(&T) -> Option<String>,
) -> Step {
    match now {
        None => Step::Gone(TerminateOutcome::Terminated),
        Some(v) => match v.iter().find_map(still) {
            None => Step::Gone(TerminateOutcome::Terminated),
            Some(state) => failed(format!(
                "EC2 accepted {call} but still shows {what} {id} ({state}); run `herd reap` again to check"
            )),
        },
    }
}

async fn reap_volume(ec2: &Ec2, id: &str, owner: &str) -> Result<Step> {
    let ids = vec![id.to_string()];
    let Some(v) = found(volumes(ec2, Vec::new(), ids.clone()).await)? else {
        return Ok(Step::Gone(TerminateOutcome::AlreadyGone));
    };
    let Some(v) = v.into_iter().find(|v| v.volume_id() == Some(id)) else {
        return Ok(not_in_answer("volume", id));
    };
    if let Some(s) = foreign("volume", id, &owner_of(pairs(v.tags()), owner)) {
        return Ok(s);
    }
    if !volume_is_free(&v) {
        let on: Vec<&str> = v.attachments().iter().filter_map(|a| a.instance_id()).collect();
        return Ok(failed(format!(
            "volume {id} is {}{}; not deleted",
            v.state().map(|s| s.as_str()).unwrap_or("in an unknown state"),
            if on.is_empty() {
                String::new()
            } else {
                format!(", attached to {}", on.join(", "))
            }
        )));
    }
    match ec2.delete_volume().volume_id(id).send().await.map_err(ec2.err()) {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Step::Gone(TerminateOutcome::AlreadyGone)),
        Err(e) => return Err(e),
    }
    let now = found(volumes(ec2, Vec::new(), ids).await)?;
    Ok(after_delete("volume", "DeleteVolume", id, now, |v: &Volume| {
        let gone = matches!(v.state(), Some(VolumeState::Deleting) | Some(VolumeState::Deleted));
        (v.volume_id() == Some(id) && !gone).then(|| v.state().map(|s| s.as_str()).unwrap_or("?").to_string())
    }))
}

async fn reap_interface(ec2: &Ec2, id: &str, owner: &str) -> Result<Step> {
    let ids = vec![id.to_string()];
    let Some(v) = found(interfaces(ec2, Vec::new(), ids.clone()).await)? else {
        return Ok(Step::Gone(TerminateOutcome::AlreadyGone));
    };
    let Some(n) = v.into_iter().find(|n| n.network_interface_id() == Some(id)) else {
        return Ok(not_in_answer("network interface", id));
    };
    if let Some(s) = foreign("network interface", id, &owner_of(pairs(n.tag_set()), owner)) {
        return Ok(s);
    }
    if !interface_is_free(&n) {
        let on = n.attachment().and_then(|a| a.instance_id()).unwrap_or("something");
        return Ok(failed(format!(
            "network interface {id} is {} and attached to {on}; not deleted",
            n.status().map(|s| s.as_str()).unwrap_or("in an unknown state")
        )));
    }
    let r = ec2
        .delete_network_interface()
        .network_interface_id(id)
        .send()
        .await
        .map_err(ec2.err());
    match r {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Step::Gone(TerminateOutcome::AlreadyGone)),
        Err(e) => return Err(e),
    }
    let now = found(interfaces(ec2, Vec::new(), ids).await)?;
    Ok(after_delete(
        "network interface",
        "DeleteNetworkInterface",
        id,
        now,
        |n: &NetworkInterface| {
            (n.network_interface_id() == Some(id)).then(|| n.status().map(|s| s.as_str()).unwrap_or("?").to_string())
        },
    ))
}

async fn reap_address(ec2: &Ec2, id: &str, owner: &str) -> Result<Step> {
    let ids = vec![id.to_string()];
    let Some(v) = found(addresses(ec2, Vec::new(), ids.clone()).await)? else {
        return Ok(Step::Gone(TerminateOutcome::AlreadyGone));
    };
    let Some(a) = v.into_iter().find(|a| a.allocation_id() == Some(id)) else {
        return Ok(not_in_answer("Elastic IP", id));
    };
    if let Some(s) = foreign("Elastic IP", id, &owner_of(pairs(a.tags()), owner)) {
        return Ok(s);
    }
    if !address_is_free(&a) {
        let to = a.instance_id().or(a.network_interface_id()).unwrap_or("something");
        return Ok(failed(format!("Elastic IP {id} is associated with {to}; not released")));
    }
    match ec2.release_address().allocation_id(id).send().await.map_err(ec2.err()) {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Step::Gone(TerminateOutcome::AlreadyGone)),
        Err(e) => return Err(e),
    }
    let now = found(addresses(ec2, Vec::new(), ids).await)?;
    Ok(after_delete("Elastic IP", "ReleaseAddress", id, now, |a: &Address| {
        (a.allocation_id() == Some(id)).then(|| "still allocated".to_string())
    }))
}

/// Live instances (any owner) that use a group, read from the answer whatever the
/// server filtered. An interface still holding it makes EC2 refuse the delete
/// (`DependencyViolation`), which is then this item's failure.
async fn users_of_group(ec2: &Ec2, id: &str) -> Result<Vec<String>> {
    let by = vec![Filter::builder().name("instance.group-id").values(id).build()];
    let mut users: Vec<String> = live_instances(ec2, by)
        .await?
        .iter()
        .filter(|i| groups_of(i).any(|g| g == id))
        .filter_map(|i| i.instance_id().map(str::to_string))
        .collect();
    users.sort();
    users.dedup();
    Ok(users)
}

async fn reap_group(ec2: &Ec2, id: &str, owner: &str) -> Result<Step> {
    let ids = vec![id.to_string()];
    let Some(v) = found(groups(ec2, Vec::new(), ids.clone()).await)? else {
        return Ok(Step::Gone(TerminateOutcome::AlreadyGone));
    };
    let Some(g) = v.into_iter().find(|g| g.group_id() == Some(id)) else {
        return Ok(not_in_answer("security group", id));
    };
    if let Some(s) = foreign("security group", id, &owner_of(pairs(g.tags()), owner)) {
        return Ok(s);
    }
    let users = users_of_group(ec2, id).await?;
    if !users.is_empty() {
        return Ok(failed(format!(
            "security group {id} is used by {}; not deleted",
            users.join(", ")
        )));
    }
    match ec2.delete_security_group().group_id(id).send().await.map_err(ec2.err()) {
        Ok(r) if r.r#return() == Some(false) => {
            return Ok(failed(format!(
                "EC2 answered DeleteSecurityGroup for {id} with return=false"
            )));
        }
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Step::Gone(TerminateOutcome::AlreadyGone)),
        Err(e) => return Err(e),
    }
    let now = found(groups(ec2, Vec::new(), ids).await)?;
    Ok(after_delete(
        "security group",
        "DeleteSecurityGroup",
        id,
        now,
        |g: &SecurityGroup| (g.group_id() == Some(id)).then(|| "still there".to_string()),
    ))
}

async fn reap_key(ec2: &Ec2, name: &str, owner: &str) -> Result<Step> {
    let names = vec![name.to_string()];
    let Some(v) = found(key_pairs(ec2, Vec::new(), names.clone()).await)? else {
        return Ok(Step::Gone(TerminateOutcome::AlreadyGone));
    };
    let Some(k) = v.into_iter().find(|k| k.key_name() == Some(name)) else {
        return Ok(not_in_answer("key pair", name));
    };
    if let Some(s) = foreign("key pair", name, &owner_of(pairs(k.tags()), owner)) {
        return Ok(s);
    }
    let users: Vec<String> = live_instances(ec2, vec![Filter::builder().name("key-name").values(name).build()])
        .await?
        .iter()
        .filter(|i| i.key_name() == Some(name))
        .filter_map(|i| i.instance_id().map(str::to_string))
        .collect();
    if !users.is_empty() {
        return Ok(failed(format!(
            "key pair {name} is used by {}; not deleted",
            users.join(", ")
        )));
    }
    // By name: unique in a region, and what every EC2 and emulator honours.
    match ec2.delete_key_pair().key_name(name).send().await.map_err(ec2.err()) {
        Ok(r) if r.r#return() == Some(false) => {
            return Ok(failed(format!(
                "EC2 answered DeleteKeyPair for {name} with return=false"
            )));
        }
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Step::Gone(TerminateOutcome::AlreadyGone)),
        Err(e) => return Err(e),
    }
    let now = found(key_pairs(ec2, Vec::new(), names).await)?;
    Ok(after_delete(
        "key pair",
        "DeleteKeyPair",
        name,
        now,
        |k: &KeyPairInfo| (k.key_name() == Some(name)).then(|| "still there".to_string()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn a_100_gb_gp3_volume_costs_about_27_cents_a_day() {
        let per_day = Decimal::from(100) * volume_gb_month(Some(&VolumeType::Gp3)) / Decimal::from(30);
        assert_eq!(per_day.round_dp(4), Decimal::from_str("0.2667").unwrap());
        assert_eq!(address_per_day().amount, Decimal::from_str("0.120").unwrap());
    }
}
