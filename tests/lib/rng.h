/*
 * rng.h: the seeded generator (xorshift64*) of the C unit tests and the
 * benchmarks, so that every run draws the same data.  Header only: one
 * state per program, set with rng_seed().
 *
 * There are two normal draws.  They differ only in how 64 random bits become
 * the two uniforms of Box-Muller; both stay because the tests and benchmarks
 * written with each depend on their exact values (some test names print
 * them, and docs/benchmarks.md holds figures measured on that data).
 */
#ifndef PGQUANT_TESTS_RNG_H
#define PGQUANT_TESTS_RNG_H

#include <math.h>
#include <stdint.h>

static uint64_t rng_state = 0x2545f4914f6cdd1dULL;

/* any seed but zero, where xorshift stays */
static inline void
rng_seed(uint64_t seed)
{
	rng_state = seed;
}

static inline uint64_t
rng(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ULL;
}

/* uniform in [0, 1): the top 53 bits */
static inline double
rng_unit(void)
{
	return (rng() >> 11) * (1.0 / 9007199254740992.0);
}

/* uniform in (0, 1): the midpoints of 2^53 cells, so log() is finite */
static inline double
rng_uniform(void)
{
	return ((rng() >> 11) + 0.5) / 9007199254740992.0;
}

/* standard normal: Box-Muller on two rng_uniform() draws */
static inline float
rng_normal(void)
{
	double		u1 = rng_uniform(),
				u2 = rng_uniform();

	return (float) (sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2));
}

/*
 * standard normal with u1 = (k + 1) / (2^53 + 1) and u2 from rng_unit(): the
 * draw test_qformat.c and test_qgemv.c were written with
 */
static inline float
rng_normal_alt(void)
{
	double		u1 = ((rng() >> 11) + 1.0) / 9007199254740993.0;
	double		u2 = rng_unit();

	return (float) (sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2));
}

#endif							/* PGQUANT_TESTS_RNG_H */
