/*
 * qtensor_dequant.cu: decode a qtensor (src/qformat.h) on the GPU.
 *
 * Design.  The host validates the header with qt_check_header/qt_layout and
 * checks that the buffer holds layout.total bytes before touching the device.
 * Rows are then decoded in chunks that fit the caller's memory limit (one
 * chunk when there is none): per chunk the host copies the chunk's scales,
 * zero points and packed codes, one kernel writes the chunk's rows of the
 * output in the original column order, and the rows come back to the host.
 * Channel scales and the permutation are copied once.  Outliers are few and
 * overwrite whole values, so the host applies them after the last chunk.
 *
 * Kernel: one thread per output element over a flat grid-stride index, so
 * consecutive threads handle consecutive stored columns of a row and the
 * stores are coalesced whenever there is no permutation, at any width.  A
 * thread reads its b-bit code straight from the packed bytes (at most two
 * bytes, LSB first), its group's scale and zero point, and follows
 * qt_dequantize_ref's arithmetic exactly: fp32 (q - zero) * scale or
 * nf4_level[q] * scale with __fmul_rn, then the IEEE division
 * __fdiv_rn(v, chscale[c]) by the original column's channel scale.  The _rn
 * intrinsics cannot be contracted into FMAs, and the build also passes
 * -fmad=false -ftz=false -prec-div=true, so the result is bit-identical to
 * the C reference.
 *
 * The driver code runs on a small table of memory and launch operations.
 * Besides the CUDA one there is a host one that runs the same element
 * function in a loop, so kernels/test checks the planning, chunking and
 * decoding bit for bit even on machines without a GPU.
 */
#include "cuda_common.cuh"

#include <stdint.h>
#include <string.h>

#define DQ_THREADS		256
#define DQ_MAX_BLOCKS	(1u << 20)
#define DQ_ALIGN		256		/* sub-buffer alignment inside the one allocation */

/* what one kernel launch decodes: rows of one chunk */
typedef struct DqArgs
{
	const uint8_t *scales;		/* [rows][ngroups] fp16 or fp32 */
	const uint8_t *zeros;		/* [rows][ngroups], NULL when symmetric */
	const float *chscale;		/* [cols] by original column, or NULL */
	const int32_t *perm;		/* [cols] stored -> original column, or NULL */
	const uint8_t *codes;		/* [rows][row_bytes] */
	float	   *out;			/* [rows][cols] original column order */
	uint32_t	rows;
	uint32_t	cols;
	uint32_t	group_len;
	uint32_t	ngroups;
	uint32_t	row_bytes;
	uint32_t	bits;
	int			sym_zero;		/* implicit zero point 1 << (bits - 1) */
	int			nf4;
	int			fp16;
	float		nf4_levels[16];
} DqArgs;

/* IEEE fp32 multiply, never contracted into an FMA */
static __host__ __device__ __forceinline__ float
dq_mul(float a, float b)
{
#ifdef __CUDA_ARCH__
	return __fmul_rn(a, b);
#else
	return a * b;
#endif
}

/* IEEE fp32 division, correctly rounded like C's v / chscale[c] */
static __host__ __device__ __forceinline__ float
dq_div(float a, float b)
{
#ifdef __CUDA_ARCH__
	return __fdiv_rn(a, b);
#else
	return a / b;
#endif
}

/* reinterpret bits as a float */
static __host__ __device__ __forceinline__ float
dq_as_float(uint32_t x)
{
#ifdef __CUDA_ARCH__
	return __uint_as_float(x);
#else
	float		f;

	memcpy(&f, &x, 4);
	return f;
#endif
}

/* reinterpret a float as bits */
static __host__ __device__ __forceinline__ uint32_t
dq_as_bits(float f)
{
#ifdef __CUDA_ARCH__
	return __float_as_uint(f);
#else
	uint32_t	x;

	memcpy(&x, &f, 4);
	return x;
#endif
}

/* IEEE binary16 bits -> float, the same steps as qt_half_to_float */
static __host__ __device__ __forceinline__ float
dq_half_to_float(uint32_t h)
{
	uint32_t	sign = (h & 0x8000u) << 16;
	uint32_t	exp = (h >> 10) & 0x1f;
	uint32_t	mant = h & 0x3ff;

	if (exp == 0)				/* zero or subnormal: mant * 2^-24 is exact */
		return dq_as_float(dq_as_bits(dq_mul((float) mant, 1.0f / 16777216.0f)) | sign);
	if (exp == 31)
		return dq_as_float(sign | 0x7f800000u | (mant << 13));
	return dq_as_float(sign | ((exp + 112) << 23) | (mant << 13));
}

