//! The check before launch: can every package of a lock be installed on the target
//! (Linux, its architecture, the lock's Python)? Index packages are resolved by
//! `uv pip compile --python-platform <arch>-manylinux_2_28 --python-version X.Y
//! --no-deps` against the carried-over index: uv accepts a pin only if that version has
//! a wheel whose tags fit the target or an sdist (uv: "has no wheels with a matching
//! platform tag"). Shipped wheels are checked by their own file-name tags. Git packages
//! build from source on the VM and are not checked here. Nothing is billed before this.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use herd_core::{Arch, Error, ErrorKind, Result};

use crate::index::{redact, IndexConfig};
use crate::lock::{Lock, PackageSource};

/// What a lock must install on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub arch: Arch,
    /// `major.minor`.
    pub python: String,
}

impl Target {
    pub fn new(arch: Arch, lock: &Lock) -> Target {
        Target {
            arch,
            python: lock.python_minor(),
        }
    }
    /// uv's `--python-platform`: glibc 2.28 (Debian 10+, Ubuntu 20.04+, Amazon Linux
    /// 2023, RHEL 8+), which also accepts the older manylinux2014 / 2_17 wheels.
    pub fn uv_platform(&self) -> &'static str {
        match self.arch {
            Arch::X86_64 => "x86_64-manylinux_2_28",
            Arch::Arm64 => "aarch64-manylinux_2_28",
        }
    }
    fn machine(&self) -> &'static str {
        match self.arch {
            Arch::X86_64 => "x86_64",
            Arch::Arm64 => "aarch64",
        }
    }
}

/// Packages that cannot be installed on a target, with why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unavailable {
    pub target: Target,
    /// (name==version, uv's or herd's reason)
    pub packages: Vec<(String, String)>,
}

impl Unavailable {
    pub fn names(&self) -> Vec<&str> {
        self.packages.iter().map(|(n, _)| n.as_str()).collect()
    }
    pub fn into_error(self) -> Error {
        let list = self.names().join(", ");
        let why = self
            .packages
            .iter()
            .map(|(n, r)| format!("  {n}: {r}"))
            .collect::<Vec<_>>()
            .join("\n");
        Error::invalid_spec(format!(
            "no wheel or sdist for linux/{} (Python {}): {list}\n{why}",
            self.target.arch, self.target.python
        ))
        .with_context("packages", list)
    }
}

/// The uv binary: `$HERD_UV`, else `uv` on PATH.
pub fn uv_binary(lookup: &dyn Fn(&str) -> Option<String>) -> Result<PathBuf> {
    if let Some(p) = lookup("HERD_UV").filter(|s| !s.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let path = lookup("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("uv"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                "uv is needed to check the environment for the target, and is not on PATH",
            )
            .with_hint("install it: python3 -m pip install uv (or set HERD_UV to its path)")
        })
}

/// `Ok(None)` when everything installs on `target`; `Ok(Some(..))` names what does not.
pub fn check(lock: &Lock, target: &Target, index: &IndexConfig, uv: &Path) -> Result<Option<Unavailable>> {
    let mut bad = Vec::new();
    for p in &lock.packages {
        if let PackageSource::Wheel { file, .. } = p.kind() {
            if !wheel_fits(file, target) {
                bad.push((
                    format!("{}=={}", p.name, p.version),
                    format!("its local wheel {file} is not for linux/{}", target.arch),
                ));
            }
        }
    }
    let pins: Vec<String> = lock
        .packages
        .iter()
        .filter(|p| p.kind() == PackageSource::Index)
        .map(|p| format!("{}=={}", p.name, p.version))
        .collect();
    if !pins.is_empty() {
        if let Err(stderr) = compile(&pins, target, index, uv)? {
            // uv names the culprit in its message; confirm each named one on its own, so
            // a package merely mentioned is not blamed.
            let named: Vec<&String> = pins
                .iter()
                .filter(|pin| {
                    let name = pin.split("==").next().unwrap_or_default();
                    stderr.contains(pin.as_str()) || stderr.contains(&format!("`{name}`"))
                })
                .collect();
            let mut found = false;
            for pin in named {
                if let Err(why) = compile(std::slice::from_ref(pin), target, index, uv)? {
                    found = true;
                    bad.push((pin.clone(), summary(&why)));
                }
            }
            if !found {
                return Err(Error::invalid_spec(format!(
                    "uv could not resolve the environment for linux/{}: {}",
                    target.arch,
                    summary(&stderr)
                ))
                .with_hint("check that the index (UV_INDEX_URL / PIP_INDEX_URL) is reachable and has these versions"));
            }
        }
    }
    Ok((!bad.is_empty()).then(|| Unavailable {
        target: target.clone(),
        packages: bad,
    }))
}

