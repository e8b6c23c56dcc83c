/*
 * pgquant_cuda_magic.c: the PostgreSQL magic block of pgquant_cuda.so.
 *
 * src/gpu.c loads the CUDA module with PostgreSQL's own loader, which
 * refuses a library without a magic block and so also catches a module
 * built for another major version.  This is the module's only file that
 * sees PostgreSQL headers; the kernels never do.
 */
#include "postgres.h"
#include "fmgr.h"

PG_MODULE_MAGIC;
