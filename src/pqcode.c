/*
 * pqcode.c: the pqcode type (codes that name their codebook by its content
 * id) and the SQL functions over codes: pq_encode, pq_decode, the ADC
 * distances and pqcode_info.
 *
 * Text form (docs/pq-format.md):
 *   pqcode(v=1,kind=pq,m=16,nbits=8,codebook=0123456789abcdef):BASE64
 * BASE64 holds, for rvq, the reconstruction's squared norm as a big-endian
 * float32, then the packed codes: the bytes that end the binary form.
 *
 * A function given the codebook explicitly reads no table and is IMMUTABLE;
 * one given only the code finds the codebook in pgquant.codebooks through
 * the backend's cache, and is STABLE.  Per call site (fn_extra) we keep the
 * query's lookup table, so ORDER BY pq_distance(code, $1) builds it once.
 */
#include "pqsql.h"

#include <math.h>

#include "access/detoast.h"
#include "catalog/pg_type.h"
#include "common/base64.h"
#include "funcapi.h"
#include "libpq/pqformat.h"
#include "utils/builtins.h"
#include "utils/float.h"

PG_FUNCTION_INFO_V1(pqcode_in);
PG_FUNCTION_INFO_V1(pqcode_out);
PG_FUNCTION_INFO_V1(pqcode_recv);
PG_FUNCTION_INFO_V1(pqcode_send);
PG_FUNCTION_INFO_V1(pgquant_pq_encode);
PG_FUNCTION_INFO_V1(pgquant_pq_decode);
PG_FUNCTION_INFO_V1(pgquant_pq_l2_distance);
PG_FUNCTION_INFO_V1(pgquant_pq_inner_product);
PG_FUNCTION_INFO_V1(pgquant_pq_cosine_distance);
PG_FUNCTION_INFO_V1(pgquant_pqcode_info);
PG_FUNCTION_INFO_V1(pgquant_pqcode_codebook_id);

#define LITERAL_QUOTE 60

/* ---- parsing and checking ------------------------------------------ */

void
PgqPqcodeFromDatum(Datum d, QtPqcode *c)
{
	struct varlena *v = PG_DETOAST_DATUM_PACKED(d);
	char		err[QT_ERRMSG_LEN];

	if (qt_pqcode_parse((const uint8 *) VARDATA_ANY(v), VARSIZE_ANY_EXHDR(v), c, err) != QT_OK)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("pqcode value is corrupted"),
				 errdetail("%s.", err)));
}

void
PgqPqcodeCheckCodebook(const QtPqcode *c, const PgqCodebook *cb)
{
	if (c->id != cb->id)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("pqcode was not made by this codebook"),
				 errdetail("The code refers to codebook %s; the codebook given is %s.",
						   PgqIdToHex(c->id), PgqIdToHex(cb->id))));
	if (c->kind != cb->kind || c->m != cb->m || c->nbits != cb->nbits)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("pqcode does not match the shape of its codebook %s", PgqIdToHex(cb->id)),
				 errdetail("The code is %s with m = %d and nbits = %d; the codebook is %s with m = %d and nbits = %d.",
						   qt_cb_kind_name(c->kind), c->m, c->nbits,
						   qt_cb_kind_name(cb->kind), cb->m, cb->nbits)));
}

/* ---- I/O ------------------------------------------------------------ */

static bool
parse_small_int(const char *s, int lo, int hi, int *out)
{
	char	   *end;
	long		v;

	if (!isdigit((unsigned char) s[0]))
		return false;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < lo || v > hi)
		return false;
	*out = (int) v;
	return true;
}

static void pg_attribute_noreturn()
pqcode_syntax_error(const char *lit, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
			 errmsg("invalid input syntax for type pqcode: \"%.*s%s\"",
					LITERAL_QUOTE, lit, strlen(lit) > LITERAL_QUOTE ? "..." : ""),
			 errdetail("%s", detail)));
}

