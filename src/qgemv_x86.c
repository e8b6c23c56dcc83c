/*
 * qgemv_x86.c: AVX2 and AVX-512 kernels of the fused quantized GEMV.
 *
 * The file is compiled for the baseline x86-64 target like the rest of the
 * extension; each kernel carries a target attribute, so the compiler may use
 * AVX2 or AVX-512 inside it only.  qgemv.c calls them only after
 * qk_cpu_has_avx2() / qk_cpu_has_avx512() said the CPU (and the OS) support
 * them, so the library still loads and runs on any x86-64.
 *
 * Every kernel computes, per row, sum_g s_g * (sum_{j in g} q_j x_j -
 * z_g * xsum_g) for int codes, or sum_g s_g * sum_j nf4[q_j] x_j, with the
 * codes widened to 32-bit lanes and converted to float; four independent
 * vector accumulators per group hide the FMA latency, and a group's partial
 * vector is scaled into the row's accumulator with one more FMA.  A group
 * always starts on a whole byte (qk_fused_ok), and the codes of a group
 * that do not fill a whole vector are handled 8 at a time, then one by one.
 *
 * Code layouts (qformat.h): code j of a row occupies bits [j*b, j*b + b),
 * LSB first, so 8 codes are exactly b bytes.
 *   AVX2, any width: 8 codes -> two 32-bit words (codes 0-3 and 4-7, each
 *     4*b <= 32 bits) broadcast to the two 128-bit halves, shifted per lane
 *     by (0, b, 2b, 3b) and masked.
 *   AVX2, 4-bit: 16 bytes -> low and high nibbles interleaved back into
 *     order (unpacklo/hi), then widened 8 at a time; 8-bit: widened directly.
 *   AVX-512 (VBMI), any width: 64 codes = 8*b bytes; a byte permute puts the
 *     b bytes of codes 8k..8k+7 into 64-bit lane k, and a multishift picks
 *     byte i of each lane from bit i*b (vpmultishiftqb), giving 64 codes as
 *     bytes in order; masked loads never read past the row.
 *   NF4: levels looked up in registers (two 8-entry permutes and a blend
 *     for AVX2, one 16-entry permute for AVX-512).
 */
#include "qgemv.h"

#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)

#include <immintrin.h>

#define AVX2_FN __attribute__((target("avx2,fma,f16c")))
#define AVX512_FN __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vbmi,avx2,fma,f16c")))

