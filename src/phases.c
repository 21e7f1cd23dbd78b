/* phases.c: pretrain / linear / finetune / baseline / eval as MPI jobs. */
#define _GNU_SOURCE
#include "phases.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <sched.h>
#include <unistd.h>

#include "augment.h"
#include "checkpoint.h"
#include "common.h"
#include "config.h"
#include "data.h"
#include "dist.h"
#include "gemm.h"
#include "loss.h"
#include "model.h"
#include "ntxent_dist.h"
#include "optim.h"

/* ---- run context ------------------------------------------------------------------ */

typedef struct {
    config cfg;
    char *cfg_text;
    int rank, world;
    stl10_file labeled_file, unlabeled_file, eval_file;
    dataset train;     /* labeled images for training (label budget applied) */
    dataset eval;      /* evaluation images (hold-out slice or eval_split) */
    dataset val;       /* validation slice of the labeled split (data.val_per_class; n = 0: none) */
    dataset unlabeled; /* pretraining images */
    char eval_desc[256];
    char val_desc[160];
    char eval_set[256]; /* identity of the eval images, stored in checkpoints (eval_set_id) */
    model m;
    FILE *metrics; /* rank 0 only */
    int claimed;   /* RUN_DIR/PHASE already names this phase (claim_run_dir); rank 0 only */
    uint8_t *img;  /* one decoded image */
    int64_t step;  /* optimizer steps done */
    int start_epoch;
    int64_t skip_steps; /* steps of start_epoch already done (mid-epoch resume) */
    int64_t init_step;  /* step and config_hash of the checkpoint the encoder started from */
    uint64_t init_hash; /* (-1: none), stored in this run's checkpoints */
    double t_data;      /* seconds in reading + augmenting images this epoch (this rank) */
} run_ctx;

static volatile sig_atomic_t g_stop_signal;

static void on_stop_signal(int sig) { g_stop_signal = sig; }

/* All ranks agreed (a collective result) on a fatal condition: rank 0 reports it once, all
 * ranks leave with the same code. */
static void die_agreed(const run_ctx *r, int code, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 3, 4)));
static void die_agreed(const run_ctx *r, int code, const char *fmt, ...)
{
    if (r->rank == 0) {
        va_list ap;
        va_start(ap, fmt);
        fprintf(stderr, "simclr: error: ");
        vfprintf(stderr, fmt, ap);
        fprintf(stderr, "\n");
        fflush(stderr);
        va_end(ap);
    }
    dist_finalize();
    exit(code);
}

static FILE *open_in_run(const run_ctx *r, const char *name, const char *mode)
{
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s", r->cfg.run_dir, name);
    FILE *f = fopen(path, mode);
    if (!f) fatal(EXIT_IO, "%s: cannot write: %s", path, strerror(errno));
    return f;
}

static void write_text(const run_ctx *r, const char *name, const char *text)
{
    FILE *f = open_in_run(r, name, "w");
    if (fputs(text, f) < 0 || fclose(f) != 0) fatal(EXIT_IO, "%s/%s: write failed", r->cfg.run_dir, name);
}

static int is_phase(const run_ctx *r, const char *p) { return !strcmp(r->cfg.phase, p); }

/* Test-only fault injection (tests/test_faults.sh): SIMCLR_FAULT="KIND@RANK" makes one rank
 * meet a real failure that the other ranks do not see: "missing" (its data.dir does not
 * exist), "short" (its image files read as empty after opening: short reads), "nan" (its
 * local loss is NaN), "die" (it exits at its first step without a word, like a crashed rank). */
static int fault(const run_ctx *r, const char *kind)
{
    const char *f = getenv("SIMCLR_FAULT");
    size_t n = strlen(kind);
    return f && !strncmp(f, kind, n) && f[n] == '@' && atoi(f + n + 1) == r->rank;
}

/* Applies the "short" fault: the rank's open image files now read from /dev/null. */
static void fault_short_reads(run_ctx *r)
{
    stl10_file *files[] = {&r->labeled_file, &r->unlabeled_file, &r->eval_file};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        int fd = open("/dev/null", O_RDONLY);
        if (files[i]->fd > 0 && fd >= 0) dup2(fd, files[i]->fd);
        if (fd >= 0) close(fd);
    }
}

/* ---- data ------------------------------------------------------------------------- */

/* Label budget: the first labels_per_class images of each class in a permutation keyed by
 * (seed, "labels") of the candidates (held[i] == 0); all candidates when 0. */
static void build_train_set(run_ctx *r, const uint8_t *held)
{
    const stl10_file *f = &r->labeled_file;
    const int C = r->cfg.data.num_classes;
    int64_t *perm = xcalloc(f->count, sizeof *perm, "label budget");
    permute(perm, f->count, rng_key((uint64_t)r->cfg.seed, 0x6c6162656c73ULL, 0, 0));
    size_t *have = xcalloc((size_t)C, sizeof *have, "label budget");
    size_t want = r->cfg.data.labels_per_class > 0 ? (size_t)r->cfg.data.labels_per_class : SIZE_MAX;
    uint8_t *take = xcalloc(f->count, 1, "label budget");
    for (size_t i = 0; i < f->count; i++) {
        size_t j = (size_t)perm[i];
        if (held && held[j]) continue;
        if (have[f->label[j]] < want) have[f->label[j]]++, take[j] = 1;
    }
    for (int c = 0; c < C && want != SIZE_MAX; c++)
        if (have[c] < want)
            fatal(EXIT_CONFIG, "%s: data.labels_per_class = %zu but class %d has only %zu training images "
                  "in %s (after the evaluation hold-out%s)", config_origin(&r->cfg, "data.labels_per_class"), want, c + 1, have[c], f->path_x,
                  r->val.n ? " and the validation slice" : "");
    dataset_init(&r->train, f->count);
    for (size_t i = 0; i < f->count; i++)
        if (take[i]) dataset_add(&r->train, f, i); /* file order: independent of the permutation */
    free(perm);
    free(have);
    free(take);
}

/* data.val_per_class: a stratified slice of the labeled images outside the hold-out
 * (held[i] == 0), keyed by (holdout_seed, "valid") so that every run of a sweep, whatever its
 * seed or label budget, scores the same images; marked in held, so no phase trains on
 * them, and loaded into r->val in file order. */
static void carve_validation(run_ctx *r, uint8_t *held)
{
    const stl10_file *f = &r->labeled_file;
    const config *c = &r->cfg;
    size_t n = 0, *cand = xcalloc(f->count, sizeof *cand, "validation slice");
    int32_t *lab = xcalloc(f->count, sizeof *lab, "validation slice");
    uint8_t *pick = xcalloc(f->count, 1, "validation slice");
    for (size_t i = 0; i < f->count; i++)
        if (!held[i]) cand[n] = i, lab[n++] = f->label[i];
    int bad = stratified_holdout(lab, n, c->data.num_classes, (size_t)c->data.val_per_class,
                                 rng_key((uint64_t)c->data.holdout_seed, 0x76616c6964ULL, 0, 0), pick);
    if (bad)
        fatal(EXIT_CONFIG, "%s: data.val_per_class = %d: class %d of %s has too few images outside the hold-out "
              "to set that many aside and still train", config_origin(c, "data.val_per_class"), c->data.val_per_class, bad - 1, f->path_x);
    dataset_init(&r->val, n);
    for (size_t k = 0; k < n; k++)
        if (pick[k]) held[cand[k]] = 1, dataset_add(&r->val, f, cand[k]);
    snprintf(r->val_desc, sizeof r->val_desc, "%zu images (%d per class, val_top1), never trained on", r->val.n,
             c->data.val_per_class);
    free(cand), free(lab), free(pick);
}

