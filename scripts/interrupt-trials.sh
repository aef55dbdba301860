#!/usr/bin/env bash
# interrupt-trials.sh: `kill -9` and SIGINT (Ctrl-C) at random moments of a 50-instance
# `herd launch`, on the simulator (real processes) and on moto's EC2 server, TRIALS
# times each (default 20, so 80 trials). After every trial:
#   - every instance that runs (by an independent look: the simulator's sim.db and its
#     processes, or boto3 against moto) is shown by `herd ls`;
#   - `herd down --all` stops every one of them, and afterwards nothing runs;
#   - nothing is billed without running: no ledger row is live (after `herd cost`
#     refreshed it) unless the instance really runs, and no simulator row is live
#     without a live process;
#   - an interrupted launch exited 130, and said which launch and how to stop it.
# Ends with `interrupt-trials: N passed, M failed` and exits non-zero if any failed.
#
# Usage: scripts/interrupt-trials.sh [TRIALS]     env: COUNT (50), MAX_MS (3000), KEEP=1
set -euo pipefail

TRIALS=${1:-${TRIALS:-20}}
COUNT=${COUNT:-50}
MAX_MS=${MAX_MS:-3000}
root=$(cd "$(dirname "$0")/.." && pwd)
PY="$root/.venv/bin/python"
MOTO="$root/.venv/bin/moto_server"
if [[ ! -x "$MOTO" || ! -x "$PY" ]]; then
  echo "interrupt-trials: moto_server not found in $root/.venv: run scripts/test.sh, or" >&2
  echo "  python3 -m venv .venv && .venv/bin/pip install -r scripts/requirements-test.txt" >&2
  exit 1
fi

cargo build -q -p herd-cli --manifest-path "$root/Cargo.toml"
HERD="$root/target/debug/herd"
scratch=$(mktemp -d "${TMPDIR:-/tmp}/herd-interrupt.XXXXXX")
moto_pid=""

