//! The lock: what an environment is, small enough to read (`herd env show`) and to ship
//! inside a boot script. Python version, where it was captured, and every package with
//! its exact version and source, sorted by name. Wheels built from local or editable
//! packages travel beside it (`<lock>.wheels/`, or in memory for `--env auto`), each
//! named in the lock with its SHA-256. The environment's id is the SHA-256 of the lock's
//! canonical text, so the same packages give the same id on every machine.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use herd_core::{Error, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::index::redact;

/// The lock format's version.
pub const FORMAT: u32 = 1;

#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Lock {
    pub format: u32,
    /// The interpreter's full version, e.g. `3.11.7`; the VM asks uv for the same.
    pub python: String,
    /// Where it was captured: `platform.system()` / `platform.machine()`.
    pub captured_system: String,
    pub captured_machine: String,
    #[serde(default, rename = "package")]
    pub packages: Vec<LockedPackage>,
    /// Wheel bytes by file name (read from beside the lock, never written into it).
    #[serde(skip)]
    pub wheels: BTreeMap<String, Vec<u8>>,
}

/// One distribution. Flat (rather than an enum) so the TOML stays one table per package.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockedPackage {
    /// Normalised (PEP 503).
    pub name: String,
    pub version: String,
    /// `index`, `wheel` (shipped with the launch), `git` or `url`.
    pub source: String,
    /// `wheel`: the file name; `git`/`url`: the URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// A package's source, as the code uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PackageSource<'a> {
    Index,
    Wheel { file: &'a str, sha256: &'a str },
    Git { url: &'a str, commit: &'a str },
    Url { url: &'a str },
}

/// A wheel that ships with the launch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wheel {
    pub file: String,
    pub sha256: String,
}

impl LockedPackage {
    pub fn index(name: &str, version: &str) -> LockedPackage {
        LockedPackage {
            name: crate::normalize(name),
            version: version.trim().to_string(),
            source: "index".into(),
            file: None,
            url: None,
            commit: None,
            sha256: None,
        }
    }

    pub fn kind(&self) -> PackageSource<'_> {
        match self.source.as_str() {
            "wheel" => PackageSource::Wheel {
                file: self.file.as_deref().unwrap_or_default(),
                sha256: self.sha256.as_deref().unwrap_or_default(),
            },
            "git" => PackageSource::Git {
                url: self.url.as_deref().unwrap_or_default(),
                commit: self.commit.as_deref().unwrap_or_default(),
            },
            "url" => PackageSource::Url {
                url: self.url.as_deref().unwrap_or_default(),
            },
            _ => PackageSource::Index,
        }
    }

    /// The line for `uv pip sync` (`wheels` is where the shipped wheels are on the VM).
    pub fn requirement(&self, wheels: &str) -> String {
        match self.kind() {
            PackageSource::Index => format!("{}=={}", self.name, self.version),
            PackageSource::Wheel { file, .. } => format!("{} @ file://{wheels}/{file}", self.name),
            PackageSource::Git { url, commit } => {
                let url = url.strip_prefix("git+").unwrap_or(url);
                format!("{} @ git+{url}@{commit}", self.name)
            }
            PackageSource::Url { url } => format!("{} @ {url}", self.name),
        }
    }

    /// For people: `name==version (source)`, URLs redacted.
    pub fn describe(&self) -> String {
        match self.kind() {
            PackageSource::Index => format!("{}=={}", self.name, self.version),
            PackageSource::Wheel { file, .. } => format!("{}=={} (local, shipped as {file})", self.name, self.version),
            PackageSource::Git { url, commit } => {
                format!("{}=={} (git {} @ {commit})", self.name, self.version, redact(url))
            }
            PackageSource::Url { url } => format!("{}=={} ({})", self.name, self.version, redact(url)),
        }
    }
}

impl fmt::Debug for LockedPackage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

