# Shared shell functions for tests/demo.sh and tests/run-all.sh.
# Source it; it defines functions and a few variables, and changes nothing else.
# One way to install, build, and start/stop a throwaway cluster, so the demo and
# the test suite can never drift apart.

# shellcheck shell=bash

PGQUANT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# Pin PostgreSQL 15: /usr/bin/pg_config is Debian's wrapper and follows the newest
# installed major version, which may not be the one we build for.
PG_MAJOR="${PG_MAJOR:-15}"
PG_BINDIR="${PG_BINDIR:-/usr/lib/postgresql/${PG_MAJOR}/bin}"
PG_CONFIG="${PG_CONFIG:-${PG_BINDIR}/pg_config}"

log()  { printf '==> %s\n' "$*" >&2; }
warn() { printf 'WARNING: %s\n' "$*" >&2; }
die()  { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

is_ci() { [[ "${CI:-}" == "true" || "${CI:-}" == "1" ]]; }

# Run a command as root: directly when we are root, through sudo otherwise.
as_root() {
    if [[ "$(id -u)" -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root for: $* (run as root, or install sudo)"
    fi
}

# Run a command as the unprivileged postgres user: initdb and the server refuse root.
as_postgres() {
    if [[ "$(id -un)" == "postgres" ]]; then
        "$@"
    elif [[ "$(id -u)" -eq 0 ]]; then
        runuser -u postgres -- "$@"
    else
        sudo -u postgres -- "$@"
    fi
}

# Install every build and test dependency (skips apt when all are present).
install_deps() {
    bash "${PGQUANT_ROOT}/tests/lib/setup.sh"
}

# Build and install the extension with PGXS against PostgreSQL $PG_MAJOR.
build_install() {
    [[ -x "$PG_CONFIG" ]] || die "pg_config not found at $PG_CONFIG"
    log "building pgquant (make)"
    make -C "$PGQUANT_ROOT" -j"$(nproc)" PG_CONFIG="$PG_CONFIG"
    log "installing pgquant (make install)"
    as_root make -C "$PGQUANT_ROOT" install PG_CONFIG="$PG_CONFIG"
}

# Print the data directory (absolute) or nothing when there is none.
# PGQUANT_DATA_DIR wins; otherwise ../shared/data beside the repo when it exists.
# In CI a missing data directory is an error: the data is always provided there.
data_dir() {
    local d="${PGQUANT_DATA_DIR:-}"
    if [[ -z "$d" && -d "${PGQUANT_ROOT}/../shared/data" ]]; then
        d="${PGQUANT_ROOT}/../shared/data"
    fi
    if [[ -n "$d" && -d "$d" ]]; then
        (cd "$d" && pwd)
        return 0
    fi
    if is_ci; then
        die "CI=true but the data directory is missing (PGQUANT_DATA_DIR='${PGQUANT_DATA_DIR:-}', default ../shared/data)"
    fi
    if [[ -n "$d" ]]; then
        warn "PGQUANT_DATA_DIR=$d is not a directory; real-data steps will be skipped"
    fi
    return 0
}

# Print the stories260K checkpoint path, or nothing (error in CI) when absent.
stories_checkpoint() {
    local d f
    d="$(data_dir)"
    f="${d:+$d/stories260K/stories260K.bin}"
    if [[ -n "$f" && -r "$f" ]]; then
        printf '%s\n' "$f"
    elif is_ci; then
        die "CI=true but the stories260K checkpoint is missing (looked for ${f:-<no data dir>})"
    fi
}

# True when something answers on 127.0.0.1:$1 or a socket lock for it exists in /tmp.
port_in_use() {
    local port="$1"
    [[ -e "/tmp/.s.PGSQL.${port}" || -e "/tmp/.s.PGSQL.${port}.lock" ]] && return 0
    (exec 3<>"/dev/tcp/127.0.0.1/${port}") 2>/dev/null && return 0
    return 1
}

# Print a free port in the private range (a random start avoids colliding with
# another run on the same machine).
free_port() {
    local port i
    port=$(( 20000 + RANDOM % 40000 ))
    for ((i = 0; i < 200; i++)); do
        if ! port_in_use "$port"; then
            printf '%s\n' "$port"
            return 0
        fi
        port=$(( port + 1 ))
        (( port < 60000 )) || port=20000
    done
    die "no free port found"
}

# Start a throwaway cluster; sets CLUSTER_DIR (socket directory, data in
# $CLUSTER_DIR/data, log in $CLUSTER_DIR/server.log) and CLUSTER_PORT.
# Arguments: a name prefix for the temp directory.
cluster_start() {
    local prefix="${1:-pgquant}"
    CLUSTER_DIR="$(mktemp -d "${TMPDIR:-/tmp}/${prefix}.XXXXXX")"
    # a unix socket path may not exceed 107 bytes
    (( ${#CLUSTER_DIR} < 80 )) || die "temp directory path too long for a unix socket: $CLUSTER_DIR"
    CLUSTER_PORT="$(free_port)"
    # postgres owns the directory; others may traverse it to reach the socket
    as_root chown postgres: "$CLUSTER_DIR"
    as_root chmod 755 "$CLUSTER_DIR"

    log "initdb in $CLUSTER_DIR/data"
    as_postgres "$PG_BINDIR/initdb" -D "$CLUSTER_DIR/data" -U postgres -A trust \
        --no-locale -E UTF8 >"$CLUSTER_DIR/initdb.log" 2>&1 ||
        { cat "$CLUSTER_DIR/initdb.log" >&2; die "initdb failed"; }
    # unix socket only, in our own directory: private, and no clash with other servers
    as_postgres tee -a "$CLUSTER_DIR/data/postgresql.conf" >/dev/null <<CONF

# pgquant throwaway cluster
port = ${CLUSTER_PORT}
listen_addresses = ''
unix_socket_directories = '${CLUSTER_DIR}'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 40
CONF
    log "starting PostgreSQL ${PG_MAJOR} on port $CLUSTER_PORT (socket in $CLUSTER_DIR)"
    as_postgres "$PG_BINDIR/pg_ctl" -D "$CLUSTER_DIR/data" -l "$CLUSTER_DIR/server.log" \
        -w -t 60 start >/dev/null ||
        { as_root tail -n 50 "$CLUSTER_DIR/server.log" >&2 || true; die "server did not start"; }
    export PGHOST="$CLUSTER_DIR" PGPORT="$CLUSTER_PORT" PGUSER=postgres
}

# Stop the cluster in $1 (default $CLUSTER_DIR) and remove its directory. Quiet and
# safe to call twice, so it can sit in an EXIT trap.
cluster_stop() {
    local dir="${1:-${CLUSTER_DIR:-}}"
    [[ -n "$dir" && -d "$dir" ]] || return 0
    if [[ -f "$dir/data/postmaster.pid" ]]; then
        as_postgres "$PG_BINDIR/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 ||
            as_postgres "$PG_BINDIR/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    as_root rm -rf -- "$dir"
}

# The one-line command that stops and removes a cluster left running.
cluster_stop_cmd() {
    local dir="$1" runas
    if [[ "$(id -u)" -eq 0 ]]; then runas="runuser -u postgres --"; else runas="sudo -u postgres"; fi
    printf '%s %s -D %s stop && %srm -rf %s\n' "$runas" "$PG_BINDIR/pg_ctl" "$dir/data" \
        "$([[ "$(id -u)" -eq 0 ]] || echo 'sudo ')" "$dir"
}

# psql against the throwaway cluster; stops on the first error.
qpsql() {
    "$PG_BINDIR/psql" -X -v ON_ERROR_STOP=1 -h "$CLUSTER_DIR" -p "$CLUSTER_PORT" -U postgres "$@"
}

# Count TAP results in a log: prints "PASSED FAILED SKIPPED". Only numbered,
# top-level "ok N"/"not ok N" lines count: Test::More subtests are indented and
# summarised by their parent, and prove -v ends each file with a bare "ok".
# "# SKIP" counts as skipped, "not ok # TODO" as skipped too.
tap_count() {
    awk '
        /^(not )?ok [0-9]+/ {
            if ($0 ~ /#[ \t]*[Ss][Kk][Ii][Pp]/) s++
            else if ($0 ~ /^not ok/ && $0 ~ /#[ \t]*TODO/) s++
            else if ($0 ~ /^not ok/) f++
            else p++
        }
        END { printf "%d %d %d\n", p, f, s }' "$1"
}

# Count pg_regress results: "test name ... ok", "     name ... FAILED", "failed (ignored)".
regress_count() {
    awk '
        / \.\.\. ok( |$)/                 { p++ }
        / \.\.\. FAILED( |$)/             { f++ }
        / \.\.\. failed \(ignored\)/      { s++ }
        END { printf "%d %d %d\n", p, f, s }' "$1"
}
