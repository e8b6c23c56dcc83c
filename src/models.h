/*
 * models.h: models stored as rows (pgquant.models, pgquant.tensors,
 * pgquant.tokens), shared by the importers, qlinear and the forward pass.
 */
#ifndef PGQUANT_MODELS_H
#define PGQUANT_MODELS_H

#include "pgquant.h"

#include "utils/array.h"

/* models.c: a real[] of n floats copied from src (zeros when NULL); ndim 0 is 1-D */
ArrayType  *PgqFloatArray(const void *src, int ndim, const int *dims, int64 n);

#endif							/* PGQUANT_MODELS_H */
