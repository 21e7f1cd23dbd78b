/* test_layers.c: gemm, im2col/col2im, convolution, dense, flatten and the whole model
 * (encoder + projection head + classifier), checked against:
 *   - the plain-loop references (gemm_ref, conv_*_ref, dense_*_ref), hand-computed
 *     products and direct index formulas;
 *   - PyTorch (F.conv2d, F.linear, torch.flatten, autograd) through the float32 files that
 *     tests/torch_ref.py writes into $BUILD/ref (run once in the group setup);
 *   - central finite differences of a double-accumulated scalar L = sum(y * r).
 * Tolerances are max |a - b| / max(1, |b|) (testutil.h) unless stated otherwise; each
 * check prints the difference it saw. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gemm.h"
#include "layers.h"
#include "model.h"
#include "testutil.h"
#include "torchref.h"

static float *alloc_f(size_t n) { return xcalloc(n, sizeof(float), "test buffer"); }

static void fill_const(float *x, size_t n, float v)
{
    for (size_t i = 0; i < n; i++) x[i] = v;
}

static double dot_d(const float *a, const float *b, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

/* ---- gemm -------------------------------------------------------------------------- */

/* 2x2 products written out by hand, all four transpose combinations, for gemm and
 * gemm_ref (so that the reference itself is pinned). A = [1 2; 3 4], B = [5 6; 7 8]. */
/* gemm_init (main) must not leave BLIS on its generic C kernels where the CPU has the
 * instructions of a tuned configuration (BLIS 0.9 detects no tuned one on AMD Zen 5). */
static void test_gemm_kernels_not_generic(void **state)
{
    (void)state;
    const char *k = gemm_kernels();
    printf("BLIS kernels: %s (%s)\n", k, gemm_kernels_choice());
#if defined(__x86_64__)
    __builtin_cpu_init();
    /* a BLIS_ARCH_TYPE set by the user is theirs to choose, generic included */
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
        strncmp(gemm_kernels_choice(), "set by BLIS_ARCH_TYPE", 21))
        assert_string_not_equal(k, "generic");
#endif
}

static void test_gemm_hand(void **state)
{
    (void)state;
    const float A[4] = {1, 2, 3, 4}, B[4] = {5, 6, 7, 8};
    const float want[4][4] = {
        {19, 22, 43, 50}, /* A B     */
        {17, 23, 39, 53}, /* A B^T   */
        {26, 30, 38, 44}, /* A^T B   */
        {23, 31, 34, 46}, /* A^T B^T */
    };
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            float c1[4] = {NAN, NAN, NAN, NAN}, c2[4] = {NAN, NAN, NAN, NAN};
            gemm(ta, tb, 2, 2, 2, 1.0f, A, 2, B, 2, 0.0f, c1, 2);
            gemm_ref(ta, tb, 2, 2, 2, 1.0f, A, 2, B, 2, 0.0f, c2, 2);
            for (int i = 0; i < 4; i++) {
                assert_true(c1[i] == want[2 * ta + tb][i]);
                assert_true(c2[i] == want[2 * ta + tb][i]);
            }
        }
}

/* gemm vs gemm_ref on odd sizes with row strides larger than the widths, all transpose
 * combinations, beta 0 (C filled with NaN: must be overwritten) and beta 1, alpha 1 and
 * -0.75. Padding columns of C must stay untouched. tol 1e-5. */
static void gemm_case(size_t m, size_t n, size_t k)
{
    double worst = 0.0;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++)
            for (int bi = 0; bi < 2; bi++)
                for (int ai = 0; ai < 2; ai++) {
                    float beta = (float)bi, alpha = ai ? -0.75f : 1.0f;
                    size_t arows = ta ? k : m, acols = ta ? m : k, lda = acols + 3;
                    size_t brows = tb ? n : k, bcols = tb ? k : n, ldb = bcols + 2;
                    size_t ldc = n + 5;
                    float *A = alloc_f(arows * lda), *B = alloc_f(brows * ldb);
                    float *C1 = alloc_f(m * ldc), *C2 = alloc_f(m * ldc);
                    fill_uniform(A, arows * lda, 11 + (uint64_t)ta);
                    fill_uniform(B, brows * ldb, 13 + (uint64_t)tb);
                    fill_uniform(C1, m * ldc, 17);
                    for (size_t i = 0; i < m; i++)
                        for (size_t j = 0; j < ldc; j++) {
                            if (j >= n) C1[i * ldc + j] = 12345.0f; /* padding sentinel */
                            else if (beta == 0.0f) C1[i * ldc + j] = NAN;
                        }
                    memcpy(C2, C1, m * ldc * sizeof *C1);
                    gemm(ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C1, ldc);
                    gemm_ref(ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C2, ldc);
                    for (size_t i = 0; i < m; i++) {
                        for (size_t j = n; j < ldc; j++) assert_true(C1[i * ldc + j] == 12345.0f);
                        double d = max_rel_diff(C1 + i * ldc, C2 + i * ldc, n);
                        if (!(d <= worst)) worst = d;
                    }
                    free(A);
                    free(B);
                    free(C1);
                    free(C2);
                }
    print_message("  gemm %zux%zux%zu, 16 variants            max rel diff %.3g (tol 1e-05)\n",
                  m, n, k, worst);
    assert_true(worst <= 1e-5);
}

static void test_gemm_strided(void **state)
{
    (void)state;
    gemm_case(7, 13, 5);
    gemm_case(1, 1, 1);
    gemm_case(67, 129, 45); /* larger than BLIS's micro-tiles, odd edges */
}

/* ---- im2col / col2im --------------------------------------------------------------- */

/* im2col entries equal x[c][b][ih][iw] (or 0 in the padding) at row (c*k+kh)*k+kw, column
 * (b-b0)*hout*wout + oh*wout + ow (exact); col2im is its adjoint:
 * <im2col(x), c> == <x, col2im(c)> (double sums, rel tol 1e-5); col2im accumulates and
 * leaves images outside the chunk alone. cin 3, 7x9, k 3, stride 2, pad 0 and 1, n 3,
 * chunk b0 1, nb 2. */
