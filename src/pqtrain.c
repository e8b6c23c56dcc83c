/*
 * pqtrain.c: the aggregates pq_train and rvq_train.
 *
 * The state is a reservoir (Algorithm R, seeded) of at most `sample`
 * vectors: an aggregate over any number of rows holds only the sample.
 * The reservoir grows as rows arrive, so a small table costs little memory,
 * and each growth is checked against maintenance_work_mem.  Partial states
 * from parallel workers merge by drawing each slot of the merged sample from
 * one side with probability proportional to the rows that side has not yet
 * contributed, which keeps the merged sample uniform over all rows.
 * The final function trains on the sample (k-means per subquantizer or per
 * level, see pq.c) and returns the codebook.
 *
 * PostgreSQL aggregates take no named arguments, so the settings beyond m
 * (or levels) and nbits come as a jsonb object: {"niter": 25, "sample":
 * 65536, "seed": 0}.
 */
#include "pqsql.h"

#include "libpq/pqformat.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/numeric.h"

PG_FUNCTION_INFO_V1(pgquant_pq_train_accum);
PG_FUNCTION_INFO_V1(pgquant_rvq_train_accum);
PG_FUNCTION_INFO_V1(pgquant_train_combine);
PG_FUNCTION_INFO_V1(pgquant_train_serialize);
PG_FUNCTION_INFO_V1(pgquant_train_deserialize);
PG_FUNCTION_INFO_V1(pgquant_train_final);

#define TRAIN_DEFAULT_NITER 25
/* FAISS's max_points_per_centroid: more points per centroid add little */
#define TRAIN_POINTS_PER_CENTROID 256
#define TRAIN_MAX_NITER 1000
#define TRAIN_INITIAL_CAP 1024
#define TRAIN_STATE_MAGIC 0x50515431	/* "PQT1" */

typedef struct TrainState
{
	/* settings, fixed by the first row */
	int			kind;			/* QT_CB_PQ or QT_CB_RVQ */
	int			m;				/* subquantizers or levels */
	int			nbits;
	int			niter;
	int64		sample;
	uint64		seed;
	/* the reservoir */
	int			dim;			/* 0 until the first vector */
	int64		nseen;
	int64		nheld;
	int64		cap;
	QtRng		rng;
	float	   *data;			/* cap x dim */
} TrainState;

static const char *
agg_name(int kind)
{
	return kind == QT_CB_PQ ? "pq_train" : "rvq_train";
}

/* strict integer value of a jsonb number */
static int64
option_int(int kind, const char *key, JsonbValue *v, int64 lo, int64 hi)
{
	char	   *s,
			   *end;
	int64		r;

	if (v->type != jbvNumeric)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s option \"%s\" must be a number", agg_name(kind), key)));
	s = DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v->val.numeric)));
	errno = 0;
	r = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0' || r < lo || r > hi)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s option \"%s\" must be an integer between " INT64_FORMAT " and " INT64_FORMAT ", got %s",
						agg_name(kind), key, lo, hi, s)));
	return r;
}

/* read {"niter", "sample", "seed"} into st; anything else is an error */
static void
parse_options(TrainState *st, Jsonb *opts)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	char	   *key = NULL;
	int			depth = 0;

	if (!JB_ROOT_IS_OBJECT(opts))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s options must be a jsonb object", agg_name(st->kind)),
				 errhint("For example '{\"niter\": 25, \"sample\": 65536, \"seed\": 0}'.")));
	it = JsonbIteratorInit(&opts->root);
	while ((tok = JsonbIteratorNext(&it, &v, false)) != WJB_DONE)
	{
		if (tok == WJB_BEGIN_OBJECT || tok == WJB_BEGIN_ARRAY)
			depth++;
		else if (tok == WJB_END_OBJECT || tok == WJB_END_ARRAY)
			depth--;
		else if (tok == WJB_KEY && depth == 1)
			key = pnstrdup(v.val.string.val, v.val.string.len);
		else if (tok == WJB_VALUE && depth == 1)
		{
			if (strcmp(key, "niter") == 0)
				st->niter = (int) option_int(st->kind, key, &v, 0, TRAIN_MAX_NITER);
			else if (strcmp(key, "sample") == 0)
				st->sample = option_int(st->kind, key, &v, 1, PG_INT32_MAX);
			else if (strcmp(key, "seed") == 0)
				st->seed = (uint64) option_int(st->kind, key, &v, PG_INT64_MIN, PG_INT64_MAX);
			else
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("unknown %s option \"%s\"", agg_name(st->kind), key),
						 errhint("Valid options are: niter, sample, seed.")));
		}
		else if (depth > 1 || tok == WJB_ELEM)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s options must be a flat jsonb object of numbers", agg_name(st->kind))));
	}
}

