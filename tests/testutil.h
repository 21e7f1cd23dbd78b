/* testutil.h: shared helpers of the cmocka tests: random fill, max-difference checks that
 * print the difference they saw, and reading reference tensors written by the PyTorch
 * scripts in tests/ (raw little-endian float32 files). */
#ifndef SIMCLR_TESTUTIL_H
#define SIMCLR_TESTUTIL_H

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "common.h"

/* Uniform values in [-1, 1) from a counter-based stream (deterministic). */
static inline void fill_uniform(float *x, size_t n, uint64_t seed)
{
    uint64_t key = rng_key(seed, 7, 7, 7);
    for (size_t i = 0; i < n; i++) x[i] = 2.0f * rng_uniform(key, i) - 1.0f;
}

/* max_i |a_i - b_i| / max(1, |b_i|): the relative-or-absolute error used by the tests. */
static inline double max_rel_diff(const float *a, const float *b, size_t n)
{
    double worst = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]) / fmax(1.0, fabs((double)b[i]));
        if (!(d <= worst)) worst = d; /* NaN propagates as a failure */
    }
    return worst;
}

/* Asserts max_rel_diff(a, b, n) <= tol and prints the value seen. */
#define assert_close(a, b, n, tol, what)                                                   \
    do {                                                                                   \
        double d_ = max_rel_diff((a), (b), (n));                                           \
        print_message("  %-40s max rel diff %.3g (tol %.1g)\n", (what), d_, (double)(tol)); \
        assert_true(d_ <= (tol));                                                          \
    } while (0)

/* Reads exactly n float32 values from path (written by a Python script in tests/); fails the
 * test when the file is missing or has another size. Caller frees. */
static inline float *read_f32(const char *path, size_t n)
{
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open reference file %s", path);
    float *x = malloc(n * sizeof *x + 1);
    size_t got = fread(x, sizeof *x, n + 1, f);
    fclose(f);
    if (got != n) fail_msg("%s: %zu floats, expected %zu", path, got, n);
    return x;
}

#endif
