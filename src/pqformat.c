/*
 * pqformat.c: checking and converting the codebook and pqcode layouts
 * (see pqformat.h and docs/pq-format.md).
 */
#include "pqformat.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

const char *
qt_cb_kind_name(int kind)
{
	return kind == QT_CB_PQ ? "pq" : kind == QT_CB_RVQ ? "rvq" : "unknown";
}

int64_t
qt_cb_nfloats(const QtCbHeader *h)
{
	char		err[QT_ERRMSG_LEN];
	int64_t		ksub;

	if (h->kind == QT_CB_PQ)
	{
		if (qt_pq_check_shape(h->dim, h->m, h->nbits, err) != QT_OK)
			return -1;
		ksub = (int64_t) 1 << h->nbits;
		return ksub * h->dim;
	}
	if (h->kind == QT_CB_RVQ)
	{
		if (qt_rvq_check_shape(h->dim, h->m, h->nbits, err) != QT_OK)
			return -1;
		ksub = (int64_t) 1 << h->nbits;
		return (int64_t) h->m * ksub * h->dim;
	}
	return -1;
}

QtStatus
qt_cb_check_header(const QtCbHeader *h, size_t *total, char *err)
{
	QtStatus	st;
	int64_t		nf;

	if (h->version != QT_CB_VERSION)
	{
		snprintf(err, QT_ERRMSG_LEN, "unsupported codebook format version %d (this build reads version %d)",
				 h->version, QT_CB_VERSION);
		return QT_EINVAL;
	}
	if (h->kind != QT_CB_PQ && h->kind != QT_CB_RVQ)
	{
		snprintf(err, QT_ERRMSG_LEN, "unknown codebook kind %d", h->kind);
		return QT_EINVAL;
	}
	if (h->reserved1 != 0 || h->reserved2 != 0 || h->reserved3 != 0)
	{
		snprintf(err, QT_ERRMSG_LEN, "reserved header fields must be zero");
		return QT_EINVAL;
	}
	st = h->kind == QT_CB_PQ ? qt_pq_check_shape(h->dim, h->m, h->nbits, err)
		: qt_rvq_check_shape(h->dim, h->m, h->nbits, err);
	if (st != QT_OK)
		return st;
	nf = qt_cb_nfloats(h);
	if (nf < 0 || (size_t) nf > (QT_MAX_BYTES - QT_CB_HEADER_SIZE) / sizeof(float))
	{
		snprintf(err, QT_ERRMSG_LEN, "a codebook of %lld centroid values exceeds the 1 GB limit of a value",
				 (long long) nf);
		return QT_ELIMIT;
	}
	*total = QT_CB_HEADER_SIZE + (size_t) nf * sizeof(float);
	return QT_OK;
}

QtStatus
qt_cb_check_body(const QtCbHeader *h, char *err)
{
	const float *c = qt_cb_centroids(h);
	int64_t		nf = qt_cb_nfloats(h);

	for (int64_t i = 0; i < nf; i++)
		if (!isfinite(c[i]))
		{
			snprintf(err, QT_ERRMSG_LEN, "centroid value %lld is not finite", (long long) i + 1);
			return QT_EINVAL;
		}
	return QT_OK;
}

void
qt_cb_pq(const QtCbHeader *h, QtPq *pq)
{
	pq->d = h->dim;
	pq->m = h->m;
	pq->nbits = h->nbits;
	pq->dsub = h->dim / h->m;
	pq->ksub = 1 << h->nbits;
	pq->centroids = qt_cb_centroids(h);
}

void
qt_cb_rvq(const QtCbHeader *h, QtRvq *rvq)
{
	rvq->d = h->dim;
	rvq->levels = h->m;
	rvq->nbits = h->nbits;
	rvq->ksub = 1 << h->nbits;
	rvq->centroids = qt_cb_centroids(h);
}

static void
put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t) (v >> 24);
	p[1] = (uint8_t) (v >> 16);
	p[2] = (uint8_t) (v >> 8);
	p[3] = (uint8_t) v;
}

