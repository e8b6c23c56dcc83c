/*
 * qtensor_gemm.cu: Y = X W^T with a quantized W (src/qformat.h) on the GPU,
 * for a batch of 1 to PGQ_CUDA_GEMM_MAX_BATCH vectors (GEMV at batch 1).
 *
 * Design.  Like qtensor_dequant.cu, the host checks the header and sizes,
 * then walks the rows in chunks that fit the memory limit: per chunk it
 * copies the scales, zero points and packed codes (X is copied once), one
 * kernel computes the chunk's columns of Y, and they come back with a
 * strided copy.  The weights are never written out as floats.
 *
 * Kernel: a warp per row and up to GM_VEC vectors.  Lane l takes the codes
 * l, l + 32, l + 64, ... of the row, so a warp reads consecutive bytes of
 * the packed row (coalesced at every width); each code is decoded as the C
 * reference does ((q - zero) * scale, or nf4_level[q] * scale, in fp32),
 * multiplied with the vectors' elements and summed per lane; the 32 lane
 * sums of each vector are then combined by a shuffle tree (offsets 16, 8,
 * 4, 2, 1) and lane 0 writes the results.  A block holds GM_WARPS rows; the
 * grid's y dimension walks the batch in steps of GM_VEC vectors.  NF4 levels
 * are read from the kernel's parameter space.
 *
 * The lane function and the reduction order are shared with a host
 * emulation that runs the same code in loops, so kernels/test checks the
 * planning, chunking and arithmetic on machines without a GPU.  The module
 * is built with -fmad=false, so device and emulation agree bit for bit; both
 * agree with the C reference (products summed in double) to float rounding.
 *
 * Tensors with a permutation, channel scales or outliers are refused
 * (PGQ_CUDA_INVALID): the extension keeps them on the CPU.
 */
#include "cuda_common.cuh"

#include <stdint.h>
#include <string.h>

#define GM_WARPS	4			/* rows per block */
#define GM_VEC		8			/* vectors per warp */
#define GM_ALIGN	256

typedef struct GmArgs
{
	const uint8_t *scales;		/* [rows][ngroups] fp16 or fp32 */
	const uint8_t *zeros;		/* [rows][ngroups], NULL when symmetric */
	const uint8_t *codes;		/* [rows][row_bytes] */
	const float *x;				/* [n][cols] */
	float	   *y;				/* [n][rows] of this chunk */
	uint32_t	rows;
	uint32_t	cols;
	uint32_t	n;
	uint32_t	group_len;
	uint32_t	ngroups;
	uint32_t	row_bytes;
	uint32_t	bits;
	int			sym_zero;
	int			nf4;
	int			fp16;
	float		nf4_levels[16];
} GmArgs;

static __host__ __device__ __forceinline__ float
gm_as_float(uint32_t x)
{
#ifdef __CUDA_ARCH__
	return __uint_as_float(x);
#else
	float		f;

	memcpy(&f, &x, 4);
	return f;
#endif
}

/* IEEE binary16 bits -> float (exact; the same value qt_half_to_float gives) */
static __host__ __device__ __forceinline__ float
gm_half(uint32_t h)
{
	uint32_t	sign = (h & 0x8000u) << 16;
	uint32_t	exp = (h >> 10) & 0x1f;
	uint32_t	mant = h & 0x3ff;

	if (exp == 0)
	{
		float		f = (float) mant * (1.0f / 16777216.0f);

		return sign ? -f : f;
	}
	if (exp == 31)
		return gm_as_float(sign | 0x7f800000u | (mant << 13));
	return gm_as_float(sign | ((exp + 112) << 23) | (mant << 13));
}

