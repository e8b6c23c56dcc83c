-- qlinear, qmatmul and pgquant.linear: products with quantized weights against a plain SQL
-- reference (dequantize, then sums in double), with every kernel set this CPU supports.

-- y = W x in SQL, in double: the reference
CREATE FUNCTION ref_linear(x real[], w real[]) RETURNS float8[] LANGUAGE sql IMMUTABLE AS $$
	SELECT array_agg(s ORDER BY r) FROM (
		SELECT r, sum(w[r][c]::float8 * x[c]) AS s
		FROM generate_subscripts(w, 1) r, generate_subscripts(w, 2) c GROUP BY r) t $$;
-- the scale errors are measured against: max over rows of sum |w x|
CREATE FUNCTION ref_scale(x real[], w real[]) RETURNS float8 LANGUAGE sql IMMUTABLE AS $$
	SELECT max(s) FROM (
		SELECT r, sum(abs(w[r][c]::float8 * x[c])) AS s
		FROM generate_subscripts(w, 1) r, generate_subscripts(w, 2) c GROUP BY r) t $$;
-- largest |y - ref| relative to that scale
CREATE FUNCTION rel_err(y real[], ref float8[], scale float8) RETURNS float8 LANGUAGE sql IMMUTABLE AS $$
	SELECT max(abs(a::float8 - b)) / nullif(scale, 0) FROM unnest(y, ref) AS u(a, b) $$;
CREATE FUNCTION flat(a real[]) RETURNS real[] LANGUAGE sql IMMUTABLE AS $$ SELECT array_agg(v) FROM unnest(a) v $$;
CREATE FUNCTION test_vector(n int, seed float8) RETURNS real[] LANGUAGE sql AS $$
	SELECT flat(test_matrix(1, n, seed)) $$;

-- weights of every format: widths 2..8 asym and sym, nf4, per-channel, tail groups, odd shapes
CREATE TABLE qw (id int PRIMARY KEY, w real[], q qtensor);
INSERT INTO qw (id, w) VALUES
	(1, test_matrix(24, 200, 0.11)), (2, test_matrix(24, 200, 0.12)), (3, test_matrix(16, 256, 0.13, true)),
	(4, test_matrix(8, 130, 0.14)), (5, test_matrix(33, 64, 0.15)), (6, test_matrix(3, 7, 0.16)),
	(7, test_matrix(40, 300, 0.17, true)), (8, test_matrix(5, 1000, 0.18));
UPDATE qw SET q = CASE id
	WHEN 1 THEN quantize(w, 'rtn', 4)
	WHEN 2 THEN quantize(w, 'rtn', 3, 64, sym => true)
	WHEN 3 THEN quantize(w, 'nf4', 4)
	WHEN 4 THEN quantize(w, 'rtn', 8, 32)
	WHEN 5 THEN quantize(w, 'rtn', 2, -1)
	WHEN 6 THEN quantize(w, 'rtn', 5, 4)
	WHEN 7 THEN quantize(w, 'rtn', 6, 48, sym => true)
	WHEN 8 THEN quantize(w, 'rtn', 7, 24) END;
CREATE TABLE qx (id int PRIMARY KEY, x real[]);
INSERT INTO qx SELECT id, test_vector((qtensor_info(q)).shape[2], 0.5 + id / 100.0) FROM qw;

-- every supported kernel set agrees with the reference to 1e-5 of sum |w x|
CREATE TABLE kernel_errors (kernels text, id int, err float8);
DO $$
DECLARE
	k text;
BEGIN
	FOREACH k IN ARRAY pgquant.cpu_kernels() LOOP
		PERFORM set_config('pgquant.cpu_kernels', k, true);
		INSERT INTO kernel_errors
		SELECT k, qw.id, rel_err(qlinear(qx.x, qw.q), ref_linear(qx.x, dequantize(qw.q)), ref_scale(qx.x, dequantize(qw.q)))
		FROM qw JOIN qx USING (id);
	END LOOP;
END $$;
RESET pgquant.cpu_kernels;
SELECT 'generic' = ANY (pgquant.cpu_kernels()) AND 'ref' = ANY (pgquant.cpu_kernels()) AS portable_sets_present,
	(SELECT count(DISTINCT kernels) FROM kernel_errors) = cardinality(pgquant.cpu_kernels()) AS all_sets_tested;
