#!/usr/bin/env bash
# Builds release binaries and runs herd's benchmarks; each line prints a ratio against
# its target and floor. Usage: scripts/bench.sh [--only startup|plan|catalog|pacing|memory|sweep|aws] [--runs N]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p herd-cli -p herd-bench
# The aws benchmark runs against moto from the test venv (scripts/test.sh creates it).
if [ -d .venv/bin ]; then export PATH="$PWD/.venv/bin:$PATH"; fi
exec target/release/herd-bench --herd target/release/herd "$@"
