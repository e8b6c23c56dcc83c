-- pgTAP: the optimizing quantizers on the real stories260K weights (35 linear layers).
-- The test runner loads the table from the data directory; without it, every test skips.
BEGIN;
SELECT plan(7);

CREATE FUNCTION pg_temp.calib_stories260k_tests() RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
	-- mean relative Frobenius error over the 35 matrices, groups of 64, measured once and pinned here
	pinned CONSTANT text[][] := ARRAY[
		['hqq asym', '2', '0.3547'], ['hqq asym', '3', '0.1785'], ['hqq asym', '4', '0.0876'],
		['hqq sym', '4', '0.0917']];
	p text[];
BEGIN
	IF to_regclass('stories260k') IS NULL THEN
		RETURN NEXT skip('no stories260K data: set PGQUANT_DATA_DIR to a directory holding stories260K/', 7);
		RETURN;
	END IF;

	CREATE TEMP TABLE hqq_st AS
	SELECT s.name, b AS bits, v.sym, r.rel_error AS rtn, h.rel_error AS hqq
	FROM stories260k s, generate_series(2, 8) b, (VALUES (false), (true)) v(sym),
		LATERAL quant_error(s.w, quantize(s.w, 'rtn', b, 64, v.sym)) r,
		LATERAL quant_error(s.w, quantize(s.w, 'hqq', b, 64, v.sym)) h
	WHERE s.name <> 'tok_embeddings';

	FOREACH p SLICE 1 IN ARRAY pinned LOOP
		RETURN NEXT is((SELECT round(avg(hqq)::numeric, 4) FROM hqq_st
						WHERE sym = (p[1] = 'hqq sym') AND bits = p[2]::int), p[3]::numeric,
			format('%s g64 at %s bits: mean relative error %s', p[1], p[2], p[3]));
	END LOOP;
	RETURN NEXT is((SELECT count(*) FROM hqq_st WHERE NOT hqq < rtn), 0::bigint,
		'hqq beats rtn on every one of the 35 matrices, at every width 2..8, symmetric or not');
	RETURN NEXT cmp_ok((SELECT max(hqq / rtn) FROM hqq_st WHERE bits = 2 AND NOT sym), '<', 0.90::float8,
		'asymmetric 2 bits: hqq cuts every matrix''s error by more than 10%');
	RETURN NEXT cmp_ok((SELECT avg(hqq) / avg(rtn) FROM hqq_st WHERE bits = 3 AND NOT sym), '<', 0.95::float8,
		'asymmetric 3 bits: hqq''s mean error is more than 5% below rtn''s');
END $$;

SELECT * FROM pg_temp.calib_stories260k_tests();

SELECT * FROM finish();
ROLLBACK;
