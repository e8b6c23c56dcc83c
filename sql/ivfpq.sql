-- the real[] distance operators and the ivfpq index: options, plans, results
-- against a sequential scan, inserts, vacuum, the untrained state, the
-- structure check, the operator class validator, and errors

-- operators: pgvector's spelling and values
SELECT '{1,2,3}'::real[] <-> '{4,6,3}' AS l2, '{1,2,3}'::real[] <#> '{4,6,3}' AS neg_ip,
	inner_product('{1,2,3}', '{4,6,3}') AS ip, round(('{1,0}'::real[] <=> '{1,1}')::numeric, 6) AS cos,
	'{1,0}'::real[] <=> '{-1,0}' AS opposite, '{0,0}'::real[] <=> '{1,1}' AS zero;
SELECT test_error($$SELECT '{1,2}'::real[] <-> '{1,2,3}'$$);
SELECT test_error($$SELECT '{1,NaN}'::real[] <-> '{1,2}'$$);
SELECT test_error($$SELECT '{1,NULL}'::real[] <#> '{1,2}'$$);
SELECT test_error($$SELECT '{{1,2},{3,4}}'::real[] <=> '{1,2}'$$);
SELECT oprname, oprleft::regtype, oprright::regtype, oprcode
FROM pg_operator WHERE oprname IN ('<->', '<#>', '<=>') AND oprleft = 'real[]'::regtype ORDER BY 1;

-- 2,000 vectors of 16 dimensions in 8 clusters, and some NULLs
CREATE TABLE items (id int PRIMARY KEY, v real[]);
INSERT INTO items
SELECT i, CASE WHEN i % 250 = 0 THEN NULL ELSE
	(SELECT array_agg((3 * cos((i % 8) * 0.7 + j * 1.3) + 0.4 * sin(i * 1.618 + j * 2.17))::real ORDER BY j)
	 FROM generate_series(1, 16) j) END
FROM generate_series(1, 2000) i;
CREATE TABLE queries AS SELECT id, v FROM items WHERE id % 97 = 1 AND v IS NOT NULL;

CREATE INDEX items_l2 ON items USING ivfpq (v) WITH (lists = 8, m = 4, nbits = 4);
SELECT * FROM pgquant.ivfpq_check('items_l2');
SELECT amname, opcname, opcdefault, amvalidate(c.oid)
FROM pg_opclass c JOIN pg_am a ON a.oid = c.opcmethod WHERE amname = 'ivfpq' ORDER BY opcname;

-- the index serves ORDER BY ... LIMIT only
EXPLAIN (COSTS OFF) SELECT id FROM items ORDER BY v <-> '{1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1}' LIMIT 5;
EXPLAIN (COSTS OFF) SELECT id FROM items ORDER BY v <-> '{1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1}';
EXPLAIN (COSTS OFF) SELECT id FROM items WHERE v IS NOT NULL LIMIT 5;
-- an L2 index does not order by inner product
EXPLAIN (COSTS OFF) SELECT id FROM items ORDER BY v <#> '{1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1}' LIMIT 5;

-- a helper: how many of the index's top k are the exact top k, summed over the queries
CREATE FUNCTION pg_temp.hits(op text, k int) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
	total bigint := 0;
	q record;
	idx int[];
	ex int[];
BEGIN
	FOR q IN SELECT * FROM queries ORDER BY id LOOP
		SET LOCAL enable_seqscan = off;
		EXECUTE format('SELECT array_agg(id) FROM (SELECT id FROM items ORDER BY v %s $1 LIMIT %s) s', op, k)
			INTO idx USING q.v;
		SET LOCAL enable_seqscan = on;
		SET LOCAL enable_indexscan = off;
		EXECUTE format('SELECT array_agg(id) FROM (SELECT id FROM items ORDER BY v %s $1, id LIMIT %s) s', op, k)
			INTO ex USING q.v;
		SET LOCAL enable_indexscan = on;
		total := total + (SELECT count(*) FROM unnest(idx) i WHERE i = ANY (ex));
	END LOOP;
	RETURN total;
END $$;
SELECT count(*) AS queries FROM queries;
-- probing every list and re-ranking every candidate is exact
SET pgquant.probes = 8;
SET pgquant.rerank = 2000;
SELECT pg_temp.hits('<->', 10) AS exact_all_probes;
-- the defaults (10 probes, capped at 8 lists; re-rank 100) still find nearly all
RESET pgquant.probes;
RESET pgquant.rerank;
SELECT pg_temp.hits('<->', 10) >= 0.95 * 10 * (SELECT count(*) FROM queries) AS good_recall;
-- one probe and no re-ranking: ADC order within the nearest list
SET pgquant.probes = 1;
SET pgquant.rerank = 0;
SELECT pg_temp.hits('<->', 10) > 0 AS some_recall;
RESET pgquant.probes;
RESET pgquant.rerank;
-- the distances returned are the operator's, in order
SET enable_seqscan = off;
SELECT count(*) AS rows, bool_and(d = v <-> q) AS exact, bool_and(d >= lag_d) AS ordered FROM (
	SELECT v, q, d, lag(d, 1, 0::float8) OVER () AS lag_d FROM (
		SELECT i.v, q.v AS q, i.v <-> q.v AS d FROM items i, (SELECT v FROM queries LIMIT 1) q
		ORDER BY i.v <-> q.v LIMIT 20) s) t;
RESET enable_seqscan;

-- inner product and cosine operator classes
CREATE INDEX items_ip ON items USING ivfpq (v real_ip_ops) WITH (lists = 8, m = 8, nbits = 5);
CREATE INDEX items_cos ON items USING ivfpq (v real_cosine_ops) WITH (lists = 8, nbits = 4);
EXPLAIN (COSTS OFF) SELECT id FROM items ORDER BY v <#> '{1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1}' LIMIT 5;
EXPLAIN (COSTS OFF) SELECT id FROM items ORDER BY v <=> '{1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1}' LIMIT 5;
SELECT (pgquant.ivfpq_check('items_ip')).*;
SELECT (pgquant.ivfpq_check('items_cos')).*;
SET pgquant.probes = 8;
SET pgquant.rerank = 2000;
SELECT pg_temp.hits('<#>', 10) AS ip_exact, pg_temp.hits('<=>', 10) AS cos_exact;
RESET pgquant.probes;
RESET pgquant.rerank;
DROP INDEX items_ip, items_cos;

-- inserts after the build, deletes and vacuum
INSERT INTO items SELECT id + 10000, v FROM items WHERE id <= 300;
SELECT entries FROM pgquant.ivfpq_check('items_l2');
SET pgquant.probes = 8;
SET pgquant.rerank = 3000;
SET enable_seqscan = off;
SELECT array_agg(id ORDER BY id) FROM (SELECT id FROM items ORDER BY v <-> (SELECT v FROM items WHERE id = 17) LIMIT 2) s;
DELETE FROM items WHERE id > 10000 OR id % 3 = 0;
VACUUM items;
SELECT entries, entries = (SELECT count(v) FROM items) AS matches_table FROM pgquant.ivfpq_check('items_l2');
SELECT array_agg(id ORDER BY id) FROM (SELECT id FROM items ORDER BY v <-> (SELECT v FROM items WHERE id = 17) LIMIT 2) s;
-- the space vacuum freed is reused: pages stay the same for the same number of rows
SELECT pages AS pages_before FROM pgquant.ivfpq_check('items_l2') \gset
INSERT INTO items SELECT id + 20000, v FROM items WHERE id < 600;
SELECT pages = :pages_before AS reused, entries FROM pgquant.ivfpq_check('items_l2');
RESET enable_seqscan;
RESET pgquant.probes;
RESET pgquant.rerank;
SELECT pg_temp.hits('<->', 5) >= 0.9 * 5 * (SELECT count(*) FROM queries) AS recall_after_churn;

-- NULL vectors are not indexed; a NULL query returns rows in no order
SET enable_seqscan = off;
SELECT count(*) FROM (SELECT id FROM items ORDER BY v <-> NULL LIMIT 5) s;
RESET enable_seqscan;

-- an empty table builds an untrained index; it answers exactly and fixes its dimension at the first row
CREATE TABLE small (id int, v real[]);
CREATE INDEX small_idx ON small USING ivfpq (v) WITH (lists = 4);
SELECT * FROM pgquant.ivfpq_check('small_idx');
INSERT INTO small SELECT i, ARRAY[i, 2 * i, i % 3]::real[] FROM generate_series(1, 40) i;
INSERT INTO small VALUES (0, NULL);
SELECT * FROM pgquant.ivfpq_check('small_idx');
SET enable_seqscan = off;
SELECT id, round((v <-> '{10,20,1}')::numeric, 4) AS d FROM small ORDER BY v <-> '{10,20,1}' LIMIT 4;
RESET enable_seqscan;
SELECT test_error($$INSERT INTO small VALUES (99, '{1,2}')$$);
SELECT test_error($$INSERT INTO small VALUES (99, '{1,NaN,3}')$$);
SELECT test_error($$INSERT INTO small VALUES (99, '{}')$$);
-- a tiny table: fewer rows than 2^nbits stays untrained (with a notice); enough rows train
CREATE INDEX small_idx8 ON small USING ivfpq (v) WITH (lists = 4);
CREATE INDEX small_idx2 ON small USING ivfpq (v) WITH (lists = 4, nbits = 2);
SELECT trained, lists, m, nbits, entries FROM pgquant.ivfpq_check('small_idx2');
DROP TABLE small;

-- build errors: mixed dimensions, NaN, options
CREATE TABLE bad (id int, v real[]);
INSERT INTO bad VALUES (1, '{1,2,3,4}'), (2, '{1,2,3}');
SELECT test_error($$CREATE INDEX ON bad USING ivfpq (v)$$);
TRUNCATE bad;
INSERT INTO bad SELECT i, ARRAY[i, 1, 2, 3]::real[] FROM generate_series(1, 300) i;
SELECT test_error($$CREATE INDEX ON bad USING ivfpq (v) WITH (lists = 2, m = 3)$$);
SELECT test_error($$CREATE INDEX ON bad USING ivfpq (v) WITH (lists = 0)$$);
SELECT test_error($$CREATE INDEX ON bad USING ivfpq (v) WITH (lists = 40000)$$);
SELECT test_error($$CREATE INDEX ON bad USING ivfpq (v) WITH (nbits = 9)$$);
SELECT test_error($$CREATE INDEX ON bad USING ivfpq (v) WITH (nbits = 0)$$);
SELECT test_error($$CREATE INDEX ON bad USING ivfpq (v) WITH (colour = 1)$$);
SELECT test_error($$CREATE INDEX ON bad USING ivfpq (id)$$);
SELECT test_error($$CREATE INDEX ON bad USING ivfpq (v, v)$$);
INSERT INTO bad VALUES (999, '{1,NaN,3,4}');
SELECT test_error($$CREATE INDEX ON bad USING ivfpq (v) WITH (lists = 2, nbits = 4)$$);
DELETE FROM bad WHERE id = 999;
-- the training sample must fit in maintenance_work_mem
CREATE TABLE wide (id int, v real[]);
INSERT INTO wide SELECT i, array_fill((i % 17)::real, ARRAY[1500]) FROM generate_series(1, 400) i;
SET maintenance_work_mem = '1MB';
SELECT test_error($$CREATE INDEX ON wide USING ivfpq (v) WITH (lists = 300, nbits = 4)$$);
RESET maintenance_work_mem;
DROP TABLE wide;
-- a wrong query dimension
CREATE INDEX bad_idx ON bad USING ivfpq (v) WITH (lists = 2, nbits = 4);
SET enable_seqscan = off;
SELECT test_error($$SELECT id FROM bad ORDER BY v <-> '{1,2,3}' LIMIT 1$$);
SELECT test_error($$SELECT id FROM bad ORDER BY v <-> '{1,2,NaN,4}' LIMIT 1$$);
RESET enable_seqscan;
SELECT test_error($$SELECT * FROM pgquant.ivfpq_check('bad')$$);
SELECT test_error($$SELECT * FROM pgquant.ivfpq_check('items_pkey')$$);
DROP TABLE bad;

-- an expression index re-ranks with the expression's value
CREATE TABLE expr (id int, v real[]);
INSERT INTO expr SELECT id, v FROM items WHERE v IS NOT NULL;
CREATE INDEX expr_idx ON expr USING ivfpq ((v[1:8])) WITH (lists = 4, nbits = 4);
SET enable_seqscan = off;
SET pgquant.probes = 4;
SET pgquant.rerank = 2000;
SELECT count(*) FROM (SELECT id FROM expr ORDER BY v[1:8] <-> '{1,1,1,1,1,1,1,1}' LIMIT 10) s
WHERE id IN (SELECT id FROM expr ORDER BY (SELECT sum((a - 1) ^ 2) FROM unnest(v[1:8]) a), id LIMIT 10);
RESET enable_seqscan;
RESET pgquant.probes;
RESET pgquant.rerank;
DROP TABLE expr;

-- the build's phases, as pg_stat_progress_create_index names them
SELECT n, pg_indexam_progress_phasename((SELECT oid FROM pg_am WHERE amname = 'ivfpq'), n)
FROM generate_series(1, 7) n;

-- settings
SHOW pgquant.probes;
SHOW pgquant.rerank;
SELECT test_error($$SET pgquant.probes = 0$$);
SELECT test_error($$SET pgquant.rerank = -1$$);
