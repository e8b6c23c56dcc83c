/*
 * test_pq.c: unit tests of k-means, PQ and RVQ (floor 1), outside the
 * server.  Every fast path is checked against its plain reference.  Prints TAP.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kmeans.h"
#include "pq.h"
#include "pqformat.h"
#include "fastscan.h"
#include "tap.h"

/* named limits */
#define NEAR_TIE_REL	1e-4	/* fast and reference assignments may differ only on ties this close */
#define DIST_REL_TOL	1e-4	/* fast squared distances against the double reference */
#define ADC_REL_TOL		1e-4	/* ADC sums against the distance to the decoded vector */

static QtRng trng;

static float
randn(void)
{
	double		u1 = qt_rng_double(&trng) + 1e-300;
	double		u2 = qt_rng_double(&trng);

	return (float) (sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2));
}

static void *
xmalloc(size_t n)
{
	void	   *p = malloc(n ? n : 1);

	if (!p)
	{
		fprintf(stderr, "out of memory\n");
		exit(2);
	}
	return p;
}

/* n points in d dims: a mixture of c Gaussians (centres N(0, 25), spread sigma) */
static float *
mixture(int64_t n, int d, int c, float sigma, float *centres)
{
	float	   *x = xmalloc(sizeof(float) * n * d);
	float	   *ctr = centres ? centres : xmalloc(sizeof(float) * c * d);

	for (int64_t i = 0; i < (int64_t) c * d; i++)
		ctr[i] = 5.0f * randn();
	for (int64_t i = 0; i < n; i++)
	{
		int			k = (int) (i % c);

		for (int t = 0; t < d; t++)
			x[i * d + t] = ctr[k * d + t] + sigma * randn();
	}
	if (!centres)
		free(ctr);
	return x;
}

static double
l2sq_d(const float *a, const float *b, int d)
{
	double		s = 0;

	for (int t = 0; t < d; t++)
		s += ((double) a[t] - b[t]) * ((double) a[t] - b[t]);
	return s;
}

/* exact squared distance from x_i to its assigned centroid, and to the best one */
static int
assignment_ok(const float *x, int d, const float *c, int k, int32_t a)
{
	double		best = 1e300,
				mine = l2sq_d(x, c + (size_t) a * d, d);

	for (int j = 0; j < k; j++)
	{
		double		v = l2sq_d(x, c + (size_t) j * d, d);

		if (v < best)
			best = v;
	}
	return mine <= best * (1 + NEAR_TIE_REL) + 1e-6;
}

static int	hook_calls = 0;
static void
count_hook(void)
{
	hook_calls++;
}

static void
test_rng(void)
{
	QtRng		a,
				b;
	int			same = 1,
				inrange = 1;
	double		mean = 0;
	int64_t		idx[100];
	int			sorted = 1;

	qt_rng_seed(&a, 42);
	qt_rng_seed(&b, 42);
	for (int i = 0; i < 1000; i++)
		same &= qt_rng_next(&a) == qt_rng_next(&b);
	ok(same, "rng: the same seed gives the same sequence");
	qt_rng_seed(&a, 1);
	for (int i = 0; i < 100000; i++)
	{
		double		u = qt_rng_double(&a);
		uint64_t	r = qt_rng_below(&a, 7);

		inrange &= u >= 0 && u < 1 && r < 7;
		mean += u;
	}
	ok(inrange && fabs(mean / 100000 - 0.5) < 0.01, "rng: doubles in [0,1) with mean 1/2, below(n) in [0,n)");
	qt_rng_seed(&a, 3);
	qt_sample_indices(&a, 1000, 100, idx);
	for (int i = 1; i < 100; i++)
		sorted &= idx[i] > idx[i - 1];
	ok(sorted && idx[0] >= 0 && idx[99] < 1000, "Algorithm S: 100 distinct increasing indices of 1000");
}

