/*
 * codebook.c: the pq_codebook and rvq_codebook types (text and binary
 * I/O, content ids), the backend's codebook cache and the registry table
 * pgquant.codebooks, and the real[] helpers the PQ layer shares.
 *
 * Text form (docs/pq-format.md):
 *   pq_codebook(v=1,dim=128,m=16,nbits=8,id=0123456789abcdef):BASE64
 *   rvq_codebook(v=1,dim=128,levels=4,nbits=8,id=0123456789abcdef):BASE64
 * BASE64 holds the centroids as big-endian float32, the same bytes that end
 * the binary form.  Input checks the header and the exact payload length
 * before allocating, then every centroid, then recomputes the id.
 */
#include "pqsql.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "common/base64.h"
#include "common/cryptohash.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "libpq/pqformat.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

PG_FUNCTION_INFO_V1(pq_codebook_in);
PG_FUNCTION_INFO_V1(pq_codebook_out);
PG_FUNCTION_INFO_V1(pq_codebook_recv);
PG_FUNCTION_INFO_V1(pq_codebook_send);
PG_FUNCTION_INFO_V1(rvq_codebook_in);
PG_FUNCTION_INFO_V1(rvq_codebook_out);
PG_FUNCTION_INFO_V1(rvq_codebook_recv);
PG_FUNCTION_INFO_V1(rvq_codebook_send);
PG_FUNCTION_INFO_V1(pgquant_codebook_id);
PG_FUNCTION_INFO_V1(pgquant_codebook_info);
PG_FUNCTION_INFO_V1(pgquant_pq_register);
PG_FUNCTION_INFO_V1(pgquant_pq_codebook_make);
PG_FUNCTION_INFO_V1(pgquant_rvq_codebook_make);
PG_FUNCTION_INFO_V1(pgquant_codebook_centroids);

/* the cache keeps at most this many codebooks and this many bytes */
#define CB_CACHE_ENTRIES 16
#define CB_CACHE_BYTES ((Size) 256 * 1024 * 1024)

/* ---- shared helpers ------------------------------------------------ */

void
PgqReportStatus(QtStatus st, const char *err, const char *what, int einval_code)
{
	if (st == QT_ELIMIT)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("%s is too large", what),
				 errdetail("%s.", err)));
	if (st != QT_OK)
		ereport(ERROR,
				(errcode(einval_code),
				 errmsg("invalid %s", what),
				 errdetail("%s.", err)));
}

char *
PgqIdToHex(uint64 id)
{
	return psprintf("%016llx", (unsigned long long) id);
}

const float *
PgqVectorFromArray(ArrayType *a, int *dim, const char *what)
{
	const float *x;
	int			n;

	if (ARR_ELEMTYPE(a) != FLOAT4OID)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("%s must be real[], not %s[]", what, format_type_be(ARR_ELEMTYPE(a)))));
	if (ARR_NDIM(a) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg(ARR_NDIM(a) == 0 ? "%s must not be empty" : "%s must be a 1-D array", what)));
	if (array_contains_nulls(a))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not contain NULL elements", what)));
	n = ARR_DIMS(a)[0];
	x = (const float *) ARR_DATA_PTR(a);
	for (int i = 0; i < n; i++)
		if (unlikely(!isfinite(x[i])))
			ereport(ERROR,
					(errcode(ERRCODE_DATA_EXCEPTION),
					 errmsg("%s must be finite, but element %d is %s", what, i + 1,
							isnan(x[i]) ? "NaN" : x[i] > 0 ? "Infinity" : "-Infinity")));
	*dim = n;
	return x;
}

const float *
PgqVectorCheckDim(ArrayType *a, int expected, const char *what)
{
	int			dim;
	const float *x = PgqVectorFromArray(a, &dim, what);

	if (dim != expected)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("%s has %d dimensions, expected %d", what, dim, expected)));
	return x;
}

ArrayType *
PgqArrayFromFloats(const float *x, int n)
{
	Size		bytes = add_size(ARR_OVERHEAD_NONULLS(1), mul_size(n, sizeof(float)));
	ArrayType  *a = (ArrayType *) palloc0(bytes);

	SET_VARSIZE(a, bytes);
	a->ndim = 1;
	a->dataoffset = 0;
	a->elemtype = FLOAT4OID;
	ARR_DIMS(a)[0] = n;
	ARR_LBOUND(a)[0] = 1;
	memcpy(ARR_DATA_PTR(a), x, sizeof(float) * (Size) n);
	return a;
}

