/*
 * calib_stats.c: streaming statistics of a layer's input activations, the
 * state of the pgquant.activation_stats aggregate (see qcalib.h).
 *
 * X^T X is built from blocks of QC_STATS_BLOCK rows: one cblas_ssyrk per
 * block (single precision, the fast path), whose upper triangle is then
 * added into a double-precision accumulator.  A block's sum carries the
 * rounding of at most QC_STATS_BLOCK products; the sum over blocks does not
 * lose precision however many rows stream through.
 *
 * Serialized form (the aggregate's parallel state; little-endian, as every
 * pgquant format):
 *   uint32 magic 'PQCS', uint16 version 1, uint16 flags (1 = hessian),
 *   int32 n, int32 reserved 0, int64 nrows,
 *   double sum_abs[n], double sum_sq[n], float max_abs[n] (+ 4 zero bytes when n is odd),
 *   double xtx[n * (n + 1) / 2]  (upper triangle, row by row; only with the hessian flag)
 */
#include "qcalib.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define QC_STATS_MAGIC 0x53435150u	/* "PQCS" read little-endian */
#define QC_STATS_VERSION 1
#define QC_STATS_FLAG_HESSIAN 1
#define QC_STATS_HEADER 24

#define FAIL(status, ...) \
	do { if (err) snprintf(err, QT_ERRMSG_LEN, __VA_ARGS__); return (status); } while (0)

QcStats *
qc_stats_new(int32_t n, bool hessian)
{
	QcStats    *s = qc_alloc(sizeof(QcStats));

	if (!s)
		return NULL;
	memset(s, 0, sizeof(*s));
	s->n = n;
	s->hessian = hessian;
	s->sum_abs = qc_alloc(sizeof(double) * (size_t) n);
	s->sum_sq = qc_alloc(sizeof(double) * (size_t) n);
	s->max_abs = qc_alloc(sizeof(float) * (size_t) n);
	if (hessian)
	{
		s->xtx = qc_alloc(sizeof(double) * (size_t) n * n);
		s->tmp = qc_alloc(sizeof(float) * (size_t) n * n);
		s->buf = qc_alloc(sizeof(float) * (size_t) QC_STATS_BLOCK * n);
	}
	if (!s->sum_abs || !s->sum_sq || !s->max_abs ||
		(hessian && (!s->xtx || !s->tmp || !s->buf)))
	{
		qc_stats_free(s);
		return NULL;
	}
	memset(s->sum_abs, 0, sizeof(double) * (size_t) n);
	memset(s->sum_sq, 0, sizeof(double) * (size_t) n);
	memset(s->max_abs, 0, sizeof(float) * (size_t) n);
	if (hessian)
		memset(s->xtx, 0, sizeof(double) * (size_t) n * n);
	return s;
}

void
qc_stats_free(QcStats *s)
{
	if (!s)
		return;
	if (s->sum_abs)
		qc_free(s->sum_abs);
	if (s->sum_sq)
		qc_free(s->sum_sq);
	if (s->max_abs)
		qc_free(s->max_abs);
	if (s->xtx)
		qc_free(s->xtx);
	if (s->tmp)
		qc_free(s->tmp);
	if (s->buf)
		qc_free(s->buf);
	qc_free(s);
}

/* per-channel sums of one row */
static inline void
channel_stats(QcStats *s, const float *x)
{
	for (int32_t j = 0; j < s->n; j++)
	{
		float		a = fabsf(x[j]);

		s->sum_abs[j] += a;
		s->sum_sq[j] += (double) x[j] * x[j];
		s->max_abs[j] = a > s->max_abs[j] ? a : s->max_abs[j];
	}
}

void
qc_stats_flush(QcStats *s)
{
	const int64_t n = s->n;

	if (!s->hessian || s->nbuf == 0)
		return;
	cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, s->n, s->nbuf,
				1.0f, s->buf, s->n, 0.0f, s->tmp, s->n);
	for (int64_t i = 0; i < n; i++)
	{
		double	   *dst = s->xtx + i * n;
		const float *src = s->tmp + i * n;

		for (int64_t j = i; j < n; j++)
			dst[j] += src[j];
	}
	s->nbuf = 0;
}

