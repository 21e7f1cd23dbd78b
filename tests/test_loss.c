/* test_loss.c: NT-Xent, L2 normalisation and softmax cross-entropy (loss.c), checked
 * against:
 *   - a value worked out by hand from Chen et al. 2020, eq. 1 (2 pairs, d 2, tau 0.5);
 *   - PyTorch (tests/torch_ref.py: a reference NT-Xent on the 2N x 2N similarity matrix,
 *     F.normalize, F.cross_entropy, autograd), in the one-rank layout and a three-"rank"
 *     all-gathered layout, through the files in $BUILD/ref;
 *   - itself: anchors split over calls (what distributed ranks do) == one call;
 *   - central finite differences of the loss wrt every zn entry (anchors and candidates);
 *   - constructed inputs for the contrastive accuracy.
 * Errors are max |a - b| / max(1, |b|) (testutil.h) unless stated; each check prints it. */
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
#include "loss.h"
#include "testutil.h"
#include "torchref.h"

static float *alloc_f(size_t n) { return xcalloc(n, sizeof(float), "test buffer"); }

/* |a - b| / |b|, printed, asserted <= tol. */
static void assert_rel_scalar(double a, double b, double tol, const char *what)
{
    double rel = fabs(a - b) / fabs(b);
    print_message("  %-40s got %.9g want %.9g rel diff %.3g (tol %.1g)\n", what, a, b, rel, tol);
    assert_true(rel <= tol);
}

/* Random rows normalised to unit length (float32). */
static void random_unit_rows(float *zn, size_t n, size_t d, uint64_t seed)
{
    float *z = alloc_f(n * d), *norm = alloc_f(n);
    fill_uniform(z, n * d, seed);
    l2norm_forward(z, zn, norm, n, d);
    free(z);
    free(norm);
}

/* ---- NT-Xent by hand --------------------------------------------------------------- */

/* n = 4 rows (2 pairs, one rank: partners 0<->2, 1<->3), d = 2, tau = 0.5:
 *   z0 = (1, 0), z1 = (0, 1), z2 = (0.6, 0.8), z3 = (-0.8, 0.6)
 *   similarities s01 = 0, s02 = 0.6, s03 = -0.8, s12 = 0.8, s13 = 0.6, s23 = 0;
 *   logits s / tau = 2 s.
 *   l_0 = -1.2 + log(e^0 + e^1.2 + e^-1.6)  = -1.2 + log(4.522013441) = 0.308957346
 *   l_1 = -1.2 + log(e^0 + e^1.6 + e^1.2)   = -1.2 + log(9.273149347) = 1.027123057
 *   l_2 = -1.2 + log(e^1.2 + e^1.6 + e^0)   = l_1
 *   l_3 = -1.2 + log(e^-1.6 + e^1.2 + e^0)  = l_0
 *   sum = 2 (0.308957346 + 1.027123057) = 2.672160807.
 * Most similar other row: 0 -> 2 (partner), 1 -> 2 (not 3), 2 -> 1 (not 0), 3 -> 1
 * (partner): ncorrect = 2. Loss rel tol 1e-6 (float32 inputs and logits). */
static void test_ntxent_hand(void **state)
{
    (void)state;
    const float zn[8] = {1, 0, 0, 1, 0.6f, 0.8f, -0.8f, 0.6f};
    const size_t counts[1] = {2};
    int64_t partner[4];
    ntxent_partners(counts, 1, partner);
    assert_true(partner[0] == 2 && partner[1] == 3 && partner[2] == 0 && partner[3] == 1);
    float dzn[8] = {0}, ws[16];
    size_t nc = 99;
    double loss = ntxent_rows(zn, 4, 2, partner, 0, 4, 0.5f, 1.0f, dzn, &nc, ws);
    assert_rel_scalar(loss, 2.672160807, 1e-6, "NT-Xent, 2 pairs, by hand");
    assert_int_equal(nc, 2);
}

