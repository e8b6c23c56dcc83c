/*
 * pq.h: product quantization (PQ) and residual vector quantization (RVQ)
 * in plain C (floor 1: no PostgreSQL headers).
 *
 * Layouts (row-major float32):
 *   PQ  centroids (m, ksub, dsub): subquantizer j owns dimensions
 *       [j * dsub, (j + 1) * dsub) and has ksub = 2^nbits centroids.
 *   RVQ centroids (levels, ksub, d): every level quantizes the residual the
 *       levels before it left, over the full dimension.
 * Codes: one code per subquantizer (PQ) or level (RVQ), nbits each, packed
 * LSB first as in qt_put_code: code_size = ceil(m * nbits / 8) bytes.  With
 * 8 bits code j is byte j; with 4 bits code 2i is the low nibble of byte i.
 *
 * Asymmetric distance computation (ADC): per query, a lookup table
 * lut (m, ksub) makes the distance to a code a sum of m table entries.
 *   PQ, L2:  lut[j][c] = ||q_j - C_j[c]||^2, sum = ||q - decode(code)||^2
 *   PQ, IP:  lut[j][c] = q_j . C_j[c],       sum = q . decode(code)
 *   RVQ:     lut[l][c] = q . C_l[c],         sum = q . decode(code); the L2
 *            distance is ||q||^2 - 2 sum + ||decode(code)||^2, which is why
 *            an RVQ code carries the squared norm of its reconstruction.
 * qt_adc_ref is the oracle; qt_adc_scan is the fast path and returns the same
 * floats (same order of additions).
 */
#ifndef PGQUANT_PQ_H
#define PGQUANT_PQ_H

#include "kmeans.h"

#define QT_PQ_MIN_NBITS 1
#define QT_PQ_MAX_NBITS 8
#define QT_PQ_MAX_DIM	16000
#define QT_RVQ_MAX_LEVELS 64

typedef enum QtMetric
{
	QT_METRIC_L2 = 1,
	QT_METRIC_IP = 2,
	QT_METRIC_COSINE = 3
} QtMetric;

typedef struct QtPq
{
	int			d;
	int			m;				/* subquantizers */
	int			nbits;
	int			dsub;			/* d / m */
	int			ksub;			/* 1 << nbits */
	const float *centroids;		/* (m, ksub, dsub) */
} QtPq;

typedef struct QtRvq
{
	int			d;
	int			levels;
	int			nbits;
	int			ksub;
	const float *centroids;		/* (levels, ksub, d) */
} QtRvq;

static inline size_t
qt_code_size(int m, int nbits)
{
	return ((size_t) m * nbits + 7) / 8;
}

/* check d, m, nbits for PQ (m divides d) or RVQ (m = levels); err on failure */
QtStatus	qt_pq_check_shape(int d, int m, int nbits, char *err);
QtStatus	qt_rvq_check_shape(int d, int levels, int nbits, char *err);

/* training: work is qt_*_train_workspace() bytes; mse = mean squared error per point trained on */
size_t		qt_pq_train_workspace(int64_t n, int d, int m, int nbits, const QtKmeansParams *p);
QtStatus	qt_pq_train(const float *x, int64_t n, int d, int m, int nbits,
						const QtKmeansParams *p, void *work, size_t work_bytes,
						float *centroids, double *mse, char *err);
size_t		qt_rvq_train_workspace(int64_t n, int d, int levels, int nbits, const QtKmeansParams *p);
QtStatus	qt_rvq_train(const float *x, int64_t n, int d, int levels, int nbits,
						 const QtKmeansParams *p, void *work, size_t work_bytes,
						 float *centroids, double *mse, char *err);

/*
 * Encoding n vectors into n * code_size bytes (zeroed first by the
 * function).  The fast paths batch through qt_nearest and need
 * qt_*_encode_scratch(.., n) floats; cnorm, the centroids' squared norms
 * (qt_cb_norms), may be NULL and is then computed into the scratch.  The
 * references need neither.
 */
