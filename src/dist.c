/* dist.c: MPI (Open MPI 4.1) wrappers: init, abort hook, chunked collectives. */
#include "dist.h"

#include <limits.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

#ifndef DIST_CHUNK
#define DIST_CHUNK ((size_t)INT_MAX)
#endif

static int g_rank, g_world, g_local;
static double g_comm[DIST_NOPS]; /* seconds inside collectives, per kind */
static int *g_ic, *g_disp; /* per-rank counts / displacements, allocated once */

/* fatal() on any rank ends the whole job (MPI_Abort: every rank exits with code). One rank
 * alone finalizes instead, so that the error line is not followed by Open MPI's abort banner;
 * fatal() then exits with code. */
static void abort_hook(int code)
{
    if (g_world == 1) MPI_Finalize();
    else MPI_Abort(MPI_COMM_WORLD, code);
}

void dist_init(int *argc, char ***argv)
{
    int provided;
    MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_world);
    set_abort_hook(abort_hook);
    if (g_world > 1) log_set_rank(g_rank);
    if (provided < MPI_THREAD_FUNNELED) fatal(EXIT_INTERNAL, "MPI does not provide MPI_THREAD_FUNNELED");
    MPI_Comm node;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, g_rank, MPI_INFO_NULL, &node);
    MPI_Comm_size(node, &g_local);
    MPI_Comm_free(&node);
    g_ic = xcalloc((size_t)g_world, sizeof(int), "MPI counts");
    g_disp = xcalloc((size_t)g_world, sizeof(int), "MPI displacements");
}

void dist_finalize(void)
{
    free(g_ic);
    free(g_disp);
    MPI_Finalize();
}
int dist_rank(void) { return g_rank; }
int dist_world(void) { return g_world; }
int dist_local_size(void) { return g_local; }
size_t dist_chunk_limit(void) { return DIST_CHUNK; }

double dist_comm_seconds(double *per_kind)
{
    double t = 0.0;
    for (int k = 0; k < DIST_NOPS; k++) {
        if (per_kind) per_kind[k] = g_comm[k];
        t += g_comm[k];
        g_comm[k] = 0.0;
    }
    return t;
}

static void allreduce(void *buf, size_t n, MPI_Datatype type, size_t elem, MPI_Op op, int kind)
{
    double t0 = MPI_Wtime();
    for (size_t done = 0; done < n; done += DIST_CHUNK) {
        size_t c = n - done < DIST_CHUNK ? n - done : DIST_CHUNK;
        MPI_Allreduce(MPI_IN_PLACE, (char *)buf + done * elem, (int)c, type, op, MPI_COMM_WORLD);
    }
    g_comm[kind] += MPI_Wtime() - t0;
}

void dist_allreduce_sum_f(float *buf, size_t n) { allreduce(buf, n, MPI_FLOAT, sizeof *buf, MPI_SUM, DIST_ALLREDUCE); }
void dist_allreduce_sum_d(double *buf, size_t n) { allreduce(buf, n, MPI_DOUBLE, sizeof *buf, MPI_SUM, DIST_OTHER); }
void dist_allreduce_sum_i64(int64_t *buf, size_t n) { allreduce(buf, n, MPI_INT64_T, sizeof *buf, MPI_SUM, DIST_OTHER); }

void dist_allreduce_max_d(double *buf, size_t n) { allreduce(buf, n, MPI_DOUBLE, sizeof *buf, MPI_MAX, DIST_OTHER); }

int dist_all_ok(int ok)
{
    int v = ok != 0;
    allreduce(&v, 1, MPI_INT, sizeof v, MPI_MIN, DIST_OTHER);
    return v;
}

void dist_bcast(void *buf, size_t n, int root)
{
    double t0 = MPI_Wtime();
    for (size_t done = 0; done < n; done += DIST_CHUNK) {
        size_t c = n - done < DIST_CHUNK ? n - done : DIST_CHUNK;
        MPI_Bcast((char *)buf + done, (int)c, MPI_BYTE, root, MPI_COMM_WORLD);
    }
    g_comm[DIST_OTHER] += MPI_Wtime() - t0;
}

/* int counts and displacements of the v-collectives; returns 0 when some count or offset
 * exceeds the chunk limit (then the chunked fallbacks below are used). */
static int int_counts(const size_t *counts)
{
    size_t off = 0;
    for (int r = 0; r < g_world; r++) {
        if (counts[r] > DIST_CHUNK || off > DIST_CHUNK) return 0;
        g_ic[r] = (int)counts[r];
        g_disp[r] = (int)off;
        off += counts[r];
    }
    return 1;
}

void dist_allgatherv_f(const float *send, float *recv, const size_t *counts)
{
    double t0 = MPI_Wtime();
    if (int_counts(counts)) {
        MPI_Allgatherv(send, g_ic[g_rank], MPI_FLOAT, recv, g_ic, g_disp, MPI_FLOAT, MPI_COMM_WORLD);
    } else { /* big counts: each rank broadcasts its block in chunks */
        size_t off = 0;
        for (int r = 0; r < g_world; r++) {
            if (r == g_rank) memcpy(recv + off, send, counts[r] * sizeof *recv);
            for (size_t done = 0; done < counts[r]; done += DIST_CHUNK) {
                size_t c = counts[r] - done < DIST_CHUNK ? counts[r] - done : DIST_CHUNK;
                MPI_Bcast(recv + off + done, (int)c, MPI_FLOAT, r, MPI_COMM_WORLD);
            }
            off += counts[r];
        }
    }
    g_comm[DIST_ALLGATHER] += MPI_Wtime() - t0;
}

void dist_reduce_scatter_f(const float *send, float *recv, const size_t *counts)
{
    double t0 = MPI_Wtime();
    if (int_counts(counts)) {
        MPI_Reduce_scatter(send, recv, g_ic, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    } else { /* big counts: block r is reduced to rank r in chunks */
        size_t off = 0;
        for (int r = 0; r < g_world; r++) {
            for (size_t done = 0; done < counts[r]; done += DIST_CHUNK) {
                size_t c = counts[r] - done < DIST_CHUNK ? counts[r] - done : DIST_CHUNK;
                MPI_Reduce(send + off + done, r == g_rank ? recv + done : NULL, (int)c, MPI_FLOAT, MPI_SUM, r,
                           MPI_COMM_WORLD);
            }
            off += counts[r];
        }
    }
    g_comm[DIST_REDUCE_SCATTER] += MPI_Wtime() - t0;
}

void dist_gather_text(const char *line, char *all, size_t len)
{
    CHECK(len <= 4096);
    char buf[4096] = {0};
    snprintf(buf, len, "%s", line);
    MPI_Gather(buf, (int)len, MPI_CHAR, all, (int)len, MPI_CHAR, 0, MPI_COMM_WORLD);
}
