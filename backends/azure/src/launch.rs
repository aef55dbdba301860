//! One launch on ARM: one PUT per VM, with its NIC and public IP configured inline
//! (`networkProfile.networkInterfaceConfigurations`, `networkApiVersion`), so the VM,
//! its NIC, IP and OS disk are made by one call and go with it (`deleteOption: Delete`
//! on all three). Names come from the launch token and the VM's index, so a PUT sent
//! again (a retry, a lost answer) converges on the same VM instead of making another.
//! Many PUTs at once, under the transport's write pacer; each one's async operation is
//! polled to its end. Spot: `priority: Spot`, `evictionPolicy: Delete`,
//! `billingProfile.maxPrice: -1` (pay up to the on-demand price, never evicted for price).
//!
//! Zones: the pinned one only, else each zone in turn while ARM reports no capacity
//! (core's `ZoneFallback`); the VMs an attempt made are deleted before the next one.
//! A permanent failure deletes every VM of the launch before the error is returned
//! (all or nothing); a temporary one (429, a NIC still reserved) is returned as it is,
//! so herd's retry loop sends the missing PUTs again and the made ones are kept.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use herd_core::plumbing::ZoneFallback;
use herd_core::{tags, Error, ErrorKind, Instance, LaunchRequest, Result};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use crate::client::{herd_error, model, Arm};
use crate::images::Image;

/// Linux VM names: 1-64 characters, letters, digits and `-`
/// (<https://learn.microsoft.com/en-us/azure/azure-resource-manager/management/resource-name-rules#microsoftcompute>).
pub const MAX_NAME: usize = 64;
/// PUTs (and their operations) in flight at once; the pacer holds writes to ARM's rate.
pub const IN_FLIGHT: usize = 64;
/// The API version of the inline network configuration (at least 2020-11-01).
pub const NETWORK_API_VERSION: &str = "2020-11-01";

/// The `i`th VM of the call sent under `token`: the same on every retry, distinct
/// across tokens (a hash of the token stands in for what a long one loses).
pub fn vm_name(token: &str, i: u32) -> String {
    let clean: String = token
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let suffix = format!("-{i:04}");
    let mut base = format!("herd-{}", clean.trim_matches('-'));
    if base.len() + suffix.len() + 4 > MAX_NAME {
        let h: String = Sha256::digest(token.as_bytes())[..4]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        base.truncate(MAX_NAME - suffix.len() - h.len() - 5);
        base = format!("{}-{h}", base.trim_end_matches('-'));
    }
    format!("{base}{suffix}")
}

/// The public IP a VM's PUT creates for it inline (deleted with the VM).
pub fn ip_name(vm: &str) -> String {
    format!("{vm}-ip")
}

/// Everything one launch's PUTs share.
#[derive(Debug)]
pub struct Plan<'a> {
    pub req: &'a LaunchRequest,
    pub token: &'a str,
    pub group: &'a str,
    pub subnet_id: &'a str,
    pub image: &'a Image,
    pub ssh_key: &'a str,
    /// The boot script, base64 (`osProfile.customData`).
    pub custom_data: &'a str,
}

pub fn vm_tags(req: &LaunchRequest) -> Map<String, Value> {
    tags::request_tags(req)
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect()
}

/// The VM's body, every field as the Compute REST reference (2024-07-01) names it.
pub fn vm_body(p: &Plan<'_>, name: &str, zone: Option<&str>) -> Value {
    let spot = p.req.market.wants_spot();
    let mut b = json!({
        "location": p.req.region,
        "tags": vm_tags(p.req),
        // The watchdog deletes its own VM with this identity's token (README: the role).
        "identity": { "type": "SystemAssigned" },
        "properties": {
            "hardwareProfile": { "vmSize": p.req.instance_type },
            "storageProfile": {
                "imageReference": p.image.reference(),
                "osDisk": {
                    "name": format!("{name}-os"),
                    "createOption": "FromImage",
                    "deleteOption": "Delete",
                    "managedDisk": { "storageAccountType": "StandardSSD_LRS" },
                },
            },
            "osProfile": {
                "computerName": name,
                "adminUsername": crate::config::ADMIN_USER,
                "customData": p.custom_data,
                "linuxConfiguration": {
                    "disablePasswordAuthentication": true,
                    "ssh": { "publicKeys": [{
                        "path": format!("/home/{}/.ssh/authorized_keys", crate::config::ADMIN_USER),
                        "keyData": p.ssh_key.trim(),
                    }]},
                },
            },
            "networkProfile": {
                "networkApiVersion": NETWORK_API_VERSION,
                "networkInterfaceConfigurations": [{
                    "name": format!("{name}-nic"),
                    "properties": {
                        "primary": true,
                        "deleteOption": "Delete",
                        "ipConfigurations": [{
                            "name": "ipconfig1",
                            "properties": {
                                "primary": true,
                                "subnet": { "id": p.subnet_id },
                                "publicIPAddressConfiguration": {
                                    "name": ip_name(name),
                                    "sku": { "name": "Standard", "tier": "Regional" },
                                    "properties": {
                                        "deleteOption": "Delete",
                                        "publicIPAllocationMethod": "Static",
                                    },
                                },
                            },
                        }],
                    },
                }],
            },
        },
    });
    if spot {
        b["properties"]["priority"] = json!("Spot");
        b["properties"]["evictionPolicy"] = json!("Delete");
        b["properties"]["billingProfile"] = json!({ "maxPrice": -1 });
    }
    if let Some(z) = zone {
        b["zones"] = json!([z]);
    }
    b
}