/* ---- codebook values ----------------------------------------------- */

QtCbHeader *
PgqCodebookFromDatum(Datum d)
{
	QtCbHeader *h = (QtCbHeader *) PG_DETOAST_DATUM(d);
	char		err[QT_ERRMSG_LEN];
	size_t		total;

	if (VARSIZE(h) < QT_CB_HEADER_SIZE ||
		qt_cb_check_header(h, &total, err) != QT_OK ||
		total != VARSIZE(h))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("codebook value is corrupted")));
	return h;
}

uint64
PgqCodebookComputeId(const QtCbHeader *h)
{
	pg_cryptohash_ctx *ctx = pg_cryptohash_create(PG_SHA256);
	uint8		wire[QT_CB_WIRE_HEADER_SIZE];
	uint8		digest[32];
	uint8		chunk[4096 * sizeof(float)];
	int64		nf = qt_cb_nfloats(h);
	const float *c = qt_cb_centroids(h);
	uint64		id = 0;

	if (ctx == NULL || pg_cryptohash_init(ctx) < 0)
		elog(ERROR, "could not initialize SHA-256 context: %s", pg_cryptohash_error(ctx));
	qt_cb_header_to_wire(h, wire);
	if (pg_cryptohash_update(ctx, wire, sizeof(wire)) < 0)
		elog(ERROR, "could not update SHA-256 context: %s", pg_cryptohash_error(ctx));
	for (int64 i = 0; i < nf; i += 4096)
	{
		int64		n = Min(4096, nf - i);

		qt_floats_to_be(c + i, n, chunk);
		if (pg_cryptohash_update(ctx, chunk, n * sizeof(float)) < 0)
			elog(ERROR, "could not update SHA-256 context: %s", pg_cryptohash_error(ctx));
	}
	if (pg_cryptohash_final(ctx, digest, sizeof(digest)) < 0)
		elog(ERROR, "could not finalize SHA-256 context: %s", pg_cryptohash_error(ctx));
	pg_cryptohash_free(ctx);
	for (int i = 0; i < 8; i++)
		id = (id << 8) | digest[i];
	return id;
}

static const char *
type_name(int kind)
{
	return kind == QT_CB_PQ ? "pq_codebook" : "rvq_codebook";
}

/* build a codebook of kind from a checked header and the wire centroids, check it */
static QtCbHeader *
codebook_from_wire(const QtCbHeader *hdr, size_t total, const uint8 *body, uint64 claimed_id,
				   int einval_code)
{
	QtCbHeader *h = palloc(total);
	char		err[QT_ERRMSG_LEN];
	uint64		id;

	memcpy(h, hdr, sizeof(QtCbHeader));
	SET_VARSIZE(h, total);
	qt_floats_from_be(body, qt_cb_nfloats(h), (float *) (h + 1));
	PgqReportStatus(qt_cb_check_body(h, err), err, psprintf("value for type %s", type_name(h->kind)),
					einval_code);
	id = PgqCodebookComputeId(h);
	if (id != claimed_id)
		ereport(ERROR,
				(errcode(einval_code),
				 errmsg("invalid value for type %s", type_name(h->kind)),
				 errdetail("The id %s does not match the centroids, whose id is %s.",
						   PgqIdToHex(claimed_id), PgqIdToHex(id))));
	h->id = id;
	return h;
}

static void pg_attribute_noreturn()
text_syntax_error(int kind, const char *lit, const char *detail)
{
	PgqTextSyntaxError(type_name(kind), lit, detail);
}

/* 16 hex digits exactly */
static bool
parse_id(const char *s, uint64 *out)
{
	uint64		v = 0;

	if (strlen(s) != 16)
		return false;
	for (int i = 0; i < 16; i++)
	{
		int			c = (unsigned char) s[i];

		if (c >= '0' && c <= '9')
			v = (v << 4) | (c - '0');
		else if (c >= 'a' && c <= 'f')
			v = (v << 4) | (c - 'a' + 10);
		else
			return false;
	}
	*out = v;
	return true;
}

