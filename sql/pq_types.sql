-- pq_codebook, rvq_codebook and pqcode: construction, text and binary forms,
-- exact encode / decode / distances on small codebooks, the registry, and errors

-- a PQ codebook of 2 subquantizers x 2 centroids over 4 dimensions, given as
-- [m][ksub][dsub]; the id is the content hash, so it is the same everywhere
CREATE TABLE cbs (name text PRIMARY KEY, pq pq_codebook, rvq rvq_codebook);
INSERT INTO cbs (name, pq) VALUES
	('pq_a', pq_codebook('{{{0,0},{1,1}},{{0,0},{2,2}}}', 2, 1)),
	('pq_b', pq_codebook('{0,0,1,1,0,0,3,3}', 2, 1)),
	('pq_8bit', pq_codebook(array(SELECT (i % 7)::real FROM generate_series(1, 256 * 4) i), 2, 8));
INSERT INTO cbs (name, rvq) VALUES
	('rvq_a', rvq_codebook('{{{1,0},{0,1}},{{0.5,0},{0,0.5}}}', 2, 1));
SELECT name, pq FROM cbs WHERE name IN ('pq_a', 'pq_b') ORDER BY name;
SELECT rvq FROM cbs WHERE name = 'rvq_a';
SELECT name, to_hex(codebook_id(pq)) AS id FROM cbs WHERE pq IS NOT NULL ORDER BY name;
SELECT (pq_codebook_info(pq)).* FROM cbs WHERE name = 'pq_8bit';
SELECT (rvq_codebook_info(rvq)).* FROM cbs WHERE name = 'rvq_a';
SELECT codebook_centroids(pq) FROM cbs WHERE name = 'pq_b';
SELECT codebook_centroids(rvq) FROM cbs WHERE name = 'rvq_a';
-- a flat array and the 3-D array give the same codebook
SELECT codebook_id(pq_codebook('{0,0,1,1,0,0,2,2}', 2, 1)) = codebook_id(pq) AS same_id FROM cbs WHERE name = 'pq_a';

-- exact round trips: text, and binary through COPY (in the data directory, removed with the cluster)
SELECT name, pq_codebook_send(pq::text::pq_codebook) = pq_codebook_send(pq) AS pq_text,
	rvq_codebook_send(rvq::text::rvq_codebook) = rvq_codebook_send(rvq) AS rvq_text
FROM cbs ORDER BY name;
SELECT encode(pq_codebook_send(pq), 'hex') FROM cbs WHERE name = 'pq_a';
CREATE TEMP TABLE cbs_copy (LIKE cbs);
DO $$
DECLARE
	f text := current_setting('data_directory') || '/pgquant_regress_pq.bin';
BEGIN
	EXECUTE format('COPY cbs TO %L (FORMAT binary)', f);
	EXECUTE format('COPY cbs_copy FROM %L (FORMAT binary)', f);
END $$;
SELECT count(*) FILTER (WHERE codebook_id(a.pq) = codebook_id(b.pq) AND pq_codebook_send(a.pq) = pq_codebook_send(b.pq)) AS pq_identical,
	count(*) FILTER (WHERE rvq_codebook_send(a.rvq) = rvq_codebook_send(b.rvq)) AS rvq_identical
FROM cbs a JOIN cbs_copy b USING (name);

-- encoding picks the nearest centroid per subquantizer; decoding concatenates them
SELECT pq_encode(pq, '{0.9,1.2,0.1,-0.3}') FROM cbs WHERE name = 'pq_a';
SELECT pqcode_info(pq_encode(pq, '{0.9,1.2,0.1,-0.3}')) FROM cbs WHERE name = 'pq_a';
SELECT pq_decode(pq, pq_encode(pq, '{0.9,1.2,1.9,2.5}')) FROM cbs WHERE name = 'pq_a';
-- ADC distances to the decoded vector {1,1,2,2}: L2, inner product, cosine
SELECT round(pq_distance(pq, c, '{0,0,0,0}')::numeric, 6) AS l2,
	round(pq_distance(pq, c, '{1,1,2,2}')::numeric, 6) AS l2_self,
	round(pq_inner_product(pq, c, '{1,2,3,4}')::numeric, 6) AS ip,
	round(pq_cosine_distance(pq, c, '{2,2,4,4}')::numeric, 6) AS cos_parallel,
	round(pq_cosine_distance(pq, c, '{1,-1,0,0}')::numeric, 6) AS cos_orthogonal
