/* gemm.c: the one BLIS caller (bli_sgemm with row/column strides), and the choice of its
 * kernels (gemm_init). */
#include "gemm.h"

#include <blis.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"

static char g_choice[160] = "BLIS's own detection (gemm_init not called)";

/* BLIS reads BLIS_ARCH_TYPE (an arch_t number) once, when it initialises. So BLIS's own
 * detection runs in a child process, leaving this one's BLIS untouched; only when it falls
 * back to the generic kernels on a CPU with AVX-512 or AVX2 + FMA does this process set
 * BLIS_ARCH_TYPE to the skx or haswell kernels before its first BLIS call. */
void gemm_init(void)
{
    const char *env = getenv("BLIS_ARCH_TYPE");
    if (env && !*env) unsetenv("BLIS_ARCH_TYPE"); /* BLIS would read "" as 0, its skx */
    else if (env) {
        snprintf(g_choice, sizeof g_choice, "set by BLIS_ARCH_TYPE=%s", env);
        return;
    }
    fflush(NULL); /* the child exits with _exit: nothing buffered is written twice */
    pid_t pid = fork();
    if (pid == 0) {
        bli_init();
        _exit((int)bli_arch_query_id());
    }
    int st = 0;
    if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st)) {
        snprintf(g_choice, sizeof g_choice, "BLIS's own detection (could not run it apart: kept)");
        return;
    }
    arch_t found = (arch_t)WEXITSTATUS(st), use = found;
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
    snprintf(id, sizeof id, "%d", (int)use);
    setenv("BLIS_ARCH_TYPE", id, 1);
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
