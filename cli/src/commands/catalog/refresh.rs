//! `herd catalog refresh [--cloud ...] [--region GLOB]`: today's prices from each cloud's
//! public price source, merged into the user's price overlay (one file per cloud), which
//! wins over the bundled catalog from then on.

use std::cell::RefCell;
use std::collections::BTreeMap;

use chrono::{NaiveDate, Utc};
use herd_catalog::refresh::{self, GcpAuth, Http, Refreshed, SpotPrices};
use herd_catalog::{bundled, overlay, CLOUDS};
use herd_core::{Cloud, Error, Result};
use rust_decimal::Decimal;
use serde::Serialize;

use crate::args::RefreshArgs;
use crate::context::Context;

#[derive(Serialize)]
struct Outcome {
    cloud: Cloud,
    offers: usize,
    regions: usize,
    as_of: NaiveDate,
    overlay: String,
    /// Names the price source lists that the bundled catalog does not know.
    unknown_types: usize,
}

pub fn run(ctx: &Context, a: &RefreshArgs) -> anyhow::Result<()> {
    let explicit = !a.cloud.is_empty();
    let clouds: Vec<Cloud> = if explicit {
        let mut v = Vec::new();
        for c in &a.cloud {
            let cloud = c.parse::<Cloud>()?;
            if cloud == Cloud::Local {
                return Err(
                    Error::invalid_spec("the simulator's prices are herd's own; there is nothing to refresh")
                        .with_hint("refresh aws, gcp or azure")
                        .into(),
                );
            }
            v.push(cloud);
        }
        v
    } else {
        CLOUDS.to_vec()
    };
    let dir = ctx.settings.catalog.overlay_dir.clone().ok_or_else(|| {
        Error::config("there is no user data directory to keep refreshed prices in")
            .with_hint("set [catalog] overlay_dir in your config, or HERD_CATALOG_DIR")
    })?;
    let http = Http::new()?;
    let today = Utc::now().date_naive();
    let endpoints = &ctx.settings.catalog.endpoints;
    let mut outcomes = Vec::new();
    let mut failed: Vec<Error> = Vec::new();
    for cloud in clouds {
        let quiet = a.json;
        let mut progress = |m: &str| {
            if !quiet {
                ctx.printer.note(format!("fetching {m}"));
            }
        };
        let result: Result<Refreshed> = match cloud {
            Cloud::Aws => {
                let spot = aws_credentials_configured(ctx).then(|| Ec2Spot {
                    ctx,
                    provider: crate::registry::aws(&ctx.settings),
                    failed: RefCell::new(None),
                });
                let r = refresh::aws(
                    &http,
                    endpoints,
                    &a.region,
                    bundled(cloud),
                    spot.as_ref().map(|s| s as &dyn SpotPrices),
                    today,
                    &mut progress,
                );
                let why_not = match &spot {
                    None => Some("no AWS credentials are configured".to_string()),
                    Some(s) => s.failed.borrow().as_ref().map(|e| e.message().to_string()),
                };
                if let Some(why) = why_not {
                    ctx.printer.warn(format!(
                        "aws: on-demand prices only; spot prices need signed DescribeSpotPriceHistory calls: {why}"
                    ));
                }
                r
            }
            Cloud::Azure => refresh::azure(&http, endpoints, &a.region, bundled(cloud), today, &mut progress),
            Cloud::Gcp => match GcpAuth::from_env(|k| std::env::var(k).ok()) {
                Ok(auth) => refresh::gcp(&http, endpoints, &auth, &a.region, bundled(cloud), today, &mut progress),
                Err(e) if !explicit => {
                    ctx.printer.warn(format!(
                        "gcp: skipped: {}; {}",
                        e.message(),
                        e.hint().unwrap_or_default()
                    ));
                    continue;
                }
                Err(e) => Err(e),
            },
            Cloud::Local => continue,
        };
        match result.and_then(|r| save(&dir, r)) {
            Ok(o) => {
                if !a.json {
                    ctx.printer.line(format!(
                        "{}: {} offers in {} regions, prices as of {} -> {}",
                        o.cloud, o.offers, o.regions, o.as_of, o.overlay
                    ));
                    if o.unknown_types > 0 {
                        ctx.printer.note(format!(
                            "{}: {} priced type(s) are not in the bundled catalog and were left out \
                             (their specs are unknown; a newer herd knows them)",
                            o.cloud, o.unknown_types
                        ));
                    }
                }
                outcomes.push(o);
            }
            Err(e) => {
                let mut named = Error::new(e.kind(), format!("{cloud}: {}", e.message()));
                if let Some(h) = e.hint() {
                    named = named.with_hint(h.to_string());
                }
                failed.push(named);
            }
        }
    }
    if a.json {
        ctx.printer.json(&outcomes)?;
    }
    if failed.len() == 1 && outcomes.is_empty() {
        return Err(failed.remove(0).into());
    }
    let Some(first) = failed.first() else {
        return Ok(());
    };
    let kind = first.kind();
    for e in failed {
        ctx.printer.error(&anyhow::Error::new(e));
    }
    Err(Error::new(kind, "some price sources could not be refreshed")
        .with_hint("the clouds that succeeded were saved; the others keep their previous prices")
        .into())
}

