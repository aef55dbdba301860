#!/usr/bin/env bash
# Builds release binaries and runs herd's benchmarks; each line prints a ratio against
# its target and floor. Usage: scripts/bench.sh [--only startup|plan|catalog|pacing|memory|sweep|aws|gcp|ssh|env|report] [--runs N]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p herd-cli -p herd-bench
# The aws benchmark runs against moto from the test venv (scripts/test.sh creates it).
if [ -d .venv/bin ]; then export PATH="$PWD/.venv/bin:$PATH"; fi
# Where cargo put them: CARGO_TARGET_DIR, build.target-dir in a cargo config, or target/.
target_dir=$(cargo metadata --format-version 1 --no-deps --locked |
  sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
exec "$target_dir/release/herd-bench" --herd "$target_dir/release/herd" "$@"
