/*
 * bench_qgemv.c: the quantized GEMV/GEMM (src/qgemv.c) against OpenBLAS
 * fp32 sgemv/sgemm on the same matrix, and its bandwidth against memory
 * copies and reads measured in the same run.
 *
 * Data: a rows x cols fp32 matrix (default 4096 x 4096) of seeded N(0, 0.02)
 * weights with 1% of the columns scaled x8 (outlier channels), quantized with
 * RTN (asymmetric, groups of 128) at 2, 3, 4 and 8 bits and with NF4 (groups
 * of 64); x seeded N(0,1).  Each figure is the median of REPS runs after one
 * warm-up; one thread (as in a backend).
 *
 * Baselines, same run: memcpy of the fp32 matrix (bytes / time), a read-only
 * pass over it (an AVX2 sum when available), OpenBLAS sgemv (batch 1) and,
 * for batches > 1, the faster of OpenBLAS sgemm and n sgemv calls on the
 * fp32 matrix.  "GB/s" of a quantized product
 * counts the qtensor's bytes (codes, scales, zero points) read once.
 *
 * Usage: bench_qgemv [rows cols reps]
 *        bench_qgemv loop ROWS COLS N      (see loop_mode)
 */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "qformat.h"
#include "qgemv.h"
#include "quant.h"
#include "bench.h"

static float
gauss(void)
{
	return (float) (sqrt(-2.0 * log(uniform())) * cos(2.0 * M_PI * uniform()));
}

/* a read-only pass: the sum of n floats (kept, so it cannot be optimized away) */
static volatile float sink;

