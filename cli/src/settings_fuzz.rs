//! Fuzz targets for the settings step ([`Settings::load_from`]), which reads what people
//! write by hand: a `--config` file, `HERD_*` variables and flags. Whatever they hold,
//! loading answers with settings or a `herd_core::Error` (a config or spec error that
//! says where the bad value came from), never a panic; what it accepts, the launch path
//! can use without panicking either (guardrails, deadline, retry policy).
//!
//! Deterministic: seed [`SEED`], [`CASES`] cases per target (each case writes one small
//! file in a temp dir; a few seconds in debug). A deeper run:
//! `HERD_FUZZ_CASES=20000 HERD_FUZZ_SEED=7 cargo test -p herd-cli --bin herd settings_fuzz`.

use std::collections::HashMap;
use std::path::Path;

use herd_core::ErrorKind;
use proptest::prelude::*;
use proptest::test_runner::RngSeed;

use crate::settings::{Env, Overrides, Settings};

const SEED: u64 = 0x636f_6e66_6967; // "config"
const CASES: u32 = 600;

fn config() -> ProptestConfig {
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
    ProptestConfig {
        cases: env("HERD_FUZZ_CASES").map_or(CASES, |n| n as u32),
        rng_seed: RngSeed::Fixed(env("HERD_FUZZ_SEED").unwrap_or(SEED)),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

struct MapEnv(HashMap<String, String>);

impl Env for MapEnv {
    fn var(&self, name: &str) -> Option<String> {
        self.0.get(name).filter(|v| !v.is_empty()).cloned()
    }
}

/// A home of its own (no user config is read from the real one), plus `vars`.
fn env_in(home: &Path, vars: &[(String, String)]) -> MapEnv {
    let mut m: HashMap<String, String> = [
        ("HOME", home.display().to_string()),
        ("XDG_CONFIG_HOME", home.join("cfg").display().to_string()),
        ("XDG_DATA_HOME", home.join("data").display().to_string()),
        ("USER", "fuzz".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    m.extend(vars.iter().cloned());
    MapEnv(m)
}

/// Loads with `text` as the `--config` file; checks the answer either way.
fn check(text: &str, vars: &[(String, String)], flags: Overrides) -> Result<(), TestCaseError> {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("fuzz.toml");
    std::fs::write(&file, text).unwrap();
    let env = env_in(tmp.path(), vars);
    let flags = Overrides {
        config: Some(file.clone()),
        ..flags
    };
    match Settings::load_from(&flags, &env, tmp.path()) {
        Ok(s) => {
            // What the launch path does with accepted settings must not panic either.
            let g = s.guardrails();
            // The deadline a launch computes, up to the largest one allowed (a huge
            // `max_deadline` once made this overflow and exit 101).
            let now = chrono::Utc::now();
            for asked in [None, Some(s.deadline), Some(s.max_deadline)] {
                if let Ok(d) = g.resolve_deadline(asked) {
                    let _ = g.deadline_at(now, d);
                }
            }
            let _ = g.check_count(1);
            let _ = g.check_budget(herd_core::Money::parse_usd("0.01").unwrap(), herd_core::Money::ZERO);
            let _ = s.retry_policy();
            prop_assert!(!s.owner.is_empty());
            prop_assert!(s.owner == herd_core::tags::sanitize_value(&s.owner));
        }
        Err(e) => {
            prop_assert!(
                matches!(e.kind(), ErrorKind::ConfigInvalid | ErrorKind::InvalidSpec),
                "kind {:?}: {}",
                e.kind(),
                e
            );
            prop_assert!(!e.message().is_empty());
            let msg = e.message();
            // A parse error says which file and where in it.
            if msg.starts_with("invalid config") {
                let at = format!("{}:", file.display());
                prop_assert!(msg.contains(&at), "names the file and line: {}", msg);
            }
        }
    }
    Ok(())
}

fn lit(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// A value for `key`: mostly of the kind the key takes (a duration, an amount, a count,
/// a name), sometimes of another kind, now and then anything at all.
fn value(key: &str) -> BoxedStrategy<String> {
    let kind: BoxedStrategy<String> = match key {
        "deadline" | "keepalive" | "max_deadline" | "patience" | "spot_interruption_mean" | "spot_notice" => {
            prop_oneof![
                "[0-9]{1,4}[dhms]".prop_map(|s| lit(&s)),
                // Past what a date can hold: the deadline must refuse, not overflow.
                "[1-9][0-9]{8,14}[dhm]".prop_map(|s| lit(&s)),
                "([0-9]{1,3}[dhms]){1,3}".prop_map(|s| lit(&s)),
                "[1-9][0-9]{0,11}",
                prop::sample::select(vec![
                    "\"99999999999999999999d\"",
                    "\"1h1h\"",
                    "\"0s\"",
                    "18446744073709551615"
                ])
                .prop_map(String::from),
            ]
            .boxed()
        }
        "boot_delay" => prop_oneof![
            Just(lit("2s")),
            "\\[\"[0-9]{1,3}s\", \"[0-9]{1,3}s\"\\]",
            Just("[\"3s\"]".to_string()),
        ]
        .boxed(),
        "per_launch" | "per_day" => prop_oneof![
            "\\$?[0-9]{1,6}(\\.[0-9]{1,3})?".prop_map(|s| lit(&s)),
            "[1-9][0-9]{0,11}",
            prop::sample::select(vec!["\"$-1\"", "\"79228162514264337593543950335\"", "\"1e3\""])
                .prop_map(String::from),
        ]
        .boxed(),
        "max_count" | "seed" | "vcpu_quota" | "max_price_age_days" => "-?[1-9][0-9]{0,11}".boxed(),
        "transient_error_rate" | "orphan_volume_rate" => prop_oneof![
            (0.0f64..1.0).prop_map(|f| format!("{f:?}")),
            Just("1.5".into()),
            Just("-0.1".into()),
            Just("nan".into())
        ]
        .boxed(),
        "processes" | "throttle" => prop_oneof![Just("true".to_string()), Just("false".to_string())].boxed(),
        "capacity" => "\\{ \"[a-z0-9-]{1,12}\" = [0-9]{1,10} \\}".boxed(),
        "regions" => prop::collection::vec("[a-z0-9*-]{0,12}", 0..3)
            .prop_map(|v| format!("[{}]", v.iter().map(|r| lit(r)).collect::<Vec<_>>().join(", ")))
            .boxed(),
        "cloud" => prop::sample::select(vec!["local", "aws", "gcp", "azure", "mars", ""])
            .prop_map(lit)
            .boxed(),
        _ => "[a-zA-Z0-9_./:@-]{0,16}".prop_map(|s| lit(&s)).boxed(),
    };
    prop_oneof![
        12 => kind,
        1 => "[0-9]{1,25}[dhms]?".prop_map(|s| lit(&s)),
        1 => "-?[1-9][0-9]{0,21}",
        1 => any::<String>().prop_map(|s| lit(&s)),
        1 => prop::sample::select(vec!["true", "[]", "{}", "1.5", "-0.0", "inf"]).prop_map(String::from),
    ]
    .boxed()
}

/// Configs in the file's shape: known sections and keys, values right or wrong.
fn config_like() -> impl Strategy<Value = String> {
    const TOP: &[&str] = &[
        "owner",
        "cloud",
        "region",
        "ledger",
        "deadline",
        "keepalive",
        "max_count",
        "max_deadline",
    ];
    const SECTIONS: &[(&str, &[&str])] = &[
        ("budget", &["per_launch", "per_day"]),
        ("simulator", &["state_dir", "seed", "processes"]),
        (
            "simulator.faults",
            &[
                "boot_delay",
                "capacity",
                "transient_error_rate",
                "throttle",
                "spot_interruption_mean",
                "spot_notice",
                "vcpu_quota",
                "orphan_volume_rate",
            ],
        ),
        (
            "catalog",
            &[
                "overlay_dir",
                "max_price_age_days",
                "aws_pricing_url",
                "azure_prices_url",
                "gcp_billing_url",
            ],
        ),
        (
            "aws",
            &[
                "profile",
                "region",
                "endpoint",
                "ssh_cidr",
                "image_x86_64",
                "image_arm64",
                "key_dir",
                "regions",
            ],
        ),
        ("retry", &["patience"]),
    ];
    // Each key at most once (a duplicate is only ever TOML's error), in any order.
    let lines = |keys: &'static [&'static str]| {
        prop::sample::subsequence(keys, 0..=keys.len().min(5))
            .prop_flat_map(|ks| {
                ks.into_iter()
                    .map(|k| value(k).prop_map(move |v| format!("{k} = {v}")))
                    .collect::<Vec<_>>()
            })
            .prop_shuffle()
            .prop_map(|l| l.join("\n"))
    };
    let sections = prop::sample::subsequence(SECTIONS, 0..=SECTIONS.len()).prop_flat_map(move |secs| {
        secs.into_iter()
            .map(|(name, keys)| lines(keys).prop_map(move |body| format!("[{name}]\n{body}")))
            .collect::<Vec<_>>()
    });
    // Now and then a misspelt key, which must be named with a suggestion.
    let typo = prop::option::weighted(0.05, prop::sample::select(vec!["ownr = \"x\"", "deadlin = \"1h\""]));
    (lines(TOP), sections, typo)
        .prop_map(|(t, s, typo)| format!("{t}\n{}\n{}\n", typo.unwrap_or_default(), s.join("\n")))
}

fn env_vars() -> impl Strategy<Value = Vec<(String, String)>> {
    const VARS: &[&str] = &[
        "HERD_CLOUD",
        "HERD_REGION",
        "HERD_OWNER",
        "HERD_DEADLINE",
        "HERD_KEEPALIVE",
        "HERD_BUDGET_PER_LAUNCH",
        "HERD_BUDGET_PER_DAY",
        "HERD_MAX_PRICE_AGE_DAYS",
        "HERD_RETRY_PATIENCE",
        "HERD_AWS_REGIONS",
        "HERD_AWS_PROFILE",
        "HERD_AWS_ENDPOINT",
        "HERD_AWS_KEY_DIR",
        "HERD_SIM_DIR",
        "HERD_LEDGER",
    ];
    let val = prop_oneof![
        "[a-z0-9_.$,-]{0,12}",
        "[0-9]{1,25}[dhms]?",
        any::<String>().prop_map(|s| s.replace('\0', "")),
        Just("1h1h".to_string()),
        Just("-1".to_string()),
    ];
    prop::collection::vec((prop::sample::select(VARS).prop_map(String::from), val), 0..5)
}

fn flag() -> impl Strategy<Value = Option<String>> {
    prop::option::of(prop_oneof!["[a-z0-9.$-]{0,10}", "[0-9]{1,25}[dhms]", any::<String>(),])
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_config_text_never_panics(text in prop_oneof![
        any::<String>(),
        "[a-z_\\[\\]=\"'. 0-9\n#{},-]{0,200}",
        (1..300usize).prop_map(|n| "[".repeat(n)),
    ]) {
        check(&text, &[], Overrides::default())?;
    }

    #[test]
    fn config_like_files_never_panic(text in config_like()) {
        check(&text, &[], Overrides::default())?;
    }

    #[test]
    fn env_and_flags_never_panic(
        vars in env_vars(),
        cloud in flag(), region in flag(), deadline in flag(), keepalive in flag(), budget in flag(), profile in flag(),
    ) {
        let sections = profile
            .map(|value| vec![crate::settings::SectionFlag { flag: "--aws-profile", key: "aws.profile", value }])
            .unwrap_or_default();
        let flags = Overrides { cloud, region, deadline, keepalive, budget_per_launch: budget, sections, ..Overrides::default() };
        check("", &vars, flags)?;
    }
}
