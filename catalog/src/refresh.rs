//! `herd catalog refresh`: today's prices from each cloud's public price source, as an
//! overlay catalog (see [`crate::overlay`]) over the bundled one.
//!
//! - AWS: the public bulk offer files (`region_index.json`, then one file per region),
//!   streamed: a region file is hundreds of MB, so products and terms are filtered while
//!   parsing and only (SKU, type) and (SKU, price) pairs are kept.
//! - Azure: the Retail Prices API, following `NextPageLink` until it is empty.
//! - GCP: the Cloud Billing Catalog (`services/6F81-5844-456A/skus`, Compute Engine),
//!   following `nextPageToken`; needs an API key or an OAuth access token.
//! - EC2 spot prices need signed EC2 calls (DescribeSpotPriceHistory), which belong to
//!   the AWS backend: [`SpotPrices`] is the seam it implements and the CLI feeds in.
//!
//! Every endpoint is a parameter ([`Endpoints`]) so tests serve recorded responses from
//! 127.0.0.1. Secrets travel only in headers (`x-goog-api-key`, `Authorization`), never in
//! a URL, a `Referer` or an error: a credentialed request follows a redirect only to the
//! same scheme, host and port, and transport errors are reported without their URL.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::io::Read;
use std::time::Duration;

use chrono::NaiveDate;
use herd_core::catalog::{glob_match, Region};
use herd_core::{Catalog, Cloud, Error, InstanceType, Money, Offer, PriceSource, PurchaseOption, Result};
use rust_decimal::Decimal;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::gce;

/// Where each price source lives; the defaults are the public endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// Base of the AWS bulk offer files (`{aws}/offers/v1.0/aws/AmazonEC2/current/region_index.json`).
    pub aws: String,
    /// The Azure Retail Prices API.
    pub azure: String,
    /// Base of the Cloud Billing API (`{gcp}/v1/services/.../skus`).
    pub gcp: String,
}

impl Default for Endpoints {
    fn default() -> Self {
        Endpoints {
            aws: "https://pricing.us-east-1.amazonaws.com".into(),
            azure: "https://prices.azure.com/api/retail/prices".into(),
            gcp: "https://cloudbilling.googleapis.com".into(),
        }
    }
}

/// GCP credentials for the Billing Catalog. `Debug` never shows the secret.
#[derive(Clone)]
pub enum GcpAuth {
    ApiKey(String),
    AccessToken(String),
}

impl fmt::Debug for GcpAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GcpAuth::ApiKey(_) => f.write_str("GcpAuth::ApiKey(<redacted>)"),
            GcpAuth::AccessToken(_) => f.write_str("GcpAuth::AccessToken(<redacted>)"),
        }
    }
}

impl GcpAuth {
    /// `HERD_GCP_API_KEY` or `GOOGLE_API_KEY`, else `HERD_GCP_ACCESS_TOKEN` or
    /// `GOOGLE_OAUTH_ACCESS_TOKEN` (e.g. from `gcloud auth print-access-token`).
    pub fn from_env(env: impl Fn(&str) -> Option<String>) -> Result<GcpAuth> {
        let get = |k: &str| env(k).filter(|v| !v.trim().is_empty());
        if let Some(k) = get("HERD_GCP_API_KEY").or_else(|| get("GOOGLE_API_KEY")) {
            return Ok(GcpAuth::ApiKey(k));
        }
        if let Some(t) = get("HERD_GCP_ACCESS_TOKEN").or_else(|| get("GOOGLE_OAUTH_ACCESS_TOKEN")) {
            return Ok(GcpAuth::AccessToken(t));
        }
        Err(Error::new(
            herd_core::ErrorKind::Unauthenticated,
            "GCP prices come from the Cloud Billing Catalog API, which needs credentials",
        )
        .with_hint(
            "set HERD_GCP_API_KEY (an API key with the Cloud Billing API enabled) or \
             HERD_GCP_ACCESS_TOKEN=$(gcloud auth print-access-token)",
        ))
    }
}

/// EC2 spot prices per instance type in a region, from a signed API the AWS backend owns.
pub trait SpotPrices {
    fn spot_prices(&self, region: &str) -> Result<Vec<(String, Decimal)>>;
}

/// What a refresh produced: the overlay and what it skipped.
#[derive(Debug)]
pub struct Refreshed {
    pub cloud: Cloud,
    pub catalog: Catalog,
    /// Priced names the bundled catalog does not know (their specs are unknown here).
    pub unknown_types: BTreeSet<String>,
    /// Pages or files fetched.
    pub requests: usize,
}

