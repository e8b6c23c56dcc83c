/*
 * cuda_common.cu: the module's version and device queries, and the mapping
 * from CUDA runtime errors to PgqCudaStatus.
 *
 * cudart is linked statically, so the module loads on any machine and only
 * the driver (libcuda.so) is needed at run time; without one, the first
 * runtime call reports cudaErrorInsufficientDriver, mapped to NO_DEVICE.
 */
#include "cuda_common.cuh"

/* errors that mean "there is no usable device here", not "something broke" */
static bool
pgq_is_no_device(cudaError_t e)
{
	switch (e)
	{
		case cudaErrorNoDevice:
		case cudaErrorInsufficientDriver:
		case cudaErrorStubLibrary:
		case cudaErrorCallRequiresNewerDriver:
		case cudaErrorDevicesUnavailable:
		case cudaErrorSystemDriverMismatch:
		case cudaErrorCompatNotSupportedOnDevice:
			return true;
		default:
			return false;
	}
}

/* map a CUDA error to a status and describe it in err */
PgqCudaStatus
pgq_cuda_status(cudaError_t e, const char *what, char *err, size_t errlen)
{
	if (e == cudaSuccess)
		return PGQ_CUDA_OK;
	PGQ_ERR(err, errlen, "%s: %s (%s)", what, cudaGetErrorString(e), cudaGetErrorName(e));
	if (e == cudaErrorMemoryAllocation)
		return PGQ_CUDA_OUT_OF_MEMORY;
	if (pgq_is_no_device(e))
		return PGQ_CUDA_NO_DEVICE;
	return PGQ_CUDA_ERROR;
}

/* device count; a failed query means no usable device, whatever its cause */
static PgqCudaStatus
pgq_count_devices(int *count, char *err, size_t errlen)
{
	int			n = 0;
	cudaError_t e = cudaGetDeviceCount(&n);

	*count = 0;
	if (e != cudaSuccess)
	{
		(void) pgq_cuda_status(e, "cudaGetDeviceCount", err, errlen);
		return PGQ_CUDA_NO_DEVICE;
	}
	if (n < 1)
	{
		PGQ_ERR(err, errlen, "the CUDA driver reports no devices");
		return PGQ_CUDA_NO_DEVICE;
	}
	*count = n;
	return PGQ_CUDA_OK;
}

/* OK when there is a device to run on */
PgqCudaStatus
pgq_cuda_require_device(char *err, size_t errlen)
{
	int			n;

	return pgq_count_devices(&n, err, errlen);
}

/* the API version this module was built with */
extern "C" int
pgq_cuda_abi_version(void)
{
	return PGQ_CUDA_ABI_VERSION;
}

/* count devices; zero (or no driver) is PGQ_CUDA_NO_DEVICE */
extern "C" PgqCudaStatus
pgq_cuda_device_count(int *count, char *err, size_t errlen)
{
	PgqSignalGuard guard;

	PGQ_ERR(err, errlen, "%s", "");
	if (count == NULL)
	{
		PGQ_ERR(err, errlen, "count must not be NULL");
		return PGQ_CUDA_INVALID;
	}
	return pgq_count_devices(count, err, errlen);
}
