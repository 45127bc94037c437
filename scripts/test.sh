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

step "build the server"
cargo build -p coffre
export COFFRE_BIN="$CARGO_TARGET_DIR/debug/coffre"

step "unit and end-to-end tests (Rust, aws-sdk-s3)"
cargo test --workspace

step "client tests (boto3, awscli, rclone, s3cmd, curl)"
# Those clients refuse plain-http endpoints when a CA bundle is forced on them.
unset AWS_CA_BUNDLE REQUESTS_CA_BUNDLE SSL_CERT_FILE CURL_CA_BUNDLE
python3 -m pytest tests/clients -q
