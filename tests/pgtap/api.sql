-- pgTAP: the public SQL API of pgquant (objects, signatures, labels, privileges, errors)
BEGIN;
SELECT plan(64);

SELECT has_extension('pgquant');
SELECT has_type('qtensor');
SELECT has_schema('pgquant');

-- functions and their exact signatures
SELECT has_function('qtensor_in', ARRAY['cstring']);
SELECT has_function('qtensor_out', ARRAY['qtensor']);
SELECT has_function('qtensor_recv', ARRAY['internal']);
SELECT has_function('qtensor_send', ARRAY['qtensor']);
SELECT has_function('quantize', ARRAY['real[]', 'text', 'integer', 'integer', 'boolean', 'text', 'text', 'boolean', 'boolean', 'double precision']);
SELECT has_function('dequantize', ARRAY['qtensor']);
SELECT has_function('qtensor_info', ARRAY['qtensor']);
SELECT has_function('quant_error', ARRAY['real[]', 'qtensor']);
SELECT has_function('pgquant', 'cuda_available', ARRAY[]::text[]);
SELECT function_returns('quantize', ARRAY['real[]', 'text', 'integer', 'integer', 'boolean', 'text', 'text', 'boolean', 'boolean', 'double precision'], 'qtensor');
SELECT function_returns('dequantize', ARRAY['qtensor'], 'real[]');
SELECT function_returns('qtensor_send', ARRAY['qtensor'], 'bytea');
SELECT function_returns('pgquant', 'cuda_available', ARRAY[]::text[], 'boolean');
SELECT function_lang_is('quantize', ARRAY['real[]', 'text', 'integer', 'integer', 'boolean', 'text', 'text', 'boolean', 'boolean', 'double precision'], 'c');

-- volatility and strictness are true to what the functions do
-- quantize is STABLE: gptq and awq read calibration tables and the pgquant.calibration setting
SELECT volatility_is('quantize', ARRAY['real[]', 'text', 'integer', 'integer', 'boolean', 'text', 'text', 'boolean', 'boolean', 'double precision'], 'stable');
SELECT volatility_is('dequantize', ARRAY['qtensor'], 'immutable');
SELECT volatility_is('quant_error', ARRAY['real[]', 'qtensor'], 'immutable');
SELECT has_function('quant_error', ARRAY['real[]', 'qtensor', 'text', 'text']);
SELECT volatility_is('quant_error', ARRAY['real[]', 'qtensor', 'text', 'text'], 'stable');
SELECT volatility_is('pgquant', 'cuda_available', ARRAY[]::text[], 'volatile');
SELECT isnt_strict('quantize', ARRAY['real[]', 'text', 'integer', 'integer', 'boolean', 'text', 'text', 'boolean', 'boolean', 'double precision']);
SELECT is_strict('dequantize', ARRAY['qtensor']);
SELECT is_strict('qtensor_info', ARRAY['qtensor']);
SELECT is(
	(SELECT string_agg(proname || ':' || proparallel::text, ',' ORDER BY proname COLLATE "C")
	 FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid AND d.classid = 'pg_proc'::regclass
	 JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'pgquant'
	 -- the foundation's functions; each area's pgTAP file checks the labels of its own
	 WHERE p.proname IN ('cuda_available', 'dequantize', 'qtensor_in', 'qtensor_info', 'qtensor_out',
						 'qtensor_recv', 'qtensor_send', 'quant_error', 'quantize')),
	'cuda_available:r,dequantize:s,qtensor_in:s,qtensor_info:s,qtensor_out:s,qtensor_recv:s,qtensor_send:s,quant_error:s,quant_error:s,quantize:s',
	'parallel labels: everything safe but the GPU probe, which is restricted (both quant_error forms safe)');
SELECT is(
	(SELECT string_agg(proname || ':' || proparallel::text, ',' ORDER BY proname COLLATE "C")
	 FROM pg_proc WHERE pronamespace = 'pgquant'::regnamespace AND proname LIKE 'calibration\_%'),
	'calibration_add:u,calibration_create:u,calibration_merge:u',
	'functions that write calibration tables are parallel unsafe');

-- calibration statistics: an aggregate, a composite type, two tables and their functions
SELECT has_function('pgquant', 'activation_stats', ARRAY['real[]']);
SELECT has_function('pgquant', 'activation_stats', ARRAY['real[]', 'boolean']);
SELECT is_aggregate('pgquant', 'activation_stats', ARRAY['real[]']);
SELECT ok((SELECT aggcombinefn <> 0 AND aggserialfn <> 0 AND aggdeserialfn <> 0 FROM pg_aggregate
		   WHERE aggfnoid = 'pgquant.activation_stats(real[])'::regprocedure),
	'activation_stats has combine, serialize and deserialize functions');
