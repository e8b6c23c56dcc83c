/*
 * qformat.c: qtensor layout, validation, scales, bit packing, wire form and
 * the reference decoder.  The reference decoder is the oracle that the SIMD
 * and CUDA decoders are tested against, so it favours plainness over speed.
 */
#include "qformat.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

void		(*qt_interrupt_hook) (void) = NULL;

/* bitsandbytes' NF4 table: 16 quantiles of N(0,1) rescaled to [-1, 1] */
const float qt_nf4_levels[16] = {
	-1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
	-0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
	0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f,
	0.33791524171829224f, 0.44070982933044434f, 0.5626170039176941f,
	0.7229568362236023f, 1.0f
};

static const char *const method_names[] = {NULL, "rtn", "nf4", "hqq", "awq", "gptq"};

const char *
qt_method_name(int method)
{
	if (method < 1 || method > QT_METHOD_MAX)
		return "unknown";
	return method_names[method];
}

int
qt_method_from_name(const char *name)
{
	for (int m = 1; m <= QT_METHOD_MAX; m++)
		if (strcmp(name, method_names[m]) == 0)
			return m;
	return 0;
}

const char *
qt_scale_type_name(int scale_type)
{
	return scale_type == QT_SCALE_FP16 ? "fp16" : scale_type == QT_SCALE_FP32 ? "fp32" : "unknown";
}

#define FAIL(status, ...) \
	do { if (err) snprintf(err, QT_ERRMSG_LEN, __VA_ARGS__); return (status); } while (0)

/* Check every header field on its own and against the others. */
QtStatus
qt_check_header(const QtHeader *h, char *err)
{
	if (h->version != QT_FORMAT_VERSION)
		FAIL(QT_EINVAL, "unsupported format version %d", h->version);
	if (h->method < 1 || h->method > QT_METHOD_MAX)
		FAIL(QT_EINVAL, "unknown method %d", h->method);
	if (h->encoding < 1 || h->encoding > QT_ENC_MAX)
		FAIL(QT_EINVAL, "unknown encoding %d", h->encoding);
	if (h->bits < QT_MIN_BITS || h->bits > QT_MAX_BITS)
		FAIL(QT_EINVAL, "bits must be between %d and %d, got %d", QT_MIN_BITS, QT_MAX_BITS, h->bits);
	if (h->encoding == QT_ENC_NF4 && h->bits != 4)
		FAIL(QT_EINVAL, "nf4 codes have 4 bits, got %d", h->bits);
	if (h->scale_type != QT_SCALE_FP16 && h->scale_type != QT_SCALE_FP32)
		FAIL(QT_EINVAL, "unknown scale type %d", h->scale_type);
	if (h->reserved1 != 0 || h->reserved2 != 0)
		FAIL(QT_EINVAL, "reserved header fields must be zero");
	if (h->flags & ~QT_FLAGS_KNOWN)
		FAIL(QT_EINVAL, "unknown flags 0x%04x", h->flags & ~QT_FLAGS_KNOWN);
	if (h->encoding == QT_ENC_NF4 && (h->flags & QT_FLAG_ZEROS))
		FAIL(QT_EINVAL, "nf4 tensors have no zero points");
	if (h->rows < 1 || h->cols < 1)
		FAIL(QT_EINVAL, "shape must be positive, got %d x %d", h->rows, h->cols);
	if ((h->flags & QT_FLAG_1D) && h->rows != 1)
		FAIL(QT_EINVAL, "a 1-D qtensor must have one row, got %d", h->rows);
	if (h->group_size < 1 && h->group_size != QT_GROUP_PER_CHANNEL)
		FAIL(QT_EINVAL, "group size must be positive or -1, got %d", h->group_size);
	if ((int64_t) h->rows * h->cols > QT_MAX_ELEMS)
		FAIL(QT_ELIMIT, "a qtensor holds at most %lld weights, got %lld",
			 (long long) QT_MAX_ELEMS, (long long) h->rows * h->cols);
	if (h->n_outliers < 0 || h->n_outliers > (int64_t) h->rows * h->cols)
		FAIL(QT_EINVAL, "outlier count %d is out of range", h->n_outliers);
	return QT_OK;
}

