/* layers.c: conv (im2col + BLIS GEMM, CNHW), dense, ReLU, with plain-loop references. */
#include "layers.h"

#include <math.h>
#include <string.h>

#include "common.h"
#include "gemm.h"

conv_geom conv_geom_make(int cin, int cout, int k, int stride, int pad, int hin, int win)
{
    conv_geom g = {cin, cout, k, stride, pad, hin, win, 0, 0};
    CHECK(cin > 0 && cout > 0 && k > 0 && stride > 0 && pad >= 0);
    CHECK(hin + 2 * pad >= k && win + 2 * pad >= k);
    g.hout = (hin + 2 * pad - k) / stride + 1;
    g.wout = (win + 2 * pad - k) / stride + 1;
    return g;
}

size_t conv_col_floats(const conv_geom *g, size_t nb)
{
    return (size_t)g->cin * g->k * g->k * nb * (size_t)g->hout * g->wout;
}

/* Visits every (row, column) of the im2col matrix of images b0..b0+nb-1 and calls
 * BODY with `xi` the input offset (or -1 for a zero-padding tap) and `ci` the col offset. */
#define IM2COL_LOOP(BODY)                                                                 \
    const size_t hw = (size_t)g->hout * g->wout, ncol = nb * hw;                          \
    const size_t plane = (size_t)g->hin * g->win;                                         \
    for (int c = 0; c < g->cin; c++)                                                      \
        for (int kh = 0; kh < g->k; kh++)                                                 \
            for (int kw = 0; kw < g->k; kw++) {                                           \
                size_t row = ((size_t)c * g->k + kh) * g->k + kw;                         \
                for (size_t b = 0; b < nb; b++) {                                         \
                    size_t xbase = ((size_t)c * n + b0 + b) * plane;                      \
                    for (int oh = 0; oh < g->hout; oh++) {                                \
                        int ih = oh * g->stride + kh - g->pad;                            \
                        size_t ci = row * ncol + b * hw + (size_t)oh * g->wout;           \
                        for (int ow = 0; ow < g->wout; ow++, ci++) {                      \
                            int iw = ow * g->stride + kw - g->pad;                        \
                            int inside = ih >= 0 && ih < g->hin && iw >= 0 && iw < g->win; \
                            size_t xi = xbase + (size_t)ih * g->win + (size_t)iw;         \
                            BODY                                                          \
                        }                                                                 \
                    }                                                                     \
                }                                                                         \
            }

/* Without padding every tap is inside the image: the same visit order with no bounds
 * checks, one input row segment (stride `stride`) per output row. */
#define IM2COL_NOPAD_LOOP(BODY)                                                           \
    const size_t hw = (size_t)g->hout * g->wout, ncol = nb * hw, s = (size_t)g->stride;   \
    const size_t plane = (size_t)g->hin * g->win, wo = (size_t)g->wout;                   \
    for (int c = 0; c < g->cin; c++)                                                      \
        for (int kh = 0; kh < g->k; kh++)                                                 \
            for (int kw = 0; kw < g->k; kw++) {                                           \
                size_t row = ((size_t)c * g->k + kh) * g->k + kw;                         \
                for (size_t b = 0; b < nb; b++)                                           \
                    for (int oh = 0; oh < g->hout; oh++) {                                \
                        size_t xo = ((size_t)c * n + b0 + b) * plane +                    \
                                    ((size_t)oh * s + (size_t)kh) * g->win + (size_t)kw;  \
                        size_t co = row * ncol + b * hw + (size_t)oh * wo;                \
                        for (size_t ow = 0; ow < wo; ow++) BODY                           \
                    }                                                                     \
            }

void im2col(const conv_geom *g, const float *x, size_t n, size_t b0, size_t nb, float *col)
{
    if (g->pad == 0 && g->stride == 2) { /* the encoder's case: a constant stride vectorises */
        IM2COL_NOPAD_LOOP(col[co + ow] = x[xo + ow * 2];)
    } else if (g->pad == 0) {
        IM2COL_NOPAD_LOOP(col[co + ow] = x[xo + ow * s];)
    } else {
        IM2COL_LOOP(col[ci] = inside ? x[xi] : 0.0f;)
    }
}

