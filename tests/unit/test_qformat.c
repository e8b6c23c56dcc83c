/*
 * test_qformat.c: unit tests of the qtensor format and the calibration-free
 * quantizers, outside the server.  Prints TAP.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qformat.h"
#include "quant.h"
#include "tap.h"

static void
test_fp16(void)
{
	int			bad = 0,
				bad_mid = 0;

	/* every finite half survives half -> float -> half */
	for (uint32_t h = 0; h < 0x10000; h++)
	{
		float		f = qt_half_to_float((uint16_t) h);

		if (isnan(f))
			continue;
		if (qt_float_to_half(f) != h)
			bad++;
	}
	ok(bad == 0, "fp16: every non-NaN half round-trips through float");

	/* midpoints between neighbours round to the even one, and a hair off goes to the nearer */
	for (uint32_t h = 0; h < 0x7bff; h++)
	{
		float		a = qt_half_to_float((uint16_t) h),
					b = qt_half_to_float((uint16_t) (h + 1)),
					m = (a + b) / 2;
		uint16_t	even = (h & 1) ? (uint16_t) (h + 1) : (uint16_t) h;

		if (qt_float_to_half(m) != even ||
			qt_float_to_half(nextafterf(m, 0.0f)) != h ||
			qt_float_to_half(nextafterf(m, INFINITY)) != h + 1)
			bad_mid++;
	}
	ok(bad_mid == 0, "fp16: ties round to even, near-ties to nearest, normals and subnormals");
	ok(qt_float_to_half(65504.0f) == 0x7bff && qt_float_to_half(65519.0f) == 0x7bff &&
	   qt_float_to_half(65520.0f) == 0x7c00 && qt_float_to_half(-1e9f) == 0xfc00,
	   "fp16: 65504 is the largest finite, 65520 and beyond overflow to infinity");
	ok(qt_float_to_half(1e-9f) == 0 && qt_float_to_half(-0.0f) == 0x8000 &&
	   isnan(qt_half_to_float(qt_float_to_half(NAN))),
	   "fp16: underflow to zero, signed zero, NaN stays NaN");
}

static void
test_packing(void)
{
	int			bad = 0;

	for (int bits = QT_MIN_BITS; bits <= QT_MAX_BITS; bits++)
		for (int n = 1; n <= 70; n++)
		{
			uint8_t		codes[70],
						back[70],
						packed[70];
			size_t		nbytes = ((size_t) n * bits + 7) / 8;

			for (int i = 0; i < n; i++)
				codes[i] = (uint8_t) (rng() & ((1u << bits) - 1));
			memset(packed, 0xaa, sizeof(packed));
			qt_pack_row(packed, codes, n, bits);
			qt_unpack_row(back, packed, n, bits);
			if (memcmp(codes, back, n) != 0)
				bad++;
			/* bits past the last code are zero */
			if ((n * bits) % 8 && (packed[nbytes - 1] >> ((n * bits) % 8)) != 0)
				bad++;
			/* 8 codes always fill exactly b bytes */
			if (n % 8 == 0 && nbytes != (size_t) n / 8 * bits)
				bad++;
		}
	ok(bad == 0, "packing: every width 2..8 and length 1..70 round-trips with zero padding");

	{
		uint8_t		codes[4] = {1, 2, 3, 4},
					packed[2];

		qt_pack_row(packed, codes, 4, 4);
		ok(packed[0] == 0x21 && packed[1] == 0x43, "packing: 4-bit codes are LSB first (low nibble = even index)");
		qt_pack_row(packed, codes, 4, 3);
		/* 1 | 2<<3 | 3<<6 | 4<<9 = 0x8d1 */
		ok(packed[0] == 0xd1 && packed[1] == 0x08, "packing: 3-bit codes straddle bytes without waste");
	}
}

static QtHeader
make_header(int bits, int enc, int rows, int cols, int gs, int flags, int scale_type)
{
	QtHeader	h;

	memset(&h, 0, sizeof(h));
	h.version = QT_FORMAT_VERSION;
	h.method = enc == QT_ENC_NF4 ? QT_METHOD_NF4 : QT_METHOD_RTN;
	h.encoding = (uint8_t) enc;
	h.bits = (uint8_t) bits;
	h.scale_type = (uint8_t) scale_type;
	h.flags = (uint16_t) flags;
	h.rows = rows;
	h.cols = cols;
	h.group_size = gs;
	return h;
}

