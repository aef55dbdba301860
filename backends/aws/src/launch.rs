//! RunInstances, once per launch when the account allows it.
//!
//! `MinCount = MaxCount = count`: EC2 then starts all of them or none, so a launch
//! never ends half-done with a refill to bookkeep; the Launcher's contract (exactly N
//! or an error and nothing running) holds in one call. `ClientToken` is the launch id,
//! so EC2 itself turns a repeated call into the first call's answer; herd also tags
//! every instance with the request id and a spec fingerprint, and looks for them before
//! launching, which covers emulators without `ClientToken` and tells a reused id with
//! another spec (`Conflict`) from a retry.

use aws_sdk_ec2::types::{
    BlockDeviceMapping, EbsBlockDevice, Filter, InstanceInterruptionBehavior, InstanceMarketOptionsRequest,
    InstanceType as Ec2Type, MarketType, Placement, ResourceType, ShutdownBehavior, SpotInstanceType,
    SpotMarketOptions, Tag, TagSpecification,
};
use aws_sdk_ec2::Client;
use chrono::{DateTime, Utc};
use herd_core::{Error, ErrorKind, Instance, LaunchRequest, Result, Tags};

use crate::access::Access;
use crate::error::from_sdk;
use crate::images::ResolvedImage;
use crate::instance::{convert, SPEC_TAG};

/// Tag on every launched resource: the id this request was sent under (a batch of a
/// split launch has its own).
pub const REQUEST_TAG: &str = "herd-request";

/// Resource types that get the launch's tags in the RunInstances call itself, so
/// nothing exists untagged even for an instant.
pub const TAGGED: [ResourceType; 3] = [
    ResourceType::Instance,
    ResourceType::Volume,
    ResourceType::NetworkInterface,
];

/// Every tag a launch's resources carry.
pub fn launch_tags(req: &LaunchRequest) -> Tags {
    let mut t = req.tags.clone();
    t.insert(REQUEST_TAG.into(), req.launch_id.to_string());
    t.insert(SPEC_TAG.into(), req.fingerprint());
    t
}

/// The instances of an earlier call with this request id, if any.
pub async fn existing(
    client: &Client,
    region: &str,
    req: &LaunchRequest,
    now: DateTime<Utc>,
) -> Result<Option<Vec<Instance>>> {
    let r = client
        .describe_instances()
        .filters(
            Filter::builder()
                .name(format!("tag:{REQUEST_TAG}"))
                .values(req.launch_id.as_str())
                .build(),
        )
        .send()
        .await
        .map_err(from_sdk)?;
    let found: Vec<Instance> = r
        .reservations()
        .iter()
        .flat_map(|res| res.instances())
        .map(|i| convert(i, region, None, now))
        .collect();
    if found.is_empty() {
        return Ok(None);
    }
    let fp = req.fingerprint();
    if let Some(other) = found.iter().find(|i| i.tag(SPEC_TAG) != Some(fp.as_str())) {
        return Err(Error::new(
            ErrorKind::Conflict,
            format!(
                "launch id {} was already used for another launch ({} x {} in {})",
                req.launch_id,
                found.len(),
                other.instance_type,
                other.region
            ),
        )
        .with_hint("use a new launch id, or repeat the first launch exactly"));
    }
    if found.len() != req.count as usize {
        return Err(Error::new(
            ErrorKind::Conflict,
            format!(
                "launch id {} already has {} instances, not {}",
                req.launch_id,
                found.len(),
                req.count
            ),
        ));
    }
    Ok(Some(found))
}

/// The ClientToken of attempt `zone` (none: EC2 picks the zone).
pub fn client_token(req: &LaunchRequest, zone: Option<&str>) -> String {
    let id = req.launch_id.as_str();
    match zone {
        None => id.to_string(),
        Some(z) => {
            let keep = 64usize.saturating_sub(z.len() + 1).min(id.len());
            format!("{}-{z}", &id[..keep])
        }
    }
}

/// Everything but the zone, resolved before the first call.
#[derive(Debug)]
pub struct Prepared<'a> {
    pub req: &'a LaunchRequest,
    pub image: ResolvedImage,
    pub access: Access,
    pub user_data: String,
}

