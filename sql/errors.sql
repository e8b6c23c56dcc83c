-- bad input to quantize, dequantize and quant_error: a clear error with its SQLSTATE

SELECT test_error($$SELECT quantize('{}'::real[], 'rtn', 4)$$);
SELECT test_error($$SELECT quantize('{{{1,2},{3,4}}}'::real[], 'rtn', 4)$$);
SELECT test_error($$SELECT quantize('{{1,2},{3}}'::real[], 'rtn', 4)$$);
SELECT test_error($$SELECT quantize('{1,NULL,3}'::real[], 'rtn', 4)$$);
SELECT test_error($$SELECT quantize('{1,NaN,3}'::real[], 'rtn', 4)$$);
SELECT test_error($$SELECT quantize('{1,2,Infinity}'::real[], 'rtn', 4)$$);
SELECT test_error($$SELECT quantize('{{1,2},{3,-Infinity}}'::real[], 'nf4', 4)$$);
SELECT test_error($$SELECT quantize('{1,2}'::real[], 'kmeans', 4)$$);
SELECT test_error($$SELECT quantize('{1,2}'::real[], 'RTN', 4)$$);
SELECT test_error($$SELECT quantize('{1,2}'::real[], 'rtn', 1)$$);
SELECT test_error($$SELECT quantize('{1,2}'::real[], 'rtn', 9)$$);
SELECT test_error($$SELECT quantize('{1,2}'::real[], 'rtn', -2147483648)$$);
SELECT test_error($$SELECT quantize('{1,2}'::real[], 'nf4', 3)$$);
SELECT test_error($$SELECT quantize('{1,2}'::real[], 'rtn', 4, group_size => 0)$$);
SELECT test_error($$SELECT quantize('{1,2}'::real[], 'rtn', 4, group_size => -5)$$);
SELECT test_error($$SELECT quantize('{1,2}'::double precision[], 'rtn', 4)$$);
-- the unknown-method hint lists the valid methods
DO $$
BEGIN
	PERFORM quantize('{1,2}'::real[], 'awq2', 4);
EXCEPTION WHEN invalid_parameter_value THEN
	DECLARE hint text;
	BEGIN
		GET STACKED DIAGNOSTICS hint = PG_EXCEPTION_HINT;
		RAISE NOTICE 'hint: %', hint;
	END;
END $$;

-- shape mismatches in quant_error
SELECT test_error($$SELECT quant_error('{1,2,3}', quantize('{1,2}', 'rtn', 4))$$);
SELECT test_error($$SELECT quant_error('{{1,2},{3,4}}', quantize('{1,2,3,4}', 'rtn', 4))$$);
SELECT test_error($$SELECT quant_error('{1,NaN}', quantize('{1,2}', 'rtn', 4))$$);

-- sizes beyond the limits fail cleanly before allocating
SELECT test_error($$SELECT 'qtensor(v=1,method=rtn,type=int8,shape=[2147483647,2147483647],group=1,zero=asym,scale=fp32):AAAA'::qtensor$$);
SELECT test_error($$SELECT 'qtensor(v=1,method=rtn,type=int8,shape=[16384,16384],group=1,zero=asym,scale=fp32):AAAA'::qtensor$$);
SELECT test_error($$SELECT 'qtensor(v=1,method=rtn,type=int8,shape=[16384,16383],group=1,zero=asym,scale=fp32):AAAA'::qtensor$$);
SELECT test_error($$SELECT 'qtensor(v=1,method=rtn,type=int2,shape=[1,1],group=1,zero=sym,scale=fp16,outliers=2147483647):AAAA'::qtensor$$);
SELECT test_error($$SELECT 'qtensor(v=1,method=rtn,type=int2,shape=[16384,8193],group=-1,zero=sym,scale=fp16):AAAA'::qtensor$$);

-- cancellation: a statement timeout stops a long quantize
SET statement_timeout = '50ms';
SELECT test_error($$SELECT quantize(array_fill(1::real, ARRAY[4096, 4096]), 'rtn', 4) FROM generate_series(1, 1000)$$);
RESET statement_timeout;
