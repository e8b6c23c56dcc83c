/*
 * ivfpq.h: the ivfpq index access method (IVF coarse quantizer + product
 * quantization of the residuals, exact re-ranking from the table).
 *
 * Split by phase: ivfpq.c (handler, options, settings, cost, validation),
 * ivfpqbuild.c, ivfpqinsert.c, ivfpqscan.c, ivfpqvacuum.c, ivfpqutils.c
 * (pages, the metapage, the relcache copy, the structure check).
 *
 * Pages (docs/ivfpq-format.md has them byte by byte).  Every page has a
 * 16-byte IvfpqPageOpaqueData special area whose last two bytes are
 * IVFPQ_PAGE_ID; the kind of page is in its flags.
 *   block 0        metapage: IvfpqMetaPageData
 *   blob pages     coarse centroids (lists x dim float32), then the PQ
 *                  codebook (m, ksub, dsub) float32, each a run of
 *                  consecutive blocks, packed between the header and pd_lower
 *   directory      IvfpqListData per list (+ one for the raw list), packed
 *   code pages     per list a chain (nextblkno) of pages of fixed-size
 *                  entries packed between the header and pd_lower:
 *                  PQ entries  = heap TID (6 bytes) + codes (code_size bytes)
 *                  raw entries = heap TID (6 bytes) + dim float32 (untrained index)
 *                  or, with 4-bit codes, blocks of 32 entries: 32 heap TIDs,
 *                  then the codes as fastscan.h lays them out
 * An index built on fewer vectors than it needs to train on is "untrained":
 * it keeps vectors uncompressed in one list and answers exactly, until a
 * REINDEX trains it.
 */
#ifndef PGQUANT_IVFPQ_H
#define PGQUANT_IVFPQ_H

#include "pqsql.h"

#include "access/amapi.h"
#include "access/generic_xlog.h"
#include "access/itup.h"
#include "nodes/execnodes.h"
#include "storage/bufmgr.h"
#include "utils/rel.h"

#define IVFPQ_MAGIC_NUMBER		0x49565051	/* "IVPQ" */
#define IVFPQ_VERSION			1
#define IVFPQ_PAGE_ID			0xFF90
#define IVFPQ_METAPAGE_BLKNO	0

/* page kinds (opaque flags) */
#define IVFPQ_PAGE_META			0x0001
#define IVFPQ_PAGE_BLOB			0x0002
#define IVFPQ_PAGE_DIRECTORY	0x0004
#define IVFPQ_PAGE_CODES		0x0008
#define IVFPQ_PAGE_RAW			0x0010	/* code page of raw (uncompressed) entries */
#define IVFPQ_PAGE_PACKED		0x0020	/* code page of 4-bit codes in blocks of 32 (fastscan.h) */

/* metapage flags */
#define IVFPQ_META_TRAINED		0x0001
#define IVFPQ_META_PACKED		0x0002	/* 4-bit codes: chain pages hold blocks of 32 */

/* options and settings */
#define IVFPQ_DEFAULT_LISTS		100
#define IVFPQ_MIN_LISTS			1
#define IVFPQ_MAX_LISTS			32768
#define IVFPQ_DEFAULT_NBITS		8
#define IVFPQ_DEFAULT_PROBES	10
#define IVFPQ_DEFAULT_RERANK	100
#define IVFPQ_MAX_RERANK		100000
/* k-means iterations at build (coarse and PQ) */
#define IVFPQ_KMEANS_NITER		20
/* training sample: this many vectors per list and per PQ centroid, at least */
#define IVFPQ_SAMPLE_PER_LIST	64
#define IVFPQ_SAMPLE_PER_CODE	64
/* the precomputed search tables are kept when at most this size */
#define IVFPQ_TABLE_MAX_BYTES	((Size) 128 * 1024 * 1024)
/* the largest index dimension (an entry of raw floats must fit a page) */
#define IVFPQ_MAX_DIM			2000

/* support function: the exact distance the operator computes */
#define IVFPQ_DISTANCE_PROC		1
#define IVFPQ_NPROC				1
#define IVFPQ_NSTRATEGIES		1

/* build phases (PROGRESS_CREATEIDX_SUBPHASE_INITIALIZE is 1) */
#define IVFPQ_PHASE_SAMPLE		2
#define IVFPQ_PHASE_TRAIN_COARSE 3
#define IVFPQ_PHASE_TRAIN_PQ	4
#define IVFPQ_PHASE_ENCODE		5
#define IVFPQ_PHASE_LOAD		6

extern int	pgquant_ivfpq_probes;
extern int	pgquant_ivfpq_rerank;

typedef struct IvfpqOptions
{
	int32		vl_len_;		/* varlena header (do not touch directly) */
	int			lists;
	int			m;				/* 0: chosen from the dimension */
	int			nbits;
} IvfpqOptions;

