/*
 * tensorcache.c: reading a model's rows, with a per-backend cache of the
 * decoded (detoasted) tensors and tokenizers.
 *
 * Why a cache: a qtensor of a 4096 x 4096 layer is 8 MB stored out of line;
 * detoasting it for every row of a query, or for every token generate()
 * produces, would cost more than the product itself.
 *
 * How it stays correct: every lookup goes through the primary-key index of
 * pgquant.tensors with the caller's snapshot, so it sees exactly the row
 * version the query should see, and the cached copy is used only when that
 * version is the one it was made from: same item pointer (ctid) and same
 * inserting transaction (raw xmin).  An UPDATE, a DELETE and re-INSERT, a
 * restore or a rename all produce a different version, so the next lookup
 * reloads; nothing depends on invalidation messages, and every isolation
 * level sees its own snapshot's data.  A tokenizer is validated the same way,
 * by a hash of the versions of all its rows.  (A version is never reused
 * while a snapshot can see it, and two versions with the same ctid have
 * different xmins.)
 *
 * Memory: entries live in their own contexts under CacheMemoryContext.  When
 * the cache exceeds pgquant.tensor_cache_size, least recently used entries
 * not touched by the current statement are freed; a single model larger
 * than the limit is still loaded whole (the limit is soft).
 */
#include "pgquant.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "miscadmin.h"
#include "parser/parse_relation.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/hsearch.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "models.h"
#include "tokenizer.h"

/* pgquant.tensor_cache_size, in MB */
int			pgquant_tensor_cache_mb = 256;

#define CACHE_KEYLEN 256

typedef struct CacheEntry
{
	char		key[CACHE_KEYLEN];	/* "model" \x1f "name"; hash key, first */
	MemoryContext cxt;
	ItemPointerData tid;		/* the row version it was made from */
	TransactionId xmin;
	uint64		last_used;
	Size		bytes;
	PgqTensor	t;
} CacheEntry;

typedef struct TokenEntry
{
	char		key[CACHE_KEYLEN];	/* the model name */
	MemoryContext cxt;
	uint64		fingerprint;	/* hash of the versions of all token rows */
	uint64		last_used;
	Size		bytes;
	PgqTokens	tokens;
} TokenEntry;

static HTAB *tensor_cache = NULL;
static HTAB *token_cache = NULL;
static MemoryContext cache_cxt = NULL;
static Size cache_bytes = 0;
static uint64 cache_tick = 0;

struct PgqTensorReader
{
	Relation	rel;
	Oid			pk;
	Oid			pk_collation[2];
	AttrNumber	att_model;
	AttrNumber	att_name;
	AttrNumber	att_shape;
	AttrNumber	att_data;
	AttrNumber	att_q;
	Snapshot	snapshot;
	uint64		tick;
};

static void
cache_init(void)
{
	HASHCTL		ctl;

	if (tensor_cache)
		return;
	cache_cxt = AllocSetContextCreate(CacheMemoryContext, "pgquant tensor cache", ALLOCSET_SMALL_SIZES);
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = CACHE_KEYLEN;
	ctl.entrysize = sizeof(CacheEntry);
	ctl.hcxt = cache_cxt;
	tensor_cache = hash_create("pgquant tensors", 64, &ctl, HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	ctl.entrysize = sizeof(TokenEntry);
	token_cache = hash_create("pgquant tokenizers", 8, &ctl, HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
}

/* open pgquant.<table> and its primary key; errors if the extension's tables are missing */
static Relation
open_table(const char *table, Oid *pk, Oid *collations)
{
	Oid			nsp = get_namespace_oid("pgquant", false);
	Oid			relid = get_relname_relid(table, nsp);
	Relation	rel;
	Relation	idx;

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation \"pgquant.%s\" does not exist", table)));
	rel = table_open(relid, AccessShareLock);
	*pk = RelationGetPrimaryKeyIndex(rel);
	if (!OidIsValid(*pk))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table \"pgquant.%s\" has no primary key", table)));
	idx = index_open(*pk, AccessShareLock);
	for (int i = 0; i < Min(2, IndexRelationGetNumberOfKeyAttributes(idx)); i++)
		collations[i] = idx->rd_indcollation[i];
	index_close(idx, AccessShareLock);
	return rel;
}

static AttrNumber
column(Relation rel, const char *name)
{
	int			att = attnameAttNum(rel, name, false);

	if (att == InvalidAttrNumber)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" of relation \"pgquant.%s\" does not exist", name,
						RelationGetRelationName(rel))));
	return (AttrNumber) att;
}

static Snapshot
current_snapshot(void)
{
	return ActiveSnapshotSet() ? GetActiveSnapshot() : GetTransactionSnapshot();
}

