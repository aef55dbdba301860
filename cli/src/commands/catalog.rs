//! `herd catalog`: instance types and their prices from the bundled catalogs and your
//! refreshed overlay, filtered and sorted; `herd catalog --families` lists families;
//! `herd catalog refresh` fetches today's prices. Reads no ledger and starts no simulator.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{NaiveDate, Utc};
use herd_core::catalog::{OfferQuery, OfferRow, SortKey};
use herd_core::suggest::did_you_mean;
use herd_core::{Arch, Catalog, Cloud, Error, Gpu, Money, PurchaseOption};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde::Serialize;

use crate::args::{CatalogArgs, CatalogCommand, SortBy};
use crate::catalogs;
use crate::context::Context;
use crate::printer::Table;

mod refresh;

pub fn run(ctx: &Context, a: &CatalogArgs) -> anyhow::Result<()> {
    if let Some(CatalogCommand::Refresh(r)) = &a.command {
        return refresh::run(ctx, r);
    }
    let catalog = load(ctx)?;
    let mut q = OfferQuery::new();
    q.clouds = parse_clouds(&a.cloud)?;
    q.regions = a.region.clone();
    q.types = a.types.clone();
    q.families = a.family.clone();
    q.min_vcpus = a.vcpus.or(a.min_vcpus);
    q.max_vcpus = a.vcpus.or(a.max_vcpus);
    q.min_memory_mib = a
        .min_memory
        .as_deref()
        .map(|m| parse_gib("--min-memory", m))
        .transpose()?;
    q.arch = a.arch.as_deref().map(str::parse::<Arch>).transpose()?;
    q.cpu_vendor = a.vendor.clone();
    q.cpu_family = a.cpu_family.clone();
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
    q.include_unpriced = a.unpriced;
    q.sort = sort_key(a.sort);
    q.limit = a.limit;
    check_names(catalog, &q)?;
    if a.families {
        return families(ctx, catalog, &q, a.json);
    }
    let result = catalog.query(&q);

    if a.json {
        let rows: Vec<OfferJson<'_>> = result.rows.iter().map(|r| OfferJson::new(catalog, r)).collect();
        ctx.printer.json(&rows)?;
        price_age(ctx, catalog, &result.rows, true);
        return Ok(());
    }
    if result.rows.is_empty() {
        ctx.printer.note(empty_reason(catalog, &q, result.scanned));
        return Ok(());
    }
    ctx.printer.table(&offer_table(&result.rows, false));
    let shown = result.rows.len();
    ctx.printer.note(if shown < result.matched {
        format!(
            "{shown} of {} matching offer(s) shown ({} scanned)",
            result.matched, result.scanned
        )
    } else {
        format!("{shown} offer(s) of {} scanned", result.scanned)
    });
    price_age(ctx, catalog, &result.rows, false);
    Ok(())
}

/// Why nothing matched: prices nobody knows, types nobody prices, or just the filters.
fn empty_reason(catalog: &Catalog, q: &OfferQuery, scanned: usize) -> String {
    if !q.include_unpriced {
        let mut with = q.clone();
        with.include_unpriced = true;
        with.max_price = None;
        let n = catalog.query(&with).rows.len();
        if n > 0 && q.max_price.is_none() {
            return format!("{n} offer(s) match, but their prices are unknown; --unpriced lists them");
        }
    }
    let types = catalog
        .types()
        .iter()
        .filter(|t| (q.clouds.is_empty() || q.clouds.contains(&t.cloud)) && q.type_matches(t))
        .count();
    if types > 0 && q.max_price.is_none() && q.purchase.is_none() && q.regions.is_empty() {
        return format!(
            "{types} type(s) match, but no price source lists them anywhere; \
             `herd catalog refresh` may find prices for them (`--families` shows them)"
        );
    }
    format!("no offers match (of {scanned} scanned); `herd catalog` with fewer filters lists more")
}

/// The catalogs with the overlay the settings name; a damaged overlay is an error.
pub(super) fn load(ctx: &Context) -> anyhow::Result<&'static Catalog> {
    catalogs::set_overlay_dir(ctx.settings.catalog.overlay_dir.clone());
    Ok(&catalogs::loaded()?.catalog)
}

pub(super) fn sort_key(s: SortBy) -> SortKey {
    match s {
        SortBy::Price => SortKey::Price,
        SortBy::PricePerVcpu => SortKey::PricePerVcpu,
        SortBy::PricePerGib => SortKey::PricePerGib,
        SortBy::Vcpus => SortKey::Vcpus,
        SortBy::Memory => SortKey::Memory,
        SortBy::Name => SortKey::Name,
    }
}

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?'])
}

