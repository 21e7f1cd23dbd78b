/* loss.h: NT-Xent (SimCLR), L2 normalisation, softmax cross-entropy (hard and soft targets). Pure math on
 * arrays the caller gives; no MPI. The distributed NT-Xent is these functions called by
 * each rank on the all-gathered projections for its own anchor rows (see phases.c). */
#ifndef SIMCLR_LOSS_H
#define SIMCLR_LOSS_H

#include <stddef.h>
#include <stdint.h>

/* zn (n, d) = z / max(||z||_2, 1e-12) row-wise, norm (n) the norms used. Overwrites zn,
 * norm. As torch.nn.functional.normalize(z, dim=1). */
void l2norm_forward(const float *z, float *zn, float *norm, size_t n, size_t d);

/* dz (n, d) = (dzn - zn <zn, dzn>) / norm, the backward of l2norm_forward. Overwrites dz. */
void l2norm_backward(const float *zn, const float *norm, const float *dzn, float *dz, size_t n,
                     size_t d);

/* Positive-pair index of the all-gathered SimCLR layout: rank r contributes a block of
 * 2*counts[r] rows, its view-1 projections of its counts[r] images then their view-2
 * projections, blocks in rank order. Row o of a block pairs with o +- counts[r] of the same
 * block. Writes partner (2 * sum(counts)) (overwritten). */
void ntxent_partners(const size_t *counts, int world, int64_t *partner);

/* NT-Xent (Chen et al. 2020, eq. 1) for the anchor rows row0 .. row0+nrows-1 of the
 * L2-normalised projections zn (n, d), all n rows serving as candidates:
 *   l_i = -log( exp(s_{i,p(i)} / tau) / sum_{k != i} exp(s_{i,k} / tau) ),  s = zn zn^T,
 * computed with log-sum-exp. Returns sum_i l_i over those anchors (double).
 * dzn (n, d) ACCUMULATES scale * d(sum_i l_i)/d zn, for all n rows (the gradient reaches
 * the candidates of other ranks too: the caller sums it back to the owners).
 * *ncorrect (if not NULL) gets the count of anchors whose most similar other row is their
 * partner (contrastive accuracy). ws: workspace of nrows * n floats. tau > 0. */
double ntxent_rows(const float *zn, size_t n, size_t d, const int64_t *partner, size_t row0,
                   size_t nrows, float tau, float scale, float *dzn, size_t *ncorrect,
                   float *ws);

/* Softmax cross-entropy on logits (n, c) with integer labels (n) in 0..c-1 (CHECKed).
 * Returns the summed loss (double); dlogits (n, c) is OVERWRITTEN with
 * scale * (softmax - onehot) when not NULL. *ncorrect (if not NULL) gets the count of
 * rows whose argmax is the label. As torch.nn.functional.cross_entropy(reduction='sum'). */
double softmax_xent(const float *logits, const int32_t *labels, size_t n, size_t c, float scale,
                    float *dlogits, size_t *ncorrect);

/* probs (n, c) row-major = softmax(logits / tau) per row (OVERWRITTEN); logits (n, c).
 * tau > 0 (CHECKed). The teacher's soft labels of SimCLR v2 self-training (Chen et al.
 * 2020b, "Big Self-Supervised Models are Strong Semi-Supervised Learners", eq. 2). */
void softmax_rows(const float *logits, size_t n, size_t c, float tau, float *probs);

/* Distillation loss with soft targets (Chen et al. 2020b, eq. 2):
 *   L = sum_i sum_k -t_ik log softmax(l_i / tau)_k,
 * logits l (n, c) of the student, targets t (n, c) (rows of probabilities, typically
 * softmax_rows of the teacher at the same tau), tau > 0 (CHECKed). Returns L (double,
 * summed over rows). dlogits (n, c) is OVERWRITTEN with scale * dL/dl =
 * scale * (softmax(l / tau) * sum_k t_ik - t) / tau when not NULL. *nagree (if not NULL)
 * gets the count of rows whose argmax agrees with the target's argmax. As
 * torch.nn.functional.cross_entropy(l / tau, t, reduction='sum') (PyTorch >= 1.10). With
 * one-hot targets and tau = 1 it equals softmax_xent. */
double softmax_xent_soft(const float *logits, const float *targets, size_t n, size_t c, float tau,
                         float scale, float *dlogits, size_t *nagree);

#endif
