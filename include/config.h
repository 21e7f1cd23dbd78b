/* config.h: the run configuration, the one libconfig caller.
 *
 * A config file (libconfig syntax, e.g. conf/pretrain.cfg, which @includes base.cfg)
 * fills one typed struct whose defaults are set first. Every key is in one schema table
 * (config.c) with its type and range: a syntax error is reported as file:line; a wrong
 * type (1 where 1.0 is expected, a quoted boolean), an unknown key or an out-of-range
 * value is an error naming file:line and the key. `--set key=value` overrides (command
 * line) are checked the same way. A file may name the phase it is for (`phase = "finetune";`,
 * not a schema key, as every conf/PHASE.cfg does): loading it for another phase is refused.
 * Parsing does not depend on the locale (the C library
 * stays in the "C" locale: nothing calls setlocale). */
#ifndef SIMCLR_CONFIG_H
#define SIMCLR_CONFIG_H

#include <limits.h>
#include <stdint.h>

#include "augment.h"
#include "model.h"

typedef struct {
    char phase[16];
    char config_path[PATH_MAX];
    char run_dir[PATH_MAX];
    char resume[PATH_MAX];     /* "auto", "none" or a checkpoint path */
    char checkpoint[PATH_MAX]; /* checkpoint a phase starts from; for eval, the one evaluated; for distill, the teacher */
    int64_t seed;
    struct {
        char dir[PATH_MAX];        /* an STL-10-layout directory */
        char split[64];            /* labeled split, e.g. "train" */
        char unlabeled_split[64];  /* extra unlabeled split for pretraining ("" = none) */
        int unlabeled_use_train;   /* pretraining also uses the labeled split minus the eval slice */
        char eval_split[64];       /* labeled split to evaluate on; "" = hold-out slice of `split` */
        int eval_per_class;        /* size of the hold-out slice per class */
        int64_t holdout_seed;      /* seed of the hold-out slice (independent of `seed`) */
        int labels_per_class;      /* label budget for linear/finetune/baseline; 0 = all */
        int val_per_class;         /* validation slice of the labeled images per class for
                                    * linear/finetune/baseline (0 = none), kept out of training */
        int num_classes;
    } data;
    model_cfg model;
    char probe_features[16]; /* model.probe_features: what the linear probe reads, "embed" (the
                              * encoder output, keras example) or "conv" (the flattened last
                              * conv feature map, before the encoder's dense layer) */
    char finetune_from[16]; /* model.finetune_from: what finetune and baseline train the
                             * classifier on, "embed" (the encoder output, keras example) or
                             * "head0" (the projection head's first layer, dense + ReLU, kept
                             * and trained with the encoder: SimCLR v2, Chen et al. 2020b, 2.2) */
    struct {
        int epochs, batch; /* batch: the GLOBAL batch (images per optimizer step, all ranks) */
        double lr, beta1, beta2, eps, weight_decay;
        int warmup_epochs;
        char schedule[16];  /* "constant" or "cosine" */
        char optimizer[16]; /* "adam" or "sgd" (momentum train.momentum) */
        double momentum;
        int eval_every; /* linear/finetune/baseline: eval top-1 every N epochs and after the last */
    } train;
    struct {
        double temperature;
        int probe_batch; /* global labeled images per step for the online linear probe; 0 = off */
    } pretrain;
    struct {
        double temperature;  /* tau of the teacher's soft labels and the student's softmax */
        char init[PATH_MAX]; /* checkpoint whose encoder starts the student; "" = random */
    } distill;
    aug_cfg aug_contrastive, aug_classification; /* pretrain views; finetune/baseline/distill */
    aug_cfg aug_probe;                           /* linear probe (keras example: = classification) */
    struct {
        int threads;           /* BLIS threads per rank; 0 = cores per node / ranks per node */
        int workspace_mb;      /* im2col workspace per rank */
        double log_interval_s; /* progress line period */
        int checkpoint_every;  /* epochs between checkpoints */
        int keep_checkpoints;  /* epoch checkpoints kept (older ones removed); final.h5 stays */
        int hdf5_file_locking; /* 0 disables HDF5 file locking (filesystems that refuse it) */
    } run;
    struct { /* where each schema key's value came from (config_origin), per key in config.c order */
        int line[128];             /* 0: the default; -1: a --set; else the line in files[file[k]] */
        unsigned char file[128];
        char files[8][PATH_MAX];   /* the config file and the files it @includes, as read */
        int nfiles;
    } origin;
} config;

