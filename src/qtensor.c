/*
 * qtensor.c: the qtensor type's text and binary input and output.
 *
 * Text form (docs/qtensor-format.md):
 *   qtensor(v=1,method=rtn,type=int4,shape=[64,64],group=128,zero=asym,scale=fp16):BASE64
 * optionally with channel_scales=yes, perm=yes and outliers=N before the
 * closing parenthesis.  BASE64 is the wire body, the same bytes that follow
 * the header in the binary form, so both inputs share one decoder.  Input
 * checks the header and the exact payload length before allocating, then
 * every section's contents.
 */
#include "pgquant.h"

#include "common/base64.h"
#include "libpq/pqformat.h"
#include "utils/builtins.h"

PG_FUNCTION_INFO_V1(qtensor_in);
PG_FUNCTION_INFO_V1(qtensor_out);
PG_FUNCTION_INFO_V1(qtensor_recv);
PG_FUNCTION_INFO_V1(qtensor_send);

/* Raise the error a QtStatus stands for; einval_code is the caller's SQLSTATE. */
void
QtensorReportStatus(QtStatus st, const char *err, int einval_code)
{
	if (st == QT_ELIMIT)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("qtensor is too large"),
				 errdetail("%s.", err)));
	if (st != QT_OK)
		ereport(ERROR,
				(errcode(einval_code),
				 errmsg("invalid value for type qtensor"),
				 errdetail("%s.", err)));
}

/* Detoast a stored qtensor and check that its header and size agree. */
QtHeader *
QtensorFromDatum(Datum d, QtLayout *l)
{
	QtHeader   *q = DatumGetQtensorP(d);
	char		err[QT_ERRMSG_LEN];

	if (VARSIZE(q) < QT_HEADER_SIZE ||
		qt_check_header(q, err) != QT_OK ||
		qt_layout(q, l, err) != QT_OK ||
		l->total != VARSIZE(q))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("qtensor value is corrupted")));
	return q;
}

/*
 * Build a qtensor from a checked header and its wire body of exactly
 * l->wire_body bytes, then check the sections; errors use einval_code.
 */
static QtHeader *
qtensor_from_wire_body(const QtHeader *hdr, const QtLayout *l, const uint8 *body, int einval_code)
{
	QtHeader   *q = palloc0(l->total);
	uint8	   *scratch = (hdr->flags & QT_FLAG_PERM) ? palloc(hdr->cols) : NULL;
	char		err[QT_ERRMSG_LEN];

	memcpy(q, hdr, sizeof(QtHeader));
	SET_VARSIZE(q, l->total);
	qt_body_from_wire((uint8 *) q, l, body);
	QtensorReportStatus(qt_check_body((uint8 *) q, l, scratch, err), err, einval_code);
	if (scratch)
		pfree(scratch);
	return q;
}

/* the text header's keys, in the order qtensor_out writes them */
enum
{
	K_V, K_METHOD, K_TYPE, K_SHAPE, K_GROUP, K_ZERO, K_SCALE,
	K_CHSCALE, K_PERM, K_OUTLIERS, NKEYS
};
static const char *const key_names[NKEYS] = {
	"v", "method", "type", "shape", "group", "zero", "scale",
	"channel_scales", "perm", "outliers"
};

/* Fill *h from one key's value; false when the value is malformed. */
static bool
parse_key(int key, char *val, QtHeader *h)
{
	int32		n;

	switch (key)
	{
		case K_V:
			if (!PgqParseInt32(val, &n) || n < 0 || n > 255)
				return false;
			h->version = (uint8) n;
			return true;
		case K_METHOD:
			h->method = (uint8) qt_method_from_name(val);
			return h->method != 0;
		case K_TYPE:
			if (strcmp(val, "nf4") == 0)
			{
				h->encoding = QT_ENC_NF4;
				h->bits = 4;
				return true;
			}
			if (strncmp(val, "int", 3) != 0 || !PgqParseInt32(val + 3, &n) || n < 0 || n > 255)
				return false;
			h->encoding = QT_ENC_INT;
			h->bits = (uint8) n;
			return true;
		case K_SHAPE:
			{
				size_t		len = strlen(val);
				char	   *comma;

				if (len < 3 || val[0] != '[' || val[len - 1] != ']')
					return false;
				val[len - 1] = '\0';
				val++;
				comma = strchr(val, ',');
				if (comma == NULL)
				{
					h->flags |= QT_FLAG_1D;
					h->rows = 1;
					return PgqParseInt32(val, &h->cols);
				}
				*comma = '\0';
				return PgqParseInt32(val, &h->rows) && PgqParseInt32(comma + 1, &h->cols);
			}
		case K_GROUP:
			return PgqParseInt32(val, &h->group_size);
		case K_ZERO:
			if (strcmp(val, "asym") == 0)
				h->flags |= QT_FLAG_ZEROS;
			return strcmp(val, "asym") == 0 || strcmp(val, "sym") == 0;
		case K_SCALE:
			h->scale_type = strcmp(val, "fp16") == 0 ? QT_SCALE_FP16 :
				strcmp(val, "fp32") == 0 ? QT_SCALE_FP32 : 0;
			return h->scale_type != 0;
		case K_CHSCALE:
			h->flags |= QT_FLAG_CHSCALE;
			return strcmp(val, "yes") == 0;
		case K_PERM:
			h->flags |= QT_FLAG_PERM;
			return strcmp(val, "yes") == 0;
		case K_OUTLIERS:
			return PgqParseInt32(val, &h->n_outliers);
	}
	return false;
}

