//! Capture: the local interpreter and every distribution installed in it, read from the
//! environment itself. The interpreter runs once (a few lines of Python print its
//! version, platform and site-packages directories as JSON); the distributions are read
//! in Rust from `*.dist-info/METADATA` (Name, Version) and `direct_url.json` (PEP 610:
//! editable and local directories are built into wheels that ship with the launch,
//! local wheel files ship as they are, VCS installs are kept as URL + commit). No pip,
//! so a 200-package environment is captured in about the time Python takes to start.
//!
//! A `requirements.txt`, `uv.lock` or `pyproject.toml` narrows (or, for a `uv.lock`,
//! pins) the set; `--only` and `--ignore` filter it. Strict mode refuses anything it
//! cannot reproduce; lenient mode drops it with a warning.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use herd_core::{Error, ErrorKind, Result};
use serde::Deserialize;

use crate::lock::{sha256_hex, Lock, LockedPackage};
use crate::normalize;

/// Packaging tools a fresh venv brings along (`python -m venv` installs pip, and before
/// Python 3.12 setuptools): not the user's environment, and not needed by uv. Left out
/// unless `--only`, a requirements file or a lock names them.
pub const TOOLING: [&str; 4] = ["pip", "setuptools", "wheel", "distribute"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Anything that cannot be reproduced on the VM is an error (the default).
    #[default]
    Strict,
    /// Such packages are dropped with a warning.
    Lenient,
}

/// Where the package set comes from, besides the interpreter.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Source {
    /// Everything installed.
    #[default]
    Installed,
    Requirements(PathBuf),
    UvLock(PathBuf),
    Pyproject(PathBuf),
}

#[derive(Debug, Clone, Default)]
pub struct CaptureOptions {
    /// `--python`; else `VIRTUAL_ENV`, `CONDA_PREFIX`, `python3` on PATH.
    pub python: Option<PathBuf>,
    pub source: Source,
    pub ignore: Vec<String>,
    pub only: Vec<String>,
    pub mode: Mode,
}

/// What capture found.
#[derive(Debug, Clone)]
pub struct Captured {
    pub lock: Lock,
    pub interpreter: PathBuf,
    /// Lenient mode's drops, and anything else worth telling.
    pub warnings: Vec<String>,
}

/// What the interpreter says about itself.
#[derive(Debug, Clone, Deserialize)]
pub struct Probe {
    pub version: String,
    pub system: String,
    pub machine: String,
    pub paths: Vec<PathBuf>,
}

/// One installed distribution, as read from its metadata directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    pub name: String,
    pub version: String,
    pub origin: Origin,
}

/// PEP 610's `direct_url.json`, reduced to what matters here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// From an index (no `direct_url.json`).
    Index,
    /// A local directory, editable or not.
    LocalDir(PathBuf),
    /// A local archive (wheel or sdist).
    LocalArchive(PathBuf),
    Vcs {
        url: String,
        commit: String,
    },
    RemoteArchive(String),
}

const PROBE: &str = r#"import json, platform, site, sys, sysconfig
paths = []
def add(p):
    if p and p not in paths:
        paths.append(p)
for key in ("purelib", "platlib"):
    add(sysconfig.get_paths().get(key))
for p in getattr(site, "getsitepackages", lambda: [])():
    add(p)
if sys.prefix == sys.base_prefix and site.ENABLE_USER_SITE:
    add(site.getusersitepackages())
print(json.dumps({"version": platform.python_version(), "system": platform.system(), "machine": platform.machine(), "paths": paths}))
"#;

