/* test_dist.c: the distributed NT-Xent (ntxent_dist: all-gather, per-rank anchors,
 * reduce-scatter) against a one-process ntxent_rows over the same global batch, and by
 * central finite differences THROUGH the all-gather; plus the chunked collectives.
 * Run under mpirun (tests/test_mpi.sh: -np 1, 2, 3; and build/test_dist_chunk, built with
 * DIST_CHUNK=7 so that every collective takes its chunked path). Only rank 0 prints.
 *
 * It rules out the two classic faults of distributed SimCLR: positive pairs indexed in the
 * local instead of the gathered layout, and gathered-projection gradients not summed back
 * to their owners. */
#include "testutil.h"

#include <mpi.h>
#include <string.h>

#include "data.h"
#include "dist.h"
#include "loss.h"
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
    dist_init(&argc, &argv);
    if (dist_rank() != 0) { /* one report: rank 0's */
        if (!freopen("/dev/null", "w", stdout) || !freopen("/dev/null", "w", stderr)) return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matches_one_process),
        cmocka_unit_test(test_finite_differences),
        cmocka_unit_test(test_collectives),
    };
    int failed = cmocka_run_group_tests_name("dist", tests, NULL, NULL);
    int all = failed;
    MPI_Allreduce(MPI_IN_PLACE, &all, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    dist_finalize();
    return all ? 1 : 0;
}
