
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
