//! How values are written to and read from columns. Instants are fixed-width RFC 3339
//! UTC text, so they compare correctly as text; money is exact decimal text.

use chrono::{DateTime, Utc};
use herd_core::Money;
use rusqlite::types::Type;
use rusqlite::Row;
use rust_decimal::Decimal;

pub(super) fn ts(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.9fZ").to_string()
}

pub(super) fn money(m: Money) -> String {
    m.amount.to_string()
}

/// A column error for a value that does not parse.
fn bad<E: std::error::Error + Send + Sync + 'static>(idx: usize) -> impl FnOnce(E) -> rusqlite::Error {
    move |e| rusqlite::Error::FromSqlConversionFailure(idx, Type::Text, Box::new(e))
}

pub(super) fn get_ts(row: &Row<'_>, idx: usize) -> rusqlite::Result<DateTime<Utc>> {
    let s: String = row.get(idx)?;
    DateTime::parse_from_rfc3339(&s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(bad(idx))
}

pub(super) fn get_opt_ts(row: &Row<'_>, idx: usize) -> rusqlite::Result<Option<DateTime<Utc>>> {
    match row.get::<_, Option<String>>(idx)? {
        None => Ok(None),
        Some(_) => get_ts(row, idx).map(Some),
    }
}

pub(super) fn get_money(row: &Row<'_>, idx: usize) -> rusqlite::Result<Money> {
    let s: String = row.get(idx)?;
    Decimal::from_str_exact(&s).map(Money::usd).map_err(bad(idx))
}

/// Any `FromStr` column whose error is a herd error (clouds, states, markets, ids).
pub(super) fn get_parsed<T>(row: &Row<'_>, idx: usize) -> rusqlite::Result<T>
where
    T: std::str::FromStr<Err = herd_core::Error>,
{
    let s: String = row.get(idx)?;
    s.parse().map_err(bad(idx))
}

pub(super) fn get_opt_parsed<T>(row: &Row<'_>, idx: usize) -> rusqlite::Result<Option<T>>
where
    T: std::str::FromStr<Err = herd_core::Error>,
{
    match row.get::<_, Option<String>>(idx)? {
        None => Ok(None),
        Some(_) => get_parsed(row, idx).map(Some),
    }
}

pub(super) fn get_json<T: serde::de::DeserializeOwned>(row: &Row<'_>, idx: usize) -> rusqlite::Result<T> {
    let s: String = row.get(idx)?;
    serde_json::from_str(&s).map_err(bad(idx))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_sort_as_text() {
        let a = DateTime::from_timestamp(1_000, 5).unwrap();
        let b = DateTime::from_timestamp(1_000, 500_000_000).unwrap();
        let c = DateTime::from_timestamp(20_000, 0).unwrap();
        assert!(ts(a) < ts(b) && ts(b) < ts(c));
        assert_eq!(ts(a).len(), ts(c).len());
    }
}
