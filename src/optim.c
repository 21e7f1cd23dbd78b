/* optim.c: Adam / AdamW update. */
#include "optim.h"

#include <math.h>

void adam_update(float *p, const float *g, float *m, float *v, size_t n, const adam_cfg *cfg,
                 float lr, int64_t t)
{
    const float b1 = cfg->beta1, b2 = cfg->beta2;
    const float c1 = 1.0f - powf(b1, (float)t), c2 = 1.0f - powf(b2, (float)t);
    const float decay = 1.0f - lr * cfg->weight_decay;
    for (size_t i = 0; i < n; i++) {
        m[i] = b1 * m[i] + (1.0f - b1) * g[i];
        v[i] = b2 * v[i] + (1.0f - b2) * g[i] * g[i];
        float mhat = m[i] / c1, vhat = v[i] / c2;
        p[i] = p[i] * decay - lr * mhat / (sqrtf(vhat) + cfg->eps);
    }
}

void sgd_update(float *p, const float *g, float *buf, size_t n, float lr, float momentum,
                float weight_decay)
{
    for (size_t i = 0; i < n; i++) {
        buf[i] = momentum * buf[i] + g[i] + weight_decay * p[i];
        p[i] -= lr * buf[i];
    }
}
