//! Fuzz targets for the parsers every user string goes through first: durations, money,
//! tags, launch ids and the small enums. Whatever the input (unicode, huge numbers,
//! repeated units, empty), they answer with a value or a `herd_core::Error`, never a
//! panic; values that can be printed parse back to themselves.
//!
//! Deterministic: seed [`SEED`], [`CASES`] cases per target (about 1 s each in debug).
//! A deeper run: `HERD_FUZZ_CASES=200000 HERD_FUZZ_SEED=7 cargo test -p herd-core --test fuzz_parsing`.

use std::str::FromStr;
use std::time::Duration;

use herd_core::guardrails::{human, parse_duration};
use herd_core::tags::{sanitize_value, validate_user_tag};
use herd_core::{Cloud, ErrorKind, InstanceState, LaunchId, Market, Money, PurchaseOption};
use proptest::prelude::*;
use proptest::test_runner::RngSeed;
use rust_decimal::Decimal;

const SEED: u64 = 0x6865_7264; // "herd"
const CASES: u32 = 2000;

fn config() -> ProptestConfig {
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
    ProptestConfig {
        cases: env("HERD_FUZZ_CASES").map_or(CASES, |n| n as u32),
        rng_seed: RngSeed::Fixed(env("HERD_FUZZ_SEED").unwrap_or(SEED)),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Strings shaped like what people type, and what they should not.
fn texty() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[0-9dhms ]{0,24}",
        "([0-9]{1,30}[dhmsµxDH.,_-]?){0,8}",
        "[ \t]*[+-]?[0-9]{0,40}(\\.[0-9]{0,40})?[eE]?[+-]?[0-9]{0,4}[ \t]*",
        "\\$?[0-9,._ ]{0,30}",
        "[a-zA-Z0-9_ÄÖÜäöüßéİı\u{301}\u{200b}日本 -]{0,80}",
        Just(String::new()),
        (any::<char>(), 1..5000usize).prop_map(|(c, n)| c.to_string().repeat(n)),
    ]
}

