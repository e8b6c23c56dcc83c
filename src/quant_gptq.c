/*
 * quant_gptq.c: GPTQ (Frantar, Ashkboos, Hoefler, Alistarh, "GPTQ: Accurate
 * Post-Training Quantization for Generative Pre-trained Transformers", 2023),
 * as the reference code (IST-DASLab/gptq, gptq.py fasterquant) defines it.
 *
 * GPTQ quantizes a layer W (rows = outputs, cols = inputs) one input column
 * at a time and pushes each column's rounding error onto the columns not
 * yet quantized, weighted by the inverse Hessian of the layer's squared
 * output error, H = 2 X^T X / nrows (any positive multiple gives the same
 * result, so X^T X is used as stored):
 *
 *   dead inputs (H_jj = 0): H_jj = 1 and W[:, j] = 0
 *   optional act-order: process columns by descending H_jj
 *   H += damp * mean(diag(H)) * I;  U = upper Cholesky factor of H^-1
 *   for each column i:   q = quant(W[:, i]);  e = (W[:, i] - q) / U_ii
 *                        W[:, j] -= e * U_ij  for j > i
 *
 * The blocked path applies the updates inside a block of 128 columns at
 * once per column and defers the rest to one matrix product per block
 * (the reference's "lazy batch" updates), which is exact.  Group scales and
 * zero points are computed from the current (error-updated) weights when a
 * group's first column is reached; blocks are cut so that no group both
 * starts inside a block and extends past it, so those weights are always
 * fully updated.  With static groups every group's parameters come from
 * the original weights instead (then act-order needs no stored
 * permutation: groups and codes keep the original column order).
 *
 * The factorization goes through LAPACK (spotrf, strtri, see gptq_prepare);
 * the updates through BLAS
 * (sger inside a block, sgemm between blocks).  The weights are kept
 * transposed (WT[col][row]) so that a column is contiguous.
 *
 * qt_gptq_ref() is the plain oracle: the same preparation, then every
 * update applied immediately, one scalar at a time.
 */
#include "qcalib.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* how many times the dampening may grow tenfold before giving up */
#define GPTQ_DAMP_RETRIES 6

#define FAIL(status, ...) \
	do { if (err) snprintf(err, QT_ERRMSG_LEN, __VA_ARGS__); st = (status); goto done; } while (0)

/* state shared by the blocked path and the oracle */
typedef struct Gptq
{
	const QtGptqSpec *spec;
	int32_t		rows,
				cols;
	int			maxq;
	int64_t		glen;			/* group length (cols for one group per row) */
	int64_t		ngroups;
	float	   *wt;				/* [cols][rows] weights, processing order, updated in place */
	float	   *u;				/* [cols][cols] row-major upper Cholesky factor of H^-1 */
	int32_t    *order;			/* [cols] processing position k holds original column order[k] */
	float	   *gscale;			/* [rows] current group's scale per row (as stored) */
	float	   *ginv;			/* [rows] its reciprocal, 0 for a zero scale */
	uint8_t    *codes_t;		/* [cols][rows] codes in processing order, transposed at the end */
	uint8_t    *gzero;			/* [rows] current group's zero point per row */
	bool		needs_fp32;
	QtGptqResult *res;
} Gptq;

/* original-order stored column of processing position k */
static inline int32_t
stored_col(const Gptq *g, int64_t k)
{
	return (g->spec->act_order && !g->spec->static_groups) ? (int32_t) k : g->order[k];
}

/*
 * Scale and zero point per row for a group whose columns (in wt's
 * processing order) are k0 .. k1-1, or, with src != NULL, the original
 * columns k0 .. k1-1 of the row-major matrix src.  Round-to-nearest
 * parameters, as the reference's quantizer: the range includes 0.
 */
