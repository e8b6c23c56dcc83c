/*
 * test_qgemv.c: the quantized GEMV/GEMM of every instruction set against
 * the reference (qk_gemv_ref: reference decoder, products summed in double),
 * outside the server.  Prints TAP.
 *
 * Each case builds a qtensor from seeded random data through the qformat.h
 * API (random scales, zero points and codes, optionally a permutation,
 * channel scales and outliers), checks it with qt_check_body, and runs
 * qk_gemv and qk_gemm with every set the CPU supports.  Unsupported sets
 * are reported as skipped.
 *
 * Tolerance: float sums drift from the double reference by a few ulps of
 * the magnitudes summed, so the error of row r is held to
 *   GEMV_TOL[bits] * (sum_c |W[r][c] x[c]| + sum_g |s_g| z_g sum_{j in g} |x_j|)
 * where the second term covers the fused kernels' zero-point trick
 * (s * (sum q x - z * sum x)).  A negative control checks that a one-step
 * change of a single code in a 4096-wide row exceeds the tolerance many times
 * over, so the check has teeth.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qformat.h"
#include "qgemv.h"
#include "quant.h"
#include "tap.h"

/* named tolerances per bit width (index 9: NF4), relative to the bound above */
static const double GEMV_TOL[10] = {0, 0, 2e-6, 2e-6, 2e-6, 2e-6, 3e-6, 3e-6, 4e-6, 2e-6};

/* the float draws this file's seeded cases were built from */
static float
unit(void)
{
	return (float) rng_unit();
}

typedef struct Case
{
	int			rows,
				cols,
				bits,
				enc,
				group,
				scale_type;
	bool		zeros,
				chscale,
				perm;
	int			outliers;
} Case;

/* a random qtensor for a case; NULL when the layout is refused */
static uint8_t *
build(const Case *c, QtLayout *l)
{
	QtHeader	h = {0};
	uint8_t    *buf;
	char		err[QT_ERRMSG_LEN];
	uint8_t    *scratch;
	int			maxq = (1 << c->bits) - 1;

	h.version = QT_FORMAT_VERSION;
	h.method = c->enc == QT_ENC_NF4 ? QT_METHOD_NF4 : QT_METHOD_RTN;
	h.encoding = c->enc;
	h.bits = c->bits;
	h.scale_type = c->scale_type;
	h.flags = (c->zeros ? QT_FLAG_ZEROS : 0) | (c->chscale ? QT_FLAG_CHSCALE : 0) | (c->perm ? QT_FLAG_PERM : 0);
	h.rows = c->rows;
	h.cols = c->cols;
	h.group_size = c->group;
	h.n_outliers = 0;
	if (qt_check_header(&h, err) != QT_OK || qt_layout(&h, l, err) != QT_OK)
	{
		fprintf(stderr, "# bad case: %s\n", err);
		return NULL;
	}
	/* outliers: distinct sorted positions, one per chosen row at most */
	if (c->outliers > 0)
	{
		h.n_outliers = c->outliers < c->rows ? c->outliers : c->rows;
		qt_layout(&h, l, err);
	}
	buf = calloc(1, l->total);
	memcpy(buf, &h, sizeof(h));
	for (int64_t i = 0; i < (int64_t) c->rows * l->ngroups; i++)
	{
		qt_set_scale(buf, l, i, (0.01f + unit()) * (unit() < 0.5f ? -1.0f : 1.0f));
		if (c->zeros)
			buf[l->off_zeros + i] = (uint8_t) (rng() % (maxq + 1));
	}
	if (c->chscale)
		for (int j = 0; j < c->cols; j++)
		{
			float		v = 0.25f + 2.0f * unit();

			memcpy(buf + l->off_chscale + 4 * j, &v, 4);
		}
	if (c->perm)
	{
		int32_t    *p = (int32_t *) (buf + l->off_perm);

		for (int j = 0; j < c->cols; j++)
			p[j] = j;
		for (int j = c->cols - 1; j > 0; j--)
		{
			int			k = (int) (rng() % (j + 1));
			int32_t		t = p[j];

			p[j] = p[k];
			p[k] = t;
		}
	}
	for (int i = 0; i < h.n_outliers; i++)
	{
		QtOutlier	o;

		o.row = (uint32_t) ((int64_t) i * c->rows / h.n_outliers);
		o.col = (uint32_t) (rng() % c->cols);
		o.value = 10.0f * rng_normal_alt();
		memcpy(buf + l->off_outliers + 12 * i, &o, 12);
	}
	for (int r = 0; r < c->rows; r++)
		for (int j = 0; j < c->cols; j++)
			qt_put_code(buf + l->off_codes + (size_t) r * l->row_bytes, j, c->bits, (unsigned) (rng() % (maxq + 1)));
	scratch = malloc(c->cols);
	if (qt_check_body(buf, l, scratch, err) != QT_OK)
	{
		fprintf(stderr, "# built a bad body: %s\n", err);
		free(buf);
		buf = NULL;
	}
	free(scratch);
	return buf;
}

