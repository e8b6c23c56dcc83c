/*
 * test_calib.c: unit tests of the optimizing quantizers (HQQ, GPTQ, AWQ)
 * and the calibration statistics, outside the server.  Prints TAP.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "qcalib.h"
#include "tap.h"

/* Laplace with 0.5% of the weights eight times larger, as sql/init.sql's test_matrix */
static float
rand_heavy(void)
{
	double		m = rng_uniform() < 0.005 ? 8.0 : 1.0;
	double		sign = rng_uniform() < 0.5 ? -1.0 : 1.0;

	return (float) (m * sign * -log(rng_uniform()));
}

static void
fill(float *w, int64_t n, bool heavy)
{
	for (int64_t i = 0; i < n; i++)
		w[i] = heavy ? rand_heavy() : rng_normal();
}

/* a buffer holding a tensor with the given header, zeroed */
static uint8_t *
new_tensor(const QtHeader *h, const QtLayout *l)
{
	uint8_t    *buf = calloc(1, l->total);

	memcpy(buf, h, sizeof(*h));
	return buf;
}

/* relative Frobenius error of a tensor against w (original column order) */
static double
rel_error(const float *w, const uint8_t *buf, const QtLayout *l)
{
	const QtHeader *h = (const QtHeader *) buf;
	int64_t		n = (int64_t) h->rows * h->cols;
	float	   *d = malloc(sizeof(float) * n);
	double		e = 0.0,
				r = 0.0;

	qt_dequantize_ref(buf, l, 0, h->rows, d);
	for (int64_t i = 0; i < n; i++)
	{
		e += ((double) w[i] - d[i]) * ((double) w[i] - d[i]);
		r += (double) w[i] * w[i];
	}
	free(d);
	return sqrt(e / r);
}

static uint8_t *
quantize_rtn(const float *w, int rows, int cols, int bits, int gs, bool sym, QtLayout *l)
{
	QtSpec		spec = {QT_METHOD_RTN, bits, gs, sym};
	QtHeader	h;
	char		err[QT_ERRMSG_LEN];
	uint8_t    *buf;

	if (qt_plan(&spec, w, rows, cols, false, &h, l, err) != QT_OK)
		return NULL;
	buf = new_tensor(&h, l);
	qt_encode(w, buf, l);
	return buf;
}

static uint8_t *
quantize_hqq(const float *w, int rows, int cols, int bits, int gs, bool sym, QtLayout *l)
{
	QtHeader	h;
	char		err[QT_ERRMSG_LEN];
	int64_t		glen = gs == QT_GROUP_PER_CHANNEL ? cols : gs;
	int64_t		ng = rows * ((cols + glen - 1) / glen);
	float	   *scales = malloc(sizeof(float) * ng);
	uint8_t    *zeros = calloc(ng, 1);
	uint8_t    *buf = NULL;

	qt_hqq_matrix(w, rows, cols, glen, bits, sym, &qt_hqq_defaults, scales, zeros);
	if (qt_params_plan(QT_METHOD_HQQ, bits, gs, sym ? 0 : QT_FLAG_ZEROS,
					   qt_params_scale_type(scales, ng), rows, cols, &h, l, err) == QT_OK)
	{
		buf = new_tensor(&h, l);
		qt_params_encode(w, buf, l, scales, zeros);
	}
	free(scales);
	free(zeros);
	return buf;
}

/* mean |w - dequant(w)| of one group under (s, z) as the encoder would store them */
static double
group_l1(const float *g, int n, int bits, float s, int z)
{
	int			maxq = (1 << bits) - 1;
	double		e = 0.0;

	for (int i = 0; i < n; i++)
	{
		float		q = rintf(g[i] / s) + (float) z;

		q = q < 0 ? 0 : q > maxq ? maxq : q;
		e += fabs(g[i] - (q - z) * s);
	}
	return e / n;
}

/*
 * The ratio HQQ / RTN of relative Frobenius error that HQQ must stay under,
 * by bit width, for groups of 64 (measured about 0.79-0.93 at 2 bits,
 * 0.92-0.95 at 3 and 0.97-0.98 at 4).
 */
static const double hqq_ratio_ceiling[9] = {0, 0, 0.95, 0.97, 0.99, 1.0, 1.0, 1.0, 1.0};