static void open_data(run_ctx *r)
{
    const config *c = &r->cfg;
    const char *dir = fault(r, "missing") ? "/nonexistent/simclr-fault" : c->data.dir;
    const int eval = is_phase(r, "eval");
    if (!eval || !c->data.eval_split[0]) /* eval on a split of its own needs no training split */
        stl10_open(&r->labeled_file, dir, c->data.split, 1, c->data.num_classes);
    uint8_t *held = NULL;
    if (c->data.eval_split[0]) {
        stl10_open(&r->eval_file, c->data.dir, c->data.eval_split, 1, c->data.num_classes);
        dataset_init(&r->eval, r->eval_file.count);
        for (size_t i = 0; i < r->eval_file.count; i++) dataset_add(&r->eval, &r->eval_file, i);
        snprintf(r->eval_desc, sizeof r->eval_desc, "all %zu images of split '%s'", r->eval.n, c->data.eval_split);
        snprintf(r->eval_set, sizeof r->eval_set, "split %s", c->data.eval_split);
    } else {
        const stl10_file *f = &r->labeled_file;
        held = xcalloc(f->count, 1, "hold-out");
        int bad = stratified_holdout(f->label, f->count, c->data.num_classes, (size_t)c->data.eval_per_class,
                                     rng_key((uint64_t)c->data.holdout_seed, 0x686f6c64ULL, 0, 0), held);
        if (bad)
            fatal(EXIT_CONFIG, "%s: data.eval_per_class = %d: class %d of %s has too few images to hold "
                  "out that many and keep one for training: set a smaller data.eval_per_class (the bundled "
                  "sample takes 5, as jobs/pipeline.sh --data sample sets)", config_origin(c, "data.eval_per_class"),
                  c->data.eval_per_class, bad - 1, f->path_x);
        dataset_init(&r->eval, f->count);
        for (size_t i = 0; i < f->count; i++)
            if (held[i]) dataset_add(&r->eval, f, i);
        snprintf(r->eval_desc, sizeof r->eval_desc,
                 "stratified hold-out of %d per class (%zu images) from split '%s', holdout_seed %lld; "
                 "never used for training or pretraining", c->data.eval_per_class, r->eval.n, c->data.split,
                 (long long)c->data.holdout_seed);
        snprintf(r->eval_set, sizeof r->eval_set, "hold-out %d per class of %zu images of split %s, holdout_seed %lld",
                 c->data.eval_per_class, f->count, c->data.split, (long long)c->data.holdout_seed);
    }
    if (!eval && !strcmp(c->data.eval_split, c->data.split))
        fatal(EXIT_CONFIG, "%s: data.eval_split = data.split = \"%s\": the eval images would be training images",
              c->config_path, c->data.split);
    if (c->data.val_per_class > 0 && !eval && !is_phase(r, "pretrain") && !is_phase(r, "distill")) {
        if (!held) held = xcalloc(r->labeled_file.count, 1, "validation slice");
        carve_validation(r, held);
    }
    if (!eval) build_train_set(r, held);
    if (is_phase(r, "pretrain") || is_phase(r, "distill")) { /* the pool of images without labels */
        int use_extra = c->data.unlabeled_split[0] != 0;
        if (use_extra) stl10_open(&r->unlabeled_file, c->data.dir, c->data.unlabeled_split, 0, c->data.num_classes);
        size_t cap = (use_extra ? r->unlabeled_file.count : 0) + r->labeled_file.count;
        dataset_init(&r->unlabeled, cap);
        for (size_t i = 0; use_extra && i < r->unlabeled_file.count; i++) dataset_add(&r->unlabeled, &r->unlabeled_file, i);
        for (size_t i = 0; c->data.unlabeled_use_train && i < r->labeled_file.count; i++)
            if (!held || !held[i]) dataset_add(&r->unlabeled, &r->labeled_file, i);
        if (r->unlabeled.n == 0)
            fatal(EXIT_CONFIG, "%s: no pretraining images: set data.unlabeled_split or data.unlabeled_use_train", c->config_path);
    }
    free(held);
}

/* Rank 0: RUN_DIR/name, the record numbers of d's images in the labeled file, one per line,
 * after a "# records of FILE <what>, N images" header. */
static void write_records(const run_ctx *r, const char *name, const dataset *d, const char *what)
{
    FILE *out = open_in_run(r, name, "w");
    fprintf(out, "# records of %s %s, %zu images\n", r->labeled_file.path_x, what, d->n);
    for (size_t i = 0; i < d->n; i++) fprintf(out, "%lld\n", (long long)d->rec[i]);
    if (fclose(out) != 0) fatal(EXIT_IO, "%s/%s: write failed", r->cfg.run_dir, name);
}

/* Rank 0, once the run is known to be valid (config, data, checkpoints checked): the run
 * folder's outputs, PHASE first. Until then a refused run leaves an existing run folder as
 * it was, and a new one unclaimed (only .lock), free for any phase. */
static void start_outputs(run_ctx *r)
{
    if (r->rank != 0) return;
    if (!r->claimed) write_text(r, "PHASE", r->cfg.phase), r->claimed = 1;
    write_text(r, "config.resolved.cfg", r->cfg_text);
    if (is_phase(r, "eval")) return;
    r->metrics = open_in_run(r, "metrics.jsonl", "a");
    if (is_phase(r, "distill")) return; /* trains on teacher labels of the pool, no labeled images */
    char what[160];
    write_records(r, "labeled_indices.txt", &r->train, "used as labeled training images (0-based)");
    snprintf(what, sizeof what, "in the validation slice (data.val_per_class = %d, holdout_seed %lld; scored as "
             "val_top1, never trained on)", r->cfg.data.val_per_class, (long long)r->cfg.data.holdout_seed);
    if (r->val.n) write_records(r, "validation_indices.txt", &r->val, what);
}

/* RUN_DIR/.lock, held (flock) by rank 0 until the process ends, so that a second job
 * started into the same run_dir stops at once instead of interleaving its checkpoints and
 * metrics with the first's. Where the filesystem has no flock, a warning and no lock. */
static void lock_run_dir(const run_ctx *r)
{
    char path[PATH_MAX + 16], who[128] = "";
    snprintf(path, sizeof path, "%s/.lock", r->cfg.run_dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) fatal(EXIT_IO, "%s: cannot create: %s", path, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno != EWOULDBLOCK) {
            warn("%s: cannot lock (%s): make sure no other job uses run_dir %s", path, strerror(errno), r->cfg.run_dir);
            return; /* fd stays open: harmless */
        }
        ssize_t n = read(fd, who, sizeof who - 1);
        who[n > 0 ? n : 0] = 0;
        who[strcspn(who, "\n")] = 0;
        fatal(EXIT_CONFIG, "run_dir %s is in use by another job (%s holds %s): wait for it to end, or give this "
              "run its own run_dir", r->cfg.run_dir, who[0] ? who : "a process", path);
    }
    char host[64] = "?";
    gethostname(host, sizeof host - 1);
    int len = snprintf(who, sizeof who, "%s pid %ld\n", host, (long)getpid());
    if (ftruncate(fd, 0) != 0 || write(fd, who, (size_t)len) != len) warn("%s: cannot write the owner", path);
    /* fd is never closed: the lock lasts as long as this process */
}

/* Rank 0: a run folder belongs to one phase (RUN_DIR/PHASE), so that a phase started in the
 * wrong folder is refused before it touches anything there. Returns 1 when the folder is
 * already this phase's; else start_outputs writes PHASE once the run is known to be valid,
 * so that a refused run leaves the folder free for any phase. */
static int claim_run_dir(const run_ctx *r)
{
    char path[PATH_MAX + 16], have[32] = "";
    mkdir_p(r->cfg.run_dir);
    lock_run_dir(r);
    snprintf(path, sizeof path, "%s/PHASE", r->cfg.run_dir);
    FILE *f = fopen(path, "r");
    if (f) {
        if (!fgets(have, sizeof have, f)) have[0] = 0;
        fclose(f);
        have[strcspn(have, "\r\n")] = 0;
        if (have[0] && strcmp(have, r->cfg.phase))
            fatal(EXIT_CONFIG, "run_dir %s holds a %s run (%s); give %s its own run_dir", r->cfg.run_dir, have, path,
                  r->cfg.phase);
        return have[0] != 0;
    }
    return 0;
}

/* Batch sizes against the data and the ranks, before anything is allocated for them. */
static void check_batches(const run_ctx *r)
{
    const config *c = &r->cfg;
    if (is_phase(r, "eval")) return;
    const size_t G = (size_t)c->train.batch, world = (size_t)r->world;
    const int pre = is_phase(r, "pretrain"), pool = pre || is_phase(r, "distill");
    const size_t N = pool ? r->unlabeled.n : r->train.n;
    if (G < world)
        fatal(EXIT_CONFIG, "%s: train.batch = %zu is smaller than the %zu ranks: every rank needs at least "
              "one image per step", config_origin(c, "train.batch"), G, world);
    if (pre && G < 2)
        fatal(EXIT_CONFIG, "%s: train.batch = %zu: NT-Xent needs at least 2 images (negatives)",
              config_origin(c, "train.batch"), G);
    if (G > N)
        fatal(EXIT_CONFIG, "%s: train.batch = %zu is larger than the %zu %s images", config_origin(c, "train.batch"), G, N,
              pre ? "pretraining" : pool ? "unlabeled pool" : "labeled training");
    const size_t GP = (size_t)c->pretrain.probe_batch;
    if (pre && GP > r->train.n)
        fatal(EXIT_CONFIG, "%s: pretrain.probe_batch = %zu exceeds the %zu labeled images",
              config_origin(c, "pretrain.probe_batch"), GP, r->train.n);
    if (pre && GP > 0 && GP < world)
        fatal(EXIT_CONFIG, "%s: pretrain.probe_batch = %zu is smaller than the %zu ranks",
              config_origin(c, "pretrain.probe_batch"), GP, world);
}

