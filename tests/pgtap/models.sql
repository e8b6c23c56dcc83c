-- pgTAP: importing the real stories260K checkpoint and tokenizer as rows, and who may do it.
-- Reads the files on the server from the directory in pgquant_test.data_dir; without it the
-- real-data tests skip.
BEGIN;
SELECT plan(23);

SELECT has_table('pgquant', 'models', 'table pgquant.models exists');
SELECT has_table('pgquant', 'tensors', 'table pgquant.tensors exists');
SELECT has_table('pgquant', 'tokens', 'table pgquant.tokens exists');
SELECT col_is_pk('pgquant', 'tensors', ARRAY['model', 'name'], 'tensors are keyed by (model, name)');
SELECT fk_ok('pgquant', 'tensors', 'model', 'pgquant', 'models', 'name');
SELECT is(
	(SELECT string_agg(p.proname || ':' || p.provolatile::text || p.proparallel::text || CASE WHEN p.proisstrict THEN ':strict' ELSE '' END,
					   ',' ORDER BY p.proname COLLATE "C")
	 FROM pg_proc p WHERE p.pronamespace = 'pgquant'::regnamespace
	 AND p.proname IN ('import_llama2c', 'import_safetensors', 'numel', 'qtensor_numel', 'linear',
					   'tensor_cache', 'cpu_kernels', 'generate', 'perplexity', 'tokenize', 'detokenize',
					   'quantize_model')),
	'cpu_kernels:ss:strict,detokenize:ss:strict,generate:vs,import_llama2c:vu,import_safetensors:vu,linear:ss,'
	'numel:is:strict,perplexity:ss:strict,qtensor_numel:is:strict,quantize_model:vu,tensor_cache:vr,tokenize:ss:strict',
	'labels: writers volatile and unsafe; readers of model rows stable; generate volatile (it samples)');
SELECT is(
	(SELECT string_agg(p.proname || ':' || p.provolatile::text || p.proparallel::text, ',' ORDER BY p.proname COLLATE "C")
	 FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid AND d.classid = 'pg_proc'::regclass
	 JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'pgquant'
	 WHERE p.proname IN ('qlinear', 'qmatmul')),
	'qlinear:ss,qmatmul:ss',
	'qlinear and qmatmul are stable (results follow pgquant.cpu_kernels) and parallel safe');
SELECT ok(ARRAY['models', 'quantization_report', 'tensors', 'tokens'] <@
		  (SELECT array_agg(c.relname::text) FROM pg_extension e, unnest(e.extconfig) r(oid)
		   JOIN pg_class c ON c.oid = r.oid WHERE e.extname = 'pgquant'),
	'the model tables are configuration tables: pg_dump dumps their rows');

