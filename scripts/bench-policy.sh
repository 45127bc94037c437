#!/usr/bin/env bash
# What a bucket policy costs: 4 KiB PUT and GET ops/s (concurrency 32) on one
# server, in the same run: root on a bucket without policy, root on a bucket
# with a 20-statement policy (conditions, wildcards, variables; the owner's
# requests are still checked against every Deny), and another key that only
# that policy lets in (its last statement). Several rounds, each starting
# with the next configuration, so that a drift over the run (the data
# growing, the machine's load changing) falls on each in turn. Besides ops/s,
# each phase reports the server's CPU time per request (user + system, from
# /proc), which a machine shared with other work disturbs far less.
#   scripts/bench-policy.sh [seconds-per-phase] [rounds, 3 by default]
# bin=PATH uses that binary instead of building the release one.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-10}"
rounds="${2:-3}"
source scripts/bench-lib.sh

# curl signs, given the payload's hash (curl 7.x does not send it itself).
sigv4() {  # $1: body, then curl's arguments
  local body=$1; shift
  curl -sS --fail-with-body --aws-sigv4 "aws:amz:us-east-1:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
    -H "x-amz-content-sha256: $(printf '%s' "$body" | sha256sum | cut -d' ' -f1)" --data-binary "$body" "$@"
}
start_server ""
for bucket in plain ruled; do sigv4 "" -X PUT "http://127.0.0.1:19100/$bucket" >/dev/null; done
made="$("$bin" key create --name bench-reader --endpoint http://127.0.0.1:19101 --data-dir "$work/data" --json)"
field() { python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1" <<<"$made"; }
reader_id="$(field access_key_id)" reader_secret="$(field secret_access_key)"

# 19 statements that do not grant the reader but must each be read, then its grant.
statements=""
for i in $(seq 1 19); do
  case $((i % 4)) in
    0) cond='"Condition":{"IpAddress":{"aws:SourceIp":"10.'$i'.0.0/16"}}' ;;
    1) cond='"Condition":{"StringLike":{"s3:prefix":["team-'$i'/*","shared/${aws:userid}/*"]}}' ;;
    2) cond='"Condition":{"DateLessThan":{"aws:CurrentTime":"2001-01-01T00:00:00Z"}}' ;;
    3) cond='"Condition":{"Bool":{"aws:SecureTransport":"true"},"NumericLessThan":{"s3:max-keys":"'$i'"}}' ;;
  esac
  statements+='{"Sid":"S'$i'","Effect":"Deny","Principal":"*","Action":["s3:DeleteObject","s3:Put*Acl","s3:GetObjectVersion"],"Resource":"arn:aws:s3:::ruled/secret-'$i'/*",'$cond'},'
done
statements+='{"Sid":"Reader","Effect":"Allow","Principal":{"AWS":"'$reader_id'"},"Action":["s3:GetObject","s3:PutObject"],"Resource":"arn:aws:s3:::ruled/*"}'
policy='{"Version":"2012-10-17","Statement":['$statements']}'
sigv4 "$policy" -X PUT -H 'Content-Type: application/json' "http://127.0.0.1:19100/ruled?policy=" >/dev/null
echo "policy of $(grep -o '"Sid"' <<<"$policy" | wc -l) statements, $(wc -c <<<"$policy") bytes on bucket ruled"

cpu_ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
# PUT then GET on $1; the server's CPU is read when the PUT phase ends
# ($secs after the start, give or take the requests still in flight).
put_get() {
  local start end sleeper
  start=$(cpu_ticks)
  (sleep "$secs"; cpu_ticks >"$work/mid") &
  sleeper=$!
  bench --bucket "$1" --size 4KiB --concurrency 32 --phases put,get | tee "$work/out"
  wait "$sleeper"
  end=$(cpu_ticks)
  awk -v a="$start" -v m="$(cat "$work/mid")" -v e="$end" -v hz="$(getconf CLK_TCK)" '
    $1 == "put" { printf "server CPU per request: put %.0f us", (m - a) * 1e6 / hz / $2 }
    $1 == "get" { printf ", get %.0f us\n", (e - m) * 1e6 / hz / $2 }' "$work/out"
}
measure() {  # $1: the configuration
  case $1 in
    plain)
      echo; echo "== round $round: root, bucket without policy"
      put_get plain ;;
    owner)
      echo; echo "== round $round: root, bucket with the 20-statement policy"
      put_get ruled ;;
    other)
      echo; echo "== round $round: another key, let in by the policy's last statement"
      AWS_ACCESS_KEY_ID=$reader_id AWS_SECRET_ACCESS_KEY=$reader_secret put_get ruled ;;
  esac
}
configs=(plain owner other)
for round in $(seq 1 "$rounds"); do
  for i in 0 1 2; do measure "${configs[$(((round - 1 + i) % 3))]}"; done
done
stop_server
