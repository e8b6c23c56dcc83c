/*
 * qgemv.c: the reference product, the portable fused kernels, the tile
 * path over OpenBLAS, and the choice of instruction set (see qgemv.h).
 */
#include "qgemv.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>

/*
 * Floats in one decoded tile of rows.  For a few vectors, small tiles (256 KB)
 * stay in L2 and OpenBLAS multiplies them without packing; for many vectors,
 * larger tiles (2 MB) amortize the packing of X that every sgemm call does
 * (tests/bench/bench_qgemv.c measured both).
 */
#define QK_TILE_FLOATS_FEW (64 * 1024)
#define QK_TILE_FLOATS_MANY (512 * 1024)
#define QK_TILE_FEW_MAX 8

static const char *const isa_names[QK_ISA_COUNT] = {"ref", "generic", "avx2", "avx512"};

static bool isa_ok[QK_ISA_COUNT];
static bool isa_probed = false;
static QkIsa isa_current = QK_ISA_GENERIC;

void
qk_init(void)
{
	if (isa_probed)
		return;
	isa_ok[QK_ISA_REF] = true;
	isa_ok[QK_ISA_GENERIC] = true;
	isa_ok[QK_ISA_AVX2] = qk_cpu_has_avx2();
	isa_ok[QK_ISA_AVX512] = qk_cpu_has_avx512();
	isa_probed = true;
	isa_current = qk_isa_best();
}

bool
qk_isa_supported(QkIsa isa)
{
	qk_init();
	return isa >= 0 && isa < QK_ISA_COUNT && isa_ok[isa];
}

QkIsa
qk_isa_best(void)
{
	qk_init();
	return isa_ok[QK_ISA_AVX512] ? QK_ISA_AVX512 : isa_ok[QK_ISA_AVX2] ? QK_ISA_AVX2 : QK_ISA_GENERIC;
}

const char *
qk_isa_name(QkIsa isa)
{
	return isa >= 0 && isa < QK_ISA_COUNT ? isa_names[isa] : "unknown";
}

int
qk_isa_from_name(const char *name)
{
	for (int i = 0; i < QK_ISA_COUNT; i++)
		if (strcmp(name, isa_names[i]) == 0)
			return i;
	return -1;
}

QkIsa
qk_isa_active(void)
{
	qk_init();
	return isa_current;
}

void
qk_set_isa(QkIsa isa)
{
	qk_init();
	if (qk_isa_supported(isa))
		isa_current = isa;
}

bool
qk_fused_ok(const QtHeader *h, const QtLayout *l)
{
	return !(h->flags & (QT_FLAG_PERM | QT_FLAG_CHSCALE)) && h->n_outliers == 0 &&
		(l->ngroups == 1 || l->group_len % 8 == 0);
}

/* rows per decoded tile */
static int64_t
tile_rows(const QtHeader *h, int64_t n)
{
	int64_t		t = (n <= QK_TILE_FEW_MAX ? QK_TILE_FLOATS_FEW : QK_TILE_FLOATS_MANY) / h->cols;

	if (t < 1)
		t = 1;
	return t < h->rows ? t : h->rows;
}

size_t
qk_work_bytes(const QtHeader *h, const QtLayout *l, int64_t n)
{
	size_t		xsum = (size_t) l->ngroups * sizeof(float);
	size_t		tile = (size_t) tile_rows(h, n) * (size_t) h->cols * sizeof(float);
	/* the reference needs one row; the fused path the group sums; the tile path a tile */
	if (tile < (size_t) h->cols * sizeof(float))
		tile = (size_t) h->cols * sizeof(float);
	return (xsum > tile ? xsum : tile) + 64;
}

/* Reference: every row decoded by qt_dequantize_ref, products summed in double. */
void
qk_gemv_ref(const uint8_t *buf, const QtLayout *l, const float *x, double *y, float *work)
{
	const QtHeader *h = (const QtHeader *) buf;

	for (int64_t r = 0; r < h->rows; r++)
	{
		double		acc = 0.0;

		qt_dequantize_ref(buf, l, r, r + 1, work);
		for (int64_t c = 0; c < h->cols; c++)
			acc += (double) work[c] * (double) x[c];
		y[r] = acc;
	}
}

