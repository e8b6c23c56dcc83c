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

CREATE FUNCTION pg_temp.mutate_text(s text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	pos int := 1 + floor(random() * length(s))::int;
	alphabet text := 'pqcodebkrv()=,:+/=-0123456789ABCDEFabcdefxyz ' || chr(9731);
	c text := substr(alphabet, 1 + floor(random() * length(alphabet))::int, 1);
	op int := floor(random() * 6)::int;
BEGIN
	RETURN CASE op
		WHEN 0 THEN overlay(s placing c from pos for 1)
		WHEN 1 THEN overlay(s placing '' from pos for 1)
		WHEN 2 THEN overlay(s placing c from pos for 0)
		WHEN 3 THEN left(s, pos)
		WHEN 4 THEN overlay(s placing substr(s, pos, 5) from pos for 0)
		ELSE regexp_replace(s, '=[0-9]+', '=' ||
			(ARRAY['0', '-1', '255', '256', '65536', '2147483648', '16000', '8'])[1 + floor(random() * 8)::int])
	END;
END $$;

CREATE FUNCTION pg_temp.mutate_bytes(b bytea) RETURNS bytea LANGUAGE plpgsql AS $$
DECLARE
	pos int := floor(random() * length(b))::int;
	op int := floor(random() * 5)::int;
BEGIN
	RETURN CASE op
		WHEN 0 THEN set_bit(b, pos * 8 + floor(random() * 8)::int, 1 - get_bit(b, pos * 8 + floor(random() * 8)::int))
		WHEN 1 THEN set_byte(b, pos, floor(random() * 256)::int)
		WHEN 2 THEN substr(b, 1, pos)
		WHEN 3 THEN b || substr(b, 1, 1 + pos % 9)
		ELSE overlay(b placing (ARRAY['\x7fffffff', '\x80000000', '\x00000000', '\xffffffff'])[1 + floor(random() * 4)::int]::bytea
					  from 1 + 4 * floor(random() * 5)::int for 4)
	END;
END $$;

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
