#!/usr/bin/env bash
# Run every pgquant test suite against a throwaway PostgreSQL 15 cluster:
#   install deps -> build + install -> start cluster -> C unit, pg_regress, pgTAP,
#   Perl TAP, CUDA -> stop and remove the cluster.
# Exits non-zero on any failure. The very last line is "N passed, N failed[, N skipped]",
# summed over the individual test cases of all suites.
#
# Environment: PGQUANT_DATA_DIR (default ../shared/data when present); CI=true makes a
# missing data directory an error instead of a skip.
set -euo pipefail
# shellcheck source=tests/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
cd "$PGQUANT_ROOT"

PASSED=0
FAILED=0
SKIPPED=0
STAGE="setup"
SUITE_LINES=()
WORK=""
START_TIME=$SECONDS

# Cleanup, then the summary, so the summary is always the very last line (also when
# a step aborts: that counts as one failure).
finish() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    cluster_stop "${CLUSTER_DIR:-}"
    [[ -n "$WORK" ]] && as_root rm -rf -- "$WORK"
    if [[ "$STAGE" != "done" ]]; then
        printf 'ERROR: aborted during %s (exit %d)\n' "$STAGE" "$rc" >&2
        FAILED=$((FAILED + 1))
        SUITE_LINES+=("$STAGE: aborted")
    fi
    echo
    echo "=== summary ($((SECONDS - START_TIME)) s) ==="
    local l
    for l in "${SUITE_LINES[@]}"; do echo "  $l"; done
    local summary="$PASSED passed, $FAILED failed"
    ((SKIPPED == 0)) || summary+=", $SKIPPED skipped"
    echo "$summary"
    if ((FAILED > 0)); then exit 1; fi
    exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT TERM

# run_suite NAME COUNTER CMD...: run CMD (output shown and kept), count its cases
# with COUNTER (tap_count / regress_count). A non-zero exit with no failing case in
# the output still counts as one failure.
run_suite() {
    local name="$1" counter="$2" rc=0 p f s t0=$SECONDS
    shift 2
    STAGE="$name"
    echo
    echo "=== $name ==="
    "$@" 2>&1 | tee "$WORK/$name.log" || rc=$?
    read -r p f s < <("$counter" "$WORK/$name.log")
    if ((rc != 0 && f == 0)); then
        echo "$name: exited with status $rc but reported no failing case; counting 1 failure"
        f=1
    fi
    if ((rc == 0 && p + f + s == 0)); then
        warn "$name: no test cases found in its output"
    fi
    PASSED=$((PASSED + p))
    FAILED=$((FAILED + f))
    SKIPPED=$((SKIPPED + s))
    SUITE_LINES+=("$(printf '%-10s %4d passed, %d failed, %d skipped (%d s)' "$name" "$p" "$f" "$s" $((SECONDS - t0)))")
    return 0
}

# Record a suite skipped as a whole (it counts no cases).
skip_suite() {
    echo
    echo "=== $1 ==="
    echo "SKIP $1: $2"
    SUITE_LINES+=("$(printf '%-10s skipped: %s' "$1" "$2")")
}

# --- a. C unit tests (the Makefile's "unit" target prints TAP)
suite_unit() {
    make -C "$PGQUANT_ROOT" unit PG_CONFIG="$PG_CONFIG"
}

# --- a'. the same C unit tests under AddressSanitizer and UndefinedBehaviorSanitizer
suite_unit_sanitize() {
    make -C "$PGQUANT_ROOT" unit-sanitize PG_CONFIG="$PG_CONFIG"
}

# --- b. pg_regress through PGXS; show the diffs when something fails
suite_regress() {
    local rc=0
    make -C "$PGQUANT_ROOT" installcheck PG_CONFIG="$PG_CONFIG" \
        PGHOST="$CLUSTER_DIR" PGPORT="$CLUSTER_PORT" PGUSER=postgres || rc=$?
    if ((rc != 0)) && [[ -f "$PGQUANT_ROOT/regression.diffs" ]]; then
        echo "--- regression.diffs ---"
        cat "$PGQUANT_ROOT/regression.diffs"
    fi
    return "$rc"
}

