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

.PHONY: all test test-mpi check demo bench asan ubsan clean
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

clean:
	rm -rf build build-asan build-ubsan
