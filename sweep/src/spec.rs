//! The sweep spec: a TOML file naming the workload, the matrix and the limits. Unknown
//! keys are errors that name the file, line and the nearest known key, because a typo in
//! a spec otherwise silently runs (and pays for) the wrong sweep.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use herd_core::guardrails::parse_duration;
use herd_core::suggest::did_you_mean;
use herd_core::{Error, ErrorKind, Market, Money, Result};
use serde::{Deserialize, Serialize};

/// A parsed, validated spec, with the files it ships read into memory.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Spec {
    pub name: String,
    pub repetitions: u32,
    /// Bounds one cell from launch to its last repetition; each instance's deadline.
    #[serde(with = "secs")]
    pub timeout: Duration,
    pub concurrency: usize,
    /// The sweep's own budget: the worst case of all cells must fit.
    pub budget: Money,
    /// How often a cell may lose its spot instance and start over on a new one.
    pub max_interruptions: u32,
    pub workload: Workload,
    pub matrix: Matrix,
    /// `env = "auto"` or a lock file: the Python environment the workload runs in
    /// (herd-env). [`Spec::load`] turns it into the start of the setup and a prefix of
    /// the run; `env_id` is then the lock's hash.
    pub env: Option<String>,
    pub env_id: Option<String>,
    /// Where the spec was read from (files are relative to its directory).
    #[serde(skip)]
    pub path: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Workload {
    pub setup: Option<String>,
    pub run: String,
    pub env: BTreeMap<String, String>,
    pub files: Vec<ShippedFile>,
    pub metric: MetricSpec,
    /// The simulator's virtual mode only: CPU-seconds of one core a run takes.
    #[serde(with = "opt_secs")]
    pub virtual_work: Option<Duration>,
}

/// A file shipped into every instance, relative to the instance's working directory.
#[derive(Debug, Clone, Serialize)]
pub struct ShippedFile {
    pub path: String,
    pub executable: bool,
    #[serde(skip)]
    pub bytes: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MetricSpec {
    /// What is measured; shown in reports.
    pub name: String,
    pub unit: String,
    pub source: MetricSource,
    pub better: Better,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "value")]
