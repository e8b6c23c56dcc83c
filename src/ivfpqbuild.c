/*
 * ivfpqbuild.c: building an ivfpq index.
 *
 * 1. sampling rows: a seeded block sample and reservoir (as ANALYZE does) of
 *    at most max(64 x lists, 64 x 2^nbits) vectors, capped by half of
 *    maintenance_work_mem;
 * 2. training the coarse quantizer: k-means (lists centroids) on the sample;
 * 3. training the product quantizer: k-means per subquantizer on the sample's
 *    residuals (vector - its list's centroid);
 * 4. assigning and encoding: one pass over the table, in batches of 1024
 *    vectors (nearest list and PQ codes through sgemm), into a tuplesort by
 *    (list, heap TID);
 * 5. loading: each list's entries into a chain of pages, in list order, every
 *    page written once through GenericXLog (a full image).
 * With fewer sampled vectors than lists or 2^nbits the index stays untrained:
 * one list of uncompressed vectors, searched exactly.
 */
#include "ivfpq.h"

#include "fastscan.h"

#include "access/tableam.h"
#include "access/xloginsert.h"
#include "catalog/index.h"
#include "catalog/pg_operator_d.h"
#include "catalog/pg_type_d.h"
#include "common/pg_prng.h"
#include "commands/progress.h"
#include "executor/tuptable.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/memutils.h"
#include "utils/sampling.h"
#include "utils/tuplesort.h"

#define BUILD_BATCH 1024
#define BUILD_SEED 0x49565051u
#define SAMPLE_INITIAL_CAP 1024

typedef struct IvfpqBuildState
{
	Relation	heap;
	Relation	index;
	IndexInfo  *indexInfo;
	QtMetric	metric;
	int			lists;			/* requested */
	int			m;				/* requested, 0: automatic */
	int			nbits;
	int			dim;			/* from the first vector */

	/* sampling */
	int64		sample_target;
	int64		sample_needed;	/* the least that trains: max(lists, 2^nbits) */
	bool		sample_capped;	/* maintenance_work_mem set the target */
	int64		nsample;
	int64		sample_cap;
	float	   *sample;
	double		samplerows;
	double		rowstoskip;
	ReservoirStateData rstate;

	/* the quantizers, once trained */
	IvfpqCache	c;
	bool		trained;
	int			entry_size;
	int			code_size;

	/* encoding */
	float	   *batch;			/* BUILD_BATCH x dim */
	ItemPointerData *tids;
	int			nbatch;
	int32	   *assign;
	uint8	   *codes;
	float	   *scratch;
	float	   *normbuf;
	Tuplesortstate *sort;
	TupleDesc	sortdesc;
	TupleTableSlot *slot;		/* virtual, for tuplesort_puttupleslot */
	TupleTableSlot *rslot;		/* minimal tuples, from tuplesort_gettupleslot */
	double		reltuples;
	double		indtuples;
	MemoryContext tmpcxt;
} IvfpqBuildState;

/* ---- sampling ---------------------------------------------------------- */

static void
sample_add(IvfpqBuildState *bs, const float *x)
{
	int64		slot;

	if (bs->nsample < bs->sample_target)
	{
		if (bs->nsample == bs->sample_cap)
		{
			int64		cap = Min(Max(bs->sample_cap * 2, SAMPLE_INITIAL_CAP), bs->sample_target);
			Size		bytes = mul_size(mul_size(cap, bs->dim), sizeof(float));

			IvfpqCheckMemory(bytes, "the training sample");
			bs->sample = bs->sample ? repalloc_huge(bs->sample, bytes)
				: MemoryContextAllocExtended(CurrentMemoryContext, bytes, MCXT_ALLOC_HUGE);
			bs->sample_cap = cap;
		}
		slot = bs->nsample++;
	}
	else
	{
		/*
		 * More rows than the sample holds: the table could train, so a
		 * sample that maintenance_work_mem kept too small to train is an error
		 */
		if (bs->sample_capped && bs->sample_target < bs->sample_needed)
			IvfpqCheckMemory(mul_size(mul_size(2 * bs->sample_needed, bs->dim), sizeof(float)),
							 "the training sample");
		/* Vitter's reservoir over the sampled blocks' rows, as ANALYZE */
		if (bs->rowstoskip < 0)
			bs->rowstoskip = reservoir_get_next_S(&bs->rstate, bs->samplerows, (int) bs->sample_target);
		slot = -1;
		if (bs->rowstoskip <= 0)
			slot = (int64) (bs->sample_target * sampler_random_fract(&bs->rstate.randstate));
		bs->rowstoskip -= 1;
	}
	if (slot >= 0)
		memcpy(bs->sample + slot * bs->dim, x, sizeof(float) * bs->dim);
	bs->samplerows += 1;
}

