/*
 * kmeans.c: seeded k-means (see kmeans.h).
 *
 * Design notes.
 * - Distances for the assignment step go through cblas_sgemm: for a block of
 *   B points and all k centroids, G = X C^T, then d(i, j) = ||x_i||^2 -
 *   2 G[i][j] + ||c_j||^2.  B is chosen so that G stays near 4 MB.
 * - k-means++ needs one pass over the points per centroid; it runs on a
 *   uniform subset of at most QT_KMEANS_INIT_PER_CENTROID * k points, copied
 *   contiguously so that each pass is one cblas_sgemv.
 * - Centroid sums accumulate in double, so the update does not depend on
 *   the order of large sums of floats.
 * - Every random choice draws from one QtRng seeded by the caller: the same
 *   inputs and seed give the same centroids, bit for bit, on one platform
 *   (OpenBLAS may round differently on another CPU).
 */
#include "kmeans.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <cblas.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#define WORK_ALIGN 64
/* aim for a block of point-centroid dot products of about 4 MB */
#define NEAREST_TARGET_FLOATS (1 << 20)
#define NEAREST_MIN_BLOCK 16
#define NEAREST_MAX_BLOCK 1024

static int
nearest_block(int k)
{
	int			b = NEAREST_TARGET_FLOATS / (k > 0 ? k : 1);

	if (b < NEAREST_MIN_BLOCK)
		b = NEAREST_MIN_BLOCK;
	if (b > NEAREST_MAX_BLOCK)
		b = NEAREST_MAX_BLOCK;
	return b;
}

size_t
qt_nearest_scratch(int64_t n, int k)
{
	int64_t		rows = nearest_block(k);

	if (n < rows)
		rows = n > 0 ? n : 1;
	return (size_t) rows * (size_t) k;
}

void
qt_row_norms(const float *c, int64_t k, int d, float *out)
{
	for (int64_t j = 0; j < k; j++)
	{
		const float *r = c + j * (int64_t) d;
		double		s = 0;

		for (int t = 0; t < d; t++)
			s += (double) r[t] * r[t];
		out[j] = (float) s;
	}
}

/*
 * The first j minimizing cnorm[j] - 2 g[j], and that minimum.  With SSE2 (every
 * x86-64) four lanes each keep their first minimum; the lanes then merge
 * taking the lowest index among equal values, which is the scalar answer.
 */
static inline int32_t
row_argmin(const float *g, const float *cnorm, int k, float *minval)
{
	float		best = FLT_MAX;
	int32_t		arg = 0;
	int			j = 0;

#ifdef __SSE2__
	if (k >= 8)
	{
		__m128		bv = _mm_set1_ps(FLT_MAX);
		__m128i		bi = _mm_setzero_si128();
		__m128i		idx = _mm_setr_epi32(0, 1, 2, 3);
		const __m128i four = _mm_set1_epi32(4);
		const __m128 two = _mm_set1_ps(2.0f);
		float		lv[4];
		int32_t		li[4];

		for (; j + 4 <= k; j += 4)
		{
			__m128		v = _mm_sub_ps(_mm_loadu_ps(cnorm + j), _mm_mul_ps(two, _mm_loadu_ps(g + j)));
			__m128i		lt = _mm_castps_si128(_mm_cmplt_ps(v, bv));

			bv = _mm_min_ps(v, bv);
			bi = _mm_or_si128(_mm_and_si128(lt, idx), _mm_andnot_si128(lt, bi));
			idx = _mm_add_epi32(idx, four);
		}
		_mm_storeu_ps(lv, bv);
		_mm_storeu_si128((__m128i *) li, bi);
		for (int u = 0; u < 4; u++)
			if (lv[u] < best || (lv[u] == best && li[u] < arg))
			{
				best = lv[u];
				arg = li[u];
			}
	}
#endif
	for (; j < k; j++)
	{
		float		v = cnorm[j] - 2.0f * g[j];

		if (v < best)
		{
			best = v;
			arg = j;
		}
	}
	*minval = best;
	return arg;
}

