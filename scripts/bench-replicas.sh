#!/usr/bin/env bash
# What replication costs: PUT and GET with 2 replicas (a gateway and two
# storage nodes on two sites, all on this machine) against one single-node
# server, same objects, same run, alternating. For 4 KiB objects the single
# node is also run with --inline-threshold 0, since a gateway never inlines.
#   scripts/bench-replicas.sh [seconds-per-phase]
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-10}"
source scripts/bench-lib.sh

nodes=()
start_nodes() {
  # One identity per process, from a CA of the bench's own (node links are mutual TLS).
  if [ ! -d "$work/ca" ]; then
    "$bin" cluster ca --dir "$work/ca" --name bench >/dev/null
    for n in 1 2; do "$bin" cluster issue --ca "$work/ca" --node "n$n" --out "$work/id-n$n" >/dev/null; done
    "$bin" cluster issue --ca "$work/ca" --gateway bench --out "$work/id-gw" >/dev/null
  fi
  cat >"$work/cluster.toml" <<TOML
[cluster]
identity = "$work/id-gw"
[residency]
allow = ["FR"]
replicas = 2
distinct_sites = 2
[[operators]]
id = "op"
name = "Bench SAS"
country = "FR"
ownership = { FR = 100.0 }
[[targets]]
id = "n1"
kind = "node"
endpoint = "https://127.0.0.1:19111"
country = "FR"
region = "paris"
site = "a"
operator = "op"
capacity = "100GiB"
[[targets]]
id = "n2"
kind = "node"
endpoint = "https://127.0.0.1:19112"
country = "FR"
region = "lyon"
site = "b"
operator = "op"
capacity = "100GiB"
TOML
  for n in 1 2; do
    COFFRE_LOG=warn "$bin" serve --role storage --config "$work/cluster.toml" --data-dir "$work/n$n" \
      --node-listen "127.0.0.1:1911$n" --node-id "n$n" --cluster-identity "$work/id-n$n" &
    nodes+=($!)
  done
  # Listening is enough (they refuse a client without a gateway's certificate): the gateway then finds both up.
  for n in 1 2; do
    for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/1911$n") 2>/dev/null && break; sleep 0.1; done
  done
}
stop_nodes() { for p in "${nodes[@]}"; do kill "$p"; wait "$p" || true; done; nodes=(); rm -rf "$work"/n?; }
trap 'for p in "${nodes[@]}"; do kill "$p" 2>/dev/null || true; done; kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT

for size in 4KiB 1MiB; do
  for round in 1 2; do
    echo; echo "== round $round, $size objects, concurrency 32: single node"
    start_server ""
    bench --size "$size" --concurrency 32 --phases put,get
    stop_server
    if [ "$size" = 4KiB ]; then
      echo; echo "== round $round, $size objects, concurrency 32: single node, --inline-threshold 0 (a blob file per object)"
      start_server "--inline-threshold 0"
      bench --size "$size" --concurrency 32 --phases put,get
      stop_server
    fi
    echo; echo "== round $round, $size objects, concurrency 32: gateway + 2 storage nodes (2 replicas, 2 sites)"
    start_nodes
    start_server "--role gateway --config $work/cluster.toml"
    bench --size "$size" --concurrency 32 --phases put,get
    stop_server
    stop_nodes
  done
done