/* a new state in the aggregate's context, settings from the arguments */
static TrainState *
new_state(FunctionCallInfo fcinfo, MemoryContext aggcxt, int kind)
{
	TrainState *st;

	if (PG_ARGISNULL(2) || PG_ARGISNULL(3))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s: %s and nbits must not be NULL", agg_name(kind), kind == QT_CB_PQ ? "m" : "levels")));
	st = MemoryContextAllocZero(aggcxt, sizeof(TrainState));
	st->kind = kind;
	st->m = PG_GETARG_INT32(2);
	st->nbits = PG_GETARG_INT32(3);
	st->niter = TRAIN_DEFAULT_NITER;
	st->seed = 0;
	if (st->nbits < QT_PQ_MIN_NBITS || st->nbits > QT_PQ_MAX_NBITS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s: nbits must be between %d and %d, got %d", agg_name(kind),
						QT_PQ_MIN_NBITS, QT_PQ_MAX_NBITS, st->nbits)));
	if (kind == QT_CB_PQ ? st->m < 1 : (st->m < 1 || st->m > QT_RVQ_MAX_LEVELS))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg(kind == QT_CB_PQ ? "%s: m must be positive, got %d"
						: "%s: levels must be between 1 and 64, got %d", agg_name(kind), st->m)));
	st->sample = (int64) TRAIN_POINTS_PER_CENTROID << st->nbits;
	if (PG_NARGS() > 4 && !PG_ARGISNULL(4))
		parse_options(st, PG_GETARG_JSONB_P(4));
	qt_rng_seed(&st->rng, st->seed);
	return st;
}

/* make room for at least want vectors (want <= sample), checking maintenance_work_mem */
static void
grow(TrainState *st, MemoryContext aggcxt, int64 want)
{
	int64		cap = Max(st->cap, TRAIN_INITIAL_CAP);
	Size		bytes;

	while (cap < want)
		cap *= 2;
	cap = Min(cap, st->sample);
	bytes = mul_size(mul_size((Size) cap, (Size) st->dim), sizeof(float));
	if (bytes / 1024 > (Size) maintenance_work_mem)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("%s: a sample of " INT64_FORMAT " vectors of %d dimensions needs %zu MB, more than maintenance_work_mem (%d MB)",
						agg_name(st->kind), cap, st->dim, bytes / (1024 * 1024) + 1, maintenance_work_mem / 1024),
				 errhint("Lower \"sample\" in the options, or raise maintenance_work_mem.")));
	if (st->data == NULL)
		st->data = MemoryContextAllocExtended(aggcxt, bytes, MCXT_ALLOC_HUGE);
	else
		st->data = repalloc_huge(st->data, bytes);
	st->cap = cap;
}