void
qt_nearest(const float *x, size_t ldx, int64_t n, int d,
		   const float *c, int k, const float *cnorm, float *scratch,
		   int32_t *assign, float *dist)
{
	int			block = nearest_block(k);

	for (int64_t b = 0; b < n; b += block)
	{
		int			nb = (int) (n - b < block ? n - b : block);

		if (qt_interrupt_hook)
			qt_interrupt_hook();
		/* scratch[i][j] = x_{b+i} . c_j */
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nb, k, d,
					1.0f, x + b * ldx, (int) ldx, c, d, 0.0f, scratch, k);
		for (int i = 0; i < nb; i++)
		{
			float		best;
			int32_t		arg = row_argmin(scratch + (size_t) i * k, cnorm, k, &best);

			assign[b + i] = arg;
			if (dist)
			{
				const float *xi = x + (b + i) * ldx;
				float		xn = 0;
				float		dv;

				for (int t = 0; t < d; t++)
					xn += xi[t] * xi[t];
				dv = xn + best;
				dist[b + i] = dv > 0 ? dv : 0;
			}
		}
	}
}

void
qt_nearest_ref(const float *x, size_t ldx, int64_t n, int d,
			   const float *c, int k, int32_t *assign, float *dist)
{
	for (int64_t i = 0; i < n; i++)
	{
		const float *xi = x + i * ldx;
		double		best = DBL_MAX;
		int32_t		arg = 0;

		if (qt_interrupt_hook && (i & 255) == 0)
			qt_interrupt_hook();
		for (int j = 0; j < k; j++)
		{
			const float *cj = c + (size_t) j * d;
			double		s = 0;

			for (int t = 0; t < d; t++)
			{
				double		e = (double) xi[t] - cj[t];

				s += e * e;
			}
			if (s < best)
			{
				best = s;
				arg = j;
			}
		}
		assign[i] = arg;
		if (dist)
			dist[i] = (float) best;
	}
}

void
qt_sample_indices(QtRng *r, int64_t n, int64_t m, int64_t *out)
{
	int64_t		chosen = 0;

	for (int64_t i = 0; i < n && chosen < m; i++)
	{
		/* choose i with probability (still needed) / (still left) */
		if ((double) (n - i) * qt_rng_double(r) < (double) (m - chosen))
			out[chosen++] = i;
	}
}

/* the workspace, carved into aligned sections */
typedef struct KmWork
{
	float	   *pts;			/* n_used x d copy when subsampling, else NULL */
	float	   *xnorm;			/* n_used */
	int32_t    *assign;			/* n_used */
	float	   *dist;			/* n_used */
	double	   *sums;			/* k x d */
	int64_t    *counts;			/* k */
	float	   *cnorm;			/* k */
	float	   *scratch;		/* qt_nearest_scratch(n, k) */
	int64_t    *init_idx;		/* n_init */
	float	   *init_pts;		/* n_init x d */
	float	   *init_g;			/* n_init */
	double	   *init_mind;		/* n_init */
	size_t		total;
} KmWork;

static int64_t
n_used_of(int64_t n, const QtKmeansParams *p)
{
	return (p->max_points > 0 && n > p->max_points) ? p->max_points : n;
}

static int64_t
n_init_of(int64_t n_used, int k)
{
	int64_t		cap = (int64_t) k * QT_KMEANS_INIT_PER_CENTROID;

	return n_used < cap ? n_used : cap;
}

/* add a section of count * size bytes; false on overflow */
static bool
carve(size_t *off, void **ptr, char *base, int64_t count, size_t size)
{
	size_t		bytes;

	if (count < 0 || __builtin_mul_overflow((size_t) count, size, &bytes))
		return false;
	*off = (*off + WORK_ALIGN - 1) & ~(size_t) (WORK_ALIGN - 1);
	if (base)
		*ptr = base + *off;
	if (__builtin_add_overflow(*off, bytes, off) || *off > QT_MAX_BYTES * (size_t) 64)
		return false;
	return true;
}