/* a pqcode varlena from its wire bytes, checked; errors use einval_code */
static struct varlena *
pqcode_from_wire(const uint8 *wire, size_t len, int einval_code, const char *what)
{
	struct varlena *res = palloc(VARHDRSZ + len);
	QtPqcode	c;
	char		err[QT_ERRMSG_LEN];

	SET_VARSIZE(res, VARHDRSZ + len);
	qt_pqcode_from_wire(wire, len, (uint8 *) VARDATA(res));
	PgqReportStatus(qt_pqcode_parse((const uint8 *) VARDATA(res), len, &c, err), err, what, einval_code);
	return res;
}

Datum
pqcode_in(PG_FUNCTION_ARGS)
{
	char	   *lit = PG_GETARG_CSTRING(0);
	char	   *s = pstrdup(lit),
			   *p,
			   *payload;
	char	   *keys[8],
			   *vals[8];
	const char *problem = NULL;
	static const char *const names[5] = {"v", "kind", "m", "nbits", "codebook"};
	bool		seen[5] = {0};
	int			version = 0,
				kind = 0,
				m = 0,
				nbits = 0;
	uint64		id = 0;
	int			nitems,
				b64len,
				declen;
	size_t		len,
				body_len;
	uint8	   *wire;

	while (isspace((unsigned char) *s))
		s++;
	for (p = s + strlen(s); p > s && isspace((unsigned char) p[-1]); p--)
		p[-1] = '\0';
	nitems = PgqParseLiteral(s, "pqcode", keys, vals, 8, &payload, &problem);
	if (nitems < 0)
		pqcode_syntax_error(lit, problem);
	for (int i = 0; i < nitems; i++)
	{
		int			k;
		bool		good = true;

		for (k = 0; k < 5; k++)
			if (strcmp(keys[i], names[k]) == 0)
				break;
		if (k == 5)
			pqcode_syntax_error(lit, psprintf("Unknown header key \"%s\".", keys[i]));
		if (seen[k])
			pqcode_syntax_error(lit, psprintf("Header key \"%s\" appears twice.", keys[i]));
		seen[k] = true;
		switch (k)
		{
			case 0:
				good = parse_small_int(vals[i], 0, 255, &version);
				break;
			case 1:
				kind = strcmp(vals[i], "pq") == 0 ? QT_CB_PQ : strcmp(vals[i], "rvq") == 0 ? QT_CB_RVQ : 0;
				good = kind != 0;
				break;
			case 2:
				good = parse_small_int(vals[i], 1, 65535, &m);
				break;
			case 3:
				good = parse_small_int(vals[i], 0, 255, &nbits);
				break;
			case 4:
				good = strlen(vals[i]) == 16 && strspn(vals[i], "0123456789abcdef") == 16;
				if (good)
					id = strtoull(vals[i], NULL, 16);
				break;
		}
		if (!good)
			pqcode_syntax_error(lit, psprintf("Invalid value for header key \"%s\".", keys[i]));
	}
	for (int k = 0; k < 5; k++)
		if (!seen[k])
			pqcode_syntax_error(lit, psprintf("Header key \"%s\" is missing.", names[k]));
	if (nbits < QT_PQ_MIN_NBITS || nbits > QT_PQ_MAX_NBITS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("invalid value for type pqcode"),
				 errdetail("nbits must be between %d and %d, got %d.", QT_PQ_MIN_NBITS, QT_PQ_MAX_NBITS, nbits)));

	/* the payload's length follows from the header */
	len = qt_pqcode_size(kind, m, nbits);
	body_len = len - QT_PQCODE_HEADER_SIZE;
	b64len = strlen(payload);
	if (b64len != (int) (4 * ((body_len + 2) / 3)))
		pqcode_syntax_error(lit, psprintf("The payload must be %d base64 characters for this header, not %d.",
										  (int) (4 * ((body_len + 2) / 3)), b64len));
	wire = palloc0(QT_PQCODE_HEADER_SIZE + pg_b64_dec_len(b64len) + 1);
	wire[0] = (uint8) version;
	wire[1] = (uint8) kind;
	wire[2] = (uint8) nbits;
	wire[4] = (uint8) (m >> 8);
	wire[5] = (uint8) m;
	for (int i = 0; i < 8; i++)
		wire[8 + i] = (uint8) (id >> (56 - 8 * i));
	declen = pg_b64_decode(payload, b64len, (char *) wire + QT_PQCODE_HEADER_SIZE, pg_b64_dec_len(b64len) + 1);
	if (declen != (int) body_len)
		pqcode_syntax_error(lit, "The payload is not valid base64 of the expected length.");
	PG_RETURN_POINTER(pqcode_from_wire(wire, len, ERRCODE_INVALID_TEXT_REPRESENTATION, "value for type pqcode"));
}

