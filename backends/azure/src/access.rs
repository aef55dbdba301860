//! The cluster's place: one resource group per cluster (`herd-<owner>-<cluster>`, in the
//! launch region, tagged), and inside it a VNet with one subnet behind an NSG that lets
//! SSH in from the caller's address only. Every PUT here names its resource from the
//! cluster alone, so sending it again (a retry, the next launch) converges.

use herd_core::{tags, Error, Result, Tags};
use serde_json::{json, Map, Value};

use crate::client::{herd_error, model, Arm};

pub const VNET: &str = "herd-vnet";
pub const SUBNET: &str = "herd-subnet";
pub const NSG: &str = "herd-nsg";
/// The VNet's and subnet's private range (one /24 is 251 usable addresses; a cluster
/// bigger than that gets a /16 subnet).
pub const VNET_PREFIX: &str = "10.40.0.0/16";
pub const SUBNET_PREFIX: &str = "10.40.0.0/16";
/// Resource group names: 1-90 characters, alphanumerics, `_`, `-`, `.`, `(`, `)`, not
/// ending in `.` (<https://learn.microsoft.com/en-us/azure/azure-resource-manager/management/resource-name-rules>).
pub const MAX_GROUP: usize = 90;

/// The cluster of a launch's tags (`default` when none is named).
pub fn cluster_of(t: &Tags) -> String {
    t.get(tags::CLUSTER).cloned().unwrap_or_else(|| "default".into())
}

/// The cluster's resource group, or why ARM would refuse the name (before any call).
pub fn group_name(owner: &str, cluster: &str) -> Result<String> {
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '(' | ')');
    if let Some(c) = cluster.chars().find(|c| !ok(*c)) {
        let better: String = cluster.chars().map(|c| if ok(c) { c } else { '-' }).collect();
        return Err(Error::invalid_spec(format!(
            "cluster name `{cluster}` has `{c}`, which Azure refuses in a resource group name"
        ))
        .with_suggestions(vec![better])
        .with_hint("cluster names on Azure use letters, digits, `_`, `-`, `.`, `(` and `)`"));
    }
    let name = format!("herd-{}-{cluster}", tags::sanitize_value(owner));
    if name.len() > MAX_GROUP || name.ends_with('.') {
        return Err(Error::invalid_spec(format!(
            "resource group `{name}` is not a name Azure accepts (at most {MAX_GROUP} characters, not ending in `.`)"
        ))
        .with_hint("use a shorter cluster name"));
    }
    Ok(name)
}

/// The tags of the cluster's shared resources: herd's owner and cluster only (a launch's
/// own tags belong to its VMs).
pub fn group_tags(owner: &str, cluster: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert(tags::OWNER.into(), Value::String(tags::sanitize_value(owner)));
    m.insert(tags::CLUSTER.into(), Value::String(cluster.into()));
    m
}

pub fn check_cidr(c: &str) -> Result<()> {
    let ok = c
        .split_once('/')
        .is_some_and(|(ip, bits)| ip.parse::<std::net::IpAddr>().is_ok() && bits.parse::<u8>().is_ok());
    if ok {
        Ok(())
    } else {
        Err(
            Error::config(format!("`{c}` is not an address range like 203.0.113.7/32"))
                .with_hint("set [azure] ssh_cidr to your address with /32"),
        )
    }
}

/// The NSG: SSH (22/tcp) from `cidr` only; ARM's default rules deny the rest inbound.
pub fn nsg_body(region: &str, cidr: &str, t: &Map<String, Value>) -> Value {
    json!({
        "location": region,
        "tags": t,
        "properties": { "securityRules": [{
            "name": "herd-ssh",
            "properties": {
                "priority": 1000,
                "direction": "Inbound",
                "access": "Allow",
                "protocol": "Tcp",
                "sourceAddressPrefix": cidr,
                "sourcePortRange": "*",
                "destinationAddressPrefix": "*",
                "destinationPortRange": "22",
            },
        }]},
    })
}

pub fn vnet_body(region: &str, nsg_id: &str, t: &Map<String, Value>) -> Value {
    json!({
        "location": region,
        "tags": t,
        "properties": {
            "addressSpace": { "addressPrefixes": [VNET_PREFIX] },
            "subnets": [{
                "name": SUBNET,
                "properties": { "addressPrefix": SUBNET_PREFIX, "networkSecurityGroup": { "id": nsg_id } },
            }],
        },
    })
}

/// Waits until resource group `rg` is gone (its deletion finished), within `budget`.
pub async fn wait_gone(arm: &Arm, rg: &str, budget: std::time::Duration) -> Result<()> {
    let started = std::time::Instant::now();
    let what = format!("resourceGroups.get of {rg} (still deleting)");
    loop {
        match arm
            .resources
            .resource_groups_client()
            .get(rg, &arm.subscription)
            .send()
            .await
        {
            Err(e) => {
                let e = herd_error(e, &what);
                if e.kind() == herd_core::ErrorKind::NotFound {
                    return Ok(());
                }
                return Err(e);
            }
            Ok(_) if started.elapsed() >= budget => {
                return Err(Error::new(
                    herd_core::ErrorKind::Timeout,
                    format!("resource group {rg} is still being deleted after {}s", budget.as_secs()),
                )
                .with_hint("launch into another cluster (--cluster), or try again once it is gone"))
            }
            Ok(_) => tokio::time::sleep(arm.poll_pause()).await,
        }
    }
}