static uint32_t
get_be32(const uint8_t *p)
{
	return ((uint32_t) p[0] << 24) | ((uint32_t) p[1] << 16) | ((uint32_t) p[2] << 8) | p[3];
}

static void
put_be64(uint8_t *p, uint64_t v)
{
	put_be32(p, (uint32_t) (v >> 32));
	put_be32(p + 4, (uint32_t) v);
}

static uint64_t
get_be64(const uint8_t *p)
{
	return ((uint64_t) get_be32(p) << 32) | get_be32(p + 4);
}

void
qt_cb_header_to_wire(const QtCbHeader *h, uint8_t *wire)
{
	wire[0] = h->version;
	wire[1] = h->kind;
	wire[2] = h->nbits;
	wire[3] = h->reserved1;
	put_be32(wire + 4, (uint32_t) h->dim);
	put_be32(wire + 8, (uint32_t) h->m);
	put_be32(wire + 12, h->reserved2);
	put_be32(wire + 16, h->reserved3);
}

void
qt_cb_header_from_wire(QtCbHeader *h, const uint8_t *wire)
{
	h->version = wire[0];
	h->kind = wire[1];
	h->nbits = wire[2];
	h->reserved1 = wire[3];
	h->dim = (int32_t) get_be32(wire + 4);
	h->m = (int32_t) get_be32(wire + 8);
	h->reserved2 = get_be32(wire + 12);
	h->reserved3 = get_be32(wire + 16);
}

void
qt_floats_to_be(const float *src, int64_t n, uint8_t *dst)
{
	for (int64_t i = 0; i < n; i++)
	{
		uint32_t	v;

		memcpy(&v, src + i, 4);
		put_be32(dst + 4 * i, v);
	}
}

void
qt_floats_from_be(const uint8_t *src, int64_t n, float *dst)
{
	for (int64_t i = 0; i < n; i++)
	{
		uint32_t	v = get_be32(src + 4 * i);

		memcpy(dst + i, &v, 4);
	}
}

QtStatus
qt_pqcode_parse(const uint8_t *data, size_t len, QtPqcode *c, char *err)
{
	uint16_t	m,
				res2;
	size_t		need;
	int			used_bits;

	if (len < QT_PQCODE_HEADER_SIZE)
	{
		snprintf(err, QT_ERRMSG_LEN, "a pqcode has at least %d bytes, got %zu", QT_PQCODE_HEADER_SIZE, len);
		return QT_EINVAL;
	}
	c->version = data[0];
	c->kind = data[1];
	c->nbits = data[2];
	memcpy(&m, data + 4, 2);
	memcpy(&res2, data + 6, 2);
	memcpy(&c->id, data + 8, 8);
	c->m = m;
	if (c->version != QT_PQCODE_VERSION)
	{
		snprintf(err, QT_ERRMSG_LEN, "unsupported pqcode format version %d (this build reads version %d)",
				 c->version, QT_PQCODE_VERSION);
		return QT_EINVAL;
	}
	if (c->kind != QT_CB_PQ && c->kind != QT_CB_RVQ)
	{
		snprintf(err, QT_ERRMSG_LEN, "unknown pqcode kind %d", c->kind);
		return QT_EINVAL;
	}
	if (data[3] != 0 || res2 != 0)
	{
		snprintf(err, QT_ERRMSG_LEN, "reserved header fields must be zero");
		return QT_EINVAL;
	}
	if (c->nbits < QT_PQ_MIN_NBITS || c->nbits > QT_PQ_MAX_NBITS)
	{
		snprintf(err, QT_ERRMSG_LEN, "nbits must be between %d and %d, got %d",
				 QT_PQ_MIN_NBITS, QT_PQ_MAX_NBITS, c->nbits);
		return QT_EINVAL;
	}
	if (c->m < 1 || (c->kind == QT_CB_RVQ && c->m > QT_RVQ_MAX_LEVELS) || c->m > QT_PQ_MAX_DIM)
	{
		snprintf(err, QT_ERRMSG_LEN, "invalid number of %s %d",
				 c->kind == QT_CB_PQ ? "subquantizers" : "levels", c->m);
		return QT_EINVAL;
	}
	need = qt_pqcode_size(c->kind, c->m, c->nbits);
	if (len != need)
	{
		snprintf(err, QT_ERRMSG_LEN, "a pqcode with m = %d and nbits = %d has %zu bytes, got %zu",
				 c->m, c->nbits, need, len);
		return QT_EINVAL;
	}
	c->norm = 0;
	if (c->kind == QT_CB_RVQ)
	{
		memcpy(&c->norm, data + QT_PQCODE_HEADER_SIZE, 4);
		if (!isfinite(c->norm) || c->norm < 0)
		{
			snprintf(err, QT_ERRMSG_LEN, "the norm of an rvq code must be finite and non-negative");
			return QT_EINVAL;
		}
	}
	c->codes = data + need - qt_code_size(c->m, c->nbits);
	c->code_size = qt_code_size(c->m, c->nbits);
	used_bits = (int) (((size_t) c->m * c->nbits) % 8);
	if (used_bits != 0 && (c->codes[c->code_size - 1] >> used_bits) != 0)
	{
		snprintf(err, QT_ERRMSG_LEN, "unused bits after the last code must be zero");
		return QT_EINVAL;
	}
	return QT_OK;
}

