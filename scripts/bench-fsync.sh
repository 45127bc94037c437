#!/usr/bin/env bash
# What durability costs: small-object PUT and GET ops/s with every fsync (the
# default) and with `fsync = false` (COFFRE_FSYNC=false: nothing survives a
# power cut), alternating, two rounds each, on fresh servers. The target is
# at least half of the no-fsync PUT figure at concurrency 32.
# Usage: scripts/bench-fsync.sh [seconds-per-phase] (default 10)
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-10}"
source scripts/bench-lib.sh

for round in 1 2; do
  for fsync in true false; do
    echo; echo "== round $round, fsync=$fsync: 4 KiB objects, concurrency 32"
    COFFRE_FSYNC=$fsync start_server ""
    bench --size 4KiB --concurrency 32 --phases put,get
    stop_server
  done
done
for fsync in true false; do
  echo; echo "== fsync=$fsync: 1 MiB objects (blob files), concurrency 32"
  COFFRE_FSYNC=$fsync start_server ""
  bench --size 1MiB --concurrency 32 --phases put
  stop_server
done
