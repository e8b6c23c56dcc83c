/*
 * qlinear.c: quantized linear layers in SQL, and the inference settings.
 *
 *   qlinear(x real[], w qtensor, bias real[])          -> real[]    y = W x + b
 *   qmatmul(xs real[][], w qtensor, bias real[])       -> real[][]  Y = X W^T + b
 *   pgquant.linear(model, tensor, x real[], bias)      -> real[]    a model's stored tensor
 *
 * The products run in src/qgemv.c.  A qtensor argument stored out of line
 * is detoasted once per query, not once per row: the detoasted copy is kept
 * in the function's fn_extra, keyed by its TOAST pointer (toast relation and
 * value OID), which names one immutable value for as long as the query's
 * snapshot can see it.  pgquant.linear reads through the backend's tensor
 * cache (tensorcache.c), which outlives the query and is validated against
 * the row version on every call.
 */
#include "pgquant.h"

#include <math.h>

#include "access/detoast.h"
#include "access/parallel.h"
#include "catalog/pg_type.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#include "models.h"
#include "qgemv.h"

PG_FUNCTION_INFO_V1(pgquant_qlinear);
PG_FUNCTION_INFO_V1(pgquant_qmatmul);
PG_FUNCTION_INFO_V1(pgquant_linear);
PG_FUNCTION_INFO_V1(pgquant_tensor_cache);
PG_FUNCTION_INFO_V1(pgquant_cpu_kernels);

/* pgquant.cpu_kernels */
static int	cpu_kernels_setting = -1;	/* -1: auto */

static const struct config_enum_entry cpu_kernel_options[] = {
	{"auto", -1, false},
	{"ref", QK_ISA_REF, false},
	{"generic", QK_ISA_GENERIC, false},
	{"avx2", QK_ISA_AVX2, false},
	{"avx512", QK_ISA_AVX512, false},
	{NULL, 0, false}
};

static bool
check_cpu_kernels(int *newval, void **extra, GucSource source)
{
	if (*newval >= 0 && !qk_isa_supported((QkIsa) *newval))
	{
		GUC_check_errdetail("This CPU does not support the \"%s\" kernels.", qk_isa_name((QkIsa) *newval));
		return false;
	}
	return true;
}

static void
assign_cpu_kernels(int newval, void *extra)
{
	qk_set_isa(newval < 0 ? qk_isa_best() : (QkIsa) newval);
}

void
PgqInferInit(void)
{
	qk_init();
	DefineCustomEnumVariable("pgquant.cpu_kernels",
							 "Which CPU kernels quantized products use.",
							 "auto picks the best instruction set the CPU supports (avx512, avx2, generic); "
							 "ref is the slow reference, for checking.",
							 &cpu_kernels_setting, -1, cpu_kernel_options,
							 PGC_USERSET, 0, check_cpu_kernels, assign_cpu_kernels, NULL);
	DefineCustomIntVariable("pgquant.tensor_cache_size",
							"Memory each backend may keep for decoded model tensors.",
							"Least recently used tensors beyond it are freed; a model larger than this is still loaded whole.",
							&pgquant_tensor_cache_mb, 256, 0, 1024 * 1024,
							PGC_USERSET, GUC_UNIT_MB, NULL, NULL, NULL);
}

/* below this many weights a product is not worth the GPU's transfers */
#define GPU_MIN_WEIGHTS (1 << 20)

/*
 * Whether a product with q runs on the GPU (pgquant.device): 'cuda' demands
 * it (PgqGpuGemm raises the error when there is no device), 'auto' takes it
 * for large weights when a device is there.  Parallel workers stay on the
 * CPU (one CUDA context per backend).  The GPU kernel takes tensors without
 * permutation, channel scales or outliers.
 */
static bool
use_gpu(const QtHeader *q, const QtLayout *l)
{
	if (IsParallelWorker())
		return false;
	switch (pgquant_device)
	{
		case PGQ_DEVICE_CPU:
			return false;
		case PGQ_DEVICE_CUDA:
			if (!qk_fused_ok(q, l))
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("the CUDA kernels take qtensors without a permutation, channel scales or outliers"),
						 errhint("Use SET pgquant.device = 'cpu' or 'auto' to run this product on the CPU.")));
			return true;
		default:
			return qk_fused_ok(q, l) && (int64) q->rows * q->cols >= GPU_MIN_WEIGHTS && PgqGpuAvailable();
	}
}

/* y = W x, or Y = X W^T for n vectors, wherever pgquant.device says */
static void
product(const QtHeader *q, const QtLayout *l, const float *X, int64 n, float *Y, void *work)
{
	if (use_gpu(q, l))
		PgqGpuGemm(q, l, X, n, Y);
	else if (n == 1)
		qk_gemv(QK_ISA_COUNT, (const uint8 *) q, l, X, Y, work);
	else
		qk_gemm(QK_ISA_COUNT, (const uint8 *) q, l, X, n, Y, work);
}

