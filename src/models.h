/*
 * models.h: models stored as rows (pgquant.models, pgquant.tensors,
 * pgquant.tokens), shared by the importers, qlinear and the forward pass.
 */
#ifndef PGQUANT_MODELS_H
#define PGQUANT_MODELS_H

#include "pgquant.h"

#include "utils/array.h"
#include "utils/jsonb.h"

/* models.c: a real[] of n floats copied from src (zeros when NULL); ndim 0 is 1-D */
ArrayType  *PgqFloatArray(const void *src, int ndim, const int *dims, int64 n);
/* qlinear.c: a 1-D real[] without NULLs (errors name it "what"); its length in *n */
const float *PgqFloatVector(ArrayType *a, const char *what, int *n);

/* tensorcache.c: a model's tensors and tokenizer, cached per backend (see there) */
#define PGQ_MAX_TENSOR_DIMS 8

typedef struct PgqTensor
{
	int			ndim;
	int32		shape[PGQ_MAX_TENSOR_DIMS];
	int64		numel;
	const float *data;			/* the fp32 values (data column), or NULL */
	const QtHeader *q;			/* the quantized tensor (q column), or NULL */
	QtLayout	l;				/* q's layout */
} PgqTensor;

typedef struct PgqTokens
{
	int			n;
	int			max_len;
	char	  **pieces;			/* NUL-terminated copies; lens[i] bytes each */
	int		   *lens;
	float	   *scores;
	int		   *sorted;			/* ids sorted by piece (tokenizer.h bpe_sort) */
} PgqTokens;

extern int	pgquant_tensor_cache_mb;

typedef struct PgqTensorReader PgqTensorReader;
PgqTensorReader *PgqTensorReaderOpen(void);
/* the tensor as the current snapshot sees it; NULL when missing and missing_ok */
const PgqTensor *PgqTensorRead(PgqTensorReader *rd, const char *model, const char *name, bool missing_ok);
void		PgqTensorReaderClose(PgqTensorReader *rd);
const PgqTensor *PgqGetTensor(const char *model, const char *name);
/* the model row: false when there is none */
bool		PgqReadModel(const char *model, char **arch, Jsonb **config);
/* the tokenizer; n = 0 when the model has none */
const PgqTokens *PgqGetTokens(const char *model);
void		PgqCacheStats(int64 *tensors, int64 *bytes, int64 *tokenizers);
void		PgqCacheReset(void);

#endif							/* PGQUANT_MODELS_H */
