/*
 * models.c: models as rows.  Importers for llama2.c checkpoints and
 * tokenizers and for safetensors files, writing pgquant.models,
 * pgquant.tensors and pgquant.tokens (control/parts/40_models.sql).
 *
 * Both importers take the file as a bytea and check all of it before they
 * write a row: header sizes, dtypes, shapes against byte counts, offsets
 * inside the buffer, finite values.  A bad file raises 22P03 (invalid binary
 * representation) with a detail that says what is wrong and where; nothing
 * is written.  The rows go in through SPI, so the tables' constraints,
 * privileges and triggers apply as to any INSERT.
 *
 * safetensors (https://huggingface.co/docs/safetensors): an 8-byte
 * little-endian header length N, N bytes of UTF-8 JSON
 *   {"__metadata__": {str: str}, NAME: {"dtype": D, "shape": [..],
 *    "data_offsets": [begin, end]}, ...}
 * then the data, with offsets relative to its start.  The header is parsed
 * with PostgreSQL's JSON parser into jsonb.  Like the reference reader, the
 * tensors must tile the data section exactly: no overlaps, no gaps.
 */
#include "pgquant.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "common/jsonapi.h"
#include "executor/spi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/numeric.h"

#include "llama2c.h"
#include "models.h"

PG_FUNCTION_INFO_V1(pgquant_import_llama2c);
PG_FUNCTION_INFO_V1(pgquant_import_safetensors);
PG_FUNCTION_INFO_V1(pgquant_numel);
PG_FUNCTION_INFO_V1(pgquant_qtensor_numel);

/* the largest safetensors header the reference implementation accepts */
#define ST_MAX_HEADER (100 * 1024 * 1024)
/* PostgreSQL arrays have at most MAXDIM (6) dimensions */
#define ST_MAX_DIMS 64

static void pg_attribute_noreturn()
bad_file(const char *what, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
			 errmsg("invalid %s", what),
			 errdetail("%s", detail)));
}

/*
 * A real[] of n floats from raw little-endian bytes (or zeros when src is
 * NULL), with the given dimensions; ndim 0 makes a 1-D array of n.
 */
ArrayType *
PgqFloatArray(const void *src, int ndim, const int *dims, int64 n)
{
	int			nd = ndim == 0 ? 1 : ndim;
	Size		nbytes;
	ArrayType  *a;

	if (n == 0)
		return construct_empty_array(FLOAT4OID);
	if (n > (int64) MaxArraySize)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("a tensor of %lld elements does not fit in an array", (long long) n),
				 errdetail("PostgreSQL arrays hold at most %d elements.", (int) MaxArraySize)));
	nbytes = add_size(ARR_OVERHEAD_NONULLS(nd), mul_size((Size) n, sizeof(float)));
	if (!AllocSizeIsValid(nbytes))
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("a tensor of %lld elements is too large for one value", (long long) n)));
	a = palloc0(nbytes);
	SET_VARSIZE(a, nbytes);
	a->ndim = nd;
	a->dataoffset = 0;
	a->elemtype = FLOAT4OID;
	for (int d = 0; d < nd; d++)
	{
		ARR_DIMS(a)[d] = ndim == 0 ? (int) n : dims[d];
		ARR_LBOUND(a)[d] = 1;
	}
	if (src)
		memcpy(ARR_DATA_PTR(a), src, (size_t) n * sizeof(float));
	return a;
}

/* an int[] of the given values */
static ArrayType *
int_array(const int64 *v, int n)
{
	Datum	   *d = palloc(sizeof(Datum) * Max(n, 1));

	for (int i = 0; i < n; i++)
		d[i] = Int32GetDatum((int32) v[i]);
	return construct_array(d, n, INT4OID, 4, true, TYPALIGN_INT);
}

/* raise an error unless no model of this name exists yet */
static void
check_new_model(const char *model)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1] = {CStringGetTextDatum(model)};

	if (model[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("model name must not be empty")));
	if (SPI_execute_with_args("SELECT 1 FROM pgquant.models WHERE name = $1",
							  1, argtypes, args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_with_args failed");
	if (SPI_processed > 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNIQUE_VIOLATION),
				 errmsg("model \"%s\" already exists", model),
				 errhint("Delete it first (DELETE FROM pgquant.models WHERE name = ...; its tensors go with it) or choose another name.")));
}

