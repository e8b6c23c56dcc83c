-- pgquant.calibrate on a small generated model: the statistics it stores are checked
-- against a reference forward pass written here in SQL (double precision), and
-- calibrating in two calls against one call over all texts.

-- dim 8, hidden 12, 2 layers, 2 heads, 1 kv head, vocab 270, seq_len 16: 3,224 floats 0.4 cos(1.3 k + 0.2)
CREATE FUNCTION cal_tokenizer() RETURNS bytea LANGUAGE sql IMMUTABLE AS $$
	SELECT tiny_tok(7,
		ARRAY['<unk>', E'\n<s>\n', E'\n</s>\n'] || ARRAY(SELECT format('<0x%s>', upper(lpad(to_hex(b), 2, '0')))
														 FROM generate_series(0, 255) b)
			|| ARRAY[' ', 'a', 'b', 'c', 'ab', 'bc', ' a', ' ab', 'ca', 'abc', '.'],
		array_fill(0::real, ARRAY[259]) || '{-1,-1,-1,-1,-5,-2,-3,-4,-6,-3.5,-1}'::real[]) $$;
SELECT pgquant.import_llama2c('calm',
	le32(8) || le32(12) || le32(2) || le32(2) || le32(1) || le32(270) || le32(16) ||
		lef32(ARRAY(SELECT (0.4 * cos(1.3 * k + 0.2))::real FROM generate_series(0, 3223) k)),
	cal_tokenizer()) AS tensors;

-- the reference: a tensor as float8[] (matrices 2-D), y = W x, rmsnorm(x) * w
CREATE FUNCTION cal_t(name text) RETURNS float8[] LANGUAGE sql STABLE AS $$
	SELECT data::float8[] FROM pgquant.tensors WHERE model = 'calm' AND tensors.name = cal_t.name $$;
CREATE FUNCTION cal_mv(w float8[], x float8[]) RETURNS float8[] LANGUAGE sql IMMUTABLE AS $$
	SELECT array_agg((SELECT sum(w[r][c] * x[c]) FROM generate_subscripts(x, 1) c) ORDER BY r)
	FROM generate_subscripts(w, 1) r $$;
CREATE FUNCTION cal_norm(x float8[], w float8[]) RETURNS float8[] LANGUAGE sql IMMUTABLE AS $$
	SELECT array_agg(w[i] * x[i] / sqrt((SELECT avg(v * v) FROM unnest(x) v) + 1e-5) ORDER BY i)
	FROM generate_subscripts(x, 1) i $$;
CREATE FUNCTION cal_emb(t int) RETURNS float8[] LANGUAGE sql STABLE AS $$
	SELECT array_agg(e[t + 1][k] ORDER BY k) FROM cal_t('tok_embeddings') e, generate_subscripts(e, 2) k $$;
CREATE FUNCTION cal_add(a float8[], b float8[]) RETURNS float8[] LANGUAGE sql IMMUTABLE AS $$
	SELECT array_agg(a[i] + b[i] ORDER BY i) FROM generate_subscripts(a, 1) i $$;

-- the input of every matrix at position 0 (token t): attention over one position is v itself,
-- repeated for the 2 query heads that share the 1 key/value head
CREATE FUNCTION cal_pos0(t int) RETURNS TABLE (layer text, x float8[]) LANGUAGE plpgsql STABLE AS $$
DECLARE
	h float8[] := cal_emb(t);
	a float8[]; o float8[]; f float8[]; g float8[]; u float8[]; v float8[];
