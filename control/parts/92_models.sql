
-- models, tensors and tokenizers as tables (src/models.c, docs/inference.md) --

CREATE FUNCTION pgquant.numel(shape integer[]) RETURNS bigint
	AS 'MODULE_PATHNAME', 'pgquant_numel' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pgquant.numel(integer[]) IS
	'number of elements of a tensor of this shape (the product of its dimensions; 1 for {})';

CREATE FUNCTION pgquant.qtensor_numel(q qtensor) RETURNS bigint
	AS 'MODULE_PATHNAME', 'pgquant_qtensor_numel' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pgquant.qtensor_numel(qtensor) IS
	'number of weights of a qtensor (rows x cols), read from its header alone';

CREATE TABLE pgquant.models (
	name text PRIMARY KEY CHECK (name <> ''),
	arch text NOT NULL,
	config jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(config) = 'object'),
	parent text REFERENCES pgquant.models (name) ON UPDATE CASCADE ON DELETE SET NULL,
	created timestamptz NOT NULL DEFAULT now(),
	description text
);
COMMENT ON TABLE pgquant.models IS
	'one row per model: its architecture, its configuration as jsonb and, for a quantized model, the model it came from';
COMMENT ON COLUMN pgquant.models.arch IS 'architecture: llama for the llama2.c family, which the forward pass runs';
COMMENT ON COLUMN pgquant.models.config IS
	'architecture settings (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len, ...) and provenance';
COMMENT ON COLUMN pgquant.models.parent IS 'the model this one was derived from (quantize_model), if any';

CREATE TABLE pgquant.tensors (
	model text NOT NULL REFERENCES pgquant.models (name) ON UPDATE CASCADE ON DELETE CASCADE,
	name text NOT NULL CHECK (name <> ''),
	shape integer[] NOT NULL,
	dtype text NOT NULL CHECK (dtype IN ('F32', 'F16', 'BF16', 'qtensor')),
	data real[],
	q qtensor,
	PRIMARY KEY (model, name),
	CONSTRAINT tensors_has_values CHECK (data IS NOT NULL OR q IS NOT NULL),
	CONSTRAINT tensors_dtype_matches CHECK ((dtype = 'qtensor') = (data IS NULL)),
	CONSTRAINT tensors_data_matches_shape CHECK (data IS NULL OR cardinality(data) = pgquant.numel(shape)),
	CONSTRAINT tensors_q_matches_shape CHECK (q IS NULL OR pgquant.qtensor_numel(q) = pgquant.numel(shape))
);
-- weights barely compress: store them out of line uncompressed, so reads are plain copies
ALTER TABLE pgquant.tensors ALTER COLUMN data SET STORAGE EXTERNAL;
ALTER TABLE pgquant.tensors ALTER COLUMN q SET STORAGE EXTERNAL;
COMMENT ON TABLE pgquant.tensors IS
	'one row per tensor of a model: full-precision values and/or a quantized version (q is used when present)';
COMMENT ON COLUMN pgquant.tensors.shape IS 'dimensions, outermost first; matrices are [out, in]';
COMMENT ON COLUMN pgquant.tensors.dtype IS
	'element type the values were imported from (F32, F16 or BF16; data holds them exactly as real), or qtensor when only q is stored';
COMMENT ON COLUMN pgquant.tensors.data IS 'the values as real[], shaped like shape (flattened beyond 6 dimensions)';
COMMENT ON COLUMN pgquant.tensors.q IS 'the quantized tensor; inference uses it instead of data when present';

CREATE TABLE pgquant.tokens (
	model text NOT NULL REFERENCES pgquant.models (name) ON UPDATE CASCADE ON DELETE CASCADE,
	id integer NOT NULL CHECK (id >= 0),
	piece bytea NOT NULL,
	score real NOT NULL,
	PRIMARY KEY (model, id)
);
COMMENT ON TABLE pgquant.tokens IS
	'a model''s tokenizer vocabulary: token id, its bytes and its BPE merge score (llama2.c / sentencepiece)';

-- the tables are user data: pg_dump dumps their rows
SELECT pg_catalog.pg_extension_config_dump('pgquant.models', '');
SELECT pg_catalog.pg_extension_config_dump('pgquant.tensors', '');
SELECT pg_catalog.pg_extension_config_dump('pgquant.tokens', '');

