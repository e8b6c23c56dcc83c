
-- the codebook registry (needs the pgquant schema from 90_admin.sql) -----------

-- Codebooks are content-addressed: a row's id is the codebook's own content id,
-- so nobody can file a codebook under another's id, and the same codebook has
-- the same id on every server.  pg_dump keeps the rows (extension config table).
CREATE TABLE pgquant.codebooks (
	id bigint PRIMARY KEY,
	pq pq_codebook,
	rvq rvq_codebook,
	registered_at timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT codebooks_one_kind CHECK ((pq IS NULL) <> (rvq IS NULL)),
	CONSTRAINT codebooks_id_is_content CHECK (id = coalesce(codebook_id(pq), codebook_id(rvq)))
);
COMMENT ON TABLE pgquant.codebooks IS
	'registered codebooks, by content id: where pq_decode(code) and pq_distance(code, query) find a code''s codebook';
SELECT pg_catalog.pg_extension_config_dump('pgquant.codebooks', '');
-- anyone may read and add (rows are checked against their content); nobody but the owner changes or removes
GRANT SELECT, INSERT ON pgquant.codebooks TO PUBLIC;
GRANT USAGE ON SCHEMA pgquant TO PUBLIC;

-- loading ANN datasets ---------------------------------------------------------

CREATE FUNCTION pgquant.read_fvecs(data bytea, OUT id integer, OUT vector real[]) RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'pgquant_read_fvecs' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION pgquant.read_ivecs(data bytea, OUT id integer, OUT vector integer[]) RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'pgquant_read_ivecs' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pgquant.read_fvecs(bytea) IS
	'rows of a TEXMEX .fvecs file (int32 d, then d float32, per vector), numbered from 1';
COMMENT ON FUNCTION pgquant.read_ivecs(bytea) IS
	'rows of a TEXMEX .ivecs file (int32 d, then d int32, per vector), numbered from 1';

-- checking an ivfpq index --------------------------------------------------------

CREATE FUNCTION pgquant.ivfpq_check(index regclass,
		OUT trained boolean, OUT dim integer, OUT lists integer, OUT m integer, OUT nbits integer,
		OUT pages bigint, OUT entries bigint)
	RETURNS record
	AS 'MODULE_PATHNAME', 'pgquant_ivfpq_check' LANGUAGE C VOLATILE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pgquant.ivfpq_check(regclass) IS
	'check an ivfpq index''s structure page by page; raises index_corrupted at the first fault, else returns its counts';
