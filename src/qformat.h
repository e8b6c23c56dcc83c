/*
 * qformat.h: the qtensor block layout, shared by the extension, the unit
 * tests and the CUDA kernels.  Plain C: no PostgreSQL headers, so every
 * function here can be tested and fuzzed outside the server.
 *
 * A qtensor is one contiguous little-endian buffer (docs/qtensor-format.md):
 *
 *   [QtHeader: 32 bytes][scales][zeros][chscale][perm][outliers][codes]
 *
 * Each section starts on an 8-byte boundary (padding bytes are zero) and is
 * present only when its flag or count says so.  Layout of the sections:
 *   scales   [rows][ngroups]  fp16 or fp32 (scale_type)
 *   zeros    [rows][ngroups]  uint8 zero points (flag QT_FLAG_ZEROS)
 *   chscale  [cols]           fp32 per-input-channel scales (QT_FLAG_CHSCALE)
 *   perm     [cols]           int32 stored column j holds original column perm[j]
 *   outliers [n_outliers]     {uint32 row, uint32 col, fp32 value}, sorted
 *   codes    [rows][row_bytes] b-bit codes, LSB first; 8 codes fill b bytes
 */
#ifndef PGQUANT_QFORMAT_H
#define PGQUANT_QFORMAT_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#ifdef __cplusplus
extern "C"
{
#define _Static_assert static_assert
#endif

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "pgquant stores qtensors little-endian and supports little-endian hosts only"
#endif

#define QT_FORMAT_VERSION	1
#define QT_HEADER_SIZE		32
#define QT_SECTION_ALIGN	8
#define QT_MIN_BITS			2
#define QT_MAX_BITS			8
/* the largest buffer a varlena can hold (PostgreSQL's MaxAllocSize) */
#define QT_MAX_BYTES		((size_t) 0x3fffffff)
/* as many weights as a PostgreSQL array can hold (MaxArraySize) */
#define QT_MAX_ELEMS		((int64_t) 0x3fffffff / 8)
#define QT_GROUP_PER_CHANNEL (-1)

/* how the tensor was produced; informational, does not change decoding */
typedef enum QtMethod
{
	QT_METHOD_RTN = 1,
	QT_METHOD_NF4 = 2,
	QT_METHOD_HQQ = 3,
	QT_METHOD_AWQ = 4,
	QT_METHOD_GPTQ = 5,
	QT_METHOD_MAX = QT_METHOD_GPTQ
} QtMethod;

/* how a code becomes a value: this is what decoding depends on */
typedef enum QtEncoding
{
	QT_ENC_INT = 1,				/* (code - zero) * scale */
	QT_ENC_NF4 = 2,				/* nf4_levels[code] * scale */
	QT_ENC_MAX = QT_ENC_NF4
} QtEncoding;

typedef enum QtScaleType
{
	QT_SCALE_FP16 = 1,
	QT_SCALE_FP32 = 2
} QtScaleType;

#define QT_FLAG_ZEROS		0x0001	/* asymmetric: zero point per group */
#define QT_FLAG_CHSCALE		0x0002	/* per-input-channel scales (AWQ) */
#define QT_FLAG_PERM		0x0004	/* column permutation (GPTQ act-order) */
#define QT_FLAG_1D			0x0008	/* the original array was 1-D */
#define QT_FLAGS_KNOWN		0x000f

/*
 * The fixed header.  vl_len is the varlena length word; the format code
 * never interprets it (the extension sets it with SET_VARSIZE).
 */
typedef struct QtHeader
{
	uint32_t	vl_len;
	uint8_t		version;
	uint8_t		method;
	uint8_t		encoding;
	uint8_t		bits;
	uint8_t		scale_type;
	uint8_t		reserved1;		/* zero */
	uint16_t	flags;
	int32_t		rows;
	int32_t		cols;
	int32_t		group_size;		/* > 0, or QT_GROUP_PER_CHANNEL */
	int32_t		n_outliers;
	uint32_t	reserved2;		/* zero */
} QtHeader;

_Static_assert(sizeof(QtHeader) == QT_HEADER_SIZE, "QtHeader must be 32 bytes");

typedef struct QtOutlier
{
	uint32_t	row;
	uint32_t	col;
	float		value;
} QtOutlier;

_Static_assert(sizeof(QtOutlier) == 12, "QtOutlier must be 12 bytes");

/* byte offsets of each section from the start of the buffer */
typedef struct QtLayout
{
	int64_t		ngroups;		/* groups per row */
	int64_t		group_len;		/* elements per full group */
	size_t		row_bytes;		/* code bytes per row */
	size_t		scale_bytes;	/* 2 or 4 */
	size_t		off_scales;
	size_t		off_zeros;
	size_t		off_chscale;
	size_t		off_perm;
	size_t		off_outliers;
	size_t		off_codes;
	size_t		total;			/* whole buffer, header included */
	size_t		wire_body;		/* body bytes in the padded-free wire form */
} QtLayout;

/* status of every checking function; the extension maps it to a SQLSTATE */
typedef enum QtStatus
{
	QT_OK = 0,
	QT_EINVAL,					/* malformed or inconsistent value */
	QT_ELIMIT					/* a size beyond what a qtensor can hold */
} QtStatus;

#define QT_ERRMSG_LEN 256

/*
 * Long loops call this once per row when it is set; the extension points it
 * at a function that runs CHECK_FOR_INTERRUPTS().
 */
extern void (*qt_interrupt_hook) (void);

/* NormalFloat-4 levels (QLoRA, bitsandbytes' 16 quantiles of N(0,1)) */
extern const float qt_nf4_levels[16];

/* header and layout */
QtStatus	qt_check_header(const QtHeader *h, char *err);
QtStatus	qt_layout(const QtHeader *h, QtLayout *l, char *err);
QtStatus	qt_check_body(const uint8_t *buf, const QtLayout *l, uint8_t *scratch, char *err);

/* number of elements per group, with the shorter tail group */
static inline int64_t
qt_group_len(const QtLayout *l, int64_t cols, int64_t g)
{
	int64_t		start = g * l->group_len;
	int64_t		n = cols - start;

	return n < l->group_len ? n : l->group_len;
}

/*
 * fp16's normal range: a scale inside it (or zero) is stored as fp16 at a
 * relative error of at most 2^-11; one outside it makes the tensor use fp32.
 */
#define QT_FP16_MIN_NORMAL	6.103515625e-05f
#define QT_FP16_MAX			65504.0f

static inline bool
qt_fits_fp16(float s)
{
	float		a = s < 0.0f ? -s : s;

	return a == 0.0f || (a >= QT_FP16_MIN_NORMAL && a <= QT_FP16_MAX);
}

/*
 * Round to nearest, ties to even, for |x| < 2^22: adding and subtracting
 * 1.5 * 2^23 leaves no fraction bits.  Without SSE4.1 rintf() is a libm
 * call; this stays inline and vectorizes (IEEE arithmetic: the compiler may
 * not fold it without -ffast-math).  Quantizers use it on codes, which stay
 * far inside the range.
 */
static inline float
qt_round_code(float x)
{
	const float magic = 12582912.0f;

	return (x + magic) - magic;
}

/* scales */
uint16_t	qt_float_to_half(float f);
float		qt_half_to_float(uint16_t h);
float		qt_get_scale(const uint8_t *buf, const QtLayout *l, int64_t i);
void		qt_set_scale(uint8_t *buf, const QtLayout *l, int64_t i, float s);
float		qt_round_scale(float s, int scale_type);

/* a scale as it will be stored: fp16-rounded when fp16 holds it, else as is (and flag fp32) */
static inline float
qt_storable_scale(float s, bool *needs_fp32)
{
	if (qt_fits_fp16(s))
		return qt_round_scale(s, QT_SCALE_FP16);
	*needs_fp32 = true;
	return s;
}

/* code j of a zeroed packed row gets bits [j*b, j*b + b), LSB first */
static inline void
qt_put_code(uint8_t *row, int64_t j, int bits, unsigned q)
{
	size_t		bit = (size_t) j * bits;
	unsigned	v = q << (bit & 7);

	row[bit >> 3] |= (uint8_t) v;
	if ((bit & 7) + bits > 8)
		row[(bit >> 3) + 1] |= (uint8_t) (v >> 8);
}

/* code j of a packed row: bits [j*b, j*b + b), LSB first */
static inline unsigned
qt_code_at(const uint8_t *row, int64_t j, int bits)
{
	size_t		bit = (size_t) j * bits;
	unsigned	v = row[bit >> 3];

	if ((bit & 7) + bits > 8)
		v |= (unsigned) row[(bit >> 3) + 1] << 8;
	return (v >> (bit & 7)) & ((1u << bits) - 1);
}

/* packed codes, one per byte <-> a packed row */
void		qt_pack_row(uint8_t *dst, const uint8_t *codes, int64_t n, int bits);
void		qt_unpack_row(uint8_t *dst, const uint8_t *src, int64_t n, int bits);

/*
 * Decoders: rows [r0, r1) of the original-order matrix, cols floats a row.
 * The reference (qformat.c) is the oracle; qt_dequantize (qdecode.c) is
 * the fast CPU path and returns the same bits.
 */
void		qt_dequantize_ref(const uint8_t *buf, const QtLayout *l,
							  int64_t r0, int64_t r1, float *out);
void		qt_dequantize(const uint8_t *buf, const QtLayout *l,
						  int64_t r0, int64_t r1, float *out);

/*
 * Wire form (binary send/recv, and the text form's payload): the header
 * fields, then the sections, in network byte order and without padding.
 * The body functions convert the l->wire_body bytes after the header.
 */
#define QT_WIRE_HEADER_SIZE 28
void		qt_body_to_wire(const uint8_t *buf, const QtLayout *l, uint8_t *body);
/* buf: l->total zeroed bytes whose header is already filled in */
void		qt_body_from_wire(uint8_t *buf, const QtLayout *l, const uint8_t *body);
void		qt_header_to_wire(const QtHeader *h, uint8_t *wire);
void		qt_header_from_wire(QtHeader *h, const uint8_t *wire);

/* names */
const char *qt_method_name(int method);
int			qt_method_from_name(const char *name);
const char *qt_scale_type_name(int scale_type);

#ifdef __cplusplus
}
#endif

#endif							/* PGQUANT_QFORMAT_H */
