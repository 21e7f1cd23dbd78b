/* optim.h: Adam with bias correction (Kingma & Ba 2015, Algorithm 1, epsilon added to
 * sqrt(v_hat) as torch.optim.Adam does), with optional decoupled weight decay (AdamW,
 * Loshchilov & Hutter 2019; 0 disables it). */
#ifndef SIMCLR_OPTIM_H
#define SIMCLR_OPTIM_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    float lr, beta1, beta2, eps, weight_decay;
} adam_cfg;

/* One Adam update of n parameters p (updated in place) from gradients g; first and
 * second moments m, v (n each) are updated in place. t is the 1-based step number of this
 * update (bias correction 1 - beta^t). `lr` overrides cfg->lr (for schedules). */
void adam_update(float *p, const float *g, float *m, float *v, size_t n, const adam_cfg *cfg,
                 float lr, int64_t t);

/* SGD with heavy-ball momentum (as torch.optim.SGD, dampening 0): buf = momentum * buf + g
 * (+ weight_decay * p), p -= lr * buf. buf (n) is updated in place (the Adam m buffer is
 * reused for it). */
void sgd_update(float *p, const float *g, float *buf, size_t n, float lr, float momentum,
                float weight_decay);

#endif