PgqTensorReader *
PgqTensorReaderOpen(void)
{
	PgqTensorReader *rd = palloc0(sizeof(PgqTensorReader));

	cache_init();
	rd->rel = open_table("tensors", &rd->pk, rd->pk_collation);
	rd->att_model = column(rd->rel, "model");
	rd->att_name = column(rd->rel, "name");
	rd->att_shape = column(rd->rel, "shape");
	rd->att_data = column(rd->rel, "data");
	rd->att_q = column(rd->rel, "q");
	rd->snapshot = current_snapshot();
	rd->tick = ++cache_tick;
	return rd;
}

void
PgqTensorReaderClose(PgqTensorReader *rd)
{
	table_close(rd->rel, AccessShareLock);
	pfree(rd);
}

/* free least recently used entries, not used by the current statement, until under the limit */
static void
cache_evict(uint64 keep_tick)
{
	Size		limit = (Size) pgquant_tensor_cache_mb * 1024 * 1024;

	while (cache_bytes > limit)
	{
		HASH_SEQ_STATUS seq;
		CacheEntry *e,
				   *victim = NULL;

		hash_seq_init(&seq, tensor_cache);
		while ((e = hash_seq_search(&seq)) != NULL)
			if (e->last_used < keep_tick && (victim == NULL || e->last_used < victim->last_used))
				victim = e;
		if (victim == NULL)
			return;
		cache_bytes -= victim->bytes;
		MemoryContextDelete(victim->cxt);
		hash_search(tensor_cache, victim->key, HASH_REMOVE, NULL);
	}
}

/* fill t from a tensor row, copying its values into the current memory context */
static void
load_tensor(PgqTensorReader *rd, HeapTuple tup, const char *model, const char *name, PgqTensor *t)
{
	TupleDesc	desc = RelationGetDescr(rd->rel);
	bool		isnull;
	Datum		d;
	ArrayType  *shape;

	memset(t, 0, sizeof(*t));
	d = heap_getattr(tup, rd->att_shape, desc, &isnull);
	if (isnull)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("tensor \"%s\" of model \"%s\" has no shape", name, model)));
	shape = DatumGetArrayTypeP(d);
	if (ARR_NDIM(shape) > 1 || array_contains_nulls(shape) ||
		ArrayGetNItems(ARR_NDIM(shape), ARR_DIMS(shape)) > PGQ_MAX_TENSOR_DIMS)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("tensor \"%s\" of model \"%s\" has an invalid shape", name, model)));
	t->ndim = ArrayGetNItems(ARR_NDIM(shape), ARR_DIMS(shape));
	t->numel = 1;
	for (int i = 0; i < t->ndim; i++)
	{
		t->shape[i] = ((int32 *) ARR_DATA_PTR(shape))[i];
		t->numel *= t->shape[i];
	}

	d = heap_getattr(tup, rd->att_q, desc, &isnull);
	if (!isnull)
	{
		char		err[QT_ERRMSG_LEN];
		QtHeader   *q = (QtHeader *) PG_DETOAST_DATUM_COPY(d);

		if (VARSIZE(q) < QT_HEADER_SIZE || qt_check_header(q, err) != QT_OK ||
			qt_layout(q, &t->l, err) != QT_OK || t->l.total != VARSIZE(q))
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("qtensor value is corrupted")));
		t->q = q;
	}
	d = heap_getattr(tup, rd->att_data, desc, &isnull);
	if (!isnull)
	{
		ArrayType  *a = DatumGetArrayTypePCopy(d);

		if (ARR_ELEMTYPE(a) != FLOAT4OID || array_contains_nulls(a))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("tensor \"%s\" of model \"%s\" has NULL elements", name, model)));
		if (ArrayGetNItems(ARR_NDIM(a), ARR_DIMS(a)) != t->numel)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_EXCEPTION),
					 errmsg("tensor \"%s\" of model \"%s\" does not match its shape", name, model)));
		t->data = (const float *) ARR_DATA_PTR(a);
	}
}

