/*
 * pqformat.h: the stored layouts of pq_codebook, rvq_codebook and pqcode
 * (floor 1: plain C, no PostgreSQL headers).  Byte by byte in
 * docs/pq-format.md.
 *
 * Codebook (both types), one little-endian buffer:
 *   [QtCbHeader: 32 bytes][centroids: float32]
 *     PQ : (m, ksub, dsub) = ksub * dim floats
 *     RVQ: (levels, ksub, dim) = levels * ksub * dim floats
 * The id is the first 8 bytes (big-endian) of the SHA-256 of the wire header
 * followed by the wire centroids: codebooks are content-addressed, so the
 * same centroids get the same id on every server, and a code refers to its
 * codebook by that id without any OID.
 *
 * pqcode, the varlena's data bytes (no alignment: the value may be stored
 * with a 1-byte varlena header):
 *   0  version      u8   QT_PQCODE_VERSION
 *   1  kind         u8   QT_CB_PQ or QT_CB_RVQ
 *   2  nbits        u8
 *   3  reserved     u8   zero
 *   4  m            u16  subquantizers or levels
 *   6  reserved     u16  zero
 *   8  codebook id  u64
 *   16 norm         f32  RVQ only: ||decode(code)||^2
 *   .. codes        ceil(m * nbits / 8) bytes, LSB first; unused high bits zero
 */
#ifndef PGQUANT_PQFORMAT_H
#define PGQUANT_PQFORMAT_H

#include "pq.h"

#define QT_CB_VERSION			1
#define QT_CB_HEADER_SIZE		32
#define QT_CB_WIRE_HEADER_SIZE	20
#define QT_PQCODE_VERSION		1
#define QT_PQCODE_HEADER_SIZE	16
#define QT_PQCODE_NORM_SIZE		4

typedef enum QtCbKind
{
	QT_CB_PQ = 1,
	QT_CB_RVQ = 2
} QtCbKind;

typedef struct QtCbHeader
{
	uint32_t	vl_len;			/* varlena length word, set by the extension */
	uint8_t		version;
	uint8_t		kind;			/* QtCbKind */
	uint8_t		nbits;
	uint8_t		reserved1;		/* zero */
	int32_t		dim;
	int32_t		m;				/* PQ: subquantizers; RVQ: levels */
	uint32_t	reserved2;		/* zero */
	uint32_t	reserved3;		/* zero */
	uint64_t	id;
} QtCbHeader;

_Static_assert(sizeof(QtCbHeader) == QT_CB_HEADER_SIZE, "QtCbHeader must be 32 bytes");

/* number of centroid floats, or -1 when the header's shape is invalid */
int64_t		qt_cb_nfloats(const QtCbHeader *h);
/* check version, kind, shape, reserved fields and total size; err on failure */
QtStatus	qt_cb_check_header(const QtCbHeader *h, size_t *total, char *err);
/* every centroid finite */
QtStatus	qt_cb_check_body(const QtCbHeader *h, char *err);

static inline const float *
qt_cb_centroids(const QtCbHeader *h)
{
	return (const float *) ((const char *) h + QT_CB_HEADER_SIZE);
}

/* the codebook as a QtPq / QtRvq view (no copy) */
void		qt_cb_pq(const QtCbHeader *h, QtPq *pq);
void		qt_cb_rvq(const QtCbHeader *h, QtRvq *rvq);

/*
 * Wire header (20 bytes): version, kind, nbits, reserved1, then dim, m,
 * reserved2, reserved3 as big-endian 32-bit integers.  The binary form is
 * the wire header, the id (big-endian u64), then the centroids as big-endian
 * float32; the id is what SHA-256 gives over the wire header and the wire
 * centroids, and input recomputes and checks it.
 */
void		qt_cb_header_to_wire(const QtCbHeader *h, uint8_t *wire);
void		qt_cb_header_from_wire(QtCbHeader *h, const uint8_t *wire);
/* n floats to/from big-endian bytes */
void		qt_floats_to_be(const float *src, int64_t n, uint8_t *dst);
void		qt_floats_from_be(const uint8_t *src, int64_t n, float *dst);

/* pqcode: a parsed view of the data bytes */
typedef struct QtPqcode
{
	int			version;
	int			kind;
	int			nbits;
	int			m;
	uint64_t	id;
	float		norm;			/* RVQ only */
	const uint8_t *codes;
	size_t		code_size;
} QtPqcode;

static inline size_t
qt_pqcode_size(int kind, int m, int nbits)
{
	return QT_PQCODE_HEADER_SIZE + (kind == QT_CB_RVQ ? QT_PQCODE_NORM_SIZE : 0) +
		qt_code_size(m, nbits);
}

/* parse and check len data bytes (little-endian, as stored) */
QtStatus	qt_pqcode_parse(const uint8_t *data, size_t len, QtPqcode *c, char *err);
/* write the stored form: qt_pqcode_size() bytes */
void		qt_pqcode_write(uint8_t *data, int kind, int m, int nbits, uint64_t id,
							float norm, const uint8_t *codes);
/* the wire form: the same bytes with m, id and norm big-endian */
void		qt_pqcode_to_wire(const uint8_t *data, size_t len, uint8_t *wire);
void		qt_pqcode_from_wire(const uint8_t *wire, size_t len, uint8_t *data);

const char *qt_cb_kind_name(int kind);

#endif							/* PGQUANT_PQFORMAT_H */