/* sums of x over each group of a row, in double rounded once */
static void
group_sums(const QtHeader *h, const QtLayout *l, const float *x, float *xsum)
{
	for (int64_t g = 0; g < l->ngroups; g++)
	{
		int64_t		j0 = g * l->group_len;
		int64_t		n = qt_group_len(l, h->cols, g);
		double		s = 0.0;

		for (int64_t j = 0; j < n; j++)
			s += x[j0 + j];
		xsum[g] = (float) s;
	}
}

/* ---- portable fused kernels ------------------------------------------- */

/*
 * Row r of an int tensor with B-bit codes: per group, 8 codes come from B
 * bytes at a time; the group's dot with x is scaled once, and the zero point
 * enters through the group's sum of x.
 */
#define DEFINE_GENERIC_INT(B) \
static void \
generic_rows_int##B(const uint8_t *buf, const QtLayout *l, const float *x, \
					const float *xsum, int64_t r0, int64_t r1, float *y) \
{ \
	const QtHeader *h = (const QtHeader *) buf; \
	const bool	zeros = (h->flags & QT_FLAG_ZEROS) != 0; \
	const float sym_zero = (float) (1 << (B - 1)); \
\
	for (int64_t r = r0; r < r1; r++) \
	{ \
		const uint8_t *row = buf + l->off_codes + (size_t) r * l->row_bytes; \
		float		acc = 0.0f; \
\
		if (qt_interrupt_hook) \
			qt_interrupt_hook(); \
		for (int64_t g = 0; g < l->ngroups; g++) \
		{ \
			int64_t		gi = r * l->ngroups + g; \
			int64_t		j0 = g * l->group_len; \
			int64_t		n = qt_group_len(l, h->cols, g); \
			float		s = qt_get_scale(buf, l, gi); \
			float		z = zeros ? (float) buf[l->off_zeros + gi] : sym_zero; \
			const uint8_t *p = row + (j0 / 8) * B; \
			const float *xg = x + j0; \
			float		d[8] = {0}; \
			float		dot; \
			int64_t		i = 0; \
\
			for (; i + 8 <= n; i += 8, p += B) \
			{ \
				uint64_t	v = qk_load_bytes(p, B); \
\
				for (int k = 0; k < 8; k++) \
					d[k] += (float) ((v >> (k * B)) & ((1u << B) - 1)) * xg[i + k]; \
			} \
			dot = ((d[0] + d[1]) + (d[2] + d[3])) + ((d[4] + d[5]) + (d[6] + d[7])); \
			for (; i < n; i++) \
				dot += (float) qt_code_at(row, j0 + i, B) * xg[i]; \
			acc += s * (dot - z * xsum[g]); \
		} \
		y[r] = acc; \
	} \
}

DEFINE_GENERIC_INT(2)
DEFINE_GENERIC_INT(3)
DEFINE_GENERIC_INT(4)
DEFINE_GENERIC_INT(5)
DEFINE_GENERIC_INT(6)
DEFINE_GENERIC_INT(7)
DEFINE_GENERIC_INT(8)

static void
generic_rows_nf4(const uint8_t *buf, const QtLayout *l, const float *x,
				 const float *xsum, int64_t r0, int64_t r1, float *y)
{
	const QtHeader *h = (const QtHeader *) buf;

	(void) xsum;
	for (int64_t r = r0; r < r1; r++)
	{
		const uint8_t *row = buf + l->off_codes + (size_t) r * l->row_bytes;
		float		acc = 0.0f;

		if (qt_interrupt_hook)
			qt_interrupt_hook();
		for (int64_t g = 0; g < l->ngroups; g++)
		{
			int64_t		j0 = g * l->group_len;
			int64_t		n = qt_group_len(l, h->cols, g);
			float		s = qt_get_scale(buf, l, r * l->ngroups + g);
			const uint8_t *p = row + j0 / 2;
			const float *xg = x + j0;
			float		d0 = 0.0f,
						d1 = 0.0f,
						dot;
			int64_t		i = 0;

			for (; i + 2 <= n; i += 2, p++)
			{
				d0 += qt_nf4_levels[*p & 15] * xg[i];
				d1 += qt_nf4_levels[*p >> 4] * xg[i + 1];
			}
			dot = d0 + d1;
			for (; i < n; i++)
				dot += qt_nf4_levels[qt_code_at(row, j0 + i, 4)] * xg[i];
			acc += s * dot;
		}
		y[r] = acc;
	}
}

