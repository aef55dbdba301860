//! Fuzz targets for the sweep spec parser and the metric extractor, the two places a
//! sweep reads text it did not write (a hand-edited TOML file, a workload's stdout).
//! Whatever the input they answer with a value or a `herd_core::Error`, never a panic,
//! and every spec error says which file and which line it is about.
//!
//! Deterministic: seed [`SEED`], [`CASES`] cases per target (a few seconds in debug).
//! A deeper run: `HERD_FUZZ_CASES=50000 HERD_FUZZ_SEED=7 cargo test -p herd-sweep --test fuzz_spec`.

use std::time::Duration;

use herd_core::{Error, ErrorKind};
use herd_sweep::metric::Metric;
use herd_sweep::Spec;
use proptest::prelude::*;
use proptest::test_runner::RngSeed;

const SEED: u64 = 0x0073_7765_6570; // "sweep"
const CASES: u32 = 1500;
const LABEL: &str = "dir/sweep.toml";

fn config(cases: u32) -> ProptestConfig {
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
    ProptestConfig {
        cases: env("HERD_FUZZ_CASES").map_or(cases, |n| n as u32),
        rng_seed: RngSeed::Fixed(env("HERD_FUZZ_SEED").unwrap_or(SEED)),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

const VALID: &str = r#"name = "demo"
repetitions = 2
timeout = "5m"
budget = "1.00"

[workload]
run = "sh work.sh"
files = ["work.sh"]

[workload.metric]
regex = 'rate: ([0-9.]+)'
better = "higher"

[matrix]
types = ["l1.small", "l1.large"]
regions = ["local-east-1"]
markets = ["spot", "on-demand"]
"#;

/// Shipped files: any name reads as a few bytes, except `missing*`, which is an error.
fn parse(text: &str) -> herd_core::Result<Spec> {
    Spec::parse_with(text, LABEL, |f| {
        if f.starts_with("missing") {
            Err(Error::invalid_spec(format!(
                "sweep spec {LABEL}: cannot read shipped file {f}"
            )))
        } else {
            Ok(f.as_bytes().to_vec())
        }
    })
}

/// The line numbers an error message names as `LABEL:LINE` (or `LABEL:LINE:COL`).
fn lines_named(msg: &str) -> Vec<usize> {
    msg.match_indices(&format!("{LABEL}:"))
        .filter_map(|(i, m)| {
            let digits: String = msg[i + m.len()..].chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        })
        .collect()
}

/// What every answer of the parser must be: a spec that holds together, or an error that
/// names the file, and a line of it that exists.
fn check(text: &str) -> Result<(), TestCaseError> {
    match parse(text) {
        Ok(spec) => {
            prop_assert!(!spec.name.is_empty() && spec.name.len() <= 40);
            prop_assert!(spec.repetitions >= 1 && spec.concurrency >= 1);
            prop_assert!(!spec.timeout.is_zero());
            prop_assert!(!spec.budget.amount.is_sign_negative());
            prop_assert!(!spec.matrix.types.is_empty() || !spec.matrix.families.is_empty());
            prop_assert!(!spec.matrix.markets.is_empty());
            prop_assert!(spec.sweep_id().starts_with(&spec.name));
            prop_assert!(Metric::new(&spec.workload.metric).is_ok(), "a parsed metric compiles");
        }
        Err(e) => {
            prop_assert!(matches!(e.kind(), ErrorKind::InvalidSpec), "kind {:?}: {}", e.kind(), e);
            let msg = e.message();
            prop_assert!(msg.contains(LABEL), "names the file: {}", msg);
            if !msg.contains("cannot read shipped file") {
                let named = lines_named(msg);
                let last = text.lines().count().max(1) + 1;
                prop_assert!(!named.is_empty(), "names a line: {}\n---\n{}", msg, text);
                prop_assert!(
                    named.iter().all(|&l| l >= 1 && l <= last),
                    "a line that exists: {}",
                    msg
                );
            }
        }
    }
    Ok(())
}

/// A TOML literal for `s`, whatever it holds.
fn lit(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn string_value() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-z0-9_.*-]{0,12}".prop_map(|s| lit(&s)),
        1 => any::<String>().prop_map(|s| lit(&s)),
        1 => "[0-9]{0,25}[dhms]?".prop_map(|s| lit(&s)),
        1 => "-?[0-9]{1,30}(\\.[0-9]{0,30})?".prop_map(|s| s),
        1 => prop_oneof![Just("true".to_string()), Just("[]".into()), Just("{}".into()), Just("1e400".into()), Just("nan".into())],
    ]
}

fn list_value() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::collection::vec(string_value(), 0..4).prop_map(|v| format!("[{}]", v.join(", "))),
        1 => string_value(),
    ]
}

