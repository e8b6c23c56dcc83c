/*
 * quant_hqq.c: Half-Quadratic Quantization (Badri and Shaji, "Half-Quadratic
 * Quantization of Large Machine Learning Models", 2023), calibration-free.
 *
 * HQQ fits a group's quantization parameters to the weights under the
 * sparsity-promoting loss ||W - dq(q(W))||_p^p with p < 1, which tolerates a
 * few large errors (outliers) to fit the bulk of the weights well.  It
 * splits the loss with an auxiliary error variable W_e and alternates two
 * closed-form steps (half-quadratic splitting):
 *
 *   W_e <- shrink_p(W - W_r, beta)           generalized soft threshold
 *   params <- argmin ||(W - W_e) - W_r(params)||^2   with the codes fixed
 *
 * with beta growing by kappa each iteration, stopping as soon as the mean
 * absolute error stops falling and keeping the best parameters seen.  The
 * defaults (p 0.7, beta 10, kappa 1.01, 20 iterations) are the reference
 * implementation's.
 *
 * Where pgquant differs: the reference optimizes a real-valued zero point
 * with the scale fixed; a qtensor stores integer zero points (0..2^b-1), so
 * the quadratic step here solves over what the format can hold: the best
 * real scale together with the better of the two integer zero points
 * around the real-valued optimum (symmetric: the scale alone).  Both
 * sub-problems are exact least squares over the same fixed codes, so each
 * iteration is the same half-quadratic step restricted to storable values.
 * The start is round-to-nearest, and since only improvements are kept, the
 * result's mean absolute error never exceeds RTN's for the same group.
 */
#include "qcalib.h"

#include <math.h>

const QtHqqParams qt_hqq_defaults = {0.7f, 10.0f, 1.01f, 20};

/* the proximal operator of |e|^p: a soft threshold that shrinks small errors to 0 */
static inline float
shrink_lp(float e, float beta, float p)
{
	float		a = fabsf(e);
	float		t;

	if (a == 0.0f)
		return 0.0f;
	t = p == 1.0f ? a - 1.0f / beta : a - powf(a, p - 1.0f) / beta;
	return t > 0.0f ? copysignf(t, e) : 0.0f;
}

void
qt_hqq_group(const float *g, int64_t n, int bits, bool symmetric,
			 const QtHqqParams *p, float *s, int *z)
{
	const int	maxq = (1 << bits) - 1;
	float		cs = *s;
	int			cz = *z;
	float		beta = p->beta;
	double		best = INFINITY;

	if (cs == 0.0f || n == 0)
		return;
	for (int it = 0; it < p->iters; it++)
	{
		float		inv = 1.0f / cs;
		double		l1 = 0.0,
					sq = 0.0,
					st = 0.0,
					sqq = 0.0,
					sqt = 0.0,
					stt = 0.0;
		double		new_s = 0.0;
		int			new_z = cz;

		/* codes of the current parameters, their error, and the shrunk targets */
		for (int64_t i = 0; i < n; i++)
		{
			float		q = qt_round_code(g[i] * inv) + (float) cz;
			float		e,
						t;

			q = q < 0.0f ? 0.0f : q > (float) maxq ? (float) maxq : q;
			e = g[i] - (q - (float) cz) * cs;
			l1 += fabsf(e);
			t = g[i] - shrink_lp(e, beta, p->lp_norm);
			sq += q;
			st += t;
			sqq += (double) q * q;
			sqt += (double) q * t;
			stt += (double) t * t;
		}
		l1 /= (double) n;
		if (!(l1 < best))
			break;
		best = l1;
		*s = cs;
		*z = cz;

		/* least squares of the targets on (q - z) * s, over storable (s, z) */
		if (symmetric)
		{
			double		num = sqt - cz * st,
						den = sqq - 2.0 * cz * sq + (double) n * cz * cz;

			if (den <= 0.0)
				break;
			new_s = num / den;
		}
		else
		{
			double		varq = sqq - sq * sq / (double) n;
			double		a,
						b,
						zc,
						best_sse = INFINITY;

			if (varq <= 0.0)
				break;			/* one code only: nothing to fit */
			a = (sqt - sq * st / (double) n) / varq;
			b = (st - a * sq) / (double) n;
			if (!(a > 0.0))
				break;
			zc = floor(-b / a);
			for (int k = 0; k < 2; k++)
			{
				double		zk = zc + k;
				double		num,
							den,
							sse;

				zk = zk < 0.0 ? 0.0 : zk > (double) maxq ? (double) maxq : zk;
				num = sqt - zk * st;
				den = sqq - 2.0 * zk * sq + (double) n * zk * zk;
				if (den <= 0.0)
					continue;
				sse = stt - num * num / den;
				if (sse < best_sse)
				{
					best_sse = sse;
					new_s = num / den;
					new_z = (int) zk;
				}
			}
		}
		if (!isfinite(new_s) || new_s == 0.0 || (!symmetric && new_s < 0.0) ||
			!isfinite((float) new_s) || (float) new_s == 0.0f)
			break;
		cs = (float) new_s;
		cz = new_z;
		beta *= p->kappa;
	}
}

void
qt_hqq_matrix(const float *w, int32_t rows, int32_t cols, int64_t group_len,
			  int bits, bool symmetric, const QtHqqParams *p,
			  float *scales, uint8_t *zeros)
{
	int64_t		ngroups = (cols + group_len - 1) / group_len;

	for (int64_t r = 0; r < rows; r++)
	{
		if (qt_interrupt_hook)
			qt_interrupt_hook();
		for (int64_t g = 0; g < ngroups; g++)
		{
			const float *src = w + r * cols + g * group_len;
			int64_t		n = cols - g * group_len < group_len ? cols - g * group_len : group_len;
			float		s = qt_rtn_scale(src, n, bits, symmetric);
			int			z = qt_rtn_zero(src, n, bits, symmetric, s);

			qt_hqq_group(src, n, bits, symmetric, p, &s, &z);
			scales[r * ngroups + g] = s;
			if (!symmetric)
				zeros[r * ngroups + g] = (uint8_t) z;
		}
	}
}
