/*
 * quant.h: calibration-free quantizers (floor 1, no PostgreSQL headers).
 *
 * Quantizing is two passes over the weights: qt_plan() fills the header and
 * layout, choosing fp16 scales when every group scale fits fp16's normal
 * range and fp32 otherwise; qt_encode() then writes scales, zero points and
 * codes, computing codes from the scale as stored so that decoding and
 * re-quantizing are exact.
 */
#ifndef PGQUANT_QUANT_H
#define PGQUANT_QUANT_H

#include "qformat.h"

typedef struct QtSpec
{
	int			method;			/* QtMethod */
	int			bits;
	int			group_size;		/* > 0 or QT_GROUP_PER_CHANNEL */
	bool		symmetric;
} QtSpec;

QtStatus	qt_plan(const QtSpec *spec, const float *w, int32_t rows, int32_t cols,
					bool is1d, QtHeader *h, QtLayout *l, char *err);
/* buf: l->total zeroed bytes whose header qt_plan filled in */
void		qt_encode(const float *w, uint8_t *buf, const QtLayout *l);

/*
 * Per-method group kernels.  A group is n weights g that become codes
 * j0 .. j0+n-1 of a packed row; s is the scale as stored.
 */
float		qt_rtn_scale(const float *g, int64_t n, int bits, bool symmetric);
int			qt_rtn_zero(const float *g, int64_t n, int bits, bool symmetric, float s);
void		qt_rtn_encode(const float *g, int64_t n, int bits, float s, int zero,
						  uint8_t *row, int64_t j0);
float		qt_nf4_scale(const float *g, int64_t n);
void		qt_nf4_encode(const float *g, int64_t n, float s, uint8_t *row, int64_t j0);

#endif							/* PGQUANT_QUANT_H */
