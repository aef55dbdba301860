//! The one settings step: defaults <- user config <- project `herd.toml` <- `--config`
//! file <- `HERD_*` environment <- flags. Every layer has the same shape ([`Layer`]),
//! so precedence is a plain field-by-field merge, and a typo anywhere is an error that
//! names the file, line and key.

use std::path::{Path, PathBuf};
use std::time::Duration;

use herd_core::guardrails::parse_duration;
use herd_core::suggest::did_you_mean;
use herd_core::{tags, Budget, Cloud, Error, Guardrails, Money, Result, RetryPolicy};
use serde::{Deserialize, Deserializer};

/// Everything a command may need to know, resolved. Holds no secrets, so `Debug` is safe.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Sanitized to the label alphabet, as it appears in the `herd-owner` tag.
    pub owner: String,
    pub cloud: Cloud,
    pub region: Option<String>,
    pub ledger: PathBuf,
    pub deadline: Duration,
    /// `None`: no idle timeout.
    pub keepalive: Option<Duration>,
    /// Whether the keepalive was configured (not the default): a cloud that cannot
    /// enforce an idle timeout refuses an explicit one but only warns about the default.
    pub keepalive_explicit: bool,
    pub max_count: u32,
    pub max_deadline: Duration,
    pub budget: Budget,
    pub simulator: SimulatorSettings,
    pub catalog: CatalogSettings,
    pub aws: AwsSettings,
    /// `[retry] patience` / `HERD_RETRY_PATIENCE`: how long one cloud call keeps being
    /// retried (throttling, outages, hangs) before herd gives up; `None`: core's defaults.
    pub retry_patience: Option<Duration>,
    /// Config files that were read, lowest precedence first.
    pub files: Vec<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct SimulatorSettings {
    pub state_dir: PathBuf,
    pub seed: Option<u64>,
    pub processes: bool,
    pub faults: herd_local::Faults,
}

/// `[catalog]`: where refreshed prices live, when they count as stale, and where the
/// public price sources are (tests point these at 127.0.0.1).
#[derive(Debug, Clone)]
pub struct CatalogSettings {
    /// `None`: no user data directory, so no overlay.
    pub overlay_dir: Option<PathBuf>,
    /// Prices older than this many days draw a warning.
    pub max_price_age_days: i64,
    pub endpoints: herd_catalog::refresh::Endpoints,
}

/// `[aws]`: how to reach EC2. Credentials are not settings: aws-config's default chain
/// (environment, profiles, SSO, instance roles) finds them.
#[derive(Debug, Clone, Default)]
pub struct AwsSettings {
    /// A profile of ~/.aws/config (`--profile`, `HERD_AWS_PROFILE`).
    pub profile: Option<String>,
    /// The default region on AWS; `None`: `region`, then the profile's or AWS_REGION.
    pub region: Option<String>,
    /// Another EC2 endpoint (an emulator); `AWS_ENDPOINT_URL` also works.
    pub endpoint: Option<String>,
    /// Who may SSH in; `None`: this machine's public address.
    pub ssh_cidr: Option<String>,
    pub image_x86_64: Option<String>,
    pub image_arm64: Option<String>,
    /// Where per-owner private keys are kept (0600).
    pub key_dir: PathBuf,
    /// Regions `ls`, `down` and `reap` search; empty: every enabled region.
    pub regions: Vec<String>,
    /// Why herd counts AWS as configured (so `ls`, `down`, `cost` and `reap` include it),
    /// e.g. "AWS_PROFILE is set"; `None`: nothing says so (the ledger may still, see
    /// `Context::clouds`). Checked without building any SDK client: variables and files.
    pub configured_by: Option<String>,
}

/// What flags contribute to the merge (the top layer).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub config: Option<PathBuf>,
    pub cloud: Option<String>,
    pub region: Option<String>,
    pub deadline: Option<String>,
    pub keepalive: Option<String>,
    pub budget_per_launch: Option<String>,
    /// `--profile`: an AWS profile.
    pub profile: Option<String>,
}

/// Where the environment comes from; tests pass a map instead of the process's.
pub trait Env {
    fn var(&self, name: &str) -> Option<String>;
}

/// The real process environment (empty values count as unset).
#[derive(Debug, Clone, Copy)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

impl Settings {
    pub fn load(flags: &Overrides) -> Result<Settings> {
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        Self::load_from(flags, &ProcessEnv, &cwd)
    }

