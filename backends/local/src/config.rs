//! The simulator's knobs: its section of herd's config files (`[simulator]`, with the
//! faults it injects under `[simulator.faults]`), owned here so the CLI registers it
//! instead of re-declaring it, and how it starts the per-VM supervisor.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use herd_core::guardrails::parse_duration;
use herd_core::{Error, Result};
use serde::{Deserialize, Deserializer};

/// `[simulator]` in herd's config files, and `HERD_SIM_DIR` ([`SimulatorSection::ENV`]).
/// Every key is optional; the CLI merges the layers (files, environment) and hands the
/// result to [`SimulatorSection::builder`]. Unknown keys are errors, here and in `faults`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulatorSection {
    /// Where the simulator keeps its state; unset: [`crate::default_state_dir`].
    pub state_dir: Option<PathBuf>,
    /// Seeds every random draw (boot delays, faults, ids); unset: from the clock.
    pub seed: Option<u64>,
    /// Real processes per VM (the default), or a control plane only.
    pub processes: Option<bool>,
    pub faults: Option<Faults>,
}

impl SimulatorSection {
    /// The table this backend owns in herd's config files.
    pub const NAME: &'static str = "simulator";
    /// Environment variable -> key of this section.
    pub const ENV: &'static [(&'static str, &'static str)] = &[("HERD_SIM_DIR", "state_dir")];
    /// Keys that hold paths: in a config file they are relative to that file.
    pub const PATHS: &'static [&'static str] = &["state_dir"];

    /// Where the state lives once defaults are applied.
    pub fn state_dir(&self) -> PathBuf {
        self.state_dir.clone().unwrap_or_else(crate::default_state_dir)
    }

    /// Checks what a builder would refuse late (fault probabilities, ranges), so a bad
    /// herd.toml fails every command, not only the ones that start the simulator.
    pub fn validate(&self) -> Result<()> {
        self.faults.as_ref().map_or(Ok(()), Faults::validate)
    }

    /// A provider builder with this section's settings and defaults (processes on, a
    /// well-behaved cloud). The caller adds what is not a setting: the agent, the owner.
    pub fn builder(self) -> Result<crate::LocalBuilder> {
        self.validate()?;
        let mut b = crate::LocalProvider::builder()
            .state_dir(self.state_dir())
            .processes(self.processes.unwrap_or(true))
            .faults(self.faults.unwrap_or_default());
        if let Some(seed) = self.seed {
            b = b.seed(seed);
        }
        Ok(b)
    }
}

/// The cloud's misbehaviour, all seeded. The default is a well-behaved cloud with the
/// usual boot delay and, with processes, a 64-vCPU quota.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Faults {
    /// Boot delay drawn uniformly in `[min, max]`. Default: 1-3 s with processes,
    /// 20-60 s virtual. In TOML: `"2s"` or `["1s", "3s"]`.
    #[serde(default, deserialize_with = "de_range")]
    pub boot_delay: Option<(Duration, Duration)>,
    /// Most live instances per zone; launches past it fail with `InsufficientCapacity`.
    #[serde(default)]
    pub capacity: BTreeMap<String, u32>,
    /// Probability that an API call fails with `Unavailable`: half of them before the
    /// effect, half after it was committed (a lost response).
    #[serde(default)]
    pub transient_error_rate: f64,
    /// EC2-sized API token buckets (`RateLimited`).
    #[serde(default)]
    pub throttle: bool,
    /// Spot instances are interrupted after an exponentially distributed time with this mean.
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub spot_interruption_mean: Option<Duration>,
    /// Warning before a spot interruption; default 2 minutes, like EC2.
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub spot_notice: Option<Duration>,
    /// `QuotaExceeded` past this many live vCPUs (default: 64 with processes, unlimited without).
    #[serde(default)]
    pub vcpu_quota: Option<u32>,
    /// Probability that terminate forgets the volume, leaving something for `reap`.
    #[serde(default)]
    pub orphan_volume_rate: f64,
}

impl Faults {
    /// EC2's two-minute interruption notice (docs.aws.amazon.com, "Spot Instance
    /// interruption notices").
    pub const DEFAULT_SPOT_NOTICE: Duration = Duration::from_secs(120);

    pub fn spot_notice(&self) -> Duration {
        self.spot_notice.unwrap_or(Self::DEFAULT_SPOT_NOTICE)
    }