bool
qk_cpu_has_avx2(void)
{
	__builtin_cpu_init();
	return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

bool
qk_cpu_has_avx512(void)
{
	__builtin_cpu_init();
	return qk_cpu_has_avx2() &&
		__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
		__builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
		__builtin_cpu_supports("avx512vbmi");
}

/* the scale of group gi, as qt_get_scale() reads it (F16C converts every half exactly) */
AVX2_FN static inline float
scale_at(const uint8_t *buf, const QtLayout *l, int64_t gi)
{
	if (l->scale_bytes == 2)
	{
		uint16_t	h;

		memcpy(&h, buf + l->off_scales + (size_t) gi * 2, 2);
		return _cvtsh_ss(h);
	}
	else
	{
		float		f;

		memcpy(&f, buf + l->off_scales + (size_t) gi * 4, 4);
		return f;
	}
}

AVX2_FN static inline float
hsum256(__m256 v)
{
	__m128		lo = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
	__m128		sh = _mm_movehdup_ps(lo);

	lo = _mm_add_ps(lo, sh);
	sh = _mm_movehl_ps(sh, lo);
	return _mm_cvtss_f32(_mm_add_ss(lo, sh));
}

/* 8 codes of B bits from B bytes at p, as int32 lanes (any B in 2..8) */
#define AVX2_CODES8(p, B, shifts, mask) \
	({ \
		uint64_t	v_ = qk_load_bytes((p), (B)); \
		_mm256_and_si256(_mm256_srlv_epi32(_mm256_set_m128i(_mm_set1_epi32((int) (v_ >> (4 * (B)))), \
															_mm_set1_epi32((int) v_)), (shifts)), (mask)); \
	})

/*
 * The body of every AVX2 int kernel: the row and group loops, with BLOCK32
 * handling 32 codes (advancing p by 4 * B bytes) into p0..p3.
 */
#define AVX2_INT_ROWS(B, BLOCK32) \
{ \
	const QtHeader *h = (const QtHeader *) buf; \
	const bool	zeros = (h->flags & QT_FLAG_ZEROS) != 0; \
	const float sym_zero = (float) (1 << ((B) - 1)); \
	const __m256i shifts = _mm256_setr_epi32(0, B, 2 * B, 3 * B, 0, B, 2 * B, 3 * B); \
	const __m256i mask = _mm256_set1_epi32((1 << (B)) - 1); \
\
	(void) shifts; \
	(void) mask; \
	for (int64_t r = r0; r < r1; r++) \
	{ \
		const uint8_t *row = buf + l->off_codes + (size_t) r * l->row_bytes; \
		__m256		acc = _mm256_setzero_ps(); \
		float		rest = 0.0f; \
\
		if (qt_interrupt_hook) \
			qt_interrupt_hook(); \
		for (int64_t g = 0; g < l->ngroups; g++) \
		{ \
			int64_t		gi = r * l->ngroups + g; \
			int64_t		j0 = g * l->group_len; \
			int64_t		n = qt_group_len(l, h->cols, g); \
			float		s = scale_at(buf, l, gi); \
			float		z = zeros ? (float) buf[l->off_zeros + gi] : sym_zero; \
			const uint8_t *p = row + (j0 / 8) * (B); \
			const float *xg = x + j0; \
			__m256		p0 = _mm256_setzero_ps(), \
						p1 = _mm256_setzero_ps(), \
						p2 = _mm256_setzero_ps(), \
						p3 = _mm256_setzero_ps(); \
			float		tail = 0.0f; \
			int64_t		i = 0; \
\
			for (; i + 32 <= n; i += 32, p += 4 * (B)) \
				BLOCK32; \
			for (; i + 8 <= n; i += 8, p += (B)) \
				p0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(AVX2_CODES8(p, B, shifts, mask)), \
									 _mm256_loadu_ps(xg + i), p0); \
			for (; i < n; i++) \
				tail += (float) qt_code_at(row, j0 + i, B) * xg[i]; \
			p0 = _mm256_add_ps(_mm256_add_ps(p0, p1), _mm256_add_ps(p2, p3)); \
			acc = _mm256_fmadd_ps(_mm256_set1_ps(s), p0, acc); \
			rest += s * (tail - z * xsum[g]); \
		} \
		y[r] = hsum256(acc) + rest; \
	} \
}

/* 32 codes of any width: four 8-code chunks */
#define AVX2_BLOCK32_ANY(B) \
	{ \
		p0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(AVX2_CODES8(p, B, shifts, mask)), _mm256_loadu_ps(xg + i), p0); \
		p1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(AVX2_CODES8(p + (B), B, shifts, mask)), _mm256_loadu_ps(xg + i + 8), p1); \
		p2 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(AVX2_CODES8(p + 2 * (B), B, shifts, mask)), _mm256_loadu_ps(xg + i + 16), p2); \
		p3 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(AVX2_CODES8(p + 3 * (B), B, shifts, mask)), _mm256_loadu_ps(xg + i + 24), p3); \
	}

/* 32 4-bit codes from 16 bytes: nibbles split, interleaved back into order, widened */
#define AVX2_BLOCK32_4 \
	{ \
		const __m128i m4 = _mm_set1_epi8(0x0f); \
		__m128i		b = _mm_loadu_si128((const __m128i *) p); \
		__m128i		lo = _mm_and_si128(b, m4); \
		__m128i		hi = _mm_and_si128(_mm_srli_epi16(b, 4), m4); \
		__m128i		c0 = _mm_unpacklo_epi8(lo, hi); \
		__m128i		c1 = _mm_unpackhi_epi8(lo, hi); \
\
		p0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(c0)), _mm256_loadu_ps(xg + i), p0); \
		p1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(c0, 8))), \
							 _mm256_loadu_ps(xg + i + 8), p1); \
		p2 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(c1)), _mm256_loadu_ps(xg + i + 16), p2); \
		p3 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(c1, 8))), \
							 _mm256_loadu_ps(xg + i + 24), p3); \
	}

