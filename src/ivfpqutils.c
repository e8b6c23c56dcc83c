/*
 * ivfpqutils.c: what the ivfpq phases share: pages and the metapage, the
 * relcache copy of centroids and codebook, vectors, list assignment and the
 * list directory.
 */
#include "ivfpq.h"

#include "fastscan.h"

#include <math.h>

#include "miscadmin.h"
#include "storage/lmgr.h"
#include "access/xact.h"
#include "utils/memutils.h"
#include "utils/regproc.h"

/* the operators' functions, to recognise an operator class's metric */
extern Datum pgquant_array_l2_distance(PG_FUNCTION_ARGS);
extern Datum pgquant_array_negative_inner_product(PG_FUNCTION_ARGS);
extern Datum pgquant_array_cosine_distance(PG_FUNCTION_ARGS);

/* The metric of the index's operator class, from its distance support function. */
QtMetric
IvfpqMetricOfIndex(Relation index)
{
	FmgrInfo   *proc = index_getprocinfo(index, 1, IVFPQ_DISTANCE_PROC);

	if (proc->fn_addr == pgquant_array_l2_distance)
		return QT_METRIC_L2;
	if (proc->fn_addr == pgquant_array_negative_inner_product)
		return QT_METRIC_IP;
	if (proc->fn_addr == pgquant_array_cosine_distance)
		return QT_METRIC_COSINE;
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("ivfpq does not support the distance function %s of index \"%s\"",
					format_procedure(proc->fn_oid), RelationGetRelationName(index)),
			 errhint("Use one of the operator classes real_l2_ops, real_ip_ops or real_cosine_ops.")));
	return QT_METRIC_L2;		/* not reached */
}

static void pg_attribute_noreturn()
corrupted(Relation index, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_INDEX_CORRUPTED),
			 errmsg("ivfpq index \"%s\" is corrupted", RelationGetRelationName(index)),
			 errdetail("%s", detail),
			 errhint("REINDEX the index; pgquant.ivfpq_check() tells what is wrong.")));
}

void
IvfpqInitPage(Page page, uint16 flags, uint32 list)
{
	IvfpqPageOpaque op;

	PageInit(page, BLCKSZ, sizeof(IvfpqPageOpaqueData));
	op = IvfpqPageGetOpaque(page);
	op->nextblkno = InvalidBlockNumber;
	op->list = list;
	op->flags = flags;
	op->page_id = IVFPQ_PAGE_ID;
}

/* a new page at the end of the relation, pinned and exclusively locked */
Buffer
IvfpqNewBuffer(Relation index, ForkNumber fork)
{
	Buffer		buf;
	bool		needlock = !RELATION_IS_LOCAL(index);

	if (needlock)
		LockRelationForExtension(index, ExclusiveLock);
	buf = ReadBufferExtended(index, fork, P_NEW, RBM_NORMAL, NULL);
	LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
	if (needlock)
		UnlockRelationForExtension(index, ExclusiveLock);
	return buf;
}

void
IvfpqCheckMemory(Size bytes, const char *what)
{
	if (bytes / 1024 > (Size) maintenance_work_mem)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("ivfpq needs %zu MB for %s, more than maintenance_work_mem (%d MB)",
						bytes / (1024 * 1024) + 1, what, maintenance_work_mem / 1024),
				 errhint("Raise maintenance_work_mem, or build with fewer lists.")));
}

