# Calibration sets and their statistics are user data in extension-owned tables:
# pg_dump (plain and custom) must carry them, sets before statistics, and a restored
# set must give the very same GPTQ and AWQ results, bit for bit.
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
# deterministic weights and activations (functions of the indices), two sets, three layers
$node->safe_psql('src', q{
CREATE FUNCTION pg_temp.mat(nr int, nc int, seed float8) RETURNS real[] LANGUAGE sql IMMUTABLE AS $$
  SELECT array_agg(r ORDER BY i) FROM (
    SELECT i, array_agg((sin(i * 7.13 + j * 1.31 + seed) * (1 + 9 * (j % 11 = 0)::int)
                         + sin(i * 0.37 + (j % 5) * seed))::real ORDER BY j) AS r
    FROM generate_series(1, nr) i, generate_series(1, nc) j GROUP BY i) s
$$;
SELECT pgquant.calibration_create('zz-first', model => 'toy', note => 'created first, sorts last');
SELECT pgquant.calibration_create('aa-second');
SELECT pgquant.calibration_add('zz-first', 'l0', pg_temp.mat(300, 48, 0.5));
SELECT pgquant.calibration_add('zz-first', 'l0', pg_temp.mat(100, 48, 0.7));
SELECT pgquant.calibration_add('zz-first', 'l1', pg_temp.mat(50, 20, 0.9), hessian => false);
SELECT pgquant.calibration_add('aa-second', 'l0', pg_temp.mat(64, 48, 1.1));
CREATE TABLE w AS SELECT pg_temp.mat(16, 48, 2.0) AS w;
});

# what a database's calibration data and the quantizers' output look like, exactly
sub fingerprint
{
	my ($db) = @_;
	return $node->safe_psql($db, q{
SELECT string_agg(x, E'\n' ORDER BY x) FROM (
  SELECT format('%s|%s|%s', name, model, note) AS x FROM pgquant.calibration_sets
  UNION ALL
  SELECT format('%s|%s|%s|%s|%s', set_name, layer, in_features, nrows,
                md5(concat(hessian::text, mean_abs::text, max_abs::text, sum_sq::text)))
  FROM pgquant.calibration_stats
  UNION ALL
  SELECT 'gptq ' || md5(qtensor_send(quantize(w, 'gptq', 3, 16, calibration => 'zz-first', layer => 'l0',
                                               act_order => true))::text) FROM w
  UNION ALL
  SELECT 'awq ' || md5(qtensor_send(quantize(w, 'awq', 4, 16, calibration => 'zz-first', layer => 'l0'))::text) FROM w
) s});
}

my $orig = fingerprint('src');
is(scalar(split /\n/, $orig), 7, 'fingerprint covers 2 sets, 3 layers, a gptq and an awq tensor');

my $tmp = PostgreSQL::Test::Utils::tempdir;
$node->command_ok([ 'pg_dump', '-Fp', '-f', "$tmp/src.sql", '-d', $node->connstr('src') ], 'pg_dump plain');
$node->safe_psql('postgres', 'CREATE DATABASE dst_plain');
$node->command_ok(
	[ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('dst_plain'), '-f', "$tmp/src.sql" ],
	'restore the plain dump with psql (foreign keys hold while the rows load)');
is(fingerprint('dst_plain'), $orig, 'plain dump: same sets, same statistics, same gptq and awq bytes');

$node->command_ok([ 'pg_dump', '-Fc', '-f', "$tmp/src.dump", '-d', $node->connstr('src') ], 'pg_dump custom');
$node->safe_psql('postgres', 'CREATE DATABASE dst_custom');
$node->command_ok([ 'pg_restore', '--exit-on-error', '-d', $node->connstr('dst_custom'), "$tmp/src.dump" ],
	'pg_restore custom dump');
is(fingerprint('dst_custom'), $orig, 'custom dump: same sets, same statistics, same gptq and awq bytes');

# the data is in the dump as rows of the configuration tables
my $dump = slurp_file("$tmp/src.sql");
like($dump, qr/COPY pgquant\.calibration_sets .*COPY pgquant\.calibration_stats /s,
	'the dump loads calibration_sets before calibration_stats');

$node->stop;
done_testing();