/* insert the model row */
static void
insert_model(const char *model, const char *arch, const char *config_json)
{
	Oid			argtypes[3] = {TEXTOID, TEXTOID, TEXTOID};
	Datum		args[3] = {CStringGetTextDatum(model), CStringGetTextDatum(arch),
	CStringGetTextDatum(config_json)};

	if (SPI_execute_with_args("INSERT INTO pgquant.models (name, arch, config) VALUES ($1, $2, $3::jsonb)",
							  3, argtypes, args, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not insert the model row");
}

/* a prepared INSERT of one tensor row: model, name, shape, dtype, data */
static SPIPlanPtr
prepare_tensor_insert(void)
{
	Oid			argtypes[5] = {TEXTOID, TEXTOID, INT4ARRAYOID, TEXTOID, FLOAT4ARRAYOID};
	SPIPlanPtr	plan = SPI_prepare("INSERT INTO pgquant.tensors (model, name, shape, dtype, data) "
								   "VALUES ($1, $2, $3, $4, $5)", 5, argtypes);

	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	return plan;
}

static void
insert_tensor(SPIPlanPtr plan, const char *model, const char *name, const int64 *shape, int ndim,
			  const char *dtype, ArrayType *data)
{
	Datum		args[5];

	args[0] = CStringGetTextDatum(model);
	args[1] = CStringGetTextDatum(name);
	args[2] = PointerGetDatum(int_array(shape, ndim));
	args[3] = CStringGetTextDatum(dtype);
	args[4] = PointerGetDatum(data);
	if (SPI_execute_plan(plan, args, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not insert tensor \"%s\"", name);
}

/* pgquant.import_llama2c(model text, checkpoint bytea, tokenizer bytea DEFAULT NULL) -> integer */
Datum
pgquant_import_llama2c(PG_FUNCTION_ARGS)
{
	char	   *model;
	bytea	   *ckpt;
	bytea	   *tok = NULL;
	const uint8 *buf;
	size_t		len;
	L2cConfig	cfg;
	L2cTensor  *tensors;
	L2cToken   *tokens = NULL;
	int32		max_token_length = 0;
	int			ntensors;
	char		err[L2C_ERRLEN];
	StringInfoData config;
	SPIPlanPtr	plan;
	MemoryContext tmpcxt,
				oldcxt;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("model name and checkpoint must not be NULL")));
	model = text_to_cstring(PG_GETARG_TEXT_PP(0));
	ckpt = PG_GETARG_BYTEA_PP(1);
	buf = (const uint8 *) VARDATA_ANY(ckpt);
	len = VARSIZE_ANY_EXHDR(ckpt);

	/* the header and the exact size first, then the tensors */
	if (!l2c_parse_checkpoint(buf, len, &cfg, NULL, err))
		bad_file("llama2.c checkpoint", psprintf("%s.", err));
	ntensors = l2c_tensor_count(&cfg);
	tensors = palloc(sizeof(L2cTensor) * ntensors);
	if (!l2c_parse_checkpoint(buf, len, &cfg, tensors, err))
		bad_file("llama2.c checkpoint", psprintf("%s.", err));

	if (!PG_ARGISNULL(2))
	{
		tok = PG_GETARG_BYTEA_PP(2);
		tokens = palloc(sizeof(L2cToken) * cfg.vocab_size);
		if (!l2c_parse_tokenizer((const uint8 *) VARDATA_ANY(tok), VARSIZE_ANY_EXHDR(tok),
								 cfg.vocab_size, tokens, &max_token_length, err))
			bad_file("llama2.c tokenizer", psprintf("%s.", err));
	}

	initStringInfo(&config);
	appendStringInfo(&config,
					 "{\"format\": \"llama2c\", \"dim\": %d, \"hidden_dim\": %d, \"n_layers\": %d, "
					 "\"n_heads\": %d, \"n_kv_heads\": %d, \"vocab_size\": %d, \"seq_len\": %d, "
					 "\"shared_classifier\": %s, \"norm_eps\": 1e-5, \"rope_theta\": 10000",
					 cfg.dim, cfg.hidden_dim, cfg.n_layers, cfg.n_heads, cfg.n_kv_heads,
					 cfg.vocab_size, cfg.seq_len, cfg.shared_classifier ? "true" : "false");
	if (tok)
		appendStringInfo(&config, ", \"max_token_length\": %d, \"bos_id\": 1, \"eos_id\": 2",
						 max_token_length);
	appendStringInfoChar(&config, '}');

	SPI_connect();
	check_new_model(model);
	insert_model(model, "llama", config.data);
	plan = prepare_tensor_insert();
	tmpcxt = AllocSetContextCreate(CurrentMemoryContext, "pgquant import", ALLOCSET_DEFAULT_SIZES);
	for (int i = 0; i < ntensors; i++)
	{
		L2cTensor  *t = &tensors[i];
		int			dims[2] = {t->shape[0], t->shape[1]};
		int64		shape[2] = {t->shape[0], t->shape[1]};

		CHECK_FOR_INTERRUPTS();
		oldcxt = MemoryContextSwitchTo(tmpcxt);
		insert_tensor(plan, model, t->name, shape, t->ndim, "F32",
					  PgqFloatArray(buf + t->offset, t->ndim, dims, t->numel));
		MemoryContextSwitchTo(oldcxt);
		MemoryContextReset(tmpcxt);
	}
	if (tok)
	{
		/* one statement for the whole vocabulary */
		const uint8 *tbuf = (const uint8 *) VARDATA_ANY(tok);
		Datum	   *pieces = palloc(sizeof(Datum) * cfg.vocab_size);
		Datum	   *scores = palloc(sizeof(Datum) * cfg.vocab_size);
		Oid			argtypes[3] = {TEXTOID, BYTEAARRAYOID, FLOAT4ARRAYOID};
		Datum		args[3];

		for (int i = 0; i < cfg.vocab_size; i++)
		{
			bytea	   *p = palloc(VARHDRSZ + tokens[i].len);

			SET_VARSIZE(p, VARHDRSZ + tokens[i].len);
			memcpy(VARDATA(p), tbuf + tokens[i].offset, tokens[i].len);
			pieces[i] = PointerGetDatum(p);
			scores[i] = Float4GetDatum(tokens[i].score);
		}
		args[0] = CStringGetTextDatum(model);
		args[1] = PointerGetDatum(construct_array(pieces, cfg.vocab_size, BYTEAOID, -1, false, TYPALIGN_INT));
		args[2] = PointerGetDatum(construct_array(scores, cfg.vocab_size, FLOAT4OID, 4, true, TYPALIGN_INT));
		if (SPI_execute_with_args("INSERT INTO pgquant.tokens (model, id, piece, score) "
								  "SELECT $1, t.n - 1, t.piece, t.score "
								  "FROM unnest($2, $3) WITH ORDINALITY AS t(piece, score, n)",
								  3, argtypes, args, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "could not insert the tokens");
	}
	SPI_finish();
	PG_RETURN_INT32(ntensors);
}

/* ---- safetensors --------------------------------------------------------- */

/* an integer-valued, non-negative JSON number as int64; false otherwise */
static bool
json_uint(const JsonbValue *v, int64 *out)
{
	char	   *s,
			   *end;

	if (v == NULL || v->type != jbvNumeric)
		return false;
	s = DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v->val.numeric)));
	if (!isdigit((unsigned char) s[0]))
		return false;
	errno = 0;
	*out = strtoll(s, &end, 10);
	return errno == 0 && *end == '\0';
}

