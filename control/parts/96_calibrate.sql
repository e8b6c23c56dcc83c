
-- calibration from the in-database forward pass (src/calibrate.c, docs/calibration.md) --

CREATE FUNCTION pgquant.calibrate(model text, set_name text, texts text[], hessian boolean DEFAULT true)
	RETURNS bigint
	AS 'MODULE_PATHNAME', 'pgquant_calibrate' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION pgquant.calibrate(text, text, text[], boolean) IS
	'run the model over each text (from BOS, cut to seq_len) and add the statistics of every linear layer''s input activations to a calibration set, creating it when missing; returns the number of token positions run';
