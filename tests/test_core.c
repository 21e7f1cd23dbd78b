/* test_core.c: Adam (optim.c), the counter-based RNG and permutation (common.c), the
 * SimCLR views (augment.c) and the data-side helpers shard_range, steps_per_epoch and
 * stratified_holdout (data.c). Checked against:
 *   - torch.optim.Adam (tests/torch_ref.py, 3 steps on 3 parameters) and Adam's first
 *     step worked out by hand;
 *   - properties: determinism per key, ranges, exact permutations / partitions, counts;
 *   - augment_view's degenerate settings, which must reduce to plain scaling by 1/255 or
 *     its mirror image. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "augment.h"
#include "common.h"
#include "data.h"
#include "optim.h"
#include "testutil.h"
#include "torchref.h"

/* ---- Adam ------------------------------------------------------------------------- */

/* 3 steps of adam_update (lr 0.1 passed as the override while cfg.lr is 0.5, betas 0.9 /
 * 0.999, eps 1e-8, weight_decay 0) vs torch.optim.Adam on the same 3 parameters and
 * gradients (the third one's ~1e-8, so that eps added to sqrt(v_hat) matters): parameters
 * after every step, tol 1e-6. First step by hand: m = 0.1 g, v = 0.001 g^2, m_hat = g,
 * v_hat = g^2, so p1 = p0 - 0.1 g / (|g| + 1e-8) (0.0667 for g = 2e-8, not 0.1). */
static void test_adam_torch(void **state)
{
    (void)state;
    TORCHREF_NEED();
    float *p = torchref_read("adam_p0", 3), *g = torchref_read("adam_g", 9);
    float *tp = torchref_read("adam_p", 9);
    float m[3] = {0}, v[3] = {0}, p0[3];
    memcpy(p0, p, sizeof p0);
    const adam_cfg cfg = {.lr = 0.5f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.0f};
    for (int t = 0; t < 3; t++) {
        adam_update(p, g + 3 * t, m, v, 3, &cfg, 0.1f, t + 1);
        char what[64];
        snprintf(what, sizeof what, "Adam step %d vs torch.optim.Adam", t + 1);
        assert_close(p, tp + 3 * t, 3, 1e-6, what);
        if (t == 0) {
            float hand[3], hm[3], hv[3];
            for (int i = 0; i < 3; i++) {
                double gi = g[i];
                hand[i] = (float)(p0[i] - 0.1 * gi / (fabs(gi) + 1e-8));
                hm[i] = (float)(0.1 * gi);
                hv[i] = (float)(0.001 * gi * gi);
            }
            assert_close(p, hand, 3, 1e-6, "Adam step 1 vs hand (p0 - 0.1 sign g)");
            assert_close(m, hm, 3, 1e-6, "Adam step 1 first moment 0.1 g");
            assert_close(v, hv, 3, 1e-6, "Adam step 1 second moment 0.001 g^2");
        }
    }
    free(p);
    free(g);
    free(tp);
}

/* Decoupled weight decay with a zero gradient: only p *= 1 - lr * wd remains
 * (2 * (1 - 0.1 * 0.01) = 1.998), tol 1e-6; moments stay 0. */
static void test_adam_weight_decay(void **state)
{
    (void)state;
    float p[1] = {2.0f}, g[1] = {0.0f}, m[1] = {0}, v[1] = {0};
    const adam_cfg cfg = {.lr = 0.1f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.01f};
    adam_update(p, g, m, v, 1, &cfg, 0.1f, 1);
    print_message("  p after decay %.9g (want 1.998)\n", (double)p[0]);
    assert_true(fabs(p[0] - 1.998) <= 1e-6);
    assert_true(m[0] == 0.0f && v[0] == 0.0f);
}

/* ---- RNG -------------------------------------------------------------------------- */

/* rng_uniform is in [0, 1) (200,000 draws; mean within 0.005 of 0.5), a pure function of
 * (key, counter), and keys that differ in any one rng_key word give different streams. */
