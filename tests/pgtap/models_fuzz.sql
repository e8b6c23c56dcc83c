-- pgTAP: mutation fuzzing of the importers.  Each mutated llama2.c checkpoint,
-- tokenizer or safetensors file is either imported or rejected with one of the
-- documented errors; nothing else (a crash would end the session and fail the run).
BEGIN;
SELECT plan(7);

CREATE FUNCTION pg_temp.le32(i int) RETURNS bytea LANGUAGE sql IMMUTABLE AS $$
	SELECT decode(string_agg(lpad(to_hex((i >> (8 * k)) & 255), 2, '0'), '' ORDER BY k), 'hex')
	FROM generate_series(0, 3) k $$;
CREATE FUNCTION pg_temp.le64(i bigint) RETURNS bytea LANGUAGE sql IMMUTABLE AS $$
	SELECT decode(string_agg(lpad(to_hex((i >> (8 * k)) & 255), 2, '0'), '' ORDER BY k), 'hex')
	FROM generate_series(0, 7) k $$;
CREATE FUNCTION pg_temp.lef32(v real[]) RETURNS bytea LANGUAGE sql IMMUTABLE AS $$
	SELECT coalesce(decode(string_agg(substr(h, 7, 2) || substr(h, 5, 2) || substr(h, 3, 2) || substr(h, 1, 2),
									  '' ORDER BY n), 'hex'), '')
	FROM unnest(v) WITH ORDINALITY AS u(x, n), LATERAL encode(float4send(x), 'hex') h $$;

-- seeds: a 1-layer checkpoint (dim 4, hidden 6, 2 heads, 1 kv head, vocab 5, seq 3), its
-- tokenizer, and a safetensors file with F32, F16 and BF16 tensors
CREATE TEMP TABLE seeds (kind text, b bytea);
INSERT INTO seeds VALUES
	('ckpt', pg_temp.le32(4) || pg_temp.le32(6) || pg_temp.le32(1) || pg_temp.le32(2) || pg_temp.le32(1)
		|| pg_temp.le32(5) || pg_temp.le32(3) || pg_temp.lef32(ARRAY(SELECT (k / 16.0)::real FROM generate_series(1, 158) k))),
	('tok', pg_temp.le32(5) || (SELECT string_agg(pg_temp.lef32(ARRAY[-i::real]) || pg_temp.le32(length(p)) || convert_to(p, 'UTF8'), '' ORDER BY i)
		FROM unnest(ARRAY['<unk>', '<s>', '</s>', 'a', 'ab']) WITH ORDINALITY u(p, i))),
	('st', (SELECT pg_temp.le64(octet_length(convert_to(h, 'UTF8'))) || convert_to(h, 'UTF8')
		|| pg_temp.lef32('{1,2,3,4,5,6.5}') || '\x003c00c00038c03f'::bytea
		FROM (SELECT '{"__metadata__": {"format": "pt"}, "w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}, '
					 '"h": {"dtype": "F16", "shape": [3], "data_offsets": [24, 30]}, '
					 '"b": {"dtype": "BF16", "shape": [], "data_offsets": [30, 32]}}' AS h) s));

-- the binary mutation operator (tests/pgtap/lib/mutate.sql), with hostile little-endian words
\ir lib/mutate.sql
CREATE FUNCTION pg_temp.mutate(b bytea) RETURNS bytea LANGUAGE sql AS $$
	SELECT pg_temp.mutate_bytes(b, ARRAY['\xffffff7f', '\x00000080', '\x00000000', '\xffffffff', '\x00010000']::bytea[],
								least(7, length(b) / 4)) $$;

CREATE TEMP TABLE outcomes (kind text, sqlstate text);
SELECT setseed(0.1414);
DO $$
DECLARE
	m bytea;
	ckpt bytea := (SELECT b FROM seeds WHERE kind = 'ckpt');
	tok bytea := (SELECT b FROM seeds WHERE kind = 'tok');
	st bytea := (SELECT b FROM seeds WHERE kind = 'st');
BEGIN
	FOR i IN 1..300 LOOP
		BEGIN
			CASE i % 3
				WHEN 0 THEN
					m := pg_temp.mutate(ckpt);
					PERFORM pgquant.import_llama2c('fuzz', m);
					INSERT INTO outcomes VALUES ('checkpoint', 'ok');
				WHEN 1 THEN
					m := pg_temp.mutate(tok);
					PERFORM pgquant.import_llama2c('fuzz', ckpt, m);
					INSERT INTO outcomes VALUES ('tokenizer', 'ok');
				ELSE
					m := pg_temp.mutate(st);
					PERFORM pgquant.import_safetensors('fuzz', m);
					INSERT INTO outcomes VALUES ('safetensors', 'ok');
			END CASE;
			DELETE FROM pgquant.models WHERE name = 'fuzz';
		EXCEPTION WHEN others THEN
			INSERT INTO outcomes VALUES (CASE i % 3 WHEN 0 THEN 'checkpoint' WHEN 1 THEN 'tokenizer' ELSE 'safetensors' END,
										 SQLSTATE);
		END;
	END LOOP;
END $$;

SELECT is((SELECT count(*) FROM outcomes), 300::bigint, '300 mutated files were tried, the session survived');
SELECT is((SELECT count(*) FROM outcomes WHERE sqlstate NOT IN ('ok', '22P03', '0A000', '54000')), 0::bigint,
	'every rejection is a documented error (22P03 malformed, 0A000 unsupported dtype, 54000 too large)');
SELECT cmp_ok((SELECT count(*) FROM outcomes WHERE kind = 'checkpoint' AND sqlstate = '22P03'), '>', 40::bigint,
	'many mutated checkpoints are rejected as malformed');
SELECT cmp_ok((SELECT count(*) FROM outcomes WHERE kind = 'checkpoint' AND sqlstate = 'ok'), '>', 20::bigint,
	'and mutations that keep a checkpoint valid (a changed weight) import');
SELECT cmp_ok((SELECT count(*) FROM outcomes WHERE kind = 'tokenizer' AND sqlstate = '22P03'), '>', 30::bigint,
	'many mutated tokenizers are rejected as malformed');
SELECT cmp_ok((SELECT count(*) FROM outcomes WHERE kind = 'safetensors' AND sqlstate = '22P03'), '>', 50::bigint,
	'most mutated safetensors files are rejected as malformed');
SELECT is((SELECT count(*) FROM pgquant.models WHERE name = 'fuzz'), 0::bigint, 'no half-imported model is left');

SELECT * FROM finish();
ROLLBACK;