fn file_list() -> impl Strategy<Value = String> {
    let name = prop_oneof![
        10 => "[a-z]{1,8}(\\.sh)?",
        5 => "([a-z]{1,4}/){1,3}[a-z]{1,4}",
        1 => Just("../escape.sh".to_string()),
        1 => Just("/etc/passwd".to_string()),
        1 => Just("./x//y".to_string()),
        1 => Just("missing.sh".to_string()),
        1 => Just(String::new()),
        1 => any::<String>(),
    ];
    prop::collection::vec(name, 0..4)
        .prop_map(|v| format!("[{}]", v.iter().map(|s| lit(s)).collect::<Vec<_>>().join(", ")))
}

fn regex_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("rate: ([0-9.]+)".to_string()),
        Just("(a)(b)".to_string()),
        Just("([0-9]+".to_string()),
        Just("(?:x)?([0-9]{1,1000}){1,1000}".to_string()),
        "[a-z()\\[\\]?*+{}0-9.|\\\\^$]{0,20}",
    ]
    .prop_map(|s| lit(&s))
}

/// `key = value` for each key the section has, shuffled; most values are of the right
/// type, many of them wrong in content.
fn section(entries: Vec<(&'static str, f64, BoxedStrategy<String>)>) -> impl Strategy<Value = String> {
    let lines: Vec<BoxedStrategy<Option<String>>> = entries
        .into_iter()
        .map(|(k, p, v)| prop::option::weighted(p, v.prop_map(move |v| format!("{k} = {v}"))).boxed())
        .collect();
    lines
        .prop_flat_map(|l| Just(l.into_iter().flatten().collect::<Vec<_>>()).prop_shuffle())
        .prop_map(|l| l.join("\n"))
}

/// Mostly one of `valid`, sometimes one of `wrong`, now and then anything.
fn str_of(valid: &'static [&'static str], wrong: &'static [&'static str]) -> BoxedStrategy<String> {
    prop_oneof![
        30 => prop::sample::select(valid).prop_map(lit),
        3 => prop::sample::select(if wrong.is_empty() { valid } else { wrong }).prop_map(lit),
        1 => "[a-zA-Z0-9_. *-]{0,12}".prop_map(|s| lit(&s)),
        1 => string_value(),
    ]
    .boxed()
}

fn number() -> BoxedStrategy<String> {
    prop_oneof![20 => (0u32..1100).prop_map(|n| n.to_string()), 1 => "-?[0-9]{1,22}", 1 => string_value()].boxed()
}

fn strings_of(valid: &'static [&'static str], wrong: &'static [&'static str]) -> BoxedStrategy<String> {
    prop_oneof![
        20 => prop::collection::vec(str_of(valid, wrong), 0..4).prop_map(|v| format!("[{}]", v.join(", "))),
        1 => list_value(),
    ]
    .boxed()
}

/// Specs that look right: the known sections and keys, each present or not, valid or
/// not, shuffled within their section, with now and then a misspelt key.
fn spec_like() -> impl Strategy<Value = String> {
    let top = section(vec![
        (
            "name",
            0.95,
            str_of(
                &["demo", "my-sweep", "x_1"],
                &["Demo", "", "a-very-long-name-that-is-more-than-forty-chars", "日本"],
            ),
        ),
        ("repetitions", 0.5, number()),
        ("concurrency", 0.4, number()),
        ("max_interruptions", 0.3, number()),
        (
            "timeout",
            0.6,
            str_of(
                &["5m", "1h30m", "2d", "90"],
                &["0s", "30m1h", "99999999999999999999d", "1h1h", "5 m"],
            ),
        ),
        (
            "budget",
            0.9,
            prop_oneof![
                6 => str_of(&["1.00", "$2", "0", "12.5"], &["-1", "1e3", "79228162514264337593543950335", "1,00"]),
                1 => number(),
                1 => Just("1.5".to_string()),
                1 => Just("-0.5".to_string()),
            ]
            .boxed(),
        ),
        ("repetiton", 0.05, number()),
    ]);
    let workload = section(vec![
        ("run", 0.95, str_of(&["sh work.sh", "./x"], &["", "  "])),
        ("setup", 0.3, str_of(&["apt-get install -y zstd", ""], &[])),
        ("virtual_work", 0.2, str_of(&["10s", "0"], &["1x", "-1s"])),
        ("files", 0.6, file_list().boxed()),
        (
            "env",
            0.2,
            prop_oneof![5 => Just("{ A = \"1\" }".to_string()), 1 => Just("{ b = 2 }".into())].boxed(),
        ),
        ("fiels", 0.05, list_value().boxed()),
    ]);
    let metric = section(vec![
        ("regex", 0.5, regex_value().boxed()),
        ("json", 0.3, str_of(&["mbps"], &[""])),
        ("name", 0.3, str_of(&["rate"], &[""])),
        ("unit", 0.3, str_of(&["MB/s"], &[])),
        ("better", 0.6, str_of(&["higher", "lower"], &["HIGHER", "best"])),
    ]);
    let matrix = section(vec![
        (
            "types",
            0.7,
            strings_of(&["l1.small", "l1.large", "l1.*"], &["m5.large", ""]),
        ),
        ("families", 0.3, strings_of(&["l1", "c1"], &["zz"])),
        ("sizes", 0.3, strings_of(&["small", "large"], &[])),
        ("regions", 0.5, strings_of(&["local-east-1", "local-*"], &["us-east-1"])),
        ("clouds", 0.3, strings_of(&["local", "aws", "gcp", "azure"], &["mars"])),
        (
            "markets",
            0.4,
            strings_of(&["spot", "on-demand", "spot-or-on-demand"], &["cheap"]),
        ),
        ("arch", 0.2, str_of(&["arm64", "x86_64"], &[])),
        (
            "gpu",
            0.2,
            prop_oneof![
                Just("true".to_string()),
                Just("false".into()),
                Just("3".into()),
                str_of(&["a100"], &[])
            ]
            .boxed(),
        ),
        ("typse", 0.05, list_value().boxed()),
    ]);
    (
        top,
        workload,
        prop::bool::weighted(0.5),
        metric,
        prop::bool::weighted(0.9),
        matrix,
        any::<u8>(),
    )
        .prop_map(|(top, workload, with_metric, metric, with_matrix, matrix, blank)| {
            let gap = "\n".repeat(usize::from(blank % 3) + 1);
            let mut s = format!("{top}{gap}[workload]\n{workload}");
            if with_metric {
                s.push_str(&format!("{gap}[workload.metric]\n{metric}"));
            }
            if with_matrix {
                s.push_str(&format!("{gap}[matrix]\n{matrix}"));
            }
            s.push('\n');
            s
        })
}

