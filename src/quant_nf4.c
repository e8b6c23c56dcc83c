/*
 * quant_nf4.c: NormalFloat-4 (QLoRA), blockwise absmax as in bitsandbytes.
 * Each group is scaled by its absolute maximum and every weight takes the
 * nearest of the 16 levels in qt_nf4_levels.
 */
#include "quant.h"

#include <math.h>

/* Raw scale of one group: its absolute maximum. */
float
qt_nf4_scale(const float *g, int64_t n)
{
	float		m = 0.0f;

	for (int64_t i = 0; i < n; i++)
		m = fmaxf(m, fabsf(g[i]));
	return m;
}

/* midpoints between neighbouring levels: a code is how many lie at or below x */
static float nf4_mid[15];
static bool nf4_mid_ready = false;

static void
init_midpoints(void)
{
	for (int k = 0; k < 15; k++)
		nf4_mid[k] = (qt_nf4_levels[k] + qt_nf4_levels[k + 1]) * 0.5f;
	nf4_mid_ready = true;
}

/* index of the level nearest to x; a tie goes to the upper level */
static inline uint8_t
nearest_level(float x)
{
	uint8_t		q = 0;

	for (int k = 0; k < 15; k++)
		q += x >= nf4_mid[k];
	return q;
}

/* Packed codes of one group, given its stored scale. */
void
qt_nf4_encode(const float *g, int64_t n, float s, uint8_t *row, int64_t j0)
{
	float		inv = s == 0.0f ? 0.0f : 1.0f / s;

	if (!nf4_mid_ready)
		init_midpoints();
	for (int64_t i = 0; i < n; i++)
		qt_put_code(row, j0 + i, 4, nearest_level(g[i] * inv));
}