static void
test_hqq(void)
{
	enum
	{
		ROWS = 128, COLS = 512
	};
	float	   *w = malloc(sizeof(float) * ROWS * COLS);

	for (int heavy = 0; heavy <= 1; heavy++)
	{
		fill(w, ROWS * COLS, heavy);
		for (int sym = 0; sym <= 1; sym++)
		{
			int			worse = 0,
						invalid = 0;
			double		worst_ratio = 0.0;

			for (int bits = 2; bits <= 8; bits++)
			{
				QtLayout	lr,
							lh;
				uint8_t    *r = quantize_rtn(w, ROWS, COLS, bits, 64, sym, &lr);
				uint8_t    *q = quantize_hqq(w, ROWS, COLS, bits, 64, sym, &lh);
				uint8_t		scratch[COLS];
				double		er = rel_error(w, r, &lr),
							eh = rel_error(w, q, &lh);

				if (qt_check_body(q, &lh, scratch, NULL) != QT_OK)
					invalid++;
				if (eh / er > hqq_ratio_ceiling[bits] || (bits <= 4 && !(eh < er)))
					worse++;
				if (bits <= 4 && eh / er > worst_ratio)
					worst_ratio = eh / er;
				free(r);
				free(q);
			}
			ok(invalid == 0, "hqq %s %s: every stored tensor passes the format check, 2..8 bits",
			   heavy ? "heavy" : "gauss", sym ? "sym" : "asym");
			ok(worse == 0, "hqq %s %s g64: relative error below rtn at 2..4 bits under the named ceilings "
			   "(worst ratio %.3f), never above rtn at 5..8", heavy ? "heavy" : "gauss",
			   sym ? "sym" : "asym", worst_ratio);
		}
	}

	/* per group, the stored mean absolute error never exceeds RTN's (HQQ keeps only improvements) */
	{
		int			bad = 0;
		float		g[100];

		for (int trial = 0; trial < 400; trial++)
		{
			int			bits = 2 + trial % 7;
			int			n = 1 + (int) (rng() % 100);
			bool		sym = trial % 2;
			float		s,
						s0;
			int			z,
						z0;

			fill(g, n, trial % 3 == 0);
			s0 = s = qt_rtn_scale(g, n, bits, sym);
			z0 = z = qt_rtn_zero(g, n, bits, sym, s);
			qt_hqq_group(g, n, bits, sym, &qt_hqq_defaults, &s, &z);
			if (group_l1(g, n, bits, s, z) > group_l1(g, n, bits, s0, z0) * (1 + 1e-6) ||
				z < 0 || z > (1 << bits) - 1 || (sym && z != 1 << (bits - 1)) || !isfinite(s))
				bad++;
		}
		ok(bad == 0, "hqq: per group, mean |error| never above rtn's, zero points storable (400 random groups)");
	}

	/* weights already on an integer grid are left exactly where RTN puts them */
	{
		float		g[16],
					s,
					s0;
		int			z,
					z0;

		for (int i = 0; i < 16; i++)
			g[i] = 0.25f * (float) (i - 5);
		s0 = s = qt_rtn_scale(g, 16, 4, false);
		z0 = z = qt_rtn_zero(g, 16, 4, false, s);
		qt_hqq_group(g, 16, 4, false, &qt_hqq_defaults, &s, &z);
		ok(s == s0 && z == z0 && group_l1(g, 16, 4, s, z) == 0.0,
		   "hqq: a group exactly on the 4-bit grid keeps rtn's scale %g and zero point %d", s, z);
	}

	/* degenerate groups: all zero, constant, a single weight */
	{
		float		zero[8] = {0},
					same[8] = {3, 3, 3, 3, 3, 3, 3, 3},
					one[1] = {-2.5f};
		float		s;
		int			z,
					bad = 0;

		s = qt_rtn_scale(zero, 8, 3, false);
		z = qt_rtn_zero(zero, 8, 3, false, s);
		qt_hqq_group(zero, 8, 3, false, &qt_hqq_defaults, &s, &z);
		bad += s != 0.0f;
		s = qt_rtn_scale(same, 8, 3, false);
		z = qt_rtn_zero(same, 8, 3, false, s);
		qt_hqq_group(same, 8, 3, false, &qt_hqq_defaults, &s, &z);
		bad += group_l1(same, 8, 3, s, z) > 1e-6;
		s = qt_rtn_scale(one, 1, 2, true);
		z = qt_rtn_zero(one, 1, 2, true, s);
		qt_hqq_group(one, 1, 2, true, &qt_hqq_defaults, &s, &z);
		bad += group_l1(one, 1, 2, s, z) > 1e-6;
		ok(bad == 0, "hqq: all-zero, constant and one-weight groups stay exact");
	}

	/* a tail group and one group per row */
	{
		QtLayout	lr,
					lh;
		uint8_t    *r,
				   *q;
		double		er,
					eh;

		fill(w, 33 * 100, false);
		r = quantize_rtn(w, 33, 100, 3, 64, false, &lr);
		q = quantize_hqq(w, 33, 100, 3, 64, false, &lh);
		er = rel_error(w, r, &lr);
		eh = rel_error(w, q, &lh);
		free(r);
		free(q);
		r = quantize_rtn(w, 33, 100, 3, QT_GROUP_PER_CHANNEL, false, &lr);
		q = quantize_hqq(w, 33, 100, 3, QT_GROUP_PER_CHANNEL, false, &lh);
		ok(eh < er && rel_error(w, q, &lh) < rel_error(w, r, &lr),
		   "hqq: a 100-wide row in groups of 64 (tail of 36) and one group per row beat rtn at 3 bits");
		free(r);
		free(q);
	}
	free(w);
}

/* the statistics of rows, in plain double-precision loops: the oracle */
static void
naive_stats(const float *x, int64_t nrows, int n, double *xtx, double *sum_abs, double *sum_sq, float *max_abs)
{
	memset(xtx, 0, sizeof(double) * n * n);
	for (int j = 0; j < n; j++)
	{
		sum_abs[j] = sum_sq[j] = 0.0;
		max_abs[j] = 0.0f;
	}
	for (int64_t r = 0; r < nrows; r++)
		for (int i = 0; i < n; i++)
		{
			double		xi = x[r * n + i];

			sum_abs[i] += fabs(xi);
			sum_sq[i] += xi * xi;
			if (fabsf(x[r * n + i]) > max_abs[i])
				max_abs[i] = fabsf(x[r * n + i]);
			for (int j = 0; j < n; j++)
				xtx[i * n + j] += xi * x[r * n + j];
		}
}

/* largest |a - b| / sqrt(b_ii b_jj) over the upper triangle, a scale-free distance for X^T X */
static double
xtx_distance(const double *a, const double *b, int n)
{
	double		worst = 0.0;

	for (int i = 0; i < n; i++)
		for (int j = i; j < n; j++)
		{
			double		d = fabs(a[i * n + j] - b[i * n + j]) / sqrt(b[i * n + i] * b[j * n + j]);

			worst = d > worst ? d : worst;
		}
	return worst;
}

