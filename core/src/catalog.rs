//! The catalog model: instance types (what the hardware is) and offers (what it costs,
//! where, bought how, according to which source and as of when). Backends, `herd plan`,
//! `herd catalog` and the sweep planner all query the same structure.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::billing::BillingRule;
use crate::error::{Error, Result};
use crate::money::Money;
use crate::request::{Quote, QuoteRequest};
use crate::suggest::did_you_mean;
use crate::types::{Cloud, PurchaseOption};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Arch {
    #[serde(rename = "x86_64")]
    X86_64,
    #[serde(rename = "arm64")]
    Arm64,
}

impl Arch {
    pub fn as_str(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Arm64 => "arm64",
        }
    }
    /// The architecture of the machine herd runs on.
    pub fn host() -> Arch {
        if cfg!(target_arch = "aarch64") {
            Arch::Arm64
        } else {
            Arch::X86_64
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Arch {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "x86_64" | "x86-64" | "amd64" | "x86" | "intel" => Ok(Arch::X86_64),
            "arm64" | "aarch64" | "arm" => Ok(Arch::Arm64),
            _ => Err(Error::invalid_spec(format!("unknown architecture `{s}`")).with_hint("use x86_64 or arm64")),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gpu {
    pub model: String,
    pub count: u32,
    /// Memory per GPU.
    pub memory_mib: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct InstanceType {
    pub cloud: Cloud,
    pub name: String,
    /// `c7g`, `n2d`, `Dsv5`: a sweep can say "these families, size large".
    pub family: String,
    pub vcpus: u32,
    pub memory_mib: u64,
    pub arch: Arch,
    /// `Intel`, `AMD`, `AWS` (Graviton), `Ampere`, ...
    pub cpu_vendor: Option<String>,
    /// `Graviton3`, `Sapphire Rapids`, `Milan`, ...
    pub cpu_family: Option<String>,
    pub gpu: Option<Gpu>,
}

impl InstanceType {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        cloud: Cloud,
        name: impl Into<String>,
        family: impl Into<String>,
        vcpus: u32,
        memory_mib: u64,
        arch: Arch,
    ) -> Self {
        InstanceType {
            cloud,
            name: name.into(),
            family: family.into(),
            vcpus,
            memory_mib,
            arch,
            cpu_vendor: None,
            cpu_family: None,
            gpu: None,
        }
    }
    pub fn memory_gib(&self) -> f64 {
        self.memory_mib as f64 / 1024.0
    }
}

/// Where prices come from, and how old they are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceSource {
    pub name: String,
    pub as_of: NaiveDate,
    pub licence: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Region {
    pub cloud: Cloud,
    pub name: String,
    pub zones: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Offer {
    pub cloud: Cloud,
    pub instance_type: String,
    pub region: String,
    pub purchase: PurchaseOption,
    /// `None`: the source does not know (a 0.0 in a price list means unknown, not free).
    pub hourly: Option<Money>,
    /// Index into [`Catalog::sources`].
    pub source: u32,
}

impl Offer {
    pub fn new(
        cloud: Cloud,
        instance_type: impl Into<String>,
        region: impl Into<String>,
        purchase: PurchaseOption,
        hourly: Option<Money>,
        source: u32,
    ) -> Self {
        Offer {
            cloud,
            instance_type: instance_type.into(),
            region: region.into(),
            purchase,
            hourly,
            source,
        }
    }
}

/// Types, regions and offers of one or more clouds, indexed for lookups.
///
/// The whole real catalog is tens of thousands of offers, loaded on every `herd plan`, so
/// construction only builds what every query needs (type by name, offer to its type) and
/// the (type, region, purchase) index is built on the first [`Catalog::offer`] lookup.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    types: Vec<InstanceType>,
    offers: Vec<Offer>,
    sources: Vec<PriceSource>,
    regions: Vec<Region>,
    /// Per cloud: type name to index in `types`; looked up by `&str`, no allocation.
    type_index: HashMap<Cloud, HashMap<String, usize>>,
    /// Per offer: index of its type in `types` (`u32::MAX` for an offer of an unknown type).
    offer_type: Vec<u32>,
    /// Per cloud: its offers' indices, so a query for one cloud scans only that cloud.
    cloud_offers: BTreeMap<Cloud, Vec<u32>>,
    offer_index: OnceLock<HashMap<(Cloud, String, String, PurchaseOption), usize>>,
}

impl Catalog {
    pub fn new(types: Vec<InstanceType>, offers: Vec<Offer>, sources: Vec<PriceSource>, regions: Vec<Region>) -> Self {
        let mut c = Catalog {
            types,
            offers,
            sources,
            regions,
            ..Default::default()
        };
        c.reindex();
        c
    }

    fn reindex(&mut self) {
        let mut type_index: HashMap<Cloud, HashMap<String, usize>> = HashMap::new();
        for (i, t) in self.types.iter().enumerate() {
            type_index.entry(t.cloud).or_default().insert(t.name.clone(), i);
        }
        // Offers of one type usually come together (one per region and purchase), so
        // the previous offer's answer saves most of the hashing.
        let mut last: Option<(Cloud, &str, u32)> = None;
        self.offer_type = self
            .offers
            .iter()
            .map(|o| {
                if let Some((c, name, i)) = last {
                    if c == o.cloud && name == o.instance_type {
                        return i;
                    }
                }
                let i = type_index
                    .get(&o.cloud)
                    .and_then(|m| m.get(o.instance_type.as_str()))
                    .map_or(u32::MAX, |&i| i as u32);
                last = Some((o.cloud, o.instance_type.as_str(), i));
                i
            })
            .collect();
        self.type_index = type_index;
        let mut by_cloud: [Vec<u32>; Cloud::ALL.len()] = Default::default();
        for (i, o) in self.offers.iter().enumerate() {
            let c = Cloud::ALL.iter().position(|c| *c == o.cloud).unwrap_or(0);
            by_cloud[c].push(i as u32);
        }
        self.cloud_offers = Cloud::ALL
            .into_iter()
            .zip(by_cloud)
            .filter(|(_, v)| !v.is_empty())
            .collect();
        self.offer_index = OnceLock::new();
    }

    fn type_idx(&self, cloud: Cloud, name: &str) -> Option<usize> {
        self.type_index.get(&cloud).and_then(|m| m.get(name)).copied()
    }

    fn offer_index(&self) -> &HashMap<(Cloud, String, String, PurchaseOption), usize> {
        self.offer_index.get_or_init(|| {
            self.offers
                .iter()
                .enumerate()
                .map(|(i, o)| ((o.cloud, o.instance_type.clone(), o.region.clone(), o.purchase), i))
                .collect()
        })
    }

    /// The type of an offer, if the catalog knows it.
    pub fn type_of(&self, offer_index: usize) -> Option<&InstanceType> {
        self.offer_type
            .get(offer_index)
            .filter(|&&i| i != u32::MAX)
            .map(|&i| &self.types[i as usize])
    }

    /// The types of a cloud that share a family (`c7g`, `n2d`, `Dsv5`), smallest first.
    pub fn family(&self, cloud: Cloud, family: &str) -> Vec<&InstanceType> {
        let mut v: Vec<&InstanceType> = self
            .types
            .iter()
            .filter(|t| t.cloud == cloud && t.family.eq_ignore_ascii_case(family))
            .collect();
        v.sort_by(|a, b| (a.vcpus, a.memory_mib, &a.name).cmp(&(b.vcpus, b.memory_mib, &b.name)));
        v
    }

    /// The families of a cloud, sorted; for listings and did-you-mean.
    pub fn families(&self, cloud: Cloud) -> BTreeSet<&str> {
        self.types
            .iter()
            .filter(|t| t.cloud == cloud)
            .map(|t| t.family.as_str())
            .collect()
    }

    /// The family, or `InvalidSpec` naming the nearest known families.
    pub fn find_family(&self, cloud: Cloud, family: &str) -> Result<Vec<&InstanceType>> {
        let members = self.family(cloud, family);
        if !members.is_empty() {
            return Ok(members);
        }
        let names = self.families(cloud);
        Err(
            Error::invalid_spec(format!("unknown instance family `{family}` on {cloud}"))
                .with_suggestions(did_you_mean(family, names.iter().copied(), 3))
                .with_hint(format!(
                    "`herd catalog --cloud {cloud}` lists the known types and families"
                )),
        )
    }

    /// The catalog's parts, to combine catalogs without re-keying (one cloud's data next
    /// to another's) and rebuild them with [`Catalog::new`].
    pub fn into_parts(self) -> (Vec<InstanceType>, Vec<Offer>, Vec<PriceSource>, Vec<Region>) {
        (self.types, self.offers, self.sources, self.regions)
    }

    /// Adds another catalog's data; its types, regions and offers win over equal keys
    /// (a refreshed overlay over the bundled catalog).
    pub fn merge(&mut self, other: Catalog) {
        let base = self.sources.len() as u32;
        self.sources.extend(other.sources);
        for t in other.types {
            match self.type_idx(t.cloud, &t.name) {
                Some(i) => self.types[i] = t,
                None => {
                    self.type_index
                        .entry(t.cloud)
                        .or_default()
                        .insert(t.name.clone(), self.types.len());
                    self.types.push(t);
                }
            }
        }
        let mut index = std::mem::take(&mut self.offer_index).into_inner().unwrap_or_else(|| {
            self.offers
                .iter()
                .enumerate()
                .map(|(i, o)| ((o.cloud, o.instance_type.clone(), o.region.clone(), o.purchase), i))
                .collect()
        });
        for mut o in other.offers {
            o.source += base;
            let key = (o.cloud, o.instance_type.clone(), o.region.clone(), o.purchase);
            match index.get(&key) {
                Some(&i) => self.offers[i] = o,
                None => {
                    index.insert(key, self.offers.len());
                    self.offers.push(o);
                }
            }
        }
        for r in other.regions {
            match self.regions.iter_mut().find(|x| x.cloud == r.cloud && x.name == r.name) {
                Some(x) => *x = r,
                None => self.regions.push(r),
            }
        }
        self.reindex();
        let _ = self.offer_index.set(index);
    }

    pub fn types(&self) -> &[InstanceType] {
        &self.types
    }
    pub fn offers(&self) -> &[Offer] {
        &self.offers
    }
    pub fn sources(&self) -> &[PriceSource] {
        &self.sources
    }
    pub fn regions(&self, cloud: Cloud) -> impl Iterator<Item = &Region> {
        self.regions.iter().filter(move |r| r.cloud == cloud)
    }
    pub fn clouds(&self) -> BTreeSet<Cloud> {
        self.types.iter().map(|t| t.cloud).collect()
    }

    /// The type, or `InvalidSpec` naming the nearest known types.
    pub fn find_type(&self, cloud: Cloud, name: &str) -> Result<&InstanceType> {
        if let Some(i) = self.type_idx(cloud, name) {
            return Ok(&self.types[i]);
        }
        let names = self.types.iter().filter(|t| t.cloud == cloud).map(|t| t.name.as_str());
        Err(Error::invalid_spec(format!(
            "unknown instance type `{}` on {cloud}",
            crate::suggest::quoted(name)
        ))
        .with_suggestions(did_you_mean(name, names, 3))
        .with_hint(format!("`herd catalog --cloud {cloud}` lists the known types")))
    }

    pub fn find_region(&self, cloud: Cloud, name: &str) -> Result<&Region> {
        self.regions(cloud).find(|r| r.name == name).ok_or_else(|| {
            Error::invalid_spec(format!("unknown region `{}` on {cloud}", crate::suggest::quoted(name)))
                .with_suggestions(did_you_mean(name, self.regions(cloud).map(|r| r.name.as_str()), 3))
                .with_hint(format!(
                    "regions on {cloud}: {}",
                    self.regions(cloud)
                        .map(|r| r.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
        })
    }

    pub fn offer(&self, cloud: Cloud, instance_type: &str, region: &str, purchase: PurchaseOption) -> Option<&Offer> {
        self.offer_index()
            .get(&(cloud, instance_type.to_string(), region.to_string(), purchase))
            .map(|&i| &self.offers[i])
    }

    /// A priced quote, or a clear error: unknown type or region (with suggestions), not
    /// offered there, or a price the sources do not know.
    pub fn quote(&self, cloud: Cloud, req: &QuoteRequest, billing: BillingRule) -> Result<Quote> {
        self.find_type(cloud, &req.instance_type)?;
        self.find_region(cloud, &req.region)?;
        let offer = self
            .offer(cloud, &req.instance_type, &req.region, req.purchase)
            .ok_or_else(|| {
                let elsewhere: Vec<&str> = self
                    .offers
                    .iter()
                    .filter(|o| o.cloud == cloud && o.instance_type == req.instance_type && o.purchase == req.purchase)
                    .map(|o| o.region.as_str())
                    .collect();
                Error::invalid_spec(format!(
                    "{} is not offered {} in {}",
                    req.instance_type, req.purchase, req.region
                ))
                .with_hint(if elsewhere.is_empty() && req.purchase == PurchaseOption::Spot {
                    format!(
                        "no spot price is known for {} anywhere; `herd catalog refresh --cloud {cloud}` fetches \
                         spot prices where the cloud publishes them (AWS: with credentials)",
                        req.instance_type
                    )
                } else if elsewhere.is_empty() {
                    format!("{} has no {} offer anywhere", req.instance_type, req.purchase)
                } else {
                    format!("it is offered in: {}", elsewhere.join(", "))
                })
            })?;
        let hourly = offer.hourly.ok_or_else(|| {
            Error::invalid_spec(format!(
                "the price of {} {} in {} is unknown",
                req.instance_type, req.purchase, req.region
            ))
            .with_hint("herd will not launch what it cannot price; run `herd catalog refresh` or pick another type")
        })?;
        let src = &self.sources[offer.source as usize];
        Ok(Quote::new(req, hourly, billing, src.name.clone(), src.as_of))
    }

    /// The oldest price date among the sources used by `offers`, for freshness warnings.
    /// The simulator's prices are herd's own invention and never go stale, so its offers
    /// do not count.
    pub fn oldest_price<'a>(&'a self, offers: impl IntoIterator<Item = &'a Offer>) -> Option<NaiveDate> {
        offers
            .into_iter()
            .filter(|o| o.cloud != Cloud::Local)
            .map(|o| self.sources[o.source as usize].as_of)
            .min()
    }

    /// Age of a price date at `now`, in whole days.
    pub fn age_days(as_of: NaiveDate, now: DateTime<Utc>) -> i64 {
        (now.date_naive() - as_of).num_days()
    }

    /// Offers matching a query, joined with their type, sorted as asked.
    pub fn query(&self, q: &OfferQuery) -> QueryResult<'_> {
        let mut scanned = 0usize;
        let mut rows: Vec<OfferRow<'_>> = Vec::new();
        let selected: Box<dyn Iterator<Item = usize> + '_> = if q.clouds.is_empty() {
            Box::new(0..self.offers.len())
        } else {
            Box::new(
                self.cloud_offers
                    .iter()
                    .filter(|(c, _)| q.clouds.contains(c))
                    .flat_map(|(_, v)| v.iter().map(|&i| i as usize)),
            )
        };
        for oi in selected {
            let o = &self.offers[oi];
            scanned += 1;
            if let Some(p) = q.purchase {
                if o.purchase != p {
                    continue;
                }
            }
            if !q.regions.is_empty() && !q.regions.iter().any(|g| glob_match(g, &o.region)) {
                continue;
            }
            match (o.hourly, q.max_price) {
                (None, _) if !q.include_unpriced => continue,
                (Some(h), Some(max)) if h > max => continue,
                _ => {}
            }
            let Some(t) = self.type_of(oi) else {
                continue;
            };
            if q.type_matches(t) {
                rows.push(OfferRow {
                    offer: o,
                    itype: t,
                    hourly: o.hourly,
                });
            }
        }
        let matched = rows.len();
        // `herd plan` shows the cheapest 10 of some 35,000 matches: select them in linear
        // time, then sort only those. `compare` is a total order, so this is the same head
        // a full sort would give.
        if let Some(limit) = q.limit.filter(|&k| k < rows.len()) {
            if limit > 0 {
                rows.select_nth_unstable_by(limit - 1, |a, b| q.sort.compare(a, b));
            }
            rows.truncate(limit);
        }
        rows.sort_by(|a, b| q.sort.compare(a, b));
        QueryResult { rows, scanned, matched }
    }
}

/// Filters people actually ask: "8 vCPUs, arm64, under $1/h, in europe-*".
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct OfferQuery {
    pub clouds: Vec<Cloud>,
    /// Globs (`us-*`, `europe-west?`).
    pub regions: Vec<String>,
    pub types: Vec<String>,
    pub families: Vec<String>,
    pub min_vcpus: Option<u32>,
    pub max_vcpus: Option<u32>,
    pub min_memory_mib: Option<u64>,
    pub arch: Option<Arch>,
    pub cpu_vendor: Option<String>,
    /// Substring of the CPU family, case-insensitive (`graviton`, `graviton3`, `epyc`).
    pub cpu_family: Option<String>,
    pub gpu_model: Option<String>,
    pub min_gpus: Option<u32>,
    pub purchase: Option<PurchaseOption>,
    pub max_price: Option<Money>,
    pub include_unpriced: bool,
    pub sort: SortKey,
    pub limit: Option<usize>,
}

impl OfferQuery {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn type_matches(&self, t: &InstanceType) -> bool {
        (self.types.is_empty() || self.types.iter().any(|n| glob_match(n, &t.name)))
            && (self.families.is_empty() || self.families.iter().any(|f| f.eq_ignore_ascii_case(&t.family)))
            && self.min_vcpus.is_none_or(|v| t.vcpus >= v)
            && self.max_vcpus.is_none_or(|v| t.vcpus <= v)
            && self.min_memory_mib.is_none_or(|m| t.memory_mib >= m)
            && self.arch.is_none_or(|a| t.arch == a)
            && self
                .cpu_vendor
                .as_ref()
                .is_none_or(|v| t.cpu_vendor.as_ref().is_some_and(|tv| tv.eq_ignore_ascii_case(v)))
            && self.cpu_family.as_ref().is_none_or(|f| {
                t.cpu_family
                    .as_ref()
                    .is_some_and(|tf| tf.to_ascii_lowercase().contains(&f.to_ascii_lowercase()))
            })
            && self.gpu_model.as_ref().is_none_or(|m| {
                t.gpu
                    .as_ref()
                    .is_some_and(|g| g.model.to_ascii_lowercase().contains(&m.to_ascii_lowercase()))
            })
            && self.min_gpus.is_none_or(|n| t.gpu.as_ref().map_or(0, |g| g.count) >= n)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortKey {
    #[default]
    Price,
    PricePerVcpu,
    PricePerGib,
    Vcpus,
    Memory,
    Name,
}

impl FromStr for SortKey {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        const NAMES: [&str; 6] = ["price", "price-per-vcpu", "price-per-gib", "vcpus", "memory", "name"];
        match s {
            "price" => Ok(SortKey::Price),
            "price-per-vcpu" | "vcpu-price" => Ok(SortKey::PricePerVcpu),
            "price-per-gib" | "gib-price" => Ok(SortKey::PricePerGib),
            "vcpus" => Ok(SortKey::Vcpus),
            "memory" => Ok(SortKey::Memory),
            "name" => Ok(SortKey::Name),
            _ => Err(Error::invalid_spec(format!("unknown sort key `{s}`"))
                .with_suggestions(did_you_mean(s, NAMES, 2))
                .with_hint(format!("sort by one of: {}", NAMES.join(", ")))),
        }
    }
}

impl SortKey {
    fn compare(self, a: &OfferRow<'_>, b: &OfferRow<'_>) -> std::cmp::Ordering {
        let price = |r: &OfferRow<'_>| r.hourly.map(|m| m.amount);
        let by = match self {
            // Equal prices: the one with more vCPUs for the money first.
            SortKey::Price => cmp_opt(price(a), price(b)).then_with(|| cmp_opt(a.price_per_vcpu(), b.price_per_vcpu())),
            SortKey::PricePerVcpu => cmp_opt(a.price_per_vcpu(), b.price_per_vcpu()),
            SortKey::PricePerGib => cmp_opt(a.price_per_gib(), b.price_per_gib()),
            SortKey::Vcpus => b.itype.vcpus.cmp(&a.itype.vcpus),
            SortKey::Memory => b.itype.memory_mib.cmp(&a.itype.memory_mib),
            SortKey::Name => a.itype.name.cmp(&b.itype.name),
        };
        by.then_with(|| a.offer.cloud.cmp(&b.offer.cloud))
            .then_with(|| a.offer.instance_type.cmp(&b.offer.instance_type))
            .then_with(|| a.offer.region.cmp(&b.offer.region))
            .then_with(|| a.offer.purchase.cmp(&b.offer.purchase))
    }
}

/// Unknown prices sort last.
fn cmp_opt<T: Ord>(a: Option<T>, b: Option<T>) -> std::cmp::Ordering {
    match (a, b) {
        (Some(a), Some(b)) => a.cmp(&b),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    }
}

#[derive(Debug, Clone)]
pub struct OfferRow<'a> {
    pub offer: &'a Offer,
    pub itype: &'a InstanceType,
    pub hourly: Option<Money>,
}

impl OfferRow<'_> {
    pub fn price_per_vcpu(&self) -> Option<rust_decimal::Decimal> {
        self.hourly
            .map(|m| m.amount / rust_decimal::Decimal::from(self.itype.vcpus.max(1)))
    }
    pub fn price_per_gib(&self) -> Option<rust_decimal::Decimal> {
        let gib = rust_decimal::Decimal::from(self.itype.memory_mib.max(1)) / rust_decimal::Decimal::from(1024);
        self.hourly.map(|m| m.amount / gib)
    }
}

#[derive(Debug)]
pub struct QueryResult<'a> {
    pub rows: Vec<OfferRow<'a>>,
    /// How many offers were examined (those of the clouds asked for).
    pub scanned: usize,
    /// How many met the query, before `limit` cut `rows`.
    pub matched: usize,
}

/// `*` matches any run, `?` one character; everything else literally.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0usize, 0usize);
    let (mut star, mut mark) = (None, 0usize);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == b'*' {
        pi += 1;
    }
    pi == p.len()
}

