#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the PostgreSQL metadata engine's tests.
#
#   scripts/pg-server.sh [--durable] DIR  start a fresh one; prints the test's env lines
#   scripts/pg-server.sh --stop DIR       stop the one started in DIR
#   scripts/pg-server.sh --restart DIR    stop it (fast) and start it again, same settings
#
# DIR gets the cluster (DIR/data), its log (DIR/server.log), its unix socket
# and its TLS material (DIR/tls); nothing outside DIR is touched. Besides the
# socket it listens on 127.0.0.1 at a port the kernel found free, for TLS
# connections only (pg_hba.conf has `hostssl`, no `host`): a throwaway CA
# signs its certificate (localhost, 127.0.0.1), and a second, unrelated CA is
# there for tests that must see a certificate refused. Keep DIR short: a
# socket path is limited to 107 bytes.
#
# Without --durable, fsync and full_page_writes are off: a crash of the
# PostgreSQL processes loses nothing acknowledged, a crash of the machine
# may. synchronous_commit stays on either way: off, a commit acknowledged
# just before `pg_ctl stop -m immediate` could be lost, and the tests that
# stop PostgreSQL under load must not see that. --durable (for benchmarks)
# keeps PostgreSQL's defaults.
#
# Printed, ready for `eval`:
#   COFFRE_TEST_PG       "host=DIR port=5432 user=postgres", no dbname: the
#                        harness adds one per server (crates/coffre-e2e)
#   COFFRE_TEST_PG_TCP   "host=localhost port=PORT user=postgres": the same
#                        cluster over TCP, where it takes TLS only
#   COFFRE_TEST_PG_CA    the CA its certificate chains to (PEM)
#   COFFRE_TEST_PG_OTHER_CA  a CA it has nothing to do with (PEM)
#   COFFRE_TEST_PG_DATA  DIR/data
#   COFFRE_TEST_PG_BIN   the PostgreSQL binaries (not on PATH on Debian)
#   PGHOST PGPORT PGUSER for psql, createdb, pgbench
#
# The database `coffre_template` (ICU en-US collation, so that a query relying
# on text order instead of byte order shows up in tests) is what the harness
# copies for each server; it takes no connections, since CREATE DATABASE
# refuses a template someone is connected to.
#
# Tests stop and start the cluster themselves, under load. The settings live
# in DIR/data/postgresql.conf, so a bare pg_ctl on the data directory keeps
# them; as root, through the postgres user, which owns the cluster:
#   runuser -u postgres -- "$COFFRE_TEST_PG_BIN/pg_ctl" -D "$COFFRE_TEST_PG_DATA" -m immediate -w stop
#   runuser -u postgres -- "$COFFRE_TEST_PG_BIN/pg_ctl" -D "$COFFRE_TEST_PG_DATA" -l DIR/server.log -w start
# (coffre_e2e::pg_stop and coffre_e2e::pg_start do that.)
#
# Test clusters (without --durable) preload pg_stat_statements when it is
# installed, so that tests can count the statements a request runs.
#
# Needs PostgreSQL's server binaries (pg_stat_statements is in Debian's
# package) and openssl. On Debian 12:
#   apt-get install -y postgresql openssl
# initdb and pg_ctl refuse to run as root: as root, they run as `postgres`
# (runuser), and DIR and its parents must let that user in.
set -euo pipefail
# make_ca, issue
source "$(dirname "$0")/test-ca.sh"

# Set by start_fresh to a free TCP port; names the socket file too.
PORT=5432

usage() {
    echo "usage: $0 [--durable] DIR | $0 --stop DIR | $0 --restart DIR" >&2
    exit 2
}

die() {
    echo "pg-server.sh: $*" >&2
    exit 1
}

# The highest installed version, or the one that made the cluster in $1.
find_bin() {
    local data=${1:-} bin=
    if [[ -n $data && -f $data/PG_VERSION ]]; then
        bin=/usr/lib/postgresql/$(cat "$data/PG_VERSION")/bin
    else
        local candidate
        while read -r candidate; do
            bin=$candidate
        done < <(compgen -G '/usr/lib/postgresql/*/bin' | sort -V)
    fi
    [[ -n $bin && -x $bin/initdb && -x $bin/pg_ctl ]] ||
        die "no PostgreSQL server binaries in /usr/lib/postgresql/*/bin (apt-get install -y postgresql)"
    echo "$bin"
}