static void
group_params(Gptq *g, const float *src, int64_t k0, int64_t k1, float *scale, uint8_t *zero)
{
	const int	bits = g->spec->bits;
	const int32_t rows = g->rows;

	for (int32_t r = 0; r < rows; r++)
	{
		float		lo = 0.0f,
					hi = 0.0f,
					m = 0.0f,
					am = 0.0f,
					s;
		int			z;

		for (int64_t k = k0; k < k1; k++)
		{
			float		v = src ? src[(int64_t) r * g->cols + k] : g->wt[k * rows + r];
			float		a = fabsf(v);

			lo = v < lo ? v : lo;
			hi = v > hi ? v : hi;
			if (a > am)
			{
				am = a;
				m = v;
			}
		}
		if (g->spec->symmetric)
		{
			s = qt_storable_scale(m / (float) -(1 << (bits - 1)), &g->needs_fp32);
			z = 1 << (bits - 1);
		}
		else
		{
			s = qt_storable_scale((hi - lo) / (float) g->maxq, &g->needs_fp32);
			if (s == 0.0f)
				z = 0;
			else
			{
				float		zf = qt_round_code(-lo / s);

				z = zf < 0.0f ? 0 : zf > (float) g->maxq ? g->maxq : (int) zf;
			}
		}
		scale[r] = s;
		zero[r] = (uint8_t) z;
	}
}

/* Load the current group's parameters when column k starts one (non-static groups). */
static void
set_inverses(Gptq *g)
{
	for (int32_t r = 0; r < g->rows; r++)
		g->ginv[r] = g->gscale[r] == 0.0f ? 0.0f : 1.0f / g->gscale[r];
}

static void
maybe_new_group(Gptq *g, int64_t k)
{
	int64_t		grp;

	if (g->spec->static_groups)
	{
		/* the group of column k's original position, computed up front */
		grp = g->order[k] / g->glen;
		for (int32_t r = 0; r < g->rows; r++)
		{
			g->gscale[r] = g->res->scales[r * g->ngroups + grp];
			g->gzero[r] = g->res->zeros[r * g->ngroups + grp];
		}
		set_inverses(g);
		return;
	}
	if (k % g->glen != 0)
		return;
	grp = k / g->glen;
	group_params(g, NULL, k, k + g->glen < g->cols ? k + g->glen : g->cols, g->gscale, g->gzero);
	set_inverses(g);
	for (int32_t r = 0; r < g->rows; r++)
	{
		g->res->scales[r * g->ngroups + grp] = g->gscale[r];
		g->res->zeros[r * g->ngroups + grp] = g->gzero[r];
	}
}

/* Quantize column k (wt[k]) with the current group's parameters; e[r] = error / U_kk. */
static void
quantize_column(Gptq *g, int64_t k, float *e)
{
	const float dinv = 1.0f / g->u[k * g->cols + k];
	const float *x = g->wt + k * g->rows;
	uint8_t    *codes = g->codes_t + k * g->rows;

	for (int32_t r = 0; r < g->rows; r++)
	{
		float		s = g->gscale[r];
		float		z = (float) g->gzero[r];
		float		q = qt_round_code(x[r] * g->ginv[r]) + z;
		float		v;

		q = q < 0.0f ? 0.0f : q > (float) g->maxq ? (float) g->maxq : q;
		v = (q - z) * s;		/* what the decoder will return */
		codes[r] = (uint8_t) q;
		e[r] = (x[r] - v) * dinv;
	}
}

/*
 * Everything before the column loop: dead inputs, order, static groups,
 * transposed weights, dampening and the Cholesky factor of H^-1.
 */