/// One VM: the PUT, then its operation to the end; the VM as the PUT's answer described
/// it, running (its creation succeeded), so no list is needed to read it back.
pub async fn put_vm(arm: &Arm, group: &str, name: &str, body: Value, budget: Duration) -> Result<Instance> {
    let what = format!("virtualMachines.createOrUpdate of {name}");
    let vm: azure_mgmt_compute::package_2024_07_01::models::VirtualMachine = model(body, &what)?;
    let r = arm
        .compute
        .virtual_machines_client()
        .create_or_update(group, name, vm, &arm.subscription)
        .send()
        .await
        .map_err(|e| herd_error(e, &what))?;
    let headers = r.as_raw_response().headers().clone();
    let vm = r.into_body().await.map_err(|e| herd_error(e, &what))?;
    arm.wait(&headers, budget, &what).await?;
    let mut i = crate::list::instance(&crate::client::json(&vm))
        .ok_or_else(|| Error::unexpected(format!("{what}: ARM's answer names no VM")).temporary(true))?;
    i.state = herd_core::InstanceState::Running;
    Ok(i)
}

/// Deletes VMs by name (force where allowed) and waits; gone already is fine.
pub async fn delete_vms(arm: &Arm, group: &str, names: &[String], budget: Duration) -> Result<()> {
    let gate = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut set = tokio::task::JoinSet::new();
    for n in names {
        let (arm, group, n, gate) = (arm.clone(), group.to_string(), n.clone(), gate.clone());
        set.spawn(async move {
            let _p = gate.acquire_owned().await.expect("open semaphore");
            delete_vm(&arm, &group, &n, budget).await
        });
    }
    let mut first = None;
    while let Some(j) = set.join_next().await {
        let r = j.map_err(|e| Error::unexpected(format!("a delete task failed: {e}")))?;
        if let Err(e) = r {
            first.get_or_insert(e);
        }
    }
    first.map_or(Ok(()), Err)
}

/// One VM's deletion to its end: `true` if it was there.
pub async fn delete_vm(arm: &Arm, group: &str, name: &str, budget: Duration) -> Result<bool> {
    let what = format!("virtualMachines.delete of {name}");
    let r = arm
        .compute
        .virtual_machines_client()
        .delete(group, name, &arm.subscription)
        .force_deletion(true)
        .send()
        .await;
    match r {
        Ok(r) => {
            if u16::from(r.as_raw_response().status()) == 204 {
                return Ok(false);
            }
            match arm.wait(r.as_raw_response().headers(), budget, &what).await {
                Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
                other => other.map(|_| true),
            }
        }
        Err(e) => {
            let e = herd_error(e, &what);
            if e.kind() == ErrorKind::NotFound {
                Ok(false)
            } else {
                Err(e)
            }
        }
    }
}

/// PUTs `names` in `zone`, at most [`IN_FLIGHT`] at once, every one to its end: the
/// names that were made, and the first error (a capacity error first: it decides).
pub async fn put_all(
    arm: &Arm,
    p: &Plan<'_>,
    names: &[String],
    zone: Option<&str>,
    budget: Duration,
) -> (Vec<Instance>, Option<Error>) {
    let gate = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut set = tokio::task::JoinSet::new();
    for n in names {
        let body = vm_body(p, n, zone);
        let (arm, group, n, gate) = (arm.clone(), p.group.to_string(), n.clone(), gate.clone());
        set.spawn(async move {
            let _p = gate.acquire_owned().await.expect("open semaphore");
            let r = put_vm(&arm, &group, &n, body, budget).await;
            (n, r)
        });
    }
    let mut made = Vec::new();
    let mut err: Option<Error> = None;
    while let Some(j) = set.join_next().await {
        match j {
            Ok((_, Ok(i))) => made.push(i),
            Ok((_, Err(e))) => {
                let decides = e.kind() == ErrorKind::InsufficientCapacity;
                match &err {
                    Some(old) if old.kind() == ErrorKind::InsufficientCapacity || !decides => {}
                    _ => err = Some(e),
                }
            }
            Err(e) => {
                err.get_or_insert(Error::unexpected(format!("a launch task failed: {e}")));
            }
        }
    }
    (made, err)
}