/* 32 8-bit codes: widened 8 at a time */
#define AVX2_BLOCK32_8 \
	{ \
		p0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *) p))), \
							 _mm256_loadu_ps(xg + i), p0); \
		p1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *) (p + 8)))), \
							 _mm256_loadu_ps(xg + i + 8), p1); \
		p2 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *) (p + 16)))), \
							 _mm256_loadu_ps(xg + i + 16), p2); \
		p3 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *) (p + 24)))), \
							 _mm256_loadu_ps(xg + i + 24), p3); \
	}

#define DEFINE_AVX2_INT(B, BLOCK) \
AVX2_FN static void \
avx2_rows_int##B(const uint8_t *buf, const QtLayout *l, const float *x, \
				 const float *xsum, int64_t r0, int64_t r1, float *y) \
AVX2_INT_ROWS(B, BLOCK)

DEFINE_AVX2_INT(2, AVX2_BLOCK32_ANY(2))
DEFINE_AVX2_INT(3, AVX2_BLOCK32_ANY(3))
DEFINE_AVX2_INT(4, AVX2_BLOCK32_4)
DEFINE_AVX2_INT(5, AVX2_BLOCK32_ANY(5))
DEFINE_AVX2_INT(6, AVX2_BLOCK32_ANY(6))
DEFINE_AVX2_INT(7, AVX2_BLOCK32_ANY(7))
DEFINE_AVX2_INT(8, AVX2_BLOCK32_8)

/* 8 NF4 levels for 8 codes: two 8-entry lookups, chosen by bit 3 of the code */
AVX2_FN static inline __m256
avx2_nf4_8(__m256i codes, __m256 lut_lo, __m256 lut_hi)
{
	__m256		lo = _mm256_permutevar8x32_ps(lut_lo, codes);
	__m256		hi = _mm256_permutevar8x32_ps(lut_hi, codes);

	return _mm256_blendv_ps(lo, hi, _mm256_castsi256_ps(_mm256_slli_epi32(codes, 28)));
}

AVX2_FN static void
avx2_rows_nf4(const uint8_t *buf, const QtLayout *l, const float *x,
			  const float *xsum, int64_t r0, int64_t r1, float *y)
{
	const QtHeader *h = (const QtHeader *) buf;
	const __m256 lut_lo = _mm256_loadu_ps(qt_nf4_levels);
	const __m256 lut_hi = _mm256_loadu_ps(qt_nf4_levels + 8);
	const __m256i shifts = _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28);
	const __m256i mask = _mm256_set1_epi32(15);

	(void) xsum;
	for (int64_t r = r0; r < r1; r++)
	{
		const uint8_t *row = buf + l->off_codes + (size_t) r * l->row_bytes;
		__m256		acc = _mm256_setzero_ps();
		float		rest = 0.0f;

		if (qt_interrupt_hook)
			qt_interrupt_hook();
		for (int64_t g = 0; g < l->ngroups; g++)
		{
			int64_t		j0 = g * l->group_len;
			int64_t		n = qt_group_len(l, h->cols, g);
			float		s = scale_at(buf, l, r * l->ngroups + g);
			const uint8_t *p = row + j0 / 2;
			const float *xg = x + j0;
			__m256		p0 = _mm256_setzero_ps(),
						p1 = _mm256_setzero_ps();
			float		tail = 0.0f;
			int64_t		i = 0;

			for (; i + 16 <= n; i += 16, p += 8)
			{
				uint32_t	v0,
							v1;

				memcpy(&v0, p, 4);
				memcpy(&v1, p + 4, 4);
				p0 = _mm256_fmadd_ps(avx2_nf4_8(_mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32((int) v0), shifts), mask),
												lut_lo, lut_hi), _mm256_loadu_ps(xg + i), p0);
				p1 = _mm256_fmadd_ps(avx2_nf4_8(_mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32((int) v1), shifts), mask),
												lut_lo, lut_hi), _mm256_loadu_ps(xg + i + 8), p1);
			}
			for (; i + 8 <= n; i += 8, p += 4)
			{
				uint32_t	v0;

				memcpy(&v0, p, 4);
				p0 = _mm256_fmadd_ps(avx2_nf4_8(_mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32((int) v0), shifts), mask),
												lut_lo, lut_hi), _mm256_loadu_ps(xg + i), p0);
			}
			for (; i < n; i++)
				tail += qt_nf4_levels[qt_code_at(row, j0 + i, 4)] * xg[i];
			acc = _mm256_fmadd_ps(_mm256_set1_ps(s), _mm256_add_ps(p0, p1), acc);
			rest += s * tail;
		}
		y[r] = hsum256(acc) + rest;
	}
}

