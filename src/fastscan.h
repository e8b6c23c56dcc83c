/*
 * fastscan.h: 4-bit codes in blocks of 32 and the "fast-scan" ADC kernel
 * (floor 1: plain C, no PostgreSQL headers), after the idea of André et al.
 * used by FAISS: with 16 centroids per subquantizer, a lookup table
 * quantized to 8 bits fits in a 128-bit register, and one byte shuffle looks
 * up 32 codes at once.
 *
 * A block holds the 4-bit codes of 32 vectors as m rows of 16 bytes; in row
 * j, byte i holds code j of vector i in its low nibble and code j of vector
 * i + 16 in its high nibble:
 *     rows[j * 16 + (i % 16)] >> (i < 16 ? 0 : 4) & 15
 * (qt_fs_rows_size(m) = 16 m bytes, the same as m codes of 32 vectors).
 * Blocks may be interleaved with other data: the scans take the distance in
 * bytes from one block's rows to the next.
 *
 * A quantized table q (m x 16 bytes) holds
 *     q[j][c] = round((lut[j][c] - min_j) / scale), 0..255,
 * one scale for all j, so that a sum over j fits a uint16 (m <= 256); the ADC
 * distance is then scale * sum + bias, bias = sum_j min_j, within m scale / 2.
 *
 * qt_fs_scan_ref is the plain reference; qt_fs_scan points at the AVX2
 * kernel when the CPU has AVX2 (checked once, by qt_fs_init) and at the
 * reference otherwise.  Both return the same integers.
 */
#ifndef PGQUANT_FASTSCAN_H
#define PGQUANT_FASTSCAN_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#define QT_FS_BLOCK		32
#define QT_FS_MAX_M		256

static inline size_t
qt_fs_rows_size(int m)
{
	return (size_t) 16 * m;
}

/* quantize an m x 16 float table; returns false when it has a non-finite entry */
bool		qt_fs_quantize_lut(const float *lut, int m, uint8_t *q, float *scale, float *bias);

/*
 * Vector i (0..31) of a block: put its codes (m 4-bit codes packed LSB first,
 * as in a pqcode), read them back (code is ceil(m / 2) bytes, written whole),
 * or clear them to zero.
 */
void		qt_fs_set(uint8_t *rows, int m, int i, const uint8_t *code);
void		qt_fs_get(const uint8_t *rows, int m, int i, uint8_t *code);
void		qt_fs_clear(uint8_t *rows, int m, int i);

/*
 * sums[b * 32 + i] = sum_j q[j][code j of vector i of block b] for nblocks
 * blocks whose rows start at rows, rows + stride, ...
 */
void		qt_fs_scan_ref(const uint8_t *rows, size_t stride, int64_t nblocks, int m,
						   const uint8_t *q, uint16_t *sums);
extern void (*qt_fs_scan) (const uint8_t *rows, size_t stride, int64_t nblocks, int m,
						   const uint8_t *q, uint16_t *sums);

/* choose the kernel for this CPU; returns its name ("avx2" or "reference") */
const char *qt_fs_init(void);
/* the AVX2 kernel, or NULL when this build or CPU has none (for tests) */
extern void (*qt_fs_scan_avx2_ptr) (const uint8_t *rows, size_t stride, int64_t nblocks, int m,
									const uint8_t *q, uint16_t *sums);

#endif							/* PGQUANT_FASTSCAN_H */
