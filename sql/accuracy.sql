-- Quantization error on seeded data: measured values, their ordering, and named ceilings.

CREATE TABLE acc_data AS
	SELECT 'gauss' AS dist, test_matrix(64, 512, 0.11) AS w
	UNION ALL SELECT 'heavy', test_matrix(64, 512, 0.12, true);

-- relative Frobenius error ceilings for RTN with groups of 128, by bit width
-- (a uniform step over about 5 standard deviations gives (5 / (2^b - 1)) / sqrt(12));
-- symmetric scales waste half the range on one-sided outliers, hence their own column
CREATE TABLE acc_ceiling (bits int PRIMARY KEY, gauss float8, heavy_asym float8, heavy_sym float8);
INSERT INTO acc_ceiling VALUES
	(2, 0.60, 0.75, 0.65), (3, 0.25, 0.33, 0.40), (4, 0.12, 0.16, 0.22), (5, 0.06, 0.08, 0.12),
	(6, 0.03, 0.04, 0.06), (7, 0.015, 0.02, 0.03), (8, 0.0075, 0.01, 0.015);

CREATE TABLE acc AS
SELECT dist, b AS bits, v.variant,
	(quant_error(w, quantize(w, v.method, b, v.gs, v.sym))).*
FROM acc_data, generate_series(2, 8) b,
	(VALUES ('asym g128', 'rtn', 128, false), ('sym g128', 'rtn', 128, true),
			('asym g32', 'rtn', 32, false), ('asym per-row', 'rtn', -1, false)) v(variant, method, gs, sym);
INSERT INTO acc
SELECT dist, 4, 'nf4 g' || gs, (quant_error(w, quantize(w, 'nf4', 4, gs))).*
FROM acc_data, (VALUES (32), (64), (128)) g(gs);

SELECT dist, bits, variant, round(rel_error::numeric, 4) AS rel_error, round(max_abs_error::numeric, 4) AS max_abs
FROM acc ORDER BY dist, variant, bits;

-- every RTN g128 error is under its ceiling
SELECT a.dist, a.bits, a.variant, a.rel_error, ceiling
FROM acc a JOIN acc_ceiling c USING (bits),
	LATERAL (SELECT CASE WHEN a.dist = 'gauss' THEN c.gauss
					WHEN a.variant = 'asym g128' THEN c.heavy_asym ELSE c.heavy_sym END AS ceiling) l
WHERE a.variant IN ('asym g128', 'sym g128') AND a.rel_error > ceiling;
SELECT count(*) AS checked_against_ceiling FROM acc WHERE variant IN ('asym g128', 'sym g128');

-- from 3 bits on, each extra bit nearly halves the error (ratio under 0.6), for every variant
SELECT a.dist, a.variant, a.bits, round((b.rel_error / a.rel_error)::numeric, 3) AS ratio
FROM acc a JOIN acc b ON b.dist = a.dist AND b.variant = a.variant AND b.bits = a.bits + 1
WHERE a.bits >= 3 AND b.rel_error / a.rel_error >= 0.6;
SELECT round(max(b.rel_error / a.rel_error)::numeric, 3) AS worst_ratio_2_to_3_bits
FROM acc a JOIN acc b ON b.dist = a.dist AND b.variant = a.variant AND b.bits = 3 AND a.bits = 2;

-- orderings that must hold: smaller groups beat larger ones, heavy tails hurt
-- per-row scales most, and NF4 beats 4-bit RTN at the same group size on Gaussian data
SELECT dist, bits, g128 < per_row AS g128_beats_per_row, g32 < g128 AS g32_beats_g128
FROM (SELECT dist, bits,
		max(rel_error) FILTER (WHERE variant = 'asym per-row') AS per_row,
		max(rel_error) FILTER (WHERE variant = 'asym g32') AS g32,
		max(rel_error) FILTER (WHERE variant = 'asym g128') AS g128
	  FROM acc GROUP BY dist, bits) s
ORDER BY dist, bits;
SELECT (SELECT rel_error FROM acc WHERE dist = 'gauss' AND variant = 'nf4 g128') <
	(SELECT rel_error FROM acc WHERE dist = 'gauss' AND variant = 'asym g128' AND bits = 4) AS nf4_beats_int4_gauss,
	(SELECT rel_error FROM acc WHERE dist = 'heavy' AND variant = 'asym per-row' AND bits = 4) /
	(SELECT rel_error FROM acc WHERE dist = 'gauss' AND variant = 'asym per-row' AND bits = 4) > 1.5
	AS heavy_tails_hurt_per_row;

-- per element, asymmetric RTN is off by at most half a step of its group:
-- with one group per row the step is (max(w, 0) - min(w, 0)) / (2^b - 1)
SELECT b AS bits, bool_and(e.max_abs_error <= step / 2 * 1.001) AS within_half_step
FROM generate_series(2, 8) b,
	LATERAL (SELECT test_matrix(1, 1000, 0.13 + b / 100.0) AS w) d,
	LATERAL (SELECT (greatest(max(x), 0) - least(min(x), 0)) / ((1 << b) - 1) AS step FROM unnest(w) x) s,
	LATERAL quant_error(w, quantize(w, 'rtn', b, -1)) e
GROUP BY b ORDER BY b;