/// A valid spec with a few characters inserted, deleted or replaced (at char boundaries).
fn mutated() -> impl Strategy<Value = String> {
    let edit = (
        any::<prop::sample::Index>(),
        0u8..3,
        any::<char>(),
        prop::sample::select(vec![
            '"', '\'', '[', ']', '=', '\n', '#', '{', '}', ',', '.', '\\', ' ', '0',
        ]),
    );
    prop::collection::vec(edit, 1..6).prop_map(|edits| {
        let mut chars: Vec<char> = VALID.chars().collect();
        for (at, op, c, toml_char) in edits {
            let c = if u32::from(c) % 3 == 0 { c } else { toml_char };
            let i = at.index(chars.len() + 1);
            match op {
                0 => chars.insert(i, c),
                1 if i < chars.len() => {
                    chars.remove(i);
                }
                _ if i < chars.len() => chars[i] = c,
                _ => chars.push(c),
            }
        }
        chars.into_iter().collect()
    })
}

/// Text with TOML's punctuation, but no particular shape.
fn toml_ish() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z_\\[\\]=\"'. 0-9\n#{},\\\\-]{0,300}",
        any::<String>(),
        Just(String::new()),
        (0..20000usize).prop_map(|n| format!("name = \"{}\"", "é".repeat(n))),
        (1..500usize).prop_map(|n| "[".repeat(n)),
        (1..500usize).prop_map(|n| format!("a = {}{}", "[".repeat(n), "]".repeat(n))),
    ]
}

proptest! {
    #![proptest_config(config(CASES))]

    #[test]
    fn toml_ish_text_never_panics(text in toml_ish()) {
        check(&text)?;
    }

    #[test]
    fn mutated_specs_never_panic(text in mutated()) {
        check(&text)?;
    }

    #[test]
    fn spec_like_text_never_panics(text in spec_like()) {
        check(&text)?;
    }

    #[test]
    fn metrics_from_any_output_never_panic(out in prop_oneof![
        any::<String>(),
        "(rate: [0-9.eE+-]{0,30}\n){0,5}",
        "(\\{\"mbps\": [0-9.eE+-]{0,30}\\}\n){0,5}",
        "\\{\"mbps\": \"(NaN|inf|-inf|1e999|[0-9]{400})\"\\}",
    ], wall in any::<u64>()) {
        let regex = parse(VALID).unwrap();
        let json = parse(&VALID.replace("regex = 'rate: ([0-9.]+)'", "json = 'mbps'")).unwrap();
        let wall_time = parse(&VALID.replace("[workload.metric]\nregex = 'rate: ([0-9.]+)'\nbetter = \"higher\"\n", "")).unwrap();
        for spec in [regex, json, wall_time] {
            let m = Metric::new(&spec.workload.metric).unwrap();
            match m.extract(&out, Duration::from_millis(wall)) {
                Ok(v) => prop_assert!(v.is_finite()),
                Err(e) => prop_assert_eq!(e.kind(), ErrorKind::InvalidSpec),
            }
        }
    }
}

#[test]
fn the_valid_spec_is_valid() {
    // The mutations start from a spec that parses: otherwise they test nothing.
    let s = parse(VALID).unwrap();
    assert_eq!(s.matrix.types.len(), 2);
}
