//! RunInstances, once per launch when the account allows it.
//!
//! `MinCount = MaxCount = count`: EC2 then starts all of them or none, so a launch
//! never ends half-done with a refill to bookkeep; the Launcher's contract (exactly N
//! or an error and nothing running) holds in one call. `ClientToken` is the launch id,
//! so EC2 itself turns a repeated call into the first call's answer; herd also tags
//! every instance with the request id and a spec fingerprint, and looks for them before
//! launching, which covers emulators without `ClientToken` and tells a reused id with
//! another spec (`Conflict`) from a retry.
//!
//! A retry that finds only part of an earlier call (43 of 50 by the request tag) first
//! gives EC2 a moment (it may not show them all yet), then launches the missing ones
//! under a derived `ClientToken` with the same tags, so the launch is whole; if that
//! fails, the part found is terminated before the error is returned: never half-running.

use aws_sdk_ec2::types::{
    AvailabilityZoneState, BlockDeviceMapping, EbsBlockDevice, Filter, InstanceInterruptionBehavior,
    InstanceMarketOptionsRequest, InstanceType as Ec2Type, MarketType, Placement, ResourceType, ShutdownBehavior,
    SpotInstanceType, SpotMarketOptions, Tag, TagSpecification,
};
use chrono::{DateTime, Utc};
use herd_core::{tags, Error, ErrorKind, Instance, LaunchRequest, Result, Tags};

use crate::access::Access;
use crate::client::Ec2;
use crate::images::ResolvedImage;
use crate::instance::{convert, SPEC_TAG};
use crate::list::Pages;

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

/// What an earlier call with this request id left.
#[derive(Debug)]
pub enum Existing {
    None,
    /// All of it: the repeat returns them and starts nothing.
    All(Vec<Instance>),
    /// Fewer than asked (not visible yet, or lost): to complete or end.
    Partial(Vec<Instance>),
}

/// The instances of an earlier call with this request id, read from the answer: only
/// those tagged with this request id and this owner count, whatever the server matched.
pub async fn existing(
    ec2: &Ec2,
    region: &str,
    req: &LaunchRequest,
    owner: &str,
    now: DateTime<Utc>,
) -> Result<Existing> {
    let owner = tags::sanitize_value(owner);
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
        for i in r.reservations().iter().flat_map(|res| res.instances()) {
            let inst = convert(i, region, None, now);
            let ours = inst.tag(REQUEST_TAG) == Some(req.launch_id.as_str())
                && inst.tag(tags::OWNER) == Some(owner.as_str())
                && !inst.id.is_empty();
            if ours && !found.iter().any(|f| f.id == inst.id) {
                found.push(inst);
            }
        }
        match pages.next(r.next_token()).map_err(|e| ec2.context(e))? {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    if found.is_empty() {
        return Ok(Existing::None);
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
    let want = req.count as usize;
    if found.len() > want {
        return Err(Error::new(
            ErrorKind::Conflict,
            format!(
                "launch id {} already has {} instances, more than the {} asked",
                req.launch_id,
                found.len(),
                req.count
            ),
        )
        .with_hint(format!(
            "`herd ls` shows them; `herd down --launch {}` ends them",
            req.launch_id
        )));
    }
    Ok(if found.len() == want {
        Existing::All(found)
    } else {
        Existing::Partial(found)
    })
}

/// The ClientToken of attempt `zone` (none: EC2 picks the zone).
pub fn client_token(req: &LaunchRequest, zone: Option<&str>) -> String {
    token_for(req.launch_id.as_str(), zone)
}

/// The token base of the call that completes a launch found with `found` instances: its
/// own (a ClientToken names one call's whole answer), the same for every retry of it.
pub fn fill_token(req: &LaunchRequest, found: usize) -> String {
    let suffix = format!("-fill{found}");
    let id = req.launch_id.as_str();
    let keep = 64usize.saturating_sub(suffix.len()).min(id.len());
    format!("{}{suffix}", &id[..keep])
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
    /// The ClientToken base: the launch id, or [`fill_token`].
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
    let tags = launch_tags(req);
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
/// capacity. Returns the instances and the zones that had none.
pub async fn run_with_zone_fallback(
    client: &Ec2,
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
