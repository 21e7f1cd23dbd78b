/* common.h: exit codes, the one fatal-error path, checked allocation and small helpers.
 *
 * Compute rooms (layers, gemm, loss, optim, augment, model, data) include only this
 * header for errors: they never call MPI. main() installs an abort hook (dist_init) so
 * that fatal() on any rank ends the whole MPI job with MPI_Abort and the exit code. */
#ifndef SIMCLR_COMMON_H
#define SIMCLR_COMMON_H

#include <stddef.h>
#include <stdint.h>

/* Process exit codes, documented in README.md and docs/ERRORS.md. */
enum {
    EXIT_USAGE = 2,      /* bad command line */
    EXIT_CONFIG = 3,     /* config file: syntax, type, range, unknown key */
    EXIT_DATA = 4,       /* STL-10 files, image folders, labels */
    EXIT_IO = 5,         /* cannot write run folder, disk full */
    EXIT_CKPT = 6,       /* checkpoint missing, corrupt, wrong shape or version */
    EXIT_DIVERGED = 7,   /* non-finite loss */
    EXIT_INTERNAL = 70,  /* a bug: an invariant failed */
    EXIT_REQUEUE = 75    /* stopped by SIGTERM/SIGUSR1 after writing a checkpoint */
};

/* Rank used in message prefixes ("[rank N]"); -1 (the default) prints no prefix. */
void log_set_rank(int rank);

/* Abort hook: called by fatal() with the exit code instead of exit(). dist_init installs
 * one that calls MPI_Abort(MPI_COMM_WORLD, code). NULL restores plain exit(). */
void set_abort_hook(void (*hook)(int code));

/* Prints "simclr: error: <message>" (with a rank prefix when set) to stderr, then ends
 * the process (or the MPI job through the abort hook) with `code`. Never returns. */
void fatal(int code, const char *fmt, ...) __attribute__((noreturn, format(printf, 2, 3)));

/* Prints "simclr: warning: ..." to stderr; does not stop. */
void warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* fatal(EXIT_INTERNAL) with file and line when `cond` is false: for invariants only;
 * user-facing checks call fatal() with a message that names the file or key to fix. */
#define CHECK(cond)                                                                       \
    do {                                                                                  \
        if (!(cond)) fatal(EXIT_INTERNAL, "%s:%d: check failed: %s", __FILE__, __LINE__, \
                           #cond);                                                        \
    } while (0)

/* 64-byte aligned, zero-filled allocation of n * size bytes (overflow checked); fatal
 * (EXIT_INTERNAL, "out of memory" with the byte count and `what`) on failure. The caller
 * frees it with free(). */
void *xcalloc(size_t n, size_t size, const char *what);

/* out = a + "/" + b; fatal(EXIT_DATA) naming the path when it does not fit in n bytes. */
void path_join(char *out, size_t n, const char *a, const char *b);

/* mkdir -p: creates path and its missing parents (mode 0755); fatal(EXIT_IO) naming the
 * directory that cannot be created. */
void mkdir_p(const char *path);

/* Monotonic wall-clock time in seconds. */
double now_s(void);

/* Counter-based random numbers (SplitMix64 finaliser, Steele, Lea & Flood 2014, used as a
 * keyed hash). rng_key mixes up to four 64-bit words into a key; rng_u64(key, i) is the
 * i-th 64-bit output of that key's stream; rng_uniform(key, i) is in [0, 1) with 24
 * random bits. Pure functions: the same arguments give the same numbers on every rank. */
uint64_t rng_key(uint64_t a, uint64_t b, uint64_t c, uint64_t d);
uint64_t rng_u64(uint64_t key, uint64_t i);
float rng_uniform(uint64_t key, uint64_t i);

/* 1 when s names a phase that trains and writes checkpoints (pretrain, linear, finetune,
 * baseline, distill), else 0. The one list of them: is_phase_name adds "eval"; checkpoints
 * must carry one of these in their 'phase' attribute. */
int is_training_phase(const char *s);

/* 1 when s names a phase `simclr PHASE` runs: a training phase or eval; else 0. */
int is_phase_name(const char *s);

/* Fisher-Yates permutation of 0..n-1 into perm[n] (overwritten), driven by `key`. */
void permute(int64_t *perm, size_t n, uint64_t key);

#endif
