-- pgTAP: calibration statistics in parallel plans, and who may read and write them
BEGIN;
SELECT plan(12);

CREATE TABLE tap_acts AS
	SELECT i, array_agg(((random() - 0.5) * CASE WHEN j % 9 = 0 THEN 40 ELSE 1 END)::real ORDER BY j) AS x
	FROM (SELECT setseed(0.42)) s, generate_series(1, 30000) i, generate_series(1, 40) j GROUP BY i;
ANALYZE tap_acts;

-- the plan of a statement as JSON text
CREATE FUNCTION pg_temp.plan_of(stmt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	p json;
BEGIN
	EXECUTE 'EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, FORMAT JSON) ' || stmt INTO p;
	RETURN p::text;
END $$;

SET LOCAL max_parallel_workers_per_gather = 2;
SET LOCAL parallel_setup_cost = 0;
SET LOCAL parallel_tuple_cost = 0;
SET LOCAL min_parallel_table_scan_size = 0;
SELECT ok(p ~ '"Partial Mode": "Finalize"' AND p ~ '"Partial Mode": "Partial"' AND p ~ '"Workers Launched": [12]',
	'activation_stats runs as a partial aggregate in parallel workers (combine, serialize, deserialize)')
FROM pg_temp.plan_of('SELECT pgquant.activation_stats(x) FROM tap_acts') p;
CREATE TEMP TABLE par AS SELECT (pgquant.activation_stats(x)).* FROM tap_acts;
CREATE TEMP TABLE par_nh AS SELECT (pgquant.activation_stats(x, false)).* FROM tap_acts;
SET LOCAL max_parallel_workers_per_gather = 0;
CREATE TEMP TABLE ser AS SELECT (pgquant.activation_stats(x)).* FROM tap_acts;

SELECT is((SELECT nrows FROM par), 30000::bigint, 'the parallel aggregate counts every row once');
SELECT ok((SELECT p.max_abs = s.max_abs FROM par p, ser s), 'parallel and serial max |x| are identical');
SELECT cmp_ok((SELECT max(abs(a - b) / b) FROM par p, ser s, unnest(p.sum_sq, s.sum_sq) u(a, b)), '<', 1e-12::float8,
	'parallel and serial sum x^2 agree to 1e-12 (double sums in another order)');
SELECT cmp_ok((SELECT max(abs(a - b) / b) FROM par p, ser s, unnest(p.mean_abs, s.mean_abs) u(a, b)), '<', 1e-6::real,
	'parallel and serial mean |x| agree to float precision');
SELECT cmp_ok((SELECT max(abs(p.hessian[i][j] - s.hessian[i][j]) / sqrt(s.sum_sq[i] * s.sum_sq[j]))
			   FROM par p, ser s, generate_series(1, 40) i, generate_series(1, 40) j), '<', 1e-6::float8,
	'parallel and serial X^T X agree to 1e-6 of sqrt(H_ii H_jj)');
SELECT ok((SELECT n.hessian IS NULL AND n.max_abs = s.max_abs AND n.nrows = 30000 FROM par_nh n, ser s),
	'hessian => false runs in parallel too, with the same channel statistics');

-- an ordinary role computes statistics and reads the tables; writing needs a grant
CREATE ROLE pgquant_tap_calib NOLOGIN;
SELECT lives_ok($$SELECT pgquant.calibration_create('tap-set', model => 'toy');
				  SELECT pgquant.calibration_add('tap-set', 'l0', '{{1,2},{3,4}}')$$, 'a superuser creates a set and adds rows');
GRANT SELECT ON tap_acts TO pgquant_tap_calib;
SET LOCAL ROLE pgquant_tap_calib;
SELECT is((SELECT (pgquant.activation_stats(x)).nrows FROM tap_acts WHERE i <= 10), 10::bigint,
	'a non-superuser can run the aggregate');
SELECT is((SELECT nrows FROM pgquant.calibration_stats WHERE set_name = 'tap-set'), 2::bigint,
	'a non-superuser can read calibration statistics');
SELECT throws_ok($$SELECT pgquant.calibration_add('tap-set', 'l0', '{{5,6}}')$$, '42501', NULL,
	'adding to a set needs write privileges on the calibration tables');
RESET ROLE;
GRANT INSERT, UPDATE ON pgquant.calibration_sets, pgquant.calibration_stats TO pgquant_tap_calib;
SET LOCAL ROLE pgquant_tap_calib;
SELECT is(pgquant.calibration_add('tap-set', 'l0', '{{5,6}}'), 3::bigint, 'with INSERT and UPDATE granted it can');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