SELECT id, max(err) < 1e-5 AS within_1e5 FROM kernel_errors GROUP BY id ORDER BY id;

-- the product is W x with W as dequantize() returns it (not the original weights)
SELECT id, round(rel_err(qlinear(x, q), ref_linear(x, w), ref_scale(x, w))::numeric, 2) AS vs_original,
	rel_err(qlinear(x, q), ref_linear(x, dequantize(q)), ref_scale(x, w)) < 1e-5 AS vs_dequantized
FROM qw JOIN qx USING (id) ORDER BY id;

-- exact small cases: an 8-bit identity-like matrix
SELECT qlinear('{1,2,3}', quantize('{{1,0,0},{0,1,0},{1,1,1}}', 'rtn', 8, sym => true)) AS y;
SELECT qlinear('{1,2,3}', quantize('{{1,0,0},{0,1,0},{1,1,1}}', 'rtn', 8, sym => true), '{10,20,30}') AS y_plus_bias;
-- a 1-D qtensor is one row
SELECT qlinear('{1,1,1,1}', quantize('{0.5,0.25,-0.5,1}', 'rtn', 8, sym => true)) AS dot;
-- NULL in, NULL out
SELECT qlinear(NULL, quantize('{1,2}', 'rtn', 4)) IS NULL AS null_x, qlinear('{1,2}', NULL) IS NULL AS null_w;

-- qmatmul: each row of the batch equals qlinear on it (fused below 2 rows, decoded tiles above)
WITH w AS (SELECT q, dequantize(q) AS d FROM qw WHERE id = 1),
	b AS (SELECT n, test_matrix(n, 200, 0.3) AS xs FROM unnest(ARRAY[1, 2, 5, 70]) n),
	p AS (SELECT n, xs, qmatmul(xs, w.q) AS y, w.d FROM b, w)
SELECT n, array_dims(y) AS dims,
	bool_and(rel_err(flat(y[i:i][:]), ref_linear(flat(xs[i:i][:]), d), ref_scale(flat(xs[i:i][:]), d)) < 1e-5) AS rows_ok
FROM p, generate_series(1, n) i GROUP BY n, array_dims(y) ORDER BY n;
SELECT qmatmul('{{1,2,3},{0,0,1}}', quantize('{{1,0,0},{0,1,0},{1,1,1}}', 'rtn', 8, sym => true), '{1,1,1}') AS y;

-- bad shapes and values
SELECT test_error($$SELECT qlinear('{1,2}', quantize('{{1,2,3}}', 'rtn', 4))$$);
SELECT test_error($$SELECT qlinear('{{1,2,3}}', quantize('{{1,2,3}}', 'rtn', 4))$$);
SELECT test_error($$SELECT qlinear('{1,NULL,3}', quantize('{{1,2,3}}', 'rtn', 4))$$);
SELECT test_error($$SELECT qlinear('{}', quantize('{{1,2,3}}', 'rtn', 4))$$);
SELECT test_error($$SELECT qlinear('{1,2,3}', quantize('{{1,2,3}}', 'rtn', 4), '{1,2}')$$);
SELECT test_error($$SELECT qlinear('{1,2,3}', quantize('{{1,2,3}}', 'rtn', 4), '{NULL}')$$);
SELECT test_error($$SELECT qmatmul('{1,2,3}', quantize('{{1,2,3}}', 'rtn', 4))$$);
SELECT test_error($$SELECT qmatmul('{{1,2}}', quantize('{{1,2,3}}', 'rtn', 4))$$);
SELECT test_error($$SELECT qmatmul('{{1,NULL,3}}', quantize('{{1,2,3}}', 'rtn', 4))$$);
SELECT test_error($$SELECT qmatmul('{{1,2,3}}', quantize('{{1,2,3}}', 'rtn', 4), '{1,2}')$$);
-- pgquant.device = 'cuda' has no product kernels on the GPU: an error either way
SET pgquant.device = 'cuda';
SELECT left(test_error($$SELECT qlinear('{1,2,3}', quantize('{{1,2,3}}', 'rtn', 4))$$), 5) AS cuda_state;
RESET pgquant.device;
-- 'auto' uses a CUDA device for large weights when one is there, else the CPU, silently
SELECT min(v) = max(v) AND abs(min(v) - 512) < 0.01 AS auto_works
FROM unnest(qlinear(array_fill(1::real, ARRAY[1024]), quantize(array_fill(0.5::real, ARRAY[1024, 1024]), 'rtn', 8, sym => true))) v;
-- kernel sets
SELECT test_error($$SET pgquant.cpu_kernels = 'avx9'$$);
SET pgquant.cpu_kernels = 'ref';
SELECT qlinear('{1,2,3}', quantize('{{1,0,0},{0,1,0},{1,1,1}}', 'rtn', 8, sym => true)) AS y_ref;
SET pgquant.cpu_kernels = 'generic';
SELECT qlinear('{1,2,3}', quantize('{{1,0,0},{0,1,0},{1,1,1}}', 'rtn', 8, sym => true)) AS y_generic;
RESET pgquant.cpu_kernels;

