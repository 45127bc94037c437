#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit tests, end-to-end tests with
# the AWS SDK for Rust against a real `coffre` process, then the Python and
# command-line clients (boto3, awscli, rclone, s3cmd, curl) against it too.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/coffre/target}"

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "crate dependency rules"
# Two commands, not `a && b`: under `set -e` a failing `a` in `a && b` would not stop the script.
python3 scripts/check-deps.py --self-test
python3 scripts/check-deps.py

step "build the server"
cargo build -p coffre
export COFFRE_BIN="$CARGO_TARGET_DIR/debug/coffre"

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

step "a throwaway SoftHSM2 token for the PKCS#11 custodian"
eval "$(scripts/softhsm-token.sh "$scratch/hsm")"
cat >"$scratch/pkcs11.toml" <<TOML
[kms]
custody = "pkcs11"
module = "$COFFRE_TEST_PKCS11_MODULE"
token_label = "$COFFRE_TEST_PKCS11_TOKEN"
TOML

step "a throwaway KMIP server (PyKMIP) with a test CA"
kmip_env="$(scripts/kmip-server.sh "$scratch/kmip")"
trap 'scripts/kmip-server.sh --stop "$scratch/kmip"; rm -rf "$scratch"' EXIT
eval "$(sed 's/^/export /' <<<"$kmip_env")"
cat >"$scratch/kmip.toml" <<TOML
[kms]
custody = "kmip"
addr = "$COFFRE_TEST_KMIP_ADDR"
server_name = "localhost"
ca_cert = "$COFFRE_TEST_KMIP_CA"
client_cert = "$COFFRE_TEST_KMIP_CERT"
client_key = "$COFFRE_TEST_KMIP_KEY"
TOML

step "unit and end-to-end tests (Rust, aws-sdk-s3), embedded custodian"
cargo test --workspace

step "the object and encryption suites again, keys in SoftHSM2 over PKCS#11"
# One server at a time: SoftHSM2 keeps its token in files, and a dozen
# processes opening it at once now and then get CKR_GENERAL_ERROR from
# C_GetTokenInfo. A hardware token serves many clients; this one is a test double.
COFFRE_TEST_KMS_CONFIG="$scratch/pkcs11.toml" COFFRE_TEST_KMS_CUSTODY=pkcs11 COFFRE_KMS_PIN="$COFFRE_TEST_PKCS11_PIN" \
    cargo test -p coffre-e2e --test sdk --test encryption -- --test-threads=1

step "the object and encryption suites again, keys in PyKMIP over KMIP"
COFFRE_TEST_KMS_CONFIG="$scratch/kmip.toml" COFFRE_TEST_KMS_CUSTODY=kmip \
    cargo test -p coffre-e2e --test sdk --test encryption

step "the end-to-end suite again, metadata in PostgreSQL"
# A private cluster (unix socket only) in which the harness gives every server
# a database of its own. Its owner, the postgres user, must get through $scratch.
chmod 0711 "$scratch"
trap 'scripts/pg-server.sh --stop "$scratch/pg" || true; scripts/kmip-server.sh --stop "$scratch/kmip"; rm -rf "$scratch"' EXIT
pg_env="$(scripts/pg-server.sh "$scratch/pg")"
eval "$pg_env" # exports COFFRE_TEST_PG and friends, for the steps below too
# The engine's own tests (the same version, listing and key-rotation rules as
# the embedded engine, then leases, claims, fencing and migrations), and the
# whole end-to-end suite again, every server on a database of its own (kill
# -9, storage nodes, TLS and custodian outages included), with the tests that
# need PostgreSQL: several gateways on one database, PostgreSQL restarted.
cargo test -p coffre-meta
cargo test -p coffre-e2e

step "power cuts: coffre on ext4 and XFS over a disk that loses its cache (needs root, FUSE, loop)"
# 50 cuts on ext4, 10 on XFS, 10 after failed flushes (EIO) and 10 that keep
# a random half of the unflushed pages must lose no acknowledged write; the negative control (fsync off) must lose some, or the
# harness proves nothing.
# Both binaries by name: `--bin` filters every package given, so naming only
# the driver would leave the disk unbuilt on a fresh machine.
cargo build -p coffre-crashdisk -p coffre-e2e --bin coffre-crashdisk --bin coffre-crashtest
# The metadata must sit on the disk that loses its cache: embedded, whatever
# COFFRE_TEST_PG says.
crashtest=(env -u COFFRE_TEST_PG "$CARGO_TARGET_DIR/debug/coffre-crashtest")
"${crashtest[@]}" --fs ext4 --cuts 50 --work "$scratch/powercut"
"${crashtest[@]}" --fs xfs --cuts 10 --work "$scratch/powercut"
"${crashtest[@]}" --fs ext4 --cuts 10 --eio --work "$scratch/powercut"
"${crashtest[@]}" --fs ext4 --cuts 10 --keep-random --work "$scratch/powercut"
"${crashtest[@]}" --fs ext4 --cuts 3 --no-fsync --work "$scratch/powercut"

step "client tests (boto3, awscli, rclone, s3cmd, curl)"
# Those clients refuse plain-http endpoints when a CA bundle is forced on them.
unset AWS_CA_BUNDLE REQUESTS_CA_BUNDLE SSL_CERT_FILE CURL_CA_BUNDLE
python3 -m pytest tests/clients -q

step "ceph/s3-tests, the field's conformance suite (tests/s3-tests/expected-failures.txt lists the known gaps)"
scripts/s3-tests.sh
