/*
 * test_llama.c: the BPE tokenizer, the llama forward pass and the llama2.c
 * parser outside the server.  Prints TAP.
 *
 * 1. Tokenizer on a hand-made vocabulary: merges by score, byte fallback,
 *    decoding, UTF-8 sanitizing.
 * 2. The forward pass on a random tiny model (GQA 4 heads / 2 kv heads)
 *    against a plain double-precision implementation written out below,
 *    at every position of a 12-token sequence, with fp32 weights and with
 *    8-bit quantized weights (the reference then uses the decoded weights).
 * 3. With the data directory (PGQUANT_DATA_DIR, else ../shared/data): the
 *    stories260K checkpoint and tokenizer parse completely; greedy decoding
 *    reproduces llama2.c's published sample (doc/stories260K.md) token for
 *    token; the mean NLL over paragraphs 2-101 of the validation head is
 *    1.427 nats/token over 9,602 tokens (SOURCE.md).  Skipped without data.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llama.h"
#include "llama2c.h"
#include "qformat.h"
#include "qgemv.h"
#include "quant.h"
#include "tap.h"
#include "tokenizer.h"

/* ---- 1. tokenizer ---------------------------------------------------- */

typedef struct TestVocab
{
	BpeVocab	v;
	char	   *pieces[300];
	int			lens[300];
	float		scores[300];
	int			sorted[300];
} TestVocab;

static void
add_piece(TestVocab *t, const char *p, float score)
{
	int			i = t->v.n++;

	t->pieces[i] = strdup(p);
	t->lens[i] = strlen(p);
	t->scores[i] = score;
	if (t->lens[i] > t->v.max_len)
		t->v.max_len = t->lens[i];
}

/* llama2.c's merge loop, literally: rescan all pairs, merge the best (leftmost on ties) */
static int
naive_encode(const BpeVocab *v, const char *text, int len, int *tok)
{
	int			n = 0;
	char		buf[64];

	tok[n++] = BPE_BOS;
	tok[n++] = bpe_lookup(v, " ", 1);
	for (int i = 0; i < len; i++)
		tok[n++] = bpe_lookup(v, text + i, 1);
	for (;;)
	{
		float		best = -1e10f;
		int			at = -1,
					bid = -1;

		for (int k = 1; k + 1 < n; k++)
		{
			int			l = v->lens[tok[k]] + v->lens[tok[k + 1]];
			int			id;

			memcpy(buf, v->pieces[tok[k]], v->lens[tok[k]]);
			memcpy(buf + v->lens[tok[k]], v->pieces[tok[k + 1]], v->lens[tok[k + 1]]);
			id = bpe_lookup(v, buf, l);
			if (id >= 0 && v->scores[id] > best)
			{
				best = v->scores[id];
				at = k;
				bid = id;
			}
		}
		if (at < 0)
			return n;
		tok[at] = bid;
		memmove(tok + at + 1, tok + at + 2, sizeof(int) * (n - at - 2));
		n--;
	}
}

