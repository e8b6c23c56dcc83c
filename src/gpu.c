/*
 * gpu.c: the one wall between PostgreSQL and the CUDA module.
 *
 * The kernels live in a separate library, $libdir/pgquant_cuda, built only
 * where nvcc exists (kernels/cuda.mk), so pgquant loads on machines without
 * CUDA.  This file loads it lazily, on the first call that may use a GPU,
 * through PostgreSQL's dynamic loader (which also checks the module's magic
 * block), and never in the postmaster, so no CUDA state crosses a fork.  The
 * outcome (module missing, unloadable, no device, or ready) is cached for the
 * backend's lifetime.  The module returns status codes and never aborts;
 * here they become ereport(ERROR)s with proper SQLSTATEs.
 */
#include "pgquant.h"

#include <sys/stat.h>

#include "miscadmin.h"

#include "../kernels/pgquant_cuda.h"

#ifndef DLSUFFIX
#define DLSUFFIX ".so"
#endif

#define GPU_MODULE_NAME "pgquant_cuda"
#define GPU_ERRLEN 512

typedef enum GpuState
{
	GPU_UNKNOWN,				/* not tried yet in this backend */
	GPU_ABSENT,					/* module missing or unusable, or no device */
	GPU_READY					/* module loaded, at least one device */
} GpuState;

static GpuState gpu_state = GPU_UNKNOWN;
static PgqCudaDeviceCountFn gpu_device_count;
static PgqCudaDequantizeFn gpu_dequantize;
static PgqCudaGemmFn gpu_gemm;
static char gpu_reason[GPU_ERRLEN];	/* why not ready, as a sentence */

/* load the module and look up its functions; false (with gpu_reason) if it cannot be used */
static bool
GpuLoadModule(void)
{
	char		path[MAXPGPATH];
	struct stat st;
	MemoryContext oldcxt = CurrentMemoryContext;
	static PgqCudaAbiVersionFn abi_version;
	void	   *handle;

	snprintf(path, sizeof(path), "%s/%s%s", pkglib_path, GPU_MODULE_NAME, DLSUFFIX);
	if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
	{
		snprintf(gpu_reason, sizeof(gpu_reason),
				 "The CUDA module \"%s\" is not installed.", path);
		return false;
	}

	/*
	 * A module that is present but cannot be loaded (built for another
	 * PostgreSQL major version, a missing shared library) must not fail every
	 * query in pgquant.device = 'auto'.  dfmgr's errors are raised before it
	 * holds any resource, so it is safe to turn them into a warning here
	 * without a subtransaction.
	 */
	PG_TRY();
	{
		abi_version = (PgqCudaAbiVersionFn)
			load_external_function("$libdir/" GPU_MODULE_NAME, "pgq_cuda_abi_version",
								   true, &handle);
		gpu_device_count = (PgqCudaDeviceCountFn)
			lookup_external_function(handle, "pgq_cuda_device_count");
		gpu_dequantize = (PgqCudaDequantizeFn)
			lookup_external_function(handle, "pgq_cuda_dequantize");
		gpu_gemm = (PgqCudaGemmFn)
			lookup_external_function(handle, "pgq_cuda_gemm");
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(oldcxt);
		edata = CopyErrorData();
		FlushErrorState();
		snprintf(gpu_reason, sizeof(gpu_reason),
				 "The CUDA module \"%s\" could not be loaded: %s.", path, edata->message);
		ereport(WARNING,
				(errmsg("pgquant could not load its CUDA module, GPU use is disabled in this session"),
				 errdetail_internal("%s", edata->message)));
		FreeErrorData(edata);
		return false;
	}
	PG_END_TRY();

	if (gpu_device_count == NULL || gpu_dequantize == NULL || gpu_gemm == NULL ||
		abi_version() != PGQ_CUDA_ABI_VERSION)
	{
		snprintf(gpu_reason, sizeof(gpu_reason),
				 "The CUDA module \"%s\" does not match this version of pgquant.", path);
		ereport(WARNING,
				(errmsg("pgquant's CUDA module does not match the extension, GPU use is disabled in this session"),
				 errhint("Reinstall pgquant so that both libraries come from the same build.")));
		return false;
	}
	return true;
}

/* decide once per backend whether the GPU can be used */
static void
GpuInit(void)
{
	char		err[GPU_ERRLEN] = "";
	int			count = 0;

	gpu_state = GPU_ABSENT;		/* stays so on every early return */
	if (IsPostmasterEnvironment && !IsUnderPostmaster)
	{
		snprintf(gpu_reason, sizeof(gpu_reason), "The postmaster does not use CUDA.");
		return;
	}
	if (!GpuLoadModule())
		return;
	if (gpu_device_count(&count, err, sizeof(err)) != PGQ_CUDA_OK || count < 1)
	{
		snprintf(gpu_reason, sizeof(gpu_reason), "The CUDA module reported: %s.",
				 err[0] ? err : "no devices");
		return;
	}
	gpu_state = GPU_READY;
}

/* true when the CUDA module is installed and sees at least one device */
bool
PgqGpuAvailable(void)
{
	if (gpu_state == GPU_UNKNOWN)
		GpuInit();
	return gpu_state == GPU_READY;
}

