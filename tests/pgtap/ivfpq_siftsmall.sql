-- pgTAP: recall@10 of the ivfpq index on the real SIFT vectors (TEXMEX siftsmall:
-- 10,000 x 128, 100 queries) against the file's exact ground truth, for fixed
-- build options and search settings, read on the server from the data directory
-- (setting pgquant_test.data_dir).  Without it, every test skips.  The floors sit
-- a little below the values measured when they were set (docs/benchmarks.md).
BEGIN;
SELECT plan(11);

CREATE FUNCTION pg_temp.recall(op text, truth text, tbl text DEFAULT 'sift') RETURNS numeric LANGUAGE plpgsql AS $$
DECLARE
	total numeric;
BEGIN
	SET LOCAL enable_seqscan = off;
	EXECUTE format($q$
		SELECT avg((SELECT count(*) FROM (SELECT s.id FROM %I s ORDER BY s.v %s q.v LIMIT 10) t
					WHERE t.id = ANY (g.top10)) / 10.0)
		FROM siftq q JOIN %I g USING (id)$q$, tbl, op, truth) INTO total;
	SET LOCAL enable_seqscan = on;
	RETURN round(total, 3);
END $$;

CREATE FUNCTION pg_temp.ivfpq_siftsmall_tests() RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
	dir text := nullif(current_setting('pgquant_test.data_dir', true), '');
	r numeric;
BEGIN
	IF dir IS NULL OR pg_stat_file(dir || '/siftsmall/siftsmall_base.fvecs', true) IS NULL THEN
		RETURN NEXT skip('no siftsmall data: set pgquant_test.data_dir to a directory holding siftsmall/', 11);
		RETURN;
	END IF;
	CREATE TEMP TABLE sift AS
		SELECT id - 1 AS id, vector AS v FROM pgquant.read_fvecs(pg_read_binary_file(dir || '/siftsmall/siftsmall_base.fvecs'));
	CREATE TEMP TABLE siftq AS
		SELECT id, vector AS v FROM pgquant.read_fvecs(pg_read_binary_file(dir || '/siftsmall/siftsmall_query.fvecs'));
	CREATE TEMP TABLE gt_l2 AS
		SELECT id, vector[1:10] AS top10 FROM pgquant.read_ivecs(pg_read_binary_file(dir || '/siftsmall/siftsmall_groundtruth.ivecs'));
	ANALYZE sift;

	CREATE INDEX sift_l2 ON sift USING ivfpq (v) WITH (lists = 64, m = 16, nbits = 8);
	RETURN NEXT is((SELECT entries FROM pgquant.ivfpq_check('sift_l2')), 10000::bigint,
		'L2 index (64 lists, 16 x 8-bit codes): 10,000 entries, structure checks out');
	-- 22 bytes per entry; at 10,000 rows the codebook (128 KB), the centroids and a
	-- partly filled page per list add about as much again
	RETURN NEXT cmp_ok((SELECT pg_relation_size('sift_l2') / 10000.0), '<', 80::numeric,
		'index size under 80 bytes per vector (a real[128] is 536)');

	SET LOCAL pgquant.probes = 8;
	SET LOCAL pgquant.rerank = 100;
	r := pg_temp.recall('<->', 'gt_l2');
	RAISE NOTICE 'siftsmall L2 recall@10, probes 8, rerank 100: %', r;
	RETURN NEXT cmp_ok(r, '>=', 0.97, 'recall@10 >= 0.97 at 8 probes, re-ranking 100');
	SET LOCAL pgquant.probes = 2;
	SET LOCAL pgquant.rerank = 0;
	r := pg_temp.recall('<->', 'gt_l2');
	RAISE NOTICE 'siftsmall L2 recall@10, probes 2, no re-ranking: %', r;
	RETURN NEXT cmp_ok(r, '>=', 0.62, 'recall@10 >= 0.62 at 2 probes in ADC order');
	SET LOCAL pgquant.probes = 2;
	SET LOCAL pgquant.rerank = 100;
	RETURN NEXT cmp_ok(pg_temp.recall('<->', 'gt_l2'), '>', r, 're-ranking raises recall at the same probes');
	SET LOCAL pgquant.probes = 64;
	SET LOCAL pgquant.rerank = 10000;
	RETURN NEXT is(pg_temp.recall('<->', 'gt_l2'), 1.000, 'every list and every candidate re-ranked: exact');

	-- inserts after the build keep recall: the second half of the table arrives later
	DROP INDEX sift_l2;
	CREATE TEMP TABLE sift_half AS SELECT * FROM sift WHERE id < 5000;
	CREATE INDEX sift_half_l2 ON sift_half USING ivfpq (v) WITH (lists = 64, m = 16, nbits = 8);
	INSERT INTO sift_half SELECT * FROM sift WHERE id >= 5000;
	SET LOCAL pgquant.probes = 8;
	SET LOCAL pgquant.rerank = 100;
	r := pg_temp.recall('<->', 'gt_l2', 'sift_half');
	RAISE NOTICE 'siftsmall L2 recall@10, half built and half inserted: %', r;
	RETURN NEXT cmp_ok(r, '>=', 0.95, 'built on half the rows, the other half inserted: recall@10 >= 0.95');
	RETURN NEXT is((SELECT entries FROM pgquant.ivfpq_check('sift_half_l2')), 10000::bigint, 'and the structure checks out');

	-- inner product and cosine against exact answers computed by sequential scan
	CREATE TEMP TABLE gt_ip AS SELECT q.id, ARRAY(SELECT s.id FROM sift s ORDER BY s.v <#> q.v, s.id LIMIT 10) AS top10 FROM siftq q;
	CREATE TEMP TABLE gt_cos AS SELECT q.id, ARRAY(SELECT s.id FROM sift s ORDER BY s.v <=> q.v, s.id LIMIT 10) AS top10 FROM siftq q;
	CREATE INDEX sift_ip ON sift USING ivfpq (v real_ip_ops) WITH (lists = 64, m = 16);
	r := pg_temp.recall('<#>', 'gt_ip');
	RAISE NOTICE 'siftsmall inner-product recall@10, probes 8, rerank 100: %', r;
	RETURN NEXT cmp_ok(r, '>=', 0.95, 'inner product: recall@10 >= 0.95 at 8 probes, re-ranking 100');
	DROP INDEX sift_ip;
	CREATE INDEX sift_cos ON sift USING ivfpq (v real_cosine_ops) WITH (lists = 64, m = 16);
	r := pg_temp.recall('<=>', 'gt_cos');
	RAISE NOTICE 'siftsmall cosine recall@10, probes 8, rerank 100: %', r;
	RETURN NEXT cmp_ok(r, '>=', 0.95, 'cosine: recall@10 >= 0.95 at 8 probes, re-ranking 100');
	-- 4-bit codes: half the bytes
	DROP INDEX sift_cos;
	CREATE INDEX sift_l2_4 ON sift USING ivfpq (v) WITH (lists = 64, m = 32, nbits = 4);
	r := pg_temp.recall('<->', 'gt_l2');
	RAISE NOTICE 'siftsmall L2 recall@10, 32 x 4-bit codes, probes 8, rerank 100: %', r;
	RETURN NEXT cmp_ok(r, '>=', 0.95, '32 x 4-bit codes: recall@10 >= 0.95 at 8 probes, re-ranking 100');
END $$;

SELECT * FROM pg_temp.ivfpq_siftsmall_tests();

SELECT * FROM finish();
ROLLBACK;
