-- Mutation operators shared by the fuzz tests (tests/pgtap/*fuzz.sql read this file with
-- \ir). Every choice comes from random(), so setseed() makes a run repeatable.

-- text: replace, delete, insert or duplicate (dup characters) at a random place, truncate,
-- or put one of numbers in place of the first match of pattern, whose one capture group
-- is kept (e.g. '()[0-9]+' for any number, '(=)[0-9]+' for a number after '=')
CREATE FUNCTION pg_temp.mutate_text(s text, alphabet text, dup int, pattern text, numbers text[])
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	pos int := 1 + floor(random() * length(s))::int;
	c text := substr(alphabet, 1 + floor(random() * length(alphabet))::int, 1);
	op int := floor(random() * 6)::int;
BEGIN
	RETURN CASE op
		WHEN 0 THEN overlay(s placing c from pos for 1)
		WHEN 1 THEN overlay(s placing '' from pos for 1)
		WHEN 2 THEN overlay(s placing c from pos for 0)
		WHEN 3 THEN left(s, pos)
		WHEN 4 THEN overlay(s placing substr(s, pos, dup) from pos for 0)
		ELSE regexp_replace(s, pattern, '\1' || numbers[1 + floor(random() * cardinality(numbers))::int])
	END;
END $$;

-- binary: flip a bit, set a byte, truncate, extend, or overwrite one of the first nwords
-- 4-byte words (a header field) with one of words
CREATE FUNCTION pg_temp.mutate_bytes(b bytea, words bytea[], nwords int) RETURNS bytea LANGUAGE plpgsql AS $$
DECLARE
	pos int := floor(random() * length(b))::int;
	op int := floor(random() * 5)::int;
BEGIN
	RETURN CASE op
		WHEN 0 THEN set_bit(b, pos * 8 + floor(random() * 8)::int, 1 - get_bit(b, pos * 8 + floor(random() * 8)::int))
		WHEN 1 THEN set_byte(b, pos, floor(random() * 256)::int)
		WHEN 2 THEN substr(b, 1, pos)
		WHEN 3 THEN b || substr(b, 1, 1 + pos % 9)
		ELSE overlay(b placing words[1 + floor(random() * cardinality(words))::int]
					 from 1 + 4 * floor(random() * nwords)::int for 4)
	END;
END $$;