/* lay out the workspace at base (or only size it when base is NULL) */
static bool
km_layout(KmWork *w, char *base, int64_t n, int d, int k, const QtKmeansParams *p)
{
	int64_t		n_used = n_used_of(n, p);
	int64_t		n_init = n_init_of(n_used, k);
	size_t		off = 0;
	int64_t		kd,
				nd,
				id;

	memset(w, 0, sizeof(*w));
	if (__builtin_mul_overflow((int64_t) k, (int64_t) d, &kd) ||
		__builtin_mul_overflow(n_used, (int64_t) d, &nd) ||
		__builtin_mul_overflow(n_init, (int64_t) d, &id))
		return false;
	if (!carve(&off, (void **) &w->pts, base, n_used < n ? nd : 0, sizeof(float)) ||
		!carve(&off, (void **) &w->xnorm, base, n_used, sizeof(float)) ||
		!carve(&off, (void **) &w->assign, base, n_used, sizeof(int32_t)) ||
		!carve(&off, (void **) &w->dist, base, n_used, sizeof(float)) ||
		!carve(&off, (void **) &w->sums, base, kd, sizeof(double)) ||
		!carve(&off, (void **) &w->counts, base, k, sizeof(int64_t)) ||
		!carve(&off, (void **) &w->cnorm, base, k, sizeof(float)) ||
		!carve(&off, (void **) &w->scratch, base, (int64_t) qt_nearest_scratch(INT64_MAX, k), sizeof(float)) ||
		!carve(&off, (void **) &w->init_idx, base, n_init, sizeof(int64_t)) ||
		!carve(&off, (void **) &w->init_pts, base, id, sizeof(float)) ||
		!carve(&off, (void **) &w->init_g, base, n_init, sizeof(float)) ||
		!carve(&off, (void **) &w->init_mind, base, n_init, sizeof(double)))
		return false;
	if (n_used == n)
		w->pts = NULL;
	w->total = off + WORK_ALIGN;	/* room to align the base */
	return true;
}

size_t
qt_kmeans_workspace(int64_t n, int d, int k, const QtKmeansParams *p)
{
	KmWork		w;

	if (n < 0 || d < 1 || k < 1 || !km_layout(&w, NULL, n, d, k, p))
		return 0;
	return w.total;
}

/* k-means++ (or k distinct random points) over a uniform subset */
static void
km_init(const float *x, int64_t n, int d, int k, const QtKmeansParams *p,
		QtRng *rng, KmWork *w, float *centroids)
{
	int64_t		m = n_init_of(n, k);
	float	   *sub = w->init_pts;

	qt_sample_indices(rng, n, m, w->init_idx);
	for (int64_t i = 0; i < m; i++)
		memcpy(sub + i * d, x + w->init_idx[i] * d, sizeof(float) * d);

	if (p->init_random)
	{
		/* a partial Fisher-Yates shuffle of the subset's indices */
		for (int j = 0; j < k; j++)
		{
			int64_t		r = j + (int64_t) qt_rng_below(rng, (uint64_t) (m - j));
			int64_t		t = w->init_idx[j];

			w->init_idx[j] = w->init_idx[r];
			w->init_idx[r] = t;
			memcpy(centroids + (size_t) j * d, x + w->init_idx[j] * d, sizeof(float) * d);
		}
		return;
	}

	qt_row_norms(sub, m, d, w->xnorm);	/* xnorm doubles as the subset's norms here */
	for (int j = 0; j < k; j++)
	{
		int64_t		pick;
		float	   *cj = centroids + (size_t) j * d;
		float		cn;

		if (qt_interrupt_hook)
			qt_interrupt_hook();
		if (j == 0)
			pick = (int64_t) qt_rng_below(rng, (uint64_t) m);
		else
		{
			double		total = 0,
						r,
						acc = 0;

			for (int64_t i = 0; i < m; i++)
				total += w->init_mind[i];
			pick = m - 1;
			if (total > 0)
			{
				/* D^2 weighting: a point is picked in proportion to its distance */
				r = qt_rng_double(rng) * total;
				for (int64_t i = 0; i < m; i++)
				{
					acc += w->init_mind[i];
					if (acc > r && w->init_mind[i] > 0)
					{
						pick = i;
						break;
					}
				}
			}
			else
				pick = (int64_t) qt_rng_below(rng, (uint64_t) m);
		}
		memcpy(cj, sub + pick * d, sizeof(float) * d);
		qt_row_norms(cj, 1, d, &cn);
		/* init_g = sub . c_j, then the running minimum distance */
		cblas_sgemv(CblasRowMajor, CblasNoTrans, (int) m, d, 1.0f, sub, d, cj, 1, 0.0f, w->init_g, 1);
		for (int64_t i = 0; i < m; i++)
		{
			double		dv = (double) w->xnorm[i] - 2.0 * w->init_g[i] + cn;

			if (dv < 0)
				dv = 0;
			if (j == 0 || dv < w->init_mind[i])
				w->init_mind[i] = dv;
		}
		w->init_mind[pick] = 0;
	}
}

