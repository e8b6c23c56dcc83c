# Concurrent inserts, deletes, searches and vacuums on an ivfpq index of 4-bit
# codes in fast-scan blocks (pgbench,
# four clients, a fixed number of transactions each, loopback socket only), then
# the structure check: every entry accounted for, and searches that probe every
# list and re-rank every candidate agree exactly with a sequential scan.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('main');
$node->init;
$node->append_conf('postgresql.conf', "max_connections = 20\nautovacuum = off\n");
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION pgquant;
	CREATE FUNCTION vec(i int) RETURNS real[] LANGUAGE sql IMMUTABLE AS $$
		SELECT array_agg((2 * cos((i % 12) * 0.8 + j * 1.3) + 0.3 * sin(i * 1.7 + j * 2.3))::real ORDER BY j)
		FROM generate_series(1, 12) j $$;
	CREATE TABLE items (id bigserial PRIMARY KEY, v real[]);
	INSERT INTO items (v) SELECT vec(i) FROM generate_series(1, 2000) i;
	CREATE INDEX items_l2 ON items USING ivfpq (v) WITH (lists = 6, m = 4, nbits = 4);
});

# 4 clients x 150 transactions: inserts (some NULL), searches, deletes, and a vacuum now and then
$node->pgbench(
	'--no-vacuum --client=4 --jobs=2 --transactions=150',
	0,
	[qr{actually processed: 600/600}],
	[qr{^$}],
	'concurrent inserts, deletes, searches and vacuums',
	{
		'ivfpq_insert@4' => q{
			\set i random(1, 1000000)
			INSERT INTO items (v) SELECT CASE WHEN :i % 50 = 0 THEN NULL ELSE vec(:i) END FROM generate_series(1, 5);
		},
		'ivfpq_search@10' => q{
			\set i random(1, 1000000)
			SET enable_seqscan = off;
			SELECT id FROM items ORDER BY v <-> vec(:i) LIMIT 10;
		},
		'ivfpq_delete@2' => q{
			\set i random(1, 1000000)
			DELETE FROM items WHERE id IN (SELECT id FROM items WHERE id % 97 = :i % 97 LIMIT 3);
		},
		'ivfpq_vacuum@1' => q{
			VACUUM items;
		},
	});

$node->safe_psql('postgres', 'VACUUM items');
my $check = $node->safe_psql('postgres', q{SELECT entries, trained FROM pgquant.ivfpq_check('items_l2')});
my $live = $node->safe_psql('postgres', q{SELECT count(v) FROM items});
is($check, "$live|t", 'after the run and a vacuum: the structure checks out with one entry per live vector');

# with every list probed and every candidate re-ranked, the index is exact (the
# distances are compared: inserts of five equal vectors make ties)
my $cmp = q{
	SELECT q, array_agg(round(d::numeric, 6) ORDER BY ord) FROM generate_series(1, 10) q, LATERAL (
		SELECT d, row_number() OVER () AS ord FROM (
			SELECT v <-> vec(q * 101) AS d FROM items ORDER BY v <-> vec(q * 101) LIMIT 10) s) r
	GROUP BY q ORDER BY q};
my $by_index = $node->safe_psql('postgres',
	"SET enable_seqscan = off; SET pgquant.probes = 6; SET pgquant.rerank = 100000; $cmp");
my $by_scan = $node->safe_psql('postgres', "SET enable_indexscan = off; $cmp");
is($by_index, $by_scan, 'exhaustive index searches equal sequential scans after the concurrent run');
like($node->safe_psql('postgres', "SET enable_seqscan = off; EXPLAIN (COSTS OFF) $cmp"), qr/Index Scan using items_l2/,
	'and they did use the index');

$node->stop;
done_testing();
