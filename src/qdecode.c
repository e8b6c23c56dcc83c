/*
 * qdecode.c: the fast CPU decoder.  Results are bit-identical to
 * qt_dequantize_ref(), which the unit tests check.
 *
 * Eight b-bit codes fill exactly b bytes, so a group that starts on a
 * multiple of 8 codes decodes 8 codes per b-byte load.  One function per
 * width lets the compiler turn every shift and mask into a constant.
 * Tensors with a permutation or channel scales take the reference path.
 */
#include "qformat.h"

#include <string.h>

/* codes [j0, j0 + n) of a row, j0 a multiple of 8, as (q - z) * s */
#define DEFINE_DECODE_INT(B) \
static void \
decode_int##B(const uint8_t *row, int64_t j0, int64_t n, float s, float zf, float *dst) \
{ \
	const uint8_t *p = row + (j0 / 8) * B; \
	int64_t		i = 0; \
\
	for (; i + 8 <= n; i += 8, p += B) \
	{ \
		uint64_t	v = 0; \
\
		memcpy(&v, p, B); \
		for (int k = 0; k < 8; k++) \
			dst[i + k] = ((float) ((v >> (k * B)) & ((1u << B) - 1)) - zf) * s; \
	} \
	for (; i < n; i++) \
		dst[i] = ((float) qt_code_at(row, j0 + i, B) - zf) * s; \
}

DEFINE_DECODE_INT(2)
DEFINE_DECODE_INT(3)
DEFINE_DECODE_INT(4)
DEFINE_DECODE_INT(5)
DEFINE_DECODE_INT(6)
DEFINE_DECODE_INT(7)
DEFINE_DECODE_INT(8)

typedef void (*decode_fn) (const uint8_t *, int64_t, int64_t, float, float, float *);
static const decode_fn decode_int[QT_MAX_BITS + 1] = {
	NULL, NULL, decode_int2, decode_int3, decode_int4, decode_int5, decode_int6, decode_int7, decode_int8
};

/* NF4: two codes per byte, low nibble first */
static void
decode_nf4(const uint8_t *row, int64_t j0, int64_t n, float s, float *dst)
{
	const uint8_t *p = row + j0 / 2;
	int64_t		i = 0;

	for (; i + 2 <= n; i += 2, p++)
	{
		dst[i] = qt_nf4_levels[*p & 15] * s;
		dst[i + 1] = qt_nf4_levels[*p >> 4] * s;
	}
	for (; i < n; i++)
		dst[i] = qt_nf4_levels[qt_code_at(row, j0 + i, 4)] * s;
}

/* the reference's element loop, for a group that starts off a byte boundary */
static void
decode_any(const QtHeader *h, const uint8_t *row, int64_t j0, int64_t n, float s, float zf, float *dst)
{
	for (int64_t i = 0; i < n; i++)
	{
		unsigned	q = qt_code_at(row, j0 + i, h->bits);

		dst[i] = h->encoding == QT_ENC_NF4 ? qt_nf4_levels[q] * s : ((float) q - zf) * s;
	}
}

/* Rows [r0, r1) in the original column order, as qt_dequantize_ref(). */
void
qt_dequantize(const uint8_t *buf, const QtLayout *l, int64_t r0, int64_t r1, float *out)
{
	const QtHeader *h = (const QtHeader *) buf;
	const QtOutlier *o = (const QtOutlier *) (buf + l->off_outliers);
	const float sym_zero = (float) (1 << (h->bits - 1));

	if (h->flags & (QT_FLAG_PERM | QT_FLAG_CHSCALE))
	{
		qt_dequantize_ref(buf, l, r0, r1, out);
		return;
	}
	for (int64_t r = r0; r < r1; r++)
	{
		const uint8_t *row = buf + l->off_codes + (size_t) r * l->row_bytes;
		float	   *dst = out + (r - r0) * h->cols;

		if (qt_interrupt_hook)
			qt_interrupt_hook();
		for (int64_t g = 0; g < l->ngroups; g++)
		{
			int64_t		gi = r * l->ngroups + g;
			int64_t		j0 = g * l->group_len;
			int64_t		n = qt_group_len(l, h->cols, g);
			float		s = qt_get_scale(buf, l, gi);
			float		zf = (h->flags & QT_FLAG_ZEROS) ? (float) buf[l->off_zeros + gi] : sym_zero;

			if (j0 % 8 != 0)
				decode_any(h, row, j0, n, s, zf, dst + j0);
			else if (h->encoding == QT_ENC_NF4)
				decode_nf4(row, j0, n, s, dst + j0);
			else
				decode_int[h->bits] (row, j0, n, s, zf, dst + j0);
		}
	}
	for (int32_t i = 0; i < h->n_outliers; i++)
		if (o[i].row >= (uint32_t) r0 && o[i].row < (uint32_t) r1)
			out[(o[i].row - r0) * h->cols + o[i].col] = o[i].value;
}
