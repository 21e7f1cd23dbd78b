/* gemm_bound.c: the GEMM-only bound of one training step of simclr-mpi.
 *
 * Replays exactly the gemm() calls one step of build/simclr performs, with the shapes,
 * strides, chunking (im2col workspace) and buffers of the real model (model_init), and
 * nothing else: no im2col/col2im, bias, ReLU, loss pointwise work, Adam, communication or
 * data loading. The time of that replay is a lower bound on the step time of this code
 * with this BLAS on these threads; images / that time is "gemm_bound_images_per_s".
 * Also times one large square sgemm (sgemm_peak_gflops) on the same threads.
 *
 * Modes (per rank; images = this rank's shard of the global batch):
 *   pretrain: 2*images views through encoder + projection head, NT-Xent similarity GEMMs
 *             against 2*global_images all-gathered views, backward of all of it
 *             (src/phases.c pretrain(), src/model.c, src/layers.c, src/loss.c)
 *   finetune: images through encoder + classifier, backward of both (classify())
 *   eval:     images through encoder + classifier, forward only (evaluate())
 *
 * usage: gemm_bound [--mode pretrain|finetune|eval] [--images N] [--global-images G]
 *                   [--threads T] [--reps R] [--sgemm-n S] [--workspace-mb MB]
 *                   [--image-size 96] [--conv-layers 4] [--width 128] [--kernel 3]
 *                   [--embed 128] [--proj 128] [--classes 10]
 * Under mpirun (one process per rank, as build/simclr runs) the ranks start every timed
 * repetition together (MPI_Barrier) and a repetition lasts as long as its slowest rank
 * (MPI_Allreduce MAX): the "_all_ranks" fields; without mpirun MPI is not initialised.
 * Prints one JSON object on one line of stdout per rank. */
#include <blis.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "gemm.h"
#include "layers.h"
#include "model.h"

typedef struct {
    int ta, tb;
    size_t m, n, k;
    const float *A, *B;
    size_t lda, ldb, ldc;
    float beta;
    float *C;
} gemm_call;

typedef struct {
    gemm_call *c;
    size_t n, cap;
    double flops;
} call_list;

static void add(call_list *l, int ta, int tb, size_t m, size_t n, size_t k, const float *A, size_t lda,
                const float *B, size_t ldb, float beta, float *C, size_t ldc)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->c = realloc(l->c, l->cap * sizeof *l->c);
        if (!l->c) fatal(EXIT_INTERNAL, "out of memory (call list)");
    }
    l->c[l->n++] = (gemm_call){ta, tb, m, n, k, A, B, lda, ldb, ldc, beta, C};
    l->flops += 2.0 * (double)m * (double)n * (double)k;
}

static void run_list(const call_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        const gemm_call *c = &l->c[i];
        gemm(c->ta, c->tb, c->m, c->n, c->k, 1.0f, c->A, c->lda, c->B, c->ldb, c->beta, c->C, c->ldc);
    }
}

/* conv_forward's GEMMs (layers.c): chunks of images that fit the workspace. */
static void conv_fwd(call_list *l, const model *m, int i, size_t n)
{
    const conv_geom *g = &m->conv[i];
    const size_t hw = (size_t)g->hout * g->wout, kk = (size_t)g->cin * g->k * g->k;
    size_t step = m->ws_floats / conv_col_floats(g, 1);
    if (step > n) step = n;
    const float *w = m->params + m->tensor[2 * i].offset;
    for (size_t b0 = 0; b0 < n; b0 += step) {
        size_t nb = n - b0 < step ? n - b0 : step;
        add(l, 0, 0, (size_t)g->cout, nb * hw, kk, w, kk, m->ws, nb * hw, 0.0f, m->act[i + 1] + b0 * hw, n * hw);
    }
}

/* conv_backward's GEMMs: dw per chunk, then dcol (no dx for the first layer). */
static void conv_bwd(call_list *l, const model *m, int i, size_t n)
{
    const conv_geom *g = &m->conv[i];
    const size_t hw = (size_t)g->hout * g->wout, kk = (size_t)g->cin * g->k * g->k, len = n * hw;
    size_t step = m->ws_floats / conv_col_floats(g, 1);
    if (step > n) step = n;
    const float *w = m->params + m->tensor[2 * i].offset;
    float *dw = m->grads + m->tensor[2 * i].offset;
    for (size_t b0 = 0; b0 < n; b0 += step) {
        size_t nb = n - b0 < step ? n - b0 : step;
        add(l, 0, 1, (size_t)g->cout, kk, nb * hw, m->dact[i + 1] + b0 * hw, len, m->ws, nb * hw, 1.0f, dw, kk);
        if (i > 0) add(l, 1, 0, kk, nb * hw, (size_t)g->cout, w, kk, m->dact[i + 1] + b0 * hw, len, 0.0f, m->ws, nb * hw);
    }
}

