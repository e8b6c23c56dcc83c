-- administration -------------------------------------------------------------

CREATE SCHEMA pgquant;
COMMENT ON SCHEMA pgquant IS 'pgquant administration functions and, later, model and calibration tables';

CREATE FUNCTION pgquant.cuda_available() RETURNS boolean
	AS 'MODULE_PATHNAME', 'pgquant_cuda_available' LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;
COMMENT ON FUNCTION pgquant.cuda_available() IS
	'whether this backend can load the CUDA module and sees at least one CUDA device';