BEGIN
	FOR l IN 0..1 LOOP
		a := cal_norm(h, cal_t(format('layers.%s.attention_norm', l)));
		v := cal_mv(cal_t(format('layers.%s.attention.wv', l)), a);
		o := v || v;
		h := cal_add(h, cal_mv(cal_t(format('layers.%s.attention.wo', l)), o));
		f := cal_norm(h, cal_t(format('layers.%s.ffn_norm', l)));
		u := cal_mv(cal_t(format('layers.%s.feed_forward.w1', l)), f);
		v := cal_mv(cal_t(format('layers.%s.feed_forward.w3', l)), f);
		g := (SELECT array_agg(u[i] / (1 + exp(-u[i])) * v[i] ORDER BY i) FROM generate_subscripts(u, 1) i);
		h := cal_add(h, cal_mv(cal_t(format('layers.%s.feed_forward.w2', l)), g));
		RETURN QUERY VALUES (format('layers.%s.attention.wq', l), a), (format('layers.%s.attention.wk', l), a),
			(format('layers.%s.attention.wv', l), a), (format('layers.%s.attention.wo', l), o),
			(format('layers.%s.feed_forward.w1', l), f), (format('layers.%s.feed_forward.w3', l), f),
			(format('layers.%s.feed_forward.w2', l), g);
	END LOOP;
END $$;

-- the empty text is BOS alone: one position, one row per matrix
SELECT pgquant.calibrate('calm', 'bos', ARRAY['']) AS tokens;
SELECT model FROM pgquant.calibration_sets WHERE name = 'bos';
SELECT count(*) AS layers, min(nrows) AS min_rows, max(nrows) AS max_rows,
	count(*) FILTER (WHERE layer LIKE '%w2') AS w2_layers, min(in_features) FILTER (WHERE layer LIKE '%w2') AS w2_width
FROM pgquant.calibration_stats WHERE set_name = 'bos';
-- every statistic of every matrix equals the reference's one row x: |x|, |x|, x^2, x x^T
SELECT r.layer, c.in_features = cardinality(r.x) AS width,
	max(abs(c.mean_abs[i] - abs(r.x[i]))) < 1e-5 AS mean_abs,
	max(abs(c.max_abs[i] - abs(r.x[i]))) < 1e-5 AS max_abs,
	max(abs(c.sum_sq[i] - r.x[i] ^ 2)) < 1e-5 AS sum_sq,
	(SELECT max(abs(c.hessian[i2][j] - r.x[i2] * r.x[j])) FROM generate_subscripts(r.x, 1) i2, generate_subscripts(r.x, 1) j) < 1e-5 AS hessian,
	max(abs(r.x[i])) > 0.01 AS nonzero
FROM cal_pos0(1) r JOIN pgquant.calibration_stats c ON c.set_name = 'bos' AND c.layer = r.layer,
	generate_subscripts(r.x, 1) i
GROUP BY r.layer, c.in_features, c.hessian, r.x ORDER BY r.layer;

-- more positions: layer 0's attention input depends on the token alone, so its statistics
-- are those of rmsnorm(embedding[token]) * attention_norm over the tokens of the text
SELECT pgquant.tokenize('calm', 'abc cab.') AS ids;
SELECT pgquant.calibrate('calm', 'pos', ARRAY['abc cab.']) AS tokens;
WITH x AS (
	SELECT u.o, cal_norm(cal_emb(u.t), cal_t('layers.0.attention_norm')) AS v
	FROM unnest(pgquant.tokenize('calm', 'abc cab.')) WITH ORDINALITY u(t, o)),
ref AS (
	SELECT i, avg(abs(v[i])) AS mean_abs, max(abs(v[i])) AS max_abs, sum(v[i] ^ 2) AS sum_sq
	FROM x, generate_subscripts(v, 1) i GROUP BY i),
refh AS (
	SELECT i, j, sum(a.v[i] * b.v[j]) AS h FROM x a JOIN x b USING (o), generate_subscripts(a.v, 1) i,
		generate_subscripts(a.v, 1) j GROUP BY i, j)
SELECT c.nrows, (SELECT count(*) FROM x) AS ref_rows,
	(SELECT max(abs(c.mean_abs[i] - mean_abs) + abs(c.max_abs[i] - max_abs) + abs(c.sum_sq[i] - sum_sq)) FROM ref) < 1e-5 AS channels_match,
	(SELECT max(abs(c.hessian[i][j] - h)) FROM refh) < 1e-5 AS hessian_matches
