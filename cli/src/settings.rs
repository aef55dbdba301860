//! The one settings step: defaults <- user config <- project `herd.toml` <- `--config`
//! file <- `HERD_*` environment <- flags, merged by the `config` crate.
//!
//! Who owns what: the keys every command shares (owner, cloud, deadline, `[budget]`,
//! `[retry]`, `[catalog]`) are [`Common`], here. Each backend's section (`[aws]`,
//! `[simulator]`) is a struct in the backend's own `config.rs`, with its defaults and its
//! variables, and reaches this file only through its entry in
//! [`crate::registry::BACKENDS`]: nothing here names a backend.
//!
//! Why each file is read twice. `config` merges layers (tables deep-merge, the higher
//! layer wins key by key) but cannot say where a mistake is: its values carry no line
//! numbers, and it ignores keys no struct asks for. So before the merge herd runs its own
//! check pass over every file ([`read_checked`]): `toml` parses the text, keeping spans,
//! and each part is deserialized from that same text into its typed struct with
//! `deny_unknown_fields` (the top-level keys against [`Common`]'s fields plus the
//! registered sections, then [`Common`], then every backend section present), so an
//! unknown key or a bad value is an error naming the file, line, column and key, with a
//! "did you mean" from the key list serde reports. Variables and flags are checked one by
//! one before they become the top two layers, so their errors name the variable or the
//! flag. What `config` merges has therefore all been checked; reading it back typed
//! ([`Settings::section`]) cannot fail on a value.
//!
//! Start-up cost: a missing file is one failed `open`, nothing is built for it; the check
//! pass and the merge are microseconds on files of a few lines (figures in
//! `docs/adding-a-backend.md`, "Start-up time").

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use config::{ConfigError, Value, ValueKind};
use herd_core::guardrails::parse_duration;
use herd_core::suggest::did_you_mean;
use herd_core::{tags, Budget, Cloud, Error, Guardrails, Money, Result, RetryPolicy};
use serde::de::{DeserializeOwned, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::registry::{self, Backend};

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
    pub catalog: CatalogSettings,
    /// `[retry] patience` / `HERD_RETRY_PATIENCE`: how long one cloud call keeps being
    /// retried (throttling, outages, hangs) before herd gives up; `None`: core's defaults.
    pub retry_patience: Option<Duration>,
    /// `[logs] warn_mb_per_min` / `HERD_LOGS_WARN_MB_PER_MIN`: an instance writing more
    /// output than this is warned about (`exec`, `logs`); 0 turns the warning off.
    pub log_warn_mb_per_min: f64,
    /// herd's data directory (`$XDG_DATA_HOME/herd`, else `~/.local/share/herd`), under
    /// which a backend keeps what its section does not place elsewhere (AWS: `keys`).
    pub data_dir: PathBuf,
    /// Config files that were read, lowest precedence first.
    pub files: Vec<PathBuf>,
    /// Every layer, merged; backends read their section with [`Settings::section`].
    merged: config::Config,
    /// Per registered section, the highest-precedence file that has it.
    section_files: BTreeMap<&'static str, PathBuf>,
    /// Per registered cloud that counts as configured, why (see [`registry::configured_by`]).
    configured: Vec<(Cloud, String)>,
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

/// What flags contribute to the merge (the top layer).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub config: Option<PathBuf>,
    pub cloud: Option<String>,
    pub region: Option<String>,
    pub deadline: Option<String>,
    pub keepalive: Option<String>,
    pub budget_per_launch: Option<String>,
    /// Flags that set a key of a backend's section (`--aws-profile`), from
    /// [`registry::section_flags`].
    pub sections: Vec<SectionFlag>,
}

