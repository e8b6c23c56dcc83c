/*
 * fvecs.c: the TEXMEX vector file formats (fvecs, ivecs) as rows, so that
 * ANN datasets such as SIFT load with one query:
 *   INSERT INTO items SELECT * FROM pgquant.read_fvecs(pg_read_binary_file('.../base.fvecs'));
 * Each vector is a little-endian int32 dimension d, then d float32 (fvecs) or
 * int32 (ivecs).  Every vector must have the first one's dimension.
 */
#include "pqsql.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"

PG_FUNCTION_INFO_V1(pgquant_read_fvecs);
PG_FUNCTION_INFO_V1(pgquant_read_ivecs);

static Datum
read_vecs(FunctionCallInfo fcinfo, bool is_float)
{
	bytea	   *b = PG_GETARG_BYTEA_PP(0);
	const char *p = VARDATA_ANY(b);
	size_t		len = VARSIZE_ANY_EXHDR(b);
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int32		d;
	size_t		rec,
				n;
	Datum	   *elems;

	InitMaterializedSRF(fcinfo, 0);
	if (len == 0)
		return (Datum) 0;
	if (len < 4)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("%s data is truncated: %zu bytes", is_float ? "fvecs" : "ivecs", len)));
	memcpy(&d, p, 4);
	if (d < 1 || d > QT_PQ_MAX_DIM)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("%s data has an invalid dimension %d", is_float ? "fvecs" : "ivecs", d),
				 errdetail("The first 4 bytes must be a dimension between 1 and %d.", QT_PQ_MAX_DIM)));
	rec = 4 + 4 * (size_t) d;
	if (len % rec != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("%s data of %zu bytes is not a whole number of %zu-byte vectors",
						is_float ? "fvecs" : "ivecs", len, rec)));
	n = len / rec;
	elems = palloc(sizeof(Datum) * d);
	for (size_t i = 0; i < n; i++)
	{
		const char *r = p + i * rec;
		int32		di;
		Datum		values[2];
		bool		nulls[2] = {false, false};

		CHECK_FOR_INTERRUPTS();
		memcpy(&di, r, 4);
		if (di != d)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_EXCEPTION),
					 errmsg("%s vector %zu has dimension %d, expected %d",
							is_float ? "fvecs" : "ivecs", i + 1, di, d)));
		for (int t = 0; t < d; t++)
		{
			if (is_float)
			{
				float		f;

				memcpy(&f, r + 4 + 4 * t, 4);
				elems[t] = Float4GetDatum(f);
			}
			else
			{
				int32		v;

				memcpy(&v, r + 4 + 4 * t, 4);
				elems[t] = Int32GetDatum(v);
			}
		}
		values[0] = Int32GetDatum((int32) (i + 1));
		values[1] = PointerGetDatum(construct_array(elems, d, is_float ? FLOAT4OID : INT4OID,
													4, true, TYPALIGN_INT));
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/* pgquant.read_fvecs(bytea) -> setof (id int, vector real[]), id counting from 1 */
Datum
pgquant_read_fvecs(PG_FUNCTION_ARGS)
{
	return read_vecs(fcinfo, true);
}

/* pgquant.read_ivecs(bytea) -> setof (id int, vector int[]) */
Datum
pgquant_read_ivecs(PG_FUNCTION_ARGS)
{
	return read_vecs(fcinfo, false);
}
