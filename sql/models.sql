-- models as rows: the llama2.c and safetensors importers, the tables and their checks.
-- The files are built here byte by byte, so every field of the formats is exercised.

-- little-endian encodings of int32, int64 and float32 (the *send functions are big-endian)
CREATE FUNCTION le32(i int) RETURNS bytea LANGUAGE sql IMMUTABLE AS $$
	SELECT decode(string_agg(lpad(to_hex((i >> (8 * k)) & 255), 2, '0'), '' ORDER BY k), 'hex')
	FROM generate_series(0, 3) k $$;
CREATE FUNCTION le64(i bigint) RETURNS bytea LANGUAGE sql IMMUTABLE AS $$
	SELECT decode(string_agg(lpad(to_hex((i >> (8 * k)) & 255), 2, '0'), '' ORDER BY k), 'hex')
	FROM generate_series(0, 7) k $$;
CREATE FUNCTION lef32(v real[]) RETURNS bytea LANGUAGE sql IMMUTABLE AS $$
	SELECT coalesce(decode(string_agg(substr(h, 7, 2) || substr(h, 5, 2) || substr(h, 3, 2) || substr(h, 1, 2),
									  '' ORDER BY n), 'hex'), '')
	FROM unnest(v) WITH ORDINALITY AS u(x, n), LATERAL encode(float4send(x), 'hex') h $$;

-- a llama2.c checkpoint: header, then n floats whose value is their index / 8
CREATE FUNCTION tiny_llama2c(dim int, hidden int, layers int, heads int, kv int, vocab int, seq int,
							 extra int DEFAULT 0) RETURNS bytea LANGUAGE sql IMMUTABLE AS $$
	SELECT le32(dim) || le32(hidden) || le32(layers) || le32(heads) || le32(kv) || le32(vocab) || le32(seq) ||
		lef32(ARRAY(SELECT (k / 8.0)::real FROM generate_series(0,
			abs(vocab) * dim * (CASE WHEN vocab < 0 THEN 2 ELSE 1 END)
			+ layers * (2 * dim + 2 * dim * dim + 2 * (dim / heads * kv) * dim + 3 * hidden * dim)
			+ dim + seq * (dim / heads) - 1 + extra) k)) $$;

-- the tiny model: dim 4, hidden 6, 1 layer, 2 heads, 1 kv head, vocab 5, seq 3: 158 floats
SELECT octet_length(tiny_llama2c(4, 6, 1, 2, 1, 5, 3)) AS bytes;
SELECT pgquant.import_llama2c('tiny', tiny_llama2c(4, 6, 1, 2, 1, 5, 3)) AS tensors;
SELECT name, arch, config, parent FROM pgquant.models WHERE name = 'tiny';
-- each tensor starts where the previous one ended (first value = float offset / 8)
SELECT name, shape, dtype, array_dims(data) AS dims, data[1:1] AS first_row
FROM pgquant.tensors WHERE model = 'tiny' ORDER BY data[1] NULLS FIRST, name;
SELECT (SELECT data FROM pgquant.tensors WHERE model = 'tiny' AND name = 'layers.0.attention.wk')
	= '{{5,5.125,5.25,5.375},{5.5,5.625,5.75,5.875}}'::real[] AS wk_exact;
SELECT sum(pgquant.numel(shape)) AS floats FROM pgquant.tensors WHERE model = 'tiny';

-- a negative vocabulary size means a separate classifier, stored as "output"
SELECT pgquant.import_llama2c('tiny-unshared', tiny_llama2c(4, 6, 1, 2, 1, -5, 3)) AS tensors;
SELECT config->'shared_classifier' AS shared, config->'vocab_size' AS vocab
FROM pgquant.models WHERE name = 'tiny-unshared';
SELECT shape, data[1][1] AS first FROM pgquant.tensors WHERE model = 'tiny-unshared' AND name = 'output';

-- a tokenizer: max_token_length, then per token score, length, bytes
CREATE FUNCTION tiny_tok(maxlen int, pieces text[], scores real[]) RETURNS bytea LANGUAGE sql IMMUTABLE AS $$
	SELECT le32(maxlen) || coalesce(string_agg(lef32(ARRAY[s]) || le32(octet_length(convert_to(p, 'UTF8')))
		|| convert_to(p, 'UTF8'), '' ORDER BY n), '')
	FROM unnest(pieces, scores) WITH ORDINALITY AS t(p, s, n) $$;
