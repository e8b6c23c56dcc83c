-- pgTAP: the optimizing quantizers on the real stories260K weights (35 linear layers).
-- The test runner loads the table from the data directory; without it, every test skips.
-- GPTQ and AWQ need the layers' input activations. The real ones, from the model's forward
-- pass on text, are tested in quantize_model_stories260k.sql; the activations here are
-- GENERATED (seeded), a controlled case with the structure that makes calibration matter
-- (channels sharing a few factors, every 16th channel an outlier 20x larger), one set per
-- input width (64 and 172).
BEGIN;

-- rows x cols activations: channel j = (factor j mod 8 + 0.3 noise) * (20 when j mod 16 = 1)
CREATE FUNCTION pg_temp.gen_activations(rows int, cols int, seed float8) RETURNS real[] LANGUAGE plpgsql AS $$
DECLARE
	m real[];
BEGIN
	PERFORM setseed(seed);
	SELECT array_agg(r ORDER BY i) INTO m FROM (
		SELECT i, array_agg(((z[1 + (j - 1) % 8] + 0.3 * (random() - 0.5) * 3.4)
							 * CASE WHEN j % 16 = 1 THEN 20 ELSE 1 END)::real ORDER BY j) AS r
		FROM (SELECT i, ARRAY(SELECT (random() - 0.5) * 3.4 FROM generate_series(1, 8)) AS z
			  FROM generate_series(1, rows) i) f, generate_series(1, cols) j
		GROUP BY i) t;
	RETURN m;
END $$;
SELECT plan(13);

CREATE FUNCTION pg_temp.calib_stories260k_tests() RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
	-- mean relative Frobenius error over the 35 matrices, groups of 64, measured once and pinned here
	pinned CONSTANT text[][] := ARRAY[
		['hqq asym', '2', '0.3547'], ['hqq asym', '3', '0.1785'], ['hqq asym', '4', '0.0876'],
		['hqq sym', '4', '0.0917']];
	p text[];
BEGIN
	IF to_regclass('stories260k') IS NULL THEN
		RETURN NEXT skip('no stories260K data: set PGQUANT_DATA_DIR to a directory holding stories260K/', 13);
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

	-- GPTQ with generated activations (see the top of the file), groups of 32
	PERFORM pgquant.calibration_create('st-gen', model => 'stories260K', note => 'generated activations');
	PERFORM pgquant.calibration_add('st-gen', 'in64', pg_temp.gen_activations(512, 64, 0.31));
	PERFORM pgquant.calibration_add('st-gen', 'in172', pg_temp.gen_activations(512, 172, 0.32));
	CREATE TEMP TABLE gptq_st AS
	SELECT s.name, b AS bits, r.output_error AS rtn, g.output_error AS gptq, a.output_error AS gptq_ao,
		w.output_error AS awq
	FROM stories260k s, generate_series(2, 8) b,
		LATERAL (SELECT CASE WHEN s.cols = 64 THEN 'in64' ELSE 'in172' END AS layer) l,
		LATERAL quant_error(s.w, quantize(s.w, 'rtn', b, 32), 'st-gen', l.layer) r,
		LATERAL quant_error(s.w, quantize(s.w, 'gptq', b, 32, calibration => 'st-gen', layer => l.layer),
							'st-gen', l.layer) g,
		LATERAL quant_error(s.w, quantize(s.w, 'gptq', b, 32, calibration => 'st-gen', layer => l.layer,
										  act_order => true), 'st-gen', l.layer) a,
		LATERAL quant_error(s.w, quantize(s.w, 'awq', b, 32, calibration => 'st-gen', layer => l.layer),
							'st-gen', l.layer) w
	WHERE s.name <> 'tok_embeddings';
	RETURN NEXT is((SELECT count(*) FROM gptq_st WHERE NOT (gptq < rtn AND gptq_ao < rtn)), 0::bigint,
		'gptq (with and without act-order) beats rtn''s output error on all 35 matrices at 2..8 bits');
	RETURN NEXT cmp_ok((SELECT max(gptq / rtn) FROM gptq_st WHERE bits IN (3, 4)), '<', 0.8::float8,
		'3 and 4 bits: gptq''s output error is under 80% of rtn''s on every matrix (measured at most 0.73)');
	RETURN NEXT cmp_ok((SELECT avg(gptq / rtn) FROM gptq_st WHERE bits IN (3, 4)), '<', 0.6::float8,
		'3 and 4 bits: on average under 60% (measured 0.54)');
	RETURN NEXT cmp_ok((SELECT avg(gptq_ao / rtn) FROM gptq_st WHERE bits IN (3, 4)), '<', 0.6::float8,
		'3 and 4 bits, act-order: on average under 60% (measured 0.51)');
	RETURN NEXT is((SELECT count(*) FROM gptq_st WHERE NOT awq < rtn), 0::bigint,
		'awq beats rtn''s output error on all 35 matrices at 2..8 bits');
	RETURN NEXT cmp_ok((SELECT avg(awq / rtn) FROM gptq_st WHERE bits IN (3, 4)), '<', 0.5::float8,
		'3 and 4 bits: awq on average under 50% of rtn''s output error (measured 0.33)');
END $$;

SELECT * FROM pg_temp.calib_stories260k_tests();

SELECT * FROM finish();
ROLLBACK;
