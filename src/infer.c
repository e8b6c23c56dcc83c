/*
 * infer.c: the whole model in the database.  Builds the llama forward pass
 * (llama.c) over a model's rows, read through the tensor cache, and runs it
 * for pgquant.generate, pgquant.perplexity and the tokenizer functions
 * (pgquant.calibrate, in calibrate.c, uses the same model and state).
 *
 * A model runs when pgquant.models says arch = 'llama' and its config has
 * the integer fields dim, hidden_dim, n_layers, n_heads, n_kv_heads,
 * vocab_size and seq_len (norm_eps and rope_theta are optional), and
 * pgquant.tensors has every tensor those call for, named as the llama2.c
 * importer names them, each with data or q of the expected shape.  A tensor
 * with q runs quantized; norms stored only as q are decoded once per call.
 */
#include "pgquant.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "common/pg_prng.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

#include "infer.h"
#include "llama2c.h"

PG_FUNCTION_INFO_V1(pgquant_generate);
PG_FUNCTION_INFO_V1(pgquant_perplexity);
PG_FUNCTION_INFO_V1(pgquant_tokenize);
PG_FUNCTION_INFO_V1(pgquant_detokenize);


/* a field of the model's config: an integer, or false when absent */
static bool
config_number(Jsonb *config, const char *model, const char *key, double *out)
{
	JsonbValue	k;
	JsonbValue *v;

	if (config == NULL)
		return false;
	k.type = jbvString;
	k.val.string.val = (char *) key;
	k.val.string.len = strlen(key);
	v = findJsonbValueFromContainer(&config->root, JB_FOBJECT, &k);
	if (v == NULL)
		return false;
	if (v->type != jbvNumeric)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("config field \"%s\" of model \"%s\" is not a number", key, model)));
	*out = DatumGetFloat8(DirectFunctionCall1(numeric_float8, NumericGetDatum(v->val.numeric)));
	return true;
}

static int
config_int(Jsonb *config, const char *model, const char *key)
{
	double		d;

	if (!config_number(config, model, key, &d))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("config of model \"%s\" has no \"%s\"", model, key),
				 errhint("The forward pass needs dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size and seq_len.")));
	if (d != floor(d) || d < PG_INT32_MIN || d > PG_INT32_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("config field \"%s\" of model \"%s\" is not an integer", key, model)));
	return (int) d;
}

/* a [rows, cols] weight matrix of the model */
static LlamaMat
get_mat(PgqTensorReader *rd, const char *model, const char *name, int rows, int cols)
{
	const PgqTensor *t = PgqTensorRead(rd, model, name, false);
	LlamaMat	m = {rows, cols, NULL, NULL, NULL};
	int			have_r,
				have_c;

	if (t->q)
	{
		have_r = t->q->rows;
		have_c = t->q->cols;
		m.q = (const uint8 *) t->q;
		m.l = &t->l;
	}
	else
	{
		have_r = t->ndim == 2 ? t->shape[0] : -1;
		have_c = t->ndim == 2 ? t->shape[1] : -1;
		m.f = t->data;
	}
	if (have_r != rows || have_c != cols)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("tensor \"%s\" of model \"%s\" does not have the shape [%d, %d] its config calls for",
						name, model, rows, cols)));
	return m;
}

/* a vector of n floats (a norm's weights); a quantized one is decoded */
static const float *
get_vec(PgqTensorReader *rd, const char *model, const char *name, int n)
{
	const PgqTensor *t = PgqTensorRead(rd, model, name, false);

	if (t->numel != n)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("tensor \"%s\" of model \"%s\" does not have the %d elements its config calls for",
						name, model, n)));
	if (t->data)
		return t->data;
	else
	{
		float	   *v = palloc(sizeof(float) * n);

		qt_dequantize((const uint8 *) t->q, &t->l, 0, t->q->rows, v);
		return v;
	}
}

