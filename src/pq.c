/*
 * pq.c: product and residual vector quantization (see pq.h).
 *
 * Training runs k-means per subquantizer (PQ, on each slice of dsub
 * dimensions, seed + j) or per level on the residuals the previous levels
 * left (RVQ, seed + level).  Encoding batches points through qt_nearest
 * (cblas_sgemm); the *_ref encoders are plain loops in double precision and
 * are the oracle.  Decoding and the lookup tables are single definitions.
 */
#include "pq.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <cblas.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

/* points encoded per batch by the fast encoders */
#define ENC_BATCH 1024
#define WORK_ALIGN 64

QtStatus
qt_pq_check_shape(int d, int m, int nbits, char *err)
{
	if (d < 1 || d > QT_PQ_MAX_DIM)
	{
		snprintf(err, QT_ERRMSG_LEN, "dimension must be between 1 and %d, got %d", QT_PQ_MAX_DIM, d);
		return QT_EINVAL;
	}
	if (nbits < QT_PQ_MIN_NBITS || nbits > QT_PQ_MAX_NBITS)
	{
		snprintf(err, QT_ERRMSG_LEN, "nbits must be between %d and %d, got %d",
				 QT_PQ_MIN_NBITS, QT_PQ_MAX_NBITS, nbits);
		return QT_EINVAL;
	}
	if (m < 1 || m > d || d % m != 0)
	{
		snprintf(err, QT_ERRMSG_LEN, "m must divide the dimension %d, got m = %d", d, m);
		return QT_EINVAL;
	}
	return QT_OK;
}

QtStatus
qt_rvq_check_shape(int d, int levels, int nbits, char *err)
{
	if (d < 1 || d > QT_PQ_MAX_DIM)
	{
		snprintf(err, QT_ERRMSG_LEN, "dimension must be between 1 and %d, got %d", QT_PQ_MAX_DIM, d);
		return QT_EINVAL;
	}
	if (nbits < QT_PQ_MIN_NBITS || nbits > QT_PQ_MAX_NBITS)
	{
		snprintf(err, QT_ERRMSG_LEN, "nbits must be between %d and %d, got %d",
				 QT_PQ_MIN_NBITS, QT_PQ_MAX_NBITS, nbits);
		return QT_EINVAL;
	}
	if (levels < 1 || levels > QT_RVQ_MAX_LEVELS)
	{
		snprintf(err, QT_ERRMSG_LEN, "levels must be between 1 and %d, got %d", QT_RVQ_MAX_LEVELS, levels);
		return QT_EINVAL;
	}
	return QT_OK;
}

static char *
align_up(void *p)
{
	return (char *) (((uintptr_t) p + WORK_ALIGN - 1) & ~(uintptr_t) (WORK_ALIGN - 1));
}

/* a + b + WORK_ALIGN, 0 on overflow */
static size_t
add_sizes(size_t a, size_t b)
{
	size_t		r;

	if (a == 0 || b == 0 || __builtin_add_overflow(a, b, &r) || __builtin_add_overflow(r, WORK_ALIGN, &r))
		return 0;
	return r;
}

static size_t
floats_bytes(int64_t count)
{
	size_t		r;

	if (count < 0 || __builtin_mul_overflow((size_t) count, sizeof(float), &r))
		return 0;
	return r ? r : 1;
}

/* ---- PQ training ---------------------------------------------------- */

/* the caller's workspace against what training needs (need 0: the size overflowed) */
static QtStatus
check_workspace(const char *what, size_t need, size_t work_bytes, int64_t n, int d, char *err)
{
	if (need == 0)
	{
		snprintf(err, QT_ERRMSG_LEN, "%s training workspace for %lld points of dimension %d is too large",
				 what, (long long) n, d);
		return QT_ELIMIT;
	}
	if (work_bytes < need)
	{
		snprintf(err, QT_ERRMSG_LEN, "%s training workspace too small (please report a bug)", what);
		return QT_EINVAL;
	}
	return QT_OK;
}

size_t
qt_pq_train_workspace(int64_t n, int d, int m, int nbits, const QtKmeansParams *p)
{
	char		err[QT_ERRMSG_LEN];
	int64_t		nsub;

	if (n < 0 || qt_pq_check_shape(d, m, nbits, err) != QT_OK ||
		__builtin_mul_overflow(n, (int64_t) (d / m), &nsub))
		return 0;
	return add_sizes(floats_bytes(nsub), qt_kmeans_workspace(n, d / m, 1 << nbits, p));
}

