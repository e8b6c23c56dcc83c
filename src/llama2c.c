/*
 * llama2c.c: validation and parsing of llama2.c checkpoints and tokenizers
 * (formats in llama2c.h).  Every size is checked before it is used, so a
 * truncated, padded or malformed file gives an error, never a read past the
 * buffer.
 */
#include "llama2c.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define FAIL(...) \
	do { if (err) snprintf(err, L2C_ERRLEN, __VA_ARGS__); return false; } while (0)

static int32_t
read_i32(const uint8_t *p)
{
	int32_t		v;

	memcpy(&v, p, 4);
	return v;
}

bool
l2c_check_config(const L2cConfig *c, char *err)
{
	if (c->dim < 1 || c->dim > L2C_MAX_DIM)
		FAIL("Field dim must be between 1 and %d, got %d", L2C_MAX_DIM, c->dim);
	if (c->hidden_dim < 1 || c->hidden_dim > 16 * L2C_MAX_DIM)
		FAIL("Field hidden_dim must be between 1 and %d, got %d", 16 * L2C_MAX_DIM, c->hidden_dim);
	if (c->n_layers < 1 || c->n_layers > L2C_MAX_LAYERS)
		FAIL("Field n_layers must be between 1 and %d, got %d", L2C_MAX_LAYERS, c->n_layers);
	if (c->n_heads < 1 || c->dim % c->n_heads != 0)
		FAIL("Field n_heads must be positive and divide dim %d, got %d", c->dim, c->n_heads);
	if (c->n_kv_heads < 1 || c->n_heads % c->n_kv_heads != 0)
		FAIL("Field n_kv_heads must be positive and divide n_heads %d, got %d", c->n_heads, c->n_kv_heads);
	if ((c->dim / c->n_heads) % 2 != 0)
		FAIL("The head size dim / n_heads must be even for rotary embeddings, got %d",
			 c->dim / c->n_heads);
	if (c->vocab_size < 1 || c->vocab_size > L2C_MAX_VOCAB)
		FAIL("Field vocab_size must be between 1 and %d, got %d", L2C_MAX_VOCAB, c->vocab_size);
	if (c->seq_len < 1 || c->seq_len > L2C_MAX_SEQ)
		FAIL("Field seq_len must be between 1 and %d, got %d", L2C_MAX_SEQ, c->seq_len);
	return true;
}

int
l2c_tensor_count(const L2cConfig *c)
{
	/* embedding, 9 per layer, final norm, two RoPE tables, maybe a classifier */
	return 1 + 9 * c->n_layers + 3 + (c->shared_classifier ? 0 : 1);
}

/* append one tensor at *off and advance *off past its floats */
static void
add_tensor(L2cTensor *t, int *n, const char *name, int ndim, int32_t d0, int32_t d1, size_t *off)
{
	L2cTensor  *x = &t[(*n)++];

	snprintf(x->name, sizeof(x->name), "%s", name);
	x->ndim = ndim;
	x->shape[0] = d0;
	x->shape[1] = ndim == 2 ? d1 : 0;
	x->numel = ndim == 2 ? (int64_t) d0 * d1 : d0;
	x->offset = *off;
	*off += (size_t) x->numel * 4;
}

/*
 * Lay out every tensor of a checked config (offsets from the file start);
 * returns the file size the config calls for.  With tensors NULL only the
 * size is computed.  The bounds in l2c_check_config keep this below 2^62.
 */
static size_t
layout(const L2cConfig *c, L2cTensor *tensors)
{
	int32_t		head = c->dim / c->n_heads;
	int32_t		kv_dim = head * c->n_kv_heads;
	int64_t		per_layer = (int64_t) c->dim * 2 + (int64_t) c->dim * c->dim * 2 +
		(int64_t) kv_dim * c->dim * 2 + (int64_t) c->hidden_dim * c->dim * 3;
	int64_t		floats = (int64_t) c->vocab_size * c->dim + per_layer * c->n_layers +
		c->dim + (int64_t) c->seq_len * head;
	size_t		off = L2C_HEADER_BYTES;
	int			n = 0;
	char		name[L2C_NAME_LEN];

	if (!c->shared_classifier)
		floats += (int64_t) c->vocab_size * c->dim;
	if (tensors == NULL)
		return L2C_HEADER_BYTES + (size_t) floats * 4;

	/* the file stacks each kind over all layers: walk it in file order */
	add_tensor(tensors, &n, "tok_embeddings", 2, c->vocab_size, c->dim, &off);
	for (int l = 0; l < c->n_layers; l++)
	{
		snprintf(name, sizeof(name), "layers.%d.attention_norm", l);
		add_tensor(tensors, &n, name, 1, c->dim, 0, &off);
	}
	for (int kind = 0; kind < 4; kind++)
	{
		static const char *const wn[] = {"wq", "wk", "wv", "wo"};
		int32_t		rows = kind == 1 || kind == 2 ? kv_dim : c->dim;

		for (int l = 0; l < c->n_layers; l++)
		{
			snprintf(name, sizeof(name), "layers.%d.attention.%s", l, wn[kind]);
			add_tensor(tensors, &n, name, 2, rows, c->dim, &off);
		}
	}
	for (int l = 0; l < c->n_layers; l++)
	{
		snprintf(name, sizeof(name), "layers.%d.ffn_norm", l);
		add_tensor(tensors, &n, name, 1, c->dim, 0, &off);
	}
	for (int kind = 0; kind < 3; kind++)
	{
		for (int l = 0; l < c->n_layers; l++)
		{
			snprintf(name, sizeof(name), "layers.%d.feed_forward.w%d", l, kind + 1);
			if (kind == 1)
				add_tensor(tensors, &n, name, 2, c->dim, c->hidden_dim, &off);
			else
				add_tensor(tensors, &n, name, 2, c->hidden_dim, c->dim, &off);
		}
	}
	add_tensor(tensors, &n, "norm", 1, c->dim, 0, &off);
	add_tensor(tensors, &n, "freq_cis_real", 2, c->seq_len, head / 2, &off);
	add_tensor(tensors, &n, "freq_cis_imag", 2, c->seq_len, head / 2, &off);
	if (!c->shared_classifier)
		add_tensor(tensors, &n, "output", 2, c->vocab_size, c->dim, &off);
	return off;
}