static void test_im2col(void **state)
{
    (void)state;
    for (int pad = 0; pad <= 1; pad++) {
        conv_geom g = conv_geom_make(3, 1, 3, 2, pad, 7, 9);
        assert_int_equal(g.hout, pad ? 4 : 3);
        assert_int_equal(g.wout, pad ? 5 : 4);
        const size_t n = 3, b0 = 1, nb = 2, hw = (size_t)g.hout * g.wout;
        const size_t rows = (size_t)g.cin * g.k * g.k, ncol = nb * hw;
        assert_int_equal(conv_col_floats(&g, nb), rows * ncol);
        const size_t xlen = (size_t)g.cin * n * g.hin * g.win;
        float *x = alloc_f(xlen), *col = alloc_f(rows * ncol), *c = alloc_f(rows * ncol);
        float *dx = alloc_f(xlen);
        fill_uniform(x, xlen, 21);
        fill_const(col, rows * ncol, 999.0f);
        im2col(&g, x, n, b0, nb, col);
        size_t zeros = 0;
        for (int ci = 0; ci < g.cin; ci++)
            for (int kh = 0; kh < g.k; kh++)
                for (int kw = 0; kw < g.k; kw++)
                    for (size_t b = b0; b < b0 + nb; b++)
                        for (int oh = 0; oh < g.hout; oh++)
                            for (int ow = 0; ow < g.wout; ow++) {
                                size_t row = ((size_t)ci * g.k + kh) * g.k + kw;
                                size_t cc = (b - b0) * hw + (size_t)oh * g.wout + ow;
                                int ih = oh * g.stride + kh - g.pad, iw = ow * g.stride + kw - g.pad;
                                float want = 0.0f;
                                if (ih >= 0 && ih < g.hin && iw >= 0 && iw < g.win)
                                    want = x[(((size_t)ci * n + b) * g.hin + ih) * g.win + iw];
                                else
                                    zeros++;
                                assert_true(col[row * ncol + cc] == want);
                            }
        assert_true(pad ? zeros > 0 : zeros == 0);

        fill_uniform(c, rows * ncol, 22);
        col2im(&g, c, n, b0, nb, dx);
        double lhs = dot_d(col, c, rows * ncol), rhs = dot_d(x, dx, xlen);
        double rel = fabs(lhs - rhs) / fmax(fabs(lhs), 1e-30);
        print_message("  adjoint pad %d: <im2col x, c> %.9g <x, col2im c> %.9g rel %.3g (tol 1e-5)\n",
                      pad, lhs, rhs, rel);
        assert_true(rel <= 1e-5);
        /* image 0 is outside the chunk: untouched */
        for (int ci = 0; ci < g.cin; ci++)
            for (size_t i = 0; i < (size_t)g.hin * g.win; i++)
                assert_true(dx[(size_t)ci * n * g.hin * g.win + i] == 0.0f);
        /* accumulation: a second col2im adds the same again */
        float *dx2 = alloc_f(xlen);
        memcpy(dx2, dx, xlen * sizeof *dx);
        col2im(&g, c, n, b0, nb, dx2);
        for (size_t i = 0; i < xlen; i++) assert_true(fabsf(dx2[i] - 2.0f * dx[i]) <= 1e-6f);
        free(dx2);
        free(x);
        free(col);
        free(c);
        free(dx);
    }
}

/* ---- convolution vs the plain-loop reference ------------------------------------- */

typedef struct {
    int cin, cout, k, stride, pad, hin, win;
    size_t n;
    int ws_images; /* workspace: conv_col_floats(g, ws_images) (+ ws_extra) */
    int ws_extra;
} conv_case;

static const conv_case conv_cases[] = {
    {3, 4, 3, 2, 0, 9, 9, 2, 2, 0},   /* whole batch in one chunk */
    {2, 5, 3, 1, 1, 6, 7, 3, 3, 0},   /* stride 1, padding */
    {3, 4, 3, 2, 0, 9, 9, 5, 2, 0},   /* n 5, 2 images per chunk: chunks 2, 2, 1 */
    {4, 3, 5, 2, 2, 11, 8, 5, 2, 7},  /* k 5, pad 2, chunked, ragged workspace */
    {1, 2, 1, 1, 0, 4, 4, 2, 1, 0},   /* 1x1 kernel, one image per chunk */
    {3, 2, 2, 3, 1, 8, 10, 3, 3, -1}, /* k 2, stride 3: workspace one float short of 3 */
};

/* conv_forward (relu 0) vs conv_forward_ref, conv_backward vs conv_backward_ref (dw, db
 * zeroed first; dx pre-filled with garbage: overwritten), and conv_backward with dx NULL
 * gives the same dw, db. tol 1e-4. */
static void test_conv_vs_ref(void **state)
{
    (void)state;
    double worst_y = 0, worst_dw = 0, worst_db = 0, worst_dx = 0, worst_nodx = 0;
    for (size_t t = 0; t < sizeof conv_cases / sizeof conv_cases[0]; t++) {
        const conv_case *cc = &conv_cases[t];
        conv_geom g = conv_geom_make(cc->cin, cc->cout, cc->k, cc->stride, cc->pad, cc->hin, cc->win);
        const size_t n = cc->n;
        const size_t xlen = (size_t)g.cin * n * g.hin * g.win;
        const size_t ylen = (size_t)g.cout * n * g.hout * g.wout;
        const size_t wlen = (size_t)g.cout * g.cin * g.k * g.k;
        size_t wsn = (size_t)((long)conv_col_floats(&g, (size_t)cc->ws_images) + cc->ws_extra);
        float *x = alloc_f(xlen), *w = alloc_f(wlen), *b = alloc_f((size_t)g.cout);
        float *y1 = alloc_f(ylen), *y2 = alloc_f(ylen), *dy = alloc_f(ylen), *dy2 = alloc_f(ylen);
        float *dw1 = alloc_f(wlen), *dw2 = alloc_f(wlen), *dw3 = alloc_f(wlen);
        float *db1 = alloc_f((size_t)g.cout), *db2 = alloc_f((size_t)g.cout), *db3 = alloc_f((size_t)g.cout);
        float *dx1 = alloc_f(xlen), *dx2 = alloc_f(xlen), *ws = alloc_f(wsn);
        fill_uniform(x, xlen, 100 + t);
        fill_uniform(w, wlen, 200 + t);
        fill_uniform(b, (size_t)g.cout, 300 + t);
        fill_uniform(dy, ylen, 400 + t);
        fill_const(y1, ylen, NAN);
        conv_forward(&g, x, w, b, y1, n, 0, ws, wsn);
        conv_forward_ref(&g, x, w, b, y2, n);
        double d = max_rel_diff(y1, y2, ylen);
        if (!(d <= worst_y)) worst_y = d;

        fill_const(dx1, xlen, 7.0f);
        memcpy(dy2, dy, ylen * sizeof *dy);
        conv_backward(&g, x, w, NULL, dy2, dw1, db1, dx1, n, ws, wsn);
        conv_backward_ref(&g, x, w, dy, dw2, db2, dx2, n);
        if (!((d = max_rel_diff(dw1, dw2, wlen)) <= worst_dw)) worst_dw = d;
        if (!((d = max_rel_diff(db1, db2, (size_t)g.cout)) <= worst_db)) worst_db = d;
        if (!((d = max_rel_diff(dx1, dx2, xlen)) <= worst_dx)) worst_dx = d;
        memcpy(dy2, dy, ylen * sizeof *dy);
        conv_backward(&g, x, w, NULL, dy2, dw3, db3, NULL, n, ws, wsn);
        if (!((d = max_rel_diff(dw3, dw2, wlen)) <= worst_nodx)) worst_nodx = d;
        if (!((d = max_rel_diff(db3, db2, (size_t)g.cout)) <= worst_nodx)) worst_nodx = d;
        float *bufs[] = {x, w, b, y1, y2, dy, dy2, dw1, dw2, dw3, db1, db2, db3, dx1, dx2, ws};
        for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    }
    print_message("  conv vs ref (%zu geometries): y %.3g dw %.3g db %.3g dx %.3g dx=NULL %.3g (tol 1e-4)\n",
                  sizeof conv_cases / sizeof conv_cases[0], worst_y, worst_dw, worst_db, worst_dx,
                  worst_nodx);
    assert_true(worst_y <= 1e-4);
    assert_true(worst_dw <= 1e-4);
    assert_true(worst_db <= 1e-4);
    assert_true(worst_dx <= 1e-4);
    assert_true(worst_nodx <= 1e-4);
}

/* Accumulation contract: conv_backward and dense_backward called twice with the same dy
 * double dw and db (tol 1e-6 relative to the single call) while dx is the same both
 * times (overwritten, exact). */
