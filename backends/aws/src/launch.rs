//! RunInstances, once per launch when the account allows it.
//!
//! `MinCount = MaxCount = count`: EC2 then starts all of them or none, so a launch
//! never ends half-done with a refill to bookkeep; the Launcher's contract (exactly N
//! or an error and nothing running) holds in one call. `ClientToken` is the launch id,
//! so EC2 itself turns a repeated call into the first call's answer; herd also tags
//! every instance with the request id and a spec fingerprint and looks for them before
//! launching (core's [`herd_core::plumbing::lookup`]: partial launches completed or
//! ended there), which covers emulators without `ClientToken`. Zone fallback is core's
//! too ([`herd_core::plumbing::zones`]); this file holds only the EC2 calls.

use aws_sdk_ec2::types::{
    AvailabilityZoneState, BlockDeviceMapping, EbsBlockDevice, Filter, InstanceInterruptionBehavior,
    InstanceMarketOptionsRequest, InstanceType as Ec2Type, MarketType, Placement, ResourceType, ShutdownBehavior,
    SpotInstanceType, SpotMarketOptions, Tag, TagSpecification,
};
use chrono::{DateTime, Utc};
use herd_core::plumbing::{try_zones, ZoneFallback};
use herd_core::{tags, Error, Instance, LaunchRequest, Result};

use crate::access::Access;
use crate::client::Ec2;
use crate::images::ResolvedImage;
use crate::instance::convert;
use crate::list::Pages;

/// Tag on every launched resource: the id this request was sent under (core's protocol).
pub use herd_core::tags::REQUEST as REQUEST_TAG;

/// Resource types that get the launch's tags in the RunInstances call itself, so
/// nothing exists untagged even for an instant.
pub const TAGGED: [ResourceType; 3] = [
    ResourceType::Instance,
    ResourceType::Volume,
    ResourceType::NetworkInterface,
];

/// The instances DescribeInstances lists under this request's tag, every page, as the
/// answer has them: core's lookup checks each one's own tags.
pub async fn lookup(ec2: &Ec2, region: &str, req: &LaunchRequest, now: DateTime<Utc>) -> Result<Vec<Instance>> {
    let mut found: Vec<Instance> = Vec::new();
    let mut pages = Pages::new("DescribeInstances", 1000);
    let mut token: Option<String> = None;
    loop {
        let r = ec2
            .describe_instances()
            .filters(
                Filter::builder()
                    .name(format!("tag:{REQUEST_TAG}"))
                    .values(req.launch_id.as_str())
                    .build(),
            )
            .set_next_token(token.take())
            .send()
            .await
            .map_err(ec2.err())?;
        found.extend(
            r.reservations()
                .iter()
                .flat_map(|res| res.instances())
                .map(|i| convert(i, region, None, now)),
        );
        match pages.next(r.next_token()).map_err(|e| ec2.context(e))? {
            Some(t) => token = Some(t),
            None => return Ok(found),
        }
    }
}

fn token_for(id: &str, zone: Option<&str>) -> String {
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
    /// The launch; its tags (request id, fingerprint) go on whatever this call starts.
    pub req: &'a LaunchRequest,
    pub image: ResolvedImage,
    pub access: Access,
    pub user_data: String,
    /// How many this call starts: `req.count`, or the rest of a partial launch.
    pub count: u32,
    /// The ClientToken base: the launch id, or core's `fill_token`.
    pub token: String,
}

/// One RunInstances call, in `zone` or wherever EC2 likes.
pub async fn run(
    client: &Ec2,
    p: &Prepared<'_>,
    zone: Option<&str>,
    region: &str,
    now: DateTime<Utc>,
) -> Result<Vec<Instance>> {
    let req = p.req;
    let tags = tags::request_tags(req);
    let count = i32::try_from(p.count).map_err(|_| Error::invalid_spec("count too large"))?;
    let mut call = client
        .run_instances()
        .image_id(&p.image.id)
        .instance_type(Ec2Type::from(req.instance_type.as_str()))
        .min_count(count)
        .max_count(count)
        .client_token(token_for(&p.token, zone))
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
    let r = call.send().await.map_err(client.err())?;
    let got: Vec<Instance> = r
        .instances()
        .iter()
        .map(|i| {
            let mut inst = convert(i, region, Some(&tags), now);
            if req.market.wants_spot() {
                inst.purchase = herd_core::PurchaseOption::Spot;
            }
            inst
        })
        .collect();
    // How many came back is the Launcher's to check: it terminates a short or long answer.
    Ok(got)
}

/// The region's zones that can take a launch, in name order.
pub async fn zones(client: &Ec2) -> Result<Vec<String>> {
    let r = client
        .describe_availability_zones()
        .filters(Filter::builder().name("state").values("available").build())
        .send()
        .await
        .map_err(client.err())?;
    let mut z: Vec<String> = r
        .availability_zones()
        .iter()
        .filter(|z| z.zone_type().is_none_or(|t| t == "availability-zone"))
        // The filter may have been ignored: only this region's available zones.
        .filter(|z| z.state().is_none_or(|s| *s == AvailabilityZoneState::Available))
        .filter(|z| z.region_name().is_none_or(|r| r == client.region()))
        .filter_map(|z| z.zone_name().map(str::to_string))
        .collect();
    z.sort();
    Ok(z)
}

/// Runs the launch: where asked, or anywhere and then zone by zone while EC2 reports no
/// capacity (core's fallback). Returns the instances and the zones that had none.
pub async fn run_with_zone_fallback(
    client: &Ec2,
    p: &Prepared<'_>,
    region: &str,
    now: DateTime<Utc>,
) -> Result<(Vec<Instance>, Vec<String>)> {
    let fb = ZoneFallback::new(region, &p.req.instance_type, p.req.zone.as_deref());
    try_zones(
        fb,
        || zones(client),
        |z| async move { run(client, p, z.as_deref(), region, now).await },
    )
    .await
}