/* ---- NT-Xent vs PyTorch ----------------------------------------------------------- */

/* Loss (mean over anchors) and dL/dz of the unnormalised z through l2norm_forward,
 * ntxent_rows (called once per rank block, as the ranks do) and l2norm_backward. */
static double ntxent_pipeline(const float *z, size_t n, size_t d, const size_t *counts, int world,
                              float tau, float *dz, int64_t *partner)
{
    float *zn = alloc_f(n * d), *norm = alloc_f(n), *dzn = alloc_f(n * d), *ws = alloc_f(n * n);
    l2norm_forward(z, zn, norm, n, d);
    ntxent_partners(counts, world, partner);
    double loss = 0.0;
    size_t row0 = 0;
    for (int r = 0; r < world; r++) {
        loss += ntxent_rows(zn, n, d, partner, row0, 2 * counts[r], tau, 1.0f / (float)n, dzn, NULL, ws);
        row0 += 2 * counts[r];
    }
    CHECK(row0 == n);
    l2norm_backward(zn, norm, dzn, dz, n, d);
    free(zn);
    free(norm);
    free(dzn);
    free(ws);
    return loss / (double)n;
}

/* One rank with counts {3} (d 4, tau 0.5) and three "ranks" with counts {2, 1, 3} (d 5,
 * tau 0.2), each compared with the PyTorch reference built on the same partner layout:
 * partner indices exact, loss rel tol 1e-5, dz tol 1e-4. The three-rank data evaluated
 * with the one-rank layout {6} must NOT match (rel diff > 1e-3): the test sees the
 * partner indexing. */
static void test_ntxent_torch(void **state)
{
    (void)state;
    TORCHREF_NEED();
    static const size_t c1[] = {3}, c3[] = {2, 1, 3}, c6[] = {6};
    const struct {
        const char *tag;
        const size_t *counts;
        int world;
        size_t d;
        float tau;
    } cases[] = {{"ntx1", c1, 1, 4, 0.5f}, {"ntx3", c3, 3, 5, 0.2f}};
    for (int t = 0; t < 2; t++) {
        size_t n = 0;
        for (int r = 0; r < cases[t].world; r++) n += 2 * cases[t].counts[r];
        const size_t d = cases[t].d;
        char name[64];
        snprintf(name, sizeof name, "%s_z", cases[t].tag);
        float *z = torchref_read(name, n * d);
        snprintf(name, sizeof name, "%s_loss", cases[t].tag);
        float *tl = torchref_read(name, 1);
        snprintf(name, sizeof name, "%s_dz", cases[t].tag);
        float *tdz = torchref_read(name, n * d);
        snprintf(name, sizeof name, "%s_partner", cases[t].tag);
        float *tp = torchref_read(name, n);
        float *dz = alloc_f(n * d);
        int64_t *partner = xcalloc(n, sizeof *partner, "partners");
        double loss = ntxent_pipeline(z, n, d, cases[t].counts, cases[t].world, cases[t].tau, dz, partner);
        for (size_t i = 0; i < n; i++) assert_true((float)partner[i] == tp[i]);
        print_message("  %s (world %d, n %zu):\n", cases[t].tag, cases[t].world, n);
        assert_rel_scalar(loss, tl[0], 1e-5, "NT-Xent loss vs torch");
        assert_close(dz, tdz, n * d, 1e-4, "NT-Xent dL/dz vs torch autograd");
        if (cases[t].world == 3) {
            double wrong = ntxent_pipeline(z, n, d, c6, 1, cases[t].tau, dz, partner);
            double rel = fabs(wrong - tl[0]) / fabs((double)tl[0]);
            print_message("  same z with one-rank layout {6}: loss %.6g vs %.6g (rel %.3g, must be > 1e-3)\n",
                          wrong, (double)tl[0], rel);
            assert_true(rel > 1e-3);
        }
        free(z);
        free(tl);
        free(tdz);
        free(tp);
        free(dz);
        free(partner);
    }
}

