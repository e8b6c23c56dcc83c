/*
 * qparams.c: build a qtensor from group parameters chosen by an optimizing
 * quantizer (HQQ, GPTQ, AWQ), and the allocator those quantizers use.
 */
#include "qcalib.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void	   *(*qc_alloc) (size_t size) = malloc;
void		(*qc_free) (void *p) = free;

/* fp16 scales when every scale fits fp16's normal range, else fp32 */
int
qt_params_scale_type(const float *scales, int64_t n)
{
	for (int64_t i = 0; i < n; i++)
		if (!qt_fits_fp16(scales[i]))
			return QT_SCALE_FP32;
	return QT_SCALE_FP16;
}

QtStatus
qt_params_plan(int method, int bits, int group_size, uint16_t flags, int scale_type,
			   int32_t rows, int32_t cols, QtHeader *h, QtLayout *l, char *err)
{
	QtStatus	st;

	memset(h, 0, sizeof(*h));
	h->version = QT_FORMAT_VERSION;
	h->method = (uint8_t) method;
	h->encoding = QT_ENC_INT;
	h->bits = (uint8_t) bits;
	h->scale_type = (uint8_t) scale_type;
	h->flags = flags;
	h->rows = rows;
	h->cols = cols;
	h->group_size = group_size;
	if ((st = qt_check_header(h, err)) != QT_OK)
		return st;
	return qt_layout(h, l, err);
}

void
qt_params_encode(const float *w, uint8_t *buf, const QtLayout *l,
				 const float *scales, const uint8_t *zeros)
{
	const QtHeader *h = (const QtHeader *) buf;
	const int	sym_zero = 1 << (h->bits - 1);

	for (int64_t r = 0; r < h->rows; r++)
	{
		uint8_t    *row = buf + l->off_codes + (size_t) r * l->row_bytes;

		if (qt_interrupt_hook)
			qt_interrupt_hook();
		for (int64_t g = 0; g < l->ngroups; g++)
		{
			int64_t		gi = r * l->ngroups + g;
			int64_t		j0 = g * l->group_len;
			float		s = qt_round_scale(scales[gi], h->scale_type);
			int			z = (h->flags & QT_FLAG_ZEROS) ? zeros[gi] : sym_zero;

			qt_set_scale(buf, l, gi, s);
			if (h->flags & QT_FLAG_ZEROS)
				buf[l->off_zeros + gi] = (uint8_t) z;
			qt_rtn_encode(w + r * h->cols + j0, qt_group_len(l, h->cols, g), h->bits, s, z, row, j0);
		}
	}
}

void
qt_params_write(uint8_t *buf, const QtLayout *l, const float *scales,
				const uint8_t *zeros, const uint8_t *codes)
{
	const QtHeader *h = (const QtHeader *) buf;
	int64_t		n = (int64_t) h->rows * l->ngroups;

	for (int64_t i = 0; i < n; i++)
	{
		qt_set_scale(buf, l, i, qt_round_scale(scales[i], h->scale_type));
		if (h->flags & QT_FLAG_ZEROS)
			buf[l->off_zeros + i] = zeros[i];
	}
	for (int64_t r = 0; r < h->rows; r++)
		qt_pack_row(buf + l->off_codes + (size_t) r * l->row_bytes,
					codes + r * h->cols, h->cols, h->bits);
}
