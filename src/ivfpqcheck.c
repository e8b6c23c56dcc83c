/*
 * ivfpqcheck.c: pgquant.ivfpq_check(index), a structure check in the
 * manner of amcheck.  It reads every page under a share lock and raises
 * ERROR (index_corrupted) at the first inconsistency; otherwise it returns
 * what it counted.  Safe beside concurrent inserts, scans and vacuums: a
 * page a concurrent insert has allocated but not yet linked is still all
 * zeros, and the check accepts such pages.
 *
 * What it checks: the metapage (magic, version, shape, sizes); the blob
 * runs (consecutive, full, finite centroids); the directory; every list's
 * chain (page kind, owner list, entry area, no page twice, the insert page
 * on the chain); every entry (a valid heap TID; code bits past the last
 * code zero; raw vectors finite); and that every initialised page belongs
 * to exactly one structure.
 */
#include "ivfpq.h"

#include "fastscan.h"

#include <math.h>

#include "access/relation.h"
#include "catalog/pg_am.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

PG_FUNCTION_INFO_V1(pgquant_ivfpq_check);

typedef struct CheckState
{
	Relation	index;
	BlockNumber nblocks;
	uint8	   *seen;			/* per block: referenced once already */
	int64		pages;
	int64		entries;
} CheckState;

static void pg_attribute_noreturn()
fail(CheckState *cs, const char *fmt,...)
{
	char		buf[512];
	va_list		ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	ereport(ERROR,
			(errcode(ERRCODE_INDEX_CORRUPTED),
			 errmsg("ivfpq index \"%s\" is corrupted", RelationGetRelationName(cs->index)),
			 errdetail("%s", buf)));
}

/* claim a block for one structure; fail if out of range or already claimed */
static void
claim(CheckState *cs, BlockNumber blkno, const char *what)
{
	if (!BlockNumberIsValid(blkno) || blkno >= cs->nblocks)
		fail(cs, "%s points to block %u, beyond the index's %u blocks.", what, blkno, cs->nblocks);
	if (cs->seen[blkno])
		fail(cs, "Block %u is reached twice (again as %s).", blkno, what);
	cs->seen[blkno] = 1;
	cs->pages++;
}

/* read a page into a private copy, checking its special area and kind */
static void
read_page(CheckState *cs, BlockNumber blkno, uint16 flags, char *copy)
{
	Buffer		buf = ReadBuffer(cs->index, blkno);
	Page		page;
	PageHeader	ph;
	IvfpqPageOpaque op;

	LockBuffer(buf, BUFFER_LOCK_SHARE);
	page = BufferGetPage(buf);
	memcpy(copy, page, BLCKSZ);
	UnlockReleaseBuffer(buf);
	ph = (PageHeader) copy;
	if (PageIsNew(copy))
		fail(cs, "Block %u is an uninitialised page where a page of kind 0x%x was expected.", blkno, flags);
	if (ph->pd_special != BLCKSZ - MAXALIGN(sizeof(IvfpqPageOpaqueData)))
		fail(cs, "Block %u has its special area at %u, not %zu.", blkno, ph->pd_special,
			 BLCKSZ - MAXALIGN(sizeof(IvfpqPageOpaqueData)));
	op = IvfpqPageGetOpaque(copy);
	if (op->page_id != IVFPQ_PAGE_ID)
		fail(cs, "Block %u has page id 0x%04x, not 0x%04x.", blkno, op->page_id, IVFPQ_PAGE_ID);
	if (op->flags != flags)
		fail(cs, "Block %u is of kind 0x%x, not 0x%x.", blkno, op->flags, flags);
	if (op->reserved != 0 || (op->nentries != 0 && !(flags & IVFPQ_PAGE_PACKED)))
		fail(cs, "Block %u has reserved fields of its special area set.", blkno);
	if (ph->pd_lower < IVFPQ_PAGE_DATA_OFFSET || ph->pd_lower > ph->pd_upper || ph->pd_upper != ph->pd_special)
		fail(cs, "Block %u has an invalid data area (lower %u, upper %u).", blkno, ph->pd_lower, ph->pd_upper);
}

