//! `herd env capture | show | check`, and what `launch --env` needs: capture (or read)
//! a lock, check it for the architecture of every type the launch names before anything
//! is billed, and wrap the instance's setup and command so the environment is built (or
//! reused by its id) first and the command runs inside it. The work is `herd-env`'s;
//! this file turns flags into its options and its findings into `error:`/`hint:` lines.

use std::collections::BTreeSet;
use std::path::Path;

use herd_core::{Arch, Cloud, Error, InstanceType};
use herd_env::capture::{Captured, Source};
use herd_env::resolve::{uv_binary, Target};
use herd_env::{CaptureOptions, IndexConfig, Lock, Mode};
use serde::Serialize;

use crate::args::{EnvArgs, EnvCaptureArgs, EnvCheckArgs, EnvCommand, EnvShowArgs};
use crate::context::Context;

pub fn run(ctx: &Context, a: &EnvArgs) -> anyhow::Result<()> {
    match &a.command {
        EnvCommand::Capture(c) => capture_cmd(ctx, c),
        EnvCommand::Show(s) => show(ctx, s),
        EnvCommand::Check(c) => check_cmd(ctx, c),
    }
}

fn lookup(k: &str) -> Option<String> {
    std::env::var(k).ok()
}

fn options(c: &EnvCaptureArgs) -> CaptureOptions {
    let source = if let Some(p) = &c.requirements {
        Source::Requirements(p.clone())
    } else if let Some(p) = &c.lock {
        Source::UvLock(p.clone())
    } else if let Some(p) = &c.pyproject {
        Source::Pyproject(p.clone())
    } else {
        Source::Installed
    };
    CaptureOptions {
        python: c.python.clone(),
        source,
        ignore: c.ignore.clone(),
        only: c.only.clone(),
        mode: if c.lenient { Mode::Lenient } else { Mode::Strict },
    }
}

/// Captures and prints the warnings (lenient drops) on stderr.
fn capture(ctx: &Context, c: &EnvCaptureArgs) -> anyhow::Result<Captured> {
    let captured = herd_env::capture(&options(c), &lookup)?;
    for w in &captured.warnings {
        ctx.printer.warn(w);
    }
    Ok(captured)
}

fn summary(lock: &Lock) -> String {
    let shipped = lock.shipped().len();
    format!(
        "env {}: Python {}, {} package(s){}, captured on {}/{}",
        lock.id(),
        lock.python,
        lock.packages.len(),
        if shipped > 0 {
            format!(" ({shipped} local, shipped as wheels)")
        } else {
            String::new()
        },
        lock.captured_system,
        lock.captured_machine
    )
}

fn capture_cmd(ctx: &Context, c: &EnvCaptureArgs) -> anyhow::Result<()> {
    let captured = capture(ctx, c)?;
    let lock = &captured.lock;
    match &c.output {
        Some(path) => {
            lock.write(path)?;
            ctx.printer.note(format!(
                "{} from {}; written to {}",
                summary(lock),
                captured.interpreter.display(),
                path.display()
            ));
        }
        None => {
            ctx.printer.line(lock.to_toml().trim_end());
            ctx.printer
                .note(format!("{} from {}", summary(lock), captured.interpreter.display()));
            if !lock.wheels.is_empty() {
                ctx.printer
                    .warn("the local wheels are not on stdout: write the lock with -o FILE to keep them beside it");
            }
        }
    }
    Ok(())
}

#[derive(Serialize)]
struct Shown<'a> {
    id: String,
    python: &'a str,
    captured_on: String,
    packages: Vec<ShownPackage>,
    index: String,
}

#[derive(Serialize)]
struct ShownPackage {
    name: String,
    version: String,
    source: String,
    detail: String,
}

fn load_or_capture(ctx: &Context, file: Option<&Path>) -> anyhow::Result<Lock> {
    Ok(match file {
        Some(f) => Lock::read(f)?,
        None => capture(ctx, &EnvCaptureArgs::default())?.lock,
    })
}

fn show(ctx: &Context, s: &EnvShowArgs) -> anyhow::Result<()> {
    let lock = load_or_capture(ctx, s.file.as_deref())?;
    let index = IndexConfig::from_lookup(&lookup);
    if s.json {
        return ctx.printer.json(&Shown {
            id: lock.id(),
            python: &lock.python,
            captured_on: format!("{}/{}", lock.captured_system, lock.captured_machine),
            packages: lock
                .packages
                .iter()
                .map(|p| ShownPackage {
                    name: p.name.clone(),
                    version: p.version.clone(),
                    source: p.source.clone(),
                    detail: p.describe(),
                })
                .collect(),
            index: index.describe(),
        });
    }
    ctx.printer.line(summary(&lock));
    for p in &lock.packages {
        ctx.printer.line(format!("  {}", p.describe()));
    }
    ctx.printer.note(format!("installs from: {}", index.describe()));
    Ok(())
}

fn check_cmd(ctx: &Context, c: &EnvCheckArgs) -> anyhow::Result<()> {
    let lock = load_or_capture(ctx, c.file.as_deref())?;
    let (arch, it) = match (&c.arch, &c.instance_type) {
        (Some(a), _) => (a.parse::<Arch>()?, None),
        (None, Some(t)) => {
            let it = crate::catalogs::all().find_type(ctx.settings.cloud, t)?.clone();
            (it.arch, Some(it))
        }
        (None, None) => (Arch::host(), None),
    };
    verify(ctx, &lock, &[(arch, it)])?;
    ctx.printer.note(format!(
        "{}: every package installs on linux/{arch} (Python {})",
        summary(&lock),
        lock.python_minor()
    ));
    Ok(())
}

