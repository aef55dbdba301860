//! `herd catalog refresh [--cloud ...] [--region GLOB]`: today's prices from each cloud's
//! public price source, merged into the user's price overlay (one file per cloud), which
//! wins over the bundled catalog from then on. Live spot prices come from the backend
//! through the registry (`registry::spot_prices`); this file builds no provider.

use std::cell::RefCell;

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
                // Spot prices are signed calls: the backend's, through the registry.
                let spot = match crate::registry::spot_prices(cloud, &ctx.settings) {
                    Some(Ok(source)) => Ok(FirstFailure {
                        source,
                        failed: RefCell::new(None),
                    }),
                    Some(Err(why)) => Err(why),
                    None => Err(format!("herd was built without the {cloud} backend")),
                };
                let r = refresh::aws(
                    &http,
                    endpoints,
                    &a.region,
                    bundled(cloud),
                    spot.as_ref().ok().map(|s| s as &dyn SpotPrices),
                    today,
                    &mut progress,
                );
                let why_not = match &spot {
                    Err(why) => Some(why.clone()),
                    Ok(s) => s.failed.borrow().as_ref().map(|e| e.message().to_string()),
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

/// A backend's spot prices, with its first failure (no credentials, no permission) kept
/// and reported once: the on-demand refresh goes on without spot prices.
struct FirstFailure {
    source: Box<dyn SpotPrices>,
    failed: RefCell<Option<Error>>,
}

impl SpotPrices for FirstFailure {
    fn spot_prices(&self, region: &str) -> Result<Vec<(String, Decimal)>> {
        if self.failed.borrow().is_some() {
            return Ok(Vec::new());
        }
        match self.source.spot_prices(region) {
            Ok(prices) => Ok(prices),
            Err(e) => {
                *self.failed.borrow_mut() = Some(e);
                Ok(Vec::new())
            }
        }
    }
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
    use std::cell::Cell;
    use std::rc::Rc;

    struct Failing(Rc<Cell<u32>>);
    impl SpotPrices for Failing {
        fn spot_prices(&self, _: &str) -> Result<Vec<(String, Decimal)>> {
            self.0.set(self.0.get() + 1);
            Err(Error::config("no credentials"))
        }
    }

    #[test]
    fn the_first_spot_failure_is_kept_and_not_retried_per_region() {
        let calls = Rc::new(Cell::new(0));
        let f = FirstFailure {
            source: Box::new(Failing(calls.clone())),
            failed: RefCell::new(None),
        };
        assert!(f.spot_prices("us-east-1").unwrap().is_empty());
        assert!(f.spot_prices("us-west-2").unwrap().is_empty());
        assert_eq!(calls.get(), 1, "one failing call, not one per region");
        assert_eq!(f.failed.borrow().as_ref().unwrap().message(), "no credentials");
    }
}
