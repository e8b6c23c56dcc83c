-- pgTAP: the whole stories260K model in the database, fp32 and quantized.
-- Reads the checkpoint, tokenizer and validation text on the server from the directory in
-- pgquant_test.data_dir; without it every test skips.
BEGIN;
SELECT plan(22);

CREATE FUNCTION pg_temp.inference_tests() RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
	dir text := nullif(current_setting('pgquant_test.data_dir', true), '');
	-- llama2.c doc/stories260K.md: ./run stories260K.bin -z tok512.bin -t 0.0 (256 steps)
	published CONSTANT text :=
		'Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball. She wanted to play with it, but it was too high.' || E'\n' ||
		'Lily''s mom said, "Lily, let''s go to the park." Lily was sad and didn''t know what to do. She said, "I want to play with your ball, but I can''t find it."' || E'\n' ||
		'Lily was sad and didn''t know what to do. She said, "I''m sorry, Lily. I didn''t know what to do."' || E'\n' ||
		'Lily didn''t want to help her mom, so she said, "I''m sorry, mom. I didn''t know what to do." Her mom said, "Don''t worry, Lily. We can help you.';
	fp32 float8;
	q8 float8;
	q4 float8;
	nf4 float8;
	q4ref float8;
	ntok bigint;
	s1 text;
	s2 text;
