/*
 * quant_rtn.c: round-to-nearest integer quantization of one group.
 *
 * Asymmetric (default): the range [min(w, 0), max(w, 0)] is split into
 * 2^b - 1 steps, s = (hi - lo) / (2^b - 1), zero = round(-lo / s), so that
 * 0.0 is exactly representable (as GPTQ and AWQ do).
 * Symmetric: the zero point is fixed at 2^(b-1) and s = m / -2^(b-1), where
 * m is the weight of largest magnitude with its sign; m then lands exactly
 * on code 0 and all 2^b levels are used (llama.cpp's Q4_0 idea).
 */
#include "quant.h"

#include <math.h>

static inline uint8_t
clamp_code(float v, int maxq)
{
	return v <= 0.0f ? 0 : v >= (float) maxq ? (uint8_t) maxq : (uint8_t) v;
}

/* Raw (unrounded) scale of one group. */
float
qt_rtn_scale(const float *g, int64_t n, int bits, bool symmetric)
{
	if (symmetric)
	{
		float		m = 0.0f,
					am = 0.0f;

		for (int64_t i = 0; i < n; i++)
		{
			float		a = fabsf(g[i]);

			if (a > am)
			{
				am = a;
				m = g[i];
			}
		}
		return m / (float) -(1 << (bits - 1));
	}
	else
	{
		float		lo = 0.0f,
					hi = 0.0f;

		/* the weights are finite: plain comparisons, which vectorize */
		for (int64_t i = 0; i < n; i++)
		{
			lo = g[i] < lo ? g[i] : lo;
			hi = g[i] > hi ? g[i] : hi;
		}
		return (hi - lo) / (float) ((1 << bits) - 1);
	}
}

/* Zero point of one group, given its stored scale. */
int
qt_rtn_zero(const float *g, int64_t n, int bits, bool symmetric, float s)
{
	float		lo = 0.0f;

	if (symmetric)
		return 1 << (bits - 1);
	if (s == 0.0f)
		return 0;
	for (int64_t i = 0; i < n; i++)
		lo = g[i] < lo ? g[i] : lo;
	return clamp_code(qt_round_code(-lo / s), (1 << bits) - 1);
}

/* Packed codes of one group, given its stored scale and zero point. */
void
qt_rtn_encode(const float *g, int64_t n, int bits, float s, int zero,
			  uint8_t *row, int64_t j0)
{
	int			maxq = (1 << bits) - 1;
	float		inv = s == 0.0f ? 0.0f : 1.0f / s;

	for (int64_t i = 0; i < n; i++)
		qt_put_code(row, j0 + i, bits, clamp_code(qt_round_code(g[i] * inv) + (float) zero, maxq));
}