QtStatus
qt_pq_train(const float *x, int64_t n, int d, int m, int nbits,
			const QtKmeansParams *p, void *work, size_t work_bytes,
			float *centroids, double *mse, char *err)
{
	QtStatus	st;
	int			dsub,
				ksub;
	size_t		need = qt_pq_train_workspace(n, d, m, nbits, p);
	float	   *sub;
	char	   *kwork;
	size_t		kbytes;
	double		total = 0;

	if ((st = qt_pq_check_shape(d, m, nbits, err)) != QT_OK ||
		(st = check_workspace("PQ", need, work_bytes, n, d, err)) != QT_OK)
		return st;
	dsub = d / m;
	ksub = 1 << nbits;
	sub = (float *) align_up(work);
	kwork = (char *) sub + floats_bytes(n * dsub);
	kbytes = work_bytes - (size_t) (kwork - (char *) work);

	for (int j = 0; j < m; j++)
	{
		QtKmeansParams pj = *p;
		QtKmeansStats ks;

		/* the slice of dimensions this subquantizer owns, contiguous */
		for (int64_t i = 0; i < n; i++)
			memcpy(sub + i * dsub, x + i * d + (int64_t) j * dsub, sizeof(float) * dsub);
		pj.seed = p->seed + (uint64_t) j;
		st = qt_kmeans(sub, n, dsub, ksub, &pj, kwork, kbytes,
					   centroids + (size_t) j * ksub * dsub, &ks, err);
		if (st != QT_OK)
			return st;
		if (ks.n_used > 0)
			total += ks.inertia / (double) ks.n_used;
	}
	*mse = total;
	return QT_OK;
}

/* ---- RVQ training --------------------------------------------------- */

typedef struct RvqTrainWork
{
	float	   *res;			/* n_used x d residuals */
	int32_t    *assign;			/* n_used */
	float	   *cnorm;			/* ksub */
	float	   *scratch;		/* qt_nearest_scratch(ksub) */
	char	   *kwork;
	size_t		kbytes;
	size_t		total;
} RvqTrainWork;

static int64_t
rvq_n_used(int64_t n, const QtKmeansParams *p)
{
	return (p->max_points > 0 && n > p->max_points) ? p->max_points : n;
}

/* add an aligned section of bytes at *off; false on overflow */
static bool
carve(size_t *off, char **ptr, char *base, size_t bytes)
{
	*off = (*off + WORK_ALIGN - 1) & ~(size_t) (WORK_ALIGN - 1);
	if (base)
		*ptr = base + *off;
	return bytes != 0 && !__builtin_add_overflow(*off, bytes, off);
}

/* size (base NULL) or lay out the RVQ training workspace; false on overflow */
static bool
rvq_train_layout(RvqTrainWork *w, char *base, int64_t n, int d, int nbits, const QtKmeansParams *p)
{
	int64_t		nu = rvq_n_used(n, p);
	int			ksub = 1 << nbits;
	QtKmeansParams all = *p;
	size_t		off = 0;
	int64_t		nd;

	all.max_points = 0;			/* the residual buffer already holds the sample */
	w->kbytes = qt_kmeans_workspace(nu, d, ksub, &all);
	if (__builtin_mul_overflow(nu, (int64_t) d, &nd) ||
		!carve(&off, (char **) &w->res, base, floats_bytes(nd)) ||
		!carve(&off, (char **) &w->assign, base, floats_bytes(nu)) ||	/* int32 is float-sized */
		!carve(&off, (char **) &w->cnorm, base, floats_bytes(ksub)) ||
		!carve(&off, (char **) &w->scratch, base, floats_bytes((int64_t) qt_nearest_scratch(nu, ksub))) ||
		!carve(&off, &w->kwork, base, w->kbytes))
		return false;
	w->total = add_sizes(off, WORK_ALIGN);
	return w->total != 0;
}

size_t
qt_rvq_train_workspace(int64_t n, int d, int levels, int nbits, const QtKmeansParams *p)
{
	char		err[QT_ERRMSG_LEN];
	RvqTrainWork w;

	if (n < 0 || qt_rvq_check_shape(d, levels, nbits, err) != QT_OK ||
		!rvq_train_layout(&w, NULL, n, d, nbits, p))
		return 0;
	return w.total;
}