void
qc_stats_add(QcStats *s, const float *x, int64_t nrows)
{
	for (int64_t r = 0; r < nrows; r++)
	{
		const float *row = x + r * s->n;

		channel_stats(s, row);
		if (s->hessian)
		{
			memcpy(s->buf + (size_t) s->nbuf * s->n, row, sizeof(float) * (size_t) s->n);
			if (++s->nbuf == QC_STATS_BLOCK)
			{
				if (qt_interrupt_hook)
					qt_interrupt_hook();
				qc_stats_flush(s);
			}
		}
	}
	s->nrows += nrows;
}

QtStatus
qc_stats_merge(QcStats *dst, QcStats *src, char *err)
{
	const int64_t n = dst->n;

	if (src->n != dst->n)
		FAIL(QT_EINVAL, "activation statistics of %d and %d features cannot be merged", dst->n, src->n);
	if (src->hessian != dst->hessian)
		FAIL(QT_EINVAL, "activation statistics with and without X^T X cannot be merged");
	qc_stats_flush(dst);
	qc_stats_flush(src);
	for (int64_t j = 0; j < n; j++)
	{
		dst->sum_abs[j] += src->sum_abs[j];
		dst->sum_sq[j] += src->sum_sq[j];
		dst->max_abs[j] = src->max_abs[j] > dst->max_abs[j] ? src->max_abs[j] : dst->max_abs[j];
	}
	if (dst->hessian)
		for (int64_t i = 0; i < n; i++)
		{
			if (qt_interrupt_hook && i % 256 == 0)
				qt_interrupt_hook();
			for (int64_t j = i; j < n; j++)
				dst->xtx[i * n + j] += src->xtx[i * n + j];
		}
	dst->nrows += src->nrows;
	return QT_OK;
}

/* bytes of the per-channel part: two double arrays and a float array padded to 8 */
static size_t
channel_bytes(int64_t n)
{
	return 16 * (size_t) n + 4 * (size_t) n + ((n & 1) ? 4 : 0);
}

size_t
qc_stats_serial_size(const QcStats *s)
{
	size_t		sz = QC_STATS_HEADER + channel_bytes(s->n);

	if (s->hessian)
		sz += sizeof(double) * (size_t) s->n * ((size_t) s->n + 1) / 2;
	return sz;
}

void
qc_stats_serialize(QcStats *s, uint8_t *out)
{
	uint32_t	magic = QC_STATS_MAGIC;
	uint16_t	version = QC_STATS_VERSION,
				flags = s->hessian ? QC_STATS_FLAG_HESSIAN : 0;
	int32_t		reserved = 0;
	uint8_t    *p = out;
	const int64_t n = s->n;

	qc_stats_flush(s);
	memcpy(p, &magic, 4);
	memcpy(p + 4, &version, 2);
	memcpy(p + 6, &flags, 2);
	memcpy(p + 8, &s->n, 4);
	memcpy(p + 12, &reserved, 4);
	memcpy(p + 16, &s->nrows, 8);
	p += QC_STATS_HEADER;
	memcpy(p, s->sum_abs, 8 * (size_t) n);
	p += 8 * (size_t) n;
	memcpy(p, s->sum_sq, 8 * (size_t) n);
	p += 8 * (size_t) n;
	memcpy(p, s->max_abs, 4 * (size_t) n);
	p += 4 * (size_t) n;
	if (n & 1)
	{
		memset(p, 0, 4);
		p += 4;
	}
	if (s->hessian)
		for (int64_t i = 0; i < n; i++)
		{
			memcpy(p, s->xtx + i * n + i, 8 * (size_t) (n - i));
			p += 8 * (size_t) (n - i);
		}
}