static QtStatus
gptq_prepare(Gptq *g, const float *w, const float *xtx, char *err)
{
	const int64_t n = g->cols;
	const int32_t rows = g->rows;
	float	   *w0 = NULL;
	float	   *diag = NULL;
	bool	   *dead = NULL;
	double		mean_diag = 0.0;
	QtStatus	st = QT_OK;

	w0 = qc_alloc(sizeof(float) * (size_t) rows * n);
	diag = qc_alloc(sizeof(float) * (size_t) n);
	dead = qc_alloc(sizeof(bool) * (size_t) n);
	if (!w0 || !diag || !dead)
		FAIL(QT_ELIMIT, "out of memory for GPTQ on a %d x %d matrix", rows, g->cols);

	for (int64_t j = 0; j < n; j++)
	{
		float		h = xtx[j * n + j];

		if (!(h >= 0.0f) || !isfinite(h))
			FAIL(QT_EINVAL, "X^T X has a negative or non-finite diagonal entry at %lld, so it is not the "
				 "Gram matrix of any activations", (long long) j + 1);
		dead[j] = h == 0.0f;
		diag[j] = dead[j] ? 1.0f : h;
		if (dead[j])
			g->res->n_dead++;
		mean_diag += diag[j];
	}
	mean_diag /= (double) n;

	/* the weights of inputs that are always zero do not matter: zero them, as the reference does */
	memcpy(w0, w, sizeof(float) * (size_t) rows * n);
	for (int32_t r = 0; r < rows; r++)
		for (int64_t j = 0; j < n; j++)
			if (dead[j])
				w0[r * n + j] = 0.0f;

	/* processing order: descending diag(H) with act-order (ties by column), else as stored */
	for (int64_t k = 0; k < n; k++)
		g->order[k] = (int32_t) k;
	if (g->spec->act_order)
	{
		/* a stable bottom-up merge sort: ties keep the stored order */
		int32_t    *tmp = qc_alloc(sizeof(int32_t) * (size_t) n);

		if (!tmp)
			FAIL(QT_ELIMIT, "out of memory for GPTQ's column order");
		for (int64_t width = 1; width < n; width *= 2)
		{
			for (int64_t lo = 0; lo < n; lo += 2 * width)
			{
				int64_t		mid = lo + width < n ? lo + width : n,
							hi = lo + 2 * width < n ? lo + 2 * width : n,
							a = lo,
							b = mid,
							o = lo;

				while (a < mid && b < hi)
					tmp[o++] = diag[g->order[b]] > diag[g->order[a]] ? g->order[b++] : g->order[a++];
				while (a < mid)
					tmp[o++] = g->order[a++];
				while (b < hi)
					tmp[o++] = g->order[b++];
			}
			memcpy(g->order, tmp, sizeof(int32_t) * (size_t) n);
		}
		qc_free(tmp);
	}

	/* static groups: every group's parameters from the original weights, in original order */
	if (g->spec->static_groups)
		for (int64_t grp = 0; grp < g->ngroups; grp++)
		{
			int64_t		k0 = grp * g->glen,
						k1 = k0 + g->glen < n ? k0 + g->glen : n;

			group_params(g, w0, k0, k1, g->gscale, g->gzero);
			for (int32_t r = 0; r < rows; r++)
			{
				g->res->scales[r * g->ngroups + grp] = g->gscale[r];
				g->res->zeros[r * g->ngroups + grp] = g->gzero[r];
			}
		}

	/* the weights transposed, in processing order (in tiles, to stay in cache) */
	for (int64_t k0 = 0; k0 < n; k0 += 64)
	{
		if (qt_interrupt_hook)
			qt_interrupt_hook();
		for (int32_t r0 = 0; r0 < rows; r0 += 64)
			for (int64_t k = k0; k < n && k < k0 + 64; k++)
			{
				const int32_t c = g->order[k];

				for (int32_t r = r0; r < rows && r < r0 + 64; r++)
					g->wt[k * rows + r] = w0[(int64_t) r * n + c];
			}
	}

	/*
	 * The upper Cholesky factor U of (H + damp * mean(diag) * I)^-1, H in
	 * processing order, with one factorization and one triangular inverse:
	 * with J the order-reversing permutation and J H J = L L^T,
	 * H^-1 = J L^-T L^-1 J = V^T V for V = J L^-1 J, which is upper
	 * triangular with a positive diagonal, so V = U.  (The reference
	 * factors, inverts from the factor and factors again; this is the same
	 * matrix for half the work.)  Symmetric, the row-major buffer is its own
	 * column-major transpose: spotrf and strtri on the column-major upper
	 * triangle leave L^-1 in the row-major lower one, and reading that
	 * backwards (reversing the whole buffer) gives U row-major.  If H is not
	 * positive definite in float, the dampening grows tenfold and
	 * everything is redone.
	 */
	g->res->damp = g->spec->percdamp;
	for (int attempt = 0;; attempt++)
	{
		float		add = (float) (g->res->damp * mean_diag);
		lapack_int	info;

		if (qt_interrupt_hook)
			qt_interrupt_hook();
		for (int64_t a = 0; a < n; a++)
		{
			const int32_t ra = g->order[n - 1 - a];
			const float *src = xtx + (int64_t) ra * n;
			float	   *dst = g->u + a * n;

			if (qt_interrupt_hook && a % 256 == 0)
				qt_interrupt_hook();
			for (int64_t b = 0; b < n; b++)
				dst[b] = src[g->order[n - 1 - b]];
			dst[a] = diag[ra] + add;
		}
		info = LAPACKE_spotrf_work(LAPACK_COL_MAJOR, 'U', (lapack_int) n, g->u, (lapack_int) n);
		if (info == 0)
			info = LAPACKE_strtri_work(LAPACK_COL_MAJOR, 'U', 'N', (lapack_int) n, g->u, (lapack_int) n);
		if (info < 0)
			FAIL(QT_EINVAL, "LAPACK rejected argument %d (please report a bug)", (int) -info);
		if (info == 0)
			break;
		if (attempt == GPTQ_DAMP_RETRIES)
			FAIL(QT_EINVAL, "X^T X is not positive definite even with dampening %g of its mean diagonal",
				 g->res->damp);
		g->res->damp *= 10.0;
		g->res->retries++;
	}
	/* reverse: U[i][j] = (L^-1)[n-1-i][n-1-j]; then clear what was H's other triangle */
	for (int64_t p = 0, q = n * n - 1; p < q; p++, q--)
	{
		float		t = g->u[p];

		g->u[p] = g->u[q];
		g->u[q] = t;
	}
	for (int64_t i = 1; i < n; i++)
		memset(g->u + i * n, 0, sizeof(float) * (size_t) i);

done:
	if (w0)
		qc_free(w0);
	if (diag)
		qc_free(diag);
	if (dead)
		qc_free(dead);
	return st;
}