/*
 * Split "name(k=v,...):payload" into its items; returns the payload and
 * fills keys/vals (at most maxitems).  Shared by the codebook and pqcode inputs.
 */
int
PgqParseLiteral(char *s, const char *prefix, char **keys, char **vals, int maxitems,
				char **payload, const char **problem)
{
	char	   *p;
	int			n = 0;
	size_t		plen = strlen(prefix);

	if (strncmp(s, prefix, plen) != 0 || s[plen] != '(')
	{
		*problem = psprintf("A %s literal starts with \"%s(\".", prefix, prefix);
		return -1;
	}
	*payload = strstr(s, "):");
	if (*payload == NULL)
	{
		*problem = "The header must end with \"):\" followed by the payload.";
		return -1;
	}
	**payload = '\0';
	*payload += 2;
	for (p = s + plen + 1; *p;)
	{
		char	   *item = p,
				   *comma = strchr(p, ','),
				   *eq;

		if (comma)
		{
			*comma = '\0';
			p = comma + 1;
		}
		else
			p += strlen(p);
		eq = strchr(item, '=');
		if (eq == NULL || n == maxitems)
		{
			*problem = eq == NULL ? "Header items have the form key=value." : "Too many header items.";
			return -1;
		}
		*eq = '\0';
		keys[n] = item;
		vals[n] = eq + 1;
		n++;
	}
	return n;
}

static Datum
codebook_in(int kind, char *lit)
{
	char	   *s = pstrdup(lit);
	char	   *p,
			   *payload;
	char	   *keys[8],
			   *vals[8];
	const char *problem = NULL;
	const char *names[5] = {"v", "dim", kind == QT_CB_PQ ? "m" : "levels", "nbits", "id"};
	bool		seen[5] = {0};
	int32		num[4] = {0};
	uint64		id = 0;
	int			nitems;
	QtCbHeader	h;
	char		err[QT_ERRMSG_LEN];
	QtStatus	st;
	size_t		total,
				body_len;
	int			b64len,
				declen;
	uint8	   *body;
	QtCbHeader *res;

	while (isspace((unsigned char) *s))
		s++;
	for (p = s + strlen(s); p > s && isspace((unsigned char) p[-1]); p--)
		p[-1] = '\0';
	nitems = PgqParseLiteral(s, type_name(kind), keys, vals, 8, &payload, &problem);
	if (nitems < 0)
		text_syntax_error(kind, lit, problem);
	for (int i = 0; i < nitems; i++)
	{
		int			k;

		for (k = 0; k < 5; k++)
			if (strcmp(keys[i], names[k]) == 0)
				break;
		if (k == 5)
			text_syntax_error(kind, lit, psprintf("Unknown header key \"%s\".", keys[i]));
		if (seen[k])
			text_syntax_error(kind, lit, psprintf("Header key \"%s\" appears twice.", keys[i]));
		seen[k] = true;
		if (k == 4 ? !parse_id(vals[i], &id) : !PgqParseInt32(vals[i], &num[k]))
			text_syntax_error(kind, lit, psprintf("Invalid value for header key \"%s\".", keys[i]));
	}
	for (int k = 0; k < 5; k++)
		if (!seen[k])
			text_syntax_error(kind, lit, psprintf("Header key \"%s\" is missing.", names[k]));
	if (num[0] < 0 || num[0] > 255 || num[3] < 0 || num[3] > 255)
		text_syntax_error(kind, lit, "Header keys \"v\" and \"nbits\" take values 0 to 255.");

	memset(&h, 0, sizeof(h));
	h.version = (uint8) num[0];
	h.kind = (uint8) kind;
	h.dim = num[1];
	h.m = num[2];
	h.nbits = (uint8) num[3];
	if ((st = qt_cb_check_header(&h, &total, err)) != QT_OK)
		PgqReportStatus(st, err, psprintf("value for type %s", type_name(kind)),
						ERRCODE_INVALID_TEXT_REPRESENTATION);

	/* the payload's length is known before anything is allocated */
	body_len = total - QT_CB_HEADER_SIZE;
	if (body_len > (size_t) (MaxAllocSize / 4 * 3) - 8)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("%s value is too large for its text form", type_name(kind)),
				 errhint("Use the binary form (COPY ... WITH (FORMAT binary)).")));
	b64len = strlen(payload);
	if (b64len != PgqBase64Len(body_len))
		text_syntax_error(kind, lit, psprintf("The payload must be %d base64 characters for this header, not %d.",
											  PgqBase64Len(body_len), b64len));
	body = palloc(pg_b64_dec_len(b64len) + 1);
	declen = pg_b64_decode(payload, b64len, (char *) body, pg_b64_dec_len(b64len) + 1);
	if (declen != (int) body_len)
		text_syntax_error(kind, lit, "The payload is not valid base64 of the expected length.");
	res = codebook_from_wire(&h, total, body, id, ERRCODE_INVALID_TEXT_REPRESENTATION);
	pfree(body);
	PG_RETURN_POINTER(res);
}