/// What a request carries to prove who asks. `Debug` never shows the secret.
#[derive(Clone, Copy)]
enum Credential<'a> {
    None,
    /// Google's API key header, its documented alternative to `?key=`
    /// (https://cloud.google.com/docs/authentication/api-keys-use, "Use API keys to access APIs").
    GoogleApiKey(&'a str),
    Bearer(&'a str),
}

impl fmt::Debug for Credential<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Credential::None => "Credential::None",
            Credential::GoogleApiKey(_) => "Credential::GoogleApiKey(<redacted>)",
            Credential::Bearer(_) => "Credential::Bearer(<redacted>)",
        })
    }
}

/// Why a credentialed request did not follow a redirect: it pointed at another origin.
#[derive(Debug)]
struct CrossOriginRedirect {
    /// `host:port` of the refused target (never its path or query).
    to: String,
}

impl fmt::Display for CrossOriginRedirect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "redirected to another host ({})", self.to)
    }
}

impl std::error::Error for CrossOriginRedirect {}

fn origin(u: &reqwest::Url) -> (&str, Option<&str>, Option<u16>) {
    (u.scheme(), u.host_str(), u.port_or_known_default())
}

fn host_port(u: &reqwest::Url) -> String {
    match (u.host_str(), u.port_or_known_default()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        _ => "an unknown host".to_string(),
    }
}

/// Redirects herd follows: at most 10 (reqwest's default), and, for a request that
/// carries a credential, only to the origin it was sent to.
const MAX_REDIRECTS: usize = 10;

/// Small blocking HTTP clients with the refresh's timeouts: one for the public price
/// files, one for requests that carry a credential (same-origin redirects only).
#[derive(Debug, Clone)]
pub struct Http {
    public: reqwest::blocking::Client,
    credentialed: reqwest::blocking::Client,
}

impl Http {
    pub fn new() -> Result<Http> {
        let builder = || {
            reqwest::blocking::Client::builder()
                .connect_timeout(Duration::from_secs(15))
                // A whole AWS region file can take a while on a slow link.
                .timeout(Duration::from_secs(600))
                .user_agent(concat!("herd/", env!("CARGO_PKG_VERSION")))
                // A Referer would carry the previous URL to the next host.
                .referer(false)
        };
        let build = |b: reqwest::blocking::ClientBuilder| {
            b.build()
                .map_err(|e| Error::unexpected(format!("cannot build the HTTP client: {}", e.without_url())))
        };
        let public = build(builder().redirect(reqwest::redirect::Policy::limited(MAX_REDIRECTS)))?;
        let same_origin = reqwest::redirect::Policy::custom(|attempt| {
            let first = attempt.previous().first().map(origin);
            if first.is_some_and(|o| o != origin(attempt.url())) {
                let to = host_port(attempt.url());
                attempt.error(CrossOriginRedirect { to })
            } else if attempt.previous().len() > MAX_REDIRECTS {
                attempt.error("too many redirects")
            } else {
                attempt.follow()
            }
        });
        let credentialed = build(builder().redirect(same_origin))?;
        Ok(Http { public, credentialed })
    }

    /// GETs `url`; `what` names it in errors instead of the URL.
    fn get(&self, url: &str, what: &str, credential: Credential<'_>) -> Result<reqwest::blocking::Response> {
        let req = match credential {
            Credential::None => self.public.get(url),
            Credential::GoogleApiKey(k) => {
                let mut v = reqwest::header::HeaderValue::from_str(k).map_err(|_| {
                    Error::new(
                        herd_core::ErrorKind::Unauthenticated,
                        "the GCP API key holds characters an HTTP header cannot carry",
                    )
                    .with_hint("check HERD_GCP_API_KEY: an API key is letters, digits, `-` and `_`")
                })?;
                v.set_sensitive(true);
                self.credentialed.get(url).header("x-goog-api-key", v)
            }
            Credential::Bearer(t) => self.credentialed.get(url).bearer_auth(t),
        };
        let resp = req.send().map_err(|e| {
            let cross = std::iter::successors(std::error::Error::source(&e), |s| s.source())
                .find_map(|s| s.downcast_ref::<CrossOriginRedirect>());
            if let Some(c) = cross {
                return Error::new(
                    herd_core::ErrorKind::Unexpected,
                    format!("cannot fetch {what}: it {c}; herd does not follow it, so the credentials stay with the host they are for"),
                )
                .with_hint("check `gcp_billing_url` under [catalog] in herd.toml, and any proxy in between");
            }
            Error::new(
                herd_core::ErrorKind::Unavailable,
                format!("cannot fetch {what}: {}", e.without_url()),
            )
            .with_hint("check your network; `herd catalog` keeps working from the bundled prices")
        })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let kind = match status.as_u16() {
            401 => herd_core::ErrorKind::Unauthenticated,
            403 => herd_core::ErrorKind::PermissionDenied,
            404 => herd_core::ErrorKind::NotFound,
            429 => herd_core::ErrorKind::RateLimited,
            s if s >= 500 => herd_core::ErrorKind::Unavailable,
            _ => herd_core::ErrorKind::Unexpected,
        };
        let mut e = Error::new(kind, format!("{what} answered HTTP {status}"));
        if matches!(status.as_u16(), 401 | 403) {
            e = e.with_hint(
                "check the credentials (the key or token may be wrong, expired, or lack the Cloud Billing API)",
            );
        }
        Err(e)
    }

