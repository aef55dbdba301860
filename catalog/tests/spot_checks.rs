//! Spot checks of the committed bundled data against facts read from the sources by hand
//! (see catalog/SOURCES.md), so a generator that breaks fails here loudly. The numbers
//! below are copied from the source files, not from the generator's output.

use herd_catalog::{bundled, Catalogs};
use herd_core::{Arch, Cloud, PurchaseOption};
use rust_decimal::Decimal;
use std::str::FromStr;

fn price(cloud: Cloud, t: &str, region: &str, p: PurchaseOption) -> Option<Decimal> {
    bundled(cloud)
        .offer(cloud, t, region, p)
        .unwrap_or_else(|| panic!("no {p} offer of {t} in {region}"))
        .hourly
        .map(|m| m.amount)
}

fn d(s: &str) -> Option<Decimal> {
    Some(Decimal::from_str(s).unwrap())
}

fn specs(cloud: Cloud, t: &str) -> (u32, u64, Arch) {
    let t = bundled(cloud).find_type(cloud, t).unwrap();
    (t.vcpus, t.memory_mib, t.arch)
}

#[test]
fn aws() {
    let on = PurchaseOption::OnDemand;
    assert_eq!(specs(Cloud::Aws, "c7g.large"), (2, 4096, Arch::Arm64));
    assert_eq!(specs(Cloud::Aws, "m5.large"), (2, 8192, Arch::X86_64));
    // libcloud compute.ec2_linux
    assert_eq!(price(Cloud::Aws, "c7g.large", "us-east-1", on), d("0.077"));
    assert_eq!(price(Cloud::Aws, "m5.large", "eu-west-1", on), d("0.114"));
    assert_eq!(price(Cloud::Aws, "p4d.24xlarge", "us-east-1", on), d("36.04986"));
    let c7g = bundled(Cloud::Aws).find_type(Cloud::Aws, "c7g.large").unwrap();
    assert_eq!(c7g.family, "c7g");
    assert_eq!(c7g.cpu_vendor.as_deref(), Some("AWS"));
    assert_eq!(c7g.cpu_family.as_deref(), Some("Graviton3"));
    let p4d = bundled(Cloud::Aws).find_type(Cloud::Aws, "p4d.24xlarge").unwrap();
    let g = p4d.gpu.as_ref().unwrap();
    assert_eq!((g.model.as_str(), g.count, g.memory_mib), ("A100", 8, 40960));
    assert!(
        bundled(Cloud::Aws).types().len() > 1000,
        "every type of the servers CSV"
    );
    let e = bundled(Cloud::Aws).find_type(Cloud::Aws, "c7g.larg").unwrap_err();
    assert_eq!(e.suggestions()[0], "c7g.large");
}

#[test]
fn gcp() {
    assert_eq!(specs(Cloud::Gcp, "n2-standard-8"), (8, 32768, Arch::X86_64));
    // n2 us-central1: 8 x 0.031611 + 32 x 0.004237 (vCPU-hour, GiB-hour).
    assert_eq!(
        price(Cloud::Gcp, "n2-standard-8", "us-central1", PurchaseOption::OnDemand),
        d("0.388472")
    );
    // preemptible: 8 x 0.007649 + 32 x 0.001025
    assert_eq!(
        price(Cloud::Gcp, "n2-standard-8", "us-central1", PurchaseOption::Spot),
        d("0.093992")
    );
    // n1 europe-west1: 4 x 0.034773 + 15 x 0.004661
    assert_eq!(
        price(Cloud::Gcp, "n1-standard-4", "europe-west1", PurchaseOption::OnDemand),
        d("0.209007")
    );
    assert_eq!(specs(Cloud::Gcp, "t2a-standard-8").2, Arch::Arm64);
    assert_eq!(
        bundled(Cloud::Gcp)
            .find_type(Cloud::Gcp, "n2d-standard-2")
            .unwrap()
            .family,
        "n2d"
    );
    // Accelerator types are known, but never priced from a partial sum.
    let a2 = bundled(Cloud::Gcp).find_type(Cloud::Gcp, "a2-highgpu-1g").unwrap();
    assert_eq!(a2.gpu.as_ref().unwrap().model, "A100");
    assert!(bundled(Cloud::Gcp)
        .offers()
        .iter()
        .filter(|o| o.instance_type.starts_with("a2-"))
        .all(|o| o.hourly.is_none()));
}

