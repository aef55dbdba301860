//! Money is a decimal amount with a currency, never an `f64`: a report months later must
//! add up to the cent.

use std::fmt;
use std::ops::{Add, AddAssign};

use rust_decimal::prelude::*;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The currencies cloud price lists use. All bundled prices are USD.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default, PartialOrd, Ord)]
#[serde(rename_all = "UPPERCASE")]
pub enum Currency {
    #[default]
    Usd,
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("USD")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default, PartialOrd, Ord)]
pub struct Money {
    pub amount: Decimal,
    pub currency: Currency,
}

impl Money {
    pub const ZERO: Money = Money {
        amount: Decimal::ZERO,
        currency: Currency::Usd,
    };

    pub fn usd(amount: Decimal) -> Self {
        Money {
            amount,
            currency: Currency::Usd,
        }
    }

    /// Parses a plain decimal string as USD (`"0.0416"`).
    pub fn parse_usd(s: &str) -> Result<Self> {
        let amount = Decimal::from_str_exact(s.trim().trim_start_matches('$'))
            .map_err(|e| Error::invalid_spec(format!("`{s}` is not an amount of money: {e}")))?;
        Ok(Money::usd(amount))
    }

    /// Micro-units (1e-6 of the currency), the integer form used in tags and labels.
    /// Saturates past i64 (9.2 trillion USD): no real price, but a typo in a budget
    /// must not panic (`Decimal * Decimal` does on overflow).
    pub fn to_micros(self) -> i64 {
        let limit = if self.amount.is_sign_negative() {
            i64::MIN
        } else {
            i64::MAX
        };
        self.amount
            .checked_mul(Decimal::from(1_000_000))
            .and_then(|m| m.round().to_i64())
            .unwrap_or(limit)
    }

    pub fn from_micros(micros: i64) -> Self {
        Money::usd(Decimal::new(micros, 6).normalize())
    }

    /// Scales by a dimensionless factor (instances, hours).
    pub fn times(self, factor: Decimal) -> Self {
        Money {
            amount: self.amount * factor,
            currency: self.currency,
        }
    }

    /// Price per hour times a number of seconds.
    pub fn per_hour_for_seconds(self, seconds: u64) -> Self {
        // Multiply before dividing so exact prices stay exact.
        Money {
            amount: self.amount * Decimal::from(seconds) / Decimal::from(3600),
            currency: self.currency,
        }
    }

    pub fn is_zero(self) -> bool {
        self.amount.is_zero()
    }

    /// Rounded to cents for display, keeping sub-cent amounts visible. The precision is
    /// chosen by the rounded value, so `0.99995` shows as `1.00` (not `1.0000`), and what
    /// is shown, parsed again, shows the same.
    pub fn display_amount(self) -> String {
        let a = self.amount;
        let (micro, basis) = (round(a, 6), round(a, 4));
        if micro.is_zero() {
            "0.00".to_string()
        } else if micro.abs() < Decimal::new(1, 2) {
            format!("{}", micro.normalize())
        } else if basis.abs() < Decimal::ONE {
            format!("{basis:.4}")
        } else {
            format!("{:.2}", round(a, 2))
        }
    }
}

/// Half away from zero, as people round money (rust_decimal defaults to banker's).
fn round(a: Decimal, dp: u32) -> Decimal {
    a.round_dp_with_strategy(dp, RoundingStrategy::MidpointAwayFromZero)
}

impl Add for Money {
    type Output = Money;
    fn add(self, rhs: Money) -> Money {
        debug_assert_eq!(self.currency, rhs.currency, "adding money of different currencies");
        Money {
            amount: self.amount + rhs.amount,
            currency: self.currency,
        }
    }
}

impl AddAssign for Money {
    fn add_assign(&mut self, rhs: Money) {
        *self = *self + rhs;
    }
}

impl std::iter::Sum for Money {
    fn sum<I: Iterator<Item = Money>>(iter: I) -> Money {
        iter.fold(Money::ZERO, |a, b| a + b)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.currency {
            Currency::Usd => write!(f, "${}", self.display_amount()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micros_round_trip() {
        let m = Money::parse_usd("0.0416").unwrap();
        assert_eq!(m.to_micros(), 41_600);
        assert_eq!(Money::from_micros(41_600), m);
    }

    #[test]
    fn display() {
        assert_eq!(Money::parse_usd("12.345").unwrap().to_string(), "$12.35");
        assert_eq!(Money::parse_usd("0.0416").unwrap().to_string(), "$0.0416");
        assert_eq!(Money::parse_usd("0.000012").unwrap().to_string(), "$0.000012");
        assert!(Money::parse_usd("abc").is_err());
    }

    #[test]
    fn per_hour_for_seconds() {
        let m = Money::parse_usd("3.60").unwrap();
        assert_eq!(m.per_hour_for_seconds(60).amount, Decimal::new(6, 2));
    }
}