# initdb, pg_ctl and the server itself run as the cluster's owner; from DIR,
# since the caller's working directory may be closed to that user.
as_owner() {
    local dir=$1
    shift
    if [[ $(id -u) -eq 0 ]]; then
        (cd "$dir" && runuser -u postgres -- "$@")
    else
        (cd "$dir" && "$@")
    fi
}

running() {
    local dir=$1 bin=$2
    [[ -f $dir/data/postmaster.pid ]] && as_owner "$dir" "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1
}

# Fast (clients are cut off, the cluster checkpoints), then immediate if that hangs.
stop_cluster() {
    local dir=$1 bin
    [[ -f $dir/data/PG_VERSION ]] || return 0
    bin=$(find_bin "$dir/data")
    running "$dir" "$bin" || return 0
    as_owner "$dir" "$bin/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >&2 ||
        as_owner "$dir" "$bin/pg_ctl" -D "$dir/data" -m immediate -w -t 30 stop >&2 || true
    ! running "$dir" "$bin" || die "the cluster in $dir/data did not stop"
}

start_cluster() {
    local dir=$1 bin=$2
    if ! as_owner "$dir" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >&2; then
        tail -n 20 "$dir/server.log" >&2 2>/dev/null || true
        die "PostgreSQL did not start in $dir/data (log: $dir/server.log)"
    fi
}