Datum
pqcode_out(PG_FUNCTION_ARGS)
{
	struct varlena *v = PG_DETOAST_DATUM_PACKED(PG_GETARG_DATUM(0));
	QtPqcode	c;
	size_t		len = VARSIZE_ANY_EXHDR(v);
	uint8	   *wire = palloc(len);
	StringInfoData buf;
	int			enclen,
				n;

	PgqPqcodeFromDatum(PointerGetDatum(v), &c);
	qt_pqcode_to_wire((const uint8 *) VARDATA_ANY(v), len, wire);
	enclen = (int) (4 * ((len - QT_PQCODE_HEADER_SIZE + 2) / 3));
	initStringInfo(&buf);
	appendStringInfo(&buf, "pqcode(v=%d,kind=%s,m=%d,nbits=%d,codebook=%s):", c.version,
					 qt_cb_kind_name(c.kind), c.m, c.nbits, PgqIdToHex(c.id));
	enlargeStringInfo(&buf, enclen + 1);
	n = pg_b64_encode((const char *) wire + QT_PQCODE_HEADER_SIZE, (int) (len - QT_PQCODE_HEADER_SIZE),
					  buf.data + buf.len, enclen + 1);
	if (n != enclen)
		elog(ERROR, "base64 encoding of a pqcode failed (please report a bug)");
	buf.len += n;
	buf.data[buf.len] = '\0';
	PG_RETURN_CSTRING(buf.data);
}

Datum
pqcode_recv(PG_FUNCTION_ARGS)
{
	StringInfo	msg = (StringInfo) PG_GETARG_POINTER(0);
	size_t		len = (size_t) (msg->len - msg->cursor);
	struct varlena *res;

	if (len > 1024 * 1024)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid binary input for type pqcode"),
				 errdetail("A pqcode has at most %zu bytes, got %zu.",
						   qt_pqcode_size(QT_CB_PQ, QT_PQ_MAX_DIM, QT_PQ_MAX_NBITS), len)));
	res = pqcode_from_wire((const uint8 *) msg->data + msg->cursor, len,
						   ERRCODE_INVALID_BINARY_REPRESENTATION, "binary input for type pqcode");
	msg->cursor = msg->len;
	PG_RETURN_POINTER(res);
}

Datum
pqcode_send(PG_FUNCTION_ARGS)
{
	struct varlena *v = PG_DETOAST_DATUM_PACKED(PG_GETARG_DATUM(0));
	QtPqcode	c;
	size_t		len = VARSIZE_ANY_EXHDR(v);
	bytea	   *out = palloc(VARHDRSZ + len);

	PgqPqcodeFromDatum(PointerGetDatum(v), &c);
	SET_VARSIZE(out, VARHDRSZ + len);
	qt_pqcode_to_wire((const uint8 *) VARDATA_ANY(v), len, (uint8 *) VARDATA(out));
	PG_RETURN_BYTEA_P(out);
}

/* ---- per call site state ------------------------------------------- */