static JsonbValue *
json_field(JsonbContainer *obj, const char *key)
{
	JsonbValue	k;

	k.type = jbvString;
	k.val.string.val = (char *) key;
	k.val.string.len = strlen(key);
	return findJsonbValueFromContainer(obj, JB_FOBJECT, &k);
}

/* one tensor entry of the header, checked */
typedef struct StTensor
{
	char	   *name;
	int			dtype_size;		/* 2 or 4 */
	const char *dtype;			/* "F32", "F16", "BF16" */
	int			ndim;
	int64		shape[ST_MAX_DIMS];
	int64		numel;
	int64		begin;
	int64		end;
} StTensor;

static int
st_cmp_begin(const void *a, const void *b)
{
	const StTensor *x = a,
			   *y = b;

	if (x->begin != y->begin)
		return x->begin < y->begin ? -1 : 1;
	return x->end < y->end ? -1 : x->end > y->end ? 1 : 0;
}

#define BAD_ST(...) bad_file("safetensors file", psprintf(__VA_ARGS__))

/* check one header entry (name -> object) against the data section */
static void
st_check_entry(StTensor *t, JsonbContainer *obj, int64 data_len)
{
	JsonbValue *dtype = json_field(obj, "dtype");
	JsonbValue *shape = json_field(obj, "shape");
	JsonbValue *offs = json_field(obj, "data_offsets");
	char	   *dt;
	int64		bytes;

	if (dtype == NULL || dtype->type != jbvString)
		BAD_ST("Tensor \"%s\" has no \"dtype\" string.", t->name);
	dt = pnstrdup(dtype->val.string.val, dtype->val.string.len);
	if (strcmp(dt, "F32") == 0)
		t->dtype = "F32", t->dtype_size = 4;
	else if (strcmp(dt, "F16") == 0)
		t->dtype = "F16", t->dtype_size = 2;
	else if (strcmp(dt, "BF16") == 0)
		t->dtype = "BF16", t->dtype_size = 2;
	else
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("tensor \"%s\" has dtype \"%s\", which pgquant does not import", t->name, dt),
				 errhint("pgquant imports F32, F16 and BF16 tensors.")));

	if (shape == NULL || shape->type != jbvBinary || !JsonContainerIsArray(shape->val.binary.data) ||
		JsonContainerIsScalar(shape->val.binary.data))
		BAD_ST("Tensor \"%s\" has no \"shape\" array.", t->name);
	t->ndim = JsonContainerSize(shape->val.binary.data);
	if (t->ndim > ST_MAX_DIMS)
		BAD_ST("Tensor \"%s\" has %d dimensions, more than %d.", t->name, t->ndim, ST_MAX_DIMS);
	t->numel = 1;
	for (int d = 0; d < t->ndim; d++)
	{
		if (!json_uint(getIthJsonbValueFromContainer(shape->val.binary.data, d), &t->shape[d]) ||
			t->shape[d] > PG_INT32_MAX)
			BAD_ST("Dimension %d of tensor \"%s\" is not an integer between 0 and %d.",
				   d, t->name, PG_INT32_MAX);
		if (pg_mul_s64_overflow(t->numel, t->shape[d], &t->numel) || t->numel > PG_INT32_MAX)
			BAD_ST("Tensor \"%s\" has too many elements.", t->name);
	}

	if (offs == NULL || offs->type != jbvBinary || !JsonContainerIsArray(offs->val.binary.data) ||
		JsonContainerIsScalar(offs->val.binary.data) || JsonContainerSize(offs->val.binary.data) != 2 ||
		!json_uint(getIthJsonbValueFromContainer(offs->val.binary.data, 0), &t->begin) ||
		!json_uint(getIthJsonbValueFromContainer(offs->val.binary.data, 1), &t->end))
		BAD_ST("Tensor \"%s\" needs \"data_offsets\": [begin, end] with non-negative integers.", t->name);
	if (t->begin > t->end || t->end > data_len)
		BAD_ST("Tensor \"%s\" has data_offsets [%lld, %lld] outside the %lld bytes of data.",
			   t->name, (long long) t->begin, (long long) t->end, (long long) data_len);
	bytes = t->numel * t->dtype_size;
	if (t->end - t->begin != bytes)
		BAD_ST("Tensor \"%s\" of %lld elements of %s needs %lld bytes, but its data_offsets span %lld.",
			   t->name, (long long) t->numel, t->dtype, (long long) bytes, (long long) (t->end - t->begin));
}