/* the model's forward pass (and, when asked, its tokenizer), or an error saying what is missing */
void
PgqInferLoad(const char *model, InferModel *im, bool need_tokens)
{
	char	   *arch;
	Jsonb	   *config;
	LlamaConfig *c = &im->m.c;
	L2cConfig	lc;
	char		err[L2C_ERRLEN];
	double		d;
	int			kv_dim;
	PgqTensorReader *rd;
	const PgqTensor *out;

	memset(im, 0, sizeof(*im));
	im->name = model;
	if (!PgqReadModel(model, &arch, &config))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("model \"%s\" does not exist", model)));
	if (strcmp(arch, "llama") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("model \"%s\" has architecture \"%s\", but the forward pass runs \"llama\" models", model, arch)));
	c->dim = config_int(config, model, "dim");
	c->hidden_dim = config_int(config, model, "hidden_dim");
	c->n_layers = config_int(config, model, "n_layers");
	c->n_heads = config_int(config, model, "n_heads");
	c->n_kv_heads = config_int(config, model, "n_kv_heads");
	c->vocab_size = config_int(config, model, "vocab_size");
	c->seq_len = config_int(config, model, "seq_len");
	c->norm_eps = config_number(config, model, "norm_eps", &d) ? (float) d : 1e-5f;
	c->rope_theta = config_number(config, model, "rope_theta", &d) ? (float) d : 10000.0f;
	lc.dim = c->dim;
	lc.hidden_dim = c->hidden_dim;
	lc.n_layers = c->n_layers;
	lc.n_heads = c->n_heads;
	lc.n_kv_heads = c->n_kv_heads;
	lc.vocab_size = c->vocab_size;
	lc.seq_len = c->seq_len;
	if (!l2c_check_config(&lc, err))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("config of model \"%s\" is invalid", model),
				 errdetail("%s.", err)));
	if (!(c->norm_eps > 0.0f) || !isfinite(c->norm_eps) || !(c->rope_theta > 1.0f) || !isfinite(c->rope_theta))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("config of model \"%s\" is invalid", model),
				 errdetail("norm_eps must be positive and rope_theta greater than 1.")));
	kv_dim = c->dim / c->n_heads * c->n_kv_heads;

	rd = PgqTensorReaderOpen();
	im->m.embed = get_mat(rd, model, "tok_embeddings", c->vocab_size, c->dim);
	im->m.layers = palloc0(sizeof(LlamaLayer) * c->n_layers);
	for (int l = 0; l < c->n_layers; l++)
	{
		LlamaLayer *L = &im->m.layers[l];
		char		name[L2C_NAME_LEN];

#define NAME(fmt) (snprintf(name, sizeof(name), fmt, l), name)
		L->attn_norm = get_vec(rd, model, NAME("layers.%d.attention_norm"), c->dim);
		L->ffn_norm = get_vec(rd, model, NAME("layers.%d.ffn_norm"), c->dim);
		L->wq = get_mat(rd, model, NAME("layers.%d.attention.wq"), c->dim, c->dim);
		L->wk = get_mat(rd, model, NAME("layers.%d.attention.wk"), kv_dim, c->dim);
		L->wv = get_mat(rd, model, NAME("layers.%d.attention.wv"), kv_dim, c->dim);
		L->wo = get_mat(rd, model, NAME("layers.%d.attention.wo"), c->dim, c->dim);
		L->w1 = get_mat(rd, model, NAME("layers.%d.feed_forward.w1"), c->hidden_dim, c->dim);
		L->w2 = get_mat(rd, model, NAME("layers.%d.feed_forward.w2"), c->dim, c->hidden_dim);
		L->w3 = get_mat(rd, model, NAME("layers.%d.feed_forward.w3"), c->hidden_dim, c->dim);
#undef NAME
	}
	im->m.final_norm = get_vec(rd, model, "norm", c->dim);
	/* a separate classifier when the model has one, else the embedding */
	out = PgqTensorRead(rd, model, "output", true);
	im->m.cls = out ? get_mat(rd, model, "output", c->vocab_size, c->dim) : im->m.embed;
	PgqTensorReaderClose(rd);

	if (need_tokens)
	{
		im->tokens = PgqGetTokens(model);
		if (im->tokens->n == 0)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("model \"%s\" has no tokenizer", model),
					 errhint("Import one with pgquant.import_llama2c(model, checkpoint, tokenizer).")));
		if (im->tokens->n != c->vocab_size)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_EXCEPTION),
					 errmsg("the tokenizer of model \"%s\" has %d tokens, but its vocab_size is %d",
							model, im->tokens->n, c->vocab_size)));
		im->vocab.n = im->tokens->n;
		im->vocab.pieces = im->tokens->pieces;
		im->vocab.lens = im->tokens->lens;
		im->vocab.scores = im->tokens->scores;
		im->vocab.max_len = im->tokens->max_len;
		im->vocab.sorted = im->tokens->sorted;
	}
}

static void
interrupt_cb(void)
{
	CHECK_FOR_INTERRUPTS();
}

/* tokens of a text (in the database encoding) with BOS; the count in *n */
int *
PgqInferEncode(InferModel *im, text *t, bool bos, int *n)
{
	char	   *s = text_to_cstring(t);
	char	   *u = pg_server_to_any(s, strlen(s), PG_UTF8);
	int			len = strlen(u);
	int		   *tokens;
	void	   *work;

	/* a tokens array and the encoder's links and heap, for up to one token per byte */
	tokens = palloc_extended(sizeof(int) * ((size_t) len + 3), MCXT_ALLOC_HUGE);
	work = palloc_extended(bpe_work_bytes(&im->vocab, len), MCXT_ALLOC_HUGE);
	*n = bpe_encode(&im->vocab, u, len, bos, false, tokens, work, interrupt_cb);
	pfree(work);
	return tokens;
}

