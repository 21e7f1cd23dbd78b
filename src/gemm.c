/* gemm.c: the one BLIS caller (bli_sgemm with row/column strides). */
#include "gemm.h"

#include <blis.h>

#include "common.h"

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
