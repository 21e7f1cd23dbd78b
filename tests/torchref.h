/* torchref.h: access to the PyTorch reference tensors of tests/torch_ref.py, shared by
 * test_layers.c, test_loss.c and test_core.c.
 *
 * torchref_setup (a cmocka group setup) runs "/usr/bin/python3 tests/torch_ref.py
 * $BUILD/ref" once (BUILD defaults to "build"; tests run from the repository root). When
 * that fails (no python3-torch), it says so on stderr and every test that needs the files
 * fails with a message naming the cause (TORCHREF_NEED), while the tests without PyTorch
 * still run. torchref_read reads NAME.bin of exactly n floats from that folder. */
#ifndef SIMCLR_TORCHREF_H
#define SIMCLR_TORCHREF_H

#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

#include "testutil.h"

static char torchref_dir[1024];
static int torchref_ok;

static inline int torchref_setup(void **state)
{
    (void)state;
    const char *build = getenv("BUILD");
    if (!build || !*build) build = "build";
    snprintf(torchref_dir, sizeof torchref_dir, "%s/ref", build);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 tests/torch_ref.py '%s'", torchref_dir);
    int rc = system(cmd);
    torchref_ok = rc == 0;
    if (!torchref_ok)
        fprintf(stderr,
                "*** `%s` failed (exit status %d): the tests comparing with PyTorch will FAIL.\n"
                "*** They need Debian's python3-torch (imported by /usr/bin/python3) and must\n"
                "*** run from the repository root.\n",
                cmd, rc != -1 && WIFEXITED(rc) ? WEXITSTATUS(rc) : -1);
    return 0;
}

#define TORCHREF_NEED()                                                                   \
    do {                                                                                  \
        if (!torchref_ok)                                                                 \
            fail_msg("no PyTorch reference in %s: /usr/bin/python3 tests/torch_ref.py "   \
                     "failed (is python3-torch installed?)",                              \
                     torchref_dir);                                                       \
    } while (0)

/* Reads torchref_dir/name.bin (exactly n float32). Caller frees. */
static inline float *torchref_read(const char *name, size_t n)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/%s.bin", torchref_dir, name);
    return read_f32(path, n);
}

#endif
