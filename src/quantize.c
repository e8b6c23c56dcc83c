/*
 * quantize.c: SQL entry points that turn real[] into qtensors and back.
 */
#include "calibration.h"

#include <math.h>

#include "access/parallel.h"
#include "catalog/pg_type.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "qcalib.h"
#include "quant.h"

PG_FUNCTION_INFO_V1(pgquant_quantize);
PG_FUNCTION_INFO_V1(pgquant_dequantize);
PG_FUNCTION_INFO_V1(pgquant_qtensor_info);
PG_FUNCTION_INFO_V1(pgquant_quant_error);
PG_FUNCTION_INFO_V1(pgquant_quant_error_calib);

/* the methods quantize() implements, for the hint of an unknown name */
#define PGQ_METHODS_HINT "Valid methods are: rtn, nf4, hqq, awq, gptq."
#define RTN_DEFAULT_GROUP 128
#define NF4_DEFAULT_GROUP 64	/* bitsandbytes' blocksize */
#define HQQ_DEFAULT_GROUP 64	/* the HQQ reference's default group size */
#define GPTQ_DEFAULT_GROUP 128	/* the group size GPTQ's results are usually quoted at */
#define GPTQ_DEFAULT_DAMP 0.01	/* the reference's percdamp */
#define AWQ_DEFAULT_GROUP 128	/* the AWQ reference's q_group_size */
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
		case QT_METHOD_GPTQ:
			return GPTQ_DEFAULT_GROUP;
		case QT_METHOD_AWQ:
			return AWQ_DEFAULT_GROUP;
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

/* the arguments of quantize() that only the calibrated methods use */
typedef struct CalibArgs
{
	char	   *set_name;		/* calibration => or pgquant.calibration; NULL when neither */
	char	   *layer;			/* layer =>; NULL when not given */
	bool		act_order;
	bool		static_groups;
	double		damp;
} CalibArgs;

/* The statistics of the layer the call names; ERROR when it names none. */
static void
fetch_stats(const char *method, CalibArgs *ca, const Weights *w, bool need_hessian, PgqLayerStats *st)
{
	if (ca->set_name == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s needs calibration statistics of the layer", method),
				 errhint("Pass calibration => and layer =>, or set pgquant.calibration.")));
	if (ca->layer == NULL)
	{
		ca->layer = PgqCalibrationFindLayer(ca->set_name, w->cols);
		ereport(NOTICE,
				(errmsg("%s uses layer \"%s\" of calibration set \"%s\", its only layer with %d input features",
						method, ca->layer, ca->set_name, w->cols)));
	}
	PgqCalibrationFetch(ca->set_name, ca->layer, st);
	if (st->n != w->cols)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("layer \"%s\" of calibration set \"%s\" has %d input features, but the weights have %d columns",
						ca->layer, ca->set_name, st->n, w->cols),
				 errhint("Weights are [out, in]: their columns are the layer's input features.")));
	if (need_hessian && st->hessian == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s needs X^T X, but layer \"%s\" of calibration set \"%s\" was collected without it",
						method, ca->layer, ca->set_name),
				 errhint("Collect the layer's activations again with hessian => true.")));
	if (st->nrows < st->n)
		ereport(NOTICE,
				(errmsg("layer \"%s\" of calibration set \"%s\" has %lld activation rows for %d input features",
						ca->layer, ca->set_name, (long long) st->nrows, st->n),
				 errdetail("Statistics of fewer rows than features leave directions the data never visited; "
						   "the result fits the calibration rows and may fit other inputs less well.")));
}