    fn json<T: serde::de::DeserializeOwned>(&self, url: &str, what: &str, credential: Credential<'_>) -> Result<T> {
        let resp = self.get(url, what, credential)?;
        serde_json::from_reader(std::io::BufReader::new(resp))
            .map_err(|e| Error::unexpected(format!("{what} is not in the expected shape: {e}")))
    }
}

fn source(name: &str, as_of: NaiveDate, licence: &str) -> PriceSource {
    PriceSource {
        name: name.to_string(),
        as_of,
        licence: licence.to_string(),
    }
}

/// The overlay's catalog: the bundled types that got prices (their specs do not change
/// with a price list), the regions seen, and the new offers; `source_of` says which of
/// `sources` an offer's price came from (EC2 spot prices are not the bulk price list's).
fn overlay(
    cloud: Cloud,
    bundled: &Catalog,
    prices: Vec<(String, String, PurchaseOption, Option<Decimal>)>,
    sources: Vec<PriceSource>,
    source_of: impl Fn(PurchaseOption) -> u32,
) -> (Catalog, BTreeSet<String>) {
    let mut unknown = BTreeSet::new();
    let mut types: BTreeMap<&str, InstanceType> = BTreeMap::new();
    let mut regions = BTreeSet::new();
    let mut offers = Vec::new();
    for (t, region, purchase, price) in prices {
        let Ok(it) = bundled.find_type(cloud, &t) else {
            unknown.insert(t);
            continue;
        };
        types.entry(it.name.as_str()).or_insert_with(|| it.clone());
        regions.insert(region.clone());
        offers.push(Offer::new(
            cloud,
            t,
            region,
            purchase,
            price.map(Money::usd),
            source_of(purchase),
        ));
    }
    let regions = regions
        .into_iter()
        .map(|name| {
            let zones = bundled
                .regions(cloud)
                .find(|r| r.name == name)
                .map(|r| r.zones.clone())
                .unwrap_or_default();
            Region { cloud, name, zones }
        })
        .collect();
    (
        Catalog::new(types.into_values().collect(), offers, sources, regions),
        unknown,
    )
}

// ---------------------------------------------------------------------------------------
// AWS bulk offer files

#[derive(Deserialize)]
struct RegionIndex {
    regions: BTreeMap<String, RegionEntry>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RegionEntry {
    current_version_url: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Attributes {
    #[serde(rename = "instanceType")]
    instance_type: String,
    #[serde(rename = "operatingSystem")]
    operating_system: String,
    tenancy: String,
    #[serde(rename = "preInstalledSw")]
    pre_installed_sw: String,
    capacitystatus: String,
    #[serde(rename = "licenseModel")]
    license_model: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Product {
    #[serde(rename = "productFamily")]
    product_family: String,
    attributes: Attributes,
}

impl Product {
    /// Linux, shared tenancy, no pre-installed software or licence: the price herd quotes.
    fn is_plain_linux(&self) -> bool {
        let a = &self.attributes;
        self.product_family == "Compute Instance"
            && a.operating_system == "Linux"
            && a.tenancy == "Shared"
            && a.pre_installed_sw == "NA"
            && (a.capacitystatus.is_empty() || a.capacitystatus == "Used")
            && (a.license_model.is_empty() || a.license_model == "No License required")
    }
}

/// `products`, keeping only SKU -> instance type of plain Linux products.
struct Products(HashMap<String, String>);

impl<'de> Deserialize<'de> for Products {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Products;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of products")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> std::result::Result<Products, A::Error> {
                let mut out = HashMap::new();
                while let Some((sku, p)) = m.next_entry::<String, Product>()? {
                    if p.is_plain_linux() {
                        out.insert(sku, p.attributes.instance_type);
                    }
                }
                Ok(Products(out))
            }
        }
        d.deserialize_map(V)
    }
}