/* dense_forward / dense_backward (layers.c) for tensor t (weight (out, in)). */
static void dense_fwd(call_list *l, const model *m, int t, const float *x, float *y, size_t n)
{
    const param_tensor *p = &m->tensor[t];
    size_t out = (size_t)p->shape[0], in = (size_t)p->shape[1];
    add(l, 0, 1, n, out, in, x, in, m->params + p->offset, in, 0.0f, y, out);
}

static void dense_bwd(call_list *l, const model *m, int t, const float *x, const float *dy, float *dx, size_t n)
{
    const param_tensor *p = &m->tensor[t];
    size_t out = (size_t)p->shape[0], in = (size_t)p->shape[1];
    add(l, 1, 0, out, in, n, dy, out, x, in, 1.0f, m->grads + p->offset, in);
    if (dx) add(l, 0, 0, n, in, out, dy, out, m->params + p->offset, in, 0.0f, dx, in);
}

static void fill(float *p, size_t n, uint64_t key)
{
    for (size_t i = 0; i < n; i++) p[i] = 0.01f * rng_uniform(key, i);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static int g_mpi, g_rank, g_world = 1;

/* Starts all ranks together; returns the time since then of the slowest rank after f. */
static double timed(void (*f)(const void *), const void *arg, double *local)
{
    if (g_mpi) MPI_Barrier(MPI_COMM_WORLD);
    double t0 = now_s();
    f(arg);
    double t = now_s() - t0, tmax = t;
    if (g_mpi) MPI_Allreduce(&t, &tmax, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    if (local) *local = t;
    return tmax;
}

typedef struct {
    size_t S;
    const float *A, *B;
    float *C;
} sq_args;

static void run_sq(const void *p)
{
    const sq_args *q = p;
    gemm(0, 0, q->S, q->S, q->S, 1.0f, q->A, q->S, q->B, q->S, 0.0f, q->C, q->S);
}

static void run_list_v(const void *p) { run_list(p); }

static long arg_long(const char *name, const char *s, long lo)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*end || v < lo) {
        fprintf(stderr, "gemm_bound: %s: expected an integer >= %ld, got '%s'\n", name, lo, s);
        exit(EXIT_USAGE);
    }
    return v;
}

