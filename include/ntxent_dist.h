/* ntxent_dist.h: NT-Xent over the global batch of all ranks (SimCLR with all-gathered
 * negatives, Chen et al. 2020, section 2 and eq. 1; the layout of loss.h's
 * ntxent_partners).
 *
 * Each rank owns the projections of its shard of the global batch: 2 * n_local rows (its
 * images' view-1 rows, then their view-2 rows). One step all-gathers the L2-normalised
 * projections (2G rows, rank blocks in rank order), computes l_i for this rank's anchors
 * against all 2G rows, and sums the gradient with respect to every gathered row back to the
 * rank that owns it (reduce-scatter). The loss is L = (1 / 2G) sum over all 2G anchors. */
#ifndef SIMCLR_NTXENT_DIST_H
#define SIMCLR_NTXENT_DIST_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    size_t global, dim, n_local, row0; /* images in the global batch / on this rank; row0 = 2 * first image */
    size_t *fcounts;                   /* (world) floats per rank in the gathered matrix */
    int64_t *partner;                  /* (2 global) positive-pair index */
    float *zall, *dzall, *sim;         /* (2G, D), (2G, D), (2 n_local, 2G) workspaces */
} ntxent_dist;

/* Sets up the layout for a global batch of `global` images sharded by shard_range over
 * `world` ranks, projection dimension dim, and allocates the workspaces (pair with
 * ntxent_dist_free). Collective-free. */
void ntxent_dist_init(ntxent_dist *x, size_t global, size_t dim, int world, int rank);
void ntxent_dist_free(ntxent_dist *x);

/* Collective. zn (2 n_local, dim): this rank's L2-normalised projections. Returns the sum of
 * l_i over THIS rank's anchors (sum over ranks and divide by 2G for L); dzn (2 n_local, dim)
 * is OVERWRITTEN with dL/dzn for this rank's rows (contributions of every rank's anchors
 * summed). *ncorrect gets this rank's count of anchors whose most similar other view is
 * their partner. tau > 0. */
double ntxent_dist_step(ntxent_dist *x, const float *zn, float tau, float *dzn, size_t *ncorrect);

#endif