/* the first vector fixes the dimension and, through it, the sample's size */
static void
set_dimension(IvfpqBuildState *bs, int dim)
{
	int			ksub = 1 << bs->nbits;
	int64		by_mem = (int64) maintenance_work_mem * 1024 / 2 / (sizeof(float) * dim);

	bs->dim = dim;
	bs->sample_needed = Max(bs->lists, ksub);
	bs->sample_target = Max((int64) IVFPQ_SAMPLE_PER_LIST * bs->lists, (int64) IVFPQ_SAMPLE_PER_CODE * ksub);
	bs->sample_capped = by_mem < bs->sample_target;
	bs->sample_target = Max(Min(bs->sample_target, by_mem), 1);
	bs->sample_target = Min(bs->sample_target, PG_INT32_MAX);
	bs->normbuf = palloc(sizeof(float) * dim);
}

static void
sample_callback(Relation index, ItemPointer tid, Datum *values, bool *isnull,
				bool tupleIsAlive, void *state)
{
	IvfpqBuildState *bs = (IvfpqBuildState *) state;
	MemoryContext old;
	IvfpqVector v;
	int			dim;

	if (isnull[0])
		return;
	old = MemoryContextSwitchTo(bs->tmpcxt);
	if (bs->dim == 0)
	{
		/* the first vector: its dimension sizes the sample */
		(void) IvfpqPrepareVector(values[0], 0, QT_METRIC_L2, NULL, &dim);
		MemoryContextSwitchTo(old);
		set_dimension(bs, dim);
		MemoryContextSwitchTo(bs->tmpcxt);
	}
	v = IvfpqPrepareVector(values[0], bs->dim, bs->metric, bs->normbuf, &dim);
	MemoryContextSwitchTo(old);
	if (!v.skip)
		sample_add(bs, v.x);
	MemoryContextReset(bs->tmpcxt);
}

static void
sample_rows(IvfpqBuildState *bs)
{
	BlockNumber nblocks = RelationGetNumberOfBlocks(bs->heap);
	BlockSamplerData bsampler;
	/* target rows for the block sampler: enough blocks for the largest sample */
	int			targrows = (int) Max((int64) IVFPQ_SAMPLE_PER_LIST * bs->lists,
									 (int64) IVFPQ_SAMPLE_PER_CODE << bs->nbits);

	bs->samplerows = 0;
	bs->rowstoskip = -1;
	BlockSampler_Init(&bsampler, nblocks, targrows, BUILD_SEED);
	reservoir_init_selection_state(&bs->rstate, targrows);
	/* seeded, so that a build of the same table trains the same quantizers */
	sampler_random_init_state(BUILD_SEED, &bs->rstate.randstate);
	while (BlockSampler_HasMore(&bsampler))
	{
		BlockNumber blk = BlockSampler_Next(&bsampler);

		CHECK_FOR_INTERRUPTS();
		table_index_build_range_scan(bs->heap, bs->index, bs->indexInfo, false, true, false,
									 blk, 1, sample_callback, (void *) bs, NULL);
	}
}

/* ---- training ---------------------------------------------------------- */