const PgqTensor *
PgqTensorRead(PgqTensorReader *rd, const char *model, const char *name, bool missing_ok)
{
	ScanKeyData keys[2];
	SysScanDesc scan;
	HeapTuple	tup;
	char		key[CACHE_KEYLEN];
	CacheEntry *e;
	bool		found;
	const PgqTensor *result;

	CHECK_FOR_INTERRUPTS();
	/* systable_beginscan takes the table's column numbers and maps them to the index's */
	ScanKeyInit(&keys[0], rd->att_model, BTEqualStrategyNumber, F_TEXTEQ, CStringGetTextDatum(model));
	keys[0].sk_collation = rd->pk_collation[0];
	ScanKeyInit(&keys[1], rd->att_name, BTEqualStrategyNumber, F_TEXTEQ, CStringGetTextDatum(name));
	keys[1].sk_collation = rd->pk_collation[1];
	scan = systable_beginscan(rd->rel, rd->pk, true, rd->snapshot, 2, keys);
	tup = systable_getnext(scan);
	if (tup == NULL)
	{
		systable_endscan(scan);
		if (missing_ok)
			return NULL;
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("model \"%s\" has no tensor \"%s\"", model, name)));
	}

	/* names too long for a key are read without caching */
	if (strlen(model) + strlen(name) + 2 > CACHE_KEYLEN)
	{
		PgqTensor  *t = palloc(sizeof(PgqTensor));

		load_tensor(rd, tup, model, name, t);
		systable_endscan(scan);
		return t;
	}
	snprintf(key, sizeof(key), "%s\x1f%s", model, name);
	e = hash_search(tensor_cache, key, HASH_ENTER, &found);
	if (found && ItemPointerEquals(&e->tid, &tup->t_self) &&
		e->xmin == HeapTupleHeaderGetRawXmin(tup->t_data))
	{
		e->last_used = rd->tick;
		systable_endscan(scan);
		return &e->t;
	}
	if (found)
	{
		cache_bytes -= e->bytes;
		MemoryContextDelete(e->cxt);
	}
	/* a failed load must leave no entry behind */
	e->cxt = NULL;
	PG_TRY();
	{
		MemoryContext cxt = AllocSetContextCreate(cache_cxt, "pgquant tensor", ALLOCSET_DEFAULT_SIZES);
		MemoryContext old = MemoryContextSwitchTo(cxt);

		e->cxt = cxt;
		load_tensor(rd, tup, model, name, &e->t);
		MemoryContextSwitchTo(old);
	}
	PG_CATCH();
	{
		if (e->cxt)
			MemoryContextDelete(e->cxt);
		hash_search(tensor_cache, key, HASH_REMOVE, NULL);
		PG_RE_THROW();
	}
	PG_END_TRY();
	e->tid = tup->t_self;
	e->xmin = HeapTupleHeaderGetRawXmin(tup->t_data);
	e->last_used = rd->tick;
	e->bytes = MemoryContextMemAllocated(e->cxt, true);
	cache_bytes += e->bytes;
	systable_endscan(scan);
	result = &e->t;
	cache_evict(rd->tick);
	return result;
}

const PgqTensor *
PgqGetTensor(const char *model, const char *name)
{
	PgqTensorReader *rd = PgqTensorReaderOpen();
	const PgqTensor *t = PgqTensorRead(rd, model, name, false);

	PgqTensorReaderClose(rd);
	return t;
}

