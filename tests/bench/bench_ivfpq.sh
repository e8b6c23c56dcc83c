#!/usr/bin/env bash
# Benchmark of the ivfpq index: load a dataset, compute the exact top-10 of every
# query by sequential scan (timed: the exact baseline), build the index (timed),
# then sweep probes x re-rank depth, reporting recall@10 against the exact result
# and single-client QPS (pgbench, prepared statements). Prints markdown tables.
#
# Needs a running server with pgquant installed, reachable through the usual
# PGHOST / PGPORT / PGUSER (a superuser: the data files are read on the server).
#
# Environment (defaults in brackets):
#   DATASET    siftsmall | mixture                         [siftsmall]
#   DATA_DIR   directory holding siftsmall/ (read by the server) [../shared/data]
#   N          mixture: vectors                            [1000000]
#   NQ         mixture: queries                            [100]
#   SEED       mixture: seed (queries use SEED + 1)        [4200]
#   WORK       mixture: directory for the generated files, readable by the server [/tmp/pgquant-bench]
#   LISTS M NBITS  index options                           [100 16 8 for siftsmall, 1000 16 8 for mixture]
#   PROBES     probes to sweep                             ["1 2 4 8 16 32"]
#   RERANK     re-rank depths to sweep                     ["0 50 100 200"]
#   SECONDS    pgbench seconds per point                   [5]
#   DB         database, dropped and created               [pgquant_bench]
#   BASELINES  "pgvector": also build pgvector's HNSW (m 16, ef_construction 64) and
#              IVFFlat (lists = LISTS) on the same data, when the server has the
#              vector extension (install it yourself; this script never fetches it) []
#   EF_SEARCH  hnsw.ef_search values to sweep              ["10 20 40 80 160"]
#   IVF_PROBES ivfflat.probes values to sweep              ["1 2 4 8 16 32"]
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
DATASET="${DATASET:-siftsmall}"
DATA_DIR="${DATA_DIR:-$ROOT/../shared/data}"
N="${N:-1000000}"
NQ="${NQ:-100}"
SEED="${SEED:-4200}"
WORK="${WORK:-/tmp/pgquant-bench}"
PROBES="${PROBES:-1 2 4 8 16 32}"
RERANK="${RERANK:-0 50 100 200}"
SECONDS_PER_POINT="${SECONDS:-5}"
DB="${DB:-pgquant_bench}"
BASELINES="${BASELINES:-}"
EF_SEARCH="${EF_SEARCH:-10 20 40 80 160}"
IVF_PROBES="${IVF_PROBES:-1 2 4 8 16 32}"
if [[ "$DATASET" == siftsmall ]]; then
	LISTS="${LISTS:-100}"
else
	LISTS="${LISTS:-1000}"
fi
M="${M:-16}"
NBITS="${NBITS:-8}"

q() { psql -X -q -v ON_ERROR_STOP=1 -At -d "$DB" "$@"; }
note() { printf '%s\n' "$*" >&2; }

psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
q -c 'CREATE EXTENSION pgquant'
q -c 'CREATE TABLE items (id int PRIMARY KEY, v real[])' -c 'CREATE TABLE queries (id int PRIMARY KEY, v real[])'

# ---- load -------------------------------------------------------------------
t0=$(date +%s.%N)
if [[ "$DATASET" == siftsmall ]]; then
	DATA_DIR="$(cd "$DATA_DIR" && pwd)"
	q -c "INSERT INTO items SELECT id - 1, vector FROM pgquant.read_fvecs(pg_read_binary_file('$DATA_DIR/siftsmall/siftsmall_base.fvecs'))"
	q -c "INSERT INTO queries SELECT id, vector FROM pgquant.read_fvecs(pg_read_binary_file('$DATA_DIR/siftsmall/siftsmall_query.fvecs'))"
	DESC="TEXMEX siftsmall: 10,000 x 128 SIFT descriptors, 100 queries"