static void test_rng(void **state)
{
    (void)state;
    double sum = 0.0;
    float lo = 1.0f, hi = 0.0f;
    const size_t N = 200000;
    for (size_t i = 0; i < N; i++) {
        uint64_t key = rng_key(i % 7, 3, 1, 4);
        float u = rng_uniform(key, i);
        assert_true(u >= 0.0f && u < 1.0f);
        sum += u;
        if (u < lo) lo = u;
        if (u > hi) hi = u;
    }
    print_message("  uniform: mean %.5f min %.3g max %.7f\n", sum / N, (double)lo, (double)hi);
    assert_true(fabs(sum / N - 0.5) < 0.005);
    assert_true(lo < 0.001f && hi > 0.999f);

    const uint64_t k = rng_key(1, 2, 3, 4);
    assert_true(rng_key(1, 2, 3, 4) == k);
    const uint64_t others[4] = {rng_key(0, 2, 3, 4), rng_key(1, 0, 3, 4), rng_key(1, 2, 0, 4),
                                rng_key(1, 2, 3, 0)};
    for (uint64_t i = 0; i < 8; i++) {
        assert_true(rng_uniform(k, i) == rng_uniform(k, i));
        assert_true(rng_u64(k, i) == rng_u64(rng_key(1, 2, 3, 4), i));
        for (int j = 0; j < 4; j++) {
            assert_true(others[j] != k);
            assert_true(rng_u64(others[j], i) != rng_u64(k, i));
        }
        assert_true(rng_u64(k, i) != rng_u64(k, i + 1));
    }
}

/* permute gives a permutation of 0..n-1 (n 0, 1, 2, 3, 1000), the same one for the same
 * key, a different one for another key, is not the identity for n 1000, and draws the 6
 * permutations of 3 about equally often (binomial sd ~29 around 1000; bounds at ~5 sd). */
static void test_permute(void **state)
{
    (void)state;
    const size_t sizes[] = {0, 1, 2, 3, 1000};
    for (size_t s = 0; s < 5; s++) {
        size_t n = sizes[s];
        int64_t *a = xcalloc(n, sizeof *a, "perm"), *b = xcalloc(n, sizeof *b, "perm");
        int64_t *c = xcalloc(n, sizeof *c, "perm");
        uint8_t *seen = xcalloc(n, 1, "seen");
        permute(a, n, rng_key(5, 0, 0, 0));
        permute(b, n, rng_key(5, 0, 0, 0));
        permute(c, n, rng_key(6, 0, 0, 0));
        for (size_t i = 0; i < n; i++) {
            assert_true(a[i] >= 0 && (size_t)a[i] < n);
            assert_false(seen[a[i]]);
            seen[a[i]] = 1;
        }
        if (n) assert_memory_equal(a, b, n * sizeof *a);
        if (n == 3) { /* uniform: each of the 6 permutations of 3 about 1000 times in 6000 keys */
            int count[6] = {0};
            for (uint64_t k = 0; k < 6000; k++) {
                permute(a, 3, rng_key(k, 1, 2, 3));
                count[a[0] * 2 + (a[1] > a[2])]++;
            }
            print_message("  permutations of 3 over 6000 keys: %d %d %d %d %d %d (each 850..1150)\n",
                          count[0], count[1], count[2], count[3], count[4], count[5]);
            for (int i = 0; i < 6; i++) assert_true(count[i] >= 850 && count[i] <= 1150);
        }
        if (n == 1000) {
            assert_memory_not_equal(a, c, n * sizeof *a);
            size_t fixed = 0;
            for (size_t i = 0; i < n; i++) fixed += a[i] == (int64_t)i;
            assert_true(fixed < 20);
        }
        free(a);
        free(b);
        free(c);
        free(seen);
    }
}

/* ---- augment ---------------------------------------------------------------------- */

enum { AH = 12, AW = 10, APLANE = AH * AW };

static void random_image(uint8_t *img)
{
    uint64_t key = rng_key(42, 0, 0, 0);
    for (size_t i = 0; i < 3 * APLANE; i++) img[i] = (uint8_t)(rng_u64(key, i) & 0xff);
    img[0] = 0;
    img[1] = 255;
}

