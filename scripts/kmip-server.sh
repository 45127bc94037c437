#!/usr/bin/env bash
# A throwaway KMIP server (PyKMIP) for the KMIP custodian's tests.
#
#   scripts/kmip-server.sh DIR         start one; prints the test's env lines
#   scripts/kmip-server.sh --stop DIR  stop the one started in DIR
#
# DIR gets a fresh test CA, server and client certificates (ECDSA P-256: the
# only TLS 1.2 suites PyKMIP and rustls share are ECDHE-ECDSA with AES-GCM),
# the server's config, database, log and pid. Nothing outside DIR is touched;
# the certificates are good for two days and for this test only.
#
# Needs `openssl` and PyKMIP. On Debian 12:
#   apt-get install -y openssl python3-pykmip
# Elsewhere: pip install pykmip 'sqlalchemy<2' (gives `pykmip-server`).
set -euo pipefail
# make_ca, issue
source "$(dirname "$0")/test-ca.sh"

usage() {
    echo "usage: $0 DIR | $0 --stop DIR" >&2
    exit 2
}

# The server leads its own process group (setsid below), with its policy
# monitor in it: signal the group, and wait for it to go.
stop_server() {
    local dir=$1 pid
    [[ -f "$dir/server.pid" ]] || return 0
    pid=$(cat "$dir/server.pid")
    rm -f "$dir/server.pid"
    kill -TERM -- "-$pid" 2>/dev/null || return 0
    for _ in $(seq 1 50); do
        kill -0 -- "-$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL -- "-$pid" 2>/dev/null || true
}

find_server() {
    if [[ -x /usr/bin/pykmip-server ]]; then
        echo /usr/bin/pykmip-server
    elif command -v pykmip-server >/dev/null; then
        command -v pykmip-server
    else
        echo "kmip-server.sh: pykmip-server not found (apt-get install -y python3-pykmip)" >&2
        exit 1
    fi
}

free_port() {
    # The kernel picks an unused port; the short window before PyKMIP binds it
    # is the usual, accepted race.
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

make_certs() {
    local dir=$1
    make_ca "$dir" ca "Coffre test KMIP CA"
    printf '%s\n' 'basicConstraints=critical,CA:FALSE' 'keyUsage=critical,digitalSignature' \
        'extendedKeyUsage=serverAuth' 'subjectAltName=IP:127.0.0.1,DNS:localhost' >"$dir/server.ext"
    # PyKMIP takes the client's identity (the owner of the keys it creates)
    # from the CN and insists on the clientAuth extended key usage.
    printf '%s\n' 'basicConstraints=critical,CA:FALSE' 'keyUsage=critical,digitalSignature' \
        'extendedKeyUsage=clientAuth' >"$dir/client.ext"
    issue "$dir" server "$dir/server.ext" localhost
    issue "$dir" client "$dir/client.ext" coffre
    # A well-formed client certificate from a CA the server does not trust.
    make_ca "$dir" stranger-ca "Not the Coffre test KMIP CA"
    issue "$dir" stranger "$dir/client.ext" coffre stranger-ca
}

write_config() {
    local dir=$1 port=$2
    mkdir -p "$dir/policies"
    cat >"$dir/server.conf" <<EOF
[server]
hostname=127.0.0.1
port=$port
certificate_path=$dir/server.pem
key_path=$dir/server.key
ca_path=$dir/ca.pem
auth_suite=TLS1.2
enable_tls_client_auth=True
policy_path=$dir/policies
database_path=$dir/pykmip.db
logging_level=INFO
EOF
}

wait_for_port() {
    local port=$1 pid=$2
    for _ in $(seq 1 100); do
        if ! kill -0 "$pid" 2>/dev/null; then
            return 1
        fi
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

main() {
    [[ $# -ge 1 ]] || usage
    if [[ $1 == --stop ]]; then
        [[ $# -eq 2 ]] || usage
        stop_server "$2"
        return
    fi
    [[ $# -eq 1 ]] || usage
    command -v openssl >/dev/null || { echo "kmip-server.sh: openssl not found" >&2; exit 1; }
    local server
    server=$(find_server)
    local dir
    mkdir -p "$1"
    dir=$(cd "$1" && pwd)
    stop_server "$dir"
    rm -f "$dir/pykmip.db" "$dir/server.log" "$dir/server.out"

    make_certs "$dir"
    local port
    port=$(free_port)
    write_config "$dir" "$port"

    # setsid: the server outlives this script and the shell that ran it.
    setsid "$server" -f "$dir/server.conf" -l "$dir/server.log" >"$dir/server.out" 2>&1 </dev/null &
    local pid=$!
    echo "$pid" >"$dir/server.pid"
    if ! wait_for_port "$port" "$pid"; then
        echo "kmip-server.sh: PyKMIP did not start listening on 127.0.0.1:$port" >&2
        tail -n 20 "$dir/server.out" "$dir/server.log" >&2 2>/dev/null || true
        stop_server "$dir"
        exit 1
    fi

    echo "COFFRE_TEST_KMIP_ADDR=127.0.0.1:$port"
    echo "COFFRE_TEST_KMIP_CA=$dir/ca.pem"
    echo "COFFRE_TEST_KMIP_CERT=$dir/client.pem"
    echo "COFFRE_TEST_KMIP_KEY=$dir/client.key"
    echo "COFFRE_TEST_KMIP_STRANGER_CERT=$dir/stranger.pem"
    echo "COFFRE_TEST_KMIP_STRANGER_KEY=$dir/stranger.key"
}

main "$@"
