#!/usr/bin/env bash
# Benchmarks a release `coffre serve` over loopback with `coffre bench`, next
# to raw-disk baselines measured in the same run (same disk, same sizes, same
# concurrency, with fsync), and reports the server's peak memory per size.
# Usage: scripts/bench.sh [seconds-per-phase]   (default 10)
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-10}"
source scripts/bench-lib.sh

echo "== 64 MiB objects, concurrency 4: PUT and GET vs raw disk write/read (page cache warm) and raw AES-256-GCM"
start_server ""
bench --size 64MiB --concurrency 4 --phases put,get --baseline-dir "$work" --crypto-baseline
echo "server peak RSS after 64 MiB objects: $(peak_rss)"
stop_server

# What encryption costs end to end: the same phases against a build from
# before encryption at rest (e.g. commit 648e803), alternating with this one.
if [ -n "${COFFRE_UNENCRYPTED_BIN:-}" ]; then
  for round in 1 2; do
    for which in "$COFFRE_UNENCRYPTED_BIN" "$CARGO_TARGET_DIR/release/coffre"; do
      echo; echo "== round $round, 64 MiB objects, concurrency 4: $which"
      bin="$which"
      start_server ""
      bench --size 64MiB --concurrency 4 --phases put,get
      stop_server
    done
  done
  bin="$CARGO_TARGET_DIR/release/coffre"
fi

echo; echo "== the same, page cache dropped before each read phase (GET and raw read both from disk)"
start_server ""
bench --size 64MiB --concurrency 4 --phases put,get --baseline-dir "$work" --drop-caches
stop_server

echo; echo "== 1 GiB objects, concurrency 1: memory must not grow with object size"
start_server ""
bench --size 1GiB --concurrency 1 --phases put,get
echo "server peak RSS after 1 GiB objects: $(peak_rss)"
stop_server

echo; echo "== 4 KiB objects, concurrency 32 (inline in metadata, the default)"
start_server ""
bench --size 4KiB --concurrency 32 --phases put,get,mixed --baseline-dir "$work"
stop_server

echo; echo "== 4 KiB objects, concurrency 32: unversioned vs versioned bucket (each on a fresh server)"
start_server ""
bench --size 4KiB --concurrency 32 --phases put --bucket bench-plain
stop_server
start_server ""
python3 - <<'PY'
import boto3
s3 = boto3.client("s3", endpoint_url="http://127.0.0.1:19100", region_name="us-east-1")
s3.create_bucket(Bucket="bench-versioned")
s3.put_bucket_versioning(Bucket="bench-versioned", VersioningConfiguration={"Status": "Enabled"})
PY
bench --size 4KiB --concurrency 32 --phases put --bucket bench-versioned
stop_server

echo; echo "== 4 KiB objects, concurrency 32, inline threshold 0 (every object in its own file)"
start_server "--inline-threshold 0"
bench --size 4KiB --concurrency 32 --phases put,get
stop_server

echo; echo "== what the audit log costs: 4 KiB objects, concurrency 32, audit on vs off (scripts/bench-toggle.sh)"
scripts/bench-toggle.sh COFFRE_AUDIT "$secs"

echo; echo "== LIST of 100,000 keys (pages of 1000)"
start_server ""
bench --phases list --list-keys 100000 --concurrency 32
stop_server

# Peer: the same 64 MiB GET from nginx (sendfile) and from Coffre (presigned
# URL), both driven by wrk over loopback: what HTTP itself costs here.
if command -v nginx >/dev/null && command -v wrk >/dev/null; then
  echo; echo "== peer: 64 MiB GET over loopback, wrk -t2 -c4, nginx (sendfile) vs coffre"
  mkdir -p "$work/www/peer" "$work/nginx"
  head -c 67108864 /dev/urandom > "$work/www/peer/obj"
  # nginx's workers drop root: let them read the file (mktemp made $work 0700).
  chmod a+rx "$work" "$work/www" "$work/www/peer" && chmod a+r "$work/www/peer/obj"
  cat > "$work/nginx/nginx.conf" <<CONF
worker_processes 2;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log;
events { worker_connections 64; }
http { access_log off; sendfile on; server { listen 127.0.0.1:19180; root $work/www; } }
CONF
  nginx -c "$work/nginx/nginx.conf"
  printf 'nginx:  '; wrk -t2 -c4 -d"${secs}s" http://127.0.0.1:19180/peer/obj | grep -E 'Transfer/sec|Non-2xx' 
  kill "$(cat "$work/nginx/nginx.pid")"
  start_server ""
  url=$(AWS_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID python3 - "$work/www/peer/obj" <<'PY'
import sys, boto3, botocore.config
s3 = boto3.client("s3", endpoint_url="http://127.0.0.1:19100", region_name="us-east-1",
                  config=botocore.config.Config(signature_version="s3v4", s3={"addressing_style": "path"}))
s3.create_bucket(Bucket="peer")
s3.upload_file(sys.argv[1], "peer", "obj")
print(s3.generate_presigned_url("get_object", Params={"Bucket": "peer", "Key": "obj"}, ExpiresIn=3600))
PY
)
  printf 'coffre: '; wrk -t2 -c4 -d"${secs}s" "$url" | grep -E 'Transfer/sec|Non-2xx' 
  stop_server
fi