/* Channel-strided output: a batch of 3 CNHW slots, the view written to slot 1. */
static void view_in_slot(const uint8_t *img, const aug_cfg *cfg, uint64_t key, float *batch)
{
    for (size_t i = 0; i < 3 * 3 * APLANE; i++) batch[i] = -7.0f;
    augment_view(img, AH, AW, cfg, key, batch + APLANE, 3 * APLANE);
}

/* Value of channel c, pixel (y, x) of the view in slot 1. */
static float at(const float *batch, int c, int y, int x)
{
    return batch[(size_t)c * 3 * APLANE + APLANE + (size_t)y * AW + x];
}

/* Other slots of the batch are untouched by a view written to slot 1. */
static void assert_other_slots_untouched(const float *batch)
{
    for (int c = 0; c < 3; c++)
        for (int slot = 0; slot < 3; slot += 2)
            for (size_t i = 0; i < APLANE; i++)
                assert_true(batch[(size_t)c * 3 * APLANE + (size_t)slot * APLANE + i] == -7.0f);
}

/* max |view - img/255| over the view in slot 1, mirrored horizontally when `mirror`. */
static double diff_plain(const float *batch, const uint8_t *img, int mirror)
{
    double worst = 0.0;
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < AH; y++)
            for (int x = 0; x < AW; x++) {
                int sx = mirror ? AW - 1 - x : x;
                double want = img[c * APLANE + y * AW + sx] / 255.0f;
                double d = fabs(at(batch, c, y, x) - want);
                if (!(d <= worst)) worst = d;
            }
    return worst;
}

/* cfg NULL: exactly img / 255 (float division) in the channel-strided layout, other slots
 * untouched; any key. */
static void test_augment_plain(void **state)
{
    (void)state;
    uint8_t img[3 * APLANE];
    float batch[9 * APLANE];
    random_image(img);
    view_in_slot(img, NULL, 123, batch);
    assert_other_slots_untouched(batch);
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < AH; y++)
            for (int x = 0; x < AW; x++)
                assert_true(at(batch, c, y, x) == img[c * APLANE + y * AW + x] / 255.0f);
}

/* Full augmentation (min_area 0.3, brightness 0.8, jitter 0.5, flip): the same key gives a
 * bit-identical view, a different key a different one; all outputs in [0, 1] over 20
 * keys; other slots untouched. */
static void test_augment_determinism_range(void **state)
{
    (void)state;
    uint8_t img[3 * APLANE];
    float a[9 * APLANE], b[9 * APLANE];
    random_image(img);
    const aug_cfg cfg = {.min_area = 0.3f, .brightness = 0.8f, .jitter = 0.5f, .flip = 1};
    const uint64_t k1 = augment_key(7, 1, 5, 0), k2 = augment_key(7, 1, 5, 1);
    assert_true(k1 != k2);
    assert_true(augment_key(7, 1, 5, 0) == k1);
    view_in_slot(img, &cfg, k1, a);
    view_in_slot(img, &cfg, k1, b);
    assert_memory_equal(a, b, sizeof a);
    view_in_slot(img, &cfg, k2, b);
    assert_memory_not_equal(a, b, sizeof a);
    assert_other_slots_untouched(b);
    size_t clipped = 0;
    for (uint64_t k = 0; k < 20; k++) {
        view_in_slot(img, &cfg, augment_key(1, 0, k, 0), a);
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < AH; y++)
                for (int x = 0; x < AW; x++) {
                    float v = at(a, c, y, x);
                    assert_true(v >= 0.0f && v <= 1.0f);
                    clipped += v == 0.0f || v == 1.0f;
                }
    }
    print_message("  20 strong views: all in [0, 1], %zu values at a clip bound\n", clipped);
}

/* min_area 1, brightness 0, jitter 0, flip 0: the view equals img/255 for any key (tol
 * 1e-6). With flip 1 only: every view is either img/255 or its horizontal mirror (tol
 * 1e-6), and among keys 0..19 both occur. */
