# pgquant: PGXS build of the extension, plus the CUDA module when nvcc exists.

EXTENSION = pgquant
EXTVERSION = $(shell sed -n "s/^default_version = '\(.*\)'/\1/p" control/pgquant.control)

MODULE_big = pgquant
OBJS = $(patsubst %.c,%.o,$(sort $(wildcard src/*.c)))
# the install script is built from one part per area; upgrade scripts live in control/
SQL_PARTS = $(sort $(wildcard control/parts/*.sql))
DATA_built = pgquant--$(EXTVERSION).sql
DATA = $(wildcard control/pgquant--*--*.sql)
# PGXS installs the control file from the top directory: build a copy there
EXTRA_CLEAN = pgquant.control tests/unit/test_qformat tests/unit/test_calib tests/bench/bench_qtensor tests/bench/bench_calib results regression.diffs regression.out

# init defines the helpers the other files use, so it runs first
REGRESS = init $(filter-out init,$(patsubst sql/%.sql,%,$(sort $(wildcard sql/*.sql))))
REGRESS_OPTS = --load-extension=pgquant

PG_CFLAGS = -std=gnu11 -Wall -Wextra -Wno-unused-parameter -Wno-sign-compare -Wno-missing-field-initializers
# dense linear algebra (k-means distances, Hessians, Cholesky) goes through OpenBLAS/LAPACK
SHLIB_LINK += -llapacke -lopenblas

# No bitcode for JIT inlining: it would need clang, which the build does not install.
override with_llvm = no

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

all: pgquant.control pgquant--$(EXTVERSION).sql

pgquant.control: control/pgquant.control
	cp $< $@

pgquant--$(EXTVERSION).sql: $(SQL_PARTS)
	cat $^ > $@

include kernels/cuda.mk
all: cuda-all
install: cuda-install
clean: cuda-clean
uninstall: cuda-uninstall

# C unit tests of the format and quantizers, run outside the server (TAP output)
UNIT_SRCS = src/qformat.c src/qdecode.c src/quant.c src/quant_rtn.c src/quant_nf4.c
tests/unit/test_qformat: tests/unit/test_qformat.c $(UNIT_SRCS) src/qformat.h src/quant.h
	$(CC) -std=gnu11 -O2 -g -Wall -Wextra -Isrc -o $@ tests/unit/test_qformat.c $(UNIT_SRCS) -lm

# the optimizing quantizers (HQQ, GPTQ, AWQ) and calibration statistics
CALIB_SRCS = $(UNIT_SRCS) src/qparams.c src/quant_hqq.c src/calib_stats.c src/quant_gptq.c src/quant_awq.c
tests/unit/test_calib: tests/unit/test_calib.c $(CALIB_SRCS) src/qformat.h src/quant.h src/qcalib.h
	$(CC) -std=gnu11 -O2 -g -Wall -Wextra -Isrc -o $@ tests/unit/test_calib.c $(CALIB_SRCS) -llapacke -lopenblas -lm

.PHONY: unit
unit: tests/unit/test_qformat tests/unit/test_calib
	tests/unit/test_qformat
	tests/unit/test_calib

# throughput benchmark of the format code against memcpy (docs/benchmarks.md)
tests/bench/bench_qtensor: tests/bench/bench_qtensor.c $(UNIT_SRCS) src/qformat.h src/quant.h
	$(CC) -std=gnu11 -O2 -Wall -Isrc -o $@ tests/bench/bench_qtensor.c $(UNIT_SRCS) -lm

# output error and time of the optimizing quantizers on a generated 4096 x 4096 layer
tests/bench/bench_calib: tests/bench/bench_calib.c $(CALIB_SRCS) src/qformat.h src/quant.h src/qcalib.h
	$(CC) -std=gnu11 -O2 -Wall -Isrc -o $@ tests/bench/bench_calib.c $(CALIB_SRCS) -llapacke -lopenblas -lm

.PHONY: bench bench-calib
bench: tests/bench/bench_qtensor
	tests/bench/bench_qtensor

bench-calib: tests/bench/bench_calib
	tests/bench/bench_calib
