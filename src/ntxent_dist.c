/* ntxent_dist.c: NT-Xent through all-gather and reduce-scatter. */
#include "ntxent_dist.h"

#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "data.h"
#include "dist.h"
#include "loss.h"

void ntxent_dist_init(ntxent_dist *x, size_t global, size_t dim, int world, int rank)
{
    memset(x, 0, sizeof *x);
    x->global = global;
    x->dim = dim;
    size_t *counts = xcalloc((size_t)world, sizeof *counts, "counts");
    x->fcounts = xcalloc((size_t)world, sizeof *x->fcounts, "counts");
    for (int q = 0; q < world; q++) {
        size_t b;
        shard_range(global, world, q, &b, &counts[q]);
        x->fcounts[q] = 2 * counts[q] * dim;
        if (q == rank) x->row0 = 2 * b, x->n_local = counts[q];
    }
    x->partner = xcalloc(2 * global, sizeof *x->partner, "partners");
    ntxent_partners(counts, world, x->partner);
    free(counts);
    x->zall = xcalloc(2 * global * dim, sizeof(float), "all-gathered projections");
    x->dzall = xcalloc(2 * global * dim, sizeof(float), "gathered projection gradients");
    x->sim = xcalloc(2 * x->n_local * 2 * global, sizeof(float), "similarities");
}

void ntxent_dist_free(ntxent_dist *x)
{
    free(x->fcounts);
    free(x->partner);
    free(x->zall);
    free(x->dzall);
    free(x->sim);
    memset(x, 0, sizeof *x);
}

double ntxent_dist_step(ntxent_dist *x, const float *zn, float tau, float *dzn, size_t *ncorrect)
{
    const size_t n2 = 2 * x->global, D = x->dim;
    dist_allgatherv_f(zn, x->zall, x->fcounts);
    memset(x->dzall, 0, n2 * D * sizeof(float));
    double loss = ntxent_rows(x->zall, n2, D, x->partner, x->row0, 2 * x->n_local, tau, 1.0f / (float)n2,
                              x->dzall, ncorrect, x->sim);
    dist_reduce_scatter_f(x->dzall, dzn, x->fcounts);
    return loss;
}
