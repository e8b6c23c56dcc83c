/*
 * quantize.c: SQL entry points that turn real[] into qtensors and back.
 */
#include "pgquant.h"

#include <math.h>

#include "access/parallel.h"
#include "catalog/pg_type.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "qcalib.h"
#include "quant.h"

PG_FUNCTION_INFO_V1(pgquant_quantize);
PG_FUNCTION_INFO_V1(pgquant_dequantize);
PG_FUNCTION_INFO_V1(pgquant_qtensor_info);
PG_FUNCTION_INFO_V1(pgquant_quant_error);

/* the methods quantize() implements, for the hint of an unknown name */
#define PGQ_METHODS_HINT "Valid methods are: rtn, nf4, hqq."
#define RTN_DEFAULT_GROUP 128
#define NF4_DEFAULT_GROUP 64	/* bitsandbytes' blocksize */
#define HQQ_DEFAULT_GROUP 64	/* the HQQ reference's default group size */
/* below this many weights the GPU's transfers cost more than they save */
#define GPU_MIN_ELEMS (1 << 20)

/* A real[] of weights, checked: 1-D or 2-D, no NULLs, all finite. */
typedef struct Weights
{
	const float *w;
	int32		rows;
	int32		cols;
	bool		is1d;
} Weights;

static Weights
weights_from_array(ArrayType *a)
{
	Weights		res;
	int			ndim = ARR_NDIM(a);
	int64		n;

	if (ARR_ELEMTYPE(a) != FLOAT4OID)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("weights must be real[], not %s[]", format_type_be(ARR_ELEMTYPE(a)))));
	if (ndim == 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("cannot quantize an empty array")));
	if (ndim > 2)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("weights must be a 1-D or 2-D array, not %d-D", ndim),
				 errhint("Reshape higher-rank tensors to [out, in] before quantizing.")));
	if (array_contains_nulls(a))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("weights must not contain NULL elements")));
	res.is1d = ndim == 1;
	res.rows = res.is1d ? 1 : ARR_DIMS(a)[0];
	res.cols = ARR_DIMS(a)[ndim - 1];
	res.w = (const float *) ARR_DATA_PTR(a);
	n = (int64) res.rows * res.cols;
	for (int64 i = 0; i < n; i++)
		if (unlikely(!isfinite(res.w[i])))
			ereport(ERROR,
					(errcode(ERRCODE_DATA_EXCEPTION),
					 errmsg("weights must be finite, but element %lld is %s", (long long) i + 1,
							isnan(res.w[i]) ? "NaN" : res.w[i] > 0 ? "Infinity" : "-Infinity")));
	return res;
}

/* the group size a method uses when none is given */
static int
default_group_size(int method)
{
	switch (method)
	{
		case QT_METHOD_NF4:
			return NF4_DEFAULT_GROUP;
		case QT_METHOD_HQQ:
			return HQQ_DEFAULT_GROUP;
		default:
			return RTN_DEFAULT_GROUP;
	}
}

/* a palloc'd qtensor with the header filled in, l->total bytes, the rest zero */
static uint8 *
new_qtensor(const QtHeader *h, const QtLayout *l)
{
	uint8	   *buf = palloc0(l->total);

	memcpy(buf, h, sizeof(*h));
	SET_VARSIZE(buf, l->total);
	return buf;
}