/// Counts per cloud, for summaries.
pub fn count_by_cloud(types: &[InstanceType]) -> BTreeMap<Cloud, usize> {
    let mut m = BTreeMap::new();
    for t in types {
        *m.entry(t.cloud).or_insert(0) += 1;
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::Decimal;

    fn tiny() -> Catalog {
        let src = PriceSource {
            name: "test".into(),
            as_of: NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
            licence: "x".into(),
        };
        let types = vec![
            InstanceType::new(Cloud::Local, "l1.small", "l1", 1, 1024, Arch::X86_64),
            InstanceType::new(Cloud::Local, "l1.large", "l1", 4, 8192, Arch::Arm64),
        ];
        let regions = vec![Region {
            cloud: Cloud::Local,
            name: "local-east-1".into(),
            zones: vec!["local-east-1a".into()],
        }];
        let offers = vec![
            Offer::new(
                Cloud::Local,
                "l1.small",
                "local-east-1",
                PurchaseOption::OnDemand,
                Some(Money::usd(Decimal::new(1, 2))),
                0,
            ),
            Offer::new(
                Cloud::Local,
                "l1.large",
                "local-east-1",
                PurchaseOption::OnDemand,
                Some(Money::usd(Decimal::new(4, 2))),
                0,
            ),
            Offer::new(Cloud::Local, "l1.large", "local-east-1", PurchaseOption::Spot, None, 0),
        ];
        Catalog::new(types, offers, vec![src], regions)
    }

    #[test]
    fn globs() {
        assert!(glob_match("us-*", "us-east-1"));
        assert!(glob_match("europe-west?", "europe-west4"));
        assert!(!glob_match("us-*", "eu-west-1"));
        assert!(glob_match("*", ""));
    }

    #[test]
    fn quote_and_unknowns() {
        let c = tiny();
        let q = c
            .quote(
                Cloud::Local,
                &QuoteRequest::new("l1.large", "local-east-1", PurchaseOption::OnDemand),
                BillingRule::LOCAL,
            )
            .unwrap();
        assert_eq!(q.hourly, Money::usd(Decimal::new(4, 2)));
        let e = c
            .quote(
                Cloud::Local,
                &QuoteRequest::new("l1.larg", "local-east-1", PurchaseOption::OnDemand),
                BillingRule::LOCAL,
            )
            .unwrap_err();
        assert_eq!(e.suggestions()[0], "l1.large");
        let e = c
            .quote(
                Cloud::Local,
                &QuoteRequest::new("l1.large", "local-east-1", PurchaseOption::Spot),
                BillingRule::LOCAL,
            )
            .unwrap_err();
        assert!(e.message().contains("unknown"), "{e}");
        let e = c
            .quote(
                Cloud::Local,
                &QuoteRequest::new("l1.large", "local-est-1", PurchaseOption::OnDemand),
                BillingRule::LOCAL,
            )
            .unwrap_err();
        assert_eq!(e.suggestions()[0], "local-east-1");
    }

    #[test]
    fn families_and_scoped_scans() {
        let c = tiny();
        let l1: Vec<&str> = c.family(Cloud::Local, "L1").iter().map(|t| t.name.as_str()).collect();
        assert_eq!(l1, ["l1.small", "l1.large"], "smallest first, family case-insensitive");
        let e = c.find_family(Cloud::Local, "l2").unwrap_err();
        assert_eq!(e.suggestions()[0], "l1");
        assert_eq!(c.type_of(2).unwrap().name, "l1.large");
        let mut q = OfferQuery::new();
        q.clouds = vec![Cloud::Aws];
        assert_eq!(c.query(&q).scanned, 0, "only the asked clouds' offers are scanned");
        q.clouds = vec![Cloud::Local];
        q.cpu_family = Some("nothing".into());
        assert_eq!(c.query(&q).scanned, 3);
        assert!(c.query(&q).rows.is_empty());
        let (t, o, s, r) = c.clone().into_parts();
        let back = Catalog::new(t, o, s, r);
        assert_eq!(back.offers(), c.offers());
        assert!(back
            .offer(Cloud::Local, "l1.large", "local-east-1", PurchaseOption::Spot)
            .is_some());
    }

    #[test]
    fn a_limited_query_is_the_head_of_the_full_sort() {
        let src = PriceSource {
            name: "test".into(),
            as_of: NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
            licence: "x".into(),
        };
        let types: Vec<InstanceType> = (0..12)
            .map(|i| InstanceType::new(Cloud::Local, format!("t{i}.x"), "t", 1 + i % 4, 1024, Arch::X86_64))
            .collect();
        let mut offers = Vec::new();
        for (i, t) in types.iter().enumerate() {
            for r in 0..5 {
                // Few distinct prices and some unknown ones: plenty of ties to break.
                let price = ((i + r) % 4 != 0).then(|| Money::usd(Decimal::new(((i * 7 + r) % 3) as i64 + 1, 2)));
                offers.push(Offer::new(
                    Cloud::Local,
                    &t.name,
                    format!("r{r}"),
                    PurchaseOption::OnDemand,
                    price,
                    0,
                ));
            }
        }
        let c = Catalog::new(types, offers, vec![src], Vec::new());
        for sort in [SortKey::Price, SortKey::PricePerVcpu, SortKey::Vcpus, SortKey::Name] {
            let mut q = OfferQuery::new();
            q.sort = sort;
            q.include_unpriced = true;
            let full = c.query(&q);
            assert_eq!(full.matched, 60);
            let order = |rows: &[OfferRow<'_>]| -> Vec<(String, String)> {
                rows.iter()
                    .map(|r| (r.offer.instance_type.clone(), r.offer.region.clone()))
                    .collect()
            };
            for k in [0, 1, 2, 7, 30, 59, 60, 100] {
                q.limit = Some(k);
                let head = c.query(&q);
                assert_eq!(head.matched, 60, "matched counts before the limit");
                assert_eq!(order(&head.rows), order(&full.rows[..k.min(60)]), "{sort:?} limit {k}");
            }
        }
    }

    #[test]
    fn query_filters_and_sorts() {
        let c = tiny();
        let mut q = OfferQuery::new();
        q.arch = Some(Arch::Arm64);
        let r = c.query(&q);
        assert_eq!(r.scanned, 3);
        assert_eq!(r.rows.len(), 1);
        q.arch = None;
        q.sort = SortKey::PricePerVcpu;
        let r = c.query(&q);
        assert_eq!(r.rows[0].itype.name, "l1.large");
    }
}