static void
test_nearest(void)
{
	int64_t		n = 3000;
	int			d = 37,
				k = 53;
	float	   *x = mixture(n, d, 10, 1.0f, NULL);
	float	   *c = mixture(k, d, k, 0.0f, NULL);
	float	   *cn = xmalloc(sizeof(float) * k);
	float	   *scratch = xmalloc(sizeof(float) * qt_nearest_scratch(n, k));
	int32_t    *af = xmalloc(sizeof(int32_t) * n),
			   *ar = xmalloc(sizeof(int32_t) * n);
	float	   *df = xmalloc(sizeof(float) * n),
			   *dr = xmalloc(sizeof(float) * n);
	int			same = 0,
				good = 1,
				dist_ok = 1;

	qt_row_norms(c, k, d, cn);
	qt_nearest(x, d, n, d, c, k, cn, scratch, af, df);
	qt_nearest_ref(x, d, n, d, c, k, ar, dr);
	for (int64_t i = 0; i < n; i++)
	{
		same += af[i] == ar[i];
		good &= assignment_ok(x + i * d, d, c, k, af[i]);
		if (af[i] == ar[i])
			dist_ok &= fabs(df[i] - dr[i]) <= DIST_REL_TOL * (dr[i] + 1) + 1e-3;
	}
	ok(good, "nearest (sgemm): every assignment is the nearest centroid up to a near tie");
	ok(same >= n - 3, "nearest (sgemm): agrees with the reference on all but near ties");
	ok(dist_ok, "nearest (sgemm): squared distances match the reference");

	/* strided rows: the last 8 dimensions of each point, as PQ uses them */
	{
		int			good2 = 1;

		qt_row_norms(c, k, 8, cn);	/* centroids read as k x 8 */
		qt_nearest(x + d - 8, d, n, 8, c, k, cn, scratch, af, NULL);
		qt_nearest_ref(x + d - 8, d, n, 8, c, k, ar, NULL);
		for (int64_t i = 0; i < n; i++)
			good2 &= af[i] == ar[i] || assignment_ok(x + i * d + d - 8, 8, c, k, af[i]);
		ok(good2, "nearest: strided sub-vectors (ldx > d) match the reference");
	}
	free(x);
	free(c);
	free(cn);
	free(scratch);
	free(af);
	free(ar);
	free(df);
	free(dr);
}

static QtStatus
run_kmeans(const float *x, int64_t n, int d, int k, QtKmeansParams *p, float *cent, QtKmeansStats *st)
{
	size_t		ws = qt_kmeans_workspace(n, d, k, p);
	void	   *w = xmalloc(ws);
	char		err[QT_ERRMSG_LEN];
	QtStatus	s = qt_kmeans(x, n, d, k, p, w, ws, cent, st, err);

	if (s != QT_OK)
		fprintf(stderr, "# kmeans: %s\n", err);
	free(w);
	return s;
}

