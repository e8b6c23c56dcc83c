/*
 * fastscan.c: blocks of 4-bit codes and the fast-scan ADC kernel with its
 * reference (see fastscan.h).  The AVX2 kernel is compiled with a target attribute, so the
 * rest of the build keeps the baseline instruction set, and is chosen at run
 * time by qt_fs_init after a CPU check.
 */
#include "fastscan.h"

#include <math.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_FS_AVX2 1
#endif

bool
qt_fs_quantize_lut(const float *lut, int m, uint8_t *q, float *scale, float *bias)
{
	float		range = 0;
	double		b = 0;

	for (int j = 0; j < m; j++)
	{
		float		lo = lut[j * 16],
					hi = lut[j * 16];

		for (int c = 0; c < 16; c++)
		{
			float		v = lut[j * 16 + c];

			if (!isfinite(v))
				return false;
			lo = v < lo ? v : lo;
			hi = v > hi ? v : hi;
		}
		range = hi - lo > range ? hi - lo : range;
		b += lo;
	}
	/* one scale for every subquantizer: 255 steps over the widest table */
	*scale = range > 0 ? range / 255.0f : 1.0f;
	*bias = (float) b;
	{
		float		inv = 1.0f / *scale;

		for (int j = 0; j < m; j++)
		{
			float		lo = lut[j * 16];

			for (int c = 1; c < 16; c++)
				lo = lut[j * 16 + c] < lo ? lut[j * 16 + c] : lo;
			for (int c = 0; c < 16; c++)
			{
				/* non-negative, so truncating x + 0.5 rounds to nearest */
				float		v = (lut[j * 16 + c] - lo) * inv + 0.5f;

				q[j * 16 + c] = (uint8_t) (v >= 255.0f ? 255 : (int) v);
			}
		}
	}
	return true;
}

void
qt_fs_set(uint8_t *rows, int m, int i, const uint8_t *code)
{
	int			shift = i < 16 ? 0 : 4;
	int			byte = i & 15;

	for (int j = 0; j < m; j++)
	{
		unsigned	c = (code[j >> 1] >> ((j & 1) * 4)) & 15;
		uint8_t    *r = rows + j * 16 + byte;

		*r = (uint8_t) ((*r & ~(15 << shift)) | (c << shift));
	}
}

void
qt_fs_get(const uint8_t *rows, int m, int i, uint8_t *code)
{
	int			shift = i < 16 ? 0 : 4;
	int			byte = i & 15;

	memset(code, 0, (size_t) (m + 1) / 2);
	for (int j = 0; j < m; j++)
		code[j >> 1] |= (uint8_t) (((rows[j * 16 + byte] >> shift) & 15) << ((j & 1) * 4));
}

void
qt_fs_clear(uint8_t *rows, int m, int i)
{
	int			shift = i < 16 ? 0 : 4;
	int			byte = i & 15;

	for (int j = 0; j < m; j++)
		rows[j * 16 + byte] &= (uint8_t) ~(15 << shift);
}

void
qt_fs_scan_ref(const uint8_t *rows, size_t stride, int64_t nblocks, int m, const uint8_t *q, uint16_t *sums)
{
	for (int64_t b = 0; b < nblocks; b++)
	{
		const uint8_t *blk = rows + (size_t) b * stride;

		for (int i = 0; i < QT_FS_BLOCK; i++)
		{
			unsigned	s = 0;

			for (int j = 0; j < m; j++)
				s += q[j * 16 + ((blk[j * 16 + (i & 15)] >> (i < 16 ? 0 : 4)) & 15)];
			sums[b * QT_FS_BLOCK + i] = (uint16_t) s;
		}
	}
}

#ifdef HAVE_FS_AVX2
/*
 * One block of 32 vectors at a time: per subquantizer, the row's low nibbles
 * (vectors 0-15) go to the low lane and its high nibbles (16-31) to the high
 * lane, the 16-byte table is broadcast to both lanes, and vpshufb looks up all
 * 32 codes; the bytes are widened to 16 bits and added.
 */
__attribute__((target("avx2")))
static void
fs_scan_avx2(const uint8_t *rows, size_t stride, int64_t nblocks, int m, const uint8_t *q, uint16_t *sums)
{
	const __m128i low4 = _mm_set1_epi8(15);

	for (int64_t b = 0; b < nblocks; b++)
	{
		const uint8_t *blk = rows + (size_t) b * stride;
		__m256i		acc0 = _mm256_setzero_si256(),
					acc1 = _mm256_setzero_si256();

		for (int j = 0; j < m; j++)
		{
			__m128i		raw = _mm_loadu_si128((const __m128i *) (blk + j * 16));
			__m128i		lo = _mm_and_si128(raw, low4);
			__m128i		hi = _mm_and_si128(_mm_srli_epi16(raw, 4), low4);
			__m256i		codes = _mm256_inserti128_si256(_mm256_castsi128_si256(lo), hi, 1);
			__m256i		lut = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *) (q + j * 16)));
			__m256i		v = _mm256_shuffle_epi8(lut, codes);

			acc0 = _mm256_add_epi16(acc0, _mm256_cvtepu8_epi16(_mm256_castsi256_si128(v)));
			acc1 = _mm256_add_epi16(acc1, _mm256_cvtepu8_epi16(_mm256_extracti128_si256(v, 1)));
		}
		_mm256_storeu_si256((__m256i *) (sums + b * QT_FS_BLOCK), acc0);
		_mm256_storeu_si256((__m256i *) (sums + b * QT_FS_BLOCK + 16), acc1);
	}
}
#endif

void		(*qt_fs_scan) (const uint8_t *rows, size_t stride, int64_t nblocks, int m,
						   const uint8_t *q, uint16_t *sums) = qt_fs_scan_ref;
void		(*qt_fs_scan_avx2_ptr) (const uint8_t *rows, size_t stride, int64_t nblocks, int m,
									const uint8_t *q, uint16_t *sums) = NULL;

const char *
qt_fs_init(void)
{
#ifdef HAVE_FS_AVX2
	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx2"))
	{
		qt_fs_scan_avx2_ptr = fs_scan_avx2;
		qt_fs_scan = fs_scan_avx2;
		return "avx2";
	}
#endif
	qt_fs_scan = qt_fs_scan_ref;
	return "reference";
}