static void
train(IvfpqBuildState *bs)
{
	IvfpqCache *c = &bs->c;
	int			ksub = 1 << bs->nbits;
	int			m = bs->m > 0 ? bs->m : IvfpqChooseM(bs->dim);
	QtKmeansParams kp = {.niter = IVFPQ_KMEANS_NITER, .seed = BUILD_SEED};
	QtKmeansParams pp = {.niter = IVFPQ_KMEANS_NITER, .seed = BUILD_SEED + 1,
	.max_points = (int64) IVFPQ_SAMPLE_PER_CODE * 4 * ksub};
	QtKmeansStats ks;
	char		err[QT_ERRMSG_LEN];
	QtStatus	st;
	size_t		kws,
				pws;
	void	   *work;
	int32	   *assign;
	float	   *scratch;
	double		mse;

	if ((st = qt_pq_check_shape(bs->dim, m, bs->nbits, err)) != QT_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid ivfpq options for vectors of %d dimensions", bs->dim),
				 errdetail("%s.", err)));

	kws = qt_kmeans_workspace(bs->nsample, bs->dim, bs->lists, &kp);
	pws = qt_pq_train_workspace(bs->nsample, bs->dim, m, bs->nbits, &pp);
	if (kws == 0 || pws == 0)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("ivfpq training sizes overflow")));
	IvfpqCheckMemory(add_size(add_size(mul_size(mul_size(bs->nsample, bs->dim), sizeof(float)), Max(kws, pws)),
							  add_size(mul_size(mul_size(bs->lists, bs->dim), sizeof(float)),
									   mul_size(bs->nsample, sizeof(int32)))),
					 "training");

	c->dim = bs->dim;
	c->lists = bs->lists;
	c->metric = bs->metric;
	c->trained = true;
	c->centroids = palloc_extended(sizeof(float) * (Size) bs->lists * bs->dim, MCXT_ALLOC_HUGE);
	c->cnorm = palloc(sizeof(float) * bs->lists);
	c->pq_centroids = palloc(sizeof(float) * (Size) ksub * bs->dim);
	c->pq_cnorm = palloc(sizeof(float) * (Size) ksub * m);

	/* coarse quantizer */
	pgstat_progress_update_param(PROGRESS_CREATEIDX_SUBPHASE, IVFPQ_PHASE_TRAIN_COARSE);
	work = palloc_extended(Max(kws, pws), MCXT_ALLOC_HUGE);
	st = qt_kmeans(bs->sample, bs->nsample, bs->dim, bs->lists, &kp, work, kws, c->centroids, &ks, err);
	PgqReportStatus(st, err, "ivfpq coarse quantizer", ERRCODE_INTERNAL_ERROR);
	if (bs->metric == QT_METRIC_IP)
		memset(c->cnorm, 0, sizeof(float) * bs->lists);
	else
		qt_row_norms(c->centroids, bs->lists, bs->dim, c->cnorm);

	/* residuals of the sample, in place */
	assign = palloc_extended(sizeof(int32) * bs->nsample, MCXT_ALLOC_HUGE);
	scratch = palloc(sizeof(float) * qt_nearest_scratch(bs->nsample, bs->lists));
	IvfpqAssign(c, bs->sample, (int) bs->nsample, assign, scratch);
	for (int64 i = 0; i < bs->nsample; i++)
	{
		float	   *x = bs->sample + i * bs->dim;
		const float *cc = c->centroids + (Size) assign[i] * bs->dim;

		for (int t = 0; t < bs->dim; t++)
			x[t] -= cc[t];
	}
	pfree(scratch);
	pfree(assign);

	/* product quantizer of the residuals */
	pgstat_progress_update_param(PROGRESS_CREATEIDX_SUBPHASE, IVFPQ_PHASE_TRAIN_PQ);
	st = qt_pq_train(bs->sample, bs->nsample, bs->dim, m, bs->nbits, &pp, work, pws, c->pq_centroids, &mse, err);
	PgqReportStatus(st, err, "ivfpq product quantizer", ERRCODE_INTERNAL_ERROR);
	pfree(work);
	c->pq.d = bs->dim;
	c->pq.m = m;
	c->pq.nbits = bs->nbits;
	c->pq.dsub = bs->dim / m;
	c->pq.ksub = ksub;
	c->pq.centroids = c->pq_centroids;
	qt_pq_norm_lut(&c->pq, c->pq_cnorm);
	bs->code_size = (int) qt_code_size(m, bs->nbits);
	bs->entry_size = IVFPQ_TID_SIZE + bs->code_size;
	elog(DEBUG1, "ivfpq: trained %d lists and %d x %d-bit codes on " INT64_FORMAT " vectors; residual mse %g",
		 bs->lists, m, bs->nbits, bs->nsample, mse);
}