pub enum MetricSource {
    /// The run's wall time, measured in the instance.
    WallTime,
    /// The first capture group (or whole match) of a regex over stdout.
    Regex(String),
    /// A numeric field of the last JSON object line of stdout that has it.
    JsonField(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    /// A rate: work per second (throughput).
    Higher,
    /// A cost: seconds per unit of work (wall time).
    Lower,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Matrix {
    /// Empty: the cloud the sweep runs on.
    pub clouds: Vec<String>,
    /// Names or globs; empty: the cloud's default region.
    pub regions: Vec<String>,
    pub types: Vec<String>,
    pub families: Vec<String>,
    pub sizes: Vec<String>,
    pub arch: Option<String>,
    /// `true`: only GPU types; a string: GPU model substring; absent: any.
    pub gpu: Option<GpuFilter>,
    pub markets: Vec<Market>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum GpuFilter {
    Required(bool),
    Model(String),
}

// ---- the file's shape -------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    name: String,
    #[serde(default)]
    repetitions: Option<u32>,
    #[serde(default)]
    timeout: Option<String>,
    #[serde(default)]
    concurrency: Option<usize>,
    budget: Option<toml::Value>,
    #[serde(default)]
    max_interruptions: Option<u32>,
    #[serde(default)]
    env: Option<String>,
    workload: RawWorkload,
    matrix: RawMatrix,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWorkload {
    setup: Option<String>,
    run: String,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    files: Vec<String>,
    metric: Option<RawMetric>,
    virtual_work: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetric {
    name: Option<String>,
    unit: Option<String>,
    regex: Option<String>,
    json: Option<String>,
    better: Option<Better>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMatrix {
    #[serde(default)]
    clouds: Vec<String>,
    #[serde(default)]
    regions: Vec<String>,
    #[serde(default)]
    types: Vec<String>,
    #[serde(default)]
    families: Vec<String>,
    #[serde(default)]
    sizes: Vec<String>,
    arch: Option<String>,
    gpu: Option<toml::Value>,
    #[serde(default)]
    markets: Vec<String>,
}

pub const DEFAULT_REPETITIONS: u32 = 3;
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);
pub const DEFAULT_CONCURRENCY: usize = 4;
pub const DEFAULT_MAX_INTERRUPTIONS: u32 = 2;
/// Above this, a sweep is more likely a typo than a plan.
const MAX_REPETITIONS: u32 = 1000;

impl Spec {
    /// Reads and validates a spec file, and the files it ships (relative to it).
    pub fn load(path: &Path) -> Result<Spec> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::invalid_spec(format!("cannot read sweep spec {}", path.display()))
                .with_hint("pass the path of a sweep spec, e.g. examples/compress/sweep.toml")
                .with_source(e)
        })?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let label = path.display().to_string();
        let mut spec = Spec::parse_with(&text, &label, |f| read_shipped(&label, dir, f))?;
        spec.path = Some(path.to_path_buf());
        spec.apply_env(dir)?;
        Ok(spec)
    }

    /// Parses a spec whose shipped files are read by `read` (tests pass a map).
    pub fn parse_with(text: &str, label: &str, read: impl Fn(&str) -> Result<Vec<u8>>) -> Result<Spec> {
        let raw: RawSpec = toml::from_str(text).map_err(|e| toml_error(label, text, &e))?;
        let at = |key: &str| {
            format!(
                "{label}{}",
                line_of_key(text, key).map(|l| format!(":{l}")).unwrap_or_default()
            )
        };
        let bad = |key: &str, msg: String| Error::invalid_spec(format!("invalid sweep spec {}: {msg}", at(key)));

        if herd_core::tags::sanitize_value(&raw.name) != raw.name || raw.name.is_empty() || raw.name.len() > 40 {
            return Err(
                bad("name", format!("name `{}` is not valid", raw.name)).with_hint(format!(
                    "use 1-40 characters of lowercase a-z, 0-9, `_` and `-`, e.g. `{}`",
                    herd_core::tags::sanitize_value(&raw.name)
                )),
            );
        }
        let repetitions = raw.repetitions.unwrap_or(DEFAULT_REPETITIONS);
        if repetitions == 0 || repetitions > MAX_REPETITIONS {
            return Err(bad(
                "repetitions",
                format!("repetitions must be 1-{MAX_REPETITIONS}, not {repetitions}"),
            ));
        }
        let timeout = match &raw.timeout {
            Some(t) => parse_duration(t).map_err(|e| bad("timeout", e.message().to_string()))?,
            None => DEFAULT_TIMEOUT,
        };
        if timeout.is_zero() {
            return Err(bad("timeout", "timeout must be more than zero".into()));
        }
        let concurrency = raw.concurrency.unwrap_or(DEFAULT_CONCURRENCY);
        if concurrency == 0 {
            return Err(bad("concurrency", "concurrency must be at least 1".into()));
        }
        let budget = match &raw.budget {
            None => {
                return Err(bad("name", "no `budget`".into())
                    .with_hint("add e.g. `budget = \"1.00\"` (USD): the most this sweep may cost in the worst case"))
            }
            Some(toml::Value::String(s)) => Money::parse_usd(s).map_err(|e| bad("budget", e.message().to_string()))?,
            Some(toml::Value::Integer(i)) => Money::usd((*i).into()),
            Some(toml::Value::Float(f)) => {
                Money::parse_usd(&f.to_string()).map_err(|e| bad("budget", e.message().to_string()))?
            }
            Some(other) => return Err(bad("budget", format!("budget `{other}` is not an amount of dollars"))),
        };
        if budget.amount.is_sign_negative() {
            return Err(bad("budget", "budget is negative".into()));
        }

        let w = raw.workload;
        if w.run.trim().is_empty() {
            return Err(bad("run", "`workload.run` is empty".into()));
        }
        let metric = metric(w.metric, &|k, m| bad(k, m))?;
        let mut files = Vec::new();
        for f in &w.files {
            let rel = Path::new(f);
            if rel.is_absolute() || rel.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
                return Err(bad(
                    "files",
                    format!("shipped file `{f}` must be a relative path inside the spec's directory"),
                ));
            }
            let bytes = read(f)?;
            files.push(ShippedFile {
                path: f.clone(),
                executable: f.ends_with(".sh"),
                bytes,
            });
        }
        let virtual_work = w
            .virtual_work
            .as_deref()
            .map(|s| parse_duration(s).map_err(|e| bad("virtual_work", e.message().to_string())))
            .transpose()?;

        let m = raw.matrix;
        let markets = if m.markets.is_empty() {
            vec![Market::OnDemand]
        } else {
            m.markets
                .iter()
                .map(|s| s.parse::<Market>().map_err(|e| bad("markets", e.message().to_string())))
                .collect::<Result<Vec<_>>>()?
        };
        let gpu = match m.gpu {
            None => None,
            Some(toml::Value::Boolean(b)) => Some(GpuFilter::Required(b)),
            Some(toml::Value::String(s)) => Some(GpuFilter::Model(s)),
            Some(other) => return Err(bad("gpu", format!("gpu = {other}: use true, false or a model name"))),
        };
        if m.types.is_empty() && m.families.is_empty() {
            return Err(bad("matrix", "the matrix names no instance types".into()).with_hint(
                "add `types = [\"l1.small\", ...]` or `families = [...]` with `sizes = [...]` under [matrix]",
            ));
        }
        Ok(Spec {
            name: raw.name,
            repetitions,
            timeout,
            concurrency,
            budget,
            max_interruptions: raw.max_interruptions.unwrap_or(DEFAULT_MAX_INTERRUPTIONS),
            workload: Workload {
                setup: w.setup.filter(|s| !s.trim().is_empty()),
                run: w.run,
                env: w.env,
                files,
                metric,
                virtual_work,
            },
            matrix: Matrix {
                clouds: m.clouds,
                regions: m.regions,
                types: m.types,
                families: m.families,
                sizes: m.sizes,
                arch: m.arch,
                gpu,
                markets,
            },
            env: raw.env.filter(|e| e.trim() != "none"),
            env_id: None,
            path: None,
        })
    }