static Datum
train_accum(FunctionCallInfo fcinfo, int kind)
{
	MemoryContext aggcxt;
	TrainState *st;
	const float *x;
	int			dim;
	int64		slot;

	if (!AggCheckCallContext(fcinfo, &aggcxt))
		elog(ERROR, "%s called in non-aggregate context", agg_name(kind));
	st = PG_ARGISNULL(0) ? new_state(fcinfo, aggcxt, kind) : (TrainState *) PG_GETARG_POINTER(0);
	if (PG_ARGISNULL(1))
		PG_RETURN_POINTER(st);	/* NULL vectors are skipped */
	if (!PG_ARGISNULL(2) && !PG_ARGISNULL(3) &&
		(PG_GETARG_INT32(2) != st->m || PG_GETARG_INT32(3) != st->nbits))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s: %s and nbits must be the same for every row", agg_name(kind),
						kind == QT_CB_PQ ? "m" : "levels")));

	x = PgqVectorFromArray(PG_GETARG_ARRAYTYPE_P(1), &dim, "vector");
	if (st->dim == 0)
	{
		char		err[QT_ERRMSG_LEN];
		QtStatus	s = kind == QT_CB_PQ ? qt_pq_check_shape(dim, st->m, st->nbits, err)
			: qt_rvq_check_shape(dim, st->m, st->nbits, err);

		if (s != QT_OK)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s: invalid arguments for vectors of %d dimensions", agg_name(kind), dim),
					 errdetail("%s.", err)));
		st->dim = dim;
	}
	else if (dim != st->dim)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("%s: vector has %d dimensions, expected %d like the first row", agg_name(kind), dim, st->dim)));

	/* Algorithm R: the first `sample` vectors, then row t replaces a slot with probability sample/(t+1) */
	if (st->nseen < st->sample)
	{
		if (st->nheld == st->cap)
			grow(st, aggcxt, st->nheld + 1);
		slot = st->nheld++;
	}
	else
	{
		slot = (int64) qt_rng_below(&st->rng, (uint64) st->nseen + 1);
		if (slot >= st->sample)
			slot = -1;
	}
	if (slot >= 0)
		memcpy(st->data + slot * st->dim, x, sizeof(float) * st->dim);
	st->nseen++;
	PG_RETURN_POINTER(st);
}

Datum
pgquant_pq_train_accum(PG_FUNCTION_ARGS)
{
	return train_accum(fcinfo, QT_CB_PQ);
}

Datum
pgquant_rvq_train_accum(PG_FUNCTION_ARGS)
{
	return train_accum(fcinfo, QT_CB_RVQ);
}

/* a copy of st in cxt, with room for cap vectors */
static TrainState *
copy_state(const TrainState *st, MemoryContext cxt, int64 cap)
{
	TrainState *r = MemoryContextAlloc(cxt, sizeof(TrainState));

	*r = *st;
	r->cap = cap;
	r->data = NULL;
	if (cap > 0 && st->dim > 0)
	{
		r->data = MemoryContextAllocExtended(cxt, mul_size(mul_size(cap, st->dim), sizeof(float)), MCXT_ALLOC_HUGE);
		memcpy(r->data, st->data, sizeof(float) * st->nheld * st->dim);
	}
	return r;
}

