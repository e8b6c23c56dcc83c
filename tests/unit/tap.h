/*
 * tap.h: TAP output for the C unit tests ("ok N - name", "ok N # SKIP why",
 * the plan "1..N" at the end), and the seeded generator of tests/lib/rng.h.
 * Header only, included once per test program.
 *
 *   ok(cond, "name %d", i);  skip(n, "why");  return done_testing();
 */
#ifndef PGQUANT_TESTS_TAP_H
#define PGQUANT_TESTS_TAP_H

#include <stdarg.h>
#include <stdio.h>

#include "../lib/rng.h"

static int	tap_tests = 0;
static int	tap_failed = 0;

static inline int ok(int cond, const char *fmt,...)
			__attribute__((format(printf, 2, 3)));
static inline void skip(int count, const char *fmt,...)
			__attribute__((format(printf, 2, 3)));

/* one test named by a printf format; returns cond */
static inline int
ok(int cond, const char *fmt,...)
{
	va_list		ap;

	tap_tests++;
	if (!cond)
		tap_failed++;
	printf("%sok %d - ", cond ? "" : "not ", tap_tests);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	return cond;
}

/* count tests skipped, all for the same reason */
static inline void
skip(int count, const char *fmt,...)
{
	char		why[1024];
	va_list		ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	for (int i = 0; i < count; i++)
		printf("ok %d # SKIP %s\n", ++tap_tests, why);
}

/* the plan, and the exit status of the test program */
static inline int
done_testing(void)
{
	printf("1..%d\n", tap_tests);
	if (tap_failed)
		printf("# %d of %d failed\n", tap_failed, tap_tests);
	return tap_failed ? 1 : 0;
}

#endif							/* PGQUANT_TESTS_TAP_H */