static void test_augment_identity_and_flip(void **state)
{
    (void)state;
    uint8_t img[3 * APLANE];
    float a[9 * APLANE];
    random_image(img);
    const aug_cfg id = {.min_area = 1.0f, .brightness = 0.0f, .jitter = 0.0f, .flip = 0};
    const aug_cfg fl = {.min_area = 1.0f, .brightness = 0.0f, .jitter = 0.0f, .flip = 1};
    double worst = 0.0;
    for (uint64_t k = 0; k < 20; k++) {
        view_in_slot(img, &id, augment_key(3, 0, k, 0), a);
        double d = diff_plain(a, img, 0);
        if (d > worst) worst = d;
    }
    print_message("  identity settings vs img/255: max diff %.3g (tol 1e-6)\n", worst);
    assert_true(worst <= 1e-6);
    int flipped = 0, plain = 0;
    double worst_f = 0.0;
    for (uint64_t k = 0; k < 20; k++) {
        view_in_slot(img, &fl, augment_key(3, 0, k, 0), a);
        double dp = diff_plain(a, img, 0), dm = diff_plain(a, img, 1);
        if (dm <= 1e-6) {
            flipped++;
            if (dm > worst_f) worst_f = dm;
        } else if (dp <= 1e-6) {
            plain++;
            if (dp > worst_f) worst_f = dp;
        } else {
            fail_msg("key %u: flip-only view is neither the image (%.3g) nor its mirror (%.3g)",
                     (unsigned)k, dp, dm);
        }
    }
    print_message("  flip only, 20 keys: %d mirrored, %d plain, max diff %.3g (tol 1e-6)\n", flipped,
                  plain, worst_f);
    assert_true(flipped >= 1 && plain >= 1);
}

/* grayscale 1: every view has three equal channels, each 0.2989 R + 0.587 G + 0.114 B of
 * the same view with grayscale 0 (tol 1e-6); grayscale 0.3 over 400 keys: the grey share is
 * within 0.3 +- 0.075 (5.8 binomial standard deviations) and grey views are exactly the
 * keys whose draw 15 is below 0.3, the other views bit-identical to grayscale 0. */
static void test_augment_grayscale(void **state)
{
    (void)state;
    uint8_t img[3 * APLANE];
    float col[9 * APLANE], g[9 * APLANE];
    random_image(img);
    aug_cfg c0 = {.min_area = 0.3f, .brightness = 0.8f, .jitter = 0.5f, .flip = 1, .grayscale = 0.0f};
    aug_cfg c1 = c0, cp = c0;
    c1.grayscale = 1.0f, cp.grayscale = 0.3f;
    double worst = 0.0;
    for (uint64_t k = 0; k < 10; k++) {
        view_in_slot(img, &c0, augment_key(5, 0, k, 0), col);
        view_in_slot(img, &c1, augment_key(5, 0, k, 0), g);
        for (int y = 0; y < AH; y++)
            for (int x = 0; x < AW; x++) {
                double want = 0.2989 * at(col, 0, y, x) + 0.587 * at(col, 1, y, x) + 0.114 * at(col, 2, y, x);
                for (int c = 0; c < 3; c++) worst = fmax(worst, fabs(at(g, c, y, x) - want));
                assert_true(at(g, 0, y, x) == at(g, 1, y, x) && at(g, 1, y, x) == at(g, 2, y, x));
            }
    }
    print_message("  grayscale 1 vs luma of the colour view: max diff %.3g (tol 1e-6)\n", worst);
    assert_true(worst <= 1e-6);
    int grey = 0;
    for (uint64_t k = 0; k < 400; k++) {
        const uint64_t key = augment_key(5, 1, k, 1);
        view_in_slot(img, &cp, key, g);
        view_in_slot(img, &c0, key, col);
        const int want_grey = rng_uniform(key, 15) < 0.3f;
        if (want_grey) {
            grey++;
            for (int y = 0; y < AH; y++)
                for (int x = 0; x < AW; x++) assert_true(at(g, 0, y, x) == at(g, 2, y, x));
        } else {
            assert_memory_equal(g, col, sizeof g);
        }
    }
    print_message("  grayscale 0.3: %d of 400 views grey (want 120 +- 30)\n", grey);
    assert_true(grey >= 90 && grey <= 150);
}

