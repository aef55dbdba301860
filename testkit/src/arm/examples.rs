//! Azure's own examples (`../shared/data/azure/*.json`, copies of files in
//! Azure/azure-rest-api-specs, MIT; provenance in `../shared/data/README.md`), used by the
//! fake ARM so it cannot drift into our imagination:
//!
//! - every PUT body is held to the example request bodies of its resource type: each
//!   JSON key path the client sends (arrays written `[]`) must occur in one of them, or in
//!   [`ALLOW`], a short list of writable fields the examples do not happen to send, each
//!   with its source; anything else is ARM's 400 `InvalidRequestContent` naming the path;
//! - the fake's answers are tested to carry every field of the examples' responses
//!   (`testkit/tests/arm_fake.rs`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde_json::Value;

use super::state::Kind;

/// Per resource type, the example files whose request bodies define what may be sent.
const REQUESTS: &[(Kind, &[&str])] = &[
    (Kind::ResourceGroup, &["ResourceGroup_Create.2025-04-01.json"]),
    (
        Kind::VirtualNetwork,
        &["VirtualNetwork_Create_WithSubnet.2025-03-01.json"],
    ),
    (
        Kind::NetworkSecurityGroup,
        &["NetworkSecurityGroup_Create_WithRule.2025-03-01.json"],
    ),
    (Kind::PublicIp, &["PublicIpAddress_Create_Defaults.2025-03-01.json"]),
    (Kind::Nic, &["NetworkInterface_Create.2025-03-01.json"]),
    (
        Kind::Vm,
        &[
            "VirtualMachine_Create_WithSshAuthentication.json",
            "VirtualMachine_Create_WithNetworkInterfaceConfiguration.2025-04-01.json",
        ],
    ),
];

/// Per action (a POST with a body), the examples whose `requestBody` defines what may be sent.
const ACTIONS: &[(&str, &[&str])] = &[
    (
        "virtualMachinesSubmitDelete",
        &[
            "ComputeSchedule_VirtualMachinesSubmitDelete_MaximumSet_Gen.2025-05-01.json",
            "ComputeSchedule_VirtualMachinesSubmitDelete_MinimumSet_Gen.2025-05-01.json",
        ],
    ),
    (
        "virtualMachinesGetOperationStatus",
        &["ComputeSchedule_VirtualMachinesGetOperationStatus_MaximumSet_Gen.2025-05-01.json"],
    ),
];

/// The one example that shows every field of a VM (a generated "MaximumSet" list-all
/// answer): VM entries of [`ALLOW`] citing it must occur in its first VM, checked at load.
pub const VM_MAXIMUM_SET: &str = "VirtualMachine_ListAll_MaximumSet_Gen.2025-04-01.json";

/// Maps whose keys are the caller's own (a tag's name, an identity's resource id): any key
/// below them is accepted. Ref: ARM's `tags` is `additionalProperties: string` in every
/// resource definition; `userAssignedIdentities` is keyed by identity id
/// (learn.microsoft.com/rest/api/compute/virtual-machines/create-or-update).
const MAPS: &[&str] = &["tags", "identity.userAssignedIdentities"];

const VM_REF: &str = "max-set";
const NET_REF: &str = "https://learn.microsoft.com/rest/api/virtualnetwork";
const AUTH_REF: &str = "https://learn.microsoft.com/rest/api/authorization/role-assignments/create";
const RG_REF: &str = "https://learn.microsoft.com/rest/api/resources/resource-groups/create-or-update";

