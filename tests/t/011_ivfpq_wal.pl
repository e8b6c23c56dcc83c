# The ivfpq index through WAL: a streaming standby (with wal_consistency_checking
# on the primary, so replay compares every page) answers exactly like the primary
# after inserts, deletes and vacuum; an immediate stop (no checkpoint) recovers the
# same index; and ivfpq_check reports a page corrupted on disk.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $primary = PostgreSQL::Test::Cluster->new('primary');
$primary->init(allows_streaming => 1);
$primary->append_conf('postgresql.conf', "wal_consistency_checking = 'generic'\n");
$primary->start;
$primary->safe_psql('postgres', 'CREATE EXTENSION pgquant');

# 3,000 deterministic 16-dimensional vectors in 10 clusters
$primary->safe_psql('postgres', q{
	CREATE FUNCTION vec(i int) RETURNS real[] LANGUAGE sql IMMUTABLE AS $$
		SELECT array_agg((3 * cos((i % 10) * 0.9 + j * 1.1) + 0.5 * sin(i * 1.37 + j * 2.9))::real ORDER BY j)
		FROM generate_series(1, 16) j $$;
	CREATE TABLE items (id int PRIMARY KEY, v real[]);
	INSERT INTO items SELECT i, vec(i) FROM generate_series(1, 3000) i;
	CREATE INDEX items_l2 ON items USING ivfpq (v) WITH (lists = 12, m = 4, nbits = 6);
	CREATE INDEX items_cos ON items USING ivfpq (v real_cosine_ops) WITH (lists = 6, nbits = 4);
});

$primary->backup('base');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'base', has_streaming => 1);
$standby->start;

# changes that reach the standby only through WAL: inserts (new pages), deletes, vacuum
$primary->safe_psql('postgres', q{
	INSERT INTO items SELECT i, vec(i) FROM generate_series(3001, 6000) i;
	DELETE FROM items WHERE id % 5 = 0;
	VACUUM items;
	INSERT INTO items SELECT i, vec(i) FROM generate_series(6001, 6500) i;
	CREATE INDEX items_ip ON items USING ivfpq (v real_ip_ops) WITH (lists = 8, nbits = 5);
});
$primary->wait_for_catchup($standby);