typedef struct PqCallCache
{
	/* an explicit codebook argument stored out of line: its toast pointer and id */
	bool		have_ext;
	varatt_external ext;
	uint64		ext_id;

	/* the query's lookup tables for one codebook and metric */
	bool		have_lut;
	uint64		lut_id;
	int			dim;
	float	   *query;			/* copy of the query the tables were built for */
	float		qnorm2;			/* ||q||^2 */
	float	   *lut;			/* (m, ksub): L2 (PQ, L2) or inner products */
	float	   *nlut;			/* PQ cosine: squared centroid norms, (m, ksub) */

	/* pq_encode's scratch */
	float	   *scratch;
	size_t		scratch_len;
} PqCallCache;

static PqCallCache *
call_cache(FunctionCallInfo fcinfo)
{
	if (fcinfo->flinfo->fn_extra == NULL)
		fcinfo->flinfo->fn_extra = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(PqCallCache));
	return (PqCallCache *) fcinfo->flinfo->fn_extra;
}

/*
 * The codebook passed as argument argno.  When it is stored out of line we
 * remember its toast pointer, so a scan that passes the same stored codebook
 * for every row reads its header once, not once per row.
 */
static const PgqCodebook *
codebook_arg(FunctionCallInfo fcinfo, int argno)
{
	PqCallCache *cc = call_cache(fcinfo);
	Datum		d = PG_GETARG_DATUM(argno);
	struct varlena *v = (struct varlena *) DatumGetPointer(d);
	const PgqCodebook *cb;
	uint64		id;

	if (VARATT_IS_EXTERNAL_ONDISK(v))
	{
		varatt_external ext;

		VARATT_EXTERNAL_GET_POINTER(ext, v);
		if (cc->have_ext && ext.va_valueid == cc->ext.va_valueid &&
			ext.va_toastrelid == cc->ext.va_toastrelid &&
			(cb = PgqCodebookCached(cc->ext_id)) != NULL)
			return cb;
		cb = PgqCodebookGet(d);
		cc->ext = ext;
		cc->ext_id = cb->id;
		cc->have_ext = true;
		return cb;
	}
	if (!VARATT_IS_EXTENDED(v) && VARSIZE(v) >= QT_CB_HEADER_SIZE)
	{
		memcpy(&id, (const char *) v + offsetof(QtCbHeader, id), sizeof(id));
		if ((cb = PgqCodebookCached(id)) != NULL)
			return cb;
	}
	return PgqCodebookGet(d);
}

/* the code's codebook: the explicit argument when there is one, else the registry */
static const PgqCodebook *
codebook_for(FunctionCallInfo fcinfo, int cb_argno, const QtPqcode *c)
{
	const PgqCodebook *cb = cb_argno >= 0 ? codebook_arg(fcinfo, cb_argno) : PgqCodebookLookup(c->id);

	PgqPqcodeCheckCodebook(c, cb);
	return cb;
}

/* ---- encode and decode ---------------------------------------------- */

/* pq_encode(pq_codebook or rvq_codebook, real[]) -> pqcode */
Datum
pgquant_pq_encode(PG_FUNCTION_ARGS)
{
	const PgqCodebook *cb = codebook_arg(fcinfo, 0);
	PqCallCache *cc = call_cache(fcinfo);
	const float *x = PgqVectorCheckDim(PG_GETARG_ARRAYTYPE_P(1), cb->dim, "vector");
	size_t		need = cb->kind == QT_CB_PQ ? qt_pq_encode_scratch(&cb->pq, 1) : qt_rvq_encode_scratch(&cb->rvq, 1);
	size_t		len = qt_pqcode_size(cb->kind, cb->m, cb->nbits);
	struct varlena *res = palloc(VARHDRSZ + len);
	uint8	   *codes = palloc(cb->code_size);
	float		norm = 0;

	if (cc->scratch_len < need)
	{
		if (cc->scratch)
			pfree(cc->scratch);
		cc->scratch = MemoryContextAlloc(fcinfo->flinfo->fn_mcxt, need * sizeof(float));
		cc->scratch_len = need;
	}
	if (cb->kind == QT_CB_PQ)
		qt_pq_encode(&cb->pq, cb->cnorm, x, 1, codes, cc->scratch);
	else
		qt_rvq_encode(&cb->rvq, cb->cnorm, x, 1, codes, &norm, cc->scratch);
	SET_VARSIZE(res, VARHDRSZ + len);
	qt_pqcode_write((uint8 *) VARDATA(res), cb->kind, cb->m, cb->nbits, cb->id, norm, codes);
	PG_RETURN_POINTER(res);
}