CREATE FUNCTION pgquant.import_llama2c(model text, checkpoint bytea, tokenizer bytea DEFAULT NULL)
	RETURNS integer
	AS 'MODULE_PATHNAME', 'pgquant_import_llama2c' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION pgquant.import_llama2c(text, bytea, bytea) IS
	'store a llama2.c checkpoint (and optionally its tokenizer.bin) as a model; returns the number of tensors';

CREATE FUNCTION pgquant.import_safetensors(model text, file bytea, arch text DEFAULT 'unknown',
										   config jsonb DEFAULT NULL)
	RETURNS integer
	AS 'MODULE_PATHNAME', 'pgquant_import_safetensors' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION pgquant.import_safetensors(text, bytea, text, jsonb) IS
	'store the F32/F16/BF16 tensors of a safetensors file as a model; config is merged over the file''s metadata; returns the number of tensors';

-- quantized linear layers (src/qlinear.c, src/qgemv.c) ---------------------

CREATE FUNCTION qlinear(x real[], w qtensor, bias real[] DEFAULT NULL) RETURNS real[]
	AS 'MODULE_PATHNAME', 'pgquant_qlinear' LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION qlinear(real[], qtensor, real[]) IS
	'y = W x + bias for a quantized W [out, in] and a vector x of in elements; NULL when x or w is NULL';

CREATE FUNCTION qmatmul(xs real[], w qtensor, bias real[] DEFAULT NULL) RETURNS real[]
	AS 'MODULE_PATHNAME', 'pgquant_qmatmul' LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION qmatmul(real[], qtensor, real[]) IS
	'Y = X W^T + bias for a batch X [batch, in] and a quantized W [out, in]; returns [batch, out]';

CREATE FUNCTION pgquant.linear(model text, tensor text, x real[], bias real[] DEFAULT NULL) RETURNS real[]
	AS 'MODULE_PATHNAME', 'pgquant_linear' LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION pgquant.linear(text, text, real[], real[]) IS
	'y = W x + bias with the stored tensor W of a model (quantized q when present, else data), cached per backend';

CREATE FUNCTION pgquant.tensor_cache(OUT tensors bigint, OUT bytes bigint, OUT tokenizers bigint) RETURNS record
	AS 'MODULE_PATHNAME', 'pgquant_tensor_cache' LANGUAGE C VOLATILE PARALLEL RESTRICTED;
COMMENT ON FUNCTION pgquant.tensor_cache() IS
	'what this backend''s cache of decoded model tensors holds: entries, bytes, tokenizers';

CREATE FUNCTION pgquant.cpu_kernels() RETURNS text[]
	AS 'MODULE_PATHNAME', 'pgquant_cpu_kernels' LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pgquant.cpu_kernels() IS
	'the kernel sets (values of pgquant.cpu_kernels) this CPU supports, best first';

-- the whole model: generation, perplexity, tokenizer (src/infer.c, src/llama.c) --

CREATE FUNCTION pgquant.generate(model text, prompt text DEFAULT '', max_tokens integer DEFAULT 256,
								 temperature double precision DEFAULT 0, seed bigint DEFAULT NULL,
								 top_p double precision DEFAULT 1)
	RETURNS text
	AS 'MODULE_PATHNAME', 'pgquant_generate' LANGUAGE C VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION pgquant.generate(text, text, integer, double precision, bigint, double precision) IS
	'the prompt and up to max_tokens tokens generated after it: greedy at temperature 0, else sampled (top_p nucleus; seed makes it repeatable)';

CREATE FUNCTION pgquant.perplexity(model text, input text,
								   OUT nats_per_token double precision, OUT perplexity double precision,
								   OUT tokens integer)
	RETURNS record
	AS 'MODULE_PATHNAME', 'pgquant_perplexity' LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pgquant.perplexity(text, text) IS
	'mean negative log-likelihood of the text''s tokens after BOS (nats per token), its exponential, and the number of tokens scored';

CREATE FUNCTION pgquant.tokenize(model text, input text, bos boolean DEFAULT true) RETURNS integer[]
	AS 'MODULE_PATHNAME', 'pgquant_tokenize' LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pgquant.tokenize(text, text, boolean) IS
	'token ids of a text under the model''s BPE tokenizer (with BOS = 1 first unless bos is false)';

CREATE FUNCTION pgquant.detokenize(model text, tokens integer[]) RETURNS text
	AS 'MODULE_PATHNAME', 'pgquant_detokenize' LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pgquant.detokenize(text, integer[]) IS
	'the text of token ids under the model''s tokenizer (BOS and EOS have none)';