static void
test_kmeans(void)
{
	int			d = 16,
				c = 8;
	int64_t		n = 4000;
	float		truth[8 * 16];
	float	   *x;
	float	   *cent = xmalloc(sizeof(float) * 64 * d),
			   *cent2 = xmalloc(sizeof(float) * 64 * d);
	QtKmeansParams p = {.niter = 25, .seed = 7};
	QtKmeansStats st,
				st2;
	int			found = 0;
	double		prev = 1e300;
	int			monotone = 1;

	x = mixture(n, d, c, 0.3f, truth);
	ok(run_kmeans(x, n, d, c, &p, cent, &st) == QT_OK, "kmeans: trains 8 centroids on 4000 points");
	/* every true centre is within 0.1 of a centroid (spread 0.3, 500 points each) */
	for (int a = 0; a < c; a++)
	{
		double		best = 1e300;

		for (int b = 0; b < c; b++)
		{
			double		v = l2sq_d(truth + a * d, cent + b * d, d);

			if (v < best)
				best = v;
		}
		found += sqrt(best) < 0.1;
	}
	ok(found == c, "kmeans++: recovers all 8 well-separated mixture centres");
	ok(fabs(st.inertia / n - d * 0.09) < d * 0.09 * 0.1,
	   "kmeans: mean squared error ~ d * sigma^2 at the optimum");

	ok(run_kmeans(x, n, d, c, &p, cent2, &st2) == QT_OK &&
	   memcmp(cent, cent2, sizeof(float) * c * d) == 0, "kmeans: the same seed gives the same centroids, bit for bit");

	/* inertia never rises with more iterations (same seed, same init) */
	for (int it = 0; it <= 6; it++)
	{
		QtKmeansParams pi = {.niter = it, .seed = 11};

		run_kmeans(x, n, d, 32, &pi, cent, &st);
		monotone &= st.inertia <= prev * (1 + 1e-6);
		prev = st.inertia;
	}
	ok(monotone, "kmeans: inertia is non-increasing in the number of Lloyd iterations");

	/* the reference assignment trains to the same quality */
	{
		QtKmeansParams pr = {.niter = 10, .seed = 5, .use_reference = true};
		QtKmeansParams pf = {.niter = 10, .seed = 5};

		run_kmeans(x, n, d, 16, &pr, cent, &st);
		run_kmeans(x, n, d, 16, &pf, cent2, &st2);
		ok(fabs(st.inertia - st2.inertia) <= 1e-3 * st.inertia,
		   "kmeans: the sgemm path and the reference reach the same inertia");
	}

	/* subsampling: max_points bounds the points used */
	{
		QtKmeansParams ps = {.niter = 10, .seed = 5, .max_points = 500};

		run_kmeans(x, n, d, c, &ps, cent, &st);
		ok(st.n_used == 500, "kmeans: max_points = 500 trains on 500 points");
	}

	/* fewer points than centroids: the points, repeated; none: zeros */
	{
		float		tiny[3 * 2] = {1, 2, 3, 4, 5, 6};
		float		out[5 * 2];
		QtKmeansParams pt = {.niter = 5, .seed = 1};
		int			ok1;

		ok1 = run_kmeans(tiny, 3, 2, 5, &pt, out, &st) == QT_OK &&
			memcmp(out, tiny, sizeof(tiny)) == 0 && out[6] == 1 && out[7] == 2 && out[8] == 3;
		ok(ok1, "kmeans: n < k gives the points themselves, repeated");
		ok(run_kmeans(tiny, 0, 2, 5, &pt, out, &st) == QT_OK && out[0] == 0 && out[9] == 0,
		   "kmeans: n = 0 gives zero centroids");
	}

	/* empty cluster repair: 200 points at 0 and one at 1000; a random init from the mass
	 * makes two equal centroids, so one cluster is empty after the first assignment */
	{
		float	   *y = xmalloc(sizeof(float) * 201);
		float		out[2];
		int			repaired_ok = 0;

		for (int i = 0; i < 200; i++)
			y[i] = 0;
		y[200] = 1000;
		/* find a seed whose random init takes both centroids from the mass */
		for (uint64_t seed = 1; seed < 50 && !repaired_ok; seed++)
		{
			QtKmeansParams pe = {.niter = 10, .seed = seed, .init_random = true};

			run_kmeans(y, 201, 1, 2, &pe, out, &st);
			if (st.repaired > 0)
				repaired_ok = (fabsf(out[0] - 1000) < 1e-3 || fabsf(out[1] - 1000) < 1e-3) &&
					st.inertia < 1e-3;
		}
		ok(repaired_ok, "kmeans: an empty cluster is re-seeded with the farthest point");
		free(y);
	}

	/* interrupts: the hook runs during training */
	{
		QtKmeansParams ph = {.niter = 3, .seed = 2};

		hook_calls = 0;
		qt_interrupt_hook = count_hook;
		run_kmeans(x, n, d, c, &ph, cent, &st);
		qt_interrupt_hook = NULL;
		ok(hook_calls >= 4, "kmeans: calls the interrupt hook in its loops");
	}

	/* argument and size checks */
	{
		char		err[QT_ERRMSG_LEN];
		QtKmeansParams pb = {.niter = -1};

		ok(qt_kmeans(x, n, d, 0, &p, NULL, 0, cent, &st, err) == QT_EINVAL &&
		   qt_kmeans(x, n, d, c, &pb, NULL, 0, cent, &st, err) == QT_EINVAL,
		   "kmeans: k = 0 and niter < 0 are rejected");
		ok(qt_kmeans_workspace(INT64_MAX / 4, 1 << 20, 1 << 20, &p) == 0,
		   "kmeans: a workspace size that overflows is reported as 0");
	}
	free(x);
	free(cent);
	free(cent2);
}

static float *
train_pq(const float *x, int64_t n, int d, int m, int nbits, double *mse)
{
	QtKmeansParams p = {.niter = 20, .seed = 3};
	size_t		ws = qt_pq_train_workspace(n, d, m, nbits, &p);
	void	   *w = xmalloc(ws);
	float	   *cent = xmalloc(sizeof(float) * (size_t) d * (1 << nbits));
	char		err[QT_ERRMSG_LEN];

	if (qt_pq_train(x, n, d, m, nbits, &p, w, ws, cent, mse, err) != QT_OK)
	{
		fprintf(stderr, "# pq_train: %s\n", err);
		exit(2);
	}
	free(w);
	return cent;
}