bool
l2c_parse_checkpoint(const uint8_t *buf, size_t len, L2cConfig *c, L2cTensor *tensors, char *err)
{
	int32_t		vocab;
	size_t		want;

	if (len < L2C_HEADER_BYTES)
		FAIL("The file has %zu bytes, fewer than the %d of its header", len, L2C_HEADER_BYTES);
	memset(c, 0, sizeof(*c));
	c->dim = read_i32(buf);
	c->hidden_dim = read_i32(buf + 4);
	c->n_layers = read_i32(buf + 8);
	c->n_heads = read_i32(buf + 12);
	c->n_kv_heads = read_i32(buf + 16);
	vocab = read_i32(buf + 20);
	c->seq_len = read_i32(buf + 24);
	/* llama2.c marks a separate classifier with a negative vocabulary size */
	c->shared_classifier = vocab > 0;
	c->vocab_size = vocab < 0 && vocab != INT32_MIN ? -vocab : vocab;
	if (!l2c_check_config(c, err))
		return false;

	want = layout(c, NULL);
	if (len < want)
		FAIL("The file is truncated: its header calls for %zu bytes, but it has %zu", want, len);
	if (len > want)
		FAIL("The file has %zu bytes after the %zu its header calls for", len - want, want);
	if (tensors == NULL)
		return true;
	if (layout(c, tensors) != want)
		FAIL("Internal error: tensor layout disagrees with the file size");

	for (int i = 0; i < l2c_tensor_count(c); i++)
	{
		const uint8_t *p = buf + tensors[i].offset;

		for (int64_t k = 0; k < tensors[i].numel; k++)
		{
			float		f;

			memcpy(&f, p + k * 4, 4);
			if (!isfinite(f))
				FAIL("Tensor \"%s\" has a non-finite value at element %lld",
					 tensors[i].name, (long long) k);
		}
	}
	return true;
}

bool
l2c_parse_tokenizer(const uint8_t *buf, size_t len, int32_t vocab_size,
					L2cToken *tokens, int32_t *max_token_length, char *err)
{
	size_t		off = 4;

	if (len < 4)
		FAIL("The tokenizer file has %zu bytes, fewer than the 4 of its header", len);
	*max_token_length = read_i32(buf);
	if (*max_token_length < 1 || *max_token_length > L2C_MAX_TOKEN_LEN)
		FAIL("Field max_token_length must be between 1 and %d, got %d",
			 L2C_MAX_TOKEN_LEN, *max_token_length);
	for (int32_t i = 0; i < vocab_size; i++)
	{
		float		score;
		int32_t		n;

		if (len - off < 8)
			FAIL("The tokenizer file is truncated in token %d of %d", i, vocab_size);
		memcpy(&score, buf + off, 4);
		n = read_i32(buf + off + 4);
		off += 8;
		if (!isfinite(score))
			FAIL("Token %d has a non-finite score", i);
		if (n < 0 || n > *max_token_length)
			FAIL("Token %d has length %d, outside 0..max_token_length %d", i, n, *max_token_length);
		if (len - off < (size_t) n)
			FAIL("The tokenizer file is truncated in token %d of %d", i, vocab_size);
		tokens[i].score = score;
		tokens[i].len = n;
		tokens[i].offset = off;
		off += (size_t) n;
	}
	if (off != len)
		FAIL("The tokenizer file has %zu bytes after its %d tokens", len - off, vocab_size);
	return true;
}