QkRowsFn
qk_rows_avx2(const QtHeader *h)
{
	static const QkRowsFn ints[QT_MAX_BITS + 1] = {
		NULL, NULL, avx2_rows_int2, avx2_rows_int3, avx2_rows_int4,
		avx2_rows_int5, avx2_rows_int6, avx2_rows_int7, avx2_rows_int8
	};

	if (h->encoding == QT_ENC_NF4)
		return avx2_rows_nf4;
	return ints[h->bits];
}

/* rows of an int tensor decoded 8 codes at a time: (q - z) * s, as the reference rounds it */
#define DEFINE_AVX2_DECODE_INT(B) \
AVX2_FN static void \
avx2_decode_int##B(const uint8_t *buf, const QtLayout *l, int64_t r0, int64_t r1, float *out) \
{ \
	const QtHeader *h = (const QtHeader *) buf; \
	const bool	zeros = (h->flags & QT_FLAG_ZEROS) != 0; \
	const int	sym_zero = 1 << ((B) - 1); \
	const __m256i shifts = _mm256_setr_epi32(0, B, 2 * B, 3 * B, 0, B, 2 * B, 3 * B); \
	const __m256i mask = _mm256_set1_epi32((1 << (B)) - 1); \
\
	for (int64_t r = r0; r < r1; r++) \
	{ \
		const uint8_t *row = buf + l->off_codes + (size_t) r * l->row_bytes; \
		float	   *dst = out + (r - r0) * h->cols; \
\
		if (qt_interrupt_hook) \
			qt_interrupt_hook(); \
		for (int64_t g = 0; g < l->ngroups; g++) \
		{ \
			int64_t		gi = r * l->ngroups + g; \
			int64_t		j0 = g * l->group_len; \
			int64_t		n = qt_group_len(l, h->cols, g); \
			float		s = scale_at(buf, l, gi); \
			int			z = zeros ? buf[l->off_zeros + gi] : sym_zero; \
			const __m256 sv = _mm256_set1_ps(s); \
			const __m256i zv = _mm256_set1_epi32(z); \
			const uint8_t *p = row + (j0 / 8) * (B); \
			int64_t		i = 0; \
\
			for (; i + 8 <= n; i += 8, p += (B)) \
				_mm256_storeu_ps(dst + j0 + i, _mm256_mul_ps(_mm256_cvtepi32_ps( \
					_mm256_sub_epi32(AVX2_CODES8(p, B, shifts, mask), zv)), sv)); \
			for (; i < n; i++) \
				dst[j0 + i] = (float) ((int) qt_code_at(row, j0 + i, B) - z) * s; \
		} \
	} \
}

DEFINE_AVX2_DECODE_INT(2)
DEFINE_AVX2_DECODE_INT(3)
DEFINE_AVX2_DECODE_INT(4)
DEFINE_AVX2_DECODE_INT(5)
DEFINE_AVX2_DECODE_INT(6)
DEFINE_AVX2_DECODE_INT(7)
DEFINE_AVX2_DECODE_INT(8)

