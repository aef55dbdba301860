//! Live spot prices (DescribeSpotPriceHistory). The catalog's spot prices are a
//! snapshot; this is what `herd cost` and `herd catalog refresh --cloud aws` ask for
//! when credentials allow. The Provider's `cost` stays catalog-only (no API call).

use std::str::FromStr;

use aws_sdk_ec2::types::InstanceType as Ec2Type;
use aws_sdk_ec2::Client;
use chrono::{DateTime, Utc};
use herd_core::{Error, Money, Result};
use rust_decimal::Decimal;

use crate::error::from_sdk;

/// One zone's current spot price for a type.
#[derive(Debug, Clone, PartialEq)]
pub struct SpotPrice {
    pub instance_type: String,
    pub region: String,
    pub zone: String,
    pub hourly: Money,
    pub as_of: DateTime<Utc>,
}

/// The latest Linux spot price per (type, zone) in `region` for `types` (all types when
/// empty), every page.
pub async fn current(client: &Client, region: &str, types: &[String], now: DateTime<Utc>) -> Result<Vec<SpotPrice>> {
    let mut out: Vec<SpotPrice> = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut call = client
            .describe_spot_price_history()
            .product_descriptions("Linux/UNIX")
            .start_time(aws_smithy_types::DateTime::from_secs(now.timestamp()))
            .set_next_token(token.take());
        for t in types {
            call = call.instance_types(Ec2Type::from(t.as_str()));
        }
        let r = call.send().await.map_err(from_sdk)?;
        for h in r.spot_price_history() {
            let (Some(t), Some(z), Some(p)) = (h.instance_type(), h.availability_zone(), h.spot_price()) else {
                continue;
            };
            let Ok(amount) = Decimal::from_str(p) else { continue };
            let at = h
                .timestamp()
                .and_then(|t| DateTime::from_timestamp(t.secs(), 0))
                .unwrap_or(now);
            let price = SpotPrice {
                instance_type: t.as_str().to_string(),
                region: region.to_string(),
                zone: z.to_string(),
                hourly: Money::usd(amount),
                as_of: at,
            };
            match out
                .iter_mut()
                .find(|o| o.instance_type == price.instance_type && o.zone == price.zone)
            {
                Some(o) if o.as_of < price.as_of => *o = price,
                Some(_) => {}
                None => out.push(price),
            }
        }
        match r.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => break,
        }
    }
    Ok(out)
}

/// The cheapest zone's current price for one type: what a spot launch there pays.
pub fn cheapest(prices: &[SpotPrice], instance_type: &str) -> Result<SpotPrice> {
    prices
        .iter()
        .filter(|p| p.instance_type == instance_type)
        .min_by(|a, b| a.hourly.amount.cmp(&b.hourly.amount))
        .cloned()
        .ok_or_else(|| Error::not_found(format!("EC2 reports no spot price for {instance_type}")))
}