/* append the bytes of token after prev */
static void
append_piece(StringInfo out, const BpeVocab *v, int prev, int token)
{
	char		byte[1];
	const char *p;
	int			l = bpe_decode(v, prev, token, byte, &p);

	appendBinaryStringInfo(out, p, l);
}

/* raw UTF-8 bytes as text in the database encoding; invalid sequences become U+FFFD */
static text *
utf8_to_text(StringInfo raw)
{
	char	   *clean = palloc(3 * (size_t) raw->len + 1);
	size_t		n = bpe_utf8_sanitize(raw->data, raw->len, clean);
	char	   *conv;

	clean[n] = '\0';
	conv = pg_any_to_server(clean, (int) n, PG_UTF8);
	return cstring_to_text(conv);
}

/* the state block of a forward pass over up to max_pos positions */
void
PgqInferState(InferModel *im, LlamaState *s, int max_pos)
{
	size_t		bytes = llama_state_bytes(&im->m, max_pos);

	if (bytes >= MaxAllocHugeSize)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("the key/value cache of %d positions is too large", max_pos)));
	llama_state_init(s, &im->m, max_pos, palloc_extended(bytes, MCXT_ALLOC_HUGE));
}

void
PgqInferCheckDevice(void)
{
	if (pgquant_device == PGQ_DEVICE_CUDA)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("the forward pass has no CUDA kernels yet"),
				 errhint("Use SET pgquant.device = 'cpu' or 'auto' to run on the CPU.")));
}

/*
 * pgquant.generate(model text, prompt text DEFAULT '', max_tokens integer DEFAULT 256,
 *                  temperature float8 DEFAULT 0, seed bigint DEFAULT NULL,
 *                  top_p float8 DEFAULT 1) -> text
 */
Datum
pgquant_generate(PG_FUNCTION_ARGS)
{
	char	   *model;
	int			max_tokens = PG_ARGISNULL(2) ? 256 : PG_GETARG_INT32(2);
	double		temperature = PG_ARGISNULL(3) ? 0.0 : PG_GETARG_FLOAT8(3);
	double		top_p = PG_ARGISNULL(5) ? 1.0 : PG_GETARG_FLOAT8(5);
	pg_prng_state rng;
	InferModel	im;
	int		   *prompt;
	int			nprompt;
	int			steps;
	LlamaState	st;
	StringInfoData raw;
	void	   *scratch;
	int			token;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	if (max_tokens < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_tokens must not be negative, got %d", max_tokens)));
	if (!(temperature >= 0.0) || !isfinite(temperature))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("temperature must be a finite number >= 0, got %g", temperature)));
	if (!(top_p > 0.0 && top_p <= 1.0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("top_p must be in (0, 1], got %g", top_p)));
	PgqInferCheckDevice();
	if (PG_ARGISNULL(4))
		pg_prng_seed(&rng, pg_prng_uint64(&pg_global_prng_state));
	else
		pg_prng_seed(&rng, (uint64) PG_GETARG_INT64(4));

	model = text_to_cstring(PG_GETARG_TEXT_PP(0));
	PgqInferLoad(model, &im, true);
	prompt = PgqInferEncode(&im, PG_ARGISNULL(1) ? cstring_to_text("") : PG_GETARG_TEXT_PP(1), true, &nprompt);
	if (nprompt > im.m.c.seq_len)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("the prompt has %d tokens, more than the %d positions of model \"%s\"",
						nprompt, im.m.c.seq_len, model)));
	/* positions to run: the prompt's (after BOS), then one per new token */
	steps = Min((int64) nprompt - 1 + max_tokens, (int64) im.m.c.seq_len);
	PgqInferState(&im, &st, Max(steps, 1));
	scratch = palloc(llama_sample_scratch_bytes(im.m.c.vocab_size));
	initStringInfo(&raw);

	token = prompt[0];
	for (int pos = 0; pos < steps; pos++)
	{
		float	   *logits;
		int			next;

		CHECK_FOR_INTERRUPTS();
		logits = llama_forward(&im.m, &st, token, pos);
		if (pos < nprompt - 1)
			next = prompt[pos + 1];
		else
		{
			next = temperature == 0.0 ? llama_argmax(logits, im.m.c.vocab_size) :
				llama_sample(logits, im.m.c.vocab_size, (float) temperature, (float) top_p,
							 pg_prng_double(&rng), scratch);
			/* BOS starts another text and EOS ends this one */
			if (next == BPE_BOS || next == BPE_EOS)
				break;
		}
		append_piece(&raw, &im.vocab, token, next);
		token = next;
	}
	PG_RETURN_TEXT_P(utf8_to_text(&raw));
}