static void test_backward_accumulates(void **state)
{
    (void)state;
    conv_geom g = conv_geom_make(3, 4, 3, 2, 1, 9, 8);
    const size_t n = 3, xlen = (size_t)g.cin * n * g.hin * g.win;
    const size_t ylen = (size_t)g.cout * n * g.hout * g.wout, wlen = (size_t)g.cout * g.cin * 9;
    const size_t wsn = conv_col_floats(&g, 2);
    float *x = alloc_f(xlen), *w = alloc_f(wlen), *dy = alloc_f(ylen), *dyc = alloc_f(ylen);
    float *dw = alloc_f(wlen), *db = alloc_f(4), *dx1 = alloc_f(xlen), *dx2 = alloc_f(xlen);
    float *dw1 = alloc_f(wlen), *db1 = alloc_f(4), *ws = alloc_f(wsn);
    fill_uniform(x, xlen, 1);
    fill_uniform(w, wlen, 2);
    fill_uniform(dy, ylen, 3);
    memcpy(dyc, dy, ylen * sizeof *dy);
    conv_backward(&g, x, w, NULL, dyc, dw, db, dx1, n, ws, wsn);
    memcpy(dw1, dw, wlen * sizeof *dw);
    memcpy(db1, db, 4 * sizeof *db);
    memcpy(dyc, dy, ylen * sizeof *dy);
    conv_backward(&g, x, w, NULL, dyc, dw, db, dx2, n, ws, wsn);
    for (size_t i = 0; i < wlen; i++) dw1[i] *= 2.0f;
    for (size_t i = 0; i < 4; i++) db1[i] *= 2.0f;
    assert_close(dw, dw1, wlen, 1e-6, "conv: dw after 2 calls == 2 x one call");
    assert_close(db, db1, 4, 1e-6, "conv: db after 2 calls == 2 x one call");
    assert_memory_equal(dx1, dx2, xlen * sizeof *dx1);

    const size_t dn = 4, in = 6, out = 3;
    float *dxx = alloc_f(dn * in), *dww = alloc_f(out * in), *ddy = alloc_f(dn * out);
    float *ddw = alloc_f(out * in), *ddb = alloc_f(out), *ddw1 = alloc_f(out * in), *ddb1 = alloc_f(out);
    float *ddx1 = alloc_f(dn * in), *ddx2 = alloc_f(dn * in);
    fill_uniform(dxx, dn * in, 4);
    fill_uniform(dww, out * in, 5);
    fill_uniform(ddy, dn * out, 6);
    dense_backward(dxx, dww, NULL, ddy, ddw, ddb, ddx1, dn, in, out);
    for (size_t i = 0; i < out * in; i++) ddw1[i] = 2.0f * ddw[i];
    for (size_t i = 0; i < out; i++) ddb1[i] = 2.0f * ddb[i];
    fill_const(ddx2, dn * in, -3.0f);
    dense_backward(dxx, dww, NULL, ddy, ddw, ddb, ddx2, dn, in, out);
    assert_close(ddw, ddw1, out * in, 1e-6, "dense: dw after 2 calls == 2 x one call");
    assert_close(ddb, ddb1, out, 1e-6, "dense: db after 2 calls == 2 x one call");
    assert_memory_equal(ddx1, ddx2, dn * in * sizeof *ddx1);
    float *bufs[] = {x, w, dy, dyc, dw, db, dx1, dx2, dw1, db1, ws, dxx, dww, ddy, ddw, ddb, ddw1, ddb1, ddx1, ddx2};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
}

/* ---- dense vs the plain-loop reference ------------------------------------------- */

/* dense_forward (relu 0) vs dense_forward_ref, dense_backward vs dense_backward_ref, for
 * (n, in, out) = (3, 5, 4) and (7, 33, 9). tol 1e-4. */
static void test_dense_vs_ref(void **state)
{
    (void)state;
    const size_t shapes[2][3] = {{3, 5, 4}, {7, 33, 9}};
    for (int s = 0; s < 2; s++) {
        size_t n = shapes[s][0], in = shapes[s][1], out = shapes[s][2];
        float *x = alloc_f(n * in), *w = alloc_f(out * in), *b = alloc_f(out), *dy = alloc_f(n * out);
        float *y1 = alloc_f(n * out), *y2 = alloc_f(n * out), *dyc = alloc_f(n * out);
        float *dw1 = alloc_f(out * in), *dw2 = alloc_f(out * in), *db1 = alloc_f(out), *db2 = alloc_f(out);
        float *dx1 = alloc_f(n * in), *dx2 = alloc_f(n * in);
        fill_uniform(x, n * in, 31 + (uint64_t)s);
        fill_uniform(w, out * in, 32 + (uint64_t)s);
        fill_uniform(b, out, 33 + (uint64_t)s);
        fill_uniform(dy, n * out, 34 + (uint64_t)s);
        fill_const(y1, n * out, NAN);
        dense_forward(x, w, b, y1, n, in, out, 0);
        dense_forward_ref(x, w, b, y2, n, in, out);
        assert_close(y1, y2, n * out, 1e-4, "dense_forward vs ref: y");
        memcpy(dyc, dy, n * out * sizeof *dy);
        fill_const(dx1, n * in, NAN);
        dense_backward(x, w, NULL, dyc, dw1, db1, dx1, n, in, out);
        dense_backward_ref(x, w, dy, dw2, db2, dx2, n, in, out);
        assert_close(dw1, dw2, out * in, 1e-4, "dense_backward vs ref: dw");
        assert_close(db1, db2, out, 1e-4, "dense_backward vs ref: db");
        assert_close(dx1, dx2, n * in, 1e-4, "dense_backward vs ref: dx");
        float *bufs[] = {x, w, b, dy, y1, y2, dyc, dw1, dw2, db1, db2, dx1, dx2};
        for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    }
}

/* ---- finite differences ---------------------------------------------------------- */

/* L = sum_i y_i r_i accumulated in double, y = conv_forward(x, w, b) (relu 0) or
 * dense_forward(x, w, b) (relu 0). */
typedef struct {
    const conv_geom *g;
    const float *x, *w, *b, *r;
    float *y, *ws;
    size_t n, in, out, wsn;
} fd_ctx;

static double conv_loss(void *p)
{
    fd_ctx *c = p;
    conv_forward(c->g, c->x, c->w, c->b, c->y, c->n, 0, c->ws, c->wsn);
    return dot_d(c->y, c->r, (size_t)c->g->cout * c->n * c->g->hout * c->g->wout);
}

static double dense_loss(void *p)
{
    fd_ctx *c = p;
    dense_forward(c->x, c->w, c->b, c->y, c->n, c->in, c->out, 0);
    return dot_d(c->y, c->r, c->n * c->out);
}

/* Central difference of loss(ctx) wrt v[j], dividing by the step actually representable
 * in float32; v[j] is restored. */
static double central_diff(float *v, size_t j, float eps, double (*loss)(void *), void *ctx)
{
    float v0 = v[j], vp = v0 + eps, vm = v0 - eps;
    v[j] = vp;
    double lp = loss(ctx);
    v[j] = vm;
    double lm = loss(ctx);
    v[j] = v0;
    return (lp - lm) / ((double)vp - (double)vm);
}

/* Central finite differences (eps 1e-3 on float32 inputs, loss accumulated in double) vs
 * conv_backward's dw, db, dx: conv cin 2, cout 3, 7x7, k 3, stride 2, n 2, with fixed
 * random r as dL/dy. tol 1e-2 (max |fd - analytic| / max(1, |analytic|): the float32
 * forward pass limits the difference quotient to ~1e-4). */
