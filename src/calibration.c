/*
 * calibration.c: the server side of the optimizing quantizers: the
 * allocator they use, and their settings.
 */
#include "pgquant.h"

#include "utils/memutils.h"

#include "qcalib.h"

/* floor-1 allocations live in the current memory context, freed on error */
static void *
calib_alloc(size_t size)
{
	return MemoryContextAllocExtended(CurrentMemoryContext, size, MCXT_ALLOC_HUGE);
}

static void
calib_free(void *p)
{
	pfree(p);
}

/* called once from _PG_init */
void
PgqCalibInit(void)
{
	qc_alloc = calib_alloc;
	qc_free = calib_free;
}