static void
test_header_and_layout(void)
{
	QtHeader	h = make_header(4, QT_ENC_INT, 64, 300, 128, QT_FLAG_ZEROS, QT_SCALE_FP16);
	QtLayout	l;
	char		err[QT_ERRMSG_LEN];

	ok(qt_check_header(&h, err) == QT_OK && qt_layout(&h, &l, err) == QT_OK, "layout: a valid header passes");
	/* 3 groups per row (128, 128, 44): 192 fp16 scales = 384 bytes, 192 zeros, 150 code bytes per row */
	ok(l.ngroups == 3 && l.off_scales == 32 && l.off_zeros == 32 + 384 && l.off_codes == 32 + 384 + 192 &&
	   l.row_bytes == 150 && l.total == 32 + 384 + 192 + 64 * 150 && l.wire_body == 384 + 192 + 64 * 150,
	   "layout: offsets, tail group and sizes as documented");
	ok(qt_group_len(&l, 300, 2) == 44, "layout: the tail group holds the remainder");

	h = make_header(3, QT_ENC_INT, 3, 5, QT_GROUP_PER_CHANNEL, QT_FLAG_CHSCALE | QT_FLAG_PERM, QT_SCALE_FP32);
	h.n_outliers = 2;
	qt_layout(&h, &l, err);
	/* scales 12 -> 16, chscale 20 -> 24, perm 20 -> 24, outliers 24, codes 3 * 2 */
	ok(l.ngroups == 1 && l.off_chscale == 48 && l.off_perm == 72 && l.off_outliers == 96 &&
	   l.off_codes == 120 && l.total == 128 && l.wire_body == 12 + 20 + 20 + 24 + 6,
	   "layout: sections start on 8-byte boundaries, the wire form has no padding");

	h = make_header(8, QT_ENC_INT, 16384, 16384, 1, QT_FLAG_ZEROS, QT_SCALE_FP32);
	ok(qt_check_header(&h, err) == QT_ELIMIT, "layout: more weights than an array can hold is a limit error");
	h = make_header(8, QT_ENC_INT, 8192, 16383, 1, QT_FLAG_ZEROS, QT_SCALE_FP32);
	ok(qt_check_header(&h, err) == QT_OK && qt_layout(&h, &l, err) == QT_OK && l.total < QT_MAX_BYTES,
	   "layout: the most weights, one fp32 scale and zero point each, fit in 1 GB");
	h.n_outliers = 8192 * 16383;
	ok(qt_check_header(&h, err) == QT_OK && qt_layout(&h, &l, err) == QT_ELIMIT,
	   "layout: sections over 1 GB are a limit error");

	/* each field out of range is rejected */
	{
		struct
		{
			const char *what;
			QtHeader	h;
		}			cases[14];
		int			n = 0,
					rejected = 0;
		QtHeader	base = make_header(4, QT_ENC_INT, 2, 3, 128, 0, QT_SCALE_FP16);

#define CASE(name, field, value) do { cases[n].what = name; cases[n].h = base; cases[n].h.field = value; n++; } while (0)
		CASE("version", version, 2);
		CASE("method", method, 0);
		CASE("method", method, 99);
		CASE("encoding", encoding, 3);
		CASE("bits", bits, 1);
		CASE("bits", bits, 9);
		CASE("scale type", scale_type, 3);
		CASE("reserved1", reserved1, 1);
		CASE("reserved2", reserved2, 1);
		CASE("flags", flags, 0x100);
		CASE("rows", rows, 0);
		CASE("cols", cols, -1);
		CASE("group", group_size, 0);
		CASE("outliers", n_outliers, 7);
#undef CASE
		for (int i = 0; i < n; i++)
			if (qt_check_header(&cases[i].h, err) == QT_EINVAL)
				rejected++;
			else
				printf("# not rejected: %s\n", cases[i].what);
		ok(rejected == n, "header: every out-of-range field is rejected");
	}
	{
		QtHeader	hn = make_header(4, QT_ENC_NF4, 2, 3, 64, QT_FLAG_ZEROS, QT_SCALE_FP16);
		QtHeader	h1 = make_header(4, QT_ENC_INT, 2, 3, 64, QT_FLAG_1D, QT_SCALE_FP16);
		QtHeader	h5 = make_header(5, QT_ENC_NF4, 1, 3, 64, 0, QT_SCALE_FP16);

		ok(qt_check_header(&hn, err) == QT_EINVAL && qt_check_header(&h1, err) == QT_EINVAL &&
		   qt_check_header(&h5, err) == QT_EINVAL,
		   "header: nf4 with zero points, 1-D with two rows, 5-bit nf4 are rejected");
	}
}

