//! Reading VMs back: `virtualMachines.listAll` over the whole subscription with
//! `statusOnly=true` (each VM's instance view, so the power state, in the same paged
//! call), or `virtualMachines.list` in one resource group. ARM has no tag filter for
//! VMs, and a server may ignore filters anyway: herd checks the tags itself on every
//! result ([`herd_core::plumbing::admits`]) before showing, stopping or reaping anything.

use chrono::{DateTime, Utc};
use futures::StreamExt;
use herd_core::plumbing::admits;
use herd_core::{tags, Cloud, Error, ErrorKind, Instance, InstanceState, ListRequest, PurchaseOption, Result, Tags};
use serde_json::Value;

use crate::client::{herd_error, json, resource_group_of, Arm};

/// herd's state from a VM's provisioning state and power state
/// (<https://learn.microsoft.com/en-us/azure/virtual-machines/states-billing>).
pub fn state_of(provisioning: &str, power: Option<&str>) -> InstanceState {
    let p = provisioning.to_ascii_lowercase();
    if p == "deleting" {
        return InstanceState::ShuttingDown;
    }
    match power.map(str::to_ascii_lowercase).as_deref() {
        Some("powerstate/running") => InstanceState::Running,
        Some("powerstate/starting") => InstanceState::Pending,
        // Stopped still bills compute; deallocated bills the disk: both shown as
        // ending, so `herd down` deletes them.
        Some("powerstate/stopping" | "powerstate/stopped" | "powerstate/deallocating" | "powerstate/deallocated") => {
            InstanceState::ShuttingDown
        }
        _ => match p.as_str() {
            "creating" | "updating" => InstanceState::Pending,
            "succeeded" => InstanceState::Running,
            "failed" => InstanceState::ShuttingDown,
            _ => InstanceState::Pending,
        },
    }
}

pub fn tags_of(v: &Value) -> Tags {
    v.get("tags")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// One VM of an answer as herd's [`Instance`], through core's tag protocol.
pub fn instance(v: &Value) -> Option<Instance> {
    let name = v.get("name")?.as_str()?.to_string();
    let region = v.get("location").and_then(Value::as_str).unwrap_or("").to_string();
    let zone = v.pointer("/zones/0").and_then(Value::as_str).unwrap_or("").to_string();
    let p = v.get("properties").cloned().unwrap_or(Value::Null);
    let size = p
        .pointer("/hardwareProfile/vmSize")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let launched = p
        .get("timeCreated")
        .and_then(Value::as_str)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(Utc::now);
    let power = p
        .pointer("/instanceView/statuses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|s| s.get("code").and_then(Value::as_str))
        .find(|c| c.starts_with("PowerState/"));
    let provisioning = p.get("provisioningState").and_then(Value::as_str).unwrap_or("");
    let mut i = tags::read_instance(Cloud::Azure, name, region, zone, size, launched, tags_of(v));
    i.state = state_of(provisioning, power);
    if p.get("priority")
        .and_then(Value::as_str)
        .is_some_and(|s| s.eq_ignore_ascii_case("spot"))
    {
        i.purchase = PurchaseOption::Spot;
    }
    if let Some(id) = v.get("id").and_then(Value::as_str) {
        if let Some(g) = resource_group_of(id) {
            i.tags.entry(GROUP_TAG.into()).or_insert_with(|| g.to_string());
        }
    }
    Some(i)
}

/// Where herd notes a VM's resource group on its [`Instance`] (not a tag on Azure: read
/// from the VM's id).
pub const GROUP_TAG: &str = "azure-resource-group";

/// The group of a listed VM.
pub fn group_of(i: &Instance) -> Option<&str> {
    i.tags.get(GROUP_TAG).map(String::as_str)
}

async fn drain(
    mut pages: azure_core::Pageable<
        azure_mgmt_compute::package_2024_07_01::models::VirtualMachineListResult,
        azure_core::Error,
    >,
    what: &str,
) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| herd_error(e, what))?;
        out.extend(page.value.iter().map(json));
        if let Some(n) = page.next_link.filter(|n| !n.is_empty()) {
            if seen.contains(&n) {
                return Err(Error::unexpected(format!(
                    "{what}: ARM sent the same nextLink twice; herd stopped rather than loop"
                ))
                .temporary(true));
            }
            seen.push(n);
        }
    }
    Ok(out)
}

/// Every VM of the subscription with its power state.
pub async fn all(arm: &Arm) -> Result<Vec<Instance>> {
    let pages = arm
        .compute
        .virtual_machines_client()
        .list_all(&arm.subscription)
        .status_only("true")
        .into_stream();
    Ok(drain(pages, "virtualMachines.listAll")
        .await?
        .iter()
        .filter_map(instance)
        .collect())
}

/// The VMs of one resource group (none if the group does not exist).
pub async fn in_group(arm: &Arm, group: &str) -> Result<Vec<Instance>> {
    let pages = arm
        .compute
        .virtual_machines_client()
        .list(group, &arm.subscription)
        .into_stream();
    match drain(pages, &format!("virtualMachines.list in {group}")).await {
        Ok(v) => Ok(v.iter().filter_map(instance).collect()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// `herd ls`: herd's VMs the request admits, checked by herd itself.
pub async fn list(arm: &Arm, req: &ListRequest) -> Result<Vec<Instance>> {
    let mut out: Vec<Instance> = all(arm)
        .await?
        .into_iter()
        .filter(|i| i.tags.contains_key(tags::OWNER) && admits(req, i))
        .collect();
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn power_states_map_and_stopped_is_still_ending() {
        assert_eq!(
            state_of("Succeeded", Some("PowerState/running")),
            InstanceState::Running
        );
        assert_eq!(
            state_of("Succeeded", Some("PowerState/stopped")),
            InstanceState::ShuttingDown
        );
        assert_eq!(
            state_of("Succeeded", Some("PowerState/deallocated")),
            InstanceState::ShuttingDown
        );
        assert_eq!(state_of("Creating", None), InstanceState::Pending);
        assert_eq!(
            state_of("Deleting", Some("PowerState/running")),
            InstanceState::ShuttingDown
        );
        assert_eq!(state_of("Succeeded", None), InstanceState::Running);
    }

    #[test]
    fn a_vm_reads_through_the_tag_protocol() {
        let v = serde_json::json!({
            "id": "/subscriptions/s/resourceGroups/herd-ann-c/providers/Microsoft.Compute/virtualMachines/herd-l-1-0000",
            "name": "herd-l-1-0000", "location": "eastus", "zones": ["2"],
            "tags": {"herd-owner": "ann", "herd-launch": "l-1"},
            "properties": {"hardwareProfile": {"vmSize": "Standard_D2s_v5"}, "priority": "Spot",
                "provisioningState": "Succeeded", "timeCreated": "2026-01-01T00:00:00Z",
                "instanceView": {"statuses": [{"code": "ProvisioningState/succeeded"}, {"code": "PowerState/running"}]}}
        });
        let i = instance(&v).unwrap();
        assert_eq!(
            (i.id.as_str(), i.region.as_str(), i.zone.as_str()),
            ("herd-l-1-0000", "eastus", "2")
        );
        assert_eq!(i.state, InstanceState::Running);
        assert_eq!(i.purchase, PurchaseOption::Spot);
        assert_eq!(group_of(&i), Some("herd-ann-c"));
    }
}
