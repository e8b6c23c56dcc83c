-- pgTAP: pgquant.device. On a machine with a CUDA device, GPU decoding returns the CPU's
-- bits; without one, 'auto' falls back silently and 'cuda' is a clear error.
BEGIN;
SELECT plan(5);

-- 1,048,576 weights: large enough that 'auto' picks the GPU when one exists
CREATE TEMP TABLE dev AS
SELECT q, dequantize(q) AS cpu
FROM (SELECT quantize(test_w, 'rtn', 4) AS q
	  FROM (SELECT array_agg(r) AS test_w FROM (
				SELECT array_agg(sin(i * 0.37 + j)::real ORDER BY j) AS r
				FROM generate_series(1, 1024) i, generate_series(1, 1024) j GROUP BY i) s) t) u;

CREATE TEMP TABLE small AS SELECT quantize('{1,2,3}', 'rtn', 8) AS q;

SELECT ok(pgquant.cuda_available() IS NOT NULL, 'cuda_available() answers without error');

SET pgquant.device = 'cpu';
SELECT ok((SELECT dequantize(q) = cpu FROM dev), 'cpu: the same result again');

SET pgquant.device = 'auto';
SELECT ok((SELECT dequantize(q) = cpu FROM dev), 'auto: identical bits, on whichever device it ran');

SET pgquant.device = 'cuda';
SELECT CASE WHEN pgquant.cuda_available()
	THEN ok((SELECT dequantize(q) = cpu FROM dev), 'cuda: identical bits to the CPU decoder')
	ELSE throws_ok('SELECT dequantize(q) FROM dev', '0A000', 'no CUDA device is available',
				   'cuda without a device: a clear error')
END;
SELECT CASE WHEN pgquant.cuda_available()
	THEN ok((SELECT dequantize(q) IS NOT NULL FROM small), 'cuda: small tensors decode too')
	ELSE throws_ok('SELECT dequantize(q) FROM small', '0A000', NULL,
				   'cuda without a device: an error even for a tiny tensor, never a silent fallback')
END;
RESET pgquant.device;

SELECT * FROM finish();
ROLLBACK;
