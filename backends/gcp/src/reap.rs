//! What herd's VMs can leave behind that bills: herd-labelled disks no VM uses (a boot
//! disk is `autoDelete`, so these come from a VM deleted with the disk kept, or made by
//! hand), herd's firewall rules no live VM of their owner needs, and herd-labelled
//! reserved addresses. Each with its cost per day; each checked again just before it goes.

use herd_core::{tags, Leftover, Money, ReapResult, Result, TerminateOutcome};
use rust_decimal::Decimal;
use serde_json::Value;

use crate::access;
use crate::client::{last_segment, region_of_zone, Gce};
use crate::launch::{labels_of, network_tag};
use crate::list;

pub const DISK: &str = "disk";
pub const FIREWALL: &str = "firewall";
pub const ADDRESS: &str = "address";

/// pd-standard, $0.04 per GB-month in us-central1
/// (<https://cloud.google.com/compute/disks-image-pricing#disk>), over 30 days.
fn disk_per_day(gb: i64) -> Money {
    Money::usd(Decimal::new(4, 2) * Decimal::from(gb) / Decimal::from(30))
}
/// A reserved external IPv4 address not in use: $0.01 per hour
/// (<https://cloud.google.com/vpc/network-pricing#ipaddress>).
fn address_per_day() -> Money {
    Money::usd(Decimal::new(24, 2))
}

fn owner_filter(owner: Option<&str>) -> String {
    match owner {
        Some(o) => format!("labels.{} = \"{}\"", tags::OWNER, tags::sanitize_value(o)),
        None => format!("labels.{}:*", tags::OWNER),
    }
}

fn owned(t: &herd_core::Tags, owner: Option<&str>) -> bool {
    match (t.get(tags::OWNER), owner) {
        (Some(v), Some(o)) => *v == tags::sanitize_value(o),
        (Some(v), None) => !v.is_empty(),
        _ => false,
    }
}

/// Every leftover of `owner` (or anyone's), in the project.
pub async fn leftovers(gce: &Gce, owner: Option<&str>) -> Result<Vec<Leftover>> {
    let mut out = Vec::new();
    let q = vec![("filter", owner_filter(owner)), ("returnPartialSuccess", "true".into())];
    for d in gce
        .pages("aggregated/disks", &q, "disks", "disks.aggregatedList")
        .await?
    {
        let t = labels_of(&d);
        let used = d.get("users").and_then(Value::as_array).is_some_and(|u| !u.is_empty());
        if used || !owned(&t, owner) {
            continue;
        }
        let zone = last_segment(d.get("zone").and_then(Value::as_str).unwrap_or("")).to_string();
        let name = d.get("name").and_then(Value::as_str).unwrap_or("").to_string();
        let gb: i64 = d
            .get("sizeGb")
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok())
            .unwrap_or(10);
        let mut l = Leftover::new(DISK, format!("{zone}/{name}"), region_of_zone(&zone), disk_per_day(gb));
        l.tags = t;
        l.reason = "no VM uses it".into();
        out.push(l);
    }
    for a in gce
        .pages("aggregated/addresses", &q, "addresses", "addresses.aggregatedList")
        .await?
    {
        let t = labels_of(&a);
        if a.get("status").and_then(Value::as_str) != Some("RESERVED") || !owned(&t, owner) {
            continue;
        }
        let region = last_segment(a.get("region").and_then(Value::as_str).unwrap_or("")).to_string();
        let name = a.get("name").and_then(Value::as_str).unwrap_or("").to_string();
        let mut l = Leftover::new(ADDRESS, format!("{region}/{name}"), region, address_per_day());
        l.tags = t;
        l.reason = "reserved, not in use".into();
        out.push(l);
    }
    let live = list::aggregated(gce, &format!("labels.{}:*", tags::OWNER), list::PAGE).await?;
    for r in access::rules(gce).await? {
        let Some(whose) = access::owner_of(&r) else { continue };
        if owner.is_some_and(|o| tags::sanitize_value(o) != whose) {
            continue;
        }
        let tag = network_tag(&whose);
        let needed = live
            .iter()
            .any(|i| i.state.is_live() && i.tags.get(tags::OWNER) == Some(&whose));
        if needed {
            continue;
        }
        let name = r.get("name").and_then(Value::as_str).unwrap_or("").to_string();
        // Firewall rules cost nothing by themselves; they are reaped as an open door.
        let mut l = Leftover::new(FIREWALL, name, "global", Money::ZERO);
        l.tags.insert(tags::OWNER.into(), whose);
        l.reason = format!("no live VM carries the network tag {tag}");
        out.push(l);
    }
    Ok(out)
}

/// Deletes one leftover after checking it is still one (and still `owner`'s).
pub async fn reap_one(gce: &Gce, l: &Leftover, owner: &str) -> ReapResult {
    match reap(gce, l, owner).await {
        Ok(o) => ReapResult::new(&l.kind, &l.id, o),
        Err(e) => ReapResult::failed(&l.kind, &l.id, e.to_string()),
    }
}

async fn reap(gce: &Gce, l: &Leftover, owner: &str) -> Result<TerminateOutcome> {
    let now = leftovers(gce, Some(owner)).await?;
    if !now.iter().any(|n| n.kind == l.kind && n.id == l.id) {
        return Ok(TerminateOutcome::AlreadyGone);
    }
    let path = match l.kind.as_str() {
        DISK => {
            let (zone, name) = l.id.split_once('/').unwrap_or(("", &l.id));
            format!("zones/{zone}/disks/{name}")
        }
        ADDRESS => {
            let (region, name) = l.id.split_once('/').unwrap_or(("", &l.id));
            format!("regions/{region}/addresses/{name}")
        }
        _ => format!("global/firewalls/{}", l.id),
    };
    match gce.delete(&path, &[], &format!("deleting {} {}", l.kind, l.id)).await {
        Ok(_) => Ok(TerminateOutcome::Terminated),
        Err(e) if e.kind() == herd_core::ErrorKind::NotFound => Ok(TerminateOutcome::AlreadyGone),
        Err(e) => Err(e),
    }
}