/* Reads dataset entries idx[0..n) and writes their views into act[0] (3, nbatch, S, S) at
 * batch positions b0.. (view 0 at b0+j). aug NULL: no augmentation. */
static void load_views(run_ctx *r, const dataset *d, const int64_t *idx, size_t n, size_t nbatch,
                       size_t b0, const aug_cfg *aug, uint64_t epoch, int views)
{
    const size_t hw = (size_t)STL10_SIZE * STL10_SIZE;
    const double t0 = now_s();
    for (size_t j = 0; j < n; j++) {
        dataset_read(d, (size_t)idx[j], r->img);
        for (int v = 0; v < views; v++) {
            uint64_t key = augment_key((uint64_t)r->cfg.seed, epoch, (uint64_t)idx[j], (uint64_t)v);
            augment_view(r->img, STL10_SIZE, STL10_SIZE, aug, key, r->m.act[0] + (b0 + (size_t)v * n + j) * hw,
                         nbatch * hw);
        }
    }
    r->t_data += now_s() - t0;
}

/* ---- evaluation ------------------------------------------------------------------- */

/* Classifier logits (m.logits) of the unaugmented images idx[0..nb) = begin+off.. of d,
 * for a chunk at `off` of this rank's `count` images; returns nb (<= 1024 and max_batch). */
static size_t forward_chunk(run_ctx *r, const dataset *d, size_t begin, size_t count, size_t off, int64_t *idx)
{
    const size_t chunk = r->m.max_batch < 1024 ? r->m.max_batch : 1024;
    size_t nb = count - off < chunk ? count - off : chunk;
    for (size_t j = 0; j < nb; j++) idx[j] = (int64_t)(begin + off + j);
    load_views(r, d, idx, nb, nb, 0, NULL, 0, 1);
    encoder_forward(&r->m, nb, 0); /* BatchNorm: running statistics (ranks' chunk counts differ) */
    classifier_forward(&r->m, nb);
    return nb;
}

/* Top-1 of the classifier on d, sharded over ranks; confusion (C*C, rows = true class)
 * overwritten with the global counts. Returns top-1 as a fraction. */
static double evaluate(run_ctx *r, const dataset *d, int64_t *confusion)
{
    const int C = r->cfg.data.num_classes;
    memset(confusion, 0, (size_t)C * C * sizeof *confusion);
    size_t begin, count, nb;
    shard_range(d->n, r->world, r->rank, &begin, &count);
    int64_t idx[1024];
    for (size_t off = 0; off < count; off += nb) {
        nb = forward_chunk(r, d, begin, count, off, idx);
        for (size_t j = 0; j < nb; j++) {
            const float *l = r->m.logits + j * (size_t)C;
            int arg = 0;
            for (int k = 1; k < C; k++)
                if (l[k] > l[arg]) arg = k;
            confusion[d->label[idx[j]] * C + arg]++;
        }
    }
    dist_allreduce_sum_i64(confusion, (size_t)C * C);
    int64_t right = 0, total = 0;
    for (int i = 0; i < C; i++)
        for (int k = 0; k < C; k++) total += confusion[i * C + k], right += i == k ? confusion[i * C + k] : 0;
    return total ? (double)right / (double)total : 0.0;
}

/* ---- checkpoints ------------------------------------------------------------------ */

static void save_checkpoint(run_ctx *r, int64_t epoch, const char *name)
{
    if (r->rank == 0) {
        char path[PATH_MAX + 64];
        snprintf(path, sizeof path, "%s/%s", r->cfg.run_dir, name);
        ckpt_meta meta = {.epoch = epoch, .step = r->step, .world_size = r->world, .seed = r->cfg.seed,
                          .config_hash = config_training_hash(&r->cfg), .config_text = r->cfg_text,
                          .init_step = r->init_step, .init_config_hash = r->init_hash};
        snprintf(meta.phase, sizeof meta.phase, "%s", r->cfg.phase);
        snprintf(meta.eval_set, sizeof meta.eval_set, "%s", r->eval_set);
        ckpt_save(path, &r->m, &meta, 1);
        ckpt_set_latest(r->cfg.run_dir, name);
        /* keep the newest keep_checkpoints epoch checkpoints */
        int64_t old = epoch - (int64_t)r->cfg.run.checkpoint_every * r->cfg.run.keep_checkpoints;
        if (old >= 0 && !strncmp(name, "ckpt-epoch", 10)) {
            snprintf(path, sizeof path, "%s/ckpt-epoch%04lld.h5", r->cfg.run_dir, (long long)old);
            unlink(path);
        }
        if (strcmp(name, "ckpt-stop.h5")) { /* a stop checkpoint is superseded once LATEST moves on */
            snprintf(path, sizeof path, "%s/ckpt-stop.h5", r->cfg.run_dir);
            unlink(path);
        }
    }
    dist_all_ok(1); /* nobody runs ahead of a checkpoint that may have failed */
}

/* Loads `path` on rank 0 and broadcasts the groups in mask (with Adam moments when
 * with_optimizer); returns the metadata. Its config_text (rank 0 only, else NULL) goes to
 * *config_text when that is not NULL (the caller frees it), else it is freed. */
static ckpt_meta load_checkpoint(run_ctx *r, const char *path, unsigned mask, int with_optimizer, char **config_text)
{
    ckpt_meta meta = {0};
    if (config_text) *config_text = NULL;
    if (r->rank == 0) {
        ckpt_load(path, &r->m, mask, with_optimizer, &meta);
        if (config_text) *config_text = meta.config_text;
        else free(meta.config_text);
        meta.config_text = NULL;
    }
    dist_bcast(&meta, sizeof meta, 0);
    /* The eval images must be ones the checkpoint never saw: the same hold-out, unless this
     * run evaluates on a split of its own (data.eval_split). */
    if (!r->cfg.data.eval_split[0] && strcmp(meta.eval_set, r->eval_set))
        die_agreed(r, EXIT_CKPT, "%s was trained with eval set \"%s\", this run holds out \"%s\": the checkpoint "
                   "may have seen these eval images; use the data.* hold-out settings it was trained with", path,
                   meta.eval_set, r->eval_set);
    float *bufs[3] = {r->m.params, r->m.adam_m, r->m.adam_v};
    for (int b = 0; b < (with_optimizer ? 3 : 1); b++)
        for (int g = 0; g < NGROUPS; g++)
            if (mask & (1u << g))
                dist_bcast(bufs[b] + r->m.group_begin[g], (r->m.group_begin[g + 1] - r->m.group_begin[g]) * sizeof(float), 0);
    if (mask & (1u << GROUP_ENCODER)) /* BatchNorm running statistics come with the encoder */
        dist_bcast(r->m.buffers, r->m.nbuffer_floats * sizeof(float), 0);
    return meta;
}

/* Loads a trained classifier (all groups, no optimizer state) for eval or as the distill
 * teacher. A pretrain checkpoint, which has none, was refused already by
 * set_classifier_input, before the data was read. */
static ckpt_meta load_classifier(run_ctx *r, const char *path)
{
    return load_checkpoint(r, path, (1u << NGROUPS) - 1, 0, NULL);
}

/* resume = "auto" (LATEST of run_dir, if any), "none", or a path. Returns 0 when it starts
 * afresh, 1 when it resumed, 2 when the checkpoint has finished the run already (nothing to
 * do: the caller returns without writing anything); a finished run under settings that
 * would train something else is refused. */
