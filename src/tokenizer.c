/*
 * tokenizer.c: BPE encoding and decoding for llama2.c vocabularies (see
 * tokenizer.h).  Pieces are looked up by binary search over the ids sorted
 * by their bytes.  Merging keeps the symbols in a linked list and the
 * candidate merges in a heap, so a text of n symbols takes O(n log n)
 * rather than the O(n^2) of rescanning after each merge; the order of
 * merges is the rescanning one (best score, then leftmost).
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

/*
 * A candidate merge of the symbol at left with its right neighbour.  The
 * heap pops the highest score, then the leftmost: the pair a full rescan
 * would pick, as llama2.c does, without rescanning.  Entries go stale when
 * either symbol has been merged since; stale ones are skipped when popped.
 */
typedef struct Cand
{
	float		score;
	int			left;
	int			lid;			/* the two symbols' ids when the entry was made */
	int			rid;
	int			id;				/* the merged piece */
} Cand;

static bool
cand_before(const Cand *a, const Cand *b)
{
	return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static void
heap_push(Cand *h, int *n, Cand c)
{
	int			i = (*n)++;

	while (i > 0 && cand_before(&c, &h[(i - 1) / 2]))
	{
		h[i] = h[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	h[i] = c;
}

static Cand
heap_pop(Cand *h, int *n)
{
	Cand		top = h[0],
				last = h[--(*n)];
	int			i = 0;

	for (;;)
	{
		int			c = 2 * i + 1;

		if (c >= *n)
			break;
		if (c + 1 < *n && cand_before(&h[c + 1], &h[c]))
			c++;
		if (!cand_before(&h[c], &last))
			break;
		h[i] = h[c];
		i = c;
	}
	if (*n > 0)
		h[i] = last;
	return top;
}

size_t
bpe_work_bytes(const BpeVocab *v, int len)
{
	size_t		n = (size_t) len + 2;

	/* prev and next links, the heap (one entry per pair, two per merge), the pair buffer */
	return n * 2 * sizeof(int) + n * 3 * sizeof(Cand) + 2 * (size_t) v->max_len + 16;
}

/* push the merge of symbol a with its right neighbour b, when their concatenation is a piece */
static void
consider(const BpeVocab *v, const int *sym, int a, int b, Cand *heap, int *nheap, char *buf)
{
	int			la = v->lens[sym[a]],
				lb = v->lens[sym[b]];
	int			id;

	if (la + lb > v->max_len)
		return;
	memcpy(buf, v->pieces[sym[a]], la);
	memcpy(buf + la, v->pieces[sym[b]], lb);
	id = bpe_lookup(v, buf, la + lb);
	if (id >= 0)
		heap_push(heap, nheap, (Cand) {v->scores[id], a, sym[a], sym[b], id});
}

int
bpe_encode(const BpeVocab *v, const char *text, int len, bool bos, bool eos,
		   int *tokens, void *work, void (*interrupt) (void))
{
	int			n = 0;
	int			i = 0;
	size_t		cap = (size_t) len + 2;
	int		   *prev = work;
	int		   *next = prev + cap;
	Cand	   *heap = (Cand *) (next + cap);
	char	   *buf = (char *) (heap + 3 * cap);
	int		   *sym = tokens + (bos ? 1 : 0);
	int			nheap = 0,
				merges = 0,
				out;

	/* the symbols: the dummy prefix, then code points or their bytes */
	if (len > 0)
	{
		int			sp = bpe_lookup(v, " ", 1);

		if (sp >= 0)
			sym[n++] = sp;
	}
	while (i < len)
	{
		int			start = i;
		int			id;

		i++;
		while (i < len && i - start < 4 && ((unsigned char) text[i] & 0xC0) == 0x80)
			i++;
		id = bpe_lookup(v, text + start, i - start);
		if (id >= 0)
			sym[n++] = id;
		else
			for (int k = start; k < i; k++)
				sym[n++] = byte_token(v, (unsigned char) text[k]);
	}

	/* merge the best pair until none is a piece; sym[k] < 0 marks a merged-away symbol */
	for (int k = 0; k < n; k++)
	{
		prev[k] = k - 1;
		next[k] = k + 1 < n ? k + 1 : -1;
	}
	for (int k = 0; k + 1 < n; k++)
		consider(v, sym, k, k + 1, heap, &nheap, buf);
	while (nheap > 0)
	{
		Cand		c = heap_pop(heap, &nheap);
		int			a = c.left,
					b = next[a];

		if (sym[a] != c.lid || b < 0 || sym[b] != c.rid)
			continue;			/* stale: a symbol changed since */
		if (interrupt && (++merges & 4095) == 0)
			interrupt();
		sym[a] = c.id;
		sym[b] = -1;
		next[a] = next[b];
		if (next[b] >= 0)
			prev[next[b]] = a;
		if (prev[a] >= 0)
			consider(v, sym, prev[a], a, heap, &nheap, buf);
		if (next[a] >= 0)
			consider(v, sym, a, next[a], heap, &nheap, buf);
	}

	/* compact the survivors in order */
	out = bos ? 1 : 0;
	if (bos)
		tokens[0] = BPE_BOS;
	for (int k = 0; k < n; k++)
		if (sym[k] >= 0)
			tokens[out++] = sym[k];
	if (eos)
		tokens[out++] = BPE_EOS;
	return out;
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