/* a run of blob pages holding bytes; the floats must be finite */
static void
check_blob(CheckState *cs, BlockNumber first, uint32 npages, Size bytes, const char *what)
{
	PGAlignedBlock copy;
	Size		done = 0;

	if (npages != (bytes + IVFPQ_PAGE_CAPACITY - 1) / IVFPQ_PAGE_CAPACITY)
		fail(cs, "The %s take %u pages, not %zu.", what, npages,
			 (bytes + IVFPQ_PAGE_CAPACITY - 1) / IVFPQ_PAGE_CAPACITY);
	for (uint32 i = 0; i < npages; i++)
	{
		BlockNumber blkno = first + i;
		Size		n;
		const float *f;

		CHECK_FOR_INTERRUPTS();
		claim(cs, blkno, what);
		read_page(cs, blkno, IVFPQ_PAGE_BLOB, copy.data);
		n = ((PageHeader) copy.data)->pd_lower - IVFPQ_PAGE_DATA_OFFSET;
		if (n != Min((Size) IVFPQ_PAGE_CAPACITY, bytes - done) || n % sizeof(float) != 0)
			fail(cs, "Block %u of the %s holds %zu bytes.", blkno, what, n);
		if (IvfpqPageGetOpaque(copy.data)->nextblkno != (i + 1 < npages ? blkno + 1 : InvalidBlockNumber))
			fail(cs, "Block %u of the %s links to block %u.", blkno, what, IvfpqPageGetOpaque(copy.data)->nextblkno);
		f = (const float *) (copy.data + IVFPQ_PAGE_DATA_OFFSET);
		for (Size k = 0; k < n / sizeof(float); k++)
			if (!isfinite(f[k]))
				fail(cs, "Block %u of the %s holds a value that is not finite.", blkno, what);
		done += n;
	}
}

