-- pgTAP: mutation fuzzing of qtensor's text and binary input.
-- Each mutated value is either accepted as a self-consistent qtensor or rejected
-- with an error that names the type; a crash would end the session and fail the run.
BEGIN;
SELECT plan(8);

CREATE TEMP TABLE seeds (id int, q qtensor);
INSERT INTO seeds VALUES
	(1, quantize('{{0.5,-1.25,2,0.75},{3,-2,0.125,1}}', 'rtn', 4)),
	(2, quantize('{0.1,-0.2,0.3,-0.4,0.5,-0.6,0.7}', 'rtn', 3, sym => true)),
	(3, quantize('{{1,2,3,4,5},{5,4,3,2,1},{0,0,0,0,1}}', 'nf4', 4, 2)),
	(4, quantize('{1e-7,-3e-7,2e-7,9e-7}', 'rtn', 7, -1));

CREATE TEMP TABLE outcomes (kind text, accepted bool, consistent bool, names_type bool, sqlstate text);

-- the mutation operators (tests/pgtap/lib/mutate.sql), set for qtensor's text and binary forms
\ir lib/mutate.sql
CREATE FUNCTION pg_temp.mutate_text(s text) RETURNS text LANGUAGE sql AS $$
	SELECT pg_temp.mutate_text(s, 'qtensor()=,[]:+/=-0123456789ABCDEFabcdefxyz v' || chr(9731), 7, '()[0-9]+',
		ARRAY['0', '-1', '255', '256', '2147483647', '2147483648', '99999999999', '8']) $$;
CREATE FUNCTION pg_temp.mutate_bytes(b bytea) RETURNS bytea LANGUAGE sql AS $$
	SELECT pg_temp.mutate_bytes(b, ARRAY['\x7fffffff', '\x80000000', '\x00000000', '\xffffffff']::bytea[], 7) $$;

SELECT setseed(0.2718);

DO $$
DECLARE
	lit text;
	v qtensor;
	ok_consistent bool;
BEGIN
	FOR i IN 1..400 LOOP
		SELECT pg_temp.mutate_text(q::text) INTO lit FROM seeds WHERE id = 1 + i % 4;
		IF i % 3 = 0 THEN lit := pg_temp.mutate_text(lit); END IF;
		BEGIN
			v := lit::qtensor;
			ok_consistent := qtensor_send(v::text::qtensor) = qtensor_send(v)
				AND array_length(dequantize(v), 1) IS NOT NULL
				AND (qtensor_info(v)).bytes > 0;
			INSERT INTO outcomes VALUES ('text', true, ok_consistent, NULL, NULL);
		EXCEPTION WHEN others THEN
			INSERT INTO outcomes VALUES ('text', false, NULL, SQLERRM ~ 'qtensor', SQLSTATE);
		END;
	END LOOP;
END $$;

-- binary input reaches qtensor_recv through COPY ... (FORMAT binary): a bytea column's
-- file holds the raw bytes, which a qtensor column then reads as its binary form
CREATE TEMP TABLE raw (b bytea);
CREATE TEMP TABLE parsed (q qtensor);
DO $$
DECLARE
	-- in the data directory, which the test cluster removes
	f text := current_setting('data_directory') || '/pgquant_fuzz.bin';
	ok_consistent bool;
BEGIN
	FOR i IN 1..400 LOOP
		TRUNCATE raw, parsed;
		INSERT INTO raw SELECT pg_temp.mutate_bytes(qtensor_send(q)) FROM seeds WHERE id = 1 + i % 4;
		IF i % 3 = 0 THEN UPDATE raw SET b = pg_temp.mutate_bytes(b); END IF;
		EXECUTE format('COPY raw TO %L (FORMAT binary)', f);
		BEGIN
			EXECUTE format('COPY parsed FROM %L (FORMAT binary)', f);
			SELECT qtensor_send(q::text::qtensor) = qtensor_send(q) AND qtensor_send(q) = (SELECT b FROM raw)
				AND array_length(dequantize(q), 1) IS NOT NULL
			INTO ok_consistent FROM parsed;
			INSERT INTO outcomes VALUES ('binary', true, ok_consistent, NULL, NULL);
		EXCEPTION WHEN others THEN
			INSERT INTO outcomes VALUES ('binary', false, NULL, SQLERRM ~ 'qtensor', SQLSTATE);
		END;
	END LOOP;
END $$;

SELECT is((SELECT count(*) FROM outcomes WHERE kind = 'text'), 400::bigint, '400 mutated text literals were tried');
SELECT is((SELECT count(*) FROM outcomes WHERE kind = 'binary'), 400::bigint, '400 mutated binary values were tried');
SELECT is((SELECT count(*) FROM outcomes WHERE NOT accepted AND NOT names_type), 0::bigint,
	'every rejection names the type qtensor');
SELECT is((SELECT string_agg(DISTINCT sqlstate, ',' ORDER BY sqlstate) FROM outcomes WHERE NOT accepted),
	'22P02,22P03,54000', 'rejections are invalid text (22P02), invalid binary (22P03) or too large (54000)');
SELECT is((SELECT count(*) FROM outcomes WHERE accepted AND NOT consistent), 0::bigint,
	'every accepted value round-trips and decodes');
SELECT cmp_ok((SELECT count(*) FROM outcomes WHERE kind = 'text' AND NOT accepted), '>', 200::bigint,
	'most text mutations are caught');
SELECT cmp_ok((SELECT count(*) FROM outcomes WHERE kind = 'binary' AND NOT accepted), '>', 150::bigint,
	'most binary mutations are caught');
SELECT cmp_ok((SELECT count(*) FROM outcomes WHERE accepted), '>', 10::bigint,
	'mutations that stay well-formed (such as changed codes) are accepted');

SELECT * FROM finish();
ROLLBACK;