static void
test_tokenizer(void)
{
	static TestVocab t;
	int			tok[64];
	static char scratch[65536];
	char		text[256];
	int			n;
	char		expect[] = "\xEF\xBF\xBD" "a" "\xEF\xBF\xBD" "\xC3\xA9";
	char		out[64];
	size_t		m;

	t.v.pieces = t.pieces;
	t.v.lens = t.lens;
	t.v.scores = t.scores;
	t.v.sorted = t.sorted;
	add_piece(&t, "<unk>", 0);
	add_piece(&t, "\n<s>\n", 0);
	add_piece(&t, "\n</s>\n", 0);
	for (int b = 0; b < 256; b++)
	{
		char		s[8];

		snprintf(s, sizeof(s), "<0x%02X>", b);
		add_piece(&t, s, 0);
	}
	add_piece(&t, " ", -1);		/* 259 */
	add_piece(&t, "a", -1);		/* 260 */
	add_piece(&t, "b", -1);		/* 261 */
	add_piece(&t, "c", -1);		/* 262 */
	add_piece(&t, "ab", -5);	/* 263 */
	add_piece(&t, "bc", -2);	/* 264: outscores ab */
	add_piece(&t, " a", -3);	/* 265 */
	add_piece(&t, " abc", -4);	/* 266: reachable only through " a" + "bc" */
	add_piece(&t, "ca", -2);	/* 267: ties with "bc", so the leftmost must win */
	bpe_sort(&t.v);

	ok(bpe_lookup(&t.v, "bc", 2) == 264 && bpe_lookup(&t.v, "<0x41>", 6) == 68 &&
	   bpe_lookup(&t.v, "zz", 2) == -1, "lookup finds pieces by their bytes");
	n = bpe_encode(&t.v, "abc", 3, true, false, tok, scratch, NULL);
	/* " " "a" "b" "c" -> "bc" (best) -> " a" -> " a"+"bc" = " abc" */
	ok(n == 2 && tok[0] == BPE_BOS && tok[1] == 266, "\"abc\" merges by score into BOS + \" abc\" (got %d tokens)", n);
	n = bpe_encode(&t.v, "ab", 2, false, true, tok, scratch, NULL);
	ok(n == 3 && tok[0] == 265 && tok[1] == 261 && tok[2] == BPE_EOS,
	   "\"ab\" becomes \" a\" + \"b\" + EOS (the dummy prefix merges first)");
	n = bpe_encode(&t.v, "\xC3\xA9", 2, false, false, tok, scratch, NULL);
	ok(n == 3 && tok[0] == 259 && tok[1] == 0xC3 + 3 && tok[2] == 0xA9 + 3,
	   "an unknown code point falls back to its bytes");
	n = bpe_encode(&t.v, "", 0, true, false, tok, scratch, NULL);
	ok(n == 1 && tok[0] == BPE_BOS, "the empty text is BOS alone (no dummy prefix)");

	/* decoding: BOS drops the leading space; byte pieces are bytes */
	{
		const char *p;
		char		byte[1];
		int			l;

		l = bpe_decode(&t.v, BPE_BOS, 266, byte, &p);
		ok(l == 3 && memcmp(p, "abc", 3) == 0, "after BOS the dummy space is dropped");
		l = bpe_decode(&t.v, 260, 266, byte, &p);
		ok(l == 4 && memcmp(p, " abc", 4) == 0, "elsewhere the space stays");
		l = bpe_decode(&t.v, 260, 0x41 + 3, byte, &p);
		ok(l == 1 && p[0] == 'A', "<0x41> decodes to the byte A");
		ok(bpe_decode(&t.v, 0, 9999, byte, &p) == 0, "an id outside the vocabulary decodes to nothing");
	}
	/* round trip of a text with bytes */
	{
		const char *src = "ab cab";
		int			len = 0;

		n = bpe_encode(&t.v, src, strlen(src), true, false, tok, scratch, NULL);
		for (int i = 1; i < n; i++)
		{
			const char *p;
			char		byte[1];
			int			l = bpe_decode(&t.v, tok[i - 1], tok[i], byte, &p);

			memcpy(text + len, p, l);
			len += l;
		}
		text[len] = '\0';
		ok(strcmp(text, src) == 0, "encode then decode gives the text back (\"%s\")", text);
	}
	/* the heap-based merging picks the pairs a full rescan picks */
	{
		int			agree = 0;

		for (int trial = 0; trial < 200; trial++)
		{
			char		s[40];
			int			len = 1 + trial % 37;
			int			a[64],
						b[64];
			int			na,
						nb;

			for (int i = 0; i < len; i++)
				s[i] = " abc"[(int) (rng_unit() * 4)];
			na = bpe_encode(&t.v, s, len, true, false, a, scratch, NULL);
			nb = naive_encode(&t.v, s, len, b);
			agree += na == nb && memcmp(a, b, sizeof(int) * na) == 0;
		}
		ok(agree == 200, "heap merging equals rescanning on 200 random texts (%d agree)", agree);
	}
	/* sanitizing: a lone continuation byte, a NUL, a valid two-byte sequence */
	m = bpe_utf8_sanitize("\x80" "a" "\0" "\xC3\xA9", 5, out);
	ok(m == sizeof(expect) - 1 && memcmp(out, expect, m) == 0, "invalid bytes and NULs become U+FFFD");
	m = bpe_utf8_sanitize("\xC0\xAF\xED\xA0\x80", 5, out);
	ok(m == 15, "overlong forms and surrogates are replaced byte by byte");
}

/* ---- 2. forward pass against a double-precision reference ---------------- */

typedef struct RefModel
{
	LlamaConfig c;
	double	   *emb,
			   *wq,
			   *wk,
			   *wv,
			   *wo,
			   *w1,
			   *w2,
			   *w3,
			   *an,
			   *fn,
			   *norm;
} RefModel;

