/*
 * calibrate.c: pgquant.calibrate(model, set_name, texts): runs the stored
 * model's forward pass over each text and accumulates, per linear layer,
 * the statistics of its input activations into a calibration set
 * (pgquant.calibration_sets / calibration_stats, docs/calibration.md).
 *
 * The forward pass's capture hook (llama.h) hands over the input vector of
 * each of the four sites of every layer at every position; each vector goes
 * straight into that site's streaming accumulator (qcalib.h QcStats), so
 * memory does not grow with the number of tokens.  Matrices that read the
 * same vector (wq/wk/wv, w1/w3) share one accumulator and receive the same
 * statistics.  At the end each of the 7 x n_layers matrices gets its
 * statistics merged into the set through pgquant.calibration_merge, so a
 * second call adds to the first.
 */
#include "pgquant.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"

#include "calibration.h"
#include "infer.h"
#include "qcalib.h"

PG_FUNCTION_INFO_V1(pgquant_calibrate);

/* the matrices reading each site, as pgquant.tensors names them (%d: the layer) */
static const char *const site_tensors[LLAMA_NSITES][3] = {
	[LLAMA_SITE_ATTN_IN] = {"layers.%d.attention.wq", "layers.%d.attention.wk", "layers.%d.attention.wv"},
	[LLAMA_SITE_ATTN_OUT] = {"layers.%d.attention.wo", NULL, NULL},
	[LLAMA_SITE_FFN_IN] = {"layers.%d.feed_forward.w1", "layers.%d.feed_forward.w3", NULL},
	[LLAMA_SITE_FFN_HIDDEN] = {"layers.%d.feed_forward.w2", NULL, NULL},
};

typedef struct CalibCapture
{
	const char *model;
	int			pos;
	QcStats   **stats;			/* [n_layers][LLAMA_NSITES] */
} CalibCapture;

/* the forward pass's capture hook: one row into the site's accumulator */
static void
capture_row(void *arg, int layer, LlamaSite site, const float *x, int n)
{
	CalibCapture *cc = arg;

	for (int j = 0; j < n; j++)
		if (unlikely(!isfinite(x[j])))
			ereport(ERROR,
					(errcode(ERRCODE_DATA_EXCEPTION),
					 errmsg("the forward pass of model \"%s\" produced a non-finite activation",
							cc->model),
					 errdetail("Input %d of %s at position %d is %s.", j + 1,
							   psprintf(site_tensors[site][0], layer), cc->pos,
							   isnan(x[j]) ? "NaN" : "infinite")));
	qc_stats_add(cc->stats[layer * LLAMA_NSITES + site], x, 1);
}

/* the set's model, creating the set (recording the model) when it does not exist */
static void
open_set(const char *set_name, const char *model)
{
	Oid			argtypes[2] = {TEXTOID, TEXTOID};
	Datum		args[2];
	int			rc;

	args[0] = CStringGetTextDatum(set_name);
	args[1] = CStringGetTextDatum(model);
	rc = SPI_execute_with_args("SELECT model FROM pgquant.calibration_sets WHERE name = $1 FOR KEY SHARE",
							   1, argtypes, args, NULL, false, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "reading pgquant.calibration_sets failed: %s", SPI_result_code_string(rc));
	if (SPI_processed == 1)
	{
		char	   *have = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);

		if (have != NULL && strcmp(have, model) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("calibration set \"%s\" holds activations of model \"%s\", not \"%s\"",
							set_name, have, model),
					 errhint("Calibrate into a new set, or delete this one from pgquant.calibration_sets first.")));
		return;
	}
	rc = SPI_execute_with_args("SELECT pgquant.calibration_create($1, $2)",
							   2, argtypes, args, NULL, false, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "pgquant.calibration_create failed: %s", SPI_result_code_string(rc));
}

/* merge one site's statistics into the set, once per matrix that reads it */
static void
store_site(SPIPlanPtr plan, const char *set_name, int layer, LlamaSite site, QcStats *s)
{
	Datum		args[8];
	char		nulls[8] = "        ";
	PgqStatsArrays a;

	PgqStatsToArrays(s, &a);
	args[0] = CStringGetTextDatum(set_name);
	args[2] = Int32GetDatum(s->n);
	args[3] = Int64GetDatum(s->nrows);
	args[4] = PointerGetDatum(a.hessian);
	nulls[4] = a.hessian ? ' ' : 'n';
	args[5] = PointerGetDatum(a.mean_abs);
	args[6] = PointerGetDatum(a.max_abs);
	args[7] = PointerGetDatum(a.sum_sq);
	for (int k = 0; k < 3 && site_tensors[site][k]; k++)
	{
		int			rc;

		args[1] = CStringGetTextDatum(psprintf(site_tensors[site][k], layer));
		rc = SPI_execute_plan(plan, args, nulls, false, 1);
		if (rc != SPI_OK_SELECT)
			elog(ERROR, "pgquant.calibration_merge failed: %s", SPI_result_code_string(rc));
	}
}

