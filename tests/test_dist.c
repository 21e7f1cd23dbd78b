/* test_dist.c: the distributed NT-Xent (ntxent_dist: all-gather, per-rank anchors,
 * reduce-scatter) against a one-process ntxent_rows over the same global batch, and by
 * central finite differences THROUGH the all-gather; plus the chunked collectives.
 * Run under mpirun (tests/test_mpi.sh: -np 1, 2, 3; and build/test_dist_chunk, built with
 * DIST_CHUNK=7 so that every collective takes its chunked path). Only rank 0 prints.
 *
 * It rules out the two classic faults of distributed SimCLR: positive pairs indexed in the
 * local instead of the gathered layout, and gathered-projection gradients not summed back
 * to their owners. test_model_step then runs a whole pretraining step (encoder, with and
 * without BatchNorm, projection head, NT-Xent, backward, gradient allreduce) sharded over
 * the ranks against the same step in one process. */
#include "testutil.h"

#include <mpi.h>
#include <string.h>

#include "data.h"
#include "dist.h"
#include "gemm.h"
#include "loss.h"
#include "model.h"
#include "ntxent_dist.h"

enum { G = 7, D = 5 }; /* 7 images: uneven shards on 2 and 3 ranks */
static const float TAU = 0.2f;

/* The global normalised projections in the gathered layout (rank blocks), same on all ranks. */
static void global_zn(float *zn, int world)
{
    float z[2 * G * D], norm[2 * G];
    fill_uniform(z, 2 * G * D, 99);
    (void)world;
    l2norm_forward(z, zn, norm, 2 * G, D);
}

/* Distributed loss L = (1/2G) sum l_i and this rank's dL/dzn rows. */
static double dist_loss(ntxent_dist *x, const float *zn_all, float *dzn, size_t *correct)
{
    double l = ntxent_dist_step(x, zn_all + x->row0 * D, TAU, dzn, correct);
    double st[2] = {l, (double)*correct};
    dist_allreduce_sum_d(st, 2);
    *correct = (size_t)st[1];
    return st[0] / (2.0 * G);
}

static void test_matches_one_process(void **state)
{
    (void)state;
    int world = dist_world(), rank = dist_rank();
    ntxent_dist x;
    ntxent_dist_init(&x, G, D, world, rank);
    float zn[2 * G * D], dref[2 * G * D] = {0}, ws[2 * G * 2 * G], dzn[2 * G * D];
    global_zn(zn, world);
    size_t c_ref = 0, c = 0;
    double ref = ntxent_rows(zn, 2 * G, D, x.partner, 0, 2 * G, TAU, 1.0f / (2 * G), dref, &c_ref, ws) / (2.0 * G);
    double got = dist_loss(&x, zn, dzn, &c);
    double rel = fabs(got - ref) / fabs(ref);
    print_message("  world %d: loss %.9f vs one process %.9f (rel %.2g, tol 1e-6); correct %zu vs %zu\n", world, got,
                  ref, rel, c, c_ref);
    assert_true(rel <= 1e-6);
    assert_int_equal(c, c_ref);
    assert_close(dzn, dref + x.row0 * D, 2 * x.n_local * D, 1e-6, "dL/dzn rows of this rank");
    ntxent_dist_free(&x);
}

static void test_finite_differences(void **state)
{
    (void)state;
    int world = dist_world(), rank = dist_rank();
    ntxent_dist x;
    ntxent_dist_init(&x, G, D, world, rank);
    float zn[2 * G * D], dzn[2 * G * D], probe[2 * G * D];
    global_zn(zn, world);
    size_t c;
    dist_loss(&x, zn, dzn, &c);
    /* gather every rank's analytic gradient rows into the global layout */
    dist_allgatherv_f(dzn, probe, x.fcounts);
    const float eps = 1e-2f;
    double worst = 0.0;
    for (size_t i = 0; i < 2 * G * D; i += 3) { /* every third coordinate, all ranks' rows */
        float keep = zn[i];
        zn[i] = keep + eps;
        double lp = dist_loss(&x, zn, dzn, &c);
        zn[i] = keep - eps;
        double lm = dist_loss(&x, zn, dzn, &c);
        zn[i] = keep;
        double fd = (lp - lm) / (2.0 * eps);
        double err = fabs(fd - probe[i]) / fmax(1e-3, fabs(fd) + fabs(probe[i]));
        if (err > worst) worst = err;
    }
    print_message("  world %d: finite differences through the all-gather: max rel err %.3g (tol 2e-2)\n", world, worst);
    assert_true(worst <= 2e-2);
    (void)rank;
    ntxent_dist_free(&x);
}

static void bn_mpi_sum(double *buf, size_t n, void *ctx)
{
    (void)ctx;
    dist_allreduce_sum_d(buf, n);
}

/* One pretraining step of a tiny model (17 px, 2 conv layers of width 4, embed 5, proj 6)
 * on 2G = 14 views in the gathered layout: each rank forwards its 2 n_local rows (BatchNorm
 * statistics summed over ranks through the model's reduce hook), takes the distributed
 * NT-Xent and backward, and allreduces the gradients; every rank also runs the whole batch
 * in one process (no hook). Loss 1e-6, every gradient and the running statistics 1e-5. */
