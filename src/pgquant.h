/*
 * pgquant.h: what the extension's PostgreSQL-facing files share.
 */
#ifndef PGQUANT_H
#define PGQUANT_H

#include "postgres.h"
#include "fmgr.h"

#include "qformat.h"

/* pgquant.device */
typedef enum PgqDevice
{
	PGQ_DEVICE_AUTO,
	PGQ_DEVICE_CPU,
	PGQ_DEVICE_CUDA
} PgqDevice;

extern int	pgquant_device;
extern int	pgquant_gpu_memory_limit_mb;

/* qtensor.c: detoast and check a stored qtensor, filling its layout */
#define DatumGetQtensorP(d) ((QtHeader *) PG_DETOAST_DATUM(d))
#define PG_GETARG_QTENSOR_P(n) DatumGetQtensorP(PG_GETARG_DATUM(n))
QtHeader   *QtensorFromDatum(Datum d, QtLayout *l);
void		QtensorReportStatus(QtStatus st, const char *err, int einval_code);

/* textio.c: shared by the types' text input and output */
void		PgqTextSyntaxError(const char *type, const char *lit, const char *detail) pg_attribute_noreturn();
bool		PgqParseInt32(const char *s, int32 *out);
int			PgqBase64Len(size_t n);

/* gpu.c: the one wall between PostgreSQL and the CUDA module */
bool		PgqGpuAvailable(void);
void		PgqGpuDequantize(const QtHeader *q, const QtLayout *l, float *out);
void		PgqGpuGemm(const QtHeader *q, const QtLayout *l, const float *X, int64 n, float *Y);

/* area init functions called by _PG_init (one line each) */
void		PgqCalibInit(void);
void		PgqInferInit(void);
void		PgqIvfpqInit(void);

#endif							/* PGQUANT_H */
