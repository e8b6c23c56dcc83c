/*
 * bench.h: what the C benchmarks share: a monotonic clock, the median of
 * repeated timings, and the seeded generator their data is drawn from.
 * Header only, included once per benchmark program.
 */
#ifndef PGQUANT_BENCH_H
#define PGQUANT_BENCH_H

#include <stdint.h>
#include <stdlib.h>
#include <time.h>

/* seconds on the monotonic clock */
static inline double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static inline int
cmp_double(const void *a, const void *b)
{
	double		x = *(const double *) a,
				y = *(const double *) b;

	return x < y ? -1 : x > y;
}

/* the median of n timings (sorts t in place) */
static inline double
median(double *t, int n)
{
	qsort(t, n, sizeof(double), cmp_double);
	return t[n / 2];
}

/* uniform in (0, 1) from a 64-bit LCG seeded with 42, so every run draws the same data */
static uint64_t bench_state = 42;

static inline double
uniform(void)
{
	bench_state = bench_state * 6364136223846793005ULL + 1442695040888963407ULL;
	return ((bench_state >> 11) + 0.5) / 9007199254740992.0;
}

#endif							/* PGQUANT_BENCH_H */