void
IvfpqReadMeta(Relation index, IvfpqMetaPageData *meta)
{
	Buffer		buf = ReadBuffer(index, IVFPQ_METAPAGE_BLKNO);
	Page		page;
	IvfpqPageOpaque op;

	LockBuffer(buf, BUFFER_LOCK_SHARE);
	page = BufferGetPage(buf);
	op = IvfpqPageGetOpaque(page);
	if (PageIsNew(page) || op->page_id != IVFPQ_PAGE_ID || !(op->flags & IVFPQ_PAGE_META))
	{
		UnlockReleaseBuffer(buf);
		corrupted(index, "Block 0 is not an ivfpq metapage.");
	}
	memcpy(meta, IvfpqPageGetMeta(page), sizeof(IvfpqMetaPageData));
	UnlockReleaseBuffer(buf);
	if (meta->magic != IVFPQ_MAGIC_NUMBER)
		corrupted(index, "The metapage has the wrong magic number.");
	if (meta->version != IVFPQ_VERSION)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("ivfpq index \"%s\" has format version %u; this build reads version %d",
						RelationGetRelationName(index), meta->version, IVFPQ_VERSION),
				 errhint("REINDEX the index.")));
}

/* copy bytes from the run of blob pages that starts at blkno */
static void
read_blob(Relation index, BlockNumber blkno, uint32 npages, char *dst, Size bytes)
{
	Size		done = 0;

	for (uint32 i = 0; i < npages && done < bytes; i++)
	{
		Buffer		buf = ReadBuffer(index, blkno + i);
		Page		page;
		Size		n;

		LockBuffer(buf, BUFFER_LOCK_SHARE);
		page = BufferGetPage(buf);
		if (IvfpqPageGetOpaque(page)->page_id != IVFPQ_PAGE_ID ||
			!(IvfpqPageGetOpaque(page)->flags & IVFPQ_PAGE_BLOB))
		{
			UnlockReleaseBuffer(buf);
			corrupted(index, psprintf("Block %u is not a blob page.", blkno + i));
		}
		n = ((PageHeader) page)->pd_lower - IVFPQ_PAGE_DATA_OFFSET;
		if (n > bytes - done)
			n = bytes - done;
		memcpy(dst + done, (char *) page + IVFPQ_PAGE_DATA_OFFSET, n);
		done += n;
		UnlockReleaseBuffer(buf);
	}
	if (done != bytes)
		corrupted(index, psprintf("The blob at block %u holds %zu bytes, not %zu.", blkno, done, bytes));
}

/* the backend's cache of index quantizers */
#define IVFPQ_CACHE_ENTRIES 8
#define IVFPQ_CACHE_BYTES ((Size) 512 * 1024 * 1024)
static MemoryContext ivfpq_cache_cxt = NULL;
static IvfpqCache *ivfpq_cache[IVFPQ_CACHE_ENTRIES];
static uint64 ivfpq_cache_clock = 0;

/* scans and inserts end with their transaction: so do their pins */
static void
cache_xact_callback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PARALLEL_COMMIT || event == XACT_EVENT_PARALLEL_ABORT ||
		event == XACT_EVENT_PREPARE)
		for (int i = 0; i < IVFPQ_CACHE_ENTRIES; i++)
			if (ivfpq_cache[i])
				ivfpq_cache[i]->pins = 0;
}

