//! `herd cost`: spend from the ledger at the prices frozen at launch, after refreshing
//! what the cloud says (so ended instances get their end times). `herd cost quote TYPE`
//! prices a type from the bundled catalogs without touching the ledger or a cloud.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use herd_core::guardrails::{human, parse_duration};
use herd_core::{BillingRule, Catalog, Cloud, Error, ListRequest, Money, PurchaseOption, Quote, QuoteRequest};
use herd_ledger::{CostGroup, CostRow, InstanceFilter};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde::Serialize;

use crate::args::{CostArgs, CostBy, CostCommand, QuoteArgs};
use crate::catalogs;
use crate::context::Context;
use crate::printer::{Style, Table};

pub fn run(ctx: &Context, a: &CostArgs) -> anyhow::Result<()> {
    match &a.quote {
        Some(CostCommand::Quote(q)) => quote(ctx, q),
        None => report(ctx, a),
    }
}

#[derive(Serialize)]
struct Report<'a> {
    by: &'static str,
    since: Option<DateTime<Utc>>,
    to: DateTime<Utc>,
    rows: &'a [CostRow],
    total: Total,
    prices_as_of: Option<NaiveDate>,
}

#[derive(Serialize)]
struct Total {
    instances: u32,
    live: u32,
    accrued: Money,
    projected: Money,
    hourly_now: Money,
}

fn report(ctx: &Context, a: &CostArgs) -> anyhow::Result<()> {
    let now = Utc::now();
    let since = a.since.as_deref().map(|s| parse_since(s, now)).transpose()?;
    let group = match a.by {
        CostBy::Cluster => CostGroup::Cluster,
        CostBy::Launch => CostGroup::Launch,
        CostBy::Day => CostGroup::Day,
        CostBy::Type => CostGroup::InstanceType,
        CostBy::Cloud => CostGroup::Cloud,
    };
    refresh(ctx)?;
    let ledger = ctx.ledger()?;
    let to = Utc::now();
    let rows = ledger.cost_report(group, since, to, Some(ctx.owner()))?;
    let total = Total {
        instances: rows.iter().map(|r| r.instances).sum(),
        live: rows.iter().map(|r| r.live).sum(),
        accrued: rows.iter().map(|r| r.accrued).sum(),
        projected: rows.iter().map(|r| r.projected).sum(),
        hourly_now: rows.iter().map(|r| r.hourly_now).sum(),
    };
    let catalog = ctx.launcher()?.catalog();
    let as_of = catalog.oldest_price(catalog.offers());
    if a.json {
        return ctx.printer.json(&Report {
            by: group.as_str(),
            since,
            to,
            rows: &rows,
            total,
            prices_as_of: as_of,
        });
    }
    if rows.is_empty() {
        ctx.printer.note(match since {
            Some(s) => format!("no spend since {}", crate::format::instant(s)),
            None => "no spend recorded yet; `herd launch` starts something to pay for".to_string(),
        });
        return Ok(());
    }
    let mut t = Table::new(&[
        header(group),
        ">INSTANCES",
        ">LIVE",
        ">ACCRUED",
        ">PROJECTED",
        ">$/H NOW",
    ]);
    for r in &rows {
        t.row(vec![
            r.key.clone().into(),
            r.instances.to_string().into(),
            r.live.to_string().into(),
            r.accrued.to_string().into(),
            r.projected.to_string().into(),
            r.hourly_now.to_string().into(),
        ]);
    }
    t.footer(vec![
        crate::printer::styled("total", Style::Bold),
        total.instances.to_string().into(),
        total.live.to_string().into(),
        total.accrued.to_string().into(),
        total.projected.to_string().into(),
        total.hourly_now.to_string().into(),
    ]);
    ctx.printer.table(&t);
    ctx.printer.note(
        "accrued: billed so far at the price frozen at launch; projected: plus live instances until their deadlines",
    );
    if let Some(d) = as_of {
        price_age_note(ctx, catalog, d);
    }
    Ok(())
}

fn header(g: CostGroup) -> &'static str {
    match g {
        CostGroup::Cluster => "CLUSTER",
        CostGroup::Launch => "LAUNCH",
        CostGroup::Day => "DAY",
        CostGroup::InstanceType => "TYPE",
        CostGroup::Cloud => "CLOUD",
    }
}

/// Asks the cloud about your live instances and about those the ledger still thinks are
/// live, so instances that ended while nobody watched get their end times recorded.
fn refresh(ctx: &Context) -> anyhow::Result<()> {
    let launcher = ctx.launcher()?;
    let ledger = ctx.ledger()?;
    let stale: Vec<String> = ledger
        .instances(&InstanceFilter {
            owner: Some(ctx.owner().to_string()),
            live_only: true,
            ..InstanceFilter::default()
        })?
        .into_iter()
        .map(|i| i.id)
        .collect();
    ctx.block_on(async {
        let live: BTreeSet<String> = launcher.list_mine(false).await?.into_iter().map(|i| i.id).collect();
        let ended: Vec<String> = stale.into_iter().filter(|id| !live.contains(id)).collect();
        if !ended.is_empty() {
            launcher.list(&ListRequest::new().ids(ended)).await?;
        }
        Ok::<_, Error>(())
    })??;
    Ok(())
}