/* ---- assigning and encoding ------------------------------------------- */

static void
flush_batch(IvfpqBuildState *bs)
{
	MemoryContext old;
	int			rec = bs->trained ? bs->code_size : (int) (sizeof(float) * bs->dim);

	if (bs->nbatch == 0)
		return;
	old = MemoryContextSwitchTo(bs->tmpcxt);
	if (bs->trained)
	{
		IvfpqAssign(&bs->c, bs->batch, bs->nbatch, bs->assign, bs->scratch);
		for (int i = 0; i < bs->nbatch; i++)
		{
			float	   *x = bs->batch + (Size) i * bs->dim;
			const float *cc = bs->c.centroids + (Size) bs->assign[i] * bs->dim;

			for (int t = 0; t < bs->dim; t++)
				x[t] -= cc[t];
		}
		qt_pq_encode(&bs->c.pq, bs->c.pq_cnorm, bs->batch, bs->nbatch, bs->codes, bs->scratch);
	}
	for (int i = 0; i < bs->nbatch; i++)
	{
		bytea	   *b = palloc(VARHDRSZ + rec);

		SET_VARSIZE(b, VARHDRSZ + rec);
		memcpy(VARDATA(b), bs->trained ? (char *) (bs->codes + (Size) i * rec)
			   : (char *) (bs->batch + (Size) i * bs->dim), rec);
		ExecClearTuple(bs->slot);
		bs->slot->tts_values[0] = Int32GetDatum(bs->trained ? bs->assign[i] : 0);
		bs->slot->tts_isnull[0] = false;
		bs->slot->tts_values[1] = PointerGetDatum(&bs->tids[i]);
		bs->slot->tts_isnull[1] = false;
		bs->slot->tts_values[2] = PointerGetDatum(b);
		bs->slot->tts_isnull[2] = false;
		ExecStoreVirtualTuple(bs->slot);
		tuplesort_puttupleslot(bs->sort, bs->slot);
	}
	bs->indtuples += bs->nbatch;
	bs->nbatch = 0;
	MemoryContextSwitchTo(old);
	MemoryContextReset(bs->tmpcxt);
}

static void
encode_callback(Relation index, ItemPointer tid, Datum *values, bool *isnull,
				bool tupleIsAlive, void *state)
{
	IvfpqBuildState *bs = (IvfpqBuildState *) state;
	MemoryContext old;
	IvfpqVector v;
	int			dim;

	bs->reltuples += 1;
	if (isnull[0])
		return;
	old = MemoryContextSwitchTo(bs->tmpcxt);
	if (bs->dim == 0)
	{
		/* an untrained build whose sample saw no vector: the table has one now */
		(void) IvfpqPrepareVector(values[0], 0, QT_METRIC_L2, NULL, &dim);
		MemoryContextSwitchTo(old);
		set_dimension(bs, dim);
		bs->entry_size = IVFPQ_TID_SIZE + (int) sizeof(float) * dim;
		bs->batch = palloc(sizeof(float) * BUILD_BATCH * dim);
		MemoryContextSwitchTo(bs->tmpcxt);
	}
	v = IvfpqPrepareVector(values[0], bs->dim, bs->metric, bs->normbuf, &dim);
	MemoryContextSwitchTo(old);
	if (v.skip)
		return;
	/* a trained index encodes what the quantizers see; an untrained one keeps the vector as given */
	memcpy(bs->batch + (Size) bs->nbatch * bs->dim, bs->trained ? v.x : v.orig, sizeof(float) * bs->dim);
	bs->tids[bs->nbatch++] = *tid;
	if (bs->nbatch == BUILD_BATCH)
		flush_batch(bs);
}

/* ---- writing pages ----------------------------------------------------- */

