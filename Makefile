# simclr-mpi: a boring build. `make` builds build/simclr; `make test` runs the test suite.
CC ?= mpicc
ifeq ($(origin CC),default)
CC = mpicc
endif
PKGS := hdf5-openmpi libconfig stb
CFLAGS ?= -O3
CFLAGS += -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter -g -Iinclude \
          -I/usr/include/x86_64-linux-gnu $(shell pkg-config --cflags $(PKGS))
ifeq ($(NATIVE),1)
CFLAGS += -march=native
endif
LDLIBS += $(shell pkg-config --libs $(PKGS)) -lblis -lm
BUILD ?= build

CORE := common gemm layers loss optim augment model data
ALL := $(CORE) dist config checkpoint phases
OBJ := $(ALL:%=$(BUILD)/%.o)
TESTS := test_layers test_loss test_core test_data test_checkpoint test_config

.PHONY: all test test-mpi demo bench asan ubsan clean
all: $(BUILD)/simclr

$(BUILD)/%.o: src/%.c $(wildcard include/*.h) | $(BUILD)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/simclr: $(OBJ) $(BUILD)/main.o
	$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD):
	mkdir -p $(BUILD)

$(BUILD)/test_%: tests/test_%.c $(OBJ) tests/testutil.h | $(BUILD)
	$(CC) $(CFLAGS) -Itests $< $(OBJ) -o $@ $(LDLIBS) -lcmocka

test: $(BUILD)/simclr $(TESTS:%=$(BUILD)/%)
	BUILD=$(BUILD) tests/run_tests.sh $(TESTS)

test-mpi: $(BUILD)/simclr
	BUILD=$(BUILD) tests/test_mpi.sh

demo: $(BUILD)/simclr
	jobs/pipeline.sh --np 2 --data sample

asan:
	$(MAKE) BUILD=build-asan CFLAGS="-O1 -fsanitize=address -fno-omit-frame-pointer" LDFLAGS="-fsanitize=address" test

ubsan:
	$(MAKE) BUILD=build-ubsan CFLAGS="-O1 -fsanitize=undefined -fno-sanitize-recover=undefined" test

clean:
	rm -rf build build-asan build-ubsan