pub fn price_age_note(ctx: &Context, catalog: &Catalog, as_of: NaiveDate) {
    let age = Catalog::age_days(as_of, Utc::now());
    let names: BTreeSet<&str> = catalog.sources().iter().map(|s| s.name.as_str()).collect();
    let names: Vec<&str> = names.into_iter().collect();
    let text = format!("prices: {} as of {as_of} ({age} days old)", names.join(", "));
    if age > 30 {
        ctx.printer.warn(format!("{text}; prices may have changed since"));
    } else {
        ctx.printer.note(text);
    }
}

/// `7d` / `12h` ago, a date (`2026-01-31`, midnight UTC) or an RFC 3339 instant.
fn parse_since(s: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, Error> {
    if let Ok(d) = NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).expect("midnight").and_utc());
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s.trim()) {
        return Ok(t.with_timezone(&Utc));
    }
    let d = parse_duration(s).map_err(|_| {
        Error::invalid_spec(format!("--since `{s}` is neither a duration nor a date"))
            .with_hint("write --since 7d, --since 12h or --since 2026-01-31")
    })?;
    let back =
        chrono::Duration::from_std(d).map_err(|_| Error::invalid_spec(format!("--since `{s}` is too far back")))?;
    now.checked_sub_signed(back)
        .ok_or_else(|| Error::invalid_spec(format!("--since `{s}` is too far back")))
}

#[derive(Serialize)]
struct QuoteOut<'a> {
    quote: &'a Quote,
    count: u32,
    hours: Decimal,
    billed_seconds: u64,
    total: Money,
}

fn quote(ctx: &Context, q: &QuoteArgs) -> anyhow::Result<()> {
    let cloud: Cloud = ctx.settings.cloud;
    let catalog = catalogs::all();
    let region = match &ctx.settings.region {
        Some(r) => r.clone(),
        None => catalogs::default_region(cloud)
            .ok_or_else(|| Error::invalid_spec(format!("herd knows no regions of {cloud}")))?,
    };
    let duration = parse_hours(&q.hours)?;
    let purchase = if q.spot {
        PurchaseOption::Spot
    } else {
        PurchaseOption::OnDemand
    };
    let rule = BillingRule::for_cloud(cloud);
    let quote = catalog.quote(cloud, &QuoteRequest::new(&q.instance_type, &region, purchase), rule)?;
    let total = quote.for_duration(q.count, duration);
    let billed = rule.billable_seconds(duration);
    if q.json {
        return ctx.printer.json(&QuoteOut {
            quote: &quote,
            count: q.count,
            hours: Decimal::from_str_exact(q.hours.trim()).unwrap_or_default(),
            billed_seconds: billed,
            total,
        });
    }
    let p = &ctx.printer;
    let line = |k: &str, v: String| p.line(format!("{:<9} {v}", p.paint(Style::Bold, k)));
    line(
        "type",
        format!(
            "{} in {} ({cloud}), {}",
            quote.instance_type, quote.region, quote.purchase
        ),
    );
    line("hourly", format!("{}/h per instance", quote.hourly));
    line(
        "total",
        format!(
            "{total} for {} × {} ({})",
            q.count,
            human(duration),
            describe_rule(rule)
        ),
    );
    line(
        "source",
        format!(
            "{}, as of {} ({} days old)",
            quote.source,
            quote.as_of,
            Catalog::age_days(quote.as_of, Utc::now())
        ),
    );
    Ok(())
}

/// Hours as a decimal (`1`, `1.5`, `0.25`), to whole seconds rounded up.
fn parse_hours(s: &str) -> Result<Duration, Error> {
    let bad = || {
        Error::invalid_spec(format!("--hours `{s}` is not a positive number of hours")).with_hint("e.g. --hours 1.5")
    };
    let h = Decimal::from_str_exact(s.trim()).map_err(|_| bad())?;
    if h <= Decimal::ZERO {
        return Err(bad());
    }
    let secs = (h * Decimal::from(3600)).ceil().to_u64().ok_or_else(bad)?;
    Ok(Duration::from_secs(secs))
}

fn describe_rule(r: BillingRule) -> String {
    let unit = match r.increment.as_secs() {
        1 => "per second".to_string(),
        60 => "per minute".to_string(),
        n => format!("in {n}s increments"),
    };
    format!("billed {unit}, {} minimum", human(r.minimum))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_forms() {
        let now = DateTime::parse_from_rfc3339("2026-02-10T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            parse_since("7d", now).unwrap(),
            DateTime::parse_from_rfc3339("2026-02-03T12:00:00Z").unwrap()
        );
        assert_eq!(
            parse_since("2026-01-31", now).unwrap(),
            DateTime::parse_from_rfc3339("2026-01-31T00:00:00Z").unwrap()
        );
        let e = parse_since("last tuesday", now).unwrap_err();
        assert!(e.hint().unwrap().contains("--since 7d"));
    }

    #[test]
    fn hours() {
        assert_eq!(parse_hours("1.5").unwrap(), Duration::from_secs(5400));
        assert!(parse_hours("0").is_err());
        assert!(parse_hours("-1").is_err());
        assert!(parse_hours("abc").is_err());
        assert_eq!(describe_rule(BillingRule::AWS), "billed per second, 1m minimum");
    }
}
