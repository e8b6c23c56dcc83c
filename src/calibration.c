/*
 * calibration.c: the server side of calibration statistics: the
 * pgquant.activation_stats aggregate (streaming, parallel, with combine,
 * serialize and deserialize functions), merging of pgquant.layer_stats
 * values, and the allocator the floor-1 quantizers use.
 */
#include "calibration.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "common/int.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "miscadmin.h"

#include "qcalib.h"

PG_FUNCTION_INFO_V1(pgquant_activation_stats_transfn);
PG_FUNCTION_INFO_V1(pgquant_activation_stats_finalfn);
PG_FUNCTION_INFO_V1(pgquant_activation_stats_combinefn);
PG_FUNCTION_INFO_V1(pgquant_activation_stats_serialfn);
PG_FUNCTION_INFO_V1(pgquant_activation_stats_deserialfn);
PG_FUNCTION_INFO_V1(pgquant_layer_stats_merge);

/* attribute numbers of pgquant.layer_stats */
#define LS_IN_FEATURES 1
#define LS_NROWS 2
#define LS_HESSIAN 3
#define LS_MEAN_ABS 4
#define LS_MAX_ABS 5
#define LS_SUM_SQ 6
#define LS_NATTS 6

/* floor-1 allocations live in the current memory context, freed on error */
static void *
calib_alloc(size_t size)
{
	return MemoryContextAllocExtended(CurrentMemoryContext, size, MCXT_ALLOC_HUGE);
}

static void
calib_free(void *p)
{
	pfree(p);
}

char	   *pgquant_calibration = NULL;

/* called once from _PG_init */
void
PgqCalibInit(void)
{
	qc_alloc = calib_alloc;
	qc_free = calib_free;
	DefineCustomStringVariable("pgquant.calibration",
							   "Calibration set that awq and gptq use when a call names none.",
							   "The name of a row of pgquant.calibration_sets; empty means none.",
							   &pgquant_calibration, "", PGC_USERSET, 0, NULL, NULL, NULL);
}

/* A new empty float4 or float8 array of the given shape, lower bounds 1, to fill in place. */
ArrayType *
PgqNewArray(Oid elemtype, int ndim, const int *dims)
{
	int			elsize = elemtype == FLOAT8OID ? 8 : 4;
	int64		n = 1;
	Size		nbytes;
	ArrayType  *a;

	for (int i = 0; i < ndim; i++)
		n *= dims[i];
	if (n > (int64) MaxArraySize)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("an array of %lld elements exceeds the maximum of %d",
						(long long) n, (int) MaxArraySize)));
	nbytes = add_size(ARR_OVERHEAD_NONULLS(ndim), mul_size((Size) n, elsize));
	a = MemoryContextAllocExtended(CurrentMemoryContext, nbytes, MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);
	SET_VARSIZE(a, nbytes);
	a->ndim = ndim;
	a->dataoffset = 0;
	a->elemtype = elemtype;
	for (int i = 0; i < ndim; i++)
	{
		ARR_DIMS(a)[i] = dims[i];
		ARR_LBOUND(a)[i] = 1;
	}
	return a;
}

/*
 * Activation rows from a real[]: one row (1-D) or rows x features (2-D),
 * no NULLs, all finite.
 */
static const float *
activation_rows(ArrayType *a, int32 *n, int64 *nrows)
{
	int			ndim = ARR_NDIM(a);
	const float *x;
	int64		total;

	if (ARR_ELEMTYPE(a) != FLOAT4OID)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("activations must be real[], not %s[]", format_type_be(ARR_ELEMTYPE(a)))));
	if (ndim < 1 || ndim > 2)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("activations must be one row (1-D) or rows x features (2-D), not %d-D", ndim)));
	if (array_contains_nulls(a))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("activations must not contain NULL elements")));
	*n = ARR_DIMS(a)[ndim - 1];
	*nrows = ndim == 1 ? 1 : ARR_DIMS(a)[0];
	x = (const float *) ARR_DATA_PTR(a);
	total = *nrows * *n;
	for (int64 i = 0; i < total; i++)
		if (unlikely(!isfinite(x[i])))
			ereport(ERROR,
					(errcode(ERRCODE_DATA_EXCEPTION),
					 errmsg("activations must be finite, but row %lld has %s in feature %lld",
							(long long) (i / *n) + 1,
							isnan(x[i]) ? "NaN" : x[i] > 0 ? "Infinity" : "-Infinity",
							(long long) (i % *n) + 1)));
	return x;
}

