//! herd's Python environments (issue 14): machines that look like the user's laptop
//! without a Docker build.
//!
//! - [`capture`]: finds the interpreter (`--python`, `VIRTUAL_ENV`, `CONDA_PREFIX`,
//!   `python3`), asks it once for its version and platform, and reads every installed
//!   distribution from its site-packages directly (`*.dist-info/METADATA`,
//!   `direct_url.json`), so capture costs one interpreter start, not a `pip freeze`.
//! - [`lock`]: the small TOML lock that results; its SHA-256 is the environment's id.
//! - [`resolve`]: the check before launch: does every package have a wheel or sdist for
//!   the target's platform and architecture (`uv pip compile --python-platform`)?
//! - [`bootstrap`]: the shell snippet that builds the environment on a VM with `uv`
//!   (or reuses it by id), and the prefix that runs the workload inside it.
//! - [`index`]: the package index carried over from `UV_INDEX_URL`/`PIP_INDEX_URL`,
//!   with credentials redacted wherever it prints.

pub mod bootstrap;
pub mod capture;
pub mod index;
pub mod lock;
pub mod resolve;

pub use bootstrap::{activate_prefix, bootstrap_script, CACHE_ENV};
pub use capture::{capture, CaptureOptions, Mode, Source};
pub use index::{redact, IndexConfig};
pub use lock::{Lock, LockedPackage, PackageSource, Wheel};
pub use resolve::{check, Target};

/// PEP 503 normalisation: lowercase, runs of `-`, `_`, `.` become one `-`.
pub fn normalize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut sep = false;
    for c in name.trim().chars() {
        if matches!(c, '-' | '_' | '.') {
            sep = true;
        } else {
            if sep && !out.is_empty() {
                out.push('-');
            }
            sep = false;
            out.extend(c.to_lowercase());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_normalise_like_pep_503() {
        assert_eq!(super::normalize("Foo.Bar__baz"), "foo-bar-baz");
        assert_eq!(super::normalize("numpy"), "numpy");
        assert_eq!(super::normalize("A-_-B"), "a-b");
    }
}
