# kernels/cuda.mk: the optional CUDA module pgquant_cuda.so, included by the
# top-level PGXS Makefile (after "include $(PGXS)").
#
# The module is a separate shared library that src/gpu.c loads on first GPU
# use, so pgquant builds, installs and loads without CUDA.  It stays out of
# OBJS: PGXS has no .cu rule and wants a .bc file for every OBJS entry.
# cudart is linked statically, so at run time only the driver is needed.
#
# Targets: cuda-all, cuda-install, cuda-uninstall, cuda-clean, cuda-test.
# Without nvcc they print one line and succeed.  Override NVCC, CUDA_GENCODE,
# NVCCFLAGS or PGQ_HOST_CFLAGS on the command line as needed.

# this fragment's directory, so the paths work from the including Makefile
PGQ_CUDA_DIR := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))
PGQ_SRC_DIR ?= $(patsubst %/,%,$(dir $(PGQ_CUDA_DIR)))/src

ifndef NVCC
NVCC := $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
endif

CUDA_GENCODE ?= -gencode arch=compute_80,code=sm_80 \
	-gencode arch=compute_90,code=sm_90 \
	-gencode arch=compute_90,code=compute_90
NVCCFLAGS ?= -O3
PGQ_HOST_CC ?= $(CC)
PGQ_HOST_CFLAGS ?= -O2 -g -Wall -Wextra

# numerics flags are not optional: the kernels must match the C reference bit
# for bit (no FMA contraction, IEEE division, denormals kept)
PGQ_NVCC_ALL = -std=c++17 $(CUDA_GENCODE) -fmad=false -ftz=false -prec-div=true \
	-prec-sqrt=true -Xcompiler -fPIC,-fvisibility=hidden \
	-I$(PGQ_CUDA_DIR) -I$(PGQ_SRC_DIR) $(NVCCFLAGS)
PGQ_HOST_ALL = -fPIC $(PGQ_HOST_CFLAGS) -I$(PGQ_CUDA_DIR) -I$(PGQ_SRC_DIR)

# PGXS provides these; the fallbacks serve "make -f kernels/cuda.mk cuda-test"
PG_CONFIG ?= pg_config
PGQ_PG_INCLUDEDIR = $(or $(includedir_server),$(shell $(PG_CONFIG) --includedir-server))
PGQ_PKGLIBDIR = $(or $(pkglibdir),$(shell $(PG_CONFIG) --pkglibdir))
PGQ_DLSUFFIX = $(or $(DLSUFFIX),.so)
PGQ_INSTALL_SHLIB = $(or $(INSTALL_SHLIB),install -m 755)
PGQ_MKDIR_P = $(or $(MKDIR_P),mkdir -p)

PGQ_CUDA_MODULE = $(PGQ_CUDA_DIR)/pgquant_cuda.so
PGQ_CUDA_OBJS = $(PGQ_CUDA_DIR)/cuda_common.o $(PGQ_CUDA_DIR)/qtensor_dequant.o \
	$(PGQ_CUDA_DIR)/qtensor_gemm.o $(PGQ_CUDA_DIR)/qformat_host.o
PGQ_CUDA_TEST = $(PGQ_CUDA_DIR)/test/test_dequant
PGQ_CUDA_TEST_GEMM = $(PGQ_CUDA_DIR)/test/test_gemm
PGQ_CUDA_HEADERS = $(PGQ_CUDA_DIR)/pgquant_cuda.h $(PGQ_CUDA_DIR)/cuda_common.cuh \
	$(PGQ_SRC_DIR)/qformat.h

# keep the includer's default goal ("all") if this file was included first
ifeq ($(.DEFAULT_GOAL),)
.DEFAULT_GOAL := all
endif

.PHONY: cuda-all cuda-install cuda-uninstall cuda-clean cuda-test

ifneq ($(NVCC),)

cuda-all: $(PGQ_CUDA_MODULE)