/*
 * Decode the whole qtensor q (layout l) into out, rows * cols floats in the
 * original column order, on the GPU; raises an ERROR if that is impossible.
 */
void
PgqGpuDequantize(const QtHeader *q, const QtLayout *l, float *out)
{
	char		err[GPU_ERRLEN] = "";
	size_t		limit = pgquant_gpu_memory_limit_mb > 0
		? (size_t) pgquant_gpu_memory_limit_mb * 1024 * 1024 : 0;
	PgqCudaStatus st;

	if (!PgqGpuAvailable())
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("no CUDA device is available"),
				 errdetail_internal("%s", gpu_reason),
				 errhint("Use SET pgquant.device = 'cpu' or 'auto' to decode on the CPU.")));

	if (VARSIZE_ANY(q) < l->total)
		elog(ERROR, "qtensor of %zu bytes is shorter than its layout of %zu (please report a bug)",
			 (size_t) VARSIZE_ANY(q), l->total);
	st = gpu_dequantize(q, VARSIZE_ANY(q), out, limit, err, sizeof(err));
	switch (st)
	{
		case PGQ_CUDA_OK:
			/* signals held back during the call are pending now */
			CHECK_FOR_INTERRUPTS();
			return;
		case PGQ_CUDA_NO_DEVICE:
			/* the device went away: later calls in 'auto' use the CPU */
			gpu_state = GPU_ABSENT;
			snprintf(gpu_reason, sizeof(gpu_reason), "The CUDA module reported: %s.", err);
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("no CUDA device is available"),
					 errdetail_internal("%s", gpu_reason),
					 errhint("Use SET pgquant.device = 'cpu' or 'auto' to decode on the CPU.")));
			break;
		case PGQ_CUDA_OUT_OF_MEMORY:
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("out of CUDA device memory"),
					 errdetail_internal("The CUDA module reported: %s.", err),
					 errhint("Check pgquant.gpu_memory_limit, or use SET pgquant.device = 'cpu' to decode on the CPU.")));
			break;
		default:
			ereport(ERROR,
					(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
					 errmsg("could not dequantize on the CUDA device"),
					 errdetail_internal("The CUDA module reported: %s.", err)));
			break;
	}
}

/*
 * Y[n][rows] = X[n][cols] W^T on the GPU for a qtensor q without permutation,
 * channel scales or outliers (the caller checks); raises an ERROR if that is
 * impossible.  Batches larger than the module takes go in slices.
 */
void
PgqGpuGemm(const QtHeader *q, const QtLayout *l, const float *X, int64 n, float *Y)
{
	char		err[GPU_ERRLEN] = "";
	size_t		limit = pgquant_gpu_memory_limit_mb > 0
		? (size_t) pgquant_gpu_memory_limit_mb * 1024 * 1024 : 0;
	PgqCudaStatus st = PGQ_CUDA_OK;

	if (!PgqGpuAvailable())
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("no CUDA device is available"),
				 errdetail_internal("%s", gpu_reason),
				 errhint("Use SET pgquant.device = 'cpu' or 'auto' to run on the CPU.")));
	if (VARSIZE_ANY(q) < l->total)
		elog(ERROR, "qtensor of %zu bytes is shorter than its layout of %zu (please report a bug)",
			 (size_t) VARSIZE_ANY(q), l->total);
	for (int64 i = 0; i < n && st == PGQ_CUDA_OK; i += PGQ_CUDA_GEMM_MAX_BATCH)
	{
		int			k = (int) Min(n - i, (int64) PGQ_CUDA_GEMM_MAX_BATCH);

		st = gpu_gemm(q, VARSIZE_ANY(q), X + i * q->cols, k, Y + i * q->rows, limit, err, sizeof(err));
		CHECK_FOR_INTERRUPTS();
	}
	switch (st)
	{
		case PGQ_CUDA_OK:
			return;
		case PGQ_CUDA_NO_DEVICE:
			gpu_state = GPU_ABSENT;
			snprintf(gpu_reason, sizeof(gpu_reason), "The CUDA module reported: %s.", err);
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("no CUDA device is available"),
					 errdetail_internal("%s", gpu_reason),
					 errhint("Use SET pgquant.device = 'cpu' or 'auto' to run on the CPU.")));
			break;
		case PGQ_CUDA_OUT_OF_MEMORY:
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("out of CUDA device memory"),
					 errdetail_internal("The CUDA module reported: %s.", err),
					 errhint("Check pgquant.gpu_memory_limit, or use SET pgquant.device = 'cpu' to run on the CPU.")));
			break;
		default:
			ereport(ERROR,
					(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
					 errmsg("could not multiply on the CUDA device"),
					 errdetail_internal("The CUDA module reported: %s.", err)));
			break;
	}
}

PG_FUNCTION_INFO_V1(pgquant_cuda_available);

/* pgquant.cuda_available() -> bool: whether GPU decoding is possible in this session */
Datum
pgquant_cuda_available(PG_FUNCTION_ARGS)
{
	bool		ok = PgqGpuAvailable();

	(void) fcinfo;				/* no arguments */
	if (!ok)
		ereport(DEBUG1, (errmsg_internal("pgquant: CUDA is not available: %s", gpu_reason)));
	PG_RETURN_BOOL(ok);
}