Datum
pgquant_train_combine(PG_FUNCTION_ARGS)
{
	MemoryContext aggcxt;
	TrainState *a,
			   *b,
			   *r;
	int64		out,
				ta = 0,
				tb = 0;
	int64	   *ia,
			   *ib;

	if (!AggCheckCallContext(fcinfo, &aggcxt))
		elog(ERROR, "combine function called in non-aggregate context");
	a = PG_ARGISNULL(0) ? NULL : (TrainState *) PG_GETARG_POINTER(0);
	b = PG_ARGISNULL(1) ? NULL : (TrainState *) PG_GETARG_POINTER(1);
	if (b == NULL || b->nseen == 0)
		PG_RETURN_POINTER(a ? a : (b ? copy_state(b, aggcxt, b->nheld) : NULL));
	if (a == NULL || a->nseen == 0)
		PG_RETURN_POINTER(copy_state(b, aggcxt, b->nheld));
	if (a->dim != b->dim)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("%s: vectors have %d and %d dimensions", agg_name(a->kind), a->dim, b->dim)));

	out = Min(a->sample, a->nheld + b->nheld);
	r = copy_state(a, aggcxt, 0);
	r->nseen = a->nseen + b->nseen;
	r->nheld = out;
	r->cap = out;
	r->data = MemoryContextAllocExtended(aggcxt, mul_size(mul_size(out, a->dim), sizeof(float)), MCXT_ALLOC_HUGE);
	ia = palloc(sizeof(int64) * a->nheld);
	ib = palloc(sizeof(int64) * b->nheld);
	for (int64 i = 0; i < a->nheld; i++)
		ia[i] = i;
	for (int64 i = 0; i < b->nheld; i++)
		ib[i] = i;
	for (int64 k = 0; k < out; k++)
	{
		/* a side's chance is the share of rows it has not yet given */
		double		left_a = (double) (a->nseen - ta),
					left_b = (double) (b->nseen - tb);
		bool		from_a = qt_rng_double(&r->rng) * (left_a + left_b) < left_a;
		TrainState *s = from_a ? a : b;
		int64	   *idx = from_a ? ia : ib;
		int64		taken = from_a ? ta : tb;
		int64		j;

		if ((from_a ? ta : tb) >= s->nheld)
		{
			/* that side's sample is used up (it held every row it saw): take the other */
			from_a = !from_a;
			s = from_a ? a : b;
			idx = from_a ? ia : ib;
			taken = from_a ? ta : tb;
		}
		/* a random not-yet-taken vector of that side (partial Fisher-Yates) */
		j = taken + (int64) qt_rng_below(&r->rng, (uint64) (s->nheld - taken));
		{
			int64		t = idx[taken];

			idx[taken] = idx[j];
			idx[j] = t;
		}
		memcpy(r->data + k * a->dim, s->data + idx[taken] * a->dim, sizeof(float) * a->dim);
		if (from_a)
			ta++;
		else
			tb++;
	}
	pfree(ia);
	pfree(ib);
	PG_RETURN_POINTER(r);
}

Datum
pgquant_train_serialize(PG_FUNCTION_ARGS)
{
	TrainState *st = (TrainState *) PG_GETARG_POINTER(0);
	StringInfoData buf;

	pq_begintypsend(&buf);
	pq_sendint32(&buf, TRAIN_STATE_MAGIC);
	pq_sendint32(&buf, st->kind);
	pq_sendint32(&buf, st->m);
	pq_sendint32(&buf, st->nbits);
	pq_sendint32(&buf, st->niter);
	pq_sendint64(&buf, st->sample);
	pq_sendint64(&buf, (int64) st->seed);
	pq_sendint32(&buf, st->dim);
	pq_sendint64(&buf, st->nseen);
	pq_sendint64(&buf, st->nheld);
	pq_sendint64(&buf, (int64) st->rng.s);
	if (st->nheld > 0)
		pq_sendbytes(&buf, (const char *) st->data, (int) (sizeof(float) * st->nheld * st->dim));
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}

Datum
pgquant_train_deserialize(PG_FUNCTION_ARGS)
{
	bytea	   *b = PG_GETARG_BYTEA_PP(0);
	MemoryContext aggcxt;
	StringInfoData buf;
	TrainState *st;

	if (!AggCheckCallContext(fcinfo, &aggcxt))
		elog(ERROR, "deserialize function called in non-aggregate context");
	/* a read-only StringInfo over the bytes (initReadOnlyStringInfo is PostgreSQL 16+) */
	buf.data = VARDATA_ANY(b);
	buf.len = VARSIZE_ANY_EXHDR(b);
	buf.maxlen = buf.len;
	buf.cursor = 0;
	if (pq_getmsgint(&buf, 4) != TRAIN_STATE_MAGIC)
		elog(ERROR, "invalid training state");
	st = MemoryContextAllocZero(aggcxt, sizeof(TrainState));
	st->kind = pq_getmsgint(&buf, 4);
	st->m = pq_getmsgint(&buf, 4);
	st->nbits = pq_getmsgint(&buf, 4);
	st->niter = pq_getmsgint(&buf, 4);
	st->sample = pq_getmsgint64(&buf);
	st->seed = (uint64) pq_getmsgint64(&buf);
	st->dim = pq_getmsgint(&buf, 4);
	st->nseen = pq_getmsgint64(&buf);
	st->nheld = pq_getmsgint64(&buf);
	st->rng.s = (uint64) pq_getmsgint64(&buf);
	if (st->dim < 0 || st->nheld < 0 || st->nheld > st->sample ||
		(Size) (buf.len - buf.cursor) != sizeof(float) * st->nheld * st->dim)
		elog(ERROR, "invalid training state");
	st->cap = st->nheld;
	if (st->nheld > 0)
	{
		st->data = MemoryContextAllocExtended(aggcxt, sizeof(float) * st->nheld * st->dim, MCXT_ALLOC_HUGE);
		pq_copymsgbytes(&buf, (char *) st->data, (int) (sizeof(float) * st->nheld * st->dim));
	}
	PG_RETURN_POINTER(st);
}