/* per row: sum |W x| + sum_g |s| z sum_g |x| (see the header comment) */
static void
bounds(const uint8_t *buf, const QtLayout *l, const float *x, double *bound)
{
	const QtHeader *h = (const QtHeader *) buf;
	float	   *w = malloc(sizeof(float) * h->cols);
	int			sym_zero = 1 << (h->bits - 1);

	for (int r = 0; r < h->rows; r++)
	{
		double		b = 0.0;

		qt_dequantize_ref(buf, l, r, r + 1, w);
		for (int c = 0; c < h->cols; c++)
			b += fabs((double) w[c] * x[c]);
		if (h->encoding == QT_ENC_INT)
			for (int64_t g = 0; g < l->ngroups; g++)
			{
				double		sx = 0.0;
				int			z = (h->flags & QT_FLAG_ZEROS) ? buf[l->off_zeros + r * l->ngroups + g] : sym_zero;

				for (int64_t j = 0; j < qt_group_len(l, h->cols, g); j++)
					sx += fabs(x[g * l->group_len + j]);
				b += fabs(qt_get_scale(buf, l, r * l->ngroups + g)) * z * sx;
			}
		bound[r] = b;
	}
	free(w);
}

static const char *
case_name(const Case *c, char *out, size_t len)
{
	snprintf(out, len, "%dx%d %s%d g%d %s%s%s%s%s", c->rows, c->cols,
			 c->enc == QT_ENC_NF4 ? "nf" : "int", c->bits, c->group,
			 c->scale_type == QT_SCALE_FP16 ? "fp16" : "fp32",
			 c->zeros ? " asym" : c->enc == QT_ENC_INT ? " sym" : "",
			 c->chscale ? " chscale" : "", c->perm ? " perm" : "",
			 c->outliers ? " outliers" : "");
	return out;
}

/* worst error / bound over the rows; negative if the error is not finite */
static double
worst_ratio(const float *y, const double *ref, const double *bound, int rows)
{
	double		worst = 0.0;

	for (int r = 0; r < rows; r++)
	{
		double		e = fabs((double) y[r] - ref[r]);

		if (!isfinite(y[r]))
			return -1.0;
		if (bound[r] > 0.0 && e / bound[r] > worst)
			worst = e / bound[r];
		else if (bound[r] == 0.0 && e > 0.0)
			return INFINITY;
	}
	return worst;
}

static void
run_case(const Case *c, int batch)
{
	QtLayout	l;
	uint8_t    *buf = build(c, &l);
	char		name[160];
	double		tol = GEMV_TOL[c->enc == QT_ENC_NF4 ? 9 : c->bits];
	float	   *X,
			   *Y,
			   *refwork;
	double	   *ref,
			   *bound;
	void	   *work;

	case_name(c, name, sizeof(name));
	if (buf == NULL)
	{
		ok(0, "%s: could not build the tensor", name);
		return;
	}
	X = malloc(sizeof(float) * c->cols * batch);
	Y = malloc(sizeof(float) * c->rows * batch);
	ref = malloc(sizeof(double) * c->rows * batch);
	bound = malloc(sizeof(double) * c->rows * batch);
	refwork = malloc(sizeof(float) * c->cols);
	work = aligned_alloc(64, (qk_work_bytes((QtHeader *) buf, &l, batch) + 63) & ~(size_t) 63);
	for (int i = 0; i < c->cols * batch; i++)
		X[i] = rng_normal_alt();
	for (int b = 0; b < batch; b++)
	{
		qk_gemv_ref(buf, &l, X + b * c->cols, ref + b * c->rows, refwork);
		bounds(buf, &l, X + b * c->cols, bound + b * c->rows);
	}

	for (int isa = QK_ISA_REF; isa < QK_ISA_COUNT; isa++)
	{
		double		worst = 0.0;

		if (!qk_isa_supported(isa))
		{
			skip(1, "%s batch %d [%s]: not supported by this CPU", name, batch, qk_isa_name(isa));
			continue;
		}
		if (batch == 1)
		{
			qk_gemv(isa, buf, &l, X, Y, work);
			worst = worst_ratio(Y, ref, bound, c->rows);
		}
		else
		{
			qk_gemm(isa, buf, &l, X, batch, Y, work);
			for (int b = 0; b < batch; b++)
			{
				double		w = worst_ratio(Y + b * c->rows, ref + b * c->rows, bound + b * c->rows, c->rows);

				if (w < 0 || w > worst)
					worst = w < 0 ? INFINITY : w;
			}
		}
		ok(worst >= 0.0 && worst <= tol, "%s batch %d [%s]: worst error %.2e of the bound (limit %.0e)",
		   name, batch, qk_isa_name(isa), worst, tol);
	}
	free(buf);
	free(X);
	free(Y);
	free(ref);
	free(bound);
	free(refwork);
	free(work);
}