/// A flag that sets one key of a backend's section, e.g. `--aws-profile` -> `aws.profile`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionFlag {
    /// As errors name it: `--aws-profile`.
    pub flag: &'static str,
    /// `section.key`.
    pub key: &'static str,
    pub value: String,
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
        let mut layers = config::Config::builder();
        let mut files = Vec::new();
        let mut section_files = BTreeMap::new();

        let user = match env.var("HERD_CONFIG") {
            Some(p) => Some((PathBuf::from(p), true)),
            None => user_config_path(env).map(|p| (p, false)),
        };
        let project = find_project_file(cwd).map(|p| (p, false));
        let explicit = flags.config.as_ref().map(|p| (cwd.join(p), true));
        for (path, required) in [user, project, explicit].into_iter().flatten() {
            let Some(table) = read_checked(&path, required)? else {
                continue;
            };
            for b in registry::BACKENDS {
                if table.contains_key(b.section) {
                    section_files.insert(b.section, path.clone());
                }
            }
            layers = layers.add_source(Layer::from_file(&path, table));
            files.push(path);
        }
        layers = layers.add_source(env_layer(env)?);
        layers = layers.add_source(flag_layer(flags)?);
        let merged = layers.build().map_err(merged_error)?;
        let common: Common = merged.clone().try_deserialize().map_err(merged_error)?;
        let mut settings = common.resolve(env, files, merged, section_files)?;
        for b in registry::BACKENDS {
            (b.validate)(&settings)?;
        }
        let var = |k: &str| env.var(k);
        let mut configured = Vec::new();
        for b in registry::BACKENDS {
            if let Some(why) = registry::configured_by(b, &settings, &var)? {
                configured.push((b.cloud, why));
            }
        }
        settings.configured = configured;
        Ok(settings)
    }

    /// A backend's section, merged over every layer; absent everywhere: its default.
    /// Checked when the settings were loaded, so an error here is herd's own bug.
    pub fn section<S: DeserializeOwned + Default>(&self, name: &str) -> Result<S> {
        match self.merged.get::<S>(name) {
            Ok(s) => Ok(s),
            Err(ConfigError::NotFound(_)) => Ok(S::default()),
            Err(e) => Err(merged_error(e)),
        }
    }

    /// The highest-precedence config file with a `[name]` section.
    pub fn section_file(&self, name: &str) -> Option<&Path> {
        self.section_files.get(name).map(PathBuf::as_path)
    }

    /// Why `cloud` counts as configured (so `ls`, `down`, `cost` and `reap` include it);
    /// `None`: nothing in the settings says so (the ledger may still, see
    /// `Context::configured`). Decided at load, from variables and file existence only.
    pub fn configured_by(&self, cloud: Cloud) -> Option<&str> {
        self.configured
            .iter()
            .find(|(c, _)| *c == cloud)
            .map(|(_, why)| why.as_str())
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

/// `$XDG_DATA_HOME/herd`, else `~/.local/share/herd`.
fn data_dir(env: &dyn Env) -> PathBuf {
    env.var("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| env.var("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .or_else(dirs::data_dir)
        .unwrap_or_else(|| PathBuf::from("."))
        .join("herd")
}

/// The nearest `herd.toml` in `start` or one of its parents.
fn find_project_file(start: &Path) -> Option<PathBuf> {
    start.ancestors().map(|d| d.join("herd.toml")).find(|p| p.is_file())
}

/// The keys every command shares, in the shape of the config file's top level. Not
/// `deny_unknown_fields`: the backends' sections sit beside these keys; the top-level
/// names are checked by [`RootKeys`] instead.
#[derive(Debug, Default, Deserialize)]
struct Common {
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
    budget: Option<BudgetSection>,
    catalog: Option<CatalogSection>,
    retry: Option<RetrySection>,
    logs: Option<LogsSection>,
}

/// `[logs]`: when an instance's output rate is worth a warning.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LogsSection {
    warn_mb_per_min: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RetrySection {
    #[serde(default, deserialize_with = "de_duration")]
    patience: Option<Duration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogSection {
    overlay_dir: Option<PathBuf>,
    max_price_age_days: Option<i64>,
    aws_pricing_url: Option<String>,
    azure_prices_url: Option<String>,
    gcp_billing_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct BudgetSection {
    #[serde(default, deserialize_with = "de_money")]
    per_launch: Option<Money>,
    #[serde(default, deserialize_with = "de_money")]
    per_day: Option<Money>,
}

/// [`Common`]'s keys that hold paths: in a file, relative to that file.
const COMMON_PATHS: &[&str] = &["ledger", "catalog.overlay_dir"];

/// How a shared variable's or flag's text is checked before it joins the merge (so the
/// error names the variable or flag, with herd's hint).
#[derive(Debug, Clone, Copy)]
enum Kind {
    Text,
    Duration,
    Money,
    Cloud,
    Days,
    /// A non-negative number (a rate).
    Number,
}

/// The shared variables: name, key, kind. Backends declare theirs in their section.
const COMMON_ENV: &[(&str, &str, Kind)] = &[
    ("HERD_OWNER", "owner", Kind::Text),
    ("HERD_CLOUD", "cloud", Kind::Cloud),
    ("HERD_REGION", "region", Kind::Text),
    ("HERD_LEDGER", "ledger", Kind::Text),
    ("HERD_DEADLINE", "deadline", Kind::Duration),
    ("HERD_KEEPALIVE", "keepalive", Kind::Duration),
    ("HERD_BUDGET_PER_LAUNCH", "budget.per_launch", Kind::Money),
    ("HERD_BUDGET_PER_DAY", "budget.per_day", Kind::Money),
    ("HERD_RETRY_PATIENCE", "retry.patience", Kind::Duration),
    ("HERD_LOGS_WARN_MB_PER_MIN", "logs.warn_mb_per_min", Kind::Number),
    ("HERD_CATALOG_DIR", "catalog.overlay_dir", Kind::Text),
    ("HERD_MAX_PRICE_AGE_DAYS", "catalog.max_price_age_days", Kind::Days),
    ("HERD_AWS_PRICING_URL", "catalog.aws_pricing_url", Kind::Text),
    ("HERD_AZURE_PRICES_URL", "catalog.azure_prices_url", Kind::Text),
    ("HERD_GCP_BILLING_URL", "catalog.gcp_billing_url", Kind::Text),
];

impl Kind {
    fn check(self, text: &str) -> Result<()> {
        match self {
            Kind::Text => Ok(()),
            Kind::Duration => parse_duration(text).map(drop),
            Kind::Money => parse_budget(text).map(drop),
            Kind::Cloud => text.parse::<Cloud>().map(drop),
            Kind::Days => text
                .parse::<i64>()
                .ok()
                .filter(|d| *d >= 0)
                .map(drop)
                .ok_or_else(|| Error::config("not a number of days")),
            Kind::Number => text
                .parse::<f64>()
                .ok()
                .filter(|n| *n >= 0.0 && n.is_finite())
                .map(drop)
                .ok_or_else(|| Error::config("not a non-negative number")),
        }
    }
}

/// One layer for `config`: values keyed by dotted path (`budget.per_day`), each value
/// carrying where it came from.
#[derive(Debug, Clone, Default)]
struct Layer {
    values: config::Map<String, Value>,
}

impl Layer {
    /// A checked file's table (paths already made absolute).
    fn from_file(path: &Path, table: toml::Table) -> Layer {
        let origin = path.display().to_string();
        Layer {
            values: table.into_iter().map(|(k, v)| (k, to_config(v, &origin))).collect(),
        }
    }

    fn set(&mut self, key: &str, value: &str, origin: &str) {
        let origin = origin.to_string();
        self.values
            .insert(key.to_string(), Value::new(Some(&origin), value.to_string()));
    }
}

impl config::Source for Layer {
    fn clone_into_box(&self) -> Box<dyn config::Source + Send + Sync> {
        Box::new(self.clone())
    }

    fn collect(&self) -> std::result::Result<config::Map<String, Value>, ConfigError> {
        Ok(self.values.clone())
    }
}

fn to_config(v: toml::Value, origin: &String) -> Value {
    let kind = match v {
        toml::Value::String(s) => ValueKind::String(s),
        toml::Value::Integer(i) => ValueKind::I64(i),
        toml::Value::Float(f) => ValueKind::Float(f),
        toml::Value::Boolean(b) => ValueKind::Boolean(b),
        toml::Value::Datetime(d) => ValueKind::String(d.to_string()),
        toml::Value::Array(a) => ValueKind::Array(a.into_iter().map(|x| to_config(x, origin)).collect()),
        toml::Value::Table(t) => ValueKind::Table(t.into_iter().map(|(k, x)| (k, to_config(x, origin))).collect()),
    };
    Value::new(Some(origin), kind)
}

/// The `HERD_*` layer: the shared variables, then each backend's, each checked alone.
fn env_layer(env: &dyn Env) -> Result<Layer> {
    let bad = |var: &str, val: &str, e: Error| {
        let mut out = Error::config(format!(
            "invalid {var}=`{}`: {}",
            herd_core::suggest::quoted(val),
            e.message()
        ))
        .with_suggestions(e.suggestions().to_vec());
        if let Some(h) = e.hint() {
            out = out.with_hint(h.to_string());
        }
        out
    };
    let mut layer = Layer::default();
    for (var, key, kind) in COMMON_ENV {
        if let Some(v) = env.var(var) {
            kind.check(&v).map_err(|e| bad(var, &v, e))?;
            layer.set(key, &v, var);
        }
    }
    for b in registry::BACKENDS {
        for (var, key) in b.env {
            if let Some(v) = env.var(var) {
                check_section_value(b, key, &v).map_err(|e| bad(var, &v, e))?;
                layer.set(&format!("{}.{key}", b.section), &v, var);
            }
        }
    }
    Ok(layer)
}

/// The flags layer, each flag checked alone.
fn flag_layer(f: &Overrides) -> Result<Layer> {
    let bad = |name: &str, e: Error| {
        let mut out =
            Error::invalid_spec(format!("{name}: {}", e.message())).with_suggestions(e.suggestions().to_vec());
        if let Some(h) = e.hint() {
            out = out.with_hint(h.to_string());
        }
        out
    };
    let mut layer = Layer::default();
    for (flag, key, kind, value) in [
        ("--cloud", "cloud", Kind::Cloud, &f.cloud),
        ("--region", "region", Kind::Text, &f.region),
        ("--deadline", "deadline", Kind::Duration, &f.deadline),
        ("--keepalive", "keepalive", Kind::Duration, &f.keepalive),
        ("--budget", "budget.per_launch", Kind::Money, &f.budget_per_launch),
    ] {
        if let Some(v) = value {
            kind.check(v).map_err(|e| bad(flag, e))?;
            layer.set(key, v, flag);
        }
    }
    for s in &f.sections {
        let (section, key) = s.key.split_once('.').unwrap_or((s.key, ""));
        let b = registry::BACKENDS
            .iter()
            .find(|b| b.section == section)
            .ok_or_else(|| Error::unexpected(format!("{} sets `{}`, which no backend owns", s.flag, s.key)))?;
        check_section_value(b, key, &s.value).map_err(|e| bad(s.flag, e))?;
        layer.set(s.key, &s.value, s.flag);
    }
    Ok(layer)
}

/// One key of a backend's section, given as text, against the backend's struct.
fn check_section_value(b: &Backend, key: &str, value: &str) -> Result<()> {
    (b.shape.check_value)(key, value).map_err(|e| {
        Error::config(config_message(&e)).with_hint(format!("see the [{}] keys in cli/README.md", b.section))
    })
}

/// What `config` merged could not be read back: every value was checked first, so this
/// is herd's own mistake, reported with the key and origin `config` knows.
fn merged_error(e: ConfigError) -> Error {
    Error::config(format!("invalid settings: {e}")).with_hint("see cli/README.md for the config keys")
}

/// A `config` error without the key and origin it appends (the caller names those).
fn config_message(e: &ConfigError) -> String {
    match e {
        ConfigError::At { error, .. } => config_message(error),
        ConfigError::Type {
            unexpected, expected, ..
        } => format!("invalid type: {unexpected}, expected {expected}"),
        other => other.to_string(),
    }
}

/// A section's typed shape with the type erased, for the registry: the backend struct
/// `S` is known where the entry is written, the check pass and the variables only see
/// these functions.
#[derive(Clone, Copy)]
pub struct Shape {
    /// The check pass over one file's text: `[section]` read into `S` (spans kept).
    check_file: fn(text: &str, section: &'static str) -> std::result::Result<(), toml::de::Error>,
    /// One key given as text (a variable, a flag) read into `S` alone.
    check_value: fn(key: &str, value: &str) -> std::result::Result<(), ConfigError>,
}

impl std::fmt::Debug for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Shape")
    }
}

impl Shape {
    pub const fn of<S: DeserializeOwned>() -> Shape {
        Shape {
            check_file: check_file_section::<S>,
            check_value: check_value::<S>,
        }
    }
}

fn check_file_section<S: DeserializeOwned>(
    text: &str,
    section: &'static str,
) -> std::result::Result<(), toml::de::Error> {
    Pick::<S> {
        name: section,
        shape: PhantomData,
    }
    .deserialize(toml::Deserializer::new(text))
}

fn check_value<S: DeserializeOwned>(key: &str, value: &str) -> std::result::Result<(), ConfigError> {
    let mut t = config::Map::new();
    t.insert(key.to_string(), Value::new(None, value.to_string()));
    S::deserialize(Value::new(None, ValueKind::Table(t))).map(drop)
}

/// Reads a config file and runs the check pass over it; a missing file is `None` unless
/// it was asked for by name. The table comes back with relative paths made relative to
/// the file, so a project's herd.toml works from any subdirectory.
fn read_checked(path: &Path, required: bool) -> Result<Option<toml::Table>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => return Ok(None),
        Err(e) => {
            return Err(Error::config(format!("cannot read config {}", path.display()))
                .with_hint("check the path given by --config or $HERD_CONFIG")
                .with_source(e))
        }
    };
    let bad = |e: toml::de::Error| config_error(path, &text, &e);
    let mut table: toml::Table = text.parse().map_err(bad)?;
    // The top-level keys first (re-read with spans only when one is unknown), then the
    // shared keys' values, then each backend's section present.
    let known = root_keys();
    if table.keys().any(|k| !known.contains(&k.as_str())) {
        toml::from_str::<RootKeys>(&text).map_err(bad)?;
    }
    toml::from_str::<Common>(&text).map_err(bad)?;
    for b in registry::BACKENDS {
        if table.contains_key(b.section) {
            (b.shape.check_file)(&text, b.section).map_err(bad)?;
        }
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    for key in COMMON_PATHS.iter().map(|k| k.to_string()).chain(
        registry::BACKENDS
            .iter()
            .flat_map(|b| b.paths.iter().map(move |k| format!("{}.{k}", b.section))),
    ) {
        relative_to(&mut table, &key, dir);
    }
    Ok(Some(table))
}

/// Makes the string at dotted `key` relative to `dir` (an absolute path stays as is).
fn relative_to(table: &mut toml::Table, key: &str, dir: &Path) {
    let (head, rest) = match key.split_once('.') {
        Some((h, r)) => (h, Some(r)),
        None => (key, None),
    };
    match (table.get_mut(head), rest) {
        (Some(toml::Value::Table(t)), Some(rest)) => relative_to(t, rest, dir),
        (Some(v @ toml::Value::String(_)), None) => {
            if let toml::Value::String(s) = v {
                *v = toml::Value::String(dir.join(&*s).display().to_string());
            }
        }
        _ => {}
    }
}

/// The names allowed at the top of a config file: [`Common`]'s fields and every
/// registered section.
fn root_keys() -> &'static [&'static str] {
    static KEYS: OnceLock<Vec<&'static str>> = OnceLock::new();
    KEYS.get_or_init(|| {
        let mut k = field_names::<Common>().to_vec();
        k.extend(registry::BACKENDS.iter().map(|b| b.section));
        k
    })
}

/// The field names of a derived struct, as serde lists them (asks the struct to
/// deserialize from a deserializer that only records them), so no list is kept by hand.
fn field_names<T: DeserializeOwned>() -> &'static [&'static str] {
    struct Names<'a>(&'a mut &'static [&'static str]);
    impl<'de> Deserializer<'de> for Names<'_> {
        type Error = serde::de::value::Error;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> std::result::Result<V::Value, Self::Error> {
            Err(serde::de::Error::custom("not a struct"))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> std::result::Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(serde::de::Error::custom("names taken"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
            option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
        }
    }
    let mut names: &'static [&'static str] = &[];
    let _ = T::deserialize(Names(&mut names));
    names
}

