-- pgTAP: mutation fuzzing of the text and binary input of pq_codebook, rvq_codebook
-- and pqcode.  Each mutated value is either accepted as a self-consistent value or
-- rejected with an error naming its type; a crash would end the session and fail the run.
BEGIN;
SELECT plan(7);

CREATE TEMP TABLE seeds (id int, typ text, lit text, bin bytea);
INSERT INTO seeds
SELECT 1, 'pq_codebook', cb::text, pq_codebook_send(cb)
FROM pq_codebook('{{{0,0.5},{1,1},{-1,2},{3,0}},{{0,0},{2,2},{1,-1},{0.25,4}}}', 2, 2) cb
UNION ALL SELECT 2, 'rvq_codebook', cb::text, rvq_codebook_send(cb)
FROM rvq_codebook('{{{1,0,0},{0,1,0}},{{0.5,0,0.1},{0,0.5,-0.2}},{{0.1,0.1,0.1},{-0.1,0,0}}}', 3, 1) cb
UNION ALL SELECT 3, 'pqcode', c::text, pqcode_send(c)
FROM pq_encode(pq_codebook('{{{0,0.5},{1,1},{-1,2},{3,0}},{{0,0},{2,2},{1,-1},{0.25,4}}}', 2, 2), '{1,1,2,2}') c
UNION ALL SELECT 4, 'pqcode', c::text, pqcode_send(c)
FROM pq_encode(rvq_codebook('{{{1,0,0},{0,1,0}},{{0.5,0,0.1},{0,0.5,-0.2}},{{0.1,0.1,0.1},{-0.1,0,0}}}', 3, 1), '{1.4,0.2,0}') c;

CREATE TEMP TABLE outcomes (kind text, accepted bool, consistent bool, names_type bool, sqlstate text);

-- the mutation operators (tests/pgtap/lib/mutate.sql), set for these types' text and binary forms
\ir lib/mutate.sql
CREATE FUNCTION pg_temp.mutate_text(s text) RETURNS text LANGUAGE sql AS $$
	SELECT pg_temp.mutate_text(s, 'pqcodebkrv()=,:+/=-0123456789ABCDEFabcdefxyz ' || chr(9731), 5, '(=)[0-9]+',
		ARRAY['0', '-1', '255', '256', '65536', '2147483648', '16000', '8']) $$;
CREATE FUNCTION pg_temp.mutate_bytes(b bytea) RETURNS bytea LANGUAGE sql AS $$
	SELECT pg_temp.mutate_bytes(b, ARRAY['\x7fffffff', '\x80000000', '\x00000000', '\xffffffff']::bytea[], 5) $$;

-- a value is consistent when its text form reads back to the same binary form
CREATE FUNCTION pg_temp.consistent(typ text, v text) RETURNS bool LANGUAGE plpgsql AS $$
DECLARE
	same bool;
BEGIN
	EXECUTE format('SELECT %I_send(%L::%I::text::%I) = %I_send(%L::%I)', typ, v, typ, typ, typ, v, typ) INTO same;
	RETURN same;
END $$;

SELECT setseed(0.1618);

DO $$
DECLARE
	s record;
	lit text;
	v text;
BEGIN
	FOR i IN 1..400 LOOP
		SELECT * INTO s FROM seeds WHERE id = 1 + i % 4;
		lit := pg_temp.mutate_text(s.lit);
		IF i % 3 = 0 THEN lit := pg_temp.mutate_text(lit); END IF;
		BEGIN
			EXECUTE format('SELECT %L::%I::text', lit, s.typ) INTO v;
			INSERT INTO outcomes VALUES ('text', true, pg_temp.consistent(s.typ, v), NULL, NULL);
		EXCEPTION WHEN others THEN
			INSERT INTO outcomes VALUES ('text', false, NULL, SQLERRM ~ s.typ OR SQLERRM ~ 'codebook', SQLSTATE);
		END;
	END LOOP;
END $$;

CREATE TEMP TABLE raw (b bytea);
CREATE TEMP TABLE p_pq (v pq_codebook);
CREATE TEMP TABLE p_rvq (v rvq_codebook);
CREATE TEMP TABLE p_code (v pqcode);
DO $$
DECLARE
	f text := current_setting('data_directory') || '/pgquant_pq_fuzz.bin';
	s record;
	tbl text;
	v text;
BEGIN
	FOR i IN 1..400 LOOP
		SELECT * INTO s FROM seeds WHERE id = 1 + i % 4;
		tbl := CASE s.typ WHEN 'pq_codebook' THEN 'p_pq' WHEN 'rvq_codebook' THEN 'p_rvq' ELSE 'p_code' END;
		TRUNCATE raw, p_pq, p_rvq, p_code;
		INSERT INTO raw VALUES (pg_temp.mutate_bytes(s.bin));
		IF i % 3 = 0 THEN UPDATE raw SET b = pg_temp.mutate_bytes(b); END IF;
		EXECUTE format('COPY raw TO %L (FORMAT binary)', f);
		BEGIN
			EXECUTE format('COPY %I FROM %L (FORMAT binary)', tbl, f);
			EXECUTE format('SELECT v::text FROM %I', tbl) INTO v;
			INSERT INTO outcomes VALUES ('binary', true, pg_temp.consistent(s.typ, v), NULL, NULL);
		EXCEPTION WHEN others THEN
			INSERT INTO outcomes VALUES ('binary', false, NULL, SQLERRM ~ s.typ OR SQLERRM ~ 'codebook', SQLSTATE);
		END;
	END LOOP;
END $$;

SELECT is((SELECT count(*) FROM outcomes), 800::bigint, '400 mutated literals and 400 mutated binary values were tried');
SELECT is((SELECT count(*) FROM outcomes WHERE NOT accepted AND NOT names_type), 0::bigint,
	'every rejection names the type');
SELECT is((SELECT string_agg(DISTINCT sqlstate, ',' ORDER BY sqlstate) FROM outcomes
		   WHERE NOT accepted AND sqlstate NOT IN ('22P02', '22P03', '54000')), NULL,
	'rejections are invalid text (22P02), invalid binary (22P03) or too large (54000)');
SELECT is((SELECT count(*) FROM outcomes WHERE accepted AND NOT consistent), 0::bigint,
	'every accepted value round-trips through its text form');
SELECT cmp_ok((SELECT count(*) FROM outcomes WHERE kind = 'text' AND NOT accepted), '>', 300::bigint,
	'most text mutations are caught (codebook ids catch changed centroids)');
SELECT cmp_ok((SELECT count(*) FROM outcomes WHERE kind = 'binary' AND NOT accepted), '>', 250::bigint,
	'most binary mutations are caught');
SELECT cmp_ok((SELECT count(*) FROM outcomes WHERE accepted), '>', 5::bigint,
	'mutations that stay well-formed (such as changed codes) are accepted');

SELECT * FROM finish();
ROLLBACK;
