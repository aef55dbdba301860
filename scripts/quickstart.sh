#!/usr/bin/env bash
# herd's first run, on the local simulator (no cloud account): launch two small
# instances that do real work, list them, see what they cost, shut them down.
# Uses a scratch state dir and ledger unless HERD_SIM_DIR / HERD_LEDGER are set.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -q -p herd-cli
herd=target/release/herd
scratch=${HERD_QUICKSTART_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/herd-quickstart.XXXXXX")}
export HERD_SIM_DIR=${HERD_SIM_DIR:-$scratch/sim} HERD_LEDGER=${HERD_LEDGER:-$scratch/ledger.db}

step() { printf '\n$ herd %s\n' "$*"; "$herd" "$@"; }

step catalog --region 'local-*' --limit 8
step launch l1.small -n 2 --deadline 10m --cluster quickstart \
  --command 'i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; echo done > result.txt'
step ls
sleep 2
step cost --by cluster
step down --cluster quickstart --yes
step ls --history
printf '\nstate: %s (delete it when done)\n' "$scratch"
