//! The shell that builds a lock's environment on the VM, run as (the start of) the
//! instance's setup, and the prefix that runs the workload inside it.
//!
//! The environment lives at `$HERD_ENV_CACHE/<id>` (the simulator sets `HERD_ENV_CACHE`
//! to `<state dir>/envs`, so every simulated instance shares one cache; on a cloud VM it
//! defaults to `~/.cache/herd/envs`). When `<id>/.herd-env-ok` exists it is reused as is;
//! otherwise it is built in a temporary directory beside it with `uv venv --relocatable
//! --python <version>` (uv finds that interpreter or downloads its managed build) and
//! `uv pip sync` of the lock against the index carried over from the launching shell,
//! then renamed into place, so a half-built environment is never used and two instances
//! building the same id at once both end up with a whole one. Every step checks its own
//! status (`|| exit`): `set -e` does not hold inside a function run as `f || ...`, and
//! a failed build marked `.herd-env-ok` would be reused by every later launch. When the
//! exact Python can be neither found nor fetched, the same minor version is used, and the
//! setup's log says which.
//!
//! Timing markers (`herd-env: ...`) go to the setup's output, which `herd logs` shows:
//! the bootstrap's own time is reported apart from the workload's. While it builds, a busy
//! marker under `/run/herd/busy.d/` (herd-guest's protocol, `guest/src/busy.rs`: a file
//! whose first line is a live pid) keeps the idle watchdog from ending the VM; on the
//! simulator the setup is a workload the agent already counts as busy.

use herd_core::{Error, Result};

use crate::index::{sq, IndexConfig};
use crate::lock::Lock;

/// The variable naming the environment cache on the VM.
pub const CACHE_ENV: &str = "HERD_ENV_CACHE";

/// The largest boot-time script herd composes: a single `sh -c` argument is capped at
/// 128 KiB by Linux (MAX_ARG_STRLEN), and cloud user data is smaller still.
pub const MAX_SCRIPT: usize = 100 * 1024;

const CACHE: &str = "${HERD_ENV_CACHE:-${HOME:-/root}/.cache/herd/envs}";

