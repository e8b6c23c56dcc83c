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
EXTRA_CLEAN = pgquant.control $(UNIT_TESTS) $(UNIT_TESTS:=_san) tests/bench/bench_qtensor tests/bench/bench_qgemv tests/bench/bench_calib results regression.diffs regression.out

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

# PGXS tracks no header dependencies here: rebuild every object when a header changes
$(OBJS): $(wildcard src/*.h)

pgquant.control: control/pgquant.control
	cp $< $@

pgquant--$(EXTVERSION).sql: $(SQL_PARTS)
	cat $^ > $@

include kernels/cuda.mk
all: cuda-all
install: cuda-install
clean: cuda-clean
uninstall: cuda-uninstall

# C unit tests, run outside the server (TAP output). Floor-1 sources are the
# src/*.c files that compile without PostgreSQL's headers (checked by preprocessing
# each one without them); every tests/unit/test_*.c is linked with all of them.
FLOOR1_SRCS := $(sort $(shell for f in src/*.c; do $(CC) -Isrc -MM "$$f" >/dev/null 2>&1 && echo "$$f"; done))
UNIT_TESTS = $(patsubst %.c,%,$(sort $(wildcard tests/unit/test_*.c)))
UNIT_LIBS = -llapacke -lopenblas -lm
# the tests' own headers: TAP output (tests/unit/tap.h), seeded generator (tests/lib/rng.h)
UNIT_HDRS = $(wildcard tests/unit/*.h tests/lib/*.h)
# and once more under AddressSanitizer and UndefinedBehaviorSanitizer
SANITIZE = -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer

tests/unit/%: tests/unit/%.c $(FLOOR1_SRCS) $(wildcard src/*.h) $(UNIT_HDRS)
	$(CC) -std=gnu11 -O2 -g -Wall -Wextra -Isrc -o $@ $< $(FLOOR1_SRCS) $(UNIT_LIBS)

tests/unit/%_san: tests/unit/%.c $(FLOOR1_SRCS) $(wildcard src/*.h) $(UNIT_HDRS)
	$(CC) -std=gnu11 -O1 -g $(SANITIZE) -Wall -Wextra -Isrc -o $@ $< $(FLOOR1_SRCS) $(UNIT_LIBS)

.PHONY: unit unit-sanitize
# every binary runs; the target fails afterwards if any of them failed
unit: $(UNIT_TESTS)
	@rc=0; for t in $^; do echo "# $$t"; $$t || rc=1; done; exit $$rc

unit-sanitize: $(UNIT_TESTS:=_san)
	@rc=0; for t in $^; do echo "# $$t"; $$t || rc=1; done; exit $$rc

# throughput benchmark of the format code against memcpy (docs/benchmarks.md)
tests/bench/bench_qtensor: tests/bench/bench_qtensor.c $(FLOOR1_SRCS) $(wildcard src/*.h) tests/bench/bench.h
	$(CC) -std=gnu11 -O2 -Wall -Isrc -o $@ $< $(FLOOR1_SRCS) $(UNIT_LIBS)

# quantized GEMV/GEMM against OpenBLAS and memory bandwidth (docs/benchmarks.md)
tests/bench/bench_qgemv: tests/bench/bench_qgemv.c $(FLOOR1_SRCS) $(wildcard src/*.h) tests/bench/bench.h
	$(CC) -std=gnu11 -O2 -Wall -Isrc -o $@ $< $(FLOOR1_SRCS) $(UNIT_LIBS)

# output error and time of the optimizing quantizers on a generated 4096 x 4096 layer
tests/bench/bench_calib: tests/bench/bench_calib.c $(FLOOR1_SRCS) $(wildcard src/*.h) tests/lib/rng.h tests/bench/bench.h
	$(CC) -std=gnu11 -O2 -Wall -Isrc -o $@ $< $(FLOOR1_SRCS) $(UNIT_LIBS)

.PHONY: bench bench-calib
bench: tests/bench/bench_qtensor tests/bench/bench_qgemv
	tests/bench/bench_qtensor
	tests/bench/bench_qgemv

bench-calib: tests/bench/bench_calib
	tests/bench/bench_calib
