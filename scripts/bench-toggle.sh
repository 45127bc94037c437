#!/usr/bin/env bash
# What one switch costs: small-object PUT and GET ops/s (4 KiB, concurrency
# 32), then 1 MiB PUT throughput, with the switch on (the default) and off,
# alternating fresh servers.
#   scripts/bench-toggle.sh COFFRE_AUDIT [seconds-per-phase]   # the audit log
#   scripts/bench-toggle.sh COFFRE_FSYNC [seconds-per-phase]   # every fsync
set -euo pipefail
cd "$(dirname "$0")/.."
switch="${1:?usage: $0 COFFRE_AUDIT|COFFRE_FSYNC [seconds-per-phase]}"
secs="${2:-10}"
source scripts/bench-lib.sh

for round in 1 2; do
  for value in true false; do
    echo; echo "== round $round, $switch=$value: 4 KiB objects, concurrency 32"
    export "$switch=$value"
    start_server ""
    bench --size 4KiB --concurrency 32 --phases put,get
    stop_server
  done
done
for value in true false; do
  echo; echo "== $switch=$value: 1 MiB objects (blob files), concurrency 32"
  export "$switch=$value"
  start_server ""
  bench --size 1MiB --concurrency 32 --phases put
  stop_server
done