/* pq_decode(pqcode) or pq_decode(codebook, pqcode) -> real[] */
Datum
pgquant_pq_decode(PG_FUNCTION_ARGS)
{
	bool		explicit_cb = PG_NARGS() == 2;
	QtPqcode	c;
	const PgqCodebook *cb;
	float	   *x;

	PgqPqcodeFromDatum(PG_GETARG_DATUM(explicit_cb ? 1 : 0), &c);
	cb = codebook_for(fcinfo, explicit_cb ? 0 : -1, &c);
	x = palloc(sizeof(float) * cb->dim);
	if (cb->kind == QT_CB_PQ)
		qt_pq_decode(&cb->pq, c.codes, 1, x);
	else
		qt_rvq_decode(&cb->rvq, c.codes, 1, x);
	PG_RETURN_ARRAYTYPE_P(PgqArrayFromFloats(x, cb->dim));
}

/* ---- distances ------------------------------------------------------ */

/*
 * Make sure cc holds the tables of this codebook for query array a (built
 * for metric; the cosine tables are the inner-product ones plus norms).
 */
static void
prepare_tables(FunctionCallInfo fcinfo, PqCallCache *cc, const PgqCodebook *cb, ArrayType *a, QtMetric metric)
{
	const float *q;
	MemoryContext old;

	/* a cheap structural look first: the same query as last time needs no checks */
	if (cc->have_lut && cc->lut_id == cb->id && ARR_ELEMTYPE(a) == FLOAT4OID &&
		ARR_NDIM(a) == 1 && !ARR_HASNULL(a) && ARR_DIMS(a)[0] == cc->dim &&
		memcmp(ARR_DATA_PTR(a), cc->query, sizeof(float) * cc->dim) == 0)
		return;

	q = PgqVectorCheckDim(a, cb->dim, "query");
	old = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);
	if (cc->query)
	{
		pfree(cc->query);
		pfree(cc->lut);
		if (cc->nlut)
			pfree(cc->nlut);
	}
	cc->dim = cb->dim;
	cc->query = palloc(sizeof(float) * cb->dim);
	memcpy(cc->query, q, sizeof(float) * cb->dim);
	cc->qnorm2 = qt_dot(q, q, cb->dim);
	cc->lut = palloc(sizeof(float) * cb->m * cb->ksub);
	cc->nlut = NULL;
	if (cb->kind == QT_CB_PQ)
	{
		qt_pq_lut(&cb->pq, q, metric == QT_METRIC_L2 ? QT_METRIC_L2 : QT_METRIC_IP, cc->lut);
		if (metric == QT_METRIC_COSINE)
		{
			cc->nlut = palloc(sizeof(float) * cb->m * cb->ksub);
			memcpy(cc->nlut, cb->cnorm, sizeof(float) * cb->m * cb->ksub);
		}
	}
	else
		qt_rvq_lut(&cb->rvq, q, cc->lut);
	MemoryContextSwitchTo(old);
	cc->lut_id = cb->id;
	cc->have_lut = true;
}

