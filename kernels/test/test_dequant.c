/*
 * test_dequant.c: pgq_cuda_dequantize against qt_dequantize_ref, bit for bit.
 *
 * Needs no server.  Each case builds a qtensor buffer with the qformat.h API
 * (random scales, zero points, packed codes, and optionally a permutation,
 * channel scales and outliers, all passing qt_check_body) from a seeded RNG,
 * decodes it with both decoders, and requires identical bytes.  The sweep
 * covers bits 2..8, NF4, symmetric and asymmetric, fp16 and fp32 scales,
 * group sizes 1, 32, 48 (a tail group), 64, 128 and per-channel, odd widths,
 * 1-D tensors, subnormal and zero scales, sizes up to 4096 x 4096, and row
 * chunking under a device memory limit.
 *
 * Every case runs twice: on the module's host emulation (the same driver and
 * element code with host memory for the device), which needs no GPU, and on
 * the device.  Output is TAP.  The argument checks and the emulated cases
 * run everywhere; without a device the device cases are reported as skipped
 * and the program exits 0.
 *
 * Usage: test_dequant [seed]   (or PGQ_TEST_SEED=n)
 */
#include "pgquant_cuda.h"
#include "qformat.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ERRLEN 512

/* one decoding case */
typedef struct TestCase
{
	char		name[128];
	int			rows;
	int			cols;
	int			bits;
	int			encoding;		/* QT_ENC_INT or QT_ENC_NF4 */
	int			group;			/* > 0 or QT_GROUP_PER_CHANNEL */
	int			scale_type;		/* QT_SCALE_FP16 or QT_SCALE_FP32 */
	bool		zeros;			/* asymmetric: explicit zero points */
	bool		chscale;
	bool		perm;
	bool		is1d;
	bool		wide;			/* scales from subnormal to huge, some zero */
	int			outliers;		/* how many to draw (duplicates are dropped) */
	size_t		mem_limit;		/* passed to pgq_cuda_dequantize */
	size_t		alloc_cap;		/* emulation only: "device" allocations fail above it */
} TestCase;

static TestCase *cases;
static int	ncases;
static int	test_no;
static int	failures;

