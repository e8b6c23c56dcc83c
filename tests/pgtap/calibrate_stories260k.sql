-- pgTAP: pgquant.calibrate on the real stories260K model over paragraphs of the training
-- head. Reads the checkpoint, tokenizer and text on the server from pgquant_test.data_dir;
-- without it every test skips.
BEGIN;
SELECT plan(13);

CREATE FUNCTION pg_temp.calibrate_tests() RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
	dir text := nullif(current_setting('pgquant_test.data_dir', true), '');
	ntok bigint;
	expect bigint;
	half1 bigint;
	half2 bigint;
BEGIN
	IF dir IS NULL THEN
		RETURN NEXT skip('no data directory: set PGQUANT_DATA_DIR to a directory holding stories260K/', 13);
		RETURN;
	END IF;
	PERFORM pgquant.import_llama2c('cal-s260k', pg_read_binary_file(dir || '/stories260K/stories260K.bin'),
		pg_read_binary_file(dir || '/stories260K/tok512.bin'));
	CREATE TEMP TABLE train AS
		SELECT n, btrim(p, E' \n') AS p
		FROM regexp_split_to_table(pg_read_file(dir || '/stories260K/tinystories_train_head.txt'), '\n\s*\n')
			WITH ORDINALITY AS t(p, n);
	DELETE FROM train WHERE n > 40;

	ntok := pgquant.calibrate('cal-s260k', 'cal-train', ARRAY(SELECT p FROM train ORDER BY n));
	SELECT sum(least(cardinality(pgquant.tokenize('cal-s260k', p)), 512)) INTO expect FROM train;
	RETURN NEXT is(ntok, expect, format('40 paragraphs: %s positions, every token from BOS (none longer than 512)', ntok));
	RETURN NEXT set_eq(
		$q$SELECT layer FROM pgquant.calibration_stats WHERE set_name = 'cal-train'$q$,
		$q$SELECT name FROM pgquant.tensors WHERE model = 'cal-s260k' AND name ~ '^layers\.\d+\.(attention\.w[qkvo]|feed_forward\.w[123])$'$q$,
		'one row per linear layer, named as the model''s tensors');
	RETURN NEXT is((SELECT count(*) FROM pgquant.calibration_stats WHERE set_name = 'cal-train'), 35::bigint, '35 linear layers');
	RETURN NEXT is((SELECT count(*) FROM pgquant.calibration_stats WHERE set_name = 'cal-train' AND nrows = ntok), 35::bigint,
		'every layer has one row per position');
	RETURN NEXT is((SELECT count(*) FROM pgquant.calibration_stats c JOIN pgquant.tensors t
				    ON t.model = 'cal-s260k' AND t.name = c.layer AND t.shape[2] = c.in_features
				    WHERE c.set_name = 'cal-train'), 35::bigint,
		'in_features is the matrix''s input width (64, or 172 for w2)');
	RETURN NEXT is((SELECT model FROM pgquant.calibration_sets WHERE name = 'cal-train'), 'cal-s260k', 'the set records its model');

	-- the same paragraphs in two calls
	half1 := pgquant.calibrate('cal-s260k', 'cal-halves', ARRAY(SELECT p FROM train WHERE n <= 20 ORDER BY n));
	half2 := pgquant.calibrate('cal-s260k', 'cal-halves', ARRAY(SELECT p FROM train WHERE n > 20 ORDER BY n));
	RETURN NEXT is(half1 + half2, ntok, 'two halves run as many positions as the whole');

	-- the statistics as rows (one detoasting per array): X^T X entries and per-channel values
	CREATE TEMP TABLE hflat AS
		SELECT set_name, layer, (k - 1) / in_features + 1 AS i, (k - 1) % in_features + 1 AS j, v::float8 AS v
		FROM pgquant.calibration_stats, unnest(hessian) WITH ORDINALITY u(v, k)
		WHERE set_name IN ('cal-train', 'cal-halves');
	CREATE TEMP TABLE chan AS
		SELECT set_name, layer, nrows, i, ma::float8 AS mean_abs, mx::float8 AS max_abs, sq AS sum_sq
		FROM pgquant.calibration_stats, unnest(mean_abs, max_abs, sum_sq) WITH ORDINALITY u(ma, mx, sq, i)
		WHERE set_name IN ('cal-train', 'cal-halves');
	CREATE INDEX ON hflat (set_name, layer, i, j);
	ANALYZE hflat;

	-- X^T X: symmetric, positive semi-definite in every 2 x 2 principal minor, diagonal = sum x^2
	RETURN NEXT is((SELECT count(DISTINCT a.layer) FROM hflat a
					JOIN hflat t ON t.set_name = a.set_name AND t.layer = a.layer AND t.i = a.j AND t.j = a.i
					JOIN hflat d1 ON d1.set_name = a.set_name AND d1.layer = a.layer AND d1.i = a.i AND d1.j = a.i
					JOIN hflat d2 ON d2.set_name = a.set_name AND d2.layer = a.layer AND d2.i = a.j AND d2.j = a.j
					JOIN chan c ON c.set_name = a.set_name AND c.layer = a.layer AND c.i = a.i
					WHERE a.set_name = 'cal-train' AND (a.v <> t.v OR d1.v < 0 OR a.v ^ 2 > d1.v * d2.v * (1 + 1e-5)
						OR abs(d1.v - c.sum_sq) > 1e-5 * c.sum_sq)), 0::bigint,
		'every X^T X is symmetric with H_ii >= 0, H_ij^2 <= H_ii H_jj and diag(H) = sum x^2');
	RETURN NEXT is((SELECT count(*) FROM chan WHERE set_name = 'cal-train' AND
					NOT (mean_abs > 0 AND mean_abs <= max_abs AND mean_abs ^ 2 <= sum_sq / nrows * (1 + 1e-5))), 0::bigint,
		'every channel: 0 < mean |x| <= max |x| and mean |x|^2 <= mean x^2');

	RETURN NEXT is((SELECT count(*) FROM pgquant.calibration_stats h JOIN pgquant.calibration_stats a
				    ON a.set_name = 'cal-train' AND a.layer = h.layer
				    WHERE h.set_name = 'cal-halves' AND h.nrows = a.nrows AND h.max_abs = a.max_abs), 35::bigint,
		'two halves: the row counts and max |x| of one call on all, on all 35 layers');
	RETURN NEXT is((SELECT count(*) FROM chan h JOIN chan a ON a.set_name = 'cal-train' AND a.layer = h.layer AND a.i = h.i
					WHERE h.set_name = 'cal-halves' AND (abs(h.sum_sq - a.sum_sq) > 1e-9 * a.sum_sq
						OR abs(h.mean_abs - a.mean_abs) > 1e-6 * a.mean_abs))
				   + (SELECT count(*) FROM hflat h JOIN hflat a ON a.set_name = 'cal-train' AND a.layer = h.layer AND a.i = h.i AND a.j = h.j
					  JOIN hflat d1 ON d1.set_name = 'cal-train' AND d1.layer = h.layer AND d1.i = h.i AND d1.j = h.i
					  JOIN hflat d2 ON d2.set_name = 'cal-train' AND d2.layer = h.layer AND d2.i = h.j AND d2.j = h.j
					  WHERE h.set_name = 'cal-halves' AND abs(h.v - a.v) > 1e-6 * sqrt(d1.v * d2.v)), 0::bigint,
		'two halves: mean |x|, sum x^2 and X^T X of one call on all, within float rounding');

	-- the statistics drive a quantized layer's output error: tr(E H E^T) / tr(W H W^T), E = W - Q
	CREATE TEMP TABLE wq AS
		SELECT (k - 1) / 64 + 1 AS r, (k - 1) % 64 + 1 AS i, x::float8 AS w, b, (x - y)::float8 AS e
		FROM pgquant.tensors t, generate_series(2, 8, 2) b,
			LATERAL unnest(t.data, dequantize(quantize(t.data, 'hqq', b, 64))) WITH ORDINALITY u(x, y, k)
		WHERE t.model = 'cal-s260k' AND t.name = 'layers.0.attention.wq';
	CREATE TEMP TABLE out_err AS
		SELECT a.b, sum(a.e * h.v * c.e) / sum(a.w * h.v * c.w) AS rel
		FROM wq a JOIN hflat h ON h.set_name = 'cal-train' AND h.layer = 'layers.0.attention.wq' AND h.i = a.i
		JOIN wq c ON c.b = a.b AND c.r = a.r AND c.i = h.j
		GROUP BY a.b;
	RETURN NEXT ok((SELECT count(*) = 4 AND bool_and(rel > 0 AND rel < 1) AND
						   (SELECT bool_and(a.rel > c.rel) FROM out_err a JOIN out_err c ON c.b = a.b + 2)
					FROM out_err),
		format('hqq on layers.0.attention.wq: calibrated output error %s at 2/4/6/8 bits, falling with every width',
			   (SELECT string_agg(round(rel::numeric, 5)::text, ' / ' ORDER BY b) FROM out_err)));

	-- quant_error computes the same output error from the stored statistics
	RETURN NEXT is((SELECT count(*) FROM out_err o, pgquant.tensors t
					WHERE t.model = 'cal-s260k' AND t.name = 'layers.0.attention.wq'
						AND abs((quant_error(t.data, quantize(t.data, 'hqq', o.b, 64), 'cal-train', t.name)).output_error - o.rel)
							< 1e-4 * o.rel), 4::bigint,
		'quant_error(w, q, calibration, layer) gives the output error computed here, at all four widths');
END $$;

SELECT * FROM pg_temp.calibrate_tests();

SELECT * FROM finish();
ROLLBACK;
