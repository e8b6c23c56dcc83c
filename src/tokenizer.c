/*
 * tokenizer.c: BPE encoding and decoding for llama2.c vocabularies (see
 * tokenizer.h).  Pieces are looked up by binary search over the ids sorted
 * by their bytes; merging rescans the sequence for the best pair after each
 * merge, which is quadratic in the text's token count but simple, and ties
 * go to the leftmost pair, as in llama2.c.
 */
#include "tokenizer.h"

#include <stdio.h>
#include <string.h>

/* byte-wise order of two pieces (memcmp, then length) */
static int
piece_cmp(const char *a, int alen, const char *b, int blen)
{
	int			c = memcmp(a, b, alen < blen ? alen : blen);

	if (c != 0)
		return c;
	return alen < blen ? -1 : alen > blen ? 1 : 0;
}

static int
id_cmp(const BpeVocab *v, int x, int y)
{
	int			c = piece_cmp(v->pieces[x], v->lens[x], v->pieces[y], v->lens[y]);

	return c != 0 ? c : (x < y ? -1 : x > y);
}

/* heap sort of v->sorted by piece (in place, no allocation) */
static void
sift_down(BpeVocab *v, int *a, int start, int end)
{
	int			root = start;

	while (2 * root + 1 < end)
	{
		int			child = 2 * root + 1;
		int			t;

		if (child + 1 < end && id_cmp(v, a[child], a[child + 1]) < 0)
			child++;
		if (id_cmp(v, a[root], a[child]) >= 0)
			return;
		t = a[root];
		a[root] = a[child];
		a[child] = t;
		root = child;
	}
}

void
bpe_sort(BpeVocab *v)
{
	int		   *a = v->sorted;

	for (int i = 0; i < v->n; i++)
		a[i] = i;
	for (int s = v->n / 2 - 1; s >= 0; s--)
		sift_down(v, a, s, v->n);
	for (int end = v->n - 1; end > 0; end--)
	{
		int			t = a[0];

		a[0] = a[end];
		a[end] = t;
		sift_down(v, a, 0, end);
	}
}

int
bpe_lookup(const BpeVocab *v, const char *s, int len)
{
	int			lo = 0,
				hi = v->n - 1;

	while (lo <= hi)
	{
		int			mid = lo + (hi - lo) / 2;
		int			id = v->sorted[mid];
		int			c = piece_cmp(v->pieces[id], v->lens[id], s, len);

		if (c == 0)
		{
			/* equal pieces: the lowest id wins, as the first one would in a scan */
			while (mid > 0 && piece_cmp(v->pieces[v->sorted[mid - 1]], v->lens[v->sorted[mid - 1]], s, len) == 0)
				mid--;
			return v->sorted[mid];
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return -1;
}

/* the byte-fallback token of byte b: the piece "<0xHH>", or 0 (<unk>) */
static int
byte_token(const BpeVocab *v, unsigned char b)
{
	char		s[8];
	int			id;

	snprintf(s, sizeof(s), "<0x%02X>", b);
	id = bpe_lookup(v, s, 6);
	return id < 0 ? 0 : id;
}

int
bpe_encode(const BpeVocab *v, const char *text, int len, bool bos, bool eos,
		   int *tokens, char *scratch, void (*interrupt) (void))
{
	int			n = 0;
	int			i = 0;

	if (bos)
		tokens[n++] = BPE_BOS;
	if (len > 0)
	{
		int			sp = bpe_lookup(v, " ", 1);

		if (sp >= 0)
			tokens[n++] = sp;
	}

	/* one token per code point, or one per byte when the code point has none */
	while (i < len)
	{
		int			start = i;
		int			id;

		i++;
		while (i < len && i - start < 4 && ((unsigned char) text[i] & 0xC0) == 0x80)
			i++;
		id = bpe_lookup(v, text + start, i - start);
		if (id >= 0)
			tokens[n++] = id;
		else
			for (int k = start; k < i; k++)
				tokens[n++] = byte_token(v, (unsigned char) text[k]);
	}

	/* merge the best-scoring adjacent pair until none is a piece */
	for (;;)
	{
		float		best = -1e10f;
		int			best_id = -1,
					best_at = -1;
		int			first = bos ? 1 : 0;

		if (interrupt)
			interrupt();
		for (int k = first; k + 1 < n; k++)
		{
			int			a = tokens[k],
						b = tokens[k + 1];
			int			l = v->lens[a] + v->lens[b];
			int			id;

			if (l > v->max_len)
				continue;
			memcpy(scratch, v->pieces[a], v->lens[a]);
			memcpy(scratch + v->lens[a], v->pieces[b], v->lens[b]);
			id = bpe_lookup(v, scratch, l);
			if (id >= 0 && v->scores[id] > best)
			{
				best = v->scores[id];
				best_id = id;
				best_at = k;
			}
		}
		if (best_at < 0)
			break;
		tokens[best_at] = best_id;
		memmove(tokens + best_at + 1, tokens + best_at + 2, sizeof(int) * (n - best_at - 2));
		n--;
	}
	if (eos)
		tokens[n++] = BPE_EOS;
	return n;
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int
bpe_decode(const BpeVocab *v, int prev, int token, char byte[1], const char **out)
{
	const char *p;
	int			l;

	if (token < 0 || token >= v->n)
		return 0;
	p = v->pieces[token];
	l = v->lens[token];
	if (prev == BPE_BOS && l > 0 && p[0] == ' ')
	{
		p++;
		l--;
	}
	if (l == 6 && p[0] == '<' && p[1] == '0' && p[2] == 'x' && p[5] == '>' &&
		hexval(p[3]) >= 0 && hexval(p[4]) >= 0)
	{
		byte[0] = (char) (hexval(p[3]) * 16 + hexval(p[4]));
		*out = byte;
		return 1;
	}
	*out = p;
	return l;
}

/* length of the valid UTF-8 sequence at s (n bytes left), or 0 */
static int
utf8_seq(const unsigned char *s, size_t n)
{
	int			l;
	uint32_t	cp;

	if (s[0] == 0)
		return 0;
	if (s[0] < 0x80)
		return 1;
	if ((s[0] & 0xE0) == 0xC0)
		l = 2, cp = s[0] & 0x1F;
	else if ((s[0] & 0xF0) == 0xE0)
		l = 3, cp = s[0] & 0x0F;
	else if ((s[0] & 0xF8) == 0xF0)
		l = 4, cp = s[0] & 0x07;
	else
		return 0;
	if ((size_t) l > n)
		return 0;
	for (int k = 1; k < l; k++)
	{
		if ((s[k] & 0xC0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[k] & 0x3F);
	}
	/* no overlong forms, no surrogates, nothing past U+10FFFF */
	if ((l == 2 && cp < 0x80) || (l == 3 && cp < 0x800) || (l == 4 && cp < 0x10000) ||
		(cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
		return 0;
	return l;
}

size_t
bpe_utf8_sanitize(const char *src, size_t len, char *dst)
{
	const unsigned char *s = (const unsigned char *) src;
	size_t		i = 0,
				o = 0;

	while (i < len)
	{
		int			l = utf8_seq(s + i, len - i);

		if (l == 0)
		{
			dst[o++] = (char) 0xEF;
			dst[o++] = (char) 0xBF;
			dst[o++] = (char) 0xBD;
			i++;
		}
		else
		{
			memcpy(dst + o, s + i, l);
			o += l;
			i += l;
		}
	}
	return o;
}