/* HQQ: optimize each group's scale and zero point, then store them */
static uint8 *
quantize_hqq(const Weights *w, const QtSpec *spec)
{
	uint16		flags = (w->is1d ? QT_FLAG_1D : 0) | (spec->symmetric ? 0 : QT_FLAG_ZEROS);
	QtHeader	h;
	QtLayout	l;
	QtStatus	st;
	char		err[QT_ERRMSG_LEN];
	int64		ngroups;
	float	   *scales;
	uint8	   *zeros;
	uint8	   *buf;

	/* check the shape and size before allocating anything sized by them */
	if ((st = qt_params_plan(QT_METHOD_HQQ, spec->bits, spec->group_size, flags, QT_SCALE_FP32,
							 w->rows, w->cols, &h, &l, err)) != QT_OK)
		QtensorReportStatus(st, err, ERRCODE_INVALID_PARAMETER_VALUE);
	ngroups = l.ngroups;
	scales = palloc(mul_size(mul_size(w->rows, ngroups), sizeof(float)));
	zeros = palloc0(mul_size(w->rows, ngroups));
	qt_hqq_matrix(w->w, w->rows, w->cols, l.group_len, spec->bits, spec->symmetric,
				  &qt_hqq_defaults, scales, zeros);
	if ((st = qt_params_plan(QT_METHOD_HQQ, spec->bits, spec->group_size, flags,
							 qt_params_scale_type(scales, (int64) w->rows * ngroups),
							 w->rows, w->cols, &h, &l, err)) != QT_OK)
		QtensorReportStatus(st, err, ERRCODE_INVALID_PARAMETER_VALUE);
	buf = new_qtensor(&h, &l);
	qt_params_encode(w->w, buf, &l, scales, zeros);
	pfree(scales);
	pfree(zeros);
	return buf;
}

/* quantize(w real[], method text, bits int, group_size int, sym bool) */
Datum
pgquant_quantize(PG_FUNCTION_ARGS)
{
	Weights		w;
	QtSpec		spec;
	char	   *method;
	QtHeader	h;
	QtLayout	l;
	QtStatus	st;
	char		err[QT_ERRMSG_LEN];
	uint8	   *buf;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2) || PG_ARGISNULL(4))
		PG_RETURN_NULL();
	method = text_to_cstring(PG_GETARG_TEXT_PP(1));
	spec.method = qt_method_from_name(method);
	if (spec.method != QT_METHOD_RTN && spec.method != QT_METHOD_NF4 && spec.method != QT_METHOD_HQQ)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown quantization method \"%s\"", method),
				 errhint(PGQ_METHODS_HINT)));
	spec.bits = PG_GETARG_INT32(2);
	if (spec.bits < QT_MIN_BITS || spec.bits > QT_MAX_BITS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("bits must be between %d and %d, got %d", QT_MIN_BITS, QT_MAX_BITS, spec.bits)));
	if (spec.method == QT_METHOD_NF4 && spec.bits != 4)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("method nf4 has 4 bits, got %d", spec.bits)));
	spec.group_size = PG_ARGISNULL(3) ? default_group_size(spec.method) : PG_GETARG_INT32(3);
	if (spec.group_size < 1 && spec.group_size != QT_GROUP_PER_CHANNEL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("group_size must be positive, or -1 for one group per row, got %d",
						spec.group_size)));
	spec.symmetric = PG_GETARG_BOOL(4);

	w = weights_from_array(PG_GETARG_ARRAYTYPE_P(0));
	if (spec.method == QT_METHOD_HQQ)
		PG_RETURN_POINTER(quantize_hqq(&w, &spec));
	if ((st = qt_plan(&spec, w.w, w.rows, w.cols, w.is1d, &h, &l, err)) != QT_OK)
		QtensorReportStatus(st, err, ERRCODE_INVALID_PARAMETER_VALUE);
	buf = new_qtensor(&h, &l);
	qt_encode(w.w, buf, &l);
	PG_RETURN_POINTER(buf);
}

/* whether this call decodes on the GPU */
static bool
use_gpu(int64 nelems)
{
	if (IsParallelWorker())
		return false;			/* one CUDA context per backend, not per worker */
	switch (pgquant_device)
	{
		case PGQ_DEVICE_CPU:
			return false;
		case PGQ_DEVICE_CUDA:
			return true;		/* PgqGpuDequantize raises the error if none */
		default:
			return nelems >= GPU_MIN_ELEMS && PgqGpuAvailable();
	}
}