cleanup() {
  # Stop what this script started: moto (by its pid) and any trial's instances.
  for d in "$scratch"/*/; do
    [[ -f "$d/env" ]] && (source "$d/env" && "$HERD" down --all --yes >/dev/null 2>&1) || true
  done
  [[ -n "$moto_pid" ]] && kill "$moto_pid" 2>/dev/null && wait "$moto_pid" 2>/dev/null
  [[ "${KEEP:-}" == 1 ]] && echo "kept $scratch" >&2 || rm -rf "$scratch"
}
trap cleanup EXIT

# The independent looks, and the comparisons, in Python (moto's venv has boto3).
cat >"$scratch/check.py" <<'EOF'
import json, os, sqlite3, sys

def live_sim(sim_dir):
    """Rows sim.db holds as not ended, with whether their agent process is alive."""
    db = os.path.join(sim_dir, "sim.db")
    if not os.path.exists(db):
        return {}
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    rows = con.execute("SELECT id, pid FROM instances WHERE ended_at IS NULL").fetchall()
    out = {}
    for id_, pid in rows:
        alive = False
        if pid:
            try:
                os.kill(pid, 0)
                alive = True
            except ProcessLookupError:
                pass
            except PermissionError:
                alive = True
        out[id_] = alive
    return out

def live_moto(endpoint, owner):
    import boto3
    ec2 = boto3.client("ec2", endpoint_url=endpoint, region_name="us-east-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    ids = {}
    for page in ec2.get_paginator("describe_instances").paginate(Filters=[
            {"Name": "tag:herd-owner", "Values": [owner]},
            {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]}]):
        for r in page["Reservations"]:
            for i in r["Instances"]:
                ids[i["InstanceId"]] = True
    return ids

def load(path):
    with open(path) as f:
        text = f.read().strip()
    return json.loads(text) if text else None

cmd = sys.argv[1]
if cmd == "oracle":          # oracle sim SIM_DIR | oracle moto ENDPOINT OWNER -> JSON {id: alive}
    print(json.dumps(live_sim(sys.argv[3]) if sys.argv[2] == "sim" else live_moto(sys.argv[3], sys.argv[4])))
elif cmd == "ids":           # ids FILE: the ids in a herd --json answer, one a line
    for i in load(sys.argv[2]) or []:
        print(i["id"])
elif cmd == "terminated":    # terminated FILE: ids `herd down --json` reports ended
    for r in load(sys.argv[2]) or []:
        print(r["id"])
elif cmd == "ledger-live":   # ledger-live FILE: ids `herd ls --history --json` still bills
    for i in load(sys.argv[2]) or []:
        if i["state"] != "terminated":
            print(i["id"])
elif cmd == "alive":         # alive ORACLE_JSON: ids that really run
    for k, v in json.loads(sys.argv[2]).items():
        if v:
            print(k)
elif cmd == "dead":          # dead ORACLE_JSON: live rows with no process (billed, not running)
    for k, v in json.loads(sys.argv[2]).items():
        if not v:
            print(k)
EOF

port=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION=true "$MOTO" -H 127.0.0.1 -p "$port" >"$scratch/moto.log" 2>&1 &
moto_pid=$!
endpoint="http://127.0.0.1:$port"
for _ in $(seq 100); do
  "$PY" -c "import urllib.request; urllib.request.urlopen('$endpoint/moto-api/')" 2>/dev/null && break
  sleep 0.1
done

passed=0
failed=0

# One trial: CLOUD (sim|moto), SIGNAL (KILL|INT), N (trial number).
trial() {
  local cloud=$1 sig=$2 n=$3
  local dir="$scratch/$cloud-$sig-$n" owner="trial-$cloud-${sig,,}-$n"
  mkdir -p "$dir/home"
  {
    echo "export HOME='$dir/home' XDG_CONFIG_HOME='$dir/home/.config' XDG_DATA_HOME='$dir/home/.local/share'"
    echo "export HERD_LEDGER='$dir/ledger.db' HERD_SIM_DIR='$dir/sim' USER='$owner' NO_COLOR=1 HERD_CONFIG='$dir/config.toml'"
    echo "unset AWS_PROFILE AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_ENDPOINT_URL HERD_CLOUD"
    if [[ $cloud == moto ]]; then
      echo "export HERD_CLOUD=aws AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1"
      echo "export AWS_EC2_METADATA_DISABLED=true AWS_ENDPOINT_URL='$endpoint' HERD_AWS_REGIONS=us-east-1"
    fi
  } >"$dir/env"
  printf '[simulator.faults]\nboot_delay = ["200ms", "2s"]\n' >"$dir/config.toml"
  # shellcheck disable=SC1091
  source "$dir/env"
  local type=l1.small
  [[ $cloud == moto ]] && type=t3.micro
  local at=$((RANDOM % MAX_MS))
  local problems=()

  "$HERD" launch "$type" -n "$COUNT" --deadline 30m --cluster "t$n" >"$dir/launch.out" 2>"$dir/launch.err" &
  local pid=$!
  sleep "$(printf '0.%03d' "$at")"
  [[ $at -ge 1000 ]] && sleep "$((at / 1000))"
  local signalled=yes
  kill -"$sig" "$pid" 2>/dev/null || signalled="no (the launch had ended)"
  local rc=0
  { wait "$pid"; } 2>/dev/null || rc=$?
  local err
  err=$(cat "$dir/launch.err")
  local early=""
  if [[ $sig == INT && $signalled == yes ]]; then
    if [[ $rc -eq 130 && -z "$err" ]]; then
      # A SIGINT in the first milliseconds, before herd listens, ends it the default
      # way (128 + 2 too); nothing may have been launched then (checked below).
      early=yes
    elif [[ $rc -eq 130 ]]; then
      [[ $err == *interrupted* ]] || problems+=("exit 130 without saying it was interrupted")
      [[ $err != *"launch l-"* || $err == *"herd down --launch l-"* ]] || problems+=("no stop command printed")
    elif [[ $rc -ne 0 ]]; then
      problems+=("SIGINT ended herd with exit $rc, not 130: $(tail -c 300 "$dir/launch.err")")
    fi
  fi

  # What really runs, and what herd shows.
  "$HERD" ls --json >"$dir/ls.json" 2>"$dir/ls.err" || problems+=("herd ls failed: $(head -c 300 "$dir/ls.err")")
  local oracle
  if [[ $cloud == sim ]]; then
    oracle=$("$PY" "$scratch/check.py" oracle sim "$dir/sim")
    local dead
    dead=$("$PY" "$scratch/check.py" dead "$oracle" | wc -l)
    [[ $dead -eq 0 ]] || problems+=("$dead simulator row(s) live without a process")
  else
    oracle=$("$PY" "$scratch/check.py" oracle moto "$endpoint" "$owner")
  fi
  local alive shown missing
  alive=$("$PY" "$scratch/check.py" alive "$oracle" | sort)
  [[ -z $early || -z $alive ]] || problems+=("ended by SIGINT before herd listened, yet instances run")
  shown=$("$PY" "$scratch/check.py" ids "$dir/ls.json" | sort)
  missing=$(comm -23 <(echo "$alive" | sed '/^$/d') <(echo "$shown" | sed '/^$/d') | wc -l)
  [[ $missing -eq 0 ]] || problems+=("$missing running instance(s) not shown by herd ls")
  # The ledger bills only what runs.
  "$HERD" cost --json >/dev/null 2>"$dir/cost.err" || problems+=("herd cost failed: $(head -c 300 "$dir/cost.err")")
  "$HERD" ls --history --json >"$dir/history.json" 2>/dev/null || true
  local billed_idle
  billed_idle=$(comm -23 <("$PY" "$scratch/check.py" ledger-live "$dir/history.json" | sort) <(echo "$alive" | sed '/^$/d') | wc -l)
  [[ $billed_idle -eq 0 ]] || problems+=("$billed_idle ledger row(s) billed without running")

  # The kill switch stops all of it.
  "$HERD" down --all --yes --json >"$dir/down.json" 2>"$dir/down.err" || problems+=("herd down --all failed: $(head -c 300 "$dir/down.err")")
  local not_stopped
  not_stopped=$(comm -23 <(echo "$shown" | sed '/^$/d') <("$PY" "$scratch/check.py" terminated "$dir/down.json" | sort) | wc -l)
  [[ $not_stopped -eq 0 ]] || problems+=("$not_stopped shown instance(s) not stopped by down --all")
  local left=""
  for _ in $(seq 50); do
    if [[ $cloud == sim ]]; then
      left=$("$PY" "$scratch/check.py" oracle sim "$dir/sim")
      # Agents end when terminated; give them a moment.
      pgrep -f -- "$dir/sim/vms/" >/dev/null && left="processes"
    else
      left=$("$PY" "$scratch/check.py" oracle moto "$endpoint" "$owner")
    fi
    [[ $left == "{}" ]] && break
    sleep 0.1
  done
  [[ $left == "{}" ]] || problems+=("still running after down --all: ${left:0:200}")
  "$HERD" ls --history --json >"$dir/history.json" 2>/dev/null || true
  local ledger_live
  ledger_live=$("$PY" "$scratch/check.py" ledger-live "$dir/history.json" | wc -l)
  [[ $ledger_live -eq 0 ]] || problems+=("$ledger_live ledger row(s) still live after down --all")

  local launched
  launched=$(echo "$shown" | sed '/^$/d' | wc -l)
  if [[ ${#problems[@]} -eq 0 ]]; then
    passed=$((passed + 1))
    printf 'ok   %-4s %-4s #%-2s at %4sms: exit %3s, %2s live after, all stopped\n' "$cloud" "$sig" "$n" "$at" "$rc" "$launched"
  else
    failed=$((failed + 1))
    printf 'FAIL %-4s %-4s #%-2s at %4sms: exit %3s: %s (see %s)\n' "$cloud" "$sig" "$n" "$at" "$rc" "$(IFS=';'; echo "${problems[*]}")" "$dir"
    KEEP=1
  fi
}

for cloud in sim moto; do
  for sig in KILL INT; do
    for n in $(seq "$TRIALS"); do
      trial "$cloud" "$sig" "$n"
    done
  done
done

echo "interrupt-trials: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