/// The interpreter to capture: `--python`, else the active virtualenv, else the conda
/// prefix, else `python3` on PATH.
pub fn find_interpreter(python: Option<&Path>, lookup: &dyn Fn(&str) -> Option<String>) -> Result<PathBuf> {
    if let Some(p) = python {
        return Ok(p.to_path_buf());
    }
    for var in ["VIRTUAL_ENV", "CONDA_PREFIX"] {
        if let Some(prefix) = lookup(var).filter(|s| !s.is_empty()) {
            for name in ["bin/python", "bin/python3", "python.exe"] {
                let p = Path::new(&prefix).join(name);
                if p.exists() {
                    return Ok(p);
                }
            }
            return Err(
                Error::config(format!("{var} is {prefix}, which has no bin/python")).with_hint(format!(
                    "activate a working environment, unset {var}, or pass --python PATH"
                )),
            );
        }
    }
    let path = lookup("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let p = dir.join("python3");
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(Error::new(
        ErrorKind::NotFound,
        "no Python interpreter found (no VIRTUAL_ENV, CONDA_PREFIX or python3 on PATH)",
    )
    .with_hint("activate your virtualenv, or pass --python PATH"))
}

/// Runs the interpreter once and reads what it says about itself.
pub fn probe(python: &Path) -> Result<Probe> {
    let out = Command::new(python)
        .args(["-I", "-c", PROBE])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            Error::new(ErrorKind::NotFound, format!("cannot run {}", python.display()))
                .with_hint("pass a working interpreter with --python PATH")
                .with_source(e)
        })?;
    if !out.status.success() {
        return Err(Error::config(format!(
            "{} failed to describe itself: {}",
            python.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
        .with_hint("pass a working interpreter with --python PATH"));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| {
        Error::unexpected(format!(
            "{} printed something other than its description",
            python.display()
        ))
        .with_source(e)
    })
}

/// Every distribution in `paths`, the first occurrence of a name winning (as on `sys.path`).
pub fn installed(paths: &[PathBuf]) -> Vec<Installed> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for dir in paths {
        let Ok(entries) = std::fs::read_dir(dir) else { continue };
        let mut names: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        names.sort();
        for p in names {
            let fname = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            let meta = if fname.ends_with(".dist-info") {
                p.join("METADATA")
            } else if fname.ends_with(".egg-info") {
                if p.is_dir() {
                    p.join("PKG-INFO")
                } else {
                    p.clone()
                }
            } else {
                continue;
            };
            let Ok(text) = std::fs::read_to_string(&meta) else {
                continue;
            };
            let Some((name, version)) = name_version(&text) else {
                continue;
            };
            let name = normalize(&name);
            if !seen.insert(name.clone()) {
                continue;
            }
            let origin = std::fs::read_to_string(p.join("direct_url.json"))
                .ok()
                .and_then(|t| origin(&t))
                .unwrap_or(Origin::Index);
            out.push(Installed { name, version, origin });
        }
    }
    out
}

/// `Name:` and `Version:` from the header block of a METADATA / PKG-INFO file.
fn name_version(text: &str) -> Option<(String, String)> {
    let (mut name, mut version) = (None, None);
    for line in text.lines() {
        if line.trim().is_empty() {
            break;
        }
        if let Some(v) = line.strip_prefix("Name:") {
            name.get_or_insert_with(|| v.trim().to_string());
        } else if let Some(v) = line.strip_prefix("Version:") {
            version.get_or_insert_with(|| v.trim().to_string());
        }
        if name.is_some() && version.is_some() {
            break;
        }
    }
    Some((name.filter(|n| !n.is_empty())?, version.filter(|v| !v.is_empty())?))
}