static void
test_pq(void)
{
	int			d = 32;
	int64_t		n = 4000,
				nq = 300;
	float	   *x = mixture(n, d, 40, 0.5f, NULL);
	double		mse4,
				mse8,
				mse8b,
				mse8m16;
	char		err[QT_ERRMSG_LEN];
	int			bits_list[] = {8, 4, 5, 3, 1};

	ok(qt_pq_check_shape(32, 5, 8, err) == QT_EINVAL && strstr(err, "divide") != NULL,
	   "pq: m must divide the dimension");
	ok(qt_pq_check_shape(32, 4, 9, err) == QT_EINVAL && qt_pq_check_shape(32, 4, 0, err) == QT_EINVAL,
	   "pq: nbits outside 1..8 is rejected");
	ok(qt_code_size(16, 8) == 16 && qt_code_size(16, 4) == 8 && qt_code_size(5, 3) == 2,
	   "pq: code sizes pack m * nbits bits");

	free(train_pq(x, n, d, 8, 4, &mse4));
	free(train_pq(x, n, d, 8, 6, &mse8));
	free(train_pq(x, n, d, 16, 6, &mse8m16));
	ok(mse8 < mse4, "pq: more bits per code lowers the training error");
	ok(mse8m16 < mse8, "pq: more subquantizers lower the training error");

	for (int bi = 0; bi < 5; bi++)
	{
		int			nbits = bits_list[bi],
					m = 8;
		float	   *cent = train_pq(x, n, d, m, nbits, &mse8b);
		QtPq		pq = {.d = d, .m = m, .nbits = nbits, .dsub = d / m, .ksub = 1 << nbits, .centroids = cent};
		size_t		cs = qt_code_size(m, nbits);
		uint8_t    *cf = xmalloc(cs * nq),
				   *cr = xmalloc(cs * nq);
		float	   *scratch = xmalloc(sizeof(float) * qt_pq_encode_scratch(&pq, nq));
		float	   *dec = xmalloc(sizeof(float) * nq * d);
		float	   *lut = xmalloc(sizeof(float) * m * pq.ksub),
				   *nlut = xmalloc(sizeof(float) * m * pq.ksub);
		float	   *scan = xmalloc(sizeof(float) * nq);
		const float *q = x + 1234 * d;
		int			enc_ok = 1,
					adc_ok = 1,
					ip_ok = 1,
					scan_same = 1,
					norm_ok = 1,
					mism = 0;
		char		name[128];
		double		mse_check = 0;

		qt_pq_encode(&pq, NULL, x, nq, cf, scratch);
		qt_pq_encode_ref(&pq, x, nq, cr);
		qt_pq_decode(&pq, cf, nq, dec);
		for (int64_t i = 0; i < nq; i++)
		{
			for (int j = 0; j < m; j++)
			{
				unsigned	a = qt_code_at(cf + i * cs, j, nbits),
							b = qt_code_at(cr + i * cs, j, nbits);

				if (a != b)
				{
					mism++;
					enc_ok &= assignment_ok(x + i * d + j * pq.dsub, pq.dsub,
											cent + (size_t) j * pq.ksub * pq.dsub, pq.ksub, (int32_t) a);
				}
			}
			mse_check += l2sq_d(x + i * d, dec + i * d, d);
		}
		snprintf(name, sizeof(name), "pq %d-bit: fast encoder matches the reference (%d near ties)", nbits, mism);
		ok(enc_ok && mism <= 2, "%s", name);

		qt_pq_lut(&pq, q, QT_METRIC_L2, lut);
		qt_adc_scan(lut, m, nbits, cf, cs, nq, scan);
		for (int64_t i = 0; i < nq; i++)
		{
			double		exact = l2sq_d(q, dec + i * d, d);
			float		r = qt_adc_ref(lut, m, nbits, cf + i * cs);

			adc_ok &= fabs(r - exact) <= ADC_REL_TOL * (exact + 1);
			scan_same &= r == scan[i];
		}
		snprintf(name, sizeof(name), "pq %d-bit: L2 ADC equals the distance to the decoded vector", nbits);
		ok(adc_ok, "%s", name);
		snprintf(name, sizeof(name), "pq %d-bit: the scan kernel returns the reference's floats exactly", nbits);
		ok(scan_same, "%s", name);

		qt_pq_lut(&pq, q, QT_METRIC_IP, lut);
		qt_pq_norm_lut(&pq, nlut);
		for (int64_t i = 0; i < nq; i++)
		{
			double		ip = 0,
						nn = 0;

			for (int t = 0; t < d; t++)
			{
				ip += (double) q[t] * dec[i * d + t];
				nn += (double) dec[i * d + t] * dec[i * d + t];
			}
			ip_ok &= fabs(qt_adc_ref(lut, m, nbits, cf + i * cs) - ip) <= ADC_REL_TOL * (fabs(ip) + 1);
			norm_ok &= fabs(qt_adc_ref(nlut, m, nbits, cf + i * cs) - nn) <= ADC_REL_TOL * (nn + 1);
		}
		snprintf(name, sizeof(name), "pq %d-bit: inner-product and norm tables match the decoded vector", nbits);
		ok(ip_ok && norm_ok, "%s", name);

		free(cent);
		free(cf);
		free(cr);
		free(scratch);
		free(dec);
		free(lut);
		free(nlut);
		free(scan);
	}

	/* the IVF-PQ tables against the reference lookup tables */
	{
		int			m = 8,
					nbits = 6;
		double		mse;
		float	   *cent = train_pq(x, n, d, m, nbits, &mse);
		QtPq		pq = {.d = d, .m = m, .nbits = nbits, .dsub = d / m, .ksub = 1 << nbits, .centroids = cent};
		int			nl = 5;
		size_t		tsz = (size_t) m * pq.ksub;
		float	   *coarse = x + 100 * d;	/* five points as coarse centroids */
		float	   *cn = xmalloc(sizeof(float) * tsz),
				   *T = xmalloc(sizeof(float) * tsz * nl),
				   *Q = xmalloc(sizeof(float) * tsz),
				   *lut = xmalloc(sizeof(float) * tsz),
				   *ref = xmalloc(sizeof(float) * tsz),
				   *r = xmalloc(sizeof(float) * d);
		const float *q = x + 2345 * d;
		uint8_t    *codes = xmalloc(qt_code_size(m, nbits) * 50);
		int			dot_ok = 1,
					l2_ok = 1;

		qt_pq_dot_table(&pq, q, Q);
		qt_pq_lut(&pq, q, QT_METRIC_IP, ref);
		for (size_t i = 0; i < tsz; i++)
			dot_ok &= fabsf(Q[i] - ref[i]) <= 1e-4f * (1 + fabsf(ref[i]));
		ok(dot_ok, "qt_pq_dot_table (sgemv) equals the inner-product lookup table");

		qt_pq_norm_lut(&pq, cn);
		qt_pq_precompute(&pq, cn, coarse, nl, T);
		qt_pq_encode_ref(&pq, x + 3000 * d, 50, codes);
		for (int l = 0; l < nl; l++)
		{
			double		base = l2sq_d(q, coarse + l * d, d);

			for (int t = 0; t < d; t++)
				r[t] = q[t] - coarse[l * d + t];
			qt_pq_lut(&pq, r, QT_METRIC_L2, ref);
			qt_pq_lut_from_tables(T + (size_t) l * tsz, Q, (int64_t) tsz, lut);
			for (int i = 0; i < 50; i++)
			{
				const uint8_t *c = codes + (size_t) i * qt_code_size(m, nbits);
				double		want = qt_adc_ref(ref, m, nbits, c);
				double		got = base + qt_adc_ref(lut, m, nbits, c);

				l2_ok &= fabs(got - want) <= 1e-3 * (1 + want + base);
			}
		}
		ok(l2_ok, "precomputed tables: ||q - c||^2 + ADC(T_l - 2Q) equals ADC of the residual's L2 table");
		free(cent);
		free(cn);
		free(T);
		free(Q);
		free(lut);
		free(ref);
		free(r);
		free(codes);
	}

	/* interrupt hook during training */
	hook_calls = 0;
	qt_interrupt_hook = count_hook;
	free(train_pq(x, 2000, d, 4, 4, &mse4));
	qt_interrupt_hook = NULL;
	ok(hook_calls >= 4, "pq: training calls the interrupt hook");
	free(x);
}