/*
 * Re-seed each empty cluster with the point farthest from its centroid, taken
 * from a cluster that keeps at least one point.  Returns how many it re-seeded.
 */
static int64_t
km_repair(const float *x, int64_t n, int d, int k, KmWork *w, float *centroids)
{
	int64_t		repaired = 0;

	for (int j = 0; j < k; j++)
	{
		int64_t		far = -1;
		float		fd = -1;

		if (w->counts[j] > 0)
			continue;
		for (int64_t i = 0; i < n; i++)
			if (w->dist[i] > fd && w->counts[w->assign[i]] > 1)
			{
				fd = w->dist[i];
				far = i;
			}
		if (far < 0)
			break;				/* fewer distinct places than clusters */
		memcpy(centroids + (size_t) j * d, x + far * d, sizeof(float) * d);
		/*
		 * The point keeps its old assignment, so the next assignment step
		 * sees it move and the donor's mean is recomputed then.
		 */
		w->counts[w->assign[far]]--;
		w->counts[j] = 1;
		w->dist[far] = -1;		/* never picked twice */
		repaired++;
	}
	return repaired;
}

QtStatus
qt_kmeans(const float *x, int64_t n, int d, int k, const QtKmeansParams *p,
		  void *work, size_t work_bytes, float *centroids,
		  QtKmeansStats *stats, char *err)
{
	KmWork		w;
	QtRng		rng;
	int64_t		n_used;
	char	   *base;

	memset(stats, 0, sizeof(*stats));
	if (n < 0 || d < 1 || k < 1 || p->niter < 0)
	{
		snprintf(err, QT_ERRMSG_LEN, "k-means needs n >= 0, d >= 1, k >= 1 and niter >= 0 (got %lld, %d, %d, %d)",
				 (long long) n, d, k, p->niter);
		return QT_EINVAL;
	}
	if (qt_kmeans_workspace(n, d, k, p) == 0)
	{
		snprintf(err, QT_ERRMSG_LEN, "k-means workspace for %lld points, %d dimensions and %d centroids is too large",
				 (long long) n, d, k);
		return QT_ELIMIT;
	}
	if (work_bytes < qt_kmeans_workspace(n, d, k, p))
	{
		snprintf(err, QT_ERRMSG_LEN, "k-means workspace too small (please report a bug)");
		return QT_EINVAL;
	}
	base = (char *) (((uintptr_t) work + WORK_ALIGN - 1) & ~(uintptr_t) (WORK_ALIGN - 1));
	km_layout(&w, base, n, d, k, p);
	qt_rng_seed(&rng, p->seed);

	n_used = n_used_of(n, p);
	stats->n_used = n_used;
	if (w.pts)
	{
		/* a uniform sample, in the points' order */
		int64_t		chosen = 0;

		for (int64_t i = 0; i < n && chosen < n_used; i++)
			if ((double) (n - i) * qt_rng_double(&rng) < (double) (n_used - chosen))
				memcpy(w.pts + (chosen++) * d, x + i * d, sizeof(float) * d);
		x = w.pts;
	}

	if (n_used <= k)
	{
		/* every point is a centroid; the rest repeat them (zeros without points) */
		for (int j = 0; j < k; j++)
		{
			if (n_used == 0)
				memset(centroids + (size_t) j * d, 0, sizeof(float) * d);
			else
				memcpy(centroids + (size_t) j * d, x + (j % n_used) * d, sizeof(float) * d);
		}
		return QT_OK;
	}

	km_init(x, n_used, d, k, p, &rng, &w, centroids);
	qt_row_norms(x, n_used, d, w.xnorm);

	for (int it = 0;; it++)
	{
		int64_t		changed = 0;
		double		inertia = 0;
		int64_t		rep;

		qt_row_norms(centroids, k, d, w.cnorm);
		if (p->use_reference)
		{
			/* the reference writes fresh assignments; count changes against a copy */
			for (int64_t b = 0; b < n_used; b += 4096)
			{
				int64_t		nb = n_used - b < 4096 ? n_used - b : 4096;
				int32_t		old[4096];

				memcpy(old, w.assign + b, sizeof(int32_t) * nb);
				qt_nearest_ref(x + b * d, d, nb, d, centroids, k, w.assign + b, w.dist + b);
				for (int64_t i = 0; i < nb; i++)
					changed += (it == 0 || old[i] != w.assign[b + i]);
			}
		}
		else
		{
			int			block = nearest_block(k);

			for (int64_t b = 0; b < n_used; b += block)
			{
				int64_t		nb = n_used - b < block ? n_used - b : block;
				int32_t		old[NEAREST_MAX_BLOCK];

				memcpy(old, w.assign + b, sizeof(int32_t) * nb);
				qt_nearest(x + b * d, d, nb, d, centroids, k, w.cnorm, w.scratch,
						   w.assign + b, NULL);
				for (int64_t i = 0; i < nb; i++)
				{
					/* distance from the same dot products would need another pass: recompute */
					const float *xi = x + (b + i) * d;
					const float *c = centroids + (size_t) w.assign[b + i] * d;
					float		s = 0;

					for (int t = 0; t < d; t++)
					{
						float		e = xi[t] - c[t];

						s += e * e;
					}
					w.dist[b + i] = s;
					changed += (it == 0 || old[i] != w.assign[b + i]);
				}
			}
		}
		for (int64_t i = 0; i < n_used; i++)
			inertia += w.dist[i];
		stats->inertia = inertia;
		if (it == p->niter || changed == 0)
			break;

		/* update: each centroid becomes the mean of its points */
		memset(w.sums, 0, sizeof(double) * (size_t) k * d);
		memset(w.counts, 0, sizeof(int64_t) * (size_t) k);
		for (int64_t i = 0; i < n_used; i++)
		{
			double	   *s = w.sums + (size_t) w.assign[i] * d;
			const float *xi = x + i * d;

			w.counts[w.assign[i]]++;
			for (int t = 0; t < d; t++)
				s[t] += xi[t];
		}
		for (int j = 0; j < k; j++)
			if (w.counts[j] > 0)
				for (int t = 0; t < d; t++)
					centroids[(size_t) j * d + t] = (float) (w.sums[(size_t) j * d + t] / w.counts[j]);
		rep = km_repair(x, n_used, d, k, &w, centroids);
		stats->repaired += rep;
		stats->iterations++;
	}
	return QT_OK;
}
