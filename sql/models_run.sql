-- the forward pass, generate, perplexity, the tokenizer and quantize_model on a small
-- generated model (the real stories260K checks are in tests/pgtap/inference.sql).
-- Generated text depends on the last bits of float sums, so this file prints its
-- properties, not the text itself.

-- dim 8, hidden 12, 2 layers, 2 heads, 1 kv head, vocab 270, seq_len 16: 3,224 floats 0.3 sin(1.7 k)
CREATE FUNCTION run_checkpoint() RETURNS bytea LANGUAGE sql IMMUTABLE AS $$
	SELECT le32(8) || le32(12) || le32(2) || le32(2) || le32(1) || le32(270) || le32(16) ||
		lef32(ARRAY(SELECT (0.3 * sin(1.7 * k))::real FROM generate_series(0, 3223) k)) $$;
-- <unk>, BOS, EOS, the 256 byte pieces, then 11 pieces with merge scores
CREATE FUNCTION run_tokenizer() RETURNS bytea LANGUAGE sql IMMUTABLE AS $$
	SELECT tiny_tok(7,
		ARRAY['<unk>', E'\n<s>\n', E'\n</s>\n'] || ARRAY(SELECT format('<0x%s>', upper(lpad(to_hex(b), 2, '0')))
														 FROM generate_series(0, 255) b)
			|| ARRAY[' ', 'a', 'b', 'c', 'ab', 'bc', ' a', ' ab', 'ca', 'abc', '.'],
		array_fill(0::real, ARRAY[259]) || '{-1,-1,-1,-1,-5,-2,-3,-4,-6,-3.5,-1}'::real[]) $$;
SELECT pgquant.import_llama2c('run', run_checkpoint(), run_tokenizer()) AS tensors;

-- the tokenizer: " " "a" "b" "c" -> bc (best score) -> " a" -> {BOS, " a", "bc"}
SELECT pgquant.tokenize('run', 'abc') AS abc, pgquant.tokenize('run', 'abc', bos => false) AS no_bos;
SELECT t AS ids, (SELECT array_agg(convert_from(piece, 'UTF8') ORDER BY o) FROM unnest(t) WITH ORDINALITY u(i, o)
		JOIN pgquant.tokens k ON k.model = 'run' AND k.id = u.i) AS pieces
FROM pgquant.tokenize('run', 'cab. x') t;
-- é has no piece: two byte tokens, and decoding gives it back
SELECT pgquant.tokenize('run', 'é') AS e_acute, pgquant.detokenize('run', pgquant.tokenize('run', 'é')) AS back;
SELECT pgquant.detokenize('run', pgquant.tokenize('run', 'abc cab. é!')) = 'abc cab. é!' AS round_trip;
SELECT pgquant.tokenize('run', '') AS empty, pgquant.detokenize('run', '{}') = '' AS empty_back;
-- a lone continuation byte decodes to U+FFFD, never to invalid text
SELECT pgquant.detokenize('run', '{1,172}') AS lone_byte;

-- generate: greedy is deterministic, starts with the prompt, and stops within the context
SELECT pgquant.generate('run', 'ab', 10) = pgquant.generate('run', 'ab', 10) AS greedy_repeatable,
	left(pgquant.generate('run', 'ab', 10), 2) = 'ab' AS starts_with_prompt,
	pgquant.generate('run', 'ab', 0) AS no_new_tokens,
	pgquant.generate('run', 'ab', 1000) = pgquant.generate('run', 'ab', 100) AS context_caps_it;
SELECT pgquant.generate('run', 'a', 12, temperature => 0.8, seed => 7) =
	pgquant.generate('run', 'a', 12, temperature => 0.8, seed => 7) AS seeded_repeatable,
	pgquant.generate('run', 'a', 12, temperature => 0.8, seed => 7, top_p => 0.5) IS NOT NULL AS top_p_runs;
SELECT pgquant.generate(NULL) IS NULL AS null_model;

-- perplexity: tokens after BOS are scored; a text longer than the 16 positions is scored in windows
SELECT tokens, nats_per_token > 0 AS positive, abs(perplexity - exp(nats_per_token)) < 1e-9 AS ppl_is_exp
FROM pgquant.perplexity('run', 'abc cab.');
SELECT tokens, nats_per_token IS NULL AS no_score FROM pgquant.perplexity('run', '');
SELECT tokens, nats_per_token > 0 AS positive FROM pgquant.perplexity('run', repeat('abc. ', 20));

-- quantize_model: matrices quantized, the rest copied, a report row per matrix
SELECT pgquant.quantize_model('run', 'run-q8', 'rtn', 8, group_size => 4) AS quantized;
SELECT name, arch, parent, config->'quantization' AS quantization FROM pgquant.models WHERE name = 'run-q8';
SELECT dtype, count(*), count(q) AS with_q, count(data) AS with_data FROM pgquant.tensors WHERE model = 'run-q8' GROUP BY dtype ORDER BY dtype;
SELECT count(*) AS tokens FROM pgquant.tokens WHERE model = 'run-q8';
SELECT tensor, method, bits, group_size, shape, rel_error < 0.01 AS small_error, bytes < source_bytes AS smaller, millis >= 0 AS timed
FROM pgquant.quantization_report WHERE model = 'run-q8' ORDER BY tensor LIMIT 4;
-- 8 bits barely move the scores; 2 bits move them more
SELECT pgquant.quantize_model('run', 'run-q2', 'rtn', 2, group_size => 4) AS quantized;
SELECT abs(q8.nats_per_token - f.nats_per_token) < 0.01 * f.nats_per_token AS q8_within_1pct,
	abs(q2.nats_per_token - f.nats_per_token) > abs(q8.nats_per_token - f.nats_per_token) AS q2_further
