# Codebooks and codes survive pg_dump and restore: the registry pgquant.codebooks
# is dumped with the extension's data, so pq_distance(code, query) and pq_decode(code)
# find each code's codebook in the restored database, with identical results; the
# binary forms hold no OIDs, so binary COPY into another database works too.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('main');
$node->init;
$node->start;

$node->safe_psql('postgres', 'CREATE DATABASE src');
$node->safe_psql('src', 'CREATE EXTENSION pgquant');
# 600 deterministic 16-dimensional points; a PQ and an RVQ codebook trained on them
$node->safe_psql('src', q{
	CREATE TABLE items (id int PRIMARY KEY, v real[], code pqcode, rcode pqcode);
	INSERT INTO items (id, v)
	SELECT i, (SELECT array_agg((sin(i * 0.37 + j * 1.7) * 3 + (i % 5))::real ORDER BY j)
			   FROM generate_series(1, 16) j)
	FROM generate_series(1, 600) i;
	CREATE TABLE books (name text PRIMARY KEY, pq pq_codebook, rvq rvq_codebook);
	INSERT INTO books (name, pq) SELECT 'pq', pq_register(pq_train(v, 4, 6)) FROM items;
	INSERT INTO books (name, rvq) SELECT 'rvq', pq_register(rvq_train(v, 2, 5)) FROM items;
	UPDATE items SET code = pq_encode(b.pq, v) FROM books b WHERE b.name = 'pq';
	UPDATE items SET rcode = pq_encode(b.rvq, v) FROM books b WHERE b.name = 'rvq';
});

# what a database answers: codes, decoded vectors and distances, through the registry
my $answers = q{
	SELECT id, md5(pqcode_send(code)), md5(pq_decode(code)::text), md5(pq_decode(rcode)::text),
		pq_distance(code, (SELECT v FROM items WHERE id = 1)),
		pq_inner_product(rcode, (SELECT v FROM items WHERE id = 2))
	FROM items ORDER BY id};
my $orig = $node->safe_psql('src', $answers);
is(scalar(split /\n/, $orig), 600, 'source: 600 rows of answers');
is($node->safe_psql('src', 'SELECT count(*) FROM pgquant.codebooks'), '2', 'source: 2 codebooks registered');

my $tmp = PostgreSQL::Test::Utils::tempdir;

$node->command_ok([ 'pg_dump', '-Fc', '-f', "$tmp/src.dump", '-d', $node->connstr('src') ], 'pg_dump custom');
$node->safe_psql('postgres', 'CREATE DATABASE dst');
$node->command_ok([ 'pg_restore', '--exit-on-error', '-d', $node->connstr('dst'), "$tmp/src.dump" ],
	'pg_restore');
is($node->safe_psql('dst', 'SELECT count(*) FROM pgquant.codebooks'), '2', 'restored: the registry rows came back');
is($node->safe_psql('dst', $answers), $orig, 'restored: codes find their codebooks, identical answers');
is($node->safe_psql('dst', q{SELECT count(*) FROM items i, books b
	WHERE b.name = 'pq' AND codebook_id(i.code) <> codebook_id(b.pq)}), '0',
	'restored: codebook ids are content ids, unchanged by the restore');

$node->command_ok([ 'pg_dump', '-Fp', '-f', "$tmp/src.sql", '-d', $node->connstr('src') ], 'pg_dump plain');
$node->safe_psql('postgres', 'CREATE DATABASE dst_plain');
$node->command_ok(
	[ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('dst_plain'), '-f', "$tmp/src.sql" ],
	'restore the plain dump with psql (text forms)');
is($node->safe_psql('dst_plain', $answers), $orig, 'plain dump: identical answers');

# binary COPY of codebooks and codes into a database that never saw them: the
# codes name their codebook by content id, so registering the copied codebooks is enough
$node->safe_psql('postgres', 'CREATE DATABASE other');
$node->safe_psql('other', q{
	CREATE EXTENSION pgquant;
	CREATE TABLE items (id int PRIMARY KEY, v real[], code pqcode, rcode pqcode);
	CREATE TABLE books (name text PRIMARY KEY, pq pq_codebook, rvq rvq_codebook);
});
$node->safe_psql('src', "COPY items TO '$tmp/items.bin' (FORMAT binary); COPY books TO '$tmp/books.bin' (FORMAT binary)");
$node->safe_psql('other', "COPY items FROM '$tmp/items.bin' (FORMAT binary); COPY books FROM '$tmp/books.bin' (FORMAT binary)");
my ($rc, $out, $err) = $node->psql('other', 'SELECT pq_decode(code) FROM items WHERE id = 1');
like($err, qr/codebook [0-9a-f]{16} is not registered/, 'before registering: a clear error naming the codebook');
$node->safe_psql('other', 'SELECT pq_register(pq) FROM books WHERE pq IS NOT NULL; SELECT pq_register(rvq) FROM books WHERE rvq IS NOT NULL');
is($node->safe_psql('other', $answers), $orig, 'binary COPY into another database: identical answers');

$node->stop;
done_testing();
