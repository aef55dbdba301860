//! From the sources' facts to herd's catalog model, one cloud at a time. The rules
//! (families, CPU names, GCE's price formula, which source wins) are documented with
//! examples in `catalog/SOURCES.md`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::NaiveDate;
use herd_catalog::gce;
use herd_core::catalog::Region;
use herd_core::{Arch, Catalog, Cloud, Gpu, InstanceType, Money, Offer, PriceSource, PurchaseOption};
use rust_decimal::Decimal;

use crate::sources::{AwsPrice, GceFamily, Libcloud, Server};

pub const LIBCLOUD: &str = "apache-libcloud 3.9.1 pricing.json";
pub const SPARECORES_AWS_2024: &str = "Spare Cores, sparecores-data 0.1.0 AWS on-demand prices";

fn source(name: String, as_of: NaiveDate, licence: &str) -> PriceSource {
    PriceSource {
        name,
        as_of,
        licence: licence.to_string(),
    }
}

fn regions(cloud: Cloud, names: BTreeSet<String>) -> Vec<Region> {
    names
        .into_iter()
        .map(|name| Region {
            cloud,
            name,
            zones: Vec::new(),
        })
        .collect()
}

fn nonempty(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

/// `Xeon 8375C`, `EPYC 7R13`: the source's family and model together name the part.
fn cpu_name(s: &Server) -> Option<String> {
    nonempty(&format!("{} {}", s.cpu_family, s.cpu_model))
}

fn gpu(s: &Server) -> Option<Gpu> {
    (s.gpu_count > 0 && !s.gpu_model.is_empty()).then(|| Gpu {
        model: s.gpu_model.clone(),
        count: s.gpu_count,
        memory_mib: s.gpu_memory_total_mib / u64::from(s.gpu_count),
    })
}

/// Graviton generation from the Arm core AWS built it on (Cortex-A72: the first
/// Graviton; Neoverse N1: Graviton2; V1: Graviton3; V2: Graviton4), else from the
/// family's generation digit (`c7g`: 7 is Graviton3).
pub fn graviton(model: &str, family: &str) -> String {
    let by_core = match model {
        "Cortex-A72" => Some("Graviton"),
        "Neoverse-N1" => Some("Graviton2"),
        "Neoverse-V1" => Some("Graviton3"),
        "Neoverse-V2" => Some("Graviton4"),
        _ => None,
    };
    let by_family = || {
        let digit = family.chars().find(|c| c.is_ascii_digit());
        match digit {
            Some('6') => "Graviton2",
            Some('7') => "Graviton3",
            Some('8') => "Graviton4",
            _ => "Graviton",
        }
    };
    by_core.unwrap_or_else(by_family).to_string()
}

/// Regions like `us-west-2-lax-1` are Local Zones of a parent region, not regions.
fn is_local_zone(region: &str) -> bool {
    region.split('-').count() >= 5
}

pub fn aws(servers: &[Server], lc: &Libcloud, old: &[AwsPrice], old_as_of: NaiveDate) -> Catalog {
    let sources = vec![
        source(format!("{LIBCLOUD}: compute.ec2_linux"), lc.as_of, "Apache-2.0"),
        source(SPARECORES_AWS_2024.to_string(), old_as_of, "CC BY-SA 4.0"),
    ];
    let mut old_by_key: HashMap<(&str, &str), Option<Decimal>> = HashMap::new();
    for p in old {
        old_by_key.insert((p.instance_type.as_str(), p.region.as_str()), p.price);
    }
    let mut types = Vec::new();
    let mut offers = Vec::new();
    let mut region_names = BTreeSet::new();
    for s in servers.iter().filter(|s| s.vendor == "aws") {
        let family = s.name.split('.').next().unwrap_or(&s.name).to_string();
        let mut t = InstanceType::new(Cloud::Aws, &s.name, &family, s.vcpus, s.memory_mib, s.arch);
        t.cpu_vendor = nonempty(&s.cpu_manufacturer);
        t.cpu_family = if s.cpu_manufacturer == "AWS" {
            Some(graviton(&s.cpu_model, &family))
        } else {
            cpu_name(s)
        };
        t.gpu = gpu(s);
        // libcloud first; the 2024 list only where libcloud has no price for the region.
        let mut prices: BTreeMap<&str, (Option<Decimal>, u32)> = BTreeMap::new();
        if let Some(by_region) = lc.ec2_linux.get(&s.name) {
            for (r, p) in by_region {
                prices.insert(r, (*p, 0));
            }
        }
        for p in old.iter().filter(|p| p.instance_type == s.name) {
            let slot = prices.entry(p.region.as_str()).or_insert((None, 1));
            if slot.0.is_none() && p.price.is_some() {
                *slot = (p.price, 1);
            }
        }
        for (region, (price, src)) in prices {
            if is_local_zone(region) {
                continue;
            }
            region_names.insert(region.to_string());
            offers.push(Offer::new(
                Cloud::Aws,
                &s.name,
                region,
                PurchaseOption::OnDemand,
                price.map(Money::usd),
                src,
            ));
        }
        types.push(t);
    }
    Catalog::new(types, offers, sources, regions(Cloud::Aws, region_names))
}

/// f1-micro and g1-small are priced per instance in libcloud (`micro instance`,
/// `small instance`), not per vCPU and GiB.
fn per_instance(family: &GceFamily) -> bool {
    family.ram_on_demand.is_empty() && family.cpu_description.ends_with("instance")
}

/// The GCE price of a machine type in a region, as GCE computes it: vCPUs times the
/// family's vCPU-hour rate plus GiB times its GiB-hour rate. `None` if any part is
/// unknown, including the GPUs of accelerator types: never a partial sum.
pub fn gce_price(s: &Server, family: &GceFamily, region: &str, purchase: PurchaseOption) -> Option<Decimal> {
    if gpu(s).is_some() || s.gpu_count > 0 {
        return None;
    }
    let (cpu, ram) = match purchase {
        PurchaseOption::OnDemand => (&family.cpu_on_demand, &family.ram_on_demand),
        PurchaseOption::Spot => (&family.cpu_preemptible, &family.ram_preemptible),
    };
    let cpu_rate = (*cpu.get(region)?)?;
    if per_instance(family) {
        return Some(cpu_rate);
    }
    let ram_rate = (*ram.get(region)?)?;
    Some(gce::price(&s.name, s.vcpus, s.memory_mib, cpu_rate, ram_rate))
}

/// Google's Arm families (Axion: c4a, n4a; Ampere Altra: t2a). The servers CSV reports
/// some of them as X86_64, which contradicts Google's machine-family documentation.
fn gce_arm(family: &str) -> Option<(&'static str, &'static str)> {
    match family {
        "c4a" | "n4a" => Some(("Google", "Axion")),
        "t2a" => Some(("Ampere", "Altra")),
        _ => None,
    }
}

pub fn gcp(servers: &[Server], lc: &Libcloud) -> Catalog {
    let sources = vec![source(
        format!("{LIBCLOUD}: compute.gce_instances"),
        lc.as_of,
        "Apache-2.0",
    )];
    let mut types = Vec::new();
    let mut offers = Vec::new();
    let mut region_names = BTreeSet::new();
    for s in servers.iter().filter(|s| s.vendor == "gcp") {
        let family = gce::family(&s.name).to_string();
        let mut t = InstanceType::new(Cloud::Gcp, &s.name, &family, s.vcpus, s.memory_mib, s.arch);
        t.cpu_vendor = nonempty(&s.cpu_manufacturer);
        t.cpu_family = cpu_name(s);
        t.gpu = gpu(s);
        if let Some((vendor, cpu)) = gce_arm(&family) {
            t.arch = Arch::Arm64;
            t.cpu_vendor = Some(vendor.to_string());
            t.cpu_family = Some(cpu.to_string());
        }
        if let Some(f) = lc.gce.get(&family) {
            let regs: BTreeSet<&String> = f.cpu_on_demand.keys().chain(f.cpu_preemptible.keys()).collect();
            for region in regs {
                region_names.insert(region.clone());
                for purchase in [PurchaseOption::OnDemand, PurchaseOption::Spot] {
                    let price = gce_price(s, f, region, purchase);
                    offers.push(Offer::new(
                        Cloud::Gcp,
                        &s.name,
                        region,
                        purchase,
                        price.map(Money::usd),
                        0,
                    ));
                }
            }
        }
        types.push(t);
    }
    Catalog::new(types, offers, sources, regions(Cloud::Gcp, region_names))
}

/// herd's Azure family: the size name without `Standard_`, its vCPU count and any
/// constrained-vCPU count removed, the rest kept in order: `Standard_D4s_v5` is `Dsv5`,
/// `Standard_E64-32s_v3` is `Esv3`, `Standard_NC24ads_A100_v4` is `NCadsA100v4`,
/// `Standard_M128ms` is `Mms`.
pub fn azure_family(name: &str) -> String {
    let bare = name.strip_prefix("Standard_").unwrap_or(name);
    let mut parts = bare.split('_');
    let head = parts.next().unwrap_or("");
    let series: String = head.chars().take_while(|c| c.is_ascii_alphabetic()).collect();
    let rest = &head[series.len()..];
    let rest = rest.trim_start_matches(|c: char| c.is_ascii_digit());
    let rest = rest
        .strip_prefix('-')
        .map_or(rest, |r| r.trim_start_matches(|c: char| c.is_ascii_digit()));
    let mut family = series;
    family.push_str(rest);
    for p in parts {
        family.push_str(p);
    }
    family
}

/// libcloud's key for an Azure size: `Standard_D2s_v3` is `standardd2sv3`, its
/// low-priority price `lowpriorityd2sv3`.
pub fn azure_keys(name: &str) -> (String, String) {
    let bare: String = name
        .strip_prefix("Standard_")
        .unwrap_or(name)
        .chars()
        .filter(|c| *c != '_' && *c != '-')
        .collect::<String>()
        .to_ascii_lowercase();
    (format!("standard{bare}"), format!("lowpriority{bare}"))
}

pub fn azure(servers: &[Server], lc: &Libcloud) -> Catalog {
    let sources = vec![source(
        format!("{LIBCLOUD}: compute.azure_linux"),
        lc.as_of,
        "Apache-2.0",
    )];
    let mut types = Vec::new();
    let mut offers = Vec::new();
    let mut region_names = BTreeSet::new();
    for s in servers.iter().filter(|s| s.vendor == "azure") {
        let mut t = InstanceType::new(
            Cloud::Azure,
            &s.name,
            azure_family(&s.name),
            s.vcpus,
            s.memory_mib,
            s.arch,
        );
        t.cpu_vendor = nonempty(&s.cpu_manufacturer);
        t.cpu_family = cpu_name(s);
        t.gpu = gpu(s);
        let (od, lp) = azure_keys(&s.name);
        for (key, purchase) in [(od, PurchaseOption::OnDemand), (lp, PurchaseOption::Spot)] {
            if let Some(by_region) = lc.azure_linux.get(&key) {
                for (region, price) in by_region {
                    region_names.insert(region.clone());
                    offers.push(Offer::new(
                        Cloud::Azure,
                        &s.name,
                        region,
                        purchase,
                        price.map(Money::usd),
                        0,
                    ));
                }
            }
        }
        types.push(t);
    }
    Catalog::new(types, offers, sources, regions(Cloud::Azure, region_names))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources;

    fn fixture(name: &str) -> String {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures")
            .join(name);
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    fn inputs() -> (Vec<Server>, Libcloud, Vec<AwsPrice>) {
        (
            sources::servers(&fixture("servers.csv")).unwrap(),
            sources::libcloud(&fixture("libcloud.json")).unwrap(),
            sources::aws_prices(&fixture("aws_ondemand.csv")).unwrap(),
        )
    }

    fn price(c: &Catalog, cloud: Cloud, t: &str, r: &str, p: PurchaseOption) -> Option<Decimal> {
        c.offer(cloud, t, r, p)
            .unwrap_or_else(|| panic!("no offer {t} {r} {p}"))
            .hourly
            .map(|m| m.amount)
    }

    #[test]
    fn names() {
        assert_eq!(azure_family("Standard_D4s_v5"), "Dsv5");
        assert_eq!(azure_family("Standard_E64-32s_v3"), "Esv3");
        assert_eq!(azure_family("Standard_NC24ads_A100_v4"), "NCadsA100v4");
        assert_eq!(azure_family("Standard_M128ms"), "Mms");
        assert_eq!(azure_family("Standard_A1"), "A");
        assert_eq!(azure_keys("Standard_D2s_v3").0, "standardd2sv3");
        assert_eq!(azure_keys("Standard_D2s_v3").1, "lowpriorityd2sv3");
        assert_eq!(graviton("Neoverse-V1", "c7g"), "Graviton3");
        assert_eq!(graviton("", "m8g"), "Graviton4");
        assert!(is_local_zone("us-west-2-lax-1"));
        assert!(!is_local_zone("us-gov-west-1"));
    }

    #[test]
    fn aws_prefers_libcloud_and_falls_back_per_region() {
        let (s, lc, old) = inputs();
        let c = aws(&s, &lc, &old, NaiveDate::from_ymd_opt(2024, 2, 21).unwrap());
        let t = c.find_type(Cloud::Aws, "c7g.large").unwrap();
        assert_eq!((t.vcpus, t.memory_mib, t.arch), (2, 4096, Arch::Arm64));
        assert_eq!(t.family, "c7g");
        assert_eq!(t.cpu_family.as_deref(), Some("Graviton3"));
        let on = PurchaseOption::OnDemand;
        // libcloud's price wins where it has one.
        let o = c.offer(Cloud::Aws, "a1.2xlarge", "ap-south-1", on).unwrap();
        assert_eq!(
            c.sources()[o.source as usize].name,
            format!("{LIBCLOUD}: compute.ec2_linux")
        );
        // libcloud says 0.0 (unknown) in ap-northeast-1: the 2024 list's price, with its source.
        let o = c.offer(Cloud::Aws, "a1.medium", "ap-northeast-1", on).unwrap();
        assert_eq!(o.hourly.map(|m| m.amount), Some(Decimal::new(321, 4)));
        assert_eq!(c.sources()[o.source as usize].name, SPARECORES_AWS_2024);
        // Unknown in every source stays unknown (m8g is newer than the 2024 list).
        assert_eq!(price(&c, Cloud::Aws, "m8g.large", "us-east-1", on), None);
        assert_eq!(
            price(&c, Cloud::Aws, "m8g.large", "us-east-2", on),
            Some(Decimal::new(8976, 5))
        );
        assert!(c.regions(Cloud::Aws).all(|r| !is_local_zone(&r.name)));
    }

    #[test]
    fn gce_prices_are_vcpus_plus_memory() {
        let (s, lc, _) = inputs();
        let c = gcp(&s, &lc);
        let f = &lc.gce["n2"];
        let cpu = f.cpu_on_demand["us-central1"].unwrap();
        let ram = f.ram_on_demand["us-central1"].unwrap();
        let want = (Decimal::from(8) * cpu + Decimal::from(32) * ram)
            .round_dp(6)
            .normalize();
        assert_eq!(
            price(&c, Cloud::Gcp, "n2-standard-8", "us-central1", PurchaseOption::OnDemand),
            Some(want)
        );
        assert!(price(&c, Cloud::Gcp, "n2-standard-8", "us-central1", PurchaseOption::Spot).unwrap() < want);
        // e2-micro: a quarter vCPU plus 1 GiB.
        let e2 = &lc.gce["e2"];
        let want = (Decimal::new(25, 2) * e2.cpu_on_demand["us-central1"].unwrap()
            + e2.ram_on_demand["us-central1"].unwrap())
        .round_dp(6)
        .normalize();
        assert_eq!(
            price(&c, Cloud::Gcp, "e2-micro", "us-central1", PurchaseOption::OnDemand),
            Some(want)
        );
        // GPU types: no accelerator prices in the source, so no price at all.
        let a2 = c.find_type(Cloud::Gcp, "a2-highgpu-1g").unwrap();
        assert_eq!(a2.gpu.as_ref().unwrap().memory_mib, 40960);
        let a2_row = s.iter().find(|r| r.name == "a2-highgpu-1g").unwrap();
        assert_eq!(gce_price(a2_row, f, "us-central1", PurchaseOption::OnDemand), None);
        let t2a = c.find_type(Cloud::Gcp, "t2a-standard-8").unwrap();
        assert_eq!(t2a.arch, Arch::Arm64);
    }

    #[test]
    fn azure_on_demand_and_low_priority() {
        let (s, lc, _) = inputs();
        let c = azure(&s, &lc);
        let t = c.find_type(Cloud::Azure, "Standard_D2s_v3").unwrap();
        assert_eq!((t.vcpus, t.memory_mib, t.family.as_str()), (2, 8192, "Dsv3"));
        let od = price(&c, Cloud::Azure, "Standard_D2s_v3", "eastus", PurchaseOption::OnDemand).unwrap();
        let lp = price(&c, Cloud::Azure, "Standard_D2s_v3", "eastus", PurchaseOption::Spot).unwrap();
        assert_eq!(od, lc.azure_linux["standardd2sv3"]["eastus"].unwrap());
        assert!(lp < od);
    }
}