void col2im(const conv_geom *g, const float *col, size_t n, size_t b0, size_t nb, float *dx)
{
    if (g->pad == 0) {
        IM2COL_NOPAD_LOOP(dx[xo + ow * s] += col[co + ow];)
    } else {
        IM2COL_LOOP(if (inside) dx[xi] += col[ci];)
    }
}

static size_t chunk_images(const conv_geom *g, size_t n, size_t ws_floats)
{
    size_t per = conv_col_floats(g, 1);
    CHECK(ws_floats >= per);
    size_t nb = ws_floats / per;
    return nb > n ? n : nb;
}

void conv_forward(const conv_geom *g, const float *x, const float *w, const float *b, float *y,
                  size_t n, int relu, float *ws, size_t ws_floats)
{
    const size_t hw = (size_t)g->hout * g->wout, kk = (size_t)g->cin * g->k * g->k;
    const size_t step = chunk_images(g, n, ws_floats);
    for (size_t b0 = 0; b0 < n; b0 += step) {
        size_t nb = n - b0 < step ? n - b0 : step;
        im2col(g, x, n, b0, nb, ws);
        gemm(0, 0, (size_t)g->cout, nb * hw, kk, 1.0f, w, kk, ws, nb * hw, 0.0f, y + b0 * hw,
             n * hw);
    }
    for (int co = 0; co < g->cout && (b || relu); co++) {
        float *yc = y + (size_t)co * n * hw, bias = b ? b[co] : 0.0f;
        size_t len = n * hw;
        if (relu)
            for (size_t i = 0; i < len; i++) {
                float v = yc[i] + bias;
                yc[i] = v > 0.0f ? v : 0.0f;
            }
        else
            for (size_t i = 0; i < len; i++) yc[i] += bias;
    }
}

/* The 8 lanes of a vectorised float reduction, added pairwise. */
static double lanes_sum(const float *l)
{
    return (double)(((l[0] + l[4]) + (l[1] + l[5])) + ((l[2] + l[6]) + (l[3] + l[7])));
}

void conv_backward(const conv_geom *g, const float *x, const float *w, const float *y,
                   float *dy, float *dw, float *db, float *dx, size_t n, float *ws,
                   size_t ws_floats)
{
    const size_t hw = (size_t)g->hout * g->wout, kk = (size_t)g->cin * g->k * g->k;
    const size_t len = n * hw;
    for (int co = 0; co < g->cout && (db || y); co++) { /* ReLU mask and bias gradient in one pass */
        float *d = dy + (size_t)co * len;
        const float *yc = y ? y + (size_t)co * len : NULL;
        double s = 0.0;
        for (size_t i0 = 0; i0 < len; i0 += 4096) { /* float partial sums of 4096, added in double */
            size_t i1 = len - i0 < 4096 ? len : i0 + 4096;
            float lane[8] = {0}; /* 8 interleaved partial sums: the loop vectorises without -ffast-math */
            size_t i = i0;
            if (yc)
                for (; i + 8 <= i1; i += 8)
                    for (int l = 0; l < 8; l++) {
                        d[i + l] = yc[i + l] > 0.0f ? d[i + l] : 0.0f;
                        lane[l] += d[i + l];
                    }
            else
                for (; i + 8 <= i1; i += 8)
                    for (int l = 0; l < 8; l++) lane[l] += d[i + l];
            for (; i < i1; i++) {
                if (yc) d[i] = yc[i] > 0.0f ? d[i] : 0.0f;
                lane[0] += d[i];
            }
            s += lanes_sum(lane);
        }
        if (db) db[co] += (float)s;
    }
    if (dx) memset(dx, 0, (size_t)g->cin * n * g->hin * g->win * sizeof *dx);
    const size_t step = chunk_images(g, n, ws_floats);
    for (size_t b0 = 0; b0 < n; b0 += step) {
        size_t nb = n - b0 < step ? n - b0 : step;
        im2col(g, x, n, b0, nb, ws);
        /* dw (cout, kk) += dy_chunk (cout, nb*hw) * col^T (nb*hw, kk) */
        gemm(0, 1, (size_t)g->cout, kk, nb * hw, 1.0f, dy + b0 * hw, len, ws, nb * hw, 1.0f, dw,
             kk);
        if (!dx) continue;
        /* dcol (kk, nb*hw) = w^T (kk, cout) * dy_chunk (cout, nb*hw) */
        gemm(1, 0, kk, nb * hw, (size_t)g->cout, 1.0f, w, kk, dy + b0 * hw, len, 0.0f, ws,
             nb * hw);
        col2im(g, ws, n, b0, nb, dx);
    }
}

