//! What herd's clusters can leave behind that bills or lingers: a herd-tagged resource
//! group with no live VM left (its VNet and NSG, and whatever else is in it), and, inside
//! herd's groups, managed disks no VM holds (`managedBy` empty), NICs attached to no VM
//! and public IPs bound to nothing. The inline NIC, IP and OS disk of a VM carry no tags
//! (ARM's inline configuration has no `tags` field), so they are herd's by the group they
//! are in: every group herd makes carries its owner and cluster tags. Each leftover has
//! its cost per day; each is checked again just before it goes.

use herd_core::plumbing::{owner_of, Owner};
use herd_core::{tags, ErrorKind, Leftover, Money, ReapResult, Result, TerminateOutcome};
use rust_decimal::Decimal;
use serde_json::Value;

use crate::client::{collect, herd_error, Arm};
use crate::list::{self, group_of, tags_of};

pub const GROUP: &str = "resource-group";
pub const DISK: &str = "disk";
pub const NIC: &str = "nic";
pub const PUBLIC_IP: &str = "public-ip";

/// Standard SSD LRS: E-tiers run about $0.075 per GiB-month in East US (E10, 128 GiB,
/// $9.60 per month: <https://azure.microsoft.com/en-us/pricing/details/managed-disks/>), over 30 days.
pub fn disk_per_day(gb: i64) -> Money {
    Money::usd(Decimal::new(75, 3) * Decimal::from(gb.max(1)) / Decimal::from(30))
}
/// A Standard static public IPv4 address: $0.005 per hour
/// (<https://azure.microsoft.com/en-us/pricing/details/ip-addresses/>).
pub fn public_ip_per_day() -> Money {
    Money::usd(Decimal::new(12, 2))
}

fn owned(t: &herd_core::Tags, owner: Option<&str>) -> bool {
    match owner {
        Some(o) => matches!(owner_of(t, o), Owner::Mine),
        None => t.get(tags::OWNER).is_some_and(|v| !v.is_empty()),
    }
}

fn name(v: &Value) -> String {
    v.get("name").and_then(Value::as_str).unwrap_or("").to_string()
}

fn location(v: &Value) -> String {
    v.get("location").and_then(Value::as_str).unwrap_or("").to_string()
}

/// herd's resource groups (of `owner`, or anyone's), by their own tags.
pub async fn groups(arm: &Arm, owner: Option<&str>) -> Result<Vec<Value>> {
    let filter = match owner {
        Some(o) => format!(
            "tagName eq '{}' and tagValue eq '{}'",
            tags::OWNER,
            tags::sanitize_value(o)
        ),
        None => format!("tagName eq '{}'", tags::OWNER),
    };
    let pages = arm
        .resources
        .resource_groups_client()
        .list(&arm.subscription)
        .filter(filter)
        .into_stream();
    Ok(collect(pages, "resourceGroups.list")
        .await?
        .into_iter()
        .filter(|g| owned(&tags_of(g), owner) && tags_of(g).contains_key(tags::CLUSTER))
        .collect())
}