/* decode n values of a dtype to float, checking that each is finite */
static void
st_decode(const StTensor *t, const uint8 *src, float *dst)
{
	for (int64 i = 0; i < t->numel; i++)
	{
		float		f;

		if (t->dtype_size == 4)
			memcpy(&f, src + i * 4, 4);
		else
		{
			uint16		h;

			memcpy(&h, src + i * 2, 2);
			if (t->dtype[0] == 'F')
				f = qt_half_to_float(h);
			else
			{
				uint32		x = (uint32) h << 16;

				memcpy(&f, &x, 4);
			}
		}
		if (!isfinite(f))
			BAD_ST("Tensor \"%s\" has a non-finite value at element %lld.", t->name, (long long) i);
		dst[i] = f;
	}
}

/*
 * pgquant.import_safetensors(model text, file bytea, arch text DEFAULT 'unknown',
 *                            config jsonb DEFAULT '{}') -> integer
 */
Datum
pgquant_import_safetensors(PG_FUNCTION_ARGS)
{
	char	   *model;
	bytea	   *file;
	const uint8 *buf;
	size_t		len;
	uint64		hlen;
	char	   *header;
	char	   *converted;
	JsonLexContext *lex;
	JsonParseErrorType jerr;
	Jsonb	   *jb;
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	StTensor   *tensors;
	int			ntensors = 0;
	int			maxtensors;
	char	   *metadata = NULL;
	const uint8 *data;
	int64		data_len;
	int64		expect;
	StringInfoData config;
	SPIPlanPtr	plan;
	MemoryContext tmpcxt,
				oldcxt;
	char	   *arch;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("model name and file must not be NULL")));
	model = text_to_cstring(PG_GETARG_TEXT_PP(0));
	file = PG_GETARG_BYTEA_PP(1);
	arch = PG_ARGISNULL(2) ? "unknown" : text_to_cstring(PG_GETARG_TEXT_PP(2));
	buf = (const uint8 *) VARDATA_ANY(file);
	len = VARSIZE_ANY_EXHDR(file);

	if (len < 8)
		BAD_ST("The file has %zu bytes, fewer than the 8 of its header length.", len);
	memcpy(&hlen, buf, 8);
	if (hlen > len - 8)
		BAD_ST("The header length %llu exceeds the %zu bytes that follow it.",
			   (unsigned long long) hlen, len - 8);
	if (hlen < 2 || hlen > ST_MAX_HEADER)
		BAD_ST("The header length %llu is outside 2..%d.", (unsigned long long) hlen, ST_MAX_HEADER);
	if (memchr(buf + 8, '\0', hlen) != NULL)
		BAD_ST("The header contains a NUL byte.");
	header = pnstrdup((const char *) buf + 8, hlen);
	/* the header is UTF-8; the JSON parser wants the database encoding */
	if (!pg_verify_mbstr(PG_UTF8, header, (int) hlen, true))
		BAD_ST("The header is not valid UTF-8.");
	converted = pg_any_to_server(header, (int) hlen, PG_UTF8);

	lex = makeJsonLexContextCstringLen(converted, strlen(converted), GetDatabaseEncoding(), true);
	jerr = pg_parse_json(lex, &nullSemAction);
	if (jerr != JSON_SUCCESS)
		BAD_ST("The header is not valid JSON: %s", json_errdetail(jerr, lex));
	jb = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(converted)));
	if (!JsonContainerIsObject(&jb->root) || JsonContainerIsScalar(&jb->root))
		BAD_ST("The header must be a JSON object.");

	data = buf + 8 + hlen;
	data_len = (int64) (len - 8 - hlen);
	maxtensors = JsonContainerSize(&jb->root);
	tensors = palloc0(sizeof(StTensor) * Max(maxtensors, 1));

	/* walk the top-level pairs; containers come back whole (skipNested) */
	it = JsonbIteratorInit(&jb->root);
	tok = JsonbIteratorNext(&it, &v, true);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_END_OBJECT && tok != WJB_DONE)
	{
		char	   *key;

		if (tok != WJB_KEY)
			elog(ERROR, "unexpected jsonb token %d", tok);
		key = pnstrdup(v.val.string.val, v.val.string.len);
		tok = JsonbIteratorNext(&it, &v, true);
		if (strcmp(key, "__metadata__") == 0)
		{
			/* string -> string, stored as is in the model's config */
			if (v.type != jbvBinary || !JsonContainerIsObject(v.val.binary.data) ||
				JsonContainerIsScalar(v.val.binary.data))
				BAD_ST("\"__metadata__\" must be an object.");
			metadata = JsonbToCString(NULL, v.val.binary.data, v.val.binary.len);
			continue;
		}
		if (key[0] == '\0')
			BAD_ST("A tensor has an empty name.");
		if (v.type != jbvBinary || !JsonContainerIsObject(v.val.binary.data) ||
			JsonContainerIsScalar(v.val.binary.data))
			BAD_ST("The entry of tensor \"%s\" must be an object.", key);
		tensors[ntensors].name = key;
		st_check_entry(&tensors[ntensors], v.val.binary.data, data_len);
		ntensors++;
	}

	/* the tensors must tile the data section: sorted, they run end to start */
	qsort(tensors, ntensors, sizeof(StTensor), st_cmp_begin);
	expect = 0;
	for (int i = 0; i < ntensors; i++)
	{
		if (tensors[i].begin < expect)
			BAD_ST("Tensor \"%s\" overlaps the data of tensor \"%s\".", tensors[i].name, tensors[i - 1].name);
		if (tensors[i].begin > expect)
			BAD_ST("Bytes %lld to %lld of the data belong to no tensor.",
				   (long long) expect, (long long) tensors[i].begin);
		expect = tensors[i].end;
	}
	if (expect != data_len)
		BAD_ST("The data section has %lld bytes, but the tensors use %lld.",
			   (long long) data_len, (long long) expect);

	initStringInfo(&config);
	appendStringInfo(&config, "{\"format\": \"safetensors\", \"metadata\": %s}",
					 metadata ? metadata : "{}");

	SPI_connect();
	check_new_model(model);
	{
		/* the caller's config wins over what the file says */
		Oid			argtypes[4] = {TEXTOID, TEXTOID, TEXTOID, JSONBOID};
		Datum		args[4] = {CStringGetTextDatum(model), CStringGetTextDatum(arch),
		CStringGetTextDatum(config.data), PG_ARGISNULL(3) ? (Datum) 0 : PG_GETARG_DATUM(3)};
		char		nulls[4] = {' ', ' ', ' ', PG_ARGISNULL(3) ? 'n' : ' '};

		if (SPI_execute_with_args("INSERT INTO pgquant.models (name, arch, config) "
								  "VALUES ($1, $2, $3::jsonb || coalesce($4, '{}'))",
								  4, argtypes, args, nulls, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "could not insert the model row");
	}
	plan = prepare_tensor_insert();
	tmpcxt = AllocSetContextCreate(CurrentMemoryContext, "pgquant import", ALLOCSET_DEFAULT_SIZES);
	for (int i = 0; i < ntensors; i++)
	{
		StTensor   *t = &tensors[i];
		int			dims[MAXDIM];
		int			nd = (t->ndim >= 1 && t->ndim <= MAXDIM) ? t->ndim : 0;
		ArrayType  *a;

		CHECK_FOR_INTERRUPTS();
		oldcxt = MemoryContextSwitchTo(tmpcxt);
		for (int d = 0; d < nd; d++)
			dims[d] = (int) t->shape[d];
		a = PgqFloatArray(NULL, nd, dims, t->numel);
		if (t->numel > 0)
			st_decode(t, data + t->begin, (float *) ARR_DATA_PTR(a));
		insert_tensor(plan, model, t->name, t->shape, t->ndim, t->dtype, a);
		MemoryContextSwitchTo(oldcxt);
		MemoryContextReset(tmpcxt);
	}
	SPI_finish();
	PG_RETURN_INT32(ntensors);
}