    pub fn load_from(flags: &Overrides, env: &dyn Env, cwd: &Path) -> Result<Settings> {
        let mut merged = Layer::default();
        let mut files = Vec::new();

        let user = match env.var("HERD_CONFIG") {
            Some(p) => Some((PathBuf::from(p), true)),
            None => user_config_path(env).map(|p| (p, false)),
        };
        if let Some((path, required)) = user {
            if let Some(layer) = Layer::read(&path, required)? {
                merged.merge(layer);
                files.push(path);
            }
        }
        if let Some(path) = find_project_file(cwd) {
            if let Some(layer) = Layer::read(&path, false)? {
                merged.merge(layer);
                files.push(path);
            }
        }
        if let Some(path) = &flags.config {
            let path = cwd.join(path);
            if let Some(layer) = Layer::read(&path, true)? {
                merged.merge(layer);
                files.push(path);
            }
        }
        merged.merge(Layer::from_env(env)?);
        merged.merge(Layer::from_flags(flags)?);
        merged.resolve(env, files)
    }

    /// The limits every launch is checked against.
    pub fn guardrails(&self) -> Guardrails {
        Guardrails {
            owner: self.owner.clone(),
            budget: self.budget.clone(),
            default_deadline: self.deadline,
            max_deadline: self.max_deadline,
            default_keepalive: self.keepalive,
            max_count: self.max_count,
            ..Guardrails::default()
        }
    }

    /// The retry loop's policy: core's defaults, with the configured patience.
    pub fn retry_policy(&self) -> RetryPolicy {
        let p = RetryPolicy::default();
        match self.retry_patience {
            // Checked when the settings were loaded.
            Some(d) => p.clone().with_patience(d).unwrap_or(p),
            None => p,
        }
    }
}