/// The bootstrap: builds or reuses the environment, then returns; a failure exits the
/// setup with uv's status (so the command never runs in a half-made environment).
pub fn bootstrap_script(lock: &Lock, index: &IndexConfig) -> Result<String> {
    let id = lock.id();
    let mut wheels = String::new();
    for w in lock.shipped() {
        let bytes = lock.wheels.get(&w.file).ok_or_else(|| {
            Error::invalid_spec(format!("the lock ships {}, but its bytes were not loaded", w.file))
                .with_hint("capture the environment again")
        })?;
        let delim = "HERD_ENV_WHEEL_EOF";
        wheels.push_str(&format!(
            "base64 -d > \"$tmp/.herd/wheels/\"{} <<'{delim}' || exit $?\n",
            sq(&w.file)
        ));
        let b64 = base64(bytes);
        for chunk in b64.as_bytes().chunks(76) {
            wheels.push_str(std::str::from_utf8(chunk).unwrap_or_default());
            wheels.push('\n');
        }
        wheels.push_str(delim);
        wheels.push('\n');
    }
    let reqs: String = lock
        .packages
        .iter()
        .map(|p| p.requirement("@HERD_WHEELS@") + "\n")
        .collect();
    let n = lock.packages.len();
    let python = sq(&lock.python);
    let exports = index.exports();
    let s = format!(
        r#"# herd: the Python environment {id} (Python {py}, {n} packages); `herd env show` explains it.
herd_env_bootstrap() (
  set -eu
  id={id}
  cache="{CACHE}"
  env="$cache/$id"
  t0=$(date +%s.%N)
  took() {{ awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {{ printf "%.3f", b - a }}'; }}
  busy="${{HERD_GUEST_ROOT:-}}/run/herd/busy.d"
  if [ -d "$busy" ]; then echo "$$" > "$busy/herd-env-$id" && trap 'rm -f "$busy/herd-env-$id"' EXIT; fi
  if [ -f "$env/.herd-env-ok" ]; then
    echo "herd-env: bootstrap took $(took) s (reused env $id)"
    exit 0
  fi
  echo "herd-env: building env $id: Python {py}, {n} packages"
  uv="$(command -v uv 2>/dev/null || true)"
  [ -n "$uv" ] || {{ [ -x "${{HOME:-/root}}/.local/bin/uv" ] && uv="${{HOME:-/root}}/.local/bin/uv"; }} || true
  if [ -z "$uv" ]; then
    echo "herd-env: installing uv"
    python3 -m pip install --quiet --user uv >/dev/null 2>&1 || python3 -m pip install --quiet --user --break-system-packages uv
    uv="${{HOME:-/root}}/.local/bin/uv"
  fi
{exports}  mkdir -p "$cache" || exit $?
  tmp="$cache/.$id.$$"
  rm -rf "$tmp"
  if ! "$uv" venv --quiet --relocatable --python {python} "$tmp"; then
    echo "herd-env: Python {py} is not on this machine and uv could not fetch it; trying Python {minor}" >&2
    rm -rf "$tmp"
    "$uv" venv --quiet --relocatable --python {minor_q} "$tmp" || exit $?
    echo "herd-env: using $("$tmp/bin/python" -c 'import platform; print(platform.python_version())') instead of Python {py}" >&2
  fi
  mkdir -p "$tmp/.herd/wheels" || exit $?
{wheels}  sed "s#@HERD_WHEELS@#$tmp/.herd/wheels#g" > "$tmp/.herd/requirements.txt" <<'HERD_ENV_REQS_EOF' || exit $?
{reqs}HERD_ENV_REQS_EOF
  "$uv" pip sync --quiet --python "$tmp/bin/python" "$tmp/.herd/requirements.txt" || exit $?
  touch "$tmp/.herd-env-ok" || exit $?
  if ! mv -T "$tmp" "$env" 2>/dev/null; then rm -rf "$tmp"; fi
  [ -f "$env/.herd-env-ok" ] && [ -x "$env/bin/python" ] || {{ echo "herd-env: env $id is incomplete after its build" >&2; exit 1; }}
  echo "herd-env: bootstrap took $(took) s (built env $id)"
)
herd_env_bootstrap || {{ s=$?; echo "herd-env: building env {id} failed (exit $s)" >&2; exit "$s"; }}
"#,
        py = lock.python,
        minor = minor(&lock.python),
        minor_q = sq(minor(&lock.python)),
    );
    if s.len() > MAX_SCRIPT {
        return Err(Error::invalid_spec(format!(
            "the environment's bootstrap is {} KiB (local wheels: {} KiB), more than the {} KiB a boot script may hold",
            s.len() / 1024,
            lock.wheels.values().map(Vec::len).sum::<usize>() / 1024,
            MAX_SCRIPT / 1024
        ))
        .with_hint("publish the large local packages to your index (UV_INDEX_URL), or --ignore them"));
    }
    Ok(s)
}

/// `3.11` of `3.11.7`: the fallback when the exact interpreter can neither be found
/// nor fetched (a VM without internet access, beside a private index).
fn minor(version: &str) -> &str {
    match version.match_indices('.').nth(1) {
        Some((i, _)) => &version[..i],
        None => version,
    }
}

/// Put before the workload: runs it inside the environment (its `bin` first on PATH,
/// `VIRTUAL_ENV` set), or fails loudly when the bootstrap did not finish.
pub fn activate_prefix(id: &str) -> String {
    format!(
        "herd_env=\"{CACHE}/{id}\"; if [ -f \"$herd_env/.herd-env-ok\" ]; then export VIRTUAL_ENV=\"$herd_env\" PATH=\"$herd_env/bin:$PATH\"; else echo \"herd-env: env {id} is not built (see the setup's log)\" >&2; exit 1; fi\n"
    )
}

/// Standard base64 with padding (RFC 4648), what `base64 -d` reads.
fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for c in bytes.chunks(3) {
        let n =
            (u32::from(c[0]) << 16) | (u32::from(*c.get(1).unwrap_or(&0)) << 8) | u32::from(*c.get(2).unwrap_or(&0));
        s.push(A[(n >> 18) as usize & 63] as char);
        s.push(A[(n >> 12) as usize & 63] as char);
        s.push(if c.len() > 1 {
            A[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        s.push(if c.len() > 2 { A[n as usize & 63] as char } else { '=' });
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lock::{sha256_hex, LockedPackage};

    fn lock_with_wheel() -> Lock {
        let bytes = b"not really a zip".to_vec();
        let mut w = LockedPackage::index("mine", "0.1");
        w.source = "wheel".into();
        w.file = Some("mine-0.1-py3-none-any.whl".into());
        w.sha256 = Some(sha256_hex(&bytes));
        let mut l = Lock::new(
            "3.11.7",
            "Linux",
            "x86_64",
            vec![LockedPackage::index("alpha", "1.0"), w],
        );
        l.wheels.insert("mine-0.1-py3-none-any.whl".into(), bytes);
        l
    }

    #[test]
    fn base64_matches_the_rfc_vectors() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn the_script_pins_everything_and_reuses_by_id() {
        let l = lock_with_wheel();
        let idx = IndexConfig {
            index_url: Some("http://127.0.0.1:9/simple".into()),
            ..IndexConfig::default()
        };
        let s = bootstrap_script(&l, &idx).unwrap();
        assert!(s.contains(&format!("id={}", l.id())));
        assert!(s.contains("alpha==1.0\n"));
        assert!(s.contains("mine @ file://@HERD_WHEELS@/mine-0.1-py3-none-any.whl"));
        assert!(s.contains("--python '3.11.7'"));
        assert!(s.contains("export UV_INDEX_URL='http://127.0.0.1:9/simple'"));
        assert!(s.contains(".herd-env-ok"));
        assert!(activate_prefix(&l.id()).contains(&l.id()));
        assert_eq!((minor("3.11.7"), minor("3.12"), minor("3")), ("3.11", "3.12", "3"));
    }

    /// With a `uv` that fails, the bootstrap fails and marks nothing built: run by `sh`
    /// as the setup runs it (a function in `f || ...`, where `set -e` is void).
    #[test]
    fn a_failed_build_fails_the_setup_and_is_never_marked_built() {
        let l = lock_with_wheel();
        let d = tempfile::tempdir().unwrap();
        let bin = d.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let fake = bin.join("uv");
        // `uv venv` makes the directory (as uv does), `uv pip sync` fails.
        std::fs::write(
            &fake,
            "#!/bin/sh\nif [ \"$1\" = venv ]; then for a; do d=$a; done; mkdir -p \"$d/bin\"; exit 0; fi\nexit 7\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let s = bootstrap_script(&l, &IndexConfig::default()).unwrap();
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&s)
            .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
            .env(CACHE_ENV, d.path().join("envs"))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(7), "{}", String::from_utf8_lossy(&out.stderr));
        let built = d.path().join("envs").join(l.id()).join(".herd-env-ok");
        assert!(!built.exists(), "a failed build must not be marked built");
    }

    #[test]
    fn wheels_without_bytes_or_too_big_are_refused() {
        let mut l = lock_with_wheel();
        l.wheels.clear();
        assert!(bootstrap_script(&l, &IndexConfig::default()).is_err());
        let mut l = lock_with_wheel();
        l.wheels.insert("mine-0.1-py3-none-any.whl".into(), vec![0; MAX_SCRIPT]);
        let e = bootstrap_script(&l, &IndexConfig::default()).unwrap_err();
        assert!(e.hint().unwrap().contains("--ignore"));
    }

    #[test]
    fn the_wheel_survives_sh() {
        let l = lock_with_wheel();
        let d = tempfile::tempdir().unwrap();
        let s = bootstrap_script(&l, &IndexConfig::default()).unwrap();
        // Only the wheel-writing part: it must decode back to the same bytes.
        let start = s.find("base64 -d").unwrap();
        let end = s.find("HERD_ENV_WHEEL_EOF\n  sed").unwrap() + "HERD_ENV_WHEEL_EOF".len();
        let part = format!(
            "tmp={}; mkdir -p \"$tmp/.herd/wheels\"\n{}\n",
            d.path().display(),
            &s[start..end]
        );
        let ok = std::process::Command::new("sh").arg("-c").arg(&part).status().unwrap();
        assert!(ok.success());
        let got = std::fs::read(d.path().join(".herd/wheels/mine-0.1-py3-none-any.whl")).unwrap();
        assert_eq!(got, b"not really a zip");
    }
}
