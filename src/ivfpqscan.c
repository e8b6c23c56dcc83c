/*
 * ivfpqscan.c: ORDER BY <distance> LIMIT k through an ivfpq index.
 *
 * On the first call: rank the lists by the distance from the query to their
 * centroids, visit the pgquant.probes nearest, and score every entry of
 * those lists by asymmetric distance (ADC) with one lookup table per list.
 * Then, pgquant.rerank candidates at a time in ADC order, read each from
 * the table, compute the operator's exact distance, and return that batch
 * in exact order (pgquant.rerank = 0 returns ADC order).  An untrained
 * index holds its vectors whole: every entry gets its exact distance.
 *
 * Distances returned are exact for re-ranked rows and the ADC estimate
 * otherwise; the executor never rechecks (xs_recheckorderby is false), as
 * ADC is no lower bound of the exact distance.
 *
 * Candidates are copied out of each page under a share lock, so the scan
 * holds no pins between calls; like pgvector, it therefore requires an MVCC
 * snapshot (VACUUM may remove an entry once no snapshot can see its row).
 */
#include "ivfpq.h"

#include "fastscan.h"

#include <math.h>

#include <cblas.h>

#include "access/relscan.h"
#include "access/tableam.h"
#include "catalog/index.h"
#include "catalog/pg_type_d.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/float.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

typedef struct IvfpqCandidate
{
	ItemPointerData tid;
	float		dist;
} IvfpqCandidate;

typedef struct IvfpqScanOpaqueData
{
	IvfpqCache *c;
	MemoryContext cxt;			/* reset by rescan */
	bool		first;
	bool		unordered;		/* NULL query, or a zero query under cosine: no order exists */
	double		unordered_value;
	int			dim;
	float	   *query;			/* as the quantizers see it (normalized for cosine) */
	float	   *query_raw;		/* as given, for exact distances */

	/* candidates: [0, next) returned or in the batch; [next, ncand) waiting, unordered */
	IvfpqCandidate *cand;
	int64		ncand;
	int64		cand_cap;
	int64		next;
	bool		exact;			/* candidates already hold exact distances (untrained index) */

	/* the batch being returned */
	IvfpqCandidate *batch;
	int			nbatch;
	int			batch_pos;
	int			batch_cap;

	/* 4-bit codes in blocks: the list's quantized table (fastscan.h) */
	uint8	   *fs_q;			/* m x 16 */
	float		fs_scale;
	float		fs_bias;

	/* reading rows back for re-ranking */
	IndexFetchTableData *fetch;
	TupleTableSlot *slot;
	IndexInfo  *indexInfo;
	EState	   *estate;
	BufferAccessStrategy bas;
} IvfpqScanOpaqueData;

typedef IvfpqScanOpaqueData *IvfpqScanOpaque;

/* more entries than a page can hold in either layout (each has a 6-byte TID) */
#define FS_PAGE_ENTRIES (IVFPQ_PAGE_CAPACITY / IVFPQ_TID_SIZE + QT_FS_BLOCK)

/* ---- candidates --------------------------------------------------------- */

static void
add_candidate(IvfpqScanOpaque so, ItemPointer tid, float dist)
{
	if (so->ncand == so->cand_cap)
	{
		so->cand_cap = Max(so->cand_cap * 2, 1024);
		so->cand = so->cand ? repalloc_huge(so->cand, sizeof(IvfpqCandidate) * so->cand_cap)
			: MemoryContextAllocExtended(so->cxt, sizeof(IvfpqCandidate) * so->cand_cap, MCXT_ALLOC_HUGE);
	}
	so->cand[so->ncand].tid = *tid;
	so->cand[so->ncand].dist = dist;
	so->ncand++;
}

static inline void
swap_cand(IvfpqCandidate *a, IvfpqCandidate *b)
{
	IvfpqCandidate t = *a;

	*a = *b;
	*b = t;
}

/* NaN sorts after every number, as in float8 ORDER BY */
static inline bool
cand_less(const IvfpqCandidate *a, const IvfpqCandidate *b)
{
	if (isnan(a->dist))
		return false;
	return isnan(b->dist) || a->dist < b->dist;
}

