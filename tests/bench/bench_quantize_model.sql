-- The whole stories260K model quantized with rtn, hqq, awq and gptq at 2, 3, 4 and 8 bits
-- (docs/benchmarks.md section 7.4), all in one run:
--  1. pgquant.calibrate on paragraphs 1-128 of the training head (the set awq and gptq use,
--     and the rows every output error is measured on);
--  2. pgquant.quantize_model per method and width, groups of 32, asymmetric: the mean over
--     the 35 matrices of the relative output error, and the model's mean loss (nats per
--     token) on paragraphs 2-101 of the validation head, each against rtn of the same width;
--  3. the output error of every matrix at 3 and 4 bits;
--  4. how much the results move with the calibration sample: three more sets (paragraphs
--     1-32, 129-256, 1-512).
-- Run: psql -X -v datadir=/path/to/data -f tests/bench/bench_quantize_model.sql   (pgquant installed)
-- Everything it creates is removed at the end.
\set ON_ERROR_STOP on
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pgquant;

DELETE FROM pgquant.models WHERE name LIKE 'bench-qm%';
DELETE FROM pgquant.calibration_sets WHERE name LIKE 'bench-qm%';
SELECT pgquant.import_llama2c('bench-qm', pg_read_binary_file(:'datadir' || '/stories260K/stories260K.bin'),
	pg_read_binary_file(:'datadir' || '/stories260K/tok512.bin')) AS tensors;
CREATE TEMP TABLE texts AS
	SELECT f, n, btrim(p, E' \n') AS p
	FROM unnest(ARRAY['train', 'valid']) f,
		regexp_split_to_table(pg_read_file(format('%s/stories260K/tinystories_%s_head.txt', :'datadir', f)), '\n\s*\n')
			WITH ORDINALITY AS t(p, n);
DELETE FROM texts WHERE NOT (f = 'train' AND n <= 512 OR f = 'valid' AND n BETWEEN 2 AND 101);

-- the model's mean loss over the validation paragraphs, weighted by tokens
CREATE FUNCTION pg_temp.valid_nll(model text) RETURNS float8 LANGUAGE sql AS $$
	SELECT sum(r.nats_per_token * r.tokens) / sum(r.tokens)
	FROM texts, pgquant.perplexity(model, p) r WHERE f = 'valid' $$;

-- 1. calibration sets
CREATE TEMP TABLE sets (name text, first int, last int, positions bigint, seconds float8);
INSERT INTO sets (name, first, last) VALUES
	('bench-qm-1-128', 1, 128), ('bench-qm-1-32', 1, 32), ('bench-qm-129-256', 129, 256), ('bench-qm-1-512', 1, 512);
DO $$
DECLARE
	s record;
	t0 timestamptz;
	n bigint;
BEGIN
	FOR s IN SELECT * FROM sets LOOP
		t0 := clock_timestamp();
		n := pgquant.calibrate('bench-qm', s.name, ARRAY(SELECT p FROM texts WHERE f = 'train' AND texts.n BETWEEN s.first AND s.last ORDER BY texts.n));
		UPDATE sets SET positions = n, seconds = extract(epoch FROM clock_timestamp() - t0) WHERE name = s.name;
	END LOOP;
END $$;
SELECT name AS calibration_set, first || '-' || last AS train_paragraphs, positions, round(seconds::numeric, 2) AS seconds
FROM sets ORDER BY first, last;

-- 2. every method and width on the main set
CREATE TEMP TABLE runs (set_name text, method text, bits int, model text, seconds float8, out_err float8, rel_err float8, nll float8);
DO $$
DECLARE
	m text;
	b int;
	s text;
	t0 timestamptz;
	name text;