static Datum
codebook_out(int kind, Datum d)
{
	QtCbHeader *h = PgqCodebookFromDatum(d);
	size_t		body_len = VARSIZE(h) - QT_CB_HEADER_SIZE;
	StringInfoData buf;
	uint8	   *body;
	int			enclen,
				n;

	if (body_len > (size_t) (MaxAllocSize / 4 * 3) - 256)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("%s value is too large for its text form", type_name(kind)),
				 errhint("Use the binary form (COPY ... WITH (FORMAT binary)).")));
	body = palloc(body_len);
	enclen = PgqBase64Len(body_len);
	initStringInfo(&buf);
	appendStringInfo(&buf, "%s(v=%d,dim=%d,%s=%d,nbits=%d,id=%s):", type_name(kind), h->version,
					 h->dim, kind == QT_CB_PQ ? "m" : "levels", h->m, h->nbits, PgqIdToHex(h->id));
	qt_floats_to_be(qt_cb_centroids(h), qt_cb_nfloats(h), body);
	enlargeStringInfo(&buf, enclen + 1);
	n = pg_b64_encode((const char *) body, (int) body_len, buf.data + buf.len, enclen + 1);
	if (n != enclen)
		elog(ERROR, "base64 encoding of a codebook failed (please report a bug)");
	buf.len += n;
	buf.data[buf.len] = '\0';
	pfree(body);
	PG_RETURN_CSTRING(buf.data);
}

static Datum
codebook_recv(int kind, StringInfo msg)
{
	QtCbHeader	h;
	char		err[QT_ERRMSG_LEN];
	QtStatus	st;
	size_t		total;
	size_t		left = (size_t) (msg->len - msg->cursor);
	const uint8 *p = (const uint8 *) msg->data + msg->cursor;
	uint64		id = 0;
	QtCbHeader *res;

	if (left < QT_CB_WIRE_HEADER_SIZE + 8)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid binary input for type %s", type_name(kind)),
				 errdetail("The value has %zu bytes, fewer than the %d of its header.",
						   left, QT_CB_WIRE_HEADER_SIZE + 8)));
	memset(&h, 0, sizeof(h));
	qt_cb_header_from_wire(&h, p);
	if (h.kind != kind)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid binary input for type %s", type_name(kind)),
				 errdetail("The value is of kind %d, not %d.", h.kind, kind)));
	if ((st = qt_cb_check_header(&h, &total, err)) != QT_OK)
		PgqReportStatus(st, err, psprintf("binary input for type %s", type_name(kind)),
						ERRCODE_INVALID_BINARY_REPRESENTATION);
	if (left - QT_CB_WIRE_HEADER_SIZE - 8 != total - QT_CB_HEADER_SIZE)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid binary input for type %s", type_name(kind)),
				 errdetail("The header calls for %zu payload bytes, but %zu follow.",
						   total - QT_CB_HEADER_SIZE, left - QT_CB_WIRE_HEADER_SIZE - 8)));
	for (int i = 0; i < 8; i++)
		id = (id << 8) | p[QT_CB_WIRE_HEADER_SIZE + i];
	res = codebook_from_wire(&h, total, p + QT_CB_WIRE_HEADER_SIZE + 8, id,
							 ERRCODE_INVALID_BINARY_REPRESENTATION);
	msg->cursor = msg->len;
	PG_RETURN_POINTER(res);
}