/// One RunInstances call, in `zone` or wherever EC2 likes.
pub async fn run(
    client: &Client,
    p: &Prepared<'_>,
    zone: Option<&str>,
    region: &str,
    now: DateTime<Utc>,
) -> Result<Vec<Instance>> {
    let req = p.req;
    let tags = launch_tags(req);
    let count = i32::try_from(req.count).map_err(|_| Error::invalid_spec("count too large"))?;
    let mut call = client
        .run_instances()
        .image_id(&p.image.id)
        .instance_type(Ec2Type::from(req.instance_type.as_str()))
        .min_count(count)
        .max_count(count)
        .client_token(client_token(req, zone))
        .instance_initiated_shutdown_behavior(ShutdownBehavior::Terminate)
        .user_data(&p.user_data)
        .key_name(&p.access.key_name)
        .security_group_ids(&p.access.group_id);
    for kind in TAGGED {
        let mut spec = TagSpecification::builder().resource_type(kind);
        for (k, v) in &tags {
            spec = spec.tags(Tag::builder().key(k).value(v).build());
        }
        call = call.tag_specifications(spec.build());
    }
    if let Some(dev) = &p.image.root_device {
        call = call.block_device_mappings(
            BlockDeviceMapping::builder()
                .device_name(dev)
                .ebs(
                    EbsBlockDevice::builder()
                        .set_snapshot_id(p.image.root_snapshot.clone())
                        .set_volume_size(p.image.root_size_gib)
                        .delete_on_termination(true)
                        .build(),
                )
                .build(),
        );
    }
    if let Some(z) = zone {
        call = call.placement(Placement::builder().availability_zone(z).build());
    }
    if req.market.wants_spot() {
        call = call.instance_market_options(
            InstanceMarketOptionsRequest::builder()
                .market_type(MarketType::Spot)
                .spot_options(
                    SpotMarketOptions::builder()
                        .spot_instance_type(SpotInstanceType::OneTime)
                        .instance_interruption_behavior(InstanceInterruptionBehavior::Terminate)
                        .build(),
                )
                .build(),
        );
    }
    let r = call.send().await.map_err(from_sdk)?;
    Ok(r.instances()
        .iter()
        .map(|i| {
            let mut inst = convert(i, region, Some(&tags), now);
            if req.market.wants_spot() {
                inst.purchase = herd_core::PurchaseOption::Spot;
            }
            inst
        })
        .collect())
}

/// The region's zones that can take a launch, in name order.
pub async fn zones(client: &Client) -> Result<Vec<String>> {
    let r = client
        .describe_availability_zones()
        .filters(Filter::builder().name("state").values("available").build())
        .send()
        .await
        .map_err(from_sdk)?;
    let mut z: Vec<String> = r
        .availability_zones()
        .iter()
        .filter(|z| z.zone_type().is_none_or(|t| t == "availability-zone"))
        .filter_map(|z| z.zone_name().map(str::to_string))
        .collect();
    z.sort();
    Ok(z)
}

/// Runs the launch: where asked, or anywhere and then zone by zone while EC2 reports no
/// capacity. Returns the instances and the zones that had none.
pub async fn run_with_zone_fallback(
    client: &Client,
    p: &Prepared<'_>,
    region: &str,
    now: DateTime<Utc>,
) -> Result<(Vec<Instance>, Vec<String>)> {
    let mut short: Vec<String> = Vec::new();
    if let Some(z) = &p.req.zone {
        // A zone the user named is a choice, not a preference: no fallback.
        return match run(client, p, Some(z), region, now).await {
            Ok(v) => Ok((v, short)),
            Err(e) if e.kind() == ErrorKind::InsufficientCapacity => {
                Err(e.with_hint(format!("no capacity in {z}; drop --zone to let herd try the others")))
            }
            Err(e) => Err(e),
        };
    }
    let first = match run(client, p, None, region, now).await {
        Ok(v) => return Ok((v, short)),
        Err(e) if e.kind() == ErrorKind::InsufficientCapacity => e,
        Err(e) => return Err(e),
    };
    let mut last = first;
    for z in zones(client).await? {
        match run(client, p, Some(&z), region, now).await {
            Ok(v) => return Ok((v, short)),
            Err(e) if e.kind() == ErrorKind::InsufficientCapacity => {
                short.push(z);
                last = e;
            }
            Err(e) => return Err(e),
        }
    }
    Err(last.with_hint(format!(
        "no zone of {region} has capacity for {} now (tried {}); try another region or type",
        p.req.instance_type,
        short.join(", ")
    )))
}