    /// `env = "auto" | FILE`: captures the local Python environment (or reads the lock,
    /// relative to the spec), refuses it before anything is launched if a package cannot
    /// be installed on the matrix's architecture (`arch`, else this machine's), and makes
    /// the setup build it first and every run run inside it. Reading the launching
    /// environment here is deliberate: it is what "auto" means.
    fn apply_env(&mut self, dir: &Path) -> Result<()> {
        let Some(choice) = self.env.clone() else { return Ok(()) };
        let lookup = |k: &str| std::env::var(k).ok();
        let lock = match choice.trim() {
            "auto" => herd_env::capture(&herd_env::CaptureOptions::default(), &lookup)?.lock,
            file => herd_env::Lock::read(&dir.join(file))?,
        };
        let arch = match &self.matrix.arch {
            Some(a) => a.parse::<herd_core::Arch>()?,
            None => herd_core::Arch::host(),
        };
        let index = herd_env::IndexConfig::from_lookup(&lookup);
        let uv = herd_env::resolve::uv_binary(&lookup)?;
        let target = herd_env::Target::new(arch, &lock);
        if let Some(bad) = herd_env::check(&lock, &target, &index, &uv)? {
            let names = bad.names().join(", ");
            return Err(bad
                .into_error()
                .with_hint(format!("leave {names} out (`herd env capture --ignore PKG -o FILE`, then `env = \"FILE\"`), or sweep another `arch`")));
        }
        let boot = herd_env::bootstrap_script(&lock, &index)?;
        self.workload.setup = Some(match self.workload.setup.take() {
            Some(s) => format!("{boot}{s}\n"),
            None => boot,
        });
        self.workload.run = format!("{}{}", herd_env::activate_prefix(&lock.id()), self.workload.run);
        self.env_id = Some(lock.id());
        Ok(())
    }

    /// What identifies a sweep's results: the workload (commands, env, shipped bytes,
    /// metric), the matrix and the repetitions. Budget, timeout and concurrency are not
    /// in it, so raising a budget and running again resumes the same sweep.
    pub fn content_hash(&self) -> String {
        let mut h = Fnv::default();
        let json = serde_json::json!({
            "name": self.name,
            "repetitions": self.repetitions,
            "workload": self.workload,
            "matrix": self.matrix,
        });
        h.write(json.to_string().as_bytes());
        for f in &self.workload.files {
            h.write(f.path.as_bytes());
            h.write(&(f.bytes.len() as u64).to_le_bytes());
            h.write(&f.bytes);
        }
        format!("{:08x}", (h.0 ^ (h.0 >> 32)) as u32)
    }

