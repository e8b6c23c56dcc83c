/*
 * textio.c: helpers shared by the text input and output of pgquant's types
 * (qtensor, pq_codebook, rvq_codebook, pqcode), which all have the form
 * type(key=value,...):BASE64.
 */
#include "pgquant.h"

#include <ctype.h>

/* errors of text input quote at most this much of the literal */
#define LITERAL_QUOTE 60

/* Raise invalid_text_representation for a literal of the named type. */
void
PgqTextSyntaxError(const char *type, const char *lit, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
			 errmsg("invalid input syntax for type %s: \"%.*s%s\"", type,
					LITERAL_QUOTE, lit, strlen(lit) > LITERAL_QUOTE ? "..." : ""),
			 errdetail("%s", detail)));
}

/* Parse a decimal int32 that spans the whole of s. */
bool
PgqParseInt32(const char *s, int32 *out)
{
	char	   *end;
	long		v;

	if (!isdigit((unsigned char) s[0]) && !(s[0] == '-' && isdigit((unsigned char) s[1])))
		return false;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < PG_INT32_MIN || v > PG_INT32_MAX)
		return false;
	*out = (int32) v;
	return true;
}

/* Exact length of padded base64 for n bytes (pg_b64_enc_len is only a bound). */
int
PgqBase64Len(size_t n)
{
	return (int) (4 * ((n + 2) / 3));
}