static void
test_rvq(void)
{
	int			d = 24,
				nbits = 5;
	int64_t		n = 3000,
				nq = 200;
	float	   *x = mixture(n, d, 30, 0.7f, NULL);
	double		mse[4];
	char		err[QT_ERRMSG_LEN];
	float	   *cent = NULL;

	ok(qt_rvq_check_shape(24, 0, 8, err) == QT_EINVAL && qt_rvq_check_shape(24, 65, 8, err) == QT_EINVAL,
	   "rvq: levels outside 1..64 are rejected");
	for (int levels = 1; levels <= 3; levels++)
	{
		QtKmeansParams p = {.niter = 15, .seed = 9};
		size_t		ws = qt_rvq_train_workspace(n, d, levels, nbits, &p);
		void	   *w = xmalloc(ws);

		free(cent);
		cent = xmalloc(sizeof(float) * levels * (1 << nbits) * d);
		ok(qt_rvq_train(x, n, d, levels, nbits, &p, w, ws, cent, &mse[levels], err) == QT_OK,
		   "rvq: trains");
		free(w);
	}
	ok(mse[2] < mse[1] && mse[3] < mse[2], "rvq: every level lowers the training error");

	{
		QtRvq		rvq = {.d = d, .levels = 3, .nbits = nbits, .ksub = 1 << nbits, .centroids = cent};
		size_t		cs = qt_code_size(3, nbits);
		uint8_t    *cf = xmalloc(cs * nq),
				   *cr = xmalloc(cs * nq);
		float	   *nf = xmalloc(sizeof(float) * nq),
				   *nr = xmalloc(sizeof(float) * nq);
		float	   *scratch = xmalloc(sizeof(float) * qt_rvq_encode_scratch(&rvq, nq));
		float	   *dec = xmalloc(sizeof(float) * nq * d);
		float	   *lut = xmalloc(sizeof(float) * 3 * rvq.ksub);
		const float *q = x + 777 * d;
		double		qn = 0;
		int			same = 0,
					l2_ok = 1,
					norm_ok = 1;

		qt_rvq_encode(&rvq, NULL, x, nq, cf, nf, scratch);
		qt_rvq_encode_ref(&rvq, x, nq, cr, nr);
		qt_rvq_decode(&rvq, cf, nq, dec);
		for (int64_t i = 0; i < nq; i++)
			same += memcmp(cf + i * cs, cr + i * cs, cs) == 0;
		ok(same >= nq - 2, "rvq: fast greedy encoder matches the reference but for near ties");
		qt_rvq_lut(&rvq, q, lut);
		for (int t = 0; t < d; t++)
			qn += (double) q[t] * q[t];
		for (int64_t i = 0; i < nq; i++)
		{
			double		exact = l2sq_d(q, dec + i * d, d),
						nn = 0;
			double		adc = qn - 2.0 * qt_adc_ref(lut, 3, nbits, cf + i * cs) + nf[i];

			for (int t = 0; t < d; t++)
				nn += (double) dec[i * d + t] * dec[i * d + t];
			norm_ok &= fabs(nf[i] - nn) <= 1e-5 * (nn + 1);
			l2_ok &= fabs(adc - exact) <= ADC_REL_TOL * (qn + nn + 1);
		}
		ok(norm_ok, "rvq: the stored norm is the squared norm of the decoded vector");
		ok(l2_ok, "rvq: ||q||^2 - 2 ADC(ip) + norm equals the L2 distance to the decoded vector");
		free(cf);
		free(cr);
		free(nf);
		free(nr);
		free(scratch);
		free(dec);
		free(lut);
	}
	free(cent);
	free(x);
}