/* A new state of n features in the aggregate's memory context. */
static QcStats *
new_state(MemoryContext aggctx, int32 n, bool hessian)
{
	MemoryContext old;
	QcStats    *s;

	if (hessian && n > QC_MAX_HESSIAN_FEATURES)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("X^T X of %d features does not fit one array", n),
				 errdetail("An n x n real[] holds at most %d features.", QC_MAX_HESSIAN_FEATURES),
				 errhint("Pass hessian => false to collect the per-channel statistics only.")));
	old = MemoryContextSwitchTo(aggctx);
	s = qc_stats_new(n, hessian);
	MemoryContextSwitchTo(old);
	return s;
}

/* activation_stats(x real[] [, hessian boolean]) transition */
Datum
pgquant_activation_stats_transfn(PG_FUNCTION_ARGS)
{
	MemoryContext aggctx;
	QcStats    *s = PG_ARGISNULL(0) ? NULL : (QcStats *) PG_GETARG_POINTER(0);
	bool		hessian = true;
	const float *x;
	int32		n;
	int64		nrows;

	if (!AggCheckCallContext(fcinfo, &aggctx))
		elog(ERROR, "activation_stats_transfn called in a non-aggregate context");
	if (PG_NARGS() > 2)
	{
		if (PG_ARGISNULL(2))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("the hessian argument of activation_stats must not be NULL")));
		hessian = PG_GETARG_BOOL(2);
	}
	if (PG_ARGISNULL(1))
	{
		if (s == NULL)
			PG_RETURN_NULL();
		PG_RETURN_POINTER(s);	/* NULL rows are skipped, as other aggregates do */
	}
	x = activation_rows(PG_GETARG_ARRAYTYPE_P(1), &n, &nrows);
	if (s == NULL)
		s = new_state(aggctx, n, hessian);
	else if (s->n != n)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("activation rows must all have %d features, got %d", s->n, n)));
	else if (s->hessian != hessian)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the hessian argument of activation_stats must be the same for every row")));
	qc_stats_add(s, x, nrows);
	PG_RETURN_POINTER(s);
}

/* activation_stats final: a pgquant.layer_stats value */
Datum
pgquant_activation_stats_finalfn(PG_FUNCTION_ARGS)
{
	QcStats    *s = (QcStats *) PG_GETARG_POINTER(0);
	TupleDesc	tupdesc;
	Datum		values[LS_NATTS];
	bool		nulls[LS_NATTS] = {0};
	PgqStatsArrays a;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	PgqStatsToArrays(s, &a);
	values[LS_IN_FEATURES - 1] = Int32GetDatum(s->n);
	values[LS_NROWS - 1] = Int64GetDatum(s->nrows);
	values[LS_HESSIAN - 1] = PointerGetDatum(a.hessian);
	nulls[LS_HESSIAN - 1] = a.hessian == NULL;
	values[LS_MEAN_ABS - 1] = PointerGetDatum(a.mean_abs);
	values[LS_MAX_ABS - 1] = PointerGetDatum(a.max_abs);
	values[LS_SUM_SQ - 1] = PointerGetDatum(a.sum_sq);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

void
PgqStatsToArrays(QcStats *s, PgqStatsArrays *out)
{
	int			dims[2] = {s->n, s->n};

	qc_stats_flush(s);
	out->mean_abs = PgqNewArray(FLOAT4OID, 1, dims);
	out->max_abs = PgqNewArray(FLOAT4OID, 1, dims);
	out->sum_sq = PgqNewArray(FLOAT8OID, 1, dims);
	for (int32 j = 0; j < s->n; j++)
	{
		((float *) ARR_DATA_PTR(out->mean_abs))[j] = (float) (s->sum_abs[j] / (double) s->nrows);
		((float *) ARR_DATA_PTR(out->max_abs))[j] = s->max_abs[j];
		((double *) ARR_DATA_PTR(out->sum_sq))[j] = s->sum_sq[j];
	}
	out->hessian = NULL;
	if (s->hessian)
	{
		out->hessian = PgqNewArray(FLOAT4OID, 2, dims);
		qc_stats_hessian(s, (float *) ARR_DATA_PTR(out->hessian));
	}
}

/* activation_stats combine: merge two partial states */
Datum
pgquant_activation_stats_combinefn(PG_FUNCTION_ARGS)
{
	MemoryContext aggctx;
	QcStats    *a = PG_ARGISNULL(0) ? NULL : (QcStats *) PG_GETARG_POINTER(0);
	QcStats    *b = PG_ARGISNULL(1) ? NULL : (QcStats *) PG_GETARG_POINTER(1);
	char		err[QT_ERRMSG_LEN];

	if (!AggCheckCallContext(fcinfo, &aggctx))
		elog(ERROR, "activation_stats_combinefn called in a non-aggregate context");
	if (b == NULL)
	{
		if (a == NULL)
			PG_RETURN_NULL();
		PG_RETURN_POINTER(a);
	}
	/* b may live in a short-lived context: the result must be in the aggregate's */
	if (a == NULL)
		a = new_state(aggctx, b->n, b->hessian);
	if (qc_stats_merge(a, b, err) != QT_OK)
		ereport(ERROR, (errcode(ERRCODE_DATA_EXCEPTION), errmsg("%s", err)));
	PG_RETURN_POINTER(a);
}

/* activation_stats serialize: the state as bytea (format in calib_stats.c) */
Datum
pgquant_activation_stats_serialfn(PG_FUNCTION_ARGS)
{
	QcStats    *s = (QcStats *) PG_GETARG_POINTER(0);
	size_t		sz = qc_stats_serial_size(s);
	bytea	   *out;

	if (sz > MaxAllocSize - VARHDRSZ)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("activation statistics of %d features are too large to pass between processes", s->n),
				 errhint("Disable parallel query for this statement, or pass hessian => false.")));
	out = palloc(VARHDRSZ + sz);
	SET_VARSIZE(out, VARHDRSZ + sz);
	qc_stats_serialize(s, (uint8 *) VARDATA(out));
	PG_RETURN_BYTEA_P(out);
}