typedef struct IvfpqPageOpaqueData
{
	BlockNumber nextblkno;		/* next page of the same list or blob, or invalid */
	uint32		list;			/* code pages: the list; others: 0 */
	uint16		nentries;		/* packed code pages: entries; others: 0 */
	uint16		flags;			/* IVFPQ_PAGE_* */
	uint16		reserved;		/* zero */
	uint16		page_id;		/* IVFPQ_PAGE_ID */
} IvfpqPageOpaqueData;

typedef IvfpqPageOpaqueData *IvfpqPageOpaque;

StaticAssertDecl(sizeof(IvfpqPageOpaqueData) == 16, "IvfpqPageOpaqueData must be 16 bytes");

typedef struct IvfpqMetaPageData
{
	uint32		magic;			/* IVFPQ_MAGIC_NUMBER */
	uint32		version;		/* IVFPQ_VERSION */
	uint32		flags;			/* IVFPQ_META_* */
	uint32		dim;			/* 0 until the first vector of an untrained index */
	uint32		lists;			/* coarse centroids (0 when untrained) */
	uint16		m;				/* subquantizers */
	uint8		nbits;
	uint8		metric;			/* QtMetric of the operator class */
	uint16		code_size;		/* bytes of PQ codes per entry */
	uint16		entry_size;		/* bytes per entry: 6 + code_size, or 6 + 4 * dim when untrained */
	BlockNumber centroids_blkno;	/* first blob page of the coarse centroids */
	uint32		centroids_pages;
	BlockNumber codebook_blkno; /* first blob page of the PQ codebook */
	uint32		codebook_pages;
	BlockNumber directory_blkno;	/* first directory page */
	uint32		directory_pages;
	uint32		reserved0;		/* zero */
	uint64		sample_rows;	/* vectors the quantizers were trained on */
	uint64		build_rows;		/* vectors indexed by the build */
	uint64		build_id;		/* random per build: tells builds apart in backend caches */
	uint32		reserved[2];	/* zero */
} IvfpqMetaPageData;

typedef IvfpqMetaPageData *IvfpqMetaPage;

StaticAssertDecl(sizeof(IvfpqMetaPageData) == 88, "IvfpqMetaPageData must be 88 bytes");

/* one directory entry: where a list's chain starts, and where inserts go */
typedef struct IvfpqListData
{
	BlockNumber head;			/* first page, fixed at build */
	BlockNumber tail;			/* a page at or before the chain's end with room, for inserts */
} IvfpqListData;

#define IvfpqPageGetOpaque(page)	((IvfpqPageOpaque) PageGetSpecialPointer(page))
#define IvfpqPageGetMeta(page)		((IvfpqMetaPage) PageGetContents(page))
#define IVFPQ_PAGE_DATA_OFFSET		MAXALIGN(SizeOfPageHeaderData)
/* bytes of entries or blob data a page holds */
#define IVFPQ_PAGE_CAPACITY \
	(BLCKSZ - IVFPQ_PAGE_DATA_OFFSET - MAXALIGN(sizeof(IvfpqPageOpaqueData)))
#define IVFPQ_DIRECTORY_PER_PAGE	(IVFPQ_PAGE_CAPACITY / sizeof(IvfpqListData))
#define IVFPQ_TID_SIZE				6

/* entries on a row-layout code page */
static inline int
IvfpqPageEntries(Page page, int entry_size)
{
	return (int) ((((PageHeader) page)->pd_lower - IVFPQ_PAGE_DATA_OFFSET) / entry_size);
}

static inline char *
IvfpqPageEntry(Page page, int entry_size, int i)
{
	return (char *) page + IVFPQ_PAGE_DATA_OFFSET + (Size) i * entry_size;
}

/* a block of 32 entries on a packed page: 32 TIDs, then 16 m bytes of codes */
#define IVFPQ_BLOCK_TIDS		(32 * IVFPQ_TID_SIZE)
static inline int
IvfpqBlockSize(int m)
{
	return IVFPQ_BLOCK_TIDS + 16 * m;
}

static inline char *
IvfpqBlock(Page page, int block_size, int b)
{
	return (char *) page + IVFPQ_PAGE_DATA_OFFSET + (Size) b * block_size;
}

/*
 * What every phase needs from the index: the metapage, centroids, codebook
 * and list heads, which never change after the build.  Kept in a small
 * backend-local cache keyed by the index's file and validated against the
 * metapage on every use (a rebuilt index has a new build_id); users pin an
 * entry between IvfpqGetCache and IvfpqReleaseCache, and pins end with the
 * transaction.  Not rd_amcache: the relcache may free that in the middle of
 * a scan.
 */