QtStatus
qt_rvq_train(const float *x, int64_t n, int d, int levels, int nbits,
			 const QtKmeansParams *p, void *work, size_t work_bytes,
			 float *centroids, double *mse, char *err)
{
	QtStatus	st;
	RvqTrainWork w;
	int			ksub = 1 << nbits;
	int64_t		nu;
	size_t		need = qt_rvq_train_workspace(n, d, levels, nbits, p);
	QtRng		rng;
	double		total = 0;

	if ((st = qt_rvq_check_shape(d, levels, nbits, err)) != QT_OK ||
		(st = check_workspace("RVQ", need, work_bytes, n, d, err)) != QT_OK)
		return st;
	rvq_train_layout(&w, align_up(work), n, d, nbits, p);
	w.kbytes = work_bytes - (size_t) (w.kwork - (char *) work);

	/* the residuals start as a uniform sample of the points */
	nu = rvq_n_used(n, p);
	qt_rng_seed(&rng, p->seed ^ 0x5256515f73616d70ULL);
	if (nu == n)
		memcpy(w.res, x, sizeof(float) * (size_t) n * d);
	else
	{
		int64_t		chosen = 0;

		for (int64_t i = 0; i < n && chosen < nu; i++)
			if ((double) (n - i) * qt_rng_double(&rng) < (double) (nu - chosen))
				memcpy(w.res + (chosen++) * d, x + i * d, sizeof(float) * d);
	}

	for (int l = 0; l < levels; l++)
	{
		QtKmeansParams pl = *p;
		QtKmeansStats ks;
		float	   *cl = centroids + (size_t) l * ksub * d;

		pl.seed = p->seed + (uint64_t) l;
		pl.max_points = 0;
		st = qt_kmeans(w.res, nu, d, ksub, &pl, w.kwork, w.kbytes, cl, &ks, err);
		if (st != QT_OK)
			return st;
		/* subtract each point's nearest centroid of this level */
		qt_row_norms(cl, ksub, d, w.cnorm);
		qt_nearest(w.res, d, nu, d, cl, ksub, w.cnorm, w.scratch, w.assign, NULL);
		for (int64_t i = 0; i < nu; i++)
		{
			float	   *r = w.res + i * d;
			const float *c = cl + (size_t) w.assign[i] * d;

			for (int t = 0; t < d; t++)
				r[t] -= c[t];
		}
	}
	for (int64_t i = 0; i < nu; i++)
	{
		const float *r = w.res + i * d;

		for (int t = 0; t < d; t++)
			total += (double) r[t] * r[t];
	}
	*mse = nu > 0 ? total / (double) nu : 0;
	return QT_OK;
}

/* ---- PQ encode / decode -------------------------------------------- */

static int64_t
batch_of(int64_t n)
{
	return n < ENC_BATCH ? (n > 0 ? n : 1) : ENC_BATCH;
}

size_t
qt_pq_encode_scratch(const QtPq *pq, int64_t n)
{
	/* centroid norms, qt_nearest's block, and one batch of assignments */
	return (size_t) pq->m * pq->ksub + qt_nearest_scratch(batch_of(n), pq->ksub) + batch_of(n);
}

void
qt_pq_encode(const QtPq *pq, const float *cnorm, const float *x, int64_t n,
			 uint8_t *codes, float *scratch)
{
	size_t		cs = qt_code_size(pq->m, pq->nbits);
	size_t		csub = (size_t) pq->ksub * pq->dsub;
	float	   *cn = scratch;
	float	   *ns = cn + (size_t) pq->m * pq->ksub;
	int32_t    *as = (int32_t *) (ns + qt_nearest_scratch(batch_of(n), pq->ksub));

	if (cnorm)
		cn = (float *) cnorm;
	else
		qt_pq_norm_lut(pq, cn);
	memset(codes, 0, cs * (size_t) n);
	for (int64_t b = 0; b < n; b += ENC_BATCH)
	{
		int64_t		nb = n - b < ENC_BATCH ? n - b : ENC_BATCH;

		for (int j = 0; j < pq->m; j++)
		{
			qt_nearest(x + b * pq->d + (int64_t) j * pq->dsub, pq->d, nb, pq->dsub,
					   pq->centroids + j * csub, pq->ksub, cn + (size_t) j * pq->ksub, ns, as, NULL);
			for (int64_t i = 0; i < nb; i++)
				qt_put_code(codes + (b + i) * cs, j, pq->nbits, (unsigned) as[i]);
		}
	}
}