SELECT pgquant.import_llama2c('tiny-tok', tiny_llama2c(4, 6, 1, 2, 1, 5, 3),
	tiny_tok(5, '{<unk>,<s>,</s>,a,ab}', '{0,0,0,-1,-2.5}')) AS tensors;
SELECT id, convert_from(piece, 'UTF8') AS piece, score FROM pgquant.tokens WHERE model = 'tiny-tok' ORDER BY id;
SELECT config->'max_token_length' AS max_len FROM pgquant.models WHERE name = 'tiny-tok';

-- bad checkpoints: nothing is written, and the detail says what is wrong
SELECT test_error($$SELECT pgquant.import_llama2c('bad', NULL)$$);
SELECT test_error($$SELECT pgquant.import_llama2c(NULL, '\x00')$$);
SELECT test_error($$SELECT pgquant.import_llama2c('', tiny_llama2c(4, 6, 1, 2, 1, 5, 3))$$);
SELECT test_error($$SELECT pgquant.import_llama2c('tiny', tiny_llama2c(4, 6, 1, 2, 1, 5, 3))$$);
SELECT test_error($$SELECT pgquant.import_llama2c('bad', '\x0400000006000000')$$);
SELECT test_error($$SELECT pgquant.import_llama2c('bad', substr(tiny_llama2c(4, 6, 1, 2, 1, 5, 3), 1, 600))$$);
SELECT test_error($$SELECT pgquant.import_llama2c('bad', tiny_llama2c(4, 6, 1, 2, 1, 5, 3, extra => 1))$$);
SELECT test_error($$SELECT pgquant.import_llama2c('bad', tiny_llama2c(4, 6, 1, 3, 1, 5, 3))$$);
SELECT test_error($$SELECT pgquant.import_llama2c('bad', tiny_llama2c(4, 6, 1, 2, 3, 5, 3))$$);
SELECT test_error($$SELECT pgquant.import_llama2c('bad', tiny_llama2c(6, 6, 1, 2, 1, 5, 3))$$);
SELECT test_error($$SELECT pgquant.import_llama2c('bad', tiny_llama2c(4, 6, 0, 2, 1, 5, 3))$$);
SELECT test_error($$SELECT pgquant.import_llama2c('bad', tiny_llama2c(4, 6, 1, 2, 1, 0, 3))$$);
SELECT test_error($$SELECT pgquant.import_llama2c('bad', tiny_llama2c(4, -6, 1, 2, 1, 5, 3))$$);
SELECT test_error($$SELECT pgquant.import_llama2c('bad', le32(4) || le32(6) || le32(1) || le32(2) || le32(1)
	|| le32(-2147483648) || le32(3))$$);
SELECT test_error($$SELECT pgquant.import_llama2c('bad', le32(65536) || le32(1048576) || le32(1024) || le32(2)
	|| le32(1) || le32(1048576) || le32(1048576))$$);
-- a NaN inside: float 40 (the first of wk) replaced
SELECT test_error($$SELECT pgquant.import_llama2c('bad', overlay(tiny_llama2c(4, 6, 1, 2, 1, 5, 3)
	PLACING lef32('{NaN}') FROM 28 + 40 * 4 + 1))$$);
-- bad tokenizers
SELECT test_error($$SELECT pgquant.import_llama2c('bad', tiny_llama2c(4, 6, 1, 2, 1, 5, 3), '\x0300')$$);
SELECT test_error($$SELECT pgquant.import_llama2c('bad', tiny_llama2c(4, 6, 1, 2, 1, 5, 3),
	tiny_tok(0, '{a,b,c,d,e}', '{0,0,0,0,0}'))$$);
SELECT test_error($$SELECT pgquant.import_llama2c('bad', tiny_llama2c(4, 6, 1, 2, 1, 5, 3),
	tiny_tok(3, '{a,b,c,d}', '{0,0,0,0}'))$$);
SELECT test_error($$SELECT pgquant.import_llama2c('bad', tiny_llama2c(4, 6, 1, 2, 1, 5, 3),
	tiny_tok(3, '{a,b,c,d,e,f}', '{0,0,0,0,0,0}'))$$);
