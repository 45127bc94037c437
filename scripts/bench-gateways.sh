#!/usr/bin/env bash
# What the PostgreSQL metadata engine costs, and what more gateways on one
# database give, all on this machine, in the same run:
#
#   A. one server, embedded engine (redb) vs PostgreSQL engine: 4 KiB PUT and
#      GET (concurrency 32), then LIST of 10,000 0-byte keys (pages of 1,000);
#      two rounds of fresh servers, alternating.
#   B. PostgreSQL: one gateway vs three gateways sharing one database, loaded
#      by one `coffre bench --endpoint a,b,c` process (requests go to the
#      gateways in turn): 4 KiB PUT and GET at the same total concurrency (32),
#      and three gateways at 96; two rounds, alternating, a fresh database per
#      configuration.
#
# 4 KiB objects are inline (their sealed bytes live in the metadata row), so
# the metadata engine dominates, and no storage targets are needed: each
# server has its own data directory and ports, none of the objects' bytes are
# on a gateway's disk, and a GET through one gateway of an object written
# through another works. The gateways share one config file: [metadata] (the
# database) and [kms] custody = "embedded" with one `dir`, since a gateway
# must be able to open the keys another made. LIST is left out of B: the
# list phase runs one listing at a time, whatever the gateway count.
#
# PostgreSQL is a throwaway cluster (scripts/pg-server.sh --durable: its
# defaults, fsync on, like the embedded engine; 128 MB shared_buffers) on the
# same disk, reached over its unix socket; gateways keep their default pool
# of 16 connections. The load generator, PostgreSQL and every gateway share
# this machine's cores.
#   scripts/bench-gateways.sh [seconds-per-phase]   (default 10)
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-10}"
source scripts/bench-lib.sh
# The target directory may be shared: a build started meanwhile must not swap
# the binary between two configurations.
cp "$bin" "$work/coffre"
bin="$work/coffre"