/* move the k smallest of c[0, n) to c[0, k), in no particular order (quickselect) */
static void
select_smallest(IvfpqCandidate *c, int64 n, int64 k)
{
	int64		lo = 0,
				hi = n - 1;

	if (k <= 0 || k >= n)
		return;
	while (lo < hi)
	{
		int64		mid = lo + (hi - lo) / 2,
					i,
					j;
		IvfpqCandidate pivot;

		/* median of three as pivot, parked at hi */
		if (cand_less(&c[mid], &c[lo]))
			swap_cand(&c[mid], &c[lo]);
		if (cand_less(&c[hi], &c[lo]))
			swap_cand(&c[hi], &c[lo]);
		if (cand_less(&c[mid], &c[hi]))
			swap_cand(&c[mid], &c[hi]);
		pivot = c[hi];
		i = lo;
		for (j = lo; j < hi; j++)
			if (cand_less(&c[j], &pivot))
				swap_cand(&c[i++], &c[j]);
		swap_cand(&c[i], &c[hi]);
		if (i == k)
			return;
		if (i < k)
			lo = i + 1;
		else
			hi = i - 1;
	}
}

static int
cmp_cand(const void *a, const void *b)
{
	const IvfpqCandidate *x = a,
			   *y = b;

	if (cand_less(x, y))
		return -1;
	if (cand_less(y, x))
		return 1;
	return ItemPointerCompare((ItemPointer) &x->tid, (ItemPointer) &y->tid);
}

/* ---- collecting --------------------------------------------------------- */

/*
 * Score every entry of a chain: with a lookup table (PQ entries: dist =
 * scale * (base + ADC)), exactly (raw entries), or not at all (unordered).
 */
static void
scan_chain(IndexScanDesc scan, BlockNumber blkno, uint32 list, const float *lut, float base, float scale)
{
	IvfpqScanOpaque so = (IvfpqScanOpaque) scan->opaque;
	const IvfpqCache *c = so->c;
	int			es = c->meta.entry_size;
	float		dists[FS_PAGE_ENTRIES];
	uint16		sums[FS_PAGE_ENTRIES];

	while (BlockNumberIsValid(blkno))
	{
		Buffer		buf;
		Page		page;
		IvfpqPageOpaque op;
		int			n;

		CHECK_FOR_INTERRUPTS();
		buf = ReadBufferExtended(scan->indexRelation, MAIN_FORKNUM, blkno, RBM_NORMAL, so->bas);
		LockBuffer(buf, BUFFER_LOCK_SHARE);
		page = BufferGetPage(buf);
		op = IvfpqPageGetOpaque(page);
		if (op->page_id != IVFPQ_PAGE_ID || !(op->flags & IVFPQ_PAGE_CODES) || op->list != list)
		{
			UnlockReleaseBuffer(buf);
			ereport(ERROR,
					(errcode(ERRCODE_INDEX_CORRUPTED),
					 errmsg("ivfpq index \"%s\" is corrupted", RelationGetRelationName(scan->indexRelation)),
					 errdetail("Block %u is not a page of list %u.", blkno, list)));
		}
		if (op->flags & IVFPQ_PAGE_PACKED)
		{
			/* blocks of 32: the fast-scan kernel sums the quantized table */
			int			bs = IvfpqBlockSize(c->pq.m);
			int			nblocks;

			n = op->nentries;
			nblocks = (n + QT_FS_BLOCK - 1) / QT_FS_BLOCK;
			if (n > 0 && !so->unordered)
			{
				qt_fs_scan((const uint8 *) IvfpqBlock(page, bs, 0) + IVFPQ_BLOCK_TIDS, bs, nblocks,
						   c->pq.m, so->fs_q, sums);
				for (int i = 0; i < n; i++)
					dists[i] = scale * (base + so->fs_scale * sums[i] + so->fs_bias);
			}
			for (int i = 0; i < n; i++)
			{
				ItemPointerData tid;

				memcpy(&tid, IvfpqBlock(page, bs, i / QT_FS_BLOCK) + (i % QT_FS_BLOCK) * IVFPQ_TID_SIZE,
					   IVFPQ_TID_SIZE);
				add_candidate(so, &tid, so->unordered ? (float) so->unordered_value : dists[i]);
			}
		}
		else
		{
			char	   *first = IvfpqPageEntry(page, es, 0);

			n = IvfpqPageEntries(page, es);
			if (so->unordered)
				for (int i = 0; i < n; i++)
					dists[i] = (float) so->unordered_value;
			else if (lut)
			{
				qt_adc_scan(lut, c->pq.m, c->pq.nbits, (const uint8 *) first + IVFPQ_TID_SIZE, es, n, dists);
				for (int i = 0; i < n; i++)
					dists[i] = scale * (base + dists[i]);
			}
			else
			{
				/* raw entries: the operator's exact distance (the floats may be unaligned) */
				float	   *x = palloc(sizeof(float) * c->dim);

				for (int i = 0; i < n; i++)
				{
					memcpy(x, first + (Size) i * es + IVFPQ_TID_SIZE, sizeof(float) * c->dim);
					dists[i] = (float) qt_exact_distance(c->metric, x, so->query_raw, c->dim);
				}
				pfree(x);
			}
			for (int i = 0; i < n; i++)
			{
				ItemPointerData tid;

				memcpy(&tid, first + (Size) i * es, IVFPQ_TID_SIZE);
				add_candidate(so, &tid, dists[i]);
			}
		}
		blkno = op->nextblkno;
		UnlockReleaseBuffer(buf);
	}
}