static Datum
codebook_send(Datum d)
{
	QtCbHeader *h = PgqCodebookFromDatum(d);
	size_t		body_len = VARSIZE(h) - QT_CB_HEADER_SIZE;
	bytea	   *out = palloc(VARHDRSZ + QT_CB_WIRE_HEADER_SIZE + 8 + body_len);
	uint8	   *p = (uint8 *) VARDATA(out);

	SET_VARSIZE(out, VARHDRSZ + QT_CB_WIRE_HEADER_SIZE + 8 + body_len);
	qt_cb_header_to_wire(h, p);
	for (int i = 0; i < 8; i++)
		p[QT_CB_WIRE_HEADER_SIZE + i] = (uint8) (h->id >> (56 - 8 * i));
	qt_floats_to_be(qt_cb_centroids(h), qt_cb_nfloats(h), p + QT_CB_WIRE_HEADER_SIZE + 8);
	PG_RETURN_BYTEA_P(out);
}

Datum
pq_codebook_in(PG_FUNCTION_ARGS)
{
	return codebook_in(QT_CB_PQ, PG_GETARG_CSTRING(0));
}

Datum
pq_codebook_out(PG_FUNCTION_ARGS)
{
	return codebook_out(QT_CB_PQ, PG_GETARG_DATUM(0));
}

Datum
pq_codebook_recv(PG_FUNCTION_ARGS)
{
	return codebook_recv(QT_CB_PQ, (StringInfo) PG_GETARG_POINTER(0));
}

Datum
pq_codebook_send(PG_FUNCTION_ARGS)
{
	return codebook_send(PG_GETARG_DATUM(0));
}

Datum
rvq_codebook_in(PG_FUNCTION_ARGS)
{
	return codebook_in(QT_CB_RVQ, PG_GETARG_CSTRING(0));
}

Datum
rvq_codebook_out(PG_FUNCTION_ARGS)
{
	return codebook_out(QT_CB_RVQ, PG_GETARG_DATUM(0));
}

Datum
rvq_codebook_recv(PG_FUNCTION_ARGS)
{
	return codebook_recv(QT_CB_RVQ, (StringInfo) PG_GETARG_POINTER(0));
}

Datum
rvq_codebook_send(PG_FUNCTION_ARGS)
{
	return codebook_send(PG_GETARG_DATUM(0));
}

/* codebook_id(pq_codebook or rvq_codebook) -> bigint: the content id */
Datum
pgquant_codebook_id(PG_FUNCTION_ARGS)
{
	QtCbHeader *h = (QtCbHeader *) PG_DETOAST_DATUM_SLICE(PG_GETARG_DATUM(0), 0, QT_CB_HEADER_SIZE);

	if (VARSIZE(h) < QT_CB_HEADER_SIZE)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("codebook value is corrupted")));
	PG_RETURN_INT64((int64) h->id);
}

/* pq_codebook_info / rvq_codebook_info: the header as a record */
Datum
pgquant_codebook_info(PG_FUNCTION_ARGS)
{
	QtCbHeader *h = (QtCbHeader *) PG_DETOAST_DATUM_SLICE(PG_GETARG_DATUM(0), 0, QT_CB_HEADER_SIZE);
	TupleDesc	tupdesc;
	Datum		values[8];
	bool		nulls[8] = {0};
	char		err[QT_ERRMSG_LEN];
	size_t		total;

	if (VARSIZE(h) < QT_CB_HEADER_SIZE || qt_cb_check_header(h, &total, err) != QT_OK)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("codebook value is corrupted")));
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	tupdesc = BlessTupleDesc(tupdesc);
	/* dim, m or levels, nbits, ksub, code_bytes, bytes, id, kind-specific: dsub or pqcode bytes */
	values[0] = Int32GetDatum(h->dim);
	values[1] = Int32GetDatum(h->m);
	values[2] = Int32GetDatum(h->nbits);
	values[3] = Int32GetDatum(1 << h->nbits);
	values[4] = Int32GetDatum((int32) qt_code_size(h->m, h->nbits));
	values[5] = Int32GetDatum((int32) qt_pqcode_size(h->kind, h->m, h->nbits));
	values[6] = Int64GetDatum((int64) total);
	values[7] = Int64GetDatum((int64) h->id);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/* ---- the backend's codebook cache ---------------------------------- */