/* decode element i (row-major over the chunk's stored columns) into a.out */
static __host__ __device__ __forceinline__ void
dq_element(const DqArgs &a, uint32_t i)
{
	uint32_t	r = i / a.cols;
	uint32_t	j = i - r * a.cols;
	size_t		gi = (size_t) r * a.ngroups + j / a.group_len;
	size_t		bit = (size_t) j * a.bits;
	const uint8_t *p = a.codes + (size_t) r * a.row_bytes + (bit >> 3);
	uint32_t	shift = (uint32_t) (bit & 7);
	uint32_t	v = p[0];
	uint32_t	q;
	uint32_t	c;
	float		s;
	float		x;

	if (shift + a.bits > 8)
		v |= (uint32_t) p[1] << 8;
	q = (v >> shift) & ((1u << a.bits) - 1);
	s = a.fp16 ? dq_half_to_float(((const uint16_t *) a.scales)[gi])
		: ((const float *) a.scales)[gi];
	if (a.nf4)
		x = dq_mul(a.nf4_levels[q], s);
	else
		x = dq_mul((float) ((int) q - (a.zeros ? (int) a.zeros[gi] : a.sym_zero)), s);
	c = a.perm ? (uint32_t) a.perm[j] : j;
	if (c >= a.cols)
		return;					/* only a body that failed qt_check_body gets here */
	if (a.chscale)
		x = dq_div(x, a.chscale[c]);
	a.out[(size_t) r * a.cols + c] = x;
}

/* grid-stride over the chunk; __grid_constant__ lets nf4_levels be indexed in place */
static __global__ void __launch_bounds__(DQ_THREADS)
dq_kernel(const __grid_constant__ DqArgs a)
{
	const uint32_t n = a.rows * a.cols;

	for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x)
		dq_element(a, i);
}

/*
 * Memory and launch operations of one decoder: the CUDA device, or host
 * memory for the emulation the tests run on machines without a GPU.
 */
typedef struct DqOps
{
	cudaError_t (*alloc) (void **p, size_t n, size_t cap);
	void		(*release) (void *p);
	cudaError_t (*copy) (void *dst, const void *src, size_t n, cudaMemcpyKind kind);
	cudaError_t (*launch) (const DqArgs *a);
} DqOps;

/* device allocation; cap is for the emulation only */
static cudaError_t
dq_gpu_alloc(void **p, size_t n, size_t cap)
{
	cudaError_t e = cudaMalloc(p, n);

	(void) cap;
	if (e == cudaErrorMemoryAllocation)
		(void) cudaGetLastError();	/* not sticky: clear it before a retry */
	return e;
}

/* free device memory (NULL is fine) */
static void
dq_gpu_release(void *p)
{
	cudaFree(p);
}

/* launch the kernel over one chunk; launch errors come back at once */
static cudaError_t
dq_gpu_launch(const DqArgs *a)
{
	size_t		n = (size_t) a->rows * a->cols;
	size_t		blocks = (n + DQ_THREADS - 1) / DQ_THREADS;

	dq_kernel<<<(unsigned) (blocks < DQ_MAX_BLOCKS ? blocks : DQ_MAX_BLOCKS), DQ_THREADS>>>(*a);
	return cudaGetLastError();
}

/* copy between host and device */
static cudaError_t
dq_gpu_copy(void *dst, const void *src, size_t n, cudaMemcpyKind kind)
{
	return cudaMemcpy(dst, src, n, kind);
}

static const DqOps dq_gpu_ops = {dq_gpu_alloc, dq_gpu_release, dq_gpu_copy, dq_gpu_launch};

/* host "device" memory, failing like cudaMalloc above cap bytes (0: no cap) */
static cudaError_t
dq_emu_alloc(void **p, size_t n, size_t cap)
{
	*p = (cap == 0 || n <= cap) ? malloc(n) : NULL;
	return *p ? cudaSuccess : cudaErrorMemoryAllocation;
}

/* free emulated device memory */
static void
dq_emu_release(void *p)
{
	free(p);
}

/* emulated copies are plain memcpy */
static cudaError_t
dq_emu_copy(void *dst, const void *src, size_t n, cudaMemcpyKind kind)
{
	(void) kind;
	memcpy(dst, src, n);
	return cudaSuccess;
}

/* run the element function over the chunk on the host */
static cudaError_t
dq_emu_launch(const DqArgs *a)
{
	for (uint32_t i = 0; i < a->rows * a->cols; i++)
		dq_element(*a, i);
	return cudaSuccess;
}

static const DqOps dq_emu_ops = {dq_emu_alloc, dq_emu_release, dq_emu_copy, dq_emu_launch};

/* round up to the sub-buffer alignment */
static inline size_t
dq_align(size_t n)
{
	return (n + DQ_ALIGN - 1) & ~(size_t) (DQ_ALIGN - 1);
}