FROM pgquant.calibration_stats c WHERE c.set_name = 'pos' AND c.layer = 'layers.0.attention.wq';
-- X^T X is symmetric, its diagonal is sum x^2, and mean |x| <= max |x|, for every matrix
SELECT count(*) AS layers,
	bool_and((SELECT bool_and(hessian[i][j] = hessian[j][i]) FROM generate_subscripts(hessian, 1) i, generate_subscripts(hessian, 1) j)) AS symmetric,
	bool_and((SELECT max(abs(hessian[i][i] - sum_sq[i]) / greatest(sum_sq[i], 1e-6)) FROM generate_subscripts(hessian, 1) i) < 1e-5) AS diag_is_sum_sq,
	bool_and((SELECT bool_and(mean_abs[i] <= max_abs[i] AND mean_abs[i] > 0) FROM generate_subscripts(mean_abs, 1) i)) AS mean_le_max
FROM pgquant.calibration_stats WHERE set_name = 'pos';

-- texts are cut to seq_len = 16 positions; the count returned is the positions run
SELECT cardinality(pgquant.tokenize('calm', repeat('abc. ', 20))) AS long_text_tokens;
SELECT pgquant.calibrate('calm', 'all', ARRAY['abc cab.', repeat('abc. ', 20), 'ba', 'c a b. abc']) AS tokens,
	(SELECT sum(least(cardinality(pgquant.tokenize('calm', t)), 16))
	 FROM unnest(ARRAY['abc cab.', repeat('abc. ', 20), 'ba', 'c a b. abc']) t) AS expected;
-- two calls on two halves add up to one call on all of it
SELECT pgquant.calibrate('calm', 'halves', ARRAY['abc cab.', repeat('abc. ', 20)]) AS first_half;
SELECT pgquant.calibrate('calm', 'halves', ARRAY['ba', 'c a b. abc']) AS second_half;
SELECT count(*) AS layers, bool_and(h.nrows = a.nrows) AS nrows_equal,
	bool_and(h.max_abs = a.max_abs) AS max_abs_equal,
	max((SELECT max(abs(h.mean_abs[i] - a.mean_abs[i]) / a.mean_abs[i]) FROM generate_subscripts(a.mean_abs, 1) i)) < 1e-6 AS mean_abs_close,
	max((SELECT max(abs(h.sum_sq[i] - a.sum_sq[i]) / a.sum_sq[i]) FROM generate_subscripts(a.sum_sq, 1) i)) < 1e-9 AS sum_sq_close,
	max((SELECT max(abs(h.hessian[i][j] - a.hessian[i][j]) / sqrt(a.hessian[i][i] * a.hessian[j][j]))
		 FROM generate_subscripts(a.hessian, 1) i, generate_subscripts(a.hessian, 1) j)) < 1e-6 AS hessian_close
FROM pgquant.calibration_stats h JOIN pgquant.calibration_stats a ON a.set_name = 'all' AND a.layer = h.layer
WHERE h.set_name = 'halves';
-- without the Hessian: the same per-channel statistics, hessian NULL
SELECT pgquant.calibrate('calm', 'nohess', ARRAY['abc cab.', repeat('abc. ', 20), 'ba', 'c a b. abc'], hessian => false) AS tokens;
SELECT count(*) AS layers, bool_and(n.hessian IS NULL) AS no_hessian, bool_and(n.nrows = a.nrows AND n.max_abs = a.max_abs
	AND n.mean_abs = a.mean_abs AND n.sum_sq = a.sum_sq) AS same_channel_stats
FROM pgquant.calibration_stats n JOIN pgquant.calibration_stats a ON a.set_name = 'all' AND a.layer = n.layer
WHERE n.set_name = 'nohess';
-- an existing set made by calibration_create without a model is added to
SELECT pgquant.calibration_create('premade');
SELECT pgquant.calibrate('calm', 'premade', ARRAY['abc']) AS tokens;
SELECT count(*) AS layers, min(nrows) AS nrows, (SELECT model FROM pgquant.calibration_sets WHERE name = 'premade') AS model
FROM pgquant.calibration_stats WHERE set_name = 'premade';