pub fn group_id(arm: &Arm, rg: &str) -> String {
    format!("/subscriptions/{}/resourceGroups/{rg}", arm.subscription)
}

/// Makes sure the group, NSG and VNet exist as herd wants them; the subnet's id.
pub async fn ensure(
    arm: &Arm,
    rg: &str,
    region: &str,
    owner: &str,
    cluster: &str,
    cidr: &str,
    budget: std::time::Duration,
) -> Result<String> {
    let t = group_tags(owner, cluster);
    let what = format!("resourceGroups.createOrUpdate of {rg}");
    let g: azure_mgmt_resources::package_resources_2021_04::models::ResourceGroup =
        model(json!({ "location": region, "tags": t }), &what)?;
    let put = || {
        arm.resources
            .resource_groups_client()
            .create_or_update(rg, g.clone(), &arm.subscription)
            .send()
    };
    if let Err(e) = put().await {
        let e = herd_error(e, &what);
        if e.context_value("azure_code") != Some("ResourceGroupBeingDeleted") {
            return Err(e);
        }
        // The cluster's previous group is still going: its deletion is an operation
        // like any other, waited for to its end; then the group is made anew.
        wait_gone(arm, rg, budget).await?;
        put().await.map_err(|e| herd_error(e, &what))?;
    }

    let what = format!("networkSecurityGroups.createOrUpdate of {rg}/{NSG}");
    let nsg: azure_mgmt_network::package_2024_03::models::NetworkSecurityGroup =
        model(nsg_body(region, cidr, &t), &what)?;
    let r = arm
        .network
        .network_security_groups_client()
        .create_or_update(rg, NSG, nsg, &arm.subscription)
        .send()
        .await
        .map_err(|e| herd_error(e, &what))?;
    arm.wait(r.as_raw_response().headers(), budget, &what).await?;

    let nsg_id = format!(
        "{}/providers/Microsoft.Network/networkSecurityGroups/{NSG}",
        group_id(arm, rg)
    );
    let what = format!("virtualNetworks.createOrUpdate of {rg}/{VNET}");
    let vnet: azure_mgmt_network::package_2024_03::models::VirtualNetwork =
        model(vnet_body(region, &nsg_id, &t), &what)?;
    let r = arm
        .network
        .virtual_networks_client()
        .create_or_update(rg, VNET, vnet, &arm.subscription)
        .send()
        .await
        .map_err(|e| herd_error(e, &what))?;
    arm.wait(r.as_raw_response().headers(), budget, &what).await?;
    Ok(format!(
        "{}/providers/Microsoft.Network/virtualNetworks/{VNET}/subnets/{SUBNET}",
        group_id(arm, rg)
    ))
}

/// The public address of VM `vm` in `rg` (the IP its PUT made inline), if it has one yet.
pub async fn public_ip(arm: &Arm, rg: &str, vm: &str) -> Result<Option<String>> {
    let name = crate::launch::ip_name(vm);
    let what = format!("publicIPAddresses.get of {rg}/{name}");
    match arm
        .network
        .public_ip_addresses_client()
        .get(rg, &name, &arm.subscription)
        .await
    {
        Ok(ip) => Ok(crate::client::json(&ip)
            .pointer("/properties/ipAddress")
            .and_then(serde_json::Value::as_str)
            .map(str::to_string)),
        Err(e) => {
            let e = herd_error(e, &what);
            if e.kind() == herd_core::ErrorKind::NotFound {
                return Ok(None);
            }
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_names_and_refusals() {
        assert_eq!(group_name("Ann", "c1").unwrap(), "herd-ann-c1");
        let e = group_name("ann", "my cluster!").unwrap_err();
        assert_eq!(e.kind(), herd_core::ErrorKind::InvalidSpec);
        assert_eq!(e.suggestions(), &["my-cluster-".to_string()]);
        assert!(group_name("ann", &"x".repeat(90)).is_err());
        assert!(group_name("ann", "c.").is_err());
    }

    #[test]
    fn ssh_only_from_the_caller() {
        let b = nsg_body("eastus", "203.0.113.7/32", &group_tags("ann", "c"));
        let r = &b["properties"]["securityRules"][0]["properties"];
        assert_eq!(r["sourceAddressPrefix"], "203.0.113.7/32");
        assert_eq!(r["destinationPortRange"], "22");
        assert_eq!(b["tags"]["herd-owner"], "ann");
        assert!(check_cidr("1.2.3.4/32").is_ok() && check_cidr("1.2.3.4").is_err());
    }
}
