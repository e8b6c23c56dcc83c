-- calibration statistics: the activation_stats aggregate and the calibration tables

-- two rows of three features: X^T X, mean |x|, max |x| and sum x^2, exactly
SELECT (pgquant.activation_stats(x)).* FROM (VALUES ('{1,2,3}'::real[]), ('{-1,0,2}')) v(x);
-- a value may be one row (1-D) or a batch of rows (2-D); NULL rows are skipped
SELECT (pgquant.activation_stats(x)).* FROM (VALUES ('{{1,2,3},{-1,0,2}}'::real[]), (NULL), ('{0.5,0.5,-4}')) v(x);
-- without X^T X
SELECT (pgquant.activation_stats(x, false)).* FROM (VALUES ('{{1,2,3},{-1,0,2}}'::real[])) v(x);
-- no rows: NULL
SELECT pgquant.activation_stats(x) IS NULL AS no_rows FROM (SELECT '{1}'::real[] AS x WHERE false) s;

-- the Hessian is X^T X of the rows: check against a double-precision sum of products
CREATE TABLE cal_acts AS
	SELECT i, ARRAY(SELECT m[i][j] FROM generate_series(1, 24) j) AS x
	FROM (SELECT test_matrix(300, 24, 0.31, true) AS m) t, generate_series(1, 300) i;
SELECT count(*) AS rows, max(array_length(x, 1)) AS width FROM cal_acts;
WITH s AS (SELECT (pgquant.activation_stats(x)).* FROM cal_acts),
	 pairs AS (SELECT a.j AS i, b.j, sum(a.v::float8 * b.v) AS v
			   FROM (SELECT i AS r, j, x[j] AS v FROM cal_acts, generate_series(1, 24) j) a
			   JOIN (SELECT i AS r, j, x[j] AS v FROM cal_acts, generate_series(1, 24) j) b USING (r)
			   GROUP BY 1, 2)
SELECT max(abs(s.hessian[p.i][p.j] - p.v) / sqrt(s.sum_sq[p.i] * s.sum_sq[p.j])) < 1e-6 AS hessian_matches,
	bool_and(s.hessian[p.i][p.j] = s.hessian[p.j][p.i]) AS symmetric,
	bool_and(abs(s.hessian[p.i][p.i] - s.sum_sq[p.i]) <= 1e-6 * s.sum_sq[p.i]) AS diagonal_is_sum_sq
FROM s, pairs p;

-- bad activations
SELECT test_error($$SELECT pgquant.activation_stats(x) FROM (VALUES ('{1,2}'::real[]), ('{1,2,3}')) v(x)$$);
SELECT test_error($$SELECT pgquant.activation_stats(x) FROM (VALUES ('{{1,2},{3,4}}'::real[]), ('{1,2,3}')) v(x)$$);
SELECT test_error($$SELECT pgquant.activation_stats('{1,NaN}'::real[])$$);
SELECT test_error($$SELECT pgquant.activation_stats('{{1,2},{3,-Infinity}}'::real[])$$);
SELECT test_error($$SELECT pgquant.activation_stats('{1,NULL}'::real[])$$);
SELECT test_error($$SELECT pgquant.activation_stats('{{{1}}}'::real[])$$);
SELECT test_error($$SELECT pgquant.activation_stats('{}'::real[])$$);
SELECT test_error($$SELECT pgquant.activation_stats(x, h) FROM (VALUES ('{1,2}'::real[], true), ('{1,2}', false)) v(x, h)$$);
SELECT test_error($$SELECT pgquant.activation_stats('{1,2}'::real[], NULL)$$);
SELECT test_error($$SELECT pgquant.activation_stats(array_fill(1::real, ARRAY[11586]))$$);
SELECT (pgquant.activation_stats(array_fill(1::real, ARRAY[11586]), false)).nrows AS wide_without_hessian;

-- the tables: create a set, add batches of rows to layers, read them back
SELECT pgquant.calibration_create('cal-a', model => 'toy', note => 'regression test');
SELECT name, model, note, created <= now() AS created_ok FROM pgquant.calibration_sets;
SELECT pgquant.calibration_add('cal-a', 'l0', '{{1,2,3},{-1,0,2}}');
SELECT pgquant.calibration_add('cal-a', 'l0', '{0.5,0.5,-4}');
SELECT pgquant.calibration_add('cal-a', 'l1', '{{1,2},{3,4}}', hessian => false);
SELECT set_name, layer, in_features, nrows, hessian, mean_abs, max_abs, sum_sq
FROM pgquant.calibration_stats ORDER BY layer;
-- adding in two batches stores what one batch of all the rows gives
SELECT (SELECT hessian FROM pgquant.calibration_stats WHERE layer = 'l0') =
	(pgquant.activation_stats('{{1,2,3},{-1,0,2},{0.5,0.5,-4}}'::real[])).hessian AS batches_add_up;