/* a random valid tensor with every optional section */
static uint8_t *
make_tensor(QtHeader h, QtLayout *l)
{
	char		err[QT_ERRMSG_LEN];
	uint8_t    *buf,
			   *codes;

	if (qt_check_header(&h, err) != QT_OK || qt_layout(&h, l, err) != QT_OK)
	{
		printf("# make_tensor: %s\n", err);
		exit(2);
	}
	buf = calloc(1, l->total);
	codes = malloc(h.cols);
	memcpy(buf, &h, sizeof(h));
	for (int64_t i = 0; i < h.rows * l->ngroups; i++)
	{
		qt_set_scale(buf, l, i, rng_normal_alt());
		if (h.flags & QT_FLAG_ZEROS)
			buf[l->off_zeros + i] = (uint8_t) (rng() % (1u << h.bits));
	}
	if (h.flags & QT_FLAG_CHSCALE)
		for (int j = 0; j < h.cols; j++)
			((float *) (buf + l->off_chscale))[j] = 0.5f + (float) (rng() % 100) / 50.0f;
	if (h.flags & QT_FLAG_PERM)
	{
		int32_t    *perm = (int32_t *) (buf + l->off_perm);

		for (int j = 0; j < h.cols; j++)
			perm[j] = j;
		for (int j = h.cols - 1; j > 0; j--)
		{
			int			k = (int) (rng() % (uint64_t) (j + 1));
			int32_t		t = perm[j];

			perm[j] = perm[k];
			perm[k] = t;
		}
	}
	for (int i = 0; i < h.n_outliers; i++)
	{
		QtOutlier  *o = (QtOutlier *) (buf + l->off_outliers) + i;

		o->row = (uint32_t) (i * h.rows / h.n_outliers);
		o->col = (uint32_t) (i % h.cols);
		o->value = 100.0f + i;
	}
	for (int r = 0; r < h.rows; r++)
	{
		for (int j = 0; j < h.cols; j++)
			codes[j] = (uint8_t) (rng() % (1u << h.bits));
		qt_pack_row(buf + l->off_codes + (size_t) r * l->row_bytes, codes, h.cols, h.bits);
	}
	free(codes);
	return buf;
}