static int try_resume(run_ctx *r, size_t steps_per_epoch)
{
    char path[PATH_MAX] = "";
    const char *res = r->cfg.resume;
    int found = 0;
    if (!strcmp(res, "none")) return 0;
    if (!strcmp(res, "auto")) found = r->rank == 0 ? ckpt_latest(r->cfg.run_dir, path, sizeof path) : 0;
    else snprintf(path, sizeof path, "%s", res), found = 1;
    dist_bcast(&found, sizeof found, 0);
    dist_bcast(path, sizeof path, 0);
    if (!found) return 0;
    /* the settings before the tensors (rank 0): a linear probe of other features would
     * otherwise stop at its classifier's shape, without saying why */
    char *text = NULL;
    if (r->rank == 0) {
        ckpt_meta peek = ckpt_read_meta(path);
        text = peek.config_text;
        if (strcmp(peek.phase, r->cfg.phase))
            fatal(EXIT_CKPT, "%s: a %s checkpoint cannot resume phase %s (resume = \"%s\")", path, peek.phase,
                  r->cfg.phase, res);
    }
    /* what makes the run this run: a resume must not silently switch seed, label subset,
     * batch, loss temperature, learning-rate schedule, (distill) teacher or (linear) probe
     * features half-way; with the cosine schedule the epoch count sets the curve too
     * (lr_at), so it stays as well */
    static const char *const same[] = {"seed", "data.labels_per_class", "train.batch", "pretrain.temperature",
                                       "distill.temperature", "checkpoint", "train.schedule",
                                       "train.warmup_epochs", "train.epochs", "model.probe_features",
                                       "model.finetune_from", "data.val_per_class"};
    for (size_t i = 0; r->rank == 0 && i < sizeof same / sizeof same[0]; i++) {
        char was[PATH_MAX + 8], now[PATH_MAX + 8];
        if (!strcmp(same[i], "checkpoint") && !is_phase(r, "distill")) continue;
        if (!strcmp(same[i], "train.epochs") && strcmp(r->cfg.train.schedule, "cosine")) continue;
        if (config_key_unused(r->cfg.phase, same[i])) continue; /* e.g. model.probe_features outside linear */
        if (config_text_differs(text, &r->cfg, same[i], was, now, sizeof was))
            fatal(EXIT_CKPT, "%s: written with %s = %s, this run has %s = %s: a resumed run keeps it (set it "
                  "back, or start over with resume = \"none\" or another run_dir)", path, same[i], was, same[i], now);
    }
    ckpt_meta meta = load_checkpoint(r, path, (1u << NGROUPS) - 1, 1, NULL);
    const int finished = meta.epoch >= r->cfg.train.epochs;
    if (finished && r->rank == 0) {
        char was[PATH_MAX + 8], now[PATH_MAX + 8];
        const char *k = config_training_difference(text, &r->cfg, was, now, sizeof was);
        if (k)
            fatal(EXIT_CKPT, "%s: this %s run finished (epoch %lld) with %s = %s, this run has %s = %s: rerunning it "
                  "would keep the old result under the new settings; remove %s or use another run_dir", path,
                  r->cfg.phase, (long long)meta.epoch, k, was, k, now, r->cfg.run_dir);
    }
    free(text);
    r->init_step = meta.init_step;
    r->init_hash = meta.init_config_hash;
    r->step = meta.step;
    r->start_epoch = (int)meta.epoch;
    r->skip_steps = meta.step - meta.epoch * (int64_t)steps_per_epoch;
    if (r->skip_steps < 0 || (size_t)r->skip_steps > steps_per_epoch)
        fatal(EXIT_CKPT, "%s: step %lld does not fit epoch %lld with %zu steps per epoch: the batch "
              "size or data changed since it was written", path, (long long)meta.step, (long long)meta.epoch, steps_per_epoch);
    if (r->rank == 0 && finished)
        printf("%s: %s finished this run already (epoch %lld, step %lld): nothing to do\n", r->cfg.phase, path,
               (long long)meta.epoch, (long long)meta.step);
    else if (r->rank == 0)
        printf("%s: resumed from %s (epochs done: %lld; continuing epoch %lld at step %lld; written by %lld ranks)\n",
               r->cfg.phase, path, (long long)meta.epoch, (long long)meta.epoch + 1, (long long)meta.step,
               (long long)meta.world_size);
    return finished ? 2 : 1;
}

/* A resumed linear / finetune / distill run continues from the encoder it started with; if
 * that checkpoint (`init`) has since been trained further or replaced (another step or
 * config), finishing the run would report a result of the old encoder as the new one's:
 * refuse. Skipped when the file is gone (the run does not need it) or the resumed checkpoint
 * predates the init_* attributes. */
static void init_unchanged(run_ctx *r, const char *init)
{
    if (r->rank != 0 || !init[0] || r->init_step < 0 || access(init, R_OK) != 0) return;
    ckpt_meta now = ckpt_read_meta(init);
    free(now.config_text);
    if (now.step != r->init_step || now.config_hash != r->init_hash)
        fatal(EXIT_CKPT, "%s: this %s run started from %s at step %lld, which now holds %s (step %lld): its "
              "result would be the old encoder's; start over (resume = \"none\", or remove %s)", r->cfg.run_dir,
              r->cfg.phase, init, (long long)r->init_step,
              now.step != r->init_step ? "a run trained further or retrained" : "a run of other settings", (long long)now.step,
              r->cfg.run_dir);
}

/* ---- training helpers ------------------------------------------------------------- */

static void bn_allreduce(double *buf, size_t n, void *ctx)
{
    (void)ctx;
    dist_allreduce_sum_d(buf, n);
}

/* The learning rate of global step `step` (0-based, spe steps per epoch): a linear warmup to
 * train.lr over train.warmup_epochs (Goyal et al. 2017, as in SimCLR's appendix B.1), then
 * train.lr ("constant") or a cosine decay to 0 at train.epochs ("cosine", Loshchilov & Hutter 2017). */
static float lr_at(const config *c, int64_t step, size_t spe)
{
    double total = (double)c->train.epochs * (double)spe, warm = (double)c->train.warmup_epochs * (double)spe;
    double t = (double)step, lr = c->train.lr;
    if (t < warm) return (float)(lr * (t + 1.0) / warm);
    if (!strcmp(c->train.schedule, "cosine") && total > warm)
        return (float)(lr * 0.5 * (1.0 + cos(M_PI * (t - warm) / (total - warm))));
    return (float)lr;
}

/* The rate of the last step before global step `step` (the "lr" of a metrics line: an epoch's
 * last update); lr_at(0) before any step. */
static double last_lr(const config *c, int64_t step, size_t spe)
{
    return (double)lr_at(c, step > 0 ? step - 1 : 0, spe);
}

/* One optimizer update (train.optimizer) of the parameter groups [g0, g1). */
static void update_groups(run_ctx *r, int g0, int g1, float lr)
{
    const config *c = &r->cfg;
    size_t b = r->m.group_begin[g0], e = r->m.group_begin[g1];
    if (!strcmp(c->train.optimizer, "sgd")) {
        sgd_update(r->m.params + b, r->m.grads + b, r->m.adam_m + b, e - b, lr, (float)c->train.momentum,
                   (float)c->train.weight_decay);
        return;
    }
    adam_cfg a = {(float)c->train.lr, (float)c->train.beta1, (float)c->train.beta2, (float)c->train.eps,
                  (float)c->train.weight_decay};
    adam_update(r->m.params + b, r->m.grads + b, r->m.adam_m + b, r->m.adam_v + b, e - b, &a, lr, r->step);
}

static void allreduce_grads(run_ctx *r, int g0, int g1)
{
    size_t b = r->m.group_begin[g0], e = r->m.group_begin[g1];
    dist_allreduce_sum_f(r->m.grads + b, e - b);
}

/* Rank 0's progress line every run.log_interval_s seconds. */
typedef struct {
    double t_epoch, t_last;
} progress;

static void progress_line(const run_ctx *r, progress *p, int epoch, size_t s, size_t spe, double loss,
                          double acc, size_t images)
{
    double t = now_s();
    if (r->rank != 0 || (t - p->t_last < r->cfg.run.log_interval_s && s + 1 < spe)) return;
    p->t_last = t;
    double el = t - p->t_epoch, rate = (double)images / (el > 0 ? el : 1e-9);
    double left = el / (double)(s + 1) * (double)(spe - s - 1) +
                  el / (double)(s + 1) * (double)spe * (double)(r->cfg.train.epochs - epoch - 1);
    printf("%s epoch %d/%d step %zu/%zu loss %.4f acc %.3f | %.1f img/s | %.0f s left\n", r->cfg.phase,
           epoch + 1, r->cfg.train.epochs, s + 1, spe, loss, acc, rate, left);
    fflush(stdout);
}