AVX2_FN static void
avx2_decode_nf4(const uint8_t *buf, const QtLayout *l, int64_t r0, int64_t r1, float *out)
{
	const QtHeader *h = (const QtHeader *) buf;
	const __m256 lut_lo = _mm256_loadu_ps(qt_nf4_levels);
	const __m256 lut_hi = _mm256_loadu_ps(qt_nf4_levels + 8);
	const __m256i shifts = _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28);
	const __m256i mask = _mm256_set1_epi32(15);

	for (int64_t r = r0; r < r1; r++)
	{
		const uint8_t *row = buf + l->off_codes + (size_t) r * l->row_bytes;
		float	   *dst = out + (r - r0) * h->cols;

		if (qt_interrupt_hook)
			qt_interrupt_hook();
		for (int64_t g = 0; g < l->ngroups; g++)
		{
			int64_t		j0 = g * l->group_len;
			int64_t		n = qt_group_len(l, h->cols, g);
			float		s = scale_at(buf, l, r * l->ngroups + g);
			const __m256 sv = _mm256_set1_ps(s);
			const uint8_t *p = row + j0 / 2;
			int64_t		i = 0;

			for (; i + 8 <= n; i += 8, p += 4)
			{
				uint32_t	v;

				memcpy(&v, p, 4);
				_mm256_storeu_ps(dst + j0 + i, _mm256_mul_ps(avx2_nf4_8(_mm256_and_si256(
					_mm256_srlv_epi32(_mm256_set1_epi32((int) v), shifts), mask), lut_lo, lut_hi), sv));
			}
			for (; i < n; i++)
				dst[j0 + i] = qt_nf4_levels[qt_code_at(row, j0 + i, 4)] * s;
		}
	}
}

QkDecodeFn
qk_decode_avx2(const QtHeader *h)
{
	static const QkDecodeFn ints[QT_MAX_BITS + 1] = {
		NULL, NULL, avx2_decode_int2, avx2_decode_int3, avx2_decode_int4,
		avx2_decode_int5, avx2_decode_int6, avx2_decode_int7, avx2_decode_int8
	};

	if (h->encoding == QT_ENC_NF4)
		return avx2_decode_nf4;
	return ints[h->bits];
}

/* ---- AVX-512 ------------------------------------------------------------ */

/*
 * 64 codes of B bits (8 * B bytes at p) as 64 bytes in order: lane k of the
 * permuted vector holds bytes k*B .. k*B+7, and the multishift takes byte i
 * of each lane from bit i*B.
 */
#define AVX512_CODES64(p, B, perm, ctrl, mask8) \
	_mm512_and_si512(_mm512_multishift_epi64_epi8((ctrl), \
		_mm512_permutexvar_epi8((perm), _mm512_maskz_loadu_epi8(AVX512_LOADMASK(B), (p)))), (mask8))

#define AVX512_LOADMASK(B) ((B) == 8 ? ~(__mmask64) 0 : (((__mmask64) 1 << (8 * (B))) - 1))

/* byte i of 64-bit lane k: k * B + i (the permute's index) */
AVX512_FN static inline __m512i
avx512_lane_index(int B)
{
	uint8_t		idx[64];

	for (int k = 0; k < 8; k++)
		for (int i = 0; i < 8; i++)
			idx[k * 8 + i] = (uint8_t) ((k * B + i) & 63);
	return _mm512_loadu_si512(idx);
}

/* byte i of every lane: shift i * B (the multishift's control) */
AVX512_FN static inline __m512i
avx512_shift_ctrl(int B)
{
	uint8_t		c[64];

	for (int k = 0; k < 8; k++)
		for (int i = 0; i < 8; i++)
			c[k * 8 + i] = (uint8_t) (i * B);
	return _mm512_loadu_si512(c);
}

/* the float values of 16 code bytes (a 128-bit quarter of a vector of codes) */
#define AVX512_F16(codes, q) \
	_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm512_extracti32x4_epi32((codes), (q))))