/* train on the sample and return the codebook (NULL when no row had a vector) */
Datum
pgquant_train_final(PG_FUNCTION_ARGS)
{
	TrainState *st = PG_ARGISNULL(0) ? NULL : (TrainState *) PG_GETARG_POINTER(0);
	QtKmeansParams p;
	QtCbHeader	h;
	QtCbHeader *cb;
	size_t		total,
				ws;
	void	   *work;
	char		err[QT_ERRMSG_LEN];
	QtStatus	s;
	double		mse;
	int			ksub;

	if (st == NULL || st->nheld == 0)
		PG_RETURN_NULL();
	ksub = 1 << st->nbits;
	if (st->nheld < ksub)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("%s needs at least %d vectors for nbits = %d, got " INT64_FORMAT,
						agg_name(st->kind), ksub, st->nbits, st->nheld),
				 errhint("Train on more rows, or use fewer bits.")));

	memset(&h, 0, sizeof(h));
	h.version = QT_CB_VERSION;
	h.kind = (uint8) st->kind;
	h.nbits = (uint8) st->nbits;
	h.dim = st->dim;
	h.m = st->m;
	if ((s = qt_cb_check_header(&h, &total, err)) != QT_OK)
		PgqReportStatus(s, err, "codebook", ERRCODE_INVALID_PARAMETER_VALUE);

	memset(&p, 0, sizeof(p));
	p.niter = st->niter;
	p.seed = st->seed;
	ws = st->kind == QT_CB_PQ ? qt_pq_train_workspace(st->nheld, st->dim, st->m, st->nbits, &p)
		: qt_rvq_train_workspace(st->nheld, st->dim, st->m, st->nbits, &p);
	if (ws == 0 || ws > MaxAllocHugeSize)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("%s: training on " INT64_FORMAT " vectors needs too much memory", agg_name(st->kind),
						st->nheld)));
	work = palloc_extended(ws, MCXT_ALLOC_HUGE);
	cb = palloc_extended(total, MCXT_ALLOC_HUGE);
	memcpy(cb, &h, sizeof(h));
	SET_VARSIZE(cb, total);
	s = st->kind == QT_CB_PQ
		? qt_pq_train(st->data, st->nheld, st->dim, st->m, st->nbits, &p, work, ws, (float *) (cb + 1), &mse, err)
		: qt_rvq_train(st->data, st->nheld, st->dim, st->m, st->nbits, &p, work, ws, (float *) (cb + 1), &mse, err);
	PgqReportStatus(s, err, "codebook", ERRCODE_INVALID_PARAMETER_VALUE);
	pfree(work);
	cb->id = PgqCodebookComputeId(cb);
	elog(DEBUG1, "%s: trained on " INT64_FORMAT " of " INT64_FORMAT " vectors",
		 agg_name(st->kind), st->nheld, st->nseen);
	elog(DEBUG2, "%s: mean squared error of the training sample %g", agg_name(st->kind), mse);
	PG_RETURN_POINTER(cb);
}