/* gaussian_blur_plane vs torchvision's blur written in PyTorch (reflect pad + conv2d with
 * the outer-product kernel): 3 planes of 12 x 10, k 5, sigma 1.3, tol 1e-5; a constant
 * plane stays constant (normalised kernel); the kernel sizes of 96 and small images. */
static void test_blur_torch(void **state)
{
    (void)state;
    assert_int_equal(blur_kernel_size(96), 9);
    assert_int_equal(blur_kernel_size(64), 7);
    assert_int_equal(blur_kernel_size(12), 3);
    assert_int_equal(blur_kernel_size(2), 3);
    TORCHREF_NEED();
    float *x = torchref_read("blur_x", 3 * 120), *ty = torchref_read("blur_y", 3 * 120);
    float tmp[64], flat[120];
    for (int c = 0; c < 3; c++) gaussian_blur_plane(x + c * 120, 12, 10, 5, 1.3f, tmp);
    assert_close(x, ty, 3 * 120, 1e-5, "gaussian_blur_plane vs torch");
    for (int i = 0; i < 120; i++) flat[i] = 0.25f;
    gaussian_blur_plane(flat, 12, 10, 5, 0.7f, tmp);
    for (int i = 0; i < 120; i++) assert_true(fabsf(flat[i] - 0.25f) <= 1e-6f);
    free(x);
    free(ty);
}

/* blur 1: every view is the blur = 0 view blurred with kernel 3 (12 x 10 image) and the
 * sigma of draw 17; blur 0.4 over 400 keys: the blurred share is within 0.4 +- 0.1 and the
 * other views are bit-identical to blur 0. */
static void test_augment_blur(void **state)
{
    (void)state;
    uint8_t img[3 * APLANE];
    float plain[9 * APLANE], b[9 * APLANE], want[3 * APLANE], tmp[64];
    random_image(img);
    aug_cfg c0 = {.min_area = 0.3f, .brightness = 0.8f, .jitter = 0.5f, .flip = 1};
    aug_cfg c1 = c0, cp = c0;
    c1.blur = 1.0f, cp.blur = 0.4f;
    double worst = 0.0;
    for (uint64_t k = 0; k < 10; k++) {
        const uint64_t key = augment_key(9, 0, k, 0);
        view_in_slot(img, &c0, key, plain);
        view_in_slot(img, &c1, key, b);
        for (int c = 0; c < 3; c++)
            for (int i = 0; i < APLANE; i++) want[c * APLANE + i] = at(plain, c, i / AW, i % AW);
        const float sigma = 0.1f + 1.9f * rng_uniform(key, 17);
        for (int c = 0; c < 3; c++) gaussian_blur_plane(want + c * APLANE, AH, AW, 3, sigma, tmp);
        for (int c = 0; c < 3; c++)
            for (int i = 0; i < APLANE; i++) worst = fmax(worst, fabs(at(b, c, i / AW, i % AW) - want[c * APLANE + i]));
    }
    print_message("  blur 1 vs the plain view blurred: max diff %.3g (tol 1e-6)\n", worst);
    assert_true(worst <= 1e-6);
    int blurred = 0;
    for (uint64_t k = 0; k < 400; k++) {
        const uint64_t key = augment_key(9, 1, k, 1);
        view_in_slot(img, &cp, key, b);
        view_in_slot(img, &c0, key, plain);
        if (rng_uniform(key, 16) < 0.4f) {
            blurred++;
            assert_memory_not_equal(b, plain, sizeof b);
        } else {
            assert_memory_equal(b, plain, sizeof b);
        }
    }
    print_message("  blur 0.4: %d of 400 views blurred (want 160 +- 40)\n", blurred);
    assert_true(blurred >= 120 && blurred <= 200);
}

/* ---- sharding, steps, hold-out ---------------------------------------------------- */

/* shard_range covers [0, G) exactly once, in rank order, with counts differing by at most
 * one, for world 1..7 and G in {1, 5, 64, 500}; steps_per_epoch drops the last partial
 * batch: (4000, 256) -> 15, (255, 256) -> 0, (512, 256) -> 2. */
