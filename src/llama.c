/*
 * llama.c: the llama2.c forward pass, sampling and scoring (see llama.h).
 * Written from the architecture's description (Llama 2: RMSNorm, rotary
 * position embeddings, grouped-query attention, SwiGLU); the arithmetic is
 * plain fp32 like llama2.c's run.c, so the fp32 model reproduces its output.
 */
#include "llama.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qgemv.h"

#define ALIGN64(x) (((x) + 63) & ~(size_t) 63)

/* scratch bytes of the largest quantized product of the model */
static size_t
mat_work(const LlamaMat *m, size_t cur)
{
	size_t		b;

	if (m->q == NULL)
		return cur;
	b = qk_work_bytes((const QtHeader *) m->q, m->l, 1);
	return b > cur ? b : cur;
}

static size_t
work_bytes(const LlamaModel *m)
{
	size_t		w = 64;

	w = mat_work(&m->cls, w);
	for (int l = 0; l < m->c.n_layers; l++)
	{
		const LlamaLayer *L = &m->layers[l];

		w = mat_work(&L->wq, w);
		w = mat_work(&L->wk, w);
		w = mat_work(&L->wv, w);
		w = mat_work(&L->wo, w);
		w = mat_work(&L->w1, w);
		w = mat_work(&L->w2, w);
		w = mat_work(&L->w3, w);
	}
	return w;
}

size_t
llama_state_bytes(const LlamaModel *m, int max_pos)
{
	const LlamaConfig *c = &m->c;
	size_t		kv_dim = (size_t) c->dim / c->n_heads * c->n_kv_heads;
	size_t		floats = 0;

	floats += ALIGN64((size_t) c->dim) * 4;	/* x, xb, xb2, q */
	floats += ALIGN64((size_t) c->hidden_dim) * 2;
	floats += ALIGN64((size_t) c->n_heads * max_pos);
	floats += ALIGN64((size_t) c->vocab_size);
	floats += ALIGN64((size_t) c->n_layers * max_pos * kv_dim) * 2;
	return floats * sizeof(float) + ALIGN64(work_bytes(m)) + 64;
}

void
llama_state_init(LlamaState *s, const LlamaModel *m, int max_pos, void *mem)
{
	const LlamaConfig *c = &m->c;
	size_t		kv_dim = (size_t) c->dim / c->n_heads * c->n_kv_heads;
	float	   *p = (float *) ALIGN64((uintptr_t) mem);

#define TAKE(field, count) do { s->field = p; p += ALIGN64((size_t) (count)); } while (0)
	TAKE(x, c->dim);
	TAKE(xb, c->dim);
	TAKE(xb2, c->dim);
	TAKE(q, c->dim);
	TAKE(hb, c->hidden_dim);
	TAKE(hb2, c->hidden_dim);
	TAKE(att, (size_t) c->n_heads * max_pos);
	TAKE(logits, c->vocab_size);
	TAKE(kcache, (size_t) c->n_layers * max_pos * kv_dim);
	TAKE(vcache, (size_t) c->n_layers * max_pos * kv_dim);
#undef TAKE
	s->work = p;
	s->max_pos = max_pos;
	s->capture = NULL;
	s->capture_arg = NULL;
}

static void
matvec(const LlamaMat *m, const float *x, float *y, void *work)
{
	if (m->q)
		qk_gemv(QK_ISA_COUNT, m->q, m->l, x, y, work);
	else
		qk_sgemv(m->f, m->rows, m->cols, x, y);
}

static void
rmsnorm(float *o, const float *x, const float *w, int n, float eps)
{
	float		ss = 0.0f;

	for (int j = 0; j < n; j++)
		ss += x[j] * x[j];
	ss = 1.0f / sqrtf(ss / n + eps);
	for (int j = 0; j < n; j++)
		o[j] = w[j] * (ss * x[j]);
}

static void
softmax(float *x, int n)
{
	float		max = x[0],
				sum = 0.0f;

	for (int i = 1; i < n; i++)
		if (x[i] > max)
			max = x[i];
	for (int i = 0; i < n; i++)
	{
		x[i] = expf(x[i] - max);
		sum += x[i];
	}
	for (int i = 0; i < n; i++)
		x[i] /= sum;
}

/* turn the pairs (2i, 2i+1) of each head of vec (heads x head_size) by pos * freq_i */
static void
rope(float *vec, int heads, int head_size, int pos, float theta)
{
	for (int i = 0; i < head_size; i += 2)
	{
		float		freq = 1.0f / powf(theta, i / (float) head_size);
		float		a = pos * freq;
		float		cr = cosf(a),
					ci = sinf(a);

		for (int h = 0; h < heads; h++)
		{
			float	   *p = vec + h * head_size + i;
			float		v0 = p[0],
						v1 = p[1];

			p[0] = v0 * cr - v1 * ci;
			p[1] = v0 * ci + v1 * cr;
		}
	}
}