void conv_forward_ref(const conv_geom *g, const float *x, const float *w, const float *b,
                      float *y, size_t n)
{
    for (int co = 0; co < g->cout; co++)
        for (size_t bi = 0; bi < n; bi++)
            for (int oh = 0; oh < g->hout; oh++)
                for (int ow = 0; ow < g->wout; ow++) {
                    double s = b[co];
                    for (int c = 0; c < g->cin; c++)
                        for (int kh = 0; kh < g->k; kh++)
                            for (int kw = 0; kw < g->k; kw++) {
                                int ih = oh * g->stride + kh - g->pad;
                                int iw = ow * g->stride + kw - g->pad;
                                if (ih < 0 || ih >= g->hin || iw < 0 || iw >= g->win) continue;
                                s += (double)w[(((size_t)co * g->cin + c) * g->k + kh) * g->k + kw] *
                                     x[(((size_t)c * n + bi) * g->hin + ih) * g->win + iw];
                            }
                    y[(((size_t)co * n + bi) * g->hout + oh) * g->wout + ow] = (float)s;
                }
}

void conv_backward_ref(const conv_geom *g, const float *x, const float *w, const float *dy,
                       float *dw, float *db, float *dx, size_t n)
{
    if (dx) memset(dx, 0, (size_t)g->cin * n * g->hin * g->win * sizeof *dx);
    for (int co = 0; co < g->cout; co++)
        for (size_t bi = 0; bi < n; bi++)
            for (int oh = 0; oh < g->hout; oh++)
                for (int ow = 0; ow < g->wout; ow++) {
                    float d = dy[(((size_t)co * n + bi) * g->hout + oh) * g->wout + ow];
                    db[co] += d;
                    for (int c = 0; c < g->cin; c++)
                        for (int kh = 0; kh < g->k; kh++)
                            for (int kw = 0; kw < g->k; kw++) {
                                int ih = oh * g->stride + kh - g->pad;
                                int iw = ow * g->stride + kw - g->pad;
                                if (ih < 0 || ih >= g->hin || iw < 0 || iw >= g->win) continue;
                                size_t wi = (((size_t)co * g->cin + c) * g->k + kh) * g->k + kw;
                                size_t xi = (((size_t)c * n + bi) * g->hin + ih) * g->win + iw;
                                dw[wi] += d * x[xi];
                                if (dx) dx[xi] += d * w[wi];
                            }
                }
}

void dense_forward(const float *x, const float *w, const float *b, float *y, size_t n,
                   size_t in, size_t out, int relu)
{
    gemm(0, 1, n, out, in, 1.0f, x, in, w, in, 0.0f, y, out);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < out; j++) {
            float v = y[i * out + j] + b[j];
            y[i * out + j] = relu && v < 0.0f ? 0.0f : v;
        }
}