/// The check of the top-level names: deserializing it fails on the first unknown one,
/// from inside the key so `toml` attaches that key's span.
struct RootKeys;

impl<'de> Deserialize<'de> for RootKeys {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RootKeys;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a table")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<RootKeys, A::Error> {
                while map.next_key_seed(KnownKey(root_keys()))?.is_some() {
                    map.next_value::<IgnoredAny>()?;
                }
                Ok(RootKeys)
            }
        }
        d.deserialize_map(V)
    }
}

/// A key that must be one of a list (serde's own "unknown field" error otherwise).
struct KnownKey(&'static [&'static str]);

impl<'de> DeserializeSeed<'de> for KnownKey {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for KnownKey {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<(), E> {
        if self.0.contains(&v) {
            Ok(())
        } else {
            Err(E::unknown_field(v, self.0))
        }
    }
}

/// One section of a file's top level read into `S`, the others skipped.
struct Pick<S> {
    name: &'static str,
    shape: PhantomData<S>,
}

impl<'de, S: DeserializeOwned> DeserializeSeed<'de> for Pick<S> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, S: DeserializeOwned> Visitor<'de> for Pick<S> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "a table with a [{}] section", self.name)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<(), A::Error> {
        while let Some(k) = map.next_key::<String>()? {
            if k == self.name {
                map.next_value::<S>()?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

impl Common {
    fn resolve(
        self,
        env: &dyn Env,
        files: Vec<PathBuf>,
        merged: config::Config,
        section_files: BTreeMap<&'static str, PathBuf>,
    ) -> Result<Settings> {
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
        let cat = self.catalog.unwrap_or_default();
        let default_endpoints = herd_catalog::refresh::Endpoints::default();
        let retry_patience = self.retry.and_then(|r| r.patience);
        if let Some(p) = retry_patience {
            RetryPolicy::check_patience(p)?;
        }
        let log_warn_mb_per_min = self
            .logs
            .and_then(|l| l.warn_mb_per_min)
            .unwrap_or(herd_guest::lograte::DEFAULT_WARN_MB_PER_MIN);
        if !(log_warn_mb_per_min >= 0.0 && log_warn_mb_per_min.is_finite()) {
            return Err(
                Error::config(format!("[logs] warn_mb_per_min = {log_warn_mb_per_min} is not a rate"))
                    .with_hint("a number of MB per minute, e.g. 1; 0 turns the warning off"),
            );
        }
        let keepalive_explicit = self.keepalive.is_some();
        let keepalive = match self.keepalive {
            Some(k) if k.is_zero() => None,
            Some(k) => Some(k),
            None => defaults.default_keepalive,
        };
        Ok(Settings {
            owner,
            cloud: self.cloud.unwrap_or(Cloud::Local),
            region: self.region,
            ledger: self.ledger.unwrap_or_else(herd_ledger::Ledger::default_path),
            deadline: self.deadline.unwrap_or(defaults.default_deadline),
            keepalive,
            keepalive_explicit,
            log_warn_mb_per_min,
            max_count: self.max_count.unwrap_or(defaults.max_count),
            max_deadline: self.max_deadline.unwrap_or(defaults.max_deadline),
            budget: Budget {
                per_launch: budget.per_launch.unwrap_or(defaults.budget.per_launch),
                per_day: budget.per_day.unwrap_or(defaults.budget.per_day),
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
            retry_patience,
            data_dir: data_dir(env),
            files,
            merged,
            section_files,
            configured: Vec::new(),
        })
    }
}

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
    use herd_aws::config::AwsSection;
    use herd_core::ErrorKind;
    use herd_local::SimulatorSection;
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
        let sim: SimulatorSection = s.section(SimulatorSection::NAME).unwrap();
        assert_eq!(sim.state_dir(), tmp.path().join("sim"));
        assert_eq!(s.keepalive, None);
        assert_eq!(
            sim.faults.unwrap().boot_delay,
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

    fn aws(s: &Settings) -> herd_aws::AwsConfig {
        s.section::<AwsSection>(AwsSection::NAME)
            .unwrap()
            .into_config(&s.owner, s.region.as_deref(), &s.data_dir)
    }

    fn aws_profile(v: &str) -> Overrides {
        Overrides {
            sections: vec![SectionFlag {
                flag: "--aws-profile",
                key: "aws.profile",
                value: v.into(),
            }],
            ..Default::default()
        }
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
        let a = aws(&s);
        assert_eq!(a.profile.as_deref(), Some("ml"));
        assert_eq!(a.region.as_deref(), Some("eu-west-1"));
        assert_eq!(a.ssh_cidr.as_deref(), Some("203.0.113.7/32"));
        assert_eq!(a.key_dir, tmp.path().join("keys"));
        assert!(a.regions.is_empty(), "every enabled region by default");
        let s = Settings::load_from(&aws_profile("other"), &e, tmp.path()).unwrap();
        assert_eq!(aws(&s).profile.as_deref(), Some("other"), "the flag wins");
        write(tmp.path(), "herd.toml", "[aws]\nprofil = \"ml\"\n");
        let err = Settings::load_from(&Overrides::default(), &e, tmp.path()).unwrap_err();
        assert!(err.hint().unwrap_or("").contains("profile"), "{err:?}");
        assert!(
            err.message().ends_with("herd.toml:2:1: unknown field `profil`"),
            "{err}"
        );
    }

    #[test]
    fn aws_defaults_come_from_its_section() {
        let tmp = tempfile::tempdir().unwrap();
        let e = env(&[
            ("HOME", tmp.path().to_str().unwrap()),
            ("HERD_REGION", "us-west-2"),
            ("HERD_AWS_REGIONS", "us-east-1, us-west-2"),
        ]);
        let s = Settings::load_from(&Overrides::default(), &e, tmp.path()).unwrap();
        let a = aws(&s);
        assert_eq!(a.key_dir, tmp.path().join(".local/share/herd/keys"));
        assert_eq!(
            a.region.as_deref(),
            Some("us-west-2"),
            "herd's region when [aws] has none"
        );
        assert_eq!(a.regions, ["us-east-1", "us-west-2"]);
        assert_eq!(
            s.configured_by(Cloud::Aws),
            None,
            "HERD_AWS_REGIONS alone configures nothing"
        );
    }

    #[test]
    fn aws_counts_as_configured_only_when_something_says_so() {
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().to_str().unwrap();
        let load = |pairs: &[(&'static str, &str)]| {
            Settings::load_from(&Overrides::default(), &env(pairs), tmp.path()).unwrap()
        };
        let why = |s: Settings| s.configured_by(Cloud::Aws).map(str::to_string);
        assert_eq!(why(load(&[("HOME", home)])), None);
        assert_eq!(
            why(load(&[("HOME", home), ("AWS_PROFILE", "ml")])).as_deref(),
            Some("AWS_PROFILE is set")
        );
        assert_eq!(
            why(load(&[("HOME", home), ("HERD_CLOUD", "aws")])).as_deref(),
            Some("the default cloud is aws")
        );
        assert!(why(load(&[("HOME", home), ("HERD_AWS_PROFILE", "ml")]))
            .unwrap()
            .starts_with("herd's AWS settings"));
        write(tmp.path(), "home/.aws/credentials", "[default]\n");
        let home2 = tmp.path().join("home");
        let s = load(&[("HOME", home2.to_str().unwrap())]);
        assert!(why(s).unwrap().ends_with(".aws/credentials exists"));
        write(tmp.path(), "herd.toml", "[aws]\n");
        let s = load(&[("HOME", home)]);
        assert!(why(s.clone()).unwrap().starts_with("an [aws] section in "));
        assert!(s.configured_by(Cloud::Local).is_some(), "the simulator always");
        assert_eq!(s.configured_by(Cloud::Gcp), None);
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
    fn sections_merge_key_by_key_over_the_layers() {
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().join("home");
        write(
            &home,
            ".config/herd/config.toml",
            "[aws]\nprofile = \"ml\"\nssh_cidr = \"203.0.113.7/32\"\n[simulator.faults]\nthrottle = true\n",
        );
        write(
            tmp.path(),
            "herd.toml",
            "[aws]\nregion = \"eu-west-1\"\n[simulator.faults]\nboot_delay = \"1s\"\n",
        );
        let e = env(&[("HOME", home.to_str().unwrap()), ("HERD_AWS_PROFILE", "env")]);
        let s = Settings::load_from(&Overrides::default(), &e, tmp.path()).unwrap();
        let a = aws(&s);
        assert_eq!(a.profile.as_deref(), Some("env"), "the environment beats both files");
        assert_eq!(a.region.as_deref(), Some("eu-west-1"));
        assert_eq!(
            a.ssh_cidr.as_deref(),
            Some("203.0.113.7/32"),
            "the user file's other keys stay"
        );
        let faults = s.section::<SimulatorSection>("simulator").unwrap().faults.unwrap();
        assert!(faults.throttle);
        assert_eq!(
            faults.boot_delay,
            Some((Duration::from_secs(1), Duration::from_secs(1)))
        );
        assert_eq!(
            s.section_file("aws"),
            Some(tmp.path().join("herd.toml").as_path()),
            "the highest-precedence file with the section"
        );
    }

    #[test]
    fn backend_section_values_name_file_line_variable_or_flag() {
        let tmp = tempfile::tempdir().unwrap();
        let e = env(&[("HOME", tmp.path().to_str().unwrap())]);
        write(tmp.path(), "herd.toml", "owner = \"a\"\n[simulator]\nseed = \"x\"\n");
        let err = Settings::load_from(&Overrides::default(), &e, tmp.path()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConfigInvalid);
        assert!(err.message().contains("herd.toml:3:8: invalid type: string"), "{err}");
        write(
            tmp.path(),
            "herd.toml",
            "[simulator.faults]\norphan_volume_rate = 1.5\n",
        );
        let err = Settings::load_from(&Overrides::default(), &e, tmp.path()).unwrap_err();
        assert!(err.message().contains("not a probability"), "checked at load: {err}");
        write(tmp.path(), "herd.toml", "[aws]\nregions = 3\n");
        let err = Settings::load_from(&Overrides::default(), &e, tmp.path()).unwrap_err();
        assert!(err.message().contains("herd.toml:2:11:"), "{err}");

        let shape = Shape::of::<SimulatorSection>();
        assert!(
            (shape.check_value)("seed", "7").is_ok(),
            "text is read as the key's type"
        );
        assert!((shape.check_value)("seed", "seven").is_err());
        assert!((shape.check_value)("sead", "7").is_err(), "unknown keys too");
    }

    #[test]
    fn the_top_level_knows_common_keys_and_every_registered_section() {
        let keys = root_keys();
        for k in [
            "owner",
            "cloud",
            "deadline",
            "max_deadline",
            "budget",
            "retry",
            "catalog",
        ] {
            assert!(keys.contains(&k), "{k} in {keys:?}");
        }
        for b in registry::BACKENDS {
            assert!(keys.contains(&b.section), "{}", b.section);
        }
        assert!(!keys.contains(&"profile"));
    }

    #[test]
    fn line_col_counts_from_one() {
        assert_eq!(line_col("ab\ncd", 0), (1, 1));
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
    }
}