void
qt_pq_encode_ref(const QtPq *pq, const float *x, int64_t n, uint8_t *codes)
{
	size_t		cs = qt_code_size(pq->m, pq->nbits);
	size_t		csub = (size_t) pq->ksub * pq->dsub;

	memset(codes, 0, cs * (size_t) n);
	for (int64_t i = 0; i < n; i++)
	{
		if (qt_interrupt_hook && (i & 255) == 0)
			qt_interrupt_hook();
		for (int j = 0; j < pq->m; j++)
		{
			int32_t		a;

			qt_nearest_ref(x + i * pq->d + (int64_t) j * pq->dsub, pq->dsub, 1, pq->dsub,
						   pq->centroids + j * csub, pq->ksub, &a, NULL);
			qt_put_code(codes + i * cs, j, pq->nbits, (unsigned) a);
		}
	}
}

void
qt_pq_decode(const QtPq *pq, const uint8_t *codes, int64_t n, float *x)
{
	size_t		cs = qt_code_size(pq->m, pq->nbits);
	size_t		csub = (size_t) pq->ksub * pq->dsub;

	for (int64_t i = 0; i < n; i++)
		for (int j = 0; j < pq->m; j++)
		{
			unsigned	c = qt_code_at(codes + i * cs, j, pq->nbits);

			memcpy(x + i * pq->d + (int64_t) j * pq->dsub,
				   pq->centroids + j * csub + (size_t) c * pq->dsub, sizeof(float) * pq->dsub);
		}
}

/* ---- RVQ encode / decode ------------------------------------------- */

/* one vector: sum of its levels' centroids in level order, and the squared norm */
static float
rvq_decode_one(const QtRvq *rvq, const uint8_t *code, float *out)
{
	size_t		csl = (size_t) rvq->ksub * rvq->d;
	double		s = 0;

	memset(out, 0, sizeof(float) * rvq->d);
	for (int l = 0; l < rvq->levels; l++)
	{
		const float *c = rvq->centroids + l * csl + (size_t) qt_code_at(code, l, rvq->nbits) * rvq->d;

		for (int t = 0; t < rvq->d; t++)
			out[t] += c[t];
	}
	for (int t = 0; t < rvq->d; t++)
		s += (double) out[t] * out[t];
	return (float) s;
}

size_t
qt_rvq_encode_scratch(const QtRvq *rvq, int64_t n)
{
	/* residuals of a batch, centroid norms, qt_nearest's block, assignments */
	return (size_t) batch_of(n) * rvq->d + (size_t) rvq->levels * rvq->ksub +
		qt_nearest_scratch(batch_of(n), rvq->ksub) + batch_of(n);
}

void
qt_rvq_norms(const QtRvq *rvq, float *out)
{
	qt_row_norms(rvq->centroids, (int64_t) rvq->levels * rvq->ksub, rvq->d, out);
}

void
qt_rvq_encode(const QtRvq *rvq, const float *cnorm, const float *x, int64_t n,
			  uint8_t *codes, float *norms, float *scratch)
{
	size_t		cs = qt_code_size(rvq->levels, rvq->nbits);
	size_t		csl = (size_t) rvq->ksub * rvq->d;
	float	   *res = scratch;
	float	   *cn = res + (size_t) batch_of(n) * rvq->d;
	float	   *ns = cn + (size_t) rvq->levels * rvq->ksub;
	int32_t    *as = (int32_t *) (ns + qt_nearest_scratch(batch_of(n), rvq->ksub));

	if (cnorm)
		cn = (float *) cnorm;
	else
		qt_rvq_norms(rvq, cn);
	memset(codes, 0, cs * (size_t) n);
	for (int64_t b = 0; b < n; b += ENC_BATCH)
	{
		int64_t		nb = n - b < ENC_BATCH ? n - b : ENC_BATCH;

		if (qt_interrupt_hook)
			qt_interrupt_hook();
		memcpy(res, x + b * rvq->d, sizeof(float) * (size_t) nb * rvq->d);
		for (int l = 0; l < rvq->levels; l++)
		{
			const float *cl = rvq->centroids + l * csl;

			qt_nearest(res, rvq->d, nb, rvq->d, cl, rvq->ksub, cn + (size_t) l * rvq->ksub, ns, as, NULL);
			for (int64_t i = 0; i < nb; i++)
			{
				float	   *r = res + i * rvq->d;
				const float *c = cl + (size_t) as[i] * rvq->d;

				qt_put_code(codes + (b + i) * cs, l, rvq->nbits, (unsigned) as[i]);
				for (int t = 0; t < rvq->d; t++)
					r[t] -= c[t];
			}
		}
		if (norms)
			for (int64_t i = 0; i < nb; i++)
				norms[b + i] = rvq_decode_one(rvq, codes + (b + i) * cs, res);
	}
}