static void
test_wire_and_body(void)
{
	QtHeader	h = make_header(5, QT_ENC_INT, 7, 13, 4, QT_FLAG_ZEROS | QT_FLAG_CHSCALE | QT_FLAG_PERM,
								QT_SCALE_FP16);
	QtLayout	l;
	uint8_t    *buf,
			   *wire,
			   *back;
	QtHeader	h2;
	uint8_t		scratch[64];
	char		err[QT_ERRMSG_LEN];

	h.n_outliers = 3;
	buf = make_tensor(h, &l);
	ok(qt_check_body(buf, &l, scratch, err) == QT_OK, "body: a well-formed tensor with every section passes");

	wire = malloc(QT_WIRE_HEADER_SIZE + l.wire_body);
	qt_header_to_wire((QtHeader *) buf, wire);
	qt_body_to_wire(buf, &l, wire + QT_WIRE_HEADER_SIZE);
	memset(&h2, 0, sizeof(h2));
	qt_header_from_wire(&h2, wire);
	h2.vl_len = ((QtHeader *) buf)->vl_len;
	back = calloc(1, l.total);
	memcpy(back, &h2, sizeof(h2));
	qt_body_from_wire(back, &l, wire + QT_WIRE_HEADER_SIZE);
	ok(memcmp(buf, back, l.total) == 0, "wire: header and body round-trip byte for byte");
	ok(wire[8] == 0 && wire[11] == 7 && wire[15] == 13, "wire: integers are big-endian");

	/* corruptions the body check must catch */
	{
		int32_t    *perm = (int32_t *) (back + l.off_perm);
		float	   *cs = (float *) (back + l.off_chscale);
		QtOutlier  *o = (QtOutlier *) (back + l.off_outliers);
		int32_t		p0 = perm[0];
		float		c0 = cs[0];
		QtOutlier	o1 = o[1];
		int			caught = 0;

		perm[0] = perm[1];
		caught += qt_check_body(back, &l, scratch, err) == QT_EINVAL;
		perm[0] = 13;
		caught += qt_check_body(back, &l, scratch, err) == QT_EINVAL;
		perm[0] = p0;
		cs[0] = 0.0f;
		caught += qt_check_body(back, &l, scratch, err) == QT_EINVAL;
		cs[0] = NAN;
		caught += qt_check_body(back, &l, scratch, err) == QT_EINVAL;
		cs[0] = c0;
		o[1] = o[0];
		caught += qt_check_body(back, &l, scratch, err) == QT_EINVAL;
		o[1] = o1;
		o[1].col = 13;
		caught += qt_check_body(back, &l, scratch, err) == QT_EINVAL;
		o[1] = o1;
		back[l.off_zeros] = 32;
		caught += qt_check_body(back, &l, scratch, err) == QT_EINVAL;
		back[l.off_zeros] = 0;
		qt_set_scale(back, &l, 3, INFINITY);
		caught += qt_check_body(back, &l, scratch, err) == QT_EINVAL;
		qt_set_scale(back, &l, 3, 1.0f);
		back[l.off_codes + l.row_bytes - 1] |= 0x80;	/* 13 * 5 = 65 bits: 7 padding bits */
		caught += qt_check_body(back, &l, scratch, err) == QT_EINVAL;
		back[l.off_codes + l.row_bytes - 1] &= 0x7f;
		ok(caught == 9 && qt_check_body(back, &l, scratch, err) == QT_OK,
		   "body: duplicate and out-of-range permutation, bad channel scales, unsorted and "
		   "out-of-range outliers, zero point, infinite scale and padding bits are all caught");
	}
	free(buf);
	free(wire);
	free(back);
}

/* decoding order: group scale, permutation, channel scale, then outliers */
static void
test_dequantize_ref(void)
{
	QtHeader	h = make_header(2, QT_ENC_INT, 2, 3, 2, QT_FLAG_ZEROS | QT_FLAG_CHSCALE | QT_FLAG_PERM,
								QT_SCALE_FP32);
	QtLayout	l;
	char		err[QT_ERRMSG_LEN];
	uint8_t    *buf;
	float		out[6];
	uint8_t		row0[3] = {0, 1, 3},
				row1[3] = {2, 2, 1};
	float		scales[4] = {0.5f, 2.0f, 1.0f, -1.0f};
	uint8_t		zeros[4] = {1, 0, 2, 3};
	float		chscale[3] = {1.0f, 2.0f, 4.0f};
	int32_t		perm[3] = {2, 0, 1};
	QtOutlier	outlier = {1, 1, 42.0f};

	h.n_outliers = 1;
	qt_check_header(&h, err);
	qt_layout(&h, &l, err);
	buf = calloc(1, l.total);
	memcpy(buf, &h, sizeof(h));
	memcpy(buf + l.off_scales, scales, sizeof(scales));
	memcpy(buf + l.off_zeros, zeros, sizeof(zeros));
	memcpy(buf + l.off_chscale, chscale, sizeof(chscale));
	memcpy(buf + l.off_perm, perm, sizeof(perm));
	memcpy(buf + l.off_outliers, &outlier, sizeof(outlier));
	qt_pack_row(buf + l.off_codes, row0, 3, 2);
	qt_pack_row(buf + l.off_codes + l.row_bytes, row1, 3, 2);
	qt_dequantize_ref(buf, &l, 0, 2, out);
	/*
	 * row 0 stored: (0-1)*0.5 = -0.5, (1-1)*0.5 = 0, (3-0)*2 = 6 -> original
	 * columns 2, 0, 1 -> [0, 6, -0.5] / [1, 2, 4] = [0, 3, -0.125]; row 1:
	 * (2-2)*1 = 0, 0, (1-3)*-1 = 2 -> [0, 2, 0] / chscale = [0, 1, 0], then
	 * the outlier sets [1][1] = 42
	 */
	ok(out[0] == 0.0f && out[1] == 3.0f && out[2] == -0.125f &&
	   out[3] == 0.0f && out[4] == 42.0f && out[5] == 0.0f,
	   "dequantize: zero points, scales, permutation, channel scales and outliers in that order");
	qt_dequantize_ref(buf, &l, 1, 2, out);
	ok(out[0] == 0.0f && out[1] == 42.0f && out[2] == 0.0f, "dequantize: a row range decodes just those rows");
	free(buf);
}