float *
llama_forward(const LlamaModel *m, LlamaState *s, int token, int pos)
{
	const LlamaConfig *c = &m->c;
	int			dim = c->dim;
	int			head_size = dim / c->n_heads;
	int			kv_dim = head_size * c->n_kv_heads;
	int			kv_mul = c->n_heads / c->n_kv_heads;
	float		inv_sqrt = 1.0f / sqrtf((float) head_size);

	/* the token's embedding row */
	if (m->embed.q)
		qt_dequantize(m->embed.q, m->embed.l, token, token + 1, s->x);
	else
		memcpy(s->x, m->embed.f + (size_t) token * dim, sizeof(float) * dim);

	for (int l = 0; l < c->n_layers; l++)
	{
		const LlamaLayer *L = &m->layers[l];
		size_t		loff = (size_t) l * s->max_pos * kv_dim;
		float	   *k = s->kcache + loff + (size_t) pos * kv_dim;
		float	   *v = s->vcache + loff + (size_t) pos * kv_dim;

		rmsnorm(s->xb, s->x, L->attn_norm, dim, c->norm_eps);
		if (s->capture)
			s->capture(s->capture_arg, l, LLAMA_SITE_ATTN_IN, s->xb, dim);
		matvec(&L->wq, s->xb, s->q, s->work);
		matvec(&L->wk, s->xb, k, s->work);
		matvec(&L->wv, s->xb, v, s->work);
		rope(s->q, c->n_heads, head_size, pos, c->rope_theta);
		rope(k, c->n_kv_heads, head_size, pos, c->rope_theta);

		for (int h = 0; h < c->n_heads; h++)
		{
			const float *qh = s->q + h * head_size;
			float	   *att = s->att + (size_t) h * s->max_pos;
			float	   *out = s->xb + h * head_size;
			size_t		kvo = (size_t) (h / kv_mul) * head_size;

			for (int t = 0; t <= pos; t++)
			{
				const float *kt = s->kcache + loff + (size_t) t * kv_dim + kvo;
				float		score = 0.0f;

				for (int i = 0; i < head_size; i++)
					score += qh[i] * kt[i];
				att[t] = score * inv_sqrt;
			}
			softmax(att, pos + 1);
			memset(out, 0, sizeof(float) * head_size);
			for (int t = 0; t <= pos; t++)
			{
				const float *vt = s->vcache + loff + (size_t) t * kv_dim + kvo;

				for (int i = 0; i < head_size; i++)
					out[i] += att[t] * vt[i];
			}
		}
		if (s->capture)
			s->capture(s->capture_arg, l, LLAMA_SITE_ATTN_OUT, s->xb, dim);
		matvec(&L->wo, s->xb, s->xb2, s->work);
		for (int i = 0; i < dim; i++)
			s->x[i] += s->xb2[i];

		rmsnorm(s->xb, s->x, L->ffn_norm, dim, c->norm_eps);
		if (s->capture)
			s->capture(s->capture_arg, l, LLAMA_SITE_FFN_IN, s->xb, dim);
		matvec(&L->w1, s->xb, s->hb, s->work);
		matvec(&L->w3, s->xb, s->hb2, s->work);
		for (int i = 0; i < c->hidden_dim; i++)
		{
			float		a = s->hb[i];

			s->hb[i] = a * (1.0f / (1.0f + expf(-a))) * s->hb2[i];
		}
		if (s->capture)
			s->capture(s->capture_arg, l, LLAMA_SITE_FFN_HIDDEN, s->hb, c->hidden_dim);
		matvec(&L->w2, s->hb, s->xb, s->work);
		for (int i = 0; i < dim; i++)
			s->x[i] += s->xb[i];
	}
	rmsnorm(s->x, s->x, m->final_norm, dim, c->norm_eps);
	matvec(&m->cls, s->x, s->logits, s->work);
	return s->logits;
}

int
llama_argmax(const float *logits, int n)
{
	int			best = 0;

	for (int i = 1; i < n; i++)
		if (logits[i] > logits[best])
			best = i;
	return best;
}

double
llama_nll(const float *logits, int n, int target)
{
	double		max = logits[0],
				sum = 0.0;

	for (int i = 1; i < n; i++)
		if (logits[i] > max)
			max = logits[i];
	for (int i = 0; i < n; i++)
		sum += exp((double) logits[i] - max);
	return log(sum) - ((double) logits[target] - max);
}

typedef struct ProbIdx
{
	float		p;
	int			i;
} ProbIdx;

static int
prob_desc(const void *a, const void *b)
{
	const ProbIdx *x = a,
			   *y = b;

	if (x->p != y->p)
		return x->p > y->p ? -1 : 1;
	return x->i - y->i;
}

size_t
llama_sample_scratch_bytes(int n)
{
	return sizeof(ProbIdx) * (size_t) n;
}

int
llama_sample(float *logits, int n, float temperature, float top_p, double u, void *scratch)
{
	ProbIdx    *pi = scratch;
	double		total = 0.0,
				acc = 0.0;
	int			keep = n;

	for (int i = 0; i < n; i++)
		logits[i] /= temperature;
	softmax(logits, n);
	for (int i = 0; i < n; i++)
	{
		pi[i].p = logits[i];
		pi[i].i = i;
	}
	qsort(pi, n, sizeof(ProbIdx), prob_desc);
	/* the smallest prefix of the most likely tokens whose mass reaches top_p */
	if (top_p < 1.0f)
	{
		for (keep = 0; keep < n;)
		{
			acc += pi[keep++].p;
			if (acc >= top_p)
				break;
		}
	}
	for (int i = 0; i < keep; i++)
		total += pi[i].p;
	acc = 0.0;
	for (int i = 0; i < keep; i++)
	{
		acc += pi[i].p;
		if (u * total < acc)
			return pi[i].i;
	}
	return pi[keep - 1].i;
}
