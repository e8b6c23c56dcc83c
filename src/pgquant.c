/*
 * pgquant.c: module entry point and settings.
 */
#include "pgquant.h"

#include <cblas.h>

#include "miscadmin.h"
#include "utils/guc.h"

PG_MODULE_MAGIC;

int			pgquant_device = PGQ_DEVICE_AUTO;
int			pgquant_gpu_memory_limit_mb = 1024;

static const struct config_enum_entry device_options[] = {
	{"auto", PGQ_DEVICE_AUTO, false},
	{"cpu", PGQ_DEVICE_CPU, false},
	{"cuda", PGQ_DEVICE_CUDA, false},
	{NULL, 0, false}
};

/* the format code's long loops call back here between rows */
static void
pgquant_check_interrupts(void)
{
	CHECK_FOR_INTERRUPTS();
}

void		_PG_init(void);

void
_PG_init(void)
{
	qt_interrupt_hook = pgquant_check_interrupts;
	/* a backend is one thread: OpenBLAS's own threads would fight the server's signals */
	openblas_set_num_threads(1);

	DefineCustomEnumVariable("pgquant.device",
							 "Where pgquant runs its kernels.",
							 "auto uses a CUDA device when one is present and the work is large enough, "
							 "cpu never uses one, cuda requires one.",
							 &pgquant_device, PGQ_DEVICE_AUTO, device_options,
							 PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("pgquant.gpu_memory_limit",
							"Device memory pgquant may keep allocated per backend.",
							NULL,
							&pgquant_gpu_memory_limit_mb, 1024, 16, 1024 * 1024,
							PGC_SUSET, GUC_UNIT_MB, NULL, NULL, NULL);
	/* each area defines its settings here, before the prefix is reserved */
	/* -- area init calls (one line each) -- */
	PgqCalibInit();
	PgqInferInit();
	PgqIvfpqInit();

	MarkGUCPrefixReserved("pgquant");
}
