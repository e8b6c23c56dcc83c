/*
 * llama2c.h: reading llama2.c checkpoints and tokenizers (floor 1, no
 * PostgreSQL headers).
 *
 * Checkpoint, "version 0" of llama2.c (all little-endian):
 *   7 x int32  dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len
 *              (a negative vocab_size means a separate classifier follows)
 *   float32 tensors, each row-major [out, in], in this order:
 *     token_embedding [vocab, dim]       rms_att  [n_layers, dim]
 *     wq [n_layers, dim, dim]            wk [n_layers, kv_dim, dim]
 *     wv [n_layers, kv_dim, dim]         wo [n_layers, dim, dim]
 *     rms_ffn [n_layers, dim]            w1 [n_layers, hidden, dim]
 *     w2 [n_layers, dim, hidden]         w3 [n_layers, hidden, dim]
 *     rms_final [dim]                    freq_cis_real [seq_len, head_size / 2]
 *     freq_cis_imag [seq_len, head_size / 2]
 *     wcls [vocab, dim]                  (only when vocab_size < 0)
 *   where head_size = dim / n_heads and kv_dim = head_size * n_kv_heads.
 *
 * The parser splits the stacked per-layer arrays into one tensor per layer
 * and names them as Meta's Llama checkpoints do (layers.L.attention.wq, ...).
 *
 * Tokenizer (tokenizer.bin / tok512.bin): int32 max_token_length, then for
 * each of vocab_size tokens: float32 score, int32 len, len bytes.
 */
#ifndef PGQUANT_LLAMA2C_H
#define PGQUANT_LLAMA2C_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#define L2C_HEADER_BYTES	28
#define L2C_NAME_LEN		64
/* generous bounds that keep every size computation far from overflow */
#define L2C_MAX_DIM			(1 << 16)
#define L2C_MAX_LAYERS		1024
#define L2C_MAX_VOCAB		(1 << 20)
#define L2C_MAX_SEQ			(1 << 20)
#define L2C_MAX_TOKEN_LEN	1024
#define L2C_ERRLEN			256

/* a model's shape; the same fields are stored as pgquant.models.config */
typedef struct L2cConfig
{
	int32_t		dim;
	int32_t		hidden_dim;
	int32_t		n_layers;
	int32_t		n_heads;
	int32_t		n_kv_heads;
	int32_t		vocab_size;		/* always positive here */
	int32_t		seq_len;
	bool		shared_classifier;	/* the classifier is the embedding */
} L2cConfig;

/* one tensor of a checkpoint: where its floats are and what shape they have */
typedef struct L2cTensor
{
	char		name[L2C_NAME_LEN];
	int			ndim;			/* 1 or 2 */
	int32_t		shape[2];
	int64_t		numel;
	size_t		offset;			/* byte offset of the first float in the file */
} L2cTensor;

/* one token of a tokenizer file */
typedef struct L2cToken
{
	float		score;
	int32_t		len;
	size_t		offset;			/* byte offset of the piece in the file */
} L2cToken;

/*
 * Check a configuration's fields and their relations (heads divide dim,
 * kv heads divide heads, an even head size for RoPE, limits above).
 * Returns false with a sentence (capitalized, no period) in err.
 */
bool		l2c_check_config(const L2cConfig *cfg, char *err);

/* the number of tensors l2c_parse_checkpoint fills, for a checked config */
int			l2c_tensor_count(const L2cConfig *cfg);

/*
 * Parse a checkpoint of len bytes: the header into *cfg, then every tensor
 * into tensors[0 .. l2c_tensor_count(cfg) - 1] (the caller allocates it
 * after a first call with tensors = NULL, which checks the header and the
 * exact file size only).  Checks that the file is exactly as long as the
 * header says and, when tensors is given, that every float is finite.
 * Returns false with a sentence in err.
 */
bool		l2c_parse_checkpoint(const uint8_t *buf, size_t len, L2cConfig *cfg,
								 L2cTensor *tensors, char *err);

/*
 * Parse a tokenizer of len bytes holding vocab_size tokens into tokens
 * (vocab_size entries) and *max_token_length.  Checks every length against
 * max_token_length and the bytes left, that scores are finite, and that no
 * byte is left over.  Returns false with a sentence in err.
 */
bool		l2c_parse_tokenizer(const uint8_t *buf, size_t len, int32_t vocab_size,
								L2cToken *tokens, int32_t *max_token_length, char *err);

#endif							/* PGQUANT_LLAMA2C_H */