FROM cbs, pq_encode(pq, '{0.9,1.2,1.9,2.5}') c WHERE name = 'pq_a';
-- RVQ: greedy level by level; {1.4,0.1} -> 1st level {1,0}, residual {0.4,0.1} -> 2nd level {0.5,0}
SELECT pqcode_info(c), pq_decode(rvq, c),
	round(pq_distance(rvq, c, '{0,0}')::numeric, 6) AS l2,
	round(pq_inner_product(rvq, c, '{2,3}')::numeric, 6) AS ip,
	round(pq_cosine_distance(rvq, c, '{1,0}')::numeric, 6) AS cos
FROM cbs, pq_encode(rvq, '{1.4,0.1}') c WHERE name = 'rvq_a';
-- 8-bit codes take one byte each
SELECT pqcode_info(pq_encode(pq, '{3,3,6,6}')) FROM cbs WHERE name = 'pq_8bit';
-- a zero query has no cosine: NaN, as in pgvector
SELECT pq_cosine_distance(pq, pq_encode(pq, '{1,1,2,2}'), '{0,0,0,0}') FROM cbs WHERE name = 'pq_a';

-- pqcode text and binary forms round-trip exactly; a stored code is small
CREATE TABLE codes (id int PRIMARY KEY, c pqcode);
INSERT INTO codes SELECT 1, pq_encode(pq, '{1,1,2,2}') FROM cbs WHERE name = 'pq_a';
INSERT INTO codes SELECT 2, pq_encode(rvq, '{1.4,0.1}') FROM cbs WHERE name = 'rvq_a';
INSERT INTO codes SELECT 3, pq_encode(pq, '{3,3,6,6}') FROM cbs WHERE name = 'pq_8bit';
INSERT INTO codes VALUES (4, NULL);
SELECT id, c, pqcode_send(c::text::pqcode) = pqcode_send(c) AS text_round_trip,
	encode(pqcode_send(c), 'hex') AS binary, pg_column_size(c) AS stored_bytes
FROM codes ORDER BY id;
CREATE TEMP TABLE codes_copy (LIKE codes);
DO $$
DECLARE
	f text := current_setting('data_directory') || '/pgquant_regress_pqcode.bin';
BEGIN
	EXECUTE format('COPY codes TO %L (FORMAT binary)', f);
	EXECUTE format('COPY codes_copy FROM %L (FORMAT binary)', f);
END $$;
SELECT count(*) FILTER (WHERE pqcode_send(a.c) = pqcode_send(b.c)) AS identical,
	count(*) FILTER (WHERE a.c IS NULL AND b.c IS NULL) AS nulls
FROM codes a JOIN codes_copy b USING (id);