void
qt_pqcode_write(uint8_t *data, int kind, int m, int nbits, uint64_t id,
				float norm, const uint8_t *codes)
{
	uint16_t	m16 = (uint16_t) m,
				zero = 0;
	size_t		off = QT_PQCODE_HEADER_SIZE;

	data[0] = QT_PQCODE_VERSION;
	data[1] = (uint8_t) kind;
	data[2] = (uint8_t) nbits;
	data[3] = 0;
	memcpy(data + 4, &m16, 2);
	memcpy(data + 6, &zero, 2);
	memcpy(data + 8, &id, 8);
	if (kind == QT_CB_RVQ)
	{
		memcpy(data + off, &norm, 4);
		off += QT_PQCODE_NORM_SIZE;
	}
	memcpy(data + off, codes, qt_code_size(m, nbits));
}

/* swap m (u16), id (u64) and, for RVQ, norm (f32) between host and network order */
static void
pqcode_swap(const uint8_t *src, size_t len, uint8_t *dst, bool to_wire)
{
	uint16_t	m;
	uint64_t	id;

	memcpy(dst, src, len);
	if (len < QT_PQCODE_HEADER_SIZE)
		return;
	if (to_wire)
	{
		memcpy(&m, src + 4, 2);
		dst[4] = (uint8_t) (m >> 8);
		dst[5] = (uint8_t) m;
		memcpy(&id, src + 8, 8);
		put_be64(dst + 8, id);
	}
	else
	{
		m = (uint16_t) ((src[4] << 8) | src[5]);
		memcpy(dst + 4, &m, 2);
		id = get_be64(src + 8);
		memcpy(dst + 8, &id, 8);
	}
	if (src[1] == QT_CB_RVQ && len >= QT_PQCODE_HEADER_SIZE + QT_PQCODE_NORM_SIZE)
	{
		uint32_t	v;

		if (to_wire)
		{
			memcpy(&v, src + QT_PQCODE_HEADER_SIZE, 4);
			put_be32(dst + QT_PQCODE_HEADER_SIZE, v);
		}
		else
		{
			v = get_be32(src + QT_PQCODE_HEADER_SIZE);
			memcpy(dst + QT_PQCODE_HEADER_SIZE, &v, 4);
		}
	}
}

void
qt_pqcode_to_wire(const uint8_t *data, size_t len, uint8_t *wire)
{
	pqcode_swap(data, len, wire, true);
}

void
qt_pqcode_from_wire(const uint8_t *wire, size_t len, uint8_t *data)
{
	pqcode_swap(wire, len, data, false);
}