static bool
channels_equal(const QcStats *a, const QcStats *b, double tol)
{
	for (int j = 0; j < a->n; j++)
		if (fabs(a->sum_abs[j] - b->sum_abs[j]) > tol * b->sum_abs[j] ||
			fabs(a->sum_sq[j] - b->sum_sq[j]) > tol * b->sum_sq[j] ||
			a->max_abs[j] != b->max_abs[j])
			return false;
	return true;
}

static void
test_stats(void)
{
	enum
	{
		N = 37, ROWS = 1500				/* three blocks of 512 rows, the last one partial */
	};
	float	   *x = malloc(sizeof(float) * ROWS * N);
	double	   *xtx = malloc(sizeof(double) * N * N);
	double		sum_abs[N],
				sum_sq[N];
	float		max_abs[N];
	QcStats    *s,
			   *a,
			   *b,
			   *c;
	char		err[QT_ERRMSG_LEN];
	bool		chan_ok = true;

	/* columns of very different scales, and one that is always zero */
	for (int64_t r = 0; r < ROWS; r++)
		for (int j = 0; j < N; j++)
			x[r * N + j] = j == 5 ? 0.0f : rng_normal() * (j % 9 == 0 ? 30.0f : 1.0f) + (j == 7 ? 4.0f : 0.0f);
	naive_stats(x, ROWS, N, xtx, sum_abs, sum_sq, max_abs);

	s = qc_stats_new(N, true);
	qc_stats_add(s, x, 700);
	qc_stats_add(s, x + 700 * N, ROWS - 700);
	qc_stats_flush(s);
	for (int j = 0; j < N; j++)
		chan_ok &= fabs(s->sum_abs[j] - sum_abs[j]) <= 1e-9 * sum_abs[j] &&
			fabs(s->sum_sq[j] - sum_sq[j]) <= 1e-9 * sum_sq[j] && s->max_abs[j] == max_abs[j];
	ok(s->nrows == ROWS && chan_ok, "stats: 1500 rows in two calls: row count and per-channel sums match the double oracle");
	ok(xtx_distance(s->xtx, xtx, N) < 1e-6,
	   "stats: X^T X over three ssyrk blocks within 1e-6 (scale-free) of the double oracle (%.2g)",
	   xtx_distance(s->xtx, xtx, N));
	ok(s->xtx[5 * N + 5] == 0.0 && s->sum_abs[5] == 0.0 && s->max_abs[5] == 0.0f,
	   "stats: a channel that is always zero has zero statistics");

	/* merging the statistics of two halves gives those of the whole */
	a = qc_stats_new(N, true);
	b = qc_stats_new(N, true);
	qc_stats_add(a, x, 333);
	qc_stats_add(b, x + 333 * N, ROWS - 333);
	ok(qc_stats_merge(a, b, err) == QT_OK && a->nrows == ROWS && channels_equal(a, s, 1e-12) &&
	   xtx_distance(a->xtx, xtx, N) < 1e-6,
	   "stats: merge(first 333 rows, other 1167) equals the statistics of all 1500 rows");

	/* serialize, deserialize: the same state, bit for bit */
	{
		size_t		sz = qc_stats_serial_size(s);
		uint8_t    *buf = malloc(sz + 8);
		bool		same;

		qc_stats_serialize(s, buf);
		same = qc_stats_deserialize(buf, sz, &c, err) == QT_OK && c->n == N && c->nrows == ROWS &&
			c->hessian && channels_equal(c, s, 0.0);
		for (int i = 0; same && i < N; i++)
			same = memcmp(c->xtx + i * N + i, s->xtx + i * N + i, sizeof(double) * (N - i)) == 0;
		ok(same, "stats: serialize then deserialize restores the state bit for bit (%zu bytes)", sz);
		qc_stats_free(c);

		/* every malformed state is rejected with a message, never read */
		{
			int			rejected = 0,
						cases = 0;
			uint8_t    *bad = malloc(sz + 8);
			double		nan = NAN;
			int32_t		big = QC_MAX_HESSIAN_FEATURES + 1,
						neg = -1;
			int64_t		negrows = -5;
			float		negf = -1.0f;

#define TRY_BAD(len, mutate) 			do { memcpy(bad, buf, sz); mutate; cases++; 				 if (qc_stats_deserialize(bad, (len), &c, err) != QT_OK && c == NULL && err[0]) rejected++; 				 else qc_stats_free(c); } while (0)
			TRY_BAD(sz - 1, (void) 0);
			TRY_BAD(sz + 8, (void) 0);
			TRY_BAD(10, (void) 0);
			TRY_BAD(sz, bad[0] ^= 1);	/* magic */
			TRY_BAD(sz, bad[4] = 2);	/* version */
			TRY_BAD(sz, bad[6] = 2);	/* unknown flag */
			TRY_BAD(sz, bad[6] = 0);	/* no hessian flag: the length no longer matches */
			TRY_BAD(sz, memcpy(bad + 8, &big, 4));
			TRY_BAD(sz, memcpy(bad + 8, &neg, 4));
			TRY_BAD(sz, bad[12] = 1);	/* reserved */
			TRY_BAD(sz, memcpy(bad + 16, &negrows, 8));
			TRY_BAD(sz, memcpy(bad + 24 + 8 * 3, &nan, 8));	/* sum_abs */
			TRY_BAD(sz, memcpy(bad + 24 + 8 * N + 8 * 2, &nan, 8));	/* sum_sq */
			TRY_BAD(sz, memcpy(bad + 24 + 16 * N + 4 * 9, &negf, 4));	/* max_abs */
			TRY_BAD(sz, memcpy(bad + sz - 8, &nan, 8));	/* last X^T X entry */
#undef TRY_BAD
			ok(rejected == cases, "stats: %d of %d malformed serialized states rejected (truncated, padded, "
			   "bad magic, version, flags, width, reserved, row count, NaN or negative values)", rejected, cases);
			free(bad);
		}
		free(buf);
	}

	/* without X^T X: the same channel statistics, no hessian memory */
	c = qc_stats_new(N, false);
	qc_stats_add(c, x, ROWS);
	ok(c->xtx == NULL && c->buf == NULL && channels_equal(c, s, 1e-12) &&
	   qc_stats_serial_size(c) == 24 + 20 * N + 4,
	   "stats: hessian => false keeps the per-channel statistics and allocates no n x n memory");
	ok(qc_stats_merge(c, s, err) != QT_OK && strstr(err, "without") != NULL,
	   "stats: merging states with and without X^T X is refused: %s", err);
	qc_stats_free(c);
	c = qc_stats_new(N + 1, true);
	ok(qc_stats_merge(c, s, err) != QT_OK && strstr(err, "38 and 37") != NULL,
	   "stats: merging states of different widths is refused: %s", err);
	qc_stats_free(c);

	/* the full symmetric matrix */
	{
		float	   *h = malloc(sizeof(float) * N * N);
		bool		sym = true;

		qc_stats_hessian(s, h);
		for (int i = 0; i < N; i++)
			for (int j = 0; j < N; j++)
				sym &= h[i * N + j] == h[j * N + i] && h[i * N + j] == (float) s->xtx[(i < j ? i : j) * N + (i < j ? j : i)];
		ok(sym, "stats: the output matrix is symmetric and equals the accumulator rounded to float");
		free(h);
	}
	qc_stats_free(s);
	qc_stats_free(a);
	qc_stats_free(b);
	free(x);
	free(xtx);
}