static void metrics_line(run_ctx *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void metrics_line(run_ctx *r, const char *fmt, ...)
{
    if (r->rank != 0) return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(r->metrics, fmt, ap);
    va_end(ap);
    if (fflush(r->metrics) != 0) fatal(EXIT_IO, "%s/metrics.jsonl: write failed", r->cfg.run_dir);
}

/* Peak resident memory of this process in MiB (getrusage). */
static double max_rss_mib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;
}

/* Writes s as a JSON string literal (quotes, backslashes and control characters escaped). */
static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
        else if (*p < 0x20) fprintf(f, "\\u%04x", *p);
        else fputc(*p, f);
    }
    fputc('"', f);
}

/* The timing fields of a metrics line: images/s and seconds of the epoch, and the MAXIMUM
 * over ranks of the seconds spent reading + augmenting images, inside each kind of
 * collective (waiting for the slowest rank included), and of peak memory. comm_min_s is the
 * MINIMUM over ranks of the seconds inside collectives: the slowest rank hardly waits, so it
 * is the collectives' own cost, and comm_s - comm_min_s is waiting for slower ranks (load
 * imbalance, e.g. cores of unequal speed). Collective. */
static void timing_json(run_ctx *r, double secs, size_t images, char *out, size_t n)
{
    double v[DIST_NOPS + 4];
    v[DIST_NOPS] = dist_comm_seconds(v);
    v[DIST_NOPS + 1] = r->t_data;
    v[DIST_NOPS + 2] = max_rss_mib();
    v[DIST_NOPS + 3] = -v[DIST_NOPS]; /* max of the negated = -min */
    dist_allreduce_max_d(v, DIST_NOPS + 4);
    snprintf(out, n, "\"images_per_s\":%.3f,\"seconds\":%.6f,\"data_s\":%.6f,\"comm_s\":%.6f,\"comm_min_s\":%.6f,"
             "\"allgather_s\":%.6f,\"reduce_scatter_s\":%.6f,\"allreduce_s\":%.6f,\"max_rss_mib\":%.1f",
             (double)images / secs, secs, v[DIST_NOPS + 1], v[DIST_NOPS], -v[DIST_NOPS + 3], v[DIST_ALLGATHER],
             v[DIST_REDUCE_SCATTER], v[DIST_ALLREDUCE], v[DIST_NOPS + 2]);
}

/* JSON number or null for non-finite values. */
static const char *jnum(char *buf, double v)
{
    if (isfinite(v)) snprintf(buf, 32, "%.6g", v);
    else snprintf(buf, 32, "null");
    return buf;
}

/* Ranks agree whether a stop signal arrived; if so, checkpoint and return 1. */
static int stop_requested(run_ctx *r, int epoch)
{
    if (dist_all_ok(!g_stop_signal)) return 0;
    save_checkpoint(r, epoch, "ckpt-stop.h5");
    if (r->rank == 0)
        fprintf(stderr, "simclr: stopped by signal during epoch %d, at step %lld; checkpoint %s/ckpt-stop.h5 "
                "written; rerun with resume=auto to continue (exit %d)\n", epoch + 1, (long long)r->step,
                r->cfg.run_dir, EXIT_REQUEUE);
    return 1;
}

static void check_finite(run_ctx *r, double loss, int epoch)
{
    if (isfinite(loss)) return;
    die_agreed(r, EXIT_DIVERGED, "%s: non-finite loss at epoch %d, step %lld (diverged: lower train.lr?); "
               "the last good checkpoint in %s is intact", r->cfg.phase, epoch + 1, (long long)r->step + 1,
               r->cfg.run_dir);
}

/* Global batch `global` of `n` items: this rank's slice of step s of perm. */
static const int64_t *local_slice(const run_ctx *r, const int64_t *perm, size_t s, size_t global, size_t *count,
                                  size_t *begin)
{
    shard_range(global, r->world, r->rank, begin, count);
    return perm + s * global + *begin;
}

/* Every rank must run the same number of steps per epoch, or collectives would hang: an
 * epoch-start check that the counts agree. */
static void check_steps_agree(const run_ctx *r, size_t n, size_t spe)
{
    int64_t mine[2] = {(int64_t)n, (int64_t)spe}, root[2] = {mine[0], mine[1]};
    dist_bcast(root, sizeof root, 0);
    if (!dist_all_ok(root[0] == mine[0] && root[1] == mine[1]))
        fatal(EXIT_INTERNAL, "ranks disagree on the data: rank %d sees %lld images and %lld steps per "
              "epoch, rank 0 %lld and %lld", r->rank, (long long)mine[0], (long long)mine[1],
              (long long)root[0], (long long)root[1]);
}

/* Start of an epoch: the ranks agree on the step count, the epoch's permutation of the N
 * items (keyed by seed, epoch and the data set's salt), timers reset. Returns the first
 * step to run (> 0 only in the epoch a mid-epoch checkpoint resumed). */
static size_t epoch_begin(run_ctx *r, int64_t *perm, size_t N, size_t spe, int epoch, uint64_t salt, progress *pg)
{
    check_steps_agree(r, N, spe);
    permute(perm, N, rng_key((uint64_t)r->cfg.seed, (uint64_t)epoch, salt, 0));
    pg->t_epoch = pg->t_last = now_s();
    r->t_data = 0.0;
    dist_comm_seconds(NULL);
    return epoch == r->start_epoch ? (size_t)r->skip_steps : 0;
}

/* End of an epoch: a checkpoint every run.checkpoint_every epochs and after the last. */
static void epoch_end(run_ctx *r, int epoch)
{
    if ((epoch + 1) % r->cfg.run.checkpoint_every == 0 || epoch + 1 == r->cfg.train.epochs) {
        char name[64];
        snprintf(name, sizeof name, "ckpt-epoch%04d.h5", epoch + 1);
        save_checkpoint(r, epoch + 1, name);
    }
}

/* ---- pretrain ---------------------------------------------------------------------- */

