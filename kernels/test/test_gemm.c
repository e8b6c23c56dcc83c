/*
 * test_gemm.c: pgq_cuda_gemm (Y = X W^T with a quantized W) against the C
 * reference: W decoded by qt_dequantize_ref, products summed in double.
 *
 * Needs no server.  Each case builds a qtensor with the qformat.h API from a
 * seeded RNG (random scales, zero points and codes, passing qt_check_body),
 * draws a batch X, and compares every element of Y with the reference:
 *   |Y - ref| <= GEMM_TOL * sum_c |W[r][c] X[i][c]|
 * GEMM_TOL covers fp32 sums of up to 4096 terms in the kernel's order (lane
 * strides, then the shuffle tree).  The sweep covers bits 2..8 asymmetric
 * and symmetric, NF4, fp16 and fp32 scales, groups 32, 128, 48 (tail groups)
 * and per-channel, odd widths, batches 1, 3, 8, 9 and 64, and row chunking
 * under a device memory limit and failing allocations.
 *
 * Every case runs on the module's host emulation (the same lane function
 * and reduction order, host memory for the device), which needs no GPU, and
 * on the device, where the emulation's result must also match the device's
 * bit for bit (both are built without FMA contraction).  Without a device
 * the device cases are reported as skipped and the program exits 0.
 */
#include "pgquant_cuda.h"
#include "qformat.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ERRLEN 512
#define GEMM_TOL 2e-6

static int	test_no;
static int	failures;

