
-- product and residual quantization: codebooks, codes, training ---------------
-- (docs/pq-format.md; the registry table pgquant.codebooks is in 95_pq_registry.sql,
-- after the schema exists)

-- pq_codebook ----------------------------------------------------------------

CREATE TYPE pq_codebook;
CREATE FUNCTION pq_codebook_in(cstring) RETURNS pq_codebook
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION pq_codebook_out(pq_codebook) RETURNS cstring
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION pq_codebook_recv(internal) RETURNS pq_codebook
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION pq_codebook_send(pq_codebook) RETURNS bytea
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
-- float centroids do not compress: store them out of line without trying
CREATE TYPE pq_codebook (
	INPUT = pq_codebook_in, OUTPUT = pq_codebook_out,
	RECEIVE = pq_codebook_recv, SEND = pq_codebook_send,
	INTERNALLENGTH = VARIABLE, ALIGNMENT = double, STORAGE = external
);
COMMENT ON TYPE pq_codebook IS
	'product-quantization codebook: m subquantizers of 2^nbits centroids each, identified by a content id';
COMMENT ON FUNCTION pq_codebook_in(cstring) IS 'text input of pq_codebook';
COMMENT ON FUNCTION pq_codebook_out(pq_codebook) IS 'text output of pq_codebook';
COMMENT ON FUNCTION pq_codebook_recv(internal) IS 'binary input of pq_codebook';
COMMENT ON FUNCTION pq_codebook_send(pq_codebook) IS 'binary output of pq_codebook, in network byte order';

-- rvq_codebook ---------------------------------------------------------------

CREATE TYPE rvq_codebook;
CREATE FUNCTION rvq_codebook_in(cstring) RETURNS rvq_codebook
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION rvq_codebook_out(rvq_codebook) RETURNS cstring
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION rvq_codebook_recv(internal) RETURNS rvq_codebook
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION rvq_codebook_send(rvq_codebook) RETURNS bytea
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE TYPE rvq_codebook (
	INPUT = rvq_codebook_in, OUTPUT = rvq_codebook_out,
	RECEIVE = rvq_codebook_recv, SEND = rvq_codebook_send,
	INTERNALLENGTH = VARIABLE, ALIGNMENT = double, STORAGE = external
);
COMMENT ON TYPE rvq_codebook IS
	'residual-quantization codebook: levels full-dimension codebooks of 2^nbits centroids, identified by a content id';
COMMENT ON FUNCTION rvq_codebook_in(cstring) IS 'text input of rvq_codebook';
COMMENT ON FUNCTION rvq_codebook_out(rvq_codebook) IS 'text output of rvq_codebook';
COMMENT ON FUNCTION rvq_codebook_recv(internal) IS 'binary input of rvq_codebook';
COMMENT ON FUNCTION rvq_codebook_send(rvq_codebook) IS 'binary output of rvq_codebook, in network byte order';

-- pqcode ---------------------------------------------------------------------

CREATE TYPE pqcode;
CREATE FUNCTION pqcode_in(cstring) RETURNS pqcode
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION pqcode_out(pqcode) RETURNS cstring
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION pqcode_recv(internal) RETURNS pqcode
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION pqcode_send(pqcode) RETURNS bytea
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
-- small values: stored with a 1-byte header and no padding, kept inline
CREATE TYPE pqcode (
	INPUT = pqcode_in, OUTPUT = pqcode_out,
	RECEIVE = pqcode_recv, SEND = pqcode_send,
	INTERNALLENGTH = VARIABLE, ALIGNMENT = int4, STORAGE = main
);
COMMENT ON TYPE pqcode IS
	'a vector compressed by a pq_codebook or rvq_codebook: its codes and the content id of that codebook';
COMMENT ON FUNCTION pqcode_in(cstring) IS 'text input of pqcode';
COMMENT ON FUNCTION pqcode_out(pqcode) IS 'text output of pqcode';
COMMENT ON FUNCTION pqcode_recv(internal) IS 'binary input of pqcode';
COMMENT ON FUNCTION pqcode_send(pqcode) IS 'binary output of pqcode, in network byte order';

-- construction and inspection ---------------------------------------------------

CREATE FUNCTION pq_codebook(centroids real[], m integer, nbits integer) RETURNS pq_codebook
	AS 'MODULE_PATHNAME', 'pgquant_pq_codebook_make' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION rvq_codebook(centroids real[], levels integer, nbits integer) RETURNS rvq_codebook
	AS 'MODULE_PATHNAME', 'pgquant_rvq_codebook_make' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pq_codebook(real[], integer, integer) IS
	'a PQ codebook from given centroids, shaped [m][2^nbits][dsub] or flat in that order (FAISS''s layout)';