$(PGQ_CUDA_DIR)/%.o: $(PGQ_CUDA_DIR)/%.cu $(PGQ_CUDA_HEADERS)
	$(NVCC) $(PGQ_NVCC_ALL) -c -o $@ $<

# the module's private copy of the format code, hidden by the version script
$(PGQ_CUDA_DIR)/qformat_host.o: $(PGQ_SRC_DIR)/qformat.c $(PGQ_SRC_DIR)/qformat.h
	$(PGQ_HOST_CC) $(PGQ_HOST_ALL) -fvisibility=hidden -c -o $@ $<

# the magic block needs PostgreSQL's headers and default visibility
$(PGQ_CUDA_DIR)/pgquant_cuda_magic.o: $(PGQ_CUDA_DIR)/pgquant_cuda_magic.c
	$(PGQ_HOST_CC) $(PGQ_HOST_ALL) -I$(PGQ_PG_INCLUDEDIR) -c -o $@ $<

$(PGQ_CUDA_MODULE): $(PGQ_CUDA_OBJS) $(PGQ_CUDA_DIR)/pgquant_cuda_magic.o $(PGQ_CUDA_DIR)/pgquant_cuda.map
	$(NVCC) -shared -cudart static $(CUDA_GENCODE) \
		-Xlinker --version-script=$(PGQ_CUDA_DIR)/pgquant_cuda.map,-z,defs \
		-o $@ $(PGQ_CUDA_OBJS) $(PGQ_CUDA_DIR)/pgquant_cuda_magic.o

$(PGQ_CUDA_DIR)/test/test_dequant.o: $(PGQ_CUDA_DIR)/test/test_dequant.c $(PGQ_CUDA_HEADERS)
	$(PGQ_HOST_CC) $(PGQ_HOST_ALL) -c -o $@ $<

# linked from the objects, not the module: the test needs no PostgreSQL
$(PGQ_CUDA_TEST): $(PGQ_CUDA_DIR)/test/test_dequant.o $(PGQ_CUDA_OBJS)
	$(NVCC) -cudart static $(CUDA_GENCODE) -o $@ $^ -lm

$(PGQ_CUDA_DIR)/test/test_gemm.o: $(PGQ_CUDA_DIR)/test/test_gemm.c $(PGQ_CUDA_HEADERS)
	$(PGQ_HOST_CC) $(PGQ_HOST_ALL) -c -o $@ $<

$(PGQ_CUDA_TEST_GEMM): $(PGQ_CUDA_DIR)/test/test_gemm.o $(PGQ_CUDA_OBJS)
	$(NVCC) -cudart static $(CUDA_GENCODE) -o $@ $^ -lm

cuda-install: cuda-all
	$(PGQ_MKDIR_P) '$(DESTDIR)$(PGQ_PKGLIBDIR)'
	$(PGQ_INSTALL_SHLIB) $(PGQ_CUDA_MODULE) '$(DESTDIR)$(PGQ_PKGLIBDIR)/pgquant_cuda$(PGQ_DLSUFFIX)'

cuda-test: $(PGQ_CUDA_TEST) $(PGQ_CUDA_TEST_GEMM)
	$(PGQ_CUDA_TEST)
	$(PGQ_CUDA_TEST_GEMM)

else

cuda-all cuda-test:
	@echo "pgquant: nvcc not found, skipping the CUDA module (set NVCC=/path/to/nvcc to build it)"

cuda-install:
	@:

endif

cuda-uninstall:
	rm -f '$(DESTDIR)$(PGQ_PKGLIBDIR)/pgquant_cuda$(PGQ_DLSUFFIX)'

cuda-clean:
	rm -f $(PGQ_CUDA_MODULE) $(PGQ_CUDA_OBJS) $(PGQ_CUDA_DIR)/pgquant_cuda_magic.o \
		$(PGQ_CUDA_TEST) $(PGQ_CUDA_DIR)/test/test_dequant.o \
		$(PGQ_CUDA_TEST_GEMM) $(PGQ_CUDA_DIR)/test/test_gemm.o
