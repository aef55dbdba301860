//! `herd cost`: spend from the ledger at the prices frozen at launch, after refreshing
//! what every configured cloud says, at once (so ended instances get their end times).
//! `herd cost quote TYPE` prices a type from the bundled catalogs without touching the
//! ledger or a cloud.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use herd_core::guardrails::{human, parse_duration};
use herd_core::{
    BillingRule, Catalog, Cloud, Error, Instance, Launcher, ListRequest, Money, PurchaseOption, Quote, QuoteRequest,
};
use herd_ledger::{CostGroup, CostRow, InstanceFilter};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde::Serialize;

use crate::args::{CostArgs, CostBy, CostCommand, QuoteArgs};
use crate::catalogs;
use crate::clouds;
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
    rows: &'a [Row<'a>],
    total: Total,
    prices_as_of: Option<NaiveDate>,
}

/// A ledger row and the clouds its instances ran on.
#[derive(Serialize)]
struct Row<'a> {
    #[serde(flatten)]
    row: &'a CostRow,
    clouds: Vec<Cloud>,
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
    if !a.cloud.is_empty() && matches!(group, CostGroup::Day) {
        return Err(
            Error::invalid_spec("--by day mixes clouds in one row, so --cloud cannot narrow it")
                .with_hint("use --by cloud for each cloud's spend, or --by cluster --cloud aws")
                .into(),
        );
    }
    let ledger = ctx.ledger()?;
    let failures = refresh(ctx, &a.cloud)?;
    let to = Utc::now();
    let ledger_rows = ledger.cost_report(group, since, to, Some(ctx.owner()))?;
    let wanted: Vec<Cloud> = a.cloud.iter().map(|c| c.parse::<Cloud>()).collect::<Result<_, _>>()?;
    let where_ran = clouds_by_key(ctx, group)?;
    let rows: Vec<Row> = ledger_rows
        .iter()
        .map(|r| Row {
            row: r,
            clouds: match group {
                CostGroup::Cloud => r.key.parse().ok().into_iter().collect(),
                _ => where_ran
                    .get(&r.key)
                    .map(|s| s.iter().copied().collect())
                    .unwrap_or_default(),
            },
        })
        .filter(|r| wanted.is_empty() || r.clouds.iter().any(|c| wanted.contains(c)))
        .collect();
    clouds::warn(ctx, &failures);
    let incomplete = clouds::incomplete(&failures, "the refresh from the clouds");
    report_rows(ctx, a, group, since, to, &rows)?;
    match incomplete {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// For a grouping by cluster, launch or type: the clouds each key's instances ran on.
fn clouds_by_key(ctx: &Context, group: CostGroup) -> anyhow::Result<BTreeMap<String, BTreeSet<Cloud>>> {
    let key = |i: &Instance| -> Option<String> {
        match group {
            CostGroup::Cluster => i.tag(herd_core::tags::CLUSTER).map(str::to_string),
            CostGroup::Launch => Some(i.launch_id.to_string()),
            CostGroup::InstanceType => Some(i.instance_type.clone()),
            _ => None,
        }
    };
    if !matches!(group, CostGroup::Cluster | CostGroup::Launch | CostGroup::InstanceType) {
        return Ok(BTreeMap::new());
    }
    let mut out: BTreeMap<String, BTreeSet<Cloud>> = BTreeMap::new();
    for i in ctx.ledger()?.instances(&InstanceFilter {
        owner: Some(ctx.owner().to_string()),
        ..InstanceFilter::default()
    })? {
        if let Some(k) = key(&i) {
            out.entry(k).or_default().insert(i.cloud);
        }
    }
    Ok(out)
}

fn report_rows(
    ctx: &Context,
    a: &CostArgs,
    group: CostGroup,
    since: Option<DateTime<Utc>>,
    to: DateTime<Utc>,
    rows: &[Row],
) -> anyhow::Result<()> {
    let rows_only: Vec<&CostRow> = rows.iter().map(|r| r.row).collect();
    let rows_ref = &rows_only;
    let total = Total {
        instances: rows_ref.iter().map(|r| r.instances).sum(),
        live: rows_ref.iter().map(|r| r.live).sum(),
        accrued: rows_ref.iter().map(|r| r.accrued).sum(),
        projected: rows_ref.iter().map(|r| r.projected).sum(),
        hourly_now: rows_ref.iter().map(|r| r.hourly_now).sum(),
    };
    let catalog = ctx.launcher()?.catalog();
    let as_of = catalog.oldest_price(catalog.offers());
    if a.json {
        return ctx.printer.json(&Report {
            by: group.as_str(),
            since,
            to,
            rows,
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
    let with_cloud = !matches!(group, CostGroup::Cloud | CostGroup::Day);
    let mut headers = vec![header(group)];
    if with_cloud {
        headers.push("CLOUD");
    }
    headers.extend([">INSTANCES", ">LIVE", ">ACCRUED", ">PROJECTED", ">$/H NOW"]);
    let mut t = Table::new(&headers);
    for row in rows {
        let r = row.row;
        let mut cells: Vec<crate::printer::Cell> = vec![r.key.clone().into()];
        if with_cloud {
            let names: Vec<String> = row.clouds.iter().map(|c| c.to_string()).collect();
            cells.push(
                if names.is_empty() {
                    "-".to_string()
                } else {
                    names.join(",")
                }
                .into(),
            );
        }
        t.row(
            cells
                .into_iter()
                .chain([
                    r.instances.to_string().into(),
                    r.live.to_string().into(),
                    r.accrued.to_string().into(),
                    r.projected.to_string().into(),
                    r.hourly_now.to_string().into(),
                ])
                .collect(),
        );
    }
    let mut footer = vec![crate::printer::styled("total", Style::Bold)];
    if with_cloud {
        footer.push("".into());
    }
    t.footer(
        footer
            .into_iter()
            .chain([
                total.instances.to_string().into(),
                total.live.to_string().into(),
                total.accrued.to_string().into(),
                total.projected.to_string().into(),
                total.hourly_now.to_string().into(),
            ])
            .collect(),
    );
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

/// Asks every configured cloud (and every cloud the ledger still has live instances of)
/// about your live instances and about those the ledger still thinks are live, so
/// instances that ended while nobody watched get their end times recorded. Clouds that
/// fail are returned, not raised: the ledger's report still stands.
fn refresh(ctx: &Context, named: &[String]) -> anyhow::Result<Vec<clouds::Failure>> {
    let ledger = ctx.ledger()?;
    let stale: Vec<Instance> = ledger.instances(&InstanceFilter {
        owner: Some(ctx.owner().to_string()),
        live_only: true,
        ..InstanceFilter::default()
    })?;
    let mut wanted = ctx.clouds(named)?;
    if named.is_empty() {
        for i in &stale {
            if !wanted.contains(&i.cloud) {
                wanted.push(i.cloud);
            }
        }
    }
    let (launchers, mut failures) = clouds::launchers(ctx, &wanted);
    let stale = &stale;
    let (_, failed) = ctx.block_on(clouds::each(&launchers, |cloud, l: &Launcher| async move {
        let live: BTreeSet<String> = l.list_mine(false).await?.into_iter().map(|i| i.id).collect();
        let ended: Vec<String> = stale
            .iter()
            .filter(|i| i.cloud == cloud && !live.contains(&i.id))
            .map(|i| i.id.clone())
            .collect();
        if !ended.is_empty() {
            l.list(&ListRequest::new().ids(ended)).await?;
        }
        Ok(())
    }))?;
    failures.extend(failed);
    Ok(failures)
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
