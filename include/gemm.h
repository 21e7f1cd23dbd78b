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

/* Chooses BLIS's kernels; call it once, before any other BLIS call and before MPI_Init
 * (it forks). BLIS 0.9 picks its kernels from the CPU's vendor, family and model, and on a
 * CPU it does not know (the AMD Zen 5, family 26, of this project's VM) it uses its generic
 * C kernels: 35 GFLOP/s against 150-186 for its skx (AVX-512) kernels on one core there
 * (docs/RESULTS.md section 3). gemm_init runs BLIS's detection in a child process; when it
 * says generic and the CPU has AVX-512 F/DQ/BW/VL (or else AVX2 + FMA), it sets
 * BLIS_ARCH_TYPE to BLIS's skx (haswell) configuration, the mechanism BLIS documents for
 * choosing one at run time (it takes arch_t's number), once a second child has run a small
 * sgemm with it (else BLIS's own choice stands). A non-empty BLIS_ARCH_TYPE already in the
 * environment is the user's: kept, but checked in a child first, and fatal(EXIT_CONFIG)
 * naming it when it is not an arch_t number (BLIS would read "abc" as 0, skx) or BLIS
 * cannot run it here. An empty one is removed (BLIS would read it as 0). */
void gemm_init(void);

/* The name of the kernel configuration BLIS uses (bli_arch_string, e.g. "skx", "zen2"),
 * and a line saying who chose it (BLIS, simclr's gemm_init, or BLIS_ARCH_TYPE). Both
 * strings are static; gemm_kernels initialises BLIS. */
const char *gemm_kernels(void);
const char *gemm_kernels_choice(void);

/* Sets the number of BLIS threads used by gemm() in this process (>= 1). */
void gemm_set_threads(int nthreads);

/* The number of BLIS threads gemm() uses now. */
int gemm_threads(void);

#endif
