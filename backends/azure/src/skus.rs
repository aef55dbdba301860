//! Where else a size is offered, for `SkuNotAvailable`: ARM's Resource SKUs list says,
//! per location, whether the subscription may use a size (`restrictions` of type
//! `Location` withhold it). herd does not move a launch to another region unasked (the
//! price, the data's location and the quota differ); it names the regions that offer
//! the size, cheapest first by the catalog, and the flag that takes one.
//! Ref: <https://learn.microsoft.com/en-us/rest/api/compute/resource-skus/list>.

use herd_core::{Catalog, Cloud, Error, PurchaseOption};
use serde_json::Value;

use crate::client::{collect, Arm};

/// The locations in `skus` (Resource SKUs entries) where `size` is listed and not
/// withheld from the subscription, `except` left out.
pub fn offered(skus: &[Value], size: &str, except: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in skus {
        let is_it = s.get("resourceType").and_then(Value::as_str) == Some("virtualMachines")
            && s.get("name")
                .and_then(Value::as_str)
                .is_some_and(|n| n.eq_ignore_ascii_case(size));
        if !is_it {
            continue;
        }
        let withheld: Vec<String> = s
            .get("restrictions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|r| r.get("type").and_then(Value::as_str) == Some("Location"))
            .flat_map(|r| r.get("values").and_then(Value::as_array).cloned().unwrap_or_default())
            .filter_map(|v| v.as_str().map(str::to_ascii_lowercase))
            .collect();
        for l in s.get("locations").and_then(Value::as_array).into_iter().flatten() {
            let Some(l) = l.as_str().map(str::to_ascii_lowercase) else {
                continue;
            };
            if l != except.to_ascii_lowercase() && !withheld.contains(&l) && !out.contains(&l) {
                out.push(l);
            }
        }
    }
    out
}

/// `regions` ordered by the catalog's on-demand price of `size` (unpriced last, then by name).
pub fn cheapest_first(catalog: &Catalog, size: &str, mut regions: Vec<String>) -> Vec<String> {
    let price = |r: &str| {
        catalog
            .offer(Cloud::Azure, size, r, PurchaseOption::OnDemand)
            .and_then(|o| o.hourly)
            .map(|m| m.to_micros())
            .unwrap_or(i64::MAX)
    };
    regions.sort_by(|a, b| price(a).cmp(&price(b)).then_with(|| a.cmp(b)));
    regions
}

/// `e` (a `SkuNotAvailable` in `region`) with the regions that offer `size` to this
/// subscription; if the list cannot be read, `e` as it was, saying so.
pub async fn with_other_regions(arm: &Arm, catalog: &Catalog, size: &str, region: &str, e: Error) -> Error {
    let pages = arm.compute.resource_skus_client().list(&arm.subscription).into_stream();
    match collect(pages, "resourceSkus.list").await {
        Ok(skus) => {
            let others = cheapest_first(catalog, size, offered(&skus, size, region));
            match others.first() {
                Some(first) => {
                    let shown: Vec<&str> = others.iter().take(5).map(String::as_str).collect();
                    e.map_message(|m| format!("{m}; {size} is offered to this subscription in {}", shown.join(", ")))
                        .with_hint(format!("launch it there with `--region {first}`, or pick another size"))
                        .with_context("next_region", first.clone())
                }
                None => e
                    .map_message(|m| format!("{m}; no other region offers {size} to this subscription"))
                    .with_hint("pick another size (`herd plan --cloud azure`)"),
            }
        }
        Err(l) => e.map_message(|m| format!("{m} (the regions that offer it could not be read: {})", l.message())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn withheld_locations_and_other_sizes_are_left_out() {
        let skus = vec![
            json!({"resourceType": "virtualMachines", "name": "Standard_D2s_v5", "locations": ["eastus"],
                   "restrictions": [{"type": "Location", "values": ["eastus"]}]}),
            json!({"resourceType": "virtualMachines", "name": "Standard_D2s_v5", "locations": ["westus2"], "restrictions": []}),
            json!({"resourceType": "virtualMachines", "name": "standard_d2s_v5", "locations": ["NorthEurope"],
                   "restrictions": [{"type": "Zone", "values": ["northeurope"]}]}),
            json!({"resourceType": "disks", "name": "Standard_D2s_v5", "locations": ["japaneast"]}),
            json!({"resourceType": "virtualMachines", "name": "Standard_E2s_v5", "locations": ["uksouth"]}),
        ];
        assert_eq!(offered(&skus, "Standard_D2s_v5", "eastus"), ["westus2", "northeurope"]);
        assert_eq!(offered(&skus, "Standard_D2s_v5", "westus2"), ["northeurope"]);
    }
}
