#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what it needs, then runs every test.
# Usage: scripts/test.sh [extra args for the test runner]
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '==> %s\n' "$*" >&2; }

command -v cargo >/dev/null || { echo "error: cargo not found; install Rust from rustup.rs" >&2; exit 1; }

# Emulators and servers the backend tests start on 127.0.0.1 go into a local venv.
# (The AWS backend's moto server joins this list when it lands.)
if [ -f scripts/requirements-test.txt ]; then
  if [ ! -x .venv/bin/python ]; then
    say "creating .venv for test servers"
    python3 -m venv .venv
  fi
  if ! .venv/bin/python -m pip install --quiet --disable-pip-version-check -r scripts/requirements-test.txt; then
    echo "error: could not install the Python test servers (scripts/requirements-test.txt)" >&2
    exit 1
  fi
  export PATH="$PWD/.venv/bin:$PATH"
fi

# The SSH transport's tests start a real OpenSSH sshd on 127.0.0.1 (herd-guest's
# ssh::testing); they fail, never skip, without it.
if [ ! -x /usr/sbin/sshd ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing openssh-server (the SSH tests start a real sshd)"
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server >/dev/null; }; then
      echo "error: could not install openssh-server; run: apt-get install -y openssh-server" >&2
      exit 1
    fi
  else
    echo "error: /usr/sbin/sshd is missing; install it: sudo apt-get install -y openssh-server" >&2
    exit 1
  fi
fi

# The sweep report's browser test renders the page in headless Chromium (herd-sweep's
# tests/browser.rs); it fails, never skips, without it.
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing chromium (the report's browser test runs headless Chromium)"
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }; then
      echo "error: could not install chromium; run: apt-get install -y chromium" >&2
      exit 1
    fi
  else
    echo "error: /usr/bin/chromium is missing; install it: sudo apt-get install -y chromium" >&2
    exit 1
  fi
fi

# Keep tests hermetic: no user config, ledger or simulator state leaks in or out.
# The toolchain stays where it is.
export CARGO_HOME="${CARGO_HOME:-$HOME/.cargo}" RUSTUP_HOME="${RUSTUP_HOME:-$HOME/.rustup}"
scratch=$(mktemp -d "${TMPDIR:-/tmp}/herd-test.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
export HOME="$scratch/home" XDG_CONFIG_HOME="$scratch/config" XDG_DATA_HOME="$scratch/data"
mkdir -p "$HOME"
export NO_COLOR=1 RUST_BACKTRACE=1

say "building"
cargo build --workspace --all-targets --locked

if cargo nextest --version >/dev/null 2>&1; then
  # Doc tests first (nextest does not run them), so the run closes on nextest's summary.
  say "running doc tests"
  cargo test --workspace --locked --doc -q
  say "running tests (nextest)"
  cargo nextest run --workspace --locked --no-fail-fast "$@"
else
  say "running tests (cargo test)"
  cargo test --workspace --locked --no-fail-fast "$@"
fi