BEGIN
	FOREACH s IN ARRAY ARRAY['bench-qm-1-128', 'bench-qm-1-32', 'bench-qm-129-256', 'bench-qm-1-512'] LOOP
		FOREACH b IN ARRAY ARRAY[2, 3, 4, 8] LOOP
			FOREACH m IN ARRAY ARRAY['rtn', 'hqq', 'awq', 'gptq', 'gptq act-order'] LOOP
				-- the other sets: only the calibrated methods (and rtn's output error on their rows), at 3 and 4 bits
				CONTINUE WHEN s <> 'bench-qm-1-128' AND (b NOT IN (3, 4) OR m IN ('hqq', 'gptq act-order'));
				name := format('%s-%s-%s', s, replace(m, ' ', '-'), b);
				t0 := clock_timestamp();
				PERFORM pgquant.quantize_model('bench-qm', name, split_part(m, ' ', 1), b, 32, calibration => s,
											   act_order => m = 'gptq act-order');
				INSERT INTO runs (set_name, method, bits, model, seconds)
				VALUES (s, m, b, name, extract(epoch FROM clock_timestamp() - t0));
			END LOOP;
		END LOOP;
	END LOOP;
END $$;
UPDATE runs SET out_err = r.o, rel_err = r.w
FROM (SELECT model, avg(output_error) AS o, avg(rel_error) AS w FROM pgquant.quantization_report GROUP BY model) r
WHERE r.model = runs.model;
UPDATE runs SET nll = pg_temp.valid_nll(model);
CREATE TEMP TABLE fp32 AS SELECT pg_temp.valid_nll('bench-qm') AS nll;

\echo 'fp32 loss on the validation paragraphs (nats per token):'
SELECT round(nll::numeric, 4) AS fp32_nll, round(exp(nll)::numeric, 3) AS fp32_perplexity FROM fp32;
\echo 'calibration set 1-128, groups of 32: mean over 35 matrices, loss, and ratios to rtn of the same width'
SELECT r.bits, r.method, round(r.out_err::numeric, 5) AS output_error, round((r.out_err / t.out_err)::numeric, 2) AS out_vs_rtn,
	round(r.rel_err::numeric, 4) AS weight_error, round(r.nll::numeric, 4) AS nll, round(exp(r.nll)::numeric, 3) AS perplexity,
	round(((r.nll - f.nll) / (t.nll - f.nll))::numeric, 2) AS loss_increase_vs_rtn, round(r.seconds::numeric, 2) AS quantize_s
FROM runs r JOIN runs t ON t.set_name = r.set_name AND t.method = 'rtn' AND t.bits = r.bits, fp32 f
WHERE r.set_name = 'bench-qm-1-128'
ORDER BY r.bits, array_position(ARRAY['rtn', 'hqq', 'awq', 'gptq', 'gptq act-order'], r.method);

-- 3. every matrix at 3 and 4 bits
\echo 'output error per matrix, calibration set 1-128, groups of 32'
SELECT e.tensor, e.shape,
	round(max(e.output_error) FILTER (WHERE r.bits = 3 AND r.method = 'rtn')::numeric, 5) AS rtn3,
	round(max(e.output_error) FILTER (WHERE r.bits = 3 AND r.method = 'hqq')::numeric, 5) AS hqq3,
	round(max(e.output_error) FILTER (WHERE r.bits = 3 AND r.method = 'awq')::numeric, 5) AS awq3,
	round(max(e.output_error) FILTER (WHERE r.bits = 3 AND r.method = 'gptq')::numeric, 5) AS gptq3,
	round(max(e.output_error) FILTER (WHERE r.bits = 4 AND r.method = 'rtn')::numeric, 5) AS rtn4,
	round(max(e.output_error) FILTER (WHERE r.bits = 4 AND r.method = 'hqq')::numeric, 5) AS hqq4,
	round(max(e.output_error) FILTER (WHERE r.bits = 4 AND r.method = 'awq')::numeric, 5) AS awq4,
	round(max(e.output_error) FILTER (WHERE r.bits = 4 AND r.method = 'gptq')::numeric, 5) AS gptq4
FROM runs r JOIN pgquant.quantization_report e ON e.model = r.model
WHERE r.set_name = 'bench-qm-1-128' AND r.bits IN (3, 4)
GROUP BY e.tensor, e.shape ORDER BY e.tensor;
\echo 'matrices where each method beats rtn of the same width (of 35)'
SELECT r.bits, r.method, count(*) FILTER (WHERE e.output_error < b.output_error) AS output_error_below_rtn
FROM runs r JOIN pgquant.quantization_report e ON e.model = r.model
JOIN runs t ON t.set_name = r.set_name AND t.method = 'rtn' AND t.bits = r.bits
JOIN pgquant.quantization_report b ON b.model = t.model AND b.tensor = e.tensor
WHERE r.set_name = 'bench-qm-1-128' AND r.method <> 'rtn'
GROUP BY r.bits, r.method ORDER BY r.bits, r.method;

-- 4. the calibration sample
\echo 'awq and gptq over four calibration sets: ratios to rtn (output error on the same set''s rows)'
SELECT r.bits, r.method, r.set_name AS calibration_set, round((r.out_err / t.out_err)::numeric, 2) AS out_vs_rtn,
	round(r.nll::numeric, 4) AS nll, round(((r.nll - f.nll) / (t.nll - f.nll))::numeric, 2) AS loss_increase_vs_rtn
FROM runs r JOIN runs t ON t.set_name = r.set_name AND t.method = 'rtn' AND t.bits = r.bits, fp32 f
WHERE r.bits IN (3, 4) AND r.method IN ('awq', 'gptq')
ORDER BY r.bits, r.method, r.set_name;

DELETE FROM pgquant.models WHERE name LIKE 'bench-qm%';
DELETE FROM pgquant.calibration_sets WHERE name LIKE 'bench-qm%';