/* GPTQ: error-feedback quantization column by column, with the layer's X^T X */
static uint8 *
quantize_gptq(const Weights *w, const QtSpec *spec, CalibArgs *ca)
{
	PgqLayerStats st;
	QtGptqSpec	gs;
	QtGptqResult res;
	QtHeader	h;
	QtLayout	l;
	QtStatus	rc;
	char		err[QT_ERRMSG_LEN];
	uint16		flags;
	uint8	   *buf;

	flags = (w->is1d ? QT_FLAG_1D : 0) | (spec->symmetric ? 0 : QT_FLAG_ZEROS) |
		(ca->act_order && !ca->static_groups ? QT_FLAG_PERM : 0);
	/* check the shape and size before reading or allocating anything sized by them */
	if ((rc = qt_params_plan(QT_METHOD_GPTQ, spec->bits, spec->group_size, flags, QT_SCALE_FP32,
							 w->rows, w->cols, &h, &l, err)) != QT_OK)
		QtensorReportStatus(rc, err, ERRCODE_INVALID_PARAMETER_VALUE);
	fetch_stats("gptq", ca, w, true, &st);

	gs.bits = spec->bits;
	gs.group_size = spec->group_size;
	gs.symmetric = spec->symmetric;
	gs.act_order = ca->act_order;
	gs.static_groups = ca->static_groups;
	gs.percdamp = ca->damp;
	gs.block_size = 0;
	rc = qt_gptq(w->w, w->rows, w->cols, st.hessian, &gs, &res, err);
	if (rc != QT_OK)
		ereport(ERROR,
				(errcode(rc == QT_ELIMIT ? ERRCODE_PROGRAM_LIMIT_EXCEEDED : ERRCODE_DATA_EXCEPTION),
				 errmsg("gptq cannot quantize with layer \"%s\" of calibration set \"%s\"", ca->layer, ca->set_name),
				 errdetail("%s.", err)));
	if (res.retries > 0)
		ereport(NOTICE,
				(errmsg("X^T X of layer \"%s\" is not positive definite with dampening %g; used %g",
						ca->layer, ca->damp, res.damp),
				 errdetail("The dampening, a fraction of the mean diagonal added to it, grew tenfold %d time%s.",
						   res.retries, res.retries == 1 ? "" : "s")));
	if (res.n_dead > 0)
		ereport(NOTICE,
				(errmsg("%d of the %d input features of layer \"%s\" are zero in every calibration row",
						res.n_dead, w->cols, ca->layer),
				 errdetail("Their weights cannot change the layer's output on this data and are stored as 0, as GPTQ does.")));

	if ((rc = qt_params_plan(QT_METHOD_GPTQ, spec->bits, spec->group_size, flags, res.scale_type,
							 w->rows, w->cols, &h, &l, err)) != QT_OK)
		QtensorReportStatus(rc, err, ERRCODE_INVALID_PARAMETER_VALUE);
	buf = new_qtensor(&h, &l);
	qt_params_write(buf, &l, res.scales, res.zeros, res.codes);
	if (res.perm)
		memcpy(buf + l.off_perm, res.perm, sizeof(int32) * (size_t) w->cols);
	qt_gptq_result_free(&res);
	return buf;
}

/*
 * AWQ: activation-aware channel scales and clipping.  Statistics from the
 * calibration set; without one, the documented data-free form.
 */