#define DEFINE_AVX512_INT(B) \
AVX512_FN static void \
avx512_rows_int##B(const uint8_t *buf, const QtLayout *l, const float *x, \
				   const float *xsum, int64_t r0, int64_t r1, float *y) \
{ \
	const QtHeader *h = (const QtHeader *) buf; \
	const bool	zeros = (h->flags & QT_FLAG_ZEROS) != 0; \
	const float sym_zero = (float) (1 << ((B) - 1)); \
	const __m512i perm = avx512_lane_index(B); \
	const __m512i ctrl = avx512_shift_ctrl(B); \
	const __m512i mask8 = _mm512_set1_epi8((char) ((1 << (B)) - 1)); \
	const __m256i shifts = _mm256_setr_epi32(0, B, 2 * B, 3 * B, 0, B, 2 * B, 3 * B); \
	const __m256i mask = _mm256_set1_epi32((1 << (B)) - 1); \
\
	for (int64_t r = r0; r < r1; r++) \
	{ \
		const uint8_t *row = buf + l->off_codes + (size_t) r * l->row_bytes; \
		__m512		acc = _mm512_setzero_ps(); \
		float		rest = 0.0f; \
\
		if (qt_interrupt_hook) \
			qt_interrupt_hook(); \
		for (int64_t g = 0; g < l->ngroups; g++) \
		{ \
			int64_t		gi = r * l->ngroups + g; \
			int64_t		j0 = g * l->group_len; \
			int64_t		n = qt_group_len(l, h->cols, g); \
			float		s = scale_at(buf, l, gi); \
			float		z = zeros ? (float) buf[l->off_zeros + gi] : sym_zero; \
			const uint8_t *p = row + (j0 / 8) * (B); \
			const float *xg = x + j0; \
			__m512		p0 = _mm512_setzero_ps(), \
						p1 = _mm512_setzero_ps(), \
						p2 = _mm512_setzero_ps(), \
						p3 = _mm512_setzero_ps(); \
			__m256		q0 = _mm256_setzero_ps(); \
			float		tail = 0.0f; \
			int64_t		i = 0; \
\
			for (; i + 64 <= n; i += 64, p += 8 * (B)) \
			{ \
				__m512i		c = AVX512_CODES64(p, B, perm, ctrl, mask8); \
\
				p0 = _mm512_fmadd_ps(AVX512_F16(c, 0), _mm512_loadu_ps(xg + i), p0); \
				p1 = _mm512_fmadd_ps(AVX512_F16(c, 1), _mm512_loadu_ps(xg + i + 16), p1); \
				p2 = _mm512_fmadd_ps(AVX512_F16(c, 2), _mm512_loadu_ps(xg + i + 32), p2); \
				p3 = _mm512_fmadd_ps(AVX512_F16(c, 3), _mm512_loadu_ps(xg + i + 48), p3); \
			} \
			for (; i + 8 <= n; i += 8, p += (B)) \
				q0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(AVX2_CODES8(p, B, shifts, mask)), \
									 _mm256_loadu_ps(xg + i), q0); \
			for (; i < n; i++) \
				tail += (float) qt_code_at(row, j0 + i, B) * xg[i]; \
			p0 = _mm512_add_ps(_mm512_add_ps(p0, p1), _mm512_add_ps(p2, p3)); \
			p0 = _mm512_add_ps(p0, _mm512_castps256_ps512(q0)); \
			acc = _mm512_fmadd_ps(_mm512_set1_ps(s), p0, acc); \
			rest += s * (tail - z * xsum[g]); \
		} \
		y[r] = _mm512_reduce_add_ps(acc) + rest; \
	} \
}

DEFINE_AVX512_INT(2)
DEFINE_AVX512_INT(3)
DEFINE_AVX512_INT(4)
DEFINE_AVX512_INT(5)
DEFINE_AVX512_INT(6)
DEFINE_AVX512_INT(7)
DEFINE_AVX512_INT(8)