/// Every leftover of `owner` (or anyone's), in the subscription.
pub async fn leftovers(arm: &Arm, owner: Option<&str>) -> Result<Vec<Leftover>> {
    let live = list::all(arm).await?;
    let mut out = Vec::new();
    for g in groups(arm, owner).await? {
        let gname = name(&g);
        let gtags = tags_of(&g);
        let region = location(&g);
        let mut inside = Vec::new();
        let what = format!("disks.listByResourceGroup in {gname}");
        let pages = arm
            .compute
            .disks_client()
            .list_by_resource_group(&arm.subscription, &gname)
            .into_stream();
        for d in collect(pages, &what).await.or_else(gone_is_empty)? {
            if d.get("managedBy")
                .and_then(Value::as_str)
                .is_some_and(|m| !m.is_empty())
            {
                continue;
            }
            let gb = d
                .pointer("/properties/diskSizeGB")
                .and_then(Value::as_i64)
                .unwrap_or(30);
            inside.push((DISK, name(&d), location(&d), disk_per_day(gb), "no VM holds it"));
        }
        let pages = arm
            .network
            .network_interfaces_client()
            .list(&gname, &arm.subscription)
            .into_stream();
        for n in collect(pages, &format!("networkInterfaces.list in {gname}"))
            .await
            .or_else(gone_is_empty)?
        {
            if n.pointer("/properties/virtualMachine/id").is_some() {
                continue;
            }
            inside.push((NIC, name(&n), location(&n), Money::ZERO, "attached to no VM"));
        }
        let pages = arm
            .network
            .public_ip_addresses_client()
            .list(&gname, &arm.subscription)
            .into_stream();
        for ip in collect(pages, &format!("publicIPAddresses.list in {gname}"))
            .await
            .or_else(gone_is_empty)?
        {
            if ip.pointer("/properties/ipConfiguration/id").is_some() {
                continue;
            }
            inside.push((
                PUBLIC_IP,
                name(&ip),
                location(&ip),
                public_ip_per_day(),
                "bound to nothing",
            ));
        }
        let has_live = live
            .iter()
            .any(|i| group_of(i) == Some(gname.as_str()) && i.state.is_live());
        if has_live {
            for (kind, n, r, cost, why) in inside {
                let mut l = Leftover::new(kind, format!("{gname}/{n}"), r, cost);
                l.tags = gtags.clone();
                l.reason = why.into();
                out.push(l);
            }
        } else {
            let cost = inside.iter().fold(Money::ZERO, |a, x| a + x.3);
            let mut l = Leftover::new(GROUP, gname.clone(), region, cost);
            l.tags = gtags.clone();
            l.reason = if inside.is_empty() {
                "no VM left in the cluster's resource group".into()
            } else {
                format!("no VM left; holds {} orphaned disks, NICs or IPs", inside.len())
            };
            out.push(l);
        }
    }
    Ok(out)
}

fn gone_is_empty(e: herd_core::Error) -> Result<Vec<Value>> {
    if e.kind() == ErrorKind::NotFound {
        Ok(Vec::new())
    } else {
        Err(e)
    }
}

/// Deletes one leftover after checking it is still one (and still `owner`'s).
pub async fn reap_one(arm: &Arm, l: &Leftover, owner: &str, budget: std::time::Duration) -> ReapResult {
    match reap(arm, l, owner, budget).await {
        Ok(o) => ReapResult::new(&l.kind, &l.id, o),
        Err(e) => ReapResult::failed(&l.kind, &l.id, e.to_string()),
    }
}

async fn reap(arm: &Arm, l: &Leftover, owner: &str, budget: std::time::Duration) -> Result<TerminateOutcome> {
    let now = leftovers(arm, Some(owner)).await?;
    if !now.iter().any(|n| n.kind == l.kind && n.id == l.id) {
        return Ok(TerminateOutcome::AlreadyGone);
    }
    let (g, n) = l.id.split_once('/').unwrap_or((&l.id, ""));
    let what = format!("deleting {} {}", l.kind, l.id);
    let sub = &arm.subscription;
    // Each deletion is an async operation: waited for (a group's is only started: it
    // takes minutes, and what is in it is already no VM's).
    let r = match l.kind.as_str() {
        GROUP => arm
            .resources
            .resource_groups_client()
            .delete(g, sub)
            .send()
            .await
            .map(|_| None),
        DISK => arm
            .compute
            .disks_client()
            .delete(sub, g, n)
            .send()
            .await
            .map(|r| Some(r.as_raw_response().headers().clone())),
        NIC => arm
            .network
            .network_interfaces_client()
            .delete(g, n, sub)
            .send()
            .await
            .map(|r| Some(r.as_raw_response().headers().clone())),
        _ => arm
            .network
            .public_ip_addresses_client()
            .delete(g, n, sub)
            .send()
            .await
            .map(|r| Some(r.as_raw_response().headers().clone())),
    };
    let r = match r.map_err(|e| herd_error(e, &what)) {
        Ok(Some(h)) => arm.wait(&h, budget, &what).await,
        Ok(None) => Ok(()),
        Err(e) => Err(e),
    };
    match r {
        Ok(()) => Ok(TerminateOutcome::Terminated),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(TerminateOutcome::AlreadyGone),
        Err(e) => Err(e),
    }
}