/* splitmix64: small, seedable, good enough to scatter test data */
static uint64_t
rng_next(uint64_t *s)
{
	uint64_t	z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* uniform integer in [lo, hi] */
static int64_t
rng_range(uint64_t *s, int64_t lo, int64_t hi)
{
	return lo + (int64_t) (rng_next(s) % (uint64_t) (hi - lo + 1));
}

/* uniform float in [0, 1) */
static float
rng_unit(uint64_t *s)
{
	return (float) (rng_next(s) >> 40) * (1.0f / 16777216.0f);
}

/* a random signed scale; wide ranges reach fp16/fp32 subnormals and zero */
static float
rand_scale(uint64_t *s, int scale_type, bool wide)
{
	float		sign = (rng_next(s) & 1) ? -1.0f : 1.0f;
	int			lo = wide ? (scale_type == QT_SCALE_FP16 ? -26 : -140) : -12;
	int			hi = wide ? (scale_type == QT_SCALE_FP16 ? 14 : 60) : 4;

	if (wide && rng_range(s, 0, 19) == 0)
		return 0.0f * sign;
	return sign * ldexpf(1.0f + rng_unit(s), (int) rng_range(s, lo, hi));
}

/* qsort order for outlier positions */
static int
cmp_u64(const void *a, const void *b)
{
	uint64_t	x = *(const uint64_t *) a,
				y = *(const uint64_t *) b;

	return x < y ? -1 : x > y;
}

static TestCase *add_case(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* append a zeroed case named by fmt */
static TestCase *
add_case(const char *fmt, ...)
{
	static int	cap;
	TestCase   *tc;
	va_list		ap;

	if (ncases == cap)
	{
		cap = cap ? cap * 2 : 64;
		cases = realloc(cases, cap * sizeof(TestCase));
		if (!cases)
			abort();
	}
	tc = &cases[ncases++];
	memset(tc, 0, sizeof(*tc));
	va_start(ap, fmt);
	vsnprintf(tc->name, sizeof(tc->name), fmt, ap);
	va_end(ap);
	return tc;
}

/* fill in the common fields of a case */
static TestCase *
add_tensor(int rows, int cols, int bits, int enc, int group, int scale_type, bool zeros,
		   const char *extra)
{
	char		g[16];
	char		kind[8];
	TestCase   *tc;

	snprintf(kind, sizeof(kind), enc == QT_ENC_NF4 ? "nf4" : "int%d", bits);
	if (group == QT_GROUP_PER_CHANNEL)
		snprintf(g, sizeof(g), "per-channel");
	else
		snprintf(g, sizeof(g), "g%d", group);
	tc = add_case("%s %dx%d %s %s%s%s%s", kind, rows, cols, g, qt_scale_type_name(scale_type),
				  enc == QT_ENC_NF4 ? "" : zeros ? " asym" : " sym",
				  extra[0] ? " " : "", extra);
	tc->rows = rows;
	tc->cols = cols;
	tc->bits = bits;
	tc->encoding = enc;
	tc->group = group;
	tc->scale_type = scale_type;
	tc->zeros = zeros;
	return tc;
}

/* the sweep; see the file header */
static void
make_cases(void)
{
	static const int groups[] = {32, 128, 48, QT_GROUP_PER_CHANNEL};
	static const int nf4_groups[] = {32, 64, 48, QT_GROUP_PER_CHANNEL};
	static const int widths[] = {1, 7, 129, 4096};
	static const int width_bits[] = {3, 4, 8};
	TestCase   *tc;

	/* every bit width, encoding, scale type and group size on an odd width */
	for (int bits = QT_MIN_BITS; bits <= QT_MAX_BITS; bits++)
		for (int z = 1; z >= 0; z--)
			for (int st = QT_SCALE_FP16; st <= QT_SCALE_FP32; st++)
				for (int g = 0; g < 4; g++)
					add_tensor(5, 129, bits, QT_ENC_INT, groups[g], st, z, "");
	for (int st = QT_SCALE_FP16; st <= QT_SCALE_FP32; st++)
		for (int g = 0; g < 4; g++)
			add_tensor(5, 129, 4, QT_ENC_NF4, nf4_groups[g], st, false, "");

	/* widths, including one column and a group wider than the row */
	for (int w = 0; w < 4; w++)
		for (int b = 0; b < 3; b++)
			add_tensor(3, widths[w], width_bits[b], QT_ENC_INT, 32, QT_SCALE_FP16, true, "");
	add_tensor(5, 33, 4, QT_ENC_INT, 1, QT_SCALE_FP32, true, "");
	add_tensor(4, 7, 5, QT_ENC_INT, 128, QT_SCALE_FP16, false, "");

	/* 1-D */
	tc = add_tensor(1, 1000, 4, QT_ENC_NF4, 64, QT_SCALE_FP16, false, "1-D");
	tc->is1d = true;
	tc = add_tensor(1, 1000, 3, QT_ENC_INT, 48, QT_SCALE_FP32, true, "1-D");
	tc->is1d = true;
	tc = add_tensor(1, 1, 2, QT_ENC_INT, 32, QT_SCALE_FP16, false, "1-D");
	tc->is1d = true;

	/* permutation, channel scales, outliers, alone and together */
	for (int k = 0; k < 3; k++)
	{
		int			bits = k == 0 ? 4 : k == 1 ? 3 : 4;
		int			enc = k == 2 ? QT_ENC_NF4 : QT_ENC_INT;
		int			group = k == 0 ? 128 : k == 1 ? 48 : 64;
		int			st = k == 1 ? QT_SCALE_FP32 : QT_SCALE_FP16;
		bool		zeros = k == 0;

		tc = add_tensor(33, 300, bits, enc, group, st, zeros, "perm");
		tc->perm = true;
		tc = add_tensor(33, 300, bits, enc, group, st, zeros, "chscale");
		tc->chscale = true;
		tc = add_tensor(33, 300, bits, enc, group, st, zeros, "outliers");
		tc->outliers = 200;
		tc = add_tensor(33, 300, bits, enc, group, st, zeros, "perm chscale outliers");
		tc->perm = tc->chscale = true;
		tc->outliers = 200;
	}

	/* subnormal, zero and huge scales, with and without channel scales */
	tc = add_tensor(17, 200, 4, QT_ENC_INT, 32, QT_SCALE_FP16, true, "wide scales");
	tc->wide = true;
	tc = add_tensor(17, 200, 8, QT_ENC_INT, 48, QT_SCALE_FP32, true, "wide scales");
	tc->wide = true;
	tc = add_tensor(17, 200, 4, QT_ENC_NF4, 64, QT_SCALE_FP32, false, "wide scales chscale");
	tc->wide = tc->chscale = true;
	tc = add_tensor(17, 200, 6, QT_ENC_INT, 32, QT_SCALE_FP16, false, "wide scales chscale perm");
	tc->wide = tc->chscale = tc->perm = true;

	/* large and oddly shaped */
	tc = add_tensor(4096, 4096, 4, QT_ENC_INT, 128, QT_SCALE_FP16, false, "perm chscale (gptq-like)");
	tc->perm = tc->chscale = true;
	add_tensor(4096, 4096, 4, QT_ENC_NF4, 64, QT_SCALE_FP16, false, "");
	add_tensor(4096, 4096, 8, QT_ENC_INT, QT_GROUP_PER_CHANNEL, QT_SCALE_FP32, true, "");
	tc = add_tensor(4096, 4096, 3, QT_ENC_INT, 128, QT_SCALE_FP16, true, "outliers");
	tc->outliers = 20000;
	add_tensor(4096, 1, 2, QT_ENC_INT, 32, QT_SCALE_FP16, true, "");
	add_tensor(70000, 7, 5, QT_ENC_INT, 48, QT_SCALE_FP32, true, "");
	add_tensor(3, 100003, 7, QT_ENC_INT, 128, QT_SCALE_FP16, true, "");

	/* row chunks under a device memory limit */
	tc = add_tensor(1000, 129, 5, QT_ENC_INT, 32, QT_SCALE_FP32, true, "perm chscale outliers, 64 KiB limit");
	tc->perm = tc->chscale = true;
	tc->outliers = 500;
	tc->mem_limit = 64 * 1024;
	tc = add_tensor(1000, 129, 5, QT_ENC_INT, 32, QT_SCALE_FP32, true, "perm chscale outliers, 4 KiB limit");
	tc->perm = tc->chscale = true;
	tc->outliers = 500;
	tc->mem_limit = 4 * 1024;
	tc = add_tensor(4096, 4096, 4, QT_ENC_INT, 128, QT_SCALE_FP16, true, "16 MiB limit");
	tc->mem_limit = 16 * 1024 * 1024;
	/* the emulation can also refuse large allocations: chunks must shrink */
	tc = add_tensor(1000, 129, 6, QT_ENC_INT, 48, QT_SCALE_FP16, false, "chscale, allocations fail above 20 kB");
	tc->chscale = true;
	tc->alloc_cap = 20000;
}

/*
 * Build the qtensor of a case; returns a calloc'd buffer of l->total bytes
 * that passed qt_check_body, or NULL (with why) if the builder is wrong.
 */
static uint8_t *
build_qtensor(const TestCase *tc, uint64_t seed, QtLayout *l, char *why)
{
	uint64_t	rng = seed;
	int64_t		n = (int64_t) tc->rows * tc->cols;
	int			maxq = (1 << tc->bits) - 1;
	uint64_t   *pos = NULL;
	int			npos = 0;
	QtHeader	h;
	uint8_t    *buf,
			   *codes,
			   *scratch;

	/* outlier positions first: their count is part of the layout */
	if (tc->outliers > 0)
	{
		pos = malloc(tc->outliers * sizeof(uint64_t));
		for (int i = 0; i < tc->outliers; i++)
			pos[i] = (uint64_t) rng_range(&rng, 0, n - 1);
		qsort(pos, tc->outliers, sizeof(uint64_t), cmp_u64);
		for (int i = 0; i < tc->outliers; i++)
			if (npos == 0 || pos[npos - 1] != pos[i])
				pos[npos++] = pos[i];
	}

	memset(&h, 0, sizeof(h));
	h.version = QT_FORMAT_VERSION;
	h.method = tc->encoding == QT_ENC_NF4 ? QT_METHOD_NF4 : tc->perm ? QT_METHOD_GPTQ
		: tc->chscale ? QT_METHOD_AWQ : QT_METHOD_RTN;
	h.encoding = (uint8_t) tc->encoding;
	h.bits = (uint8_t) tc->bits;
	h.scale_type = (uint8_t) tc->scale_type;
	h.flags = (tc->zeros ? QT_FLAG_ZEROS : 0) | (tc->chscale ? QT_FLAG_CHSCALE : 0) |
		(tc->perm ? QT_FLAG_PERM : 0) | (tc->is1d ? QT_FLAG_1D : 0);
	h.rows = tc->rows;
	h.cols = tc->cols;
	h.group_size = tc->group;
	h.n_outliers = npos;
	if (qt_check_header(&h, why) != QT_OK || qt_layout(&h, l, why) != QT_OK)
	{
		free(pos);
		return NULL;
	}
	h.vl_len = (uint32_t) l->total;
	buf = calloc(1, l->total);
	codes = malloc(tc->cols);
	scratch = malloc(tc->cols);
	memcpy(buf, &h, sizeof(h));

	for (int64_t i = 0; i < (int64_t) tc->rows * l->ngroups; i++)
		qt_set_scale(buf, l, i, rand_scale(&rng, tc->scale_type, tc->wide));
	if (tc->zeros)
		for (int64_t i = 0; i < (int64_t) tc->rows * l->ngroups; i++)
			buf[l->off_zeros + i] = (uint8_t) rng_range(&rng, 0, maxq);
	if (tc->chscale)
	{
		float	   *cs = (float *) (buf + l->off_chscale);

		for (int j = 0; j < tc->cols; j++)
			cs[j] = ldexpf(1.0f + rng_unit(&rng), (int) (tc->wide ? rng_range(&rng, -60, 60)
														 : rng_range(&rng, -8, 8)));
	}
	if (tc->perm)
	{
		int32_t    *perm = (int32_t *) (buf + l->off_perm);

		for (int j = 0; j < tc->cols; j++)
			perm[j] = j;
		for (int j = tc->cols - 1; j > 0; j--)
		{
			int			k = (int) rng_range(&rng, 0, j);
			int32_t		t = perm[j];

			perm[j] = perm[k];
			perm[k] = t;
		}
	}
	for (int i = 0; i < npos; i++)
	{
		QtOutlier	o;

		o.row = (uint32_t) (pos[i] / tc->cols);
		o.col = (uint32_t) (pos[i] % tc->cols);
		o.value = (rng_unit(&rng) - 0.5f) * 2000.0f;
		memcpy(buf + l->off_outliers + i * sizeof(QtOutlier), &o, sizeof(o));
	}
	for (int r = 0; r < tc->rows; r++)
	{
		for (int j = 0; j < tc->cols; j++)
			codes[j] = (uint8_t) (tc->encoding == QT_ENC_NF4 ? rng_range(&rng, 0, 15)
								  : rng_range(&rng, 0, maxq));
		qt_pack_row(buf + l->off_codes + (size_t) r * l->row_bytes, codes, tc->cols, tc->bits);
	}
	if (qt_check_body(buf, l, scratch, why) != QT_OK)
	{
		free(buf);
		buf = NULL;
	}
	free(pos);
	free(codes);
	free(scratch);
	return buf;
}

/* print one TAP result */
static void
report(bool ok, const char *name)
{
	printf("%s %d - %s\n", ok ? "ok" : "not ok", ++test_no, name);
	if (!ok)
		failures++;
}

/* print a skipped TAP result */
static void
report_skip(const char *name, const char *why)
{
	printf("ok %d - %s # SKIP %s\n", ++test_no, name, why);
}

/* a small valid tensor for the argument checks */
static uint8_t *
small_tensor(QtLayout *l)
{
	char		why[QT_ERRMSG_LEN];
	TestCase	tc;

	memset(&tc, 0, sizeof(tc));
	tc.rows = 5;
	tc.cols = 129;
	tc.bits = 4;
	tc.encoding = QT_ENC_INT;
	tc.group = 32;
	tc.scale_type = QT_SCALE_FP16;
	tc.zeros = true;
	return build_qtensor(&tc, 1, l, why);
}

#define NUM_ARG_TESTS 15

/* checks that need no device; returns the device count */
static int
run_argument_tests(char *nodev_reason, size_t reasonlen)
{
	char		err[ERRLEN];
	QtLayout	l;
	uint8_t    *t = small_tensor(&l);
	uint8_t    *bad = malloc(l.total);
	size_t		nout = 5 * 129;
	float	   *out = malloc(nout * sizeof(float));
	float	   *sentinel = malloc(nout * sizeof(float));
	int			count = -1;
	PgqCudaStatus st;
	QtHeader   *bh = (QtHeader *) bad;

	memset(sentinel, 0xa5, nout * sizeof(float));

	report(pgq_cuda_abi_version() == PGQ_CUDA_ABI_VERSION, "module ABI version matches the header");

	st = pgq_cuda_device_count(&count, err, sizeof(err));
	if (st == PGQ_CUDA_OK)
		printf("# %d CUDA device(s)\n", count);
	else
		printf("# no CUDA device: %s\n", err);
	report((st == PGQ_CUDA_OK && count >= 1) ||
		   (st == PGQ_CUDA_NO_DEVICE && count == 0 && err[0] != '\0'),
		   "device count is OK with devices or NO_DEVICE with a reason");
	if (st != PGQ_CUDA_OK)
		snprintf(nodev_reason, reasonlen, "%s", err);

	report(pgq_cuda_device_count(NULL, err, sizeof(err)) == PGQ_CUDA_INVALID,
		   "device count with a NULL count is INVALID");
	report(pgq_cuda_dequantize(NULL, l.total, out, 0, err, sizeof(err)) == PGQ_CUDA_INVALID,
		   "NULL qtensor is INVALID");
	report(pgq_cuda_dequantize(t, l.total, NULL, 0, err, sizeof(err)) == PGQ_CUDA_INVALID,
		   "NULL output is INVALID");
	report(pgq_cuda_dequantize(t, QT_HEADER_SIZE - 1, out, 0, err, sizeof(err)) == PGQ_CUDA_INVALID,
		   "buffer shorter than a header is INVALID");

	memcpy(bad, t, l.total);
	bh->version = 2;
	st = pgq_cuda_dequantize(bad, l.total, out, 0, err, sizeof(err));
	report(st == PGQ_CUDA_INVALID && strstr(err, "version") != NULL,
		   "unknown format version is INVALID with a message");

	memcpy(bad, t, l.total);
	bh->bits = 9;
	report(pgq_cuda_dequantize(bad, l.total, out, 0, err, sizeof(err)) == PGQ_CUDA_INVALID,
		   "9-bit codes are INVALID");

	memcpy(bad, t, l.total);
	bh->encoding = QT_ENC_NF4;
	bh->bits = 3;
	report(pgq_cuda_dequantize(bad, l.total, out, 0, err, sizeof(err)) == PGQ_CUDA_INVALID,
		   "3-bit nf4 is INVALID");

	memcpy(bad, t, l.total);
	bh->reserved2 = 1;
	report(pgq_cuda_dequantize(bad, l.total, out, 0, err, sizeof(err)) == PGQ_CUDA_INVALID,
		   "nonzero reserved field is INVALID");

	memcpy(bad, t, l.total);
	bh->flags |= 0x0100;
	report(pgq_cuda_dequantize(bad, l.total, out, 0, err, sizeof(err)) == PGQ_CUDA_INVALID,
		   "unknown flag is INVALID");

	memcpy(out, sentinel, nout * sizeof(float));
	st = pgq_cuda_dequantize(t, l.total - 1, out, 0, err, sizeof(err));
	report(st == PGQ_CUDA_INVALID && memcmp(out, sentinel, nout * sizeof(float)) == 0,
		   "truncated buffer is INVALID and leaves the output alone");

	st = pgq_cuda_dequantize(t, l.total, out, 1000, err, sizeof(err));
	report(st == PGQ_CUDA_OUT_OF_MEMORY && err[0] != '\0',
		   "memory limit below one row is OUT_OF_MEMORY");

	st = pgq_cuda_dequantize_emulated(t, l.total, out, 0, 100, err, sizeof(err));
	report(st == PGQ_CUDA_OUT_OF_MEMORY && strstr(err, "allocat") != NULL,
		   "emulated: failing allocations end in OUT_OF_MEMORY");

	if (count >= 1)
		report_skip("dequantize without a device is NO_DEVICE", "a device is present");
	else
	{
		st = pgq_cuda_dequantize(t, l.total, out, 0, err, sizeof(err));
		report(st == PGQ_CUDA_NO_DEVICE && err[0] != '\0', "dequantize without a device is NO_DEVICE");
	}

	free(t);
	free(bad);
	free(out);
	free(sentinel);
	return count;
}

/* seconds on a monotonic clock */
static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* decode one case with the reference and the module (emulated or not), compare bytes */
static void
run_case(const TestCase *tc, uint64_t seed, bool emulated)
{
	char		name[160];
	char		why[QT_ERRMSG_LEN] = "";
	char		err[ERRLEN] = "";
	QtLayout	l;
	uint8_t    *buf = build_qtensor(tc, seed, &l, why);
	size_t		n = (size_t) tc->rows * tc->cols;
	float	   *ref,
			   *gpu;
	PgqCudaStatus st;
	double		t0,
				t1;

	snprintf(name, sizeof(name), "%s: %s", emulated ? "emulated" : "cuda", tc->name);
	if (buf == NULL)
	{
		report(false, name);
		printf("#   test bug: cannot build the qtensor: %s\n", why);
		return;
	}
	ref = malloc(n * sizeof(float));
	gpu = malloc(n * sizeof(float));
	/* NaN fill: an element the kernel forgets to write cannot match */
	memset(ref, 0xff, n * sizeof(float));
	memset(gpu, 0xff, n * sizeof(float));
	qt_dequantize_ref(buf, &l, 0, tc->rows, ref);
	t0 = now();
	if (emulated)
		st = pgq_cuda_dequantize_emulated(buf, l.total, gpu, tc->mem_limit, tc->alloc_cap,
										  err, sizeof(err));
	else
		st = pgq_cuda_dequantize(buf, l.total, gpu, tc->mem_limit, err, sizeof(err));
	t1 = now();
	if (st != PGQ_CUDA_OK)
	{
		report(false, name);
		printf("#   status %d: %s\n", (int) st, err);
	}
	else if (memcmp(ref, gpu, n * sizeof(float)) != 0)
	{
		size_t		i = 0;
		uint32_t	a,
					b;

		while (memcmp(&ref[i], &gpu[i], sizeof(float)) == 0)
			i++;
		memcpy(&a, &gpu[i], 4);
		memcpy(&b, &ref[i], 4);
		report(false, name);
		printf("#   first difference at row %zu col %zu: gpu %.9g (0x%08x), ref %.9g (0x%08x)\n",
			   i / tc->cols, i % tc->cols, gpu[i], a, ref[i], b);
	}
	else
	{
		report(true, name);
		if (!emulated && n >= ((size_t) 1 << 22))
			printf("#   %.1f ms for %zu weights (with transfers)\n", (t1 - t0) * 1e3, n);
	}
	free(buf);
	free(ref);
	free(gpu);
}

/* argument checks, then every case emulated, then every case on the device */
int
main(int argc, char **argv)
{
	const char *env = getenv("PGQ_TEST_SEED");
	uint64_t	seed = argc > 1 ? strtoull(argv[1], NULL, 0)
		: env ? strtoull(env, NULL, 0) : 20240611;
	char		nodev[ERRLEN] = "";
	int			devices;

	setvbuf(stdout, NULL, _IOLBF, 0);
	make_cases();
	printf("1..%d\n", NUM_ARG_TESTS + 2 * ncases);
	printf("# seed %" PRIu64 "\n", seed);
	devices = run_argument_tests(nodev, sizeof(nodev));
	if (test_no != NUM_ARG_TESTS)
	{
		printf("# bail: NUM_ARG_TESTS is %d but %d argument tests ran\n", NUM_ARG_TESTS, test_no);
		return 1;
	}
	for (int i = 0; i < ncases; i++)
		run_case(&cases[i], seed ^ ((uint64_t) i * 0x2545f4914f6cdd1dULL), true);
	for (int i = 0; i < ncases; i++)
	{
		if (devices < 1)
		{
			char		name[160];
			char		why[ERRLEN + 32];

			snprintf(name, sizeof(name), "cuda: %s", cases[i].name);
			snprintf(why, sizeof(why), "no CUDA device: %s", nodev);
			report_skip(name, why);
		}
		else
			run_case(&cases[i], seed ^ ((uint64_t) i * 0x2545f4914f6cdd1dULL), false);
	}
	free(cases);
	return failures > 0 ? 1 : 0;
}
