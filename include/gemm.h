/* gemm.h: the one caller of BLIS. Row-major single-precision matrix multiply.
 *
 * C (m x n, row stride ldc) = alpha * op(A) * op(B) + beta * C, where op(A) is m x k and
 * op(B) is k x n. A is stored row-major with row stride lda: as (m x k) when ta == 0, as
 * (k x m) when ta == 1 (then op(A) = A^T); likewise B as (k x n) or (n x k) with ldb.
 * beta == 0 overwrites C (NaNs in C are not propagated); beta == 1 accumulates.
 * Follows the BLAS sgemm contract; BLIS's typed API bli_sgemm with row/column strides
 * (Van Zee & van de Geijn, "BLIS", ACM TOMS 2015). No errors are returned: dimensions
 * must fit in BLIS's dim_t (checked, fatal EXIT_INTERNAL otherwise). */
#ifndef SIMCLR_GEMM_H
#define SIMCLR_GEMM_H

#include <stddef.h>

void gemm(int ta, int tb, size_t m, size_t n, size_t k, float alpha, const float *A,
          size_t lda, const float *B, size_t ldb, float beta, float *C, size_t ldc);

/* Plain triple loop with the same contract, accumulating in double: the reference that
 * tests check gemm() against. */
void gemm_ref(int ta, int tb, size_t m, size_t n, size_t k, float alpha, const float *A,
              size_t lda, const float *B, size_t ldb, float beta, float *C, size_t ldc);

/* Sets the number of BLIS threads used by gemm() in this process (>= 1). */
void gemm_set_threads(int nthreads);

/* The number of BLIS threads gemm() uses now. */
int gemm_threads(void);

#endif
