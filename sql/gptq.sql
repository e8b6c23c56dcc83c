-- GPTQ: error-feedback quantization with a calibration set's X^T X, and quant_error's output error

-- activations like a network's: each channel one of 16 shared factors plus its own noise,
-- every 16th channel an outlier 20x larger; rows x cols, seeded
CREATE FUNCTION cal_activations(rows int, cols int, seed float8) RETURNS real[] LANGUAGE plpgsql AS $$
DECLARE
	z real[] := test_matrix(rows, 16, seed);
	e real[] := test_matrix(rows, cols, seed / 2);
	x real[];
BEGIN
	SELECT array_agg(r ORDER BY i) INTO x FROM (
		SELECT (k - 1) / cols AS i,
			array_agg(((z[1 + (k - 1) / cols][1 + (k - 1) % cols % 16] + 0.3 * v)
					   * CASE WHEN (k - 1) % cols % 16 = 0 THEN 20 ELSE 1 END)::real ORDER BY k) AS r
		FROM unnest(e) WITH ORDINALITY u(v, k) GROUP BY 1) t;
	RETURN x;
END $$;

SELECT pgquant.calibration_create('gq', model => 'generated');
SELECT pgquant.calibration_add('gq', 'l', cal_activations(1024, 128, 0.71));
CREATE TABLE gq_w AS SELECT test_matrix(48, 128, 0.72, true) AS w;

-- quant_error's output error is ||X W^T - X Q^T||^2 / ||X W^T||^2: check it on a small case by hand
SELECT pgquant.calibration_add('gq', 'small', cal_activations(20, 10, 0.73));
CREATE TABLE gq_small AS SELECT test_matrix(6, 10, 0.74) AS w, cal_activations(20, 10, 0.73) AS x;
SELECT abs((quant_error(w, q, 'gq', 'small')).output_error - explicit) < 1e-5 * explicit AS output_error_matches,
	round(explicit::numeric, 3) AS explicit
FROM gq_small, quantize(w, 'rtn', 3) q,
	LATERAL (SELECT sum((xw - xq) ^ 2) / sum(xw ^ 2) AS explicit FROM (
		SELECT sum(x[t][j]::float8 * w[o][j]) AS xw, sum(x[t][j]::float8 * (dequantize(q))[o][j]) AS xq
		FROM generate_series(1, 20) t, generate_series(1, 6) o, generate_series(1, 10) j GROUP BY t, o) s) e;
-- and rel_error, max_abs_error are those of the two-argument form
SELECT (quant_error(w, q, 'gq', 'small')).rel_error = (quant_error(w, q)).rel_error AS same_rel_error
FROM gq_small, quantize(w, 'rtn', 3) q;

-- GPTQ against RTN on the layer's output, every width, four variants
CREATE TABLE gq_err AS
SELECT b AS bits, v.variant,
	(quant_error(w, quantize(w, 'rtn', b, 32), 'gq', 'l')).output_error AS rtn,
	(quant_error(w, quantize(w, 'gptq', b, 32, v.sym, calibration => 'gq', layer => 'l',
							 act_order => v.ao, static_groups => v.sg), 'gq', 'l')).output_error AS gptq
FROM gq_w, generate_series(2, 8) b,
	(VALUES ('plain', false, false, false), ('act_order', false, true, false),
			('act_order static', false, true, true), ('sym', true, false, false)) v(variant, sym, ao, sg);
-- named ceilings on gptq / rtn by bit width (measured 0.17-0.43); symmetric GPTQ is compared
-- with asymmetric RTN, so it gets the looser column
CREATE TABLE gq_ceiling (bits int PRIMARY KEY, asym float8, sym float8);
INSERT INTO gq_ceiling VALUES (2, 0.5, 0.6), (3, 0.4, 0.6), (4, 0.4, 0.6), (5, 0.4, 0.6), (6, 0.4, 0.6), (7, 0.4, 0.6), (8, 0.4, 0.6);
SELECT bits, variant, round((gptq / rtn)::numeric, 2) AS ratio
FROM gq_err JOIN gq_ceiling USING (bits)
WHERE gptq / rtn > CASE WHEN variant = 'sym' THEN sym ELSE asym END;
SELECT count(*) AS checked, bool_and(gptq < rtn) AS gptq_always_below_rtn FROM gq_err;
-- each extra bit cuts GPTQ's output error at least 2.5x (the step halves: error energy / 4)
SELECT a.variant, a.bits, round((b.gptq / a.gptq)::numeric, 3) AS ratio FROM gq_err a JOIN gq_err b
	ON b.variant = a.variant AND b.bits = a.bits + 1 WHERE b.gptq / a.gptq > 0.4;

-- the stored form: method gptq; act-order without static groups stores the permutation
SELECT (qtensor_info(q)).method, (qtensor_info(q)).group_size, q::text LIKE '%perm=yes%' AS has_perm
FROM gq_w, LATERAL (VALUES (quantize(w, 'gptq', 4, calibration => 'gq', layer => 'l')),
	(quantize(w, 'gptq', 4, calibration => 'gq', layer => 'l', act_order => true)),
	(quantize(w, 'gptq', 4, calibration => 'gq', layer => 'l', act_order => true, static_groups => true))) v(q);
-- the default group is 128, and one group per row works
SELECT (qtensor_info(quantize(w, 'gptq', 3, calibration => 'gq', layer => 'l'))).group_size,
	(quant_error(w, quantize(w, 'gptq', 3, -1, calibration => 'gq', layer => 'l'), 'gq', 'l')).output_error <
	(quant_error(w, quantize(w, 'rtn', 3, -1), 'gq', 'l')).output_error AS per_row_beats_rtn