/* activation_stats deserialize: checks every field before use */
Datum
pgquant_activation_stats_deserialfn(PG_FUNCTION_ARGS)
{
	bytea	   *in = PG_GETARG_BYTEA_PP(0);
	QcStats    *s;
	char		err[QT_ERRMSG_LEN];
	QtStatus	st;

	if (!AggCheckCallContext(fcinfo, NULL))
		elog(ERROR, "activation_stats_deserialfn called in a non-aggregate context");
	st = qc_stats_deserialize((const uint8 *) VARDATA_ANY(in), VARSIZE_ANY_EXHDR(in), &s, err);
	if (st != QT_OK)
		ereport(ERROR, (errcode(ERRCODE_INVALID_BINARY_REPRESENTATION), errmsg("%s", err)));
	PG_RETURN_POINTER(s);
}

static const void *
checked_array(Datum d, bool isnull, Oid elemtype, int ndim, int32 n, const char *what)
{
	ArrayType  *a;
	int64		count;

	if (isnull)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("calibration statistics must have %s", what)));
	a = DatumGetArrayTypeP(d);
	if (ARR_ELEMTYPE(a) != elemtype || ARR_NDIM(a) != ndim || ARR_DIMS(a)[0] != n ||
		(ndim == 2 && ARR_DIMS(a)[1] != n))
	{
		if (ndim == 2)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_EXCEPTION),
					 errmsg("calibration statistics' %s must be a %d x %d real[]", what, n, n)));
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("calibration statistics' %s must be a %s of %d elements", what,
						elemtype == FLOAT8OID ? "double precision[]" : "real[]", n)));
	}
	if (array_contains_nulls(a))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("calibration statistics' %s must not contain NULL elements", what)));
	count = ndim == 2 ? (int64) n * n : n;
	for (int64 i = 0; i < count; i++)
	{
		double		v;

		if ((i & 0xfffff) == 0)
			CHECK_FOR_INTERRUPTS();
		v = elemtype == FLOAT8OID ? ((const double *) ARR_DATA_PTR(a))[i]
			: ((const float *) ARR_DATA_PTR(a))[i];

		if (!isfinite(v) || (ndim == 1 && v < 0.0))
			ereport(ERROR,
					(errcode(ERRCODE_DATA_EXCEPTION),
					 errmsg("calibration statistics' %s must be finite%s, but element %lld is %g", what,
							ndim == 1 ? " and non-negative" : "", (long long) i + 1, v)));
	}
	return ARR_DATA_PTR(a);
}

