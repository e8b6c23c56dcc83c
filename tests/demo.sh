#!/usr/bin/env bash
# The newcomer's one command: install deps, build and install pgquant, start a
# throwaway PostgreSQL 15 cluster, CREATE EXTENSION pgquant and quantize a weight
# matrix at 8 and 4 bits, printing sizes and errors. The cluster is left running;
# the last lines say how to connect and how to stop it.
#
# Environment: PGQUANT_DATA_DIR (default ../shared/data when present) for the real
# stories260K weights; PGQUANT_DEMO_MATRIX picks the matrix (default tok_embeddings).
set -euo pipefail
# shellcheck source=tests/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
cd "$PGQUANT_ROOT"

MATRIX="${PGQUANT_DEMO_MATRIX:-tok_embeddings}"

install_deps
build_install
CKPT="$(stories_checkpoint)"

# On any failure, take the half-made cluster down; on success it stays up.
trap 'cluster_stop "${CLUSTER_DIR:-}"' EXIT
cluster_start pgquant-demo

qpsql -q -c 'CREATE EXTENSION pgquant'

if [[ -n "$CKPT" ]]; then
    log "loading the stories260K checkpoint ($CKPT) into table stories260k"
    perl tests/tools/llama2c_sql.pl "$CKPT" | qpsql -q
    # psql variables are interpolated only in scripts, not in -c
    echo "CREATE TABLE demo_weights AS SELECT name, rows, cols, w FROM stories260k WHERE name = :'matrix';" |
        qpsql -q -v matrix="$MATRIX"
    [[ "$(qpsql -Atc 'SELECT count(*) FROM demo_weights')" == 1 ]] ||
        die "no matrix named '$MATRIX' in stories260k (PGQUANT_DEMO_MATRIX); try tok_embeddings or layers.0.attention.wq"
    SOURCE_LINE="real weights: stories260K $MATRIX (llama2.c checkpoint $CKPT)"
else
    log "no stories260K checkpoint (set PGQUANT_DATA_DIR; default ../shared/data): using a generated matrix"
    # Gaussian N(0, 0.02^2) by Box-Muller, with 4 outlier input channels scaled x8
    # (real LLM weights have such channels); setseed makes it reproducible.
    qpsql -q <<'SQL'
SELECT setseed(0.42) \g /dev/null
CREATE TABLE demo_weights AS
SELECT 'generated' AS name, 256 AS rows, 512 AS cols,
       array_agg(r ORDER BY i) AS w
FROM (SELECT i, array_agg((g * CASE WHEN j % 128 = 7 THEN 8 ELSE 1 END)::real ORDER BY j) AS r
      FROM (SELECT i, j, 0.02 * sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random()) AS g
            FROM generate_series(1, 256) i, generate_series(1, 512) j
            ORDER BY i, j) s
      GROUP BY i) t;
SQL
    SOURCE_LINE="generated weights: 256 x 512, seeded Gaussian (std 0.02) with 4 outlier input channels x8 (no stories260K checkpoint found)"
fi

echo
echo "pgquant demo — $SOURCE_LINE"
qpsql -P footer=off <<'SQL'
SELECT name AS matrix, rows || ' x ' || cols AS shape, 4 * rows * cols AS fp32_bytes
FROM demo_weights;

WITH v(method, bits, group_size, sym) AS (VALUES
        ('rtn', 8, NULL::int, false),
        ('rtn', 4, NULL,      false),
        ('rtn', 4, 32,        false),
        ('rtn', 4, 32,        true),
        ('nf4', 4, NULL,      false)),
     q AS (SELECT v.method, w.w, w.rows, w.cols,
                  CASE WHEN v.group_size IS NULL THEN quantize(w.w, v.method, v.bits)
                       ELSE quantize(w.w, v.method, v.bits, v.group_size, v.sym) END AS q
           FROM demo_weights w, v)
SELECT i.method, i.bits, i.group_size, i.sym,
       i.bytes, round(i.bits_per_weight::numeric, 3) AS bits_per_weight,
       round((4.0 * q.rows * q.cols / i.bytes)::numeric, 1) AS x_smaller,
       round(e.rel_error::numeric, 5) AS rel_error,
       round(e.max_abs_error::numeric, 5) AS max_abs_error
FROM q, qtensor_info(q.q) i, quant_error(q.w, q.q) e;
SQL

trap - EXIT
psql_bin="psql"
command -v psql >/dev/null 2>&1 || psql_bin="$PG_BINDIR/psql"
cat <<EOF2

rel_error is ||W - dequantize(quantize(W))||_F / ||W||_F; max_abs_error the largest |difference|.
The cluster is still running (PostgreSQL ${PG_MAJOR}, port ${CLUSTER_PORT}, data and socket in ${CLUSTER_DIR}).
Tables: demo_weights$([[ -n "$CKPT" ]] && echo ", stories260k (all 36 weight matrices)").
Connect:  ${psql_bin} -h ${CLUSTER_DIR} -p ${CLUSTER_PORT} -U postgres
Stop:     $(cluster_stop_cmd "$CLUSTER_DIR")
EOF2
