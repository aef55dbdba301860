//! `herd plan`: the cheapest offers that meet your constraints, ranked by price (ties by
//! price per vCPU), or by price per vCPU or per GiB with `--sort`. When nothing matches,
//! it says which constraint to relax. Offers whose price is unknown are never ranked.

use herd_core::catalog::{OfferQuery, SortKey};
use herd_core::{Arch, Catalog, Error, PurchaseOption};
use serde::Serialize;

use super::catalog::{check_names, load, offer_table, parse_clouds, parse_gib, parse_price, price_age, OfferJson};
use crate::args::PlanArgs;
use crate::context::Context;

/// The flags that constrain a plan, by name, so a failed plan can try dropping each.
const CONSTRAINTS: [&str; 13] = [
    "--family",
    "--type",
    "--cpu-family",
    "--vcpus",
    "--memory",
    "--arch",
    "--vendor",
    "--gpu",
    "--gpus",
    "--max-price",
    "--spot",
    "--region",
    "--cloud",
];

#[derive(Serialize)]
struct PlanOut<'a> {
    scanned: usize,
    matched: usize,
    prices_as_of: Option<chrono::NaiveDate>,
    prices_age_days: Option<i64>,
    offers: Vec<OfferJson<'a>>,
}

pub fn run(ctx: &Context, a: &PlanArgs) -> anyhow::Result<()> {
    let catalog = load(ctx)?;
    let mut q = query(a, None)?;
    check_names(catalog, &q)?;
    q.limit = Some(a.top.max(1));
    let result = catalog.query(&q);
    let (scanned, matched, rows) = (result.scanned, result.matched, result.rows);
    if rows.is_empty() {
        return Err(no_match(catalog, a)?.into());
    }
    let as_of = catalog.oldest_price(rows.iter().map(|r| r.offer));
    if a.json {
        ctx.printer.json(&PlanOut {
            scanned,
            matched,
            prices_as_of: as_of,
            prices_age_days: as_of.map(|d| Catalog::age_days(d, chrono::Utc::now())),
            offers: rows.iter().map(|r| OfferJson::new(catalog, r)).collect(),
        })?;
        price_age(ctx, catalog, &rows, true);
        return Ok(());
    }
    ctx.printer.table(&offer_table(&rows, true));
    ctx.printer.note(format!(
        "{matched} of {scanned} offers meet the constraints; showing the cheapest {}",
        rows.len()
    ));
    price_age(ctx, catalog, &rows, false);
    Ok(())
}

/// The query for these flags, optionally without one of them.
fn query(a: &PlanArgs, without: Option<&str>) -> Result<OfferQuery, Error> {
    let on = |flag: &str| without != Some(flag);
    let mut q = OfferQuery::new();
    q.sort = super::catalog::sort_key(a.sort);
    if on("--family") {
        q.families = a.family.clone();
    }
    if on("--type") {
        q.types = a.types.clone();
    }
    if on("--cpu-family") {
        q.cpu_family = a.cpu_family.clone();
    }
    if on("--vcpus") {
        q.min_vcpus = a.vcpus;
    }
    if on("--memory") {
        q.min_memory_mib = a.memory.as_deref().map(|m| parse_gib("--memory", m)).transpose()?;
    }
    if on("--arch") {
        q.arch = a.arch.as_deref().map(str::parse::<Arch>).transpose()?;
    }
    if on("--vendor") {
        q.cpu_vendor = a.vendor.clone();
    }
    if on("--gpu") {
        q.gpu_model = a.gpu.clone();
    }
    if on("--gpus") {
        q.min_gpus = a.gpus;
    }
    if on("--max-price") {
        q.max_price = a
            .max_price
            .as_deref()
            .map(|p| parse_price("--max-price", p))
            .transpose()?;
    }
    if on("--spot") && a.spot {
        q.purchase = Some(PurchaseOption::Spot);
    }
    if on("--region") {
        q.regions = a.region.clone();
    }
    if on("--cloud") {
        q.clouds = parse_clouds(&a.cloud)?;
    }
    Ok(q)
}

fn is_set(a: &PlanArgs, flag: &str) -> bool {
    match flag {
        "--family" => !a.family.is_empty(),
        "--type" => !a.types.is_empty(),
        "--cpu-family" => a.cpu_family.is_some(),
        "--vcpus" => a.vcpus.is_some(),
        "--memory" => a.memory.is_some(),
        "--arch" => a.arch.is_some(),
        "--vendor" => a.vendor.is_some(),
        "--gpu" => a.gpu.is_some(),
        "--gpus" => a.gpus.is_some(),
        "--max-price" => a.max_price.is_some(),
        "--spot" => a.spot,
        "--region" => !a.region.is_empty(),
        "--cloud" => !a.cloud.is_empty(),
        _ => false,
    }
}

/// Names the constraint whose removal lets the most offers through, with the cheapest
/// of them as the nearest miss.
fn no_match(catalog: &Catalog, a: &PlanArgs) -> Result<Error, Error> {
    let mut best: Option<(&str, usize, String)> = None;
    for flag in CONSTRAINTS.into_iter().filter(|f| is_set(a, f)) {
        let mut q = query(a, Some(flag))?;
        q.sort = SortKey::Price;
        q.limit = Some(1);
        let found = catalog.query(&q);
        if let Some(first) = found.rows.first() {
            if best.as_ref().is_none_or(|(_, n, _)| found.matched > *n) {
                let cheapest = format!(
                    "{} ({} vCPU, {} MiB) in {} {} at {}/h",
                    first.itype.name,
                    first.itype.vcpus,
                    first.itype.memory_mib,
                    first.offer.region,
                    first.offer.purchase,
                    first.hourly.map_or("an unknown price".to_string(), |m| m.to_string())
                );
                best = Some((flag, found.matched, cheapest));
            }
        }
    }
    let err = Error::invalid_spec("no offer meets all the constraints");
    Ok(match best {
        Some((flag, n, cheapest)) => err.with_hint(format!(
            "{flag} rules out the most: without it {n} offer(s) match, the cheapest {cheapest}"
        )),
        None => err.with_hint("no single constraint is to blame; relax several, or see `herd catalog`"),
    })
}
