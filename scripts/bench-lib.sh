# Shared by the bench scripts: builds the release binary (unless $bin names
# one already) and gives start_server / stop_server / peak_rss / bench over a
# scratch directory. Expects $secs; sets $bin, $work and $pid. `bench` drives
# the load with $bench_client when set (one client for two servers), else $bin.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/coffre/target}"
if [ -z "${bin:-}" ]; then
  cargo build --release -p coffre >/dev/null
  bin="$CARGO_TARGET_DIR/release/coffre"
fi
work="$(mktemp -d "${BENCH_DIR:-$PWD}/coffre-bench.XXXXXX")"
unset AWS_CA_BUNDLE REQUESTS_CA_BUNDLE SSL_CERT_FILE
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT

export AWS_ACCESS_KEY_ID=benchroot AWS_SECRET_ACCESS_KEY=bench-secret-key-0123456789abcdefgh
start_server() {  # $1: extra flags
  COFFRE_ROOT_ACCESS_KEY=$AWS_ACCESS_KEY_ID COFFRE_ROOT_SECRET_KEY=$AWS_SECRET_ACCESS_KEY COFFRE_LOG=warn \
    "$bin" serve --data-dir "$work/data" --s3-listen 127.0.0.1:19100 --admin-listen 127.0.0.1:19101 $1 &
  pid=$!
  for _ in $(seq 100); do curl -sf http://127.0.0.1:19101/health/ready >/dev/null && return; sleep 0.1; done
  echo "server did not start" >&2; exit 1
}
stop_server() { kill "$pid"; wait "$pid" || true; rm -rf "$work/data"; }
peak_rss() { awk '/VmHWM/ {print $2 / 1024 " MiB"}' "/proc/$pid/status"; }
bench() { "${bench_client:-$bin}" bench --endpoint http://127.0.0.1:19100 --duration "$secs" "$@"; }