/* y = W x for W [rows, cols] */
static void
ref_mv(const double *w, int rows, int cols, const double *x, double *y)
{
	for (int r = 0; r < rows; r++)
	{
		double		s = 0.0;

		for (int c = 0; c < cols; c++)
			s += w[(size_t) r * cols + c] * x[c];
		y[r] = s;
	}
}

static void
ref_norm(double *o, const double *x, const double *w, int n, double eps)
{
	double		ss = 0.0;

	for (int i = 0; i < n; i++)
		ss += x[i] * x[i];
	ss = 1.0 / sqrt(ss / n + eps);
	for (int i = 0; i < n; i++)
		o[i] = w[i] * x[i] * ss;
}

/*
 * logits of every position of tokens[0..n-1], written plainly in double;
 * with acts, also the input vector of each linear-layer site (llama.h
 * LlamaSite) at acts[((p * n_layers + l) * LLAMA_NSITES + site) * REF_ACT_W]
 */
#define REF_ACT_W 128
static void
ref_logits(const RefModel *m, const int *tokens, int n, double *logits, double *acts)
{
	const LlamaConfig *c = &m->c;
	int			hs = c->dim / c->n_heads,
				kvd = hs * c->n_kv_heads,
				D = c->dim,
				H = c->hidden_dim;
	double	   *K = calloc((size_t) c->n_layers * n * kvd, sizeof(double));
	double	   *V = calloc((size_t) c->n_layers * n * kvd, sizeof(double));
	double		x[64],
				xb[64],
				q[64],
				o[64],
				h1[128],
				h3[128],
				att[64];

	for (int p = 0; p < n; p++)
	{
		for (int i = 0; i < D; i++)
			x[i] = m->emb[(size_t) tokens[p] * D + i];
		for (int l = 0; l < c->n_layers; l++)
		{
			double	   *k = K + ((size_t) l * n + p) * kvd,
					   *v = V + ((size_t) l * n + p) * kvd;

#define REF_ACT(site, v, len) do { if (acts) memcpy(acts + (((size_t) p * c->n_layers + l) * LLAMA_NSITES + (site)) * REF_ACT_W, \
														(v), sizeof(double) * (len)); } while (0)
			ref_norm(xb, x, m->an + l * D, D, c->norm_eps);
			REF_ACT(LLAMA_SITE_ATTN_IN, xb, D);
			ref_mv(m->wq + (size_t) l * D * D, D, D, xb, q);
			ref_mv(m->wk + (size_t) l * kvd * D, kvd, D, xb, k);
			ref_mv(m->wv + (size_t) l * kvd * D, kvd, D, xb, v);
			/* rotate each head's pairs by p * theta^(-i / hs) */
			for (int head = 0; head < c->n_heads; head++)
				for (int i = 0; i < hs; i += 2)
				{
					double		a = p * pow(c->rope_theta, -(double) i / hs);
					double	   *z = q + head * hs + i;
					double		z0 = z[0],
								z1 = z[1];

					z[0] = z0 * cos(a) - z1 * sin(a);
					z[1] = z0 * sin(a) + z1 * cos(a);
					if (head < c->n_kv_heads)
					{
						z = k + head * hs + i;
						z0 = z[0];
						z1 = z[1];
						z[0] = z0 * cos(a) - z1 * sin(a);
						z[1] = z0 * sin(a) + z1 * cos(a);
					}
				}
			for (int head = 0; head < c->n_heads; head++)
			{
				int			kvh = head / (c->n_heads / c->n_kv_heads);
				double		mx = -1e300,
							sum = 0.0;

				for (int t = 0; t <= p; t++)
				{
					const double *kt = K + ((size_t) l * n + t) * kvd + kvh * hs;

					att[t] = 0.0;
					for (int i = 0; i < hs; i++)
						att[t] += q[head * hs + i] * kt[i];
					att[t] /= sqrt((double) hs);
					mx = att[t] > mx ? att[t] : mx;
				}
				for (int t = 0; t <= p; t++)
					sum += (att[t] = exp(att[t] - mx));
				for (int i = 0; i < hs; i++)
				{
					double		s = 0.0;

					for (int t = 0; t <= p; t++)
						s += att[t] / sum * V[((size_t) l * n + t) * kvd + kvh * hs + i];
					o[head * hs + i] = s;
				}
			}
			REF_ACT(LLAMA_SITE_ATTN_OUT, o, D);
			ref_mv(m->wo + (size_t) l * D * D, D, D, o, xb);
			for (int i = 0; i < D; i++)
				x[i] += xb[i];
			ref_norm(xb, x, m->fn + l * D, D, c->norm_eps);
			REF_ACT(LLAMA_SITE_FFN_IN, xb, D);
			ref_mv(m->w1 + (size_t) l * H * D, H, D, xb, h1);
			ref_mv(m->w3 + (size_t) l * H * D, H, D, xb, h3);
			for (int i = 0; i < H; i++)
				h1[i] = h1[i] / (1.0 + exp(-h1[i])) * h3[i];
			REF_ACT(LLAMA_SITE_FFN_HIDDEN, h1, H);
#undef REF_ACT
			ref_mv(m->w2 + (size_t) l * D * H, D, H, h1, xb);
			for (int i = 0; i < D; i++)
				x[i] += xb[i];
		}
		ref_norm(xb, x, m->norm, D, c->norm_eps);
		ref_mv(m->emb, c->vocab_size, D, xb, logits + (size_t) p * c->vocab_size);
	}
	free(K);
	free(V);
}