    /// `<name>-<content hash>`: the same spec resumes, an edited one starts afresh.
    pub fn sweep_id(&self) -> String {
        format!("{}-{}", self.name, self.content_hash())
    }
}

fn metric(raw: Option<RawMetric>, bad: &dyn Fn(&str, String) -> Error) -> Result<MetricSpec> {
    let Some(m) = raw else {
        return Ok(MetricSpec {
            name: "wall time".into(),
            unit: "s".into(),
            source: MetricSource::WallTime,
            better: Better::Lower,
        });
    };
    let source = match (m.regex, m.json) {
        (Some(_), Some(_)) => return Err(bad("regex", "a metric has either `regex` or `json`, not both".into())),
        (Some(r), None) => {
            let re =
                regex_lite::Regex::new(&r).map_err(|e| bad("regex", format!("metric regex `{r}` is invalid: {e}")))?;
            if re.captures_len() > 2 {
                return Err(
                    bad("regex", format!("metric regex `{r}` has more than one capture group"))
                        .with_hint("use one group around the number, and (?:...) for the others"),
                );
            }
            MetricSource::Regex(r)
        }
        (None, Some(j)) => MetricSource::JsonField(j),
        (None, None) => MetricSource::WallTime,
    };
    let better =
        match (&source, m.better) {
            (_, Some(b)) => b,
            (MetricSource::WallTime, None) => Better::Lower,
            (_, None) => return Err(bad("metric", "say whether a higher or a lower metric is better".into())
                .with_hint(
                    "add `better = \"higher\"` (a rate, per second) or `better = \"lower\"` (seconds per unit of work)",
                )),
        };
    if source == MetricSource::WallTime && better == Better::Higher {
        return Err(bad("better", "wall time cannot be higher-is-better".into()));
    }
    let name = m.name.unwrap_or_else(|| match &source {
        MetricSource::WallTime => "wall time".into(),
        MetricSource::Regex(_) => "metric".into(),
        MetricSource::JsonField(f) => f.clone(),
    });
    let unit = m.unit.unwrap_or_else(|| match (&source, better) {
        (MetricSource::WallTime, _) => "s".into(),
        (_, Better::Higher) => "/s".into(),
        (_, Better::Lower) => "s".into(),
    });
    Ok(MetricSpec {
        name,
        unit,
        source,
        better,
    })
}

/// Reads shipped file `rel` (already checked relative, without `..`) of the spec `label`
/// in `dir`. A symlink on the way (the file itself or a directory above it) may point
/// anywhere under `dir`, never outside it: a spec ships what sits beside it, not `~/.ssh`
/// through a link someone left in a shared checkout. Only regular files are shipped.
fn read_shipped(label: &str, dir: &Path, rel: &str) -> Result<Vec<u8>> {
    let full = dir.join(rel);
    let cannot = |e: std::io::Error| {
        Error::invalid_spec(format!(
            "sweep spec {label}: cannot read shipped file {}",
            full.display()
        ))
        .with_hint("`workload.files` are relative to the spec file")
        .with_source(e)
    };
    let root = dir.canonicalize().map_err(cannot)?;
    let escapes = |link: &Path, target: String| {
        Error::invalid_spec(format!(
            "sweep spec {label}: shipped file `{rel}` leaves the spec's directory: {} is a symlink to {target}",
            link.display()
        ))
        .with_hint(format!(
            "herd ships only files under {}; copy the file there instead of linking to it",
            root.display()
        ))
    };
    // Component by component, so the error names the link that escapes, not just the file.
    let mut at = dir.to_path_buf();
    for c in Path::new(rel).components() {
        at.push(c);
        let meta = std::fs::symlink_metadata(&at).map_err(cannot)?;
        if meta.file_type().is_symlink() {
            let resolved = at.canonicalize().map_err(cannot)?;
            if !resolved.starts_with(&root) {
                let target = std::fs::read_link(&at)
                    .map_or_else(|_| resolved.display().to_string(), |t| t.display().to_string());
                return Err(escapes(&at, target));
            }
        }
    }
    // Read what was checked: the resolved path, not the links again.
    let resolved = full.canonicalize().map_err(cannot)?;
    if !resolved.starts_with(&root) {
        return Err(escapes(&full, resolved.display().to_string()));
    }
    let meta = std::fs::metadata(&resolved).map_err(cannot)?;
    if !meta.is_file() {
        return Err(Error::invalid_spec(format!(
            "sweep spec {label}: shipped file `{rel}` is not a regular file"
        ))
        .with_hint("list each file to ship in `workload.files`; directories and devices are not shipped"));
    }
    std::fs::read(&resolved).map_err(cannot)
}

