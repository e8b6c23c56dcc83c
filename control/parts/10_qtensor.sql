-- the qtensor type and calibration-free quantizers

-- the qtensor type ---------------------------------------------------------

CREATE TYPE qtensor;

CREATE FUNCTION qtensor_in(cstring) RETURNS qtensor
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION qtensor_out(qtensor) RETURNS cstring
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION qtensor_recv(internal) RETURNS qtensor
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION qtensor_send(qtensor) RETURNS bytea
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE TYPE qtensor (
	INPUT = qtensor_in,
	OUTPUT = qtensor_out,
	RECEIVE = qtensor_recv,
	SEND = qtensor_send,
	INTERNALLENGTH = VARIABLE,
	ALIGNMENT = double,
	STORAGE = extended
);

COMMENT ON TYPE qtensor IS 'quantized 1-D or 2-D tensor: 2-8 bit or NF4 codes with group-wise scales';
COMMENT ON FUNCTION qtensor_in(cstring) IS 'text input of qtensor';
COMMENT ON FUNCTION qtensor_out(qtensor) IS 'text output of qtensor';
COMMENT ON FUNCTION qtensor_recv(internal) IS 'binary input of qtensor';
COMMENT ON FUNCTION qtensor_send(qtensor) IS 'binary output of qtensor, in network byte order';

-- quantizing and measuring ---------------------------------------------------

-- STABLE, not IMMUTABLE: gptq and awq read calibration tables and the pgquant.calibration setting
CREATE FUNCTION quantize(w real[], method text, bits integer,
						 group_size integer DEFAULT NULL, sym boolean DEFAULT false,
						 calibration text DEFAULT NULL, layer text DEFAULT NULL,
						 act_order boolean DEFAULT false, static_groups boolean DEFAULT false,
						 damp double precision DEFAULT 0.01)
	RETURNS qtensor
	AS 'MODULE_PATHNAME', 'pgquant_quantize' LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION quantize(real[], text, integer, integer, boolean, text, text, boolean, boolean, double precision) IS
	'quantize a 1-D or 2-D real[] with rtn (default group 128), nf4 (4 bits, group 64), hqq (group 64) or, with a calibration set''s statistics of the layer, awq or gptq (group 128)';

CREATE FUNCTION dequantize(q qtensor) RETURNS real[]
	AS 'MODULE_PATHNAME', 'pgquant_dequantize' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION dequantize(qtensor) IS 'decode a qtensor to a real[] of its original shape';

CREATE FUNCTION qtensor_info(q qtensor,
							 OUT method text, OUT encoding text, OUT bits integer,
							 OUT group_size integer, OUT shape integer[], OUT sym boolean,
							 OUT scale_type text, OUT bytes bigint, OUT bits_per_weight double precision)
	RETURNS record
	AS 'MODULE_PATHNAME', 'pgquant_qtensor_info' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION qtensor_info(qtensor) IS
	'format of a qtensor: method, encoding, bits, group size, shape, symmetry, scale type, stored bytes and bits per weight';

CREATE FUNCTION quant_error(w real[], q qtensor,
							OUT rel_error double precision, OUT max_abs_error double precision)
	RETURNS record
	AS 'MODULE_PATHNAME', 'pgquant_quant_error' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION quant_error(real[], qtensor) IS
	'relative Frobenius error ||w - dequantize(q)|| / ||w|| and largest absolute error';

-- STABLE: reads the layer's X^T X from pgquant.calibration_stats
CREATE FUNCTION quant_error(w real[], q qtensor, calibration text, layer text,
							OUT rel_error double precision, OUT max_abs_error double precision,
							OUT output_error double precision)
	RETURNS record
	AS 'MODULE_PATHNAME', 'pgquant_quant_error_calib' LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION quant_error(real[], qtensor, text, text) IS
	'quant_error plus the relative output error ||X W^T - X Q^T||^2 / ||X W^T||^2 over a calibration set''s activations X of the layer (from its X^T X; calibration NULL: pgquant.calibration)';