/// The zones to try: the pinned one, else the configured or catalog zones, else `None`
/// (a regional VM: ARM places it).
pub fn zone_queue(pinned: Option<&str>, zones: &[String]) -> Vec<Option<String>> {
    match pinned {
        Some(z) => vec![Some(z.to_string())],
        None if zones.is_empty() => vec![None],
        None => zones.iter().cloned().map(Some).collect(),
    }
}

/// The launch: `names` not yet made (`have` are) PUT zone by zone; all or nothing.
pub async fn in_some_zone(
    arm: &Arm,
    p: &Plan<'_>,
    names: &[String],
    zones: &[String],
    budget: Duration,
    misses_out: &Mutex<Vec<String>>,
    kept: &Mutex<Vec<Instance>>,
) -> Result<Vec<Instance>> {
    let mut fb = ZoneFallback::new(&p.req.region, &p.req.instance_type, p.req.zone.as_deref());
    for zone in zone_queue(p.req.zone.as_deref(), zones) {
        if zone.as_deref().is_some_and(|z| !fb.worth_trying(z)) {
            continue;
        }
        let (made, err) = put_all(arm, p, names, zone.as_deref(), budget).await;
        let Some(e) = err else {
            *misses_out.lock().expect("misses") = fb.misses().to_vec();
            return Ok(made);
        };
        if e.is_temporary() {
            // Kept: the retry loop sends the missing ones again, under the same names.
            kept.lock().expect("kept").extend(made);
            return Err(e);
        }
        let region_wide = e.context_value("azure_next") == Some("region");
        // Nothing of this attempt stays, before the next zone or the error: the VMs made,
        // and those ARM keeps `Failed` after a failed creation (with their NICs and IPs).
        let made: Vec<String> = match crate::list::in_group(arm, p.group).await {
            Ok(listed) => listed
                .into_iter()
                .map(|i| i.id)
                .filter(|n| names.contains(n))
                .chain(made.into_iter().map(|i| i.id))
                .collect::<std::collections::BTreeSet<String>>()
                .into_iter()
                .collect(),
            Err(_) => made.into_iter().map(|i| i.id).collect(),
        };
        if let Err(d) = delete_vms(arm, p.group, &made, budget).await {
            return Err(Error::new(
                e.kind(),
                format!(
                    "{}; deleting the {} VMs it had made failed too ({})",
                    e.message(),
                    made.len(),
                    d.message()
                ),
            )
            .with_hint(format!("`herd down --launch {}` ends them", p.req.launch_id)));
        }
        if region_wide || zone.is_none() {
            return Err(with_cleanup(e, made.len()));
        }
        match fb.attempt(zone.as_deref(), Err::<(), _>(e)) {
            Ok(_) => continue,
            Err(e) => return Err(with_cleanup(e, made.len())),
        }
    }
    *misses_out.lock().expect("misses") = fb.misses().to_vec();
    Err(fb.exhausted())
}

fn with_cleanup(e: Error, n: usize) -> Error {
    if n == 0 {
        return e;
    }
    e.map_message(|m| format!("{m}; the {n} VMs of this launch already made were deleted"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_valid_stable_and_distinct() {
        let valid = |n: &str| {
            n.len() <= MAX_NAME
                && n.starts_with(|c: char| c.is_ascii_lowercase())
                && n.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !n.ends_with('-')
        };
        assert_eq!(vm_name("l-0123abcd", 7), "herd-l-0123abcd-0007");
        let long = "x".repeat(64);
        let n = vm_name(&long, 999);
        assert!(valid(&n) && n.len() + 4 <= MAX_NAME, "{n}");
        assert_ne!(n, vm_name(&format!("{}y", "x".repeat(63)), 999));
    }

    #[test]
    fn zones_in_order_or_regional() {
        assert_eq!(zone_queue(None, &[]), vec![None]);
        assert_eq!(zone_queue(Some("2"), &["1".into()]), vec![Some("2".to_string())]);
        assert_eq!(zone_queue(None, &["1".into(), "2".into()]).len(), 2);
    }
}