void dense_backward(const float *x, const float *w, const float *y, float *dy, float *dw,
                    float *db, float *dx, size_t n, size_t in, size_t out)
{
    if (y) relu_backward(y, dy, n * out);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < out; j++) db[j] += dy[i * out + j];
    gemm(1, 0, out, in, n, 1.0f, dy, out, x, in, 1.0f, dw, in); /* dw += dy^T x */
    if (dx) gemm(0, 0, n, in, out, 1.0f, dy, out, w, in, 0.0f, dx, in); /* dx = dy w */
}

void dense_forward_ref(const float *x, const float *w, const float *b, float *y, size_t n,
                       size_t in, size_t out)
{
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < out; j++) {
            double s = b[j];
            for (size_t p = 0; p < in; p++) s += (double)x[i * in + p] * w[j * in + p];
            y[i * out + j] = (float)s;
        }
}

void dense_backward_ref(const float *x, const float *w, const float *dy, float *dw,
                        float *db, float *dx, size_t n, size_t in, size_t out)
{
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < out; j++) {
            float d = dy[i * out + j];
            db[j] += d;
            for (size_t p = 0; p < in; p++) dw[j * in + p] += d * x[i * in + p];
        }
    if (dx)
        for (size_t i = 0; i < n; i++)
            for (size_t p = 0; p < in; p++) {
                double s = 0.0;
                for (size_t j = 0; j < out; j++) s += (double)dy[i * out + j] * w[j * in + p];
                dx[i * in + p] = (float)s;
            }
}

#define BN_BLOCK 4096 /* floats summed in float lanes before adding to a double */

static void bn_sum(double *sums, size_t n, const bn_reduce *reduce)
{
    if (reduce && reduce->fn) reduce->fn(sums, n, reduce->ctx);
}

void batchnorm_forward(const float *x, float *y, size_t c, size_t len, const float *gamma,
                       const float *beta, float *mean, float *invstd, float *run_mean,
                       float *run_var, int train, int relu, double *sums, const bn_reduce *reduce)
{
    if (train) {
        /* per-channel sums (float lanes per block, blocks in double: a channel holds up
         * to ~10^6 values), summed over ranks with the global count in sums[2c] */
        for (size_t ci = 0; ci < c; ci++) {
            /* sums of x - K and (x - K)^2 with K = the running mean, the same number on every
             * rank and close to the batch mean after a few steps: no cancellation in the
             * variance E[(x-K)^2] - E[x-K]^2 */
            const float *xc = x + ci * len, K = run_mean[ci];
            double s = 0.0, q = 0.0;
            for (size_t i0 = 0; i0 < len; i0 += BN_BLOCK) { /* float lanes per block, blocks in double */
                size_t i1 = len - i0 < BN_BLOCK ? len : i0 + BN_BLOCK, i = i0;
                float ls[8] = {0}, lq[8] = {0};
                for (; i + 8 <= i1; i += 8)
                    for (int l = 0; l < 8; l++) {
                        float v = xc[i + l] - K;
                        ls[l] += v;
                        lq[l] += v * v;
                    }
                for (; i < i1; i++) ls[0] += xc[i] - K, lq[0] += (xc[i] - K) * (xc[i] - K);
                s += lanes_sum(ls);
                q += lanes_sum(lq);
            }
            sums[ci] = s;
            sums[c + ci] = q;
        }
        sums[2 * c] = (double)len;
        bn_sum(sums, 2 * c + 1, reduce);
        const double M = sums[2 * c];
        CHECK(M >= 1.0);
        for (size_t ci = 0; ci < c; ci++) {
            double dm = sums[ci] / M, mu = (double)run_mean[ci] + dm, var = sums[c + ci] / M - dm * dm;
            if (var < 0.0) var = 0.0;
            mean[ci] = (float)mu;
            invstd[ci] = (float)(1.0 / sqrt(var + BN_EPS));
            double unbiased = M > 1.0 ? var * M / (M - 1.0) : var;
            run_mean[ci] = (1.0f - BN_MOMENTUM) * run_mean[ci] + BN_MOMENTUM * (float)mu;
            run_var[ci] = (1.0f - BN_MOMENTUM) * run_var[ci] + BN_MOMENTUM * (float)unbiased;
        }
    } else {
        for (size_t ci = 0; ci < c; ci++) {
            mean[ci] = run_mean[ci];
            invstd[ci] = 1.0f / sqrtf(run_var[ci] + BN_EPS);
        }
    }
    for (size_t ci = 0; ci < c; ci++) { /* y = a x + b per channel */
        const float a = gamma[ci] * invstd[ci], b = beta[ci] - a * mean[ci];
        const float *xc = x + ci * len;
        float *yc = y + ci * len;
        if (relu)
            for (size_t i = 0; i < len; i++) {
                float v = a * xc[i] + b;
                yc[i] = v > 0.0f ? v : 0.0f;
            }
        else
            for (size_t i = 0; i < len; i++) yc[i] = a * xc[i] + b;
    }
}