#[derive(Deserialize)]
struct PricePerUnit {
    #[serde(rename = "USD", default)]
    usd: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PriceDimension {
    #[serde(default)]
    unit: String,
    price_per_unit: PricePerUnit,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Term {
    price_dimensions: BTreeMap<String, PriceDimension>,
}

/// `terms.OnDemand`, keeping only the hourly USD price of the SKUs in `keep`.
struct OnDemandSeed<'a>(&'a HashMap<String, String>);

impl<'de> DeserializeSeed<'de> for OnDemandSeed<'_> {
    type Value = HashMap<String, String>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Self::Value, D::Error> {
        struct V<'a>(&'a HashMap<String, String>);
        impl<'de> Visitor<'de> for V<'_> {
            type Value = HashMap<String, String>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of on-demand terms by SKU")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> std::result::Result<Self::Value, A::Error> {
                let mut out = HashMap::new();
                while let Some(sku) = m.next_key::<String>()? {
                    if !self.0.contains_key(&sku) {
                        m.next_value::<IgnoredAny>()?;
                        continue;
                    }
                    let terms: BTreeMap<String, Term> = m.next_value()?;
                    let hourly = terms
                        .values()
                        .flat_map(|t| t.price_dimensions.values())
                        .find(|d| d.unit == "Hrs")
                        .and_then(|d| d.price_per_unit.usd.clone());
                    if let Some(p) = hourly {
                        out.insert(sku, p);
                    }
                }
                Ok(out)
            }
        }
        d.deserialize_map(V(self.0))
    }
}

struct TermsSeed<'a>(&'a HashMap<String, String>);

impl<'de> DeserializeSeed<'de> for TermsSeed<'_> {
    type Value = HashMap<String, String>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Self::Value, D::Error> {
        struct V<'a>(&'a HashMap<String, String>);
        impl<'de> Visitor<'de> for V<'_> {
            type Value = HashMap<String, String>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("the terms map")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> std::result::Result<Self::Value, A::Error> {
                let mut out = HashMap::new();
                while let Some(k) = m.next_key::<String>()? {
                    if k == "OnDemand" {
                        out = m.next_value_seed(OnDemandSeed(self.0))?;
                    } else {
                        m.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(out)
            }
        }
        d.deserialize_map(V(self.0))
    }
}

/// One region's offer file, streamed: `products` (which AWS writes before `terms`) is
/// reduced to the plain-Linux SKUs, then `terms.OnDemand` to those SKUs' hourly prices.
/// Returns (instance type, price) pairs; `None` for a price of 0 (unknown).
pub fn parse_aws_region_file(r: impl Read) -> Result<Vec<(String, Option<Decimal>)>> {
    struct FileV;
    impl<'de> Visitor<'de> for FileV {
        type Value = Vec<(String, Option<Decimal>)>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an AWS offer file")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> std::result::Result<Self::Value, A::Error> {
            let mut products: Option<HashMap<String, String>> = None;
            let mut prices = HashMap::new();
            while let Some(k) = m.next_key::<String>()? {
                match k.as_str() {
                    "products" => products = Some(m.next_value::<Products>()?.0),
                    "terms" => {
                        let p = products.as_ref().ok_or_else(|| {
                            serde::de::Error::custom("`terms` before `products` (AWS writes products first)")
                        })?;
                        prices = m.next_value_seed(TermsSeed(p))?;
                    }
                    _ => {
                        m.next_value::<IgnoredAny>()?;
                    }
                }
            }
            let products = products.ok_or_else(|| serde::de::Error::missing_field("products"))?;
            let mut out = Vec::new();
            for (sku, t) in products {
                if let Some(p) = prices.get(&sku) {
                    let d: Decimal = p
                        .parse()
                        .map_err(|_| serde::de::Error::custom(format!("price `{p}` of {sku}")))?;
                    out.push((t, (!d.is_zero()).then(|| d.normalize())));
                }
            }
            out.sort_by(|a, b| a.0.cmp(&b.0));
            // Several plain-Linux SKUs of one type (e.g. per capacity status) keep the first.
            out.dedup_by(|a, b| a.0 == b.0);
            Ok(out)
        }
    }
    let mut de = serde_json::Deserializer::from_reader(std::io::BufReader::with_capacity(1 << 20, r));
    de.deserialize_map(FileV)
        .map_err(|e| Error::unexpected(format!("the AWS offer file is not in the expected shape: {e}")))
}

