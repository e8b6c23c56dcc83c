/*
 * calibration.h: what the PostgreSQL-facing calibration files share
 * (calibration.c: statistics, quantize.c: the calibrated methods).
 */
#ifndef PGQUANT_CALIBRATION_H
#define PGQUANT_CALIBRATION_H

#include "pgquant.h"

#include "access/htup_details.h"
#include "utils/array.h"

/*
 * A pgquant.layer_stats value taken apart and checked: the arrays have the
 * declared shapes, no NULL elements, finite values, non-negative channel
 * statistics.  The pointers point into the (detoasted) arrays.
 */
typedef struct PgqLayerStats
{
	int32		n;				/* in_features */
	int64		nrows;
	const float *hessian;		/* [n][n] X^T X, or NULL when not collected */
	const float *mean_abs;		/* [n] */
	const float *max_abs;		/* [n] */
	const double *sum_sq;		/* [n] */
} PgqLayerStats;

void		PgqLayerStatsFromTuple(HeapTupleHeader t, PgqLayerStats *out);

/*
 * The statistics of one layer of a calibration set, read from
 * pgquant.calibration_stats and checked; an ERROR (42704) names what is
 * missing.  The arrays are copied into the current memory context.
 */
void		PgqCalibrationFetch(const char *set_name, const char *layer, PgqLayerStats *out);

/*
 * The one layer of a calibration set with in_features input features, for
 * calls that name a set but no layer; ERROR when there is none or several.
 */
char	   *PgqCalibrationFindLayer(const char *set_name, int32 in_features);

/* pgquant.calibration: the calibration set used when a call names none ("" when unset) */
extern char *pgquant_calibration;

/* a zeroed float4/float8 array of the given shape to fill in place */
ArrayType  *PgqNewArray(Oid elemtype, int ndim, const int *dims);

/*
 * The arrays of a pgquant.layer_stats value, from a streaming accumulator
 * (src/qcalib.h's QcStats, flushed here); hessian is NULL when it keeps no
 * X^T X.
 */
struct QcStats;
typedef struct PgqStatsArrays
{
	ArrayType  *hessian;
	ArrayType  *mean_abs;
	ArrayType  *max_abs;
	ArrayType  *sum_sq;
} PgqStatsArrays;

void		PgqStatsToArrays(struct QcStats *s, PgqStatsArrays *out);

#endif							/* PGQUANT_CALIBRATION_H */