void
PgqLayerStatsFromTuple(HeapTupleHeader t, PgqLayerStats *out)
{
	bool		isnull;
	Datum		d;

	d = GetAttributeByNum(t, LS_IN_FEATURES, &isnull);
	out->n = isnull ? 0 : DatumGetInt32(d);
	if (out->n < 1)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("calibration statistics must have a positive in_features")));
	d = GetAttributeByNum(t, LS_NROWS, &isnull);
	out->nrows = isnull ? 0 : DatumGetInt64(d);
	if (out->nrows < 1)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("calibration statistics must cover at least one row")));
	d = GetAttributeByNum(t, LS_HESSIAN, &isnull);
	out->hessian = isnull ? NULL : checked_array(d, false, FLOAT4OID, 2, out->n, "hessian");
	d = GetAttributeByNum(t, LS_MEAN_ABS, &isnull);
	out->mean_abs = checked_array(d, isnull, FLOAT4OID, 1, out->n, "mean_abs");
	d = GetAttributeByNum(t, LS_MAX_ABS, &isnull);
	out->max_abs = checked_array(d, isnull, FLOAT4OID, 1, out->n, "max_abs");
	d = GetAttributeByNum(t, LS_SUM_SQ, &isnull);
	out->sum_sq = checked_array(d, isnull, FLOAT8OID, 1, out->n, "sum_sq");
}

/* layer_stats_merge(a, b): the statistics of both row sets together; NULL counts as no rows */
Datum
pgquant_layer_stats_merge(PG_FUNCTION_ARGS)
{
	PgqLayerStats a,
				b;
	TupleDesc	tupdesc;
	Datum		values[LS_NATTS];
	bool		nulls[LS_NATTS] = {0};
	int			dims[2];
	ArrayType  *mean_abs,
			   *max_abs,
			   *sum_sq;

	if (PG_ARGISNULL(0) && PG_ARGISNULL(1))
		PG_RETURN_NULL();
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
	{
		/* check the one there is, so that a merge never stores bad statistics */
		PgqLayerStatsFromTuple(PG_GETARG_HEAPTUPLEHEADER(PG_ARGISNULL(0) ? 1 : 0), &a);
		PG_RETURN_DATUM(PG_GETARG_DATUM(PG_ARGISNULL(0) ? 1 : 0));
	}
	PgqLayerStatsFromTuple(PG_GETARG_HEAPTUPLEHEADER(0), &a);
	PgqLayerStatsFromTuple(PG_GETARG_HEAPTUPLEHEADER(1), &b);
	if (a.n != b.n)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("calibration statistics of %d and %d features cannot be merged", a.n, b.n),
				 errdetail("A layer's activation rows all have its in_features columns.")));
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	dims[0] = dims[1] = a.n;
	mean_abs = PgqNewArray(FLOAT4OID, 1, dims);
	max_abs = PgqNewArray(FLOAT4OID, 1, dims);
	sum_sq = PgqNewArray(FLOAT8OID, 1, dims);
	for (int32 j = 0; j < a.n; j++)
	{
		((float *) ARR_DATA_PTR(mean_abs))[j] =
			(float) (((double) a.mean_abs[j] * a.nrows + (double) b.mean_abs[j] * b.nrows) /
					 ((double) a.nrows + b.nrows));
		((float *) ARR_DATA_PTR(max_abs))[j] = Max(a.max_abs[j], b.max_abs[j]);
		((double *) ARR_DATA_PTR(sum_sq))[j] = a.sum_sq[j] + b.sum_sq[j];
	}
	values[LS_IN_FEATURES - 1] = Int32GetDatum(a.n);
	if (pg_add_s64_overflow(a.nrows, b.nrows, &a.nrows))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("merged calibration statistics would cover more than 2^63 rows")));
	values[LS_NROWS - 1] = Int64GetDatum(a.nrows);
	if ((a.hessian == NULL) != (b.hessian == NULL))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cannot merge calibration statistics with and without a hessian"),
				 errdetail("X^T X of the merged rows would be unknown."),
				 errhint("Collect both with the same hessian argument.")));
	if (a.hessian)
	{
		ArrayType  *h = PgqNewArray(FLOAT4OID, 2, dims);
		float	   *dst = (float *) ARR_DATA_PTR(h);
		int64		nn = (int64) a.n * a.n;

		for (int64 i = 0; i < nn; i++)
			dst[i] = a.hessian[i] + b.hessian[i];
		values[LS_HESSIAN - 1] = PointerGetDatum(h);
	}
	else
		nulls[LS_HESSIAN - 1] = true;
	values[LS_MEAN_ABS - 1] = PointerGetDatum(mean_abs);
	values[LS_MAX_ABS - 1] = PointerGetDatum(max_abs);
	values[LS_SUM_SQ - 1] = PointerGetDatum(sum_sq);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

