-- pgTAP: the whole stories260K model quantized with rtn, hqq, awq and gptq at 3 and 4 bits
-- (groups of 32), awq and gptq on statistics that pgquant.calibrate collects from the
-- first 128 paragraphs of the training head; scored on paragraphs 2-101 of the validation
-- head (docs/benchmarks.md section 7.4 has the full table). Reads the data on the server
-- from pgquant_test.data_dir; without it every test skips.
BEGIN;
SELECT plan(12);

CREATE FUNCTION pg_temp.quantize_model_tests() RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
	dir text := nullif(current_setting('pgquant_test.data_dir', true), '');
	fp32 float8;
	b int;
	m text;
	cmp record;
BEGIN
	IF dir IS NULL THEN
		RETURN NEXT skip('no data directory: set PGQUANT_DATA_DIR to a directory holding stories260K/', 12);
		RETURN;
	END IF;
	PERFORM pgquant.import_llama2c('qm-s260k', pg_read_binary_file(dir || '/stories260K/stories260K.bin'),
		pg_read_binary_file(dir || '/stories260K/tok512.bin'));
	CREATE TEMP TABLE texts AS
		SELECT f, n, btrim(p, E' \n') AS p
		FROM unnest(ARRAY['train', 'valid']) f,
			regexp_split_to_table(pg_read_file(format('%s/stories260K/tinystories_%s_head.txt', dir, f)), '\n\s*\n')
				WITH ORDINALITY AS t(p, n);
	DELETE FROM texts WHERE NOT (f = 'train' AND n BETWEEN 1 AND 128 OR f = 'valid' AND n BETWEEN 2 AND 101);

	RETURN NEXT ok(pgquant.calibrate('qm-s260k', 'qm-train128', ARRAY(SELECT p FROM texts WHERE f = 'train' ORDER BY n)) > 10000,
		'calibrated on 128 training paragraphs');

	-- every method at 3 and 4 bits, each scored on the validation paragraphs
	CREATE TEMP TABLE scores (method text, bits int, nll float8, out_err float8, matrices int);
	FOREACH b IN ARRAY ARRAY[3, 4] LOOP
		FOREACH m IN ARRAY ARRAY['rtn', 'hqq', 'awq', 'gptq'] LOOP
			INSERT INTO scores (method, bits, matrices)
			VALUES (m, b, pgquant.quantize_model('qm-s260k', format('qm-%s%s', m, b), m, b, 32, calibration => 'qm-train128'));
		END LOOP;
	END LOOP;
	UPDATE scores s SET
		out_err = (SELECT avg(output_error) FROM pgquant.quantization_report WHERE model = format('qm-%s%s', s.method, s.bits)),
		nll = (SELECT sum(r.nats_per_token * r.tokens) / sum(r.tokens)
			   FROM texts, pgquant.perplexity(format('qm-%s%s', s.method, s.bits), p) r WHERE f = 'valid');
	SELECT sum(r.nats_per_token * r.tokens) / sum(r.tokens) INTO fp32
	FROM texts, pgquant.perplexity('qm-s260k', p) r WHERE f = 'valid';

	RETURN NEXT is((SELECT count(*) FROM scores WHERE matrices = 35), 8::bigint, 'eight models, 35 matrices each');
	RETURN NEXT is((SELECT count(*) FROM pgquant.quantization_report
					WHERE model LIKE 'qm-%' AND calibration = 'qm-train128' AND output_error > 0 AND group_size = 32),
		280::bigint, 'every report row has its output error on the calibration set');
	RETURN NEXT ok(abs(fp32 - 1.427) < 0.002, format('fp32: %s nats/token', round(fp32::numeric, 4)));
	RETURN NEXT ok((SELECT bool_and(nll > fp32) FROM scores), 'every quantized model scores worse than fp32');

	-- the papers' ordering, on real activations: awq and gptq below rtn at 3 and 4 bits, in the
	-- layers' output error and in the model's loss (its increase over fp32). Bounds: 0.02-0.06
	-- above the worst of four calibration sets (docs/benchmarks.md section 7.4); awq's 4-bit
	-- gain in loss is the smallest and varies most with the calibration sample
	FOR cmp IN
		SELECT c.method, c.bits, c.out_err / t.out_err AS out_ratio, (c.nll - fp32) / (t.nll - fp32) AS nll_ratio,
			c.nll, t.nll AS rtn_nll, bound.nll_ratio AS nll_bound
		FROM (VALUES ('awq', 3, 0.75), ('gptq', 3, 0.8), ('awq', 4, 0.95), ('gptq', 4, 0.65)) bound (method, bits, nll_ratio)
		JOIN scores c USING (method, bits) JOIN scores t ON t.method = 'rtn' AND t.bits = c.bits
		ORDER BY c.bits, c.method
	LOOP
		RETURN NEXT ok(cmp.out_ratio < 0.8 AND cmp.nll_ratio < cmp.nll_bound,
			format('%s %s-bit: mean output error %s of rtn''s (< 0.8), loss increase %s of rtn''s (< %s): %s vs %s nats/token',
				   cmp.method, cmp.bits, round(cmp.out_ratio::numeric, 2), round(cmp.nll_ratio::numeric, 2), cmp.nll_bound,
				   round(cmp.nll::numeric, 4), round(cmp.rtn_nll::numeric, 4)));
	END LOOP;
	-- hqq, calibration-free, still lowers the output error; 3 bits cost more than 4
	RETURN NEXT ok((SELECT bool_and(h.out_err < t.out_err) FROM scores h JOIN scores t ON t.method = 'rtn' AND t.bits = h.bits
					WHERE h.method = 'hqq'), 'hqq: mean output error below rtn''s at 3 and 4 bits');
	RETURN NEXT ok((SELECT bool_and(a.nll > c.nll AND a.out_err > c.out_err)
					FROM scores a JOIN scores c ON c.method = a.method AND c.bits = 4 WHERE a.bits = 3),
		'every method loses more at 3 bits than at 4');
	-- the quantized models still tell the story
	RETURN NEXT is(left(pgquant.generate('qm-gptq4', max_tokens => 60), 53), 'Once upon a time, there was a little girl named Lily.',
		'the 4-bit gptq model begins the story as fp32 does');
END $$;

SELECT * FROM pg_temp.quantize_model_tests();

SELECT * FROM finish();
ROLLBACK;