/* the check catches a one-step change of one code in a 4096-wide row */
static void
negative_control(void)
{
	Case		c = {8, 4096, 4, QT_ENC_INT, 128, QT_SCALE_FP16, true, false, false, 0};
	QtLayout	l;
	uint8_t    *buf = build(&c, &l);
	float	   *x = malloc(sizeof(float) * c.cols);
	float		y[8];
	double		ref[8],
				bound[8],
				worst;
	float	   *refwork = malloc(sizeof(float) * c.cols);
	void	   *work = aligned_alloc(64, (qk_work_bytes((QtHeader *) buf, &l, 1) + 63) & ~(size_t) 63);
	uint8_t    *code = buf + l.off_codes + 3 * l.row_bytes + 1000;

	for (int i = 0; i < c.cols; i++)
		x[i] = rng_normal_alt();
	x[2000] = 3.0f;				/* codes 2000 and 2001 live in byte 1000 */
	qk_gemv_ref(buf, &l, x, ref, refwork);
	bounds(buf, &l, x, bound);
	/* one step of code 2000 of row 3, within its range */
	*code = (uint8_t) ((*code & 0xf0) | (((*code & 15) + ((*code & 15) == 15 ? 15 : 1)) & 15));
	qk_gemv(qk_isa_best(), buf, &l, x, y, work);
	worst = worst_ratio(y, ref, bound, 8);
	ok(worst > 50 * GEMV_TOL[4], "negative control: one changed code gives %.2e of the bound, over 50x the limit",
	   worst);
	free(buf);
	free(x);
	free(refwork);
	free(work);
}

/* quantize(w) with rtn through quant.h, then the fused product against dequantize + dot */
static void
quantized_real_weights(void)
{
	const int	rows = 64,
				cols = 512;
	float	   *w = malloc(sizeof(float) * rows * cols);
	float	   *x = malloc(sizeof(float) * cols);
	float	   *deq = malloc(sizeof(float) * rows * cols);
	float		y[64];
	QtSpec		spec = {QT_METHOD_RTN, 4, 128, false};
	QtHeader	h;
	QtLayout	l;
	char		err[QT_ERRMSG_LEN];
	uint8_t    *buf;
	void	   *work;
	double		worst = 0.0;

	for (int i = 0; i < rows * cols; i++)
		w[i] = rng_normal_alt() * 0.1f;
	for (int i = 0; i < cols; i++)
		x[i] = rng_normal_alt();
	qt_plan(&spec, w, rows, cols, false, &h, &l, err);
	buf = calloc(1, l.total);
	memcpy(buf, &h, sizeof(h));
	qt_encode(w, buf, &l);
	qt_dequantize(buf, &l, 0, rows, deq);
	work = aligned_alloc(64, (qk_work_bytes(&h, &l, 1) + 63) & ~(size_t) 63);
	qk_gemv(QK_ISA_COUNT, buf, &l, x, y, work);
	for (int r = 0; r < rows; r++)
	{
		double		d = 0.0,
					b = 0.0;

		for (int c = 0; c < cols; c++)
		{
			d += (double) deq[r * cols + c] * x[c];
			b += fabs((double) w[r * cols + c] * x[c]);
		}
		if (fabs(y[r] - d) / b > worst)
			worst = fabs(y[r] - d) / b;
	}
	ok(worst < 1e-5, "quantize() then qk_gemv [%s] equals dequantize() then a dot (worst %.2e)",
	   qk_isa_name(qk_isa_active()), worst);
	free(w);
	free(x);
	free(deq);
	free(buf);
	free(work);
}