/* dequantize(q qtensor) -> real[] of the original shape */
Datum
pgquant_dequantize(PG_FUNCTION_ARGS)
{
	QtLayout	l;
	QtHeader   *q = QtensorFromDatum(PG_GETARG_DATUM(0), &l);
	int			ndim = (q->flags & QT_FLAG_1D) ? 1 : 2;
	int64		n = (int64) q->rows * q->cols;
	Size		nbytes = add_size(ARR_OVERHEAD_NONULLS(ndim), mul_size(n, sizeof(float)));
	ArrayType  *a;

	if (!AllocSizeIsValid(nbytes))
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("a %d x %d qtensor is too large to dequantize into one array",
						q->rows, q->cols)));
	a = palloc0(nbytes);
	SET_VARSIZE(a, nbytes);
	a->ndim = ndim;
	a->dataoffset = 0;
	a->elemtype = FLOAT4OID;
	ARR_DIMS(a)[0] = ndim == 1 ? q->cols : q->rows;
	ARR_LBOUND(a)[0] = 1;
	if (ndim == 2)
	{
		ARR_DIMS(a)[1] = q->cols;
		ARR_LBOUND(a)[1] = 1;
	}
	if (use_gpu(n))
		PgqGpuDequantize(q, &l, (float *) ARR_DATA_PTR(a));
	else
		qt_dequantize((const uint8 *) q, &l, 0, q->rows, (float *) ARR_DATA_PTR(a));
	PG_RETURN_ARRAYTYPE_P(a);
}

/* qtensor_info(q) -> (method, encoding, bits, group_size, shape, sym, scale_type, bytes, bits_per_weight) */
Datum
pgquant_qtensor_info(PG_FUNCTION_ARGS)
{
	QtLayout	l;
	QtHeader   *q = QtensorFromDatum(PG_GETARG_DATUM(0), &l);
	TupleDesc	tupdesc;
	Datum		values[9];
	bool		nulls[9] = {0};
	Datum		dims[2];
	int			ndim = (q->flags & QT_FLAG_1D) ? 1 : 2;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	dims[0] = Int32GetDatum(ndim == 1 ? q->cols : q->rows);
	dims[1] = Int32GetDatum(q->cols);
	values[0] = CStringGetTextDatum(qt_method_name(q->method));
	values[1] = CStringGetTextDatum(q->encoding == QT_ENC_NF4 ? "nf4" : "int");
	values[2] = Int32GetDatum(q->bits);
	values[3] = Int32GetDatum(q->group_size);
	values[4] = PointerGetDatum(construct_array(dims, ndim, INT4OID, 4, true, TYPALIGN_INT));
	values[5] = BoolGetDatum(!(q->flags & QT_FLAG_ZEROS));
	values[6] = CStringGetTextDatum(qt_scale_type_name(q->scale_type));
	values[7] = Int64GetDatum((int64) l.total);
	values[8] = Float8GetDatum((double) l.total * 8.0 / ((double) q->rows * q->cols));
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/* quant_error(w real[], q qtensor) -> (rel_error, max_abs_error) */
Datum
pgquant_quant_error(PG_FUNCTION_ARGS)
{
	Weights		w = weights_from_array(PG_GETARG_ARRAYTYPE_P(0));
	QtLayout	l;
	QtHeader   *q = QtensorFromDatum(PG_GETARG_DATUM(1), &l);
	TupleDesc	tupdesc;
	Datum		values[2];
	bool		nulls[2] = {0};
	double		err2 = 0.0,
				ref2 = 0.0,
				maxabs = 0.0;
	int64		block = Max(1, 65536 / q->cols);	/* rows decoded at a time */
	float	   *deq;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	if (w.rows != q->rows || w.cols != q->cols)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("weights of shape %d x %d do not match a qtensor of shape %d x %d",
						w.rows, w.cols, q->rows, q->cols)));
	deq = palloc(mul_size(block * sizeof(float), q->cols));
	for (int64 r0 = 0; r0 < q->rows; r0 += block)
	{
		int64		r1 = Min(r0 + block, q->rows);
		const float *src = w.w + r0 * q->cols;

		qt_dequantize((const uint8 *) q, &l, r0, r1, deq);
		for (int64 i = 0; i < (r1 - r0) * q->cols; i++)
		{
			double		d = (double) src[i] - deq[i];

			err2 += d * d;
			ref2 += (double) src[i] * src[i];
			maxabs = Max(maxabs, fabs(d));
		}
	}
	values[0] = Float8GetDatum(ref2 > 0.0 ? sqrt(err2 / ref2) : err2 > 0.0 ? INFINITY : 0.0);
	values[1] = Float8GetDatum(maxabs);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
