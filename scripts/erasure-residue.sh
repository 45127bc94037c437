#!/usr/bin/env bash
# What a crypto-erasure leaves of a bucket's names in the metadata store.
#
#   scripts/erasure-residue.sh [embedded|postgres] [OBJECTS]
#
# Starts a throwaway `coffre serve` (and, for postgres, a throwaway cluster
# with scripts/pg-server.sh), stores OBJECTS objects (default 200) whose keys,
# user metadata and tags carry a marker no other byte of the store contains,
# erases the bucket with `coffre bucket erase`, then counts the marker's
# occurrences in the store's files at each step an operator can take:
#   embedded: meta.redb after the erasure, then after `coffre meta compact`;
#   postgres: table files and WAL after a CHECKPOINT, after VACUUM, after
#             VACUUM FULL (each followed by a CHECKPOINT so pages are on disk).
# Prints one line per step; docs/encryption-and-keys.md quotes its figures.
# Needs python3 with boto3 (tests/clients/requirements.txt) and a built coffre
# (COFFRE_BIN, default $CARGO_TARGET_DIR/debug/coffre).
set -euo pipefail
cd "$(dirname "$0")/.."
engine="${1:-embedded}"
objects="${2:-200}"
bin="${COFFRE_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/coffre/target}/debug/coffre}"
work="$(mktemp -d /tmp/residue.XXXXXX)"
chmod o+x "$work" # the postgres user reaches its cluster under it
marker="rsdu$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
s3port=$((20000 + RANDOM % 10000)); adminport=$((s3port + 1))
unset AWS_CA_BUNDLE REQUESTS_CA_BUNDLE SSL_CERT_FILE CURL_CA_BUNDLE
export COFFRE_ROOT_ACCESS_KEY="residueroot" COFFRE_ROOT_SECRET_KEY="$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')"
export COFFRE_ADMIN_TOKEN="$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')"
export COFFRE_ADMIN_ENDPOINT="http://127.0.0.1:$adminport"
server=""
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
  [ "$engine" = postgres ] && scripts/pg-server.sh --stop "$work/pg" >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT

count() { # occurrences of the marker in the files given
  cat "$@" 2>/dev/null | grep -a -o "$marker" | wc -l
}

: >"$work/coffre.toml"
if [ "$engine" = postgres ]; then
  eval "$(scripts/pg-server.sh "$work/pg")"
  "$COFFRE_TEST_PG_BIN/createdb" residue
  printf '[metadata]\nengine = "postgres"\nurl = "%s dbname=residue"\n' "$COFFRE_TEST_PG" >"$work/coffre.toml"
fi

"$bin" serve --data-dir "$work/data" --config "$work/coffre.toml" \
  --s3-listen "127.0.0.1:$s3port" --admin-listen "127.0.0.1:$adminport" >"$work/server.log" 2>&1 &
server=$!
for _ in $(seq 100); do curl -sf "$COFFRE_ADMIN_ENDPOINT/health/live" >/dev/null 2>&1 && break; sleep 0.2; done

python3 - "$s3port" "$marker" "$objects" <<'EOF'
import sys, boto3
port, marker, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
import os
s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                  aws_access_key_id=os.environ["COFFRE_ROOT_ACCESS_KEY"],
                  aws_secret_access_key=os.environ["COFFRE_ROOT_SECRET_KEY"])
bucket = f"{marker}-bucket"
s3.create_bucket(Bucket=bucket)
for i in range(n):
    s3.put_object(Bucket=bucket, Key=f"patients/{marker}-{i:05}.pdf", Body=b"x" * 100,
                  Metadata={"note": f"{marker}-meta-{i}"}, Tagging=f"case={marker}-tag-{i}")
EOF
echo "stored $objects objects, marker $marker ($engine)"
"$bin" bucket erase "$marker-bucket" --confirm --json >/dev/null

if [ "$engine" = embedded ]; then
  kill "$server"; wait "$server" 2>/dev/null || true; server=""
  echo "after erasure:        meta.redb $(stat -c %s "$work/data/meta.redb") bytes, marker found $(count "$work/data/meta.redb") times"
  "$bin" meta compact --data-dir "$work/data" >/dev/null
  echo "after meta compact:   meta.redb $(stat -c %s "$work/data/meta.redb") bytes, marker found $(count "$work/data/meta.redb") times"
else
  sql() { "$COFFRE_TEST_PG_BIN/psql" -X -q -d residue -c "$1" >/dev/null; }
  db_oid=$("$COFFRE_TEST_PG_BIN/psql" -X -A -t -d residue -c "select oid from pg_database where datname = 'residue'")
  rel_node() { local n="${1##*/}"; echo "${n%%[._]*}"; } # 16384.1, 16384_fsm: relation 16384
  tables() { # occurrences per relation, the audit log's apart (it keeps every name by design)
    local f n rel total=0 audit=0
    for f in "$COFFRE_TEST_PG_DATA/base/$db_oid"/*; do
      n=$(count "$f"); [ "$n" -gt 0 ] || continue
      rel=$("$COFFRE_TEST_PG_BIN/psql" -X -A -t -d residue -c \
        "select coalesce((select coalesce(t.relname, c.relname) from pg_class c
           left join pg_class t on t.reltoastrelid = c.oid where c.relfilenode = $(rel_node "$f")), 'dropped')")
      case "$rel" in audit*) audit=$((audit + n)) ;; *) total=$((total + n)) ;; esac
    done
    echo "metadata tables $total, audit log $audit"
  }
  wal() { count "$COFFRE_TEST_PG_DATA"/pg_wal/0*; }
  sql "checkpoint"
  echo "after erasure:        $(tables), WAL $(wal)"
  sql "vacuum"; sql "checkpoint"
  echo "after VACUUM:         $(tables), WAL $(wal)"
  sql "vacuum full"; sql "checkpoint"
  echo "after VACUUM FULL:    $(tables), WAL $(wal)"
fi
