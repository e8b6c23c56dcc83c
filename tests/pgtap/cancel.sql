-- pgTAP: long quantize and dequantize calls stop within a second of a cancel.
-- The weights are the largest a qtensor holds (8192 x 16383); uninterrupted, quantizing
-- or decoding them takes well over a second on the machines this runs on.
BEGIN;
SELECT plan(2);

CREATE TEMP TABLE big AS SELECT array_fill(0.5::real, ARRAY[8192, 16383]) AS w;
CREATE TEMP TABLE bigq AS SELECT quantize(w, 'rtn', 8, 1) AS q FROM big;

-- seconds from the call to the cancel, or NULL when the statement was not cancelled
CREATE FUNCTION pg_temp.seconds_until_cancel(stmt text) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE
	t0 timestamptz := clock_timestamp();
BEGIN
	EXECUTE stmt;
	RETURN NULL;
EXCEPTION WHEN query_canceled THEN
	RETURN extract(epoch FROM clock_timestamp() - t0);
END $$;

-- the timer covers each whole top-level statement below
SET statement_timeout = '300ms';
SELECT cmp_ok(pg_temp.seconds_until_cancel($$SELECT quantize(w, 'nf4', 4, 32) FROM big$$), '<', 1.0::float8,
	'a cancelled quantize stops within a second');
SELECT cmp_ok(pg_temp.seconds_until_cancel($$SELECT array_length(dequantize(q), 1) FROM bigq$$), '<', 1.0::float8,
	'a cancelled dequantize stops within a second');
RESET statement_timeout;

SELECT * FROM finish();
ROLLBACK;
