//! Reading VMs back: `instances.aggregatedList` (every zone in one paged call) filtered
//! by herd's labels, `returnPartialSuccess=true` so one unreachable zone does not hide
//! the rest, 500 per page. Whatever the server matched, herd checks the labels itself
//! on every result ([`herd_core::plumbing::admits`]) before showing, stopping or
//! reaping anything.

use chrono::{DateTime, Utc};
use herd_core::plumbing::admits;
use herd_core::{tags, Cloud, Instance, InstanceState, ListRequest, PurchaseOption, Result};
use serde_json::Value;

use crate::client::{last_segment, region_of_zone, Gce};
use crate::launch::labels_of;

/// GCE's largest page (`maxResults` "acceptable values are 0 to 500").
pub const PAGE: u32 = 500;

/// herd's state for a GCE status (`Instance.status` in the discovery document).
pub fn state_of(status: &str) -> InstanceState {
    match status {
        "PROVISIONING" | "STAGING" => InstanceState::Pending,
        "RUNNING" | "REPAIRING" => InstanceState::Running,
        "STOPPING" | "SUSPENDING" => InstanceState::ShuttingDown,
        // A stopped or suspended VM still bills its disks: shown as shutting down, so
        // `herd down` still deletes it.
        "STOPPED" | "SUSPENDED" => InstanceState::ShuttingDown,
        _ => InstanceState::Terminated,
    }
}

/// One VM of an answer as herd's [`Instance`], read through core's tag protocol.
pub fn instance(v: &Value) -> Option<Instance> {
    let name = v.get("name")?.as_str()?.to_string();
    let zone = last_segment(v.get("zone")?.as_str()?).to_string();
    let zone = zone.strip_prefix("zones/").unwrap_or(&zone).to_string();
    let mtype = last_segment(v.get("machineType").and_then(Value::as_str).unwrap_or("")).to_string();
    let launched = v
        .get("creationTimestamp")
        .and_then(Value::as_str)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(Utc::now);
    let mut i = tags::read_instance(
        Cloud::Gcp,
        name,
        region_of_zone(&zone).to_string(),
        zone.clone(),
        mtype,
        launched,
        labels_of(v),
    );
    i.state = state_of(v.get("status").and_then(Value::as_str).unwrap_or(""));
    if v.pointer("/scheduling/provisioningModel").and_then(Value::as_str) == Some("SPOT") {
        i.purchase = PurchaseOption::Spot;
    }
    for nic in v
        .get("networkInterfaces")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        for ac in nic.get("accessConfigs").and_then(Value::as_array).into_iter().flatten() {
            if let Some(ip) = ac.get("natIP").and_then(Value::as_str) {
                i.addresses.push(ip.to_string());
            }
        }
        if let Some(ip) = nic.get("networkIP").and_then(Value::as_str) {
            i.addresses.push(ip.to_string());
        }
    }
    Some(i)
}

/// GCE's filter for herd's labels (`labels.K = "V" AND ...`); values are label values,
/// so they need no escaping beyond the quotes.
pub fn label_filter(t: &herd_core::Tags) -> String {
    t.iter()
        .map(|(k, v)| format!("(labels.{k} = \"{v}\")"))
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// Every VM matching `filter`, across zones, unchecked.
pub async fn aggregated(gce: &Gce, filter: &str, page: u32) -> Result<Vec<Instance>> {
    let mut q = vec![
        ("maxResults", page.min(PAGE).to_string()),
        ("returnPartialSuccess", "true".to_string()),
    ];
    if !filter.is_empty() {
        q.push(("filter", filter.to_string()));
    }
    let items = gce
        .pages("aggregated/instances", &q, "instances", "instances.aggregatedList")
        .await?;
    read_all(&items, "instances.aggregatedList")
}

/// The VMs of one zone matching `filter`, unchecked.
pub async fn zone(gce: &Gce, zone: &str, filter: &str) -> Result<Vec<Instance>> {
    let q = vec![("maxResults", PAGE.to_string()), ("filter", filter.to_string())];
    let items = gce
        .pages(&format!("zones/{zone}/instances"), &q, "instances", "instances.list")
        .await?;
    read_all(&items, "instances.list")
}

/// Every item as an [`Instance`]; one without a name or zone is a malformed answer,
/// not a VM to skip (skipping it would hide a VM that still bills).
fn read_all(items: &[Value], what: &str) -> Result<Vec<Instance>> {
    items
        .iter()
        .map(|v| {
            instance(v).ok_or_else(|| {
                herd_core::Error::unexpected(format!(
                    "{what}: Compute Engine sent a VM without a name or zone: {:.200}",
                    v.to_string()
                ))
            })
        })
        .collect()
}

/// herd's VMs for `req`: asked for by label, then each checked by core's rule.
pub async fn list(gce: &Gce, req: &ListRequest) -> Result<Vec<Instance>> {
    let wanted = req.tags.clone();
    if wanted.is_empty() {
        // Only herd's: an owner label of any value.
        let got = aggregated(gce, &format!("labels.{}:*", tags::OWNER), req.page_size.unwrap_or(PAGE)).await?;
        return Ok(got.into_iter().filter(|i| admits(req, i)).collect());
    }
    let got = aggregated(gce, &label_filter(&wanted), req.page_size.unwrap_or(PAGE)).await?;
    Ok(got.into_iter().filter(|i| admits(req, i)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gce_instance_reads_back_with_its_labels() {
        let v = serde_json::json!({
            "name": "herd-l-1-0000", "zone": "https://compute.googleapis.com/compute/v1/projects/p/zones/us-central1-b",
            "machineType": "zones/us-central1-b/machineTypes/e2-micro", "status": "RUNNING",
            "creationTimestamp": "2026-01-02T03:04:05.000-08:00",
            "labels": {"herd-owner": "ann", "herd-launch": "l-1", "herd-deadline": "1900000000", "herd-price-microusd": "8400"},
            "scheduling": {"provisioningModel": "SPOT"},
            "networkInterfaces": [{"networkIP": "10.0.0.2", "accessConfigs": [{"natIP": "34.1.2.3"}]}],
        });
        let i = instance(&v).unwrap();
        assert_eq!(
            (i.zone.as_str(), i.region.as_str(), i.instance_type.as_str()),
            ("us-central1-b", "us-central1", "e2-micro")
        );
        assert_eq!(i.state, InstanceState::Running);
        assert_eq!(i.purchase, PurchaseOption::Spot);
        assert_eq!(i.launch_id.as_str(), "l-1");
        assert_eq!(i.hourly_price.to_micros(), 8400);
        assert_eq!(i.deadline.timestamp(), 1_900_000_000);
        assert_eq!(i.addresses, ["34.1.2.3", "10.0.0.2"]);
        assert_eq!(state_of("STOPPED"), InstanceState::ShuttingDown);
    }
}