-- the registry: a code finds its codebook by id once the codebook is registered
SELECT test_error($$SELECT pq_decode(c) FROM codes WHERE id = 1$$);
SELECT count(*) FROM (SELECT pq_register(pq) FROM cbs WHERE pq IS NOT NULL) s;
SELECT count(*) FROM (SELECT pq_register(rvq) FROM cbs WHERE rvq IS NOT NULL) s;
SELECT count(*) FROM (SELECT pq_register(pq) FROM cbs WHERE pq IS NOT NULL) s;	-- twice is harmless
SELECT count(*), count(pq), count(rvq) FROM pgquant.codebooks;
SELECT id, pq_decode(c), round(pq_distance(c, CASE WHEN id = 2 THEN '{0,0}'::real[] ELSE '{0,0,0,0}' END)::numeric, 6) AS l2
FROM codes WHERE c IS NOT NULL ORDER BY id;
-- ORDER BY an ADC distance
INSERT INTO codes SELECT 10 + i, pq_encode(pq, ARRAY[i, i, 2 * i, 2 * i]::real[]) FROM cbs, generate_series(0, 1) i WHERE name = 'pq_b';
SELECT id FROM codes WHERE id >= 10 ORDER BY pq_distance(c, '{3,3,6,6}') LIMIT 1;
-- a row whose id is not its content's is refused
-- (the error's detail shows the row, with a timestamp: only the message is compared)
SELECT split_part(test_error($$INSERT INTO pgquant.codebooks (id, pq) SELECT 42, pq FROM cbs WHERE name = 'pq_a'$$), ' DETAIL', 1);
SELECT split_part(test_error($$INSERT INTO pgquant.codebooks (id) VALUES (43)$$), ' DETAIL', 1);
-- an ordinary user may read and register codebooks, but not change or remove them
CREATE ROLE regress_pq_user;
GRANT SELECT ON cbs, codes TO regress_pq_user;
SET ROLE regress_pq_user;
SELECT count(*) FROM (SELECT pq_register(pq_codebook('{0,0,1,1,0,0,5,5}', 2, 1))) s;
SELECT id, round(pq_distance(c, '{0,0,0,0}')::numeric, 6) FROM codes WHERE id = 1;
SELECT test_error($$DELETE FROM pgquant.codebooks$$);
SELECT test_error($$UPDATE pgquant.codebooks SET registered_at = now()$$);
RESET ROLE;
DROP OWNED BY regress_pq_user;
DROP ROLE regress_pq_user;

-- errors: dimensions, NaN, shapes, codebook/code mismatch
SELECT test_error($$SELECT pq_encode(pq, '{1,2,3}') FROM cbs WHERE name = 'pq_a'$$);
SELECT test_error($$SELECT pq_encode(pq, '{1,2,NaN,4}') FROM cbs WHERE name = 'pq_a'$$);
SELECT test_error($$SELECT pq_encode(pq, '{1,2,Infinity,4}') FROM cbs WHERE name = 'pq_a'$$);
SELECT test_error($$SELECT pq_encode(pq, '{1,2,NULL,4}') FROM cbs WHERE name = 'pq_a'$$);
SELECT test_error($$SELECT pq_encode(pq, '{{1,2},{3,4}}') FROM cbs WHERE name = 'pq_a'$$);
SELECT test_error($$SELECT pq_encode(pq, '{}') FROM cbs WHERE name = 'pq_a'$$);
SELECT test_error($$SELECT pq_distance(c, '{1,2,3}') FROM codes WHERE id = 1$$);
SELECT test_error($$SELECT pq_distance(c, '{1,2,3,NaN}') FROM codes WHERE id = 1$$);
SELECT test_error($$SELECT pq_distance(b.pq, c, '{1,2,3,4}') FROM codes, cbs b WHERE id = 1 AND b.name = 'pq_b'$$);
SELECT test_error($$SELECT pq_decode(b.pq, c) FROM codes, cbs b WHERE id = 2 AND b.name = 'pq_a'$$);
SELECT test_error($$SELECT pq_codebook('{0,0,1,1,0,0,2,2}', 3, 1)$$);
SELECT test_error($$SELECT pq_codebook('{0,0,1,1,0,0,2,2}', 2, 9)$$);
SELECT test_error($$SELECT pq_codebook('{0,0,1,1,0,0,2,2}', 2, 0)$$);
SELECT test_error($$SELECT pq_codebook('{0,0,1,1,0,0,2}', 2, 1)$$);
SELECT test_error($$SELECT pq_codebook('{{{0,0},{1,1}},{{0,0},{2,2}}}', 1, 1)$$);
SELECT test_error($$SELECT pq_codebook('{0,0,1,NaN,0,0,2,2}', 2, 1)$$);
SELECT test_error($$SELECT rvq_codebook('{1,0,0,1}', 65, 1)$$);

-- malformed text input: each rejected with a message naming the type
SELECT test_error($$SELECT ''::pq_codebook$$);
SELECT test_error($$SELECT 'pq_codebook'::pq_codebook$$);
SELECT test_error($$SELECT 'rvq_codebook(v=1,dim=2,levels=2,nbits=1,id=cc807a6d3436d3c7):P4AAAAAAAAAAAAAAP4AAAD8AAAAAAAAAAAAAAD8AAAA='::pq_codebook$$);
SELECT test_error($$SELECT 'pq_codebook(v=1,dim=4,m=2,nbits=1,id=f9771760babcd3b5)'::pq_codebook$$);
SELECT test_error($$SELECT 'pq_codebook(v=2,dim=4,m=2,nbits=1,id=f9771760babcd3b5):AAAAAAAAAAA/gAAAP4AAAAAAAAAAAAAAQAAAAEAAAAA='::pq_codebook$$);
SELECT test_error($$SELECT 'pq_codebook(v=1,dim=4,m=3,nbits=1,id=f9771760babcd3b5):AAAAAAAAAAA/gAAAP4AAAAAAAAAAAAAAQAAAAEAAAAA='::pq_codebook$$);
SELECT test_error($$SELECT 'pq_codebook(v=1,dim=4,m=2,nbits=9,id=f9771760babcd3b5):AAAAAAAAAAA/gAAAP4AAAAAAAAAAAAAAQAAAAEAAAAA='::pq_codebook$$);
SELECT test_error($$SELECT 'pq_codebook(v=1,dim=-4,m=2,nbits=1,id=f9771760babcd3b5):AAAAAAAAAAA/gAAAP4AAAAAAAAAAAAAAQAAAAEAAAAA='::pq_codebook$$);
SELECT test_error($$SELECT 'pq_codebook(v=1,dim=4,m=2,nbits=1,id=f9771760babcd3b6):AAAAAAAAAAA/gAAAP4AAAAAAAAAAAAAAQAAAAEAAAAA='::pq_codebook$$);
SELECT test_error($$SELECT 'pq_codebook(v=1,dim=4,m=2,nbits=1,id=F9771760BABCD3B5):AAAAAAAAAAA/gAAAP4AAAAAAAAAAAAAAQAAAAEAAAAA='::pq_codebook$$);
SELECT test_error($$SELECT 'pq_codebook(v=1,dim=4,m=2,nbits=1,id=f9771760babcd3b5):AAAAAAAAAAA/gAAAP4AAAAAAAAAAAAAAQAAAAEAAAA='::pq_codebook$$);
SELECT test_error($$SELECT 'pq_codebook(v=1,dim=4,m=2,nbits=1,id=f9771760babcd3b5):AAAAAAAAAAA/wAAAP4AAAAAAAAAAAAAAQAAAAEAAAAA='::pq_codebook$$);
SELECT test_error($$SELECT 'pq_codebook(v=1,dim=4,m=2,m=2,nbits=1,id=f9771760babcd3b5):AAAAAAAAAAA/gAAAP4AAAAAAAAAAAAAAQAAAAEAAAAA='::pq_codebook$$);
SELECT test_error($$SELECT 'pq_codebook(v=1,dim=4,nbits=1,id=f9771760babcd3b5):AAAAAAAAAAA/gAAAP4AAAAAAAAAAAAAAQAAAAEAAAAA='::pq_codebook$$);
SELECT test_error($$SELECT 'pq_codebook(v=1,dim=4,m=2,nbits=1,id=f9771760babcd3b5,x=1):AAAAAAAAAAA/gAAAP4AAAAAAAAAAAAAAQAAAAEAAAAA='::pq_codebook$$);
SELECT test_error($$SELECT 'rvq_codebook(v=1,dim=16000,levels=64,nbits=8,id=0000000000000000):AAAA'::rvq_codebook$$);
-- a NaN centroid (7fc00000 where the 2nd value was 0)
SELECT test_error($$SELECT 'pq_codebook(v=1,dim=4,m=2,nbits=1,id=f9771760babcd3b5):AAAAAH/AAAA/gAAAP4AAAAAAAAAAAAAAQAAAAEAAAAA='::pq_codebook$$);
SELECT test_error($$SELECT 'pqcode(v=1,kind=pq,m=2,nbits=1,codebook=f9771760babcd3b5)'::pqcode$$);
SELECT test_error($$SELECT 'pqcode(v=1,kind=opq,m=2,nbits=1,codebook=f9771760babcd3b5):Aw=='::pqcode$$);
SELECT test_error($$SELECT 'pqcode(v=3,kind=pq,m=2,nbits=1,codebook=f9771760babcd3b5):Aw=='::pqcode$$);
SELECT test_error($$SELECT 'pqcode(v=1,kind=pq,m=2,nbits=12,codebook=f9771760babcd3b5):Aw=='::pqcode$$);
SELECT test_error($$SELECT 'pqcode(v=1,kind=pq,m=0,nbits=1,codebook=f9771760babcd3b5):Aw=='::pqcode$$);
SELECT test_error($$SELECT 'pqcode(v=1,kind=pq,m=2,nbits=1,codebook=f9771760babcd3b):Aw=='::pqcode$$);
SELECT test_error($$SELECT 'pqcode(v=1,kind=pq,m=2,nbits=1,codebook=f9771760babcd3b5):AwA='::pqcode$$);
-- a code bit past the last code (0x07 with m = 2, nbits = 1)
SELECT test_error($$SELECT 'pqcode(v=1,kind=pq,m=2,nbits=1,codebook=f9771760babcd3b5):Bw=='::pqcode$$);
-- an rvq code with a negative norm
SELECT test_error($$SELECT 'pqcode(v=1,kind=rvq,m=2,nbits=1,codebook=cc807a6d3436d3c7):v4AAAAA='::pqcode$$);

-- malformed binary input reaches the receive functions through COPY (FORMAT binary)
CREATE TEMP TABLE raw (b bytea);
CREATE TEMP TABLE recv_cb (v pq_codebook);
CREATE TEMP TABLE recv_code (v pqcode);
CREATE FUNCTION pg_temp.recv(b bytea, tbl text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	f text := current_setting('data_directory') || '/pgquant_regress_pq_recv.bin';
BEGIN
	TRUNCATE raw;
	EXECUTE format('TRUNCATE %I', tbl);
	INSERT INTO raw VALUES (b);
	EXECUTE format('COPY raw TO %L (FORMAT binary)', f);
	RETURN test_error(format('COPY %I FROM %L (FORMAT binary)', tbl, f));
END $$;
-- the valid binary form is accepted, then: truncated, header only, wrong kind, bad id, extra bytes
SELECT pg_temp.recv(pq_codebook_send(pq), 'recv_cb') FROM cbs WHERE name = 'pq_a';
SELECT pg_temp.recv(substr(pq_codebook_send(pq), 1, 10), 'recv_cb') FROM cbs WHERE name = 'pq_a';
SELECT pg_temp.recv(substr(pq_codebook_send(pq), 1, 28), 'recv_cb') FROM cbs WHERE name = 'pq_a';
SELECT pg_temp.recv(rvq_codebook_send(rvq), 'recv_cb') FROM cbs WHERE name = 'rvq_a';
SELECT pg_temp.recv(set_byte(pq_codebook_send(pq), 27, 0), 'recv_cb') FROM cbs WHERE name = 'pq_a';
SELECT pg_temp.recv(pq_codebook_send(pq) || '\x00'::bytea, 'recv_cb') FROM cbs WHERE name = 'pq_a';
SELECT pg_temp.recv(set_byte(pq_codebook_send(pq), 3, 1), 'recv_cb') FROM cbs WHERE name = 'pq_a';
SELECT pg_temp.recv(pqcode_send(c), 'recv_code') FROM codes WHERE id = 1;
SELECT pg_temp.recv(substr(pqcode_send(c), 1, 8), 'recv_code') FROM codes WHERE id = 1;
SELECT pg_temp.recv(pqcode_send(c) || '\x00'::bytea, 'recv_code') FROM codes WHERE id = 1;
SELECT pg_temp.recv(set_byte(pqcode_send(c), 0, 9), 'recv_code') FROM codes WHERE id = 1;
SELECT pg_temp.recv(set_byte(pqcode_send(c), 6, 1), 'recv_code') FROM codes WHERE id = 1;
