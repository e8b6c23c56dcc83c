/*
 * qgemv.h: matrix-vector and matrix-matrix products with a quantized
 * weight matrix (floor 1, no PostgreSQL headers).
 *
 *   qk_gemv:  y[rows]    = W x,      x[cols]
 *   qk_gemm:  Y[n][rows] = X W^T,    X[n][cols] row-major
 *
 * where W (rows x cols) is the qtensor as qt_dequantize_ref decodes it.
 *
 * The fast paths never materialize W.  For the int encoding a group g of
 * row r contributes s * (sum_j q_j x_j - z * sum_j x_j): the codes are
 * widened to float and multiplied with x directly, and the sums of x per
 * group are computed once per call and shared by every row.  NF4 looks the
 * 16 levels up in registers.  Each instruction set has its own kernels
 * (qgemv_x86.c), chosen once by qk_init() from the CPU's features; any set
 * can be forced for tests and benchmarks.  Tensors with a permutation,
 * channel scales or outliers, and group sizes that are not a multiple of 8,
 * take the tile path instead: rows decoded by qt_dequantize() into a tile,
 * then OpenBLAS sgemv/sgemm on it.  So does a batch of at least
 * QK_TILE_MIN_BATCH vectors, where one decode serves every vector.
 *
 * The reference (qk_gemv_ref) decodes with qt_dequantize_ref and sums in
 * double: it is the oracle the tests hold every path to.
 */
#ifndef PGQUANT_QGEMV_H
#define PGQUANT_QGEMV_H

#include <string.h>

#include "qformat.h"

typedef enum QkIsa
{
	QK_ISA_REF = 0,				/* the reference: decode, then a double dot */
	QK_ISA_GENERIC,				/* fused, portable C */
	QK_ISA_AVX2,				/* fused, AVX2 + FMA + F16C */
	QK_ISA_AVX512,				/* fused, AVX-512 F/BW/VL/DQ + VBMI */
	QK_ISA_COUNT
} QkIsa;

/*
 * Batches of at least this many vectors decode each tile of rows once and
 * multiply it with OpenBLAS sgemm (tests/bench/bench_qgemv.c measures the
 * crossover; below it the fused kernels run once per vector).
 */
#define QK_TILE_MIN_BATCH 2

/* Detect the CPU's features once; afterwards qk_isa_active() is the best supported set. */
void		qk_init(void);
bool		qk_isa_supported(QkIsa isa);
QkIsa		qk_isa_best(void);
const char *qk_isa_name(QkIsa isa);
/* -1 for an unknown name */
int			qk_isa_from_name(const char *name);

/* the set qk_gemv/qk_gemm use when given QK_ISA_COUNT ("the active one") */
QkIsa		qk_isa_active(void);
void		qk_set_isa(QkIsa isa);	/* must be supported */

/*
 * Scratch memory for one call of qk_gemv (n = 1) or qk_gemm, in bytes; the
 * caller provides it, 64-byte aligned.
 */
size_t		qk_work_bytes(const QtHeader *h, const QtLayout *l, int64_t n);

/*
 * y = W x.  buf is a checked qtensor (qt_check_body), x has cols floats, y
 * gets rows floats.  isa = QK_ISA_COUNT uses the active set.
 */
void		qk_gemv(QkIsa isa, const uint8_t *buf, const QtLayout *l, const float *x, float *y,
					void *work);

/* Y[n][rows] = X[n][cols] W^T */
void		qk_gemm(QkIsa isa, const uint8_t *buf, const QtLayout *l, const float *X, int64_t n,
					float *Y, void *work);

/* the reference, in double: y[r] = sum_c W_ref[r][c] x[c]; work holds cols floats */
void		qk_gemv_ref(const uint8_t *buf, const QtLayout *l, const float *x, double *y, float *work);

/*
 * Whether a tensor can take the fused kernels (no permutation, channel
 * scales or outliers; groups that start on whole bytes).
 */
bool		qk_fused_ok(const QtHeader *h, const QtLayout *l);

/* plain fp32 y[rows] = W[rows][cols] x, for the unquantized tensors of a model */
void		qk_sgemv(const float *W, int64_t rows, int64_t cols, const float *x, float *y);

/*
 * The B bytes at p as a little-endian integer, for a B that is constant
 * after inlining: whole loads only (no read past the B bytes, and no partial
 * stores into a wider variable that would stall store forwarding).
 */
static inline uint64_t
qk_load_bytes(const uint8_t *p, int B)
{
	uint32_t	a;
	uint16_t	b;
	uint64_t	v;

	switch (B)
	{
		case 2:
			memcpy(&b, p, 2);
			return b;
		case 3:
			memcpy(&b, p, 2);
			return b | (uint64_t) p[2] << 16;
		case 4:
			memcpy(&a, p, 4);
			return a;
		case 5:
			memcpy(&a, p, 4);
			return a | (uint64_t) p[4] << 32;
		case 6:
			memcpy(&a, p, 4);
			memcpy(&b, p + 4, 2);
			return a | (uint64_t) b << 32;
		case 7:
			memcpy(&a, p, 4);
			memcpy(&b, p + 4, 2);
			return a | (uint64_t) b << 32 | (uint64_t) p[6] << 48;
		default:
			memcpy(&v, p, 8);
			return v;
	}
}

/*
 * Internal: the per-set kernels.  rows [r0, r1) of y = W x, with xsum the
 * sums of x over each group (int encoding only; NULL for NF4).
 */
typedef void (*QkRowsFn) (const uint8_t *buf, const QtLayout *l, const float *x,
						  const float *xsum, int64_t r0, int64_t r1, float *y);
QkRowsFn	qk_rows_generic(const QtHeader *h);
QkRowsFn	qk_rows_avx2(const QtHeader *h);
QkRowsFn	qk_rows_avx512(const QtHeader *h);

/*
 * Internal: decode rows [r0, r1) of a tensor that qk_fused_ok accepts into
 * out (cols floats a row), bit-identical to qt_dequantize_ref: (q - z) * s
 * or nf4[q] * s, one rounding each.  NULL when the set has no decoder.
 */
typedef void (*QkDecodeFn) (const uint8_t *buf, const QtLayout *l, int64_t r0, int64_t r1, float *out);
QkDecodeFn	qk_decode_avx2(const QtHeader *h);
QkDecodeFn	qk_decode_avx512(const QtHeader *h);
bool		qk_cpu_has_avx2(void);
bool		qk_cpu_has_avx512(void);

#endif							/* PGQUANT_QGEMV_H */