/* read the index's quantizers into one allocation in cxt */
static IvfpqCache *
load_cache(Relation index, const IvfpqMetaPageData *meta, MemoryContext cxt)
{
	IvfpqCache *c;
	Size		size,
				off;
	int			lists = (meta->flags & IVFPQ_META_TRAINED) ? meta->lists : 0;
	int			dim = meta->dim;
	int			ksub = lists > 0 ? 1 << meta->nbits : 0;
	Size		table = mul_size(mul_size(mul_size(lists, meta->m), ksub), sizeof(float));
	char	   *base;

	if (meta->metric == QT_METRIC_IP || table > IVFPQ_TABLE_MAX_BYTES)
		table = 0;

	size = MAXALIGN(sizeof(IvfpqCache));
	size = add_size(size, MAXALIGN(mul_size(Max(lists, 1), sizeof(BlockNumber))));
	size = add_size(size, MAXALIGN(mul_size(mul_size(lists, dim), sizeof(float))));
	size = add_size(size, MAXALIGN(mul_size(lists, sizeof(float))));
	size = add_size(size, MAXALIGN(mul_size(mul_size(ksub, dim), sizeof(float))));
	size = add_size(size, MAXALIGN(mul_size(mul_size(ksub, meta->m), sizeof(float))));
	size = add_size(size, MAXALIGN(table));
	base = MemoryContextAllocExtended(cxt, size, MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);
	c = (IvfpqCache *) base;
	c->size = size;
	off = MAXALIGN(sizeof(IvfpqCache));
	c->heads = (BlockNumber *) (base + off);
	off += MAXALIGN(sizeof(BlockNumber) * Max(lists, 1));
	c->centroids = (float *) (base + off);
	off += MAXALIGN(sizeof(float) * (Size) lists * dim);
	c->cnorm = (float *) (base + off);
	off += MAXALIGN(sizeof(float) * (Size) lists);
	c->pq_centroids = (float *) (base + off);
	off += MAXALIGN(sizeof(float) * (Size) ksub * dim);
	c->pq_cnorm = (float *) (base + off);
	off += MAXALIGN(sizeof(float) * (Size) ksub * meta->m);
	c->pq_table = table > 0 ? (float *) (base + off) : NULL;

	c->node = index->rd_node;
	c->meta = *meta;
	c->metric = (QtMetric) meta->metric;
	c->dim = dim;
	c->lists = lists;
	c->trained = lists > 0;

	/* list heads, from the directory */
	for (int l = 0; l < Max(lists, 1); l++)
	{
		IvfpqListData e;

		IvfpqReadDirectory(index, meta, l, &e);
		if (!BlockNumberIsValid(e.head))
			corrupted(index, psprintf("List %d has no first page.", l));
		c->heads[l] = e.head;
	}
	c->raw_head = c->heads[0];
	if (c->trained)
	{
		if (dim < 1 || meta->m < 1 || dim % meta->m != 0 || meta->nbits < 1 || meta->nbits > 8)
			corrupted(index, "The metapage's shape is invalid.");
		read_blob(index, meta->centroids_blkno, meta->centroids_pages, (char *) c->centroids,
				  sizeof(float) * (Size) lists * dim);
		read_blob(index, meta->codebook_blkno, meta->codebook_pages, (char *) c->pq_centroids,
				  sizeof(float) * (Size) ksub * dim);
		if (c->metric == QT_METRIC_IP)
			memset(c->cnorm, 0, sizeof(float) * lists);	/* nearest list = largest inner product */
		else
			qt_row_norms(c->centroids, lists, dim, c->cnorm);
		c->pq.d = dim;
		c->pq.m = meta->m;
		c->pq.nbits = meta->nbits;
		c->pq.dsub = dim / meta->m;
		c->pq.ksub = ksub;
		c->pq.centroids = c->pq_centroids;
		qt_pq_norm_lut(&c->pq, c->pq_cnorm);
		if (c->pq_table)
			qt_pq_precompute(&c->pq, c->pq_cnorm, c->centroids, lists, c->pq_table);
	}
	return c;
}

/*
 * The index's quantizers, pinned until IvfpqReleaseCache.  An empty
 * untrained index (no dimension yet) gets a transient copy.
 */
