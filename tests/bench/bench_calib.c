/*
 * bench_calib.c: output error and time of rtn, hqq, awq and gptq on a
 * generated layer (docs/benchmarks.md, section "Calibrated quantizers").
 * Floor-1 code only, outside the server, one BLAS thread (as in a backend).
 *
 *   bench_calib [rows cols nx [dump_dir]]       defaults: 4096 4096 8192
 *
 * Data, seeded (xorshift64*):
 *   W  rows x cols, heavy-tailed: Laplace(0.02), 0.5% of weights 8x larger
 *   X  nx x cols activations: x_j = (0.6 z_{j mod 64} + 0.8 e_j) c_j with
 *      z, e ~ N(0, 1) per row (64 shared factors: correlated channels) and
 *      c_j = 20 for every 97th channel (outlier channels), else 1
 * H = X^T X comes from the streaming statistics (qc_stats_*), timed too.
 * With dump_dir, W, X (float32, row-major) and X^T X are written there for
 * running other implementations on the same data.
 */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "qcalib.h"
#include "../lib/rng.h"
#include "bench.h"

static void
dump(const char *dir, const char *name, const void *p, size_t bytes)
{
	char		path[1024];
	FILE	   *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (!f || fwrite(p, 1, bytes, f) != bytes)
	{
		fprintf(stderr, "cannot write %s\n", path);
		exit(1);
	}
	fclose(f);
}

static int	g_rows,
			g_cols;
static const float *g_w,
		   *g_h;
static float *g_tmp,
		   *g_d;
static double g_ref;			/* ||X W^T||^2 */

/* relative output error and relative weight error of a tensor */
static void
errors(const uint8_t *buf, const QtLayout *l, double *out, double *rel)
{
	int64_t		n = (int64_t) g_rows * g_cols;
	double		e = 0.0,
				r = 0.0;

	qt_dequantize(buf, l, 0, g_rows, g_d);
	for (int64_t i = 0; i < n; i++)
	{
		g_d[i] = g_w[i] - g_d[i];
		e += (double) g_d[i] * g_d[i];
		r += (double) g_w[i] * g_w[i];
	}
	*rel = sqrt(e / r);
	*out = 0.0;
	for (int r0 = 0; r0 < g_rows; r0 += 256)
	{
		int			nr = g_rows - r0 < 256 ? g_rows - r0 : 256;

		*out += qc_hessian_energy(g_d + (int64_t) r0 * g_cols, nr, g_cols, g_h, g_tmp);
	}
	*out /= g_ref;
}

static uint8_t *
build(int method, int bits, int gs, uint16_t flags, int scale_type, QtLayout *l)
{
	QtHeader	h;
	char		err[QT_ERRMSG_LEN];
	uint8_t    *buf;

	if (qt_params_plan(method, bits, gs, flags, scale_type, g_rows, g_cols, &h, l, err) != QT_OK)
	{
		fprintf(stderr, "%s\n", err);
		exit(1);
	}
	buf = calloc(1, l->total);
	memcpy(buf, &h, sizeof(h));
	return buf;
}

static void
row(const char *name, int bits, double secs, double rtn_secs, const uint8_t *buf, const QtLayout *l, double rtn_out)
{
	double		out,
				rel;

	errors(buf, l, &out, &rel);
	printf("| %s | %d | %.5f | %.3f | %.4f | %.2f | %.1f |\n", name, bits, out,
		   rtn_out > 0 ? out / rtn_out : 1.0, rel, secs, secs / rtn_secs);
	fflush(stdout);
}