bool
PgqReadModel(const char *model, char **arch, Jsonb **config)
{
	Oid			pk;
	Oid			coll[2] = {InvalidOid, InvalidOid};
	Relation	rel = open_table("models", &pk, coll);
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	bool		found = false;

	ScanKeyInit(&key, column(rel, "name"), BTEqualStrategyNumber, F_TEXTEQ, CStringGetTextDatum(model));
	key.sk_collation = coll[0];
	scan = systable_beginscan(rel, pk, true, current_snapshot(), 1, &key);
	tup = systable_getnext(scan);
	if (tup != NULL)
	{
		bool		isnull;
		Datum		d;

		found = true;
		d = heap_getattr(tup, column(rel, "arch"), RelationGetDescr(rel), &isnull);
		*arch = isnull ? pstrdup("") : TextDatumGetCString(d);
		d = heap_getattr(tup, column(rel, "config"), RelationGetDescr(rel), &isnull);
		*config = isnull ? NULL : DatumGetJsonbPCopy(d);
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return found;
}

/* one pass over a model's token rows: the hash of their versions, and optionally their values */
static uint64
scan_tokens(const char *model, PgqTokens *out, MemoryContext cxt)
{
	Oid			pk;
	Oid			coll[2] = {InvalidOid, InvalidOid};
	Relation	rel = open_table("tokens", &pk, coll);
	AttrNumber	att_id = column(rel, "id"),
				att_piece = column(rel, "piece"),
				att_score = column(rel, "score");
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	uint64		h = 0x9e3779b97f4a7c15ULL;
	int			n = 0,
				cap = 0;

	ScanKeyInit(&key, column(rel, "model"), BTEqualStrategyNumber, F_TEXTEQ, CStringGetTextDatum(model));
	key.sk_collation = coll[0];
	scan = systable_beginscan(rel, pk, true, current_snapshot(), 1, &key);
	while ((tup = systable_getnext(scan)) != NULL)
	{
		uint32		v[3];

		v[0] = ItemPointerGetBlockNumberNoCheck(&tup->t_self);
		v[1] = ItemPointerGetOffsetNumberNoCheck(&tup->t_self);
		v[2] = HeapTupleHeaderGetRawXmin(tup->t_data);
		h = hash_combine64(h, hash_bytes_extended((const unsigned char *) v, sizeof(v), h));
		n++;
		if (out)
		{
			bool		isnull;
			int32		id = DatumGetInt32(heap_getattr(tup, att_id, RelationGetDescr(rel), &isnull));
			bytea	   *piece = DatumGetByteaPP(heap_getattr(tup, att_piece, RelationGetDescr(rel), &isnull));
			float		score = DatumGetFloat4(heap_getattr(tup, att_score, RelationGetDescr(rel), &isnull));
			MemoryContext old = MemoryContextSwitchTo(cxt);

			/* ids must run 0..n-1: the index returns them in order */
			if (id != n - 1)
				ereport(ERROR,
						(errcode(ERRCODE_DATA_EXCEPTION),
						 errmsg("the tokens of model \"%s\" are not numbered 0, 1, 2, ...", model),
						 errdetail("Token id %d follows %d.", id, n - 2)));
			if (n > cap)
			{
				cap = Max(64, cap * 2);
				out->pieces = out->pieces ? repalloc(out->pieces, sizeof(char *) * cap) : palloc(sizeof(char *) * cap);
				out->lens = out->lens ? repalloc(out->lens, sizeof(int) * cap) : palloc(sizeof(int) * cap);
				out->scores = out->scores ? repalloc(out->scores, sizeof(float) * cap) : palloc(sizeof(float) * cap);
			}
			out->lens[id] = VARSIZE_ANY_EXHDR(piece);
			out->pieces[id] = palloc(out->lens[id] + 1);
			memcpy(out->pieces[id], VARDATA_ANY(piece), out->lens[id]);
			out->pieces[id][out->lens[id]] = '\0';
			out->scores[id] = score;
			out->max_len = Max(out->max_len, out->lens[id]);
			MemoryContextSwitchTo(old);
		}
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	if (out)
		out->n = n;
	return hash_combine64(h, (uint64) n);
}

const PgqTokens *
PgqGetTokens(const char *model)
{
	char		key[CACHE_KEYLEN];
	TokenEntry *e;
	bool		found;
	uint64		fp;

	cache_init();
	if (strlen(model) + 1 > CACHE_KEYLEN)
		ereport(ERROR,
				(errcode(ERRCODE_NAME_TOO_LONG),
				 errmsg("model name is too long for inference"),
				 errdetail("Model names used by the tokenizer are at most %d bytes.", CACHE_KEYLEN - 1)));
	snprintf(key, sizeof(key), "%s", model);
	fp = scan_tokens(model, NULL, NULL);
	e = hash_search(token_cache, key, HASH_ENTER, &found);
	if (found && e->fingerprint == fp)
	{
		e->last_used = ++cache_tick;
		return &e->tokens;
	}
	if (found)
		MemoryContextDelete(e->cxt);
	e->cxt = NULL;
	PG_TRY();
	{
		e->cxt = AllocSetContextCreate(cache_cxt, "pgquant tokenizer", ALLOCSET_DEFAULT_SIZES);
		memset(&e->tokens, 0, sizeof(e->tokens));
		e->fingerprint = scan_tokens(model, &e->tokens, e->cxt);
		if (e->tokens.n > 0)
		{
			/* the lookup index of the BPE encoder */
			BpeVocab	v;

			e->tokens.sorted = MemoryContextAlloc(e->cxt, sizeof(int) * e->tokens.n);
			v.n = e->tokens.n;
			v.pieces = e->tokens.pieces;
			v.lens = e->tokens.lens;
			v.scores = e->tokens.scores;
			v.max_len = e->tokens.max_len;
			v.sorted = e->tokens.sorted;
			bpe_sort(&v);
		}
	}
	PG_CATCH();
	{
		if (e->cxt)
			MemoryContextDelete(e->cxt);
		hash_search(token_cache, key, HASH_REMOVE, NULL);
		PG_RE_THROW();
	}
	PG_END_TRY();
	e->last_used = ++cache_tick;
	return &e->tokens;
}

/* bytes held by the cache (for pgquant.cache_info) */
void
PgqCacheStats(int64 *tensors, int64 *bytes, int64 *tokenizers)
{
	*tensors = tensor_cache ? hash_get_num_entries(tensor_cache) : 0;
	*bytes = cache_bytes;
	*tokenizers = token_cache ? hash_get_num_entries(token_cache) : 0;
}

void
PgqCacheReset(void)
{
	if (cache_cxt)
	{
		MemoryContextDelete(cache_cxt);
		cache_cxt = NULL;
		tensor_cache = NULL;
		token_cache = NULL;
		cache_bytes = 0;
	}
}
