/*
 * llama.h: the forward pass of the llama2.c (Llama 2) architecture over
 * fp32 and/or quantized weights (floor 1, no PostgreSQL headers).
 *
 * Per token at position pos, with x the residual stream (dim floats):
 *   x = embedding[token]
 *   per layer:  xb = rmsnorm(x) * attention_norm
 *               q = wq xb, k = wk xb, v = wv xb      (k, v into the cache at pos)
 *               rotary embedding of q and k: pairs (2i, 2i+1) of each head
 *                 turned by pos * theta^(-2i / head_size)
 *               per head h: attention over positions 0..pos with the key/value
 *                 head h / (n_heads / n_kv_heads) (grouped-query attention),
 *                 scores / sqrt(head_size), softmax
 *               x += wo (heads concatenated)
 *               xb = rmsnorm(x) * ffn_norm
 *               x += w2 (silu(w1 xb) * (w3 xb))      (SwiGLU)
 *   logits = classifier (rmsnorm(x) * norm)
 * rmsnorm(x) = x / sqrt(mean(x^2) + eps).  Every matrix is [out, in]; a
 * quantized one is multiplied by qk_gemv, an fp32 one by OpenBLAS sgemv.
 *
 * Calibration reads the input vector of every linear layer through an
 * optional capture hook in the state (NULL by default: generation and
 * scoring pay one untaken branch per site).
 */
#ifndef PGQUANT_LLAMA_H
#define PGQUANT_LLAMA_H

#include "qformat.h"

typedef struct LlamaConfig
{
	int			dim;
	int			hidden_dim;
	int			n_layers;
	int			n_heads;
	int			n_kv_heads;
	int			vocab_size;
	int			seq_len;
	float		norm_eps;		/* 1e-5 in llama2.c */
	float		rope_theta;		/* 10000 */
} LlamaConfig;

/* a weight matrix [rows = out, cols = in]: fp32 values or a qtensor */
typedef struct LlamaMat
{
	int32_t		rows;
	int32_t		cols;
	const float *f;
	const uint8_t *q;
	const QtLayout *l;
} LlamaMat;

typedef struct LlamaLayer
{
	const float *attn_norm;		/* dim */
	const float *ffn_norm;		/* dim */
	LlamaMat	wq,
				wk,
				wv,
				wo,
				w1,
				w2,
				w3;
} LlamaLayer;

typedef struct LlamaModel
{
	LlamaConfig c;
	LlamaMat	embed;			/* [vocab, dim] */
	LlamaMat	cls;			/* [vocab, dim]: the embedding when shared */
	const float *final_norm;	/* dim */
	LlamaLayer *layers;
} LlamaModel;

/*
 * The four input vectors of a layer's seven matrices (matrices that read
 * the same vector share a site):
 *   ATTN_IN     wq, wk, wv   rmsnorm(x) * attention_norm          dim floats
 *   ATTN_OUT    wo           the attention heads concatenated      dim
 *   FFN_IN      w1, w3       rmsnorm(x) * ffn_norm                 dim
 *   FFN_HIDDEN  w2           silu(w1 xb) * (w3 xb)                 hidden_dim
 */
typedef enum LlamaSite
{
	LLAMA_SITE_ATTN_IN = 0,
	LLAMA_SITE_ATTN_OUT,
	LLAMA_SITE_FFN_IN,
	LLAMA_SITE_FFN_HIDDEN,
	LLAMA_NSITES
} LlamaSite;

/* called with each site's vector x (n floats, read-only, valid during the call) */
typedef void (*LlamaCaptureFn) (void *arg, int layer, LlamaSite site, const float *x, int n);

/* per-sequence buffers, all in one caller-provided block */
typedef struct LlamaState
{
	float	   *x,
			   *xb,
			   *xb2,
			   *hb,
			   *hb2,
			   *q,
			   *att,
			   *logits,
			   *kcache,			/* [n_layers][max_pos][kv_dim] */
			   *vcache;
	void	   *work;			/* scratch of the quantized products */
	int			max_pos;
	LlamaCaptureFn capture;		/* NULL (llama_state_init's default): no capture */
	void	   *capture_arg;
} LlamaState;

/* bytes of the state block for sequences of up to max_pos positions */
size_t		llama_state_bytes(const LlamaModel *m, int max_pos);
void		llama_state_init(LlamaState *s, const LlamaModel *m, int max_pos, void *mem);

/* the logits (vocab_size floats, in s) after token at position pos < max_pos */
float	   *llama_forward(const LlamaModel *m, LlamaState *s, int token, int pos);

/* index of the largest logit (the first on ties) */
int			llama_argmax(const float *logits, int n);

/* -log softmax(logits)[target], in double */
double		llama_nll(const float *logits, int n, int target);

/*
 * A token sampled from softmax(logits / temperature) restricted to the
 * smallest set of top tokens whose probability reaches top_p (1: all),
 * with u uniform in [0, 1).  Overwrites logits; scratch needs
 * llama_sample_scratch_bytes(n).
 */
size_t		llama_sample_scratch_bytes(int n);
int			llama_sample(float *logits, int n, float temperature, float top_p, double u, void *scratch);

#endif							/* PGQUANT_LLAMA_H */