/* write a full page image to blkno (an existing, empty block) */
static void
write_page(Relation index, ForkNumber fork, BlockNumber blkno, const char *image)
{
	Buffer		buf = ReadBufferExtended(index, fork, blkno, RBM_NORMAL, NULL);
	GenericXLogState *state;
	Page		page;

	LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
	state = GenericXLogStart(index);
	page = GenericXLogRegisterBuffer(state, buf, GENERIC_XLOG_FULL_IMAGE);
	memcpy(page, image, BLCKSZ);
	GenericXLogFinish(state);
	UnlockReleaseBuffer(buf);
}

/* a new empty block at the end of the relation */
static BlockNumber
new_block(Relation index, ForkNumber fork)
{
	Buffer		buf = IvfpqNewBuffer(index, fork);
	BlockNumber blkno = BufferGetBlockNumber(buf);

	UnlockReleaseBuffer(buf);
	return blkno;
}

/* bytes as a run of blob pages; returns the first block and the page count */
static BlockNumber
write_blob(Relation index, ForkNumber fork, const char *data, Size bytes, uint32 *npages)
{
	PGAlignedBlock img;
	Size		per = IVFPQ_PAGE_CAPACITY;
	uint32		n = (uint32) ((bytes + per - 1) / per);
	BlockNumber first = InvalidBlockNumber;

	for (uint32 i = 0; i < n; i++)
	{
		BlockNumber blkno = new_block(index, fork);
		Size		len = Min(per, bytes - (Size) i * per);

		if (i == 0)
			first = blkno;
		else if (blkno != first + i)
			elog(ERROR, "ivfpq blob pages are not consecutive (please report a bug)");
		IvfpqInitPage(img.data, IVFPQ_PAGE_BLOB, 0);
		memcpy(img.data + IVFPQ_PAGE_DATA_OFFSET, data + (Size) i * per, len);
		((PageHeader) img.data)->pd_lower = IVFPQ_PAGE_DATA_OFFSET + len;
		if (i + 1 < n)
			IvfpqPageGetOpaque(img.data)->nextblkno = blkno + 1;
		write_page(index, fork, blkno, img.data);
	}
	*npages = n;
	return first;
}

/*
 * Appends entries to a list's chain during the build: one page registered
 * with GenericXLog at a time; a full page gets its successor's block number
 * and is logged once, as a full image.
 */
typedef struct ChainWriter
{
	Relation	index;
	ForkNumber	fork;
	uint16		flags;
	uint32		list;
	const IvfpqMetaPageData *meta;
	Buffer		buf;
	GenericXLogState *state;
	Page		page;
	BlockNumber head;
} ChainWriter;

static void
chain_start(ChainWriter *w, Relation index, ForkNumber fork, uint16 flags, uint32 list,
			const IvfpqMetaPageData *meta)
{
	w->index = index;
	w->fork = fork;
	w->flags = flags;
	w->list = list;
	w->meta = meta;
	w->buf = IvfpqNewBuffer(index, fork);
	w->head = BufferGetBlockNumber(w->buf);
	w->state = GenericXLogStart(index);
	w->page = GenericXLogRegisterBuffer(w->state, w->buf, GENERIC_XLOG_FULL_IMAGE);
	IvfpqInitPage(w->page, flags, list);
}

static void
chain_add(ChainWriter *w, ItemPointer tid, const char *rec)
{
	if (!IvfpqPageHasRoom(w->page, w->meta))
	{
		Buffer		next = IvfpqNewBuffer(w->index, w->fork);

		IvfpqPageGetOpaque(w->page)->nextblkno = BufferGetBlockNumber(next);
		GenericXLogFinish(w->state);
		UnlockReleaseBuffer(w->buf);
		w->buf = next;
		w->state = GenericXLogStart(w->index);
		w->page = GenericXLogRegisterBuffer(w->state, w->buf, GENERIC_XLOG_FULL_IMAGE);
		IvfpqInitPage(w->page, w->flags, w->list);
	}
	IvfpqPageAppend(w->page, w->meta, tid, rec);
}

/* finish the chain; returns its last page */
static BlockNumber
chain_end(ChainWriter *w)
{
	BlockNumber tail = BufferGetBlockNumber(w->buf);

	GenericXLogFinish(w->state);
	UnlockReleaseBuffer(w->buf);
	return tail;
}