IvfpqCache *
IvfpqGetCache(Relation index)
{
	IvfpqMetaPageData meta;
	IvfpqCache *c;
	Size		total = 0;
	int			slot = -1;

	IvfpqReadMeta(index, &meta);
	if (meta.dim == 0)
	{
		c = load_cache(index, &meta, CurrentMemoryContext);
		c->cached = false;
		return c;
	}
	for (int i = 0; i < IVFPQ_CACHE_ENTRIES; i++)
	{
		c = ivfpq_cache[i];
		if (c && RelFileNodeEquals(c->node, index->rd_node) && memcmp(&c->meta, &meta, sizeof(meta)) == 0)
		{
			c->pins++;
			c->lastuse = ++ivfpq_cache_clock;
			return c;
		}
	}

	if (ivfpq_cache_cxt == NULL)
	{
		ivfpq_cache_cxt = AllocSetContextCreate(TopMemoryContext, "pgquant ivfpq cache", ALLOCSET_DEFAULT_SIZES);
		RegisterXactCallback(cache_xact_callback, NULL);
	}
	c = load_cache(index, &meta, ivfpq_cache_cxt);
	c->cached = true;
	c->pins = 1;
	c->lastuse = ++ivfpq_cache_clock;

	/* make room: drop unpinned entries, least recently used first, over the count or byte budget */
	for (;;)
	{
		int			lru = -1;

		total = c->size;
		slot = -1;
		for (int i = 0; i < IVFPQ_CACHE_ENTRIES; i++)
		{
			IvfpqCache *e = ivfpq_cache[i];

			if (e == NULL)
			{
				if (slot < 0)
					slot = i;
				continue;
			}
			total += e->size;
			if (e->pins == 0 && (lru < 0 || e->lastuse < ivfpq_cache[lru]->lastuse))
				lru = i;
		}
		if (lru >= 0 && (slot < 0 || total > IVFPQ_CACHE_BYTES))
		{
			pfree(ivfpq_cache[lru]);
			ivfpq_cache[lru] = NULL;
			continue;
		}
		break;
	}
	if (slot < 0)
	{
		/* every entry is pinned: this one lives until released */
		c->cached = false;
		return c;
	}
	ivfpq_cache[slot] = c;
	return c;
}

void
IvfpqReleaseCache(IvfpqCache *c)
{
	if (!c->cached)
		pfree(c);
	else if (c->pins > 0)
		c->pins--;
}

IvfpqVector
IvfpqPrepareVector(Datum value, int dim, QtMetric metric, float *buf, int *dim_out)
{
	IvfpqVector v;
	int			d;

	v.x = PgqVectorFromArray(DatumGetArrayTypeP(value), &d, "vector");
	v.orig = v.x;
	v.skip = false;
	if (d > IVFPQ_MAX_DIM)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("ivfpq indexes vectors of at most %d dimensions, got %d", IVFPQ_MAX_DIM, d)));
	if (dim > 0 && d != dim)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("vector has %d dimensions, expected %d", d, dim),
				 errdetail("An ivfpq index holds vectors of one dimension, fixed by its first vector.")));
	if (dim_out)
		*dim_out = d;
	if (metric == QT_METRIC_COSINE)
	{
		/* cosine: unit vectors, so that L2 order is cosine order; zero vectors have no direction */
		double		n = sqrt((double) qt_dot(v.x, v.x, d));

		if (n == 0)
			v.skip = true;
		else
			for (int i = 0; i < d; i++)
				buf[i] = (float) (v.x[i] / n);
		v.x = buf;
	}
	return v;
}

void
IvfpqAssign(const IvfpqCache *c, const float *x, int n, int32 *lists, float *scratch)
{
	qt_nearest(x, c->dim, n, c->dim, c->centroids, c->lists, c->cnorm, scratch, lists, NULL);
}

int
IvfpqChooseM(int dim)
{
	/* subvectors of 8 dimensions where 8 divides the dimension (FAISS's common choice) */
	for (int dsub = Min(8, dim); dsub <= dim; dsub++)
		if (dim % dsub == 0)
			return dim / dsub;
	return 1;
}

void
IvfpqReadDirectory(Relation index, const IvfpqMetaPageData *meta, uint32 list, IvfpqListData *entry)
{
	BlockNumber blkno;
	uint32		slot = list % IVFPQ_DIRECTORY_PER_PAGE;
	Buffer		buf;
	Page		page;

	if (list / IVFPQ_DIRECTORY_PER_PAGE >= meta->directory_pages)
		corrupted(index, psprintf("List %u is beyond the directory.", list));
	blkno = meta->directory_blkno + list / IVFPQ_DIRECTORY_PER_PAGE;
	buf = ReadBuffer(index, blkno);
	LockBuffer(buf, BUFFER_LOCK_SHARE);
	page = BufferGetPage(buf);
	if (IvfpqPageGetOpaque(page)->page_id != IVFPQ_PAGE_ID ||
		!(IvfpqPageGetOpaque(page)->flags & IVFPQ_PAGE_DIRECTORY))
	{
		UnlockReleaseBuffer(buf);
		corrupted(index, psprintf("Block %u is not a directory page.", blkno));
	}
	memcpy(entry, (char *) page + IVFPQ_PAGE_DATA_OFFSET + slot * sizeof(IvfpqListData), sizeof(IvfpqListData));
	UnlockReleaseBuffer(buf);
}