static void
test_distances(void)
{
	float		a[7] = {1, 2, 3, 4, 5, 6, 7},
				b[7] = {7, 6, 5, 4, 3, 2, 1};

	int			good = 1;

	ok(qt_l2_sq(a, b, 7) == 112.0f && qt_dot(a, b, 7) == 84.0f, "l2_sq and dot on a 7-vector (tail loop)");
	/* every length 1..70 (all vector and tail paths) against double sums */
	for (int d = 1; d <= 70; d++)
	{
		float		x[70],
					y[70];
		double		l2 = 0,
					ip = 0;

		for (int t = 0; t < d; t++)
		{
			x[t] = randn();
			y[t] = randn();
			l2 += ((double) x[t] - y[t]) * ((double) x[t] - y[t]);
			ip += (double) x[t] * y[t];
		}
		good &= fabs(qt_l2_sq(x, y, d) - l2) <= 1e-5 * (1 + l2) && fabs(qt_dot(x, y, d) - ip) <= 1e-5 * (1 + fabs(l2));
	}
	ok(good, "l2_sq and dot of every length 1..70 match double-precision sums");
	ok(qt_exact_distance(QT_METRIC_L2, a, b, 7) == sqrt(112.0) && qt_exact_distance(QT_METRIC_IP, a, b, 7) == -84.0 &&
	   isnan(qt_exact_distance(QT_METRIC_COSINE, a, (float[7]) {0}, 7)) &&
	   qt_exact_distance(QT_METRIC_COSINE, a, a, 7) < 1e-6, "exact distances: L2, negative inner product, cosine (NaN for zero)");
}