else
	mkdir -p "$WORK"
	chmod 755 "$WORK"
	cc -std=gnu11 -O2 -I"$ROOT/src" -o "$WORK/gen_mixture" "$HERE/gen_mixture.c" -lm
	"$WORK/gen_mixture" "$N" 128 1000 16 "$SEED" "$WORK/base.fvecs" 100000
	"$WORK/gen_mixture" "$NQ" 128 1000 16 "$((SEED + 1))" "$WORK/query.fvecs"
	chmod 644 "$WORK"/*.fvecs*
	off=0
	for f in "$WORK"/base.fvecs.*; do
		q -c "INSERT INTO items SELECT id - 1 + $off, vector FROM pgquant.read_fvecs(pg_read_binary_file('$f'))"
		off=$((off + 100000))
	done
	q -c "INSERT INTO queries SELECT id, vector FROM pgquant.read_fvecs(pg_read_binary_file('$WORK/query.fvecs'))"
	rm -f "$WORK"/base.fvecs.* "$WORK/query.fvecs"
	DESC="generated: $N x 128, Gaussian mixture of 1,000 clusters in a random 16-dimensional subspace plus noise (seed $SEED), $NQ queries (seed $((SEED + 1)))"
fi
q -c 'VACUUM ANALYZE items' -c 'VACUUM ANALYZE queries'
t1=$(date +%s.%N)
ROWS=$(q -c 'SELECT count(*) FROM items')
NQ=$(q -c 'SELECT count(*) FROM queries')
note "loaded $ROWS vectors and $NQ queries in $(printf "%.1f" "$(echo "$t1 - $t0" | bc)") s"

# ---- exact baseline: the true top 10 by sequential scan ---------------------------
t0=$(date +%s.%N)
q -c "CREATE TABLE truth AS SELECT q.id, ARRAY(SELECT i.id FROM items i ORDER BY i.v <-> q.v LIMIT 10) AS top10 FROM queries q"
t1=$(date +%s.%N)
EXACT_S=$(printf "%.2f" "$(echo "$t1 - $t0" | bc)")
EXACT_QPS=$(echo "scale=1; $NQ / $EXACT_S" | bc)

# ---- build ------------------------------------------------------------------
t0=$(date +%s.%N)
q -c "SET maintenance_work_mem = '512MB'" -c "CREATE INDEX items_ivfpq ON items USING ivfpq (v) WITH (lists = $LISTS, m = $M, nbits = $NBITS)"
t1=$(date +%s.%N)
BUILD_S=$(printf "%.1f" "$(echo "$t1 - $t0" | bc)")
IDX_BYTES=$(q -c "SELECT pg_relation_size('items_ivfpq')")
TBL_BYTES=$(q -c "SELECT pg_total_relation_size('items') - pg_indexes_size('items')")
q -c "SELECT * FROM pgquant.ivfpq_check('items_ivfpq')" >/dev/null

cat > "$WORK.pgbench" <<EOF
\\set q random(1, $NQ)
SELECT id FROM items ORDER BY v <-> (SELECT v FROM queries WHERE id = :q) LIMIT 10;
EOF
mkdir -p "$(dirname "$WORK.pgbench")"

recall() {
	q -c "SET pgquant.probes = $1" -c "SET pgquant.rerank = $2" -c "SET enable_seqscan = off" \
	  -c "SELECT round(avg((SELECT count(*) FROM (SELECT i.id FROM items i ORDER BY i.v <-> q.v LIMIT 10) s
	                         WHERE s.id = ANY (t.top10)) / 10.0), 3)
	      FROM queries q JOIN truth t USING (id)"
}
qps() {
	PGOPTIONS="-c pgquant.probes=$1 -c pgquant.rerank=$2" \
		pgbench -n -M prepared -c 1 -T "$SECONDS_PER_POINT" -f "$WORK.pgbench" "$DB" 2>&1 |
		sed -n 's/^tps = \([0-9.]*\) .*/\1/p'
}

echo "### ivfpq: $DESC"
echo
echo "Index \`lists = $LISTS, m = $M, nbits = $NBITS\` on $ROWS vectors."
echo
echo "| measure | value |"
echo "|---|---|"
echo "| build time | ${BUILD_S} s |"
echo "| index size | $IDX_BYTES bytes, $(echo "scale=1; $IDX_BYTES / $ROWS" | bc) bytes per vector |"
echo "| table size (heap + TOAST) | $TBL_BYTES bytes, $(echo "scale=1; $TBL_BYTES / $ROWS" | bc) bytes per vector |"
echo "| exact top 10 by sequential scan (baseline) | $EXACT_QPS QPS ($NQ queries in ${EXACT_S} s) |"
echo
echo "| probes | re-rank | recall@10 | QPS (1 client) | QPS / exact scan |"
echo "|---|---|---|---|---|"
for p in $PROBES; do
	for r in $RERANK; do
		rc=$(recall "$p" "$r")
		tps=$(qps "$p" "$r")
		echo "| $p | $r | $rc | ${tps%.*} | $(echo "scale=1; $tps / $EXACT_QPS" | bc) |"
	done