static void test_conv_fd(void **state)
{
    (void)state;
    conv_geom g = conv_geom_make(2, 3, 3, 2, 0, 7, 7);
    const size_t n = 2, xlen = (size_t)g.cin * n * 49, ylen = (size_t)g.cout * n * g.hout * g.wout;
    const size_t wlen = (size_t)g.cout * g.cin * 9, wsn = conv_col_floats(&g, n);
    float *x = alloc_f(xlen), *w = alloc_f(wlen), *b = alloc_f(3), *r = alloc_f(ylen), *y = alloc_f(ylen);
    float *dy = alloc_f(ylen), *dw = alloc_f(wlen), *db = alloc_f(3), *dx = alloc_f(xlen), *ws = alloc_f(wsn);
    float *fw = alloc_f(wlen), *fb = alloc_f(3), *fx = alloc_f(xlen);
    fill_uniform(x, xlen, 51);
    fill_uniform(w, wlen, 52);
    fill_uniform(b, 3, 53);
    fill_uniform(r, ylen, 54);
    memcpy(dy, r, ylen * sizeof *r);
    conv_backward(&g, x, w, NULL, dy, dw, db, dx, n, ws, wsn);
    fd_ctx ctx = {.g = &g, .x = x, .w = w, .b = b, .r = r, .y = y, .ws = ws, .n = n, .wsn = wsn};
    const float eps = 1e-3f;
    for (size_t j = 0; j < wlen; j++)
        fw[j] = (float)central_diff(w, j, eps, conv_loss, &ctx);
    for (size_t j = 0; j < 3; j++)
        fb[j] = (float)central_diff(b, j, eps, conv_loss, &ctx);
    for (size_t j = 0; j < xlen; j++)
        fx[j] = (float)central_diff(x, j, eps, conv_loss, &ctx);
    assert_close(fw, dw, wlen, 1e-2, "conv finite differences: dw");
    assert_close(fb, db, 3, 1e-2, "conv finite differences: db");
    assert_close(fx, dx, xlen, 1e-2, "conv finite differences: dx");
    float *bufs[] = {x, w, b, r, y, dy, dw, db, dx, ws, fw, fb, fx};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
}

/* Central finite differences (eps 1e-3) vs dense_backward's dw, db, dx for n 3, in 6,
 * out 4 (relu 0). tol 1e-2 as for conv. */
static void test_dense_fd(void **state)
{
    (void)state;
    const size_t n = 3, in = 6, out = 4;
    float *x = alloc_f(n * in), *w = alloc_f(out * in), *b = alloc_f(out), *r = alloc_f(n * out);
    float *y = alloc_f(n * out), *dy = alloc_f(n * out), *dw = alloc_f(out * in), *db = alloc_f(out);
    float *dx = alloc_f(n * in), *fw = alloc_f(out * in), *fb = alloc_f(out), *fx = alloc_f(n * in);
    fill_uniform(x, n * in, 61);
    fill_uniform(w, out * in, 62);
    fill_uniform(b, out, 63);
    fill_uniform(r, n * out, 64);
    memcpy(dy, r, n * out * sizeof *r);
    dense_backward(x, w, NULL, dy, dw, db, dx, n, in, out);
    fd_ctx ctx = {.x = x, .w = w, .b = b, .r = r, .y = y, .n = n, .in = in, .out = out};
    const float eps = 1e-3f;
    for (size_t j = 0; j < out * in; j++)
        fw[j] = (float)central_diff(w, j, eps, dense_loss, &ctx);
    for (size_t j = 0; j < out; j++)
        fb[j] = (float)central_diff(b, j, eps, dense_loss, &ctx);
    for (size_t j = 0; j < n * in; j++)
        fx[j] = (float)central_diff(x, j, eps, dense_loss, &ctx);
    assert_close(fw, dw, out * in, 1e-2, "dense finite differences: dw");
    assert_close(fb, db, out, 1e-2, "dense finite differences: db");
    assert_close(fx, dx, n * in, 1e-2, "dense finite differences: dx");
    float *bufs[] = {x, w, b, r, y, dy, dw, db, dx, fw, fb, fx};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
}

/* ---- flatten ---------------------------------------------------------------------- */

/* cnhw_to_flat then cnhw_from_flat restores the input exactly, and the flat order equals
 * torch.flatten(x, 1) of the NCHW tensor (exact: a permutation). c 3, n 2, 2x3. */
static void test_flatten(void **state)
{
    (void)state;
    const size_t c = 3, n = 2, hw = 6, len = c * n * hw;
    float *x = alloc_f(len), *f = alloc_f(len), *back = alloc_f(len);
    fill_uniform(x, len, 71);
    cnhw_to_flat(x, f, c, n, hw);
    /* direct formula: flat[b][ci*hw + p] = x[ci][b][p] */
    for (size_t ci = 0; ci < c; ci++)
        for (size_t b = 0; b < n; b++)
            for (size_t p = 0; p < hw; p++) assert_true(f[(b * c + ci) * hw + p] == x[(ci * n + b) * hw + p]);
    fill_const(back, len, NAN);
    cnhw_from_flat(f, back, c, n, hw);
    assert_memory_equal(back, x, len * sizeof *x);
    free(x);
    free(f);
    free(back);

    TORCHREF_NEED();
    float *tx = torchref_read("flat_x", len), *ty = torchref_read("flat_y", len);
    float *got = alloc_f(len);
    cnhw_to_flat(tx, got, c, n, hw);
    assert_close(got, ty, len, 0.0, "cnhw_to_flat vs torch.flatten (exact)");
    free(tx);
    free(ty);
    free(got);
}

/* ---- PyTorch comparisons ---------------------------------------------------------- */

/* conv_forward / conv_backward vs F.conv2d and autograd: cin 3, cout 4, 9x9, n 2, k 3,
 * stride 2, no padding, without and with the fused ReLU; upstream dy random. dw, db
 * zeroed first. Workspace of one image (chunked). tol 1e-4. */
static void test_conv_torch(void **state)
{
    (void)state;
    TORCHREF_NEED();
    conv_geom g = conv_geom_make(3, 4, 3, 2, 0, 9, 9);
    const size_t n = 2, xlen = 3 * n * 81, ylen = 4 * n * 16, wlen = 4 * 3 * 9;
    float *x = torchref_read("conv_x", xlen), *w = torchref_read("conv_w", wlen);
    float *b = torchref_read("conv_b", 4), *dy0 = torchref_read("conv_dy", ylen);
    const size_t wsn = conv_col_floats(&g, 1);
    float *ws = alloc_f(wsn), *y = alloc_f(ylen), *dy = alloc_f(ylen), *dw = alloc_f(wlen);
    float *db = alloc_f(4), *dx = alloc_f(xlen);
    for (int relu = 0; relu <= 1; relu++) {
        const char *tag = relu ? "r" : "";
        char name[32];
        snprintf(name, sizeof name, "conv_y%s", tag);
        float *ty = torchref_read(name, ylen);
        snprintf(name, sizeof name, "conv_dx%s", tag);
        float *tdx = torchref_read(name, xlen);
        snprintf(name, sizeof name, "conv_dw%s", tag);
        float *tdw = torchref_read(name, wlen);
        snprintf(name, sizeof name, "conv_db%s", tag);
        float *tdb = torchref_read(name, 4);
        conv_forward(&g, x, w, b, y, n, relu, ws, wsn);
        print_message("  relu %d:\n", relu);
        assert_close(y, ty, ylen, 1e-4, "conv_forward vs F.conv2d: y");
        memcpy(dy, dy0, ylen * sizeof *dy);
        memset(dw, 0, wlen * sizeof *dw);
        memset(db, 0, 4 * sizeof *db);
        conv_backward(&g, x, w, relu ? y : NULL, dy, dw, db, dx, n, ws, wsn);
        assert_close(dx, tdx, xlen, 1e-4, "conv_backward vs autograd: dx");
        assert_close(dw, tdw, wlen, 1e-4, "conv_backward vs autograd: dw");
        assert_close(db, tdb, 4, 1e-4, "conv_backward vs autograd: db");
        if (relu) { /* the ReLU case must actually mask something */
            size_t zeros = 0;
            for (size_t i = 0; i < ylen; i++) zeros += y[i] == 0.0f;
            assert_true(zeros > 0 && zeros < ylen);
        }
        free(ty);
        free(tdx);
        free(tdw);
        free(tdb);
    }
    float *bufs[] = {x, w, b, dy0, ws, y, dy, dw, db, dx};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
}