static MemoryContext cb_cache_cxt = NULL;
static PgqCodebook *cb_cache[CB_CACHE_ENTRIES];
static uint64 cb_cache_used[CB_CACHE_ENTRIES];	/* last use, for LRU */
static uint64 cb_cache_clock = 0;
static Size cb_cache_bytes = 0;

static PgqCodebook *
cache_find(uint64 id)
{
	for (int i = 0; i < CB_CACHE_ENTRIES; i++)
		if (cb_cache[i] && cb_cache[i]->id == id)
		{
			cb_cache_used[i] = ++cb_cache_clock;
			return cb_cache[i];
		}
	return NULL;
}

static void
cache_evict(int i)
{
	cb_cache_bytes -= VARSIZE(cb_cache[i]->cb);
	pfree(cb_cache[i]->cnorm);
	pfree(cb_cache[i]->cb);
	pfree(cb_cache[i]);
	cb_cache[i] = NULL;
}

/* copy a checked codebook into the cache, evicting the least recently used */
static PgqCodebook *
cache_add(const QtCbHeader *h)
{
	PgqCodebook *e;
	int			slot = -1;
	MemoryContext old;

	if (cb_cache_cxt == NULL)
		cb_cache_cxt = AllocSetContextCreate(TopMemoryContext, "pgquant codebook cache",
											 ALLOCSET_DEFAULT_SIZES);
	for (;;)
	{
		int			lru = -1;

		slot = -1;
		for (int i = 0; i < CB_CACHE_ENTRIES; i++)
		{
			if (cb_cache[i] == NULL && slot < 0)
				slot = i;
			if (cb_cache[i] && (lru < 0 || cb_cache_used[i] < cb_cache_used[lru]))
				lru = i;
		}
		if (lru >= 0 && (slot < 0 || cb_cache_bytes + VARSIZE(h) > CB_CACHE_BYTES))
		{
			cache_evict(lru);
			continue;
		}
		break;
	}

	old = MemoryContextSwitchTo(cb_cache_cxt);
	e = palloc0(sizeof(PgqCodebook));
	e->cb = palloc_extended(VARSIZE(h), MCXT_ALLOC_HUGE);
	memcpy(e->cb, h, VARSIZE(h));
	e->id = h->id;
	e->kind = h->kind;
	e->dim = h->dim;
	e->m = h->m;
	e->nbits = h->nbits;
	e->ksub = 1 << h->nbits;
	e->code_size = qt_code_size(h->m, h->nbits);
	e->cnorm = palloc(sizeof(float) * e->m * e->ksub);
	if (h->kind == QT_CB_PQ)
	{
		qt_cb_pq(e->cb, &e->pq);
		qt_pq_norm_lut(&e->pq, e->cnorm);
	}
	else
	{
		qt_cb_rvq(e->cb, &e->rvq);
		qt_rvq_norms(&e->rvq, e->cnorm);
	}
	MemoryContextSwitchTo(old);
	cb_cache[slot] = e;
	cb_cache_used[slot] = ++cb_cache_clock;
	cb_cache_bytes += VARSIZE(h);
	return e;
}

const PgqCodebook *
PgqCodebookCached(uint64 id)
{
	return cache_find(id);
}

const PgqCodebook *
PgqCodebookGet(Datum d)
{
	QtCbHeader *h = (QtCbHeader *) PG_DETOAST_DATUM_SLICE(d, 0, QT_CB_HEADER_SIZE);
	PgqCodebook *e;

	if (VARSIZE(h) < QT_CB_HEADER_SIZE)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("codebook value is corrupted")));
	if ((e = cache_find(h->id)) != NULL)
		return e;
	return cache_add(PgqCodebookFromDatum(d));
}