#if defined(__x86_64__)
#include <immintrin.h>
__attribute__((target("avx2"))) static float
read_pass_avx2(const float *a, size_t n)
{
	__m256		s0 = _mm256_setzero_ps(),
				s1 = _mm256_setzero_ps(),
				s2 = _mm256_setzero_ps(),
				s3 = _mm256_setzero_ps();
	float		out[8];

	for (size_t i = 0; i + 32 <= n; i += 32)
	{
		s0 = _mm256_add_ps(s0, _mm256_loadu_ps(a + i));
		s1 = _mm256_add_ps(s1, _mm256_loadu_ps(a + i + 8));
		s2 = _mm256_add_ps(s2, _mm256_loadu_ps(a + i + 16));
		s3 = _mm256_add_ps(s3, _mm256_loadu_ps(a + i + 24));
	}
	_mm256_storeu_ps(out, _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
	return out[0] + out[7];
}
#endif

static float
read_pass(const float *a, size_t n)
{
#if defined(__x86_64__)
	if (qk_cpu_has_avx2())
		return read_pass_avx2(a, n);
#endif
	{
		float		s[8] = {0};

		for (size_t i = 0; i + 8 <= n; i += 8)
			for (int k = 0; k < 8; k++)
				s[k] += a[i + k];
		return s[0] + s[7];
	}
}

static int	bench(int argc, char **argv);

typedef struct Fmt
{
	const char *name;
	int			method,
				bits,
				gs;
} Fmt;

/*
 * "loop ROWS COLS N": the raw kernel loop the SQL benchmark (bench_infer.sql)
 * is compared with: N products y = W x with N distinct x, W a ROWS x COLS
 * matrix at 4 bits (rtn, groups of 128), with the best kernel set; prints
 * the median over 5 loops, in microseconds per product.
 */
static int
loop_mode(int rows, int cols, int nvec)
{
	size_t		n = (size_t) rows * cols;
	float	   *w = malloc(n * sizeof(float));
	float	   *X = malloc(sizeof(float) * (size_t) cols * nvec);
	float	   *y = malloc(sizeof(float) * rows);
	QtSpec		spec = {QT_METHOD_RTN, 4, 128, false};
	QtHeader	h;
	QtLayout	l;
	char		err[QT_ERRMSG_LEN];
	uint8_t    *buf;
	void	   *work;
	double		t[5];

	qk_init();
	for (size_t i = 0; i < n; i++)
		w[i] = 0.02f * gauss();
	for (size_t i = 0; i < (size_t) cols * nvec; i++)
		X[i] = gauss();
	if (qt_plan(&spec, w, rows, cols, false, &h, &l, err) != QT_OK)
		return 1;
	buf = calloc(1, l.total);
	memcpy(buf, &h, sizeof(h));
	qt_encode(w, buf, &l);
	work = aligned_alloc(64, (qk_work_bytes(&h, &l, 1) + 63) & ~(size_t) 63);
	for (int r = 0; r < 5; r++)
	{
		double		t0 = now();

		for (int i = 0; i < nvec; i++)
			qk_gemv(QK_ISA_COUNT, buf, &l, X + (size_t) i * cols, y, work);
		t[r] = now() - t0;
	}
	printf("raw kernel loop: %d x %d W4 g128 (%s), %d products: %.3f ms, %.2f us per product\n",
		   rows, cols, qk_isa_name(qk_isa_active()), nvec, median(t, 5) * 1e3, median(t, 5) * 1e6 / nvec);
	return 0;
}

int
main(int argc, char **argv)
{
	if (argc == 5 && strcmp(argv[1], "loop") == 0)
		return loop_mode(atoi(argv[2]), atoi(argv[3]), atoi(argv[4]));
	return bench(argc, argv);
}

static int
bench(int argc, char **argv)
{
	int			rows = argc > 1 ? atoi(argv[1]) : 4096;
	int			cols = argc > 2 ? atoi(argv[2]) : 4096;
	int			reps = argc > 3 ? atoi(argv[3]) : 9;
	size_t		n = (size_t) rows * cols;
	float	   *w = malloc(n * sizeof(float));
	float	   *copy = malloc(n * sizeof(float));
	const int	maxb = 64;
	float	   *X = malloc(sizeof(float) * cols * maxb);
	float	   *Y = malloc(sizeof(float) * rows * maxb);
	double	   *t = malloc(reps * sizeof(double));
	double		t_copy,
				t_read,
				t_sgemv;
	double		fp32_gb = n * 4.0 / 1e9;
	static const int batches[] = {1, 2, 4, 8, 16, 32, 64};
	Fmt			fmts[] = {
		{"W4 g128 (rtn asym)", QT_METHOD_RTN, 4, 128},
		{"W8 g128 (rtn asym)", QT_METHOD_RTN, 8, 128},
		{"W3 g128 (rtn asym)", QT_METHOD_RTN, 3, 128},
		{"W2 g128 (rtn asym)", QT_METHOD_RTN, 2, 128},
		{"NF4 g64", QT_METHOD_NF4, 4, 64},
	};

	qk_init();
	openblas_set_num_threads(1);
	for (size_t i = 0; i < n; i++)
		w[i] = 0.02f * gauss() * ((i % cols) % 100 == 7 ? 8.0f : 1.0f);
	for (int i = 0; i < cols * maxb; i++)
		X[i] = gauss();

	/* baselines */
	memcpy(copy, w, n * 4);
	for (int r = 0; r < reps; r++)
	{
		double		t0 = now();

		memcpy(copy, w, n * 4);
		t[r] = now() - t0;
	}
	t_copy = median(t, reps);
	sink = read_pass(w, n);
	for (int r = 0; r < reps; r++)
	{
		double		t0 = now();

		sink = read_pass(w, n);
		t[r] = now() - t0;
	}
	t_read = median(t, reps);
	qk_sgemv(w, rows, cols, X, Y);
	for (int r = 0; r < reps; r++)
	{
		double		t0 = now();

		qk_sgemv(w, rows, cols, X, Y);
		t[r] = now() - t0;
	}
	t_sgemv = median(t, reps);

	printf("# %d x %d, %d reps (median), one thread, best set %s\n", rows, cols, reps,
		   qk_isa_name(qk_isa_best()));
	printf("# memcpy fp32: %.3f ms, %.2f GB/s; read pass: %.3f ms, %.2f GB/s; "
		   "OpenBLAS sgemv fp32: %.3f ms, %.2f GB/s\n",
		   t_copy * 1e3, fp32_gb / t_copy, t_read * 1e3, fp32_gb / t_read, t_sgemv * 1e3, fp32_gb / t_sgemv);
	printf("| format | set | bytes | batch 1 ms | GB/s | %% of memcpy | %% of read | speedup vs sgemv |\n");
	printf("|---|---|---|---|---|---|---|---|\n");

	for (int f = 0; f < (int) (sizeof(fmts) / sizeof(fmts[0])); f++)
	{
		QtSpec		spec = {fmts[f].method, fmts[f].bits, fmts[f].gs, false};
		QtHeader	h;
		QtLayout	l;
		char		err[QT_ERRMSG_LEN];
		uint8_t    *buf;
		void	   *work;

		if (qt_plan(&spec, w, rows, cols, false, &h, &l, err) != QT_OK)
		{
			fprintf(stderr, "qt_plan: %s\n", err);
			return 1;
		}
		buf = calloc(1, l.total);
		memcpy(buf, &h, sizeof(h));
		qt_encode(w, buf, &l);
		work = aligned_alloc(64, (qk_work_bytes(&h, &l, maxb) + 63) & ~(size_t) 63);

		for (int isa = QK_ISA_GENERIC; isa < QK_ISA_COUNT; isa++)
		{
			double		tm;

			if (!qk_isa_supported(isa))
				continue;
			qk_gemv(isa, buf, &l, X, Y, work);
			for (int r = 0; r < reps; r++)
			{
				double		t0 = now();

				qk_gemv(isa, buf, &l, X, Y, work);
				t[r] = now() - t0;
			}
			tm = median(t, reps);
			printf("| %s | %s | %zu | %.3f | %.2f | %.0f%% | %.0f%% | %.2fx |\n", fmts[f].name, qk_isa_name(isa),
				   l.total, tm * 1e3, l.total / 1e9 / tm, 100.0 * (l.total / tm) / (n * 4.0 / t_copy),
				   100.0 * (l.total / tm) / (n * 4.0 / t_read), t_sgemv / tm);
		}

		/* batches with the best set, against sgemm fp32 */
		printf("\n| %s, best set | batch | quantized ms | fp32 ms (min of sgemm, n x sgemv) | speedup | ms per vector |\n", fmts[f].name);
		printf("|---|---|---|---|---|---|\n");
		for (int b = 0; b < (int) (sizeof(batches) / sizeof(batches[0])); b++)
		{
			int			nb = batches[b];
			double		tq,
						tf;

			qk_gemm(QK_ISA_COUNT, buf, &l, X, nb, Y, work);
			for (int r = 0; r < reps; r++)
			{
				double		t0 = now();

				qk_gemm(QK_ISA_COUNT, buf, &l, X, nb, Y, work);
				t[r] = now() - t0;
			}
			tq = median(t, reps);
			for (int r = 0; r < reps; r++)
			{
				double		t0 = now();

				if (nb == 1)
					qk_sgemv(w, rows, cols, X, Y);
				else
					cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nb, rows, cols, 1.0f, X, cols,
								w, cols, 0.0f, Y, rows);
				t[r] = now() - t0;
			}
			tf = median(t, reps);
			/* OpenBLAS sgemm is slow for a few vectors: the fair baseline is the better of it and n sgemvs */
			if (nb * t_sgemv < tf)
				tf = nb * t_sgemv;
			printf("| | %d | %.3f | %.3f | %.2fx | %.3f |\n", nb, tq * 1e3, tf * 1e3, tf / tq, tq * 1e3 / nb);
		}
		printf("\n");
		free(buf);
		free(work);
	}
	return 0;
}