/// A toml error as `invalid sweep spec FILE:LINE:COL: ...`, naming the nearest key for an
/// unknown one.
fn toml_error(label: &str, text: &str, e: &toml::de::Error) -> Error {
    let at = e
        .span()
        .map(|s| {
            let (line, col) = line_col(text, s.start);
            format!(":{line}:{col}")
        })
        .unwrap_or_default();
    let msg = e.message().trim().lines().map(str::trim).collect::<Vec<_>>().join("; ");
    let mut err = match unknown_field(&msg) {
        Some((field, known)) => {
            let hint = match did_you_mean(field, known.iter().copied(), 1).first() {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!("known keys here: {}", known.join(", ")),
            };
            Error::invalid_spec(format!("invalid sweep spec {label}{at}: unknown key `{field}`"))
                .with_suggestions(did_you_mean(field, known.iter().copied(), 3))
                .with_hint(hint)
        }
        None => Error::invalid_spec(format!("invalid sweep spec {label}{at}: {msg}"))
            .with_hint("examples/README.md describes every key of a sweep spec"),
    };
    if msg.contains("missing field") {
        err = Error::new(ErrorKind::InvalidSpec, format!("invalid sweep spec {label}{at}: {msg}"))
            .with_hint("examples/README.md describes every key of a sweep spec");
    }
    err
}

fn unknown_field(msg: &str) -> Option<(&str, Vec<&str>)> {
    let rest = msg.strip_prefix("unknown field `")?;
    let (field, rest) = rest.split_once('`')?;
    let expected = rest.split_once("expected").map_or("", |(_, e)| e);
    Some((field, expected.split('`').skip(1).step_by(2).collect()))
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// The first line that sets `key` or opens its table (for errors found after parsing):
/// `key = `, a dotted `workload.key = ` or `key.sub = `, `[key]` or `[workload.key]`.
fn line_of_key(text: &str, key: &str) -> Option<usize> {
    let names = |path: &str| {
        path.split('.')
            .any(|seg| seg.trim().trim_matches(|c| c == '"' || c == '\'') == key)
    };
    text.lines()
        .position(|l| {
            let t = l.trim_start();
            match t.strip_prefix('[') {
                Some(h) => !h.starts_with('[') && h.split_once(']').is_some_and(|(p, _)| names(p)),
                None => t.split_once('=').is_some_and(|(k, _)| names(k)),
            }
        })
        .map(|i| i + 1)
}

/// FNV-1a, stable across releases (sweep ids are stored).
struct Fnv(u64);
impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}
impl Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

mod secs {
    use serde::Serializer;
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
}

mod opt_secs {
    use serde::Serializer;
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&d.as_secs_f64()),
            None => s.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = r#"
name = "demo"
repetitions = 2
timeout = "5m"
budget = "1.00"

[workload]
run = "sh work.sh"
files = ["work.sh"]