/*
 * Write the whole index: metapage (block 0), blobs, directory, then each
 * list's chain from the sorted entries (sort may be NULL: no entries).
 */
static void
write_index(Relation index, ForkNumber fork, IvfpqBuildState *bs, IvfpqMetaPageData *meta)
{
	int			nlists = bs->trained ? bs->lists : 1;
	uint32		ndir = (uint32) ((nlists + IVFPQ_DIRECTORY_PER_PAGE - 1) / IVFPQ_DIRECTORY_PER_PAGE);
	IvfpqListData *dir = palloc0(sizeof(IvfpqListData) * nlists);
	PGAlignedBlock img;
	BlockNumber metablk = new_block(index, fork);
	bool		have = false;
	int			cur_list = -1;
	double		done = 0;

	if (metablk != IVFPQ_METAPAGE_BLKNO)
		elog(ERROR, "ivfpq index is not empty at build (please report a bug)");
	if (bs->trained)
	{
		meta->centroids_blkno = write_blob(index, fork, (const char *) bs->c.centroids,
										   sizeof(float) * (Size) bs->lists * bs->dim, &meta->centroids_pages);
		meta->codebook_blkno = write_blob(index, fork, (const char *) bs->c.pq_centroids,
										  sizeof(float) * (Size) bs->c.pq.ksub * bs->dim, &meta->codebook_pages);
	}
	meta->directory_blkno = new_block(index, fork);
	meta->directory_pages = ndir;
	for (uint32 i = 1; i < ndir; i++)
		if (new_block(index, fork) != meta->directory_blkno + i)
			elog(ERROR, "ivfpq directory pages are not consecutive (please report a bug)");

	pgstat_progress_update_param(PROGRESS_CREATEIDX_SUBPHASE, IVFPQ_PHASE_LOAD);
	if (bs->sort)
		have = tuplesort_gettupleslot(bs->sort, true, false, bs->rslot, NULL);
	for (int l = 0; l < nlists; l++)
	{
		ChainWriter w;

		chain_start(&w, index, fork, !bs->trained ? IVFPQ_PAGE_CODES | IVFPQ_PAGE_RAW :
					(meta->flags & IVFPQ_META_PACKED) ? IVFPQ_PAGE_CODES | IVFPQ_PAGE_PACKED : IVFPQ_PAGE_CODES,
					(uint32) l, meta);
		dir[l].head = w.head;
		while (have)
		{
			bool		isnull;
			int32		list = DatumGetInt32(slot_getattr(bs->rslot, 1, &isnull));
			ItemPointer tid;
			bytea	   *rec;

			if (list != l)
				break;
			tid = (ItemPointer) DatumGetPointer(slot_getattr(bs->rslot, 2, &isnull));
			rec = DatumGetByteaPP(slot_getattr(bs->rslot, 3, &isnull));
			chain_add(&w, tid, VARDATA_ANY(rec));
			if ((int64) ++done % 1024 == 0)
			{
				CHECK_FOR_INTERRUPTS();
				pgstat_progress_update_param(PROGRESS_CREATEIDX_TUPLES_DONE, (int64) done);
			}
			have = tuplesort_gettupleslot(bs->sort, true, false, bs->rslot, NULL);
		}
		dir[l].tail = chain_end(&w);
		cur_list = l;
	}
	(void) cur_list;
	if (have)
		elog(ERROR, "ivfpq build: entries of list beyond %d (please report a bug)", nlists - 1);
	pgstat_progress_update_param(PROGRESS_CREATEIDX_TUPLES_DONE, (int64) done);

	for (uint32 i = 0; i < ndir; i++)
	{
		int			first = (int) (i * IVFPQ_DIRECTORY_PER_PAGE);
		int			n = Min((int) IVFPQ_DIRECTORY_PER_PAGE, nlists - first);

		IvfpqInitPage(img.data, IVFPQ_PAGE_DIRECTORY, 0);
		memcpy(img.data + IVFPQ_PAGE_DATA_OFFSET, dir + first, sizeof(IvfpqListData) * n);
		((PageHeader) img.data)->pd_lower = IVFPQ_PAGE_DATA_OFFSET + sizeof(IvfpqListData) * n;
		if (i + 1 < ndir)
			IvfpqPageGetOpaque(img.data)->nextblkno = meta->directory_blkno + i + 1;
		write_page(index, fork, meta->directory_blkno + i, img.data);
	}

	meta->build_rows = (uint64) done;
	IvfpqInitPage(img.data, IVFPQ_PAGE_META, 0);
	memcpy(PageGetContents(img.data), meta, sizeof(IvfpqMetaPageData));
	((PageHeader) img.data)->pd_lower = (char *) PageGetContents(img.data) + sizeof(IvfpqMetaPageData) - img.data;
	write_page(index, fork, IVFPQ_METAPAGE_BLKNO, img.data);
	pfree(dir);
}