/* the weight at (r, j), decoded as qt_dequantize_ref does */
static __host__ __device__ __forceinline__ float
gm_weight(const GmArgs &a, uint32_t r, uint32_t j)
{
	size_t		gi = (size_t) r * a.ngroups + j / a.group_len;
	size_t		bit = (size_t) j * a.bits;
	const uint8_t *p = a.codes + (size_t) r * a.row_bytes + (bit >> 3);
	uint32_t	shift = (uint32_t) (bit & 7);
	uint32_t	v = p[0];
	uint32_t	q;
	float		s;

	if (shift + a.bits > 8)
		v |= (uint32_t) p[1] << 8;
	q = (v >> shift) & ((1u << a.bits) - 1);
	s = a.fp16 ? gm_half(((const uint16_t *) a.scales)[gi]) : ((const float *) a.scales)[gi];
	if (a.nf4)
		return a.nf4_levels[q] * s;
	return (float) ((int) q - (a.zeros ? (int) a.zeros[gi] : a.sym_zero)) * s;
}

/* lane's partial sums of row r for vectors v0 .. v0 + nv - 1 */
static __host__ __device__ __forceinline__ void
gm_lane(const GmArgs &a, uint32_t r, uint32_t v0, uint32_t nv, uint32_t lane, float *acc)
{
	for (uint32_t k = 0; k < GM_VEC; k++)
		acc[k] = 0.0f;
	for (uint32_t j = lane; j < a.cols; j += 32)
	{
		float		w = gm_weight(a, r, j);

		for (uint32_t k = 0; k < GM_VEC; k++)
			if (k < nv)
				acc[k] += w * a.x[(size_t) (v0 + k) * a.cols + j];
	}
}

static __global__ void __launch_bounds__(GM_WARPS * 32)
gm_kernel(const __grid_constant__ GmArgs a)
{
	uint32_t	lane = threadIdx.x & 31;
	uint32_t	r = blockIdx.x * GM_WARPS + (threadIdx.x >> 5);
	uint32_t	v0 = blockIdx.y * GM_VEC;
	uint32_t	nv = a.n - v0 < GM_VEC ? a.n - v0 : GM_VEC;
	float		acc[GM_VEC];

	if (r >= a.rows)
		return;					/* whole warps leave together */
	gm_lane(a, r, v0, nv, lane, acc);
	for (uint32_t k = 0; k < GM_VEC; k++)
		for (int off = 16; off > 0; off >>= 1)
			acc[k] += __shfl_down_sync(0xffffffffu, acc[k], off);
	if (lane == 0)
		for (uint32_t k = 0; k < nv; k++)
			a.y[(size_t) (v0 + k) * a.rows + r] = acc[k];
}

typedef struct GmOps
{
	cudaError_t (*alloc) (void **p, size_t n, size_t cap);
	void		(*release) (void *p);
	cudaError_t (*copy) (void *dst, const void *src, size_t n, cudaMemcpyKind kind);
	/* rows of width bytes between buffers with different pitches */
	cudaError_t (*copy2d) (void *dst, size_t dpitch, const void *src, size_t spitch, size_t width,
						   size_t height, cudaMemcpyKind kind);
	cudaError_t (*launch) (const GmArgs *a);
} GmOps;

static cudaError_t
gm_gpu_alloc(void **p, size_t n, size_t cap)
{
	cudaError_t e = cudaMalloc(p, n);

	(void) cap;
	if (e == cudaErrorMemoryAllocation)
		(void) cudaGetLastError();
	return e;
}

static void
gm_gpu_release(void *p)
{
	cudaFree(p);
}

static cudaError_t
gm_gpu_copy(void *dst, const void *src, size_t n, cudaMemcpyKind kind)
{
	return cudaMemcpy(dst, src, n, kind);
}

static cudaError_t
gm_gpu_copy2d(void *dst, size_t dpitch, const void *src, size_t spitch, size_t width, size_t height,
			  cudaMemcpyKind kind)
{
	return cudaMemcpy2D(dst, dpitch, src, spitch, width, height, kind);
}

static cudaError_t
gm_gpu_launch(const GmArgs *a)
{
	dim3		grid((a->rows + GM_WARPS - 1) / GM_WARPS, (a->n + GM_VEC - 1) / GM_VEC);

	gm_kernel<<<grid, GM_WARPS * 32>>>(*a);
	return cudaGetLastError();
}

