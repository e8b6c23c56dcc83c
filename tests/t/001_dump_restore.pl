# qtensor values survive pg_dump (plain and custom), binary and text COPY, and
# the text cast, bit for bit: qtensor_send() bytes and dequantize() output identical.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use PgquantTAP;

my $node = PostgreSQL::Test::Cluster->new('main');
$node->init;
$node->start;

$node->safe_psql('postgres', 'CREATE DATABASE src');
$node->safe_psql('src', 'CREATE EXTENSION pgquant');
$node->safe_psql('src', qtensor_fixture_sql('qt'));

is($node->safe_psql('src', 'SELECT count(*), count(q) FROM qt'),
	'14|13', 'fixture: 14 rows, 13 qtensors and one NULL');
is( $node->safe_psql(
		'src', 'SELECT count(*) FROM qt WHERE array_dims(dequantize(q)) IS DISTINCT FROM dims'),
	'0',
	'dequantize() returns the original shape (1-D and 2-D)');
# a value bigger than a page can only be stored through TOAST
is($node->safe_psql('src', 'SELECT octet_length(qtensor_send(q)) > 65536 FROM qt WHERE id = 13'),
	't', 'a qtensor larger than a page (TOASTed, 512x512 at 4 bits) is stored');

my $orig = fingerprint($node, 'src', 'qt');
my @lines = split /\n/, $orig;
is(scalar(@lines), 14, 'fingerprint covers every row');

my $tmp = PostgreSQL::Test::Utils::tempdir;

# plain-format dump, replayed by psql into a fresh database
$node->command_ok(
	[ 'pg_dump', '-Fp', '-f', "$tmp/src.sql", '-d', $node->connstr('src') ],
	'pg_dump plain');
$node->safe_psql('postgres', 'CREATE DATABASE dst_plain');
$node->command_ok(
	[
		'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1',
		'-d', $node->connstr('dst_plain'), '-f', "$tmp/src.sql"
	],
	'restore plain dump with psql');
is(fingerprint($node, 'dst_plain', 'qt'), $orig, 'plain dump restores identical bytes and values');

# custom-format dump, restored by pg_restore
$node->command_ok(
	[ 'pg_dump', '-Fc', '-f', "$tmp/src.dump", '-d', $node->connstr('src') ],
	'pg_dump custom');
$node->safe_psql('postgres', 'CREATE DATABASE dst_custom');
$node->command_ok(
	[ 'pg_restore', '--exit-on-error', '-d', $node->connstr('dst_custom'), "$tmp/src.dump" ],
	'pg_restore custom dump');
is(fingerprint($node, 'dst_custom', 'qt'), $orig, 'custom dump restores identical bytes and values');

# binary COPY: qtensor_send out, qtensor_recv in (validates every field again)
$node->safe_psql('src', qq{
	COPY qt TO '$tmp/qt.bin' (FORMAT binary);
	CREATE TABLE qt_bin (LIKE qt INCLUDING ALL);
	COPY qt_bin FROM '$tmp/qt.bin' (FORMAT binary);
});
is(fingerprint($node, 'src', 'qt_bin'), $orig, 'binary COPY round trip is identical');

# binary COPY into another database (values carry no OIDs)
$node->safe_psql('dst_custom', qq{
	CREATE TABLE qt_bin (LIKE qt INCLUDING ALL);
	COPY qt_bin FROM '$tmp/qt.bin' (FORMAT binary);
});
is(fingerprint($node, 'dst_custom', 'qt_bin'), $orig,
	'binary COPY into another database is identical');

# text COPY: qtensor_out then qtensor_in
$node->safe_psql('src', qq{
	COPY qt TO '$tmp/qt.txt';
	CREATE TABLE qt_txt (LIKE qt INCLUDING ALL);
	COPY qt_txt FROM '$tmp/qt.txt';
});
is(fingerprint($node, 'src', 'qt_txt'), $orig, 'text COPY round trip is identical');

# the text cast: out, then in, gives the same bytes
is( $node->safe_psql(
		'src',
		'SELECT count(*) FROM qt WHERE q IS NOT NULL AND '
		  . 'qtensor_send(q::text::qtensor) IS DISTINCT FROM qtensor_send(q)'),
	'0',
	'q::text::qtensor has identical bytes for every value');

# quantization is deterministic: re-quantizing the restored weights in another
# database gives the stored bytes again
is( $node->safe_psql(
		'dst_plain', q{
	SELECT count(*) FROM qt
	WHERE w IS NOT NULL AND qtensor_send(q) IS DISTINCT FROM qtensor_send(
	  CASE WHEN gs IS NULL THEN quantize(w, method, bits, sym => sym)
	       ELSE quantize(w, method, bits, gs, sym) END)}),
	'0',
	're-quantizing the restored weights reproduces the stored bytes');

$node->stop;
done_testing();