/// EC2 spot prices through the AWS backend (signed DescribeSpotPriceHistory): per type,
/// the cheapest zone's latest price. The first failure (no credentials, no permission)
/// is kept and reported once; the on-demand refresh goes on without spot prices.
struct Ec2Spot<'a> {
    ctx: &'a Context,
    provider: herd_aws::AwsProvider,
    failed: RefCell<Option<Error>>,
}

impl SpotPrices for Ec2Spot<'_> {
    fn spot_prices(&self, region: &str) -> Result<Vec<(String, Decimal)>> {
        if self.failed.borrow().is_some() {
            return Ok(Vec::new());
        }
        let got = self
            .ctx
            .block_on(self.provider.spot_prices(region, &[]))
            .and_then(|r| r);
        match got {
            Ok(prices) => Ok(cheapest_per_type(
                prices.into_iter().map(|p| (p.instance_type, p.hourly.amount)),
            )),
            Err(e) => {
                *self.failed.borrow_mut() = Some(e);
                Ok(Vec::new())
            }
        }
    }
}

/// Per type, the lowest of its zones' prices.
fn cheapest_per_type(prices: impl IntoIterator<Item = (String, Decimal)>) -> Vec<(String, Decimal)> {
    let mut best: BTreeMap<String, Decimal> = BTreeMap::new();
    for (t, p) in prices {
        best.entry(t).and_modify(|b| *b = (*b).min(p)).or_insert(p);
    }
    best.into_iter().collect()
}

/// Whether asking EC2 is worth a try: an emulator, a profile, or credentials in the
/// environment or in ~/.aws. Without any, the SDK would spend seconds probing for
/// instance metadata before failing.
fn aws_credentials_configured(ctx: &Context) -> bool {
    let env = |k: &str| std::env::var_os(k).is_some_and(|v| !v.is_empty());
    ctx.settings.aws.endpoint.is_some()
        || ctx.settings.aws.profile.is_some()
        || [
            "AWS_ACCESS_KEY_ID",
            "AWS_PROFILE",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
            "AWS_ENDPOINT_URL",
        ]
        .iter()
        .any(|k| env(k))
        || std::env::var_os("HOME")
            .map(std::path::PathBuf::from)
            .is_some_and(|h| h.join(".aws/credentials").is_file() || h.join(".aws/config").is_file())
}

/// Merges the refreshed prices over the existing overlay (a region-scoped refresh keeps
/// the other regions' earlier refresh) and writes it.
fn save(dir: &std::path::Path, r: Refreshed) -> Result<Outcome> {
    let offers = r.catalog.offers().len();
    let regions = r.catalog.regions(r.cloud).count();
    let as_of = r.catalog.sources().iter().map(|s| s.as_of).max().unwrap_or_default();
    let merged = match overlay::read(dir, r.cloud) {
        Ok(Some((_, mut old))) => {
            old.merge(r.catalog);
            old
        }
        // A missing or damaged overlay is replaced.
        _ => r.catalog,
    };
    let path = overlay::write(dir, r.cloud, &merged)?;
    Ok(Outcome {
        cloud: r.cloud,
        offers,
        regions,
        as_of,
        overlay: path.display().to_string(),
        unknown_types: r.unknown_types.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spot_keeps_the_cheapest_zone() {
        let d = |s: &str| s.parse::<Decimal>().unwrap();
        let got = cheapest_per_type([
            ("c7g.large".to_string(), d("0.031")),
            ("c7g.large".to_string(), d("0.029")),
            ("m5.large".to_string(), d("0.04")),
        ]);
        assert_eq!(
            got,
            vec![("c7g.large".into(), d("0.029")), ("m5.large".into(), d("0.04"))]
        );
    }
}