/*
 * pgquant.calibrate(model text, set_name text, texts text[], hessian boolean DEFAULT true)
 *   -> bigint: the number of token positions run (= rows added to every layer)
 */
Datum
pgquant_calibrate(PG_FUNCTION_ARGS)
{
	char	   *model,
			   *set_name;
	ArrayType  *texts;
	bool		hessian;
	Datum	   *elems;
	bool	   *elem_nulls;
	int			ntexts;
	int		  **tokens;
	int		   *ntok;
	int			max_n = 1;
	InferModel	im;
	LlamaState	st;
	CalibCapture cc;
	int			nl;
	int64		total = 0;
	Oid			argtypes[8] = {TEXTOID, TEXTOID, INT4OID, INT8OID,
	FLOAT4ARRAYOID, FLOAT4ARRAYOID, FLOAT4ARRAYOID, FLOAT8ARRAYOID};
	SPIPlanPtr	plan;

	for (int i = 0; i < 4; i++)
		if (PG_ARGISNULL(i))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("the %s argument of pgquant.calibrate must not be NULL",
							i == 0 ? "model" : i == 1 ? "set_name" : i == 2 ? "texts" : "hessian")));
	model = text_to_cstring(PG_GETARG_TEXT_PP(0));
	set_name = text_to_cstring(PG_GETARG_TEXT_PP(1));
	texts = PG_GETARG_ARRAYTYPE_P(2);
	hessian = PG_GETARG_BOOL(3);
	if (set_name[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a calibration set needs a non-empty name")));
	if (ARR_NDIM(texts) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("texts must be a one-dimensional array, not %d-dimensional", ARR_NDIM(texts))));
	deconstruct_array(texts, TEXTOID, -1, false, TYPALIGN_INT, &elems, &elem_nulls, &ntexts);
	if (ntexts == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("texts must not be empty"),
				 errdetail("Calibration needs at least one text to run the model over.")));
	for (int i = 0; i < ntexts; i++)
		if (elem_nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("texts must not contain NULL elements, but element %d is NULL", i + 1)));
	PgqInferCheckDevice();

	/* the set first: a wrong set fails before any work */
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	open_set(set_name, model);
	SPI_finish();

	PgqInferLoad(model, &im, true);
	nl = im.m.c.n_layers;
	if (hessian && Max(im.m.c.dim, im.m.c.hidden_dim) > QC_MAX_HESSIAN_FEATURES)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("X^T X of %d features does not fit one array", Max(im.m.c.dim, im.m.c.hidden_dim)),
				 errdetail("An n x n real[] holds at most %d features.", QC_MAX_HESSIAN_FEATURES),
				 errhint("Pass hessian => false to collect the per-channel statistics only.")));

	/* every text's tokens from BOS, cut to the model's context */
	tokens = palloc(sizeof(int *) * ntexts);
	ntok = palloc(sizeof(int) * ntexts);
	for (int i = 0; i < ntexts; i++)
	{
		CHECK_FOR_INTERRUPTS();
		tokens[i] = PgqInferEncode(&im, DatumGetTextPP(elems[i]), true, &ntok[i]);
		ntok[i] = Min(ntok[i], im.m.c.seq_len);
		max_n = Max(max_n, ntok[i]);
	}

	cc.model = model;
	cc.stats = palloc(sizeof(QcStats *) * nl * LLAMA_NSITES);
	for (int l = 0; l < nl; l++)
		for (int s = 0; s < LLAMA_NSITES; s++)
			cc.stats[l * LLAMA_NSITES + s] =
				qc_stats_new(s == LLAMA_SITE_FFN_HIDDEN ? im.m.c.hidden_dim : im.m.c.dim, hessian);
	PgqInferState(&im, &st, max_n);
	st.capture = capture_row;
	st.capture_arg = &cc;

	for (int i = 0; i < ntexts; i++)
		for (int pos = 0; pos < ntok[i]; pos++)
		{
			CHECK_FOR_INTERRUPTS();
			cc.pos = pos;
			llama_forward(&im.m, &st, tokens[i][pos], pos);
			total++;
		}

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	plan = SPI_prepare("SELECT pgquant.calibration_merge($1, $2, ROW($3, $4, $5, $6, $7, $8)::pgquant.layer_stats)",
					   8, argtypes);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	for (int l = 0; l < nl; l++)
		for (int s = 0; s < LLAMA_NSITES; s++)
		{
			CHECK_FOR_INTERRUPTS();
			store_site(plan, set_name, l, (LlamaSite) s, cc.stats[l * LLAMA_NSITES + s]);
		}
	SPI_finish();
	PG_RETURN_INT64(total);
}
