/*
 * ivfpqvacuum.c: removing dead entries.
 *
 * Each list's chain is walked page by page under a cleanup lock (no scan
 * holds a pin on a page it is reading); entries whose rows are dead are
 * removed by moving the page's last entries into their places, one
 * GenericXLog record per changed page.  Afterwards the list's insert page is
 * pointed back at the first page with room, so inserts reuse the space.
 * Pages are never unlinked: a chain only grows or fills up again.
 */
#include "ivfpq.h"

#include "commands/vacuum.h"
#include "miscadmin.h"

IndexBulkDeleteResult *
ivfpqbulkdelete(IndexVacuumInfo *info, IndexBulkDeleteResult *stats,
				IndexBulkDeleteCallback callback, void *callback_state)
{
	Relation	index = info->index;
	BufferAccessStrategy bas = info->strategy;
	IvfpqCache *c = IvfpqGetCache(index);
	int			es = c->meta.entry_size;
	int			nlists = Max(c->lists, 1);

	if (stats == NULL)
		stats = palloc0(sizeof(IndexBulkDeleteResult));
	if (es == 0)
	{
		/* an empty untrained index: nothing to delete */
		IvfpqReleaseCache(c);
		return stats;
	}
	for (int l = 0; l < nlists; l++)
	{
		BlockNumber blkno = c->heads[l];
		BlockNumber first_free = InvalidBlockNumber;

		while (BlockNumberIsValid(blkno))
		{
			Buffer		buf;
			Page		page;
			GenericXLogState *state;
			int			n,
						i;
			bool		changed = false;

			vacuum_delay_point();
			buf = ReadBufferExtended(index, MAIN_FORKNUM, blkno, RBM_NORMAL, bas);
			LockBufferForCleanup(buf);
			state = GenericXLogStart(index);
			page = GenericXLogRegisterBuffer(state, buf, 0);
			if (IvfpqPageGetOpaque(page)->page_id != IVFPQ_PAGE_ID ||
				!(IvfpqPageGetOpaque(page)->flags & IVFPQ_PAGE_CODES) ||
				IvfpqPageGetOpaque(page)->list != (uint32) l)
			{
				GenericXLogAbort(state);
				UnlockReleaseBuffer(buf);
				ereport(ERROR,
						(errcode(ERRCODE_INDEX_CORRUPTED),
						 errmsg("ivfpq index \"%s\" is corrupted", RelationGetRelationName(index)),
						 errdetail("Block %u is not a page of list %d.", blkno, l)));
			}
			n = IvfpqPageCount(page, &c->meta);
			i = 0;
			while (i < n)
			{
				ItemPointerData tid;

				IvfpqPageGetTid(page, &c->meta, i, &tid);
				if (callback(&tid, callback_state))
				{
					/* the last entry takes this one's place */
					if (i != n - 1)
						IvfpqPageMove(page, &c->meta, n - 1, i);
					n--;
					stats->tuples_removed += 1;
					changed = true;
				}
				else
				{
					stats->num_index_tuples += 1;
					i++;
				}
			}
			if (changed)
			{
				IvfpqPageTruncate(page, &c->meta, n);
				GenericXLogFinish(state);
			}
			else
				GenericXLogAbort(state);
			if (!BlockNumberIsValid(first_free) && IvfpqPageHasRoom(BufferGetPage(buf), &c->meta))
				first_free = blkno;
			blkno = IvfpqPageGetOpaque(BufferGetPage(buf))->nextblkno;
			UnlockReleaseBuffer(buf);
		}
		/* inserts start from the first page with room again */
		if (BlockNumberIsValid(first_free))
		{
			IvfpqListData e;

			IvfpqReadDirectory(index, &c->meta, l, &e);
			if (e.tail != first_free)
				IvfpqSetTail(index, &c->meta, l, InvalidBlockNumber, first_free);
		}
	}
	IvfpqReleaseCache(c);
	return stats;
}

IndexBulkDeleteResult *
ivfpqvacuumcleanup(IndexVacuumInfo *info, IndexBulkDeleteResult *stats)
{
	Relation	index = info->index;

	if (info->analyze_only)
		return stats;
	if (stats == NULL)
	{
		/* no bulk delete ran: count the entries, so the index's tuple count stays known */
		IvfpqCache *c = IvfpqGetCache(index);
		int			es = c->meta.entry_size;

		stats = palloc0(sizeof(IndexBulkDeleteResult));
		for (int l = 0; es > 0 && l < Max(c->lists, 1); l++)
		{
			BlockNumber blkno = c->heads[l];

			while (BlockNumberIsValid(blkno))
			{
				Buffer		buf;
				Page		page;

				vacuum_delay_point();
				buf = ReadBufferExtended(index, MAIN_FORKNUM, blkno, RBM_NORMAL, info->strategy);
				LockBuffer(buf, BUFFER_LOCK_SHARE);
				page = BufferGetPage(buf);
				stats->num_index_tuples += IvfpqPageCount(page, &c->meta);
				blkno = IvfpqPageGetOpaque(page)->nextblkno;
				UnlockReleaseBuffer(buf);
			}
		}
		IvfpqReleaseCache(c);
	}
	stats->num_pages = RelationGetNumberOfBlocks(index);
	stats->estimated_count = false;
	return stats;
}
