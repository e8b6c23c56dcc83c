-- pgTAP: PQ and RVQ codebooks on the real SIFT vectors (TEXMEX siftsmall: 10,000 x 128
-- base, 100 queries, exact top-100 ground truth), read on the server from the data
-- directory (setting pgquant_test.data_dir).  Without it, every test skips.
-- Recall floors are for fixed settings and seeds; measured values are in
-- docs/benchmarks.md, and the floors sit a little below them.
BEGIN;
SELECT plan(12);

CREATE FUNCTION pg_temp.siftsmall_pq_tests() RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
	dir text := nullif(current_setting('pgquant_test.data_dir', true), '');
	r record;
BEGIN
	IF dir IS NULL OR pg_stat_file(dir || '/siftsmall/siftsmall_base.fvecs', true) IS NULL THEN
		RETURN NEXT skip('no siftsmall data: set pgquant_test.data_dir to a directory holding siftsmall/', 12);
		RETURN;
	END IF;
	CREATE TEMP TABLE sift AS
		SELECT id - 1 AS id, vector FROM pgquant.read_fvecs(pg_read_binary_file(dir || '/siftsmall/siftsmall_base.fvecs'));
	CREATE TEMP TABLE siftq AS
		SELECT id, vector FROM pgquant.read_fvecs(pg_read_binary_file(dir || '/siftsmall/siftsmall_query.fvecs'));
	CREATE TEMP TABLE siftgt AS
		SELECT id, vector[1:10] AS top10 FROM pgquant.read_ivecs(pg_read_binary_file(dir || '/siftsmall/siftsmall_groundtruth.ivecs'));

	RETURN NEXT is((SELECT count(*) FROM sift WHERE array_length(vector, 1) = 128), 10000::bigint,
		'siftsmall: 10,000 base vectors of 128 dimensions');
	RETURN NEXT is((SELECT count(*) FROM siftq), 100::bigint, 'siftsmall: 100 queries');
	-- the loader agrees with the file's own ground truth on the first three queries
	RETURN NEXT is((SELECT count(*) FROM siftq q JOIN siftgt g USING (id) WHERE q.id <= 3 AND g.top10 = ARRAY(
			SELECT s.id FROM sift s
			ORDER BY (SELECT sum((a - b) ^ 2) FROM unnest(s.vector, q.vector) u(a, b)), s.id LIMIT 10)),
		3::bigint, 'exact top-10 computed in SQL equals the ground truth file for queries 1-3');

	CREATE TEMP TABLE books AS
		SELECT 'pq16x8' AS name, pq_register(pq_train(vector, 16, 8, '{"seed": 1, "niter": 20}')) AS pq,
			NULL::rvq_codebook AS rvq FROM sift
		UNION ALL SELECT 'pq8x8', pq_register(pq_train(vector, 8, 8, '{"seed": 1, "niter": 20}')), NULL FROM sift
		UNION ALL SELECT 'rvq4x8', NULL, pq_register(rvq_train(vector, 4, 8, '{"seed": 1, "niter": 20}')) FROM sift;
	CREATE TEMP TABLE codes AS
		SELECT s.id, b.name, coalesce(pq_encode(b.pq, s.vector), pq_encode(b.rvq, s.vector)) AS code
		FROM sift s, books b;

	-- recall@10 of ADC alone, and of ADC's top 100 re-ranked by the exact distance
	CREATE TEMP TABLE recall AS
	SELECT b.name,
		avg((SELECT count(*) FROM (SELECT c.id FROM codes c WHERE c.name = b.name
				ORDER BY pq_distance(c.code, q.vector) LIMIT 10) t WHERE t.id = ANY (g.top10)) / 10.0) AS adc,
		avg((SELECT count(*) FROM (
				SELECT t.id FROM (SELECT c.id FROM codes c WHERE c.name = b.name
					ORDER BY pq_distance(c.code, q.vector) LIMIT 100) t JOIN sift s USING (id)
				ORDER BY (SELECT sum((x - y) ^ 2) FROM unnest(s.vector, q.vector) u(x, y)) LIMIT 10) t
			WHERE t.id = ANY (g.top10)) / 10.0) AS reranked
	FROM books b, siftq q JOIN siftgt g USING (id) GROUP BY b.name;
	FOR r IN SELECT * FROM recall ORDER BY name LOOP
		RAISE NOTICE 'siftsmall % recall@10: ADC %, re-ranked top 100 %', r.name, round(r.adc, 3), round(r.reranked, 3);
	END LOOP;

	RETURN NEXT cmp_ok((SELECT adc FROM recall WHERE name = 'pq16x8'), '>=', 0.70,
		'PQ 16 x 8 bits (16 bytes): ADC recall@10 >= 0.70');
	RETURN NEXT cmp_ok((SELECT reranked FROM recall WHERE name = 'pq16x8'), '>=', 0.97,
		'PQ 16 x 8 bits: ADC top 100 re-ranked exactly, recall@10 >= 0.97');
	RETURN NEXT cmp_ok((SELECT adc FROM recall WHERE name = 'pq8x8'), '>=', 0.52,
		'PQ 8 x 8 bits (8 bytes): ADC recall@10 >= 0.52');
	RETURN NEXT cmp_ok((SELECT adc FROM recall WHERE name = 'pq8x8'), '<', (SELECT adc FROM recall WHERE name = 'pq16x8'),
		'16 subquantizers recall more than 8');
	RETURN NEXT cmp_ok((SELECT adc FROM recall WHERE name = 'rvq4x8'), '>=', 0.44,
		'RVQ 4 levels x 8 bits (4 bytes of codes): ADC recall@10 >= 0.44');

	-- the registry and an explicit codebook give the same distances; ADC equals the
	-- distance to the decoded vector
	RETURN NEXT is((SELECT count(*) FROM codes c, books b, siftq q
			WHERE c.name = b.name AND q.id = 7 AND c.id < 500
			AND pq_distance(c.code, q.vector) <> coalesce(pq_distance(b.pq, c.code, q.vector), pq_distance(b.rvq, c.code, q.vector))),
		0::bigint, 'pq_distance through the registry equals pq_distance with the codebook given');
	RETURN NEXT is((SELECT count(*) FROM codes c, siftq q WHERE q.id = 7 AND c.id < 300
			AND abs(pq_distance(c.code, q.vector) - sqrt((SELECT sum((a - b) ^ 2) FROM unnest(pq_decode(c.code), q.vector) u(a, b))))
				> 1e-3 * (1 + pq_distance(c.code, q.vector))),
		0::bigint, 'ADC L2 equals the L2 distance to the decoded vector (PQ and RVQ)');
	RETURN NEXT is((SELECT count(*) FROM codes c, siftq q WHERE q.id = 7 AND c.id < 300
			AND abs(pq_inner_product(c.code, q.vector) - (SELECT sum(a * b) FROM unnest(pq_decode(c.code), q.vector) u(a, b)))
				> 1e-5 * (1 + abs(pq_inner_product(c.code, q.vector)))),
		0::bigint, 'ADC inner product equals the inner product with the decoded vector');
	RETURN NEXT is((SELECT count(*) FROM codes c, siftq q WHERE q.id = 7 AND c.id < 300
			AND abs(pq_cosine_distance(c.code, q.vector) - (1 - (SELECT sum(a * b) / sqrt(sum(a * a) * sum(b * b))
				FROM unnest(pq_decode(c.code), q.vector) u(a, b)))) > 1e-5),
		0::bigint, 'ADC cosine distance equals the cosine distance to the decoded vector');
END $$;

SELECT * FROM pg_temp.siftsmall_pq_tests();

SELECT * FROM finish();
ROLLBACK;