void
qt_rvq_encode_ref(const QtRvq *rvq, const float *x, int64_t n, uint8_t *codes, float *norms)
{
	size_t		cs = qt_code_size(rvq->levels, rvq->nbits);
	size_t		csl = (size_t) rvq->ksub * rvq->d;
	float		res[QT_PQ_MAX_DIM];

	memset(codes, 0, cs * (size_t) n);
	for (int64_t i = 0; i < n; i++)
	{
		if (qt_interrupt_hook && (i & 255) == 0)
			qt_interrupt_hook();
		memcpy(res, x + i * rvq->d, sizeof(float) * rvq->d);
		for (int l = 0; l < rvq->levels; l++)
		{
			int32_t		a;
			const float *cl = rvq->centroids + l * csl;

			qt_nearest_ref(res, rvq->d, 1, rvq->d, cl, rvq->ksub, &a, NULL);
			qt_put_code(codes + i * cs, l, rvq->nbits, (unsigned) a);
			for (int t = 0; t < rvq->d; t++)
				res[t] -= cl[(size_t) a * rvq->d + t];
		}
		if (norms)
			norms[i] = rvq_decode_one(rvq, codes + i * cs, res);
	}
}

void
qt_rvq_decode(const QtRvq *rvq, const uint8_t *codes, int64_t n, float *x)
{
	size_t		cs = qt_code_size(rvq->levels, rvq->nbits);

	for (int64_t i = 0; i < n; i++)
		(void) rvq_decode_one(rvq, codes + i * cs, x + i * rvq->d);
}

/* ---- lookup tables and ADC ----------------------------------------- */

void
qt_pq_lut(const QtPq *pq, const float *q, QtMetric metric, float *lut)
{
	size_t		csub = (size_t) pq->ksub * pq->dsub;

	for (int j = 0; j < pq->m; j++)
	{
		const float *qj = q + (size_t) j * pq->dsub;
		const float *cj = pq->centroids + j * csub;
		float	   *lj = lut + (size_t) j * pq->ksub;

		for (int c = 0; c < pq->ksub; c++)
		{
			const float *v = cj + (size_t) c * pq->dsub;

			lj[c] = metric == QT_METRIC_L2 ? qt_l2_sq(qj, v, pq->dsub) : qt_dot(qj, v, pq->dsub);
		}
	}
}

void
qt_pq_norm_lut(const QtPq *pq, float *lut)
{
	size_t		csub = (size_t) pq->ksub * pq->dsub;

	for (int j = 0; j < pq->m; j++)
		for (int c = 0; c < pq->ksub; c++)
		{
			const float *v = pq->centroids + j * csub + (size_t) c * pq->dsub;

			lut[(size_t) j * pq->ksub + c] = qt_dot(v, v, pq->dsub);
		}
}

void
qt_rvq_lut(const QtRvq *rvq, const float *q, float *lut)
{
	/* one matrix-vector product per level: lut[l] = C_l q */
	for (int l = 0; l < rvq->levels; l++)
		cblas_sgemv(CblasRowMajor, CblasNoTrans, rvq->ksub, rvq->d, 1.0f,
					rvq->centroids + (size_t) l * rvq->ksub * rvq->d, rvq->d,
					q, 1, 0.0f, lut + (size_t) l * rvq->ksub, 1);
}

void
qt_pq_dot_table(const QtPq *pq, const float *x, float *out)
{
	size_t		csub = (size_t) pq->ksub * pq->dsub;

	for (int j = 0; j < pq->m; j++)
		cblas_sgemv(CblasRowMajor, CblasNoTrans, pq->ksub, pq->dsub, 1.0f,
					pq->centroids + j * csub, pq->dsub, x + (size_t) j * pq->dsub, 1,
					0.0f, out + (size_t) j * pq->ksub, 1);
}