/* allocate the result and the working state; NULL members on failure */
static QtStatus
gptq_begin(Gptq *g, const float *w, int32_t rows, int32_t cols, const float *xtx,
		   const QtGptqSpec *spec, QtGptqResult *res, char *err)
{
	const int64_t n = cols;
	QtStatus	st = QT_OK;

	memset(g, 0, sizeof(*g));
	memset(res, 0, sizeof(*res));
	g->spec = spec;
	g->rows = rows;
	g->cols = cols;
	g->maxq = (1 << spec->bits) - 1;
	g->glen = spec->group_size == QT_GROUP_PER_CHANNEL ? cols : spec->group_size;
	g->ngroups = (cols + g->glen - 1) / g->glen;
	g->res = res;
	res->scales = qc_alloc(sizeof(float) * (size_t) rows * g->ngroups);
	res->zeros = qc_alloc((size_t) rows * g->ngroups);
	res->codes = qc_alloc((size_t) rows * n);
	res->perm = (spec->act_order && !spec->static_groups) ? qc_alloc(sizeof(int32_t) * (size_t) n) : NULL;
	g->order = qc_alloc(sizeof(int32_t) * (size_t) n);
	g->wt = qc_alloc(sizeof(float) * (size_t) rows * n);
	g->u = qc_alloc(sizeof(float) * (size_t) n * n);
	g->gscale = qc_alloc(sizeof(float) * (size_t) rows);
	g->gzero = qc_alloc((size_t) rows);
	g->ginv = qc_alloc(sizeof(float) * (size_t) rows);
	g->codes_t = qc_alloc((size_t) rows * n);
	if (!res->scales || !res->zeros || !res->codes || (spec->act_order && !spec->static_groups && !res->perm) ||
		!g->order || !g->wt || !g->u || !g->gscale || !g->gzero || !g->ginv || !g->codes_t)
		FAIL(QT_ELIMIT, "out of memory for GPTQ on a %d x %d matrix", rows, cols);
	memset(res->codes, 0, (size_t) rows * n);
	st = gptq_prepare(g, w, xtx, err);
done:
	return st;
}

/* free the working state; on success keep the result (codes in stored order, perm) */
static QtStatus
gptq_end(Gptq *g, QtStatus st)
{
	if (st == QT_OK)
	{
		/* codes_t[k][r] -> codes[r][stored column of k], in tiles to stay in cache */
		for (int64_t k0 = 0; k0 < g->cols; k0 += 64)
			for (int32_t r0 = 0; r0 < g->rows; r0 += 64)
				for (int64_t k = k0; k < g->cols && k < k0 + 64; k++)
				{
					const int64_t col = stored_col(g, k);
					const uint8_t *src = g->codes_t + k * g->rows;

					for (int32_t r = r0; r < g->rows && r < r0 + 64; r++)
						g->res->codes[(int64_t) r * g->cols + col] = src[r];
				}
		if (g->res->perm)
			memcpy(g->res->perm, g->order, sizeof(int32_t) * (size_t) g->cols);
	}
	g->res->scale_type = g->needs_fp32 ? QT_SCALE_FP32 : QT_SCALE_FP16;
	if (g->order)
		qc_free(g->order);
	if (g->wt)
		qc_free(g->wt);
	if (g->u)
		qc_free(g->u);
	if (g->gscale)
		qc_free(g->gscale);
	if (g->gzero)
		qc_free(g->gzero);
	if (g->ginv)
		qc_free(g->ginv);
	if (g->codes_t)
		qc_free(g->codes_t);
	if (st != QT_OK)
		qt_gptq_result_free(g->res);
	return st;
}