#[test]
fn azure() {
    assert_eq!(specs(Cloud::Azure, "Standard_D2s_v3"), (2, 8192, Arch::X86_64));
    assert_eq!(specs(Cloud::Azure, "Standard_D8pls_v5"), (8, 16384, Arch::Arm64));
    assert_eq!(
        price(Cloud::Azure, "Standard_D2s_v3", "eastus", PurchaseOption::OnDemand),
        d("0.096")
    );
    assert_eq!(
        price(Cloud::Azure, "Standard_D2s_v3", "westeurope", PurchaseOption::Spot),
        d("0.024")
    );
    let nc = bundled(Cloud::Azure)
        .find_type(Cloud::Azure, "Standard_NC24ads_A100_v4")
        .unwrap();
    assert_eq!(nc.gpu.as_ref().unwrap().memory_mib, 81920);
    assert_eq!(nc.family, "NCadsA100v4");
    assert_eq!(
        bundled(Cloud::Azure)
            .find_type(Cloud::Azure, "Standard_D4s_v5")
            .unwrap()
            .family,
        "Dsv5"
    );
}

#[test]
fn every_offer_has_a_dated_source_and_no_price_is_zero() {
    let all = Catalogs::load(None).unwrap();
    let c = &all.catalog;
    assert!(c.offers().len() > 30_000, "{} offers", c.offers().len());
    for o in c.offers() {
        assert!(o.hourly.is_none_or(|m| !m.amount.is_zero()), "{o:?}: 0 means unknown");
        let s = &c.sources()[o.source as usize];
        assert!(s.as_of >= chrono::NaiveDate::from_ymd_opt(2024, 1, 1).unwrap(), "{s:?}");
    }
    for f in &all.freshness {
        assert!(f.bundled_as_of.is_some(), "{f:?}");
        assert!(f.overlay.is_none());
    }
}

#[test]
fn overlay_wins_over_bundled() {
    use herd_core::catalog::Region;
    use herd_core::{Catalog, InstanceType, Money, Offer, PriceSource};
    let dir = tempfile::tempdir().unwrap();
    let as_of = chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
    let fresh = Catalog::new(
        vec![InstanceType::new(Cloud::Aws, "c7g.large", "c7g", 2, 4096, Arch::Arm64)],
        vec![Offer::new(
            Cloud::Aws,
            "c7g.large",
            "us-east-1",
            PurchaseOption::OnDemand,
            Some(Money::usd(Decimal::new(70, 3))),
            0,
        )],
        vec![PriceSource {
            name: "AWS Price List".into(),
            as_of,
            licence: "AWS".into(),
        }],
        vec![Region {
            cloud: Cloud::Aws,
            name: "us-east-1".into(),
            zones: vec![],
        }],
    );
    herd_catalog::overlay::write(dir.path(), Cloud::Aws, &fresh).unwrap();
    let all = Catalogs::load(Some(dir.path())).unwrap();
    let o = all
        .catalog
        .offer(Cloud::Aws, "c7g.large", "us-east-1", PurchaseOption::OnDemand)
        .unwrap();
    assert_eq!(o.hourly.unwrap().amount, Decimal::new(70, 3));
    assert_eq!(all.catalog.sources()[o.source as usize].as_of, as_of);
    // Other regions keep their bundled prices.
    let o = all
        .catalog
        .offer(Cloud::Aws, "c7g.large", "eu-west-1", PurchaseOption::OnDemand)
        .unwrap();
    assert_eq!(o.hourly.unwrap().amount, Decimal::new(775, 4));
    let f = all.freshness.iter().find(|f| f.cloud == Cloud::Aws).unwrap();
    assert_eq!(f.overlay.as_ref().unwrap().1, as_of);
}