static void
test_formats(void)
{
	char		err[QT_ERRMSG_LEN];
	QtCbHeader	h = {0};
	size_t		total = 0;
	uint8_t		wire[QT_CB_WIRE_HEADER_SIZE];
	QtCbHeader	back = {0};
	uint8_t		code[64],
				codes[3] = {0x21, 0x43, 0x05},
				wcode[64],
				rt[64];
	QtPqcode	c;
	float		f[3] = {1.5f, -0.0f, 3.25e-5f},
				g[3];
	uint8_t		fb[12];

	h.version = QT_CB_VERSION;
	h.kind = QT_CB_PQ;
	h.nbits = 8;
	h.dim = 128;
	h.m = 16;
	ok(qt_cb_check_header(&h, &total, err) == QT_OK && total == 32 + 4 * 256 * 128,
	   "codebook header: PQ 128 dims, m 16, 8 bits is 131,104 bytes");
	h.reserved2 = 1;
	ok(qt_cb_check_header(&h, &total, err) == QT_EINVAL, "codebook header: reserved fields must be zero");
	h.reserved2 = 0;
	h.version = 2;
	ok(qt_cb_check_header(&h, &total, err) == QT_EINVAL, "codebook header: unknown version rejected");
	h.version = QT_CB_VERSION;
	h.kind = QT_CB_RVQ;
	h.m = 64;
	h.dim = 16000;
	ok(qt_cb_check_header(&h, &total, err) == QT_OK && total == 32 + (size_t) 4 * 64 * 256 * 16000 &&
	   total <= QT_MAX_BYTES, "codebook header: the largest RVQ (64 levels x 256 x 16000) still fits 1 GB");
	h.kind = 3;
	ok(qt_cb_check_header(&h, &total, err) == QT_EINVAL, "codebook header: unknown kind rejected");

	h.kind = QT_CB_RVQ;
	h.m = 4;
	h.dim = 96;
	qt_cb_header_to_wire(&h, wire);
	qt_cb_header_from_wire(&back, wire);
	ok(wire[4] == 0 && wire[7] == 96 && wire[11] == 4 && back.dim == 96 && back.m == 4 &&
	   back.kind == QT_CB_RVQ && back.nbits == 8, "codebook wire header: big-endian and round-trips");
	qt_floats_to_be(f, 3, fb);
	qt_floats_from_be(fb, 3, g);
	ok(fb[0] == 0x3f && fb[1] == 0xc0 && memcmp(f, g, sizeof(f)) == 0 && signbit(g[1]),
	   "floats to and from big-endian, bit for bit (negative zero kept)");

	/* pqcode: PQ m = 5 x 4 bits = 3 code bytes, the last nibble unused */
	qt_pqcode_write(code, QT_CB_PQ, 5, 4, 0x0123456789abcdefULL, 0, codes);
	ok(qt_pqcode_parse(code, qt_pqcode_size(QT_CB_PQ, 5, 4), &c, err) == QT_OK &&
	   c.m == 5 && c.nbits == 4 && c.id == 0x0123456789abcdefULL && c.code_size == 3 &&
	   qt_code_at(c.codes, 4, 4) == 5, "pqcode: write then parse (PQ, 5 x 4 bits)");
	code[QT_PQCODE_HEADER_SIZE + 2] = 0x15;
	ok(qt_pqcode_parse(code, qt_pqcode_size(QT_CB_PQ, 5, 4), &c, err) == QT_EINVAL,
	   "pqcode: bits after the last code must be zero");
	code[QT_PQCODE_HEADER_SIZE + 2] = 0x05;
	ok(qt_pqcode_parse(code, qt_pqcode_size(QT_CB_PQ, 5, 4) + 1, &c, err) == QT_EINVAL &&
	   qt_pqcode_parse(code, 8, &c, err) == QT_EINVAL, "pqcode: wrong lengths rejected");
	qt_pqcode_to_wire(code, qt_pqcode_size(QT_CB_PQ, 5, 4), wcode);
	qt_pqcode_from_wire(wcode, qt_pqcode_size(QT_CB_PQ, 5, 4), rt);
	ok(wcode[5] == 5 && wcode[8] == 0x01 && wcode[15] == 0xef &&
	   memcmp(rt, code, qt_pqcode_size(QT_CB_PQ, 5, 4)) == 0, "pqcode wire form: m and id big-endian, round-trips");

	/* RVQ code with its norm */
	qt_pqcode_write(code, QT_CB_RVQ, 2, 8, 42, 2.5f, codes);
	qt_pqcode_to_wire(code, qt_pqcode_size(QT_CB_RVQ, 2, 8), wcode);
	qt_pqcode_from_wire(wcode, qt_pqcode_size(QT_CB_RVQ, 2, 8), rt);
	ok(qt_pqcode_parse(rt, qt_pqcode_size(QT_CB_RVQ, 2, 8), &c, err) == QT_OK && c.norm == 2.5f &&
	   wcode[16] == 0x40 && wcode[17] == 0x20, "pqcode: RVQ norm stored, big-endian on the wire");
	f[0] = -1;
	memcpy(code + QT_PQCODE_HEADER_SIZE, f, 4);
	ok(qt_pqcode_parse(code, qt_pqcode_size(QT_CB_RVQ, 2, 8), &c, err) == QT_EINVAL,
	   "pqcode: a negative RVQ norm is rejected");
}