fn label_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-'
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn durations_never_panic(s in texty()) {
        match parse_duration(&s) {
            Ok(d) => {
                // What was accepted prints and parses back to itself.
                prop_assert_eq!(parse_duration(&human(d)).unwrap(), d, "{:?} -> {}", s, human(d));
            }
            Err(e) => {
                prop_assert_eq!(e.kind(), ErrorKind::InvalidSpec);
                prop_assert!(e.hint().is_some(), "{:?}: {}", s, e);
            }
        }
    }

    #[test]
    fn durations_round_trip(secs in any::<u64>()) {
        let d = Duration::from_secs(secs);
        let shown = human(d);
        prop_assert_eq!(parse_duration(&shown).unwrap(), d, "{}", shown);
        prop_assert_eq!(parse_duration(&secs.to_string()).unwrap(), d);
    }

    #[test]
    fn one_unit_twice_is_refused_not_summed(a in 1u64..1000, b in 1u64..1000, u in prop::sample::select(vec!['d', 'h', 'm', 's'])) {
        // `--deadline 1h1h` was 2h: a typo must not silently double a deadline.
        let e = parse_duration(&format!("{a}{u}{b}{u}")).unwrap_err();
        prop_assert_eq!(e.kind(), ErrorKind::InvalidSpec);
    }

    #[test]
    fn money_never_panics(s in prop_oneof![texty(), "-?0\\.0{4,9}[0-9]{1,3}", "-?[0-9]{0,3}\\.[0-9]{1,8}5"]) {
        match Money::parse_usd(&s) {
            Ok(m) => {
                // Everything herd does with a parsed amount: none of it may panic.
                let _ = m.to_micros();
                let shown = m.display_amount();
                let _ = m.to_string();
                // The exact amount parses back; for any plausible amount (a display near
                // Decimal's 28 digits has no room for its cents) the display is a fixed
                // point of itself.
                prop_assert_eq!(Money::parse_usd(&m.amount.to_string()).unwrap(), m);
                if m.amount.abs() < Decimal::from(10u64.pow(18)) {
                    let again = Money::parse_usd(&shown).unwrap().display_amount();
                    prop_assert_eq!(&again, &shown);
                    prop_assert_eq!(Money::parse_usd(&m.to_string()).unwrap().display_amount(), shown);
                }
            }
            Err(e) => prop_assert_eq!(e.kind(), ErrorKind::InvalidSpec),
        }
    }

    #[test]
    fn money_micros_round_trip(micros in any::<i64>()) {
        let m = Money::from_micros(micros);
        prop_assert_eq!(m.to_micros(), micros);
        prop_assert_eq!(Money::parse_usd(&m.amount.to_string()).unwrap(), m);
    }

    #[test]
    fn huge_amounts_saturate_micros(lo in any::<u64>(), mid in any::<u32>(), neg in any::<bool>(), scale in 0u32..=28) {
        // Anything a Decimal can hold, from a budget in herd.toml to a price list.
        let amount = Decimal::from_parts(lo as u32, (lo >> 32) as u32, mid, neg, scale);
        let m = Money::usd(amount);
        let micros = m.to_micros();
        if amount.abs() > Decimal::from(i64::MAX / 1_000_000) {
            prop_assert_eq!(micros, if neg { i64::MIN } else { i64::MAX }, "{} saturates", amount);
        }
        let _ = m.display_amount();
        prop_assert_eq!(Money::parse_usd(&amount.to_string()).unwrap(), m);
    }

    #[test]
    fn sanitized_values_are_valid_tags(s in texty()) {
        let v = sanitize_value(&s);
        prop_assert!(v.len() <= 63, "{:?} -> {:?}", s, v);
        prop_assert!(v.chars().all(label_char), "{:?} -> {:?}", s, v);
        prop_assert_eq!(sanitize_value(&v), v.clone(), "idempotent");
        prop_assert!(validate_user_tag("team", &v).is_ok(), "{:?} -> {:?}", s, v);
    }

    #[test]
    fn tag_validation_never_panics(k in texty(), v in texty()) {
        match validate_user_tag(&k, &v) {
            Ok(()) => {
                prop_assert!(!k.is_empty() && k.len() <= 63 && k.chars().all(label_char), "{:?}", k);
                prop_assert!(!herd_core::tags::RESERVED.contains(&k.as_str()));
                prop_assert!(!herd_core::tags::is_reserved(&k), "{:?}", k);
                prop_assert_eq!(sanitize_value(&v), v);
            }
            Err(e) => {
                prop_assert_eq!(e.kind(), ErrorKind::InvalidSpec);
                // The hint's suggestion, when there is one, is itself a valid value.
                if let Some(h) = e.hint() {
                    if let Some((_, rest)) = h.split_once("e.g. `") {
                        let suggested = rest.trim_end_matches('`');
                        prop_assert!(validate_user_tag("team", suggested).is_ok(), "hint {:?}", h);
                    }
                }
            }
        }
    }

    #[test]
    fn launch_ids_never_panic(s in prop_oneof![texty(), "[A-Za-z0-9-]{0,70}"], batch in any::<usize>()) {
        match LaunchId::new(s.clone()) {
            Ok(id) => {
                prop_assert!(!s.is_empty() && s.len() <= 64);
                prop_assert_eq!(id.as_str(), s.to_ascii_lowercase());
                prop_assert_eq!(LaunchId::new(id.to_string()).unwrap(), id.clone());
                // A batch id of any launch is itself a valid id.
                let b = id.batch(batch);
                prop_assert_eq!(LaunchId::new(b.as_str()).unwrap(), b);
            }
            Err(e) => {
                prop_assert_eq!(e.kind(), ErrorKind::InvalidSpec);
                prop_assert!(s.is_empty() || s.len() > 64 || !s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
            }
        }
    }

    #[test]
    fn generated_launch_ids_are_valid(ms in any::<i64>(), random in any::<u64>()) {
        let now = chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default();
        let id = LaunchId::generate(now, random);
        prop_assert_eq!(LaunchId::new(id.as_str()).unwrap(), id);
    }

    #[test]
    fn small_enums_never_panic(s in texty()) {
        match InstanceState::from_str(&s) {
            Ok(st) => prop_assert_eq!(st.as_str(), s.as_str()),
            Err(e) => prop_assert_eq!(e.kind(), ErrorKind::InvalidSpec),
        }
        if let Ok(c) = Cloud::from_str(&s) {
            prop_assert_eq!(Cloud::from_str(c.as_str()).unwrap(), c);
        }
        if let Ok(p) = PurchaseOption::from_str(&s) {
            prop_assert_eq!(PurchaseOption::from_str(p.as_str()).unwrap(), p);
        }
        if let Ok(m) = Market::from_str(&s) {
            prop_assert_eq!(Market::from_str(m.as_str()).unwrap(), m);
        }
    }
}

#[test]
fn every_state_round_trips() {
    for st in InstanceState::ALL {
        assert_eq!(InstanceState::from_str(&st.to_string()).unwrap(), st);
    }
}

/// The cases the targets above found, kept as plain regressions.
#[test]
fn found_by_fuzzing() {
    // `Decimal * Decimal` panicked ("Multiplication overflowed") in `to_micros`.
    let huge = Money::parse_usd("100000000000000000000000").unwrap();
    assert_eq!(huge.to_micros(), i64::MAX);
    assert_eq!(
        Money::parse_usd("-100000000000000000000000").unwrap().to_micros(),
        i64::MIN
    );
    // Shown as `$0` (not `$0.00`) and `$1.0000` (not `$1.00`): the display's precision
    // came from the amount before rounding.
    assert_eq!(Money::parse_usd("0.00000001").unwrap().to_string(), "$0.00");
    assert_eq!(Money::parse_usd("-0.0000001").unwrap().to_string(), "$0.00");
    assert_eq!(Money::parse_usd(".99995").unwrap().to_string(), "$1.00");
    assert_eq!(Money::parse_usd("0.00999999").unwrap().to_string(), "$0.0100");
}