/* the 8-bit table of a list for the fast-scan kernel */
static void
quantize_table(IvfpqScanOpaque so, const float *lut)
{
	if (!qt_fs_quantize_lut(lut, so->c->pq.m, so->fs_q, &so->fs_scale, &so->fs_bias))
		elog(ERROR, "ivfpq lookup table is not finite (please report a bug)");
}

typedef struct ListRank
{
	float		dist;
	int32		list;
} ListRank;

static int
cmp_rank(const void *a, const void *b)
{
	const ListRank *x = a,
			   *y = b;

	if (x->dist != y->dist)
		return x->dist < y->dist ? -1 : 1;
	return x->list < y->list ? -1 : x->list > y->list;
}

/* the probed lists' candidates, scored by ADC */
static void
collect(IndexScanDesc scan)
{
	IvfpqScanOpaque so = (IvfpqScanOpaque) scan->opaque;
	const IvfpqCache *c = so->c;
	int			probes,
				ksub;
	ListRank   *rank;
	float	   *g,
			   *lut,
			   *Q,
			   *tl;
	float		qn;
	bool		fast;

	if (!c->trained || so->unordered)
	{
		so->exact = !c->trained;
		for (int l = 0; l < Max(c->lists, 1); l++)
			scan_chain(scan, c->heads[l], (uint32) l, NULL, 0, 1);
		return;
	}

	/* rank lists: L2 and cosine by ||q - c||^2, inner product by -q.c */
	probes = Min(pgquant_ivfpq_probes, c->lists);
	ksub = c->pq.ksub;
	g = palloc(sizeof(float) * c->lists);
	rank = palloc(sizeof(ListRank) * c->lists);
	cblas_sgemv(CblasRowMajor, CblasNoTrans, c->lists, c->dim, 1.0f, c->centroids, c->dim,
				so->query, 1, 0.0f, g, 1);
	qn = qt_dot(so->query, so->query, c->dim);
	for (int l = 0; l < c->lists; l++)
	{
		rank[l].list = l;
		rank[l].dist = c->metric == QT_METRIC_IP ? -g[l] : qn - 2 * g[l] + c->cnorm[l];
	}
	if (probes < c->lists)
	{
		/* a partial selection of the nearest lists, then their order */
		int			lo = 0,
					hi = c->lists - 1;

		while (lo < hi)
		{
			ListRank	pivot = rank[(lo + hi) / 2];
			int			i = lo,
						j = hi;

			while (i <= j)
			{
				while (cmp_rank(&rank[i], &pivot) < 0)
					i++;
				while (cmp_rank(&rank[j], &pivot) > 0)
					j--;
				if (i <= j)
				{
					ListRank	t = rank[i];

					rank[i++] = rank[j];
					rank[j--] = t;
				}
			}
			if (probes - 1 <= j)
				hi = j;
			else if (probes - 1 >= i)
				lo = i;
			else
				break;
		}
	}
	qsort(rank, probes, sizeof(ListRank), cmp_rank);

	/*
	 * The query's inner products with every PQ centroid, once; a list's table
	 * is then T[l] - 2 Q (L2, cosine) or Q itself (inner product), see pq.h
	 */
	Q = palloc(sizeof(float) * c->pq.m * ksub);
	lut = palloc(sizeof(float) * c->pq.m * ksub);
	tl = c->pq_table ? NULL : palloc(sizeof(float) * c->pq.m * ksub);
	qt_pq_dot_table(&c->pq, so->query, Q);
	fast = (c->meta.flags & IVFPQ_META_PACKED) != 0;
	if (fast)
	{
		so->fs_q = palloc(c->pq.m * 16);
		if (c->metric == QT_METRIC_IP)
			quantize_table(so, Q);
	}
	for (int p = 0; p < probes; p++)
	{
		int			l = rank[p].list;

		if (c->metric == QT_METRIC_IP)
		{
			/* -(q.c + q.residual) */
			scan_chain(scan, c->heads[l], (uint32) l, Q, g[l], -1);
		}
		else
		{
			/* ||q - c||^2 + sum_j (T[l][j][code] - 2 q_j . C_j[code]) */
			const float *T = c->pq_table ? c->pq_table + (Size) l * c->pq.m * ksub : tl;

			if (tl)
				qt_pq_precompute(&c->pq, c->pq_cnorm, c->centroids + (Size) l * c->dim, 1, tl);
			qt_pq_lut_from_tables(T, Q, (int64) c->pq.m * ksub, lut);
			if (fast)
				quantize_table(so, lut);
			scan_chain(scan, c->heads[l], (uint32) l, lut, rank[p].dist, 1);
		}
	}
	pfree(Q);
	if (tl)
		pfree(tl);
	pfree(lut);
	pfree(g);
	pfree(rank);
}