static int pretrain(run_ctx *r)
{
    const config *c = &r->cfg;
    model *m = &r->m;
    const size_t G = (size_t)c->train.batch, D = (size_t)c->model.proj_dim, N = r->unlabeled.n;
    const size_t spe = steps_per_epoch(N, G);
    const size_t GP = (size_t)c->pretrain.probe_batch;
    const size_t probe_spe = GP ? steps_per_epoch(r->train.n, GP) : 0;
    if (try_resume(r, spe) == 2) return 0;

    ntxent_dist nt;
    ntxent_dist_init(&nt, G, D, r->world, r->rank);
    const size_t ln = nt.n_local;
    float *zn = xcalloc(2 * ln * D, sizeof(float), "normalised projections");
    float *norm = xcalloc(2 * ln, sizeof(float), "projection norms");
    float *dzn = xcalloc(2 * ln * D, sizeof(float), "projection gradients");
    int32_t *plab = xcalloc(m->max_batch, sizeof *plab, "probe labels");
    int64_t *perm = xcalloc(N, sizeof *perm, "permutation");
    int64_t *pperm = xcalloc(r->train.n ? r->train.n : 1, sizeof *pperm, "probe permutation");
    const aug_cfg *aug = &c->aug_contrastive;

    start_outputs(r);
    if (r->rank == 0) { /* shard_range: every rank holds floor or ceil of G / world images */
        const size_t lo = 2 * (G / (size_t)r->world), hi = 2 * ((G + (size_t)r->world - 1) / (size_t)r->world);
        char per[48];
        snprintf(per, sizeof per, lo == hi ? "%zu" : "%zu-%zu", lo, hi);
        printf("pretrain: %zu unlabeled images, global batch %zu (%zu views, %s per rank on %d rank%s), "
               "%zu steps/epoch, temperature %g%s\n", N, G, 2 * G, per, r->world, r->world == 1 ? "" : "s", spe,
               c->pretrain.temperature, GP ? ", online linear probe on" : "");
    }
    for (int epoch = r->start_epoch; epoch < c->train.epochs; epoch++) {
        progress pg;
        const size_t s0 = epoch_begin(r, perm, N, spe, epoch, 0x756e6c6162ULL, &pg);
        double sums[4] = {0}; /* loss, contrastive correct, probe loss, probe correct */
        size_t done = 0, pdone = 0;
        for (size_t s = s0; s < spe; s++) {
            size_t b, n;
            const int64_t *idx = local_slice(r, perm, s, G, &n, &b);
            load_views(r, &r->unlabeled, idx, n, 2 * n, 0, aug, (uint64_t)epoch, 2);
            encoder_forward(m, 2 * n, 1);
            head_forward(m, 2 * n);
            l2norm_forward(m->proj, zn, norm, 2 * n, D);
            size_t correct = 0;
            double loss = ntxent_dist_step(&nt, zn, (float)c->pretrain.temperature, dzn, &correct);
            if (fault(r, "nan")) loss = NAN;
            l2norm_backward(zn, norm, dzn, m->dproj, 2 * n, D);
            model_zero_grad(m, GROUP_ENCODER, GROUP_CLASSIFIER);
            head_backward(m, 2 * n);
            encoder_backward(m, 2 * n);
            allreduce_grads(r, GROUP_ENCODER, GROUP_CLASSIFIER);
            double st[2] = {loss, (double)correct};
            dist_allreduce_sum_d(st, 2);
            check_finite(r, st[0], epoch);
            float lr = lr_at(c, r->step, spe);
            r->step++;
            update_groups(r, GROUP_ENCODER, GROUP_CLASSIFIER, lr);
            sums[0] += st[0] / (double)(2 * G), sums[1] += st[1];
            done++;
            if (GP) { /* online linear probe on labeled images, encoder frozen (keras example) */
                size_t ps = (size_t)(r->step - 1) % probe_spe, pepoch = (size_t)(r->step - 1) / probe_spe;
                if (ps == 0 || s == s0)
                    permute(pperm, r->train.n, rng_key((uint64_t)c->seed, pepoch, 0x70726f6265ULL, 0));
                size_t pb, pn;
                const int64_t *pidx = local_slice(r, pperm, ps, GP, &pn, &pb);
                load_views(r, &r->train, pidx, pn, pn, 0, &c->aug_classification, pepoch + (1ull << 32), 1);
                encoder_forward(m, pn, 0); /* frozen encoder: BatchNorm's running statistics */
                classifier_forward(m, pn);
                for (size_t j = 0; j < pn; j++) plab[j] = r->train.label[pidx[j]];
                size_t pc = 0;
                double pl = softmax_xent(m->logits, plab, pn, (size_t)c->data.num_classes, 1.0f / (float)GP, m->dlogits, &pc);
                model_zero_grad(m, GROUP_CLASSIFIER, NGROUPS);
                classifier_backward(m, pn, 0);
                allreduce_grads(r, GROUP_CLASSIFIER, NGROUPS);
                double ps2[2] = {pl, (double)pc};
                dist_allreduce_sum_d(ps2, 2);
                update_groups(r, GROUP_CLASSIFIER, NGROUPS, lr);
                sums[2] += ps2[0] / (double)GP, sums[3] += ps2[1];
                pdone++;
            }
            progress_line(r, &pg, epoch, s, spe, sums[0] / (double)done, sums[1] / (double)(2 * G * done), G * done);
            if (stop_requested(r, epoch)) return EXIT_REQUEUE;
        }
        double secs = now_s() - pg.t_epoch;
        char a[32], b2[32], c2[32], d2[32], lrs[32], timing[512];
        timing_json(r, secs, G * done, timing, sizeof timing);
        metrics_line(r, "{\"phase\":\"pretrain\",\"epoch\":%d,\"step\":%lld,\"loss\":%s,\"contrastive_acc\":%s%s%s%s%s,"
                     "%s,\"world_size\":%d,\"steps\":%zu,\"lr\":%s}\n", epoch + 1, (long long)r->step,
                     jnum(a, done ? sums[0] / (double)done : NAN), jnum(b2, done ? sums[1] / (double)(2 * G * done) : NAN),
                     GP ? ",\"probe_loss\":" : "", GP ? jnum(c2, pdone ? sums[2] / (double)pdone : NAN) : "",
                     GP ? ",\"probe_acc\":" : "", GP ? jnum(d2, pdone ? sums[3] / (double)(GP * pdone) : NAN) : "",
                     timing, r->world, done, jnum(lrs, last_lr(c, r->step, spe)));
        if (r->rank == 0)
            printf("pretrain epoch %d/%d: loss %.4f contrastive acc %.3f%s | lr %.3g | %.1f img/s, %.1f s\n", epoch + 1,
                   c->train.epochs, done ? sums[0] / (double)done : 0.0, done ? sums[1] / (double)(2 * G * done) : 0.0,
                   GP ? " (probe on)" : "", last_lr(c, r->step, spe), (double)(G * done) / secs, secs);
        epoch_end(r, epoch);
    }
    save_checkpoint(r, c->train.epochs, "final.h5");
    ntxent_dist_free(&nt);
    free(zn), free(norm), free(dzn), free(plab), free(perm), free(pperm);
    return 0;
}

/* ---- linear / finetune / baseline ------------------------------------------------- */

/* distill: the teacher (classifier checkpoint `checkpoint`) labels every image of the
 * unlabeled pool with softmax(logits / distill.temperature), each rank its shard, summed
 * into one (N, C) table on every rank (4 C bytes per pool image); the student's weights
 * and BatchNorm statistics (the model before the call) are kept aside and put back.
 * Returns the table. */
static float *teacher_labels(run_ctx *r)
{
    const config *c = &r->cfg;
    const size_t C = (size_t)c->data.num_classes, N = r->unlabeled.n;
    const size_t np = r->m.nparams, nbuf = r->m.nbuffer_floats; /* weights + BatchNorm statistics */
    float *student = xcalloc(np + nbuf, sizeof *student, "student weights");
    memcpy(student, r->m.params, np * sizeof *student);
    memcpy(student + np, r->m.buffers, nbuf * sizeof *student);
    ckpt_meta meta = load_classifier(r, c->checkpoint);
    const double t0 = now_s();
    int64_t *confusion = xcalloc(C * C, sizeof *confusion, "confusion");
    const double teacher_top1 = evaluate(r, &r->eval, confusion);
    float *soft = xcalloc(N * C, sizeof *soft, "teacher soft labels");
    size_t begin, count, nb;
    shard_range(N, r->world, r->rank, &begin, &count);
    int64_t idx[1024];
    for (size_t off = 0; off < count; off += nb) {
        nb = forward_chunk(r, &r->unlabeled, begin, count, off, idx);
        softmax_rows(r->m.logits, nb, C, (float)c->distill.temperature, soft + (begin + off) * C);
    }
    dist_allreduce_sum_f(soft, N * C);
    if (r->rank == 0)
        printf("distill: teacher %s (%s, eval top-1 %.2f%%) soft-labelled %zu unlabeled images at temperature %g "
               "in %.1f s\n", c->checkpoint, meta.phase, 100.0 * teacher_top1, N, c->distill.temperature, now_s() - t0);
    memcpy(r->m.params, student, np * sizeof *student);
    memcpy(r->m.buffers, student + np, nbuf * sizeof *student);
    free(student);
    free(confusion);
    return soft;
}