/* dense_forward / dense_backward vs F.linear and autograd, relu off and on; n 3, in 5,
 * out 4. tol 1e-4. */
static void test_dense_torch(void **state)
{
    (void)state;
    TORCHREF_NEED();
    const size_t n = 3, in = 5, out = 4;
    float *x = torchref_read("dense_x", n * in), *w = torchref_read("dense_w", out * in);
    float *b = torchref_read("dense_b", out), *dy0 = torchref_read("dense_dy", n * out);
    float *y = alloc_f(n * out), *dy = alloc_f(n * out), *dw = alloc_f(out * in), *db = alloc_f(out);
    float *dx = alloc_f(n * in);
    for (int relu = 0; relu <= 1; relu++) {
        const char *tag = relu ? "r" : "";
        char name[32];
        snprintf(name, sizeof name, "dense_y%s", tag);
        float *ty = torchref_read(name, n * out);
        snprintf(name, sizeof name, "dense_dx%s", tag);
        float *tdx = torchref_read(name, n * in);
        snprintf(name, sizeof name, "dense_dw%s", tag);
        float *tdw = torchref_read(name, out * in);
        snprintf(name, sizeof name, "dense_db%s", tag);
        float *tdb = torchref_read(name, out);
        print_message("  relu %d:\n", relu);
        dense_forward(x, w, b, y, n, in, out, relu);
        assert_close(y, ty, n * out, 1e-4, "dense_forward vs F.linear: y");
        memcpy(dy, dy0, n * out * sizeof *dy);
        memset(dw, 0, out * in * sizeof *dw);
        memset(db, 0, out * sizeof *db);
        dense_backward(x, w, relu ? y : NULL, dy, dw, db, dx, n, in, out);
        assert_close(dx, tdx, n * in, 1e-4, "dense_backward vs autograd: dx");
        assert_close(dw, tdw, out * in, 1e-4, "dense_backward vs autograd: dw");
        assert_close(db, tdb, out, 1e-4, "dense_backward vs autograd: db");
        if (relu) {
            size_t zeros = 0;
            for (size_t i = 0; i < n * out; i++) zeros += y[i] == 0.0f;
            assert_true(zeros > 0 && zeros < n * out);
        }
        free(ty);
        free(tdx);
        free(tdw);
        free(tdb);
    }
    float *bufs[] = {x, w, b, dy0, y, dy, dw, db, dx};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
}

/* ---- BatchNorm ---------------------------------------------------------------------- */

/* Asserts got (n floats) within tol of the PyTorch reference file NAME TAG (e.g. "bn_y" "r"). */
static void against_ref(const float *got, const char *name, const char *tag, size_t n, double tol, const char *what)
{
    char file[64];
    snprintf(file, sizeof file, "%s%s", name, tag);
    float *t = torchref_read(file, n);
    assert_close(got, t, n, tol, what);
    free(t);
}

/* batchnorm_forward / batchnorm_backward vs F.batch_norm and autograd: x (n 3, c 4, 5x5)
 * CNHW, training mode with relu off and on (output, dx, dgamma, dbeta, running mean and
 * variance moved from given values with momentum 0.1), then eval mode. No reducer: one
 * process. tol 1e-4. */
static void test_bn_torch(void **state)
{
    (void)state;
    TORCHREF_NEED();
    const size_t c = 4, len = 3 * 25, xl = c * len;
    float *x = torchref_read("bn_x", xl), *gamma = torchref_read("bn_gamma", c);
    float *beta = torchref_read("bn_beta", c), *rm0 = torchref_read("bn_rm0", c);
    float *rv0 = torchref_read("bn_rv0", c), *dy0 = torchref_read("bn_dy", xl);
    float *y = alloc_f(xl), *dy = alloc_f(xl), *mean = alloc_f(c), *invstd = alloc_f(c);
    float *rm = alloc_f(c), *rv = alloc_f(c), *dg = alloc_f(c), *db = alloc_f(c);
    double sums[9];
    for (int relu = 0; relu <= 1; relu++) {
        const char *tag = relu ? "r" : "";
        memcpy(rm, rm0, c * sizeof *rm);
        memcpy(rv, rv0, c * sizeof *rv);
        batchnorm_forward(x, y, c, len, gamma, beta, mean, invstd, rm, rv, 1, relu, sums, NULL);
        print_message("  relu %d:\n", relu);
        against_ref(y, "bn_y", tag, xl, 1e-4, "batchnorm_forward vs F.batch_norm: y");
        against_ref(rm, "bn_rm", tag, c, 1e-5, "running mean (momentum 0.1)");
        against_ref(rv, "bn_rv", tag, c, 1e-5, "running variance (unbiased)");
        memcpy(dy, dy0, xl * sizeof *dy);
        memset(dg, 0, c * sizeof *dg);
        memset(db, 0, c * sizeof *db);
        batchnorm_backward(x, relu ? y : NULL, dy, c, len, gamma, mean, invstd, dg, db, sums, NULL);
        against_ref(dy, "bn_dx", tag, xl, 1e-4, "batchnorm_backward vs autograd: dx");
        against_ref(dg, "bn_dgamma", tag, c, 1e-4, "batchnorm_backward vs autograd: dgamma");
        against_ref(db, "bn_dbeta", tag, c, 1e-4, "batchnorm_backward vs autograd: dbeta");
        if (relu) { /* the ReLU must mask something */
            size_t zeros = 0;
            for (size_t i = 0; i < xl; i++) zeros += y[i] == 0.0f;
            assert_true(zeros > 0 && zeros < xl);
        }
    }
    memcpy(rm, rm0, c * sizeof *rm);
    memcpy(rv, rv0, c * sizeof *rv);
    batchnorm_forward(x, y, c, len, gamma, beta, mean, invstd, rm, rv, 0, 0, sums, NULL);
    float *t = torchref_read("bn_yeval", xl);
    assert_close(y, t, xl, 1e-4, "eval mode (running statistics) vs F.batch_norm");
    assert_true(!memcmp(rm, rm0, c * sizeof *rm) && !memcmp(rv, rv0, c * sizeof *rv));
    free(t);
    float *bufs[] = {x, gamma, beta, rm0, rv0, dy0, y, dy, mean, invstd, rm, rv, dg, db};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
}