/* device bytes of the buffers copied once: channel scales and permutation */
static size_t
dq_fixed_bytes(const QtHeader *h)
{
	size_t		cols = (size_t) h->cols;

	return dq_align((h->flags & QT_FLAG_CHSCALE) ? cols * sizeof(float) : 0) +
		dq_align((h->flags & QT_FLAG_PERM) ? cols * sizeof(int32_t) : 0);
}

/* device bytes one row needs in a chunk: scales, zero points, codes, output */
static size_t
dq_row_bytes(const QtHeader *h, const QtLayout *l)
{
	size_t		ngroups = (size_t) l->ngroups;

	return ngroups * l->scale_bytes + ((h->flags & QT_FLAG_ZEROS) ? ngroups : 0) +
		l->row_bytes + (size_t) h->cols * sizeof(float);
}

/* device bytes the per-chunk buffers take for k rows */
static size_t
dq_chunk_bytes(const QtHeader *h, const QtLayout *l, size_t k)
{
	size_t		groups = k * (size_t) l->ngroups;

	return dq_align(groups * l->scale_bytes) +
		dq_align((h->flags & QT_FLAG_ZEROS) ? groups : 0) +
		dq_align(k * l->row_bytes) +
		dq_align(k * (size_t) h->cols * sizeof(float));
}

/* rows per chunk under mem_limit (0: all); the caller checked that one row fits */
static size_t
dq_chunk_rows(const QtHeader *h, const QtLayout *l, size_t mem_limit)
{
	size_t		avail,
				k;

	if (mem_limit == 0)
		return (size_t) h->rows;
	/* alignment adds less than DQ_ALIGN to each of the four chunk buffers */
	avail = mem_limit - dq_fixed_bytes(h);
	k = avail > 4 * DQ_ALIGN ? (avail - 4 * DQ_ALIGN) / dq_row_bytes(h, l) : 0;
	return k < 1 ? 1 : k > (size_t) h->rows ? (size_t) h->rows : k;
}

/*
 * Decode on the device the ops drive, once the header and sizes are checked.
 * cap only limits the emulation's allocations (to test the retry path).
 */
static PgqCudaStatus
dq_run(const DqOps *ops, const uint8_t *buf, const QtHeader *h, const QtLayout *l, float *out,
	   size_t mem_limit, size_t cap, char *err, size_t errlen)
{
	const size_t rows = (size_t) h->rows;
	const size_t cols = (size_t) h->cols;
	const size_t sb = l->scale_bytes;
	const size_t ngroups = (size_t) l->ngroups;
	const bool	has_zeros = (h->flags & QT_FLAG_ZEROS) != 0;
	const size_t chs_bytes = (h->flags & QT_FLAG_CHSCALE) ? cols * sizeof(float) : 0;
	const size_t perm_bytes = (h->flags & QT_FLAG_PERM) ? cols * sizeof(int32_t) : 0;
	const size_t fixed = dq_fixed_bytes(h);
	size_t		chunk = dq_chunk_rows(h, l, mem_limit);
	uint8_t    *dev = NULL;
	DqArgs		a;
	PgqCudaStatus st;
	cudaError_t e;

	/* one allocation; halve the chunk while the device says it is too big */
	for (;;)
	{
		e = ops->alloc((void **) &dev, fixed + dq_chunk_bytes(h, l, chunk), cap);
		if (e == cudaSuccess)
			break;
		dev = NULL;
		if (e != cudaErrorMemoryAllocation || chunk == 1)
			return pgq_cuda_status(e, "allocating device memory", err, errlen);
		chunk = (chunk + 1) / 2;
	}

	memset(&a, 0, sizeof(a));
	a.chscale = chs_bytes ? (const float *) dev : NULL;
	a.perm = perm_bytes ? (const int32_t *) (dev + dq_align(chs_bytes)) : NULL;
	a.scales = dev + fixed;
	a.zeros = has_zeros ? a.scales + dq_align(chunk * ngroups * sb) : NULL;
	a.codes = a.scales + dq_align(chunk * ngroups * sb) + dq_align(has_zeros ? chunk * ngroups : 0);
	a.out = (float *) (a.codes + dq_align(chunk * l->row_bytes));
	a.cols = (uint32_t) cols;
	a.group_len = (uint32_t) l->group_len;
	a.ngroups = (uint32_t) ngroups;
	a.row_bytes = (uint32_t) l->row_bytes;
	a.bits = h->bits;
	a.sym_zero = 1 << (h->bits - 1);
	a.nf4 = h->encoding == QT_ENC_NF4;
	a.fp16 = h->scale_type == QT_SCALE_FP16;
	memcpy(a.nf4_levels, qt_nf4_levels, sizeof(a.nf4_levels));

	e = cudaSuccess;
	if (chs_bytes)
		e = ops->copy((void *) a.chscale, buf + l->off_chscale, chs_bytes, cudaMemcpyHostToDevice);
	if (e == cudaSuccess && perm_bytes)
		e = ops->copy((void *) a.perm, buf + l->off_perm, perm_bytes, cudaMemcpyHostToDevice);
	if ((st = pgq_cuda_status(e, "copying channel scales and permutation", err, errlen)) != PGQ_CUDA_OK)
		goto done;

	for (size_t r0 = 0; r0 < rows; r0 += chunk)
	{
		size_t		k = rows - r0 < chunk ? rows - r0 : chunk;

		a.rows = (uint32_t) k;
		e = ops->copy((void *) a.scales, buf + l->off_scales + r0 * ngroups * sb,
					  k * ngroups * sb, cudaMemcpyHostToDevice);
		if (e == cudaSuccess && has_zeros)
			e = ops->copy((void *) a.zeros, buf + l->off_zeros + r0 * ngroups,
						  k * ngroups, cudaMemcpyHostToDevice);
		if (e == cudaSuccess)
			e = ops->copy((void *) a.codes, buf + l->off_codes + r0 * l->row_bytes,
						  k * l->row_bytes, cudaMemcpyHostToDevice);
		if ((st = pgq_cuda_status(e, "copying scales and codes", err, errlen)) != PGQ_CUDA_OK)
			goto done;
		if ((st = pgq_cuda_status(ops->launch(&a), "launching the dequantize kernel",
								  err, errlen)) != PGQ_CUDA_OK)
			goto done;
		/* a synchronous copy: it also reports errors raised while the kernel ran */
		e = ops->copy(out + r0 * cols, a.out, k * cols * sizeof(float), cudaMemcpyDeviceToHost);
		if ((st = pgq_cuda_status(e, "running the dequantize kernel", err, errlen)) != PGQ_CUDA_OK)
			goto done;
	}

	/* outliers replace decoded values, as in qt_dequantize_ref */
	for (int32_t i = 0; i < h->n_outliers; i++)
	{
		QtOutlier	o;

		memcpy(&o, buf + l->off_outliers + (size_t) i * sizeof(QtOutlier), sizeof(o));
		if (o.row < rows && o.col < cols)
			out[(size_t) o.row * cols + o.col] = o.value;
	}
	st = PGQ_CUDA_OK;

done:
	ops->release(dev);
	return st;
}