size_t		qt_pq_encode_scratch(const QtPq *pq, int64_t n);
void		qt_pq_encode(const QtPq *pq, const float *cnorm, const float *x, int64_t n,
						 uint8_t *codes, float *scratch);
void		qt_pq_encode_ref(const QtPq *pq, const float *x, int64_t n, uint8_t *codes);
void		qt_pq_decode(const QtPq *pq, const uint8_t *codes, int64_t n, float *x);

/* RVQ: greedy level by level; norms[i] = ||decode(code i)||^2 (may be NULL) */
size_t		qt_rvq_encode_scratch(const QtRvq *rvq, int64_t n);
void		qt_rvq_encode(const QtRvq *rvq, const float *cnorm, const float *x, int64_t n,
						  uint8_t *codes, float *norms, float *scratch);
void		qt_rvq_encode_ref(const QtRvq *rvq, const float *x, int64_t n, uint8_t *codes,
							  float *norms);
void		qt_rvq_decode(const QtRvq *rvq, const uint8_t *codes, int64_t n, float *x);

/* lookup tables, lut (m, ksub) */
void		qt_pq_lut(const QtPq *pq, const float *q, QtMetric metric, float *lut);
/*
 * Squared norms of every centroid, (m, ksub) for PQ or (levels, ksub) for
 * RVQ.  For PQ this is also the table whose ADC sum is ||decode(code)||^2.
 */
void		qt_pq_norm_lut(const QtPq *pq, float *lut);
void		qt_rvq_norms(const QtRvq *rvq, float *out);
void		qt_rvq_lut(const QtRvq *rvq, const float *q, float *lut);

/*
 * Fast tables for IVF-PQ (the lookup tables above are their references):
 *   qt_pq_dot_table: out[j][c] = x_j . C_j[c], the inner-product table of x
 *     (qt_pq_lut with QT_METRIC_IP), through one sgemv per subquantizer;
 *   qt_pq_precompute: for each coarse centroid l (lists x d),
 *     T[l][j][c] = ||C_j[c]||^2 + 2 c_lj . C_j[c], through one sgemm per
 *     subquantizer; cnorm is qt_pq_norm_lut's table.  Then for a query q the L2 table of its residual to c_l is
 *     ||q - c_l||^2 spread over the sum plus lut = T[l] - 2 dot_table(q):
 *     ||q - c_l - y||^2 = ||q - c_l||^2 + sum_j (T[l][j][y_j] - 2 q_j . C_j[y_j]).
 */
void		qt_pq_dot_table(const QtPq *pq, const float *x, float *out);
void		qt_pq_precompute(const QtPq *pq, const float *cnorm, const float *coarse, int64_t lists, float *T);
/* lut[i] = T[i] - 2 Q[i] for the m * ksub entries */
void		qt_pq_lut_from_tables(const float *T, const float *Q, int64_t n, float *lut);

/* ADC: sum over the m codes of lut[j][code_j] */
float		qt_adc_ref(const float *lut, int m, int nbits, const uint8_t *code);
/* n codes at stride bytes apart; out[i] = qt_adc_ref(lut, m, nbits, codes + i * stride) */
void		qt_adc_scan(const float *lut, int m, int nbits, const uint8_t *codes,
						size_t stride, int64_t n, float *out);

/* plain float helpers shared by the SQL functions and the index */
float		qt_l2_sq(const float *a, const float *b, int d);
float		qt_dot(const float *a, const float *b, int d);

/*
 * The exact distances of the real[] operators, one definition for the
 * operators and the index's re-ranking: L2 = sqrt(sum of squares), IP =
 * minus the inner product (so smaller is nearer), cosine = 1 - a.b /
 * (|a| |b|) clamped to [0, 2], NaN when either vector is zero.
 */
double		qt_exact_distance(QtMetric metric, const float *a, const float *b, int d);

#endif							/* PGQUANT_PQ_H */
