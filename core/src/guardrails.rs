//! The limits that keep a typo from becoming a bill: a deadline on every launch, an idle
//! timeout, sane counts, and budgets checked against a worst-case reservation.

use std::time::Duration;

use chrono::{DateTime, Datelike, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};
use crate::money::Money;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Budget {
    /// Most one launch may cost in the worst case.
    pub per_launch: Money,
    /// Most all launches of one owner started in one UTC day may commit.
    pub per_day: Money,
}

impl Default for Budget {
    /// Modest on purpose: $10 a launch, $50 a day. Raise them in config or by flag.
    fn default() -> Self {
        Budget {
            per_launch: Money::usd(rust_decimal::Decimal::from(10)),
            per_day: Money::usd(rust_decimal::Decimal::from(50)),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Guardrails {
    pub owner: String,
    pub budget: Budget,
    pub default_deadline: Duration,
    /// Longest deadline accepted; anything longer is almost certainly a typo.
    pub max_deadline: Duration,
    /// Shortest deadline accepted: below the billing minimum it only wastes money.
    pub min_deadline: Duration,
    pub default_keepalive: Option<Duration>,
    /// Most instances in one launch.
    pub max_count: u32,
}

impl Default for Guardrails {
    fn default() -> Self {
        Guardrails {
            owner: "herd".into(),
            budget: Budget::default(),
            default_deadline: Duration::from_secs(2 * 3600),
            max_deadline: Duration::from_secs(7 * 24 * 3600),
            min_deadline: Duration::from_secs(60),
            default_keepalive: Some(Duration::from_secs(20 * 60)),
            max_count: 10_000,
        }
    }
}

impl Guardrails {
    pub fn check_count(&self, count: u32) -> Result<()> {
        if count == 0 {
            return Err(Error::invalid_spec("count must be at least 1"));
        }
        if count > self.max_count {
            return Err(
                Error::invalid_spec(format!("count {count} is more than the limit of {}", self.max_count))
                    .with_hint("raise `max_count` in herd.toml if you really mean it"),
            );
        }
        Ok(())
    }

    pub fn resolve_deadline(&self, asked: Option<Duration>) -> Result<Duration> {
        let d = asked.unwrap_or(self.default_deadline);
        if d < self.min_deadline {
            return Err(Error::invalid_spec(format!(
                "deadline {} is shorter than {}",
                human(d),
                human(self.min_deadline)
            ))
            .with_hint("every instance is billed at least a minute; use a deadline of 1m or more"));
        }
        if d > self.max_deadline {
            return Err(Error::invalid_spec(format!(
                "deadline {} is longer than {}",
                human(d),
                human(self.max_deadline)
            ))
            .with_hint("raise `max_deadline` in herd.toml if instances really must live that long"));
        }
        Ok(d)
    }

    /// The instant a deadline of `d` from `now` falls on. Checked: a deadline past the
    /// last date the clock can hold (a huge `max_deadline` in herd.toml, then a huge
    /// `--deadline`) is refused with an error instead of overflowing.
    pub fn deadline_at(&self, now: DateTime<Utc>, d: Duration) -> Result<DateTime<Utc>> {
        chrono::Duration::from_std(d)
            .ok()
            .and_then(|d| now.checked_add_signed(d))
            // herd-deadline is unix seconds in a tag; keep it a sane, printable year.
            .filter(|t| t.year() <= 9999)
            .ok_or_else(|| {
                Error::invalid_spec(format!("deadline {} does not fit in a date", human(d))).with_hint(
                    "use a deadline of days, not millennia, and keep `max_deadline` in herd.toml modest (default 7d)",
                )
            })
    }

    /// `Some(ZERO)` turns the idle timeout off.
    pub fn resolve_keepalive(&self, asked: Option<Duration>) -> Option<Duration> {
        match asked {
            Some(d) if d.is_zero() => None,
            Some(d) => Some(d),
            None => self.default_keepalive,
        }
    }

    /// Refuses a launch whose worst case exceeds the per-launch budget, or would take
    /// the day's commitments past the per-day budget.
    pub fn check_budget(&self, worst_case: Money, committed_today: Money) -> Result<()> {
        if worst_case > self.budget.per_launch {
            return Err(Error::new(
                ErrorKind::BudgetExceeded,
                format!("worst case {worst_case} is over the per-launch budget of {}", self.budget.per_launch),
            )
            .with_hint("shorten --deadline, launch fewer or smaller instances, or raise it with --budget / `budget.per_launch` in herd.toml"));
        }
        check_daily_budget(self.budget.per_day, worst_case, committed_today)
    }
}

/// Refuses `worst_case` when, on top of `committed_today`, it would pass `per_day`. The
/// one place the daily rule and its message live: the plan's preview and the journal's
/// atomic reservation ([`crate::Journal::reserve`]) both call it.
pub fn check_daily_budget(per_day: Money, worst_case: Money, committed_today: Money) -> Result<()> {
    let total = committed_today + worst_case;
    if total > per_day {
        return Err(Error::new(
            ErrorKind::BudgetExceeded,
            format!(
                "worst case {worst_case} plus {committed_today} already committed today is over the daily budget of {per_day}"
            ),
        )
        .with_hint("terminate what you no longer need (`herd down`), or raise `budget.per_day` in herd.toml"));
    }
    Ok(())
}

/// `90s` -> `1m30s`, `7200s` -> `2h`, `9000s` -> `2h30m`, `400 days` -> `400d`.
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    let (days, h, m, sec) = (s / 86_400, (s % 86_400) / 3600, (s % 3600) / 60, s % 60);
    let mut out = String::new();
    if days > 0 {
        out += &format!("{days}d");
    }
    if h > 0 {
        out += &format!("{h}h");
    }
    if m > 0 {
        out += &format!("{m}m");
    }
    if sec > 0 || out.is_empty() {
        out += &format!("{sec}s");
    }
    out
}

/// Parses `90s`, `20m`, `2h`, `1h30m`, `1d`, or plain seconds. Units go from the
/// largest to the smallest, each at most once: `1h1h` or `30m1h` is a typo more often
/// than a sum, and a deadline is too costly to guess at.
pub fn parse_duration(s: &str) -> Result<Duration> {
    let t = s.trim();
    let bad = || {
        Error::invalid_spec(format!("`{s}` is not a duration"))
            .with_hint("write durations like 90s, 20m, 2h, 1h30m or 1d")
    };
    if t.is_empty() {
        return Err(bad());
    }
    if let Ok(n) = t.parse::<u64>() {
        return Ok(Duration::from_secs(n));
    }
    let mut total: u64 = 0;
    let mut num = String::new();
    // The last unit seen, in seconds: each next one must be strictly smaller.
    let mut last_unit = u64::MAX;
    for c in t.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: u64 = num.parse().map_err(|_| bad())?;
        num.clear();
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(bad()),
        };
        if unit >= last_unit {
            return Err(Error::invalid_spec(format!(
                "`{s}` is not a duration: `{c}` {}",
                if unit == last_unit {
                    "appears twice"
                } else {
                    "comes after a smaller unit"
                }
            ))
            .with_hint("write each unit once, largest first, like 1d2h30m"));
        }
        last_unit = unit;
        total = total
            .checked_add(n.checked_mul(unit).ok_or_else(bad)?)
            .ok_or_else(bad)?;
    }
    if !num.is_empty() {
        return Err(bad());
    }
    Ok(Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("45").unwrap(), Duration::from_secs(45));
        assert!(parse_duration("-5m").is_err());
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("5m3").is_err());
        for typo in ["1h1h", "30m1h", "1s1s", "2d3d"] {
            let e = parse_duration(typo).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidSpec, "{typo}");
            assert!(e.hint().unwrap().contains("once"), "{typo}: {e}");
        }
        assert_eq!(
            parse_duration("1d2h30m5s").unwrap(),
            Duration::from_secs(86_400 + 9000 + 5)
        );
        assert!(
            parse_duration(&"9".repeat(40)).is_err(),
            "too big is an error, not a wrap"
        );
        assert!(parse_duration("99999999999999999d").is_err());
        assert_eq!(human(Duration::from_secs(5400)), "1h30m");
        assert_eq!(human(Duration::from_secs(400 * 86_400)), "400d");
        assert_eq!(human(Duration::from_secs(86_400 + 60)), "1d1m");
    }

    #[test]
    fn absurd_inputs_refused() {
        let g = Guardrails::default();
        assert!(g.check_count(0).is_err());
        assert!(g.check_count(1_000_000).is_err());
        assert!(g.resolve_deadline(Some(Duration::from_secs(10))).is_err());
        assert!(g.resolve_deadline(Some(Duration::from_secs(400 * 86_400))).is_err());
        assert_eq!(g.resolve_deadline(None).unwrap(), Duration::from_secs(7200));
        assert_eq!(g.resolve_keepalive(Some(Duration::ZERO)), None);
    }

    #[test]
    fn deadlines_that_do_not_fit_a_date_are_errors_not_panics() {
        let g = Guardrails {
            max_deadline: Duration::MAX,
            ..Guardrails::default()
        };
        let now = DateTime::from_timestamp(1_767_225_600, 0).unwrap();
        for d in [
            Duration::MAX,
            Duration::from_secs(u64::MAX),
            Duration::from_secs(400_000 * 365 * 86_400),
        ] {
            let d = g.resolve_deadline(Some(d)).unwrap();
            let e = g.deadline_at(now, d).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidSpec);
            assert!(e.message().contains("does not fit"), "{e}");
            assert!(e.hint().unwrap().contains("max_deadline"));
        }
        let at = g.deadline_at(now, Duration::from_secs(3600)).unwrap();
        assert_eq!((at - now).num_seconds(), 3600);
        assert!(g.deadline_at(DateTime::<Utc>::MAX_UTC, Duration::from_secs(1)).is_err());
    }

    #[test]
    fn budget() {
        let g = Guardrails::default();
        let e = g
            .check_budget(Money::parse_usd("11").unwrap(), Money::ZERO)
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BudgetExceeded);
        assert!(g
            .check_budget(Money::parse_usd("9").unwrap(), Money::parse_usd("45").unwrap())
            .is_err());
        assert!(g
            .check_budget(Money::parse_usd("9").unwrap(), Money::parse_usd("40").unwrap())
            .is_ok());
    }
}