/* A 1-D real[] without NULLs; its length in *n. */
const float *
PgqFloatVector(ArrayType *a, const char *what, int *n)
{
	if (ARR_NDIM(a) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("%s must be a 1-D array, not %d-D", what, ARR_NDIM(a))));
	if (array_contains_nulls(a))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not contain NULL elements", what)));
	*n = ARR_DIMS(a)[0];
	return (const float *) ARR_DATA_PTR(a);
}

/* per-query state of qlinear/qmatmul: the last out-of-line qtensor, and scratch memory */
typedef struct QlState
{
	Oid			toastrelid;
	Oid			valueid;
	QtHeader   *q;
	QtLayout	l;
	void	   *work;
	size_t		work_bytes;
} QlState;

static QlState *
ql_state(FunctionCallInfo fcinfo)
{
	if (fcinfo->flinfo->fn_extra == NULL)
		fcinfo->flinfo->fn_extra = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(QlState));
	return (QlState *) fcinfo->flinfo->fn_extra;
}

/* the qtensor argument; an out-of-line value is detoasted once per query */
static QtHeader *
ql_weight(FunctionCallInfo fcinfo, int argno, QtLayout *l)
{
	Datum		d = PG_GETARG_DATUM(argno);
	struct varlena *v = (struct varlena *) DatumGetPointer(d);
	QlState    *st = ql_state(fcinfo);
	struct varatt_external ext;
	MemoryContext old;

	if (!VARATT_IS_EXTERNAL_ONDISK(v))
		return QtensorFromDatum(d, l);
	VARATT_EXTERNAL_GET_POINTER(ext, v);
	if (st->q == NULL || st->toastrelid != ext.va_toastrelid || st->valueid != ext.va_valueid)
	{
		if (st->q)
			pfree(st->q);
		st->q = NULL;
		old = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);
		st->q = QtensorFromDatum(d, &st->l);
		MemoryContextSwitchTo(old);
		st->toastrelid = ext.va_toastrelid;
		st->valueid = ext.va_valueid;
	}
	*l = st->l;
	return st->q;
}

/* scratch memory of at least bytes, kept across calls */
static void *
ql_work(FunctionCallInfo fcinfo, size_t bytes)
{
	QlState    *st = ql_state(fcinfo);

	if (st->work_bytes < bytes)
	{
		if (st->work)
			pfree(st->work);
		st->work = MemoryContextAlloc(fcinfo->flinfo->fn_mcxt, bytes);
		st->work_bytes = bytes;
	}
	return st->work;
}

/* y += bias, checking the bias's length against the output's */
static void
add_bias(FunctionCallInfo fcinfo, int argno, float *y, int rows, int nvec)
{
	const float *b;
	int			nb;

	if (PG_ARGISNULL(argno))
		return;
	b = PgqFloatVector(PG_GETARG_ARRAYTYPE_P(argno), "bias", &nb);
	if (nb != rows)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("bias has %d elements, but the product has %d", nb, rows)));
	for (int i = 0; i < nvec; i++)
		for (int r = 0; r < rows; r++)
			y[(int64) i * rows + r] += b[r];
}

/* qlinear(x real[], w qtensor, bias real[] DEFAULT NULL) -> real[] */
Datum
pgquant_qlinear(PG_FUNCTION_ARGS)
{
	QtLayout	l;
	QtHeader   *q;
	const float *x;
	int			n;
	int			dims[1];
	ArrayType  *y;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		PG_RETURN_NULL();
	x = PgqFloatVector(PG_GETARG_ARRAYTYPE_P(0), "x", &n);
	q = ql_weight(fcinfo, 1, &l);
	if (n != q->cols)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("x has %d elements, but the weight has shape [%d, %d]", n, q->rows, q->cols),
				 errdetail("qlinear computes W x for W of shape [out, in] = [%d, %d].", q->rows, q->cols)));
	dims[0] = q->rows;
	y = PgqFloatArray(NULL, 1, dims, q->rows);
	product(q, &l, x, 1, (float *) ARR_DATA_PTR(y), ql_work(fcinfo, qk_work_bytes(q, &l, 1)));
	add_bias(fcinfo, 2, (float *) ARR_DATA_PTR(y), q->rows, 1);
	PG_RETURN_ARRAYTYPE_P(y);
}