AVX512_FN static void
avx512_rows_nf4(const uint8_t *buf, const QtLayout *l, const float *x,
				const float *xsum, int64_t r0, int64_t r1, float *y)
{
	const QtHeader *h = (const QtHeader *) buf;
	const __m512 lut = _mm512_loadu_ps(qt_nf4_levels);
	const __m512i perm = avx512_lane_index(4);
	const __m512i ctrl = avx512_shift_ctrl(4);
	const __m512i mask8 = _mm512_set1_epi8(15);
	const __m256 lut_lo = _mm256_loadu_ps(qt_nf4_levels);
	const __m256 lut_hi = _mm256_loadu_ps(qt_nf4_levels + 8);
	const __m256i shifts = _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28);
	const __m256i mask = _mm256_set1_epi32(15);

	(void) xsum;
	for (int64_t r = r0; r < r1; r++)
	{
		const uint8_t *row = buf + l->off_codes + (size_t) r * l->row_bytes;
		__m512		acc = _mm512_setzero_ps();
		float		rest = 0.0f;

		if (qt_interrupt_hook)
			qt_interrupt_hook();
		for (int64_t g = 0; g < l->ngroups; g++)
		{
			int64_t		j0 = g * l->group_len;
			int64_t		n = qt_group_len(l, h->cols, g);
			float		s = scale_at(buf, l, r * l->ngroups + g);
			const uint8_t *p = row + j0 / 2;
			const float *xg = x + j0;
			__m512		p0 = _mm512_setzero_ps(),
						p1 = _mm512_setzero_ps(),
						p2 = _mm512_setzero_ps(),
						p3 = _mm512_setzero_ps();
			__m256		q0 = _mm256_setzero_ps();
			float		tail = 0.0f;
			int64_t		i = 0;

			for (; i + 64 <= n; i += 64, p += 32)
			{
				__m512i		c = AVX512_CODES64(p, 4, perm, ctrl, mask8);

				p0 = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_cvtepu8_epi32(_mm512_extracti32x4_epi32(c, 0)), lut),
									 _mm512_loadu_ps(xg + i), p0);
				p1 = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_cvtepu8_epi32(_mm512_extracti32x4_epi32(c, 1)), lut),
									 _mm512_loadu_ps(xg + i + 16), p1);
				p2 = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_cvtepu8_epi32(_mm512_extracti32x4_epi32(c, 2)), lut),
									 _mm512_loadu_ps(xg + i + 32), p2);
				p3 = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_cvtepu8_epi32(_mm512_extracti32x4_epi32(c, 3)), lut),
									 _mm512_loadu_ps(xg + i + 48), p3);
			}
			for (; i + 8 <= n; i += 8, p += 4)
			{
				uint32_t	v0;

				memcpy(&v0, p, 4);
				q0 = _mm256_fmadd_ps(avx2_nf4_8(_mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32((int) v0), shifts), mask),
												lut_lo, lut_hi), _mm256_loadu_ps(xg + i), q0);
			}
			for (; i < n; i++)
				tail += qt_nf4_levels[qt_code_at(row, j0 + i, 4)] * xg[i];
			p0 = _mm512_add_ps(_mm512_add_ps(p0, p1), _mm512_add_ps(p2, p3));
			p0 = _mm512_add_ps(p0, _mm512_castps256_ps512(q0));
			acc = _mm512_fmadd_ps(_mm512_set1_ps(s), p0, acc);
			rest += s * tail;
		}
		y[r] = _mm512_reduce_add_ps(acc) + rest;
	}
}

/* (q - z) * s of the 16 codes in quarter Q of a vector of 64 code bytes, stored at d */
#define AVX512_DEC_STORE(d, c, Q, zv, sv) \
	_mm512_storeu_ps((d), _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32( \
		_mm512_cvtepu8_epi32(_mm512_extracti32x4_epi32((c), (Q))), (zv))), (sv)))