void batchnorm_backward(const float *x, const float *y, float *dy, size_t c, size_t len,
                        const float *gamma, const float *mean, const float *invstd,
                        float *dgamma, float *dbeta, double *sums, const bn_reduce *reduce)
{
    for (size_t ci = 0; ci < c; ci++) {
        const float *xc = x + ci * len, *yc = y ? y + ci * len : NULL;
        float *d = dy + ci * len;
        const float mu = mean[ci];
        double s1 = 0.0, s2 = 0.0; /* sum dy, sum dy * (x - mean) */
        for (size_t i0 = 0; i0 < len; i0 += BN_BLOCK) { /* float lanes per block, blocks in double */
            size_t i1 = len - i0 < BN_BLOCK ? len : i0 + BN_BLOCK, i = i0;
            float l1[8] = {0}, l2[8] = {0};
            if (yc)
                for (size_t j = i0; j < i1; j++) d[j] = yc[j] > 0.0f ? d[j] : 0.0f;
            for (; i + 8 <= i1; i += 8)
                for (int l = 0; l < 8; l++) {
                    l1[l] += d[i + l];
                    l2[l] += d[i + l] * (xc[i + l] - mu);
                }
            for (; i < i1; i++) l1[0] += d[i], l2[0] += d[i] * (xc[i] - mu);
            s1 += lanes_sum(l1);
            s2 += lanes_sum(l2);
        }
        sums[ci] = s1;
        sums[c + ci] = s2 * invstd[ci];
        dbeta[ci] += (float)s1;
        dgamma[ci] += (float)sums[c + ci];
    }
    sums[2 * c] = (double)len;
    bn_sum(sums, 2 * c + 1, reduce);
    const double M = sums[2 * c];
    CHECK(M >= 1.0);
    for (size_t ci = 0; ci < c; ci++) {
        const float is = invstd[ci], k = gamma[ci] * is, mu = mean[ci];
        const float m1 = (float)(sums[ci] / M), m2 = (float)(sums[c + ci] / M);
        const float *xc = x + ci * len;
        float *d = dy + ci * len;
        for (size_t i = 0; i < len; i++) d[i] = k * (d[i] - m1 - (xc[i] - mu) * is * m2);
    }
}

void relu_forward(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) x[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void relu_backward(const float *y, float *dy, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!(y[i] > 0.0f)) dy[i] = 0.0f;
}

void cnhw_to_flat(const float *src, float *dst, size_t c, size_t n, size_t hw)
{
    for (size_t ci = 0; ci < c; ci++)
        for (size_t b = 0; b < n; b++)
            memcpy(dst + (b * c + ci) * hw, src + (ci * n + b) * hw, hw * sizeof *dst);
}

void cnhw_from_flat(const float *src, float *dst, size_t c, size_t n, size_t hw)
{
    for (size_t ci = 0; ci < c; ci++)
        for (size_t b = 0; b < n; b++)
            memcpy(dst + (ci * n + b) * hw, src + (b * c + ci) * hw, hw * sizeof *dst);
}