/* qmatmul(xs real[][], w qtensor, bias real[] DEFAULT NULL) -> real[][] */
Datum
pgquant_qmatmul(PG_FUNCTION_ARGS)
{
	QtLayout	l;
	QtHeader   *q;
	ArrayType  *xs;
	int			dims[2];
	ArrayType  *y;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		PG_RETURN_NULL();
	xs = PG_GETARG_ARRAYTYPE_P(0);
	if (ARR_NDIM(xs) != 2)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("xs must be a 2-D array [batch][in], not %d-D", ARR_NDIM(xs)),
				 errhint("Use qlinear for a single vector.")));
	if (array_contains_nulls(xs))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("xs must not contain NULL elements")));
	q = ql_weight(fcinfo, 1, &l);
	if (ARR_DIMS(xs)[1] != q->cols)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("xs has rows of %d elements, but the weight has shape [%d, %d]", ARR_DIMS(xs)[1], q->rows, q->cols),
				 errdetail("qmatmul computes X W^T for X of shape [batch, in] and W of shape [out, in] = [%d, %d].",
						   q->rows, q->cols)));
	dims[0] = ARR_DIMS(xs)[0];
	dims[1] = q->rows;
	y = PgqFloatArray(NULL, 2, dims, (int64) dims[0] * q->rows);
	product(q, &l, (const float *) ARR_DATA_PTR(xs), dims[0], (float *) ARR_DATA_PTR(y),
			ql_work(fcinfo, qk_work_bytes(q, &l, dims[0])));
	add_bias(fcinfo, 2, (float *) ARR_DATA_PTR(y), q->rows, dims[0]);
	PG_RETURN_ARRAYTYPE_P(y);
}

/* pgquant.linear(model text, tensor text, x real[], bias real[] DEFAULT NULL) -> real[] */
Datum
pgquant_linear(PG_FUNCTION_ARGS)
{
	char	   *model,
			   *name;
	const PgqTensor *t;
	const float *x;
	int			n,
				rows,
				cols;
	int			dims[1];
	ArrayType  *y;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		PG_RETURN_NULL();
	model = text_to_cstring(PG_GETARG_TEXT_PP(0));
	name = text_to_cstring(PG_GETARG_TEXT_PP(1));
	x = PgqFloatVector(PG_GETARG_ARRAYTYPE_P(2), "x", &n);
	t = PgqGetTensor(model, name);
	if (t->q)
	{
		rows = t->q->rows;
		cols = t->q->cols;
	}
	else if (t->ndim == 2)
	{
		rows = t->shape[0];
		cols = t->shape[1];
	}
	else
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("tensor \"%s\" of model \"%s\" is not a matrix", name, model),
				 errdetail("pgquant.linear needs a 2-D tensor [out, in]; this one has %d dimensions.", t->ndim)));
	if (n != cols)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("x has %d elements, but tensor \"%s\" has shape [%d, %d]", n, name, rows, cols)));
	dims[0] = rows;
	y = PgqFloatArray(NULL, 1, dims, rows);
	if (t->q)
	{
		void	   *work = palloc(qk_work_bytes(t->q, &t->l, 1));

		product(t->q, &t->l, x, 1, (float *) ARR_DATA_PTR(y), work);
		pfree(work);
	}
	else if (pgquant_device == PGQ_DEVICE_CUDA)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("tensor \"%s\" of model \"%s\" is fp32, and fp32 products run on the CPU only", name, model),
				 errhint("Store a quantized version in its q column, or use SET pgquant.device = 'cpu' or 'auto'.")));
	else
		qk_sgemv(t->data, rows, cols, x, (float *) ARR_DATA_PTR(y));
	add_bias(fcinfo, 3, (float *) ARR_DATA_PTR(y), rows, 1);
	PG_RETURN_ARRAYTYPE_P(y);
}

/* pgquant.tensor_cache() -> (tensors, bytes, tokenizers): this backend's cache */
Datum
pgquant_tensor_cache(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[3];
	bool		nulls[3] = {0};
	int64		t,
				b,
				k;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	PgqCacheStats(&t, &b, &k);
	values[0] = Int64GetDatum(t);
	values[1] = Int64GetDatum(b);
	values[2] = Int64GetDatum(k);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/* pgquant.cpu_kernels() -> text[]: the kernel sets this CPU supports, best first */
Datum
pgquant_cpu_kernels(PG_FUNCTION_ARGS)
{
	Datum		names[QK_ISA_COUNT];
	int			n = 0;

	for (int isa = QK_ISA_COUNT - 1; isa >= 0; isa--)
		if (qk_isa_supported((QkIsa) isa))
			names[n++] = CStringGetTextDatum(qk_isa_name((QkIsa) isa));
	PG_RETURN_ARRAYTYPE_P(construct_array(names, n, TEXTOID, -1, false, TYPALIGN_INT));
}