# ids and distances of 20 searches per operator, through the index
my $answers = q{
	SET enable_seqscan = off; SET pgquant.probes = 4; SET pgquant.rerank = 50;
	SELECT q, string_agg(id || ':' || round(d::numeric, 5), ',' ORDER BY ord)
	FROM generate_series(1, 20) q, LATERAL (
		SELECT id, d, row_number() OVER () AS ord FROM (
			SELECT id, v <-> vec(q * 311) AS d FROM items ORDER BY v <-> vec(q * 311) LIMIT 5) s
		UNION ALL
		SELECT id, d, 100 + row_number() OVER () FROM (
			SELECT id, v <=> vec(q * 7) AS d FROM items ORDER BY v <=> vec(q * 7) LIMIT 5) s
		UNION ALL
		SELECT id, d, 200 + row_number() OVER () FROM (
			SELECT id, v <#> vec(q * 13) AS d FROM items ORDER BY v <#> vec(q * 13) LIMIT 5) s) r
	GROUP BY q ORDER BY q};
my $plan = q{SET enable_seqscan = off; EXPLAIN (COSTS OFF) SELECT id FROM items ORDER BY v <-> vec(1) LIMIT 5};
my $checks = q{SELECT (pgquant.ivfpq_check('items_l2')).entries, (pgquant.ivfpq_check('items_cos')).entries,
	(pgquant.ivfpq_check('items_ip')).entries, (SELECT count(*) FROM items)};

my $on_primary = $primary->safe_psql('postgres', $answers);
is(scalar(split /\n/, $on_primary), 20, 'primary: 20 searches answered');
like($primary->safe_psql('postgres', $plan), qr/Index Scan using items_l2/, 'primary: the searches use the index');
like($standby->safe_psql('postgres', $plan), qr/Index Scan using items_l2/, 'standby: the searches use the index');
is($standby->safe_psql('postgres', $answers), $on_primary, 'standby: identical ids and distances after inserts, deletes and vacuum');
my $counts = $primary->safe_psql('postgres', $checks);
is($counts, '5300|5300|5300|5300', 'primary: the structure checks out, one entry per row');
is($standby->safe_psql('postgres', $checks), $counts, 'standby: the replayed structure checks out the same');

# crash: more changes, no checkpoint, immediate stop, recovery from WAL alone; an
# unlogged table's index comes back empty from its init fork
$standby->stop;
$primary->safe_psql('postgres', q{
	CREATE UNLOGGED TABLE scratch (id int, v real[]);
	CREATE INDEX scratch_idx ON scratch USING ivfpq (v) WITH (lists = 4, nbits = 4);
	INSERT INTO scratch SELECT i, vec(i) FROM generate_series(1, 500) i;
	INSERT INTO items SELECT i, vec(i) FROM generate_series(6501, 7500) i;
	DELETE FROM items WHERE id % 7 = 0;
	VACUUM items;
	INSERT INTO items SELECT i, vec(i) FROM generate_series(7501, 7600) i;
});
my $before = $primary->safe_psql('postgres', $answers);
my $counts_before = $primary->safe_psql('postgres', $checks);
$primary->stop('immediate');
$primary->start;
is($primary->safe_psql('postgres', $answers), $before, 'after crash recovery: identical answers');
is($primary->safe_psql('postgres', $checks), $counts_before, 'after crash recovery: the structure checks out');
is($primary->safe_psql('postgres', q{SELECT count(*), (pgquant.ivfpq_check('scratch_idx')).entries FROM scratch}),
	'0|0', 'after crash recovery: the unlogged table and its index are empty, and the index checks out');
$primary->safe_psql('postgres', q{INSERT INTO scratch SELECT i, vec(i) FROM generate_series(1, 50) i});
is($primary->safe_psql('postgres', q{SET enable_seqscan = off;
	SELECT (pgquant.ivfpq_check('scratch_idx')).entries, (SELECT id FROM scratch ORDER BY v <-> vec(7) LIMIT 1)}),
	'50|7', 'and it takes new rows and answers');

# corruption on disk is reported: a chain page claims another list
my $path = $primary->safe_psql('postgres', q{SELECT pg_relation_filepath('items_cos')});
my $nblocks = $primary->safe_psql('postgres', q{SELECT pg_relation_size('items_cos') / 8192});
$primary->stop;
my $file = $primary->data_dir . "/$path";
open(my $fh, '+<', $file) or die "open $file: $!";
binmode $fh;
# the last block is a chain page; its special area's list field is at 8176 + 4
seek($fh, ($nblocks - 1) * 8192 + 8180, 0) or die "seek: $!";
print $fh pack('V', 0xdeadbeef);
close($fh);
$primary->start;
my ($rc, $out, $err) = $primary->psql('postgres', q{SELECT * FROM pgquant.ivfpq_check('items_cos')});
isnt($rc, 0, 'ivfpq_check fails on the corrupted index');
like($err, qr/ivfpq index "items_cos" is corrupted.*\n.*DETAIL:.*belongs to list 3735928559/,
	'and says which page and what is wrong');
is($primary->safe_psql('postgres', q{SELECT (pgquant.ivfpq_check('items_l2')).entries}), (split /\|/, $counts_before)[0],
	'the other index still checks out');
$primary->safe_psql('postgres', 'REINDEX INDEX items_cos');
is($primary->safe_psql('postgres', q{SELECT (pgquant.ivfpq_check('items_cos')).entries}), (split /\|/, $counts_before)[1],
	'REINDEX repairs it');

$primary->stop;
done_testing();