/* a qtensor from a GPTQ result (asymmetric unless sym) */
static uint8_t *
gptq_tensor(const QtGptqResult *res, int rows, int cols, int bits, int gs, bool sym, QtLayout *l)
{
	QtHeader	h;
	char		err[QT_ERRMSG_LEN];
	uint8_t    *buf;

	if (qt_params_plan(QT_METHOD_GPTQ, bits, gs, (sym ? 0 : QT_FLAG_ZEROS) | (res->perm ? QT_FLAG_PERM : 0),
					   res->scale_type, rows, cols, &h, l, err) != QT_OK)
		return NULL;
	buf = new_tensor(&h, l);
	qt_params_write(buf, l, res->scales, res->zeros, res->codes);
	if (res->perm)
		memcpy(buf + l->off_perm, res->perm, sizeof(int32_t) * cols);
	return buf;
}

/* relative output error ||X (W - Q)^T||^2 / ||X W^T||^2 from H = X^T X */
static double
output_error(const float *w, const uint8_t *buf, const QtLayout *l, const float *hess)
{
	const QtHeader *h = (const QtHeader *) buf;
	int64_t		n = (int64_t) h->rows * h->cols;
	float	   *d = malloc(sizeof(float) * n),
			   *tmp = malloc(sizeof(float) * n);
	double		num,
				den;

	qt_dequantize_ref(buf, l, 0, h->rows, d);
	for (int64_t i = 0; i < n; i++)
		d[i] = w[i] - d[i];
	num = qc_hessian_energy(d, h->rows, h->cols, hess, tmp);
	den = qc_hessian_energy(w, h->rows, h->cols, hess, tmp);
	free(d);
	free(tmp);
	return num / den;
}

/*
 * Activations with structure like a network's: rows x n, each channel a
 * mix of one of n/8 shared factors and its own noise, and every 16th
 * channel an outlier, 20x larger.  Returns X^T X (n x n).
 */
static float *
correlated_hessian(int nrows, int n, bool correlated)
{
	float	   *x = malloc(sizeof(float) * nrows * n),
			   *z = malloc(sizeof(float) * (n / 8 + 1)),
			   *hess = malloc(sizeof(float) * n * n);
	QcStats    *s = qc_stats_new(n, true);

	for (int r = 0; r < nrows; r++)
	{
		for (int t = 0; t <= n / 8; t++)
			z[t] = rng_normal();
		for (int j = 0; j < n; j++)
			x[r * n + j] = (correlated ? z[j % (n / 8 + 1)] + 0.3f * rng_normal() : rng_normal()) * (j % 16 == 0 ? 20.0f : 1.0f);
	}
	qc_stats_add(s, x, nrows);
	qc_stats_hessian(s, hess);
	qc_stats_free(s);
	free(x);
	free(z);
	return hess;
}

/* output error ceilings of GPTQ relative to RTN on correlated activations, by bit width */
static const double gptq_ratio_ceiling[9] = {0, 0, 0.5, 0.35, 0.35, 0.35, 0.35, 0.35, 0.35};