/* pgquant.numel(shape integer[]) -> bigint: the product of a shape's dimensions */
Datum
pgquant_numel(PG_FUNCTION_ARGS)
{
	ArrayType  *a = PG_GETARG_ARRAYTYPE_P(0);
	int			n = ArrayGetNItems(ARR_NDIM(a), ARR_DIMS(a));
	int64		p = 1;

	if (ARR_NDIM(a) > 1 || array_contains_nulls(a))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a shape must be a 1-D integer array without NULLs")));
	for (int i = 0; i < n; i++)
	{
		int32		d = ((int32 *) ARR_DATA_PTR(a))[i];

		if (d < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("shape dimensions must not be negative, got %d", d)));
		if (pg_mul_s64_overflow(p, d, &p))
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("the shape has too many elements")));
	}
	PG_RETURN_INT64(p);
}

/* pgquant.qtensor_numel(q qtensor) -> bigint: rows x cols, reading only the header */
Datum
pgquant_qtensor_numel(PG_FUNCTION_ARGS)
{
	/* the slice counts from the first byte after the varlena length word */
	struct varlena *v = PG_DETOAST_DATUM_SLICE(PG_GETARG_DATUM(0), 0, QT_HEADER_SIZE - VARHDRSZ);
	QtHeader	h;
	char		err[QT_ERRMSG_LEN];

	if (VARATT_IS_SHORT(v) || VARSIZE(v) < QT_HEADER_SIZE)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("qtensor value is corrupted")));
	memcpy(&h, v, sizeof(h));
	if (qt_check_header(&h, err) != QT_OK)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("qtensor value is corrupted")));
	PG_RETURN_INT64((int64) h.rows * h.cols);
}
