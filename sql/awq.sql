-- AWQ: activation-aware channel scales and clipping, with and without calibration data

-- independent activations whose every 16th channel is 20x larger (outlier channels)
CREATE FUNCTION awq_activations(rows int, cols int, seed float8) RETURNS real[] LANGUAGE plpgsql AS $$
DECLARE
	e real[] := test_matrix(rows, cols, seed);
	x real[];
BEGIN
	SELECT array_agg(r ORDER BY i) INTO x FROM (
		SELECT (k - 1) / cols AS i,
			array_agg((v * CASE WHEN (k - 1) % cols % 16 = 0 THEN 20 ELSE 1 END)::real ORDER BY k) AS r
		FROM unnest(e) WITH ORDINALITY u(v, k) GROUP BY 1) t;
	RETURN x;
END $$;
SELECT pgquant.calibration_create('aq');
SELECT pgquant.calibration_add('aq', 'l', awq_activations(600, 256, 0.81));
SELECT pgquant.calibration_add('aq', 'l-diag', awq_activations(600, 256, 0.81), hessian => false);
CREATE TABLE aq_w AS SELECT test_matrix(32, 256, 0.82, true) AS w;

-- AWQ against RTN on the layer's output, every width, groups of 128 (the default)
CREATE TABLE aq_err AS
SELECT b AS bits,
	(quant_error(w, quantize(w, 'rtn', b), 'aq', 'l')).output_error AS rtn,
	(quant_error(w, quantize(w, 'awq', b, calibration => 'aq', layer => 'l'), 'aq', 'l')).output_error AS awq,
	(quant_error(w, quantize(w, 'awq', b, calibration => 'aq', layer => 'l-diag'), 'aq', 'l')).output_error AS awq_diag,
	(quant_error(w, quantize(w, 'awq', b, sym => true, calibration => 'aq', layer => 'l'), 'aq', 'l')).output_error AS awq_sym
FROM aq_w, generate_series(2, 8) b;
-- named ceilings on awq / rtn (measured 0.22-0.29; symmetric AWQ against asymmetric RTN 0.27-0.44)
SELECT bits, round((awq / rtn)::numeric, 2) AS awq, round((awq_diag / rtn)::numeric, 2) AS awq_diag,
	round((awq_sym / rtn)::numeric, 2) AS awq_sym
FROM aq_err WHERE awq / rtn > 0.45 OR awq_diag / rtn > 0.45 OR awq_sym / rtn > 0.6;
SELECT count(*) AS checked, bool_and(awq < rtn AND awq_diag < rtn AND awq_sym < rtn) AS awq_always_below_rtn FROM aq_err;

-- the stored form: method awq, channel scales (decoders divide by them), default group 128
SELECT (qtensor_info(q)).method, (qtensor_info(q)).group_size, q::text LIKE '%channel_scales=yes%' AS channel_scales
FROM aq_w, quantize(w, 'awq', 4, calibration => 'aq', layer => 'l') q;
-- dequantize returns weights usable in place of w: the error is that of a 4-bit quantizer
SELECT (quant_error(w, quantize(w, 'awq', 4, calibration => 'aq', layer => 'l'))).rel_error < 0.25 AS close_to_w
FROM aq_w;

-- no calibration argument: the set named by pgquant.calibration (its one layer of that width) ...
SELECT pgquant.calibration_create('aq-one');
SELECT pgquant.calibration_add('aq-one', 'only', awq_activations(100, 256, 0.83));
SET pgquant.calibration = 'aq-one';
SELECT qtensor_send(quantize(w, 'awq', 4)) = qtensor_send(quantize(w, 'awq', 4, calibration => 'aq-one', layer => 'only'))
	AS setting_used FROM aq_w;
-- ... an error when the width matches several layers or none
SET pgquant.calibration = 'aq';
SELECT test_error($$SELECT quantize(w, 'awq', 4) FROM aq_w$$);
SELECT test_error($$SELECT quantize('{1,2,3}'::real[], 'awq', 4)$$);
RESET pgquant.calibration;
-- ... and without any, the data-free form, with a NOTICE saying so
SELECT (qtensor_info(q)).method, (quant_error(w, q)).rel_error < (quant_error(w, quantize(w, 'rtn', 4))).rel_error
	AS clipping_beats_rtn_on_weights
FROM aq_w, quantize(w, 'awq', 4) q;

-- a channel that never carries activations, and 1-D weights
SELECT pgquant.calibration_add('aq', 'dead',
	(SELECT array_agg(r ORDER BY i) FROM (SELECT i, array_agg(CASE WHEN j = 2 THEN 0 ELSE x[i][j] END ORDER BY j) AS r
	 FROM (SELECT awq_activations(50, 8, 0.84) AS x) s, generate_series(1, 50) i, generate_series(1, 8) j GROUP BY i) t));
SELECT array_dims(d) AS dims, (SELECT bool_and(v = v AND abs(v) < 100) FROM unnest(d) v) AS finite
FROM dequantize(quantize('{0.5,-1,0.25,2,-0.75,1.5,0.1,-0.3}'::real[], 'awq', 4, calibration => 'aq', layer => 'dead')) d;

-- bad calls
SELECT test_error($$SELECT quantize(w, 'awq', 4, layer => 'l') FROM aq_w$$);
SELECT test_error($$SELECT quantize(w, 'awq', 4, calibration => 'aq', layer => 'nope') FROM aq_w$$);
SELECT test_error($$SELECT quantize(w[1:32][1:100], 'awq', 4, calibration => 'aq', layer => 'l') FROM aq_w$$);
SELECT test_error($$SELECT quantize(w, 'awq', 4, act_order => true, calibration => 'aq', layer => 'l') FROM aq_w$$);
SELECT test_error($$SELECT quantize(w, 'awq', 9, calibration => 'aq', layer => 'l') FROM aq_w$$);

-- leave no calibration sets behind for the files that follow
DELETE FROM pgquant.calibration_sets WHERE name IN ('aq', 'aq-one');
