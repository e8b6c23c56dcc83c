-- quantize, dequantize, qtensor_info and quant_error

-- values on the quantization grid come back exactly, at every bit width
-- (one group per row: at 8 bits the 256 grid values would fill two groups of 128)
SELECT b AS bits,
	dequantize(quantize(g, 'rtn', b, -1)) = g AS asym_exact,
	dequantize(quantize(g2, 'rtn', b, -1, sym => true)) = g2 AS sym_exact
FROM generate_series(2, 8) b,
	LATERAL (SELECT array_agg((k * 0.25)::real ORDER BY k) AS g
			 FROM generate_series(-(1 << (b - 1)), (1 << (b - 1)) - 1) k) a,
	LATERAL (SELECT array_agg((k * -0.5)::real ORDER BY k) AS g2
			 FROM generate_series(-(1 << (b - 1)), (1 << (b - 1)) - 1) k) s;
-- the 16 NF4 levels (scaled by a power of two) come back exactly
SELECT dequantize(quantize(l, 'nf4', 4)) = l AS nf4_exact FROM
	(SELECT dequantize(quantize('{-1,-0.69619280,-0.52507305,-0.39491749,-0.28444138,-0.18477343,-0.09105004,0,
		0.07958030,0.16093020,0.24611230,0.33791524,0.44070983,0.56261700,0.72295684,1}'::real[], 'nf4', 4)) l) s;

-- quantize(dequantize(q)) = q, bit for bit, for every format
SELECT method, bits, gs, sym,
	qtensor_send(quantize(dequantize(q), method, bits, gs, sym)) = qtensor_send(q) AS idempotent
FROM (VALUES ('rtn', 2, 128, false), ('rtn', 3, 64, false), ('rtn', 4, 128, true), ('rtn', 5, 32, true),
			 ('rtn', 6, -1, false), ('rtn', 7, 48, false), ('rtn', 8, 128, true), ('nf4', 4, 64, false),
			 ('nf4', 4, 50, false)) v(method, bits, gs, sym),
	LATERAL (SELECT quantize(test_matrix(8, 200, 0.3), method, bits, gs, sym) AS q) s;

-- shapes: 1-D stays 1-D, 2-D stays 2-D, a one-row matrix stays 2-D
SELECT array_dims(dequantize(quantize('{1,2,3}', 'rtn', 4))) AS one_d,
	array_dims(dequantize(quantize('{{1,2,3}}', 'rtn', 4))) AS one_row,
	array_dims(dequantize(quantize(test_matrix(3, 7, 0.4), 'nf4', 4))) AS two_d;
-- lower bounds other than 1 are accepted; the result starts at 1
SELECT dequantize(quantize('[0:2]={1,2,3}'::real[], 'rtn', 8, sym => true));

SELECT (qtensor_info(quantize(test_matrix(4, 300, 0.5), 'rtn', 3))).*;
SELECT (qtensor_info(quantize(test_matrix(4, 300, 0.5), 'rtn', 4, group_size => -1, sym => true))).*;
SELECT (qtensor_info(quantize(test_matrix(4, 300, 0.5), 'nf4', 4))).*;
SELECT (qtensor_info(quantize('{1,2}', 'rtn', 2))).*;

-- bytes follow the layout: 32-byte header, scales and zero points padded to 8, packed codes
SELECT b AS bits, (qtensor_info(q)).bytes,
	32 + 8 * ceil(64 * 2 * 2 / 8.0) + 8 * ceil(64 * 2 / 8.0) + 64 * ceil(256 * b / 8.0) AS expected_bytes,
	round((qtensor_info(q)).bits_per_weight::numeric, 3) AS bits_per_weight
FROM generate_series(2, 8) b, LATERAL (SELECT quantize(test_matrix(64, 256, 0.6), 'rtn', b) AS q) s;

-- scales are fp16 when every group scale fits its normal range, else fp32
SELECT (qtensor_info(quantize('{1,2,3}', 'rtn', 4))).scale_type AS normal,
	(qtensor_info(quantize('{1e-6,2e-6,3e-6}', 'rtn', 4))).scale_type AS tiny,
	(qtensor_info(quantize('{1e6,-2e6,3e6}', 'rtn', 4))).scale_type AS huge;
SELECT dequantize(quantize('{1e6,-2e6,3e6}', 'rtn', 8)) AS huge_8bit;
SELECT (quant_error(w, quantize(w, 'rtn', 8))).rel_error < 0.01 AS tiny_values_ok
FROM (SELECT '{1e-6,2e-6,-3e-6,4e-7}'::real[] AS w) s;

-- degenerate groups: all zeros, one value, constant rows
SELECT dequantize(quantize('{0,0,0,0}', 'rtn', 4)) AS zeros,
	dequantize(quantize('{0,0,0,0}', 'nf4', 4)) AS zeros_nf4,
	dequantize(quantize('{-3.5}', 'rtn', 2)) AS single,
	dequantize(quantize('{{2,2,2},{-1,-1,-1}}', 'rtn', 3)) AS constant_rows;

-- a tail group: 130 columns at group 64 = groups of 64, 64 and 2
SELECT (qtensor_info(q)).bytes, (dequantize(q))[1:2][129:130] AS tail, (test_matrix(2, 130, 0.7))[1:2][129:130] AS original
FROM (SELECT quantize(test_matrix(2, 130, 0.7), 'rtn', 8, 64) AS q) s;
SELECT round((quant_error(w, quantize(w, 'rtn', 4, 64))).rel_error::numeric, 4) AS tail_group_error
FROM (SELECT test_matrix(2, 130, 0.7) AS w) s;

-- quant_error: exact on the grid, the documented definition otherwise
SELECT (quant_error('{0.25,0.5,-0.75}', quantize('{0.25,0.5,-0.75}', 'rtn', 4))).*;
SELECT (quant_error('{0,0}', quantize('{0,0}', 'rtn', 4))).*;
SELECT round((e).rel_error::numeric, 6) = round(sqrt(
		(SELECT sum((a - b)^2) FROM unnest(w, dequantize(q)) u(a, b)) /
		(SELECT sum(a^2) FROM unnest(w) a))::numeric, 6) AS matches_definition,
	(e).max_abs_error = (SELECT max(abs(a - b)) FROM unnest(w, dequantize(q)) u(a, b)) AS max_matches
FROM (SELECT w, q, quant_error(w, q) AS e
	  FROM (SELECT test_matrix(6, 50, 0.8) AS w) s, LATERAL (SELECT quantize(w, 'rtn', 3, 16) AS q) t) u;

-- NULL arguments give NULL
SELECT quantize(NULL, 'rtn', 4) IS NULL AS a, quantize('{1}', NULL, 4) IS NULL AS b,
	quantize('{1}', 'rtn', NULL) IS NULL AS c, dequantize(NULL) IS NULL AS d;
-- a NULL group size means the method's default
SELECT (qtensor_info(quantize('{1,2}', 'rtn', 4, NULL))).group_size AS rtn_default,
	(qtensor_info(quantize('{1,2}', 'nf4', 4, NULL))).group_size AS nf4_default;

-- device setting: cpu always works; auto falls back to the CPU without a GPU
SET pgquant.device = 'cpu';
SELECT dequantize(quantize('{1,2,3,4}', 'rtn', 8));
SET pgquant.device = 'auto';
SELECT dequantize(quantize('{1,2,3,4}', 'rtn', 8));
RESET pgquant.device;
SELECT test_error($$SET pgquant.device = 'tpu'$$);
SELECT test_error($$SET pgquant.no_such_setting = 1$$);