/* ---- re-ranking ---------------------------------------------------------- */

/* the exact distance of the row at tid, or false when this snapshot does not see it */
static bool
exact_distance(IndexScanDesc scan, ItemPointer tid, double *dist)
{
	IvfpqScanOpaque so = (IvfpqScanOpaque) scan->opaque;
	bool		call_again = false,
				all_dead = false,
				isnull;
	Datum		value;
	ArrayType  *a;
	int			dim;
	const float *x;

	if (so->fetch == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(so->cxt);

		so->fetch = table_index_fetch_begin(scan->heapRelation);
		so->slot = table_slot_create(scan->heapRelation, NULL);
		so->indexInfo = BuildIndexInfo(scan->indexRelation);
		MemoryContextSwitchTo(old);
	}
	if (!table_index_fetch_tuple(so->fetch, tid, scan->xs_snapshot, so->slot, &call_again, &all_dead))
		return false;
	if (so->indexInfo->ii_IndexAttrNumbers[0] != 0)
		value = slot_getattr(so->slot, so->indexInfo->ii_IndexAttrNumbers[0], &isnull);
	else
	{
		/* an expression index: evaluate the expression on the row */
		Datum		values[INDEX_MAX_KEYS];
		bool		isnulls[INDEX_MAX_KEYS];
		ExprContext *econtext;

		if (so->estate == NULL)
		{
			MemoryContext old = MemoryContextSwitchTo(so->cxt);

			so->estate = CreateExecutorState();
			MemoryContextSwitchTo(old);
		}
		econtext = GetPerTupleExprContext(so->estate);
		ResetExprContext(econtext);
		econtext->ecxt_scantuple = so->slot;
		FormIndexDatum(so->indexInfo, so->slot, so->estate, values, isnulls);
		value = values[0];
		isnull = isnulls[0];
	}
	if (isnull)
		return false;
	/* checked at insert or build: the row's vector is 1-D, finite, of the index's dimension */
	a = DatumGetArrayTypeP(value);
	if (ARR_NDIM(a) != 1 || ARR_ELEMTYPE(a) != FLOAT4OID || ARR_HASNULL(a) || ARR_DIMS(a)[0] != so->dim)
		return false;
	dim = so->dim;
	x = (const float *) ARR_DATA_PTR(a);
	*dist = qt_exact_distance(so->c->metric, x, so->query_raw, dim);
	if ((Pointer) a != DatumGetPointer(value))
		pfree(a);
	return true;
}

