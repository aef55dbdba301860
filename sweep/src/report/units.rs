//! How the report writes numbers: one set of functions for the terminal table, the HTML
//! page and the charts, so a value reads the same everywhere (same unit, same rounding).

use rust_decimal::prelude::ToPrimitive;

use herd_core::Money;

use crate::spec::{Better, MetricSource, MetricSpec};

/// Three significant digits, no exponent: `904846` -> `905000`, `0.000829` -> `0.000829`.
pub fn num(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return if v.is_finite() { "0".into() } else { format!("{v}") };
    }
    let mag = v.abs().log10().floor() as i32;
    let decimals = (2 - mag).max(0) as usize;
    let s = format!("{v:.decimals$}");
    // Rounding can carry into a new digit (999.6 -> "1000"); keep three digits.
    let rounded: f64 = s.parse().unwrap_or(v);
    if rounded != 0.0 && (rounded.abs().log10().floor() as i32) > mag {
        let decimals = (1 - mag).max(0) as usize;
        return format!("{rounded:.decimals$}");
    }
    s
}

/// Three significant digits with a k / M / G suffix past a thousand: `904846` -> `905 k`.
pub fn si(v: f64) -> String {
    let (mut div, mut suffix) = suffix_for(v.abs());
    let mut scaled = num(v / div);
    // `999.6 k` rounds to `1000 k`: one suffix up instead.
    if div < 1e9 && scaled.parse::<f64>().is_ok_and(|r| r.abs() >= 1000.0) {
        div *= 1000.0;
        suffix = next_suffix(suffix);
        scaled = num(v / div);
    }
    if suffix.is_empty() {
        scaled
    } else {
        format!("{scaled} {suffix}")
    }
}

fn next_suffix(s: &str) -> &'static str {
    match s {
        "" => "k",
        "k" => "M",
        _ => "G",
    }
}

/// The divisor and suffix for a magnitude.
pub fn suffix_for(abs: f64) -> (f64, &'static str) {
    if abs >= 1e9 {
        (1e9, "G")
    } else if abs >= 1e6 {
        (1e6, "M")
    } else if abs >= 1e3 {
        (1e3, "k")
    } else {
        (1.0, "")
    }
}

/// Seconds: `12.3 s`.
pub fn secs(v: f64) -> String {
    format!("{} s", num(v))
}

/// Dollars with three significant digits (sub-cent amounts stay visible): `$0.000829`.
pub fn usd(m: Money) -> String {
    usd_f(m.amount.to_f64().unwrap_or(0.0))
}

pub fn usd_f(v: f64) -> String {
    if v.abs() >= 1000.0 {
        format!("${v:.0}")
    } else {
        format!("${}", num(v))
    }
}

/// What one unit of work is, for "<unit> per $": a rate's unit without its "/s" (`MB/s`
/// -> `MB`); `runs` when the metric is a time (lower is better, or the wall time).
pub fn work_unit(m: &MetricSpec) -> String {
    if m.source == MetricSource::WallTime || m.better == Better::Lower {
        return "runs".into();
    }
    let u = m.unit.trim();
    for per in ["/s", "/sec", "/second", " per second"] {
        if let Some(base) = u.strip_suffix(per) {
            let base = base.trim();
            // A bare `/s` (the default unit of a rate): units of work.
            return if base.is_empty() {
                "units".into()
            } else {
                base.to_string()
            };
        }
    }
    if u.is_empty() {
        "units".into()
    } else {
        format!("{u}·s")
    }
}

/// Work per dollar with its unit: `905 k MB per $`.
pub fn work_per_dollar(v: f64, m: &MetricSpec) -> String {
    format!("{} {} per $", si(v), work_unit(m))
}

/// A metric value with its unit: `20.0 k MB/s`.
pub fn metric(v: f64, m: &MetricSpec) -> String {
    if m.unit.is_empty() {
        si(v)
    } else {
        format!("{} {}", si(v), m.unit)
    }
}

/// Round axis steps: the smallest of 1, 2, 2.5 and 5 x 10^k that splits `[lo, hi]`
/// into at most `max_ticks` intervals. Returns the step and the ticks, which are integer
/// multiples of it covering `[lo, hi]`.
pub fn nice_ticks(lo: f64, hi: f64, max_ticks: usize) -> (f64, Vec<f64>) {
    let (lo, hi) = if hi > lo {
        (lo, hi)
    } else {
        let d = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        ((lo - d).max(if lo >= 0.0 { 0.0 } else { f64::MIN }), hi + d)
    };
    let raw = (hi - lo) / max_ticks.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw * (1.0 - 1e-9))
        .unwrap_or(10.0 * mag);
    let first = (lo / step + 1e-9).floor() as i64;
    let last = (hi / step - 1e-9).ceil() as i64;
    let ticks = (first..=last.max(first + 1)).map(|k| k as f64 * step).collect();
    (step, ticks)
}

/// A tick label: exactly as many decimals as the step needs, divided by `div` (the
/// suffix's divisor, 1 for none).
pub fn tick(v: f64, step: f64, div: f64) -> String {
    let (v, step) = (v / div, step / div);
    let mut d = 0usize;
    while d < 12 {
        let scaled = step * 10f64.powi(d as i32);
        if (scaled - scaled.round()).abs() < 1e-6 * scaled.abs().max(1.0) {
            break;
        }
        d += 1;
    }
    let s = format!("{v:.d$}");
    if s.trim_start_matches('-').chars().all(|c| c == '0' || c == '.') {
        "0".into()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_digits_and_suffixes() {
        assert_eq!(num(904_846.0), "904846");
        assert_eq!(si(904_846.0), "905 k");
        assert_eq!(si(999_600.0), "1.00 M");
        assert_eq!(si(1_234_567.0), "1.23 M");
        assert_eq!(si(12.34), "12.3");
        assert_eq!(num(0.000_829_4), "0.000829");
        assert_eq!(num(999.6), "1000");
        assert_eq!(usd_f(0.000_411_2), "$0.000411");
        assert_eq!(secs(65.43), "65.4 s");
    }

    #[test]
    fn ticks_are_round() {
        let (step, t) = nice_ticks(0.0000829, 0.000411, 6);
        assert!((step - 0.0001).abs() < 1e-15, "{step}");
        assert!(t[0] <= 0.0000829 && *t.last().unwrap() >= 0.000411);
        assert_eq!(tick(t[1], step, 1.0), "0.0001");
        assert_eq!(tick(0.00025, 0.00025, 1.0), "0.00025");
        let (step, _) = nice_ticks(0.0, 904_846.0, 5);
        assert_eq!(step, 200_000.0);
        assert_eq!(tick(400_000.0, step, 1e3), "400");
        let (step, _) = nice_ticks(3.0, 3.0, 5);
        assert!(step > 0.0);
        assert_eq!(nice_ticks(0.0, 10.0, 4).0, 2.5);
    }

    #[test]
    fn work_units() {
        let m = |unit: &str, better| MetricSpec {
            name: "x".into(),
            unit: unit.into(),
            source: MetricSource::Regex("(.*)".into()),
            better,
        };
        assert_eq!(work_unit(&m("MB/s", Better::Higher)), "MB");
        assert_eq!(work_unit(&m("s", Better::Lower)), "runs");
        assert_eq!(work_unit(&m("/s", Better::Higher)), "units");
        assert_eq!(work_per_dollar(904_846.0, &m("MB/s", Better::Higher)), "905 k MB per $");
    }
}