/// Names that match nothing are typos until shown otherwise: an unknown type, family,
/// region, GPU model or CPU vendor is an error naming the nearest known ones, instead of
/// an empty table.
pub(super) fn check_names(catalog: &Catalog, q: &OfferQuery) -> Result<(), Error> {
    let clouds: BTreeSet<Cloud> = if q.clouds.is_empty() {
        catalog.clouds()
    } else {
        q.clouds.iter().copied().collect()
    };
    let on = |c: Cloud| clouds.contains(&c);
    let scope = clouds.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(", ");
    let unknown = |what: &str, name: &str, known: Vec<&str>, hint: String| {
        Error::invalid_spec(format!("no {what} `{name}` on {scope}"))
            .with_suggestions(did_you_mean(name, known, 3))
            .with_hint(hint)
    };
    for t in &q.types {
        let names = || catalog.types().iter().filter(|x| on(x.cloud)).map(|x| x.name.as_str());
        if !names().any(|n| herd_core::catalog::glob_match(t, n)) {
            return Err(unknown(
                "instance type",
                t,
                names().collect(),
                "`herd catalog` lists the types".into(),
            ));
        }
    }
    for f in &q.families {
        let fams = || {
            catalog
                .types()
                .iter()
                .filter(|x| on(x.cloud))
                .map(|x| x.family.as_str())
        };
        if !fams().any(|n| n.eq_ignore_ascii_case(f)) {
            let known: BTreeSet<&str> = fams().collect();
            return Err(unknown(
                "instance family",
                f,
                known.into_iter().collect(),
                "`herd catalog --families` lists them".into(),
            ));
        }
    }
    for r in &q.regions {
        let regions: Vec<&str> = clouds
            .iter()
            .flat_map(|c| catalog.regions(*c).map(|r| r.name.as_str()))
            .collect();
        if !regions.iter().any(|n| herd_core::catalog::glob_match(r, n)) {
            let hint = if has_glob(r) {
                "globs match whole names: 'us-*', 'europe-west?'".to_string()
            } else {
                "region globs work too: --region 'us-*'".to_string()
            };
            return Err(unknown("region", r, regions, hint));
        }
    }
    if let Some(m) = &q.gpu_model {
        let models: BTreeSet<&str> = catalog
            .types()
            .iter()
            .filter(|x| on(x.cloud))
            .filter_map(|x| x.gpu.as_ref().map(|g| g.model.as_str()))
            .collect();
        if !models
            .iter()
            .any(|x| x.to_ascii_lowercase().contains(&m.to_ascii_lowercase()))
        {
            let hint = if models.is_empty() {
                format!("--gpu: no type on {scope} has a GPU")
            } else {
                let list = models.iter().copied().collect::<Vec<_>>().join(", ");
                format!("--gpu matches these models: {list}")
            };
            return Err(unknown("GPU model", m, models.into_iter().collect(), hint));
        }
    }
    if let Some(v) = &q.cpu_vendor {
        let vendors: BTreeSet<&str> = catalog
            .types()
            .iter()
            .filter(|x| on(x.cloud))
            .filter_map(|x| x.cpu_vendor.as_deref())
            .collect();
        if !vendors.iter().any(|x| x.eq_ignore_ascii_case(v)) {
            let list = vendors.iter().copied().collect::<Vec<_>>().join(", ");
            return Err(unknown(
                "CPU vendor",
                v,
                vendors.into_iter().collect(),
                format!("vendors: {list}"),
            ));
        }
    }
    Ok(())
}

#[derive(Serialize)]
struct FamilyJson<'a> {
    cloud: Cloud,
    family: &'a str,
    types: usize,
    min_vcpus: u32,
    max_vcpus: u32,
    arch: BTreeSet<Arch>,
    cpu: BTreeSet<String>,
    cheapest_hourly: Option<Money>,
}