/* the next batch of candidates, in order; false when none are left */
static bool
next_batch(IndexScanDesc scan)
{
	IvfpqScanOpaque so = (IvfpqScanOpaque) scan->opaque;
	int64		left = so->ncand - so->next;
	int			take;
	bool		rerank = pgquant_ivfpq_rerank > 0 && !so->exact && !so->unordered;

	so->nbatch = 0;
	so->batch_pos = 0;
	while (so->nbatch == 0 && left > 0)
	{
		take = (int) Min(left, rerank ? pgquant_ivfpq_rerank : 128);
		if (so->batch_cap < take)
		{
			so->batch = so->batch ? repalloc(so->batch, sizeof(IvfpqCandidate) * take)
				: MemoryContextAlloc(so->cxt, sizeof(IvfpqCandidate) * take);
			so->batch_cap = take;
		}
		if (!so->unordered)
			select_smallest(so->cand + so->next, left, take);
		for (int i = 0; i < take; i++)
		{
			IvfpqCandidate cd = so->cand[so->next + i];

			if (rerank)
			{
				double		d;

				CHECK_FOR_INTERRUPTS();
				if (!exact_distance(scan, &cd.tid, &d))
					continue;	/* the row is not visible: the executor would skip it too */
				cd.dist = (float) d;
			}
			so->batch[so->nbatch++] = cd;
		}
		so->next += take;
		left -= take;
		if (!so->unordered)
			qsort(so->batch, so->nbatch, sizeof(IvfpqCandidate), cmp_cand);
	}
	return so->nbatch > 0;
}

/* ADC sums are squared L2 (L2; unit vectors for cosine) or -inner products: as the operator reports */
static double
reported_distance(IvfpqScanOpaque so, float d)
{
	if (so->exact || so->unordered || pgquant_ivfpq_rerank > 0)
		return d;
	if (so->c->metric == QT_METRIC_L2)
		return sqrt(Max(d, 0));
	if (so->c->metric == QT_METRIC_COSINE)
		return Max(d, 0) / 2;	/* ||a - b||^2 = 2 - 2 cos for unit vectors */
	return d;
}

/* ---- the AM interface ---------------------------------------------------- */

IndexScanDesc
ivfpqbeginscan(Relation index, int nkeys, int norderbys)
{
	IndexScanDesc scan = RelationGetIndexScan(index, nkeys, norderbys);
	IvfpqScanOpaque so = palloc0(sizeof(IvfpqScanOpaqueData));

	so->cxt = AllocSetContextCreate(CurrentMemoryContext, "ivfpq scan", ALLOCSET_DEFAULT_SIZES);
	so->first = true;
	/* the distance of each returned row (one ORDER BY key) */
	scan->xs_orderbyvals = palloc0(sizeof(Datum) * Max(norderbys, 1));
	scan->xs_orderbynulls = palloc(sizeof(bool) * Max(norderbys, 1));
	memset(scan->xs_orderbynulls, true, sizeof(bool) * Max(norderbys, 1));
	so->bas = GetAccessStrategy(BAS_BULKREAD);
	scan->opaque = so;
	return scan;
}

static void
reset_scan(IvfpqScanOpaque so)
{
	if (so->fetch)
		table_index_fetch_end(so->fetch);
	if (so->slot)
		ExecDropSingleTupleTableSlot(so->slot);
	if (so->estate)
		FreeExecutorState(so->estate);
	if (so->c)
		IvfpqReleaseCache(so->c);
	so->fetch = NULL;
	so->slot = NULL;
	so->estate = NULL;
	so->indexInfo = NULL;
	so->c = NULL;
	so->cand = NULL;
	so->ncand = so->cand_cap = so->next = 0;
	so->batch = NULL;
	so->nbatch = so->batch_pos = so->batch_cap = 0;
	so->query = so->query_raw = NULL;
	so->unordered = so->exact = false;
	so->fs_q = NULL;
	MemoryContextReset(so->cxt);
}