/// Writable fields herd needs that no example request sends. `max-set` entries must occur
/// in [`VM_MAXIMUM_SET`]'s VM (checked when loading); the others cite the REST reference.
pub const ALLOW: &[(Kind, &str, &str)] = &[
    // Every tracked resource takes tags (ARM's common resource definition).
    (Kind::ResourceGroup, "tags", RG_REF),
    (Kind::VirtualNetwork, "tags", NET_REF),
    (Kind::NetworkSecurityGroup, "tags", NET_REF),
    (Kind::PublicIp, "tags", NET_REF),
    (Kind::Nic, "tags", NET_REF),
    (Kind::Vm, "tags", VM_REF),
    // VM placement, Spot, identity (the watchdog's), boot script, the cascade on delete.
    (Kind::Vm, "zones", VM_REF),
    (Kind::Vm, "identity", VM_REF),
    (Kind::Vm, "identity.type", VM_REF),
    (Kind::Vm, "identity.userAssignedIdentities", VM_REF),
    (Kind::Vm, "properties.priority", VM_REF),
    (Kind::Vm, "properties.evictionPolicy", VM_REF),
    (Kind::Vm, "properties.billingProfile", VM_REF),
    (Kind::Vm, "properties.billingProfile.maxPrice", VM_REF),
    (Kind::Vm, "properties.userData", VM_REF),
    (Kind::Vm, "properties.osProfile.customData", VM_REF),
    (Kind::Vm, "properties.osProfile.linuxConfiguration.provisionVMAgent", VM_REF),
    (Kind::Vm, "properties.storageProfile.osDisk.deleteOption", VM_REF),
    (Kind::Vm, "properties.storageProfile.osDisk.diskSizeGB", VM_REF),
    (Kind::Vm, "properties.storageProfile.osDisk.osType", VM_REF),
    (Kind::Vm, "properties.storageProfile.imageReference.id", VM_REF),
    // Trusted launch (Azure's default for Gen2 images) and the serial console's boot log.
    (Kind::Vm, "properties.securityProfile", VM_REF),
    (Kind::Vm, "properties.securityProfile.securityType", VM_REF),
    (Kind::Vm, "properties.securityProfile.uefiSettings", VM_REF),
    (Kind::Vm, "properties.securityProfile.uefiSettings.secureBootEnabled", VM_REF),
    (Kind::Vm, "properties.securityProfile.uefiSettings.vTpmEnabled", VM_REF),
    (Kind::Vm, "properties.diagnosticsProfile", VM_REF),
    (Kind::Vm, "properties.diagnosticsProfile.bootDiagnostics", VM_REF),
    (Kind::Vm, "properties.diagnosticsProfile.bootDiagnostics.enabled", VM_REF),
    // Notice before a Spot eviction or a deletion (Scheduled Events).
    (Kind::Vm, "properties.scheduledEventsProfile", VM_REF),
    (Kind::Vm, "properties.scheduledEventsProfile.terminateNotificationProfile", VM_REF),
    (Kind::Vm, "properties.scheduledEventsProfile.terminateNotificationProfile.enable", VM_REF),
    (Kind::Vm, "properties.scheduledEventsProfile.terminateNotificationProfile.notBeforeTimeout", VM_REF),
    (Kind::Vm, "properties.networkProfile.networkInterfaces[].properties.deleteOption", VM_REF),
    (Kind::Vm, "properties.networkProfile.networkInterfaceConfigurations[].properties.networkSecurityGroup", VM_REF),
    (Kind::Vm, "properties.networkProfile.networkInterfaceConfigurations[].properties.networkSecurityGroup.id", VM_REF),
    (Kind::Vm, "properties.networkProfile.networkInterfaceConfigurations[].properties.enableAcceleratedNetworking", VM_REF),
    (Kind::Vm, "properties.networkProfile.networkInterfaceConfigurations[].properties.ipConfigurations[].properties.subnet", VM_REF),
    (Kind::Vm, "properties.networkProfile.networkInterfaceConfigurations[].properties.ipConfigurations[].properties.subnet.id", VM_REF),
    (Kind::Vm, "properties.networkProfile.networkInterfaceConfigurations[].properties.ipConfigurations[].properties.privateIPAddressVersion", VM_REF),
    (Kind::Vm, "properties.networkProfile.networkInterfaceConfigurations[].properties.ipConfigurations[].properties.publicIPAddressConfiguration.properties.publicIPAddressVersion", VM_REF),
    (Kind::Vm, "properties.networkProfile.networkInterfaceConfigurations[].properties.ipConfigurations[].properties.publicIPAddressConfiguration.properties.idleTimeoutInMinutes", VM_REF),
    // A public IP's SKU, version and zones; a NIC's NSG; a subnet's NSG; several source
    // ranges or ports in one rule (Microsoft.Network 2025-03-01 reference).
    (Kind::PublicIp, "sku", NET_REF),
    (Kind::PublicIp, "sku.name", NET_REF),
    (Kind::PublicIp, "sku.tier", NET_REF),
    (Kind::PublicIp, "zones", NET_REF),
    (Kind::PublicIp, "properties", NET_REF),
    (Kind::PublicIp, "properties.publicIPAllocationMethod", NET_REF),
    (Kind::PublicIp, "properties.publicIPAddressVersion", NET_REF),
    (Kind::PublicIp, "properties.idleTimeoutInMinutes", NET_REF),
    (Kind::Nic, "properties.networkSecurityGroup", NET_REF),
    (Kind::Nic, "properties.networkSecurityGroup.id", NET_REF),
    (Kind::Nic, "properties.ipConfigurations[].properties.primary", NET_REF),
    (Kind::Nic, "properties.ipConfigurations[].properties.privateIPAllocationMethod", NET_REF),
    (Kind::VirtualNetwork, "properties.subnets[].properties.networkSecurityGroup", NET_REF),
    (Kind::VirtualNetwork, "properties.subnets[].properties.networkSecurityGroup.id", NET_REF),
    (Kind::NetworkSecurityGroup, "properties.securityRules[].properties.description", NET_REF),
    (Kind::NetworkSecurityGroup, "properties.securityRules[].properties.sourceAddressPrefixes", NET_REF),
    (Kind::NetworkSecurityGroup, "properties.securityRules[].properties.destinationPortRanges", NET_REF),
    // Azure's examples folder has no role assignment: its whole body comes from the
    // reference (RoleAssignmentCreateParameters).
    (Kind::RoleAssignment, "properties", AUTH_REF),
    (Kind::RoleAssignment, "properties.roleDefinitionId", AUTH_REF),
    (Kind::RoleAssignment, "properties.principalId", AUTH_REF),
    (Kind::RoleAssignment, "properties.principalType", AUTH_REF),
    (Kind::RoleAssignment, "properties.description", AUTH_REF),
];