static void
fill_meta(IvfpqBuildState *bs, IvfpqMetaPageData *meta)
{
	memset(meta, 0, sizeof(*meta));
	meta->magic = IVFPQ_MAGIC_NUMBER;
	meta->version = IVFPQ_VERSION;
	meta->flags = bs->trained ? IVFPQ_META_TRAINED : 0;
	/* 4-bit codes go in blocks of 32, for the fast-scan kernel */
	if (bs->trained && bs->nbits == 4 && bs->c.pq.m <= QT_FS_MAX_M)
		meta->flags |= IVFPQ_META_PACKED;
	meta->dim = (uint32) bs->dim;
	meta->lists = bs->trained ? (uint32) bs->lists : 1;
	meta->m = bs->trained ? (uint16) bs->c.pq.m : 0;
	meta->nbits = (uint8) bs->nbits;
	meta->metric = (uint8) bs->metric;
	meta->code_size = (uint16) (bs->trained ? bs->code_size : 0);
	meta->entry_size = (uint16) (bs->dim > 0 ? bs->entry_size : 0);
	meta->centroids_blkno = InvalidBlockNumber;
	meta->codebook_blkno = InvalidBlockNumber;
	meta->sample_rows = (uint64) bs->nsample;
	meta->build_id = pg_prng_uint64(&pg_global_prng_state);
}

static void
init_state(IvfpqBuildState *bs, Relation heap, Relation index, IndexInfo *indexInfo)
{
	IvfpqOptions *opts = (IvfpqOptions *) index->rd_options;

	memset(bs, 0, sizeof(*bs));
	bs->heap = heap;
	bs->index = index;
	bs->indexInfo = indexInfo;
	bs->metric = IvfpqMetricOfIndex(index);
	bs->lists = opts ? opts->lists : IVFPQ_DEFAULT_LISTS;
	bs->m = opts ? opts->m : 0;
	bs->nbits = opts ? opts->nbits : IVFPQ_DEFAULT_NBITS;
	bs->tmpcxt = AllocSetContextCreate(CurrentMemoryContext, "ivfpq build temporary context",
									   ALLOCSET_DEFAULT_SIZES);
}