/* the checks that need no device; fills h and l */
static PgqCudaStatus
dq_check_args(const uint8_t *buf, size_t qt_bytes, const float *out, size_t mem_limit,
			  QtHeader *h, QtLayout *l, char *err, size_t errlen)
{
	char		qerr[QT_ERRMSG_LEN];

	if (buf == NULL || out == NULL)
	{
		PGQ_ERR(err, errlen, "qtensor and output buffers must not be NULL");
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
	if (mem_limit > 0 && dq_fixed_bytes(h) + dq_chunk_bytes(h, l, 1) > mem_limit)
	{
		PGQ_ERR(err, errlen, "decoding one row of %d columns needs %zu bytes of device memory, the limit is %zu",
				h->cols, dq_fixed_bytes(h) + dq_chunk_bytes(h, l, 1), mem_limit);
		return PGQ_CUDA_OUT_OF_MEMORY;
	}
	return PGQ_CUDA_OK;
}

/* check everything that needs no device, then decode on device 0 */
extern "C" PgqCudaStatus
pgq_cuda_dequantize(const void *qt, size_t qt_bytes, float *out, size_t mem_limit,
					char *err, size_t errlen)
{
	PgqSignalGuard guard;
	QtHeader	h;
	QtLayout	l;
	PgqCudaStatus st;

	PGQ_ERR(err, errlen, "%s", "");
	st = dq_check_args((const uint8_t *) qt, qt_bytes, out, mem_limit, &h, &l, err, errlen);
	if (st == PGQ_CUDA_OK)
		st = pgq_cuda_require_device(err, errlen);
	if (st == PGQ_CUDA_OK)
	{
		(void) cudaGetLastError();	/* start from a clean error state */
		st = dq_run(&dq_gpu_ops, (const uint8_t *) qt, &h, &l, out, mem_limit, 0, err, errlen);
	}
	return st;
}

/* the same decoder on the host, for tests (see pgquant_cuda.h) */
extern "C" PgqCudaStatus
pgq_cuda_dequantize_emulated(const void *qt, size_t qt_bytes, float *out, size_t mem_limit,
							 size_t alloc_cap, char *err, size_t errlen)
{
	QtHeader	h;
	QtLayout	l;
	PgqCudaStatus st;

	PGQ_ERR(err, errlen, "%s", "");
	st = dq_check_args((const uint8_t *) qt, qt_bytes, out, mem_limit, &h, &l, err, errlen);
	if (st == PGQ_CUDA_OK)
		st = dq_run(&dq_emu_ops, (const uint8_t *) qt, &h, &l, out, mem_limit, alloc_cap, err, errlen);
	return st;
}
