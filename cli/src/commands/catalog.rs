//! `herd catalog`: instance types and their prices from the bundled catalogs, filtered
//! and sorted. Reads no ledger and starts no simulator.

use chrono::NaiveDate;
use herd_core::catalog::{OfferQuery, OfferRow, SortKey};
use herd_core::{Arch, Catalog, Cloud, Error, Gpu, Money, PurchaseOption};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde::Serialize;

use crate::args::{CatalogArgs, SortBy};
use crate::catalogs;
use crate::context::Context;
use crate::printer::Table;

pub fn run(ctx: &Context, a: &CatalogArgs) -> anyhow::Result<()> {
    let catalog = catalogs::all();
    let mut q = OfferQuery::new();
    q.clouds = parse_clouds(&a.cloud)?;
    q.regions = a.region.clone();
    q.types = a.types.clone();
    q.families = a.family.clone();
    q.min_vcpus = a.min_vcpus;
    q.max_vcpus = a.max_vcpus;
    q.min_memory_mib = a
        .min_memory
        .as_deref()
        .map(|m| parse_gib("--min-memory", m))
        .transpose()?;
    q.arch = a.arch.as_deref().map(str::parse::<Arch>).transpose()?;
    q.cpu_vendor = a.vendor.clone();
    q.gpu_model = a.gpu.clone();
    q.min_gpus = a.min_gpus;
    q.purchase = if a.spot {
        Some(PurchaseOption::Spot)
    } else if a.on_demand {
        Some(PurchaseOption::OnDemand)
    } else {
        None
    };
    q.max_price = a
        .max_price
        .as_deref()
        .map(|p| parse_price("--max-price", p))
        .transpose()?;
    q.sort = match a.sort {
        SortBy::Price => SortKey::Price,
        SortBy::PricePerVcpu => SortKey::PricePerVcpu,
        SortBy::PricePerGib => SortKey::PricePerGib,
        SortBy::Vcpus => SortKey::Vcpus,
        SortBy::Memory => SortKey::Memory,
        SortBy::Name => SortKey::Name,
    };
    q.limit = a.limit;
    let result = catalog.query(&q);
    let as_of = catalog.oldest_price(result.rows.iter().map(|r| r.offer));

    if a.json {
        let rows: Vec<OfferJson<'_>> = result.rows.iter().map(|r| OfferJson::new(catalog, r)).collect();
        return ctx.printer.json(&rows);
    }
    if result.rows.is_empty() {
        ctx.printer.note(format!(
            "no offers match (of {} scanned); `herd catalog` with fewer filters lists more",
            result.scanned
        ));
        return Ok(());
    }
    ctx.printer.table(&offer_table(&result.rows, false));
    ctx.printer
        .note(format!("{} offer(s) of {} scanned", result.rows.len(), result.scanned));
    if let Some(d) = as_of {
        super::cost::price_age_note(ctx, catalog, d);
    }
    Ok(())
}

