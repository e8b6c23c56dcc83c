# Helpers shared by the Perl TAP tests in tests/t/ (PostgreSQL::Test::Cluster).
package PgquantTAP;

use strict;
use warnings;
use Exporter 'import';

our @EXPORT = qw(qtensor_fixture_sql fingerprint);

# SQL that creates table $table holding a spread of qtensors: every bit width, rtn
# asymmetric and symmetric, nf4, per-channel (-1), tail groups, 1-D, a constant
# matrix, one large enough to be TOASTed, and a NULL. The weights are deterministic
# functions of (i, j) so every run and every server computes the same input.
# Columns kept beside q (w, method, bits, gs, sym, dims) let tests re-quantize.
sub qtensor_fixture_sql
{
	my ($table) = @_;
	$table //= 'qt';
	return <<"SQL";
CREATE FUNCTION pg_temp.mat(nr int, nc int, seed float8) RETURNS real[]
LANGUAGE sql IMMUTABLE AS \$\$
  SELECT array_agg(r ORDER BY i) FROM (
    SELECT i, array_agg(((sin(i * 7.13 + j * 1.31 + seed) * exp(cos(i * 0.7 + j * seed)))
                         / 4)::real ORDER BY j) AS r
    FROM generate_series(1, nr) i, generate_series(1, nc) j GROUP BY i) s
\$\$;
CREATE FUNCTION pg_temp.vec(n int, seed float8) RETURNS real[]
LANGUAGE sql IMMUTABLE AS \$\$
  SELECT array_agg((sin(j * 0.37 + seed) * exp(cos(j * seed)))::real ORDER BY j)
  FROM generate_series(1, n) j
\$\$;
CREATE TABLE $table (id int PRIMARY KEY, w real[], method text, bits int, gs int,
                     sym bool, dims text, q qtensor);
INSERT INTO $table (id, w, method, bits, gs, sym) VALUES
  ( 1, pg_temp.mat(64, 256, 0.10), 'rtn', 4, NULL, false),
  ( 2, pg_temp.mat(32, 100, 0.20), 'rtn', 8,   -1, false),
  ( 3, pg_temp.mat(16, 100, 0.30), 'rtn', 3,   32, true),
  ( 4, pg_temp.mat( 8, 128, 0.40), 'rtn', 2,   64, false),
  ( 5, pg_temp.mat(10,  37, 0.50), 'rtn', 5,   16, false),
  ( 6, pg_temp.mat(10,  37, 0.60), 'rtn', 6,   16, true),
  ( 7, pg_temp.mat(10,  37, 0.70), 'rtn', 7,   16, false),
  ( 8, pg_temp.mat(64,  64, 0.80), 'nf4', 4, NULL, false),
  ( 9, pg_temp.vec(1000, 0.90),    'nf4', 4,   32, false),
  (10, pg_temp.vec(333, 1.00),     'rtn', 4, NULL, false),
  (11, pg_temp.vec(77, 1.10),      'rtn', 8,   -1, true),
  (12, array_fill(0.25::real, ARRAY[4, 8]), 'rtn', 4, NULL, false),
  (13, pg_temp.mat(512, 512, 1.20), 'rtn', 4, NULL, false),
  (14, NULL, NULL, NULL, NULL, NULL);
UPDATE $table SET dims = array_dims(w),
  q = CASE WHEN gs IS NULL THEN quantize(w, method, bits, sym => sym)
           ELSE quantize(w, method, bits, gs, sym) END
  WHERE w IS NOT NULL;
SQL
}

# One line per row: id, byte length and md5 of qtensor_send(q), md5 of dequantize(q)
# as text (float output is shortest-exact since PostgreSQL 12, so equal text means
# equal floats). Two tables hold bit-identical values exactly when these match.
sub fingerprint
{
	my ($node, $db, $table) = @_;
	return $node->safe_psql($db,
		    "SELECT id, octet_length(qtensor_send(q)), md5(qtensor_send(q)), "
		  . "md5(dequantize(q)::text) FROM $table ORDER BY id");
}

1;