#[derive(Deserialize)]
struct DirectUrl {
    url: String,
    #[serde(default)]
    vcs_info: Option<VcsInfo>,
    #[serde(default)]
    dir_info: Option<serde_json::Value>,
    #[serde(default)]
    archive_info: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct VcsInfo {
    vcs: String,
    commit_id: String,
}

fn origin(json: &str) -> Option<Origin> {
    let d: DirectUrl = serde_json::from_str(json).ok()?;
    if let Some(v) = d.vcs_info {
        let url = if d.url.starts_with(&format!("{}+", v.vcs)) {
            d.url
        } else {
            format!("{}+{}", v.vcs, d.url)
        };
        return Some(Origin::Vcs {
            url,
            commit: v.commit_id,
        });
    }
    let local = d.url.strip_prefix("file://").map(|p| PathBuf::from(percent_decode(p)));
    if d.dir_info.is_some() {
        return local.map(Origin::LocalDir);
    }
    if d.archive_info.is_some() {
        return Some(match local {
            Some(p) => Origin::LocalArchive(p),
            None => Origin::RemoteArchive(d.url),
        });
    }
    None
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What a file names: package -> pinned version (if it pins one).
fn selection(source: &Source) -> Result<Option<BTreeMap<String, Option<String>>>> {
    let read = |p: &Path| {
        std::fs::read_to_string(p).map_err(|e| {
            Error::invalid_spec(format!("cannot read {}", p.display()))
                .with_hint("check the path")
                .with_source(e)
        })
    };
    let mut out = BTreeMap::new();
    match source {
        Source::Installed => return Ok(None),
        Source::Requirements(p) => {
            for raw in read(p)?.lines() {
                let line = raw.split(" #").next().unwrap_or_default().trim();
                if line.is_empty() || line.starts_with('#') || line.starts_with('-') {
                    continue;
                }
                let (name, pin) = requirement_name(line);
                if name.is_empty() {
                    return Err(
                        Error::invalid_spec(format!("{}: cannot read the requirement `{line}`", p.display()))
                            .with_hint("write one requirement per line, e.g. `numpy==2.1.0`"),
                    );
                }
                out.insert(normalize(&name), pin);
            }
        }
        Source::Pyproject(p) => {
            let v: toml::Value = toml::from_str(&read(p)?).map_err(|e| {
                Error::invalid_spec(format!("{} is not valid TOML: {}", p.display(), e.message().trim()))
            })?;
            let deps = v
                .get("project")
                .and_then(|p| p.get("dependencies"))
                .and_then(|d| d.as_array())
                .ok_or_else(|| {
                    Error::invalid_spec(format!("{} has no [project] dependencies", p.display()))
                        .with_hint("list them under [project] dependencies = [...]")
                })?;
            for d in deps.iter().filter_map(|d| d.as_str()) {
                let (name, pin) = requirement_name(d);
                out.insert(normalize(&name), pin);
            }
        }
        Source::UvLock(p) => {
            #[derive(Deserialize)]
            struct UvLock {
                #[serde(default)]
                package: Vec<UvPackage>,
            }
            #[derive(Deserialize)]
            struct UvPackage {
                name: String,
                version: Option<String>,
            }
            let l: UvLock = toml::from_str(&read(p)?).map_err(|e| {
                Error::invalid_spec(format!("{} is not a uv.lock: {}", p.display(), e.message().trim()))
            })?;
            for pkg in l.package {
                out.insert(normalize(&pkg.name), pkg.version);
            }
        }
    }
    Ok(Some(out))
}

/// `name[extra]==1.0; marker` -> (`name`, Some("1.0")).
fn requirement_name(line: &str) -> (String, Option<String>) {
    let line = line.split(';').next().unwrap_or_default().trim();
    let end = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        .unwrap_or(line.len());
    let name = line[..end].to_string();
    let rest = line[end..].trim_start();
    let rest = match rest.strip_prefix('[') {
        Some(r) => r.split_once(']').map_or("", |(_, after)| after).trim_start(),
        None => rest,
    };
    let pin = rest
        .strip_prefix("==")
        .map(|v| v.split(',').next().unwrap_or_default().trim().to_string())
        .filter(|v| !v.is_empty() && !v.contains('*'));
    (name, pin)
}

/// Captures the environment (`lookup` reads the launching environment).
pub fn capture(opts: &CaptureOptions, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Captured> {
    let python = find_interpreter(opts.python.as_deref(), lookup)?;
    let probe = probe(&python)?;
    let installed = installed(&probe.paths);
    let mut warnings = Vec::new();
    let only: BTreeSet<String> = opts.only.iter().map(|n| normalize(n)).collect();
    let ignore: BTreeSet<String> = opts.ignore.iter().map(|n| normalize(n)).collect();
    let selection = selection(&opts.source)?;
    let by_name: BTreeMap<&str, &Installed> = installed.iter().map(|i| (i.name.as_str(), i)).collect();

    // (name, installed, pinned version) in the set.
    let mut chosen: Vec<(String, Option<&Installed>, Option<String>)> = Vec::new();
    match &selection {
        None => {
            for i in &installed {
                let named = only.contains(&i.name);
                if TOOLING.contains(&i.name.as_str()) && !named {
                    continue;
                }
                chosen.push((i.name.clone(), Some(i), None));
            }
        }
        Some(sel) => {
            for (name, pin) in sel {
                chosen.push((name.clone(), by_name.get(name.as_str()).copied(), pin.clone()));
            }
        }
    }
    for name in &only {
        if !chosen.iter().any(|(n, ..)| n == name) {
            return Err(
                Error::invalid_spec(format!("--only {name}: no such package in {}", python.display()))
                    .with_hint("`herd env capture` without --only lists what is installed"),
            );
        }
    }
    chosen.retain(|(n, ..)| (only.is_empty() || only.contains(n)) && !ignore.contains(n));

    let refuse = |warnings: &mut Vec<String>, msg: String, hint: &str| -> Result<()> {
        match opts.mode {
            Mode::Strict => Err(Error::invalid_spec(msg).with_hint(format!(
                "{hint}; or --ignore it, or --lenient to drop such packages with a warning"
            ))),
            Mode::Lenient => {
                warnings.push(format!("{msg}: left out (--lenient)"));
                Ok(())
            }
        }
    };

    let mut packages = Vec::new();
    let mut wheels = BTreeMap::new();
    let build_dir = std::env::temp_dir().join(format!(
        "herd-env-wheels-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    for (name, inst, pin) in chosen {
        let Some(inst) = inst else {
            match pin {
                Some(v) => packages.push(LockedPackage::index(&name, &v)),
                None => refuse(
                    &mut warnings,
                    format!(
                        "{name} is named but neither installed in {} nor pinned",
                        python.display()
                    ),
                    "install it, or pin it (`name==version`)",
                )?,
            }
            continue;
        };
        if let Some(v) = &pin {
            if v != &inst.version {
                refuse(
                    &mut warnings,
                    format!("{name}: the file pins {v} but {} is installed", inst.version),
                    "install the pinned version, or update the file",
                )?;
                continue;
            }
        }
        match &inst.origin {
            Origin::Index => packages.push(LockedPackage::index(&name, &inst.version)),
            Origin::Vcs { url, commit } => {
                let mut p = LockedPackage::index(&name, &inst.version);
                p.source = "git".into();
                p.url = Some(url.clone());
                p.commit = Some(commit.clone());
                packages.push(p);
            }
            Origin::RemoteArchive(url) => {
                let mut p = LockedPackage::index(&name, &inst.version);
                p.source = "url".into();
                p.url = Some(url.clone());
                packages.push(p);
            }
            Origin::LocalArchive(path) if path.extension().is_some_and(|e| e == "whl") && path.is_file() => {
                match std::fs::read(path) {
                    Ok(bytes) => ship(&mut packages, &mut wheels, &name, &inst.version, path, bytes),
                    Err(e) => refuse(
                        &mut warnings,
                        format!("{name}: cannot read its wheel {}: {e}", path.display()),
                        "make the file readable",
                    )?,
                }
            }
            Origin::LocalArchive(path) | Origin::LocalDir(path) => {
                if !path.exists() {
                    refuse(
                        &mut warnings,
                        format!("{name} was installed from {}, which no longer exists", path.display()),
                        "reinstall it from where it is now",
                    )?;
                    continue;
                }
                match build_wheel(&python, path, &build_dir.join(&name), &name) {
                    Ok((file, bytes)) => ship(&mut packages, &mut wheels, &name, &inst.version, &file, bytes),
                    Err(e) => refuse(
                        &mut warnings,
                        format!("{name}: cannot build a wheel from {}: {}", path.display(), e.message()),
                        "make `python -m pip wheel --no-deps` work in that directory",
                    )?,
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&build_dir);
    let mut lock = Lock::new(&probe.version, &probe.system, &probe.machine, packages);
    lock.wheels = wheels;
    Ok(Captured {
        lock,
        interpreter: python,
        warnings,
    })
}

fn ship(
    packages: &mut Vec<LockedPackage>,
    wheels: &mut BTreeMap<String, Vec<u8>>,
    name: &str,
    version: &str,
    path: &Path,
    bytes: Vec<u8>,
) {
    let file = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut p = LockedPackage::index(name, version);
    p.source = "wheel".into();
    p.sha256 = Some(sha256_hex(&bytes));
    p.file = Some(file.clone());
    packages.push(p);
    wheels.insert(file, bytes);
}

/// Fixed file times for the wheels herd builds (1980-01-01, the earliest a zip holds):
/// setuptools, hatchling, flit and uv's backend honour it, so the same source gives the
/// same bytes, hence the same lock hash, and a second launch reuses the environment.
const SOURCE_DATE_EPOCH: &str = "315532800";

/// Builds `src` (a project directory or an sdist) into one wheel with the captured
/// interpreter's own pip (its build tools are what installed it), else `uv build`.
fn build_wheel(python: &Path, src: &Path, out: &Path, name: &str) -> Result<(PathBuf, Vec<u8>)> {
    let _ = std::fs::create_dir_all(out);
    let pip = Command::new(python)
        .args([
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--quiet",
            "--disable-pip-version-check",
            "-w",
        ])
        .arg(out)
        .arg(src)
        .env("SOURCE_DATE_EPOCH", SOURCE_DATE_EPOCH)
        .stdin(Stdio::null())
        .output();
    let mut why = match &pip {
        Ok(o) if o.status.success() => String::new(),
        Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_string(),
        Err(e) => e.to_string(),
    };
    if !why.is_empty() {
        let uv = std::env::var_os("HERD_UV").map_or_else(|| PathBuf::from("uv"), PathBuf::from);
        match Command::new(uv)
            .args(["build", "--wheel", "--quiet", "--out-dir"])
            .arg(out)
            .arg(src)
            .env("SOURCE_DATE_EPOCH", SOURCE_DATE_EPOCH)
            .stdin(Stdio::null())
            .output()
        {
            Ok(o) if o.status.success() => why.clear(),
            Ok(o) => why = format!("{why}; uv build: {}", String::from_utf8_lossy(&o.stderr).trim()),
            Err(_) => {}
        }
    }
    if !why.is_empty() {
        return Err(Error::invalid_spec(crate::index::redact(&why)));
    }
    let want = normalize(name).replace('-', "_");
    let found = std::fs::read_dir(out)
        .ok()
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n.ends_with(".whl") && normalize(n.split('-').next().unwrap_or_default()).replace('-', "_") == want
            })
        })
        .ok_or_else(|| Error::invalid_spec(format!("no wheel of {name} was produced")))?;
    let bytes = std::fs::read(&found).map_err(|e| Error::unexpected("cannot read the built wheel").with_source(e))?;
    Ok((found, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_headers_give_name_and_version() {
        let t = "Metadata-Version: 2.1\nName: Foo_Bar\nVersion: 1.2.3\n\nVersion: 9\n";
        assert_eq!(name_version(t), Some(("Foo_Bar".into(), "1.2.3".into())));
        assert_eq!(name_version("Name: x\n\nVersion: 1\n"), None);
    }

    #[test]
    fn direct_url_kinds() {
        assert_eq!(
            origin(r#"{"url": "file:///src/my%20pkg", "dir_info": {"editable": true}}"#),
            Some(Origin::LocalDir("/src/my pkg".into()))
        );
        assert_eq!(
            origin(r#"{"url": "https://github.com/o/r", "vcs_info": {"vcs": "git", "commit_id": "abc"}}"#),
            Some(Origin::Vcs {
                url: "git+https://github.com/o/r".into(),
                commit: "abc".into()
            })
        );
        assert_eq!(
            origin(r#"{"url": "file:///w/a-1-py3-none-any.whl", "archive_info": {}}"#),
            Some(Origin::LocalArchive("/w/a-1-py3-none-any.whl".into()))
        );
        assert_eq!(
            origin(r#"{"url": "https://h/a.tar.gz", "archive_info": {}}"#),
            Some(Origin::RemoteArchive("https://h/a.tar.gz".into()))
        );
    }

    #[test]
    fn requirement_lines() {
        assert_eq!(requirement_name("numpy==2.1.0"), ("numpy".into(), Some("2.1.0".into())));
        assert_eq!(
            requirement_name("Foo[bar]==1 ; python_version>'3'"),
            ("Foo".into(), Some("1".into()))
        );
        assert_eq!(requirement_name("requests>=2"), ("requests".into(), None));
        assert_eq!(requirement_name("x==1.*"), ("x".into(), None));
    }

    #[test]
    fn site_packages_are_read_without_python() {
        let d = tempfile::tempdir().unwrap();
        let sp = d.path().to_path_buf();
        let mk = |dir: &str, meta: &str, direct: Option<&str>| {
            let p = sp.join(dir);
            std::fs::create_dir_all(&p).unwrap();
            std::fs::write(p.join("METADATA"), meta).unwrap();
            if let Some(j) = direct {
                std::fs::write(p.join("direct_url.json"), j).unwrap();
            }
        };
        mk("alpha-1.0.dist-info", "Name: Alpha\nVersion: 1.0\n", None);
        mk(
            "tool-0.1.dist-info",
            "Name: tool\nVersion: 0.1\n",
            Some(r#"{"url": "https://x/t", "vcs_info": {"vcs": "git", "commit_id": "c0ffee"}}"#),
        );
        mk("broken.dist-info", "nothing\n", None);
        let got = installed(&[sp.clone(), sp.join("missing")]);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].name, "alpha");
        assert!(matches!(got[1].origin, Origin::Vcs { .. }));
    }

    #[test]
    fn no_interpreter_is_a_not_found_with_a_hint() {
        let e = find_interpreter(None, &|k| (k == "PATH").then(|| "/nonexistent".to_string())).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert!(e.hint().unwrap().contains("--python"));
        let e = find_interpreter(None, &|k| (k == "VIRTUAL_ENV").then(|| "/nonexistent".to_string())).unwrap_err();
        assert!(e.message().contains("VIRTUAL_ENV"));
    }
}