/// One line per family of the types the filters keep: sizes, vCPU range, cheapest offer.
fn families(ctx: &Context, catalog: &Catalog, q: &OfferQuery, json: bool) -> anyhow::Result<()> {
    let mut fams: BTreeMap<(Cloud, &str), FamilyJson<'_>> = BTreeMap::new();
    for t in catalog.types() {
        if (!q.clouds.is_empty() && !q.clouds.contains(&t.cloud)) || !q.type_matches(t) {
            continue;
        }
        let f = fams.entry((t.cloud, t.family.as_str())).or_insert_with(|| FamilyJson {
            cloud: t.cloud,
            family: &t.family,
            types: 0,
            min_vcpus: u32::MAX,
            max_vcpus: 0,
            arch: BTreeSet::new(),
            cpu: BTreeSet::new(),
            cheapest_hourly: None,
        });
        f.types += 1;
        f.min_vcpus = f.min_vcpus.min(t.vcpus);
        f.max_vcpus = f.max_vcpus.max(t.vcpus);
        f.arch.insert(t.arch);
        f.cpu.insert(cpu_label(t));
    }
    let mut priced = q.clone();
    priced.limit = None;
    for r in catalog.query(&priced).rows {
        if let (Some(f), Some(h)) = (fams.get_mut(&(r.offer.cloud, r.itype.family.as_str())), r.hourly) {
            if f.cheapest_hourly.is_none_or(|c| h < c) {
                f.cheapest_hourly = Some(h);
            }
        }
    }
    let rows: Vec<FamilyJson<'_>> = fams.into_values().collect();
    if json {
        return ctx.printer.json(&rows);
    }
    let mut t = Table::new(&["CLOUD", "FAMILY", ">TYPES", ">VCPUS", "ARCH", "CPU", ">FROM $/H"]);
    for f in &rows {
        t.row(vec![
            f.cloud.to_string().into(),
            f.family.to_string().into(),
            f.types.to_string().into(),
            if f.min_vcpus == f.max_vcpus {
                f.min_vcpus.to_string()
            } else {
                format!("{}-{}", f.min_vcpus, f.max_vcpus)
            }
            .into(),
            f.arch.iter().map(|a| a.as_str()).collect::<Vec<_>>().join(",").into(),
            f.cpu.iter().cloned().collect::<Vec<_>>().join(", ").into(),
            f.cheapest_hourly
                .map_or("unknown".to_string(), |m| m.to_string())
                .into(),
        ]);
    }
    ctx.printer.table(&t);
    ctx.printer.note(format!("{} families", rows.len()));
    Ok(())
}

/// `AWS Graviton3`, `Intel Xeon 8375C`, or `-`.
fn cpu_label(t: &herd_core::InstanceType) -> String {
    match (&t.cpu_vendor, &t.cpu_family) {
        (Some(v), Some(f)) if f.starts_with(v.as_str()) => f.clone(),
        (Some(v), Some(f)) => format!("{v} {f}"),
        (Some(v), None) => v.clone(),
        (None, Some(f)) => f.clone(),
        (None, None) => "-".into(),
    }
}

/// The age of the prices shown: the oldest source among the rows (the simulator's own
/// list never ages), as a note, or a warning past `[catalog] max_price_age_days`.
pub(super) fn price_age(ctx: &Context, catalog: &Catalog, rows: &[OfferRow<'_>], only_if_stale: bool) {
    let mut used: BTreeMap<&str, NaiveDate> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.offer.cloud != Cloud::Local) {
        let s = &catalog.sources()[r.offer.source as usize];
        used.insert(&s.name, s.as_of);
    }
    let Some(oldest) = used.values().min().copied() else {
        return;
    };
    let age = Catalog::age_days(oldest, Utc::now());
    let names: Vec<&str> = used.keys().copied().collect();
    let text = format!("prices as of {oldest}, {age} days old ({})", names.join("; "));
    let limit = ctx.settings.catalog.max_price_age_days;
    if age > limit {
        ctx.printer.warn(format!(
            "{text}: older than {limit} days; `herd catalog refresh` fetches today's prices"
        ));
    } else if !only_if_stale {
        ctx.printer.note(text);
    }
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
        "TYPE", "FAMILY", ">VCPUS", ">MEMORY", "ARCH", "CPU", "GPU", "REGION", "PURCHASE", ">$/H",
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
            cpu_label(it).into(),
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
    cpu_family: Option<&'a str>,
    gpu: Option<&'a Gpu>,
    region: &'a str,
    purchase: PurchaseOption,
    /// `null`: the sources do not know the price.
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
            cpu_family: r.itype.cpu_family.as_deref(),
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

    #[test]
    fn unknown_names_suggest_known_ones() {
        let c = herd_catalog::bundled(Cloud::Aws);
        let mut q = OfferQuery::new();
        q.types = vec!["c7g.larg".into()];
        let e = check_names(c, &q).unwrap_err();
        assert_eq!(e.suggestions()[0], "c7g.large");
        let mut q = OfferQuery::new();
        q.families = vec!["c7h".into()];
        assert!(!check_names(c, &q).unwrap_err().suggestions().is_empty());
        let mut q = OfferQuery::new();
        q.regions = vec!["us-est-1".into()];
        assert_eq!(check_names(c, &q).unwrap_err().suggestions()[0], "us-east-1");
        let mut q = OfferQuery::new();
        q.regions = vec!["us-*".into()];
        q.types = vec!["c7g.*".into()];
        q.families = vec!["C7G".into()];
        check_names(c, &q).unwrap();
    }
}