-- quantizing a whole model, with a report per tensor ---------------------------

CREATE TABLE pgquant.quantization_report (
	model text NOT NULL REFERENCES pgquant.models (name) ON UPDATE CASCADE ON DELETE CASCADE,
	tensor text NOT NULL,
	method text NOT NULL,
	bits integer NOT NULL,
	group_size integer,
	sym boolean NOT NULL,
	shape integer[] NOT NULL,
	rel_error double precision NOT NULL,
	max_abs_error double precision NOT NULL,
	calibration text,
	output_error double precision,
	bytes bigint NOT NULL,
	source_bytes bigint NOT NULL,
	millis double precision NOT NULL,
	created timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (model, tensor)
);
COMMENT ON TABLE pgquant.quantization_report IS
	'one row per tensor quantized by pgquant.quantize_model: method, errors against the source, sizes, time taken';
COMMENT ON COLUMN pgquant.quantization_report.rel_error IS '||W - dequantize(Q)||_F / ||W||_F';
COMMENT ON COLUMN pgquant.quantization_report.calibration IS
	'the calibration set whose statistics of this layer the method and output_error used, if any';
COMMENT ON COLUMN pgquant.quantization_report.output_error IS
	'||X W^T - X Q^T||_F^2 / ||X W^T||_F^2 over the calibration rows (NULL without a calibration set)';
COMMENT ON COLUMN pgquant.quantization_report.bytes IS 'bytes of the qtensor';
COMMENT ON COLUMN pgquant.quantization_report.source_bytes IS 'bytes of the source values as fp32';
COMMENT ON COLUMN pgquant.quantization_report.millis IS 'milliseconds quantize() took for this tensor';
SELECT pg_catalog.pg_extension_config_dump('pgquant.quantization_report', '');

CREATE FUNCTION pgquant.quantize_model(source text, target text, method text DEFAULT 'rtn',
									   bits integer DEFAULT 4, group_size integer DEFAULT NULL,
									   sym boolean DEFAULT false, include_embeddings boolean DEFAULT false,
									   calibration text DEFAULT NULL, act_order boolean DEFAULT false)
	RETURNS integer
	LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
	SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	src pgquant.models;
	cal text := coalesce(calibration, nullif(current_setting('pgquant.calibration', true), ''));
	calibrated boolean := method IN ('awq', 'gptq');	-- the methods that read the statistics
	cal_model text;
	matrices text[];
	missing text[];
	t record;
	q @extschema@.qtensor;
	t0 timestamptz;
	ms double precision;
	e record;
	info record;
	n integer := 0;
