/*
 * realdist.c: exact distances between real[] vectors, behind the operators
 * <-> (Euclidean), <#> (negative inner product) and <=> (cosine distance),
 * spelled as in pgvector so that queries carry over.  They are also the
 * ivfpq operator classes' support functions: the index re-ranks its
 * candidates with exactly these values.
 */
#include "pqsql.h"

#include "utils/float.h"

PG_FUNCTION_INFO_V1(pgquant_array_l2_distance);
PG_FUNCTION_INFO_V1(pgquant_array_inner_product);
PG_FUNCTION_INFO_V1(pgquant_array_negative_inner_product);
PG_FUNCTION_INFO_V1(pgquant_array_cosine_distance);

/* both arguments as float vectors of one dimension */
static int
two_vectors(FunctionCallInfo fcinfo, const float **a, const float **b)
{
	int			da,
				db;

	*a = PgqVectorFromArray(PG_GETARG_ARRAYTYPE_P(0), &da, "vector");
	*b = PgqVectorFromArray(PG_GETARG_ARRAYTYPE_P(1), &db, "vector");
	if (da != db)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("different vector dimensions %d and %d", da, db)));
	return da;
}

Datum
pgquant_array_l2_distance(PG_FUNCTION_ARGS)
{
	const float *a,
			   *b;
	int			d = two_vectors(fcinfo, &a, &b);

	PG_RETURN_FLOAT8(qt_exact_distance(QT_METRIC_L2, a, b, d));
}

Datum
pgquant_array_inner_product(PG_FUNCTION_ARGS)
{
	const float *a,
			   *b;
	int			d = two_vectors(fcinfo, &a, &b);

	PG_RETURN_FLOAT8(-qt_exact_distance(QT_METRIC_IP, a, b, d));
}

Datum
pgquant_array_negative_inner_product(PG_FUNCTION_ARGS)
{
	const float *a,
			   *b;
	int			d = two_vectors(fcinfo, &a, &b);

	PG_RETURN_FLOAT8(qt_exact_distance(QT_METRIC_IP, a, b, d));
}

Datum
pgquant_array_cosine_distance(PG_FUNCTION_ARGS)
{
	const float *a,
			   *b;
	int			d = two_vectors(fcinfo, &a, &b);

	PG_RETURN_FLOAT8(qt_exact_distance(QT_METRIC_COSINE, a, b, d));
}