static void model_step_case(int batchnorm)
{
    const int world = dist_world(), rank = dist_rank();
    const model_cfg cfg = {.image_size = 17, .conv_layers = 2, .width = 4, .kernel = 3, .embed_dim = 5,
                           .proj_dim = 6, .num_classes = 3, .batchnorm = batchnorm};
    const size_t S2 = 17 * 17, V = 2 * G, P = 6;
    ntxent_dist x;
    ntxent_dist_init(&x, G, P, world, rank);
    const size_t nl = 2 * x.n_local;
    model one, part;
    model_init(&one, &cfg, V, 0);
    model_init(&part, &cfg, V, 0);
    model_init_weights(&one, -1, 5);
    model_init_weights(&part, -1, 5);
    part.reduce = (bn_reduce){bn_mpi_sum, NULL};
    float img[2 * G * 3 * 17 * 17];
    fill_uniform(img, V * 3 * S2, 123); /* view v, channel c: img[(v * 3 + c) * S2 ...] */
    for (size_t v = 0; v < V; v++)
        for (size_t c = 0; c < 3; c++) {
            memcpy(one.act[0] + (c * V + v) * S2, img + (v * 3 + c) * S2, S2 * sizeof(float));
            if (v >= x.row0 && v < x.row0 + nl)
                memcpy(part.act[0] + (c * nl + v - x.row0) * S2, img + (v * 3 + c) * S2, S2 * sizeof(float));
        }
    float zn[2 * G * 6], norm[2 * G], dzn[2 * G * 6] = {0}, ws[2 * G * 2 * G];
    /* one process, the whole batch */
    encoder_forward(&one, V, 1);
    head_forward(&one, V);
    l2norm_forward(one.proj, zn, norm, V, P);
    double ref = ntxent_rows(zn, V, P, x.partner, 0, V, TAU, 1.0f / (float)V, dzn, NULL, ws) / (double)V;
    l2norm_backward(zn, norm, dzn, one.dproj, V, P);
    model_zero_grad(&one, GROUP_ENCODER, NGROUPS);
    head_backward(&one, V);
    encoder_backward(&one, V);
    /* sharded */
    encoder_forward(&part, nl, 1);
    head_forward(&part, nl);
    l2norm_forward(part.proj, zn, norm, nl, P);
    size_t c;
    double got = ntxent_dist_step(&x, zn, TAU, dzn, &c);
    dist_allreduce_sum_d(&got, 1);
    got /= (double)V;
    l2norm_backward(zn, norm, dzn, part.dproj, nl, P);
    model_zero_grad(&part, GROUP_ENCODER, NGROUPS);
    head_backward(&part, nl);
    encoder_backward(&part, nl);
    dist_allreduce_sum_f(part.grads, part.nparams);
    double rel = fabs(got - ref) / fabs(ref);
    print_message("  world %d, batchnorm %d: step loss %.9f vs one process %.9f (rel %.2g, tol 1e-6)\n", world,
                  batchnorm, got, ref, rel);
    assert_true(rel <= 1e-6);
    double worst = 0.0;
    for (int t = 0; t < one.ntensors; t++) {
        const param_tensor *pt = &one.tensor[t];
        double d = max_rel_diff(part.grads + pt->offset, one.grads + pt->offset, pt->size);
        if (!(d <= worst)) worst = d;
    }
    print_message("  world %d, batchnorm %d: all %d gradients after the allreduce, max rel diff %.3g (tol 1e-5)\n",
                  world, batchnorm, one.ntensors, worst);
    assert_true(worst <= 1e-5);
    if (batchnorm)
        assert_close(part.buffers, one.buffers, one.nbuffer_floats, 1e-5, "BatchNorm running statistics");
    model_free(&one);
    model_free(&part);
    ntxent_dist_free(&x);
}

static void test_model_step(void **state)
{
    (void)state;
    model_step_case(0);
    model_step_case(1);
}

static void test_collectives(void **state)
{
    (void)state;
    int world = dist_world(), rank = dist_rank();
    enum { N = 100 };
    float a[N];
    double d[N];
    int64_t q[N];
    for (int i = 0; i < N; i++) a[i] = (float)(i + rank), d[i] = i * 0.5 + rank, q[i] = i + rank;
    dist_allreduce_sum_f(a, N);
    dist_allreduce_sum_d(d, N);
    dist_allreduce_sum_i64(q, N);
    double rsum = world * (world - 1) / 2.0;
    for (int i = 0; i < N; i++) {
        assert_true(a[i] == (float)(world * i + rsum));
        assert_true(d[i] == world * i * 0.5 + rsum);
        assert_true(q[i] == (int64_t)(world * i + rsum));
    }
    char buf[N];
    for (int i = 0; i < N; i++) buf[i] = rank == 0 ? (char)i : 0;
    dist_bcast(buf, N, 0);
    for (int i = 0; i < N; i++) assert_int_equal(buf[i], i);
    print_message("  world %d: allreduce/bcast of %d elements with chunk limit %zu\n", world, N, dist_chunk_limit());
}

int main(int argc, char **argv)
{
    gemm_init(); /* the trainer's BLIS kernels, before MPI_Init */
    dist_init(&argc, &argv);
    if (dist_rank() != 0) { /* one report: rank 0's */
        if (!freopen("/dev/null", "w", stdout) || !freopen("/dev/null", "w", stderr)) return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matches_one_process),
        cmocka_unit_test(test_finite_differences),
        cmocka_unit_test(test_model_step),
        cmocka_unit_test(test_collectives),
    };
    int failed = cmocka_run_group_tests_name("dist", tests, NULL, NULL);
    int all = failed;
    MPI_Allreduce(MPI_IN_PLACE, &all, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    dist_finalize();
    return all ? 1 : 0;
}