QtStatus
qc_stats_deserialize(const uint8_t *in, size_t len, QcStats **out, char *err)
{
	uint32_t	magic;
	uint16_t	version,
				flags;
	int32_t		n,
				reserved;
	int64_t		nrows;
	size_t		need;
	QcStats    *s;
	const uint8_t *p;

	*out = NULL;
	if (len < QC_STATS_HEADER)
		FAIL(QT_EINVAL, "activation statistics state is truncated");
	memcpy(&magic, in, 4);
	memcpy(&version, in + 4, 2);
	memcpy(&flags, in + 6, 2);
	memcpy(&n, in + 8, 4);
	memcpy(&reserved, in + 12, 4);
	memcpy(&nrows, in + 16, 8);
	if (magic != QC_STATS_MAGIC || version != QC_STATS_VERSION)
		FAIL(QT_EINVAL, "activation statistics state has an unknown format");
	if ((flags & ~QC_STATS_FLAG_HESSIAN) != 0 || reserved != 0)
		FAIL(QT_EINVAL, "activation statistics state has unknown flags");
	if (n < 1 || n > ((flags & QC_STATS_FLAG_HESSIAN) ? QC_MAX_HESSIAN_FEATURES : QC_MAX_FEATURES))
		FAIL(QT_EINVAL, "activation statistics state has %d features", n);
	if (nrows < 0)
		FAIL(QT_EINVAL, "activation statistics state has a negative row count");
	need = QC_STATS_HEADER + channel_bytes(n);
	if (flags & QC_STATS_FLAG_HESSIAN)
		need += sizeof(double) * (size_t) n * ((size_t) n + 1) / 2;
	if (len != need)
		FAIL(QT_EINVAL, "activation statistics state has %zu bytes, expected %zu", len, need);

	s = qc_stats_new(n, flags & QC_STATS_FLAG_HESSIAN);
	if (!s)
		FAIL(QT_ELIMIT, "out of memory for the statistics of %d features", n);
	s->nrows = nrows;
	p = in + QC_STATS_HEADER;
	memcpy(s->sum_abs, p, 8 * (size_t) n);
	p += 8 * (size_t) n;
	memcpy(s->sum_sq, p, 8 * (size_t) n);
	p += 8 * (size_t) n;
	memcpy(s->max_abs, p, 4 * (size_t) n);
	p += 4 * (size_t) n + ((n & 1) ? 4 : 0);
	for (int32_t j = 0; j < n; j++)
		if (!(s->sum_abs[j] >= 0.0 && isfinite(s->sum_abs[j]) && s->sum_sq[j] >= 0.0 &&
			  isfinite(s->sum_sq[j]) && s->max_abs[j] >= 0.0f && isfinite(s->max_abs[j])))
		{
			qc_stats_free(s);
			FAIL(QT_EINVAL, "activation statistics state has an invalid value for channel %d", j);
		}
	if (s->hessian)
		for (int64_t i = 0; i < n; i++)
		{
			memcpy(s->xtx + i * n + i, p, 8 * (size_t) (n - i));
			p += 8 * (size_t) (n - i);
			for (int64_t j = i; j < n; j++)
				if (!isfinite(s->xtx[i * n + j]))
				{
					qc_stats_free(s);
					FAIL(QT_EINVAL, "activation statistics state has a non-finite X^T X entry");
				}
		}
	*out = s;
	return QT_OK;
}

void
qc_stats_hessian(QcStats *s, float *out)
{
	const int64_t n = s->n;

	qc_stats_flush(s);
	for (int64_t i = 0; i < n; i++)
		for (int64_t j = i; j < n; j++)
			out[i * n + j] = out[j * n + i] = (float) s->xtx[i * n + j];
}

double
qc_hessian_energy(const float *x, int64_t rows, int32_t n, const float *h, float *tmp)
{
	double		e = 0.0;

	if (rows == 0)
		return 0.0;
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int) rows, n, n,
				1.0f, x, n, h, n, 0.0f, tmp, n);
	for (int64_t i = 0; i < rows * n; i++)
		e += (double) x[i] * tmp[i];
	return e;
}