/* the fast decoder returns the reference's bits for every format */
static void
test_fast_decoder(void)
{
	int			bad = 0,
				cases = 0;
	int			group_sizes[] = {8, 32, 48, 50, 64, 128, QT_GROUP_PER_CHANNEL};
	int			shapes[][2] = {{1, 1}, {3, 7}, {5, 130}, {4, 257}, {2, 1000}};

	for (int bits = QT_MIN_BITS; bits <= QT_MAX_BITS; bits++)
		for (int nf4 = 0; nf4 <= (bits == 4); nf4++)
			for (size_t g = 0; g < sizeof(group_sizes) / sizeof(int); g++)
				for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++)
				{
					int			flags = (nf4 ? 0 : (rng() & 1) ? QT_FLAG_ZEROS : 0);
					QtHeader	h = make_header(bits, nf4 ? QT_ENC_NF4 : QT_ENC_INT, shapes[s][0], shapes[s][1],
												group_sizes[g], flags,
												(rng() & 1) ? QT_SCALE_FP16 : QT_SCALE_FP32);
					QtLayout	l;
					uint8_t    *buf;
					size_t		n = (size_t) h.rows * h.cols;
					float	   *a = malloc(n * sizeof(float)),
							   *b = malloc(n * sizeof(float));

					h.n_outliers = (int) (rng() % 3);
					if ((size_t) h.n_outliers > n)
						h.n_outliers = 0;
					buf = make_tensor(h, &l);
					qt_dequantize_ref(buf, &l, 0, h.rows, a);
					qt_dequantize(buf, &l, 0, h.rows, b);
					bad += memcmp(a, b, n * sizeof(float)) != 0;
					if (h.rows > 2)
					{
						qt_dequantize_ref(buf, &l, 1, h.rows - 1, a);
						qt_dequantize(buf, &l, 1, h.rows - 1, b);
						bad += memcmp(a, b, (n - 2 * h.cols) * sizeof(float)) != 0;
					}
					cases++;
					free(buf);
					free(a);
					free(b);
				}
	printf("# %d formats and shapes compared\n", cases);
	ok(bad == 0, "fast decoder: bit-identical to the reference for bits 2..8, nf4, odd groups, tails, outliers");

	{
		QtHeader	h = make_header(3, QT_ENC_INT, 4, 40, 16, QT_FLAG_ZEROS | QT_FLAG_PERM | QT_FLAG_CHSCALE,
									QT_SCALE_FP16);
		QtLayout	l;
		uint8_t    *buf = make_tensor(h, &l);
		float		a[160],
					b[160];

		qt_dequantize_ref(buf, &l, 0, 4, a);
		qt_dequantize(buf, &l, 0, 4, b);
		ok(memcmp(a, b, sizeof(a)) == 0, "fast decoder: permuted, channel-scaled tensors match the reference");
		free(buf);
	}
}