/// The examples, read once.
#[derive(Debug)]
pub struct Examples {
    allowed: BTreeMap<Kind, BTreeSet<String>>,
    actions: BTreeMap<String, BTreeSet<String>>,
    files: BTreeMap<String, Value>,
}

/// Where the examples are: `HERD_SHARED_DATA`, else `shared/data` beside any ancestor of
/// this crate (the repository's `../shared/data`, from the repo or a clean clone), else
/// `/work/shared/data`. The same locator as the GCE fake's.
pub fn examples_dir() -> Result<PathBuf, String> {
    let mut bases = Vec::new();
    if let Some(d) = std::env::var_os("HERD_SHARED_DATA") {
        bases.push(PathBuf::from(d));
    }
    for a in PathBuf::from(env!("CARGO_MANIFEST_DIR")).ancestors() {
        bases.push(a.join("shared/data"));
    }
    bases.push(PathBuf::from("/work/shared/data"));
    examples_dir_in(bases)
}

/// The first `base/azure` holding the examples, or an error naming every path tried.
pub fn examples_dir_in(bases: Vec<PathBuf>) -> Result<PathBuf, String> {
    let rel = "azure";
    let probe = "VirtualMachine_Create_WithSshAuthentication.json";
    let mut tried = Vec::new();
    for b in bases {
        let p = b.join(rel);
        if p.join(probe).is_file() {
            return Ok(p);
        }
        tried.push(p);
    }
    Err(format!(
        "Azure's official examples are missing (tried {}): the fake ARM checks every request body \
         against them; put the shared data at ../shared/data or set HERD_SHARED_DATA to its folder",
        tried
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

/// Every key path in `v`, arrays as `[]`: `properties.subnets[].name`.
pub fn key_paths(v: &Value) -> BTreeSet<String> {
    fn walk(v: &Value, at: &str, out: &mut BTreeSet<String>) {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    let p = if at.is_empty() { k.clone() } else { format!("{at}.{k}") };
                    out.insert(p.clone());
                    walk(x, &p, out);
                }
            }
            Value::Array(a) => {
                for x in a {
                    walk(x, &format!("{at}[]"), out);
                }
            }
            _ => {}
        }
    }
    let mut out = BTreeSet::new();
    walk(v, "", &mut out);
    out
}

/// `v` with every null-valued key removed (at any depth), as ARM stores a body.
pub fn without_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, x)| !x.is_null())
                .map(|(k, x)| (k.clone(), without_nulls(x)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(without_nulls).collect()),
        x => x.clone(),
    }
}