const PgqCodebook *
PgqCodebookLookup(uint64 id)
{
	PgqCodebook *e;
	Oid			argtypes[1] = {INT8OID};
	Datum		args[1];
	int			ret;

	/*
	 * A codebook cached from an explicit argument is not proof that it is
	 * registered: look once, so that every backend answers alike.
	 */
	if ((e = cache_find(id)) != NULL && e->registered)
		return e;

	args[0] = Int64GetDatum((int64) id);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	ret = SPI_execute_with_args("SELECT pq, rvq FROM pgquant.codebooks WHERE id = $1",
								1, argtypes, args, NULL, true, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "reading pgquant.codebooks failed: %s", SPI_result_code_string(ret));
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("codebook %s is not registered", PgqIdToHex(id)),
				 errhint("Register the codebook that made these codes with pq_register(codebook), "
						 "or pass it explicitly: pq_distance(codebook, code, query).")));
	{
		bool		isnull;
		Datum		v = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		if (isnull)
			v = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
		if (isnull)
			elog(ERROR, "pgquant.codebooks row %s holds no codebook", PgqIdToHex(id));
		if (e == NULL)
			e = cache_add(PgqCodebookFromDatum(v));
		e->registered = true;
	}
	SPI_finish();
	return e;
}

/* pq_register(codebook) -> the codebook, after adding it to pgquant.codebooks */
Datum
pgquant_pq_register(PG_FUNCTION_ARGS)
{
	Oid			cbtype = get_fn_expr_argtype(fcinfo->flinfo, 0);
	QtCbHeader *h = PG_GETARG_CODEBOOK_P(0);
	Oid			argtypes[2] = {INT8OID, cbtype};
	Datum		args[2];
	int			ret;

	if (!OidIsValid(cbtype))
		elog(ERROR, "could not determine the codebook type");
	args[0] = Int64GetDatum((int64) h->id);
	args[1] = PointerGetDatum(h);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	ret = SPI_execute_with_args(h->kind == QT_CB_PQ
								? "INSERT INTO pgquant.codebooks (id, pq) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING RETURNING id"
								: "INSERT INTO pgquant.codebooks (id, rvq) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING RETURNING id",
								2, argtypes, args, NULL, false, 0);
	if (ret != SPI_OK_INSERT_RETURNING)
		elog(ERROR, "inserting into pgquant.codebooks failed: %s", SPI_result_code_string(ret));
	if (SPI_processed == 0)
	{
		/* already filed under this id: it must be this very codebook */
		bool		isnull;
		Datum		v;
		QtCbHeader *old;

		ret = SPI_execute_with_args("SELECT pq, rvq FROM pgquant.codebooks WHERE id = $1",
									1, argtypes, args, NULL, false, 1);
		if (ret != SPI_OK_SELECT || SPI_processed != 1)
			elog(ERROR, "reading pgquant.codebooks failed: %s", SPI_result_code_string(ret));
		v = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, h->kind == QT_CB_PQ ? 1 : 2, &isnull);
		old = isnull ? NULL : PgqCodebookFromDatum(v);
		if (old == NULL || VARSIZE(old) != VARSIZE(h) || memcmp(old, h, VARSIZE(h)) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_UNIQUE_VIOLATION),
					 errmsg("a different codebook is registered under id %s", PgqIdToHex(h->id)),
					 errdetail("Two codebooks whose contents differ share a 64-bit content id.")));
	}
	SPI_finish();
	PG_RETURN_POINTER(h);
}

/*
 * pq_codebook(centroids real[], m, nbits) / rvq_codebook(centroids, levels,
 * nbits): a codebook from given centroids (FAISS's layout), either 3-D
 * [m][ksub][dsub] (PQ) or [levels][ksub][dim] (RVQ), or flat in that order.
 */