COMMENT ON FUNCTION rvq_codebook(real[], integer, integer) IS
	'an RVQ codebook from given centroids, shaped [levels][2^nbits][dim] or flat in that order';
CREATE FUNCTION codebook_centroids(cb pq_codebook) RETURNS real[]
	AS 'MODULE_PATHNAME', 'pgquant_codebook_centroids' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION codebook_centroids(cb rvq_codebook) RETURNS real[]
	AS 'MODULE_PATHNAME', 'pgquant_codebook_centroids' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION codebook_centroids(pq_codebook) IS 'the centroids as a real[] of shape [m][2^nbits][dsub]';
COMMENT ON FUNCTION codebook_centroids(rvq_codebook) IS 'the centroids as a real[] of shape [levels][2^nbits][dim]';

CREATE FUNCTION codebook_id(cb pq_codebook) RETURNS bigint
	AS 'MODULE_PATHNAME', 'pgquant_codebook_id' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION codebook_id(cb rvq_codebook) RETURNS bigint
	AS 'MODULE_PATHNAME', 'pgquant_codebook_id' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION codebook_id(code pqcode) RETURNS bigint
	AS 'MODULE_PATHNAME', 'pgquant_pqcode_codebook_id' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION codebook_id(pq_codebook) IS
	'content id of a codebook: the first 8 bytes of the SHA-256 of its binary form, as a signed bigint';
COMMENT ON FUNCTION codebook_id(rvq_codebook) IS
	'content id of a codebook: the first 8 bytes of the SHA-256 of its binary form, as a signed bigint';
COMMENT ON FUNCTION codebook_id(pqcode) IS 'content id of the codebook that made this code';

CREATE FUNCTION pq_codebook_info(cb pq_codebook,
		OUT dim integer, OUT m integer, OUT nbits integer, OUT ksub integer,
		OUT code_bytes integer, OUT pqcode_bytes integer, OUT bytes bigint, OUT id bigint)
	RETURNS record
	AS 'MODULE_PATHNAME', 'pgquant_codebook_info' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pq_codebook_info(pq_codebook) IS
	'shape of a PQ codebook: dimension, subquantizers, bits, centroids per subquantizer, code bytes, pqcode bytes, stored bytes, id';
CREATE FUNCTION rvq_codebook_info(cb rvq_codebook,
		OUT dim integer, OUT levels integer, OUT nbits integer, OUT ksub integer,
		OUT code_bytes integer, OUT pqcode_bytes integer, OUT bytes bigint, OUT id bigint)
	RETURNS record
	AS 'MODULE_PATHNAME', 'pgquant_codebook_info' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION rvq_codebook_info(rvq_codebook) IS
	'shape of an RVQ codebook: dimension, levels, bits, centroids per level, code bytes, pqcode bytes, stored bytes, id';

CREATE FUNCTION pqcode_info(code pqcode,
		OUT kind text, OUT m integer, OUT nbits integer, OUT codebook_id bigint,
		OUT codes integer[], OUT norm real)
	RETURNS record
	AS 'MODULE_PATHNAME', 'pgquant_pqcode_info' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pqcode_info(pqcode) IS
	'contents of a pqcode: pq or rvq, codes per vector, bits, codebook id, the codes, and (rvq) the squared norm of the reconstruction';

-- training -------------------------------------------------------------------
-- Aggregates take no named arguments in PostgreSQL: the optional settings are
-- a jsonb object {"niter": 25, "sample": 65536, "seed": 0}.

CREATE FUNCTION pgquant_pq_train_accum(internal, real[], integer, integer) RETURNS internal
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION pgquant_pq_train_accum(internal, real[], integer, integer, jsonb) RETURNS internal
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION pgquant_rvq_train_accum(internal, real[], integer, integer) RETURNS internal
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION pgquant_rvq_train_accum(internal, real[], integer, integer, jsonb) RETURNS internal
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION pgquant_train_combine(internal, internal) RETURNS internal
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION pgquant_train_serialize(internal) RETURNS bytea
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION pgquant_train_deserialize(bytea, internal) RETURNS internal
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION pgquant_pq_train_final(internal) RETURNS pq_codebook
	AS 'MODULE_PATHNAME', 'pgquant_train_final' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION pgquant_rvq_train_final(internal) RETURNS rvq_codebook
	AS 'MODULE_PATHNAME', 'pgquant_train_final' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION pgquant_pq_train_accum(internal, real[], integer, integer) IS 'pq_train transition: reservoir sample';
