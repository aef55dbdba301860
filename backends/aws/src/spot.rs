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

/// `herd catalog refresh --cloud aws`'s source of spot prices: the cheapest zone's
/// current price per type, region by region. Call it outside an async runtime (the
/// refresh is blocking); each region gets a fresh client on its own small runtime.
#[cfg(feature = "catalog-refresh")]
#[derive(Debug, Clone)]
pub struct LiveSpotPrices {
    cfg: crate::AwsConfig,
}

#[cfg(feature = "catalog-refresh")]
impl LiveSpotPrices {
    pub fn new(cfg: crate::AwsConfig) -> Self {
        LiveSpotPrices { cfg }
    }
}

#[cfg(feature = "catalog-refresh")]
impl herd_catalog::refresh::SpotPrices for LiveSpotPrices {
    fn spot_prices(&self, region: &str) -> Result<Vec<(String, Decimal)>> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::unexpected(format!("cannot start a runtime for EC2 calls: {e}")))?;
        let cfg = self.cfg.clone().region(region);
        let prices = rt.block_on(async {
            let p = crate::AwsProvider::builder(cfg).build();
            p.spot_prices(region, &[]).await
        })?;
        Ok(cheapest_per_type(&prices))
    }
}

/// Each type's cheapest zone price, sorted by type.
pub fn cheapest_per_type(prices: &[SpotPrice]) -> Vec<(String, Decimal)> {
    let mut best: std::collections::BTreeMap<&str, Decimal> = std::collections::BTreeMap::new();
    for p in prices {
        let e = best.entry(p.instance_type.as_str()).or_insert(p.hourly.amount);
        if p.hourly.amount < *e {
            *e = p.hourly.amount;
        }
    }
    best.into_iter().map(|(t, d)| (t.to_string(), d)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn price(t: &str, zone: &str, p: &str) -> SpotPrice {
        SpotPrice {
            instance_type: t.into(),
            region: "us-east-1".into(),
            zone: zone.into(),
            hourly: Money::parse_usd(p).unwrap(),
            as_of: DateTime::from_timestamp(0, 0).unwrap(),
        }
    }

    #[test]
    fn cheapest_zone_wins() {
        let v = vec![
            price("m5.large", "a", "0.04"),
            price("m5.large", "b", "0.03"),
            price("c5.large", "a", "0.05"),
        ];
        assert_eq!(
            cheapest_per_type(&v),
            vec![
                ("c5.large".to_string(), Decimal::from_str("0.05").unwrap()),
                ("m5.large".to_string(), Decimal::from_str("0.03").unwrap())
            ]
        );
        assert_eq!(cheapest(&v, "m5.large").unwrap().zone, "b");
        assert!(cheapest(&v, "x1.large").is_err());
    }
}