static void
test_gptq(void)
{
	enum
	{
		ROWS = 48, COLS = 300, NX = 1200
	};
	float	   *w = malloc(sizeof(float) * ROWS * COLS);
	float	   *hc = correlated_hessian(NX, COLS, true);
	char		err[QT_ERRMSG_LEN];
	struct
	{
		int			bits,
					gs;
		bool		sym,
					act_order,
					static_groups;
	}			cfg[] = {
		{2, 128, false, false, false}, {3, 32, false, false, false}, {4, 100, false, true, false},
		{4, 128, true, false, false}, {3, 64, false, true, true}, {8, QT_GROUP_PER_CHANNEL, false, true, false},
		{5, 200, false, false, true}, {6, 7, true, true, false}
	};

	fill(w, ROWS * COLS, true);

	/* the blocked path against the oracle, over groups that divide the block, straddle it, or are odd */
	for (size_t c = 0; c < sizeof(cfg) / sizeof(cfg[0]); c++)
	{
		QtGptqSpec	spec = {cfg[c].bits, cfg[c].gs, cfg[c].sym, cfg[c].act_order, cfg[c].static_groups, 0.01, 0};
		QtGptqResult a,
					b;
		QtLayout	la,
					lb;
		uint8_t    *ta,
				   *tb;
		int64_t		diff = 0;
		double		ea,
					eb;
		bool		perm_ok = true;
		uint8_t		scratch[COLS];

		if (qt_gptq(w, ROWS, COLS, hc, &spec, &a, err) != QT_OK || qt_gptq_ref(w, ROWS, COLS, hc, &spec, &b, err) != QT_OK)
		{
			ok(0, "gptq: %s", err);
			continue;
		}
		for (int64_t i = 0; i < (int64_t) ROWS * COLS; i++)
			diff += a.codes[i] != b.codes[i];
		ta = gptq_tensor(&a, ROWS, COLS, cfg[c].bits, cfg[c].gs, cfg[c].sym, &la);
		tb = gptq_tensor(&b, ROWS, COLS, cfg[c].bits, cfg[c].gs, cfg[c].sym, &lb);
		ea = output_error(w, ta, &la, hc);
		eb = output_error(w, tb, &lb, hc);
		if (cfg[c].act_order && !cfg[c].static_groups)
		{
			/* a permutation, by descending diag(H) */
			for (int j = 1; j < COLS; j++)
				perm_ok &= hc[a.perm[j] * COLS + a.perm[j]] <= hc[a.perm[j - 1] * COLS + a.perm[j - 1]];
		}
		else
			perm_ok = a.perm == NULL;
		ok(diff <= ROWS * COLS / 1000 && fabs(ea - eb) <= 1e-3 * eb && perm_ok &&
		   qt_check_body(ta, &la, scratch, NULL) == QT_OK,
		   "gptq %d bits, group %d%s%s%s: blocked = oracle (%lld of %d codes differ, output error %.5f vs %.5f)%s",
		   cfg[c].bits, cfg[c].gs, cfg[c].sym ? ", sym" : "", cfg[c].act_order ? ", act-order" : "",
		   cfg[c].static_groups ? ", static groups" : "", (long long) diff, ROWS * COLS, ea, eb,
		   cfg[c].act_order && !cfg[c].static_groups ? ", permutation by descending diag(H)" : "");
		qt_gptq_result_free(&a);
		qt_gptq_result_free(&b);
		free(ta);
		free(tb);
	}

	/* on correlated activations GPTQ's output error is a fraction of RTN's, at every width */
	{
		double		worst = 0.0;
		int			bad = 0;

		for (int bits = 2; bits <= 8; bits++)
		{
			QtGptqSpec	spec = {bits, 128, false, false, false, 0.01, 0};
			QtGptqResult res;
			QtLayout	lr,
						lg;
			uint8_t    *r = quantize_rtn(w, ROWS, COLS, bits, 128, false, &lr);
			uint8_t    *g;
			double		ratio;

			qt_gptq(w, ROWS, COLS, hc, &spec, &res, err);
			g = gptq_tensor(&res, ROWS, COLS, bits, 128, false, &lg);
			ratio = output_error(w, g, &lg, hc) / output_error(w, r, &lr, hc);
			bad += ratio > gptq_ratio_ceiling[bits];
			worst = ratio > worst ? ratio : worst;
			qt_gptq_result_free(&res);
			free(r);
			free(g);
		}
		ok(bad == 0, "gptq g128 on correlated activations with outlier channels: output error under the named "
		   "fraction of rtn's at 2..8 bits (worst ratio %.3f)", worst);
	}

	/* with a diagonal H there is nothing to compensate: GPTQ's codes are RTN's */
	{
		float	   *hd = calloc(COLS * COLS, sizeof(float));
		QtGptqSpec	spec = {4, 64, false, false, false, 0.01, 0};
		QtGptqResult res;
		QtLayout	lr;
		uint8_t    *r = quantize_rtn(w, ROWS, COLS, 4, 64, false, &lr);
		int64_t		diff = 0;

		for (int j = 0; j < COLS; j++)
			hd[j * COLS + j] = 1.0f + (float) (j % 5);
		qt_gptq(w, ROWS, COLS, hd, &spec, &res, err);
		for (int rr = 0; rr < ROWS; rr++)
			for (int j = 0; j < COLS; j++)
				diff += res.codes[rr * COLS + j] != qt_code_at(r + lr.off_codes + rr * lr.row_bytes, j, 4);
		ok(diff == 0, "gptq with a diagonal X^T X reproduces rtn's codes exactly (%lld differ)", (long long) diff);
		qt_gptq_result_free(&res);
		free(r);
		free(hd);
	}

	/* two columns by hand: w2 absorbs (w1 - q1) * H12 / H22 before it is quantized */
	{
		float		w2[2] = {0.3f, -0.55f},
					h2[4] = {4.0f, 1.5f, 1.5f, 2.0f};
		QtGptqSpec	spec = {3, QT_GROUP_PER_CHANNEL, false, false, false, 1e-9, 0};
		QtGptqResult res;
		float		s = qt_round_scale(qt_rtn_scale(w2, 2, 3, false), QT_SCALE_FP16);
		int			z = qt_rtn_zero(w2, 2, 3, false, s);
		float		q1 = fminf(fmaxf(rintf(w2[0] / s) + z, 0), 7);
		float		w2b = w2[1] + (w2[0] - (q1 - z) * s) * 1.5f / 2.0f;
		float		q2 = fminf(fmaxf(rintf(w2b / s) + z, 0), 7);

		qt_gptq(w2, 1, 2, h2, &spec, &res, err);
		ok(res.codes[0] == q1 && res.codes[1] == q2 && q2 != fminf(fmaxf(rintf(w2[1] / s) + z, 0), 7),
		   "gptq on two columns: the second is quantized after absorbing (w1 - q1) H12 / H22 (codes %d %d)",
		   res.codes[0], res.codes[1]);
		qt_gptq_result_free(&res);
	}

	/* degenerate Hessians */
	{
		float		indef[4] = {1.0f, 3.0f, 3.0f, 1.0f};
		float		zero4[4] = {0};
		float		neg[4] = {-1.0f, 0.0f, 0.0f, 1.0f};
		float		w2[4] = {0.5f, -1.0f, 2.0f, 0.25f};
		QtGptqSpec	spec = {4, QT_GROUP_PER_CHANNEL, false, false, false, 0.01, 0};
		QtGptqResult res;

		QtStatus	st = qt_gptq(w2, 2, 2, indef, &spec, &res, err);

		ok(st == QT_OK && res.retries == 3 && fabs(res.damp - 10.0) < 1e-9,
		   "gptq: an indefinite X^T X (eigenvalue -2) succeeds once the dampening has grown to %g (%d retries)",
		   res.damp, res.retries);
		qt_gptq_result_free(&res);
		ok(qt_gptq(w2, 2, 2, zero4, &spec, &res, err) == QT_OK && res.n_dead == 2 &&
		   res.codes[0] == res.zeros[0] && res.codes[1] == res.zeros[0],
		   "gptq: all-zero activations make every input dead; the weights become exact zeros");
		qt_gptq_result_free(&res);
		ok(qt_gptq(w2, 2, 2, neg, &spec, &res, err) == QT_EINVAL && strstr(err, "negative") != NULL,
		   "gptq: a negative diagonal is refused: %s", err);
	}

	/* a dead channel in a real Hessian, and fewer activation rows than columns */
	{
		float	   *hf = correlated_hessian(COLS / 3, COLS, true);
		QtGptqSpec	spec = {3, 64, false, true, false, 0.01, 0};
		QtGptqResult res;
		QtLayout	lr,
					lg;
		uint8_t    *r = quantize_rtn(w, ROWS, COLS, 3, 64, false, &lr),
				   *g;
		float	   *d = malloc(sizeof(float) * ROWS * COLS);
		bool		zero_col = true;

		for (int j = 0; j < COLS; j++)
			hf[17 * COLS + j] = hf[j * COLS + 17] = 0.0f;
		qt_gptq(w, ROWS, COLS, hf, &spec, &res, err);
		g = gptq_tensor(&res, ROWS, COLS, 3, 64, false, &lg);
		qt_dequantize_ref(g, &lg, 0, ROWS, d);
		for (int rr = 0; rr < ROWS; rr++)
			zero_col &= d[rr * COLS + 17] == 0.0f;
		ok(res.n_dead == 1 && zero_col && res.retries == 0 &&
		   output_error(w, g, &lg, hf) < 0.5 * output_error(w, r, &lr, hf),
		   "gptq with 100 activation rows for 300 columns and a dead channel: weights of the dead channel are 0, "
		   "output error under half of rtn's");
		qt_gptq_result_free(&res);
		free(r);
		free(g);
		free(d);
		free(hf);
	}
	free(hc);
	free(w);
}

