//! The simulator's catalog: herd's own simulated price list (`catalog/local.toml`), plus
//! the real resources each type gets on this machine (cores and CPU share), which live
//! here rather than in herd-core's catalog model.

use std::str::FromStr;
use std::sync::OnceLock;

use chrono::NaiveDate;
use herd_core::catalog::Region;
use herd_core::{Arch, Catalog, Cloud, InstanceType, Money, Offer, PriceSource, PurchaseOption};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::Deserialize;

const PRICE_LIST: &str = include_str!("../../../catalog/local.toml");

/// The region a request without one goes to.
pub const DEFAULT_REGION: &str = "local-east-1";

/// Shown as the CPU vendor of every simulated type.
pub const CPU_VENDOR: &str = "herd-sim";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PriceList {
    source: SourceRow,
    region: Vec<RegionRow>,
    #[serde(rename = "type")]
    types: Vec<TypeRow>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SourceRow {
    name: String,
    as_of: String,
    licence: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegionRow {
    name: String,
    zones: Vec<String>,
    price_multiplier: String,
    spot_fraction: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TypeRow {
    name: String,
    family: String,
    vcpus: u32,
    cpu_percent: u32,
    memory_mib: u64,
    hourly_usd: String,
}

/// What an instance of a type really gets on this machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resources {
    /// Host cores it may run on (bounded by the host's count at launch).
    pub vcpus: u32,
    /// CPU time as a percentage of one core (`200` = two full cores).
    pub cpu_percent: u32,
}

struct Parsed {
    catalog: Catalog,
    resources: Vec<(String, Resources)>,
}

fn parsed() -> &'static Parsed {
    static P: OnceLock<Parsed> = OnceLock::new();
    P.get_or_init(|| parse(PRICE_LIST).expect("catalog/local.toml is valid (checked by a unit test)"))
}

fn dec(s: &str, what: &str) -> Result<Decimal, String> {
    Decimal::from_str(s).map_err(|e| format!("{what}: `{s}`: {e}"))
}

/// Dollars per hour to 4 places, as price lists print them.
fn round4(d: Decimal) -> Decimal {
    d.round_dp_with_strategy(4, RoundingStrategy::MidpointAwayFromZero)
}

fn parse(text: &str) -> Result<Parsed, String> {
    let list: PriceList = toml::from_str(text).map_err(|e| e.to_string())?;
    let as_of = NaiveDate::parse_from_str(&list.source.as_of, "%Y-%m-%d").map_err(|e| e.to_string())?;
    let sources = vec![PriceSource {
        name: list.source.name,
        as_of,
        licence: list.source.licence,
    }];
    let arch = Arch::host();
    let mut types = Vec::new();
    let mut resources = Vec::new();
    let mut offers = Vec::new();
    for t in &list.types {
        let mut it = InstanceType::new(Cloud::Local, &t.name, &t.family, t.vcpus, t.memory_mib, arch);
        it.cpu_vendor = Some(CPU_VENDOR.to_string());
        it.cpu_family = Some(format!("{}% of a core", t.cpu_percent));
        types.push(it);
        resources.push((
            t.name.clone(),
            Resources {
                vcpus: t.vcpus,
                cpu_percent: t.cpu_percent,
            },
        ));
        let base = dec(&t.hourly_usd, &t.name)?;
        for r in &list.region {
            let od = round4(base * dec(&r.price_multiplier, &r.name)?);
            let spot = round4(od * dec(&r.spot_fraction, &r.name)?);
            for (p, price) in [(PurchaseOption::OnDemand, od), (PurchaseOption::Spot, spot)] {
                offers.push(Offer::new(
                    Cloud::Local,
                    &t.name,
                    &r.name,
                    p,
                    Some(Money::usd(price)),
                    0,
                ));
            }
        }
    }
    let regions = list
        .region
        .into_iter()
        .map(|r| Region {
            cloud: Cloud::Local,
            name: r.name,
            zones: r.zones,
        })
        .collect();
    Ok(Parsed {
        catalog: Catalog::new(types, offers, sources, regions),
        resources,
    })
}

/// The simulator's catalog (also what `herd catalog` shows for `local`).
pub fn local_catalog() -> &'static Catalog {
    &parsed().catalog
}

/// The real resources of a type, `None` for an unknown name.
pub fn resources(instance_type: &str) -> Option<Resources> {
    parsed()
        .resources
        .iter()
        .find(|(n, _)| n == instance_type)
        .map(|(_, r)| *r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use herd_core::{BillingRule, QuoteRequest};

    #[test]
    fn price_list_parses_and_covers_every_region() {
        let c = local_catalog();
        let regions: Vec<_> = c.regions(Cloud::Local).map(|r| r.name.clone()).collect();
        assert_eq!(regions, ["local-east-1", "local-west-1", "local-eu-1"]);
        assert_eq!(c.types().len(), resources_len());
        for t in c.types() {
            assert_eq!(t.cpu_vendor.as_deref(), Some(CPU_VENDOR));
            assert!(t.gpu.is_none());
            for r in &regions {
                let od = c.offer(Cloud::Local, &t.name, r, PurchaseOption::OnDemand).unwrap();
                let sp = c.offer(Cloud::Local, &t.name, r, PurchaseOption::Spot).unwrap();
                let (od, sp) = (od.hourly.unwrap().amount, sp.hourly.unwrap().amount);
                assert!(sp >= od * Decimal::new(30, 2) - Decimal::new(1, 4), "{} {r}", t.name);
                assert!(sp <= od * Decimal::new(40, 2) + Decimal::new(1, 4), "{} {r}", t.name);
            }
        }
    }

    fn resources_len() -> usize {
        parsed().resources.len()
    }

    #[test]
    fn regions_differ_in_price_and_quotes_work() {
        let q = |r: &str| {
            local_catalog()
                .quote(
                    Cloud::Local,
                    &QuoteRequest::new("l1.large", r, PurchaseOption::OnDemand),
                    BillingRule::LOCAL,
                )
                .unwrap()
        };
        let east = q("local-east-1");
        assert_eq!(east.hourly, Money::parse_usd("0.0416").unwrap());
        assert_eq!(east.source, "herd simulator price list");
        assert!(q("local-eu-1").hourly > q("local-west-1").hourly);
        assert!(q("local-west-1").hourly > east.hourly);
    }

    #[test]
    fn resources_are_real_and_ordered() {
        let small = resources("l1.small").unwrap();
        let large = resources("l1.large").unwrap();
        assert_eq!((small.vcpus, small.cpu_percent), (1, 25));
        assert_eq!(large.cpu_percent, 100);
        assert_eq!(resources("l1.xlarge").unwrap().vcpus, 2);
        assert!(resources("nope").is_none());
    }
}