    /// Checks probabilities and ranges, so a typo in herd.toml is an error, not a surprise.
    pub fn validate(&self) -> Result<()> {
        for (name, p) in [
            ("transient_error_rate", self.transient_error_rate),
            ("orphan_volume_rate", self.orphan_volume_rate),
        ] {
            if !(0.0..=1.0).contains(&p) || p.is_nan() {
                return Err(
                    Error::config(format!("simulator fault `{name}` = {p} is not a probability"))
                        .with_hint("use a number between 0 and 1"),
                );
            }
        }
        if let Some((lo, hi)) = self.boot_delay {
            if lo > hi {
                return Err(
                    Error::config("simulator `boot_delay` has its minimum above its maximum")
                        .with_hint("write it as [\"min\", \"max\"], e.g. [\"1s\", \"3s\"]"),
                );
            }
        }
        if self.spot_interruption_mean.is_some_and(|d| d.is_zero()) {
            return Err(Error::config("simulator `spot_interruption_mean` must be more than 0"));
        }
        Ok(())
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum DurationSpec {
    Secs(u64),
    Text(String),
}

impl DurationSpec {
    fn get<E: serde::de::Error>(self) -> std::result::Result<Duration, E> {
        match self {
            DurationSpec::Secs(s) => Ok(Duration::from_secs(s)),
            DurationSpec::Text(t) => parse_ms_or(&t).map_err(E::custom),
        }
    }
}

/// `parse_duration` plus milliseconds (`200ms`), which the simulator's tests need.
fn parse_ms_or(s: &str) -> std::result::Result<Duration, String> {
    if let Some(ms) = s.trim().strip_suffix("ms") {
        return ms
            .trim()
            .parse::<u64>()
            .map(Duration::from_millis)
            .map_err(|_| format!("`{s}` is not a duration"));
    }
    parse_duration(s).map_err(|e| e.message().to_string())
}

fn de_opt_duration<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<Duration>, D::Error> {
    Option::<DurationSpec>::deserialize(d)?
        .map(DurationSpec::get)
        .transpose()
}

fn de_range<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<(Duration, Duration)>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Range {
        One(DurationSpec),
        Two(DurationSpec, DurationSpec),
    }
    Ok(match Option::<Range>::deserialize(d)? {
        None => None,
        Some(Range::One(x)) => {
            let x = x.get()?;
            Some((x, x))
        }
        Some(Range::Two(a, b)) => Some((a.get()?, b.get()?)),
    })
}

/// How to start the per-VM supervisor (`herd-vm`, or `herd __vm-agent`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentCommand {
    pub program: PathBuf,
    pub args: Vec<String>,
}

impl AgentCommand {
    /// A program run as `<program> <args...> run <vm-dir>`.
    pub fn new(program: impl Into<PathBuf>) -> Self {
        AgentCommand {
            program: program.into(),
            args: Vec::new(),
        }
    }

    /// `$HERD_VM_AGENT`, else `herd-vm` beside the current executable, else in its parent
    /// dir (test binaries live in `target/<profile>/deps`).
    pub fn discover() -> Result<AgentCommand> {
        if let Some(p) = std::env::var_os("HERD_VM_AGENT").filter(|p| !p.is_empty()) {
            return Ok(AgentCommand::new(p));
        }
        let exe = std::env::current_exe()
            .map_err(|e| Error::config("cannot locate the current executable").with_source(e))?;
        let name = format!("herd-vm{}", std::env::consts::EXE_SUFFIX);
        let mut tried = Vec::new();
        for dir in exe.parent().into_iter().chain(exe.parent().and_then(|p| p.parent())) {
            let cand = dir.join(&name);
            if cand.is_file() {
                return Ok(AgentCommand::new(cand));
            }
            tried.push(cand.display().to_string());
        }
        Err(Error::config(format!(
            "cannot find the simulator's VM agent (looked at {})",
            tried.join(", ")
        ))
        .with_hint("build it with `cargo build -p herd-local --bin herd-vm`, or set HERD_VM_AGENT to its path"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_from_toml() {
        let f: Faults = toml::from_str(
            r#"
            boot_delay = ["200ms", "1s"]
            capacity = { "local-east-1a" = 2 }
            transient_error_rate = 0.1
            throttle = true
            spot_interruption_mean = "10m"
            spot_notice = 30
            "#,
        )
        .unwrap();
        assert_eq!(f.boot_delay, Some((Duration::from_millis(200), Duration::from_secs(1))));
        assert_eq!(f.capacity["local-east-1a"], 2);
        assert_eq!(f.spot_interruption_mean, Some(Duration::from_secs(600)));
        assert_eq!(f.spot_notice(), Duration::from_secs(30));
        f.validate().unwrap();
        let one: Faults = toml::from_str("boot_delay = \"2s\"").unwrap();
        assert_eq!(one.boot_delay, Some((Duration::from_secs(2), Duration::from_secs(2))));
    }

    #[test]
    fn section_from_toml_with_defaults() {
        let s: SimulatorSection =
            toml::from_str("state_dir = \"/tmp/x\"\nseed = 7\n[faults]\nthrottle = true\n").unwrap();
        assert_eq!(s.state_dir(), PathBuf::from("/tmp/x"));
        assert!(s.faults.as_ref().unwrap().throttle);
        s.builder().unwrap();
        let e = toml::from_str::<SimulatorSection>("stat_dir = \"x\"").unwrap_err();
        assert!(e.message().contains("unknown field `stat_dir`"), "{e}");
        let bad: SimulatorSection = toml::from_str("[faults]\norphan_volume_rate = 2.0\n").unwrap();
        assert_eq!(bad.validate().unwrap_err().kind(), herd_core::ErrorKind::ConfigInvalid);
        assert!(bad.builder().is_err());
        for (var, key) in SimulatorSection::ENV {
            assert!(var.starts_with("HERD_SIM_"), "{var}");
            toml::from_str::<SimulatorSection>(&format!("{key} = \"x\"")).unwrap();
        }
    }

    #[test]
    fn faults_typos_are_errors() {
        assert!(toml::from_str::<Faults>("trottle = true").is_err());
        assert!(toml::from_str::<Faults>("boot_delay = \"2 parsecs\"").is_err());
        let f = Faults {
            transient_error_rate: 1.5,
            ..Default::default()
        };
        assert_eq!(f.validate().unwrap_err().kind(), herd_core::ErrorKind::ConfigInvalid);
    }
}
