-- qtensor text and binary input and output

-- a small tensor's text form, and exact round trips through text and binary
CREATE TABLE io (id int PRIMARY KEY, q qtensor);
INSERT INTO io VALUES
	(1, quantize('{{1,2,3},{4,5,6}}', 'rtn', 4)),
	(2, quantize('{-1.5,0,0.25,3}', 'rtn', 3, sym => true)),
	(3, quantize('{{0.1,-0.2,0.3,-0.4,0.5}}', 'nf4', 4)),
	(4, quantize(test_matrix(5, 70, 0.1), 'rtn', 5, group_size => 32)),
	(5, quantize(test_matrix(3, 9, 0.2), 'rtn', 7, group_size => -1)),
	(6, quantize('{1e-7,-3e-7,2e-7}', 'rtn', 8)),
	(7, NULL);
SELECT id, q FROM io WHERE id <= 3 OR id = 6 ORDER BY id;
SELECT id, q::text::qtensor::text = q::text AS text_round_trip,
	qtensor_send(q::text::qtensor) = qtensor_send(q) AS binary_identical
FROM io ORDER BY id;
-- the binary form: 28 header bytes in network order, then the sections
SELECT encode(qtensor_send(q), 'hex') FROM io WHERE id = 1;
SELECT id, length(qtensor_send(q)) AS send_bytes, pg_column_size(q) AS stored_bytes FROM io ORDER BY id;

-- surrounding whitespace is accepted, the payload is checked byte for byte
SELECT '  qtensor(v=1,method=rtn,type=int4,shape=[2,3],group=128,zero=asym,scale=fp16):MmY2ZgAApQ/aDw==  '::qtensor::text;
SELECT dequantize('qtensor(v=1,method=rtn,type=int4,shape=[2,3],group=128,zero=asym,scale=fp16):MmY2ZgAApQ/aDw==');
-- keys may come in any order
SELECT dequantize('qtensor(scale=fp16,zero=asym,group=128,shape=[2,3],type=int4,method=rtn,v=1):MmY2ZgAApQ/aDw==');