/* walk one list's chain and its entries */
static void
check_list(CheckState *cs, const IvfpqMetaPageData *meta, uint32 list, const IvfpqListData *e, uint16 flags)
{
	PGAlignedBlock copy;
	BlockNumber blkno = e->head;
	bool		tail_seen = false;
	int			es = meta->entry_size;
	int			used_bits = (int) (((Size) meta->m * meta->nbits) % 8);

	while (BlockNumberIsValid(blkno))
	{
		PageHeader	ph;
		int			n;

		CHECK_FOR_INTERRUPTS();
		claim(cs, blkno, psprintf("a page of list %u", list));
		read_page(cs, blkno, flags, copy.data);
		if (IvfpqPageGetOpaque(copy.data)->list != list)
			fail(cs, "Block %u on the chain of list %u belongs to list %u.", blkno, list,
				 IvfpqPageGetOpaque(copy.data)->list);
		ph = (PageHeader) copy.data;
		if (flags & IVFPQ_PAGE_PACKED)
		{
			int			bs = IvfpqBlockSize(meta->m);
			int			nblocks;

			n = IvfpqPageGetOpaque(copy.data)->nentries;
			nblocks = (n + QT_FS_BLOCK - 1) / QT_FS_BLOCK;
			if (ph->pd_lower != IVFPQ_PAGE_DATA_OFFSET + nblocks * bs)
				fail(cs, "Block %u holds %d entries in %u bytes, not %d blocks of %d.", blkno, n,
					 ph->pd_lower - IVFPQ_PAGE_DATA_OFFSET, nblocks, bs);
			for (int i = 0; i < nblocks * QT_FS_BLOCK; i++)
			{
				char	   *blk = IvfpqBlock(copy.data, bs, i / QT_FS_BLOCK);
				ItemPointerData tid;
				uint8		code[QT_FS_MAX_M / 2];
				bool		zero = true;

				memcpy(&tid, blk + (i % QT_FS_BLOCK) * IVFPQ_TID_SIZE, IVFPQ_TID_SIZE);
				qt_fs_get((const uint8 *) blk + IVFPQ_BLOCK_TIDS, meta->m, i % QT_FS_BLOCK, code);
				if (i < n)
				{
					if (!ItemPointerIsValid(&tid) || ItemPointerGetOffsetNumberNoCheck(&tid) > MaxOffsetNumber)
						fail(cs, "Entry %d of block %u has an invalid heap TID (%u,%u).", i + 1, blkno,
							 ItemPointerGetBlockNumberNoCheck(&tid), ItemPointerGetOffsetNumberNoCheck(&tid));
					continue;
				}
				/* slots past the last entry are zero */
				for (int k = 0; k < IVFPQ_TID_SIZE; k++)
					zero &= blk[(i % QT_FS_BLOCK) * IVFPQ_TID_SIZE + k] == 0;
				for (int k = 0; k < (meta->m + 1) / 2; k++)
					zero &= code[k] == 0;
				if (!zero)
					fail(cs, "Block %u has data in the unused slot %d of its last block.", blkno, i + 1);
			}
			cs->entries += n;
			if (blkno == e->tail)
				tail_seen = true;
			blkno = IvfpqPageGetOpaque(copy.data)->nextblkno;
			continue;
		}
		if (es == 0)
		{
			if (ph->pd_lower != IVFPQ_PAGE_DATA_OFFSET)
				fail(cs, "Block %u holds entries, but the index has no dimension yet.", blkno);
			n = 0;
		}
		else
		{
			if ((ph->pd_lower - IVFPQ_PAGE_DATA_OFFSET) % es != 0)
				fail(cs, "Block %u holds %u bytes of entries, not a multiple of %d.", blkno,
					 ph->pd_lower - IVFPQ_PAGE_DATA_OFFSET, es);
			n = IvfpqPageEntries(copy.data, es);
		}
		for (int i = 0; i < n; i++)
		{
			const char *ent = IvfpqPageEntry(copy.data, es, i);
			ItemPointerData tid;

			memcpy(&tid, ent, IVFPQ_TID_SIZE);
			if (!ItemPointerIsValid(&tid) || ItemPointerGetOffsetNumberNoCheck(&tid) > MaxOffsetNumber)
				fail(cs, "Entry %d of block %u has an invalid heap TID (%u,%u).", i + 1, blkno,
					 ItemPointerGetBlockNumberNoCheck(&tid), ItemPointerGetOffsetNumberNoCheck(&tid));
			if (flags & IVFPQ_PAGE_RAW)
			{
				for (uint32 t = 0; t < meta->dim; t++)
				{
					float		f;

					memcpy(&f, ent + IVFPQ_TID_SIZE + sizeof(float) * t, sizeof(float));
					if (!isfinite(f))
						fail(cs, "Entry %d of block %u holds a vector that is not finite.", i + 1, blkno);
				}
			}
			else if (used_bits != 0 && ((uint8) ent[es - 1] >> used_bits) != 0)
				fail(cs, "Entry %d of block %u has bits set after its last code.", i + 1, blkno);
		}
		cs->entries += n;
		if (blkno == e->tail)
			tail_seen = true;
		blkno = IvfpqPageGetOpaque(copy.data)->nextblkno;
	}
	if (!tail_seen)
		fail(cs, "The insert page %u of list %u is not on its chain.", e->tail, list);
}

/* whether target is on the chain from head now (at most limit pages) */
static bool
on_chain(Relation index, BlockNumber head, BlockNumber target, BlockNumber limit)
{
	BlockNumber blkno = head;

	for (BlockNumber i = 0; i < limit && BlockNumberIsValid(blkno); i++)
	{
		Buffer		buf;

		if (blkno == target)
			return true;
		buf = ReadBuffer(index, blkno);
		LockBuffer(buf, BUFFER_LOCK_SHARE);
		blkno = IvfpqPageGetOpaque(BufferGetPage(buf))->nextblkno;
		UnlockReleaseBuffer(buf);
	}
	return false;
}