void
qt_pq_precompute(const QtPq *pq, const float *cnorm, const float *coarse, int64_t lists, float *T)
{
	size_t		csub = (size_t) pq->ksub * pq->dsub;
	size_t		row = (size_t) pq->m * pq->ksub;

	if (lists <= 0)
		return;
	for (int j = 0; j < pq->m; j++)
	{
		if (qt_interrupt_hook)
			qt_interrupt_hook();
		/* T[l][j][.] = 2 * (coarse_lj . C_j[.]) for all l at once */
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int) lists, pq->ksub, pq->dsub,
					2.0f, coarse + (size_t) j * pq->dsub, pq->d, pq->centroids + j * csub, pq->dsub,
					0.0f, T + (size_t) j * pq->ksub, (int) row);
	}
	for (int64_t l = 0; l < lists; l++)
	{
		float	   *t = T + (size_t) l * row;

		for (size_t i = 0; i < row; i++)
			t[i] += cnorm[i];
	}
}

void
qt_pq_lut_from_tables(const float *T, const float *Q, int64_t n, float *lut)
{
	int64_t		i = 0;
#ifdef __SSE2__
	const __m128 two = _mm_set1_ps(2.0f);

	for (; i + 4 <= n; i += 4)
		_mm_storeu_ps(lut + i, _mm_sub_ps(_mm_loadu_ps(T + i), _mm_mul_ps(two, _mm_loadu_ps(Q + i))));
#endif
	for (; i < n; i++)
		lut[i] = T[i] - 2.0f * Q[i];
}

float
qt_adc_ref(const float *lut, int m, int nbits, const uint8_t *code)
{
	float		s = 0;
	int			ksub = 1 << nbits;

	for (int j = 0; j < m; j++)
		s += lut[(size_t) j * ksub + qt_code_at(code, j, nbits)];
	return s;
}

void
qt_adc_scan(const float *lut, int m, int nbits, const uint8_t *codes,
			size_t stride, int64_t n, float *out)
{
	int64_t		i = 0;

	if (nbits == 8)
	{
		/* four codes at a time: independent sums, each in the reference's order */
		for (; i + 4 <= n; i += 4)
		{
			const uint8_t *c0 = codes + i * stride,
					   *c1 = c0 + stride,
					   *c2 = c1 + stride,
					   *c3 = c2 + stride;
			float		s0 = 0,
						s1 = 0,
						s2 = 0,
						s3 = 0;

			for (int j = 0; j < m; j++)
			{
				const float *l = lut + ((size_t) j << 8);

				s0 += l[c0[j]];
				s1 += l[c1[j]];
				s2 += l[c2[j]];
				s3 += l[c3[j]];
			}
			out[i] = s0;
			out[i + 1] = s1;
			out[i + 2] = s2;
			out[i + 3] = s3;
		}
		for (; i < n; i++)
		{
			const uint8_t *c = codes + i * stride;
			float		s = 0;

			for (int j = 0; j < m; j++)
				s += lut[((size_t) j << 8) + c[j]];
			out[i] = s;
		}
		return;
	}
	if (nbits == 4)
	{
		for (; i < n; i++)
		{
			const uint8_t *c = codes + i * stride;
			float		s = 0;
			int			j = 0;

			for (; j + 2 <= m; j += 2)
			{
				s += lut[((size_t) j << 4) + (c[j >> 1] & 15)];
				s += lut[((size_t) (j + 1) << 4) + (c[j >> 1] >> 4)];
			}
			if (j < m)
				s += lut[((size_t) j << 4) + (c[j >> 1] & 15)];
			out[i] = s;
		}
		return;
	}
	for (; i < n; i++)
		out[i] = qt_adc_ref(lut, m, nbits, codes + i * stride);
}

/* ---- plain distances ------------------------------------------------ */

/*
 * Sums of squares and products.  With SSE2 (every x86-64) four vectors of
 * four partial sums; else four scalar partial sums.  The order of additions
 * is fixed for a given build, so the operators and the index's re-ranking,
 * which both call these, always agree.
 */
