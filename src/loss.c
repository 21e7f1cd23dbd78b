/* loss.c: L2 normalisation, NT-Xent with log-sum-exp, softmax cross-entropy. */
#include "loss.h"

#include <math.h>

#include "common.h"
#include "gemm.h"

void l2norm_forward(const float *z, float *zn, float *norm, size_t n, size_t d)
{
    for (size_t i = 0; i < n; i++) {
        double s = 0.0;
        for (size_t j = 0; j < d; j++) s += (double)z[i * d + j] * z[i * d + j];
        float nr = (float)sqrt(s);
        if (nr < 1e-12f) nr = 1e-12f;
        norm[i] = nr;
        for (size_t j = 0; j < d; j++) zn[i * d + j] = z[i * d + j] / nr;
    }
}

void l2norm_backward(const float *zn, const float *norm, const float *dzn, float *dz, size_t n,
                     size_t d)
{
    for (size_t i = 0; i < n; i++) {
        double dot = 0.0;
        for (size_t j = 0; j < d; j++) dot += (double)zn[i * d + j] * dzn[i * d + j];
        for (size_t j = 0; j < d; j++)
            dz[i * d + j] = (float)((dzn[i * d + j] - zn[i * d + j] * dot) / norm[i]);
    }
}

void ntxent_partners(const size_t *counts, int world, int64_t *partner)
{
    size_t base = 0;
    for (int r = 0; r < world; r++) {
        size_t c = counts[r];
        for (size_t o = 0; o < 2 * c; o++) partner[base + o] = (int64_t)(base + (o < c ? o + c : o - c));
        base += 2 * c;
    }
}

double ntxent_rows(const float *zn, size_t n, size_t d, const int64_t *partner, size_t row0,
                   size_t nrows, float tau, float scale, float *dzn, size_t *ncorrect,
                   float *ws)
{
    CHECK(tau > 0.0f && row0 + nrows <= n);
    if (nrows == 0) {
        if (ncorrect) *ncorrect = 0;
        return 0.0;
    }
    const float *za = zn + row0 * d;
    /* ws (nrows, n) = za zn^T / tau: the logits */
    gemm(0, 1, nrows, n, d, 1.0f / tau, za, d, zn, d, 0.0f, ws, n);
    double total = 0.0;
    size_t correct = 0;
    for (size_t a = 0; a < nrows; a++) {
        size_t i = row0 + a;
        float *l = ws + a * n;
        size_t p = (size_t)partner[i];
        CHECK(p < n && p != i);
        float mx = -INFINITY;
        size_t arg = p;
        for (size_t k = 0; k < n; k++)
            if (k != i && l[k] > mx) mx = l[k], arg = k;
        double sum = 0.0;
        for (size_t k = 0; k < n; k++)
            if (k != i) sum += exp((double)l[k] - mx);
        double lse = mx + log(sum);
        total += lse - l[p];
        correct += arg == p;
        /* gradient of l_i w.r.t. logits: softmax - onehot(p), diagonal excluded */
        for (size_t k = 0; k < n; k++)
            l[k] = k == i ? 0.0f : (float)exp((double)l[k] - lse) * scale / tau;
        l[p] -= scale / tau;
    }
    /* dzn[anchors] += G zn ; dzn[all] += G^T za, G = ws (nrows, n) */
    gemm(0, 0, nrows, d, n, 1.0f, ws, n, zn, d, 1.0f, dzn + row0 * d, d);
    gemm(1, 0, n, d, nrows, 1.0f, ws, n, za, d, 1.0f, dzn, d);
    if (ncorrect) *ncorrect = correct;
    return total;
}

/* log sum_k exp(l_k / tau) of one row of c logits, shifted by the row maximum; *arg gets
 * the index of that maximum (the first on ties). */
static double row_lse(const float *l, size_t c, double tau, size_t *arg)
{
    size_t a = 0;
    for (size_t k = 1; k < c; k++)
        if (l[k] > l[a]) a = k;
    double sum = 0.0;
    for (size_t k = 0; k < c; k++) sum += exp(((double)l[k] - l[a]) / tau);
    *arg = a;
    return (double)l[a] / tau + log(sum);
}

double softmax_xent(const float *logits, const int32_t *labels, size_t n, size_t c, float scale,
                    float *dlogits, size_t *ncorrect)
{
    double total = 0.0;
    size_t correct = 0;
    for (size_t i = 0; i < n; i++) {
        const float *l = logits + i * c;
        CHECK(labels[i] >= 0 && (size_t)labels[i] < c);
        size_t arg;
        double lse = row_lse(l, c, 1.0, &arg);
        total += lse - l[labels[i]];
        correct += arg == (size_t)labels[i];
        if (dlogits) {
            for (size_t k = 0; k < c; k++)
                dlogits[i * c + k] = (float)exp((double)l[k] - lse) * scale;
            dlogits[i * c + labels[i]] -= scale;
        }
    }
    if (ncorrect) *ncorrect = correct;
    return total;
}

void softmax_rows(const float *logits, size_t n, size_t c, float tau, float *probs)
{
    CHECK(tau > 0.0f && c > 0);
    for (size_t i = 0; i < n; i++) {
        const float *l = logits + i * c;
        size_t arg;
        double lse = row_lse(l, c, tau, &arg);
        for (size_t k = 0; k < c; k++) probs[i * c + k] = (float)exp((double)l[k] / tau - lse);
    }
}

double softmax_xent_soft(const float *logits, const float *targets, size_t n, size_t c, float tau,
                         float scale, float *dlogits, size_t *nagree)
{
    CHECK(tau > 0.0f && c > 0);
    double total = 0.0;
    size_t agree = 0;
    for (size_t i = 0; i < n; i++) {
        const float *l = logits + i * c, *t = targets + i * c;
        size_t arg, targ = 0;
        double tsum = 0.0, lse = row_lse(l, c, tau, &arg);
        for (size_t k = 0; k < c; k++) {
            if (t[k] > t[targ]) targ = k;
            tsum += t[k];
        }
        for (size_t k = 0; k < c; k++) total += (double)t[k] * (lse - (double)l[k] / tau);
        agree += arg == targ;
        if (dlogits)
            for (size_t k = 0; k < c; k++)
                dlogits[i * c + k] =
                    (float)((exp((double)l[k] / tau - lse) * tsum - (double)t[k]) / tau * scale);
    }
    if (nagree) *nagree = agree;
    return total;
}
