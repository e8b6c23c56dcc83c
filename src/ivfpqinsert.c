/*
 * ivfpqinsert.c: adding one vector to an ivfpq index.
 *
 * The vector goes to its nearest list (trained index) or to the one raw
 * list (untrained), PQ-encoded as a residual or kept whole.  It is appended
 * to the list's insert page (the directory's tail), walking on along the
 * chain to a page with room, or extending the chain at its end.  Every page
 * change is one GenericXLog record.
 */
#include "ivfpq.h"

#include "miscadmin.h"
#include "utils/memutils.h"

static void pg_attribute_noreturn()
not_a_list_page(Relation index, BlockNumber blkno, uint32 list)
{
	ereport(ERROR,
			(errcode(ERRCODE_INDEX_CORRUPTED),
			 errmsg("ivfpq index \"%s\" is corrupted", RelationGetRelationName(index)),
			 errdetail("Block %u is not a page of list %u.", blkno, list),
			 errhint("REINDEX the index; pgquant.ivfpq_check() tells what is wrong.")));
}

/* append one entry (TID + rec) to a list's chain */
static void
append_entry(Relation index, const IvfpqMetaPageData *meta, uint32 list, uint16 flags,
			 ItemPointer tid, const char *rec)
{
	IvfpqListData e;
	BlockNumber start,
				blkno;

	IvfpqReadDirectory(index, meta, list, &e);
	start = blkno = e.tail;
	for (;;)
	{
		Buffer		buf;
		Page		page;
		GenericXLogState *state;
		IvfpqPageOpaque op;

		CHECK_FOR_INTERRUPTS();
		buf = ReadBuffer(index, blkno);
		LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
		page = BufferGetPage(buf);
		op = IvfpqPageGetOpaque(page);
		if (PageIsNew(page) || op->page_id != IVFPQ_PAGE_ID || op->flags != flags || op->list != list)
		{
			UnlockReleaseBuffer(buf);
			not_a_list_page(index, blkno, list);
		}
		if (IvfpqPageHasRoom(page, meta))
		{
			state = GenericXLogStart(index);
			page = GenericXLogRegisterBuffer(state, buf, 0);
			IvfpqPageAppend(page, meta, tid, rec);
			GenericXLogFinish(state);
			UnlockReleaseBuffer(buf);
			break;
		}
		if (BlockNumberIsValid(op->nextblkno))
		{
			/* full, and not the last page: someone extended the chain, or vacuum pointed us back */
			blkno = op->nextblkno;
			UnlockReleaseBuffer(buf);
			continue;
		}
		/* the last page is full: a new page, linked and filled in one record */
		{
			Buffer		newbuf = IvfpqNewBuffer(index, MAIN_FORKNUM);
			Page		newpage;

			state = GenericXLogStart(index);
			page = GenericXLogRegisterBuffer(state, buf, 0);
			newpage = GenericXLogRegisterBuffer(state, newbuf, GENERIC_XLOG_FULL_IMAGE);
			IvfpqInitPage(newpage, flags, list);
			IvfpqPageAppend(newpage, meta, tid, rec);
			IvfpqPageGetOpaque(page)->nextblkno = BufferGetBlockNumber(newbuf);
			blkno = BufferGetBlockNumber(newbuf);
			GenericXLogFinish(state);
			UnlockReleaseBuffer(newbuf);
			UnlockReleaseBuffer(buf);
			break;
		}
	}
	if (blkno != start)
		IvfpqSetTail(index, meta, list, start, blkno);
}

/* the first vector of an empty untrained index fixes its dimension */
static void
set_dimension(Relation index, int dim)
{
	Buffer		buf = ReadBuffer(index, IVFPQ_METAPAGE_BLKNO);
	GenericXLogState *state;
	Page		page;
	IvfpqMetaPage meta;

	LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
	state = GenericXLogStart(index);
	page = GenericXLogRegisterBuffer(state, buf, 0);
	meta = IvfpqPageGetMeta(page);
	if (meta->dim == 0)
	{
		meta->dim = (uint32) dim;
		meta->entry_size = (uint16) (IVFPQ_TID_SIZE + sizeof(float) * dim);
		GenericXLogFinish(state);
	}
	else
		GenericXLogAbort(state);	/* another insert was first; its dimension is checked next */
	UnlockReleaseBuffer(buf);
}

static void
insert_one(Relation index, Datum value, ItemPointer tid)
{
	IvfpqCache *c = IvfpqGetCache(index);
	IvfpqVector v;
	int			dim;
	float	   *normbuf;

	if (c->dim == 0)
	{
		(void) IvfpqPrepareVector(value, 0, QT_METRIC_L2, NULL, &dim);
		set_dimension(index, dim);
		IvfpqReleaseCache(c);
		c = IvfpqGetCache(index);
	}
	normbuf = palloc(sizeof(float) * c->dim);
	v = IvfpqPrepareVector(value, c->dim, c->metric, normbuf, &dim);
	if (!v.skip)
	{
		if (c->trained)
		{
			float	   *r = palloc(sizeof(float) * c->dim);
			float	   *scratch = palloc(sizeof(float) * Max(qt_nearest_scratch(1, c->lists),
															   qt_pq_encode_scratch(&c->pq, 1)));
			uint8	   *codes = palloc(c->meta.code_size);
			int32		list;

			IvfpqAssign(c, v.x, 1, &list, scratch);
			for (int t = 0; t < c->dim; t++)
				r[t] = v.x[t] - c->centroids[(Size) list * c->dim + t];
			qt_pq_encode(&c->pq, c->pq_cnorm, r, 1, codes, scratch);
			append_entry(index, &c->meta, (uint32) list,
						 (c->meta.flags & IVFPQ_META_PACKED) ? IVFPQ_PAGE_CODES | IVFPQ_PAGE_PACKED : IVFPQ_PAGE_CODES,
						 tid, (const char *) codes);
		}
		else
		{
			/* untrained: the vector as given (exact search reads it back) */
			append_entry(index, &c->meta, 0, IVFPQ_PAGE_CODES | IVFPQ_PAGE_RAW, tid, (const char *) v.orig);
		}
	}
	IvfpqReleaseCache(c);
}

bool
ivfpqinsert(Relation index, Datum *values, bool *isnull, ItemPointer heap_tid,
			Relation heap, IndexUniqueCheck checkUnique, bool indexUnchanged,
			IndexInfo *indexInfo)
{
	MemoryContext cxt,
				old;

	/* NULLs are not indexed */
	if (isnull[0])
		return false;
	cxt = AllocSetContextCreate(CurrentMemoryContext, "ivfpq insert", ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(cxt);
	insert_one(index, values[0], heap_tid);
	MemoryContextSwitchTo(old);
	MemoryContextDelete(cxt);
	return false;
}
