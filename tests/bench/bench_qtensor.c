/*
 * bench_qtensor.c: quantize and dequantize throughput on a 4096 x 4096
 * matrix, against memcpy of the same fp32 bytes measured in the same run.
 *
 * Data: seeded N(0,1) weights with 1% of columns scaled x8 (outlier
 * channels).  Each figure is the median of REPS runs after one warm-up.
 * Usage: bench_qtensor [rows cols reps]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "qformat.h"
#include "quant.h"
#include "bench.h"

int
main(int argc, char **argv)
{
	int			rows = argc > 1 ? atoi(argv[1]) : 4096;
	int			cols = argc > 2 ? atoi(argv[2]) : 4096;
	int			reps = argc > 3 ? atoi(argv[3]) : 7;
	size_t		n = (size_t) rows * cols;
	float	   *w = malloc(n * sizeof(float));
	float	   *out = malloc(n * sizeof(float));
	float	   *copy = malloc(n * sizeof(float));
	double	   *t = malloc(reps * sizeof(double));
	double		t_memcpy;
	double		mb = n * sizeof(float) / 1e6;
	struct
	{
		const char *name;
		int			method,
					bits,
					gs,
					sym;
	}			cases[] = {
		{"rtn int2 g128 asym", QT_METHOD_RTN, 2, 128, 0},
		{"rtn int3 g128 asym", QT_METHOD_RTN, 3, 128, 0},
		{"rtn int4 g128 asym", QT_METHOD_RTN, 4, 128, 0},
		{"rtn int4 g128 sym", QT_METHOD_RTN, 4, 128, 1},
		{"rtn int8 g128 asym", QT_METHOD_RTN, 8, 128, 0},
		{"nf4 g64", QT_METHOD_NF4, 4, 64, 0},
	};

	for (size_t i = 0; i < n; i++)
	{
		double		z = sqrt(-2 * log(uniform())) * cos(2 * M_PI * uniform());

		w[i] = (float) (z * ((i % cols) % 100 == 7 ? 8.0 : 1.0));
	}

	/* the baseline: copying the fp32 matrix once */
	for (int r = 0; r <= reps; r++)
	{
		double		t0 = now();

		memcpy(copy, w, n * sizeof(float));
		if (r > 0)
			t[r - 1] = now() - t0;
	}
	t_memcpy = median(t, reps);
	printf("# %d x %d fp32 (%.1f MB), seeded N(0,1) with outlier columns x8, median of %d runs\n",
		   rows, cols, mb, reps);
	printf("%-20s %10s %8s %10s %10s %10s %9s %9s %9s %10s\n", "format", "bytes", "bits/w", "quant ms",
		   "deq ms", "ref ms", "q/memcpy", "dq/memcpy", "dq GB/s", "rel_error");
	printf("%-20s %10zu %8s %10s %10.2f %10s %9s %9.2f %9.2f\n", "memcpy fp32", n * sizeof(float), "32", "-",
		   t_memcpy * 1e3, "-", "-", 1.0, n * sizeof(float) / t_memcpy / 1e9);

	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++)
	{
		QtSpec		spec = {cases[c].method, cases[c].bits, cases[c].gs, cases[c].sym};
		QtHeader	h;
		QtLayout	l;
		char		err[QT_ERRMSG_LEN];
		uint8_t    *buf = NULL;
		double		tq,
					tref,
					tdq,
					err2 = 0,
					ref2 = 0;

		for (int r = 0; r <= reps; r++)
		{
			double		t0 = now();

			if (qt_plan(&spec, w, rows, cols, false, &h, &l, err) != QT_OK)
			{
				fprintf(stderr, "%s\n", err);
				return 1;
			}
			free(buf);
			buf = calloc(1, l.total);
			memcpy(buf, &h, sizeof(h));
			qt_encode(w, buf, &l);
			if (r > 0)
				t[r - 1] = now() - t0;
		}
		tq = median(t, reps);
		for (int r = 0; r <= reps; r++)
		{
			double		t0 = now();

			qt_dequantize_ref(buf, &l, 0, rows, out);
			if (r > 0)
				t[r - 1] = now() - t0;
		}
		tref = median(t, reps);
		for (int r = 0; r <= reps; r++)
		{
			double		t0 = now();

			qt_dequantize(buf, &l, 0, rows, out);
			if (r > 0)
				t[r - 1] = now() - t0;
		}
		tdq = median(t, reps);
		for (size_t i = 0; i < n; i++)
		{
			err2 += (double) (w[i] - out[i]) * (w[i] - out[i]);
			ref2 += (double) w[i] * w[i];
		}
		/* GB/s of fp32 written by the decoder, comparable with memcpy's */
		printf("%-20s %10zu %8.3f %10.2f %10.2f %10.2f %9.1f %9.2f %9.2f %10.4f\n", cases[c].name, l.total,
			   l.total * 8.0 / n, tq * 1e3, tdq * 1e3, tref * 1e3, tq / t_memcpy, tdq / t_memcpy,
			   n * sizeof(float) / tdq / 1e9, sqrt(err2 / ref2));
		free(buf);
	}
	return 0;
}
