/*
 * quant_awq.c: AWQ, activation-aware weight quantization (Lin et al., "AWQ:
 * Activation-aware Weight Quantization for LLM Compression and
 * Acceleration", 2024), as the reference code (mit-han-lab/llm-awq,
 * awq/quantize/auto_scale.py and auto_clip.py) defines it for one layer.
 *
 * Input channels that carry large activations matter more to the output.
 * AWQ scales them up before quantizing, W' = W diag(s), so their weights
 * get relatively finer steps, and divides by s again afterwards (real AWQ
 * folds 1/s into the previous operation; a qtensor stores s in its
 * channel-scale section and the decoders divide by it, so dequantize()
 * returns Q(W diag(s)) diag(s)^-1, usable in place of W):
 *
 *   1. scale search: s = mean|x|^alpha, clamped below at 1e-4 and divided
 *      by sqrt(max(s) min(s)), for alpha = i / 20, i = 0..19; keep the s of
 *      least output error ||X W^T - X Q^T||^2 (alpha = 0 is plain RTN, so
 *      the result is never worse than RTN on the calibration data);
 *   2. clipping search, per row and group of W': clamp to [-m, m] for
 *      m = max|w'| (1 - i / 20), i = 0..9, quantize, keep the m of least
 *      output error of that group's part of the product.
 *
 * Errors come from X^T X instead of the activation rows: for a difference
 * D = Q - W, ||X D^T||^2 = sum_r d_r^T (X^T X) d_r, and a group's part is
 * d_g^T (X^T X)_gg d_g.  (The reference runs the layer on its calibration
 * tokens, sampling 512 of them for the clipping search; with the full
 * X^T X every calibration row counts.)  Without X^T X its diagonal, sum
 * x^2, stands in (channels treated as uncorrelated); with no statistics at
 * all (the data-free form), s = 1 and the clipping search minimizes the
 * weights' own squared error.
 *
 * Group parameters follow pgquant's round-to-nearest (range including 0,
 * integer zero point; sym: pgquant's symmetric scale), with each scale
 * rounded to its stored precision before it is used.
 */
#include "qcalib.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define FAIL(status, ...) \
	do { if (err) snprintf(err, QT_ERRMSG_LEN, __VA_ARGS__); st = (status); goto done; } while (0)

/*
 * Quantize n values x clamped to [-m, m] (m = INFINITY: no clamp) with
 * round-to-nearest parameters of the clamped values; the decoded values,
 * before division by the channel scales, go to deq; codes to codes when
 * not NULL.
 */
static void
quant_group(const float *x, int64_t n, int bits, bool sym, float m,
			float *s_out, uint8_t *z_out, float *deq, uint8_t *codes, bool *needs_fp32)
{
	const int	maxq = (1 << bits) - 1;
	float		lo = 0.0f,
				hi = 0.0f,
				big = 0.0f,
				abig = 0.0f,
				s,
				inv,
				zf;
	int			z;

	for (int64_t i = 0; i < n; i++)
	{
		float		v = x[i] > m ? m : x[i] < -m ? -m : x[i];
		float		a = fabsf(v);

		lo = v < lo ? v : lo;
		hi = v > hi ? v : hi;
		if (a > abig)
		{
			abig = a;
			big = v;
		}
	}
	if (sym)
	{
		s = qt_storable_scale(big / (float) -(1 << (bits - 1)), needs_fp32);
		z = 1 << (bits - 1);
	}
	else
	{
		s = qt_storable_scale((hi - lo) / (float) maxq, needs_fp32);
		z = 0;
		if (s != 0.0f)
		{
			zf = qt_round_code(-lo / s);
			z = zf < 0.0f ? 0 : zf > (float) maxq ? maxq : (int) zf;
		}
	}
	inv = s == 0.0f ? 0.0f : 1.0f / s;
	for (int64_t i = 0; i < n; i++)
	{
		float		v = x[i] > m ? m : x[i] < -m ? -m : x[i];
		float		q = qt_round_code(v * inv) + (float) z;

		q = q < 0.0f ? 0.0f : q > (float) maxq ? (float) maxq : q;
		deq[i] = (q - (float) z) * s;
		if (codes)
			codes[i] = (uint8_t) q;
	}
	*s_out = s;
	*z_out = (uint8_t) z;
}

/*
 * sum over rows of d_r^T H d_r for d (rows x n, row-major, leading
 * dimension ld) and H given as a full matrix (h, leading dimension ldh),
 * a diagonal (hdiag) or neither (identity).  tmp: rows x n floats.
 */