int
main(int argc, char **argv)
{
	int			rows = argc > 1 ? atoi(argv[1]) : 4096;
	int			cols = argc > 2 ? atoi(argv[2]) : 4096;
	int			nx = argc > 3 ? atoi(argv[3]) : 8192;
	const char *dir = argc > 4 ? argv[4] : NULL;
	const int	gs = 128;
	const int	widths[] = {2, 3, 4, 8};
	float	   *w = malloc(sizeof(float) * rows * cols);
	float	   *x = malloc(sizeof(float) * (size_t) nx * cols);
	float	   *h = malloc(sizeof(float) * (size_t) cols * cols);
	float	   *mean_abs = malloc(sizeof(float) * cols);
	float		z[64];
	QcStats    *st;
	double		t,
				t_stats;
	char		err[QT_ERRMSG_LEN];

	openblas_set_num_threads(1);
	rng_seed(0x853c49e6748fea9bULL);
	for (int64_t i = 0; i < (int64_t) rows * cols; i++)
		w[i] = (float) ((rng_uniform() < 0.005 ? 8.0 : 1.0) * (rng_uniform() < 0.5 ? -1.0 : 1.0) * -log(rng_uniform()) * 0.02);
	for (int64_t r = 0; r < nx; r++)
	{
		for (int k = 0; k < 64; k++)
			z[k] = rng_normal();
		for (int j = 0; j < cols; j++)
			x[r * cols + j] = (0.6f * z[j % 64] + 0.8f * rng_normal()) * (j % 97 == 0 ? 20.0f : 1.0f);
	}

	t = now();
	st = qc_stats_new(cols, true);
	qc_stats_add(st, x, nx);
	qc_stats_hessian(st, h);
	t_stats = now() - t;
	for (int j = 0; j < cols; j++)
		mean_abs[j] = (float) (st->sum_abs[j] / nx);
	if (dir)
	{
		dump(dir, "w.f32", w, sizeof(float) * (size_t) rows * cols);
		dump(dir, "x.f32", x, sizeof(float) * (size_t) nx * cols);
		dump(dir, "xtx.f32", h, sizeof(float) * (size_t) cols * cols);
	}
	free(x);

	g_rows = rows;
	g_cols = cols;
	g_w = w;
	g_h = h;
	g_tmp = malloc(sizeof(float) * 256 * cols);
	g_d = malloc(sizeof(float) * (size_t) rows * cols);
	g_ref = 0.0;
	for (int r0 = 0; r0 < rows; r0 += 256)
		g_ref += qc_hessian_energy(w + (int64_t) r0 * cols, rows - r0 < 256 ? rows - r0 : 256, cols, h, g_tmp);

	printf("layer %d x %d, %d activation rows; X^T X from streaming statistics: %.2f s (%.1f ms per 1000 rows)\n\n",
		   rows, cols, nx, t_stats, t_stats * 1e6 / nx);
	printf("| method | bits | output error | / rtn | weight error | seconds | / rtn time |\n");
	printf("|---|---|---|---|---|---|---|\n");
	for (size_t b = 0; b < sizeof(widths) / sizeof(widths[0]); b++)
	{
		int			bits = widths[b];
		QtLayout	l;
		uint8_t    *buf;
		double		rtn_secs,
					rtn_out,
					rel;

		/* rtn, the baseline of this width */
		{
			QtSpec		spec = {QT_METHOD_RTN, bits, gs, false};
			QtHeader	hh;

			t = now();
			qt_plan(&spec, w, rows, cols, false, &hh, &l, err);
			buf = calloc(1, l.total);
			memcpy(buf, &hh, sizeof(hh));
			qt_encode(w, buf, &l);
			rtn_secs = now() - t;
			errors(buf, &l, &rtn_out, &rel);
			row("rtn", bits, rtn_secs, rtn_secs, buf, &l, rtn_out);
			free(buf);
		}
		/* hqq */
		{
			int64_t		ng = (int64_t) rows * ((cols + gs - 1) / gs);
			float	   *sc = malloc(sizeof(float) * ng);
			uint8_t    *zs = malloc(ng);

			t = now();
			qt_hqq_matrix(w, rows, cols, gs, bits, false, &qt_hqq_defaults, sc, zs);
			buf = build(QT_METHOD_HQQ, bits, gs, QT_FLAG_ZEROS, qt_params_scale_type(sc, ng), &l);
			qt_params_encode(w, buf, &l, sc, zs);
			row("hqq", bits, now() - t, rtn_secs, buf, &l, rtn_out);
			free(buf);
			free(sc);
			free(zs);
		}
		/* awq */
		{
			QtAwqSpec	spec = {bits, gs, false, 0, 0, QT_AWQ_SEARCH_ROWS};
			QtAwqResult res;

			t = now();
			if (qt_awq(w, rows, cols, h, NULL, mean_abs, &spec, &res, err) != QT_OK)
			{
				fprintf(stderr, "awq: %s\n", err);
				return 1;
			}
			buf = build(QT_METHOD_AWQ, bits, gs, QT_FLAG_ZEROS | QT_FLAG_CHSCALE, res.scale_type, &l);
			qt_params_write(buf, &l, res.scales, res.zeros, res.codes);
			memcpy(buf + l.off_chscale, res.chscale, sizeof(float) * cols);
			row("awq", bits, now() - t, rtn_secs, buf, &l, rtn_out);
			qt_awq_result_free(&res);
			free(buf);
		}
		/* gptq, without and with act-order */
		for (int ao = 0; ao <= 1; ao++)
		{
			QtGptqSpec	spec = {bits, gs, false, ao, false, 0.01, 0};
			QtGptqResult res;

			t = now();
			if (qt_gptq(w, rows, cols, h, &spec, &res, err) != QT_OK)
			{
				fprintf(stderr, "gptq: %s\n", err);
				return 1;
			}
			buf = build(QT_METHOD_GPTQ, bits, gs, QT_FLAG_ZEROS | (res.perm ? QT_FLAG_PERM : 0), res.scale_type, &l);
			qt_params_write(buf, &l, res.scales, res.zeros, res.codes);
			if (res.perm)
				memcpy(buf + l.off_perm, res.perm, sizeof(int32_t) * cols);
			row(ao ? "gptq act-order" : "gptq", bits, now() - t, rtn_secs, buf, &l, rtn_out);
			qt_gptq_result_free(&res);
			free(buf);
		}
	}
	return 0;
}