/* L = sum y r for y = batchnorm_forward(x) in training mode (relu 0); running statistics
 * written to scratch. */
typedef struct {
    const float *x, *gamma, *beta, *r;
    float *y, *mean, *invstd, *rm, *rv;
    size_t c, len;
} bn_fd_ctx;

static double bn_loss(void *p)
{
    bn_fd_ctx *b = p;
    double sums[16];
    batchnorm_forward(b->x, b->y, b->c, b->len, b->gamma, b->beta, b->mean, b->invstd, b->rm, b->rv, 1, 0,
                      sums, NULL);
    return dot_d(b->y, b->r, b->c * b->len);
}

/* Central finite differences (eps 1e-3) vs batchnorm_backward's dx, dgamma, dbeta for c 3,
 * len 10, relu 0. tol 1e-2 as for conv (float32 forward). */
static void test_bn_fd(void **state)
{
    (void)state;
    const size_t c = 3, len = 10, xl = c * len;
    float *x = alloc_f(xl), *gamma = alloc_f(c), *beta = alloc_f(c), *r = alloc_f(xl), *y = alloc_f(xl);
    float *dy = alloc_f(xl), *mean = alloc_f(c), *invstd = alloc_f(c), *rm = alloc_f(c), *rv = alloc_f(c);
    float *dg = alloc_f(c), *db = alloc_f(c), *fx = alloc_f(xl), *fg = alloc_f(c), *fb = alloc_f(c);
    fill_uniform(x, xl, 71);
    fill_uniform(gamma, c, 72);
    fill_uniform(beta, c, 73);
    fill_uniform(r, xl, 74);
    double sums[16];
    batchnorm_forward(x, y, c, len, gamma, beta, mean, invstd, rm, rv, 1, 0, sums, NULL);
    memcpy(dy, r, xl * sizeof *dy);
    batchnorm_backward(x, NULL, dy, c, len, gamma, mean, invstd, dg, db, sums, NULL);
    bn_fd_ctx ctx = {x, gamma, beta, r, y, mean, invstd, rm, rv, c, len};
    for (size_t j = 0; j < xl; j++) fx[j] = (float)central_diff(x, j, 1e-3f, bn_loss, &ctx);
    for (size_t j = 0; j < c; j++) fg[j] = (float)central_diff(gamma, j, 1e-3f, bn_loss, &ctx);
    for (size_t j = 0; j < c; j++) fb[j] = (float)central_diff(beta, j, 1e-3f, bn_loss, &ctx);
    assert_close(fx, dy, xl, 1e-2, "batchnorm finite differences: dx");
    assert_close(fg, dg, c, 1e-2, "batchnorm finite differences: dgamma");
    assert_close(fb, db, c, 1e-2, "batchnorm finite differences: dbeta");
    float *bufs[] = {x, gamma, beta, r, y, dy, mean, invstd, rm, rv, dg, db, fx, fg, fb};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
}

/* A reducer standing in for MPI_Allreduce between two "ranks" run one after the other:
 * it records this rank's local sums (for the other) and adds the other rank's. */
typedef struct {
    double mine[64], other[64];
    int have_other;
} fake_reduce;

static void fake_reduce_fn(double *buf, size_t n, void *ctx)
{
    fake_reduce *f = ctx;
    CHECK(n <= 64);
    memcpy(f->mine, buf, n * sizeof *buf);
    for (size_t i = 0; f->have_other && i < n; i++) buf[i] += f->other[i];
}

/* The reduce hook is what makes BatchNorm see the global batch: a batch of 5 images split
 * 3 + 2 over two "ranks" whose sums are exchanged through the hook gives the same y, dx,
 * running statistics and (summed) dgamma, dbeta as the whole batch on one rank. c 3, 4x4
 * images (CNHW, so each rank's channel block is its own images). tol 1e-5. */
static void test_bn_split(void **state)
{
    (void)state;
    const size_t c = 3, hw = 16, n = 5, na = 3, nb = 2, L = n * hw;
    float *x = alloc_f(c * L), *gamma = alloc_f(c), *beta = alloc_f(c), *dy = alloc_f(c * L);
    float *y = alloc_f(c * L), *mean = alloc_f(c), *invstd = alloc_f(c), *rm = alloc_f(c), *rv = alloc_f(c);
    float *dg = alloc_f(c), *db = alloc_f(c), *dx = alloc_f(c * L);
    fill_uniform(x, c * L, 81);
    fill_uniform(gamma, c, 82);
    fill_uniform(beta, c, 83);
    fill_uniform(dy, c * L, 84);
    for (size_t i = 0; i < c * L; i++) x[i] = 3.0f * x[i] + 1.0f; /* mean far from 0 */
    for (size_t i = 0; i < c; i++) rv[i] = 1.0f;
    double sums[16];
    batchnorm_forward(x, y, c, L, gamma, beta, mean, invstd, rm, rv, 1, 1, sums, NULL);
    memcpy(dx, dy, c * L * sizeof *dx);
    batchnorm_backward(x, y, dx, c, L, gamma, mean, invstd, dg, db, sums, NULL);

    /* the two shards, CNHW each: rank 0 images 0..2, rank 1 images 3..4 */
    const size_t cnt[2] = {na, nb}, first[2] = {0, na};
    float *sx[2], *sy[2], *sd[2], *sm[2], *si[2], *srm[2], *srv[2];
    float *sg = alloc_f(c), *sb = alloc_f(c);
    for (int k = 0; k < 2; k++) {
        size_t l = cnt[k] * hw;
        sx[k] = alloc_f(c * l), sy[k] = alloc_f(c * l), sd[k] = alloc_f(c * l);
        sm[k] = alloc_f(c), si[k] = alloc_f(c), srm[k] = alloc_f(c), srv[k] = alloc_f(c);
        for (size_t ci = 0; ci < c; ci++) {
            memcpy(sx[k] + ci * l, x + ci * L + first[k] * hw, l * sizeof(float));
            memcpy(sd[k] + ci * l, dy + ci * L + first[k] * hw, l * sizeof(float));
            srv[k][ci] = 1.0f;
        }
    }
    fake_reduce f[2] = {{{0}, {0}, 0}, {{0}, {0}, 0}};
    bn_reduce red[2] = {{fake_reduce_fn, &f[0]}, {fake_reduce_fn, &f[1]}};
    /* forward: rank 0 alone (to learn its sums), rank 1 with them, rank 0 again with rank 1's */
    float rm_s[3], rv_s[3];
    memcpy(rm_s, srm[0], sizeof rm_s), memcpy(rv_s, srv[0], sizeof rv_s);
    batchnorm_forward(sx[0], sy[0], c, na * hw, gamma, beta, sm[0], si[0], srm[0], srv[0], 1, 1, sums, &red[0]);
    memcpy(srm[0], rm_s, sizeof rm_s), memcpy(srv[0], rv_s, sizeof rv_s);
    memcpy(f[1].other, f[0].mine, sizeof f[0].mine), f[1].have_other = 1;
    batchnorm_forward(sx[1], sy[1], c, nb * hw, gamma, beta, sm[1], si[1], srm[1], srv[1], 1, 1, sums, &red[1]);
    memcpy(f[0].other, f[1].mine, sizeof f[1].mine), f[0].have_other = 1;
    batchnorm_forward(sx[0], sy[0], c, na * hw, gamma, beta, sm[0], si[0], srm[0], srv[0], 1, 1, sums, &red[0]);
    /* backward the same way; dgamma/dbeta summed over the ranks as the gradient allreduce does */
    float *d0 = alloc_f(c * na * hw);
    memcpy(d0, sd[0], c * na * hw * sizeof *d0);
    f[0].have_other = f[1].have_other = 0;
    float sg0[3] = {0}, sb0[3] = {0};
    batchnorm_backward(sx[0], sy[0], d0, c, na * hw, gamma, sm[0], si[0], sg0, sb0, sums, &red[0]);
    memcpy(f[1].other, f[0].mine, sizeof f[0].mine), f[1].have_other = 1;
    batchnorm_backward(sx[1], sy[1], sd[1], c, nb * hw, gamma, sm[1], si[1], sg, sb, sums, &red[1]);
    memcpy(f[0].other, f[1].mine, sizeof f[1].mine), f[0].have_other = 1;
    batchnorm_backward(sx[0], sy[0], sd[0], c, na * hw, gamma, sm[0], si[0], sg, sb, sums, &red[0]);
    double worst = 0.0;
    for (int k = 0; k < 2; k++) {
        size_t l = cnt[k] * hw;
        for (size_t ci = 0; ci < c; ci++) {
            double a = max_rel_diff(sy[k] + ci * l, y + ci * L + first[k] * hw, l);
            double b = max_rel_diff(sd[k] + ci * l, dx + ci * L + first[k] * hw, l);
            worst = fmax(worst, fmax(a, b));
        }
        worst = fmax(worst, fmax(max_rel_diff(srm[k], rm, c), max_rel_diff(srv[k], rv, c)));
    }
    worst = fmax(worst, fmax(max_rel_diff(sg, dg, c), max_rel_diff(sb, db, c)));
    print_message("  3 + 2 images on two ranks vs 5 on one: y, dx, running stats, dgamma, dbeta max rel diff %.3g (tol 1e-5)\n", worst);
    assert_true(worst <= 1e-5);
    /* and the hook matters: without rank 1's sums rank 0 normalises differently */
    f[0].have_other = 0;
    batchnorm_forward(sx[0], sy[0], c, na * hw, gamma, beta, sm[0], si[0], srm[0], srv[0], 1, 1, sums, &red[0]);
    assert_true(max_rel_diff(sy[0], y, na * hw) > 1e-3);
    for (int k = 0; k < 2; k++) {
        float *b2[] = {sx[k], sy[k], sd[k], sm[k], si[k], srm[k], srv[k]};
        for (size_t i = 0; i < 7; i++) free(b2[i]);
    }
    float *bufs[] = {x, gamma, beta, dy, y, mean, invstd, rm, rv, dg, db, dx, sg, sb, d0};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
}