void
qt_gptq_result_free(QtGptqResult *res)
{
	if (res->scales)
		qc_free(res->scales);
	if (res->zeros)
		qc_free(res->zeros);
	if (res->codes)
		qc_free(res->codes);
	if (res->perm)
		qc_free(res->perm);
	res->scales = NULL;
	res->zeros = NULL;
	res->codes = NULL;
	res->perm = NULL;
}

QtStatus
qt_gptq(const float *w, int32_t rows, int32_t cols, const float *xtx,
		const QtGptqSpec *spec, QtGptqResult *res, char *err)
{
	Gptq		g;
	const int64_t n = cols;
	const int	bs = spec->block_size > 0 ? spec->block_size : QT_GPTQ_BLOCK;
	float	   *e = NULL;
	QtStatus	st = gptq_begin(&g, w, rows, cols, xtx, spec, res, err);

	if (st != QT_OK)
		goto done;
	e = qc_alloc(sizeof(float) * (size_t) bs * rows);	/* [block column][row] errors */
	if (!e)
		FAIL(QT_ELIMIT, "out of memory for GPTQ's block of errors");

	for (int64_t i1 = 0, i2; i1 < n; i1 = i2)
	{
		i2 = i1 + bs < n ? i1 + bs : n;
		/* cut the block where a group starts inside it and would extend past its end */
		if (!spec->static_groups)
			for (int64_t c = (i1 / g.glen + 1) * g.glen; c < i2; c += g.glen)
				if ((c + g.glen < n ? c + g.glen : n) > i2)
				{
					i2 = c;
					break;
				}
		if (qt_interrupt_hook)
			qt_interrupt_hook();
		for (int64_t i = i1; i < i2; i++)
		{
			float	   *ei = e + (i - i1) * rows;

			maybe_new_group(&g, i);
			quantize_column(&g, i, ei);
			/* the rest of the block now: W[:, j] -= e * U_ij, i < j < i2 */
			if (i + 1 < i2)
				cblas_sger(CblasRowMajor, (int) (i2 - i - 1), rows, -1.0f,
						   g.u + i * n + i + 1, 1, ei, 1, g.wt + (i + 1) * rows, rows);
		}
		/* the columns after the block, all at once: W[:, i2:] -= E U[i1:i2, i2:] */
		if (i2 < n)
			cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int) (n - i2), rows, (int) (i2 - i1),
						-1.0f, g.u + i1 * n + i2, (int) n, e, rows, 1.0f, g.wt + i2 * rows, rows);
	}
done:
	if (e)
		qc_free(e);
	return gptq_end(&g, st);
}

QtStatus
qt_gptq_ref(const float *w, int32_t rows, int32_t cols, const float *xtx,
			const QtGptqSpec *spec, QtGptqResult *res, char *err)
{
	Gptq		g;
	const int64_t n = cols;
	float	   *e = NULL;
	QtStatus	st = gptq_begin(&g, w, rows, cols, xtx, spec, res, err);

	if (st != QT_OK)
		goto done;
	e = qc_alloc(sizeof(float) * (size_t) rows);
	if (!e)
		FAIL(QT_ELIMIT, "out of memory for GPTQ's errors");
	for (int64_t i = 0; i < n; i++)
	{
		if (qt_interrupt_hook)
			qt_interrupt_hook();
		maybe_new_group(&g, i);
		quantize_column(&g, i, e);
		for (int64_t j = i + 1; j < n; j++)
		{
			float		uij = g.u[i * n + j];

			for (int32_t r = 0; r < rows; r++)
				g.wt[j * rows + r] -= e[r] * uij;
		}
	}
done:
	if (e)
		qc_free(e);
	return gptq_end(&g, st);
}