FROM pgquant.perplexity('run', 'abc cab. abc') f, pgquant.perplexity('run-q8', 'abc cab. abc') q8,
	pgquant.perplexity('run-q2', 'abc cab. abc') q2;
-- the reference kernels give the same scores as the fast ones
SET pgquant.cpu_kernels = 'ref';
CREATE TEMP TABLE ref_scores AS SELECT nats_per_token FROM pgquant.perplexity('run-q8', 'abc cab. abc');
RESET pgquant.cpu_kernels;
SELECT abs(r.nats_per_token - f.nats_per_token) < 1e-5 AS ref_equals_fast
FROM ref_scores r, pgquant.perplexity('run-q8', 'abc cab. abc') f;
-- embeddings too, when asked (here the classifier is the embedding)
SELECT pgquant.quantize_model('run', 'run-q8e', 'rtn', 8, 4, include_embeddings => true) AS quantized;
SELECT (SELECT q IS NOT NULL FROM pgquant.tensors WHERE model = 'run-q8e' AND name = 'tok_embeddings') AS embedding_quantized,
	(SELECT nats_per_token FROM pgquant.perplexity('run-q8e', 'abc cab.')) > 0 AS runs;

-- errors
SELECT test_error($$SELECT pgquant.generate('nosuch')$$);
SELECT test_error($$SELECT pgquant.generate('st')$$);
SELECT test_error($$SELECT pgquant.generate('tiny')$$);
SELECT test_error($$SELECT pgquant.tokenize('tiny', 'a')$$);
SELECT test_error($$SELECT pgquant.generate('run', 'a', -1)$$);
SELECT test_error($$SELECT pgquant.generate('run', 'a', 5, temperature => -1)$$);
SELECT test_error($$SELECT pgquant.generate('run', 'a', 5, temperature => 'NaN')$$);
SELECT test_error($$SELECT pgquant.generate('run', 'a', 5, top_p => 0)$$);
SELECT test_error($$SELECT pgquant.generate('run', 'a', 5, top_p => 1.5)$$);
SELECT test_error($$SELECT pgquant.generate('run', repeat('a.b.', 10))$$);
SELECT test_error($$SELECT pgquant.quantize_model('nosuch', 'x')$$);
SELECT test_error($$SELECT pgquant.quantize_model('run', 'run-q8')$$);
SELECT test_error($$SELECT pgquant.quantize_model('run', 'x', 'gptq9')$$);
SELECT test_error($$SELECT pgquant.quantize_model('run', 'x', 'rtn', 12)$$);
SELECT count(*) AS nothing_left FROM pgquant.models WHERE name = 'x';
SELECT test_error($$SELECT pgquant.detokenize('run', '{0,270}')$$);
SELECT test_error($$SELECT pgquant.detokenize('run', '{{1}}')$$);
-- a broken model: missing config fields, a missing tensor, a wrong shape, a wrong vocabulary
INSERT INTO pgquant.models (name, arch, config) VALUES ('broken', 'llama', '{"dim": 8}');
SELECT test_error($$SELECT pgquant.generate('broken')$$);
UPDATE pgquant.models SET config = (SELECT config FROM pgquant.models WHERE name = 'run') || '{"n_heads": 3}' WHERE name = 'broken';
SELECT test_error($$SELECT pgquant.generate('broken')$$);
UPDATE pgquant.models SET config = (SELECT config FROM pgquant.models WHERE name = 'run') || '{"dim": 8.5}' WHERE name = 'broken';
SELECT test_error($$SELECT pgquant.generate('broken')$$);
UPDATE pgquant.models SET config = (SELECT config FROM pgquant.models WHERE name = 'run') WHERE name = 'broken';
INSERT INTO pgquant.tokens SELECT 'broken', id, piece, score FROM pgquant.tokens WHERE model = 'run';
INSERT INTO pgquant.tensors SELECT 'broken', name, shape, dtype, data, q FROM pgquant.tensors
	WHERE model = 'run' AND name <> 'layers.1.feed_forward.w2';
SELECT test_error($$SELECT pgquant.generate('broken')$$);
INSERT INTO pgquant.tensors VALUES ('broken', 'layers.1.feed_forward.w2', '{12,8}', 'F32', array_fill(0::real, ARRAY[12, 8]));
SELECT test_error($$SELECT pgquant.generate('broken')$$);
UPDATE pgquant.tensors SET shape = '{8,12}', data = array_fill(0::real, ARRAY[8, 12]) WHERE model = 'broken' AND name = 'layers.1.feed_forward.w2';
SELECT pgquant.generate('broken', 'ab', 3) IS NOT NULL AS repaired;
DELETE FROM pgquant.tokens WHERE model = 'broken' AND id = 269;
SELECT test_error($$SELECT pgquant.generate('broken')$$);
UPDATE pgquant.models SET arch = 'gpt2' WHERE name = 'broken';
SELECT test_error($$SELECT pgquant.perplexity('broken', 'a')$$);
DELETE FROM pgquant.models WHERE name = 'broken';
SET pgquant.device = 'cuda';
SELECT left(test_error($$SELECT pgquant.generate('run', 'a', 2)$$), 5) AS cuda_state;
RESET pgquant.device;

-- long work stops when cancelled: 2.7 and 5.4 MB texts (tokenizing, then about 900,000 forward passes)
SET statement_timeout = '200ms';
SELECT tokens FROM pgquant.perplexity('run', repeat('abc cab. ', 300000));
SELECT cardinality(pgquant.tokenize('run', repeat('abc cab. ', 600000)));
RESET statement_timeout;
SELECT pgquant.generate('run', 'ab', 2) IS NOT NULL AS still_works;