COMMENT ON FUNCTION pgquant_pq_train_accum(internal, real[], integer, integer, jsonb) IS 'pq_train transition: reservoir sample';
COMMENT ON FUNCTION pgquant_rvq_train_accum(internal, real[], integer, integer) IS 'rvq_train transition: reservoir sample';
COMMENT ON FUNCTION pgquant_rvq_train_accum(internal, real[], integer, integer, jsonb) IS 'rvq_train transition: reservoir sample';
COMMENT ON FUNCTION pgquant_train_combine(internal, internal) IS 'pq_train/rvq_train: merge two partial samples uniformly';
COMMENT ON FUNCTION pgquant_train_serialize(internal) IS 'pq_train/rvq_train: partial sample to bytea';
COMMENT ON FUNCTION pgquant_train_deserialize(bytea, internal) IS 'pq_train/rvq_train: partial sample from bytea';
COMMENT ON FUNCTION pgquant_pq_train_final(internal) IS 'pq_train final: k-means per subquantizer on the sample';
COMMENT ON FUNCTION pgquant_rvq_train_final(internal) IS 'rvq_train final: k-means per level on the residuals of the sample';

CREATE AGGREGATE pq_train(vector real[], m integer, nbits integer) (
	SFUNC = pgquant_pq_train_accum, STYPE = internal, FINALFUNC = pgquant_pq_train_final,
	COMBINEFUNC = pgquant_train_combine, SERIALFUNC = pgquant_train_serialize,
	DESERIALFUNC = pgquant_train_deserialize, PARALLEL = SAFE);
CREATE AGGREGATE pq_train(vector real[], m integer, nbits integer, options jsonb) (
	SFUNC = pgquant_pq_train_accum, STYPE = internal, FINALFUNC = pgquant_pq_train_final,
	COMBINEFUNC = pgquant_train_combine, SERIALFUNC = pgquant_train_serialize,
	DESERIALFUNC = pgquant_train_deserialize, PARALLEL = SAFE);
CREATE AGGREGATE rvq_train(vector real[], levels integer, nbits integer) (
	SFUNC = pgquant_rvq_train_accum, STYPE = internal, FINALFUNC = pgquant_rvq_train_final,
	COMBINEFUNC = pgquant_train_combine, SERIALFUNC = pgquant_train_serialize,
	DESERIALFUNC = pgquant_train_deserialize, PARALLEL = SAFE);
CREATE AGGREGATE rvq_train(vector real[], levels integer, nbits integer, options jsonb) (
	SFUNC = pgquant_rvq_train_accum, STYPE = internal, FINALFUNC = pgquant_rvq_train_final,
	COMBINEFUNC = pgquant_train_combine, SERIALFUNC = pgquant_train_serialize,
	DESERIALFUNC = pgquant_train_deserialize, PARALLEL = SAFE);
COMMENT ON AGGREGATE pq_train(real[], integer, integer) IS
	'train a PQ codebook (m subquantizers, 2^nbits centroids each) on a uniform sample of the vectors';
COMMENT ON AGGREGATE pq_train(real[], integer, integer, jsonb) IS
	'train a PQ codebook; options {"niter": 25, "sample": 256 * 2^nbits, "seed": 0}';
COMMENT ON AGGREGATE rvq_train(real[], integer, integer) IS
	'train an RVQ codebook (levels of 2^nbits full-dimension centroids) on a uniform sample of the vectors';
COMMENT ON AGGREGATE rvq_train(real[], integer, integer, jsonb) IS
	'train an RVQ codebook; options {"niter": 25, "sample": 256 * 2^nbits, "seed": 0}';

-- encoding, decoding, distances ----------------------------------------------
-- Functions given the codebook read no table (IMMUTABLE); those given only the
-- code find its codebook in pgquant.codebooks (STABLE).

CREATE FUNCTION pq_encode(cb pq_codebook, vector real[]) RETURNS pqcode
	AS 'MODULE_PATHNAME', 'pgquant_pq_encode' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION pq_encode(cb rvq_codebook, vector real[]) RETURNS pqcode
	AS 'MODULE_PATHNAME', 'pgquant_pq_encode' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pq_encode(pq_codebook, real[]) IS 'compress a vector: the nearest centroid of each subquantizer';
COMMENT ON FUNCTION pq_encode(rvq_codebook, real[]) IS 'compress a vector: greedy nearest centroid level by level';

CREATE FUNCTION pq_decode(code pqcode) RETURNS real[]
	AS 'MODULE_PATHNAME', 'pgquant_pq_decode' LANGUAGE C STABLE STRICT PARALLEL SAFE;
