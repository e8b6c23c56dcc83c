
-- calibration statistics: activations of a layer, summarized by an aggregate and kept as rows ----

-- ordinary users read the statistics and call the functions of the pgquant schema
GRANT USAGE ON SCHEMA pgquant TO PUBLIC;

CREATE TYPE pgquant.layer_stats AS (
	in_features integer,
	nrows bigint,
	hessian real[],
	mean_abs real[],
	max_abs real[],
	sum_sq double precision[]
);
COMMENT ON TYPE pgquant.layer_stats IS
	'statistics of a layer''s input activations X (nrows x in_features): X^T X (NULL when not collected), mean |x|, max |x| and sum x^2 per input channel';

CREATE FUNCTION pgquant.activation_stats_transfn(internal, real[])
	RETURNS internal AS 'MODULE_PATHNAME', 'pgquant_activation_stats_transfn'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION pgquant.activation_stats_transfn(internal, real[], boolean)
	RETURNS internal AS 'MODULE_PATHNAME', 'pgquant_activation_stats_transfn'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION pgquant.activation_stats_finalfn(internal)
	RETURNS pgquant.layer_stats AS 'MODULE_PATHNAME', 'pgquant_activation_stats_finalfn'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION pgquant.activation_stats_combinefn(internal, internal)
	RETURNS internal AS 'MODULE_PATHNAME', 'pgquant_activation_stats_combinefn'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION pgquant.activation_stats_serialfn(internal)
	RETURNS bytea AS 'MODULE_PATHNAME', 'pgquant_activation_stats_serialfn'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION pgquant.activation_stats_deserialfn(bytea, internal)
	RETURNS internal AS 'MODULE_PATHNAME', 'pgquant_activation_stats_deserialfn'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pgquant.activation_stats_transfn(internal, real[]) IS 'transition function of activation_stats';
COMMENT ON FUNCTION pgquant.activation_stats_transfn(internal, real[], boolean) IS 'transition function of activation_stats';
COMMENT ON FUNCTION pgquant.activation_stats_finalfn(internal) IS 'final function of activation_stats';
COMMENT ON FUNCTION pgquant.activation_stats_combinefn(internal, internal) IS 'combine function of activation_stats (parallel aggregation)';
COMMENT ON FUNCTION pgquant.activation_stats_serialfn(internal) IS 'serialize function of activation_stats (parallel aggregation)';
COMMENT ON FUNCTION pgquant.activation_stats_deserialfn(bytea, internal) IS 'deserialize function of activation_stats (parallel aggregation)';