/* a += b, then round up to the section alignment; false on overflow */
static bool
add_section(size_t *off, size_t bytes, size_t *wire)
{
	size_t		end;

	if (__builtin_add_overflow(*off, bytes, &end) ||
		__builtin_add_overflow(*wire, bytes, wire) ||
		end > QT_MAX_BYTES)
		return false;
	*off = (end + QT_SECTION_ALIGN - 1) & ~(size_t) (QT_SECTION_ALIGN - 1);
	return true;
}

/* Compute section offsets; the header must have passed qt_check_header. */
QtStatus
qt_layout(const QtHeader *h, QtLayout *l, char *err)
{
	size_t		off = QT_HEADER_SIZE;
	size_t		wire = 0;
	size_t		rows = (size_t) h->rows;
	size_t		cols = (size_t) h->cols;
	size_t		code_bits,
				n,
				bytes;

	memset(l, 0, sizeof(*l));
	l->group_len = h->group_size == QT_GROUP_PER_CHANNEL ? h->cols : h->group_size;
	l->ngroups = (h->cols + l->group_len - 1) / l->group_len;
	l->scale_bytes = h->scale_type == QT_SCALE_FP16 ? 2 : 4;
	if (__builtin_mul_overflow(cols, (size_t) h->bits, &code_bits))
		goto overflow;
	l->row_bytes = (code_bits + 7) / 8;
	if (__builtin_mul_overflow(rows, (size_t) l->ngroups, &n))
		goto overflow;

	l->off_scales = off;
	if (__builtin_mul_overflow(n, l->scale_bytes, &bytes) || !add_section(&off, bytes, &wire))
		goto overflow;
	l->off_zeros = off;
	if ((h->flags & QT_FLAG_ZEROS) && !add_section(&off, n, &wire))
		goto overflow;
	l->off_chscale = off;
	if ((h->flags & QT_FLAG_CHSCALE) && !add_section(&off, cols * 4, &wire))
		goto overflow;
	l->off_perm = off;
	if ((h->flags & QT_FLAG_PERM) && !add_section(&off, cols * 4, &wire))
		goto overflow;
	l->off_outliers = off;
	if (__builtin_mul_overflow((size_t) h->n_outliers, sizeof(QtOutlier), &bytes) ||
		!add_section(&off, bytes, &wire))
		goto overflow;
	l->off_codes = off;
	if (__builtin_mul_overflow(rows, l->row_bytes, &bytes) || !add_section(&off, bytes, &wire))
		goto overflow;
	l->total = off;
	l->wire_body = wire;
	return QT_OK;

overflow:
	FAIL(QT_ELIMIT, "a %d x %d qtensor with these settings exceeds the %zu byte limit",
		 h->rows, h->cols, QT_MAX_BYTES);
}