-- malformed literals: each is rejected with a message that names the type
SELECT test_error($$SELECT ''::qtensor$$);
SELECT test_error($$SELECT 'qtensor'::qtensor$$);
SELECT test_error($$SELECT '[1,2,3]'::qtensor$$);
SELECT test_error($$SELECT 'qtensor(v=1,method=rtn,type=int4,shape=[2,3],group=128,zero=asym,scale=fp16)'::qtensor$$);
SELECT test_error($$SELECT 'qtensor(v=2,method=rtn,type=int4,shape=[2,3],group=128,zero=asym,scale=fp16):MmY2ZgAApQ/aDw=='::qtensor$$);
SELECT test_error($$SELECT 'qtensor(v=1,method=foo,type=int4,shape=[2,3],group=128,zero=asym,scale=fp16):MmY2ZgAApQ/aDw=='::qtensor$$);
SELECT test_error($$SELECT 'qtensor(v=1,method=rtn,type=int9,shape=[2,3],group=128,zero=asym,scale=fp16):MmY2ZgAApQ/aDw=='::qtensor$$);
SELECT test_error($$SELECT 'qtensor(v=1,method=rtn,type=int1,shape=[2,3],group=128,zero=asym,scale=fp16):MmY2ZgAApQ/aDw=='::qtensor$$);
SELECT test_error($$SELECT 'qtensor(v=1,method=rtn,type=int4,shape=[2,3],group=0,zero=asym,scale=fp16):MmY2ZgAApQ/aDw=='::qtensor$$);
SELECT test_error($$SELECT 'qtensor(v=1,method=rtn,type=int4,shape=[2,3],group=-2,zero=asym,scale=fp16):MmY2ZgAApQ/aDw=='::qtensor$$);
SELECT test_error($$SELECT 'qtensor(v=1,method=rtn,type=int4,shape=[0,3],group=128,zero=asym,scale=fp16):MmY2ZgAApQ/aDw=='::qtensor$$);
SELECT test_error($$SELECT 'qtensor(v=1,method=rtn,type=int4,shape=[2,-3],group=128,zero=asym,scale=fp16):MmY2ZgAApQ/aDw=='::qtensor$$);
SELECT test_error($$SELECT 'qtensor(v=1,method=rtn,type=int4,shape=[2,3,4],group=128,zero=asym,scale=fp16):MmY2ZgAApQ/aDw=='::qtensor$$);
SELECT test_error($$SELECT 'qtensor(v=1,method=rtn,type=int4,shape=[99999999999,3],group=128,zero=asym,scale=fp16):AA=='::qtensor$$);
SELECT test_error($$SELECT 'qtensor(v=1,method=rtn,type=int4,shape=[2,3],group=128,zero=asym,scale=fp64):MmY2ZgAApQ/aDw=='::qtensor$$);
SELECT test_error($$SELECT 'qtensor(v=1,method=rtn,type=int4,shape=[2,3],group=128,zero=maybe,scale=fp16):MmY2ZgAApQ/aDw=='::qtensor$$);
SELECT test_error($$SELECT 'qtensor(v=1,method=rtn,type=nf4,shape=[2,3],group=128,zero=asym,scale=fp16):MmY2ZgAApQ/aDw=='::qtensor$$);
SELECT test_error($$SELECT 'qtensor(v=1,method=rtn,type=int4,shape=[2,3],group=128,zero=asym):MmY2ZgAApQ/aDw=='::qtensor$$);
SELECT test_error($$SELECT 'qtensor(v=1,v=1,method=rtn,type=int4,shape=[2,3],group=128,zero=asym,scale=fp16):MmY2ZgAApQ/aDw=='::qtensor$$);
SELECT test_error($$SELECT 'qtensor(v=1,method=rtn,type=int4,shape=[2,3],group=128,zero=asym,scale=fp16,color=red):MmY2ZgAApQ/aDw=='::qtensor$$);
SELECT test_error($$SELECT 'qtensor(v=1,method=rtn,type=int4,shape=[2,3],group=128,zero=asym,scale=fp16,outliers=-1):MmY2ZgAApQ/aDw=='::qtensor$$);
SELECT test_error($$SELECT 'qtensor(v=1,method=rtn,type=int4,shape=[2,3],group=128,zero=asym,scale=fp16,perm=no):MmY2ZgAApQ/aDw=='::qtensor$$);
-- payload of the wrong length, bad base64, NaN and infinite scales, a zero point over 15, padding bits set
SELECT test_error($$SELECT 'qtensor(v=1,method=rtn,type=int4,shape=[2,3],group=128,zero=asym,scale=fp16):MmY2ZgAApQ/a'::qtensor$$);
SELECT test_error($$SELECT 'qtensor(v=1,method=rtn,type=int4,shape=[2,3],group=128,zero=asym,scale=fp16):MmY2ZgAApQ/aDw=!'::qtensor$$);
SELECT test_error($$SELECT 'qtensor(v=1,method=rtn,type=int4,shape=[2,3],group=128,zero=asym,scale=fp16):fgAAAAAApQ/aDw=='::qtensor$$);
SELECT test_error($$SELECT 'qtensor(v=1,method=rtn,type=int4,shape=[2,3],group=128,zero=asym,scale=fp16):fAAAAAAApQ/aDw=='::qtensor$$);
SELECT test_error($$SELECT 'qtensor(v=1,method=rtn,type=int4,shape=[2,3],group=128,zero=asym,scale=fp16):MmY2ZhAApQ/aDw=='::qtensor$$);
SELECT test_error($$SELECT 'qtensor(v=1,method=rtn,type=int4,shape=[2,3],group=128,zero=asym,scale=fp16):MmY2ZgAApQ/a/w=='::qtensor$$);

-- binary input: a table written with binary COPY reads back identical
-- (the file lives in the server's data directory, which the test cluster removes)
CREATE TEMP TABLE io_copy (id int, q qtensor);
DO $$
DECLARE
	f text := current_setting('data_directory') || '/pgquant_regress_io.bin';
BEGIN
	EXECUTE format('COPY io TO %L (FORMAT binary)', f);
	EXECUTE format('COPY io_copy FROM %L (FORMAT binary)', f);
END $$;
SELECT count(*) FILTER (WHERE qtensor_send(a.q) = qtensor_send(b.q)) AS identical,
	count(*) FILTER (WHERE a.q IS NULL AND b.q IS NULL) AS nulls
FROM io a JOIN io_copy b USING (id);