int
main(void)
{
	static const int widths[] = {2, 3, 4, 5, 6, 7, 8};
	Case		cases[128];
	int			nc = 0;

	rng_seed(0x2545f4914f6cdd1dULL);
	qk_init();
	printf("# best instruction set: %s\n", qk_isa_name(qk_isa_best()));
	ok(qk_isa_from_name("avx2") == QK_ISA_AVX2 && qk_isa_from_name("nope") == -1 &&
	   strcmp(qk_isa_name(QK_ISA_AVX512), "avx512") == 0, "instruction set names round-trip");
	ok(qk_isa_supported(QK_ISA_REF) && qk_isa_supported(QK_ISA_GENERIC), "ref and generic are always supported");

	/* every width, asymmetric and symmetric; groups 128, 32, 64 and one per row; tails */
	for (int i = 0; i < 7; i++)
	{
		cases[nc++] = (Case) {37, 1000, widths[i], QT_ENC_INT, 128, QT_SCALE_FP16, true, false, false, 0};
		cases[nc++] = (Case) {19, 256, widths[i], QT_ENC_INT, 32, QT_SCALE_FP32, false, false, false, 0};
		cases[nc++] = (Case) {5, 4096, widths[i], QT_ENC_INT, -1, QT_SCALE_FP16, true, false, false, 0};
		cases[nc++] = (Case) {9, 200, widths[i], QT_ENC_INT, 64, QT_SCALE_FP16, true, false, false, 0};
	}
	cases[nc++] = (Case) {33, 1000, 4, QT_ENC_NF4, 64, QT_SCALE_FP16, false, false, false, 0};
	cases[nc++] = (Case) {7, 520, 4, QT_ENC_NF4, 32, QT_SCALE_FP32, false, false, false, 0};
	cases[nc++] = (Case) {4, 4096, 4, QT_ENC_NF4, -1, QT_SCALE_FP16, false, false, false, 0};
	/* groups that do not start on a byte, tiny shapes, 1 x n */
	cases[nc++] = (Case) {11, 100, 3, QT_ENC_INT, 37, QT_SCALE_FP16, true, false, false, 0};
	cases[nc++] = (Case) {3, 7, 5, QT_ENC_INT, 128, QT_SCALE_FP16, false, false, false, 0};
	cases[nc++] = (Case) {1, 333, 4, QT_ENC_INT, 128, QT_SCALE_FP16, true, false, false, 0};
	cases[nc++] = (Case) {6, 1, 2, QT_ENC_INT, 1, QT_SCALE_FP32, true, false, false, 0};
	/* the reference path: permutation, channel scales, outliers */
	cases[nc++] = (Case) {17, 300, 4, QT_ENC_INT, 64, QT_SCALE_FP16, true, true, false, 0};
	cases[nc++] = (Case) {17, 300, 3, QT_ENC_INT, 32, QT_SCALE_FP16, false, false, true, 0};
	cases[nc++] = (Case) {17, 300, 8, QT_ENC_INT, 128, QT_SCALE_FP32, true, true, true, 9};
	cases[nc++] = (Case) {17, 300, 4, QT_ENC_NF4, 64, QT_SCALE_FP16, false, false, false, 5};

	for (int i = 0; i < nc; i++)
		run_case(&cases[i], 1);
	/* batches: fused per vector below QK_TILE_MIN_BATCH, decoded tiles and sgemm above */
	for (int b = 2; b <= 64; b = b * 2 + 1)
	{
		run_case(&(Case) {45, 384, 4, QT_ENC_INT, 128, QT_SCALE_FP16, true, false, false, 0}, b);
		run_case(&(Case) {45, 384, 4, QT_ENC_NF4, 64, QT_SCALE_FP16, false, false, false, 0}, b);
	}
	run_case(&(Case) {45, 384, 3, QT_ENC_INT, 64, QT_SCALE_FP16, false, true, true, 4}, 64);
	/* a tile boundary: 300 rows of 4096 floats span two tiles */
	run_case(&(Case) {300, 4096, 8, QT_ENC_INT, 128, QT_SCALE_FP16, true, false, false, 0}, 5);

	negative_control();
	quantized_real_weights();

	return done_testing();
}