/// Refuses, before launch, a lock some package of which cannot be installed on one of
/// `targets`, naming the package and the nearest type of an architecture that works.
pub(crate) fn verify(ctx: &Context, lock: &Lock, targets: &[(Arch, Option<InstanceType>)]) -> anyhow::Result<()> {
    let index = IndexConfig::from_lookup(&lookup);
    let uv = uv_binary(&lookup)?;
    let mut seen = BTreeSet::new();
    for (arch, it) in targets {
        if !seen.insert(*arch) {
            continue;
        }
        let Some(bad) = herd_env::check(lock, &Target::new(*arch, lock), &index, &uv)? else {
            continue;
        };
        let other = match arch {
            Arch::X86_64 => Arch::Arm64,
            Arch::Arm64 => Arch::X86_64,
        };
        let works_elsewhere = herd_env::check(lock, &Target::new(other, lock), &index, &uv)?.is_none();
        let names = bad.names().join(", ");
        let hint = if works_elsewhere {
            match nearest(ctx.settings.cloud, it.as_ref(), other) {
                Some(t) => format!("{names} installs on {other}: the nearest {other} type is {t}; or --ignore it"),
                None => format!("{names} installs on {other}; pick an {other} type, or --ignore it"),
            }
        } else {
            format!("publish a wheel or sdist of {names} for linux/{arch} to your index, or leave it out (`herd env capture --ignore PKG -o FILE`)")
        };
        return Err(bad.into_error().with_hint(hint).into());
    }
    Ok(())
}

/// The catalog type of `arch` closest to `like` (same cloud first, then vCPUs and
/// memory, then name), as `type (cloud)`.
fn nearest(cloud: Cloud, like: Option<&InstanceType>, arch: Arch) -> Option<String> {
    let (vcpus, mem) = like.map_or((2, 8.0), |t| (t.vcpus, t.memory_gib()));
    let gpu = like.is_some_and(|t| t.gpu.is_some());
    crate::catalogs::all()
        .types()
        .iter()
        .filter(|t| t.arch == arch && t.gpu.is_some() == gpu)
        .min_by(|a, b| {
            let score = |t: &InstanceType| {
                let other_cloud = if t.cloud == cloud { 0.0 } else { 1000.0 };
                other_cloud + (f64::from(t.vcpus) - f64::from(vcpus)).abs() * 4.0 + (t.memory_gib() - mem).abs()
            };
            score(a).total_cmp(&score(b)).then_with(|| a.name.cmp(&b.name))
        })
        .map(|t| format!("{} ({})", t.name, t.cloud))
}

/// A launch's environment: the lock and the two pieces of shell around the user's own.
pub(crate) struct Prepared {
    pub lock: Lock,
    /// Holds the index URL, credentials and all: never printed (see the `Debug` below).
    pub bootstrap: String,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("lock", &self.lock)
            .field("bootstrap", &format_args!("<{} bytes>", self.bootstrap.len()))
            .finish()
    }
}

impl Prepared {
    /// Bootstrap first, then the user's setup (if any).
    pub fn setup(&self, user: Option<&str>) -> String {
        match user {
            Some(u) => format!("{}{u}\n", self.bootstrap),
            None => self.bootstrap.clone(),
        }
    }
    /// The user's command, inside the environment.
    pub fn command(&self, user: &str) -> String {
        format!("{}{user}", herd_env::activate_prefix(&self.lock.id()))
    }
}

/// `--env auto|none|FILE` for a launch whose instances are `types` on the settings'
/// cloud: capture or read the lock, check it for their architectures, compose the
/// bootstrap. `None` for `none` (or no flag).
pub(crate) fn for_launch(ctx: &Context, choice: Option<&str>, types: &[String]) -> anyhow::Result<Option<Prepared>> {
    let lock = match choice.map(str::trim) {
        None | Some("none") => return Ok(None),
        Some("") => {
            return Err(Error::invalid_spec("--env is empty")
                .with_hint("use --env auto, --env none or --env FILE (a lock from `herd env capture -o FILE`)")
                .into())
        }
        Some("auto") => capture(ctx, &EnvCaptureArgs::default())?.lock,
        Some(file) => Lock::read(Path::new(file))?,
    };
    let catalog = crate::catalogs::all();
    let targets: Vec<(Arch, Option<InstanceType>)> = types
        .iter()
        .map(|t| match catalog.find_type(ctx.settings.cloud, t) {
            Ok(it) => (it.arch, Some(it.clone())),
            // An unknown type is the plan's to refuse, with suggestions.
            Err(_) => (Arch::host(), None),
        })
        .collect();
    verify(ctx, &lock, &targets)?;
    let index = IndexConfig::from_lookup(&lookup);
    let bootstrap = herd_env::bootstrap_script(&lock, &index)?;
    ctx.printer.note(format!(
        "{}; checked for linux/{}; installs from {}",
        summary(&lock),
        targets
            .iter()
            .map(|(a, _)| a.as_str())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
            .join(", "),
        index.describe()
    ));
    Ok(Some(Prepared { lock, bootstrap }))
}

/// `value` as JSON with every URL's credentials redacted: a dry run's JSON shows the
/// launch request, whose setup holds the bootstrap (and so the index URL).
pub(crate) fn redacted<T: Serialize>(value: &T) -> anyhow::Result<serde_json::Value> {
    fn walk(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::String(s) if s.contains('@') => *s = herd_env::redact(s),
            serde_json::Value::Array(a) => a.iter_mut().for_each(walk),
            serde_json::Value::Object(o) => o.values_mut().for_each(walk),
            _ => {}
        }
    }
    let mut v = serde_json::to_value(value)?;
    walk(&mut v);
    Ok(v)
}