/* ---- split anchors ---------------------------------------------------------------- */

/* Sum of ntxent_rows over anchor ranges [0, k) and [k, n) == one call over [0, n): loss,
 * ncorrect, and the dzn accumulated by both calls (which includes candidate rows outside
 * each range). n 10 (counts {2, 3}), d 6, tau 0.3, scale 0.1. tol 1e-6. */
static void test_ntxent_split(void **state)
{
    (void)state;
    const size_t counts[2] = {2, 3}, n = 10, d = 6;
    int64_t partner[10];
    ntxent_partners(counts, 2, partner);
    float *zn = alloc_f(n * d), *d1 = alloc_f(n * d), *d2 = alloc_f(n * d), *ws = alloc_f(n * n);
    random_unit_rows(zn, n, d, 81);
    size_t nc1, nc2a, nc2b;
    double l1 = ntxent_rows(zn, n, d, partner, 0, n, 0.3f, 0.1f, d1, &nc1, ws);
    const size_t ks[] = {1, 4, 7, 9};
    for (size_t t = 0; t < sizeof ks / sizeof ks[0]; t++) {
        size_t k = ks[t];
        memset(d2, 0, n * d * sizeof *d2);
        double l2 = ntxent_rows(zn, n, d, partner, 0, k, 0.3f, 0.1f, d2, &nc2a, ws);
        l2 += ntxent_rows(zn, n, d, partner, k, n - k, 0.3f, 0.1f, d2, &nc2b, ws);
        print_message("  split at %zu:\n", k);
        assert_rel_scalar(l2, l1, 1e-6, "loss [0,k) + [k,n) vs [0,n)");
        assert_close(d2, d1, n * d, 1e-6, "dzn [0,k) + [k,n) vs [0,n)");
        assert_int_equal(nc2a + nc2b, nc1);
    }
    /* an empty range adds nothing */
    memcpy(d2, d1, n * d * sizeof *d1);
    size_t nc0 = 99;
    assert_true(ntxent_rows(zn, n, d, partner, 3, 0, 0.3f, 0.1f, d2, &nc0, ws) == 0.0);
    assert_int_equal(nc0, 0);
    assert_memory_equal(d2, d1, n * d * sizeof *d1);
    free(zn);
    free(d1);
    free(d2);
    free(ws);
}

/* ---- finite differences ------------------------------------------------------------ */

typedef struct {
    float *zn;
    size_t n, d, row0, nrows;
    const int64_t *partner;
    float *ws, *scratch;
} ntx_ctx;

static double ntx_loss(const ntx_ctx *c)
{
    return ntxent_rows(c->zn, c->n, c->d, c->partner, c->row0, c->nrows, 0.5f, 1.0f, c->scratch,
                       NULL, c->ws);
}

/* Central differences (eps 1e-3, step as represented in float32) of the NT-Xent sum wrt
 * every entry of zn, vs the accumulated dzn (scale 1): all anchors, and anchors 2..3 only
 * (then rows 0, 1, 4, 5 are not anchors: 1 and 4 are candidates only, 0 and 5 are
 * partners). n 6 (counts {3}), d 3, tau 0.5. tol 1e-2. */