BEGIN
	IF source IS NULL OR target IS NULL OR method IS NULL OR bits IS NULL OR sym IS NULL
		OR include_embeddings IS NULL OR act_order IS NULL THEN
		RAISE EXCEPTION 'quantize_model arguments must not be NULL (group_size and calibration may be)'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	SELECT * INTO src FROM pgquant.models WHERE name = source;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'model "%" does not exist', source USING ERRCODE = 'undefined_object';
	END IF;
	IF EXISTS (SELECT 1 FROM pgquant.models WHERE name = target) THEN
		RAISE EXCEPTION 'model "%" already exists', target USING ERRCODE = 'unique_violation',
			HINT = 'Delete it first or choose another name.';
	END IF;

	-- the matrices to quantize: vectors, RoPE tables and (by default) embeddings stay as they are
	SELECT coalesce(array_agg(s.name), '{}') INTO matrices
	FROM pgquant.tensors s
	WHERE s.model = source AND s.data IS NOT NULL AND cardinality(s.shape) = 2
		AND s.name NOT IN ('freq_cis_real', 'freq_cis_imag')
		AND (include_embeddings OR s.name NOT IN ('tok_embeddings', 'output'));

	-- a whole model is quantized with its own activations or not at all: the data-free form of
	-- awq that quantize() falls back to is meant for a single matrix
	IF cal IS NULL AND calibrated THEN
		RAISE EXCEPTION '% needs a calibration set to quantize a model', method
			USING ERRCODE = 'invalid_parameter_value',
			HINT = format('Collect one with pgquant.calibrate(%L, set_name, texts) and pass calibration => set_name, '
						  'or use hqq, rtn or nf4, which need none.', source);
	END IF;
	IF cal IS NOT NULL THEN
		SELECT s.model INTO cal_model FROM pgquant.calibration_sets s WHERE s.name = cal;
		IF NOT FOUND THEN
			RAISE EXCEPTION 'calibration set "%" does not exist', cal USING ERRCODE = 'undefined_object',
				HINT = 'pgquant.calibrate(model, set_name, texts) collects one.';
		END IF;
		IF cal_model IS DISTINCT FROM source AND cal_model IS NOT NULL THEN
			RAISE WARNING 'calibration set "%" holds activations of model "%", not "%"', cal, cal_model, source
				USING DETAIL = 'Its layers are used by name; their widths are checked, their values are not.';
		END IF;
		-- every matrix to be quantized needs its layer's statistics; say which are absent before any work
		SELECT array_agg(m ORDER BY m) INTO missing
		FROM unnest(matrices) m
		WHERE NOT EXISTS (SELECT 1 FROM pgquant.calibration_stats c WHERE c.set_name = cal AND c.layer = m);
		IF missing IS NOT NULL THEN
			RAISE EXCEPTION 'calibration set "%" has no statistics for % of the matrices of model "%"',
				cal, cardinality(missing), source
				USING ERRCODE = 'invalid_parameter_value',
				DETAIL = format('Missing: %s%s.', array_to_string(missing[1:5], ', '),
								CASE WHEN cardinality(missing) > 5
									 THEN format(' and %s more', cardinality(missing) - 5) ELSE '' END),
				HINT = 'pgquant.calibrate captures every linear layer; embeddings are not among them.';
		END IF;
	END IF;

	INSERT INTO pgquant.models (name, arch, config, parent, description)
	VALUES (target, src.arch,
			src.config || jsonb_build_object('quantization', jsonb_build_object(
				'method', method, 'bits', bits, 'group_size', group_size, 'sym', sym,
				'include_embeddings', include_embeddings, 'calibration', cal, 'act_order', act_order)),
			source, format('%s quantized with %s at %s bits', source, method, bits));
	INSERT INTO pgquant.tokens (model, id, piece, score)
	SELECT target, k.id, k.piece, k.score FROM pgquant.tokens k WHERE k.model = source;

	-- the matrices become qtensors; the other tensors are copied
	FOR t IN SELECT * FROM pgquant.tensors s WHERE s.model = source ORDER BY s.name LOOP
		IF t.name = ANY (matrices) THEN
			t0 := clock_timestamp();
			-- only awq and gptq read the statistics; every method's output error is measured on them
			q := @extschema@.quantize(t.data, method, bits, group_size, sym,
									  calibration => CASE WHEN calibrated THEN cal END,
									  layer => CASE WHEN calibrated THEN t.name END,
									  act_order => act_order);
			ms := extract(epoch FROM clock_timestamp() - t0) * 1000;
			-- the output error needs the layer's X^T X, which a set may have been collected without
			IF cal IS NULL OR NOT EXISTS (SELECT 1 FROM pgquant.calibration_stats c
										  WHERE c.set_name = cal AND c.layer = t.name AND c.hessian IS NOT NULL) THEN
				SELECT r.rel_error, r.max_abs_error, NULL::float8 AS output_error INTO e
				FROM @extschema@.quant_error(t.data, q) r;
			ELSE
				e := @extschema@.quant_error(t.data, q, cal, t.name);
			END IF;
			SELECT * INTO info FROM @extschema@.qtensor_info(q);
			INSERT INTO pgquant.tensors (model, name, shape, dtype, data, q)
			VALUES (target, t.name, t.shape, 'qtensor', NULL, q);
			INSERT INTO pgquant.quantization_report
				(model, tensor, method, bits, group_size, sym, shape, rel_error, max_abs_error, calibration,
				 output_error, bytes, source_bytes, millis)
			VALUES (target, t.name, method, bits, info.group_size, sym, t.shape,
					e.rel_error, e.max_abs_error, cal, e.output_error, info.bytes,
					4 * pgquant.numel(t.shape), ms);
			n := n + 1;
		ELSE
			INSERT INTO pgquant.tensors (model, name, shape, dtype, data, q)
			VALUES (target, t.name, t.shape, t.dtype, t.data, t.q);
		END IF;
	END LOOP;
	RETURN n;
END
$fn$;
COMMENT ON FUNCTION pgquant.quantize_model(text, text, text, integer, integer, boolean, boolean, text, boolean) IS
	'copy a model into a new one whose matrices (embeddings only if asked) are quantized with quantize(), with the layer statistics of a calibration set when one is named (calibration => or pgquant.calibration); one pgquant.quantization_report row per matrix; returns how many';
