/*
 * cuda_common.cuh: what the module's .cu files share (internal, not part of
 * the API in pgquant_cuda.h).
 *
 * Two concerns live here.  Status mapping: every CUDA runtime error becomes
 * a PgqCudaStatus plus a message, never an abort.  Signals: PostgreSQL
 * backends are single-threaded and expect their signal handlers (cancel,
 * die, latch wakeups) to run on the main thread, but the CUDA driver starts
 * helper threads that inherit the caller's signal mask.  Each API entry
 * point therefore blocks asynchronous signals for its duration; pending
 * ones are delivered to the backend when the call returns.
 */
#ifndef PGQUANT_CUDA_COMMON_CUH
#define PGQUANT_CUDA_COMMON_CUH

#include <cuda_runtime.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>

#include "pgquant_cuda.h"

#include "qformat.h"

/* printf into err when there is room */
#define PGQ_ERR(err, errlen, ...) \
	do { if ((err) && (errlen) > 0) snprintf((err), (errlen), __VA_ARGS__); } while (0)

/* map a CUDA error to a status, describing it as "<what>: <string> (<name>)" */
PgqCudaStatus pgq_cuda_status(cudaError_t e, const char *what, char *err, size_t errlen);

/* OK when device 0 can be used; PGQ_CUDA_NO_DEVICE and a reason otherwise */
PgqCudaStatus pgq_cuda_require_device(char *err, size_t errlen);

/* blocks asynchronous signals for the lifetime of the object (see above) */
class PgqSignalGuard
{
  public:
	PgqSignalGuard()
	{
		sigset_t	block;

		sigfillset(&block);
		/* faults are synchronous: blocking them would only hide a crash */
		sigdelset(&block, SIGSEGV);
		sigdelset(&block, SIGBUS);
		sigdelset(&block, SIGFPE);
		sigdelset(&block, SIGILL);
		pthread_sigmask(SIG_BLOCK, &block, &saved);
	}
	~PgqSignalGuard()
	{
		pthread_sigmask(SIG_SETMASK, &saved, NULL);
	}
	PgqSignalGuard(const PgqSignalGuard &) = delete;
	PgqSignalGuard &operator=(const PgqSignalGuard &) = delete;

  private:
	sigset_t	saved;
};

#endif							/* PGQUANT_CUDA_COMMON_CUH */