/*
 * Point a list's insert page at tail, but only when it is still expected
 * (or expected is invalid): an insert that extended the chain must not undo
 * a vacuum that moved the insert page back to a page with free space.
 */
void
IvfpqSetTail(Relation index, const IvfpqMetaPageData *meta, uint32 list, BlockNumber expected, BlockNumber tail)
{
	BlockNumber blkno = meta->directory_blkno + list / IVFPQ_DIRECTORY_PER_PAGE;
	uint32		slot = list % IVFPQ_DIRECTORY_PER_PAGE;
	Buffer		buf = ReadBuffer(index, blkno);
	GenericXLogState *state;
	Page		page;
	IvfpqListData *e;

	LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
	state = GenericXLogStart(index);
	page = GenericXLogRegisterBuffer(state, buf, 0);
	e = (IvfpqListData *) ((char *) page + IVFPQ_PAGE_DATA_OFFSET + slot * sizeof(IvfpqListData));
	if (e->tail != tail && (!BlockNumberIsValid(expected) || e->tail == expected))
	{
		e->tail = tail;
		GenericXLogFinish(state);
	}
	else
		GenericXLogAbort(state);
	UnlockReleaseBuffer(buf);
}

double
IvfpqExactDistance(QtMetric metric, const float *a, const float *b, int dim)
{
	return qt_exact_distance(metric, a, b, dim);
}

/* ---- entries of a code page, in either layout ----------------------------- */

int
IvfpqRecSize(const IvfpqMetaPageData *meta)
{
	return meta->entry_size - IVFPQ_TID_SIZE;
}

int
IvfpqPageCount(Page page, const IvfpqMetaPageData *meta)
{
	if (meta->flags & IVFPQ_META_PACKED)
		return IvfpqPageGetOpaque(page)->nentries;
	return meta->entry_size > 0 ? IvfpqPageEntries(page, meta->entry_size) : 0;
}

bool
IvfpqPageHasRoom(Page page, const IvfpqMetaPageData *meta)
{
	PageHeader	ph = (PageHeader) page;

	if (meta->flags & IVFPQ_META_PACKED)
	{
		/* room in the last block, or for a new block */
		if (IvfpqPageGetOpaque(page)->nentries % QT_FS_BLOCK != 0)
			return true;
		return ph->pd_lower + IvfpqBlockSize(meta->m) <= ph->pd_upper;
	}
	return ph->pd_lower + meta->entry_size <= ph->pd_upper;
}

void
IvfpqPageAppend(Page page, const IvfpqMetaPageData *meta, ItemPointer tid, const char *rec)
{
	PageHeader	ph = (PageHeader) page;

	if (meta->flags & IVFPQ_META_PACKED)
	{
		IvfpqPageOpaque op = IvfpqPageGetOpaque(page);
		int			bs = IvfpqBlockSize(meta->m);
		int			n = op->nentries;
		char	   *blk;

		if (n % QT_FS_BLOCK == 0)
		{
			/* a new, zeroed block */
			memset((char *) page + ph->pd_lower, 0, bs);
			ph->pd_lower += bs;
		}
		blk = IvfpqBlock(page, bs, n / QT_FS_BLOCK);
		memcpy(blk + (n % QT_FS_BLOCK) * IVFPQ_TID_SIZE, tid, IVFPQ_TID_SIZE);
		qt_fs_set((uint8 *) blk + IVFPQ_BLOCK_TIDS, meta->m, n % QT_FS_BLOCK, (const uint8 *) rec);
		op->nentries = (uint16) (n + 1);
		return;
	}
	memcpy((char *) page + ph->pd_lower, tid, IVFPQ_TID_SIZE);
	memcpy((char *) page + ph->pd_lower + IVFPQ_TID_SIZE, rec, meta->entry_size - IVFPQ_TID_SIZE);
	ph->pd_lower += meta->entry_size;
}