static void test_shard_steps(void **state)
{
    (void)state;
    const size_t globals[] = {1, 5, 64, 500};
    for (size_t gi = 0; gi < 4; gi++) {
        size_t G = globals[gi];
        uint8_t *hit = xcalloc(G, 1, "hits");
        for (int world = 1; world <= 7; world++) {
            memset(hit, 0, G);
            size_t next = 0, cmin = SIZE_MAX, cmax = 0;
            for (int r = 0; r < world; r++) {
                size_t b = 99999, c = 99999;
                shard_range(G, world, r, &b, &c);
                assert_int_equal(b, next);
                for (size_t i = b; i < b + c; i++) {
                    assert_true(i < G);
                    assert_false(hit[i]);
                    hit[i] = 1;
                }
                next = b + c;
                if (c < cmin) cmin = c;
                if (c > cmax) cmax = c;
            }
            assert_int_equal(next, G);
            for (size_t i = 0; i < G; i++) assert_true(hit[i]);
            assert_true(cmax - cmin <= 1);
        }
        free(hit);
    }
    assert_int_equal(steps_per_epoch(4000, 256), 15);
    assert_int_equal(steps_per_epoch(255, 256), 0);
    assert_int_equal(steps_per_epoch(512, 256), 2);
}

/* stratified_holdout on 60 labels (classes 0, 1, 2 with 20, 10, 30 images, interleaved):
 * per_class 4 -> returns 0, exactly 4 held per class; the same key gives the same mask,
 * another key another mask; per_class 9 -> 0 (class 1 has 10 >= 9 + 1); per_class 10 ->
 * returns 2 (class 1 is the first with fewer than per_class + 1 images). */
static void test_stratified_holdout(void **state)
{
    (void)state;
    enum { N = 60 };
    int32_t labels[N];
    size_t have[3] = {0, 0, 0};
    const size_t want[3] = {20, 10, 30};
    for (size_t i = 0, c = 0; i < N; c = (c + 1) % 3) /* round robin until a class is full */
        if (have[c] < want[c]) labels[i++] = (int32_t)c, have[c]++;
    uint8_t held[N], held2[N], held3[N];
    assert_int_equal(stratified_holdout(labels, N, 3, 4, rng_key(9, 0, 0, 0), held), 0);
    size_t per[3] = {0, 0, 0};
    for (size_t i = 0; i < N; i++) {
        assert_true(held[i] <= 1);
        per[labels[i]] += held[i];
    }
    print_message("  held per class: %zu %zu %zu (want 4 each)\n", per[0], per[1], per[2]);
    for (int c = 0; c < 3; c++) assert_int_equal(per[c], 4);
    memset(held2, 7, N);
    assert_int_equal(stratified_holdout(labels, N, 3, 4, rng_key(9, 0, 0, 0), held2), 0);
    assert_memory_equal(held, held2, N);
    assert_int_equal(stratified_holdout(labels, N, 3, 4, rng_key(10, 0, 0, 0), held3), 0);
    assert_memory_not_equal(held, held3, N);
    assert_int_equal(stratified_holdout(labels, N, 3, 9, rng_key(9, 0, 0, 0), held2), 0);
    assert_int_equal(stratified_holdout(labels, N, 3, 10, rng_key(9, 0, 0, 0), held2), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_adam_torch),
        cmocka_unit_test(test_adam_weight_decay),
        cmocka_unit_test(test_rng),
        cmocka_unit_test(test_permute),
        cmocka_unit_test(test_augment_plain),
        cmocka_unit_test(test_augment_determinism_range),
        cmocka_unit_test(test_augment_identity_and_flip),
        cmocka_unit_test(test_augment_grayscale),
        cmocka_unit_test(test_blur_torch),
        cmocka_unit_test(test_augment_blur),
        cmocka_unit_test(test_shard_steps),
        cmocka_unit_test(test_stratified_holdout),
    };
    return cmocka_run_group_tests_name("core", tests, torchref_setup, NULL);
}
