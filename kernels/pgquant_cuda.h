/*
 * pgquant_cuda.h: the C API of the optional CUDA module pgquant_cuda.so.
 *
 * The extension (src/gpu.c) loads the module on first GPU use and calls
 * these functions only; the standalone tests in kernels/test link them
 * directly.  Usable from C and CUDA, never includes postgres.h.
 *
 * Every function returns a status and never aborts: errors, a missing
 * driver and an exhausted device come back as codes with a message in
 * err (always NUL-terminated when errlen > 0).  Arguments are checked
 * before the device is touched, so PGQ_CUDA_INVALID needs no GPU.
 */
#ifndef PGQUANT_CUDA_H
#define PGQUANT_CUDA_H

#include <stddef.h>

#ifdef __cplusplus
extern "C"
{
#endif

/* bumped whenever a signature below changes; gpu.c refuses a mismatch */
#define PGQ_CUDA_ABI_VERSION 2

#if defined(__GNUC__)
#define PGQ_CUDA_API __attribute__((visibility("default")))
#else
#define PGQ_CUDA_API
#endif

typedef enum PgqCudaStatus
{
	PGQ_CUDA_OK = 0,
	PGQ_CUDA_NO_DEVICE,			/* no device, no driver, or a driver too old */
	PGQ_CUDA_OUT_OF_MEMORY,		/* device allocation failed or limit too small */
	PGQ_CUDA_INVALID,			/* malformed arguments or qtensor header */
	PGQ_CUDA_ERROR				/* any other CUDA failure */
} PgqCudaStatus;

/* PGQ_CUDA_ABI_VERSION as compiled into the module */
PGQ_CUDA_API int pgq_cuda_abi_version(void);

/*
 * Number of usable CUDA devices in *count.  Zero devices (or no driver)
 * gives PGQ_CUDA_NO_DEVICE with *count = 0 and the reason in err.
 */
PGQ_CUDA_API PgqCudaStatus pgq_cuda_device_count(int *count, char *err, size_t errlen);

/*
 * Decode a whole qtensor on device 0.
 *
 *   qt         the qtensor buffer as laid out in src/qformat.h (QtHeader at
 *              offset 0; vl_len is ignored); its body must have passed
 *              qt_check_body (the kernel still never writes out of bounds)
 *   qt_bytes   the buffer's size; must be >= the layout's total
 *   out        rows * cols floats, row-major in the original column order,
 *              bit-identical to qt_dequantize_ref(qt, l, 0, rows, out)
 *   mem_limit  most device bytes to allocate at once, 0 for no limit; the
 *              rows are decoded in chunks that fit
 *
 * On any status but PGQ_CUDA_OK the contents of out are unspecified.
 */
PGQ_CUDA_API PgqCudaStatus pgq_cuda_dequantize(const void *qt, size_t qt_bytes, float *out,
											   size_t mem_limit, char *err, size_t errlen);

/*
 * For kernels/test only, not exported from the module: the same decoder
 * with host memory standing in for the device and the element function run
 * in a loop, so the driver logic is tested without a GPU.  alloc_cap makes
 * "device" allocations above that many bytes fail like cudaMalloc (0: none).
 */
PgqCudaStatus pgq_cuda_dequantize_emulated(const void *qt, size_t qt_bytes, float *out,
										   size_t mem_limit, size_t alloc_cap,
										   char *err, size_t errlen);

/* the most vectors one pgq_cuda_gemm call takes */
#define PGQ_CUDA_GEMM_MAX_BATCH 4096

/*
 * Y = X W^T on device 0, W the qtensor (rows x cols), X n vectors of cols
 * floats (row-major [n][cols]), Y [n][rows]: y = W x for each vector, the
 * weights decoded as qt_dequantize_ref decodes them and never stored as
 * floats.  1 <= n <= PGQ_CUDA_GEMM_MAX_BATCH.  Tensors with a permutation,
 * channel scales or outliers are PGQ_CUDA_INVALID.  Rows are processed in
 * chunks that fit mem_limit (0: no limit); X is copied once.
 */
PGQ_CUDA_API PgqCudaStatus pgq_cuda_gemm(const void *qt, size_t qt_bytes, const float *X, int n, float *Y,
										 size_t mem_limit, char *err, size_t errlen);

/* for kernels/test only: the same on the host, as pgq_cuda_dequantize_emulated */
PgqCudaStatus pgq_cuda_gemm_emulated(const void *qt, size_t qt_bytes, const float *X, int n, float *Y,
									 size_t mem_limit, size_t alloc_cap, char *err, size_t errlen);

/* function pointer types, for loaders */
typedef int (*PgqCudaAbiVersionFn) (void);
typedef PgqCudaStatus (*PgqCudaDeviceCountFn) (int *count, char *err, size_t errlen);
typedef PgqCudaStatus (*PgqCudaDequantizeFn) (const void *qt, size_t qt_bytes, float *out,
											  size_t mem_limit, char *err, size_t errlen);
typedef PgqCudaStatus (*PgqCudaGemmFn) (const void *qt, size_t qt_bytes, const float *X, int n, float *Y,
										size_t mem_limit, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif							/* PGQUANT_CUDA_H */