/* shared body of the three distance functions: (code, q) or (codebook, code, q) */
static double
pq_distance_common(FunctionCallInfo fcinfo, QtMetric metric)
{
	bool		explicit_cb = PG_NARGS() == 3;
	PqCallCache *cc = call_cache(fcinfo);
	QtPqcode	c;
	ArrayType  *a;
	const PgqCodebook *cb;
	float		s;

	PgqPqcodeFromDatum(PG_GETARG_DATUM(explicit_cb ? 1 : 0), &c);
	a = PG_GETARG_ARRAYTYPE_P(explicit_cb ? 2 : 1);
	if (!explicit_cb && cc->have_lut && cc->lut_id == c.id && (cb = PgqCodebookCached(c.id)) != NULL &&
		cb->registered)
		PgqPqcodeCheckCodebook(&c, cb);
	else
		cb = codebook_for(fcinfo, explicit_cb ? 0 : -1, &c);
	prepare_tables(fcinfo, cc, cb, a, metric);

	s = qt_adc_ref(cc->lut, cb->m, cb->nbits, c.codes);
	if (metric == QT_METRIC_L2)
	{
		double		d2 = cb->kind == QT_CB_PQ ? s : (double) cc->qnorm2 - 2.0 * s + c.norm;

		return sqrt(d2 > 0 ? d2 : 0);
	}
	if (metric == QT_METRIC_IP)
		return s;
	{
		double		xn2 = cb->kind == QT_CB_PQ ? qt_adc_ref(cc->nlut, cb->m, cb->nbits, c.codes) : c.norm;
		double		denom = sqrt((double) cc->qnorm2 * xn2);

		/* like pgvector's cosine_distance: NaN when either vector is zero */
		if (denom == 0)
			return get_float8_nan();
		return 1.0 - s / denom;
	}
}

Datum
pgquant_pq_l2_distance(PG_FUNCTION_ARGS)
{
	PG_RETURN_FLOAT8(pq_distance_common(fcinfo, QT_METRIC_L2));
}

Datum
pgquant_pq_inner_product(PG_FUNCTION_ARGS)
{
	PG_RETURN_FLOAT8(pq_distance_common(fcinfo, QT_METRIC_IP));
}

Datum
pgquant_pq_cosine_distance(PG_FUNCTION_ARGS)
{
	PG_RETURN_FLOAT8(pq_distance_common(fcinfo, QT_METRIC_COSINE));
}

/* ---- inspection ----------------------------------------------------- */

/* pqcode_info(pqcode) -> (kind, m, nbits, codebook_id, codes int[], norm real) */
Datum
pgquant_pqcode_info(PG_FUNCTION_ARGS)
{
	QtPqcode	c;
	TupleDesc	tupdesc;
	Datum		values[6];
	bool		nulls[6] = {0};
	Datum	   *codes;

	PgqPqcodeFromDatum(PG_GETARG_DATUM(0), &c);
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	tupdesc = BlessTupleDesc(tupdesc);
	codes = palloc(sizeof(Datum) * c.m);
	for (int j = 0; j < c.m; j++)
		codes[j] = Int32GetDatum((int32) qt_code_at(c.codes, j, c.nbits));
	values[0] = CStringGetTextDatum(qt_cb_kind_name(c.kind));
	values[1] = Int32GetDatum(c.m);
	values[2] = Int32GetDatum(c.nbits);
	values[3] = Int64GetDatum((int64) c.id);
	values[4] = PointerGetDatum(construct_array(codes, c.m, INT4OID, 4, true, TYPALIGN_INT));
	values[5] = Float4GetDatum(c.norm);
	nulls[5] = c.kind != QT_CB_RVQ;
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/* codebook_id(pqcode) -> bigint: the id of the codebook that made the code */
Datum
pgquant_pqcode_codebook_id(PG_FUNCTION_ARGS)
{
	QtPqcode	c;

	PgqPqcodeFromDatum(PG_GETARG_DATUM(0), &c);
	PG_RETURN_INT64((int64) c.id);
}