/// AWS on-demand Linux prices of the regions matching `regions` (globs; empty: all), and
/// spot prices from `spot` if given.
pub fn aws(
    http: &Http,
    endpoints: &Endpoints,
    regions: &[String],
    bundled: &Catalog,
    spot: Option<&dyn SpotPrices>,
    today: NaiveDate,
    progress: &mut dyn FnMut(&str),
) -> Result<Refreshed> {
    let base = endpoints.aws.trim_end_matches('/');
    let index: RegionIndex = http.json(
        &format!("{base}/offers/v1.0/aws/AmazonEC2/current/region_index.json"),
        "the AWS price list region index",
        Credential::None,
    )?;
    let mut requests = 1;
    let mut prices = Vec::new();
    for (region, entry) in &index.regions {
        if !regions.is_empty() && !regions.iter().any(|g| glob_match(g, region)) {
            continue;
        }
        progress(&format!("aws: {region}"));
        let what = format!("the AWS price list of {region}");
        let resp = http.get(&format!("{base}{}", entry.current_version_url), &what, Credential::None)?;
        requests += 1;
        for (t, p) in parse_aws_region_file(resp).map_err(|e| e.with_context("file", what.clone()))? {
            prices.push((t, region.clone(), PurchaseOption::OnDemand, p));
        }
        if let Some(s) = spot {
            for (t, p) in s.spot_prices(region)? {
                prices.push((t, region.clone(), PurchaseOption::Spot, (!p.is_zero()).then_some(p)));
            }
        }
    }
    if prices.is_empty() && !regions.is_empty() {
        let known: Vec<&str> = index.regions.keys().map(String::as_str).collect();
        return Err(
            Error::invalid_spec(format!("no AWS region matches {}", regions.join(", ")))
                .with_suggestions(herd_core::suggest::did_you_mean(&regions[0], known.iter().copied(), 3)),
        );
    }
    let (catalog, unknown_types) = overlay(
        Cloud::Aws,
        bundled,
        prices,
        vec![
            source("AWS Price List bulk offer files", today, "AWS public price list"),
            source("EC2 DescribeSpotPriceHistory", today, "AWS API"),
        ],
        |p| match p {
            PurchaseOption::OnDemand => 0,
            PurchaseOption::Spot => 1,
        },
    );
    Ok(Refreshed {
        cloud: Cloud::Aws,
        catalog,
        unknown_types,
        requests,
    })
}

// ---------------------------------------------------------------------------------------
// Azure Retail Prices API