/* the capture hook of the test: every call's vector, by position */
typedef struct CaptureLog
{
	int			pos;
	int			calls;
	int			bad_len;
	const LlamaConfig *c;
	float	   *acts;			/* laid out like ref_logits' acts */
	int			order[64];		/* (layer, site) of the first position's calls */
} CaptureLog;

static void
capture_cb(void *arg, int layer, LlamaSite site, const float *x, int n)
{
	CaptureLog *g = arg;
	int			want = site == LLAMA_SITE_FFN_HIDDEN ? g->c->hidden_dim : g->c->dim;

	if (n != want)
		g->bad_len++;
	if (g->pos == 0 && g->calls < 64)
		g->order[g->calls] = layer * LLAMA_NSITES + (int) site;
	g->calls++;
	memcpy(g->acts + (((size_t) g->pos * g->c->n_layers + layer) * LLAMA_NSITES + site) * REF_ACT_W,
		   x, sizeof(float) * n);
}

/* a qtensor of w (rows x cols) at 8 bits, groups of 16 */
static uint8_t *
quantize8(const float *w, int rows, int cols, QtLayout *l)
{
	QtSpec		spec = {QT_METHOD_RTN, 8, 16, false};
	QtHeader	h;
	char		err[QT_ERRMSG_LEN];
	uint8_t    *buf;

	qt_plan(&spec, w, rows, cols, false, &h, l, err);
	buf = calloc(1, l->total);
	memcpy(buf, &h, sizeof(h));
	qt_encode(w, buf, l);
	return buf;
}

static float *
fill(double *ref, size_t n, double scale)
{
	float	   *f = malloc(n * sizeof(float));

	for (size_t i = 0; i < n; i++)
	{
		f[i] = (float) ((rng_unit() * 2.0 - 1.0) * scale);
		ref[i] = f[i];
	}
	return f;
}

