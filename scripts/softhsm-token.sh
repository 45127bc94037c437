#!/usr/bin/env bash
# Makes a throwaway SoftHSM2 token for the PKCS#11 tests, in DIR only: the
# system token directory (/var/lib/softhsm) is never read or written.
#
#   eval "$(scripts/softhsm-token.sh /tmp/coffre-hsm)"
#
# prints the environment the tests read (COFFRE_TEST_PKCS11_*), ready to eval.
# The PINs are test values: the token holds nothing but test keys.
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 DIR" >&2
    exit 2
fi

module="${COFFRE_PKCS11_MODULE:-/usr/lib/softhsm/libsofthsm2.so}"
label="${COFFRE_TEST_PKCS11_TOKEN:-coffre-test}"
pin="${COFFRE_TEST_PKCS11_PIN:-coffre-user-pin}"
so_pin="${COFFRE_TEST_PKCS11_SO_PIN:-coffre-so-pin}"

if ! command -v softhsm2-util >/dev/null || [ ! -e "$module" ]; then
    echo "$0: SoftHSM2 is missing (apt-get install -y softhsm2)" >&2
    exit 1
fi

mkdir -p "$1"
dir="$(cd "$1" && pwd)"
# A fresh token every run: old test keys would only pile up.
rm -rf "$dir/tokens"
mkdir -p "$dir/tokens"
cat >"$dir/softhsm2.conf" <<CONF
directories.tokendir = $dir/tokens
objectstore.backend = file
log.level = ERROR
slots.removable = false
slots.mechanisms = ALL
library.reset_on_fork = false
CONF

export SOFTHSM2_CONF="$dir/softhsm2.conf"
softhsm2-util --init-token --free --label "$label" --so-pin "$so_pin" --pin "$pin" >/dev/null

printf 'export SOFTHSM2_CONF=%q\n' "$SOFTHSM2_CONF"
printf 'export COFFRE_TEST_PKCS11_MODULE=%q\n' "$module"
printf 'export COFFRE_TEST_PKCS11_TOKEN=%q\n' "$label"
printf 'export COFFRE_TEST_PKCS11_PIN=%q\n' "$pin"