#[derive(Deserialize)]
struct AzurePage {
    #[serde(rename = "Items")]
    items: Vec<AzureItem>,
    #[serde(rename = "NextPageLink")]
    next_page_link: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AzureItem {
    currency_code: String,
    retail_price: Decimal,
    arm_region_name: String,
    arm_sku_name: String,
    sku_name: String,
    product_name: String,
    #[serde(default)]
    unit_of_measure: String,
    #[serde(rename = "type", default)]
    kind: String,
}

/// Azure Linux pay-as-you-go and spot prices of VMs, all pages.
pub fn azure(
    http: &Http,
    endpoints: &Endpoints,
    regions: &[String],
    bundled: &Catalog,
    today: NaiveDate,
    progress: &mut dyn FnMut(&str),
) -> Result<Refreshed> {
    let filter = "serviceName eq 'Virtual Machines' and priceType eq 'Consumption'";
    let mut url = Some(format!(
        "{}?currencyCode=USD&$filter={}",
        endpoints.azure,
        filter.replace(' ', "%20").replace('\'', "%27")
    ));
    let mut requests = 0;
    // Spot wins over Low Priority for the same size and region.
    let mut best: BTreeMap<(String, String, PurchaseOption), (u8, Option<Decimal>)> = BTreeMap::new();
    while let Some(u) = url.take() {
        requests += 1;
        if requests % 20 == 0 {
            progress(&format!("azure: page {requests}"));
        }
        let page: AzurePage = http.json(
            &u,
            &format!("the Azure Retail Prices API (page {requests})"),
            Credential::None,
        )?;
        for it in page.items {
            if it.currency_code != "USD"
                || it.kind != "Consumption"
                || it.product_name.contains("Windows")
                || it.arm_sku_name.is_empty()
                || !(it.unit_of_measure.is_empty() || it.unit_of_measure == "1 Hour")
            {
                continue;
            }
            if !regions.is_empty() && !regions.iter().any(|g| glob_match(g, &it.arm_region_name)) {
                continue;
            }
            let (purchase, rank) = if it.sku_name.ends_with(" Spot") {
                (PurchaseOption::Spot, 2)
            } else if it.sku_name.ends_with(" Low Priority") {
                (PurchaseOption::Spot, 1)
            } else {
                (PurchaseOption::OnDemand, 2)
            };
            let price = (!it.retail_price.is_zero()).then(|| it.retail_price.normalize());
            let key = (it.arm_sku_name, it.arm_region_name, purchase);
            match best.get(&key) {
                Some((r, _)) if *r >= rank => {}
                _ => {
                    best.insert(key, (rank, price));
                }
            }
        }
        url = page.next_page_link.filter(|l| !l.is_empty());
    }
    let prices = best
        .into_iter()
        .map(|((t, r, p), (_, price))| (t, r, p, price))
        .collect();
    let (catalog, unknown_types) = overlay(
        Cloud::Azure,
        bundled,
        prices,
        vec![source("Azure Retail Prices API", today, "Azure public retail prices")],
        |_| 0,
    );
    Ok(Refreshed {
        cloud: Cloud::Azure,
        catalog,
        unknown_types,
        requests,
    })
}

// ---------------------------------------------------------------------------------------
// GCP Cloud Billing Catalog

/// Compute Engine's service id in the Cloud Billing Catalog.
pub const GCE_SERVICE: &str = "6F81-5844-456A";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SkuPage {
    #[serde(default)]
    skus: Vec<Sku>,
    #[serde(default)]
    next_page_token: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Sku {
    description: String,
    category: SkuCategory,
    #[serde(default)]
    service_regions: Vec<String>,
    #[serde(default)]
    pricing_info: Vec<PricingInfo>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SkuCategory {
    #[serde(default)]
    resource_family: String,
    #[serde(default)]
    usage_type: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PricingInfo {
    pricing_expression: PricingExpression,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PricingExpression {
    usage_unit: String,
    #[serde(default)]
    tiered_rates: Vec<TieredRate>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TieredRate {
    unit_price: UnitPrice,
}

#[derive(Deserialize)]
struct UnitPrice {
    #[serde(rename = "currencyCode")]
    currency_code: String,
    #[serde(default)]
    units: String,
    #[serde(default)]
    nanos: i64,
}

impl UnitPrice {
    fn amount(&self) -> Option<Decimal> {
        let units: i64 = if self.units.is_empty() {
            0
        } else {
            self.units.parse().ok()?
        };
        Some((Decimal::from(units) + Decimal::new(self.nanos, 9)).normalize())
    }
}

/// Which family's vCPU or RAM rate a Compute SKU is, from its description
/// (`N2 Instance Core running in Americas`, `Spot Preemptible N2D AMD Instance Ram ...`,
/// `Compute optimized Core ...` is c2, `Memory-optimized Instance Core ...` is m1).
/// Custom, sole-tenant, commitment and premium SKUs are not what a predefined type pays.
fn gce_component(description: &str, known_families: &BTreeSet<String>) -> Option<(String, bool)> {
    let d = description.strip_prefix("Spot Preemptible ").unwrap_or(description);
    let lower = d.to_ascii_lowercase();
    if [
        "custom",
        "sole tenancy",
        "commitment",
        "premium",
        "extended",
        "reserved",
    ]
    .iter()
    .any(|w| lower.contains(w))
    {
        return None;
    }
    let is_cpu = if lower.contains(" core") || lower.contains(" cpu") {
        true
    } else if lower.contains(" ram") {
        false
    } else {
        return None;
    };
    let family = if lower.starts_with("compute optimized") {
        "c2".to_string()
    } else if lower.starts_with("memory-optimized") {
        "m1".to_string()
    } else {
        lower.split_whitespace().next()?.to_string()
    };
    known_families.contains(&family).then_some((family, is_cpu))
}

/// GCE on-demand and spot prices of every bundled machine type whose family's vCPU and
/// RAM rates the Billing Catalog lists, all pages. Shared-core f1/g1 and accelerator
/// types are left to the bundled data (their SKUs are priced differently).
pub fn gcp(
    http: &Http,
    endpoints: &Endpoints,
    auth: &GcpAuth,
    regions: &[String],
    bundled: &Catalog,
    today: NaiveDate,
    progress: &mut dyn FnMut(&str),
) -> Result<Refreshed> {
    let families: BTreeSet<String> = bundled
        .types()
        .iter()
        .filter(|t| t.cloud == Cloud::Gcp)
        .map(|t| gce::family(&t.name).to_string())
        .collect();
    // (family, spot, cpu?) -> region -> rate
    let mut rates: HashMap<(String, bool, bool), BTreeMap<String, Decimal>> = HashMap::new();
    // (GPU key, spot) -> region -> rate per accelerator-hour
    let mut gpu_rates: HashMap<(String, bool), BTreeMap<String, Decimal>> = HashMap::new();
    let base = format!("{}/v1/services/{GCE_SERVICE}/skus", endpoints.gcp.trim_end_matches('/'));
    let credential = match auth {
        GcpAuth::ApiKey(k) => Credential::GoogleApiKey(k),
        GcpAuth::AccessToken(t) => Credential::Bearer(t),
    };
    let mut token = String::new();
    let mut requests = 0;
    loop {
        let mut params = vec![("currencyCode", "USD"), ("pageSize", "5000")];
        if !token.is_empty() {
            params.push(("pageToken", token.as_str()));
        }
        let url = reqwest::Url::parse_with_params(&base, &params)
            .map_err(|e| Error::config(format!("the GCP billing endpoint `{base}` is not a URL: {e}")))?;
        requests += 1;
        progress(&format!("gcp: page {requests}"));
        let page: SkuPage = http.json(
            url.as_str(),
            &format!("the Cloud Billing Catalog (page {requests})"),
            credential,
        )?;
        for sku in page.skus {
            if sku.category.resource_family != "Compute" {
                continue;
            }
            let spot = match sku.category.usage_type.as_str() {
                "OnDemand" => false,
                "Preemptible" => true,
                _ => continue,
            };
            let Some(pe) = sku.pricing_info.first().map(|p| &p.pricing_expression) else {
                continue;
            };
            if let Some(gpu) = gce_gpu(&sku.description) {
                let rate = pe.tiered_rates.last().map(|t| &t.unit_price);
                if let Some(amount) = rate
                    .filter(|r| r.currency_code == "USD" && pe.usage_unit == "h")
                    .and_then(|r| r.amount())
                {
                    let slot = gpu_rates.entry((gpu, spot)).or_default();
                    for r in &sku.service_regions {
                        slot.insert(r.clone(), amount);
                    }
                }
                continue;
            }
            let Some((family, is_cpu)) = gce_component(&sku.description, &families) else {
                continue;
            };
            let unit_ok = if is_cpu {
                pe.usage_unit == "h"
            } else {
                pe.usage_unit == "GiBy.h"
            };
            // The last tier is the rate past any free tier.
            let Some(rate) = pe.tiered_rates.last().map(|t| &t.unit_price) else {
                continue;
            };
            if !unit_ok || rate.currency_code != "USD" {
                continue;
            }
            let Some(amount) = rate.amount() else { continue };
            let slot = rates.entry((family, spot, is_cpu)).or_default();
            for r in sku.service_regions {
                slot.insert(r, amount);
            }
        }
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let mut prices = Vec::new();
    for t in bundled.types().iter().filter(|t| t.cloud == Cloud::Gcp) {
        let family = gce::family(&t.name);
        if matches!(family, "f1" | "g1") {
            continue;
        }
        for (spot, purchase) in [(false, PurchaseOption::OnDemand), (true, PurchaseOption::Spot)] {
            let (Some(cpu), Some(ram)) = (
                rates.get(&(family.to_string(), spot, true)),
                rates.get(&(family.to_string(), spot, false)),
            ) else {
                continue;
            };
            for (region, cpu_rate) in cpu {
                if !regions.is_empty() && !regions.iter().any(|g| glob_match(g, region)) {
                    continue;
                }
                let base = ram
                    .get(region)
                    .filter(|r| !r.is_zero() && !cpu_rate.is_zero())
                    .map(|ram_rate| gce::price(&t.name, t.vcpus, t.memory_mib, *cpu_rate, *ram_rate));
                // Accelerator types: plus each GPU at its own rate, or no price at all.
                let price = match &t.gpu {
                    None => base,
                    Some(g) => base.and_then(|b| {
                        let rate = gpu_keys(&g.model, g.memory_mib)
                            .iter()
                            .find_map(|k| gpu_rates.get(&(k.clone(), spot)).and_then(|m| m.get(region)))?;
                        Some((b + Decimal::from(g.count) * rate).normalize())
                    }),
                };
                prices.push((t.name.clone(), region.clone(), purchase, price));
            }
        }
    }
    let (catalog, unknown_types) = overlay(
        Cloud::Gcp,
        bundled,
        prices,
        vec![source(
            "GCP Cloud Billing Catalog",
            today,
            "Google Cloud public pricing",
        )],
        |_| 0,
    );
    Ok(Refreshed {
        cloud: Cloud::Gcp,
        catalog,
        unknown_types,
        requests,
    })
}

/// The accelerator a Compute SKU prices, normalised (`Nvidia Tesla A100 80GB GPU running
/// in Americas` is `a100 80gb`, `Nvidia L4 GPU running in ...` is `l4`); workstation,
/// commitment and reservation SKUs are not the plain GPU-hour.
fn gce_gpu(description: &str) -> Option<String> {
    let d = description.strip_prefix("Spot Preemptible ").unwrap_or(description);
    let lower = d.to_ascii_lowercase();
    if ["workstation", "commitment", "reserved", "dws", "calendar"]
        .iter()
        .any(|w| lower.contains(w))
    {
        return None;
    }
    let rest = lower.strip_prefix("nvidia ")?;
    let rest = rest.strip_prefix("tesla ").unwrap_or(rest);
    let model = rest.split(" gpu running in").next().filter(|m| m.len() < rest.len())?;
    Some(model.trim().to_string())
}

/// The SKU keys a type's GPU may be priced under, most specific first: `A100` with 80 GiB
/// per GPU is `a100 80gb`, else `a100`.
fn gpu_keys(model: &str, memory_mib: u64) -> Vec<String> {
    let m = model.to_ascii_lowercase();
    let gb = memory_mib / 1024;
    vec![format!("{m} {gb}gb"), m]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gce_gpu_skus() {
        assert_eq!(
            gce_gpu("Nvidia Tesla A100 GPU running in Americas").as_deref(),
            Some("a100")
        );
        assert_eq!(
            gce_gpu("Spot Preemptible Nvidia Tesla A100 80GB GPU running in EMEA").as_deref(),
            Some("a100 80gb")
        );
        assert_eq!(gce_gpu("Nvidia L4 GPU running in Iowa").as_deref(), Some("l4"));
        assert_eq!(
            gce_gpu("Nvidia Tesla T4 GPU attached to Virtual Workstation running in Iowa"),
            None
        );
        assert_eq!(gce_gpu("N2 Instance Core running in Americas"), None);
        assert_eq!(
            gpu_keys("A100", 81920),
            vec!["a100 80gb".to_string(), "a100".to_string()]
        );
    }

    #[test]
    fn gce_descriptions() {
        let fams: BTreeSet<String> = ["n2", "n2d", "c2", "m1", "e2"].iter().map(|s| s.to_string()).collect();
        assert_eq!(
            gce_component("N2 Instance Core running in Americas", &fams),
            Some(("n2".into(), true))
        );
        assert_eq!(
            gce_component("Spot Preemptible N2D AMD Instance Ram running in Belgium", &fams),
            Some(("n2d".into(), false))
        );
        assert_eq!(
            gce_component("Compute optimized Core running in Iowa", &fams),
            Some(("c2".into(), true))
        );
        assert_eq!(
            gce_component("N2 Custom Instance Core running in Americas", &fams),
            None
        );
        assert_eq!(
            gce_component("Commitment v1: N2 Cpu in Americas for 1 Year", &fams),
            None
        );
        assert_eq!(gce_component("Z9 Instance Core running in Mars", &fams), None);
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        let a = GcpAuth::ApiKey("AIza-secret".into());
        assert!(!format!("{a:?}").contains("secret"));
        let e = GcpAuth::from_env(|_| None).unwrap_err();
        assert_eq!(e.kind(), herd_core::ErrorKind::Unauthenticated);
        assert!(e.hint().unwrap().contains("HERD_GCP_API_KEY"));
        let k = GcpAuth::from_env(|k| (k == "GOOGLE_API_KEY").then(|| "x".to_string())).unwrap();
        assert!(matches!(k, GcpAuth::ApiKey(_)));
    }

    #[test]
    fn unit_prices() {
        let p = UnitPrice {
            currency_code: "USD".into(),
            units: "1".into(),
            nanos: 500_000_000,
        };
        assert_eq!(p.amount(), Some(Decimal::new(15, 1)));
    }
}