/// `$XDG_CONFIG_HOME/herd/config.toml`, else `~/.config/herd/config.toml` (also on macOS:
/// people expect dotfiles there).
fn user_config_path(env: &dyn Env) -> Option<PathBuf> {
    let base = env
        .var("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| env.var("HOME").map(|h| PathBuf::from(h).join(".config")))
        .or_else(dirs::config_dir)?;
    Some(base.join("herd").join("config.toml"))
}

/// The nearest `herd.toml` in `start` or one of its parents.
fn find_project_file(start: &Path) -> Option<PathBuf> {
    start.ancestors().map(|d| d.join("herd.toml")).find(|p| p.is_file())
}

/// One layer of configuration, in the shape of the config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Layer {
    owner: Option<String>,
    #[serde(default, deserialize_with = "de_cloud")]
    cloud: Option<Cloud>,
    region: Option<String>,
    ledger: Option<PathBuf>,
    #[serde(default, deserialize_with = "de_duration")]
    deadline: Option<Duration>,
    #[serde(default, deserialize_with = "de_duration")]
    keepalive: Option<Duration>,
    max_count: Option<u32>,
    #[serde(default, deserialize_with = "de_duration")]
    max_deadline: Option<Duration>,
    budget: Option<BudgetLayer>,
    simulator: Option<SimulatorLayer>,
    catalog: Option<CatalogLayer>,
    aws: Option<AwsLayer>,
    retry: Option<RetryLayer>,
    /// The file whose `[aws]` section this layer is (not a key: set by [`Layer::read`]).
    #[serde(skip)]
    aws_section: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AwsLayer {
    profile: Option<String>,
    region: Option<String>,
    endpoint: Option<String>,
    ssh_cidr: Option<String>,
    image_x86_64: Option<String>,
    image_arm64: Option<String>,
    key_dir: Option<PathBuf>,
    regions: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RetryLayer {
    #[serde(default, deserialize_with = "de_duration")]
    patience: Option<Duration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogLayer {
    overlay_dir: Option<PathBuf>,
    max_price_age_days: Option<i64>,
    aws_pricing_url: Option<String>,
    azure_prices_url: Option<String>,
    gcp_billing_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct BudgetLayer {
    #[serde(default, deserialize_with = "de_money")]
    per_launch: Option<Money>,
    #[serde(default, deserialize_with = "de_money")]
    per_day: Option<Money>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SimulatorLayer {
    state_dir: Option<PathBuf>,
    seed: Option<u64>,
    processes: Option<bool>,
    faults: Option<herd_local::Faults>,
}

impl Layer {
    /// Reads a config file; a missing file is `None` unless it was asked for by name.
    fn read(path: &Path, required: bool) -> Result<Option<Layer>> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => return Ok(None),
            Err(e) => {
                return Err(Error::config(format!("cannot read config {}", path.display()))
                    .with_hint("check the path given by --config or $HERD_CONFIG")
                    .with_source(e))
            }
        };
        let mut layer = Layer::parse(&text, path)?;
        // Paths in a file are relative to that file, so a project's herd.toml works from
        // any subdirectory.
        let dir = path.parent().unwrap_or(Path::new("."));
        if let Some(l) = &mut layer.ledger {
            *l = dir.join(&*l);
        }
        if let Some(d) = layer.simulator.as_mut().and_then(|s| s.state_dir.as_mut()) {
            *d = dir.join(&*d);
        }
        if let Some(d) = layer.catalog.as_mut().and_then(|c| c.overlay_dir.as_mut()) {
            *d = dir.join(&*d);
        }
        if let Some(d) = layer.aws.as_mut().and_then(|a| a.key_dir.as_mut()) {
            *d = dir.join(&*d);
        }
        if layer.aws.is_some() {
            layer.aws_section = Some(path.to_path_buf());
        }
        Ok(Some(layer))
    }

    fn parse(text: &str, path: &Path) -> Result<Layer> {
        toml::from_str(text).map_err(|e| config_error(path, text, &e))
    }

    fn from_env(env: &dyn Env) -> Result<Layer> {
        let bad = |var: &str, val: &str, e: Error| {
            let mut out = Error::config(format!("invalid {var}=`{val}`: {}", e.message()))
                .with_suggestions(e.suggestions().to_vec());
            if let Some(h) = e.hint() {
                out = out.with_hint(h.to_string());
            }
            out
        };
        let duration = |var: &str| -> Result<Option<Duration>> {
            env.var(var)
                .map(|v| parse_duration(&v).map_err(|e| bad(var, &v, e)))
                .transpose()
        };
        let money = |var: &str| -> Result<Option<Money>> {
            env.var(var)
                .map(|v| parse_budget(&v).map_err(|e| bad(var, &v, e)))
                .transpose()
        };
        let cloud = env
            .var("HERD_CLOUD")
            .map(|v| v.parse::<Cloud>().map_err(|e| bad("HERD_CLOUD", &v, e)))
            .transpose()?;
        let per_launch = money("HERD_BUDGET_PER_LAUNCH")?;
        let per_day = money("HERD_BUDGET_PER_DAY")?;
        let state_dir = env.var("HERD_SIM_DIR").map(PathBuf::from);
        let catalog = CatalogLayer {
            overlay_dir: env.var("HERD_CATALOG_DIR").map(PathBuf::from),
            max_price_age_days: env
                .var("HERD_MAX_PRICE_AGE_DAYS")
                .map(|v| {
                    v.parse::<i64>().ok().filter(|d| *d >= 0).ok_or_else(|| {
                        Error::config(format!("invalid HERD_MAX_PRICE_AGE_DAYS=`{v}`: not a number of days"))
                    })
                })
                .transpose()?,
            aws_pricing_url: env.var("HERD_AWS_PRICING_URL"),
            azure_prices_url: env.var("HERD_AZURE_PRICES_URL"),
            gcp_billing_url: env.var("HERD_GCP_BILLING_URL"),
        };
        let aws = AwsLayer {
            profile: env.var("HERD_AWS_PROFILE"),
            region: env.var("HERD_AWS_REGION"),
            endpoint: env.var("HERD_AWS_ENDPOINT"),
            ssh_cidr: env.var("HERD_AWS_SSH_CIDR"),
            image_x86_64: env.var("HERD_AWS_IMAGE_X86_64"),
            image_arm64: env.var("HERD_AWS_IMAGE_ARM64"),
            key_dir: env.var("HERD_AWS_KEY_DIR").map(PathBuf::from),
            regions: env.var("HERD_AWS_REGIONS").map(|v| {
                v.split(',')
                    .map(|r| r.trim().to_string())
                    .filter(|r| !r.is_empty())
                    .collect()
            }),
        };
        let patience = duration("HERD_RETRY_PATIENCE")?;
        Ok(Layer {
            aws: Some(aws),
            catalog: Some(catalog),
            retry: patience.map(|p| RetryLayer { patience: Some(p) }),
            owner: env.var("HERD_OWNER"),
            cloud,
            region: env.var("HERD_REGION"),
            ledger: env.var("HERD_LEDGER").map(PathBuf::from),
            deadline: duration("HERD_DEADLINE")?,
            keepalive: duration("HERD_KEEPALIVE")?,
            budget: (per_launch.is_some() || per_day.is_some()).then_some(BudgetLayer { per_launch, per_day }),
            simulator: state_dir.map(|d| SimulatorLayer {
                state_dir: Some(d),
                ..SimulatorLayer::default()
            }),
            ..Layer::default()
        })
    }

    fn from_flags(f: &Overrides) -> Result<Layer> {
        let flag = |name: &str, e: Error| {
            let mut out =
                Error::invalid_spec(format!("--{name}: {}", e.message())).with_suggestions(e.suggestions().to_vec());
            if let Some(h) = e.hint() {
                out = out.with_hint(h.to_string());
            }
            out
        };
        let duration = |name: &str, v: &Option<String>| -> Result<Option<Duration>> {
            v.as_deref()
                .map(|s| parse_duration(s).map_err(|e| flag(name, e)))
                .transpose()
        };
        Ok(Layer {
            cloud: f
                .cloud
                .as_deref()
                .map(|c| c.parse::<Cloud>().map_err(|e| flag("cloud", e)))
                .transpose()?,
            region: f.region.clone(),
            deadline: duration("deadline", &f.deadline)?,
            keepalive: duration("keepalive", &f.keepalive)?,
            budget: f
                .budget_per_launch
                .as_deref()
                .map(|b| parse_budget(b).map_err(|e| flag("budget", e)))
                .transpose()?
                .map(|m| BudgetLayer {
                    per_launch: Some(m),
                    per_day: None,
                }),
            aws: f.profile.clone().map(|p| AwsLayer {
                profile: Some(p),
                ..AwsLayer::default()
            }),
            ..Layer::default()
        })
    }

    /// `other` wins wherever it says something.
    fn merge(&mut self, other: Layer) {
        macro_rules! take {
            ($($f:ident),*) => { $( if other.$f.is_some() { self.$f = other.$f; } )* };
        }
        take!(
            owner,
            cloud,
            region,
            ledger,
            deadline,
            keepalive,
            max_count,
            max_deadline,
            aws_section
        );
        if let Some(p) = other.retry.and_then(|r| r.patience) {
            self.retry = Some(RetryLayer { patience: Some(p) });
        }
        if let Some(b) = other.budget {
            let mine = self.budget.get_or_insert_with(BudgetLayer::default);
            if b.per_launch.is_some() {
                mine.per_launch = b.per_launch;
            }
            if b.per_day.is_some() {
                mine.per_day = b.per_day;
            }
        }
        if let Some(s) = other.simulator {
            let mine = self.simulator.get_or_insert_with(SimulatorLayer::default);
            if s.state_dir.is_some() {
                mine.state_dir = s.state_dir;
            }
            if s.seed.is_some() {
                mine.seed = s.seed;
            }
            if s.processes.is_some() {
                mine.processes = s.processes;
            }
            if s.faults.is_some() {
                mine.faults = s.faults;
            }
        }
        if let Some(a) = other.aws {
            let mine = self.aws.get_or_insert_with(AwsLayer::default);
            macro_rules! take_aws {
                ($($f:ident),*) => { $( if a.$f.is_some() { mine.$f = a.$f; } )* };
            }
            take_aws!(
                profile,
                region,
                endpoint,
                ssh_cidr,
                image_x86_64,
                image_arm64,
                key_dir,
                regions
            );
        }
        if let Some(c) = other.catalog {
            let mine = self.catalog.get_or_insert_with(CatalogLayer::default);
            macro_rules! take_catalog {
                ($($f:ident),*) => { $( if c.$f.is_some() { mine.$f = c.$f; } )* };
            }
            take_catalog!(
                overlay_dir,
                max_price_age_days,
                aws_pricing_url,
                azure_prices_url,
                gcp_billing_url
            );
        }
    }

    fn resolve(self, env: &dyn Env, files: Vec<PathBuf>) -> Result<Settings> {
        let cloud = self.cloud.unwrap_or(Cloud::Local);
        let aws = self.aws.unwrap_or_default();
        let configured_by = aws_configured_by(env, cloud, &aws, self.aws_section.as_deref());
        let aws = AwsSettings {
            configured_by,
            profile: aws.profile,
            region: aws.region,
            endpoint: aws.endpoint,
            ssh_cidr: aws.ssh_cidr,
            image_x86_64: aws.image_x86_64,
            image_arm64: aws.image_arm64,
            regions: aws.regions.unwrap_or_default(),
            key_dir: aws.key_dir.unwrap_or_else(|| {
                env.var("XDG_DATA_HOME")
                    .map(PathBuf::from)
                    .or_else(|| env.var("HOME").map(|h| PathBuf::from(h).join(".local/share")))
                    .or_else(dirs::data_dir)
                    .unwrap_or_else(|| PathBuf::from("."))
                    .join("herd")
                    .join("keys")
            }),
        };
        let defaults = Guardrails::default();
        let raw_owner = self
            .owner
            .or_else(|| env.var("USER"))
            .or_else(|| env.var("USERNAME"))
            .unwrap_or_else(|| "herd".to_string());
        let owner = tags::sanitize_value(&raw_owner);
        if owner.is_empty() {
            return Err(Error::config("the owner name is empty").with_hint("set `owner` in herd.toml or HERD_OWNER"));
        }
        let budget = self.budget.unwrap_or_default();
        let sim = self.simulator.unwrap_or_default();
        let cat = self.catalog.unwrap_or_default();
        let default_endpoints = herd_catalog::refresh::Endpoints::default();
        let faults = sim.faults.unwrap_or_default();
        faults.validate()?;
        let retry_patience = self.retry.and_then(|r| r.patience);
        if let Some(p) = retry_patience {
            RetryPolicy::check_patience(p)?;
        }
        let keepalive_explicit = self.keepalive.is_some();
        let keepalive = match self.keepalive {
            Some(k) if k.is_zero() => None,
            Some(k) => Some(k),
            None => defaults.default_keepalive,
        };
        Ok(Settings {
            owner,
            cloud,
            region: self.region,
            ledger: self.ledger.unwrap_or_else(herd_ledger::Ledger::default_path),
            deadline: self.deadline.unwrap_or(defaults.default_deadline),
            keepalive,
            keepalive_explicit,
            max_count: self.max_count.unwrap_or(defaults.max_count),
            max_deadline: self.max_deadline.unwrap_or(defaults.max_deadline),
            budget: Budget {
                per_launch: budget.per_launch.unwrap_or(defaults.budget.per_launch),
                per_day: budget.per_day.unwrap_or(defaults.budget.per_day),
            },
            simulator: SimulatorSettings {
                state_dir: sim.state_dir.unwrap_or_else(herd_local::default_state_dir),
                seed: sim.seed,
                processes: sim.processes.unwrap_or(true),
                faults,
            },
            catalog: CatalogSettings {
                overlay_dir: cat
                    .overlay_dir
                    .or_else(|| herd_catalog::overlay::default_dir(|k| env.var(k).map(Into::into))),
                max_price_age_days: cat.max_price_age_days.unwrap_or(30),
                endpoints: herd_catalog::refresh::Endpoints {
                    aws: cat.aws_pricing_url.unwrap_or(default_endpoints.aws),
                    azure: cat.azure_prices_url.unwrap_or(default_endpoints.azure),
                    gcp: cat.gcp_billing_url.unwrap_or(default_endpoints.gcp),
                },
            },
            aws,
            retry_patience,
            files,
        })
    }
}

/// Why AWS counts as configured, cheaply (variables and file existence, no SDK): herd's
/// own settings name it, or the AWS SDK's default chain has something to go on.
fn aws_configured_by(env: &dyn Env, cloud: Cloud, aws: &AwsLayer, section: Option<&Path>) -> Option<String> {
    if cloud == Cloud::Aws {
        return Some("the default cloud is aws".into());
    }
    if let Some(file) = section {
        return Some(format!("an [aws] section in {}", file.display()));
    }
    if aws.profile.is_some() || aws.endpoint.is_some() || aws.region.is_some() {
        return Some("herd's AWS settings (HERD_AWS_* or --profile)".into());
    }
    for var in [
        "AWS_ACCESS_KEY_ID",
        "AWS_PROFILE",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_EC2",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
    ] {
        if env.var(var).is_some() {
            return Some(format!("{var} is set"));
        }
    }
    let home = env.var("HOME").map(PathBuf::from);
    for (var, name) in [
        ("AWS_SHARED_CREDENTIALS_FILE", "credentials"),
        ("AWS_CONFIG_FILE", "config"),
    ] {
        let path = env
            .var(var)
            .map(PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(".aws").join(name)));
        if let Some(p) = path.filter(|p| p.is_file()) {
            return Some(format!("{} exists", p.display()));
        }
    }
    None
}

/// How to make AWS count as configured (the hint when `--cloud aws` names it unconfigured).
pub const AWS_HOW_TO_CONFIGURE: &str = "configure AWS first: set AWS_PROFILE (or AWS_ACCESS_KEY_ID and \
     AWS_SECRET_ACCESS_KEY), run `aws configure` (writes ~/.aws/credentials), or add an [aws] section to herd.toml";

/// A budget: `10`, `$10`, `12.50`; never negative.
pub fn parse_budget(s: &str) -> Result<Money> {
    let m = Money::parse_usd(s).map_err(|_| {
        Error::invalid_spec(format!("`{s}` is not an amount of dollars"))
            .with_hint("write amounts like 10, $10 or 12.50")
    })?;
    if m.amount.is_sign_negative() {
        return Err(Error::invalid_spec(format!("budget `{s}` is negative")));
    }
    Ok(m)
}

/// A toml error as `invalid config FILE:LINE:COL: ...`, with "did you mean" for unknown keys.
fn config_error(path: &Path, text: &str, e: &toml::de::Error) -> Error {
    let at = e
        .span()
        .map(|s| {
            let (line, col) = line_col(text, s.start);
            format!(":{line}:{col}")
        })
        .unwrap_or_default();
    let msg = e.message().trim();
    let msg = if msg.is_empty() {
        "invalid TOML".to_string()
    } else {
        msg.lines().map(str::trim).collect::<Vec<_>>().join("; ")
    };
    let (msg, hint) = match unknown_field(&msg) {
        Some((field, known)) => {
            let hint = match did_you_mean(field, known.iter().copied(), 1).first() {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!("known keys here: {}", known.join(", ")),
            };
            (format!("unknown field `{field}`"), hint)
        }
        None => (msg.clone(), "see cli/README.md for the config keys".to_string()),
    };
    Error::config(format!("invalid config {}{at}: {msg}", path.display())).with_hint(hint)
}

/// Splits serde's "unknown field `x`, expected `a`, `b` or `c`" into `x` and the known keys.
fn unknown_field(msg: &str) -> Option<(&str, Vec<&str>)> {
    let rest = msg.strip_prefix("unknown field `")?;
    let (field, rest) = rest.split_once('`')?;
    let expected = rest.split_once("expected").map_or("", |(_, e)| e);
    let known = expected.split('`').skip(1).step_by(2).collect();
    Some((field, known))
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// A duration as `"90s"`, `"2h"`, `"1h30m"`, or integer seconds.
fn de_duration<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<Duration>, D::Error> {
    use serde::de::Error as _;
    match Option::<StrOrInt>::deserialize(d)? {
        None => Ok(None),
        Some(StrOrInt::Int(n)) => u64::try_from(n)
            .map(|s| Some(Duration::from_secs(s)))
            .map_err(|_| D::Error::custom(format!("`{n}` is not a duration (it is negative)"))),
        Some(StrOrInt::Str(s)) => parse_duration(&s).map(Some).map_err(|e| D::Error::custom(e.message())),
    }
}

/// Dollars as `"10"`, `"$10"` or an integer.
fn de_money<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<Money>, D::Error> {
    use serde::de::Error as _;
    let s = match Option::<StrOrInt>::deserialize(d)? {
        None => return Ok(None),
        Some(StrOrInt::Int(n)) => n.to_string(),
        Some(StrOrInt::Str(s)) => s,
    };
    parse_budget(&s).map(Some).map_err(|e| D::Error::custom(e.message()))
}

fn de_cloud<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<Cloud>, D::Error> {
    use serde::de::Error as _;
    Option::<String>::deserialize(d)?
        .map(|s| s.parse::<Cloud>().map_err(|e| D::Error::custom(e.to_string())))
        .transpose()
}

#[derive(Deserialize)]
#[serde(untagged)]
enum StrOrInt {
    Int(i64),
    Str(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use herd_core::ErrorKind;
    use std::collections::HashMap;

    struct MapEnv(HashMap<&'static str, String>);
    impl Env for MapEnv {
        fn var(&self, name: &str) -> Option<String> {
            self.0.get(name).cloned()
        }
    }

    fn env(pairs: &[(&'static str, &str)]) -> MapEnv {
        MapEnv(pairs.iter().map(|(k, v)| (*k, v.to_string())).collect())
    }

    fn write(dir: &Path, rel: &str, text: &str) -> PathBuf {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn precedence_defaults_user_project_env_flags() {
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().join("home");
        write(
            &home,
            ".config/herd/config.toml",
            "owner = \"Alice\"\ndeadline = \"3h\"\nregion = \"local-west-1\"\n[budget]\nper_day = \"$80\"\n",
        );
        let proj = tmp.path().join("proj");
        write(&proj, "herd.toml", "deadline = \"1h\"\n[budget]\nper_launch = 20\n");
        let sub = proj.join("a/b");
        std::fs::create_dir_all(&sub).unwrap();
        let e = env(&[
            ("HOME", home.to_str().unwrap()),
            ("USER", "bob"),
            ("HERD_REGION", "local-eu-1"),
        ]);
        let flags = Overrides {
            deadline: Some("30m".into()),
            ..Default::default()
        };
        let s = Settings::load_from(&flags, &e, &sub).unwrap();
        assert_eq!(s.owner, "alice");
        assert_eq!(s.deadline, Duration::from_secs(1800));
        assert_eq!(s.region.as_deref(), Some("local-eu-1"));
        assert_eq!(s.budget.per_launch, Money::parse_usd("20").unwrap());
        assert_eq!(s.budget.per_day, Money::parse_usd("80").unwrap());
        assert_eq!(s.files.len(), 2);
        assert_eq!(s.cloud, Cloud::Local);

        let s = Settings::load_from(&Overrides::default(), &e, &sub).unwrap();
        assert_eq!(s.deadline, Duration::from_secs(3600), "project beats user");
    }

    #[test]
    fn defaults_are_modest() {
        let tmp = tempfile::tempdir().unwrap();
        let e = env(&[("HOME", tmp.path().to_str().unwrap()), ("USER", "Carol.X")]);
        let s = Settings::load_from(&Overrides::default(), &e, tmp.path()).unwrap();
        assert_eq!(s.owner, "carol-x");
        assert_eq!(s.guardrails().budget, Budget::default());
        assert_eq!(s.keepalive, Some(Duration::from_secs(1200)));
        assert!(s.files.is_empty());
    }

    #[test]
    fn unknown_key_names_file_line_and_suggests() {
        let tmp = tempfile::tempdir().unwrap();
        let p = write(tmp.path(), "herd.toml", "owner = \"a\"\n\nbudgett = 3\n");
        let e = env(&[("HOME", tmp.path().to_str().unwrap())]);
        let err = Settings::load_from(&Overrides::default(), &e, tmp.path()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConfigInvalid);
        assert_eq!(
            err.message(),
            format!("invalid config {}:3:1: unknown field `budgett`", p.display())
        );
        assert_eq!(err.hint(), Some("did you mean `budget`?"));
    }

    #[test]
    fn nested_unknown_key_and_bad_values() {
        let tmp = tempfile::tempdir().unwrap();
        let e = env(&[("HOME", tmp.path().to_str().unwrap())]);
        write(tmp.path(), "herd.toml", "[simulator.faults]\ntrottle = true\n");
        let err = Settings::load_from(&Overrides::default(), &e, tmp.path()).unwrap_err();
        assert!(
            err.message().ends_with("herd.toml:2:1: unknown field `trottle`"),
            "{err}"
        );
        assert_eq!(err.hint(), Some("did you mean `throttle`?"));

        write(tmp.path(), "herd.toml", "deadline = \"abc\"\n");
        let err = Settings::load_from(&Overrides::default(), &e, tmp.path()).unwrap_err();
        assert!(err.message().contains(":1:12: `abc` is not a duration"), "{err}");

        write(tmp.path(), "herd.toml", "cloud = \"awz\"\n");
        let err = Settings::load_from(&Overrides::default(), &e, tmp.path()).unwrap_err();
        assert!(err.message().contains("did you mean `aws`"), "{err}");
    }

    #[test]
    fn env_and_flag_errors_name_their_origin() {
        let tmp = tempfile::tempdir().unwrap();
        let e = env(&[("HOME", tmp.path().to_str().unwrap()), ("HERD_BUDGET_PER_DAY", "lots")]);
        let err = Settings::load_from(&Overrides::default(), &e, tmp.path()).unwrap_err();
        assert!(err.message().starts_with("invalid HERD_BUDGET_PER_DAY=`lots`"), "{err}");

        let e = env(&[("HOME", tmp.path().to_str().unwrap())]);
        let flags = Overrides {
            deadline: Some("-5m".into()),
            ..Default::default()
        };
        let err = Settings::load_from(&flags, &e, tmp.path()).unwrap_err();
        assert_eq!(err.message(), "--deadline: `-5m` is not a duration");
        assert!(err.hint().is_some());
    }

    #[test]
    fn relative_paths_are_relative_to_their_file() {
        let tmp = tempfile::tempdir().unwrap();
        write(
            tmp.path(),
            "herd.toml",
            "ledger = \"state/ledger.db\"\nkeepalive = 0\n[simulator]\nstate_dir = \"sim\"\n[simulator.faults]\nboot_delay = \"200ms\"\n",
        );
        let e = env(&[("HOME", tmp.path().to_str().unwrap())]);
        let s = Settings::load_from(&Overrides::default(), &e, tmp.path()).unwrap();
        assert_eq!(s.ledger, tmp.path().join("state/ledger.db"));
        assert_eq!(s.simulator.state_dir, tmp.path().join("sim"));
        assert_eq!(s.keepalive, None);
        assert_eq!(
            s.simulator.faults.boot_delay,
            Some((Duration::from_millis(200), Duration::from_millis(200)))
        );
    }

    #[test]
    fn explicit_config_must_exist() {
        let tmp = tempfile::tempdir().unwrap();
        let e = env(&[("HOME", tmp.path().to_str().unwrap())]);
        let flags = Overrides {
            config: Some("nope.toml".into()),
            ..Default::default()
        };
        let err = Settings::load_from(&flags, &e, tmp.path()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConfigInvalid);
        let e = env(&[("HERD_CONFIG", "/nonexistent/herd/config.toml")]);
        assert!(Settings::load_from(&Overrides::default(), &e, tmp.path()).is_err());
    }

    #[test]
    fn aws_section_env_and_profile_flag() {
        let tmp = tempfile::tempdir().unwrap();
        write(
            tmp.path(),
            "herd.toml",
            "[aws]\nprofile = \"ml\"\nregion = \"eu-west-1\"\nkey_dir = \"keys\"\n",
        );
        let e = env(&[
            ("HOME", tmp.path().to_str().unwrap()),
            ("HERD_AWS_SSH_CIDR", "203.0.113.7/32"),
        ]);
        let s = Settings::load_from(&Overrides::default(), &e, tmp.path()).unwrap();
        assert_eq!(s.aws.profile.as_deref(), Some("ml"));
        assert_eq!(s.aws.region.as_deref(), Some("eu-west-1"));
        assert_eq!(s.aws.ssh_cidr.as_deref(), Some("203.0.113.7/32"));
        assert_eq!(s.aws.key_dir, tmp.path().join("keys"));
        assert!(s.aws.regions.is_empty(), "every enabled region by default");
        let flags = Overrides {
            profile: Some("other".into()),
            ..Default::default()
        };
        let s = Settings::load_from(&flags, &e, tmp.path()).unwrap();
        assert_eq!(s.aws.profile.as_deref(), Some("other"), "the flag wins");
        write(tmp.path(), "herd.toml", "[aws]\nprofil = \"ml\"\n");
        let err = Settings::load_from(&Overrides::default(), &e, tmp.path()).unwrap_err();
        assert!(err.hint().unwrap_or("").contains("profile"), "{err:?}");
    }

    #[test]
    fn aws_counts_as_configured_only_when_something_says_so() {
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().to_str().unwrap();
        let load = |pairs: &[(&'static str, &str)]| {
            Settings::load_from(&Overrides::default(), &env(pairs), tmp.path()).unwrap()
        };
        assert_eq!(load(&[("HOME", home)]).aws.configured_by, None);
        assert_eq!(
            load(&[("HOME", home), ("AWS_PROFILE", "ml")])
                .aws
                .configured_by
                .as_deref(),
            Some("AWS_PROFILE is set")
        );
        assert_eq!(
            load(&[("HOME", home), ("HERD_CLOUD", "aws")])
                .aws
                .configured_by
                .as_deref(),
            Some("the default cloud is aws")
        );
        write(tmp.path(), "home/.aws/credentials", "[default]\n");
        let home2 = tmp.path().join("home");
        let s = load(&[("HOME", home2.to_str().unwrap())]);
        assert!(s.aws.configured_by.unwrap().ends_with(".aws/credentials exists"));
        write(tmp.path(), "herd.toml", "[aws]\n");
        let s = load(&[("HOME", home)]);
        assert!(s.aws.configured_by.unwrap().starts_with("an [aws] section in "));
    }

    #[test]
    fn retry_patience_from_file_and_environment() {
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().to_str().unwrap();
        write(tmp.path(), "herd.toml", "[retry]\npatience = \"5m\"\n");
        let s = Settings::load_from(&Overrides::default(), &env(&[("HOME", home)]), tmp.path()).unwrap();
        assert_eq!(s.retry_patience, Some(Duration::from_secs(300)));
        assert_eq!(s.retry_policy().patience, Duration::from_secs(300));
        let e = env(&[("HOME", home), ("HERD_RETRY_PATIENCE", "30s")]);
        let s = Settings::load_from(&Overrides::default(), &e, tmp.path()).unwrap();
        assert_eq!(
            s.retry_policy().rate_limit_patience,
            Duration::from_secs(30),
            "the environment wins"
        );
        write(tmp.path(), "herd.toml", "[retry]\npatience = \"30d\"\n");
        let err = Settings::load_from(&Overrides::default(), &env(&[("HOME", home)]), tmp.path()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConfigInvalid, "{err}");
        write(tmp.path(), "herd.toml", "[retry]\npatients = 3\n");
        let err = Settings::load_from(&Overrides::default(), &env(&[("HOME", home)]), tmp.path()).unwrap_err();
        assert_eq!(err.hint(), Some("did you mean `patience`?"));
    }

    #[test]
    fn line_col_counts_from_one() {
        assert_eq!(line_col("ab\ncd", 0), (1, 1));
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
    }
}
