/* augment.c: SimCLR views (flip, translate + zoom crop, colour affine, grayscale, blur), counter-based. */
#include "augment.h"

#include <math.h>

#include "common.h"

uint64_t augment_key(uint64_t seed, uint64_t epoch, uint64_t image_index, uint64_t view)
{
    return rng_key(seed, epoch, image_index, view);
}

/* Reflect coordinate into [0, n-1] (keras fill_mode "reflect": d c b a | a b c d | d c b a). */
static float reflect(float v, int n)
{
    float period = 2.0f * (float)n;
    v = fmodf(v + 0.5f, period);
    if (v < 0.0f) v += period;
    if (v >= (float)n) v = period - v;
    v -= 0.5f;
    if (v < 0.0f) v = 0.0f;
    if (v > (float)(n - 1)) v = (float)(n - 1);
    return v;
}

int blur_kernel_size(int side)
{
    int k = side / 10;
    if (k % 2 == 0) k++;
    if (k < 3) k = 3;
    if (k > 2 * side - 1) k = 2 * side - 1;
    return k;
}

/* Reflected index in [0, n) for |out-of-range| < n (PyTorch "reflect": the edge not repeated). */
static int reflect_index(int j, int n)
{
    if (j < 0) return -j;
    if (j >= n) return 2 * (n - 1) - j;
    return j;
}

void gaussian_blur_plane(float *p, int h, int w, int k, float sigma, float *tmp)
{
    const int r = (k - 1) / 2;
    CHECK(k % 2 == 1 && k <= 2 * AUG_MAX_SIDE && r < h && r < w && sigma > 0.0f);
    float wt[2 * AUG_MAX_SIDE];
    double g[2 * AUG_MAX_SIDE], norm = 0.0;
    for (int i = -r; i <= r; i++) norm += g[i + r] = exp(-0.5 * ((double)i / sigma) * ((double)i / sigma));
    for (int i = 0; i < k; i++) wt[i] = (float)(g[i] / norm);
    for (int y = 0; y < h; y++) { /* rows: tmp = the padded row */
        float *row = p + (size_t)y * w;
        for (int j = -r; j < w + r; j++) tmp[j + r] = row[reflect_index(j, w)];
        for (int x = 0; x < w; x++) {
            float acc = 0.0f;
            for (int i = 0; i < k; i++) acc += wt[i] * tmp[x + i];
            row[x] = acc;
        }
    }
    for (int x = 0; x < w; x++) { /* columns */
        for (int j = -r; j < h + r; j++) tmp[j + r] = p[(size_t)reflect_index(j, h) * w + x];
        for (int y = 0; y < h; y++) {
            float acc = 0.0f;
            for (int i = 0; i < k; i++) acc += wt[i] * tmp[y + i];
            p[(size_t)y * w + x] = acc;
        }
    }
}

void augment_view(const uint8_t *img, int h, int w, const aug_cfg *cfg, uint64_t key, float *dst,
                  size_t cstride)
{
    const size_t plane = (size_t)h * w;
    if (!cfg) {
        for (int c = 0; c < 3; c++)
            for (size_t i = 0; i < plane; i++) dst[c * cstride + i] = img[c * plane + i] / 255.0f;
        return;
    }
    /* draws, in a fixed order of counter values */
    const float zoom = 1.0f - sqrtf(cfg->min_area);
    const int flip = cfg->flip && rng_uniform(key, 0) < 0.5f;
    const float sh = 1.0f - zoom * rng_uniform(key, 1), sw = 1.0f - zoom * rng_uniform(key, 2);
    const float ty = (2.0f * rng_uniform(key, 3) - 1.0f) * 0.5f * zoom * (float)h;
    const float tx = (2.0f * rng_uniform(key, 4) - 1.0f) * 0.5f * zoom * (float)w;
    const float bright = 1.0f + (2.0f * rng_uniform(key, 5) - 1.0f) * cfg->brightness;
    float m[3][3]; /* out[j] = sum_i in[i] * m[i][j] */
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            m[i][j] = (i == j ? bright : 0.0f) +
                      (2.0f * rng_uniform(key, 6 + (uint64_t)(3 * i + j)) - 1.0f) * cfg->jitter;
    const int grey = cfg->grayscale > 0.0f && rng_uniform(key, 15) < cfg->grayscale;
    const float cy = 0.5f * (float)(h - 1), cx = 0.5f * (float)(w - 1);
    for (int oy = 0; oy < h; oy++) {
        float sy = reflect(cy + ((float)oy - cy) * sh - ty, h);
        int y0 = (int)sy, y1 = y0 + 1 < h ? y0 + 1 : y0;
        float fy = sy - (float)y0;
        for (int ox = 0; ox < w; ox++) {
            float px = flip ? (float)(w - 1 - ox) : (float)ox;
            float sx = reflect(cx + (px - cx) * sw - tx, w);
            int x0 = (int)sx, x1 = x0 + 1 < w ? x0 + 1 : x0;
            float fx = sx - (float)x0;
            float rgb[3];
            for (int c = 0; c < 3; c++) {
                const uint8_t *p = img + c * plane;
                float top = p[y0 * w + x0] + fx * (float)(p[y0 * w + x1] - p[y0 * w + x0]);
                float bot = p[y1 * w + x0] + fx * (float)(p[y1 * w + x1] - p[y1 * w + x0]);
                rgb[c] = (top + fy * (bot - top)) / 255.0f;
            }
            size_t o = (size_t)oy * w + ox;
            float out[3];
            for (int j = 0; j < 3; j++) {
                float v = rgb[0] * m[0][j] + rgb[1] * m[1][j] + rgb[2] * m[2][j];
                out[j] = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
            }
            if (grey) out[0] = out[1] = out[2] = 0.2989f * out[0] + 0.587f * out[1] + 0.114f * out[2];
            for (int j = 0; j < 3; j++) dst[j * cstride + o] = out[j];
        }
    }
    if (cfg->blur > 0.0f && rng_uniform(key, 16) < cfg->blur) {
        const float sigma = 0.1f + 1.9f * rng_uniform(key, 17);
        const int k = blur_kernel_size(h < w ? h : w);
        CHECK(h <= AUG_MAX_SIDE && w <= AUG_MAX_SIDE);
        float tmp[3 * AUG_MAX_SIDE];
        for (int c = 0; c < 3; c++) gaussian_blur_plane(dst + c * cstride, h, w, k, sigma, tmp);
    }
}