/* a qtensor from an AWQ result */
static uint8_t *
awq_tensor(const QtAwqResult *res, int rows, int cols, int bits, int gs, bool sym, QtLayout *l)
{
	QtHeader	h;
	char		err[QT_ERRMSG_LEN];
	uint8_t    *buf;

	if (qt_params_plan(QT_METHOD_AWQ, bits, gs, (sym ? 0 : QT_FLAG_ZEROS) | QT_FLAG_CHSCALE,
					   res->scale_type, rows, cols, &h, l, err) != QT_OK)
		return NULL;
	buf = new_tensor(&h, l);
	qt_params_write(buf, l, res->scales, res->zeros, res->codes);
	memcpy(buf + l->off_chscale, res->chscale, sizeof(float) * cols);
	return buf;
}

/* activations with outlier channels (every 37th channel 20x), independent or sharing factors */
static float *
outlier_activations(int nrows, int n, bool correlated)
{
	float	   *x = malloc(sizeof(float) * nrows * n);
	int			k = n / 8;

	for (int r = 0; r < nrows; r++)
	{
		float		z[64];

		for (int t = 0; t < k && t < 64; t++)
			z[t] = rng_normal();
		for (int j = 0; j < n; j++)
			x[r * n + j] = (correlated ? z[j % k] + 0.3f * rng_normal() : rng_normal()) * (j % 37 == 0 ? 20.0f : 1.0f);
	}
	return x;
}

