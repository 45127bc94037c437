#!/usr/bin/env bash
# Compares two builds of coffre in one run, alternating them round by round
# (ABBA)
# on the same disk, so a change that should not move performance (a refactor)
# can be checked: 64 MiB PUT/GET at concurrency 4, 4 KiB PUT/GET at 32
# (inline in the metadata), 4 KiB PUT into a versioned bucket and LIST.
# One client (AFTER's `coffre bench`) drives both servers; each phase runs
# on a fresh server. Prints the table per run, then AFTER/BEFORE per phase.
# Usage: scripts/bench-compare.sh BEFORE_BIN AFTER_BIN [seconds-per-phase] [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
before="$1" after="$2" secs="${3:-10}" rounds="${4:-2}"
bin="$after" bench_client="$after"
source scripts/bench-lib.sh
results="$work/results"
mkdir -p "$results"

run() {  # $1: label (before|after), $2: round; JSON per case in $results
  local label="$1" round="$2"
  bin="${!label}"
  start_server ""
  bench --size 64MiB --concurrency 4 --phases put,get --json >"$results/$label-$round-64m.json"
  stop_server
  start_server ""
  bench --size 4KiB --concurrency 32 --phases put,get --json >"$results/$label-$round-4k.json"
  stop_server
  start_server ""
  python3 - <<'PY'
import boto3
s3 = boto3.client("s3", endpoint_url="http://127.0.0.1:19100", region_name="us-east-1")
s3.create_bucket(Bucket="bench-versioned")
s3.put_bucket_versioning(Bucket="bench-versioned", VersioningConfiguration={"Status": "Enabled"})
PY
  bench --size 4KiB --concurrency 32 --phases put --bucket bench-versioned --json >"$results/$label-$round-4kv.json"
  stop_server
  start_server ""
  bench --phases list --list-keys 20000 --concurrency 32 --json >"$results/$label-$round-list.json"
  stop_server
}

# ABBA order: a drift over the run (page cache, disk, a neighbour's load)
# weighs on both builds alike instead of on whichever always runs second.
for round in $(seq "$rounds"); do
  order="before after"
  [ $((round % 2)) -eq 0 ] && order="after before"
  for label in $order; do
    echo "== round $round: $label (${!label})" >&2
    run "$label" "$round"
  done
done

python3 - "$results" "$rounds" <<'PY'
import json, pathlib, statistics, sys
results, rounds = pathlib.Path(sys.argv[1]), int(sys.argv[2])
def rates(label, case):
    out = {}
    for r in range(1, rounds + 1):
        for p in json.loads((results / f"{label}-{r}-{case}.json").read_text()):
            key = "keys_per_sec" if p.get("keys_per_sec") else "ops_per_sec"
            out.setdefault(p["phase"], []).append(p[key])
    return out
print(f"{'case':<14}{'phase':<8}{'before':>12}{'after':>12}{'after/before':>14}")
for case in ["64m", "4k", "4kv", "list"]:
    b, a = rates("before", case), rates("after", case)
    for phase in b:
        mb, ma = statistics.mean(b[phase]), statistics.mean(a[phase])
        unit = "keys/s" if case == "list" else "ops/s"
        print(f"{case:<14}{phase:<8}{mb:>12.1f}{ma:>12.1f}{ma / mb:>13.2f}x   ({unit}; runs {b[phase]} vs {a[phase]})")
PY