-- out-of-line weights are detoasted once per query: alternating between two stored
-- qtensors row by row still uses the right one every time
CREATE TABLE big (id int PRIMARY KEY, q qtensor);
INSERT INTO big VALUES (1, quantize(test_matrix(64, 256, 0.21), 'rtn', 4)),
	(2, quantize(test_matrix(64, 256, 0.22), 'rtn', 8));
SELECT id, pg_column_size(q) > 2000 AS out_of_line FROM big ORDER BY id;
CREATE TABLE xin AS SELECT i, test_vector(256, i / 50.0) AS x FROM generate_series(1, 20) i;
SELECT count(*) AS rows, bool_and(rel_err(qlinear(xin.x, big.q), ref_linear(xin.x, dequantize(big.q)),
	ref_scale(xin.x, dequantize(big.q))) < 1e-5) AS all_ok
FROM xin JOIN big ON big.id = 1 + xin.i % 2;

-- pgquant.linear on a model's stored tensors (the tiny model of models.sql: value = offset / 8)
SELECT pgquant.linear('tiny', 'layers.0.attention.wk', '{1,0,0,-1}') AS wk_x;
SELECT pgquant.linear('tiny', 'layers.0.attention.wk', '{1,0,0,-1}', '{100,200}') AS wk_x_bias;
-- a quantized version is used as soon as it is stored, and an update is seen at once
UPDATE pgquant.tensors SET q = quantize(data, 'rtn', 8, sym => true) WHERE model = 'tiny' AND name = 'layers.0.attention.wk';
SELECT pgquant.linear('tiny', 'layers.0.attention.wk', '{1,0,0,-1}') AS wk_q8_x;
BEGIN;
UPDATE pgquant.tensors SET q = NULL, data = '{{1,1,1,1},{2,2,2,2}}' WHERE model = 'tiny' AND name = 'layers.0.attention.wk';
SELECT pgquant.linear('tiny', 'layers.0.attention.wk', '{1,0,0,-1}') AS in_txn;
SELECT pgquant.linear('tiny', 'layers.0.attention.wk', '{1,1,1,1}') AS in_txn;
ROLLBACK;
SELECT pgquant.linear('tiny', 'layers.0.attention.wk', '{1,0,0,-1}') AS after_rollback;
UPDATE pgquant.tensors SET q = NULL WHERE model = 'tiny' AND name = 'layers.0.attention.wk';
SELECT pgquant.linear('tiny', 'layers.0.attention.wk', '{1,0,0,-1}') AS fp32_again;
-- renaming the model re-keys its rows
UPDATE pgquant.models SET name = 'tiny2' WHERE name = 'tiny';
SELECT pgquant.linear('tiny2', 'layers.0.attention.wk', '{1,0,0,-1}') AS renamed;
SELECT test_error($$SELECT pgquant.linear('tiny', 'layers.0.attention.wk', '{1,0,0,-1}')$$);
UPDATE pgquant.models SET name = 'tiny' WHERE name = 'tiny2';
SELECT tensors >= 1 AS cached FROM pgquant.tensor_cache();
SELECT test_error($$SELECT pgquant.linear('tiny', 'norm', '{1,2,3,4}')$$);
SELECT test_error($$SELECT pgquant.linear('tiny', 'nope', '{1,2,3,4}')$$);
SELECT test_error($$SELECT pgquant.linear('tiny', 'layers.0.attention.wk', '{1,2,3}')$$);
SELECT pgquant.linear(NULL, 'x', '{1}') IS NULL AS null_in_null_out;