static const GmOps gm_gpu_ops = {gm_gpu_alloc, gm_gpu_release, gm_gpu_copy, gm_gpu_copy2d, gm_gpu_launch};

static cudaError_t
gm_emu_alloc(void **p, size_t n, size_t cap)
{
	*p = (cap == 0 || n <= cap) ? malloc(n) : NULL;
	return *p ? cudaSuccess : cudaErrorMemoryAllocation;
}

static void
gm_emu_release(void *p)
{
	free(p);
}

static cudaError_t
gm_emu_copy(void *dst, const void *src, size_t n, cudaMemcpyKind kind)
{
	(void) kind;
	memcpy(dst, src, n);
	return cudaSuccess;
}

static cudaError_t
gm_emu_copy2d(void *dst, size_t dpitch, const void *src, size_t spitch, size_t width, size_t height,
			  cudaMemcpyKind kind)
{
	(void) kind;
	for (size_t i = 0; i < height; i++)
		memcpy((uint8_t *) dst + i * dpitch, (const uint8_t *) src + i * spitch, width);
	return cudaSuccess;
}

/* every warp of the grid on the host: lanes, then the same shuffle tree */
static cudaError_t
gm_emu_launch(const GmArgs *a)
{
	float		acc[32][GM_VEC];

	for (uint32_t r = 0; r < a->rows; r++)
		for (uint32_t v0 = 0; v0 < a->n; v0 += GM_VEC)
		{
			uint32_t	nv = a->n - v0 < GM_VEC ? a->n - v0 : GM_VEC;

			for (uint32_t lane = 0; lane < 32; lane++)
				gm_lane(*a, r, v0, nv, lane, acc[lane]);
			for (uint32_t k = 0; k < GM_VEC; k++)
				for (int off = 16; off > 0; off >>= 1)
					for (int lane = 0; lane < 32; lane++)
						/* __shfl_down_sync: lanes past the end read their own value */
						acc[lane][k] += lane + off < 32 ? acc[lane + off][k] : acc[lane][k];
			for (uint32_t k = 0; k < nv; k++)
				a->y[(size_t) (v0 + k) * a->rows + r] = acc[0][k];
		}
	return cudaSuccess;
}

static const GmOps gm_emu_ops = {gm_emu_alloc, gm_emu_release, gm_emu_copy, gm_emu_copy2d, gm_emu_launch};

static inline size_t
gm_align(size_t n)
{
	return (n + GM_ALIGN - 1) & ~(size_t) (GM_ALIGN - 1);
}

/* device bytes for k rows of a chunk (scales, zeros, codes, the chunk's Y) plus X */
static size_t
gm_bytes(const QtHeader *h, const QtLayout *l, size_t k, size_t n)
{
	size_t		groups = k * (size_t) l->ngroups;

	return gm_align(n * (size_t) h->cols * sizeof(float)) +
		gm_align(groups * l->scale_bytes) +
		gm_align((h->flags & QT_FLAG_ZEROS) ? groups : 0) +
		gm_align(k * l->row_bytes) +
		gm_align(n * k * sizeof(float));
}

/* the most rows per chunk under mem_limit (0: all) */
static size_t
gm_chunk_rows(const QtHeader *h, const QtLayout *l, size_t n, size_t mem_limit)
{
	size_t		lo = 1,
				hi = (size_t) h->rows;

	if (mem_limit == 0 || gm_bytes(h, l, hi, n) <= mem_limit)
		return hi;
	while (lo < hi)
	{
		size_t		mid = lo + (hi - lo + 1) / 2;

		if (gm_bytes(h, l, mid, n) <= mem_limit)
			lo = mid;
		else
			hi = mid - 1;
	}
	return lo;
}