Datum
qtensor_in(PG_FUNCTION_ARGS)
{
	char	   *lit = PG_GETARG_CSTRING(0);
	char	   *s = pstrdup(lit);
	char	   *p,
			   *payload;
	bool		seen[NKEYS] = {0};
	QtHeader	h;
	QtLayout	l;
	char		err[QT_ERRMSG_LEN];
	QtStatus	st;
	int			b64len,
				declen;
	uint8	   *body;
	QtHeader   *q;

	/* trim surrounding whitespace */
	while (isspace((unsigned char) *s))
		s++;
	for (p = s + strlen(s); p > s && isspace((unsigned char) p[-1]); p--)
		p[-1] = '\0';
	if (strncmp(s, "qtensor(", 8) != 0)
		PgqTextSyntaxError("qtensor", lit, "A qtensor literal starts with \"qtensor(\".");
	payload = strstr(s, "):");
	if (payload == NULL)
		PgqTextSyntaxError("qtensor", lit, "The header must end with \"):\" followed by the payload.");
	*payload = '\0';
	payload += 2;

	memset(&h, 0, sizeof(h));
	for (p = s + 8; *p;)
	{
		char	   *item = p,
				   *eq,
				   *comma;
		int			key;

		/* the shape's brackets hold a comma: items end at a comma outside them */
		for (comma = p; *comma && *comma != ','; comma++)
			if (*comma == '[')
				while (comma[1] && comma[1] != ']')
					comma++;
		p = *comma ? comma + 1 : comma;
		*comma = '\0';
		eq = strchr(item, '=');
		if (eq == NULL)
			PgqTextSyntaxError("qtensor", lit, "Header items have the form key=value.");
		*eq = '\0';
		for (key = 0; key < NKEYS; key++)
			if (strcmp(item, key_names[key]) == 0)
				break;
		if (key == NKEYS)
			PgqTextSyntaxError("qtensor", lit, psprintf("Unknown header key \"%s\".", item));
		if (seen[key])
			PgqTextSyntaxError("qtensor", lit, psprintf("Header key \"%s\" appears twice.", item));
		seen[key] = true;
		if (!parse_key(key, eq + 1, &h))
			PgqTextSyntaxError("qtensor", lit, psprintf("Invalid value for header key \"%s\".", item));
	}
	for (int key = K_V; key <= K_SCALE; key++)
		if (!seen[key])
			PgqTextSyntaxError("qtensor", lit, psprintf("Header key \"%s\" is missing.", key_names[key]));

	if ((st = qt_check_header(&h, err)) != QT_OK ||
		(st = qt_layout(&h, &l, err)) != QT_OK)
		QtensorReportStatus(st, err, ERRCODE_INVALID_TEXT_REPRESENTATION);

	/* the payload's length is known before anything is allocated */
	b64len = strlen(payload);
	if (b64len != PgqBase64Len(l.wire_body))
		PgqTextSyntaxError("qtensor", lit, psprintf("The payload must be %d base64 characters for this header, not %d.",
										PgqBase64Len(l.wire_body), b64len));
	body = palloc(pg_b64_dec_len(b64len) + 1);
	declen = pg_b64_decode(payload, b64len, (void *) body, pg_b64_dec_len(b64len) + 1);
	if (declen != (int) l.wire_body)
		PgqTextSyntaxError("qtensor", lit, "The payload is not valid base64 of the expected length.");
	q = qtensor_from_wire_body(&h, &l, body, ERRCODE_INVALID_TEXT_REPRESENTATION);
	pfree(body);
	PG_RETURN_POINTER(q);
}