static int classify(run_ctx *r)
{
    const config *c = &r->cfg;
    model *m = &r->m;
    const int train_encoder = !is_phase(r, "linear"), distill = is_phase(r, "distill");
    const dataset *d = distill ? &r->unlabeled : &r->train;
    const size_t G = (size_t)c->train.batch, N = d->n, C = (size_t)c->data.num_classes;
    const size_t spe = steps_per_epoch(N, G);
    const int g0 = train_encoder ? GROUP_ENCODER : GROUP_CLASSIFIER;
    const char *init = distill ? c->distill.init : is_phase(r, "baseline") ? "" : c->checkpoint;
    const int resumed = try_resume(r, spe);
    if (resumed) init_unchanged(r, init);
    if (resumed == 2) return 0;
    if (!resumed && init[0]) {
        /* fine-tuning from the head's first layer: the head pretraining trained (a pretrain
         * checkpoint: set_classifier_input checked) */
        const int head = m->cfg.classifier_on_head;
        ckpt_meta meta = load_checkpoint(r, init, 1u << GROUP_ENCODER | (head ? 1u << GROUP_HEAD : 0), 0, NULL);
        r->init_step = meta.step;
        r->init_hash = meta.config_hash;
        if (r->rank == 0)
            printf("%s: encoder%s from %s (%s, epoch %lld)\n", c->phase, head ? " and head.fc0" : "", init, meta.phase,
                   (long long)meta.epoch);
    }
    float *soft = distill ? teacher_labels(r) : NULL; /* after the student's checkpoints: those fail fast */
    start_outputs(r);
    int64_t *perm = xcalloc(N, sizeof *perm, "permutation");
    int64_t *confusion = xcalloc(C * C, sizeof *confusion, "confusion");
    int32_t *lab = xcalloc(m->max_batch, sizeof *lab, "labels");
    float *target = distill ? xcalloc(m->max_batch * C, sizeof *target, "soft targets") : NULL;
    if (r->rank == 0)
        printf("%s: %zu %s images, global batch %zu on %d rank%s, %zu steps/epoch, %s; eval: %s%s%s\n", c->phase,
               N, distill ? "teacher-labelled" : "labeled", G, r->world, r->world == 1 ? "" : "s", spe,
               train_encoder ? (m->cfg.classifier_on_head ? "encoder and head.fc0 trained, classifier on head.fc0 "
                                                            "(model.finetune_from)" : "encoder trained")
               : m->cfg.classifier_on_conv ? "encoder frozen, probe on the conv features (model.probe_features)"
                                           : "encoder frozen, probe on the encoder output (model.probe_features)",
               r->eval_desc, r->val.n ? "; validation: " : "", r->val.n ? r->val_desc : "");
    for (int epoch = r->start_epoch; epoch < c->train.epochs; epoch++) {
        progress pg;
        const size_t s0 = epoch_begin(r, perm, N, spe, epoch, 0x6c61626c6564ULL, &pg);
        double sums[2] = {0}; /* loss, correct */
        size_t done = 0;
        for (size_t s = s0; s < spe; s++) {
            size_t b, n;
            const int64_t *idx = local_slice(r, perm, s, G, &n, &b);
            load_views(r, d, idx, n, n, 0, train_encoder ? &c->aug_classification : &c->aug_probe, (uint64_t)epoch, 1);
            for (size_t j = 0; j < n; j++)
                if (distill) memcpy(target + j * C, soft + (size_t)idx[j] * C, C * sizeof *target);
                else lab[j] = d->label[idx[j]];
            encoder_forward(m, n, train_encoder); /* linear probe: BatchNorm frozen too */
            classifier_forward(m, n);
            size_t correct = 0; /* distill: agreement with the teacher's argmax */
            double loss = distill ? softmax_xent_soft(m->logits, target, n, C, (float)c->distill.temperature,
                                                      1.0f / (float)G, m->dlogits, &correct)
                                  : softmax_xent(m->logits, lab, n, C, 1.0f / (float)G, m->dlogits, &correct);
            if (fault(r, "nan")) loss = NAN;
            model_zero_grad(m, g0, NGROUPS);
            classifier_backward(m, n, train_encoder);
            if (train_encoder) encoder_backward(m, n);
            allreduce_grads(r, g0, NGROUPS);
            double st[2] = {loss, (double)correct};
            dist_allreduce_sum_d(st, 2);
            check_finite(r, st[0], epoch);
            float lr = lr_at(c, r->step, spe);
            r->step++;
            update_groups(r, g0, NGROUPS, lr);
            sums[0] += st[0] / (double)G, sums[1] += st[1];
            done++;
            progress_line(r, &pg, epoch, s, spe, sums[0] / (double)done, sums[1] / (double)(G * done), G * done);
            if (stop_requested(r, epoch)) return EXIT_REQUEUE;
        }
        double secs = now_s() - pg.t_epoch;
        char a[32], b2[32], lrs[32], timing[512];
        timing_json(r, secs, G * done, timing, sizeof timing);
        const int eval_now = (epoch + 1) % c->train.eval_every == 0 || epoch + 1 == c->train.epochs;
        double top1 = eval_now ? evaluate(r, &r->eval, confusion) : NAN;
        double vtop1 = eval_now && r->val.n ? evaluate(r, &r->val, confusion) : NAN;
        char e[32], v[32];
        metrics_line(r, "{\"phase\":\"%s\",\"epoch\":%d,\"step\":%lld,\"loss\":%s,\"train_acc\":%s,\"eval_top1\":%s,"
                     "\"val_top1\":%s,%s,\"world_size\":%d,\"steps\":%zu,\"lr\":%s}\n", c->phase, epoch + 1,
                     (long long)r->step, jnum(a, done ? sums[0] / (double)done : NAN),
                     jnum(b2, done ? sums[1] / (double)(G * done) : NAN), jnum(e, top1), jnum(v, vtop1), timing, r->world,
                     done, jnum(lrs, last_lr(c, r->step, spe)));
        if (r->rank == 0) {
            char ev[80] = "";
            if (eval_now) snprintf(ev, sizeof ev, " eval top-1 %.2f%%", 100.0 * top1);
            if (eval_now && r->val.n) snprintf(ev + strlen(ev), sizeof ev - strlen(ev), " val top-1 %.2f%%", 100.0 * vtop1);
            printf("%s epoch %d/%d: loss %.4f train acc %.3f%s | lr %.3g | %.1f img/s, %.1f s\n", c->phase, epoch + 1,
                   c->train.epochs, done ? sums[0] / (double)done : 0.0, done ? sums[1] / (double)(G * done) : 0.0, ev,
                   last_lr(c, r->step, spe), (double)(G * done) / secs, secs);
        }
        epoch_end(r, epoch);
    }
    save_checkpoint(r, c->train.epochs, "final.h5");
    free(perm), free(confusion), free(lab), free(target), free(soft);
    return 0;
}

/* ---- eval ------------------------------------------------------------------------- */

static int eval_phase(run_ctx *r)
{
    const config *c = &r->cfg;
    const int C = c->data.num_classes;
    ckpt_meta meta = load_classifier(r, c->checkpoint);
    start_outputs(r);
    int64_t *conf = xcalloc((size_t)C * C, sizeof *conf, "confusion");
    double t0 = now_s();
    double top1 = evaluate(r, &r->eval, conf);
    double secs = now_s() - t0;
    if (r->rank == 0) {
        char **names = stl10_class_names(c->data.dir, C); /* checked: one name per class */
        const char *input = r->m.cfg.classifier_on_conv ? "conv" : r->m.cfg.classifier_on_head ? "head0" : "embed";
        FILE *f = open_in_run(r, "eval.json", "w");
        fprintf(f, "{\"phase\":\"eval\",\"trained_phase\":");
        json_str(f, meta.phase);
        fprintf(f, ",\"classifier_input\":");
        json_str(f, input);
        fprintf(f, ",\"checkpoint\":");
        json_str(f, c->checkpoint);
        fprintf(f, ",\"top1\":%.6f,\"n\":%zu,\n \"per_class\":[", top1, r->eval.n);
        for (int i = 0; i < C; i++) {
            int64_t row = 0;
            for (int k = 0; k < C; k++) row += conf[i * C + k];
            fprintf(f, "%s%.6f", i ? "," : "", row ? (double)conf[i * C + i] / (double)row : 0.0);
        }
        fprintf(f, "],\n \"confusion\":[");
        for (int i = 0; i < C; i++) {
            fprintf(f, "%s[", i ? "," : "");
            for (int k = 0; k < C; k++) fprintf(f, "%s%lld", k ? "," : "", (long long)conf[i * C + k]);
            fprintf(f, "]");
        }
        fprintf(f, "],\n \"class_names\":[");
        for (int k = 0; k < C; k++) fprintf(f, "%s", k ? "," : ""), json_str(f, names[k]);
        free(names);
        fprintf(f, "],\n \"data_dir\":");
        json_str(f, c->data.dir);
        fprintf(f, ",\"split\":");
        json_str(f, c->data.eval_split[0] ? c->data.eval_split : c->data.split);
        fprintf(f, ",\"eval_set\":");
        json_str(f, r->eval_desc);
        fprintf(f, ",\"world_size\":%d,\n \"seconds\":%.3f,\"images_per_s\":%.2f}\n", r->world, secs,
                (double)r->eval.n / secs);
        if (fclose(f) != 0) fatal(EXIT_IO, "%s/eval.json: write failed", c->run_dir);
        printf("eval: %s checkpoint %s (classifier on %s): top-1 %.2f%% on %zu images (%s)\n", meta.phase,
               c->checkpoint, input, 100.0 * top1, r->eval.n, r->eval_desc);
    }
    free(conf);
    return 0;
}

/* ---- entry ------------------------------------------------------------------------ */

/* BLIS threads per rank (run.threads, or cores per node / ranks per node); rank 0 prints
 * every rank's CPU affinity and thread count once, and warns on oversubscription. */