/* pgquant.perplexity(model text, txt text) -> (nats_per_token, perplexity, tokens) */
Datum
pgquant_perplexity(PG_FUNCTION_ARGS)
{
	char	   *model = text_to_cstring(PG_GETARG_TEXT_PP(0));
	InferModel	im;
	int		   *tokens;
	int			n;
	LlamaState	st;
	double		nll = 0.0;
	int			pos = 0,
				prev;
	TupleDesc	tupdesc;
	Datum		values[3];
	bool		nulls[3] = {0};

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	PgqInferCheckDevice();
	PgqInferLoad(model, &im, true);
	tokens = PgqInferEncode(&im, PG_GETARG_TEXT_PP(1), true, &n);
	PgqInferState(&im, &st, Min(n, im.m.c.seq_len));

	/*
	 * Predict every token after BOS.  A text longer than the context is
	 * scored in windows of seq_len positions, each starting again from BOS.
	 */
	prev = tokens[0];
	for (int i = 1; i < n; i++)
	{
		CHECK_FOR_INTERRUPTS();
		if (pos == im.m.c.seq_len)
		{
			pos = 0;
			prev = BPE_BOS;
		}
		nll += llama_nll(llama_forward(&im.m, &st, prev, pos), im.m.c.vocab_size, tokens[i]);
		pos++;
		prev = tokens[i];
	}
	if (n > 1)
	{
		values[0] = Float8GetDatum(nll / (n - 1));
		values[1] = Float8GetDatum(exp(nll / (n - 1)));
	}
	else
		nulls[0] = nulls[1] = true;
	values[2] = Int32GetDatum(n - 1);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/* pgquant.tokenize(model text, txt text, bos boolean DEFAULT true) -> integer[] */
Datum
pgquant_tokenize(PG_FUNCTION_ARGS)
{
	char	   *model = text_to_cstring(PG_GETARG_TEXT_PP(0));
	InferModel	im;
	int		   *tokens;
	int			n;
	Datum	   *d;

	memset(&im, 0, sizeof(im));
	im.name = model;
	im.tokens = PgqGetTokens(model);
	if (im.tokens->n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("model \"%s\" has no tokenizer", model)));
	im.vocab.n = im.tokens->n;
	im.vocab.pieces = im.tokens->pieces;
	im.vocab.lens = im.tokens->lens;
	im.vocab.scores = im.tokens->scores;
	im.vocab.max_len = im.tokens->max_len;
	im.vocab.sorted = im.tokens->sorted;
	tokens = PgqInferEncode(&im, PG_GETARG_TEXT_PP(1), PG_GETARG_BOOL(2), &n);
	d = palloc(sizeof(Datum) * Max(n, 1));
	for (int i = 0; i < n; i++)
		d[i] = Int32GetDatum(tokens[i]);
	PG_RETURN_ARRAYTYPE_P(construct_array(d, n, INT4OID, 4, true, TYPALIGN_INT));
}

/* pgquant.detokenize(model text, tokens integer[]) -> text */
Datum
pgquant_detokenize(PG_FUNCTION_ARGS)
{
	char	   *model = text_to_cstring(PG_GETARG_TEXT_PP(0));
	ArrayType  *a = PG_GETARG_ARRAYTYPE_P(1);
	const PgqTokens *tk = PgqGetTokens(model);
	BpeVocab	v;
	StringInfoData raw;
	int			n,
				prev = -1;
	int32	   *ids;

	if (tk->n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("model \"%s\" has no tokenizer", model)));
	if (ARR_NDIM(a) > 1 || array_contains_nulls(a))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("tokens must be a 1-D integer array without NULLs")));
	v.n = tk->n;
	v.pieces = tk->pieces;
	v.lens = tk->lens;
	v.scores = tk->scores;
	v.max_len = tk->max_len;
	v.sorted = tk->sorted;
	n = ArrayGetNItems(ARR_NDIM(a), ARR_DIMS(a));
	ids = (int32 *) ARR_DATA_PTR(a);
	initStringInfo(&raw);
	for (int i = 0; i < n; i++)
	{
		if (ids[i] < 0 || ids[i] >= v.n)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("token %d is outside the vocabulary of %d tokens", ids[i], v.n)));
		/* BOS and EOS mark text boundaries; they have no text of their own */
		if (ids[i] != BPE_BOS && ids[i] != BPE_EOS)
			append_piece(&raw, &v, prev, ids[i]);
		prev = ids[i];
	}
	PG_RETURN_TEXT_P(utf8_to_text(&raw));
}