static double
energy(const float *d, int64_t rows, int64_t n, int64_t ld, const float *h, int64_t ldh,
	   const float *hdiag, float *tmp)
{
	double		e = 0.0;

	if (h)
	{
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int) rows, (int) n, (int) n,
					1.0f, d, (int) ld, h, (int) ldh, 0.0f, tmp, (int) n);
		for (int64_t r = 0; r < rows; r++)
			for (int64_t j = 0; j < n; j++)
				e += (double) d[r * ld + j] * tmp[r * n + j];
	}
	else
		for (int64_t r = 0; r < rows; r++)
			for (int64_t j = 0; j < n; j++)
			{
				double		v = d[r * ld + j];

				e += v * v * (hdiag ? hdiag[j] : 1.0f);
			}
	return e;
}

void
qt_awq_result_free(QtAwqResult *res)
{
	if (res->chscale)
		qc_free(res->chscale);
	if (res->scales)
		qc_free(res->scales);
	if (res->zeros)
		qc_free(res->zeros);
	if (res->codes)
		qc_free(res->codes);
	res->chscale = NULL;
	res->scales = NULL;
	res->zeros = NULL;
	res->codes = NULL;
}

/* the channel scales of one grid point: mean|x|^alpha, clamped, normalized */
static void
channel_scales(const float *mean_abs, int64_t n, double alpha, float *s)
{
	float		smax = 0.0f,
				smin = INFINITY,
				norm;

	for (int64_t j = 0; j < n; j++)
	{
		float		v = powf(mean_abs[j], (float) alpha);

		s[j] = v < 1e-4f ? 1e-4f : v;
		smax = s[j] > smax ? s[j] : smax;
		smin = s[j] < smin ? s[j] : smin;
	}
	norm = sqrtf(smax * smin);
	for (int64_t j = 0; j < n; j++)
		s[j] /= norm;
}