static uint8 *
quantize_awq(const Weights *w, const QtSpec *spec, CalibArgs *ca)
{
	PgqLayerStats st = {0};
	QtAwqSpec	as;
	QtAwqResult res;
	QtHeader	h;
	QtLayout	l;
	QtStatus	rc;
	char		err[QT_ERRMSG_LEN];
	uint16		flags = (w->is1d ? QT_FLAG_1D : 0) | (spec->symmetric ? 0 : QT_FLAG_ZEROS) | QT_FLAG_CHSCALE;
	float	   *hdiag = NULL;
	uint8	   *buf;

	if ((rc = qt_params_plan(QT_METHOD_AWQ, spec->bits, spec->group_size, flags, QT_SCALE_FP32,
							 w->rows, w->cols, &h, &l, err)) != QT_OK)
		QtensorReportStatus(rc, err, ERRCODE_INVALID_PARAMETER_VALUE);
	if (ca->set_name == NULL)
	{
		if (ca->layer != NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("layer \"%s\" names no calibration set", ca->layer),
					 errhint("Pass calibration =>, or set pgquant.calibration.")));
		ereport(NOTICE,
				(errmsg("awq without calibration data: no activation-aware scaling, only the clipping search"),
				 errdetail("With no calibration set named (calibration => or pgquant.calibration), awq keeps every "
						   "channel scale at 1 and chooses each group's clipping range by the weights' own squared "
						   "error, not the layer's output error.")));
	}
	else
	{
		fetch_stats("awq", ca, w, false, &st);
		if (st.hessian == NULL)
		{
			hdiag = palloc(sizeof(float) * (size_t) st.n);
			for (int32 j = 0; j < st.n; j++)
				hdiag[j] = (float) st.sum_sq[j];
			ereport(NOTICE,
					(errmsg("layer \"%s\" of calibration set \"%s\" has no X^T X: awq measures errors with its diagonal",
							ca->layer, ca->set_name),
					 errdetail("The searches then treat the input channels as uncorrelated.")));
		}
	}

	as.bits = spec->bits;
	as.group_size = spec->group_size;
	as.symmetric = spec->symmetric;
	as.n_grid = 0;
	as.max_shrink = 0.0;
	as.search_rows = QT_AWQ_SEARCH_ROWS;
	rc = qt_awq(w->w, w->rows, w->cols, st.hessian, hdiag, ca->set_name ? st.mean_abs : NULL, &as, &res, err);
	if (rc != QT_OK)
		ereport(ERROR,
				(errcode(rc == QT_ELIMIT ? ERRCODE_PROGRAM_LIMIT_EXCEEDED : ERRCODE_DATA_EXCEPTION),
				 errmsg("awq cannot quantize these weights"),
				 errdetail("%s.", err)));
	ereport(DEBUG1,
			(errmsg("awq: alpha %.2f, scale-search output error %g at alpha 0, %g at the chosen alpha",
					res.alpha, res.loss_rtn, res.loss_scaled)));
	if ((rc = qt_params_plan(QT_METHOD_AWQ, spec->bits, spec->group_size, flags, res.scale_type,
							 w->rows, w->cols, &h, &l, err)) != QT_OK)
		QtensorReportStatus(rc, err, ERRCODE_INVALID_PARAMETER_VALUE);
	buf = new_qtensor(&h, &l);
	qt_params_write(buf, &l, res.scales, res.zeros, res.codes);
	memcpy(buf + l.off_chscale, res.chscale, sizeof(float) * (size_t) w->cols);
	qt_awq_result_free(&res);
	if (hdiag)
		pfree(hdiag);
	return buf;
}

/* a text argument as a C string, or NULL */
static char *
text_arg_or_null(FunctionCallInfo fcinfo, int n)
{
	return PG_ARGISNULL(n) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(n));
}

/*
 * quantize(w real[], method text, bits int, group_size int, sym bool,
 *          calibration text, layer text, act_order bool, static_groups bool, damp float8)
 */
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

	CalibArgs	ca;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2) || PG_ARGISNULL(4) ||
		PG_ARGISNULL(7) || PG_ARGISNULL(8) || PG_ARGISNULL(9))
		PG_RETURN_NULL();
	method = text_to_cstring(PG_GETARG_TEXT_PP(1));
	spec.method = qt_method_from_name(method);
	if (spec.method < QT_METHOD_RTN || spec.method > QT_METHOD_MAX)
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

	ca.set_name = text_arg_or_null(fcinfo, 5);
	ca.layer = text_arg_or_null(fcinfo, 6);
	ca.act_order = PG_GETARG_BOOL(7);
	ca.static_groups = PG_GETARG_BOOL(8);
	ca.damp = PG_GETARG_FLOAT8(9);
	if (spec.method != QT_METHOD_GPTQ && spec.method != QT_METHOD_AWQ &&
		(ca.set_name != NULL || ca.layer != NULL))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("method %s does not use calibration data", method),
				 errhint("Calibration statistics are read by awq and gptq.")));
	if (spec.method != QT_METHOD_GPTQ && (ca.act_order || ca.static_groups))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s applies to method gptq only", ca.act_order ? "act_order" : "static_groups")));
	if (!(ca.damp > 0.0) || !isfinite(ca.damp))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("damp must be a positive fraction of the Hessian's mean diagonal, got %g", ca.damp)));
	if (ca.set_name == NULL && pgquant_calibration != NULL && pgquant_calibration[0] != '\0')
		ca.set_name = pstrdup(pgquant_calibration);

	w = weights_from_array(PG_GETARG_ARRAYTYPE_P(0));
	if (spec.method == QT_METHOD_HQQ)
		PG_RETURN_POINTER(quantize_hqq(&w, &spec));
	if (spec.method == QT_METHOD_GPTQ)
		PG_RETURN_POINTER(quantize_gptq(&w, &spec, &ca));
	if (spec.method == QT_METHOD_AWQ)
		PG_RETURN_POINTER(quantize_awq(&w, &spec, &ca));
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