-- errors; a failed call leaves nothing behind
SELECT test_error($$SELECT pgquant.calibrate('nosuch', 'e', ARRAY['a'])$$);
SELECT test_error($$SELECT pgquant.calibrate('tiny', 'e', ARRAY['a'])$$);
SELECT test_error($$SELECT pgquant.calibrate('calm', 'e', '{}')$$);
SELECT test_error($$SELECT pgquant.calibrate('calm', 'e', ARRAY['a', NULL])$$);
SELECT test_error($$SELECT pgquant.calibrate('calm', 'e', ARRAY[['a'], ['b']])$$);
SELECT test_error($$SELECT pgquant.calibrate('calm', 'e', NULL)$$);
SELECT test_error($$SELECT pgquant.calibrate(NULL, 'e', ARRAY['a'])$$);
SELECT test_error($$SELECT pgquant.calibrate('calm', NULL, ARRAY['a'])$$);
SELECT test_error($$SELECT pgquant.calibrate('calm', '', ARRAY['a'])$$);
SELECT test_error($$SELECT pgquant.calibrate('calm', 'e', ARRAY['a'], hessian => NULL)$$);
SELECT test_error($$SELECT pgquant.calibrate('tiny-tok', 'bos', ARRAY['a'])$$);
SELECT test_error($$SELECT pgquant.calibrate('calm', 'all', ARRAY['a'], hessian => false)$$);
SET pgquant.device = 'cuda';
SELECT test_error($$SELECT pgquant.calibrate('calm', 'e', ARRAY['a'])$$);
RESET pgquant.device;
SELECT count(*) AS no_set_e FROM pgquant.calibration_sets WHERE name = 'e';
SELECT nrows AS all_unchanged FROM pgquant.calibration_stats WHERE set_name = 'all' AND layer = 'layers.1.feed_forward.w2';

-- quantize_model with a calibration set: awq and gptq read each matrix's statistics by its
-- name, and every method's report carries the output error over the set's rows
SELECT pgquant.quantize_model('calm', 'calm-rtn3', 'rtn', 3, 4, calibration => 'all') AS rtn,
	pgquant.quantize_model('calm', 'calm-hqq3', 'hqq', 3, 4, calibration => 'all') AS hqq,
	pgquant.quantize_model('calm', 'calm-awq3', 'awq', 3, 4, calibration => 'all') AS awq,
	pgquant.quantize_model('calm', 'calm-gptq3', 'gptq', 3, 4, calibration => 'all') AS gptq;
SELECT model, count(*) AS matrices, count(output_error) AS with_output_error, min(calibration) AS calibration,
	bool_and(output_error > 0 AND output_error < 1) AS output_error_in_0_1, min(group_size) AS group_size
FROM pgquant.quantization_report WHERE model LIKE 'calm-%3' GROUP BY model ORDER BY model;
SELECT name, config->'quantization' AS quantization FROM pgquant.models WHERE name = 'calm-gptq3';
-- the stored layers are quantize()'s with the layer's statistics, and the report is quant_error's
SELECT count(*) AS matrices,
	bool_and(g.q::text = quantize(s.data, 'gptq', 3, 4, calibration => 'all', layer => s.name)::text) AS gptq_same,
	bool_and(a.q::text = quantize(s.data, 'awq', 3, 4, calibration => 'all', layer => s.name)::text) AS awq_same,
	bool_and(r.output_error = (quant_error(s.data, g.q, 'all', s.name)).output_error) AS report_is_quant_error