static void setup_threads(const run_ctx *r)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int local = dist_local_size();
    int t = r->cfg.run.threads > 0 ? r->cfg.run.threads : (int)(cores / local > 0 ? cores / local : 1);
    gemm_set_threads(t);
    cpu_set_t set;
    char line[256] = "", host[64] = "?";
    gethostname(host, sizeof host - 1);
    int n = snprintf(line, sizeof line, "rank %d on %s: %d BLIS thread%s, CPUs", r->rank, host, t, t == 1 ? "" : "s");
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        for (int c = 0; c < CPU_SETSIZE && n < (int)sizeof line - 16; c++) {
            if (!CPU_ISSET(c, &set) || (c > 0 && CPU_ISSET(c - 1, &set))) continue;
            int e = c;
            while (e + 1 < CPU_SETSIZE && CPU_ISSET(e + 1, &set)) e++;
            n += e > c ? snprintf(line + n, sizeof line - (size_t)n, " %d-%d", c, e)
                       : snprintf(line + n, sizeof line - (size_t)n, " %d", c);
        }
    }
    char *all = r->rank == 0 ? xcalloc((size_t)r->world, sizeof line, "affinity lines") : NULL;
    dist_gather_text(line, all, sizeof line);
    if (r->rank == 0) {
        for (int q = 0; q < r->world; q++) printf("%s\n", all + (size_t)q * sizeof line);
        printf("BLIS kernels: %s (%s)\n", gemm_kernels(), gemm_kernels_choice());
        if ((long)t * local > cores)
            warn("%d ranks x %d BLIS threads on this node exceed its %ld cores (%s)", local, t, cores,
                 t > 1 ? "set run.threads" : "more ranks than cores: they take turns, and each step waits for the slowest");
    }
    free(all);
}

/* model.classifier_on_conv / classifier_on_head for this phase: the linear probe reads the
 * conv features when model.probe_features = "conv", finetune and baseline the projection
 * head's first layer when model.finetune_from = "head0"; eval and the distill teacher take
 * the layout of the classifier in `checkpoint` (from the configuration stored in it).
 * Rank 0 reads the metadata of every phase's `checkpoint` here, so that a missing or
 * unreadable one is named before the data is read and before run_dir is created. */
static void set_classifier_input(run_ctx *r)
{
    config *c = &r->cfg;
    int on_conv = is_phase(r, "linear") && !strcmp(c->probe_features, "conv"), pretrained = 0;
    int on_head = (is_phase(r, "finetune") || is_phase(r, "baseline")) && !strcmp(c->finetune_from, "head0");
    const int reads = is_phase(r, "eval") || is_phase(r, "distill");
    char head_from[16] = ""; /* a "head0" finetune: the phase that wrote its checkpoint */
    if (r->rank == 0 && (reads || (c->checkpoint[0] && (is_phase(r, "linear") || is_phase(r, "finetune"))))) {
        ckpt_meta meta = ckpt_read_meta(c->checkpoint); /* a missing or unreadable one: named here */
        if (on_head && !reads) snprintf(head_from, sizeof head_from, "%s", meta.phase);
        if (reads) {
            config stored;
            config_from_text(meta.config_text, &stored);
            on_conv = !strcmp(meta.phase, "linear") && !strcmp(stored.probe_features, "conv");
            on_head = (!strcmp(meta.phase, "finetune") || !strcmp(meta.phase, "baseline")) &&
                      !strcmp(stored.finetune_from, "head0");
            pretrained = !strcmp(meta.phase, "pretrain");
        }
        free(meta.config_text);
    }
    dist_bcast(&on_conv, sizeof on_conv, 0);
    dist_bcast(&on_head, sizeof on_head, 0);
    dist_bcast(head_from, sizeof head_from, 0);
    if (head_from[0] && strcmp(head_from, "pretrain")) /* before run_dir is claimed */
        die_agreed(r, EXIT_CKPT, "%s: model.finetune_from = \"head0\" needs the projection head of a pretrain "
                   "checkpoint; this one was written by %s", c->checkpoint, head_from);
    dist_bcast(&pretrained, sizeof pretrained, 0);
    if (pretrained) /* named here, before the data is read and the model allocated */
        die_agreed(r, EXIT_CKPT, "%s: a pretrain checkpoint has %s", c->checkpoint, is_phase(r, "eval")
                   ? "no trained classifier: evaluate the output of linear, finetune, baseline or distill"
                   : "no classifier to teach with: give distill the output of finetune (or linear, baseline) as 'checkpoint'");
    if (on_conv && is_phase(r, "distill"))
        die_agreed(r, EXIT_CKPT, "%s: a linear probe on the conv features (model.probe_features = \"conv\") cannot "
                   "teach distill, whose student trains its encoder under a classifier on the encoder output: give a "
                   "finetune or baseline checkpoint (or a linear probe with model.probe_features = \"embed\")",
                   c->checkpoint);
    if (on_head && is_phase(r, "distill"))
        die_agreed(r, EXIT_CKPT, "%s: a classifier on the projection head's first layer (model.finetune_from = "
                   "\"head0\") cannot teach distill, whose student has a classifier on the encoder output: give a "
                   "finetune or baseline checkpoint with model.finetune_from = \"embed\"", c->checkpoint);
    c->model.classifier_on_conv = on_conv;
    c->model.classifier_on_head = on_head;
}

int run_phase(const char *phase, const char *cfg_path, char **sets, int nsets)
{
    run_ctx r;
    memset(&r, 0, sizeof r);
    r.init_step = -1;
    r.rank = dist_rank();
    r.world = dist_world();
    if (r.rank == 0) {
        config_load(&r.cfg, cfg_path, phase, sets, nsets);
        config_warn(&r.cfg, phase, sets, nsets);
    }
    dist_bcast(&r.cfg, sizeof r.cfg, 0);
    r.cfg_text = config_to_text(&r.cfg);
    if (!r.cfg.run.hdf5_file_locking) ckpt_disable_file_locking();
    setup_threads(&r);
    /* linear, finetune, eval and distill read the metadata of `checkpoint` here, so a
     * missing or unreadable one is named before the data is read */
    set_classifier_input(&r);
    /* rank 0 checks the data and batch sizes first, so that a bad file or setting is
     * reported once, not by every rank; then it claims run_dir, so that a run refused
     * up to here leaves no trace there (not even the folder) */
    if (r.rank == 0) open_data(&r), check_batches(&r);
    r.claimed = r.rank == 0 ? claim_run_dir(&r) : 1;
    dist_all_ok(1);
    if (r.rank != 0) open_data(&r), check_batches(&r);
    if (fault(&r, "short")) fault_short_reads(&r);
    if (fault(&r, "die")) _exit(9);
    size_t G = (size_t)r.cfg.train.batch, world = (size_t)r.world;
    size_t per_rank = (G + world - 1) / world;
    size_t max_batch = is_phase(&r, "pretrain") ? 2 * per_rank : per_rank;
    size_t probe = ((size_t)r.cfg.pretrain.probe_batch + world - 1) / world;
    if (is_phase(&r, "pretrain") && probe > max_batch) max_batch = probe;
    if (max_batch < 64) max_batch = 64; /* evaluation chunks */
    model_init(&r.m, &r.cfg.model, max_batch, (size_t)r.cfg.run.workspace_mb << 18);
    r.m.reduce = (bn_reduce){bn_allreduce, NULL}; /* BatchNorm statistics over the global batch */
    if (r.rank == 0) model_init_weights(&r.m, -1, (uint64_t)r.cfg.seed);
    dist_bcast(r.m.params, r.m.nparams * sizeof(float), 0);
    dist_bcast(r.m.buffers, r.m.nbuffer_floats * sizeof(float), 0);
    r.img = xcalloc(STL10_RECORD, 1, "image");
    if (r.rank == 0)
        printf("simclr %s: %d rank%s x %d BLIS thread%s, model %zu parameters (encoder %zu), config %s\n", phase,
               r.world, r.world == 1 ? "" : "s", gemm_threads(), gemm_threads() == 1 ? "" : "s", r.m.nparams, r.m.group_begin[GROUP_HEAD], cfg_path);
    signal(SIGTERM, on_stop_signal);
    signal(SIGUSR1, on_stop_signal);

    int rc = is_phase(&r, "pretrain") ? pretrain(&r) : is_phase(&r, "eval") ? eval_phase(&r) : classify(&r);

    if (r.metrics) fclose(r.metrics);
    free(r.img);
    free(r.cfg_text);
    model_free(&r.m);
    dataset_free(&r.train), dataset_free(&r.eval), dataset_free(&r.val), dataset_free(&r.unlabeled);
    stl10_close(&r.labeled_file), stl10_close(&r.unlabeled_file), stl10_close(&r.eval_file);
    return rc;
}