/* Check the sections' contents; scratch holds cols bytes when perm is set. */
QtStatus
qt_check_body(const uint8_t *buf, const QtLayout *l, uint8_t *scratch, char *err)
{
	const QtHeader *h = (const QtHeader *) buf;
	int64_t		n = (int64_t) h->rows * l->ngroups;
	int			maxq = (1 << h->bits) - 1;

	for (int64_t i = 0; i < n; i++)
		if (!isfinite(qt_get_scale(buf, l, i)))
			FAIL(QT_EINVAL, "scale %lld is not finite", (long long) i);
	if (h->flags & QT_FLAG_ZEROS)
		for (int64_t i = 0; i < n; i++)
			if (buf[l->off_zeros + i] > maxq)
				FAIL(QT_EINVAL, "zero point %d exceeds %d for %d-bit codes",
					 buf[l->off_zeros + i], maxq, h->bits);
	if (h->flags & QT_FLAG_CHSCALE)
	{
		const float *cs = (const float *) (buf + l->off_chscale);

		for (int32_t j = 0; j < h->cols; j++)
			if (!isfinite(cs[j]) || cs[j] <= 0.0f)
				FAIL(QT_EINVAL, "channel scale %d must be finite and positive", j);
	}
	if (h->flags & QT_FLAG_PERM)
	{
		const int32_t *perm = (const int32_t *) (buf + l->off_perm);

		memset(scratch, 0, (size_t) h->cols);
		for (int32_t j = 0; j < h->cols; j++)
		{
			if (perm[j] < 0 || perm[j] >= h->cols || scratch[perm[j]])
				FAIL(QT_EINVAL, "column order is not a permutation of 0..%d", h->cols - 1);
			scratch[perm[j]] = 1;
		}
	}
	if (h->n_outliers > 0)
	{
		const QtOutlier *o = (const QtOutlier *) (buf + l->off_outliers);

		for (int32_t i = 0; i < h->n_outliers; i++)
		{
			if (o[i].row >= (uint32_t) h->rows || o[i].col >= (uint32_t) h->cols)
				FAIL(QT_EINVAL, "outlier %d lies outside the %d x %d shape", i, h->rows, h->cols);
			if (!isfinite(o[i].value))
				FAIL(QT_EINVAL, "outlier %d is not finite", i);
			if (i > 0 && (o[i].row < o[i - 1].row ||
						  (o[i].row == o[i - 1].row && o[i].col <= o[i - 1].col)))
				FAIL(QT_EINVAL, "outliers must be sorted by row and column without repeats");
		}
	}
	/* bits past the last code of a row are padding and must be zero */
	if (((size_t) h->cols * h->bits) % 8 != 0)
	{
		uint8_t		mask = (uint8_t) (0xff << (((size_t) h->cols * h->bits) % 8));

		for (int32_t r = 0; r < h->rows; r++)
			if (buf[l->off_codes + (size_t) r * l->row_bytes + l->row_bytes - 1] & mask)
				FAIL(QT_EINVAL, "padding bits after the last code of row %d are not zero", r);
	}
	return QT_OK;
}

/* IEEE binary32 -> binary16, rounding to nearest even */
uint16_t
qt_float_to_half(float f)
{
	uint32_t	x,
				ax,
				sign,
				mant,
				rem,
				h;

	memcpy(&x, &f, 4);
	sign = (x >> 16) & 0x8000;
	ax = x & 0x7fffffff;
	if (ax >= 0x7f800000)		/* inf or nan */
		return (uint16_t) (sign | 0x7c00 | (ax > 0x7f800000 ? 0x200 : 0));
	if (ax >= 0x477ff000)		/* rounds past 65504 */
		return (uint16_t) (sign | 0x7c00);
	if (ax < 0x38800000)		/* below 2^-14: subnormal half */
	{
		float		a;

		memcpy(&a, &ax, 4);
		return (uint16_t) (sign | (uint32_t) lrintf(a * 16777216.0f));
	}
	mant = ax & 0x7fffff;
	h = ((((ax >> 23) - 127 + 15)) << 10) | (mant >> 13);
	rem = mant & 0x1fff;
	if (rem > 0x1000 || (rem == 0x1000 && (h & 1)))
		h++;					/* a carry into the exponent is still right */
	return (uint16_t) (sign | h);
}

float
qt_half_to_float(uint16_t h)
{
	uint32_t	sign = (uint32_t) (h & 0x8000) << 16;
	uint32_t	exp = (h >> 10) & 0x1f;
	uint32_t	mant = h & 0x3ff;
	uint32_t	x;
	float		f;

	if (exp == 0)
	{
		f = (float) mant * (1.0f / 16777216.0f);
		memcpy(&x, &f, 4);
		x |= sign;
	}
	else if (exp == 31)
		x = sign | 0x7f800000 | (mant << 13);
	else
		x = sign | ((exp + 112) << 23) | (mant << 13);
	memcpy(&f, &x, 4);
	return f;
}