/*
 * The errors of q against w: relative Frobenius and largest absolute, and,
 * with the layer's X^T X (h, else NULL), the relative output error
 * ||X (W - Q)^T||^2 / ||X W^T||^2 = sum_r d_r^T H d_r / sum_r w_r^T H w_r.
 */
static void
errors_of(const Weights *w, QtHeader *q, const QtLayout *l, const float *h,
		  double *rel, double *maxabs_out, double *out_err)
{
	double		err2 = 0.0,
				ref2 = 0.0,
				maxabs = 0.0,
				out_num = 0.0,
				out_den = 0.0;
	/* rows decoded at a time: more with a Hessian, so that each product is a real GEMM */
	int64		block = Max(1, (h ? (1 << 20) : 65536) / q->cols);
	float	   *deq,
			   *tmp = NULL;

	if (w->rows != q->rows || w->cols != q->cols)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("weights of shape %d x %d do not match a qtensor of shape %d x %d",
						w->rows, w->cols, q->rows, q->cols)));
	block = Min(block, q->rows);
	deq = palloc(mul_size(block * sizeof(float), q->cols));
	if (h)
		tmp = palloc(mul_size(block * sizeof(float), q->cols));
	for (int64 r0 = 0; r0 < q->rows; r0 += block)
	{
		int64		r1 = Min(r0 + block, q->rows);
		const float *src = w->w + r0 * q->cols;

		qt_dequantize((const uint8 *) q, l, r0, r1, deq);
		for (int64 i = 0; i < (r1 - r0) * q->cols; i++)
		{
			double		d = (double) src[i] - deq[i];

			err2 += d * d;
			ref2 += (double) src[i] * src[i];
			maxabs = Max(maxabs, fabs(d));
			deq[i] = src[i] - deq[i];	/* the block of W - Q, for the output error */
		}
		if (h)
		{
			CHECK_FOR_INTERRUPTS();
			out_num += qc_hessian_energy(deq, r1 - r0, q->cols, h, tmp);
			out_den += qc_hessian_energy(src, r1 - r0, q->cols, h, tmp);
		}
	}
	*rel = ref2 > 0.0 ? sqrt(err2 / ref2) : err2 > 0.0 ? INFINITY : 0.0;
	*maxabs_out = maxabs;
	if (out_err)
		*out_err = out_den > 0.0 ? out_num / out_den : out_num > 0.0 ? INFINITY : 0.0;
	pfree(deq);
	if (tmp)
		pfree(tmp);
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
	double		rel,
				maxabs;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	errors_of(&w, q, &l, NULL, &rel, &maxabs, NULL);
	values[0] = Float8GetDatum(rel);
	values[1] = Float8GetDatum(maxabs);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/*
 * quant_error(w real[], q qtensor, calibration text, layer text)
 *   -> (rel_error, max_abs_error, output_error)
 * calibration NULL: the set named by pgquant.calibration.
 */
Datum
pgquant_quant_error_calib(PG_FUNCTION_ARGS)
{
	Weights		w;
	QtLayout	l;
	QtHeader   *q;
	TupleDesc	tupdesc;
	Datum		values[3];
	bool		nulls[3] = {0};
	CalibArgs	ca = {0};
	PgqLayerStats st;
	double		rel,
				maxabs,
				out_err;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		PG_RETURN_NULL();
	w = weights_from_array(PG_GETARG_ARRAYTYPE_P(0));
	q = QtensorFromDatum(PG_GETARG_DATUM(1), &l);
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	ca.set_name = text_arg_or_null(fcinfo, 2);
	ca.layer = text_arg_or_null(fcinfo, 3);
	if (ca.set_name == NULL && pgquant_calibration != NULL && pgquant_calibration[0] != '\0')
		ca.set_name = pstrdup(pgquant_calibration);
	fetch_stats("quant_error", &ca, &w, true, &st);
	errors_of(&w, q, &l, st.hessian, &rel, &maxabs, &out_err);
	values[0] = Float8GetDatum(rel);
	values[1] = Float8GetDatum(maxabs);
	values[2] = Float8GetDatum(out_err);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