-- statistics computed elsewhere (here by the aggregate over a table) merge the same way
SELECT pgquant.calibration_merge('cal-a', 'wide', (SELECT pgquant.activation_stats(x) FROM cal_acts));
SELECT pgquant.calibration_merge('cal-a', 'wide', (SELECT pgquant.activation_stats(x) FROM cal_acts WHERE i <= 100));
SELECT layer, nrows, in_features, array_dims(hessian) FROM pgquant.calibration_stats WHERE layer = 'wide';

-- bad calls: a clear error each
SELECT test_error($$SELECT pgquant.calibration_create('cal-a')$$);
SELECT test_error($$SELECT pgquant.calibration_create('')$$);
SELECT test_error($$SELECT pgquant.calibration_add('no-such-set', 'l0', '{1,2}')$$);
SELECT test_error($$SELECT pgquant.calibration_add('cal-a', 'l0', '{1,2}')$$);
SELECT test_error($$SELECT pgquant.calibration_add('cal-a', 'l1', '{5,6}', hessian => true)$$);
SELECT test_error($$SELECT pgquant.calibration_add('cal-a', '', '{5,6}')$$);
SELECT test_error($$SELECT pgquant.calibration_merge('cal-a', 'l9', NULL)$$);
SELECT test_error($$SELECT pgquant.calibration_merge('cal-a', 'l9', ROW(2, 1, NULL, '{1,1}', '{1,NaN}', '{1,1}')::pgquant.layer_stats)$$);
SELECT test_error($$SELECT pgquant.calibration_merge('cal-a', 'l9', ROW(2, 1, NULL, '{1,-1}', '{1,1}', '{1,1}')::pgquant.layer_stats)$$);
SELECT test_error($$SELECT pgquant.calibration_merge('cal-a', 'l9', ROW(2, 1, '{1,2,3,4}', '{1,1}', '{1,1}', '{1,1}')::pgquant.layer_stats)$$);
SELECT test_error($$SELECT pgquant.calibration_merge('cal-a', 'l9', ROW(2, 0, NULL, '{1,1}', '{1,1}', '{1,1}')::pgquant.layer_stats)$$);
SELECT test_error($$SELECT pgquant.calibration_merge('cal-a', 'l9', ROW(2, 1, NULL, '{1,1,1}', '{1,1}', '{1,1}')::pgquant.layer_stats)$$);
SELECT test_error($$SELECT pgquant.calibration_merge('cal-a', 'l9', ROW(2, 1, NULL, '{1,1}', NULL, '{1,1}')::pgquant.layer_stats)$$);
-- the table's constraints keep hand-written rows consistent too (the detail, with a timestamp, left out)
SELECT split_part(test_error($$INSERT INTO pgquant.calibration_stats (set_name, layer, in_features, nrows, mean_abs, max_abs, sum_sq)
	VALUES ('cal-a', 'bad', 3, 1, '{1,1}', '{1,1,1}', '{1,1,1}')$$), ' DETAIL', 1);
SELECT split_part(test_error($$INSERT INTO pgquant.calibration_stats (set_name, layer, in_features, nrows, mean_abs, max_abs, sum_sq)
	VALUES ('nope', 'bad', 1, 1, '{1}', '{1}', '{1}')$$), ' DETAIL', 1);
-- merging checks what it reads
SELECT test_error($$SELECT pgquant.layer_stats_merge(ROW(2, 1, NULL, '{1,1}', '{1,1}', '{1,1}')::pgquant.layer_stats,
	ROW(3, 1, NULL, '{1,1,1}', '{1,1,1}', '{1,1,1}')::pgquant.layer_stats)$$);
SELECT (pgquant.layer_stats_merge(NULL, ROW(1, 2, '{{4}}', '{1}', '{3}', '{4}')::pgquant.layer_stats)).*;
SELECT (pgquant.layer_stats_merge(ROW(1, 2, '{{4}}', '{1}', '{3}', '{4}')::pgquant.layer_stats,
	ROW(1, 6, '{{10}}', '{3}', '{2}', '{10}')::pgquant.layer_stats)).*;

-- a set can be renamed, and deleting it deletes its statistics
UPDATE pgquant.calibration_sets SET name = 'cal-b' WHERE name = 'cal-a';
SELECT DISTINCT set_name FROM pgquant.calibration_stats;
DELETE FROM pgquant.calibration_sets WHERE name = 'cal-b';
SELECT count(*) AS stats_left FROM pgquant.calibration_stats;
