/*
 * quant.c: the two passes of calibration-free quantization (see quant.h).
 */
#include "quant.h"

#include <math.h>
#include <string.h>


static float
group_scale(const QtHeader *h, const float *g, int64_t n)
{
	if (h->encoding == QT_ENC_NF4)
		return qt_nf4_scale(g, n);
	return qt_rtn_scale(g, n, h->bits, !(h->flags & QT_FLAG_ZEROS));
}

/* Fill the header and layout for quantizing w (rows x cols, finite). */
QtStatus
qt_plan(const QtSpec *spec, const float *w, int32_t rows, int32_t cols, bool is1d,
		QtHeader *h, QtLayout *l, char *err)
{
	QtStatus	st;
	bool		fits_fp16 = true;
	QtLayout	probe;

	memset(h, 0, sizeof(*h));
	h->version = QT_FORMAT_VERSION;
	h->method = (uint8_t) spec->method;
	h->encoding = spec->method == QT_METHOD_NF4 ? QT_ENC_NF4 : QT_ENC_INT;
	h->bits = (uint8_t) spec->bits;
	h->scale_type = QT_SCALE_FP16;
	h->flags = (is1d ? QT_FLAG_1D : 0) |
		(h->encoding == QT_ENC_INT && !spec->symmetric ? QT_FLAG_ZEROS : 0);
	h->rows = rows;
	h->cols = cols;
	h->group_size = spec->group_size;
	if ((st = qt_check_header(h, err)) != QT_OK ||
		(st = qt_layout(h, &probe, err)) != QT_OK)
		return st;

	for (int64_t r = 0; r < rows && fits_fp16; r++)
	{
		if (qt_interrupt_hook)
			qt_interrupt_hook();
		for (int64_t g = 0; g < probe.ngroups; g++)
		{
			float		s = fabsf(group_scale(h, w + r * cols + g * probe.group_len,
											  qt_group_len(&probe, cols, g)));

			if (!qt_fits_fp16(s))
			{
				fits_fp16 = false;
				break;
			}
		}
	}
	if (!fits_fp16)
		h->scale_type = QT_SCALE_FP32;
	return qt_layout(h, l, err);
}

/* Second pass: scales as stored, zero points and packed codes. */
void
qt_encode(const float *w, uint8_t *buf, const QtLayout *l)
{
	const QtHeader *h = (const QtHeader *) buf;
	const bool	sym = !(h->flags & QT_FLAG_ZEROS);

	for (int64_t r = 0; r < h->rows; r++)
	{
		uint8_t    *row = buf + l->off_codes + (size_t) r * l->row_bytes;

		if (qt_interrupt_hook)
			qt_interrupt_hook();
		for (int64_t g = 0; g < l->ngroups; g++)
		{
			int64_t		gi = r * l->ngroups + g;
			int64_t		j0 = g * l->group_len;
			int64_t		n = qt_group_len(l, h->cols, g);
			const float *src = w + r * h->cols + j0;
			float		s = qt_round_scale(group_scale(h, src, n), h->scale_type);

			qt_set_scale(buf, l, gi, s);
			if (h->encoding == QT_ENC_NF4)
				qt_nf4_encode(src, n, s, row, j0);
			else
			{
				int			z = qt_rtn_zero(src, n, h->bits, sym, s);

				if (!sym)
					buf[l->off_zeros + gi] = (uint8_t) z;
				qt_rtn_encode(src, n, h->bits, s, z, row, j0);
			}
		}
	}
}
