/* gemm.c: the one BLIS caller (bli_sgemm with row/column strides), and the choice of its
 * kernels (gemm_init). */
#include "gemm.h"

#include <blis.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"

static char g_choice[200] = "BLIS's own detection (gemm_init not called)";

/* Runs BLIS in a child process with this process's environment: initialises it and
 * multiplies two 16 x 16 matrices (an instruction the CPU lacks ends the child with
 * SIGILL). Returns the arch_t BLIS chose there (>= 0), or -1 with *why set to the signal
 * or status that ended it, or to 0 when fork failed. */
static int probe_blis(int *why)
{
    fflush(NULL); /* the child exits with _exit: nothing buffered is written twice */
    pid_t pid = fork();
    if (pid == 0) {
        float a[256] = {0}, c[256], one = 1.0f, zero = 0.0f;
        bli_init();
        bli_sgemm(BLIS_NO_TRANSPOSE, BLIS_NO_TRANSPOSE, 16, 16, 16, &one, a, 16, 1, a, 16, 1, &zero, c, 16, 1);
        _exit((int)bli_arch_query_id());
    }
    int st = 0;
    *why = 0;
    if (pid < 0 || waitpid(pid, &st, 0) != pid) return -1;
    if (WIFEXITED(st)) return WEXITSTATUS(st);
    *why = WIFSIGNALED(st) ? WTERMSIG(st) : -1;
    return -1;
}

/* BLIS reads BLIS_ARCH_TYPE (an arch_t number) once, when it initialises. So BLIS's own
 * detection runs in a child process, leaving this one's BLIS untouched; only when it falls
 * back to the generic kernels on a CPU with AVX-512 or AVX2 + FMA does this process set
 * BLIS_ARCH_TYPE to the skx or haswell kernels, once a second child has run them. */
void gemm_init(void)
{
    const char *env = getenv("BLIS_ARCH_TYPE");
    int why = 0;
    if (env && !*env) unsetenv("BLIS_ARCH_TYPE"); /* BLIS would read "" as 0, its skx */
    else if (env) { /* the user's choice: checked, never changed */
        char *end;
        long v = strtol(env, &end, 10);
        if (*end || v < 0 || v >= BLIS_NUM_ARCHS)
            fatal(EXIT_CONFIG, "BLIS_ARCH_TYPE=%s: BLIS %s reads an arch_t number from 0 to %d (0 skx, 3 haswell, "
                  "6 zen3, 7 zen2, %d generic); anything else it would read as 0 or abort on", env,
                  bli_info_get_version_str(), BLIS_NUM_ARCHS - 1, (int)BLIS_ARCH_GENERIC);
        if (probe_blis(&why) < 0 && why)
            fatal(EXIT_CONFIG, "BLIS_ARCH_TYPE=%s: BLIS cannot run these kernels here (a test run ended with "
                  "signal %d: a configuration this BLIS was not built with, or instructions this CPU lacks)",
                  env, why);
        snprintf(g_choice, sizeof g_choice, "set by BLIS_ARCH_TYPE=%s", env);
        return;
    }
    int found = probe_blis(&why);
    if (found < 0) {
        snprintf(g_choice, sizeof g_choice, "BLIS's own detection (not tested apart: %s)",
                 why ? "its test run failed" : "fork failed");
        return;
    }
    int use = found;
    if (found == BLIS_ARCH_GENERIC) {
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
            __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl"))
            use = BLIS_ARCH_SKX;
        else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
            use = BLIS_ARCH_HASWELL;
    }
    if (use == found) {
        snprintf(g_choice, sizeof g_choice, "BLIS's own detection");
        return;
    }
    char id[16];
    snprintf(id, sizeof id, "%d", use);
    setenv("BLIS_ARCH_TYPE", id, 1);
    if (probe_blis(&why) != use) { /* not built into this BLIS, or it failed: BLIS's choice */
        unsetenv("BLIS_ARCH_TYPE");
        snprintf(g_choice, sizeof g_choice, "BLIS's own detection: generic (BLIS_ARCH_TYPE=%s failed a test run)", id);
        return;
    }
    snprintf(g_choice, sizeof g_choice, "chosen by simclr: BLIS %s detected no tuned kernels for this CPU "
             "(generic); set BLIS_ARCH_TYPE to override", bli_info_get_version_str());
}

const char *gemm_kernels(void)
{
    bli_init();
    return bli_arch_string(bli_arch_query_id());
}

const char *gemm_kernels_choice(void) { return g_choice; }

void gemm(int ta, int tb, size_t m, size_t n, size_t k, float alpha, const float *A,
          size_t lda, const float *B, size_t ldb, float beta, float *C, size_t ldc)
{
    if (m == 0 || n == 0) return;
    CHECK(m < (size_t)1 << 40 && n < (size_t)1 << 40 && k < (size_t)1 << 40);
    float a = alpha, b = beta;
    bli_sgemm(ta ? BLIS_TRANSPOSE : BLIS_NO_TRANSPOSE, tb ? BLIS_TRANSPOSE : BLIS_NO_TRANSPOSE,
              (dim_t)m, (dim_t)n, (dim_t)k, &a, (float *)A, (inc_t)lda, 1, (float *)B,
              (inc_t)ldb, 1, &b, C, (inc_t)ldc, 1);
}

void gemm_ref(int ta, int tb, size_t m, size_t n, size_t k, float alpha, const float *A,
              size_t lda, const float *B, size_t ldb, float beta, float *C, size_t ldc)
{
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++) {
            double s = 0.0;
            for (size_t p = 0; p < k; p++) {
                float av = ta ? A[p * lda + i] : A[i * lda + p];
                float bv = tb ? B[j * ldb + p] : B[p * ldb + j];
                s += (double)av * (double)bv;
            }
            float *c = &C[i * ldc + j];
            *c = (float)(alpha * s + (beta == 0.0f ? 0.0 : (double)beta * (double)*c));
        }
}

void gemm_set_threads(int nthreads)
{
    CHECK(nthreads >= 1);
    bli_thread_set_num_threads(nthreads);
}

int gemm_threads(void)
{
    dim_t n = bli_thread_get_num_threads();
    return n < 1 ? 1 : (int)n;
}