static Datum
codebook_make(FunctionCallInfo fcinfo, int kind)
{
	ArrayType  *a = PG_GETARG_ARRAYTYPE_P(0);
	int32		m = PG_GETARG_INT32(1);
	int32		nbits = PG_GETARG_INT32(2);
	int64		n,
				per,
				dim;
	QtCbHeader	h;
	QtCbHeader *cb;
	size_t		total;
	char		err[QT_ERRMSG_LEN];
	QtStatus	st;
	const char *what;

	what = kind == QT_CB_PQ ? "pq_codebook" : "rvq_codebook";
	if (ARR_ELEMTYPE(a) != FLOAT4OID)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("centroids must be real[], not %s[]", format_type_be(ARR_ELEMTYPE(a)))));
	if (array_contains_nulls(a))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("centroids must not contain NULL elements")));
	if (nbits < QT_PQ_MIN_NBITS || nbits > QT_PQ_MAX_NBITS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("nbits must be between %d and %d, got %d", QT_PQ_MIN_NBITS, QT_PQ_MAX_NBITS, nbits)));
	if (kind == QT_CB_PQ ? (m < 1 || m > QT_PQ_MAX_DIM) : (m < 1 || m > QT_RVQ_MAX_LEVELS))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be between 1 and %d, got %d", kind == QT_CB_PQ ? "m" : "levels",
						kind == QT_CB_PQ ? QT_PQ_MAX_DIM : QT_RVQ_MAX_LEVELS, m)));
	n = ArrayGetNItems(ARR_NDIM(a), ARR_DIMS(a));
	if (ARR_NDIM(a) == 3)
	{
		int		   *dims = ARR_DIMS(a);

		if (dims[0] != m || dims[1] != (1 << nbits))
			ereport(ERROR,
					(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
					 errmsg("centroids must have shape [%d][%d][...], got [%d][%d][%d]",
							m, 1 << nbits, dims[0], dims[1], dims[2])));
		dim = kind == QT_CB_PQ ? (int64) dims[2] * m : dims[2];
	}
	else if (ARR_NDIM(a) == 1)
	{
		per = (int64) (kind == QT_CB_PQ ? 1 : m) << nbits;
		if (n % per != 0)
			ereport(ERROR,
					(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
					 errmsg("%lld centroid values are not a whole number of %s centroids",
							(long long) n, kind == QT_CB_PQ ? "2^nbits" : "levels x 2^nbits")));
		dim = n / per;
	}
	else
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("centroids must be a 1-D or 3-D array, not %d-D", ARR_NDIM(a))));
	if (dim < 1 || dim > QT_PQ_MAX_DIM)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("dimension must be between 1 and %d, got %lld", QT_PQ_MAX_DIM, (long long) dim)));

	memset(&h, 0, sizeof(h));
	h.version = QT_CB_VERSION;
	h.kind = (uint8) kind;
	h.nbits = (uint8) nbits;
	h.dim = (int32) dim;
	h.m = m;
	if ((st = qt_cb_check_header(&h, &total, err)) != QT_OK)
		PgqReportStatus(st, err, what, ERRCODE_INVALID_PARAMETER_VALUE);
	cb = palloc_extended(total, MCXT_ALLOC_HUGE);
	memcpy(cb, &h, sizeof(h));
	SET_VARSIZE(cb, total);
	memcpy(cb + 1, ARR_DATA_PTR(a), total - QT_CB_HEADER_SIZE);
	PgqReportStatus(qt_cb_check_body(cb, err), err, what, ERRCODE_DATA_EXCEPTION);
	cb->id = PgqCodebookComputeId(cb);
	PG_RETURN_POINTER(cb);
}

Datum
pgquant_pq_codebook_make(PG_FUNCTION_ARGS)
{
	return codebook_make(fcinfo, QT_CB_PQ);
}

Datum
pgquant_rvq_codebook_make(PG_FUNCTION_ARGS)
{
	return codebook_make(fcinfo, QT_CB_RVQ);
}

/* codebook_centroids(codebook) -> real[] of shape [m][ksub][dsub] or [levels][ksub][dim] */
Datum
pgquant_codebook_centroids(PG_FUNCTION_ARGS)
{
	QtCbHeader *h = PG_GETARG_CODEBOOK_P(0);
	int			dims[3],
				lbs[3] = {1, 1, 1};
	int64		nf = qt_cb_nfloats(h);
	Size		bytes = add_size(ARR_OVERHEAD_NONULLS(3), mul_size(nf, sizeof(float)));
	ArrayType  *a;

	dims[0] = h->m;
	dims[1] = 1 << h->nbits;
	dims[2] = h->kind == QT_CB_PQ ? h->dim / h->m : h->dim;
	a = (ArrayType *) palloc_extended(bytes, MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);
	SET_VARSIZE(a, bytes);
	a->ndim = 3;
	a->dataoffset = 0;
	a->elemtype = FLOAT4OID;
	memcpy(ARR_DIMS(a), dims, sizeof(dims));
	memcpy(ARR_LBOUND(a), lbs, sizeof(lbs));
	memcpy(ARR_DATA_PTR(a), qt_cb_centroids(h), nf * sizeof(float));
	PG_RETURN_ARRAYTYPE_P(a);
}