/* pgquant.ivfpq_check(index regclass) -> (trained, dim, lists, m, nbits, pages, entries) */
Datum
pgquant_ivfpq_check(PG_FUNCTION_ARGS)
{
	Oid			indexoid = PG_GETARG_OID(0);
	Relation	index = relation_open(indexoid, AccessShareLock);
	CheckState	cs;
	IvfpqMetaPageData meta;
	PGAlignedBlock copy;
	bool		trained;
	uint32		nlists;
	IvfpqListData *dir;
	TupleDesc	tupdesc;
	Datum		values[7];
	bool		nulls[7] = {0};
	HeapTuple	amtup;
	bool		is_ivfpq = false;

	if (index->rd_rel->relkind == RELKIND_INDEX)
	{
		amtup = SearchSysCache1(AMOID, ObjectIdGetDatum(index->rd_rel->relam));
		if (HeapTupleIsValid(amtup))
		{
			is_ivfpq = strcmp(NameStr(((Form_pg_am) GETSTRUCT(amtup))->amname), "ivfpq") == 0;
			ReleaseSysCache(amtup);
		}
	}
	if (!is_ivfpq)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not an ivfpq index", RelationGetRelationName(index))));
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	memset(&cs, 0, sizeof(cs));
	cs.index = index;
	cs.nblocks = RelationGetNumberOfBlocks(index);
	if (cs.nblocks == 0)
		fail(&cs, "The index has no blocks.");
	cs.seen = palloc0(cs.nblocks);

	/* the metapage */
	claim(&cs, IVFPQ_METAPAGE_BLKNO, "the metapage");
	read_page(&cs, IVFPQ_METAPAGE_BLKNO, IVFPQ_PAGE_META, copy.data);
	memcpy(&meta, PageGetContents(copy.data), sizeof(meta));
	if (meta.magic != IVFPQ_MAGIC_NUMBER)
		fail(&cs, "The metapage's magic number is 0x%08x, not 0x%08x.", meta.magic, IVFPQ_MAGIC_NUMBER);
	if (meta.version != IVFPQ_VERSION)
		fail(&cs, "The metapage's version is %u, not %d.", meta.version, IVFPQ_VERSION);
	if (meta.flags & ~(IVFPQ_META_TRAINED | IVFPQ_META_PACKED) || meta.reserved0 != 0 ||
		meta.reserved[0] != 0 || meta.reserved[1] != 0)
		fail(&cs, "The metapage has unknown flags or reserved fields set.");
	if ((meta.flags & IVFPQ_META_PACKED) &&
		!((meta.flags & IVFPQ_META_TRAINED) && meta.nbits == 4 && meta.m >= 1 && meta.m <= QT_FS_MAX_M))
		fail(&cs, "The metapage says packed blocks, but the codes are not 4-bit (nbits %u, m %u).", meta.nbits, meta.m);
	if (meta.metric < QT_METRIC_L2 || meta.metric > QT_METRIC_COSINE)
		fail(&cs, "The metapage names an unknown metric %u.", meta.metric);
	if (meta.dim > IVFPQ_MAX_DIM)
		fail(&cs, "The metapage's dimension %u exceeds %d.", meta.dim, IVFPQ_MAX_DIM);
	trained = (meta.flags & IVFPQ_META_TRAINED) != 0;
	if (trained)
	{
		char		err[QT_ERRMSG_LEN];

		if (meta.lists < IVFPQ_MIN_LISTS || meta.lists > IVFPQ_MAX_LISTS)
			fail(&cs, "The metapage has %u lists.", meta.lists);
		if (qt_pq_check_shape((int) meta.dim, meta.m, meta.nbits, err) != QT_OK)
			fail(&cs, "The metapage's PQ shape is invalid: %s.", err);
		if (meta.code_size != qt_code_size(meta.m, meta.nbits) || meta.entry_size != IVFPQ_TID_SIZE + meta.code_size)
			fail(&cs, "The metapage's entry size %u does not match m = %u, nbits = %u.",
				 meta.entry_size, meta.m, meta.nbits);
		check_blob(&cs, meta.centroids_blkno, meta.centroids_pages,
				   sizeof(float) * (Size) meta.lists * meta.dim, "coarse centroids");
		check_blob(&cs, meta.codebook_blkno, meta.codebook_pages,
				   sizeof(float) * ((Size) 1 << meta.nbits) * meta.dim, "PQ codebook");
		nlists = meta.lists;
	}
	else
	{
		if (meta.lists != 1 || meta.entry_size != (meta.dim ? IVFPQ_TID_SIZE + sizeof(float) * meta.dim : 0))
			fail(&cs, "The untrained metapage has %u lists and entries of %u bytes.", meta.lists, meta.entry_size);
		nlists = 1;
	}

	/* the directory */
	if (meta.directory_pages != (nlists + IVFPQ_DIRECTORY_PER_PAGE - 1) / IVFPQ_DIRECTORY_PER_PAGE)
		fail(&cs, "The directory takes %u pages for %u lists.", meta.directory_pages, nlists);
	dir = palloc(sizeof(IvfpqListData) * nlists);
	for (uint32 i = 0; i < meta.directory_pages; i++)
	{
		uint32		first = i * IVFPQ_DIRECTORY_PER_PAGE;
		uint32		n = Min(IVFPQ_DIRECTORY_PER_PAGE, nlists - first);

		claim(&cs, meta.directory_blkno + i, "the directory");
		read_page(&cs, meta.directory_blkno + i, IVFPQ_PAGE_DIRECTORY, copy.data);
		if (((PageHeader) copy.data)->pd_lower != IVFPQ_PAGE_DATA_OFFSET + n * sizeof(IvfpqListData))
			fail(&cs, "Directory block %u holds %u bytes for %u lists.", meta.directory_blkno + i,
				 ((PageHeader) copy.data)->pd_lower - IVFPQ_PAGE_DATA_OFFSET, n);
		memcpy(dir + first, copy.data + IVFPQ_PAGE_DATA_OFFSET, n * sizeof(IvfpqListData));
	}

	/* the lists */
	for (uint32 l = 0; l < nlists; l++)
		check_list(&cs, &meta, l, &dir[l], !trained ? IVFPQ_PAGE_CODES | IVFPQ_PAGE_RAW :
				   (meta.flags & IVFPQ_META_PACKED) ? IVFPQ_PAGE_CODES | IVFPQ_PAGE_PACKED : IVFPQ_PAGE_CODES);

	/*
	 * Every initialised page belongs somewhere.  A page an insert linked
	 * after we walked its list is on that list's chain now.
	 */
	for (BlockNumber b = 0; b < cs.nblocks; b++)
	{
		Buffer		buf;
		bool		isnew;
		IvfpqPageOpaqueData op;

		if (cs.seen[b])
			continue;
		CHECK_FOR_INTERRUPTS();
		buf = ReadBuffer(index, b);
		LockBuffer(buf, BUFFER_LOCK_SHARE);
		isnew = PageIsNew(BufferGetPage(buf));
		if (!isnew)
			op = *IvfpqPageGetOpaque(BufferGetPage(buf));
		UnlockReleaseBuffer(buf);
		if (isnew)
			continue;
		if (op.page_id == IVFPQ_PAGE_ID && (op.flags & IVFPQ_PAGE_CODES) && op.list < nlists &&
			on_chain(index, dir[op.list].head, b, cs.nblocks + 1))
			continue;
		fail(&cs, "Block %u is initialised but belongs to no list, blob or directory.", b);
	}

	tupdesc = BlessTupleDesc(tupdesc);
	values[0] = BoolGetDatum(trained);
	values[1] = Int32GetDatum((int32) meta.dim);
	values[2] = Int32GetDatum((int32) (trained ? meta.lists : 0));
	values[3] = Int32GetDatum((int32) meta.m);
	values[4] = Int32GetDatum((int32) meta.nbits);
	values[5] = Int64GetDatum(cs.pages);
	values[6] = Int64GetDatum(cs.entries);
	nulls[3] = nulls[4] = !trained;
	relation_close(index, AccessShareLock);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