/* quantize w with spec and check each element against its group's step */
static void
test_quantizers(void)
{
	enum
	{
		ROWS = 16, COLS = 200
	};
	static float w[ROWS * COLS],
				out[ROWS * COLS];
	char		err[QT_ERRMSG_LEN];
	int			bad_bound = 0,
				bad_nf4 = 0;

	for (int i = 0; i < ROWS * COLS; i++)
		w[i] = rng_normal_alt() * (i % 7 == 0 ? 4.0f : 1.0f);

	for (int bits = 2; bits <= 8; bits++)
		for (int sym = 0; sym <= 1; sym++)
		{
			QtSpec		spec = {QT_METHOD_RTN, bits, 48, sym};
			QtHeader	h;
			QtLayout	l;
			uint8_t    *buf;

			if (qt_plan(&spec, w, ROWS, COLS, false, &h, &l, err) != QT_OK)
			{
				ok(0, "%s", err);
				continue;
			}
			buf = calloc(1, l.total);
			memcpy(buf, &h, sizeof(h));
			qt_encode(w, buf, &l);
			qt_dequantize_ref(buf, &l, 0, ROWS, out);
			for (int r = 0; r < ROWS; r++)
				for (int j = 0; j < COLS; j++)
				{
					float		s = fabsf(qt_get_scale(buf, &l, r * l.ngroups + j / 48));
					float		e = fabsf(w[r * COLS + j] - out[r * COLS + j]);

					/*
					 * Half a step (asymmetric) or one step (symmetric: the side
					 * opposite the extreme reaches only 2^(b-1) - 1 steps), plus
					 * what fp16 rounding of the scale moves the grid.
					 */
					if (e > s * ((sym ? 1.0f : 0.5f) + (1 << bits) * 0.0005f) + 1e-7f)
						bad_bound++;
				}
			free(buf);
		}
	ok(bad_bound == 0, "rtn: every weight is within half a step (asym) or one step (sym) of its group, bits 2..8");

	{
		QtSpec		spec = {QT_METHOD_NF4, 4, 64, false};
		QtHeader	h;
		QtLayout	l;
		uint8_t    *buf;

		qt_plan(&spec, w, ROWS, COLS, false, &h, &l, err);
		buf = calloc(1, l.total);
		memcpy(buf, &h, sizeof(h));
		qt_encode(w, buf, &l);
		for (int r = 0; r < ROWS; r++)
			for (int j = 0; j < COLS; j++)
			{
				float		s = qt_get_scale(buf, &l, r * l.ngroups + j / 64);
				float		x = s == 0.0f ? 0.0f : w[r * COLS + j] * (1.0f / s);
				unsigned	q = qt_code_at(buf + l.off_codes + (size_t) r * l.row_bytes, j, 4);
				int			best = 0;

				for (int k = 1; k < 16; k++)
					if (fabsf(x - qt_nf4_levels[k]) < fabsf(x - qt_nf4_levels[best]))
						best = k;
				if (fabsf(x - qt_nf4_levels[q]) > fabsf(x - qt_nf4_levels[best]))
					bad_nf4++;
			}
		ok(bad_nf4 == 0, "nf4: every code is the nearest level (brute-force oracle)");
		free(buf);
	}

	{
		QtSpec		spec = {QT_METHOD_RTN, 4, 128, false};
		QtHeader	h;
		QtLayout	l;
		float		tiny[4] = {1e-6f, -2e-6f, 3e-6f, 0.0f},
					big[3] = {7e5f, -1e6f, 0.0f},
					normal[2] = {1.0f, -2.0f};

		ok(qt_plan(&spec, tiny, 1, 4, true, &h, &l, err) == QT_OK && h.scale_type == QT_SCALE_FP32 &&
		   qt_plan(&spec, big, 1, 3, true, &h, &l, err) == QT_OK && h.scale_type == QT_SCALE_FP32 &&
		   qt_plan(&spec, normal, 1, 2, true, &h, &l, err) == QT_OK && h.scale_type == QT_SCALE_FP16,
		   "plan: fp32 scales exactly when some group scale leaves fp16's normal range");
	}
}

int
main(void)
{
	rng_seed(0x9e3779b97f4a7c15ULL);
	test_fp16();
	test_packing();
	test_header_and_layout();
	test_wire_and_body();
	test_dequantize_ref();
	test_fast_decoder();
	test_quantizers();
	return done_testing();
}