static void test_ntxent_fd(void **state)
{
    (void)state;
    const size_t counts[1] = {3}, n = 6, d = 3;
    int64_t partner[6];
    ntxent_partners(counts, 1, partner);
    float *zn = alloc_f(n * d), *dzn = alloc_f(n * d), *fd = alloc_f(n * d);
    float *ws = alloc_f(n * n), *scratch = alloc_f(n * d);
    random_unit_rows(zn, n, d, 91);
    const size_t ranges[2][2] = {{0, 6}, {2, 2}};
    for (int r = 0; r < 2; r++) {
        ntx_ctx c = {zn, n, d, ranges[r][0], ranges[r][1], partner, ws, scratch};
        memset(dzn, 0, n * d * sizeof *dzn);
        ntxent_rows(zn, n, d, partner, c.row0, c.nrows, 0.5f, 1.0f, dzn, NULL, ws);
        const float eps = 1e-3f;
        for (size_t j = 0; j < n * d; j++) {
            float v0 = zn[j], vp = v0 + eps, vm = v0 - eps;
            zn[j] = vp;
            double lp = ntx_loss(&c);
            zn[j] = vm;
            double lm = ntx_loss(&c);
            zn[j] = v0;
            fd[j] = (float)((lp - lm) / ((double)vp - (double)vm));
        }
        /* with anchors 2..3 only, row 1 (neither anchor nor partner) still gets a gradient */
        if (r == 1) {
            double s = 0.0;
            for (size_t j = d; j < 2 * d; j++) s += fabs(dzn[j]);
            assert_true(s > 1e-3);
        }
        print_message("  anchors %zu..%zu:\n", c.row0, c.row0 + c.nrows - 1);
        assert_close(fd, dzn, n * d, 1e-2, "NT-Xent finite differences wrt zn");
    }
    free(zn);
    free(dzn);
    free(fd);
    free(ws);
    free(scratch);
}

/* ---- contrastive accuracy -------------------------------------------------------- */

/* Three pairs along three orthogonal axes (partners 0.1 apart): every anchor's nearest
 * other row is its partner, ncorrect == 6. Then row 0 is turned towards pair 1's axis:
 * anchor 0 alone now picks a non-partner (0 correct), pair 2's anchors are unaffected
 * (2 correct), and the total is <= 5. */
static void test_ntxent_accuracy(void **state)
{
    (void)state;
    const size_t counts[1] = {3}, n = 6, d = 3;
    int64_t partner[6];
    ntxent_partners(counts, 1, partner);
    float z[18] = {0}, zn[18], norm[6], dzn[18] = {0}, ws[36];
    for (size_t p = 0; p < 3; p++) {
        z[p * d + p] = 1.0f;                 /* view 1 of image p: axis p */
        z[(p + 3) * d + p] = 1.0f;           /* view 2: axis p, tilted */
        z[(p + 3) * d + (p + 1) % 3] = 0.1f;
    }
    l2norm_forward(z, zn, norm, n, d);
    size_t nc = 0;
    ntxent_rows(zn, n, d, partner, 0, n, 0.5f, 1.0f, dzn, &nc, ws);
    assert_int_equal(nc, 6);
    /* row 0 -> mostly axis 1 (pair 1's), a little axis 0 */
    z[0] = 0.3f;
    z[1] = 1.0f;
    l2norm_forward(z, zn, norm, n, d);
    ntxent_rows(zn, n, d, partner, 0, n, 0.5f, 1.0f, dzn, &nc, ws);
    print_message("  after perturbing row 0: ncorrect %zu of 6\n", nc);
    assert_true(nc <= 5);
    ntxent_rows(zn, n, d, partner, 0, 1, 0.5f, 1.0f, dzn, &nc, ws);
    assert_int_equal(nc, 0);
    size_t nc2 = 0;
    ntxent_rows(zn, n, d, partner, 2, 1, 0.5f, 1.0f, dzn, &nc, ws);
    nc2 += nc;
    ntxent_rows(zn, n, d, partner, 5, 1, 0.5f, 1.0f, dzn, &nc, ws);
    nc2 += nc;
    assert_int_equal(nc2, 2);
}

/* ---- softmax cross-entropy -------------------------------------------------------- */

/* softmax_xent vs F.cross_entropy(reduction='sum') and autograd (n 5, c 4): loss rel tol
 * 1e-5, dlogits (scale 1 and scale 0.25 vs 0.25 x torch) tol 1e-5, ncorrect equal to
 * torch's argmax count; dlogits NULL gives the same loss. By hand: logits (0, 0), label 0
 * -> loss log 2, gradient (-0.5, 0.5); the argmax tie picks the first class, so it counts
 * as correct. */