int main(int argc, char **argv)
{
    const char *mode = "pretrain";
    long images = 128, global_images = 0, threads = 1, reps = 5, sgemm_n = 2048, ws_mb = 64;
    model_cfg cfg = {.image_size = 96, .conv_layers = 4, .width = 128, .kernel = 3, .embed_dim = 128,
                     .proj_dim = 128, .num_classes = 10};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help")) {
            puts("usage: gemm_bound [--mode pretrain|finetune|eval] [--images N] [--global-images G] [--threads T]\n"
                 "                  [--reps R] [--sgemm-n S (0: skip)] [--workspace-mb MB] [--image-size 96]\n"
                 "                  [--conv-layers 4] [--width 128] [--kernel 3] [--embed 128] [--proj 128] [--classes 10]");
            return 0;
        }
        if (!v) {
            fprintf(stderr, "gemm_bound: %s needs a value (see --help)\n", a);
            return EXIT_USAGE;
        }
        i++;
        if (!strcmp(a, "--mode")) mode = v;
        else if (!strcmp(a, "--images")) images = arg_long(a, v, 1);
        else if (!strcmp(a, "--global-images")) global_images = arg_long(a, v, 1);
        else if (!strcmp(a, "--threads")) threads = arg_long(a, v, 1);
        else if (!strcmp(a, "--reps")) reps = arg_long(a, v, 1);
        else if (!strcmp(a, "--sgemm-n")) sgemm_n = arg_long(a, v, 0);
        else if (!strcmp(a, "--workspace-mb")) ws_mb = arg_long(a, v, 1);
        else if (!strcmp(a, "--image-size")) cfg.image_size = (int)arg_long(a, v, 1);
        else if (!strcmp(a, "--conv-layers")) cfg.conv_layers = (int)arg_long(a, v, 1);
        else if (!strcmp(a, "--width")) cfg.width = (int)arg_long(a, v, 1);
        else if (!strcmp(a, "--kernel")) cfg.kernel = (int)arg_long(a, v, 1);
        else if (!strcmp(a, "--embed")) cfg.embed_dim = (int)arg_long(a, v, 1);
        else if (!strcmp(a, "--proj")) cfg.proj_dim = (int)arg_long(a, v, 1);
        else if (!strcmp(a, "--classes")) cfg.num_classes = (int)arg_long(a, v, 2);
        else {
            fprintf(stderr, "gemm_bound: unknown option '%s' (see --help)\n", a);
            return EXIT_USAGE;
        }
    }
    const int pre = !strcmp(mode, "pretrain"), fine = !strcmp(mode, "finetune"), ev = !strcmp(mode, "eval");
    if (!pre && !fine && !ev) {
        fprintf(stderr, "gemm_bound: --mode must be pretrain, finetune or eval\n");
        return EXIT_USAGE;
    }
    if (!global_images) global_images = images;
    if (global_images < images) {
        fprintf(stderr, "gemm_bound: --global-images must be >= --images\n");
        return EXIT_USAGE;
    }
    gemm_init(); /* the trainer's kernel choice, before MPI_Init (it forks) */
    if (getenv("OMPI_COMM_WORLD_SIZE")) {
        MPI_Init(&argc, &argv);
        MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
        MPI_Comm_size(MPI_COMM_WORLD, &g_world);
        g_mpi = 1;
    }
    gemm_set_threads((int)threads);

    const size_t n = pre ? 2 * (size_t)images : (size_t)images; /* rows through the network */
    model m;
    model_init(&m, &cfg, n, (size_t)ws_mb << 18); /* as run_phase: workspace_mb << 18 floats */
    model_init_weights(&m, -1, 42);
    const int L = cfg.conv_layers;
    fill(m.act[0], 3 * n * (size_t)cfg.image_size * cfg.image_size, 1);
    for (int i = 1; i <= L; i++) {
        size_t len = (size_t)m.conv[i - 1].cout * n * m.conv[i - 1].hout * m.conv[i - 1].wout;
        fill(m.act[i], len, 10 + (uint64_t)i);
        fill(m.dact[i], len, 20 + (uint64_t)i);
    }
    fill(m.ws, m.ws_floats, 3);
    fill(m.flat, n * m.flat_dim, 4), fill(m.dflat, n * m.flat_dim, 5);
    fill(m.embed, n * (size_t)cfg.embed_dim, 6), fill(m.dembed, n * (size_t)cfg.embed_dim, 7);
    fill(m.hidden, n * (size_t)cfg.proj_dim, 8), fill(m.dhidden, n * (size_t)cfg.proj_dim, 9);
    fill(m.proj, n * (size_t)cfg.proj_dim, 30), fill(m.dproj, n * (size_t)cfg.proj_dim, 31);
    fill(m.logits, n * (size_t)cfg.num_classes, 32), fill(m.dlogits, n * (size_t)cfg.num_classes, 33);

    /* NT-Xent buffers as in pretrain(): zall / dzall (2G, D), sim (2n_local, 2G) */
    const size_t D = (size_t)cfg.proj_dim, VG = 2 * (size_t)global_images;
    float *zall = NULL, *dzall = NULL, *sim = NULL;
    if (pre) {
        zall = xcalloc(VG * D, sizeof(float), "zall");
        dzall = xcalloc(VG * D, sizeof(float), "dzall");
        sim = xcalloc(n * VG, sizeof(float), "similarities");
        fill(zall, VG * D, 40), fill(sim, n * VG, 41);
    }

    const int t_fc = 2 * L, t_head = 2 * L + 2, t_cls = 2 * L + 6;
    call_list l = {0};
    double conv_flops = 0.0, dense_flops = 0.0;
    for (int i = 0; i < L; i++) conv_fwd(&l, &m, i, n);
    conv_flops = l.flops;
    dense_fwd(&l, &m, t_fc, m.flat, m.embed, n);
    double fwd_flops = 0.0; /* encoder + head (pretrain) or + classifier: model_forward_gflop x rows */
    if (pre) {
        dense_fwd(&l, &m, t_head, m.embed, m.hidden, n);
        dense_fwd(&l, &m, t_head + 2, m.hidden, m.proj, n);
        fwd_flops = l.flops;
        /* ntxent_rows (loss.c), this rank's rows against all gathered rows; the local rows
         * sit inside zall (rank 0's block) */
        add(&l, 0, 1, n, VG, D, zall, D, zall, D, 0.0f, sim, VG);
        add(&l, 0, 0, n, D, VG, sim, VG, zall, D, 1.0f, dzall, D);
        add(&l, 1, 0, VG, D, n, sim, VG, zall, D, 1.0f, dzall, D);
        dense_bwd(&l, &m, t_head + 2, m.hidden, m.dproj, m.dhidden, n);
        dense_bwd(&l, &m, t_head, m.embed, m.dhidden, m.dembed, n);
    } else {
        dense_fwd(&l, &m, t_cls, m.embed, m.logits, n);
        fwd_flops = l.flops;
        if (fine) dense_bwd(&l, &m, t_cls, m.embed, m.dlogits, m.dembed, n);
    }
    if (!ev) {
        dense_bwd(&l, &m, t_fc, m.flat, m.dembed, m.dflat, n);
        double before = l.flops;
        for (int i = L - 1; i >= 0; i--) conv_bwd(&l, &m, i, n);
        conv_flops += l.flops - before;
    }
    dense_flops = l.flops - conv_flops;

    timed(run_list_v, &l, NULL); /* warm-up: page faults, BLIS packing buffers */
    double *t = xcalloc((size_t)reps, sizeof *t, "times"), *tl = xcalloc((size_t)reps, sizeof *tl, "times");
    for (long r = 0; r < reps; r++) t[r] = timed(run_list_v, &l, &tl[r]);
    double tmin = t[0];
    for (long r = 1; r < reps; r++) tmin = t[r] < tmin ? t[r] : tmin;
    double tmed = median(t, (int)reps), tmed_local = median(tl, (int)reps);

    double peak = 0.0, peak_best = 0.0;
    if (sgemm_n > 0) {
        size_t S = (size_t)sgemm_n;
        float *A = xcalloc(S * S, sizeof(float), "sgemm A"), *B = xcalloc(S * S, sizeof(float), "sgemm B");
        float *C = xcalloc(S * S, sizeof(float), "sgemm C");
        fill(A, S * S, 50), fill(B, S * S, 51);
        sq_args q = {S, A, B, C};
        timed(run_sq, &q, NULL);
        int pr = reps < 3 ? 3 : (int)reps;
        double *ts = xcalloc((size_t)pr, sizeof *ts, "times");
        for (int r = 0; r < pr; r++) ts[r] = timed(run_sq, &q, NULL);
        double best = ts[0];
        for (int r = 1; r < pr; r++) best = ts[r] < best ? ts[r] : best;
        double f = 2.0 * (double)S * S * S * 1e-9;
        peak = f / median(ts, pr);
        peak_best = f / best;
        free(A), free(B), free(C), free(ts);
    }

    const double per_image = l.flops / (double)images;
    printf("{\"rank\":%d,\"world\":%d,\"mode\":\"%s\",\"images\":%ld,\"global_images\":%ld,\"rows\":%zu,\"threads\":%d,\"reps\":%ld,"
           "\"workspace_floats\":%zu,\"gemm_calls\":%zu,"
           "\"gemm_gflop_per_step\":%.6f,\"gemm_gflop_per_image\":%.6f,\"gemm_gflop_per_view\":%.6f,"
           "\"forward_gemm_gflop_per_step\":%.6f,\"model_forward_gflop_per_row\":%.6f,\"conv_gemm_gflop_per_step\":%.6f,\"dense_and_loss_gemm_gflop_per_step\":%.6f,"
           "\"gemm_seconds_per_step\":%.6f,\"gemm_seconds_per_step_min\":%.6f,\"gemm_seconds_per_step_this_rank\":%.6f,\"gemm_gflops\":%.3f,"
           "\"gemm_bound_images_per_s\":%.3f,\"gemm_bound_images_per_s_all_ranks\":%.3f,"
           "\"sgemm_n\":%ld,\"sgemm_peak_gflops\":%.3f,\"sgemm_best_gflops\":%.3f,\"sgemm_peak_gflops_all_ranks\":%.3f,"
           "\"blis_version\":\"%s\",\"blis_arch\":\"%s\",\"blis_arch_id\":%d,\"blis_openmp\":%d,\"blis_pthreads\":%d}\n",
           g_rank, g_world, mode, images, global_images, n, gemm_threads(), reps, m.ws_floats, l.n, l.flops * 1e-9, per_image * 1e-9,
           per_image * 1e-9 / (pre ? 2.0 : 1.0), fwd_flops * 1e-9, model_forward_gflop(&m), conv_flops * 1e-9, dense_flops * 1e-9, tmed,
           tmin, tmed_local, l.flops * 1e-9 / tmed, (double)images / tmed, (double)global_images / tmed, sgemm_n, peak,
           peak_best, peak * g_world, bli_info_get_version_str(),
           bli_arch_string(bli_arch_query_id()), (int)bli_arch_query_id(), (int)bli_info_get_enable_openmp(),
           (int)bli_info_get_enable_pthreads());
    fflush(stdout);
    free(l.c), free(t), free(tl), free(zall), free(dzall), free(sim);
    model_free(&m);
    if (g_mpi) MPI_Finalize();
    return 0;
}
