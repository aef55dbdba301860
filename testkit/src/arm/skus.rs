//! Resource SKUs (`GET /subscriptions/S/providers/Microsoft.Compute/skus`), where herd can
//! learn which sizes a region offers, their vCPUs and CPU architecture, and which are
//! restricted for the subscription. Entries are shaped after Azure's example
//! (`ListAvailableResourceSkus.2021-07-01.json`, whose two entries are the default list);
//! [`sku`] builds more in the same shape. `restrictions` (in the API reference, not the
//! example) name the sizes [`super::Faults::sku_not_available`] withholds.
//!
//! Ref: learn.microsoft.com/rest/api/compute/resource-skus/list (`CpuArchitectureType`
//! capability: `x64` or `Arm64`; `restrictions[]` with `type`, `values`, `reasonCode`).

use serde_json::{json, Value};

use super::examples::Examples;

/// The example's entries.
pub fn example_skus(ex: &Examples) -> Vec<Value> {
    ex.file("ListAvailableResourceSkus.2021-07-01.json")
        .and_then(|f| f.pointer("/responses/200/body/value"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// A VM size in one location, with the example's capabilities plus its CPU architecture
/// (`x64`, `Arm64`): `sku("Standard_D2ps_v5", "standardDPSv5Family", "eastus", &["1","2","3"], 2, 8.0, "Arm64")`.
pub fn sku(name: &str, family: &str, location: &str, zones: &[&str], vcpus: u32, memory_gb: f64, arch: &str) -> Value {
    let cap = |n: &str, v: String| json!({"name": n, "value": v});
    json!({
        "resourceType": "virtualMachines",
        "locations": [location],
        "capabilities": [
            cap("MaxResourceVolumeMB", "0".into()),
            cap("OSVhdSizeMB", "1047552".into()),
            cap("vCPUs", vcpus.to_string()),
            cap("HyperVGenerations", "V2".into()),
            cap("MemoryGB", memory_gb.to_string()),
            cap("MaxDataDiskCount", (vcpus * 2).max(4).to_string()),
            cap("CpuArchitectureType", arch.into()),
            cap("LowPriorityCapable", "True".into()),
            cap("PremiumIO", "True".into()),
            cap("vCPUsAvailable", vcpus.to_string()),
            cap("ACUs", "195".into()),
            cap("vCPUsPerCore", if arch == "Arm64" { "1" } else { "2" }.into()),
            cap("EphemeralOSDiskSupported", "False".into()),
            cap("AcceleratedNetworkingEnabled", "True".into()),
            cap("RdmaEnabled", "False".into()),
            cap("MaxNetworkInterfaces", "2".into()),
        ],
        "locationInfo": [{"location": location, "zones": zones}],
        "name": name,
        "tier": "Standard",
        "size": name.trim_start_matches("Standard_"),
        "family": family,
    })
}

/// The list as the subscription sees it: `restrictions` on withheld sizes, an optional
/// `location eq 'x'` filter.
pub fn listed(skus: &[Value], withheld: &[(String, String)], location: Option<&str>) -> Vec<Value> {
    skus.iter()
        .filter(|s| {
            location.is_none_or(|l| {
                s["locations"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|x| x.as_str().is_some_and(|x| x.eq_ignore_ascii_case(l))))
            })
        })
        .map(|s| {
            let mut s = s.clone();
            let name = s["name"].as_str().unwrap_or("").to_string();
            let locs: Vec<String> = withheld
                .iter()
                .filter(|(_, size)| size.eq_ignore_ascii_case(&name))
                .map(|(l, _)| l.clone())
                .collect();
            s["restrictions"] = if locs.is_empty() {
                json!([])
            } else {
                json!([{"type": "Location", "values": locs, "restrictionInfo": {"locations": locs},
                    "reasonCode": "NotAvailableForSubscription"}])
            };
            s
        })
        .collect()
}
