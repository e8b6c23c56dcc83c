-- Helpers shared by the later regression files (run first, in one database).

-- SQLSTATE, message and detail of a statement's error, or 'ok'
CREATE FUNCTION test_error(stmt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	detail text;
BEGIN
	EXECUTE stmt;
	RETURN 'ok';
EXCEPTION WHEN others THEN
	GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL;
	RETURN SQLSTATE || ': ' || SQLERRM || coalesce(' DETAIL: ' || nullif(detail, ''), '');
END $$;

-- a seeded rows x cols matrix: N(0,1), or heavy-tailed (Laplace with 0.5% outliers x8)
CREATE FUNCTION test_matrix(rows int, cols int, seed float8, heavy bool DEFAULT false)
RETURNS real[] LANGUAGE plpgsql AS $$
DECLARE
	m real[];
BEGIN
	PERFORM setseed(seed);
	SELECT array_agg(r ORDER BY i) INTO m FROM (
		SELECT i, array_agg(v ORDER BY j) AS r FROM (
			SELECT i, j,
				CASE WHEN heavy THEN
					(CASE WHEN random() < 0.005 THEN 8 ELSE 1 END) *
					(CASE WHEN random() < 0.5 THEN -1 ELSE 1 END) * -ln(1 - random())
				ELSE sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random()) END::real AS v
			FROM generate_series(1, rows) i, generate_series(1, cols) j) s
		GROUP BY i) t;
	RETURN m;
END $$;

SELECT array_dims(test_matrix(3, 5, 0.5)), array_dims(test_matrix(2, 2, 0.5, true));
-- the same seed gives the same matrix
SELECT test_matrix(4, 4, 0.25) = test_matrix(4, 4, 0.25) AS reproducible;