float
qt_l2_sq(const float *a, const float *b, int d)
{
	int			t = 0;
	float		s;
#ifdef __SSE2__
	__m128		s0 = _mm_setzero_ps(),
				s1 = _mm_setzero_ps(),
				s2 = _mm_setzero_ps(),
				s3 = _mm_setzero_ps();
	float		part[4];

	for (; t + 16 <= d; t += 16)
	{
		__m128		e0 = _mm_sub_ps(_mm_loadu_ps(a + t), _mm_loadu_ps(b + t));
		__m128		e1 = _mm_sub_ps(_mm_loadu_ps(a + t + 4), _mm_loadu_ps(b + t + 4));
		__m128		e2 = _mm_sub_ps(_mm_loadu_ps(a + t + 8), _mm_loadu_ps(b + t + 8));
		__m128		e3 = _mm_sub_ps(_mm_loadu_ps(a + t + 12), _mm_loadu_ps(b + t + 12));

		s0 = _mm_add_ps(s0, _mm_mul_ps(e0, e0));
		s1 = _mm_add_ps(s1, _mm_mul_ps(e1, e1));
		s2 = _mm_add_ps(s2, _mm_mul_ps(e2, e2));
		s3 = _mm_add_ps(s3, _mm_mul_ps(e3, e3));
	}
	for (; t + 4 <= d; t += 4)
	{
		__m128		e = _mm_sub_ps(_mm_loadu_ps(a + t), _mm_loadu_ps(b + t));

		s0 = _mm_add_ps(s0, _mm_mul_ps(e, e));
	}
	_mm_storeu_ps(part, _mm_add_ps(_mm_add_ps(s0, s1), _mm_add_ps(s2, s3)));
	s = (part[0] + part[1]) + (part[2] + part[3]);
#else
	float		p[4] = {0, 0, 0, 0};

	for (; t + 4 <= d; t += 4)
		for (int u = 0; u < 4; u++)
		{
			float		e = a[t + u] - b[t + u];

			p[u] += e * e;
		}
	s = (p[0] + p[1]) + (p[2] + p[3]);
#endif
	for (; t < d; t++)
	{
		float		e = a[t] - b[t];

		s += e * e;
	}
	return s;
}

float
qt_dot(const float *a, const float *b, int d)
{
	int			t = 0;
	float		s;
#ifdef __SSE2__
	__m128		s0 = _mm_setzero_ps(),
				s1 = _mm_setzero_ps(),
				s2 = _mm_setzero_ps(),
				s3 = _mm_setzero_ps();
	float		part[4];

	for (; t + 16 <= d; t += 16)
	{
		s0 = _mm_add_ps(s0, _mm_mul_ps(_mm_loadu_ps(a + t), _mm_loadu_ps(b + t)));
		s1 = _mm_add_ps(s1, _mm_mul_ps(_mm_loadu_ps(a + t + 4), _mm_loadu_ps(b + t + 4)));
		s2 = _mm_add_ps(s2, _mm_mul_ps(_mm_loadu_ps(a + t + 8), _mm_loadu_ps(b + t + 8)));
		s3 = _mm_add_ps(s3, _mm_mul_ps(_mm_loadu_ps(a + t + 12), _mm_loadu_ps(b + t + 12)));
	}
	for (; t + 4 <= d; t += 4)
		s0 = _mm_add_ps(s0, _mm_mul_ps(_mm_loadu_ps(a + t), _mm_loadu_ps(b + t)));
	_mm_storeu_ps(part, _mm_add_ps(_mm_add_ps(s0, s1), _mm_add_ps(s2, s3)));
	s = (part[0] + part[1]) + (part[2] + part[3]);
#else
	float		p[4] = {0, 0, 0, 0};

	for (; t + 4 <= d; t += 4)
		for (int u = 0; u < 4; u++)
			p[u] += a[t + u] * b[t + u];
	s = (p[0] + p[1]) + (p[2] + p[3]);
#endif
	for (; t < d; t++)
		s += a[t] * b[t];
	return s;
}

double
qt_exact_distance(QtMetric metric, const float *a, const float *b, int d)
{
	if (metric == QT_METRIC_L2)
		return sqrt((double) qt_l2_sq(a, b, d));
	if (metric == QT_METRIC_IP)
		return -(double) qt_dot(a, b, d);
	{
		double		ab = qt_dot(a, b, d),
					aa = qt_dot(a, a, d),
					bb = qt_dot(b, b, d),
					sim;

		if (aa == 0 || bb == 0)
			return NAN;
		sim = ab / sqrt(aa * bb);
		/* rounding can step outside [-1, 1] */
		if (sim > 1)
			sim = 1;
		else if (sim < -1)
			sim = -1;
		return 1 - sim;
	}
}