static void
test_forward(bool quantized)
{
	LlamaConfig c = {32, 48, 2, 4, 2, 40, 16, 1e-5f, 10000.0f};
	int			kvd = c.dim / c.n_heads * c.n_kv_heads;
	RefModel	r;
	LlamaModel	m;
	LlamaLayer	layers[2];
	float	   *fw[8];
	QtLayout	ql[2][7];
	int			tokens[12] = {1, 5, 9, 33, 2, 17, 17, 39, 0, 21, 8, 30};
	double	   *ref = malloc(sizeof(double) * 12 * c.vocab_size);
	double	   *acts;
	float	   *nocap = malloc(sizeof(float) * 12 * c.vocab_size);
	CaptureLog	g = {0};
	bool		same = true,
				in_order = true;
	double		act_err = 0.0,
				act_scale = 0.0;
	LlamaState	st;
	void	   *mem;
	double		worst = 0.0,
				scale = 0.0;
	int			agree = 0;
	float	   *an,
			   *fnn,
			   *nn;

	r.c = c;
#define ALLOC(field, n) (r.field = malloc(sizeof(double) * (n)))
	ALLOC(emb, c.vocab_size * c.dim);
	ALLOC(wq, c.n_layers * c.dim * c.dim);
	ALLOC(wk, c.n_layers * kvd * c.dim);
	ALLOC(wv, c.n_layers * kvd * c.dim);
	ALLOC(wo, c.n_layers * c.dim * c.dim);
	ALLOC(w1, c.n_layers * c.hidden_dim * c.dim);
	ALLOC(w2, c.n_layers * c.dim * c.hidden_dim);
	ALLOC(w3, c.n_layers * c.hidden_dim * c.dim);
	ALLOC(an, c.n_layers * c.dim);
	ALLOC(fn, c.n_layers * c.dim);
	ALLOC(norm, c.dim);
#undef ALLOC
	fw[0] = fill(r.emb, (size_t) c.vocab_size * c.dim, 1.0);
	fw[1] = fill(r.wq, (size_t) c.n_layers * c.dim * c.dim, 0.3);
	fw[2] = fill(r.wk, (size_t) c.n_layers * kvd * c.dim, 0.3);
	fw[3] = fill(r.wv, (size_t) c.n_layers * kvd * c.dim, 0.3);
	fw[4] = fill(r.wo, (size_t) c.n_layers * c.dim * c.dim, 0.2);
	fw[5] = fill(r.w1, (size_t) c.n_layers * c.hidden_dim * c.dim, 0.2);
	fw[6] = fill(r.w2, (size_t) c.n_layers * c.dim * c.hidden_dim, 0.2);
	fw[7] = fill(r.w3, (size_t) c.n_layers * c.hidden_dim * c.dim, 0.2);
	an = fill(r.an, (size_t) c.n_layers * c.dim, 1.0);
	fnn = fill(r.fn, (size_t) c.n_layers * c.dim, 1.0);
	nn = fill(r.norm, c.dim, 1.0);
	{
		m.c = c;
		m.embed = (LlamaMat) {c.vocab_size, c.dim, fw[0], NULL, NULL};
		m.cls = m.embed;
		m.final_norm = nn;
		m.layers = layers;
		for (int l = 0; l < c.n_layers; l++)
		{
			struct
			{
				float	   *w;
				int			rows,
							cols;
				LlamaMat   *dst;
			}			mats[7] = {
				{fw[1] + (size_t) l * c.dim * c.dim, c.dim, c.dim, &layers[l].wq},
				{fw[2] + (size_t) l * kvd * c.dim, kvd, c.dim, &layers[l].wk},
				{fw[3] + (size_t) l * kvd * c.dim, kvd, c.dim, &layers[l].wv},
				{fw[4] + (size_t) l * c.dim * c.dim, c.dim, c.dim, &layers[l].wo},
				{fw[5] + (size_t) l * c.hidden_dim * c.dim, c.hidden_dim, c.dim, &layers[l].w1},
				{fw[6] + (size_t) l * c.dim * c.hidden_dim, c.dim, c.hidden_dim, &layers[l].w2},
				{fw[7] + (size_t) l * c.hidden_dim * c.dim, c.hidden_dim, c.dim, &layers[l].w3},
			};

			layers[l].attn_norm = an + l * c.dim;
			layers[l].ffn_norm = fnn + l * c.dim;
			for (int k = 0; k < 7; k++)
			{
				*mats[k].dst = (LlamaMat) {mats[k].rows, mats[k].cols, mats[k].w, NULL, NULL};
				if (quantized)
				{
					/* the reference gets the decoded weights */
					uint8_t    *q = quantize8(mats[k].w, mats[k].rows, mats[k].cols, &ql[l][k]);
					float	   *deq = malloc(sizeof(float) * mats[k].rows * mats[k].cols);
					double	   *dst = (k == 0 ? r.wq + (size_t) l * c.dim * c.dim :
										   k == 1 ? r.wk + (size_t) l * kvd * c.dim :
										   k == 2 ? r.wv + (size_t) l * kvd * c.dim :
										   k == 3 ? r.wo + (size_t) l * c.dim * c.dim :
										   k == 4 ? r.w1 + (size_t) l * c.hidden_dim * c.dim :
										   k == 5 ? r.w2 + (size_t) l * c.dim * c.hidden_dim :
										   r.w3 + (size_t) l * c.hidden_dim * c.dim);

					qt_dequantize_ref(q, &ql[l][k], 0, mats[k].rows, deq);
					for (int i = 0; i < mats[k].rows * mats[k].cols; i++)
						dst[i] = deq[i];
					mats[k].dst->f = NULL;
					mats[k].dst->q = q;
					mats[k].dst->l = &ql[l][k];
					free(deq);
				}
			}
		}
	}

	acts = calloc((size_t) 12 * c.n_layers * LLAMA_NSITES * REF_ACT_W, sizeof(double));
	ref_logits(&r, tokens, 12, ref, acts);
	mem = malloc(llama_state_bytes(&m, 12));
	llama_state_init(&st, &m, 12, mem);
	for (int p = 0; p < 12; p++)
	{
		float	   *lg = llama_forward(&m, &st, tokens[p], p);
		double	   *rl = ref + (size_t) p * c.vocab_size;
		int			best = 0;

		for (int i = 0; i < c.vocab_size; i++)
		{
			if (fabs(lg[i] - rl[i]) > worst)
				worst = fabs(lg[i] - rl[i]);
			if (fabs(rl[i]) > scale)
				scale = fabs(rl[i]);
			if (rl[i] > rl[best])
				best = i;
		}
		agree += llama_argmax(lg, c.vocab_size) == best;
		memcpy(nocap + (size_t) p * c.vocab_size, lg, sizeof(float) * c.vocab_size);
	}
	ok(worst <= 1e-4 * scale, "forward pass (%s weights) matches the double reference at 12 positions: "
	   "worst logit error %.2e, logits up to %.2f", quantized ? "8-bit" : "fp32", worst, scale);
	ok(agree == 12, "%s: the argmax agrees at every position (%d of 12)", quantized ? "8-bit" : "fp32", agree);

	/* again with the capture hook: the same logits, and every site's input vector */
	g.c = &c;
	g.acts = calloc((size_t) 12 * c.n_layers * LLAMA_NSITES * REF_ACT_W, sizeof(float));
	llama_state_init(&st, &m, 12, mem);
	ok(st.capture == NULL, "a new state captures nothing");
	st.capture = capture_cb;
	st.capture_arg = &g;
	for (int p = 0; p < 12; p++)
	{
		float	   *lg;

		g.pos = p;
		lg = llama_forward(&m, &st, tokens[p], p);
		same = same && memcmp(lg, nocap + (size_t) p * c.vocab_size, sizeof(float) * c.vocab_size) == 0;
	}
	for (int i = 0; i < c.n_layers * LLAMA_NSITES; i++)
		in_order = in_order && g.order[i] == i;
	for (size_t i = 0; i < (size_t) 12 * c.n_layers * LLAMA_NSITES * REF_ACT_W; i++)
	{
		if (fabs(g.acts[i] - acts[i]) > act_err)
			act_err = fabs(g.acts[i] - acts[i]);
		if (fabs(acts[i]) > act_scale)
			act_scale = fabs(acts[i]);
	}
	ok(same, "%s: capturing leaves the logits bit for bit unchanged", quantized ? "8-bit" : "fp32");
	ok(g.calls == 12 * c.n_layers * LLAMA_NSITES && g.bad_len == 0 && in_order,
	   "%s: 4 sites per layer per position, in forward order, with dim or hidden_dim floats (%d calls)",
	   quantized ? "8-bit" : "fp32", g.calls);
	ok(act_err <= 1e-4 * act_scale,
	   "%s: every captured input vector matches the double reference: worst error %.2e, values up to %.2f",
	   quantized ? "8-bit" : "fp32", act_err, act_scale);
	free(g.acts);
	free(acts);
	free(nocap);
	free(mem);
	free(ref);
	for (int l = 0; l < c.n_layers; l++)
	{
		LlamaMat   *mats[7] = {&layers[l].wq, &layers[l].wk, &layers[l].wv, &layers[l].wo,
			&layers[l].w1, &layers[l].w2, &layers[l].w3};

		for (int k = 0; k < 7; k++)
			free((void *) mats[k]->q);
	}
	for (int k = 0; k < 8; k++)
		free(fw[k]);
	free(an);
	free(fnn);
	free(nn);
	free(r.emb);
	free(r.wq);
	free(r.wk);
	free(r.wv);
	free(r.wo);
	free(r.w1);
	free(r.w2);
	free(r.w3);
	free(r.an);
	free(r.fn);
	free(r.norm);
}