/* the value a scale has once stored with the given type */
float
qt_round_scale(float s, int scale_type)
{
	return scale_type == QT_SCALE_FP16 ? qt_half_to_float(qt_float_to_half(s)) : s;
}

float
qt_get_scale(const uint8_t *buf, const QtLayout *l, int64_t i)
{
	if (l->scale_bytes == 2)
	{
		uint16_t	h;

		memcpy(&h, buf + l->off_scales + (size_t) i * 2, 2);
		return qt_half_to_float(h);
	}
	else
	{
		float		f;

		memcpy(&f, buf + l->off_scales + (size_t) i * 4, 4);
		return f;
	}
}

void
qt_set_scale(uint8_t *buf, const QtLayout *l, int64_t i, float s)
{
	if (l->scale_bytes == 2)
	{
		uint16_t	h = qt_float_to_half(s);

		memcpy(buf + l->off_scales + (size_t) i * 2, &h, 2);
	}
	else
		memcpy(buf + l->off_scales + (size_t) i * 4, &s, 4);
}

void
qt_pack_row(uint8_t *dst, const uint8_t *codes, int64_t n, int bits)
{
	memset(dst, 0, ((size_t) n * bits + 7) / 8);
	for (int64_t j = 0; j < n; j++)
		qt_put_code(dst, j, bits, codes[j]);
}

void
qt_unpack_row(uint8_t *dst, const uint8_t *src, int64_t n, int bits)
{
	for (int64_t j = 0; j < n; j++)
		dst[j] = (uint8_t) qt_code_at(src, j, bits);
}

/*
 * Rows [r0, r1) in the original column order, as cols floats per row.
 * Decoding order: group scale (and zero point), then the column
 * permutation, then division by the channel scale, then outliers replace.
 */
void
qt_dequantize_ref(const uint8_t *buf, const QtLayout *l, int64_t r0, int64_t r1, float *out)
{
	const QtHeader *h = (const QtHeader *) buf;
	const int64_t cols = h->cols;
	const int	bits = h->bits;
	const bool	nf4 = h->encoding == QT_ENC_NF4;
	const int	sym_zero = 1 << (bits - 1);
	const int32_t *perm = (h->flags & QT_FLAG_PERM) ? (const int32_t *) (buf + l->off_perm) : NULL;
	const float *chscale = (h->flags & QT_FLAG_CHSCALE) ? (const float *) (buf + l->off_chscale) : NULL;
	const QtOutlier *o = (const QtOutlier *) (buf + l->off_outliers);

	for (int64_t r = r0; r < r1; r++)
	{
		const uint8_t *row = buf + l->off_codes + (size_t) r * l->row_bytes;
		float	   *dst = out + (r - r0) * cols;

		if (qt_interrupt_hook)
			qt_interrupt_hook();
		for (int64_t g = 0; g < l->ngroups; g++)
		{
			int64_t		gi = r * l->ngroups + g;
			float		s = qt_get_scale(buf, l, gi);
			int			z = (h->flags & QT_FLAG_ZEROS) ? buf[l->off_zeros + gi] : sym_zero;
			int64_t		j0 = g * l->group_len;
			int64_t		n = qt_group_len(l, cols, g);

			for (int64_t j = j0; j < j0 + n; j++)
			{
				unsigned	q = qt_code_at(row, j, bits);
				float		v = nf4 ? qt_nf4_levels[q] * s : (float) ((int) q - z) * s;
				int64_t		c = perm ? perm[j] : j;

				dst[c] = chscale ? v / chscale[c] : v;
			}
		}
	}
	for (int32_t i = 0; i < h->n_outliers; i++)
		if (o[i].row >= (uint32_t) r0 && o[i].row < (uint32_t) r1)
			out[(o[i].row - r0) * cols + o[i].col] = o[i].value;
}

/* big-endian stores and loads for the header's fields */
static inline void
put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t) (v >> 8);
	p[1] = (uint8_t) v;
}