void
IvfpqPageGetTid(Page page, const IvfpqMetaPageData *meta, int i, ItemPointer tid)
{
	if (meta->flags & IVFPQ_META_PACKED)
		memcpy(tid, IvfpqBlock(page, IvfpqBlockSize(meta->m), i / QT_FS_BLOCK) + (i % QT_FS_BLOCK) * IVFPQ_TID_SIZE,
			   IVFPQ_TID_SIZE);
	else
		memcpy(tid, IvfpqPageEntry(page, meta->entry_size, i), IVFPQ_TID_SIZE);
}

void
IvfpqPageGetRec(Page page, const IvfpqMetaPageData *meta, int i, char *rec)
{
	if (meta->flags & IVFPQ_META_PACKED)
		qt_fs_get((const uint8 *) IvfpqBlock(page, IvfpqBlockSize(meta->m), i / QT_FS_BLOCK) + IVFPQ_BLOCK_TIDS,
				  meta->m, i % QT_FS_BLOCK, (uint8 *) rec);
	else
		memcpy(rec, IvfpqPageEntry(page, meta->entry_size, i) + IVFPQ_TID_SIZE, meta->entry_size - IVFPQ_TID_SIZE);
}

void
IvfpqPageMove(Page page, const IvfpqMetaPageData *meta, int from, int to)
{
	if (meta->flags & IVFPQ_META_PACKED)
	{
		int			bs = IvfpqBlockSize(meta->m);
		char	   *src = IvfpqBlock(page, bs, from / QT_FS_BLOCK);
		char	   *dst = IvfpqBlock(page, bs, to / QT_FS_BLOCK);
		uint8		code[QT_FS_MAX_M / 2];

		memcpy(dst + (to % QT_FS_BLOCK) * IVFPQ_TID_SIZE, src + (from % QT_FS_BLOCK) * IVFPQ_TID_SIZE, IVFPQ_TID_SIZE);
		qt_fs_get((const uint8 *) src + IVFPQ_BLOCK_TIDS, meta->m, from % QT_FS_BLOCK, code);
		qt_fs_set((uint8 *) dst + IVFPQ_BLOCK_TIDS, meta->m, to % QT_FS_BLOCK, code);
		return;
	}
	memcpy(IvfpqPageEntry(page, meta->entry_size, to), IvfpqPageEntry(page, meta->entry_size, from), meta->entry_size);
}

void
IvfpqPageTruncate(Page page, const IvfpqMetaPageData *meta, int n)
{
	PageHeader	ph = (PageHeader) page;

	if (meta->flags & IVFPQ_META_PACKED)
	{
		IvfpqPageOpaque op = IvfpqPageGetOpaque(page);
		int			bs = IvfpqBlockSize(meta->m);
		int			nblocks = (n + QT_FS_BLOCK - 1) / QT_FS_BLOCK;

		/* unused slots of the last block are zero, as the check expects */
		for (int i = n; i < nblocks * QT_FS_BLOCK; i++)
		{
			char	   *blk = IvfpqBlock(page, bs, i / QT_FS_BLOCK);

			memset(blk + (i % QT_FS_BLOCK) * IVFPQ_TID_SIZE, 0, IVFPQ_TID_SIZE);
			qt_fs_clear((uint8 *) blk + IVFPQ_BLOCK_TIDS, meta->m, i % QT_FS_BLOCK);
		}
		op->nentries = (uint16) n;
		ph->pd_lower = IVFPQ_PAGE_DATA_OFFSET + nblocks * bs;
		return;
	}
	ph->pd_lower = IVFPQ_PAGE_DATA_OFFSET + n * meta->entry_size;
}