static void test_softmax_xent(void **state)
{
    (void)state;
    {
        const float l[2] = {0, 0};
        const int32_t lab[1] = {0};
        float dl[2];
        size_t nc = 9;
        double loss = softmax_xent(l, lab, 1, 2, 1.0f, dl, &nc);
        assert_rel_scalar(loss, log(2.0), 1e-7, "softmax_xent (0, 0), label 0: log 2");
        assert_true(fabsf(dl[0] + 0.5f) <= 1e-7f && fabsf(dl[1] - 0.5f) <= 1e-7f);
        assert_int_equal(nc, 1);
    }
    TORCHREF_NEED();
    const size_t n = 5, c = 4;
    float *logits = torchref_read("xent_logits", n * c), *tlab = torchref_read("xent_labels", n);
    float *tl = torchref_read("xent_loss", 1), *tdl = torchref_read("xent_dlogits", n * c);
    float *tnc = torchref_read("xent_ncorrect", 1);
    int32_t labels[5];
    for (size_t i = 0; i < n; i++) labels[i] = (int32_t)tlab[i];
    float *dl = alloc_f(n * c);
    size_t nc = 99;
    double loss = softmax_xent(logits, labels, n, c, 1.0f, dl, &nc);
    assert_rel_scalar(loss, tl[0], 1e-5, "softmax_xent loss vs F.cross_entropy");
    assert_close(dl, tdl, n * c, 1e-5, "softmax_xent dlogits vs autograd");
    assert_int_equal(nc, (size_t)tnc[0]);
    assert_true(nc > 0 && nc < n); /* the reference has both kinds */
    for (size_t i = 0; i < n * c; i++) tdl[i] *= 0.25f;
    double loss2 = softmax_xent(logits, labels, n, c, 0.25f, dl, NULL);
    assert_true(loss2 == loss);
    assert_close(dl, tdl, n * c, 1e-5, "softmax_xent dlogits scale 0.25");
    assert_true(softmax_xent(logits, labels, n, c, 1.0f, NULL, NULL) == loss);
    free(logits);
    free(tlab);
    free(tl);
    free(tdl);
    free(tnc);
    free(dl);
}

/* softmax_xent_soft vs F.cross_entropy(logits / tau, probabilities, reduction='sum') and
 * autograd (n 6, c 5, tau 2): loss rel tol 1e-5, dlogits tol 1e-5; softmax_rows vs
 * F.softmax(logits / tau) tol 1e-6; central finite differences of the loss (double sums of
 * float logits, h 1e-2) match dlogits to 1e-4; one-hot targets at tau 1 give softmax_xent's
 * loss, gradient and count. */