-- the SQLSTATE a statement raises, or 'ok'
CREATE FUNCTION pg_temp.sqlstate_of(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE stmt;
	RETURN 'ok';
EXCEPTION WHEN others THEN
	RETURN SQLSTATE;
END $$;

CREATE FUNCTION pg_temp.real_data_tests() RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
	dir text := nullif(current_setting('pgquant_test.data_dir', true), '');
	ckpt bytea;
	tok bytea;
	state text;
	n int;
BEGIN
	IF dir IS NULL THEN
		RETURN NEXT skip('no data directory: set PGQUANT_DATA_DIR to a directory holding stories260K/', 15);
		RETURN;
	END IF;
	ckpt := pg_read_binary_file(dir || '/stories260K/stories260K.bin');
	tok := pg_read_binary_file(dir || '/stories260K/tok512.bin');

	RETURN NEXT is(pgquant.import_llama2c('tap-stories', ckpt, tok), 49,
		'stories260K imports as 49 tensors (5 layers x 9, embedding, final norm, two RoPE tables)');
	RETURN NEXT is((SELECT sum(pgquant.numel(shape)) FROM pgquant.tensors WHERE model = 'tap-stories'), 264128::numeric,
		'all 264,128 floats of the checkpoint are stored');
	RETURN NEXT is((SELECT sum(cardinality(data)) * 4 + 28 FROM pgquant.tensors WHERE model = 'tap-stories'),
		octet_length(ckpt)::bigint, 'header plus stored floats account for every byte of the file');
	RETURN NEXT is((SELECT config - 'format' FROM pgquant.models WHERE name = 'tap-stories'),
		'{"dim": 64, "hidden_dim": 172, "n_layers": 5, "n_heads": 8, "n_kv_heads": 4, "vocab_size": 512,
		  "seq_len": 512, "shared_classifier": true, "norm_eps": 1e-5, "rope_theta": 10000,
		  "max_token_length": 7, "bos_id": 1, "eos_id": 2}'::jsonb, 'the config is the header of SOURCE.md');
	RETURN NEXT is((SELECT shape FROM pgquant.tensors WHERE model = 'tap-stories' AND name = 'layers.4.feed_forward.w2'),
		'{64,172}'::int[], 'w2 is [dim, hidden]');
	RETURN NEXT is((SELECT count(*) FROM pgquant.tokens WHERE model = 'tap-stories'), 512::bigint,
		'the tokenizer has 512 tokens');
	RETURN NEXT is((SELECT sum(octet_length(piece) + 8) + 4 FROM pgquant.tokens WHERE model = 'tap-stories'),
		octet_length(tok)::bigint, 'stored token bytes account for every byte of tok512.bin');
	RETURN NEXT is((SELECT convert_from(piece, 'UTF8') || '|' || score FROM pgquant.tokens
					WHERE model = 'tap-stories' AND id = 300), ' ha|-41', 'token 300 is " ha" with score -41');

	-- the same floats as the harness's independent Perl loader (when it ran)
	IF to_regclass('stories260k') IS NULL THEN
		RETURN NEXT skip('no stories260k table from tests/tools/llama2c_sql.pl', 1);
	ELSE
		RETURN NEXT is((SELECT count(*) FROM stories260k s JOIN pgquant.tensors t
						ON t.model = 'tap-stories' AND t.name = s.name AND t.data = s.w), 36::bigint,
			'the 36 matrices equal, bit for bit, what the Perl loader reads');
	END IF;

	-- who may read the file and write the rows (pgTAP's own temp tables belong to the
	-- caller, so results are collected as the role and reported after RESET ROLE)
	CREATE ROLE pgquant_tap_importer NOLOGIN;
	SET LOCAL ROLE pgquant_tap_importer;
	state := pg_temp.sqlstate_of(format('SELECT pg_read_binary_file(%L)', dir || '/stories260K/stories260K.bin'));
	RESET ROLE;
	RETURN NEXT is(state, '42501', 'an ordinary role may not call pg_read_binary_file');
	-- EXECUTE alone reads only inside the data directory
	GRANT EXECUTE ON FUNCTION pg_read_binary_file(text) TO pgquant_tap_importer;
	SET LOCAL ROLE pgquant_tap_importer;
	state := pg_temp.sqlstate_of(format('SELECT pg_read_binary_file(%L)', dir || '/stories260K/stories260K.bin'));
	RESET ROLE;
	RETURN NEXT is(state, '42501', 'reading a file outside the data directory needs pg_read_server_files');

	GRANT pg_read_server_files TO pgquant_tap_importer;
	SET LOCAL ROLE pgquant_tap_importer;
	state := pg_temp.sqlstate_of(format('SELECT pgquant.import_llama2c(%L, pg_read_binary_file(%L))',
		'tap-mine', dir || '/stories260K/stories260K.bin'));
	RESET ROLE;
	RETURN NEXT is(state, '42501', 'with pg_read_server_files but no privileges on the tables, the import is refused');

	GRANT USAGE ON SCHEMA pgquant TO pgquant_tap_importer;
	GRANT SELECT, INSERT ON pgquant.models, pgquant.tensors, pgquant.tokens TO pgquant_tap_importer;
	SET LOCAL ROLE pgquant_tap_importer;
	n := pgquant.import_llama2c('tap-mine', pg_read_binary_file(dir || '/stories260K/stories260K.bin'));
	RESET ROLE;
	RETURN NEXT is(n, 49, 'with pg_read_server_files and INSERT on the tables, a non-superuser imports');

	REVOKE pg_read_server_files FROM pgquant_tap_importer;
	SET LOCAL ROLE pgquant_tap_importer;
	n := pgquant.import_llama2c('tap-mine2', ckpt);
	RESET ROLE;
	RETURN NEXT is(n, 49, 'importing a bytea sent by the client needs no file privilege');
	RETURN NEXT is((SELECT count(*) FROM pgquant.tensors a JOIN pgquant.tensors b USING (name)
					WHERE a.model = 'tap-stories' AND b.model = 'tap-mine' AND a.data = b.data), 49::bigint,
		'both imports hold the same values');
END $$;

SELECT * FROM pg_temp.real_data_tests();

SELECT * FROM finish();
ROLLBACK;
