/* dist.h: the one MPI caller. Collectives on float/double/byte buffers with counts in
 * size_t; any count above the chunk limit (INT_MAX, or DIST_CHUNK at build time for tests)
 * is split into several calls, since Open MPI 4.1 has no big-count collectives. Every call
 * is collective over MPI_COMM_WORLD; MPI errors end the job (MPI_ERRORS_ARE_FATAL). */
#ifndef SIMCLR_DIST_H
#define SIMCLR_DIST_H

#include <stddef.h>
#include <stdint.h>

/* MPI_Init_thread with MPI_THREAD_FUNNELED (fatal if not provided); installs the abort
 * hook so that fatal() on any rank calls MPI_Abort with its exit code; sets the log rank. */
void dist_init(int *argc, char ***argv);
void dist_finalize(void);
int dist_rank(void);
int dist_world(void);
/* Ranks on this node (MPI_Comm_split_type SHARED) and this rank's index among them. */
int dist_local_size(void);

/* In place sum over ranks of n floats / doubles / int64s (MPI_Allreduce, chunked). */
void dist_allreduce_sum_f(float *buf, size_t n);
void dist_allreduce_sum_d(double *buf, size_t n);
void dist_allreduce_sum_i64(int64_t *buf, size_t n);

/* In place maximum over ranks of n doubles (MPI_Allreduce MAX). */
void dist_allreduce_max_d(double *buf, size_t n);

/* 1 on every rank if ok != 0 on every rank, else 0 (MPI_Allreduce MIN): ranks agree on
 * an error before the next collective, so no rank is left waiting. */
int dist_all_ok(int ok);

/* Broadcast of n bytes from rank root (chunked). */
void dist_bcast(void *buf, size_t n, int root);

/* All-gather with per-rank counts (floats): rank r contributes counts[r] floats from send;
 * recv (sum of counts) receives the blocks in rank order. Overwrites recv. */
void dist_allgatherv_f(const float *send, float *recv, const size_t *counts);

/* Reduce-scatter with per-rank counts: sums send (sum of counts floats, the same layout on
 * every rank) over ranks and leaves block r (counts[r] floats) in recv on rank r. */
void dist_reduce_scatter_f(const float *send, float *recv, const size_t *counts);

/* Gathers one text line of at most `len` bytes from every rank to rank 0's `all`
 * (world * len bytes, rank r's line at all + r*len, NUL-terminated; ignored elsewhere). */
void dist_gather_text(const char *line, char *all, size_t len);

/* Chunk limit used by the chunked calls (elements per MPI call). */
size_t dist_chunk_limit(void);

/* Kinds of collectives timed separately. */
enum { DIST_ALLGATHER, DIST_REDUCE_SCATTER, DIST_ALLREDUCE, DIST_OTHER, DIST_NOPS };

/* Seconds spent inside collectives since the last call, then reset; waiting for the
 * slowest rank is included. Returns the total; per_kind (DIST_NOPS, or NULL) gets the split:
 * all-gather and reduce-scatter of the projections, allreduce of the parameter gradients,
 * other (small allreduces of statistics and error agreement, broadcasts). */
double dist_comm_seconds(double *per_kind);

#endif