static PgqCudaStatus
gm_run(const GmOps *ops, const uint8_t *buf, const QtHeader *h, const QtLayout *l, const float *X,
	   size_t n, float *Y, size_t mem_limit, size_t cap, char *err, size_t errlen)
{
	const size_t rows = (size_t) h->rows;
	const size_t cols = (size_t) h->cols;
	const size_t sb = l->scale_bytes;
	const size_t ngroups = (size_t) l->ngroups;
	const bool	has_zeros = (h->flags & QT_FLAG_ZEROS) != 0;
	size_t		chunk = gm_chunk_rows(h, l, n, mem_limit);
	uint8_t    *dev = NULL;
	GmArgs		a;
	PgqCudaStatus st;
	cudaError_t e;

	for (;;)
	{
		e = ops->alloc((void **) &dev, gm_bytes(h, l, chunk, n), cap);
		if (e == cudaSuccess)
			break;
		dev = NULL;
		if (e != cudaErrorMemoryAllocation || chunk == 1)
			return pgq_cuda_status(e, "allocating device memory", err, errlen);
		chunk = (chunk + 1) / 2;
	}
	memset(&a, 0, sizeof(a));
	a.x = (const float *) dev;
	a.scales = dev + gm_align(n * cols * sizeof(float));
	a.zeros = has_zeros ? a.scales + gm_align(chunk * ngroups * sb) : NULL;
	a.codes = a.scales + gm_align(chunk * ngroups * sb) + gm_align(has_zeros ? chunk * ngroups : 0);
	a.y = (float *) (a.codes + gm_align(chunk * l->row_bytes));
	a.cols = (uint32_t) cols;
	a.n = (uint32_t) n;
	a.group_len = (uint32_t) l->group_len;
	a.ngroups = (uint32_t) ngroups;
	a.row_bytes = (uint32_t) l->row_bytes;
	a.bits = h->bits;
	a.sym_zero = 1 << (h->bits - 1);
	a.nf4 = h->encoding == QT_ENC_NF4;
	a.fp16 = h->scale_type == QT_SCALE_FP16;
	memcpy(a.nf4_levels, qt_nf4_levels, sizeof(a.nf4_levels));

	e = ops->copy((void *) a.x, X, n * cols * sizeof(float), cudaMemcpyHostToDevice);
	if ((st = pgq_cuda_status(e, "copying the input vectors", err, errlen)) != PGQ_CUDA_OK)
		goto done;
	for (size_t r0 = 0; r0 < rows; r0 += chunk)
	{
		size_t		k = rows - r0 < chunk ? rows - r0 : chunk;

		a.rows = (uint32_t) k;
		e = ops->copy((void *) a.scales, buf + l->off_scales + r0 * ngroups * sb,
					  k * ngroups * sb, cudaMemcpyHostToDevice);
		if (e == cudaSuccess && has_zeros)
			e = ops->copy((void *) a.zeros, buf + l->off_zeros + r0 * ngroups, k * ngroups,
						  cudaMemcpyHostToDevice);
		if (e == cudaSuccess)
			e = ops->copy((void *) a.codes, buf + l->off_codes + r0 * l->row_bytes, k * l->row_bytes,
						  cudaMemcpyHostToDevice);
		if ((st = pgq_cuda_status(e, "copying scales and codes", err, errlen)) != PGQ_CUDA_OK)
			goto done;
		if ((st = pgq_cuda_status(ops->launch(&a), "launching the GEMM kernel", err, errlen)) != PGQ_CUDA_OK)
			goto done;
		/* Y[:, r0 .. r0 + k) of every vector; synchronous, so it reports kernel faults too */
		e = ops->copy2d(Y + r0, rows * sizeof(float), a.y, k * sizeof(float), k * sizeof(float), n,
						cudaMemcpyDeviceToHost);
		if ((st = pgq_cuda_status(e, "running the GEMM kernel", err, errlen)) != PGQ_CUDA_OK)
			goto done;
	}
	st = PGQ_CUDA_OK;
done:
	ops->release(dev);
	return st;
}