SELECT has_type('pgquant', 'layer_stats', 'type pgquant.layer_stats exists');
SELECT has_table('pgquant', 'calibration_sets', 'table pgquant.calibration_sets exists');
SELECT has_table('pgquant', 'calibration_stats', 'table pgquant.calibration_stats exists');
SELECT fk_ok('pgquant', 'calibration_stats', 'set_name', 'pgquant', 'calibration_sets', 'name');
SELECT has_function('pgquant', 'calibration_create', ARRAY['text', 'text', 'text']);
SELECT has_function('pgquant', 'calibration_add', ARRAY['text', 'text', 'real[]', 'boolean']);
SELECT has_function('pgquant', 'calibration_merge', ARRAY['text', 'text', 'pgquant.layer_stats']);
SELECT has_function('pgquant', 'layer_stats_merge', ARRAY['pgquant.layer_stats', 'pgquant.layer_stats']);
SELECT volatility_is('pgquant', 'calibration_add', ARRAY['text', 'text', 'real[]', 'boolean'], 'volatile');
SELECT volatility_is('pgquant', 'layer_stats_merge', ARRAY['pgquant.layer_stats', 'pgquant.layer_stats'], 'immutable');
SELECT ok(ARRAY['pgquant.calibration_sets', 'pgquant.calibration_stats'] <@
		  (SELECT array_agg(tbl) FROM pg_extension e, unnest(e.extconfig::regclass[]::text[]) tbl
		   WHERE e.extname = 'pgquant'),
	'pg_dump dumps the rows of the calibration tables (extension configuration tables)');

-- the type's storage properties
SELECT is((SELECT typalign::text || typstorage::text || typlen::text FROM pg_type WHERE typname = 'qtensor'),
	'dx-1', 'qtensor is a double-aligned, TOAST-able varlena');
SELECT ok((SELECT typsend <> 0 AND typreceive <> 0 FROM pg_type WHERE typname = 'qtensor'),
	'qtensor has binary send and receive');

-- every object of the extension is documented
SELECT is(
	(SELECT count(*) FROM pg_depend d
	 JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'pgquant' AND d.deptype = 'e'
	 WHERE obj_description(d.objid, (SELECT relname FROM pg_class WHERE oid = d.classid)) IS NULL),
	0::bigint, 'every extension object has a COMMENT');

-- settings exist once the library is loaded, which the first call does
SELECT is(dequantize(quantize('{0.5,0.25}', 'rtn', 8, sym => true)), '{0.5,0.25}'::real[],
	'the library loads on first use');
SELECT is(current_setting('pgquant.device'), 'auto', 'pgquant.device defaults to auto');
SELECT is(current_setting('pgquant.calibration'), '', 'pgquant.calibration defaults to empty (no set)');
SELECT is(current_setting('pgquant.gpu_memory_limit'), '1GB', 'pgquant.gpu_memory_limit defaults to 1GB');
SELECT throws_ok($$SET pgquant.device = 'gpu'$$, '22023', NULL, 'pgquant.device rejects unknown values');
SELECT throws_ok($$SET pgquant.typo = 1$$, '42602', NULL, 'the pgquant. prefix is reserved');

-- privileges: an ordinary role can quantize, store and read qtensors
CREATE ROLE pgquant_tap_user NOLOGIN;
SELECT function_privs_are('public', 'quantize', ARRAY['real[]', 'text', 'integer', 'integer', 'boolean', 'text', 'text', 'boolean', 'boolean', 'double precision'],
	'pgquant_tap_user', ARRAY['EXECUTE'], 'PUBLIC may execute quantize');
SELECT function_privs_are('public', 'dequantize', ARRAY['qtensor'], 'pgquant_tap_user', ARRAY['EXECUTE'],
	'PUBLIC may execute dequantize');
CREATE TABLE tap_weights (id int, q qtensor);
GRANT ALL ON tap_weights TO pgquant_tap_user;
SET ROLE pgquant_tap_user;
SELECT lives_ok($$INSERT INTO tap_weights VALUES (1, quantize('{{0.5,0.25},{-0.25,0}}', 'rtn', 8, sym => true))$$,
	'a non-superuser can quantize and store');
SELECT is((SELECT dequantize(q) FROM tap_weights WHERE id = 1), '{{0.5,0.25},{-0.25,0}}'::real[],
	'a non-superuser reads the values back');
RESET ROLE;

-- errors carry the documented SQLSTATEs
SELECT throws_ok($$SELECT quantize('{}'::real[], 'rtn', 4)$$, '22000', 'cannot quantize an empty array');
SELECT throws_ok($$SELECT quantize('{1,NULL}'::real[], 'rtn', 4)$$, '22004', 'weights must not contain NULL elements');
SELECT throws_ok($$SELECT quantize('{1,NaN}'::real[], 'rtn', 4)$$, '22000', 'weights must be finite, but element 2 is NaN');
SELECT throws_ok($$SELECT quantize('{1,2}'::real[], 'gptq2', 4)$$, '22023', 'unknown quantization method "gptq2"');
SELECT throws_ok($$SELECT quantize('{1,2}'::real[], 'rtn', 12)$$, '22023', 'bits must be between 2 and 8, got 12');
SELECT throws_ok($$SELECT quantize('{1,2}'::real[], 'rtn', 4, -3)$$, '22023', NULL, 'group_size <= 0 other than -1 is rejected');
SELECT throws_ok($$SELECT 'qtensor(nope'::qtensor$$, '22P02', NULL, 'malformed text input is 22P02');
SELECT throws_ok($$SELECT 'qtensor(v=1,method=rtn,type=int8,shape=[16384,16384],group=1,zero=asym,scale=fp32):AAAA'::qtensor$$,
	'54000', 'qtensor is too large', 'sizes past the limits are 54000');

SELECT * FROM finish();
ROLLBACK;