/* dst (n floats) = the reference tensor PRE TAG (e.g. "model" "_x") */
static void ref_into(float *dst, const char *pre, const char *tag, size_t n)
{
    char name[160];
    snprintf(name, sizeof name, "%s%s", pre, tag);
    float *v = torchref_read(name, n);
    memcpy(dst, v, n * sizeof *v);
    free(v);
}

/* Whole network vs PyTorch: model_cfg {image_size 17, conv_layers 2, width 4, kernel 3,
 * embed_dim 5, proj_dim 6, num_classes 3}, batch 2, default (one-image) workspace; with
 * batchnorm (prefix model_bn): batch 3 in training mode, and the running statistics after
 * the forward pass are checked too. The
 * tensor list (names, order, sizes) must match PREFIX_tensors.txt written by the script;
 * parameters are loaded by name. Checks embed, proj, logits, then the gradients of all
 * tensors for L = <proj, dproj> (head_backward + encoder_backward; classifier gradients
 * must stay 0) and for L = <logits, dlogits> (classifier_backward + encoder_backward; head
 * gradients must stay 0). tol 1e-4. */
static void model_torch_case(const char *pre, int bn)
{
    TORCHREF_NEED();
    const model_cfg cfg = {.image_size = 17, .conv_layers = 2, .width = 4, .kernel = 3,
                           .embed_dim = 5, .proj_dim = 6, .num_classes = 3, .batchnorm = bn};
    const size_t n = bn ? 3 : 2;
    model m;
    model_init(&m, &cfg, n, 0);
    assert_int_equal(m.flat_dim, 4 * 3 * 3);

    char path[1200];
    snprintf(path, sizeof path, "%s/%s_tensors.txt", torchref_dir, pre);
    FILE *f = fopen(path, "r");
    if (!f) fail_msg("cannot open %s", path);
    char name[64], fname[128];
    size_t size;
    int t = 0;
    model_init_weights(&m, -1, 1); /* running statistics 0 / 1; the weights are overwritten below */
    while (fscanf(f, "%63s %zu", name, &size) == 2) {
        if (t >= m.ntensors) fail_msg("torch model has more tensors than model.c (%s)", name);
        if (strcmp(name, m.tensor[t].name) || size != m.tensor[t].size)
            fail_msg("tensor %d: model.c has %s (%zu floats), torch %s (%zu)", t, m.tensor[t].name,
                     m.tensor[t].size, name, size);
        snprintf(fname, sizeof fname, "%s_param_%s", pre, name);
        float *p = torchref_read(fname, size);
        memcpy(m.params + m.tensor[t].offset, p, size * sizeof *p);
        free(p);
        t++;
    }
    fclose(f);
    assert_int_equal(t, m.ntensors);
    assert_int_equal(m.tensor[m.ntensors - 1].offset + m.tensor[m.ntensors - 1].size, m.nparams);

    const size_t S = 17, E = 5, P = 6, C = 3;
    ref_into(m.act[0], pre, "_x", 3 * n * S * S);
    encoder_forward(&m, n, 1);
    head_forward(&m, n);
    classifier_forward(&m, n);
    against_ref(m.embed, pre, "_embed", n * E, 1e-4, "model embed (encoder) vs torch");
    against_ref(m.proj, pre, "_proj", n * P, 1e-4, "model proj (head) vs torch");
    against_ref(m.logits, pre, "_logits", n * C, 1e-4, "model logits (classifier) vs torch");
    for (int i = 0; i < m.nbuffers; i++) { /* BatchNorm running statistics after one step */
        snprintf(fname, sizeof fname, "%s_running_%s%d", pre, i % 2 ? "var" : "mean", i / 2);
        float *tr = torchref_read(fname, m.buffer[i].size);
        assert_close(m.buffers + m.buffer[i].offset, tr, m.buffer[i].size, 1e-5, m.buffer[i].name);
        free(tr);
    }
    assert_int_equal(m.nbuffers, bn ? 4 : 0);

    for (int pass = 0; pass < 2; pass++) {
        const char *kind = pass == 0 ? "gproj" : "glogits";
        model_zero_grad(&m, 0, NGROUPS);
        if (pass == 0) {
            ref_into(m.dproj, pre, "_dproj", n * P);
            head_backward(&m, n);
        } else {
            ref_into(m.dlogits, pre, "_dlogits", n * C);
            classifier_backward(&m, n, 1);
        }
        encoder_backward(&m, n);
        double worst = 0.0;
        for (int i = 0; i < m.ntensors; i++) {
            const param_tensor *pt = &m.tensor[i];
            snprintf(fname, sizeof fname, "%s_%s_%s", pre, kind, pt->name);
            float *tg = torchref_read(fname, pt->size);
            double d = max_rel_diff(m.grads + pt->offset, tg, pt->size);
            print_message("  %-8s %-22s grad max rel diff %.3g\n", kind, pt->name, d);
            if (!(d <= worst)) worst = d;
            int unused = (pass == 0 && pt->group == GROUP_CLASSIFIER) ||
                         (pass == 1 && pt->group == GROUP_HEAD);
            for (size_t j = 0; unused && j < pt->size; j++)
                assert_true(m.grads[pt->offset + j] == 0.0f);
            free(tg);
        }
        print_message("  %s: all gradients max rel diff %.3g (tol 1e-4)\n", kind, worst);
        assert_true(worst <= 1e-4);
    }
    model_free(&m);
}