/// One `uv pip compile` run: `Ok(Ok(()))` resolved, `Ok(Err(stderr))` refused.
fn compile(
    pins: &[String],
    target: &Target,
    index: &IndexConfig,
    uv: &Path,
) -> Result<std::result::Result<(), String>> {
    let dir = std::env::temp_dir().join(format!(
        "herd-env-check-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::unexpected("cannot create a temporary directory").with_source(e))?;
    let input = dir.join("requirements.in");
    std::fs::write(&input, pins.join("\n") + "\n")
        .map_err(|e| Error::unexpected("cannot write a temporary file").with_source(e))?;
    let out = Command::new(uv)
        .args(["pip", "compile", "--no-deps", "--no-header", "--no-annotate", "--quiet"])
        .args([
            "--python-platform",
            target.uv_platform(),
            "--python-version",
            &target.python,
        ])
        .args(index.uv_args())
        .arg("-o")
        .arg(dir.join("out.txt"))
        .arg(&input)
        .stdin(Stdio::null())
        .output();
    let _ = std::fs::remove_dir_all(&dir);
    let out = out.map_err(|e| {
        Error::new(ErrorKind::NotFound, format!("cannot run {}", uv.display()))
            .with_hint("install uv: python3 -m pip install uv (or set HERD_UV)")
            .with_source(e)
    })?;
    if out.status.success() {
        Ok(Ok(()))
    } else {
        Ok(Err(redact(&String::from_utf8_lossy(&out.stderr))))
    }
}

/// uv's reason in one line: its `cause:` line if there is one, else the first line.
fn summary(stderr: &str) -> String {
    let line = stderr
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("cause:") || l.starts_with("╰─▶") || l.starts_with("Because"))
        .or_else(|| stderr.lines().map(str::trim).find(|l| !l.is_empty()))
        .unwrap_or("uv refused it");
    line.trim_start_matches("cause:")
        .trim_start_matches("╰─▶")
        .trim()
        .to_string()
}

/// Whether a wheel's file-name tags (PEP 427: `name-ver(-build)?-py-abi-platform.whl`)
/// fit Linux on the target's machine: `any`, or a linux/manylinux/musllinux tag for it.
pub fn wheel_fits(file: &str, target: &Target) -> bool {
    let stem = file.strip_suffix(".whl").unwrap_or(file);
    let Some(platforms) = stem.rsplit('-').next() else {
        return false;
    };
    platforms.split('.').any(|p| {
        p == "any"
            || ((p.starts_with("linux_") || p.starts_with("manylinux") || p.starts_with("musllinux"))
                && p.ends_with(target.machine()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(arch: Arch) -> Target {
        Target {
            arch,
            python: "3.11".into(),
        }
    }

    #[test]
    fn wheel_tags_decide_local_wheels() {
        assert!(wheel_fits("a-1.0-py3-none-any.whl", &t(Arch::Arm64)));
        assert!(wheel_fits(
            "b-2-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
            &t(Arch::X86_64)
        ));
        assert!(!wheel_fits(
            "b-2-cp311-cp311-manylinux_2_17_x86_64.whl",
            &t(Arch::Arm64)
        ));
        assert!(wheel_fits("c-3-py3-none-manylinux_2_17_aarch64.whl", &t(Arch::Arm64)));
        assert!(!wheel_fits("d-1-cp311-cp311-macosx_11_0_arm64.whl", &t(Arch::Arm64)));
    }

    #[test]
    fn uv_reasons_shrink_to_one_line() {
        let s =
            "error: No solution found\n  cause: Because b==2.0 has no wheels with a matching platform tag\n\nhint: x";
        assert_eq!(summary(s), "Because b==2.0 has no wheels with a matching platform tag");
        assert_eq!(
            Target::new(Arch::Arm64, &Lock::new("3.12.1", "Linux", "x86_64", vec![])).python,
            "3.12"
        );
    }

    #[test]
    fn unavailable_names_every_package() {
        let u = Unavailable {
            target: t(Arch::Arm64),
            packages: vec![("b==2.0".into(), "no arm64 wheel".into())],
        };
        let e = u.into_error();
        assert!(
            e.message().contains("b==2.0") && e.message().contains("linux/arm64"),
            "{}",
            e.message()
        );
        assert_eq!(e.kind(), ErrorKind::InvalidSpec);
    }
}