[matrix]
types = ["l1.small", "l1.large"]
regions = ["local-east-1"]
"#;

    fn parse(text: &str) -> Result<Spec> {
        Spec::parse_with(text, "sweep.toml", |_| Ok(b"echo hi".to_vec()))
    }

    #[test]
    fn parses_with_defaults() {
        let s = parse(OK).unwrap();
        assert_eq!(s.repetitions, 2);
        assert_eq!(s.timeout, Duration::from_secs(300));
        assert_eq!(s.concurrency, DEFAULT_CONCURRENCY);
        assert_eq!(s.workload.metric.source, MetricSource::WallTime);
        assert_eq!(s.matrix.markets, vec![Market::OnDemand]);
        assert!(s.workload.files[0].executable);
        assert!(s.sweep_id().starts_with("demo-"));
    }

    #[test]
    fn unknown_key_names_line_and_suggests() {
        let text = OK.replace("repetitions = 2", "repetitons = 2");
        let e = parse(&text).unwrap_err();
        assert!(e.message().contains("sweep.toml:3:"), "{e}");
        assert!(e.message().contains("repetitons"), "{e}");
        assert_eq!(e.hint(), Some("did you mean `repetitions`?"));
        let text = OK.replace("types =", "typse =");
        let e = parse(&text).unwrap_err();
        assert!(e.message().contains(":12:"), "{e}");
        assert_eq!(e.hint(), Some("did you mean `types`?"));
    }

    #[test]
    fn empty_matrix_and_missing_budget_are_refused() {
        let e = parse(&OK.replace("types = [\"l1.small\", \"l1.large\"]", "")).unwrap_err();
        assert!(e.message().contains("no instance types"), "{e}");
        let e = parse(&OK.replace("budget = \"1.00\"", "")).unwrap_err();
        assert!(e.message().contains("budget"), "{e}");
    }

    #[test]
    fn metric_needs_a_direction_and_a_valid_regex() {
        let text = OK.replace("[matrix]", "[workload.metric]\nregex = 'rate: ([0-9.]+)'\n\n[matrix]");
        assert!(parse(&text).unwrap_err().message().contains("higher or a lower"));
        let text = OK.replace(
            "[matrix]",
            "[workload.metric]\nregex = 'rate: ([0-9.]+'\nbetter = \"higher\"\n[matrix]",
        );
        assert!(parse(&text).unwrap_err().message().contains("invalid"));
        let text = OK.replace(
            "[matrix]",
            "[workload.metric]\njson = 'mbps'\nbetter = \"higher\"\n[matrix]",
        );
        let s = parse(&text).unwrap();
        assert_eq!(s.workload.metric.source, MetricSource::JsonField("mbps".into()));
        assert_eq!(s.workload.metric.unit, "/s");
    }

    #[test]
    fn the_id_follows_the_workload_not_the_budget() {
        let a = parse(OK).unwrap();
        let b = parse(&OK.replace("\"1.00\"", "\"2.00\"")).unwrap();
        let c = parse(&OK.replace("sh work.sh", "sh work.sh --fast")).unwrap();
        let d = Spec::parse_with(OK, "x", |_| Ok(b"echo other".to_vec())).unwrap();
        assert_eq!(a.sweep_id(), b.sweep_id());
        assert_ne!(a.sweep_id(), c.sweep_id());
        assert_ne!(a.sweep_id(), d.sweep_id());
    }

    /// A spec dir holding `OK` with `files` replaced, and a secret outside it.
    fn spec_dir(files: &str) -> (tempfile::TempDir, PathBuf, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("secret"), "TOP-SECRET").unwrap();
        let dir = tmp.path().join("spec");
        std::fs::create_dir(&dir).unwrap();
        let spec = dir.join("sweep.toml");
        std::fs::write(&spec, OK.replace("[\"work.sh\"]", files)).unwrap();
        (tmp, spec, outside)
    }

    #[test]
    fn a_file_symlink_out_of_the_spec_dir_is_refused() {
        let (_tmp, spec, outside) = spec_dir(r#"["work.sh"]"#);
        let dir = spec.parent().unwrap();
        std::os::unix::fs::symlink(outside.join("secret"), dir.join("work.sh")).unwrap();
        let e = Spec::load(&spec).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidSpec);
        assert!(e.message().contains("`work.sh` leaves the spec's directory"), "{e}");
        assert!(
            e.message().contains(&outside.join("secret").display().to_string()),
            "names the target: {e}"
        );
        assert!(e.message().contains("sweep.toml"), "names the spec: {e}");
        assert!(e.hint().unwrap().contains("copy the file"), "{:?}", e.hint());
        assert!(!format!("{e:#} {e:?}").contains("TOP-SECRET"));

        // A relative link that climbs out is the same escape.
        std::fs::remove_file(dir.join("work.sh")).unwrap();
        std::os::unix::fs::symlink("../outside/secret", dir.join("work.sh")).unwrap();
        let e = Spec::load(&spec).unwrap_err();
        assert!(e.message().contains("is a symlink to ../outside/secret"), "{e}");
    }

    #[test]
    fn a_directory_symlink_out_of_the_spec_dir_is_refused() {
        let (_tmp, spec, outside) = spec_dir(r#"["lib/secret"]"#);
        let dir = spec.parent().unwrap();
        std::os::unix::fs::symlink(&outside, dir.join("lib")).unwrap();
        let e = Spec::load(&spec).unwrap_err();
        assert!(e.message().contains("`lib/secret` leaves the spec's directory"), "{e}");
        assert!(
            e.message().contains(&format!(
                "{} is a symlink to {}",
                dir.join("lib").display(),
                outside.display()
            )),
            "{e}"
        );

        // A link inside a real subdirectory, to a directory outside: still refused.
        std::fs::remove_file(dir.join("lib")).unwrap();
        std::fs::create_dir(dir.join("lib")).unwrap();
        std::fs::write(spec.as_path(), OK.replace("[\"work.sh\"]", r#"["lib/deep/secret"]"#)).unwrap();
        std::os::unix::fs::symlink(&outside, dir.join("lib/deep")).unwrap();
        let e = Spec::load(&spec).unwrap_err();
        assert!(e.message().contains("lib/deep is a symlink to"), "{e}");
    }

    #[test]
    fn symlinks_that_stay_inside_are_shipped() {
        let (_tmp, spec, _outside) = spec_dir(r#"["work.sh", "data/input.txt"]"#);
        let dir = spec.parent().unwrap();
        std::fs::create_dir_all(dir.join("real/data")).unwrap();
        std::fs::write(dir.join("real/work.sh"), "echo hi\n").unwrap();
        std::fs::write(dir.join("real/data/input.txt"), "abc").unwrap();
        // A relative file link and an absolute directory link, both resolving inside.
        std::os::unix::fs::symlink("real/work.sh", dir.join("work.sh")).unwrap();
        std::os::unix::fs::symlink(dir.join("real/data"), dir.join("data")).unwrap();
        let s = Spec::load(&spec).unwrap();
        assert_eq!(s.workload.files[0].path, "work.sh");
        assert_eq!(s.workload.files[0].bytes, b"echo hi\n");
        assert!(s.workload.files[0].executable);
        assert_eq!(s.workload.files[1].bytes, b"abc");
    }

    #[test]
    fn directories_and_dangling_links_are_clear_errors() {
        let (_tmp, spec, _outside) = spec_dir(r#"["sub"]"#);
        let dir = spec.parent().unwrap();
        std::fs::create_dir(dir.join("sub")).unwrap();
        let e = Spec::load(&spec).unwrap_err();
        assert!(e.message().contains("`sub` is not a regular file"), "{e}");
        assert!(e.hint().is_some());
        std::fs::remove_dir(dir.join("sub")).unwrap();
        std::os::unix::fs::symlink("nowhere", dir.join("sub")).unwrap();
        let e = Spec::load(&spec).unwrap_err();
        assert!(e.message().contains("cannot read shipped file"), "{e}");
    }

    #[test]
    fn errors_found_after_parsing_name_the_line_of_nested_and_dotted_keys() {
        // Found by sweep/tests/fuzz_spec.rs: `[workload.metric]` was not `[metric]`, so
        // the error named no line.
        let text = OK.replace("[matrix]", "[workload.metric]\nregex = 'r: ([0-9]+)'\n\n[matrix]");
        let e = parse(&text).unwrap_err();
        assert!(e.message().contains("sweep.toml:11: say whether"), "{e}");
        let dotted = "name = \"demo\"\nbudget = \"1\"\nworkload.run = \" \"\nmatrix.types = [\"l1.small\"]\n";
        let e = parse(dotted).unwrap_err();
        assert!(e.message().contains("sweep.toml:3: `workload.run` is empty"), "{e}");
    }

    #[test]
    fn escaping_paths_are_refused() {
        let e = parse(&OK.replace("[\"work.sh\"]", "[\"../x.sh\"]")).unwrap_err();
        assert!(e.message().contains("relative path"), "{e}");
    }
}