SELECT test_error($$SELECT pgquant.import_llama2c('bad', tiny_llama2c(4, 6, 1, 2, 1, 5, 3),
	tiny_tok(3, '{a,b,c,d,long}', '{0,0,0,0,0}'))$$);
SELECT test_error($$SELECT pgquant.import_llama2c('bad', tiny_llama2c(4, 6, 1, 2, 1, 5, 3),
	tiny_tok(3, '{a,b,c,d,e}', '{0,0,Infinity,0,0}'))$$);
SELECT test_error($$SELECT pgquant.import_llama2c('bad', tiny_llama2c(4, 6, 1, 2, 1, 5, 3),
	substr(tiny_tok(3, '{a,b,c,d,e}', '{0,0,0,0,0}'), 1, 40))$$);
SELECT count(*) AS nothing_written FROM pgquant.models WHERE name = 'bad';

-- safetensors: 8-byte header length, JSON header, data
CREATE FUNCTION st_file(header text, data bytea) RETURNS bytea LANGUAGE sql IMMUTABLE AS $$
	SELECT le64(octet_length(convert_to(header, 'UTF8'))) || convert_to(header, 'UTF8') || data $$;
-- F32 2x3 at 0..24, F16 [3] at 24..30 (1, -2, 0.5), BF16 scalar at 30..32 (1.5), an empty F32 [0, 4]
SELECT pgquant.import_safetensors('st', st_file(
	'{"__metadata__": {"format": "pt", "note": "tiny"},
	  "w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
	  "h": {"dtype": "F16", "shape": [3], "data_offsets": [24, 30]},
	  "b": {"dtype": "BF16", "shape": [], "data_offsets": [30, 32]},
	  "e": {"dtype": "F32", "shape": [0, 4], "data_offsets": [32, 32]}}',
	lef32('{1,2,3,4,5,6.5}') || '\x003c00c00038c03f'::bytea)) AS tensors;
SELECT name, arch, config FROM pgquant.models WHERE name = 'st';
SELECT name, shape, dtype, data FROM pgquant.tensors WHERE model = 'st' ORDER BY name;
-- arch and config from the caller; config wins over the file
SELECT pgquant.import_safetensors('st2', st_file('{"__metadata__": {"a": "b"}, "x": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}',
	lef32('{7}')), arch => 'llama', config => '{"dim": 1, "format": "mine"}') AS tensors;
SELECT arch, config FROM pgquant.models WHERE name = 'st2';
-- a header padded with spaces (allowed by the format) and no metadata
SELECT pgquant.import_safetensors('st3', st_file('{"x": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]}}   ',
	'\x80bf0040'::bytea)) AS tensors;
SELECT data FROM pgquant.tensors WHERE model = 'st3';

