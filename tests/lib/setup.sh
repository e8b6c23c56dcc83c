#!/usr/bin/env bash
# Install every dependency pgquant needs to build and test, from Debian's archive.
# Fast when everything is already there: apt is only touched for missing packages.
set -euo pipefail
# shellcheck source=tests/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

PACKAGES=(
    "postgresql-${PG_MAJOR}"                 # server, initdb, pg_ctl, psql, pg_dump
    "postgresql-server-dev-${PG_MAJOR}"      # PGXS, server headers, pg_regress, PostgreSQL::Test::*
    "postgresql-${PG_MAJOR}-pgtap"           # the pgtap extension
    libtap-parser-sourcehandler-pgtap-perl   # pg_prove
    libipc-run-perl                          # needed by PostgreSQL::Test::Cluster
    libopenblas-dev liblapacke-dev           # BLAS / LAPACK for the dense linear algebra
    build-essential                          # gcc, make
    perl                                     # prove, test helpers, data loader
)

missing=()
for p in "${PACKAGES[@]}"; do
    p="${p%%#*}"
    status="$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)"
    [[ "$status" == "install ok installed" ]] || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
    log "all dependencies already installed"
    exit 0
fi

log "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