void
ivfpqrescan(IndexScanDesc scan, ScanKey keys, int nkeys, ScanKey orderbys, int norderbys)
{
	IvfpqScanOpaque so = (IvfpqScanOpaque) scan->opaque;

	reset_scan(so);
	so->first = true;
	if (keys && scan->numberOfKeys > 0)
		memmove(scan->keyData, keys, scan->numberOfKeys * sizeof(ScanKeyData));
	if (orderbys && scan->numberOfOrderBys > 0)
		memmove(scan->orderByData, orderbys, scan->numberOfOrderBys * sizeof(ScanKeyData));
}

/* set up the query and collect candidates */
static void
start_scan(IndexScanDesc scan)
{
	IvfpqScanOpaque so = (IvfpqScanOpaque) scan->opaque;
	MemoryContext old;

	pgstat_count_index_scan(scan->indexRelation);
	if (scan->orderByData == NULL || scan->numberOfOrderBys < 1)
		elog(ERROR, "an ivfpq index scans only in ORDER BY <distance> order");
	if (!IsMVCCSnapshot(scan->xs_snapshot))
		elog(ERROR, "ivfpq index scans need an MVCC snapshot");

	so->c = IvfpqGetCache(scan->indexRelation);
	so->dim = so->c->dim;
	old = MemoryContextSwitchTo(so->cxt);
	if (scan->orderByData->sk_flags & SK_ISNULL)
	{
		so->unordered = true;
		so->unordered_value = 0;
	}
	else if (so->dim > 0)
	{
		IvfpqVector v;
		int			dim;

		so->query = palloc(sizeof(float) * so->dim);
		v = IvfpqPrepareVector(scan->orderByData->sk_argument, so->dim, so->c->metric, so->query, &dim);
		so->query_raw = palloc(sizeof(float) * so->dim);
		memcpy(so->query_raw, v.orig, sizeof(float) * so->dim);
		if (v.x != so->query)
			memcpy(so->query, v.x, sizeof(float) * so->dim);
		if (v.skip)
		{
			/* a zero query has no cosine with anything: NaN for every row, as the operator says */
			so->unordered = true;
			so->unordered_value = get_float8_nan();
		}
	}
	MemoryContextSwitchTo(old);
	if (so->dim > 0 || so->unordered)
	{
		old = MemoryContextSwitchTo(so->cxt);
		collect(scan);
		MemoryContextSwitchTo(old);
	}
}

bool
ivfpqgettuple(IndexScanDesc scan, ScanDirection dir)
{
	IvfpqScanOpaque so = (IvfpqScanOpaque) scan->opaque;

	if (so->first)
	{
		start_scan(scan);
		so->first = false;
	}
	if (so->batch_pos >= so->nbatch)
	{
		MemoryContext old = MemoryContextSwitchTo(so->cxt);
		bool		more = next_batch(scan);

		MemoryContextSwitchTo(old);
		if (!more)
			return false;
	}
	{
		IvfpqCandidate *cd = &so->batch[so->batch_pos++];

		scan->xs_heaptid = cd->tid;
		scan->xs_recheck = false;
		scan->xs_recheckorderby = false;
		scan->xs_orderbyvals[0] = Float8GetDatum(reported_distance(so, cd->dist));
		scan->xs_orderbynulls[0] = so->unordered && !isnan(so->unordered_value) ? true : false;
	}
	return true;
}

void
ivfpqendscan(IndexScanDesc scan)
{
	IvfpqScanOpaque so = (IvfpqScanOpaque) scan->opaque;

	reset_scan(so);
	FreeAccessStrategy(so->bas);
	MemoryContextDelete(so->cxt);
	pfree(so);
	scan->opaque = NULL;
}