static void
report(bool ok, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void
report(bool ok, const char *fmt, ...)
{
	va_list		ap;

	printf("%s %d - ", ok ? "ok" : "not ok", ++test_no);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	if (!ok)
		failures++;
}

static void
report_skip(const char *name, const char *why)
{
	printf("ok %d - %s # SKIP %s\n", ++test_no, name, why);
}

static uint64_t rng = 0x5eed5eed12345678ULL;

static uint64_t
rnext(void)
{
	uint64_t	z = (rng += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static float
runit(void)
{
	return (float) (rnext() >> 40) * (1.0f / 16777216.0f);
}

typedef struct Case
{
	int			rows,
				cols,
				bits,
				enc,
				group,
				scale_type,
				n;
	bool		zeros;
	size_t		mem_limit;
	size_t		alloc_cap;
} Case;

/* a random checked qtensor, or NULL */
static uint8_t *
build(const Case *c, QtLayout *l)
{
	QtHeader	h;
	char		err[QT_ERRMSG_LEN];
	uint8_t    *buf;
	int			maxq = (1 << c->bits) - 1;

	memset(&h, 0, sizeof(h));
	h.version = QT_FORMAT_VERSION;
	h.method = c->enc == QT_ENC_NF4 ? QT_METHOD_NF4 : QT_METHOD_RTN;
	h.encoding = c->enc;
	h.bits = c->bits;
	h.scale_type = c->scale_type;
	h.flags = c->zeros ? QT_FLAG_ZEROS : 0;
	h.rows = c->rows;
	h.cols = c->cols;
	h.group_size = c->group;
	if (qt_check_header(&h, err) != QT_OK || qt_layout(&h, l, err) != QT_OK)
		return NULL;
	buf = calloc(1, l->total);
	memcpy(buf, &h, sizeof(h));
	for (int64_t i = 0; i < (int64_t) c->rows * l->ngroups; i++)
	{
		qt_set_scale(buf, l, i, (0.01f + runit()) * ((rnext() & 1) ? -1.0f : 1.0f));
		if (c->zeros)
			buf[l->off_zeros + i] = (uint8_t) (rnext() % (maxq + 1));
	}
	for (int r = 0; r < c->rows; r++)
		for (int j = 0; j < c->cols; j++)
			qt_put_code(buf + l->off_codes + (size_t) r * l->row_bytes, j, c->bits, (unsigned) (rnext() % (maxq + 1)));
	if (qt_check_body(buf, l, NULL, err) != QT_OK)
	{
		free(buf);
		return NULL;
	}
	return buf;
}

/* worst |Y - ref| / sum |W x| over all elements; negative when something is not finite */
static double
compare(const uint8_t *buf, const QtLayout *l, const Case *c, const float *X, const float *Y)
{
	float	   *w = malloc(sizeof(float) * c->cols);
	double		worst = 0.0;

	for (int r = 0; r < c->rows; r++)
	{
		qt_dequantize_ref(buf, l, r, r + 1, w);
		for (int i = 0; i < c->n; i++)
		{
			double		ref = 0.0,
						bound = 0.0;
			double		y = Y[(size_t) i * c->rows + r];

			for (int j = 0; j < c->cols; j++)
			{
				double		p = (double) w[j] * X[(size_t) i * c->cols + j];

				ref += p;
				bound += fabs(p);
			}
			if (!isfinite(y))
			{
				free(w);
				return -1.0;
			}
			if (bound > 0 && fabs(y - ref) / bound > worst)
				worst = fabs(y - ref) / bound;
			else if (bound == 0 && y != 0)
				worst = INFINITY;
		}
	}
	free(w);
	return worst;
}

static void
case_name(const Case *c, char *out, size_t len)
{
	snprintf(out, len, "%s%d %dx%d g%d %s%s batch %d%s", c->enc == QT_ENC_NF4 ? "nf" : "int", c->bits,
			 c->rows, c->cols, c->group, c->scale_type == QT_SCALE_FP16 ? "fp16" : "fp32",
			 c->enc == QT_ENC_NF4 ? "" : c->zeros ? " asym" : " sym", c->n,
			 c->mem_limit ? " (chunked)" : c->alloc_cap ? " (allocations fail)" : "");
}

/* one case, emulated and (when there is a device) on the device */
static void
run_case(const Case *c, bool device, const char *nodev)
{
	/* nodev is at most ERRLEN + 32 bytes */
	QtLayout	l;
	uint8_t    *buf = build(c, &l);
	char		name[160],
				err[ERRLEN];
	float	   *X = malloc(sizeof(float) * c->cols * c->n);
	float	   *Ye = malloc(sizeof(float) * c->rows * c->n);
	float	   *Yd = malloc(sizeof(float) * c->rows * c->n);
	PgqCudaStatus st;
	double		worst;

	case_name(c, name, sizeof(name));
	if (buf == NULL)
	{
		report(false, "%s: could not build the tensor", name);
		return;
	}
	for (int i = 0; i < c->cols * c->n; i++)
		X[i] = 2.0f * runit() - 1.0f;
	st = pgq_cuda_gemm_emulated(buf, l.total, X, c->n, Ye, c->mem_limit, c->alloc_cap, err, sizeof(err));
	worst = st == PGQ_CUDA_OK ? compare(buf, &l, c, X, Ye) : -1.0;
	report(st == PGQ_CUDA_OK && worst >= 0 && worst <= GEMM_TOL, "emulated: %s: worst error %.2e of sum |w x|%s%s",
		   name, worst, st == PGQ_CUDA_OK ? "" : ", failed: ", st == PGQ_CUDA_OK ? "" : err);
	if (!device)
	{
		char		dname[ERRLEN + 256];

		snprintf(dname, sizeof(dname), "cuda: %s", name);
		report_skip(dname, nodev);
	}
	else
	{
		st = pgq_cuda_gemm(buf, l.total, X, c->n, Yd, c->mem_limit, err, sizeof(err));
		worst = st == PGQ_CUDA_OK ? compare(buf, &l, c, X, Yd) : -1.0;
		report(st == PGQ_CUDA_OK && worst >= 0 && worst <= GEMM_TOL &&
			   memcmp(Ye, Yd, sizeof(float) * c->rows * c->n) == 0,
			   "cuda: %s: worst error %.2e, identical to the emulation%s%s", name, worst,
			   st == PGQ_CUDA_OK ? "" : ", failed: ", st == PGQ_CUDA_OK ? "" : err);
	}
	free(buf);
	free(X);
	free(Ye);
	free(Yd);
}

int
main(void)
{
	char		err[ERRLEN],
				nodev[ERRLEN + 32] = "no CUDA device";
	int			count = 0;
	bool		device;
	Case		small = {5, 129, 4, QT_ENC_INT, 32, QT_SCALE_FP16, 2, true, 0, 0};
	QtLayout	l;
	uint8_t    *t = build(&small, &l);
	float		X[2 * 129],
				Y[2 * 5];
	static const int groups[] = {32, 128, 48, QT_GROUP_PER_CHANNEL};

	device = pgq_cuda_device_count(&count, err, sizeof(err)) == PGQ_CUDA_OK && count > 0;
	if (!device)
		snprintf(nodev, sizeof(nodev), "no CUDA device: %s", err);
	printf("# %s\n", device ? "running on the device and emulated" : nodev);

	/* argument checks (no device needed) */
	memset(X, 0, sizeof(X));
	report(pgq_cuda_abi_version() == PGQ_CUDA_ABI_VERSION, "module ABI version matches the header");
	report(pgq_cuda_gemm(NULL, l.total, X, 2, Y, 0, err, sizeof(err)) == PGQ_CUDA_INVALID, "NULL qtensor is INVALID");
	report(pgq_cuda_gemm(t, l.total, NULL, 2, Y, 0, err, sizeof(err)) == PGQ_CUDA_INVALID, "NULL X is INVALID");
	report(pgq_cuda_gemm(t, l.total, X, 2, NULL, 0, err, sizeof(err)) == PGQ_CUDA_INVALID, "NULL Y is INVALID");
	report(pgq_cuda_gemm(t, l.total, X, 0, Y, 0, err, sizeof(err)) == PGQ_CUDA_INVALID &&
		   strstr(err, "batch") != NULL, "an empty batch is INVALID with a message");
	report(pgq_cuda_gemm(t, l.total, X, PGQ_CUDA_GEMM_MAX_BATCH + 1, Y, 0, err, sizeof(err)) == PGQ_CUDA_INVALID,
		   "a batch over the maximum is INVALID");
	report(pgq_cuda_gemm(t, l.total - 1, X, 2, Y, 0, err, sizeof(err)) == PGQ_CUDA_INVALID,
		   "a truncated buffer is INVALID");
	{
		/* the same tensor with channel scales of 1: valid, but not for this kernel */
		QtHeader	h = *(QtHeader *) t;
		QtLayout	lc;
		uint8_t    *c;
		char		qerr[QT_ERRMSG_LEN];

		h.flags |= QT_FLAG_CHSCALE;
		qt_layout(&h, &lc, qerr);
		c = calloc(1, lc.total);
		memcpy(c, &h, sizeof(h));
		memcpy(c + lc.off_scales, t + l.off_scales, l.off_zeros - l.off_scales);
		memcpy(c + lc.off_zeros, t + l.off_zeros, (size_t) 5 * l.ngroups);
		for (int j = 0; j < 129; j++)
			((float *) (c + lc.off_chscale))[j] = 1.0f;
		memcpy(c + lc.off_codes, t + l.off_codes, 5 * l.row_bytes);
		report(qt_check_body(c, &lc, NULL, qerr) == QT_OK &&
			   pgq_cuda_gemm(c, lc.total, X, 2, Y, 0, err, sizeof(err)) == PGQ_CUDA_INVALID &&
			   strstr(err, "channel scales") != NULL, "channel scales are refused (the extension keeps them on the CPU)");
		free(c);
	}
	report(pgq_cuda_gemm(t, l.total, X, 2, Y, 1000, err, sizeof(err)) == PGQ_CUDA_OUT_OF_MEMORY,
		   "a memory limit below one row is OUT_OF_MEMORY");
	report(pgq_cuda_gemm_emulated(t, l.total, X, 2, Y, 0, 100, err, sizeof(err)) == PGQ_CUDA_OUT_OF_MEMORY,
		   "emulated: failing allocations end in OUT_OF_MEMORY");
	if (!device)
		report(pgq_cuda_gemm(t, l.total, X, 2, Y, 0, err, sizeof(err)) == PGQ_CUDA_NO_DEVICE && err[0] != '\0',
			   "without a device a valid call is NO_DEVICE with a reason");
	else
		report_skip("without a device a valid call is NO_DEVICE", "a device is present");
	free(t);

	/* the sweep */
	for (int bits = QT_MIN_BITS; bits <= QT_MAX_BITS; bits++)
		for (int z = 1; z >= 0; z--)
			for (int g = 0; g < 4; g++)
				run_case(&(Case) {9, 129, bits, QT_ENC_INT, groups[g], g % 2 ? QT_SCALE_FP32 : QT_SCALE_FP16,
						 3, z, 0, 0}, device, nodev);
	for (int g = 0; g < 4; g++)
		run_case(&(Case) {9, 129, 4, QT_ENC_NF4, groups[g] == 128 ? 64 : groups[g], QT_SCALE_FP16, 3, false, 0, 0},
				 device, nodev);
	for (int k = 0; k < 4; k++)
		run_case(&(Case) {37, 1000, 4, QT_ENC_INT, 128, QT_SCALE_FP16, (int[]) {1, 8, 9, 64}[k], true, 0, 0},
				 device, nodev);
	run_case(&(Case) {64, 4096, 8, QT_ENC_INT, 128, QT_SCALE_FP16, 2, true, 0, 0}, device, nodev);
	run_case(&(Case) {3, 1, 3, QT_ENC_INT, 32, QT_SCALE_FP32, 5, false, 0, 0}, device, nodev);
	/* chunked: a limit that holds a few rows, and allocations that fail until the chunk is small */
	run_case(&(Case) {50, 300, 4, QT_ENC_INT, 64, QT_SCALE_FP16, 4, true, 12000, 0}, device, nodev);
	{
		Case		c = {50, 300, 5, QT_ENC_INT, 64, QT_SCALE_FP16, 4, true, 0, 9000};

		run_case(&c, false, "the allocation cap is emulated only");
	}

	printf("1..%d\n", test_no);
	return failures ? 1 : 0;
}