pgdir=""
gateways=()
cleanup() {
  for p in "${gateways[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${gateways[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ -n "$pgdir" ]; then
    scripts/pg-server.sh --stop "$pgdir" 2>/dev/null || true
    rm -rf "$pgdir"
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A short directory: PostgreSQL's socket path is limited to 107 bytes.
pgdir="$(mktemp -d /tmp/coffre-pg.XXXXXX)"
if ! pgenv="$(scripts/pg-server.sh --durable "$pgdir" 2>"$work/pg-start.log")"; then
  cat "$work/pg-start.log" >&2
  exit 1
fi
eval "$pgenv"
psql() { "$COFFRE_TEST_PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -d postgres "$@"; }
mkdir -p "$work/results"

# start_gateways N [CONFIG]: N servers, each on its own data directory and
# ports (S3 19100, 19110, 19120; admin one above), all with CONFIG if given.
endpoints=""
start_gateways() {
  local n=$1 config=${2:-} i
  endpoints=""
  for ((i = 0; i < n; i++)); do
    local flags=(--data-dir "$work/gw$i" --s3-listen "127.0.0.1:$((19100 + 10 * i))"
      --admin-listen "127.0.0.1:$((19101 + 10 * i))" --node-id "gw$i")
    [ -z "$config" ] || flags+=(--config "$config")
    COFFRE_ROOT_ACCESS_KEY=$AWS_ACCESS_KEY_ID COFFRE_ROOT_SECRET_KEY=$AWS_SECRET_ACCESS_KEY COFFRE_LOG=warn \
      "$bin" serve "${flags[@]}" >>"$work/gw$i.log" 2>&1 &
    gateways+=($!)
    endpoints+="${endpoints:+,}http://127.0.0.1:$((19100 + 10 * i))"
  done
  for ((i = 0; i < n; i++)); do
    local ok=""
    for _ in $(seq 150); do
      curl -sf "http://127.0.0.1:$((19101 + 10 * i))/health/ready" >/dev/null && ok=1 && break
      sleep 0.1
    done
    if [ -z "$ok" ]; then
      echo "gateway $i did not start:" >&2
      tail -n 20 "$work/gw$i.log" >&2
      exit 1
    fi
  done
}
stop_gateways() {
  local p
  for p in "${gateways[@]}"; do kill "$p" 2>/dev/null || echo "a gateway had exited before the end of its run" >&2; done
  for p in "${gateways[@]}"; do wait "$p" || true; done
  gateways=()
  rm -rf "$work"/gw? "$work"/gw?.log "$work/kms"
}

# run NAME ROUND ENGINE GATEWAYS CONCURRENCY BENCH-FLAGS...: fresh servers
# (and, on PostgreSQL, a fresh database), one bench process, results in
# $work/results/NAME-ROUND.json.
run() {
  local name=$1 round=$2 engine=$3 n=$4 conc=$5 config="" i
  shift 5
  if [ "$engine" = postgres ]; then
    local db="bench_${name//-/_}_$round"
    psql -c "CREATE DATABASE $db"
    config="$work/coffre.toml"
    cat >"$config" <<TOML
[metadata]
engine = "postgres"
url = "host=$PGHOST port=$PGPORT user=$PGUSER dbname=$db"

[kms]
custody = "embedded"
dir = "$work/kms"
TOML
  fi
  start_gateways "$n" "$config"
  local out="$work/results/$name-$round.json"
  "$bin" bench --endpoint "$endpoints" --duration "$secs" --concurrency "$conc" --json "$@" >"$out"
  jq -r 'def ms: . * 100 | round / 100; .[]
    | "  \(.phase): \(.ops_per_sec | round) ops/s, \(.errors) errors, p50 \(.p50_ms | ms) ms, p99 \(.p99_ms | ms) ms"
      + (if .keys_per_sec then ", \(.keys_per_sec | round) keys/s" else "" end)' "$out"
  if ((n > 1)); then  # that the load was spread: S3 requests each gateway answered
    local served=""
    for ((i = 0; i < n; i++)); do
      served+="${served:+, }gw$i $(curl -sf "http://127.0.0.1:$((19101 + 10 * i))/metrics" |
        awk '/^coffre_s3_requests_total/ { s += $NF } END { printf "%d", s }')"
    done
    echo "  requests answered: $served"
  fi
  if [ "$(jq '[.[].errors] | add' "$out")" != 0 ]; then
    for ((i = 0; i < n; i++)); do echo "  gw$i log:"; tail -n 5 "$work/gw$i.log"; done
  fi
  stop_gateways
  # Dropping the database also checkpoints: the next configuration starts clean.
  [ "$engine" != postgres ] || psql -c "DROP DATABASE $db"
}

for round in 1 2; do
  for engine in embedded postgres; do
    echo; echo "== A, round $round, $engine engine: one server, 4 KiB objects, concurrency 32; LIST of 10,000 keys"
    run "a-$engine" "$round" "$engine" 1 32 --size 4KiB --phases put,get,list --list-keys 10000
  done
done
for round in 1 2; do
  for config in 1-32 3-32 3-96; do
    n=${config%-*} conc=${config#*-}
    gw="one gateway"
    [ "$n" = 1 ] || gw="$n gateways on one database"
    echo; echo "== B, round $round, PostgreSQL: $gw, 4 KiB objects, total concurrency $conc"
    run "b-$config" "$round" postgres "$n" "$conc" --size 4KiB --phases put,get
  done
done

# The summary: each cell is "round 1 / round 2"; ratios are per round,
# against the baseline of the same round.
result() { jq -r --arg p "$3" '.[] | select(.phase == $p) | .'"$4" "$work/results/$1-$2.json"; }
thousands() { printf '%.0f' "$1" | sed ':a;s/\B[0-9]\{3\}\>/,&/;ta'; }
cell() { echo "$(thousands "$(result "$1" 1 "$2" "$3")") / $(thousands "$(result "$1" 2 "$2" "$3")")"; }
ratio() {  # CONFIG BASELINE PHASE FIELD
  local r out=""
  for r in 1 2; do
    out+="${out:+ / }$(awk -v a="$(result "$1" "$r" "$3" "$4")" -v b="$(result "$2" "$r" "$3" "$4")" \
      'BEGIN { printf "%.0f%%", (b > 0 ? 100 * a / b : 0) }')"
  done
  echo "$out"
}
echo
echo "== summary ($secs s phases; round 1 / round 2; ratios against the baseline of the same round)"
echo
echo "| one server, concurrency 32 | embedded engine | PostgreSQL engine, same run | ratio |"
echo "| --- | --- | --- | --- |"
echo "| 4 KiB PUT | $(cell a-embedded put ops_per_sec) ops/s | $(cell a-postgres put ops_per_sec) ops/s | $(ratio a-postgres a-embedded put ops_per_sec) |"
echo "| 4 KiB GET | $(cell a-embedded get ops_per_sec) ops/s | $(cell a-postgres get ops_per_sec) ops/s | $(ratio a-postgres a-embedded get ops_per_sec) |"
echo "| LIST of 10,000 keys, pages of 1,000 | $(cell a-embedded list keys_per_sec) keys/s | $(cell a-postgres list keys_per_sec) keys/s | $(ratio a-postgres a-embedded list keys_per_sec) |"
echo
echo "| PostgreSQL, one database | one gateway, concurrency 32 | three gateways, concurrency 32 | ratio | three gateways, concurrency 96 | ratio |"
echo "| --- | --- | --- | --- | --- | --- |"
for phase in put get; do
  echo "| 4 KiB ${phase^^} | $(cell b-1-32 $phase ops_per_sec) ops/s | $(cell b-3-32 $phase ops_per_sec) ops/s | $(ratio b-3-32 b-1-32 $phase ops_per_sec)" \
    "| $(cell b-3-96 $phase ops_per_sec) ops/s | $(ratio b-3-96 b-1-32 $phase ops_per_sec) |"
done
errors=$(jq -s '[.[][].errors] | add' "$work"/results/*.json)
[ "$errors" = 0 ] || echo "WARNING: $errors requests failed in this run (see the rounds above)"