typedef struct IvfpqCache
{
	RelFileNode node;
	bool		cached;			/* in the backend cache (else a transient copy) */
	int			pins;
	uint64		lastuse;
	Size		size;
	IvfpqMetaPageData meta;
	QtMetric	metric;
	int			dim;
	int			lists;
	bool		trained;
	BlockNumber raw_head;		/* untrained: the list of raw entries */
	float	   *centroids;		/* lists x dim */
	float	   *cnorm;			/* lists: ||c||^2 (L2, cosine) or zeros (inner product) */
	float	   *pq_centroids;	/* (m, ksub, dsub) */
	float	   *pq_cnorm;		/* (m, ksub) */
	float	   *pq_table;		/* L2, cosine: qt_pq_precompute's (lists, m, ksub), or NULL when too big */
	QtPq		pq;
	BlockNumber *heads;			/* per list */
} IvfpqCache;

/* a build's or insert's vector, checked and (cosine) normalized */
typedef struct IvfpqVector
{
	const float *x;				/* what the quantizers see: normalized for cosine */
	const float *orig;			/* the vector as given */
	bool		skip;			/* cosine: a zero vector, not indexed */
} IvfpqVector;

/* ivfpq.c */
void		PgqIvfpqInit(void);
IndexBuildResult *ivfpqbuild(Relation heap, Relation index, IndexInfo *indexInfo);
void		ivfpqbuildempty(Relation index);
bool		ivfpqinsert(Relation index, Datum *values, bool *isnull, ItemPointer heap_tid,
						Relation heap, IndexUniqueCheck checkUnique, bool indexUnchanged,
						IndexInfo *indexInfo);
IndexBulkDeleteResult *ivfpqbulkdelete(IndexVacuumInfo *info, IndexBulkDeleteResult *stats,
									   IndexBulkDeleteCallback callback, void *callback_state);
IndexBulkDeleteResult *ivfpqvacuumcleanup(IndexVacuumInfo *info, IndexBulkDeleteResult *stats);
IndexScanDesc ivfpqbeginscan(Relation index, int nkeys, int norderbys);
void		ivfpqrescan(IndexScanDesc scan, ScanKey keys, int nkeys, ScanKey orderbys, int norderbys);
bool		ivfpqgettuple(IndexScanDesc scan, ScanDirection dir);
void		ivfpqendscan(IndexScanDesc scan);

/* ivfpqutils.c */
QtMetric	IvfpqMetricOfIndex(Relation index);
IvfpqCache *IvfpqGetCache(Relation index);
void		IvfpqReleaseCache(IvfpqCache *c);
void		IvfpqReadMeta(Relation index, IvfpqMetaPageData *meta);
void		IvfpqInitPage(Page page, uint16 flags, uint32 list);
Buffer		IvfpqNewBuffer(Relation index, ForkNumber fork);
void		IvfpqCheckMemory(Size bytes, const char *what);
/* a vector datum checked for the index: 1-D real[], finite, of dim (0: any); normalized for cosine */
IvfpqVector IvfpqPrepareVector(Datum value, int dim, QtMetric metric, float *buf, int *dim_out);
/* nearest list for each of n vectors */
void		IvfpqAssign(const IvfpqCache *c, const float *x, int n, int32 *lists, float *scratch);
int			IvfpqChooseM(int dim);
void		IvfpqReadDirectory(Relation index, const IvfpqMetaPageData *meta, uint32 list,
							   IvfpqListData *entry);
void		IvfpqSetTail(Relation index, const IvfpqMetaPageData *meta, uint32 list,
						 BlockNumber expected, BlockNumber tail);
/*
 * Entries of a code page of any layout (row, raw or packed), for the build,
 * inserts, vacuum and the check.  rec is what follows the TID: the codes as
 * a pqcode holds them, or the raw floats.
 */
int			IvfpqPageCount(Page page, const IvfpqMetaPageData *meta);
bool		IvfpqPageHasRoom(Page page, const IvfpqMetaPageData *meta);
void		IvfpqPageAppend(Page page, const IvfpqMetaPageData *meta, ItemPointer tid, const char *rec);
void		IvfpqPageGetTid(Page page, const IvfpqMetaPageData *meta, int i, ItemPointer tid);
/* rec of entry i (the row layout's bytes, or the codes unpacked from a block) */
void		IvfpqPageGetRec(Page page, const IvfpqMetaPageData *meta, int i, char *rec);
/* entry from takes entry to's place; then the page keeps its first n entries */
void		IvfpqPageMove(Page page, const IvfpqMetaPageData *meta, int from, int to);
void		IvfpqPageTruncate(Page page, const IvfpqMetaPageData *meta, int n);
/* the bytes of rec */
int			IvfpqRecSize(const IvfpqMetaPageData *meta);

/* exact distance of the operator class, from floats */
double		IvfpqExactDistance(QtMetric metric, const float *a, const float *b, int dim);

#endif							/* PGQUANT_IVFPQ_H */