static inline void
put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t) (v >> 24);
	p[1] = (uint8_t) (v >> 16);
	p[2] = (uint8_t) (v >> 8);
	p[3] = (uint8_t) v;
}

static inline uint16_t
get16(const uint8_t *p)
{
	return (uint16_t) ((p[0] << 8) | p[1]);
}

static inline uint32_t
get32(const uint8_t *p)
{
	return ((uint32_t) p[0] << 24) | ((uint32_t) p[1] << 16) | ((uint32_t) p[2] << 8) | p[3];
}

void
qt_header_to_wire(const QtHeader *h, uint8_t *w)
{
	w[0] = h->version;
	w[1] = h->method;
	w[2] = h->encoding;
	w[3] = h->bits;
	w[4] = h->scale_type;
	w[5] = h->reserved1;
	put16(w + 6, h->flags);
	put32(w + 8, (uint32_t) h->rows);
	put32(w + 12, (uint32_t) h->cols);
	put32(w + 16, (uint32_t) h->group_size);
	put32(w + 20, (uint32_t) h->n_outliers);
	put32(w + 24, h->reserved2);
}

void
qt_header_from_wire(QtHeader *h, const uint8_t *w)
{
	h->version = w[0];
	h->method = w[1];
	h->encoding = w[2];
	h->bits = w[3];
	h->scale_type = w[4];
	h->reserved1 = w[5];
	h->flags = get16(w + 6);
	h->rows = (int32_t) get32(w + 8);
	h->cols = (int32_t) get32(w + 12);
	h->group_size = (int32_t) get32(w + 16);
	h->n_outliers = (int32_t) get32(w + 20);
	h->reserved2 = get32(w + 24);
}

/*
 * Copy n words of width bytes, reversing the bytes of each: the buffer is
 * little-endian and the wire big-endian, so this converts either way.
 */
static uint8_t *
copy_swapped(uint8_t *dst, const uint8_t *src, size_t n, size_t width)
{
	if (width == 1)
	{
		memcpy(dst, src, n);
		return dst + n;
	}
	for (size_t i = 0; i < n; i++, dst += width, src += width)
		for (size_t k = 0; k < width; k++)
			dst[k] = src[width - 1 - k];
	return dst;
}

/*
 * Copy the sections between the padded buffer and the unpadded wire body;
 * to_wire is true for buf -> wire.  Scales, channel scales, permutation
 * entries and outlier fields are words; zero points and codes are bytes.
 */
static void
convert_sections(uint8_t *buf, const QtLayout *l, uint8_t *w, bool to_wire)
{
	const QtHeader *h = (const QtHeader *) buf;
	size_t		n = (size_t) h->rows * (size_t) l->ngroups;
	struct
	{
		size_t		off,
					count,
					width;
	}			sec[6] = {
		{l->off_scales, n, l->scale_bytes},
		{l->off_zeros, (h->flags & QT_FLAG_ZEROS) ? n : 0, 1},
		{l->off_chscale, (h->flags & QT_FLAG_CHSCALE) ? (size_t) h->cols : 0, 4},
		{l->off_perm, (h->flags & QT_FLAG_PERM) ? (size_t) h->cols : 0, 4},
		{l->off_outliers, (size_t) h->n_outliers * 3, 4},
		{l->off_codes, (size_t) h->rows * l->row_bytes, 1},
	};

	for (int i = 0; i < 6; i++)
	{
		if (to_wire)
			w = copy_swapped(w, buf + sec[i].off, sec[i].count, sec[i].width);
		else
		{
			copy_swapped(buf + sec[i].off, w, sec[i].count, sec[i].width);
			w += sec[i].count * sec[i].width;
		}
	}
}

void
qt_body_to_wire(const uint8_t *buf, const QtLayout *l, uint8_t *body)
{
	convert_sections((uint8_t *) buf, l, body, true);
}

void
qt_body_from_wire(uint8_t *buf, const QtLayout *l, const uint8_t *body)
{
	convert_sections(buf, l, (uint8_t *) body, false);
}
