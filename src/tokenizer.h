/*
 * tokenizer.h: the byte-pair-encoding tokenizer of llama2.c / sentencepiece
 * models (floor 1, no PostgreSQL headers).
 *
 * Encoding: the text (UTF-8) gets a leading " " when it is not empty (the
 * sentencepiece "dummy prefix"), each code point becomes its token, or, when
 * the vocabulary has none, one byte-fallback token per byte (the pieces
 * <0x00>..<0xFF>); then, repeatedly, the adjacent pair whose concatenation is
 * the vocabulary piece with the highest score is merged (the leftmost of
 * equal scores), until no pair is in the vocabulary.  BOS (id 1) and EOS
 * (id 2) are added on request.
 *
 * Decoding: a piece "<0xHH>" is the byte 0xHH; after BOS a piece's leading
 * space is dropped (it is the dummy prefix).
 */
#ifndef PGQUANT_TOKENIZER_H
#define PGQUANT_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#define BPE_BOS 1
#define BPE_EOS 2

typedef struct BpeVocab
{
	int			n;
	char	  **pieces;			/* n pieces, each NUL-terminated after lens[i] bytes */
	const int  *lens;
	const float *scores;
	int			max_len;		/* longest piece */
	int		   *sorted;			/* ids sorted by piece bytes (bpe_sort) */
} BpeVocab;

/* fill v->sorted (n ints, caller's memory) so pieces can be looked up */
void		bpe_sort(BpeVocab *v);

/* the id of the piece of exactly len bytes at s, or -1 */
int			bpe_lookup(const BpeVocab *v, const char *s, int len);

/*
 * Tokens of text (len bytes of UTF-8).  tokens needs room for len + 3 ids;
 * work for bpe_work_bytes(v, len) bytes.  Returns the number of tokens.
 * interrupt, when set, is called every few thousand merges.
 */
size_t		bpe_work_bytes(const BpeVocab *v, int len);
int			bpe_encode(const BpeVocab *v, const char *text, int len, bool bos, bool eos,
					   int *tokens, void *work, void (*interrupt) (void));

/*
 * The bytes token contributes after prev: *out points at them (a piece, or
 * byte[0] for a byte token); returns their count.  An id outside the
 * vocabulary contributes nothing.
 */
int			bpe_decode(const BpeVocab *v, int prev, int token, char byte[1], const char **out);

/*
 * Copy src to dst (room for 3 * len bytes) as valid UTF-8: each byte that
 * does not start a complete, valid sequence, and each NUL, becomes U+FFFD.
 * Returns the bytes written.
 */
size_t		bpe_utf8_sanitize(const char *src, size_t len, char *dst);

#endif							/* PGQUANT_TOKENIZER_H */