/* ---- 3. stories260K -------------------------------------------------------- */

static uint8_t *
read_file(const char *path, size_t *len)
{
	FILE	   *f = fopen(path, "rb");
	uint8_t    *buf;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	*len = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc(*len + 1);
	if (fread(buf, 1, *len, f) != *len)
	{
		fclose(f);
		free(buf);
		return NULL;
	}
	fclose(f);
	buf[*len] = 0;
	return buf;
}

/* llama2.c doc/stories260K.md: ./run stories260K.bin -z tok512.bin -t 0.0 (256 steps) */
static const char *const published_sample =
"Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball. She wanted to play with it, but it was too high.\n"
"Lily's mom said, \"Lily, let's go to the park.\" Lily was sad and didn't know what to do. She said, \"I want to play with your ball, but I can't find it.\"\n"
"Lily was sad and didn't know what to do. She said, \"I'm sorry, Lily. I didn't know what to do.\"\n"
"Lily didn't want to help her mom, so she said, \"I'm sorry, mom. I didn't know what to do.\" Her mom said, \"Don't worry, Lily. We can help you.";

static void
test_stories(void)
{
	const char *dir = getenv("PGQUANT_DATA_DIR");
	char		path[1024];
	uint8_t    *ckpt,
			   *tokf,
			   *valid;
	size_t		clen,
				tlen,
				vlen;
	L2cConfig	lc;
	L2cTensor  *ts;
	L2cToken   *tk;
	int32_t		maxlen;
	char		err[L2C_ERRLEN];
	LlamaModel	m;
	LlamaLayer *layers;
	BpeVocab	v;
	LlamaState	st;
	char	   *text;
	float	   *all;
	void	   *st_mem;
	int			tl = 0,
				token = BPE_BOS;
	const int	nchecks = 5;

	if (dir == NULL || dir[0] == '\0')
		dir = "../shared/data";
	snprintf(path, sizeof(path), "%s/stories260K/stories260K.bin", dir);
	ckpt = read_file(path, &clen);
	snprintf(path, sizeof(path), "%s/stories260K/tok512.bin", dir);
	tokf = read_file(path, &tlen);
	snprintf(path, sizeof(path), "%s/stories260K/tinystories_valid_head.txt", dir);
	valid = read_file(path, &vlen);
	if (!ckpt || !tokf || !valid)
	{
		skip(nchecks, "no stories260K data (set PGQUANT_DATA_DIR to a directory holding stories260K/)");
		return;
	}

	ok(l2c_parse_checkpoint(ckpt, clen, &lc, NULL, err) && l2c_tensor_count(&lc) == 49,
	   "stories260K.bin: header valid, 49 tensors");
	ts = malloc(sizeof(L2cTensor) * l2c_tensor_count(&lc));
	tk = malloc(sizeof(L2cToken) * lc.vocab_size);
	ok(l2c_parse_checkpoint(ckpt, clen, &lc, ts, err) &&
	   l2c_parse_tokenizer(tokf, tlen, lc.vocab_size, tk, &maxlen, err) && maxlen == 7,
	   "every float finite, tok512.bin parses completely (max token length 7)");

	/* the model straight from the file's bytes (aligned copies) */
	m.c = (LlamaConfig) {lc.dim, lc.hidden_dim, lc.n_layers, lc.n_heads, lc.n_kv_heads, lc.vocab_size,
		lc.seq_len, 1e-5f, 10000.0f};
	layers = calloc(lc.n_layers, sizeof(LlamaLayer));
	m.layers = layers;
	all = malloc(clen);
	{
		int			i = 0;

		memcpy(all, ckpt, clen);
#define F(t) ((const float *) ((const uint8_t *) all + (t).offset))
#define MAT(t) ((LlamaMat) {(t).shape[0], (t).shape[1], F(t), NULL, NULL})
		m.embed = MAT(ts[i]);
		i++;
		for (int l = 0; l < lc.n_layers; l++)
			layers[l].attn_norm = F(ts[i++]);
		for (int l = 0; l < lc.n_layers; l++)
			layers[l].wq = MAT(ts[i]), i++;
		for (int l = 0; l < lc.n_layers; l++)
			layers[l].wk = MAT(ts[i]), i++;
		for (int l = 0; l < lc.n_layers; l++)
			layers[l].wv = MAT(ts[i]), i++;
		for (int l = 0; l < lc.n_layers; l++)
			layers[l].wo = MAT(ts[i]), i++;
		for (int l = 0; l < lc.n_layers; l++)
			layers[l].ffn_norm = F(ts[i++]);
		for (int l = 0; l < lc.n_layers; l++)
			layers[l].w1 = MAT(ts[i]), i++;
		for (int l = 0; l < lc.n_layers; l++)
			layers[l].w2 = MAT(ts[i]), i++;
		for (int l = 0; l < lc.n_layers; l++)
			layers[l].w3 = MAT(ts[i]), i++;
		m.final_norm = F(ts[i]);
		m.cls = m.embed;
#undef MAT
#undef F
	}
	v.n = lc.vocab_size;
	v.pieces = malloc(sizeof(char *) * v.n);
	v.lens = malloc(sizeof(int) * v.n);
	v.scores = malloc(sizeof(float) * v.n);
	v.sorted = malloc(sizeof(int) * v.n);
	v.max_len = 0;
	for (int i = 0; i < v.n; i++)
	{
		v.pieces[i] = malloc(tk[i].len + 1);
		memcpy(v.pieces[i], tokf + tk[i].offset, tk[i].len);
		v.pieces[i][tk[i].len] = 0;
		((int *) v.lens)[i] = tk[i].len;
		((float *) v.scores)[i] = tk[i].score;
		if (tk[i].len > v.max_len)
			v.max_len = tk[i].len;
	}
	bpe_sort(&v);

	/* greedy, 256 steps from BOS, as run.c does */
	st_mem = malloc(llama_state_bytes(&m, 256));
	llama_state_init(&st, &m, 256, st_mem);
	text = malloc(8192);
	for (int pos = 0; pos < 256; pos++)
	{
		int			next = llama_argmax(llama_forward(&m, &st, token, pos), v.n);
		const char *p;
		char		byte[1];
		int			l;

		if (next == BPE_BOS)
			break;
		l = bpe_decode(&v, token, next, byte, &p);
		memcpy(text + tl, p, l);
		tl += l;
		token = next;
	}
	text[tl] = 0;
	ok(strcmp(text, published_sample) == 0, "greedy decoding reproduces llama2.c's published sample (%d bytes)", tl);
	if (strcmp(text, published_sample) != 0)
		printf("# got: %s\n", text);

	/* mean NLL over paragraphs 2..101 of the validation head, each from BOS */
	{
		char	   *s = (char *) valid;
		int			para = 0,
					ntok = 0;
		double		nll = 0.0;
		int		   *tokens = malloc(sizeof(int) * (vlen + 3));
		char	   *scratch = malloc(bpe_work_bytes(&v, (int) vlen));
		LlamaState	ps;
		void	   *ps_mem = malloc(llama_state_bytes(&m, 512));

		llama_state_init(&ps, &m, 512, ps_mem);
		while (*s && para < 101)
		{
			char	   *end = strstr(s, "\n\n");
			char	   *a = s,
					   *b;

			if (end == NULL)
				end = s + strlen(s);
			b = end;
			/* trim spaces and newlines at both ends */
			while (a < b && (*a == ' ' || *a == '\n'))
				a++;
			while (b > a && (b[-1] == ' ' || b[-1] == '\n'))
				b--;
			if (b > a)
			{
				para++;
				if (para >= 2)
				{
					int			n = bpe_encode(&v, a, (int) (b - a), true, false, tokens, scratch, NULL);

					for (int i = 1; i < n; i++)
						nll += llama_nll(llama_forward(&m, &ps, tokens[i - 1], i - 1), v.n, tokens[i]);
					ntok += n - 1;
				}
			}
			s = *end ? end + 2 : end;
		}
		ok(ntok == 9602, "paragraphs 2-101 of the validation head are 9,602 tokens (got %d)", ntok);
		ok(fabs(nll / ntok - 1.427) < 0.002, "their mean NLL is 1.427 nats/token (got %.4f)", nll / ntok);
		free(ps_mem);
		free(scratch);
		free(tokens);
	}
	for (int i = 0; i < v.n; i++)
		free(v.pieces[i]);
	free(v.pieces);
	free((void *) v.lens);
	free((void *) v.scores);
	free((void *) v.sorted);
	free(text);
	free(st_mem);
	free(all);
	free(layers);
	free(tk);
	free(ts);
	free(ckpt);
	free(tokf);
	free(valid);
}

int
main(void)
{
	rng_seed(0x853c49e6748fea9bULL);
	qk_init();
	test_tokenizer();
	test_forward(false);
	test_forward(true);
	test_stories();
	return done_testing();
}