/// The offers table `catalog` and `plan` share; `plan` adds a rank and a $/vCPU column.
pub(super) fn offer_table(rows: &[OfferRow<'_>], ranked: bool) -> Table {
    let multi_cloud = rows.iter().any(|r| r.offer.cloud != rows[0].offer.cloud);
    let mut headers: Vec<&'static str> = Vec::new();
    if ranked {
        headers.push(">#");
    }
    if multi_cloud {
        headers.push("CLOUD");
    }
    headers.extend([
        "TYPE", "FAMILY", ">VCPUS", ">MEMORY", "ARCH", "VENDOR", "GPU", "REGION", "PURCHASE", ">$/H",
    ]);
    if ranked {
        headers.push(">$/VCPU-H");
    }
    let mut t = Table::new(&headers);
    for (n, r) in rows.iter().enumerate() {
        let it = r.itype;
        let mut cells = Vec::new();
        if ranked {
            cells.push((n + 1).to_string().into());
        }
        if multi_cloud {
            cells.push(r.offer.cloud.to_string().into());
        }
        cells.extend([
            it.name.clone().into(),
            it.family.clone().into(),
            it.vcpus.to_string().into(),
            gib(it.memory_mib).into(),
            it.arch.to_string().into(),
            it.cpu_vendor.clone().unwrap_or_else(|| "-".into()).into(),
            it.gpu
                .as_ref()
                .map_or("-".to_string(), |g| format!("{} × {}", g.count, g.model))
                .into(),
            r.offer.region.clone().into(),
            r.offer.purchase.to_string().into(),
            r.hourly.map_or("unknown".to_string(), |m| m.to_string()).into(),
        ]);
        if ranked {
            cells.push(
                r.price_per_vcpu()
                    .map_or("-".to_string(), |d| Money::usd(d).to_string())
                    .into(),
            );
        }
        t.row(cells);
    }
    t
}

/// `4 GiB`, `1.5 GiB`, `512 MiB`.
fn gib(mib: u64) -> String {
    if mib < 1024 {
        return format!("{mib} MiB");
    }
    let g = Decimal::from(mib) / Decimal::from(1024);
    format!("{} GiB", g.round_dp(2).normalize())
}

#[derive(Serialize)]
pub(super) struct OfferJson<'a> {
    cloud: Cloud,
    instance_type: &'a str,
    family: &'a str,
    vcpus: u32,
    memory_mib: u64,
    arch: Arch,
    cpu_vendor: Option<&'a str>,
    gpu: Option<&'a Gpu>,
    region: &'a str,
    purchase: PurchaseOption,
    hourly: Option<Money>,
    price_source: &'a str,
    price_as_of: NaiveDate,
}

impl<'a> OfferJson<'a> {
    pub(super) fn new(catalog: &'a Catalog, r: &OfferRow<'a>) -> Self {
        let src = &catalog.sources()[r.offer.source as usize];
        OfferJson {
            cloud: r.offer.cloud,
            instance_type: &r.itype.name,
            family: &r.itype.family,
            vcpus: r.itype.vcpus,
            memory_mib: r.itype.memory_mib,
            arch: r.itype.arch,
            cpu_vendor: r.itype.cpu_vendor.as_deref(),
            gpu: r.itype.gpu.as_ref(),
            region: &r.offer.region,
            purchase: r.offer.purchase,
            hourly: r.hourly,
            price_source: &src.name,
            price_as_of: src.as_of,
        }
    }
}

pub(super) fn parse_clouds(names: &[String]) -> Result<Vec<Cloud>, Error> {
    names.iter().map(|c| c.parse::<Cloud>()).collect()
}

/// GiB (decimals allowed) to MiB, rounded up.
pub(super) fn parse_gib(flag: &str, s: &str) -> Result<u64, Error> {
    let bad = || {
        Error::invalid_spec(format!("{flag} `{s}` is not a number of GiB"))
            .with_hint(format!("e.g. {flag} 4 or {flag} 0.5"))
    };
    let g = Decimal::from_str_exact(s.trim().trim_end_matches("GiB").trim()).map_err(|_| bad())?;
    if g.is_sign_negative() {
        return Err(bad());
    }
    (g * Decimal::from(1024)).ceil().to_u64().ok_or_else(bad)
}

pub(super) fn parse_price(flag: &str, s: &str) -> Result<Money, Error> {
    let m = Money::parse_usd(s).map_err(|_| {
        Error::invalid_spec(format!("{flag} `{s}` is not an amount of dollars")).with_hint(format!("e.g. {flag} 0.10"))
    })?;
    if m.amount.is_sign_negative() {
        return Err(Error::invalid_spec(format!("{flag} `{s}` is negative")));
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_and_prices() {
        assert_eq!(parse_gib("--memory", "1.5").unwrap(), 1536);
        assert_eq!(parse_gib("--memory", "4GiB").unwrap(), 4096);
        assert!(parse_gib("--memory", "-1").is_err());
        assert!(parse_gib("--memory", "lots").is_err());
        assert_eq!(
            parse_price("--max-price", "$0.10").unwrap(),
            Money::parse_usd("0.10").unwrap()
        );
        assert!(parse_price("--max-price", "-1").is_err());
        assert_eq!(gib(512), "512 MiB");
        assert_eq!(gib(1536), "1.5 GiB");
        assert_eq!(gib(4096), "4 GiB");
    }
}
