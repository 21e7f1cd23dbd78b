# simclr-mpi: a boring build. `make` builds build/simclr; `make test` runs the test suite.
CC ?= mpicc
ifeq ($(origin CC),default)
CC = mpicc
endif
PKGS := hdf5-openmpi libconfig stb
OPT ?= -O3
SAN ?=
CFLAGS += $(OPT) $(SAN) -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter -g -Iinclude \
          -I/usr/include/x86_64-linux-gnu $(shell pkg-config --cflags $(PKGS))
ifeq ($(NATIVE),1)
CFLAGS += -march=native
endif
LDFLAGS += $(SAN)
LDLIBS += $(shell pkg-config --libs $(PKGS)) -lblis -lm
BUILD ?= build

CORE := common gemm layers loss optim augment model data
ALL := $(CORE) dist ntxent_dist config checkpoint phases
OBJ := $(ALL:%=$(BUILD)/%.o)
TESTS := test_layers test_loss test_core test_data test_checkpoint test_config

.PHONY: all test test-mpi check demo bench asan ubsan fuzz fuzz-build fuzz-stb valgrind clean
all: $(BUILD)/simclr

$(BUILD)/%.o: src/%.c $(wildcard include/*.h) | $(BUILD)
	@echo "  CC      $<"
	@$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/simclr: $(OBJ) $(BUILD)/main.o
	$(CC) $(LDFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD):
	mkdir -p $(BUILD)

$(BUILD)/test_%: tests/test_%.c $(OBJ) $(wildcard tests/*.h) | $(BUILD)
	$(CC) $(CFLAGS) -Itests $< $(OBJ) -o $@ $(LDFLAGS) $(LDLIBS) -lcmocka

# test: unit tests (cmocka, PyTorch references) and CLI error tests; test-mpi: multi-rank
# checks; check: both, with one summary line (what CI runs).
test: $(BUILD)/simclr $(TESTS:%=$(BUILD)/%)
	BUILD=$(BUILD) tests/run_tests.sh $(TESTS) test_cli.sh

# test_dist_chunk: the distributed tests with every collective split into chunks of 7
$(BUILD)/dist_chunk.o: src/dist.c $(wildcard include/*.h) | $(BUILD)
	$(CC) $(CFLAGS) -DDIST_CHUNK=7 -c $< -o $@

$(BUILD)/test_dist_chunk: tests/test_dist.c $(filter-out $(BUILD)/dist.o,$(OBJ)) $(BUILD)/dist_chunk.o $(wildcard tests/*.h)
	$(CC) $(CFLAGS) -Itests $< $(filter-out $(BUILD)/dist.o,$(OBJ)) $(BUILD)/dist_chunk.o -o $@ $(LDFLAGS) $(LDLIBS) -lcmocka

MPI_TESTS := $(BUILD)/simclr $(BUILD)/test_dist $(BUILD)/test_dist_chunk

test-mpi: $(MPI_TESTS)
	BUILD=$(BUILD) tests/run_tests.sh test_mpi.sh

check: $(MPI_TESTS) $(TESTS:%=$(BUILD)/%)
	BUILD=$(BUILD) tests/run_tests.sh $(TESTS) test_cli.sh test_mpi.sh

demo: $(BUILD)/simclr
	jobs/pipeline.sh --np 2 --data sample

# Benchmark (bench/README.md): pretrain / finetune / eval images/s, GEMM bound, PyTorch twin.
# Extra options: make bench BENCH_ARGS="--layouts 1x2 --epochs 6"
$(BUILD)/gemm_bound: bench/gemm_bound.c $(BUILD)/gemm.o $(BUILD)/common.o $(BUILD)/layers.o $(BUILD)/model.o $(wildcard include/*.h) | $(BUILD)
	$(CC) $(CFLAGS) $< $(BUILD)/gemm.o $(BUILD)/common.o $(BUILD)/layers.o $(BUILD)/model.o -o $@ $(LDFLAGS) $(LDLIBS)

bench: $(BUILD)/simclr $(BUILD)/gemm_bound
	/usr/bin/python3 bench/bench.py --build $(BUILD) $(BENCH_ARGS)

asan:
	$(MAKE) BUILD=build-asan OPT=-O1 SAN="-fsanitize=address -fno-omit-frame-pointer" test

ubsan:
	$(MAKE) BUILD=build-ubsan OPT=-O1 SAN="-fsanitize=undefined -fno-sanitize-recover=undefined" test

# Fuzzing (tests/fuzz/README.md): libFuzzer harnesses for the STL-10 reader, the image
# import, the config loader and the checkpoint loader, built with clang and ASan + UBSan
# (stb_image compiled in, instrumented); each runs FUZZ_SECONDS from its seed corpus in
# tests/fuzz/corpus/NAME (copied: the committed corpus is not touched). Exits non-zero on
# a crash (artifacts in build-fuzz/artifacts).
FUZZ_CC ?= clang
FUZZ_SECONDS ?= 60
FUZZ_BUILD := build-fuzz
FUZZ_FLAGS := -DIMPORT_MAX_PIXELS='(1u << 22)' -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
              -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Wno-unused-parameter -Iinclude -Itests/fuzz \
              -I/usr/include/x86_64-linux-gnu $(shell pkg-config --cflags $(PKGS))
FUZZERS := fuzz_stl10 fuzz_import fuzz_config fuzz_ckpt
fuzz_deps_fuzz_stl10 := src/data.c src/common.c tests/fuzz/stb_impl.c
fuzz_deps_fuzz_import := src/data.c src/common.c tests/fuzz/stb_impl.c
fuzz_deps_fuzz_config := src/config.c src/common.c
fuzz_deps_fuzz_ckpt := src/checkpoint.c src/common.c src/model.c src/layers.c src/gemm.c
fuzz_libs_fuzz_stl10 := -lm
fuzz_libs_fuzz_import := -lm
fuzz_libs_fuzz_config := $(shell pkg-config --libs libconfig) -lm
fuzz_libs_fuzz_ckpt := $(shell pkg-config --libs hdf5-openmpi) -lblis -lm
fuzz_deps_fuzz_decode := src/data.c src/common.c tests/fuzz/stb_impl.c
fuzz_libs_fuzz_decode := -lm

$(FUZZ_BUILD):
	mkdir -p $(FUZZ_BUILD)

.SECONDEXPANSION:
$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz_common.h $$(fuzz_deps_fuzz_$$*) $(wildcard include/*.h) | $(FUZZ_BUILD)
	$(FUZZ_CC) $(FUZZ_FLAGS) $< $(filter-out $(if $(filter decode,$*),src/data.c),$(fuzz_deps_fuzz_$*)) -o $@ $(fuzz_libs_fuzz_$*)

fuzz-build: $(FUZZERS:%=$(FUZZ_BUILD)/%)

# The checkpoint seed of the fuzz corpus, written by the project's ckpt_save:
#   make $(BUILD)/gen_ckpt_seed && $(BUILD)/gen_ckpt_seed tests/fuzz/corpus/fuzz_ckpt
$(BUILD)/gen_ckpt_seed: tests/fuzz/gen_ckpt_seed.c $(OBJ) | $(BUILD)
	$(CC) $(CFLAGS) $< $(OBJ) -o $@ $(LDFLAGS) $(LDLIBS)

fuzz: fuzz-build
	FUZZ_BUILD=$(FUZZ_BUILD) tests/fuzz/run_fuzz.sh $(FUZZ_SECONDS) $(FUZZERS)

# stb_image itself, in-process and coverage-guided (tests/fuzz/fuzz_decode.c): finds the
# library's own bugs (stb_image 2.27 has known ones), which the import contains by
# decoding in a child process. Not part of `make fuzz`: it is expected to fail.
fuzz-stb: $(FUZZ_BUILD)/fuzz_decode
	FUZZ_BUILD=$(FUZZ_BUILD) tests/fuzz/run_fuzz.sh $(FUZZ_SECONDS) fuzz_decode

# valgrind memcheck of a tiny pipeline (tests/valgrind.sh): import of 20 sample images,
# a 1-epoch 1-rank pretrain (model width 8) and an eval; Open MPI noise suppressed
# (tests/valgrind.supp). Exits non-zero on any memcheck error.
valgrind: $(BUILD)/simclr
	BUILD=$(BUILD) tests/valgrind.sh

clean:
	rm -rf build build-asan build-ubsan build-fuzz