static void
test_fastscan(void)
{
	const char *kernel = qt_fs_init();
	int			ms[] = {1, 2, 7, 16, 32, 64, 256};
	int			same_ref = 1,
				same_avx = 1,
				within = 1,
				q_ok = 1,
				quantized = 1,
				roundtrip = 1;
	char		name[160];

	for (int mi = 0; mi < 7; mi++)
	{
		int			m = ms[mi];
		int64_t		nblocks = 3 + mi;
		size_t		cs = qt_code_size(m, 4);
		size_t		stride = qt_fs_rows_size(m) + 40;	/* blocks interleaved with other data */
		uint8_t    *blocks = xmalloc(stride * nblocks),
				   *codes = xmalloc(cs * nblocks * 32),
				   *back = xmalloc(cs),
				   *q = xmalloc((size_t) m * 16);
		float	   *lut = xmalloc(sizeof(float) * m * 16);
		uint16_t   *s_ref = xmalloc(sizeof(uint16_t) * nblocks * 32),
				   *s_avx = xmalloc(sizeof(uint16_t) * nblocks * 32);
		float		scale,
					bias;

		for (size_t i = 0; i < stride * (size_t) nblocks; i++)
			blocks[i] = 0xee;	/* the gaps must not matter */
		for (int64_t i = 0; i < nblocks * 32; i++)
		{
			uint8_t    *c = codes + i * cs;

			memset(c, 0, cs);
			for (int j = 0; j < m; j++)
				qt_put_code(c, j, 4, (unsigned) qt_rng_below(&trng, 16));
			qt_fs_clear(blocks + (i / 32) * stride, m, (int) (i % 32));
			qt_fs_set(blocks + (i / 32) * stride, m, (int) (i % 32), c);
		}
		for (int64_t i = 0; i < nblocks * 32; i++)
		{
			qt_fs_get(blocks + (i / 32) * stride, m, (int) (i % 32), back);
			roundtrip &= memcmp(back, codes + i * cs, cs) == 0;
		}
		for (int i = 0; i < m * 16; i++)
			lut[i] = (float) (100.0 * qt_rng_double(&trng) * (1 + i % 5));
		quantized &= qt_fs_quantize_lut(lut, m, q, &scale, &bias);
		qt_fs_scan_ref(blocks, stride, nblocks, m, q, s_ref);
		for (int64_t i = 0; i < nblocks * 32; i++)
		{
			unsigned	want = 0;
			double		adc = 0;

			for (int j = 0; j < m; j++)
			{
				unsigned	c = qt_code_at(codes + i * cs, j, 4);

				want += q[j * 16 + c];
				adc += lut[j * 16 + c];
			}
			same_ref &= s_ref[i] == want;
			/* the 8-bit table loses at most half a step per subquantizer */
			within &= fabs(scale * s_ref[i] + bias - adc) <= m * scale * 0.5 * 1.0001 + 1e-3;
		}
		for (int i = 0; i < m * 16; i++)
		{
			int			j = i / 16;
			float		lo = lut[j * 16];

			for (int c = 1; c < 16; c++)
				lo = lut[j * 16 + c] < lo ? lut[j * 16 + c] : lo;
			q_ok &= fabs(q[i] * scale + lo - lut[i]) <= scale * 0.5 * 1.0001;
		}
		if (qt_fs_scan_avx2_ptr)
		{
			qt_fs_scan_avx2_ptr(blocks, stride, nblocks, m, q, s_avx);
			same_avx &= memcmp(s_ref, s_avx, sizeof(uint16_t) * nblocks * 32) == 0;
		}
		free(blocks);
		free(codes);
		free(back);
		free(q);
		free(lut);
		free(s_ref);
		free(s_avx);
	}
	ok(roundtrip, "fast scan blocks: codes set for each of 32 vectors read back the same (m = 1..256)");
	ok(quantized, "fast scan: finite tables quantize");
	ok(q_ok, "fast scan: each quantized entry is within half a step of the float table");
	ok(same_ref, "fast scan: the reference sums the quantized table at every vector's codes");
	ok(within, "fast scan: scale * sum + bias is within m * scale / 2 of the float ADC");
	snprintf(name, sizeof(name), "fast scan: the AVX2 kernel returns the reference's sums exactly (kernel in use: %s)",
			 kernel);
	if (qt_fs_scan_avx2_ptr)
		ok(same_avx, "%s", name);
	else
		skip(1, "no AVX2 on this CPU or build");
	{
		float		bad[16] = {0};
		uint8_t		q[16];
		float		sc,
					bi;

		bad[3] = NAN;
		ok(!qt_fs_quantize_lut(bad, 1, q, &sc, &bi), "fast scan: a table with NaN is refused");
	}
}

int
main(void)
{
	qt_rng_seed(&trng, 20261122);
	test_rng();
	test_nearest();
	test_kmeans();
	test_pq();
	test_rvq();
	test_distances();
	test_formats();
	test_fastscan();
	return done_testing();
}