/* Sets every key to its default (see conf/base.cfg for the documented values). */
void config_defaults(config *c);

/* Reads `path` into c (after config_defaults), applies the `--set key=value` overrides
 * (nset strings), checks ranges and the keys `phase` needs, and stores phase and path.
 * fatal(EXIT_CONFIG) with file:line and key on any error; never a silent default. */
void config_load(config *c, const char *path, const char *phase, char **sets, int nsets);

/* Where the value of schema key `key` (e.g. "train.batch") came from, for error messages:
 * "--set KEY" when a --set override gave it, "FILE:LINE" when a config file (the one given
 * or one it @includes) did, "the default of KEY (set neither in FILE nor by a --set)"
 * otherwise; c->config_path when c was not filled by config_load. The text stays valid
 * until the next call (static storage: one origin per message). Exits (EXIT_CONFIG) on a key not
 * in the schema: a programming error. */
const char *config_origin(const config *c, const char *key);

/* The resolved configuration as libconfig text (every key, with its value); the caller
 * frees it. Written to RUN_DIR/config.resolved.cfg and into every checkpoint. */
char *config_to_text(const config *c);

/* Parses `text` (a resolved configuration as config_to_text writes it, e.g. the copy inside
 * a checkpoint) into out over the defaults: keys absent from text keep their defaults.
 * fatal(EXIT_CKPT) when it does not parse. */
void config_from_text(const char *text, config *out);

/* 1 when `text` (a resolved configuration as config_to_text writes it, e.g. the copy inside
 * a checkpoint) gives `key` (a schema key such as "seed") another value than c has, else 0;
 * the two values are written as text to was (text's) and now (c's), n bytes each. Keys absent from text count
 * as their defaults. fatal(EXIT_CKPT) when text does not parse or key is not in the schema.
 * Used to refuse resuming a run whose identity (seed, label budget, teacher...) changed. */
int config_text_differs(const char *text, const config *c, const char *key, char *was, char *now, size_t n);

/* 1 when phase never reads key (a schema path such as "augment.probe.flip" or a --set
 * string "key=value"), e.g. pretrain.* in finetune, augment.classification.* in linear. */
int config_key_unused(const char *phase, const char *key);

/* Warnings on stderr (never an exit) about the resolved configuration c of phase:
 *  - one for each of the nsets --set strings ("key=value") whose key phase never reads
 *    (config_key_unused): most likely meant for another phase (pretrain.temperature given
 *    to finetune); job scripts pass one --set list to every phase, so this only warns;
 *  - train.warmup_epochs above train.epochs: the linear warmup (lr_at in src/phases.c) never
 *    ends, so the rate never reaches train.lr (a short smoke run of a config that warms up).
 * Call on one rank. */
void config_warn(const config *c, const char *phase, char *const *sets, int nsets);

/* The first key, in schema order, that can change what a run trains (all keys but run_dir,
 * resume, checkpoint, data.dir, distill.init, train.eval_every, run.* and the keys phase
 * c->phase never reads: config_key_unused) and that `text`
 * (as for config_text_differs) gives another value than c has; its values as text in was /
 * now (n bytes each). NULL when there is none. fatal(EXIT_CKPT) when text does not parse.
 * Used to refuse rerunning a finished run under other settings. */
const char *config_training_difference(const char *text, const config *c, char *was, char *now, size_t n);

/* FNV-1a 64-bit hash of a string. */
uint64_t config_hash(const char *text);

/* FNV-1a 64-bit hash of "key=value" lines of the same keys (those that can change what a
 * run of phase c->phase trains), stored in checkpoints as config_hash: two runs that differ only in paths,
 * threads or logging have the same hash. */
uint64_t config_training_hash(const config *c);

#endif