Datum
qtensor_out(PG_FUNCTION_ARGS)
{
	QtLayout	l;
	QtHeader   *q = QtensorFromDatum(PG_GETARG_DATUM(0), &l);
	StringInfoData buf;
	uint8	   *body = palloc(l.wire_body);
	int			enclen = PgqBase64Len(l.wire_body);
	int			n;

	initStringInfo(&buf);
	appendStringInfo(&buf, "qtensor(v=%d,method=%s,type=", q->version, qt_method_name(q->method));
	if (q->encoding == QT_ENC_NF4)
		appendStringInfoString(&buf, "nf4");
	else
		appendStringInfo(&buf, "int%d", q->bits);
	if (q->flags & QT_FLAG_1D)
		appendStringInfo(&buf, ",shape=[%d]", q->cols);
	else
		appendStringInfo(&buf, ",shape=[%d,%d]", q->rows, q->cols);
	appendStringInfo(&buf, ",group=%d,zero=%s,scale=%s", q->group_size,
					 (q->flags & QT_FLAG_ZEROS) ? "asym" : "sym",
					 qt_scale_type_name(q->scale_type));
	if (q->flags & QT_FLAG_CHSCALE)
		appendStringInfoString(&buf, ",channel_scales=yes");
	if (q->flags & QT_FLAG_PERM)
		appendStringInfoString(&buf, ",perm=yes");
	if (q->n_outliers > 0)
		appendStringInfo(&buf, ",outliers=%d", q->n_outliers);
	appendStringInfoString(&buf, "):");

	qt_body_to_wire((uint8 *) q, &l, body);
	enlargeStringInfo(&buf, enclen + 1);
	n = pg_b64_encode((const void *) body, (int) l.wire_body, buf.data + buf.len, enclen + 1);
	if (n != enclen)
		elog(ERROR, "base64 encoding of a qtensor failed (please report a bug)");
	buf.len += n;
	buf.data[buf.len] = '\0';
	pfree(body);
	PG_RETURN_CSTRING(buf.data);
}

Datum
qtensor_recv(PG_FUNCTION_ARGS)
{
	StringInfo	msg = (StringInfo) PG_GETARG_POINTER(0);
	QtHeader	h;
	QtLayout	l;
	QtStatus	st;
	char		err[QT_ERRMSG_LEN];
	QtHeader   *q;
	size_t		left = (size_t) (msg->len - msg->cursor);

	if (left < QT_WIRE_HEADER_SIZE)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid binary input for type qtensor"),
				 errdetail("The value has %zu bytes, fewer than the %d of its header.",
						   left, QT_WIRE_HEADER_SIZE)));
	memset(&h, 0, sizeof(h));
	qt_header_from_wire(&h, (const uint8 *) msg->data + msg->cursor);
	if ((st = qt_check_header(&h, err)) != QT_OK ||
		(st = qt_layout(&h, &l, err)) != QT_OK)
		QtensorReportStatus(st, err, ERRCODE_INVALID_BINARY_REPRESENTATION);
	if (left - QT_WIRE_HEADER_SIZE != l.wire_body)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid binary input for type qtensor"),
				 errdetail("The header calls for %zu payload bytes, but %zu follow.",
						   l.wire_body, left - QT_WIRE_HEADER_SIZE)));
	q = qtensor_from_wire_body(&h, &l, (const uint8 *) msg->data + msg->cursor + QT_WIRE_HEADER_SIZE,
							   ERRCODE_INVALID_BINARY_REPRESENTATION);
	msg->cursor = msg->len;
	PG_RETURN_POINTER(q);
}

Datum
qtensor_send(PG_FUNCTION_ARGS)
{
	QtLayout	l;
	QtHeader   *q = QtensorFromDatum(PG_GETARG_DATUM(0), &l);
	bytea	   *out = palloc(VARHDRSZ + QT_WIRE_HEADER_SIZE + l.wire_body);

	SET_VARSIZE(out, VARHDRSZ + QT_WIRE_HEADER_SIZE + l.wire_body);
	qt_header_to_wire(q, (uint8 *) VARDATA(out));
	qt_body_to_wire((uint8 *) q, &l, (uint8 *) VARDATA(out) + QT_WIRE_HEADER_SIZE);
	PG_RETURN_BYTEA_P(out);
}