/* ||X (W - Q)^T||^2 / ||X W^T||^2 from the activation rows themselves (no X^T X) */
static double
output_error_rows(const float *w, const uint8_t *buf, const QtLayout *l, const float *x, int nrows)
{
	const QtHeader *h = (const QtHeader *) buf;
	int			rows = h->rows,
				n = h->cols;
	float	   *q = malloc(sizeof(float) * rows * n);
	double		num = 0.0,
				den = 0.0;

	qt_dequantize_ref(buf, l, 0, rows, q);
	for (int t = 0; t < nrows; t++)
		for (int r = 0; r < rows; r++)
		{
			double		yw = 0.0,
						yq = 0.0;

			for (int j = 0; j < n; j++)
			{
				yw += (double) x[t * n + j] * w[r * n + j];
				yq += (double) x[t * n + j] * q[r * n + j];
			}
			num += (yw - yq) * (yw - yq);
			den += yw * yw;
		}
	free(q);
	return num / den;
}

/* AWQ output error ceilings relative to RTN on activations with outlier channels */
static const double awq_ratio_ceiling[9] = {0, 0, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4};

static void
test_awq(void)
{
	enum
	{
		ROWS = 64, COLS = 256, NX = 600
	};
	float	   *w = malloc(sizeof(float) * ROWS * COLS);
	float	   *x = outlier_activations(NX, COLS, false);
	float	   *hess = malloc(sizeof(float) * COLS * COLS),
				mean_abs[COLS],
				hdiag[COLS];
	QcStats    *st = qc_stats_new(COLS, true);
	char		err[QT_ERRMSG_LEN];

	fill(w, ROWS * COLS, true);
	for (int i = 0; i < ROWS * COLS; i++)
		w[i] *= 0.02f;
	qc_stats_add(st, x, NX);
	qc_stats_hessian(st, hess);
	for (int j = 0; j < COLS; j++)
	{
		mean_abs[j] = (float) (st->sum_abs[j] / NX);
		hdiag[j] = (float) st->sum_sq[j];
	}

	/* against RTN, with X^T X and with its diagonal only */
	for (int mode = 0; mode < 2; mode++)
	{
		int			bad = 0,
					invalid = 0;
		double		worst = 0.0;

		for (int bits = 2; bits <= 8; bits++)
		{
			QtAwqSpec	spec = {bits, 128, false, 0, 0, 0};
			QtAwqResult res;
			QtLayout	lr,
						la;
			uint8_t    *r = quantize_rtn(w, ROWS, COLS, bits, 128, false, &lr),
					   *a;
			uint8_t		scratch[COLS];
			double		ratio;

			qt_awq(w, ROWS, COLS, mode == 0 ? hess : NULL, mode == 1 ? hdiag : NULL, mean_abs, &spec, &res, err);
			a = awq_tensor(&res, ROWS, COLS, bits, 128, false, &la);
			invalid += qt_check_body(a, &la, scratch, NULL) != QT_OK || !(res.loss_scaled <= res.loss_rtn) ||
				!(res.alpha > 0.0);
			ratio = output_error(w, a, &la, hess) / output_error(w, r, &lr, hess);
			bad += ratio > awq_ratio_ceiling[bits];
			worst = ratio > worst ? ratio : worst;
			qt_awq_result_free(&res);
			free(r);
			free(a);
		}
		ok(bad == 0 && invalid == 0, "awq g128 %s: output error under %.1f of rtn's at 2..8 bits (worst %.3f); "
		   "alpha > 0 chosen, search loss at it <= at alpha 0; tensors valid",
		   mode == 0 ? "with X^T X" : "with diag(X^T X) only", awq_ratio_ceiling[4], worst);
	}

	/* the scale search's choice matches a brute-force search on the activation rows themselves */
	{
		QtAwqSpec	spec = {3, 64, false, 0, 0, 0};
		QtAwqResult res;
		double		best = INFINITY,
					best_alpha = -1.0;

		qt_awq(w, ROWS, COLS, hess, NULL, mean_abs, &spec, &res, err);
		for (int i = 0; i < QT_AWQ_GRID; i++)
		{
			/* only the scale, no clipping: one grid point at a time */
			float		s[COLS],
						smax = 0.0f,
						smin = INFINITY;
			float	   *ws = malloc(sizeof(float) * ROWS * COLS);
			QtLayout	l;
			uint8_t    *q;
			double		e;

			for (int j = 0; j < COLS; j++)
			{
				s[j] = fmaxf(powf(mean_abs[j], (float) i / QT_AWQ_GRID), 1e-4f);
				smax = fmaxf(smax, s[j]);
				smin = fminf(smin, s[j]);
			}
			for (int j = 0; j < COLS; j++)
				s[j] /= sqrtf(smax * smin);
			for (int rr = 0; rr < ROWS; rr++)
				for (int j = 0; j < COLS; j++)
					ws[rr * COLS + j] = w[rr * COLS + j] * s[j];
			q = quantize_rtn(ws, ROWS, COLS, 3, 64, false, &l);
			/* store s as the channel scales: rebuild the tensor with the flag */
			{
				QtHeader	h = *(QtHeader *) q;
				QtLayout	l2;
				uint8_t    *t;

				h.flags |= QT_FLAG_CHSCALE;
				qt_layout(&h, &l2, NULL);
				t = new_tensor(&h, &l2);
				memcpy(t + l2.off_scales, q + l.off_scales, l.off_zeros - l.off_scales);
				memcpy(t + l2.off_zeros, q + l.off_zeros, l.off_chscale - l.off_zeros);
				memcpy(t + l2.off_chscale, s, sizeof(s));
				memcpy(t + l2.off_codes, q + l.off_codes, l.total - l.off_codes);
				e = output_error_rows(w, t, &l2, x, NX);
				free(t);
			}
			if (e < best)
			{
				best = e;
				best_alpha = (double) i / QT_AWQ_GRID;
			}
			free(q);
			free(ws);
		}
		ok(fabs(res.alpha - best_alpha) < 1e-9,
		   "awq: the alpha chosen from X^T X (%.2f) is the one a brute-force search over the activation rows picks (%.2f)",
		   res.alpha, best_alpha);
		qt_awq_result_free(&res);
	}

	/* channel scales: positive, finite, normalized so that max * min = 1 */
	{
		QtAwqSpec	spec = {4, 128, false, 0, 0, 0};
		QtAwqResult res;
		float		smax = 0.0f,
					smin = INFINITY;
		bool		pos = true;

		qt_awq(w, ROWS, COLS, hess, NULL, mean_abs, &spec, &res, err);
		for (int j = 0; j < COLS; j++)
		{
			pos &= res.chscale[j] > 0.0f && isfinite(res.chscale[j]);
			smax = fmaxf(smax, res.chscale[j]);
			smin = fminf(smin, res.chscale[j]);
		}
		ok(pos && fabs(smax * smin - 1.0) < 1e-5 && smax > 1.0f,
		   "awq: channel scales positive, max * min = 1 (%.6f), outlier channels scaled up (max %.2f)", smax * smin, smax);
		qt_awq_result_free(&res);
	}

	/* the data-free form: no channel scaling, and the clipping search lowers the weights' own error */
	{
		int			bad = 0;

		for (int bits = 2; bits <= 8; bits++)
		{
			QtAwqSpec	spec = {bits, 128, false, 0, 0, 0};
			QtAwqResult res;
			QtLayout	lr,
						la;
			uint8_t    *r = quantize_rtn(w, ROWS, COLS, bits, 128, false, &lr),
					   *a;
			bool		ones = true;

			qt_awq(w, ROWS, COLS, NULL, NULL, NULL, &spec, &res, err);
			for (int j = 0; j < COLS; j++)
				ones &= res.chscale[j] == 1.0f;
			a = awq_tensor(&res, ROWS, COLS, bits, 128, false, &la);
			bad += !ones || res.alpha != 0.0 || rel_error(w, a, &la) > rel_error(w, r, &lr) ||
				(bits <= 4 && !(rel_error(w, a, &la) < rel_error(w, r, &lr)));
			qt_awq_result_free(&res);
			free(r);
			free(a);
		}
		ok(bad == 0, "awq without statistics: channel scales 1, weight error never above rtn's, below it at 2..4 bits");
	}

	/* a channel with no activations, the scale search on a sample of rows, symmetric */
	{
		QtAwqSpec	spec = {4, 64, false, 0, 0, 0},
					sampled = {4, 64, false, 0, 0, 16},
					sym = {4, 64, true, 0, 0, 0};
		QtAwqResult res,
					rs,
					ry;
		QtLayout	la,
					ls,
					ly,
					lr;
		uint8_t    *a,
				   *b,
				   *c,
				   *r = quantize_rtn(w, ROWS, COLS, 4, 64, true, &lr);
		float		ma0[COLS];
		float	   *dq = malloc(sizeof(float) * ROWS * COLS);
		bool		finite = true;
		uint8_t		scratch[COLS];

		memcpy(ma0, mean_abs, sizeof(ma0));
		ma0[5] = 0.0f;
		qt_awq(w, ROWS, COLS, hess, NULL, ma0, &spec, &res, err);
		a = awq_tensor(&res, ROWS, COLS, 4, 64, false, &la);
		qt_dequantize_ref(a, &la, 0, ROWS, dq);
		for (int i = 0; i < ROWS * COLS; i++)
			finite &= isfinite(dq[i]) && fabsf(dq[i]) < 100.0f;
		ok(finite && qt_check_body(a, &la, scratch, NULL) == QT_OK && res.chscale[5] > 0.0f,
		   "awq: a channel with mean |x| = 0 gets a positive scale and finite weights");
		qt_awq_result_free(&res);
		qt_awq(w, ROWS, COLS, hess, NULL, mean_abs, &sampled, &rs, err);
		qt_awq(w, ROWS, COLS, hess, NULL, mean_abs, &spec, &res, err);
		b = awq_tensor(&rs, ROWS, COLS, 4, 64, false, &ls);
		free(a);
		a = awq_tensor(&res, ROWS, COLS, 4, 64, false, &la);
		ok(output_error(w, b, &ls, hess) < 1.1 * output_error(w, a, &la, hess),
		   "awq: searching alpha on 16 of 64 rows (alpha %.2f) costs under 10%% of output error against all rows (alpha %.2f)",
		   rs.alpha, res.alpha);
		qt_awq(w, ROWS, COLS, hess, NULL, mean_abs, &sym, &ry, err);
		c = awq_tensor(&ry, ROWS, COLS, 4, 64, true, &ly);
		ok(output_error(w, c, &ly, hess) < 0.5 * output_error(w, r, &lr, hess),
		   "awq symmetric: output error under half of symmetric rtn's");
		qt_awq_result_free(&res);
		qt_awq_result_free(&rs);
		qt_awq_result_free(&ry);
		free(a);
		free(b);
		free(c);
		free(r);
		free(dq);
	}
	qc_stats_free(st);
	free(hess);
	free(x);
	free(w);
}

int
main(void)
{
	rng_seed(0x2545f4914f6cdd1dULL);
	test_hqq();
	test_stats();
	test_gptq();
	test_awq();
	return done_testing();
}