impl Examples {
    /// Reads the folder; an absent folder or file is an error naming the path.
    pub fn load() -> Result<Examples, String> {
        let dir = examples_dir()?;
        let mut files = BTreeMap::new();
        let entries = std::fs::read_dir(&dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().and_then(|x| x.to_str()) != Some("json") {
                continue;
            }
            let text = std::fs::read_to_string(&p).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
            let v: Value = serde_json::from_str(&text).map_err(|e| format!("{} is not JSON: {e}", p.display()))?;
            files.insert(e.file_name().to_string_lossy().into_owned(), v);
        }
        let mut allowed: BTreeMap<Kind, BTreeSet<String>> = BTreeMap::new();
        for (kind, names) in REQUESTS {
            let set = allowed.entry(*kind).or_default();
            for n in *names {
                let f = files
                    .get(*n)
                    .ok_or_else(|| format!("Azure example {} is missing", dir.join(n).display()))?;
                let body = f
                    .pointer("/parameters/parameters")
                    .ok_or_else(|| format!("Azure example {n} has no request body (parameters.parameters)"))?;
                set.extend(key_paths(body));
            }
        }
        let mut actions: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (action, names) in ACTIONS {
            let set = actions.entry(action.to_ascii_lowercase()).or_default();
            for n in *names {
                let body = files
                    .get(*n)
                    .and_then(|f| f.pointer("/parameters/requestBody"))
                    .ok_or_else(|| {
                        format!(
                            "Azure example {} is missing or has no requestBody",
                            dir.join(n).display()
                        )
                    })?;
                set.extend(key_paths(body));
            }
        }
        let max = files
            .get(VM_MAXIMUM_SET)
            .and_then(|f| f.pointer("/responses/200/body/value/0"))
            .map(key_paths)
            .ok_or_else(|| {
                format!(
                    "Azure example {} is missing or has no VM",
                    dir.join(VM_MAXIMUM_SET).display()
                )
            })?;
        for (kind, path, why) in ALLOW {
            if *why == VM_REF && !max.contains(*path) {
                return Err(format!("allow-list path {path} is not in {VM_MAXIMUM_SET}"));
            }
            allowed.entry(*kind).or_default().insert(path.to_string());
        }
        Ok(Examples {
            allowed,
            actions,
            files,
        })
    }

    /// Like [`Examples::unknown_path`], for the body of action `action`
    /// (`virtualMachinesSubmitDelete`); `None` also when the action has no example.
    pub fn unknown_action_path(&self, action: &str, body: &Value) -> Option<String> {
        let set = self.actions.get(&action.to_ascii_lowercase())?;
        key_paths(&without_nulls(body)).into_iter().find(|p| !set.contains(p))
    }

    /// One example file, by name.
    pub fn file(&self, name: &str) -> Option<&Value> {
        self.files.get(name)
    }

    /// The first key path of `body` no example (or allow-list entry) of `kind` has. A key
    /// whose value is `null` is not sent: ARM reads a null as an absent optional property,
    /// and the 0.21 SDK writes some unset fields as null (`VirtualMachineProperties::
    /// time_created` has no `skip_serializing_if`).
    pub fn unknown_path(&self, kind: Kind, body: &Value) -> Option<String> {
        let set = self.allowed.get(&kind)?;
        key_paths(&without_nulls(body)).into_iter().find(|p| {
            !set.contains(p)
                && !MAPS
                    .iter()
                    .any(|m| p.strip_prefix(m).is_some_and(|r| r.starts_with('.')))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn missing_examples_fail_naming_the_paths() {
        let empty = tempfile::tempdir().unwrap();
        let e = examples_dir_in(vec![empty.path().join("shared/data")]).unwrap_err();
        assert!(e.contains("Azure's official examples are missing"), "{e}");
        assert!(
            e.contains(&empty.path().join("shared/data/azure").display().to_string()),
            "{e}"
        );
        assert!(e.contains("HERD_SHARED_DATA"), "{e}");
        assert!(examples_dir().unwrap().join(VM_MAXIMUM_SET).is_file());
    }

    #[test]
    fn bodies_are_held_to_the_examples() {
        let ex = Examples::load().unwrap();
        let vm = json!({"location": "eastus", "tags": {"herd-owner": "me"},
            "properties": {"priority": "Spot", "storageProfile": {"osDisk": {"deleteOption": "Delete"}}}});
        assert_eq!(ex.unknown_path(Kind::Vm, &vm), None);
        // The SDK's nulls are not sent keys.
        let nulls =
            json!({"location": "eastus", "properties": {"timeCreated": null, "osProfile": {"customData": null}}});
        assert_eq!(ex.unknown_path(Kind::Vm, &nulls), None);
        let bad = json!({"location": "eastus", "properties": {"hardwareProfile": {"vmSise": "x"}}});
        assert_eq!(
            ex.unknown_path(Kind::Vm, &bad).as_deref(),
            Some("properties.hardwareProfile.vmSise")
        );
        let nic = json!({"properties": {"ipConfigurations": [{"name": "a", "properties": {"subnet": {"id": "x"}, "bogus": 1}}]}});
        assert_eq!(
            ex.unknown_path(Kind::Nic, &nic).as_deref(),
            Some("properties.ipConfigurations[].properties.bogus")
        );
        // A VM field is not a public IP field.
        assert_eq!(
            ex.unknown_path(Kind::PublicIp, &json!({"properties": {"priority": "Spot"}}))
                .as_deref(),
            Some("properties.priority")
        );
    }
}