static void test_softmax_xent_soft(void **state)
{
    (void)state;
    TORCHREF_NEED();
    const size_t n = 6, c = 5;
    const float tau = 2.0f;
    float *logits = torchref_read("soft_logits", n * c), *t = torchref_read("soft_targets", n * c);
    float *tl = torchref_read("soft_loss", 1), *tdl = torchref_read("soft_dlogits", n * c);
    float *tp = torchref_read("soft_probs", n * c);
    float *dl = alloc_f(n * c), *p = alloc_f(n * c);
    double loss = softmax_xent_soft(logits, t, n, c, tau, 1.0f, dl, NULL);
    assert_rel_scalar(loss, tl[0], 1e-5, "softmax_xent_soft loss vs F.cross_entropy");
    assert_close(dl, tdl, n * c, 1e-5, "softmax_xent_soft dlogits vs autograd");
    softmax_rows(logits, n, c, tau, p);
    assert_close(p, tp, n * c, 1e-6, "softmax_rows vs F.softmax(l / tau)");
    double worst = 0.0;
    for (size_t i = 0; i < n * c; i++) {
        const float h = 1e-2f, keep = logits[i];
        logits[i] = keep + h;
        double up = softmax_xent_soft(logits, t, n, c, tau, 1.0f, NULL, NULL);
        logits[i] = keep - h;
        double down = softmax_xent_soft(logits, t, n, c, tau, 1.0f, NULL, NULL);
        logits[i] = keep;
        double fd = (up - down) / (2.0 * h), err = fabs(fd - dl[i]) / fmax(1.0, fabs(fd));
        worst = err > worst ? err : worst;
    }
    print_message("  %-40s max err %.3g (tol 1e-4)\n", "softmax_xent_soft finite differences", worst);
    assert_true(worst <= 1e-4);
    int32_t labels[6] = {0, 4, 2, 2, 1, 3};
    float *onehot = alloc_f(n * c), *dh = alloc_f(n * c);
    for (size_t i = 0; i < n; i++) onehot[i * c + (size_t)labels[i]] = 1.0f;
    size_t na = 0, nh = 0;
    double ls = softmax_xent_soft(logits, onehot, n, c, 1.0f, 1.0f, dl, &na);
    double lh = softmax_xent(logits, labels, n, c, 1.0f, dh, &nh);
    assert_rel_scalar(ls, lh, 1e-6, "soft one-hot tau 1 vs softmax_xent");
    assert_close(dl, dh, n * c, 1e-6, "soft one-hot tau 1 dlogits vs softmax_xent");
    assert_int_equal(na, nh);
    free(logits), free(t), free(tl), free(tdl), free(tp), free(dl), free(p), free(onehot), free(dh);
}

/* ---- L2 normalisation ------------------------------------------------------------- */

/* l2norm_forward vs F.normalize(z, dim=1) and z.norm(dim=1) (tol 1e-6), l2norm_backward
 * vs autograd for a random upstream dzn (tol 1e-5); n 4, d 5. A zero row gives a zero
 * output, as F.normalize does. */
static void test_l2norm(void **state)
{
    (void)state;
    {
        const float z[3] = {0, 0, 0};
        float zn[3] = {NAN, NAN, NAN}, norm = 0;
        l2norm_forward(z, zn, &norm, 1, 3);
        assert_true(zn[0] == 0.0f && zn[1] == 0.0f && zn[2] == 0.0f && norm > 0.0f);
    }
    TORCHREF_NEED();
    const size_t n = 4, d = 5;
    float *z = torchref_read("l2_z", n * d), *tzn = torchref_read("l2_zn", n * d);
    float *tnorm = torchref_read("l2_norm", n), *dzn = torchref_read("l2_dzn", n * d);
    float *tdz = torchref_read("l2_dz", n * d);
    float *zn = alloc_f(n * d), *norm = alloc_f(n), *dz = alloc_f(n * d);
    l2norm_forward(z, zn, norm, n, d);
    assert_close(zn, tzn, n * d, 1e-6, "l2norm_forward vs F.normalize");
    assert_close(norm, tnorm, n, 1e-6, "l2norm_forward norms vs z.norm");
    l2norm_backward(zn, norm, dzn, dz, n, d);
    assert_close(dz, tdz, n * d, 1e-5, "l2norm_backward vs autograd");
    float *bufs[] = {z, tzn, tnorm, dzn, tdz, zn, norm, dz};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
}

int main(void)
{
    gemm_init(); /* the trainer's BLIS kernels */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ntxent_hand),     cmocka_unit_test(test_ntxent_torch),
        cmocka_unit_test(test_ntxent_split),    cmocka_unit_test(test_ntxent_fd),
        cmocka_unit_test(test_ntxent_accuracy), cmocka_unit_test(test_softmax_xent),
        cmocka_unit_test(test_softmax_xent_soft),
        cmocka_unit_test(test_l2norm),
    };
    return cmocka_run_group_tests_name("loss", tests, torchref_setup, NULL);
}