/* rows of an int tensor decoded 64 codes at a time, as the reference rounds them */
#define DEFINE_AVX512_DECODE_INT(B) \
AVX512_FN static void \
avx512_decode_int##B(const uint8_t *buf, const QtLayout *l, int64_t r0, int64_t r1, float *out) \
{ \
	const QtHeader *h = (const QtHeader *) buf; \
	const bool	zeros = (h->flags & QT_FLAG_ZEROS) != 0; \
	const int	sym_zero = 1 << ((B) - 1); \
	const __m512i perm = avx512_lane_index(B); \
	const __m512i ctrl = avx512_shift_ctrl(B); \
	const __m512i mask8 = _mm512_set1_epi8((char) ((1 << (B)) - 1)); \
	const __m256i shifts = _mm256_setr_epi32(0, B, 2 * B, 3 * B, 0, B, 2 * B, 3 * B); \
	const __m256i mask = _mm256_set1_epi32((1 << (B)) - 1); \
\
	for (int64_t r = r0; r < r1; r++) \
	{ \
		const uint8_t *row = buf + l->off_codes + (size_t) r * l->row_bytes; \
		float	   *dst = out + (r - r0) * h->cols; \
\
		if (qt_interrupt_hook) \
			qt_interrupt_hook(); \
		for (int64_t g = 0; g < l->ngroups; g++) \
		{ \
			int64_t		gi = r * l->ngroups + g; \
			int64_t		j0 = g * l->group_len; \
			int64_t		n = qt_group_len(l, h->cols, g); \
			float		s = scale_at(buf, l, gi); \
			int			z = zeros ? buf[l->off_zeros + gi] : sym_zero; \
			const __m512 sv = _mm512_set1_ps(s); \
			const __m512i zv = _mm512_set1_epi32(z); \
			const uint8_t *p = row + (j0 / 8) * (B); \
			float	   *d = dst + j0; \
			int64_t		i = 0; \
\
			for (; i + 64 <= n; i += 64, p += 8 * (B)) \
			{ \
				__m512i		c = AVX512_CODES64(p, B, perm, ctrl, mask8); \
\
				AVX512_DEC_STORE(d + i, c, 0, zv, sv); \
				AVX512_DEC_STORE(d + i + 16, c, 1, zv, sv); \
				AVX512_DEC_STORE(d + i + 32, c, 2, zv, sv); \
				AVX512_DEC_STORE(d + i + 48, c, 3, zv, sv); \
			} \
			for (; i + 8 <= n; i += 8, p += (B)) \
				_mm256_storeu_ps(d + i, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32( \
					AVX2_CODES8(p, B, shifts, mask), _mm256_set1_epi32(z))), _mm256_set1_ps(s))); \
			for (; i < n; i++) \
				d[i] = (float) ((int) qt_code_at(row, j0 + i, B) - z) * s; \
		} \
	} \
}

DEFINE_AVX512_DECODE_INT(2)
DEFINE_AVX512_DECODE_INT(3)
DEFINE_AVX512_DECODE_INT(4)
DEFINE_AVX512_DECODE_INT(5)
DEFINE_AVX512_DECODE_INT(6)
DEFINE_AVX512_DECODE_INT(7)
DEFINE_AVX512_DECODE_INT(8)

QkDecodeFn
qk_decode_avx512(const QtHeader *h)
{
	static const QkDecodeFn ints[QT_MAX_BITS + 1] = {
		NULL, NULL, avx512_decode_int2, avx512_decode_int3, avx512_decode_int4,
		avx512_decode_int5, avx512_decode_int6, avx512_decode_int7, avx512_decode_int8
	};

	/* NF4 decodes with the AVX2 kernel */
	if (h->encoding == QT_ENC_NF4)
		return NULL;
	return ints[h->bits];
}

QkRowsFn
qk_rows_avx512(const QtHeader *h)
{
	static const QkRowsFn ints[QT_MAX_BITS + 1] = {
		NULL, NULL, avx512_rows_int2, avx512_rows_int3, avx512_rows_int4,
		avx512_rows_int5, avx512_rows_int6, avx512_rows_int7, avx512_rows_int8
	};

	if (h->encoding == QT_ENC_NF4)
		return avx512_rows_nf4;
	return ints[h->bits];
}

#else							/* not x86-64 with GCC or clang */

bool
qk_cpu_has_avx2(void)
{
	return false;
}

bool
qk_cpu_has_avx512(void)
{
	return false;
}

QkRowsFn
qk_rows_avx2(const QtHeader *h)
{
	(void) h;
	return NULL;
}

QkRowsFn
qk_rows_avx512(const QtHeader *h)
{
	(void) h;
	return NULL;
}

QkDecodeFn
qk_decode_avx2(const QtHeader *h)
{
	(void) h;
	return NULL;
}

QkDecodeFn
qk_decode_avx512(const QtHeader *h)
{
	(void) h;
	return NULL;
}

#endif