/* the checks that need no device */
static PgqCudaStatus
gm_check_args(const uint8_t *buf, size_t qt_bytes, const float *X, int n, float *Y, size_t mem_limit,
			  QtHeader *h, QtLayout *l, char *err, size_t errlen)
{
	char		qerr[QT_ERRMSG_LEN];

	if (buf == NULL || X == NULL || Y == NULL)
	{
		PGQ_ERR(err, errlen, "qtensor, input and output buffers must not be NULL");
		return PGQ_CUDA_INVALID;
	}
	if (n < 1 || n > PGQ_CUDA_GEMM_MAX_BATCH)
	{
		PGQ_ERR(err, errlen, "the batch must have 1 to %d vectors, got %d", PGQ_CUDA_GEMM_MAX_BATCH, n);
		return PGQ_CUDA_INVALID;
	}
	if (qt_bytes < QT_HEADER_SIZE)
	{
		PGQ_ERR(err, errlen, "a qtensor has at least %d bytes, got %zu", QT_HEADER_SIZE, qt_bytes);
		return PGQ_CUDA_INVALID;
	}
	memcpy(h, buf, sizeof(*h));
	if (qt_check_header(h, qerr) != QT_OK || qt_layout(h, l, qerr) != QT_OK)
	{
		PGQ_ERR(err, errlen, "invalid qtensor header: %s", qerr);
		return PGQ_CUDA_INVALID;
	}
	if (qt_bytes < l->total)
	{
		PGQ_ERR(err, errlen, "qtensor buffer has %zu bytes, its header needs %zu", qt_bytes, l->total);
		return PGQ_CUDA_INVALID;
	}
	if ((h->flags & (QT_FLAG_PERM | QT_FLAG_CHSCALE)) || h->n_outliers > 0)
	{
		PGQ_ERR(err, errlen, "the GEMM kernel takes tensors without permutation, channel scales or outliers");
		return PGQ_CUDA_INVALID;
	}
	if (mem_limit > 0 && gm_bytes(h, l, 1, (size_t) n) > mem_limit)
	{
		PGQ_ERR(err, errlen, "one row with %d vectors of %d columns needs %zu bytes of device memory, the limit is %zu",
				n, h->cols, gm_bytes(h, l, 1, (size_t) n), mem_limit);
		return PGQ_CUDA_OUT_OF_MEMORY;
	}
	return PGQ_CUDA_OK;
}

extern "C" PgqCudaStatus
pgq_cuda_gemm(const void *qt, size_t qt_bytes, const float *X, int n, float *Y, size_t mem_limit,
			  char *err, size_t errlen)
{
	PgqSignalGuard guard;
	QtHeader	h;
	QtLayout	l;
	PgqCudaStatus st;

	PGQ_ERR(err, errlen, "%s", "");
	st = gm_check_args((const uint8_t *) qt, qt_bytes, X, n, Y, mem_limit, &h, &l, err, errlen);
	if (st == PGQ_CUDA_OK)
		st = pgq_cuda_require_device(err, errlen);
	if (st == PGQ_CUDA_OK)
	{
		(void) cudaGetLastError();
		st = gm_run(&gm_gpu_ops, (const uint8_t *) qt, &h, &l, X, (size_t) n, Y, mem_limit, 0, err, errlen);
	}
	return st;
}

extern "C" PgqCudaStatus
pgq_cuda_gemm_emulated(const void *qt, size_t qt_bytes, const float *X, int n, float *Y,
					   size_t mem_limit, size_t alloc_cap, char *err, size_t errlen)
{
	QtHeader	h;
	QtLayout	l;
	PgqCudaStatus st;

	PGQ_ERR(err, errlen, "%s", "");
	st = gm_check_args((const uint8_t *) qt, qt_bytes, X, n, Y, mem_limit, &h, &l, err, errlen);
	if (st == PGQ_CUDA_OK)
		st = gm_run(&gm_emu_ops, (const uint8_t *) qt, &h, &l, X, (size_t) n, Y, mem_limit, alloc_cap,
					err, errlen);
	return st;
}