CREATE FUNCTION pq_decode(cb pq_codebook, code pqcode) RETURNS real[]
	AS 'MODULE_PATHNAME', 'pgquant_pq_decode' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION pq_decode(cb rvq_codebook, code pqcode) RETURNS real[]
	AS 'MODULE_PATHNAME', 'pgquant_pq_decode' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pq_decode(pqcode) IS 'the vector a code stands for, with its codebook from pgquant.codebooks';
COMMENT ON FUNCTION pq_decode(pq_codebook, pqcode) IS 'the vector a code stands for';
COMMENT ON FUNCTION pq_decode(rvq_codebook, pqcode) IS 'the vector a code stands for';

CREATE FUNCTION pq_distance(code pqcode, query real[]) RETURNS double precision
	AS 'MODULE_PATHNAME', 'pgquant_pq_l2_distance' LANGUAGE C STABLE STRICT PARALLEL SAFE;
CREATE FUNCTION pq_distance(cb pq_codebook, code pqcode, query real[]) RETURNS double precision
	AS 'MODULE_PATHNAME', 'pgquant_pq_l2_distance' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION pq_distance(cb rvq_codebook, code pqcode, query real[]) RETURNS double precision
	AS 'MODULE_PATHNAME', 'pgquant_pq_l2_distance' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION pq_inner_product(code pqcode, query real[]) RETURNS double precision
	AS 'MODULE_PATHNAME', 'pgquant_pq_inner_product' LANGUAGE C STABLE STRICT PARALLEL SAFE;
CREATE FUNCTION pq_inner_product(cb pq_codebook, code pqcode, query real[]) RETURNS double precision
	AS 'MODULE_PATHNAME', 'pgquant_pq_inner_product' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION pq_inner_product(cb rvq_codebook, code pqcode, query real[]) RETURNS double precision
	AS 'MODULE_PATHNAME', 'pgquant_pq_inner_product' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION pq_cosine_distance(code pqcode, query real[]) RETURNS double precision
	AS 'MODULE_PATHNAME', 'pgquant_pq_cosine_distance' LANGUAGE C STABLE STRICT PARALLEL SAFE;
CREATE FUNCTION pq_cosine_distance(cb pq_codebook, code pqcode, query real[]) RETURNS double precision
	AS 'MODULE_PATHNAME', 'pgquant_pq_cosine_distance' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION pq_cosine_distance(cb rvq_codebook, code pqcode, query real[]) RETURNS double precision
	AS 'MODULE_PATHNAME', 'pgquant_pq_cosine_distance' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pq_distance(pqcode, real[]) IS
	'asymmetric (ADC) Euclidean distance between a query and a code, codebook from pgquant.codebooks';
COMMENT ON FUNCTION pq_distance(pq_codebook, pqcode, real[]) IS 'asymmetric (ADC) Euclidean distance between a query and a code';
COMMENT ON FUNCTION pq_distance(rvq_codebook, pqcode, real[]) IS 'asymmetric (ADC) Euclidean distance between a query and a code';
COMMENT ON FUNCTION pq_inner_product(pqcode, real[]) IS
	'asymmetric inner product of a query and a code, codebook from pgquant.codebooks';
COMMENT ON FUNCTION pq_inner_product(pq_codebook, pqcode, real[]) IS 'asymmetric inner product of a query and a code';
COMMENT ON FUNCTION pq_inner_product(rvq_codebook, pqcode, real[]) IS 'asymmetric inner product of a query and a code';
COMMENT ON FUNCTION pq_cosine_distance(pqcode, real[]) IS
	'asymmetric cosine distance (1 - cosine) between a query and a code, codebook from pgquant.codebooks';
COMMENT ON FUNCTION pq_cosine_distance(pq_codebook, pqcode, real[]) IS 'asymmetric cosine distance (1 - cosine) between a query and a code';
COMMENT ON FUNCTION pq_cosine_distance(rvq_codebook, pqcode, real[]) IS 'asymmetric cosine distance (1 - cosine) between a query and a code';

CREATE FUNCTION pq_register(cb pq_codebook) RETURNS pq_codebook
	AS 'MODULE_PATHNAME', 'pgquant_pq_register' LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
CREATE FUNCTION pq_register(cb rvq_codebook) RETURNS rvq_codebook
	AS 'MODULE_PATHNAME', 'pgquant_pq_register' LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION pq_register(pq_codebook) IS
	'add a codebook to pgquant.codebooks (if absent) so codes find it by id; returns the codebook';
COMMENT ON FUNCTION pq_register(rvq_codebook) IS
	'add a codebook to pgquant.codebooks (if absent) so codes find it by id; returns the codebook';