impl fmt::Debug for Lock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lock")
            .field("python", &self.python)
            .field(
                "captured",
                &format!("{}/{}", self.captured_system, self.captured_machine),
            )
            .field("packages", &self.packages)
            .field("wheels", &self.wheels.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Lock {
    pub fn new(python: &str, system: &str, machine: &str, mut packages: Vec<LockedPackage>) -> Lock {
        packages.sort_by(|a, b| a.name.cmp(&b.name));
        packages.dedup_by(|a, b| a.name == b.name);
        Lock {
            format: FORMAT,
            python: python.to_string(),
            captured_system: system.to_string(),
            captured_machine: machine.to_string(),
            packages,
            wheels: BTreeMap::new(),
        }
    }

    /// The canonical text (what is written and hashed).
    pub fn to_toml(&self) -> String {
        let mut s = String::from("# herd environment lock (`herd env show` reads it); written by `herd env capture`\n");
        s.push_str(&toml::to_string(self).unwrap_or_default());
        s
    }

    /// The environment's id: the first 16 hex digits of the SHA-256 of [`Lock::to_toml`].
    pub fn id(&self) -> String {
        let d = Sha256::digest(self.to_toml().as_bytes());
        d.iter().take(8).map(|b| format!("{b:02x}")).collect()
    }

    /// `major.minor`, what resolution needs.
    pub fn python_minor(&self) -> String {
        self.python.split('.').take(2).collect::<Vec<_>>().join(".")
    }

    pub fn shipped(&self) -> Vec<Wheel> {
        self.packages
            .iter()
            .filter_map(|p| match p.kind() {
                PackageSource::Wheel { file, sha256 } => Some(Wheel {
                    file: file.to_string(),
                    sha256: sha256.to_string(),
                }),
                _ => None,
            })
            .collect()
    }

    /// Where the wheels of a lock file live.
    pub fn wheel_dir(lock_path: &Path) -> PathBuf {
        let mut name = lock_path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
        name.push(".wheels");
        lock_path.with_file_name(name)
    }

    /// Writes the lock and its wheels (`<path>.wheels/`).
    pub fn write(&self, path: &Path) -> Result<()> {
        let io = |what: &str, p: &Path, e: std::io::Error| {
            Error::config(format!("cannot write {what} {}", p.display())).with_source(e)
        };
        std::fs::write(path, self.to_toml()).map_err(|e| io("the lock", path, e))?;
        if !self.wheels.is_empty() {
            let dir = Lock::wheel_dir(path);
            std::fs::create_dir_all(&dir).map_err(|e| io("the wheel directory", &dir, e))?;
            for (file, bytes) in &self.wheels {
                std::fs::write(dir.join(file), bytes).map_err(|e| io("a wheel", &dir.join(file), e))?;
            }
        }
        Ok(())
    }

    /// Reads a lock and the wheels it names, checking each wheel's SHA-256.
    pub fn read(path: &Path) -> Result<Lock> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::invalid_spec(format!("cannot read environment lock {}", path.display()))
                .with_hint("write one with `herd env capture -o FILE`")
                .with_source(e)
        })?;
        let mut lock = Lock::parse(&text, &path.display().to_string())?;
        let dir = Lock::wheel_dir(path);
        for w in lock.shipped() {
            let p = dir.join(&w.file);
            let bytes = std::fs::read(&p).map_err(|e| {
                Error::invalid_spec(format!(
                    "the lock ships {}, which is missing from {}",
                    w.file,
                    dir.display()
                ))
                .with_hint("capture again: `herd env capture -o FILE` writes the wheels beside the lock")
                .with_source(e)
            })?;
            if sha256_hex(&bytes) != w.sha256 {
                return Err(Error::invalid_spec(format!(
                    "{} does not match the SHA-256 in {}",
                    p.display(),
                    path.display()
                ))
                .with_hint("the wheel changed after capture; capture again"));
            }
            lock.wheels.insert(w.file, bytes);
        }
        Ok(lock)
    }

    pub fn parse(text: &str, label: &str) -> Result<Lock> {
        let lock: Lock = toml::from_str(text).map_err(|e| {
            Error::invalid_spec(format!(
                "{label} is not a herd environment lock: {}",
                e.message().trim()
            ))
            .with_hint("write one with `herd env capture -o FILE`")
        })?;
        if lock.format != FORMAT {
            return Err(Error::invalid_spec(format!(
                "{label} is lock format {}, this herd reads format {FORMAT}",
                lock.format
            ))
            .with_hint("capture it again with this herd"));
        }
        for p in &lock.packages {
            let ok = match p.kind() {
                PackageSource::Index => true,
                PackageSource::Wheel { file, sha256 } => {
                    !file.is_empty() && !file.contains('/') && file.ends_with(".whl") && sha256.len() == 64
                }
                PackageSource::Git { url, commit } => !url.is_empty() && !commit.is_empty(),
                PackageSource::Url { url } => !url.is_empty(),
            };
            if !ok || p.name.is_empty() || p.name != crate::normalize(&p.name) {
                return Err(
                    Error::invalid_spec(format!("{label}: package `{}` is incomplete", p.name))
                        .with_hint("capture the environment again"),
                );
            }
        }
        Ok(lock)
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Lock {
        let mut git = LockedPackage::index("tool", "0.1");
        git.source = "git".into();
        git.url = Some("https://u:tok@example.invalid/tool.git".into());
        git.commit = Some("abc123".into());
        Lock::new(
            "3.11.7",
            "Linux",
            "x86_64",
            vec![
                LockedPackage::index("Zeta", "1.0"),
                git,
                LockedPackage::index("alpha", "2.0"),
            ],
        )
    }

    #[test]
    fn round_trips_sorted_and_hashes_stably() {
        let l = sample();
        assert_eq!(l.packages[0].name, "alpha");
        let again = Lock::parse(&l.to_toml(), "x").unwrap();
        assert_eq!(again, l);
        assert_eq!(again.id(), l.id());
        assert_eq!(l.id().len(), 16);
        let mut other = l.clone();
        other.packages[0].version = "2.1".into();
        assert_ne!(other.id(), l.id());
        assert_eq!(l.python_minor(), "3.11");
    }

    #[test]
    fn requirements_and_descriptions() {
        let l = sample();
        assert_eq!(l.packages[0].requirement("/w"), "alpha==2.0");
        assert_eq!(
            l.packages[1].requirement("/w"),
            "tool @ git+https://u:tok@example.invalid/tool.git@abc123"
        );
        let shown = format!("{l:?}");
        assert!(!shown.contains("tok"), "{shown}");
    }

    #[test]
    fn bad_locks_are_refused_with_a_hint() {
        let e = Lock::parse("format = 1\npython = 3\n", "f").unwrap_err();
        assert!(e.message().contains("not a herd environment lock"));
        let e = Lock::parse(
            "format = 2\npython = \"3.11\"\ncaptured_system = \"Linux\"\ncaptured_machine = \"x86_64\"\n",
            "f",
        )
        .unwrap_err();
        assert!(e.message().contains("format 2"));
        let e = Lock::parse(
            "format = 1\npython = \"3.11\"\ncaptured_system = \"L\"\ncaptured_machine = \"x\"\n[[package]]\nname = \"a\"\nversion = \"1\"\nsource = \"wheel\"\n",
            "f",
        )
        .unwrap_err();
        assert!(e.message().contains("incomplete"));
    }
}
