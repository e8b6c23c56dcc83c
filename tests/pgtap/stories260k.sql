-- pgTAP: quantization error on the real stories260K weights (35 linear layers).
-- The test runner loads the table from the data directory; without it, every test skips.
BEGIN;
SELECT plan(14);

CREATE FUNCTION pg_temp.stories260k_tests() RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
	-- mean relative Frobenius error over the 35 matrices, measured once and pinned here
	pinned CONSTANT text[][] := ARRAY[
		['rtn asym g64', '2', '0.4519'], ['rtn asym g64', '3', '0.1946'],
		['rtn asym g64', '4', '0.0906'], ['rtn asym g64', '8', '0.0053'],
		['rtn sym g64', '2', '0.3929'], ['rtn sym g64', '3', '0.1923'],
		['rtn sym g64', '4', '0.0950'], ['rtn sym g64', '8', '0.0059'],
		['nf4 g64', '4', '0.0923']];
	p text[];
BEGIN
	IF to_regclass('stories260k') IS NULL THEN
		RETURN NEXT skip('no stories260K data: set PGQUANT_DATA_DIR to a directory holding stories260K/', 14);
		RETURN;
	END IF;

	RETURN NEXT is((SELECT count(*) FROM stories260k WHERE name <> 'tok_embeddings'), 35::bigint,
		'35 linear layers loaded (5 layers x wq, wk, wv, wo, w1, w2, w3)');
	RETURN NEXT is((SELECT sum(rows * cols) FROM stories260k), 259328::bigint,
		'259,328 weights loaded, the embedding included');

	CREATE TEMP TABLE st_err AS
	SELECT v.variant, b AS bits, s.name, e.rel_error, e.max_abs_error
	FROM stories260k s, generate_series(2, 8) b,
		(VALUES ('rtn asym g64', 'rtn', 64, false), ('rtn sym g64', 'rtn', 64, true),
				('rtn asym g32', 'rtn', 32, false), ('rtn asym row', 'rtn', -1, false),
				('nf4 g64', 'nf4', 64, false), ('nf4 g32', 'nf4', 32, false)) v(variant, method, gs, sym),
		LATERAL quant_error(s.w, quantize(s.w, v.method, b, v.gs, v.sym)) e
	WHERE s.name <> 'tok_embeddings' AND (v.method = 'rtn' OR b = 4);
	CREATE TEMP TABLE st_mean AS
	SELECT variant, bits, round(avg(rel_error)::numeric, 4) AS mean_rel FROM st_err GROUP BY 1, 2;

	FOREACH p SLICE 1 IN ARRAY pinned LOOP
		RETURN NEXT is((SELECT mean_rel FROM st_mean WHERE variant = p[1] AND bits = p[2]::int), p[3]::numeric,
			format('%s at %s bits: mean relative error %s', p[1], p[2], p[3]));
	END LOOP;

	RETURN NEXT is((SELECT count(*) FROM st_err a JOIN st_err b USING (variant, name)
					WHERE b.bits = a.bits + 1 AND b.rel_error >= a.rel_error), 0::bigint,
		'every matrix loses error with every extra bit');
	RETURN NEXT is((SELECT count(*) FROM st_err a
					JOIN st_err g64 ON g64.name = a.name AND g64.bits = a.bits AND g64.variant = 'rtn asym g64'
					JOIN st_err row ON row.name = a.name AND row.bits = a.bits AND row.variant = 'rtn asym row'
					WHERE a.variant = 'rtn asym g32' AND NOT (a.rel_error <= g64.rel_error AND g64.rel_error <= row.rel_error)),
				   0::bigint,
		'smaller groups never hurt: g32 <= g64 <= one group per row, for every matrix and width');
	RETURN NEXT cmp_ok((SELECT mean_rel FROM st_mean WHERE variant = 'nf4 g32' AND bits = 4), '<',
		(SELECT mean_rel FROM st_mean WHERE variant = 'nf4 g64' AND bits = 4), 'nf4 with groups of 32 beats groups of 64');
END $$;

SELECT * FROM pg_temp.stories260k_tests();

SELECT * FROM finish();
ROLLBACK;