-- bad safetensors files
SELECT test_error($$SELECT pgquant.import_safetensors('bad', '\x0100')$$);
SELECT test_error($$SELECT pgquant.import_safetensors('bad', le64(100) || '\x7b7d'::bytea)$$);
SELECT test_error($$SELECT pgquant.import_safetensors('bad', le64(-1) || '\x7b7d'::bytea)$$);
SELECT test_error($$SELECT pgquant.import_safetensors('bad', st_file('{"x": ', ''))$$);
SELECT test_error($$SELECT pgquant.import_safetensors('bad', st_file('[1, 2]', ''))$$);
SELECT test_error($$SELECT pgquant.import_safetensors('bad', le64(4) || '\x7bff227d'::bytea)$$);
SELECT test_error($$SELECT pgquant.import_safetensors('bad', le64(3) || '\x7b007d'::bytea)$$);
SELECT test_error($$SELECT pgquant.import_safetensors('bad', st_file('{"x": 1}', ''))$$);
SELECT test_error($$SELECT pgquant.import_safetensors('bad', st_file('{"__metadata__": [], "x": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}', lef32('{1}')))$$);
SELECT test_error($$SELECT pgquant.import_safetensors('bad', st_file('{"x": {"dtype": "I8", "shape": [1], "data_offsets": [0, 1]}}', '\x01'))$$);
SELECT test_error($$SELECT pgquant.import_safetensors('bad', st_file('{"x": {"shape": [1], "data_offsets": [0, 4]}}', lef32('{1}')))$$);
SELECT test_error($$SELECT pgquant.import_safetensors('bad', st_file('{"x": {"dtype": "F32", "data_offsets": [0, 4]}}', lef32('{1}')))$$);
SELECT test_error($$SELECT pgquant.import_safetensors('bad', st_file('{"x": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}', lef32('{1}')))$$);
SELECT test_error($$SELECT pgquant.import_safetensors('bad', st_file('{"x": {"dtype": "F32", "shape": [1.5], "data_offsets": [0, 4]}}', lef32('{1}')))$$);
SELECT test_error($$SELECT pgquant.import_safetensors('bad', st_file('{"x": {"dtype": "F32", "shape": [65536, 65536], "data_offsets": [0, 4]}}', lef32('{1}')))$$);
SELECT test_error($$SELECT pgquant.import_safetensors('bad', st_file('{"x": {"dtype": "F32", "shape": [1], "data_offsets": [0]}}', lef32('{1}')))$$);
SELECT test_error($$SELECT pgquant.import_safetensors('bad', st_file('{"x": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}}', lef32('{1}')))$$);
SELECT test_error($$SELECT pgquant.import_safetensors('bad', st_file('{"x": {"dtype": "F32", "shape": [1], "data_offsets": [0, 8]}}', lef32('{1}')))$$);
SELECT test_error($$SELECT pgquant.import_safetensors('bad', st_file('{"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}', lef32('{1}')))$$);
SELECT test_error($$SELECT pgquant.import_safetensors('bad', st_file('{"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "y": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}', lef32('{1,2}')))$$);
SELECT test_error($$SELECT pgquant.import_safetensors('bad', st_file('{"x": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}', lef32('{1,2}')))$$);
SELECT test_error($$SELECT pgquant.import_safetensors('bad', st_file('{"x": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}', lef32('{1,2}')))$$);
SELECT test_error($$SELECT pgquant.import_safetensors('bad', st_file('{"x": {"dtype": "F16", "shape": [2], "data_offsets": [0, 4]}}', '\x007c0000'::bytea))$$);
SELECT test_error($$SELECT pgquant.import_safetensors('bad', st_file('{"": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}', lef32('{1}')))$$);
SELECT test_error($$SELECT pgquant.import_safetensors('st', st_file('{}', ''))$$);
SELECT count(*) AS nothing_written FROM pgquant.models WHERE name = 'bad';

-- the tables' own checks hold for rows written by hand too
SELECT pgquant.numel('{}'), pgquant.numel('{3,4}'), pgquant.numel('{2,0,5}');
SELECT test_error($$SELECT pgquant.numel('{3,-1}')$$);
SELECT test_error($$SELECT pgquant.numel('{{1,2}}')$$);
SELECT test_error($$SELECT pgquant.numel('{65536,65536,65536,65536}')$$);
SELECT pgquant.qtensor_numel(quantize('{{1,2,3},{4,5,6}}', 'rtn', 4));
SELECT test_error($$INSERT INTO pgquant.tensors VALUES ('tiny', 'x', '{2,2}', 'F32', '{1,2,3}')$$);
SELECT test_error($$INSERT INTO pgquant.tensors VALUES ('tiny', 'x', '{2,3}', 'F32', NULL, quantize('{{1,2},{3,4}}', 'rtn', 4))$$);
SELECT test_error($$INSERT INTO pgquant.tensors VALUES ('tiny', 'x', '{2}', 'qtensor', '{1,2}')$$);
SELECT test_error($$INSERT INTO pgquant.tensors VALUES ('tiny', 'x', '{2}', 'F64', '{1,2}')$$);
SELECT test_error($$INSERT INTO pgquant.tensors VALUES ('nosuch', 'x', '{2}', 'F32', '{1,2}')$$);
INSERT INTO pgquant.tensors VALUES ('tiny', 'x', '{2,2}', 'qtensor', NULL, quantize('{{1,2},{3,4}}', 'rtn', 8));
-- deleting a model deletes its tensors and tokens
DELETE FROM pgquant.models WHERE name IN ('tiny-tok', 'st2', 'st3');
SELECT count(*) AS left_behind FROM pgquant.tensors t LEFT JOIN pgquant.models m ON m.name = t.model WHERE m.name IS NULL;
SELECT count(*) AS tokens_left FROM pgquant.tokens WHERE model = 'tiny-tok';
DELETE FROM pgquant.tensors WHERE model = 'tiny' AND name = 'x';