FROM gq_w;
-- deterministic
SELECT qtensor_send(quantize(w, 'gptq', 3, calibration => 'gq', layer => 'l', act_order => true)) =
	qtensor_send(quantize(w, 'gptq', 3, calibration => 'gq', layer => 'l', act_order => true)) AS deterministic
FROM gq_w;

-- pgquant.calibration names the set when a call names none
SET pgquant.calibration = 'gq';
SELECT qtensor_send(quantize(w, 'gptq', 4, layer => 'l')) =
	qtensor_send(quantize(w, 'gptq', 4, calibration => 'gq', layer => 'l')) AS setting_used,
	(quant_error(w, quantize(w, 'rtn', 4), NULL, 'l')).output_error =
	(quant_error(w, quantize(w, 'rtn', 4), 'gq', 'l')).output_error AS setting_used_by_quant_error
FROM gq_w;
RESET pgquant.calibration;

-- degenerate statistics: fewer rows than columns, a channel that is always zero, an indefinite X^T X
SELECT pgquant.calibration_add('gq', 'few', cal_activations(40, 128, 0.75));
SELECT (quant_error(w, quantize(w, 'gptq', 4, 32, calibration => 'gq', layer => 'few'), 'gq', 'few')).output_error <
	(quant_error(w, quantize(w, 'rtn', 4, 32), 'gq', 'few')).output_error AS few_rows_beats_rtn FROM gq_w;
SELECT pgquant.calibration_add('gq', 'dead',
	(SELECT array_agg(r ORDER BY i) FROM (SELECT i, array_agg(CASE WHEN j = 3 THEN 0 ELSE x[i][j] END ORDER BY j) AS r
	 FROM (SELECT cal_activations(200, 12, 0.76) AS x) s, generate_series(1, 200) i, generate_series(1, 12) j GROUP BY i) t));
SELECT (dequantize(quantize(test_matrix(4, 12, 0.77), 'gptq', 4, calibration => 'gq', layer => 'dead')))[1:4][3:3] AS dead_column;
SELECT pgquant.calibration_merge('gq', 'indefinite', ROW(2, 10, '{{1,3},{3,1}}', '{1,1}', '{1,1}', '{1,1}')::pgquant.layer_stats);
SELECT (quant_error(w, quantize(w, 'gptq', 8, calibration => 'gq', layer => 'indefinite'))).rel_error < 0.01 AS indefinite_ok
FROM (SELECT '{{0.5,-1},{2,0.25}}'::real[] AS w) s;

-- bad calls: a clear error each
SELECT test_error($$SELECT quantize('{{1,2}}'::real[], 'gptq', 4)$$);
-- (a set without a layer: the set's only layer of that width, named in a NOTICE)
SELECT test_error($$SELECT quantize('{{1,2}}'::real[], 'gptq', 4, calibration => 'gq')$$);
SELECT test_error($$SELECT quantize('{{1,2}}'::real[], 'gptq', 4, calibration => 'nope', layer => 'l')$$);
SELECT test_error($$SELECT quantize('{{1,2}}'::real[], 'gptq', 4, calibration => 'gq', layer => 'nope')$$);
SELECT test_error($$SELECT quantize('{{1,2}}'::real[], 'gptq', 4, calibration => 'gq', layer => 'l')$$);
SELECT test_error($$SELECT quantize('{{1,2}}'::real[], 'gptq', 1, calibration => 'gq', layer => 'indefinite')$$);
SELECT test_error($$SELECT quantize('{{1,2}}'::real[], 'gptq', 4, damp => 0, calibration => 'gq', layer => 'indefinite')$$);
SELECT test_error($$SELECT quantize('{{1,2}}'::real[], 'gptq', 4, damp => 'NaN', calibration => 'gq', layer => 'indefinite')$$);
SELECT test_error($$SELECT quantize('{{1,2}}'::real[], 'rtn', 4, calibration => 'gq', layer => 'indefinite')$$);
SELECT test_error($$SELECT quantize('{{1,2}}'::real[], 'hqq', 4, act_order => true)$$);
SELECT test_error($$SELECT quantize('{{1,2}}'::real[], 'nf4', 4, static_groups => true)$$);
SELECT test_error($$SELECT quant_error('{{1,2}}'::real[], quantize('{{1,2}}'::real[], 'rtn', 4), 'gq', 'l')$$);
SELECT test_error($$SELECT quant_error('{{1,2}}'::real[], quantize('{{1,2}}'::real[], 'rtn', 4), NULL, 'indefinite')$$);
SELECT test_error($$SELECT quant_error('{{1,2,3}}'::real[], quantize('{{1,2}}'::real[], 'rtn', 4), 'gq', 'indefinite')$$);
-- an X^T X no dampening can rescue (eigenvalue -1e7): an error after six tenfold increases
SELECT pgquant.calibration_merge('gq', 'hopeless', ROW(2, 10, '{{1,1e7},{1e7,1}}', '{1,1}', '{1,1}', '{1,1}')::pgquant.layer_stats);
SELECT test_error($$SELECT quantize('{{1,2}}'::real[], 'gptq', 4, calibration => 'gq', layer => 'hopeless')$$);
SELECT pgquant.calibration_add('gq', 'nohessian', '{{1,2},{3,4}}', hessian => false);
SELECT test_error($$SELECT quantize('{{1,2}}'::real[], 'gptq', 4, calibration => 'gq', layer => 'nohessian')$$);
-- NULL options give NULL, like the other arguments
SELECT quantize('{{1,2}}'::real[], 'gptq', 4, act_order => NULL) IS NULL AS null_act_order,
	quantize('{{1,2}}'::real[], 'gptq', 4, damp => NULL) IS NULL AS null_damp;

-- leave no calibration sets behind for the files that follow
DELETE FROM pgquant.calibration_sets WHERE name = 'gq';