done

# ---- pgvector on the same data, in the same run --------------------------------------
if [[ "$BASELINES" == *pgvector* ]]; then
	if [[ "$(q -c "SELECT count(*) FROM pg_available_extensions WHERE name = 'vector'")" != 1 ]]; then
		note "BASELINES=pgvector, but the server has no vector extension: skipped"
		rm -f "$WORK.pgbench"
		exit 0
	fi
	DIM=$(q -c 'SELECT array_length(v, 1) FROM items LIMIT 1')
	q -c 'CREATE EXTENSION vector'
	q -c "CREATE TABLE items_vec AS SELECT id, v::vector($DIM) AS e FROM items" \
	  -c 'ALTER TABLE items_vec ADD PRIMARY KEY (id)' -c 'VACUUM ANALYZE items_vec'
	q -c 'CREATE TABLE queries_vec AS SELECT id, v::vector AS e FROM queries' -c 'ALTER TABLE queries_vec ADD PRIMARY KEY (id)'
	printf '\\set q random(1, %s)\nSELECT id FROM items_vec ORDER BY e <-> (SELECT e FROM queries_vec WHERE id = :q) LIMIT 10;\n' \
		"$NQ" > "$WORK.pgbench"
	VERSION=$(q -c "SELECT extversion FROM pg_extension WHERE extname = 'vector'")
	vrecall() {
		q -c "SET $1" -c "SET enable_seqscan = off" \
		  -c "SELECT round(avg((SELECT count(*) FROM (SELECT i.id FROM items_vec i ORDER BY i.e <-> q.e LIMIT 10) s
		                         WHERE s.id = ANY (t.top10)) / 10.0), 3)
		      FROM queries_vec q JOIN truth t USING (id)"
	}
	vqps() {
		PGOPTIONS="-c $(echo "$1" | tr -d ' ')" pgbench -n -M prepared -c 1 -T "$SECONDS_PER_POINT" -f "$WORK.pgbench" "$DB" 2>&1 |
			sed -n 's/^tps = \([0-9.]*\) .*/\1/p'
	}
	for kind in hnsw ivfflat; do
		if [[ $kind == hnsw ]]; then
			with="m = 16, ef_construction = 64"
			settings=()
			for e in $EF_SEARCH; do settings+=("hnsw.ef_search = $e"); done
		else
			with="lists = $LISTS"
			settings=()
			for p in $IVF_PROBES; do settings+=("ivfflat.probes = $p"); done
		fi
		t0=$(date +%s.%N)
		q -c "SET maintenance_work_mem = '2GB'" -c "CREATE INDEX items_vec_$kind ON items_vec USING $kind (e vector_l2_ops) WITH ($with)"
		t1=$(date +%s.%N)
		bs=$(printf "%.1f" "$(echo "$t1 - $t0" | bc)")
		bytes=$(q -c "SELECT pg_relation_size('items_vec_$kind')")
		echo
		echo "pgvector $VERSION $kind ($with), same data and run: build ${bs} s (ivfpq / pgvector: $(echo "scale=3; $BUILD_S / $bs" | bc)), index $bytes bytes = $(echo "scale=1; $bytes / $ROWS" | bc) bytes per vector (ivfpq / pgvector: $(echo "scale=3; $IDX_BYTES / $bytes" | bc))"
		echo
		echo "| setting | recall@10 | QPS (1 client) |"
		echo "|---|---|---|"
		for st in "${settings[@]}"; do
			echo "| $st | $(vrecall "$st") | $(vqps "$st" | cut -d. -f1) |"
		done
		q -c "DROP INDEX items_vec_$kind"
	done
fi
rm -f "$WORK.pgbench"