CREATE AGGREGATE pgquant.activation_stats(x real[]) (
	SFUNC = pgquant.activation_stats_transfn,
	STYPE = internal,
	FINALFUNC = pgquant.activation_stats_finalfn,
	FINALFUNC_MODIFY = READ_WRITE,
	COMBINEFUNC = pgquant.activation_stats_combinefn,
	SERIALFUNC = pgquant.activation_stats_serialfn,
	DESERIALFUNC = pgquant.activation_stats_deserialfn,
	PARALLEL = SAFE
);
CREATE AGGREGATE pgquant.activation_stats(x real[], hessian boolean) (
	SFUNC = pgquant.activation_stats_transfn,
	STYPE = internal,
	FINALFUNC = pgquant.activation_stats_finalfn,
	FINALFUNC_MODIFY = READ_WRITE,
	COMBINEFUNC = pgquant.activation_stats_combinefn,
	SERIALFUNC = pgquant.activation_stats_serialfn,
	DESERIALFUNC = pgquant.activation_stats_deserialfn,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE pgquant.activation_stats(real[]) IS
	'statistics of activation rows (each value one row of features, or a 2-D batch of rows): X^T X, mean |x|, max |x|, sum x^2; streams, parallel';
COMMENT ON AGGREGATE pgquant.activation_stats(real[], boolean) IS
	'activation_stats with hessian => false: only the per-channel statistics, without X^T X';

CREATE FUNCTION pgquant.layer_stats_merge(a pgquant.layer_stats, b pgquant.layer_stats)
	RETURNS pgquant.layer_stats AS 'MODULE_PATHNAME', 'pgquant_layer_stats_merge'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION pgquant.layer_stats_merge(pgquant.layer_stats, pgquant.layer_stats) IS
	'statistics of the union of two sets of activation rows of one layer; NULL stands for no rows';

-- the tables ------------------------------------------------------------------

CREATE TABLE pgquant.calibration_sets (
	name text PRIMARY KEY CHECK (name <> ''),
	model text,
	created timestamptz NOT NULL DEFAULT now(),
	note text
);
COMMENT ON TABLE pgquant.calibration_sets IS
	'named calibration sets: the activations of one model on one body of text, summarized per layer in calibration_stats';
COMMENT ON COLUMN pgquant.calibration_sets.model IS 'the model whose activations these are (informational)';

CREATE TABLE pgquant.calibration_stats (
	set_name text NOT NULL REFERENCES pgquant.calibration_sets (name) ON UPDATE CASCADE ON DELETE CASCADE,
	layer text NOT NULL CHECK (layer <> ''),
	in_features integer NOT NULL CHECK (in_features > 0),
	nrows bigint NOT NULL CHECK (nrows > 0),
	hessian real[] CONSTRAINT hessian_shape CHECK (hessian IS NULL OR (array_ndims(hessian) = 2
		AND array_length(hessian, 1) = in_features AND array_length(hessian, 2) = in_features)),
	mean_abs real[] NOT NULL
		CONSTRAINT mean_abs_shape CHECK (array_ndims(mean_abs) = 1 AND array_length(mean_abs, 1) = in_features),
	max_abs real[] NOT NULL
		CONSTRAINT max_abs_shape CHECK (array_ndims(max_abs) = 1 AND array_length(max_abs, 1) = in_features),
	sum_sq double precision[] NOT NULL
		CONSTRAINT sum_sq_shape CHECK (array_ndims(sum_sq) = 1 AND array_length(sum_sq, 1) = in_features),
	updated timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (set_name, layer)
);
-- the Hessian is large and compresses poorly: store it out of line without trying
ALTER TABLE pgquant.calibration_stats ALTER COLUMN hessian SET STORAGE EXTERNAL;
COMMENT ON TABLE pgquant.calibration_stats IS
	'per-layer statistics of a calibration set''s activations X (nrows x in_features), as pgquant.activation_stats computes them';
COMMENT ON COLUMN pgquant.calibration_stats.hessian IS 'X^T X summed over the rows (in_features x in_features); GPTQ''s H is 2 X^T X / nrows';
COMMENT ON COLUMN pgquant.calibration_stats.mean_abs IS 'mean |x| per input channel (AWQ)';
COMMENT ON COLUMN pgquant.calibration_stats.max_abs IS 'max |x| per input channel (SmoothQuant)';
COMMENT ON COLUMN pgquant.calibration_stats.sum_sq IS 'sum of x^2 per input channel (importance matrix); the diagonal of X^T X';

-- the rows are user data: pg_dump dumps them although the tables belong to the extension
SELECT pg_catalog.pg_extension_config_dump('pgquant.calibration_sets', '');
SELECT pg_catalog.pg_extension_config_dump('pgquant.calibration_stats', '');

GRANT SELECT ON pgquant.calibration_sets, pgquant.calibration_stats TO PUBLIC;

-- functions over the tables --------------------------------------------------------

CREATE FUNCTION pgquant.calibration_create(name text, model text DEFAULT NULL, note text DEFAULT NULL)
RETURNS text LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF name IS NULL OR name = '' THEN
		RAISE EXCEPTION 'a calibration set needs a non-empty name' USING ERRCODE = '22023';
	END IF;
	INSERT INTO pgquant.calibration_sets (name, model, note)
	VALUES (calibration_create.name, calibration_create.model, calibration_create.note);
	RETURN name;
EXCEPTION WHEN unique_violation THEN
	RAISE EXCEPTION 'calibration set "%" already exists', name USING ERRCODE = '42710',
		HINT = 'Add to it with pgquant.calibration_add(), or delete it from pgquant.calibration_sets first.';
END $$;
COMMENT ON FUNCTION pgquant.calibration_create(text, text, text) IS
	'create an empty calibration set, optionally naming the model it calibrates';

CREATE FUNCTION pgquant.calibration_merge(set_name text, layer text, stats pgquant.layer_stats)
RETURNS bigint LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	total bigint;
	width integer;
BEGIN
	IF stats IS NULL THEN
		RAISE EXCEPTION 'calibration statistics must not be NULL' USING ERRCODE = '22004';
	END IF;
	IF layer IS NULL OR layer = '' THEN
		RAISE EXCEPTION 'a layer needs a non-empty name' USING ERRCODE = '22023';
	END IF;
	PERFORM 1 FROM pgquant.calibration_sets s WHERE s.name = calibration_merge.set_name FOR KEY SHARE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'calibration set "%" does not exist', set_name USING ERRCODE = '42704',
			HINT = 'Create it with pgquant.calibration_create().';
	END IF;
	SELECT c.in_features INTO width FROM pgquant.calibration_stats c
	WHERE c.set_name = calibration_merge.set_name AND c.layer = calibration_merge.layer;
	IF FOUND AND width <> (stats).in_features THEN
		RAISE EXCEPTION 'layer "%" of calibration set "%" has % input features, not %',
			layer, set_name, width, (stats).in_features USING ERRCODE = '22000',
			DETAIL = 'Every activation row of a layer has one value per input feature of the layer.';
	END IF;
	-- validate (and, for a new layer, keep) the statistics; concurrent adds to one layer
	-- serialize on its row lock, and each merges with what the other stored
	stats := pgquant.layer_stats_merge(NULL, stats);
	INSERT INTO pgquant.calibration_stats AS c
		(set_name, layer, in_features, nrows, hessian, mean_abs, max_abs, sum_sq)
	VALUES (calibration_merge.set_name, calibration_merge.layer, (stats).in_features, (stats).nrows,
			(stats).hessian, (stats).mean_abs, (stats).max_abs, (stats).sum_sq)
	ON CONFLICT ON CONSTRAINT calibration_stats_pkey DO UPDATE
	SET (in_features, nrows, hessian, mean_abs, max_abs, sum_sq, updated) =
		(SELECT m.in_features, m.nrows, m.hessian, m.mean_abs, m.max_abs, m.sum_sq, now()
		 FROM pgquant.layer_stats_merge(
			ROW(c.in_features, c.nrows, c.hessian, c.mean_abs, c.max_abs, c.sum_sq)::pgquant.layer_stats,
			ROW(excluded.in_features, excluded.nrows, excluded.hessian, excluded.mean_abs,
				excluded.max_abs, excluded.sum_sq)::pgquant.layer_stats) m)
	RETURNING c.nrows INTO total;
	RETURN total;
END $$;
COMMENT ON FUNCTION pgquant.calibration_merge(text, text, pgquant.layer_stats) IS
	'add statistics (from pgquant.activation_stats) to a layer of a calibration set; returns the layer''s row count';

CREATE FUNCTION pgquant.calibration_add(set_name text, layer text, activations real[], hessian boolean DEFAULT true)
RETURNS bigint LANGUAGE sql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
	SELECT pgquant.calibration_merge(set_name, layer,
		(SELECT pgquant.activation_stats(a, hessian) FROM (VALUES (activations)) v(a)));
$$;
COMMENT ON FUNCTION pgquant.calibration_add(text, text, real[], boolean) IS
	'add a batch of activation rows (rows x in_features) to a layer of a calibration set; returns the layer''s row count';