free_port() {
    # The kernel picks an unused port; the short window before PostgreSQL
    # binds it is the usual, accepted race.
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# DIR/tls: the CA, the server's certificate and key, an unrelated CA.
make_tls() {
    local dir=$1
    mkdir -p "$dir/tls"
    make_ca "$dir/tls" ca "Coffre test PostgreSQL CA"
    printf '%s\n' 'basicConstraints=critical,CA:FALSE' 'keyUsage=critical,digitalSignature' \
        'extendedKeyUsage=serverAuth' 'subjectAltName=DNS:localhost,IP:127.0.0.1' >"$dir/tls/server.ext"
    issue "$dir/tls" server "$dir/tls/server.ext" localhost
    make_ca "$dir/tls" other-ca "Not the Coffre test PostgreSQL CA"
    chmod 0600 "$dir/tls/server.key" # PostgreSQL refuses a key others may read
    if [[ $(id -u) -eq 0 ]]; then
        chown -R postgres:postgres "$dir/tls"
    fi
}

write_settings() {
    local dir=$1 durable=$2 bin=$3 lib
    lib=$("$bin/pg_config" --pkglibdir 2>/dev/null || echo "$bin/../lib")
    {
        echo
        echo "# scripts/pg-server.sh: a throwaway test cluster, on its unix socket and on TLS over loopback"
        echo "listen_addresses = '127.0.0.1'"
        echo "unix_socket_directories = '$dir'"
        echo "port = $PORT"
        echo "ssl = on"
        echo "ssl_cert_file = '$dir/tls/server.pem'"
        echo "ssl_key_file = '$dir/tls/server.key'"
        # Every server a test suite starts holds a pool of connections.
        echo "max_connections = 300"
        if [[ $durable == no ]]; then
            echo "fsync = off"
            echo "full_page_writes = off"
            # Statement counts, for the tests that bound how often a request
            # touches the database (they say so when it is missing); not in
            # benchmark (--durable) clusters.
            if [[ -e $lib/pg_stat_statements.so ]]; then
                echo "shared_preload_libraries = 'pg_stat_statements'"
            fi
        fi
    } >>"$dir/data/postgresql.conf"
    # TCP takes TLS only: a plain-text connection over the network is refused.
    printf '%s\n' 'local all all trust' 'local replication all trust' \
        'hostssl all all 127.0.0.1/32 trust' >"$dir/data/pg_hba.conf"
}

create_template() {
    local dir=$1 bin=$2
    "$bin/createdb" -h "$dir" -p "$PORT" -U postgres -T template0 \
        --locale-provider=icu --icu-locale=en-US coffre_template
    "$bin/psql" -X -q -v ON_ERROR_STOP=1 -h "$dir" -p "$PORT" -U postgres -d postgres \
        -c "ALTER DATABASE coffre_template WITH IS_TEMPLATE true ALLOW_CONNECTIONS false"
}

start_fresh() {
    local dir=$1 durable=$2 bin
    bin=$(find_bin)
    # What goes into the conninfo string, the config file and the socket path unquoted.
    [[ $dir =~ ^[A-Za-z0-9._/+-]+$ ]] || die "$dir: keep to letters, digits and ._/+- (it goes into conninfo strings)"
    ((${#dir} + 15 <= 107)) || die "$dir: too long for a unix socket path (107 bytes with /.s.PGSQL.PORT)"
    if [[ -e $dir/data ]]; then
        [[ -f $dir/data/PG_VERSION ]] || die "$dir/data exists and is not a PostgreSQL cluster; not touching it"
        stop_cluster "$dir"
        rm -rf -- "$dir/data"
    fi
    rm -f -- "$dir/server.log" "$dir/initdb.log"
    command -v openssl >/dev/null || die "openssl not found (apt-get install -y openssl)"
    PORT=$(free_port)
    if [[ $(id -u) -eq 0 ]]; then
        id postgres >/dev/null 2>&1 || die "no user 'postgres' to run the cluster as (initdb refuses root)"
        chown postgres:postgres "$dir"
        chmod 0755 "$dir" # any local user may reach the socket
        runuser -u postgres -- test -w "$dir" -a -x "$dir" ||
            die "user postgres cannot reach $dir: a parent directory is closed to it (chmod o+x it)"
    fi

    local sync=(--no-sync)
    [[ $durable == no ]] || sync=()
    if ! as_owner "$dir" "$bin/initdb" -D "$dir/data" --auth=trust --username=postgres --encoding=UTF8 \
        --locale=C.UTF-8 "${sync[@]}" --no-instructions >"$dir/initdb.log" 2>&1; then
        tail -n 20 "$dir/initdb.log" >&2
        die "initdb failed in $dir/data (log: $dir/initdb.log)"
    fi
    make_tls "$dir"
    write_settings "$dir" "$durable" "$bin"
    start_cluster "$dir" "$bin"
    # A half-made cluster is of no use to anyone: stop it if the template fails.
    if ! create_template "$dir" "$bin" >&2; then
        stop_cluster "$dir"
        die "creating the database coffre_template failed"
    fi

    echo "export COFFRE_TEST_PG='host=$dir port=$PORT user=postgres'"
    echo "export COFFRE_TEST_PG_TCP='host=localhost port=$PORT user=postgres'"
    echo "export COFFRE_TEST_PG_CA='$dir/tls/ca.pem'"
    echo "export COFFRE_TEST_PG_OTHER_CA='$dir/tls/other-ca.pem'"
    echo "export COFFRE_TEST_PG_DATA='$dir/data'"
    echo "export COFFRE_TEST_PG_BIN='$bin'"
    echo "export PGHOST='$dir'"
    echo "export PGPORT='$PORT'"
    echo "export PGUSER='postgres'"
}

main() {
    [[ $# -ge 1 ]] || usage
    local durable=no
    case $1 in
    --stop | --restart)
        [[ $# -eq 2 ]] || usage
        # Nothing to stop is not an error: cleanup traps run after any failure.
        [[ -d $2 || $1 == --restart ]] || return 0
        [[ -d $2 ]] || die "$2: no such directory"
        local dir
        dir=$(cd "$2" && pwd)
        if [[ $1 == --stop ]]; then
            stop_cluster "$dir"
        else
            [[ -f $dir/data/PG_VERSION ]] || die "$dir/data: no cluster to restart"
            local bin
            bin=$(find_bin "$dir/data")
            stop_cluster "$dir"
            start_cluster "$dir" "$bin"
        fi
        return
        ;;
    --durable)
        durable=yes
        shift
        ;;
    -*) usage ;;
    esac
    [[ $# -eq 1 ]] || usage
    mkdir -p "$1"
    local dir
    dir=$(cd "$1" && pwd)
    start_fresh "$dir" "$durable"
}

main "$@"