BEGIN
	IF dir IS NULL THEN
		RETURN NEXT skip('no data directory: set PGQUANT_DATA_DIR to a directory holding stories260K/', 22);
		RETURN;
	END IF;
	PERFORM pgquant.import_llama2c('tap-s260k', pg_read_binary_file(dir || '/stories260K/stories260K.bin'),
		pg_read_binary_file(dir || '/stories260K/tok512.bin'));

	-- generation
	RETURN NEXT is(pgquant.generate('tap-s260k', max_tokens => 256), published,
		'greedy generation reproduces llama2.c''s published stories260K sample token for token');
	RETURN NEXT is(left(pgquant.generate('tap-s260k', 'Once upon a time', max_tokens => 20), 16), 'Once upon a time',
		'the output starts with the prompt');
	RETURN NEXT is(pgquant.generate('tap-s260k', 'Once upon a time', max_tokens => 0), 'Once upon a time',
		'max_tokens 0 gives the prompt back');
	s1 := pgquant.generate('tap-s260k', max_tokens => 80, temperature => 1.0, seed => 133742, top_p => 0.9);
	s2 := pgquant.generate('tap-s260k', max_tokens => 80, temperature => 1.0, seed => 133742, top_p => 0.9);
	RETURN NEXT ok(s1 = s2 AND s1 <> left(published, length(s1)), 'sampling with a seed is repeatable, and differs from greedy');
	RETURN NEXT isnt(pgquant.generate('tap-s260k', max_tokens => 80, temperature => 1.0, seed => 1),
		pgquant.generate('tap-s260k', max_tokens => 80, temperature => 1.0, seed => 2), 'different seeds give different samples');

	-- the tokenizer on real text
	CREATE TEMP TABLE valid AS
		SELECT n, btrim(p, E' \n') AS p
		FROM regexp_split_to_table(convert_from(pg_read_binary_file(dir || '/stories260K/tinystories_valid_head.txt'), 'UTF8'),
								   '\n\s*\n') WITH ORDINALITY AS t(p, n);
	DELETE FROM valid WHERE n NOT BETWEEN 2 AND 101;
	RETURN NEXT is((SELECT count(*) FROM valid WHERE pgquant.detokenize('tap-s260k', pgquant.tokenize('tap-s260k', p)) = p),
		100::bigint, 'detokenize(tokenize(p)) = p for the 100 paragraphs');
	RETURN NEXT is(pgquant.tokenize('tap-s260k', 'Once upon a time'), '{1,403,407,261,378}'::int[],
		'"Once upon a time" is BOS + 4 tokens');

	-- perplexity, fp32: SOURCE.md's 1.427 nats/token over 9,602 tokens
	SELECT sum(r.tokens), sum(r.nats_per_token * r.tokens) / sum(r.tokens) INTO ntok, fp32
	FROM valid, pgquant.perplexity('tap-s260k', p) r;
	RETURN NEXT is(ntok, 9602::bigint, 'paragraphs 2-101 of the validation head are 9,602 tokens');
	RETURN NEXT ok(abs(fp32 - 1.427) < 0.002, format('fp32: %s nats/token, 1.427 expected', round(fp32::numeric, 4)));

	-- quantized copies
	RETURN NEXT is(pgquant.quantize_model('tap-s260k', 'tap-q8', 'rtn', 8), 35, 'rtn 8-bit: 35 matrices quantized');
	RETURN NEXT is(pgquant.quantize_model('tap-s260k', 'tap-q4', 'rtn', 4), 35, 'rtn 4-bit (groups of 128)');
	RETURN NEXT is(pgquant.quantize_model('tap-s260k', 'tap-nf4', 'nf4', 4), 35, 'nf4 (groups of 64)');
	RETURN NEXT is((SELECT round(avg(rel_error)::numeric, 4) FROM pgquant.quantization_report WHERE model = 'tap-q4'),
		0.0918, 'the report of rtn 4-bit: mean relative error 0.0918 over 35 matrices');
	RETURN NEXT is((SELECT count(*) FROM pgquant.tensors WHERE model = 'tap-q4' AND q IS NOT NULL AND data IS NULL),
		35::bigint, 'the quantized model stores the 35 matrices as qtensors only');
	SELECT sum(r.nats_per_token * r.tokens) / sum(r.tokens) INTO q8 FROM valid, pgquant.perplexity('tap-q8', p) r;
	SELECT sum(r.nats_per_token * r.tokens) / sum(r.tokens) INTO q4 FROM valid, pgquant.perplexity('tap-q4', p) r;
	SELECT sum(r.nats_per_token * r.tokens) / sum(r.tokens) INTO nf4 FROM valid, pgquant.perplexity('tap-nf4', p) r;
	RETURN NEXT ok(abs(q8 - fp32) < 0.005 * fp32,
		format('8-bit: %s nats/token, within 0.5%% of fp32 %s', round(q8::numeric, 4), round(fp32::numeric, 4)));
	RETURN NEXT ok(q4 > fp32 AND q4 < 1.10 * fp32,
		format('4-bit: %s nats/token, above fp32 and within 10%% of it', round(q4::numeric, 4)));
	RETURN NEXT ok(nf4 > fp32 AND nf4 < 1.10 * fp32,
		format('nf4: %s nats/token, above fp32 and within 10%% of it', round(nf4::numeric, 4)));
	RETURN NEXT ok(q8 < q4, 'fewer bits, more loss: 8-bit beats 4-bit');

	-- the SIMD kernels give the reference's answer on the whole model
	PERFORM set_config('pgquant.cpu_kernels', 'ref', true);
	SELECT sum(r.nats_per_token * r.tokens) / sum(r.tokens) INTO q4ref FROM valid, pgquant.perplexity('tap-q4', p) r;
	PERFORM set_config('pgquant.cpu_kernels', 'auto', true);
	RETURN NEXT ok(abs(q4ref - q4) < 1e-5, format('4-bit perplexity with the reference kernels equals the fast ones (%s vs %s)',
		q4ref, q4));
	RETURN NEXT is(left(pgquant.generate('tap-q4', max_tokens => 60), 53), 'Once upon a time, there was a little girl named Lily.',
		'the 4-bit model still begins the story the same way');

	-- a changed tensor is seen at once (the cache checks the row version)
	UPDATE pgquant.tensors SET q = quantize(dequantize(q), 'rtn', 2) WHERE model = 'tap-q4' AND name = 'layers.0.attention.wq';
	RETURN NEXT ok((SELECT sum(r.nats_per_token * r.tokens) / sum(r.tokens) FROM valid, pgquant.perplexity('tap-q4', p) r) > q4,
		'after a layer is re-quantized to 2 bits, perplexity rises at once');
	-- and the fp32 model is untouched by all this
	RETURN NEXT is(pgquant.generate('tap-s260k', max_tokens => 256), published, 'the fp32 model still gives the sample');
END $$;

SELECT * FROM pg_temp.inference_tests();

SELECT * FROM finish();
ROLLBACK;