QkRowsFn
qk_rows_generic(const QtHeader *h)
{
	static const QkRowsFn ints[QT_MAX_BITS + 1] = {
		NULL, NULL, generic_rows_int2, generic_rows_int3, generic_rows_int4,
		generic_rows_int5, generic_rows_int6, generic_rows_int7, generic_rows_int8
	};

	if (h->encoding == QT_ENC_NF4)
		return generic_rows_nf4;
	return ints[h->bits];
}

/* ---- dispatch ------------------------------------------------------------ */

static QkRowsFn
rows_fn(QkIsa isa, const QtHeader *h)
{
	QkRowsFn	fn = NULL;

	if (isa == QK_ISA_AVX512)
		fn = qk_rows_avx512(h);
	if (fn == NULL && (isa == QK_ISA_AVX512 || isa == QK_ISA_AVX2))
		fn = qk_rows_avx2(h);
	if (fn == NULL)
		fn = qk_rows_generic(h);
	return fn;
}

static void *
align64(void *p)
{
	return (void *) (((uintptr_t) p + 63) & ~(uintptr_t) 63);
}

/* Y[n][rows] = X W^T through decoded tiles: sgemv for one vector, sgemm for more */
static void
tile_gemm(QkIsa isa, const uint8_t *buf, const QtLayout *l, const float *X, int64_t n, float *Y,
		  float *tile)
{
	const QtHeader *h = (const QtHeader *) buf;
	int64_t		tr = tile_rows(h, n);
	bool		reference = isa == QK_ISA_REF;
	QkDecodeFn	decode = NULL;

	/* the SIMD decoders give the reference's bits, only faster */
	if (qk_fused_ok(h, l))
	{
		if (isa == QK_ISA_AVX512)
			decode = qk_decode_avx512(h);
		if (decode == NULL && (isa == QK_ISA_AVX512 || isa == QK_ISA_AVX2))
			decode = qk_decode_avx2(h);
	}

	for (int64_t r0 = 0; r0 < h->rows; r0 += tr)
	{
		int64_t		r1 = r0 + tr < h->rows ? r0 + tr : h->rows;

		if (reference)
			qt_dequantize_ref(buf, l, r0, r1, tile);
		else if (decode)
			decode(buf, l, r0, r1, tile);
		else
			qt_dequantize(buf, l, r0, r1, tile);
		if (n == 1)
			cblas_sgemv(CblasRowMajor, CblasNoTrans, (int) (r1 - r0), h->cols, 1.0f, tile, h->cols,
						X, 1, 0.0f, Y + r0, 1);
		else
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int) n, (int) (r1 - r0), h->cols,
						1.0f, X, h->cols, tile, h->cols, 0.0f, Y + r0, h->rows);
	}
}

void
qk_gemv(QkIsa isa, const uint8_t *buf, const QtLayout *l, const float *x, float *y, void *work)
{
	const QtHeader *h = (const QtHeader *) buf;
	float	   *w = align64(work);

	if (isa == QK_ISA_COUNT)
		isa = qk_isa_active();
	if (isa == QK_ISA_REF || !qk_fused_ok(h, l))
	{
		tile_gemm(isa, buf, l, x, 1, y, w);
		return;
	}
	if (h->encoding == QT_ENC_INT)
		group_sums(h, l, x, w);
	rows_fn(isa, h) (buf, l, x, w, 0, h->rows, y);
}

void
qk_gemm(QkIsa isa, const uint8_t *buf, const QtLayout *l, const float *X, int64_t n, float *Y, void *work)
{
	const QtHeader *h = (const QtHeader *) buf;
	float	   *w = align64(work);

	if (isa == QK_ISA_COUNT)
		isa = qk_isa_active();
	if (isa == QK_ISA_REF || !qk_fused_ok(h, l) || n >= QK_TILE_MIN_BATCH)
	{
		tile_gemm(isa, buf, l, X, n, Y, w);
		return;
	}
	for (int64_t i = 0; i < n; i++)
	{
		const float *x = X + i * h->cols;

		if (h->encoding == QT_ENC_INT)
			group_sums(h, l, x, w);
		rows_fn(isa, h) (buf, l, x, w, 0, h->rows, Y + i * h->rows);
	}
}

void
qk_sgemv(const float *W, int64_t rows, int64_t cols, const float *x, float *y)
{
	cblas_sgemv(CblasRowMajor, CblasNoTrans, (int) rows, (int) cols, 1.0f, W, (int) cols, x, 1, 0.0f, y, 1);
}
