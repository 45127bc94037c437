#!/usr/bin/env bash
# What the audit log costs: small-object PUT and GET ops/s with the audit log
# on (the default: every PUT's event on disk before its answer, GETs batched
# within 1 s) and off (COFFRE_AUDIT=false), alternating, two rounds each, on
# fresh servers. Usage: scripts/bench-audit.sh [seconds-per-phase] (default 10)
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-10}"
source scripts/bench-lib.sh

for round in 1 2; do
  for audit in true false; do
    echo; echo "== round $round, audit=$audit: 4 KiB objects, concurrency 32"
    COFFRE_AUDIT=$audit start_server ""
    bench --size 4KiB --concurrency 32 --phases put,get
    stop_server
  done
done
