//! What herd's launches can leave behind, found by tag in every enabled region, priced
//! per day, and deleted on request: unattached volumes and network interfaces,
//! unassociated Elastic IPs, and the owner's security groups and key pairs once no live
//! instance uses them.

use std::collections::BTreeSet;

use aws_sdk_ec2::types::{Filter, Tag as Ec2Tag, VolumeType};
use aws_sdk_ec2::Client;
use herd_core::{tags, ErrorKind, Leftover, Money, ReapResult, Result, Tags, TerminateOutcome};
use rust_decimal::Decimal;

use crate::error::from_sdk;

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

fn item(kind: &str, id: &str, region: &str, per_day: Money, t: Tags, reason: &str) -> Leftover {
    let mut l = Leftover::new(kind, id, region, per_day);
    l.tags = t;
    l.reason = reason.to_string();
    l
}

/// Regions the account can use (opted in, or needing no opt-in).
pub async fn enabled_regions(client: &Client) -> Result<Vec<String>> {
    let r = client
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
        .map_err(from_sdk)?;
    let mut v: Vec<String> = r
        .regions()
        .iter()
        .filter_map(|r| r.region_name().map(str::to_string))
        .collect();
    v.sort();
    Ok(v)
}

/// One region's leftovers.
pub async fn leftovers_in(client: &Client, region: &str, owner: Option<&str>) -> Result<Vec<Leftover>> {
    let mut out = Vec::new();
    let vols = client
        .describe_volumes()
        .filters(owner_filter(owner))
        .filters(Filter::builder().name("status").values("available").build())
        .send()
        .await
        .map_err(from_sdk)?;
    for v in vols.volumes() {
        let gb = Decimal::from(v.size().unwrap_or(0));
        let per_day = Money::usd(gb * volume_gb_month(v.volume_type()) / Decimal::from(30));
        out.push(item(
            VOLUME,
            v.volume_id().unwrap_or_default(),
            region,
            per_day,
            tag_map(v.tags()),
            "unattached volume",
        ));
    }
    let enis = client
        .describe_network_interfaces()
        .filters(owner_filter(owner))
        .filters(Filter::builder().name("status").values("available").build())
        .send()
        .await
        .map_err(from_sdk)?;
    for n in enis.network_interfaces() {
        let public = n.association().and_then(|a| a.public_ip()).is_some();
        let per_day = if public { address_per_day() } else { Money::ZERO };
        out.push(item(
            NETWORK_INTERFACE,
            n.network_interface_id().unwrap_or_default(),
            region,
            per_day,
            tag_map(n.tag_set()),
            "unattached network interface",
        ));
    }
    let addrs = client
        .describe_addresses()
        .filters(owner_filter(owner))
        .send()
        .await
        .map_err(from_sdk)?;
    for a in addrs.addresses() {
        if a.association_id().is_some() || a.instance_id().is_some_and(|i| !i.is_empty()) {
            continue;
        }
        let id = a.allocation_id().or(a.public_ip()).unwrap_or_default();
        out.push(item(
            ADDRESS,
            id,
            region,
            address_per_day(),
            tag_map(a.tags()),
            "Elastic IP not associated",
        ));
    }

    // Groups and key pairs are free, but they are herd's; gone once nothing uses them.
    let live = client
        .describe_instances()
        .filters(Filter::builder().name("tag-key").values(tags::OWNER).build())
        .filters(
            Filter::builder()
                .name("instance-state-name")
                .values("pending")
                .values("running")
                .values("shutting-down")
                .values("stopping")
                .values("stopped")
                .build(),
        )
        .send()
        .await
        .map_err(from_sdk)?;
    let mut used_groups = BTreeSet::new();
    let mut used_keys = BTreeSet::new();
    for i in live.reservations().iter().flat_map(|r| r.instances()) {
        used_keys.extend(i.key_name().map(str::to_string));
        used_groups.extend(
            i.security_groups()
                .iter()
                .filter_map(|g| g.group_id().map(str::to_string)),
        );
    }
    let groups = client
        .describe_security_groups()
        .filters(owner_filter(owner))
        .send()
        .await
        .map_err(from_sdk)?;
    for g in groups.security_groups() {
        let id = g.group_id().unwrap_or_default();
        if !used_groups.contains(id) {
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
    let keys = client
        .describe_key_pairs()
        .filters(owner_filter(owner))
        .send()
        .await
        .map_err(from_sdk)?;
    for k in keys.key_pairs() {
        let name = k.key_name().unwrap_or_default();
        if !used_keys.contains(name) {
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

/// Deletes one leftover; already gone is success.
pub async fn reap_one(client: &Client, l: &Leftover) -> Result<ReapResult> {
    let r = match l.kind.as_str() {
        VOLUME => client
            .delete_volume()
            .volume_id(&l.id)
            .send()
            .await
            .map(|_| ())
            .map_err(from_sdk),
        NETWORK_INTERFACE => client
            .delete_network_interface()
            .network_interface_id(&l.id)
            .send()
            .await
            .map(|_| ())
            .map_err(from_sdk),
        ADDRESS => client
            .release_address()
            .allocation_id(&l.id)
            .send()
            .await
            .map(|_| ())
            .map_err(from_sdk),
        SECURITY_GROUP => client
            .delete_security_group()
            .group_id(&l.id)
            .send()
            .await
            .map(|_| ())
            .map_err(from_sdk),
        KEY_PAIR => client
            .delete_key_pair()
            .key_name(&l.id)
            .send()
            .await
            .map(|_| ())
            .map_err(from_sdk),
        other => {
            return Err(herd_core::Error::invalid_spec(format!(
                "herd cannot reap a `{other}` on AWS"
            )));
        }
    };
    let outcome = match r {
        Ok(()) => TerminateOutcome::Terminated,
        Err(e) if e.kind() == ErrorKind::NotFound => TerminateOutcome::AlreadyGone,
        Err(e) => return Err(e.with_context("resource", l.id.clone())),
    };
    Ok(ReapResult::new(&l.kind, &l.id, outcome))
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