/* The network of model_torch_case with its classifier on another input: the conv features
 * (on_conv, classifier 3 x flat_dim) or the head's first layer (else, 3 x proj_dim 6, not
 * embed_dim 5). Initialises m with the reference weights, the classifier's from PRE + cls +
 * "_weight" / "_bias" ("_probe", "_head"), and the input x; returns the batch (2, 3 with
 * batchnorm). */
static size_t ref_model_open(model *m, const char *pre, const char *cls, int bn, int on_conv)
{
    const model_cfg cfg = {.image_size = 17, .conv_layers = 2, .width = 4, .kernel = 3, .embed_dim = 5, .proj_dim = 6,
                           .num_classes = 3, .batchnorm = bn, .classifier_on_conv = on_conv, .classifier_on_head = !on_conv};
    const size_t n = bn ? 3 : 2;
    model_init(m, &cfg, n, 0);
    const param_tensor *w = &m->tensor[m->t_cls];
    assert_string_equal(w->name, "classifier.weight");
    assert_int_equal(w->shape[0], 3);
    assert_int_equal(w->shape[1], on_conv ? (int64_t)m->flat_dim : 6);
    char tag[96];
    model_init_weights(m, -1, 1); /* running statistics 0 / 1 */
    for (int t = 0; t < m->ntensors; t++) {
        const param_tensor *pt = &m->tensor[t];
        if (t == m->t_cls || t == m->t_cls + 1) snprintf(tag, sizeof tag, "%s_%s", cls, t == m->t_cls ? "weight" : "bias");
        else snprintf(tag, sizeof tag, "_param_%s", pt->name);
        ref_into(m->params + pt->offset, pre, tag, pt->size);
    }
    ref_into(m->act[0], pre, "_x", 3 * n * 17 * 17);
    return n;
}

/* classifier_forward on m (encoder_forward first) vs PRE + cls + "_logits", then
 * classifier_backward from PRE + cls + "_dlogits" with all gradients zeroed first. tol 1e-4. */
static void classifier_vs_ref(model *m, const char *pre, const char *cls, size_t n, int need_dembed, const char *what)
{
    const size_t C = 3;
    char tag[96];
    encoder_forward(m, n, 1);
    classifier_forward(m, n);
    snprintf(tag, sizeof tag, "%s_logits", cls);
    against_ref(m->logits, pre, tag, n * C, 1e-4, what);
    model_zero_grad(m, 0, NGROUPS);
    snprintf(tag, sizeof tag, "%s_dlogits", cls);
    ref_into(m->dlogits, pre, tag, n * C);
    classifier_backward(m, n, need_dembed);
}

/* The linear probe on the conv features (model_cfg.classifier_on_conv, model.probe_features =
 * "conv"), the network of model_torch_case: logits = classifier on the flattened last conv
 * map (PyTorch's NCHW flatten order) vs PyTorch, and classifier_backward without dembed: the
 * classifier gradients vs PyTorch, every other gradient exactly 0. tol 1e-4. */
static void model_probe_case(const char *pre, int bn)
{
    TORCHREF_NEED();
    model m;
    const size_t n = ref_model_open(&m, pre, "_probe", bn, 1), C = 3;
    const param_tensor *w = &m.tensor[m.t_cls];
    classifier_vs_ref(&m, pre, "_probe", n, 0, "conv-feature probe logits vs torch");
    against_ref(m.grads + w->offset, pre, "_probe_gweight", w->size, 1e-4, "conv-feature probe dW vs torch");
    against_ref(m.grads + m.tensor[m.t_cls + 1].offset, pre, "_probe_gbias", C, 1e-4, "conv-feature probe db vs torch");
    for (size_t j = 0; j < m.group_begin[GROUP_CLASSIFIER]; j++) assert_true(m.grads[j] == 0.0f);
    model_free(&m);
}

/* Fine-tuning from the projection head's first layer (model_cfg.classifier_on_head,
 * model.finetune_from = "head0", SimCLR v2 section 2.2), the network of model_torch_case:
 * logits = classifier on ReLU(head.fc0(embed)) vs PyTorch, then classifier_backward with
 * dembed and encoder_backward: every tensor's gradient vs PyTorch (head.fc1, off the path,
 * exactly 0). tol 1e-4. */
static void model_head_case(const char *pre, int bn)
{
    TORCHREF_NEED();
    model m;
    const size_t n = ref_model_open(&m, pre, "_head", bn, 0);
    char tag[96];
    classifier_vs_ref(&m, pre, "_head", n, 1, "head0 classifier logits vs torch");
    encoder_backward(&m, n);
    for (int t = 0; t < m.ntensors; t++) {
        const param_tensor *pt = &m.tensor[t];
        snprintf(tag, sizeof tag, "_head_g_%s", pt->name);
        char what[96];
        snprintf(what, sizeof what, "head0 fine-tune grad %s vs torch", pt->name);
        against_ref(m.grads + pt->offset, pre, tag, pt->size, 1e-4, what);
        if (!strncmp(pt->name, "head.fc1", 8))
            for (size_t j = 0; j < pt->size; j++) assert_true(m.grads[pt->offset + j] == 0.0f);
    }
    model_free(&m);
}

static void test_model_head_torch(void **state)
{
    (void)state;
    model_head_case("model", 0);
    model_head_case("model_bn", 1);
}

static void test_model_probe_conv_torch(void **state)
{
    (void)state;
    model_probe_case("model", 0);
    model_probe_case("model_bn", 1);
}

static void test_model_torch(void **state)
{
    (void)state;
    model_torch_case("model", 0);
}

static void test_model_bn_torch(void **state)
{
    (void)state;
    model_torch_case("model_bn", 1);
}

int main(void)
{
    gemm_init(); /* the trainer's BLIS kernels */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gemm_kernels_not_generic),
        cmocka_unit_test(test_gemm_hand),
        cmocka_unit_test(test_gemm_strided),
        cmocka_unit_test(test_im2col),
        cmocka_unit_test(test_conv_vs_ref),
        cmocka_unit_test(test_backward_accumulates),
        cmocka_unit_test(test_dense_vs_ref),
        cmocka_unit_test(test_conv_fd),
        cmocka_unit_test(test_dense_fd),
        cmocka_unit_test(test_flatten),
        cmocka_unit_test(test_conv_torch),
        cmocka_unit_test(test_dense_torch),
        cmocka_unit_test(test_bn_torch),
        cmocka_unit_test(test_bn_fd),
        cmocka_unit_test(test_bn_split),
        cmocka_unit_test(test_model_torch),
        cmocka_unit_test(test_model_probe_conv_torch),
        cmocka_unit_test(test_model_head_torch),
        cmocka_unit_test(test_model_bn_torch),
    };
    return cmocka_run_group_tests_name("layers", tests, torchref_setup, NULL);
}