QtStatus
qt_awq(const float *w, int32_t rows, int32_t cols, const float *h, const float *hdiag,
	   const float *mean_abs, const QtAwqSpec *spec, QtAwqResult *res, char *err)
{
	const int64_t n = cols;
	const int64_t glen = spec->group_size == QT_GROUP_PER_CHANNEL ? cols : spec->group_size;
	const int64_t ngroups = (cols + glen - 1) / glen;
	const int	n_grid = spec->n_grid > 0 ? spec->n_grid : QT_AWQ_GRID;
	const int	n_clip = (int) (n_grid * (spec->max_shrink > 0.0 ? spec->max_shrink : QT_AWQ_MAX_SHRINK));
	/* the scale search reads every stride-th output row */
	const int64_t stride = spec->search_rows > 0 && rows > spec->search_rows ?
		(rows + spec->search_rows - 1) / spec->search_rows : 1;
	const int64_t nsearch = (rows + stride - 1) / stride;
	float	   *s = NULL,
			   *ws = NULL,
			   *d = NULL,
			   *tmp = NULL,
			   *hg = NULL,
			   *best_m = NULL,
			   *best_e = NULL,
			   *gmax = NULL;
	bool		needs_fp32 = false;
	QtStatus	st = QT_OK;

	memset(res, 0, sizeof(*res));
	res->chscale = qc_alloc(sizeof(float) * (size_t) n);
	res->scales = qc_alloc(sizeof(float) * (size_t) rows * ngroups);
	res->zeros = qc_alloc((size_t) rows * ngroups);
	res->codes = qc_alloc((size_t) rows * n);
	s = qc_alloc(sizeof(float) * (size_t) n);
	ws = qc_alloc(sizeof(float) * (size_t) rows * n);
	d = qc_alloc(sizeof(float) * (size_t) (nsearch > 0 ? nsearch : 1) * n);
	tmp = qc_alloc(sizeof(float) * (size_t) (nsearch > 0 ? nsearch : 1) * n);
	best_m = qc_alloc(sizeof(float) * (size_t) rows);
	best_e = qc_alloc(sizeof(float) * (size_t) rows);
	gmax = qc_alloc(sizeof(float) * (size_t) rows);
	hg = qc_alloc(sizeof(float) * (size_t) glen * glen);
	if (!res->chscale || !res->scales || !res->zeros || !res->codes || !s || !ws || !d || !tmp ||
		!best_m || !best_e || !gmax || !hg)
		FAIL(QT_ELIMIT, "out of memory for AWQ on a %d x %d matrix", rows, cols);

	/* 1. the scale search over alpha, on the sampled rows */
	for (int64_t j = 0; j < n; j++)
		res->chscale[j] = 1.0f;
	res->alpha = 0.0;
	if (mean_abs)
	{
		double		best = INFINITY;

		for (int i = 0; i < n_grid; i++)
		{
			double		alpha = (double) i / n_grid,
						loss;
			bool		unused = false;

			if (qt_interrupt_hook)
				qt_interrupt_hook();
			channel_scales(mean_abs, n, alpha, s);
			for (int64_t k = 0; k < nsearch; k++)
			{
				const float *src = w + k * stride * n;
				float	   *dr = d + k * n;
				float		gs;
				uint8_t		gz;

				for (int64_t j = 0; j < n; j++)
					tmp[j] = src[j] * s[j];
				for (int64_t g = 0; g < ngroups; g++)
				{
					int64_t		j0 = g * glen,
								len = n - j0 < glen ? n - j0 : glen;

					quant_group(tmp + j0, len, spec->bits, spec->symmetric, INFINITY, &gs, &gz,
								dr + j0, NULL, &unused);
				}
				for (int64_t j = 0; j < n; j++)
					dr[j] = dr[j] / s[j] - src[j];	/* as decoded, minus the original */
			}
			loss = energy(d, nsearch, n, n, h, n, hdiag, tmp);
			if (i == 0)
				res->loss_rtn = loss;
			if (loss < best)
			{
				best = loss;
				res->alpha = alpha;
				memcpy(res->chscale, s, sizeof(float) * (size_t) n);
			}
		}
		res->loss_scaled = best;
	}

	/* 2. the clipping search on W' = W diag(s), every row, group by group */
	for (int64_t r = 0; r < rows; r++)
		for (int64_t j = 0; j < n; j++)
			ws[r * n + j] = w[r * n + j] * res->chscale[j];
	for (int64_t g = 0; g < ngroups; g++)
	{
		const int64_t j0 = g * glen,
					len = n - j0 < glen ? n - j0 : glen;
		const float *hgp = NULL,
				   *hdp = NULL;
		float	   *dg = d,
				   *tg = tmp;
		bool		batch = nsearch >= rows;	/* d and tmp hold all rows */

		if (qt_interrupt_hook)
			qt_interrupt_hook();
		/* the group's block of H in the scaled domain: S^-1 H_gg S^-1 */
		if (h)
		{
			for (int64_t a = 0; a < len; a++)
				for (int64_t b = 0; b < len; b++)
					hg[a * len + b] = h[(j0 + a) * n + j0 + b] / (res->chscale[j0 + a] * res->chscale[j0 + b]);
			hgp = hg;
		}
		else
		{
			for (int64_t a = 0; a < len; a++)
				hg[a] = (hdiag ? hdiag[j0 + a] : 1.0f) / (res->chscale[j0 + a] * res->chscale[j0 + a]);
			hdp = hg;
		}
		for (int64_t r = 0; r < rows; r++)
		{
			float		m = 0.0f;

			for (int64_t j = 0; j < len; j++)
				m = fmaxf(m, fabsf(ws[r * n + j0 + j]));
			gmax[r] = m;
			best_m[r] = INFINITY;
			best_e[r] = INFINITY;
		}
		for (int i = 0; i < n_clip; i++)
		{
			/* rows in batches that fit d and tmp (nsearch x n floats each) */
			int64_t		bsz = batch ? rows : (nsearch * n) / len;

			for (int64_t r0 = 0; r0 < rows; r0 += bsz)
			{
				int64_t		r1 = r0 + bsz < rows ? r0 + bsz : rows;

				for (int64_t r = r0; r < r1; r++)
				{
					float	   *dr = dg + (r - r0) * len;
					float		m = gmax[r] * (1.0f - (float) i / n_grid),
								gs;
					uint8_t		gz;
					bool		unused = false;

					quant_group(ws + r * n + j0, len, spec->bits, spec->symmetric, m, &gs, &gz, dr, NULL, &unused);
					for (int64_t j = 0; j < len; j++)
						dr[j] -= ws[r * n + j0 + j];
				}
				if (hgp)
					cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int) (r1 - r0), (int) len, (int) len,
								1.0f, dg, (int) len, hgp, (int) len, 0.0f, tg, (int) len);
				for (int64_t r = r0; r < r1; r++)
				{
					const float *dr = dg + (r - r0) * len;
					double		e = 0.0;

					for (int64_t j = 0; j < len; j++)
						e += (double) dr[j] * (hgp ? tg[(r - r0) * len + j] : dr[j] * hdp[j]);
					if (e < best_e[r])
					{
						best_e[r] = (float) e;
						best_m[r] = gmax[r] * (1.0f - (float) i / n_grid);
					}
				}
			}
		}
		/* the chosen clamp of every row: final parameters and codes */
		for (int64_t r = 0; r < rows; r++)
		{
			uint8_t		gz;

			quant_group(ws + r * n + j0, len, spec->bits, spec->symmetric,
						isfinite(best_m[r]) ? best_m[r] : INFINITY,
						&res->scales[r * ngroups + g], &gz, tg, res->codes + r * n + j0, &needs_fp32);
			res->zeros[r * ngroups + g] = gz;
		}
	}
	res->scale_type = needs_fp32 ? QT_SCALE_FP32 : QT_SCALE_FP16;

done:
	if (s)
		qc_free(s);
	if (ws)
		qc_free(ws);
	if (d)
		qc_free(d);
	if (tmp)
		qc_free(tmp);
	if (best_m)
		qc_free(best_m);
	if (best_e)
		qc_free(best_e);
	if (gmax)
		qc_free(gmax);
	if (hg)
		qc_free(hg);
	if (st != QT_OK)
		qt_awq_result_free(res);
	return st;
}
