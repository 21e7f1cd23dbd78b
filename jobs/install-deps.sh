#!/usr/bin/env bash
# Installs the Debian 12 packages simclr-mpi needs (run as root on a fresh machine).
#   jobs/install-deps.sh          build + run: compiler, Open MPI, HDF5, BLIS, libconfig, stb, numpy, matplotlib
#   jobs/install-deps.sh --test   also the test tools: cmocka, python3-torch (reference tensors), h5py,
#                                 valgrind, clang + libFuzzer (make fuzz, asan, ubsan), jemalloc (make bench's
#                                 PyTorch twin: a caching allocator, see bench/bench.py)
set -euo pipefail
pkgs=(build-essential pkg-config openmpi-bin libopenmpi-dev libhdf5-openmpi-dev libblis-dev
      libconfig-dev libstb-dev python3 python3-numpy python3-matplotlib)
if [[ ${1:-} == --test ]]; then pkgs+=(libcmocka-dev python3-torch python3-h5py valgrind clang libclang-rt-14-dev libjemalloc2); fi
export DEBIAN_FRONTEND=noninteractive
echo "install-deps: apt-get update, then installing ${#pkgs[@]} Debian packages (a few minutes; quiet unless it fails)"
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${pkgs[@]}"
echo "install-deps: done"