void
PgqCalibrationFetch(const char *set_name, const char *layer, PgqLayerStats *out)
{
	MemoryContext caller = CurrentMemoryContext;
	Oid			argtypes[2] = {TEXTOID, TEXTOID};
	Datum		args[2] = {CStringGetTextDatum(set_name), CStringGetTextDatum(layer)};
	Datum		d;
	bool		isnull;
	int			ret;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	ret = SPI_execute_with_args(
		"SELECT ROW(in_features, nrows, hessian, mean_abs, max_abs, sum_sq)::pgquant.layer_stats "
		"FROM pgquant.calibration_stats "
		"WHERE set_name OPERATOR(pg_catalog.=) $1 AND layer OPERATOR(pg_catalog.=) $2",
		2, argtypes, args, NULL, true, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "reading pgquant.calibration_stats failed: %s", SPI_result_code_string(ret));
	if (SPI_processed == 0)
	{
		ret = SPI_execute_with_args(
			"SELECT 1 FROM pgquant.calibration_sets WHERE name OPERATOR(pg_catalog.=) $1",
			1, argtypes, args, NULL, true, 1);
		if (ret != SPI_OK_SELECT)
			elog(ERROR, "reading pgquant.calibration_sets failed: %s", SPI_result_code_string(ret));
		if (SPI_processed == 0)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("calibration set \"%s\" does not exist", set_name),
					 errhint("Create it with pgquant.calibration_create() and add activations with pgquant.calibration_add().")));
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("calibration set \"%s\" has no layer \"%s\"", set_name, layer),
				 errhint("Add the layer's input activations with pgquant.calibration_add().")));
	}
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (isnull)
		elog(ERROR, "calibration statistics row is NULL");
	/* copy out of SPI's memory before it goes */
	{
		MemoryContext spi = MemoryContextSwitchTo(caller);

		d = datumCopy(d, false, -1);
		MemoryContextSwitchTo(spi);
	}
	SPI_finish();
	PgqLayerStatsFromTuple(DatumGetHeapTupleHeader(d), out);
}

char *
PgqCalibrationFindLayer(const char *set_name, int32 in_features)
{
	MemoryContext caller = CurrentMemoryContext;
	Oid			argtypes[2] = {TEXTOID, INT4OID};
	Datum		args[2] = {CStringGetTextDatum(set_name), Int32GetDatum(in_features)};
	char	   *layer = NULL;
	int			ret;
	uint64		n;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	ret = SPI_execute_with_args(
		"SELECT s.name, (SELECT pg_catalog.string_agg(pg_catalog.quote_ident(c.layer), ', ' ORDER BY c.layer) "
		"                FROM pgquant.calibration_stats c WHERE c.set_name OPERATOR(pg_catalog.=) s.name "
		"                AND c.in_features OPERATOR(pg_catalog.=) $2), "
		"       (SELECT pg_catalog.count(*) FROM pgquant.calibration_stats c "
		"        WHERE c.set_name OPERATOR(pg_catalog.=) s.name AND c.in_features OPERATOR(pg_catalog.=) $2), "
		"       (SELECT c.layer FROM pgquant.calibration_stats c WHERE c.set_name OPERATOR(pg_catalog.=) s.name "
		"        AND c.in_features OPERATOR(pg_catalog.=) $2 LIMIT 1) "
		"FROM pgquant.calibration_sets s WHERE s.name OPERATOR(pg_catalog.=) $1",
		2, argtypes, args, NULL, true, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "reading pgquant.calibration_stats failed: %s", SPI_result_code_string(ret));
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("calibration set \"%s\" does not exist", set_name),
				 errhint("Create it with pgquant.calibration_create() and add activations with pgquant.calibration_add().")));
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull);

		n = isnull ? 0 : DatumGetInt64(d);
		if (n == 1)
		{
			char	   *v = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4);

			layer = MemoryContextStrdup(caller, v);
		}
		else if (n > 1)
		{
			char	   *list = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);

			ereport(ERROR,
					(errcode(ERRCODE_AMBIGUOUS_PARAMETER),
					 errmsg("calibration set \"%s\" has %llu layers with %d input features; name one with layer =>",
							set_name, (unsigned long long) n, in_features),
					 errdetail("They are: %s.", list)));
		}
	}
	SPI_finish();
	if (layer == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("calibration set \"%s\" has no layer with %d input features", set_name, in_features),
				 errhint("Name the layer with layer =>, or add its activations with pgquant.calibration_add().")));
	return layer;
}