IndexBuildResult *
ivfpqbuild(Relation heap, Relation index, IndexInfo *indexInfo)
{
	IvfpqBuildState bs;
	IvfpqMetaPageData meta;
	IndexBuildResult *result;
	int			ksub;
	AttrNumber	attnums[2] = {1, 2};
	Oid			sortops[2] = {Int4LessOperator, TIDLessOperator};
	Oid			colls[2] = {InvalidOid, InvalidOid};
	bool		nullsfirst[2] = {false, false};

	if (RelationGetNumberOfBlocks(index) != 0)
		elog(ERROR, "index \"%s\" already contains data", RelationGetRelationName(index));
	init_state(&bs, heap, index, indexInfo);
	ksub = 1 << bs.nbits;
	if (bs.m > IVFPQ_MAX_DIM)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("ivfpq option m must be at most %d", IVFPQ_MAX_DIM)));

	/* 1-3: sample, then train when the sample is big enough */
	pgstat_progress_update_param(PROGRESS_CREATEIDX_SUBPHASE, IVFPQ_PHASE_SAMPLE);
	sample_rows(&bs);
	bs.trained = bs.dim > 0 && bs.nsample >= Max(bs.lists, ksub);
	if (bs.trained)
		train(&bs);
	else
		bs.entry_size = IVFPQ_TID_SIZE + (int) sizeof(float) * bs.dim;
	if (bs.sample)
		pfree(bs.sample);
	bs.sample = NULL;

	/* 4: every row, assigned and encoded, into a sort by list and heap TID */
	pgstat_progress_update_param(PROGRESS_CREATEIDX_SUBPHASE, IVFPQ_PHASE_ENCODE);
	bs.sortdesc = CreateTemplateTupleDesc(3);
	TupleDescInitEntry(bs.sortdesc, (AttrNumber) 1, "list", INT4OID, -1, 0);
	TupleDescInitEntry(bs.sortdesc, (AttrNumber) 2, "tid", TIDOID, -1, 0);
	TupleDescInitEntry(bs.sortdesc, (AttrNumber) 3, "rec", BYTEAOID, -1, 0);
	bs.slot = MakeSingleTupleTableSlot(bs.sortdesc, &TTSOpsVirtual);
	bs.rslot = MakeSingleTupleTableSlot(bs.sortdesc, &TTSOpsMinimalTuple);
	bs.sort = tuplesort_begin_heap(bs.sortdesc, 2, attnums, sortops, colls, nullsfirst,
								   maintenance_work_mem, NULL, TUPLESORT_NONE);
	bs.tids = palloc(sizeof(ItemPointerData) * BUILD_BATCH);
	if (bs.dim > 0)
		bs.batch = palloc(sizeof(float) * BUILD_BATCH * bs.dim);
	if (bs.trained)
	{
		bs.assign = palloc(sizeof(int32) * BUILD_BATCH);
		bs.codes = palloc((Size) bs.code_size * BUILD_BATCH);
		bs.scratch = palloc(sizeof(float) * Max(qt_nearest_scratch(BUILD_BATCH, bs.lists),
												 qt_pq_encode_scratch(&bs.c.pq, BUILD_BATCH)));
	}
	bs.reltuples = table_index_build_scan(heap, index, indexInfo, true, true, encode_callback,
										  (void *) &bs, NULL);
	flush_batch(&bs);
	pgstat_progress_update_param(PROGRESS_CREATEIDX_TUPLES_TOTAL, (int64) bs.indtuples);
	tuplesort_performsort(bs.sort);

	/* 5: pages */
	fill_meta(&bs, &meta);
	write_index(index, MAIN_FORKNUM, &bs, &meta);
	tuplesort_end(bs.sort);
	ExecDropSingleTupleTableSlot(bs.slot);
	ExecDropSingleTupleTableSlot(bs.rslot);

	if (!bs.trained && bs.indtuples > 0)
		ereport(NOTICE,
				(errmsg("ivfpq index \"%s\" is untrained and keeps its %.0f vectors uncompressed",
						RelationGetRelationName(index), bs.indtuples),
				 errdetail("Training needs at least %d vectors (lists = %d, nbits = %d); the table has fewer.",
						   Max(bs.lists, ksub), bs.lists, bs.nbits),
				 errhint("Searches are exact until then; REINDEX once the table holds more rows.")));

	MemoryContextDelete(bs.tmpcxt);
	result = palloc(sizeof(IndexBuildResult));
	result->heap_tuples = bs.reltuples;
	result->index_tuples = bs.indtuples;
	return result;
}

/*
 * The init fork of an unlogged index: an empty, untrained index (what the
 * index becomes after a crash).
 */
void
ivfpqbuildempty(Relation index)
{
	IvfpqBuildState bs;
	IvfpqMetaPageData meta;

	memset(&bs, 0, sizeof(bs));
	bs.index = index;
	bs.metric = IvfpqMetricOfIndex(index);
	bs.nbits = IVFPQ_DEFAULT_NBITS;
	fill_meta(&bs, &meta);
	write_index(index, INIT_FORKNUM, &bs, &meta);

	/*
	 * GenericXLog writes no WAL for an unlogged relation, but its init fork
	 * must survive a crash: recovery copies it over the main fork.  Log it.
	 */
	log_newpage_range(index, INIT_FORKNUM, 0, RelationGetNumberOfBlocksInFork(index, INIT_FORKNUM), true);
}