FROM pgquant.tensors s
JOIN pgquant.tensors g ON g.model = 'calm-gptq3' AND g.name = s.name
JOIN pgquant.tensors a ON a.model = 'calm-awq3' AND a.name = s.name
JOIN pgquant.quantization_report r ON r.model = 'calm-gptq3' AND r.tensor = s.name
WHERE s.model = 'calm' AND g.q IS NOT NULL;
-- the calibrated methods fit the calibration rows better than rtn, layer by layer
SELECT count(*) AS matrices, count(*) FILTER (WHERE g.output_error < r.output_error) AS gptq_below_rtn,
	count(*) FILTER (WHERE a.output_error <= r.output_error) AS awq_not_above_rtn
FROM pgquant.quantization_report r
JOIN pgquant.quantization_report g ON g.model = 'calm-gptq3' AND g.tensor = r.tensor
JOIN pgquant.quantization_report a ON a.model = 'calm-awq3' AND a.tensor = r.tensor
WHERE r.model = 'calm-rtn3';
-- act_order is passed on to gptq; pgquant.calibration names the set when calibration => does not
SELECT pgquant.quantize_model('calm', 'calm-gptq4ao', 'gptq', 4, 4, calibration => 'all', act_order => true) AS act_order;
SELECT bool_and(t.q::text = quantize(s.data, 'gptq', 4, 4, calibration => 'all', layer => s.name, act_order => true)::text) AS same
FROM pgquant.tensors s JOIN pgquant.tensors t ON t.model = 'calm-gptq4ao' AND t.name = s.name
WHERE s.model = 'calm' AND t.q IS NOT NULL;
SET pgquant.calibration = 'halves';
SELECT pgquant.quantize_model('calm', 'calm-guc', 'gptq', 4, 4) AS from_setting;
RESET pgquant.calibration;
SELECT DISTINCT calibration FROM pgquant.quantization_report WHERE model = 'calm-guc';
-- a set collected without X^T X: rtn runs, with no output error to report
SELECT pgquant.quantize_model('calm', 'calm-nohess', 'rtn', 4, 4, calibration => 'nohess') AS rtn_nohess;
SELECT count(*) AS matrices, count(output_error) AS with_output_error
FROM pgquant.quantization_report WHERE model = 'calm-nohess';
-- a set of another model's activations is used by layer name, with a warning
INSERT INTO pgquant.models (name, arch, config) SELECT 'calm-copy', arch, config FROM pgquant.models WHERE name = 'calm';
INSERT INTO pgquant.tokens SELECT 'calm-copy', id, piece, score FROM pgquant.tokens WHERE model = 'calm';
INSERT INTO pgquant.tensors SELECT 'calm-copy', name, shape, dtype, data, q FROM pgquant.tensors WHERE model = 'calm';
SELECT pgquant.quantize_model('calm-copy', 'calm-copy-gptq', 'gptq', 4, 4, calibration => 'all') AS other_models_set;

-- errors, before anything is written
SELECT test_error($$SELECT pgquant.quantize_model('calm', 'x', 'gptq', 4)$$);
SELECT test_error($$SELECT pgquant.quantize_model('calm', 'x', 'awq', 4)$$);
SELECT test_error($$SELECT pgquant.quantize_model('calm', 'x', 'gptq', 4, calibration => 'nosuch')$$);
SELECT test_error($$SELECT pgquant.quantize_model('calm', 'x', 'rtn', 4, calibration => 'nosuch')$$);
SELECT pgquant.calibration_create('partial', model => 'calm');
SELECT pgquant.calibration_add('partial', 'layers.0.attention.wq', array_fill(0.5::real, ARRAY[3, 8]));
SELECT test_error($$SELECT pgquant.quantize_model('calm', 'x', 'gptq', 4, calibration => 'partial')$$);
SELECT test_error($$SELECT pgquant.quantize_model('calm', 'x', 'gptq', 4, calibration => 'nohess')$$);
SELECT test_error($$SELECT pgquant.quantize_model('calm', 'x', 'rtn', 4, act_order => true)$$);
SELECT test_error($$SELECT pgquant.quantize_model('calm', 'x', 'gptq', 4, calibration => 'all', act_order => NULL)$$);
SELECT count(*) AS nothing_left FROM pgquant.models WHERE name = 'x';