# --- c. pgTAP: a database with pgtap + pgquant (+ the real weights when present)
suite_pgtap() {
    local ckpt files=()
    qpsql -q -d postgres -c 'CREATE DATABASE pgquant_tap' || return 1
    qpsql -q -d pgquant_tap -c 'CREATE EXTENSION pgtap' -c 'CREATE EXTENSION pgquant' || return 1
    # tests that read real data files on the server find them through this setting
    # (empty without a data directory: those tests skip themselves)
    qpsql -q -d postgres -c "ALTER DATABASE pgquant_tap SET pgquant_test.data_dir = '${DATA_DIR//\'/\'\'}'" || return 1
    ckpt="$(stories_checkpoint)" || return 1
    if [[ -n "$ckpt" ]]; then
        echo "loading stories260K weights from $ckpt into table stories260k"
        perl "$PGQUANT_ROOT/tests/tools/llama2c_sql.pl" "$ckpt" | qpsql -q -d pgquant_tap || return 1
    else
        echo "NOTE: no stories260K checkpoint (set PGQUANT_DATA_DIR, default ../shared/data);" \
            "real-weight pgTAP tests will skip themselves"
    fi
    shopt -s nullglob
    files=("$PGQUANT_ROOT"/tests/pgtap/*.sql)
    shopt -u nullglob
    if ((${#files[@]} == 0)); then
        echo "no pgTAP files in tests/pgtap/"
        return 1
    fi
    pg_prove -d pgquant_tap -h "$CLUSTER_DIR" -p "$CLUSTER_PORT" -U postgres --verbose "${files[@]}"
}

# --- d. Perl TAP (PostgreSQL::Test::Cluster): initdb refuses root, so the tests
# run as postgres, from a copy in a directory postgres owns.
suite_perl_tap() {
    local dir="$WORK/perl-tap" pgxs_perl rc=0
    pgxs_perl="$("$PG_CONFIG" --pkglibdir)/pgxs/src/test/perl"
    mkdir -p "$dir" || return 1
    cp -r "$PGQUANT_ROOT/tests/t" "$PGQUANT_ROOT/tests/lib" "$dir/" || return 1
    as_root chown -R postgres: "$dir" || return 1
    # a clean environment: the tests' clusters pick their own ports and sockets
    (cd "$dir" && as_postgres env -i \
        PATH="$PG_BINDIR:/usr/local/bin:/usr/bin:/bin" \
        HOME="$dir" LANG=C.UTF-8 \
        PERL5LIB="$pgxs_perl:$dir/lib" \
        TESTDIR="$dir" \
        PG_REGRESS="$("$PG_CONFIG" --pkglibdir)/pgxs/src/test/regress/pg_regress" \
        PGQUANT_DATA_DIR="${DATA_DIR:-}" CI="${CI:-}" \
        prove -v --ext .pl t/) || rc=$?
    if ((rc != 0)); then
        # the test and server logs explain failures; show their tails
        local f
        for f in "$dir"/tmp_check/log/*; do
            [[ -f "$f" ]] || continue
            echo "--- tail of ${f#"$dir"/} ---"
            tail -n 25 "$f"
        done
    fi
    return "$rc"
}

# --- e. CUDA kernels against the C reference, wherever nvcc builds them: the checks
# that need no device (API, validation, the kernel code emulated on the host) always
# run, and the device cases report themselves skipped when there is no GPU
suite_cuda() {
    make -C "$PGQUANT_ROOT" cuda-test PG_CONFIG="$PG_CONFIG"
}

STAGE="install deps"
install_deps
STAGE="build"
build_install
STAGE="data dir"
DATA_DIR="$(data_dir)"
if [[ -n "$DATA_DIR" ]]; then
    log "data directory: $DATA_DIR"
else
    log "no data directory (PGQUANT_DATA_DIR unset, no ../shared/data): real-data tests skip"
fi
STAGE="start cluster"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/pgquant-test.XXXXXX")"
chmod 755 "$WORK"
cluster_start pgquant-run
export PATH="$PG_BINDIR:$PATH"

run_suite unit tap_count suite_unit
run_suite unit-asan tap_count suite_unit_sanitize
run_suite regress regress_count suite_regress
run_suite pgtap tap_count suite_pgtap
run_suite perl-tap tap_count suite_perl_tap
if command -v nvcc >/dev/null 2>&1 || [[ -x /usr/local/cuda/bin/nvcc ]]; then
    run_suite cuda tap_count suite_cuda
else
    skip_suite cuda "nvcc not found: the CUDA module and its tests are not built"
fi

STAGE="done"
