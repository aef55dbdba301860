#!/usr/bin/env bash
# herd's first run, on the local simulator (no cloud account): a sweep of a real
# CPU-bound workload (examples/compress) across simulated instance types and regions.
# Prints the plan, runs every cell on real processes with the CPU its type really gets,
# prints the ranked table, writes the report (HTML, CSV, JSON, SVG and PNG charts), and
# shows that nothing is left running. About a minute on 2 cores once built.
# Uses a scratch state dir, ledger and report dir unless HERD_SIM_DIR / HERD_LEDGER /
# HERD_QUICKSTART_DIR are set.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -q -p herd-cli
# Where cargo put it: CARGO_TARGET_DIR, build.target-dir in a cargo config, or target/.
target_dir=$(cargo metadata --format-version 1 --no-deps --locked |
  sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
herd=$target_dir/release/herd
if [ ! -x "$herd" ]; then
  echo "error: the herd binary is not at $herd (cargo metadata named ${target_dir:-no target directory})" >&2
  echo "hint: build it with \`cargo build --release -p herd-cli\` and run this script again" >&2
  exit 1
fi
scratch=${HERD_QUICKSTART_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/herd-quickstart.XXXXXX")}
export HERD_SIM_DIR=${HERD_SIM_DIR:-$scratch/sim} HERD_LEDGER=${HERD_LEDGER:-$scratch/ledger.db}
report=$scratch/report

step() { printf '\n$ herd %s\n' "$*"; "$herd" "$@"; }

step sweep plan examples/compress/sweep.toml
step sweep run examples/compress/sweep.toml --out "$report"
step ls --all-states
printf '\nreport: %s/index.html (charts: scatter.png, work-per-dollar.png)\n' "$report"
printf 'state:  %s (delete it when done)\n' "$scratch"
