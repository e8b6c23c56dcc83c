/*
 * kmeans.h: seeded k-means for codebook and coarse-quantizer training
 * (floor 1: plain C, no PostgreSQL headers).
 *
 * Arrays are row-major float32: points x (n, d), centroids (k, d).
 * Nothing here allocates: the caller passes a workspace of the size the
 * matching *_workspace function returns, so that an interrupt raised through
 * qt_interrupt_hook (a longjmp in the server) leaks nothing.
 */
#ifndef PGQUANT_KMEANS_H
#define PGQUANT_KMEANS_H

#include "qformat.h"

/* k-means++ runs on at most this many points per centroid (a uniform subset) */
#define QT_KMEANS_INIT_PER_CENTROID 32

/* splitmix64: small, seedable, and the same sequence on every platform */
typedef struct QtRng
{
	uint64_t	s;
} QtRng;

static inline void
qt_rng_seed(QtRng *r, uint64_t seed)
{
	r->s = seed;
}

static inline uint64_t
qt_rng_next(QtRng *r)
{
	uint64_t	z = (r->s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* uniform in [0, 1) with 53 random bits */
static inline double
qt_rng_double(QtRng *r)
{
	return (double) (qt_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

/* uniform in [0, n), n >= 1 (multiply-high; bias below 2^-64 * n) */
static inline uint64_t
qt_rng_below(QtRng *r, uint64_t n)
{
	return (uint64_t) (((unsigned __int128) qt_rng_next(r) * n) >> 64);
}

typedef struct QtKmeansParams
{
	int			niter;			/* Lloyd iterations after initialisation, >= 0 */
	uint64_t	seed;
	int64_t		max_points;		/* train on a uniform sample of at most this many; 0: all */
	bool		init_random;	/* k distinct random points instead of k-means++ (tests) */
	bool		use_reference;	/* assign with qt_nearest_ref (tests) */
} QtKmeansParams;

typedef struct QtKmeansStats
{
	int64_t		n_used;			/* points trained on */
	int			iterations;		/* centroid updates done (stops early when stable) */
	int64_t		repaired;		/* empty clusters re-seeded, over all iterations */
	double		inertia;		/* sum of squared distances to the final centroids */
} QtKmeansStats;

/*
 * Nearest centroid of each of n points.  Point i is x[i * ldx .. + d).
 * cnorm[j] = ||c_j||^2.  dist (may be NULL) gets the squared distance,
 * clamped at 0.  Ties go to the lowest index.
 *
 * qt_nearest is the fast path: distances as ||x||^2 - 2 x.c + ||c||^2 with
 * the dot products from cblas_sgemm over blocks of points; scratch holds
 * qt_nearest_scratch(n, k) floats.  qt_nearest_ref is the plain reference
 * (double precision, direct differences), the oracle in the unit tests.
 */
size_t		qt_nearest_scratch(int64_t n, int k);
void		qt_nearest(const float *x, size_t ldx, int64_t n, int d,
					   const float *c, int k, const float *cnorm, float *scratch,
					   int32_t *assign, float *dist);
void		qt_nearest_ref(const float *x, size_t ldx, int64_t n, int d,
						   const float *c, int k, int32_t *assign, float *dist);

/* ||c_j||^2 for k rows of d floats */
void		qt_row_norms(const float *c, int64_t k, int d, float *out);

/*
 * k-means: initialise (k-means++ over a subset of at most
 * QT_KMEANS_INIT_PER_CENTROID * k points), then Lloyd iterations until
 * p->niter or no assignment changes.  A cluster left empty is re-seeded
 * with the point farthest from its centroid among clusters of two or more.
 * With n_used <= k the centroids are the points themselves, repeated in
 * order (zeros when n == 0).
 *
 * work: qt_kmeans_workspace() bytes (0 means the sizes overflow: QT_ELIMIT).
 */
size_t		qt_kmeans_workspace(int64_t n, int d, int k, const QtKmeansParams *p);
QtStatus	qt_kmeans(const float *x, int64_t n, int d, int k, const QtKmeansParams *p,
					  void *work, size_t work_bytes, float *centroids,
					  QtKmeansStats *stats, char *err);

/*
 * Algorithm S (Knuth): choose m of n indices uniformly, in increasing
 * order, into out (m <= n).
 */
void		qt_sample_indices(QtRng *r, int64_t n, int64_t m, int64_t *out);

#endif							/* PGQUANT_KMEANS_H */
