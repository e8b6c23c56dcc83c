/*
 * pqsql.h: what the PQ/RVQ SQL layer shares (codebook types, pqcode, the
 * aggregates, the ivfpq index): vectors from real[], codebooks from datums,
 * the backend's codebook cache and the registry.
 */
#ifndef PGQUANT_PQSQL_H
#define PGQUANT_PQSQL_H

#include "pgquant.h"

#include "utils/array.h"

#include "pqformat.h"

/*
 * A 1-D real[] as a float vector: no NULLs, every element finite, at least
 * one element.  Points into the (detoasted) array; what names the argument
 * in errors ("vector", "query", ...).
 */
const float *PgqVectorFromArray(ArrayType *a, int *dim, const char *what);
/* the same checks, ERROR when the dimension is not expected */
const float *PgqVectorCheckDim(ArrayType *a, int expected, const char *what);
/* a new real[] of n floats */
ArrayType  *PgqArrayFromFloats(const float *x, int n);

/* codebooks: detoast and check the header against the size */
#define PG_GETARG_CODEBOOK_P(n) PgqCodebookFromDatum(PG_GETARG_DATUM(n))
QtCbHeader *PgqCodebookFromDatum(Datum d);
/* the content id: SHA-256 over the wire header and wire centroids (pqformat.h) */
uint64		PgqCodebookComputeId(const QtCbHeader *h);

/*
 * A codebook held in the backend's cache, with what scans need beside it.
 * Codebooks are content-addressed, so an entry never goes stale.
 */
typedef struct PgqCodebook
{
	uint64		id;
	int			kind;
	int			dim;
	int			m;
	int			nbits;
	int			ksub;
	size_t		code_size;		/* bytes of codes */
	QtCbHeader *cb;				/* the whole codebook */
	QtPq		pq;				/* views of cb, by kind */
	QtRvq		rvq;
	float	   *cnorm;			/* squared norm of every centroid, (m, ksub) */
	bool		registered;		/* seen in pgquant.codebooks by this backend */
} PgqCodebook;

/* the cached codebook with this id, or NULL */
const PgqCodebook *PgqCodebookCached(uint64 id);
/* the codebook a datum holds, through the cache (reads only its header on a hit) */
const PgqCodebook *PgqCodebookGet(Datum d);
/* the codebook with this id from pgquant.codebooks, through the cache */
const PgqCodebook *PgqCodebookLookup(uint64 id);

/* pqcode: parse the (possibly short-header) datum */
void		PgqPqcodeFromDatum(Datum d, QtPqcode *c);
/* ERROR unless the code was made by this codebook */
void		PgqPqcodeCheckCodebook(const QtPqcode *c, const PgqCodebook *cb);

/* status of floor-1 checks -> ERROR with the caller's SQLSTATE for invalid input */
void		PgqReportStatus(QtStatus st, const char *err, const char *what, int einval_code);

/* split "name(k=v,...):payload" (s is modified); number of items, or -1 with *problem set */
int			PgqParseLiteral(char *s, const char *prefix, char **keys, char **vals, int maxitems,
							char **payload, const char **problem);

/* id as 16 lowercase hex digits */
char	   *PgqIdToHex(uint64 id);

#endif							/* PGQUANT_PQSQL_H */
