/* checkpoint.h: the one HDF5 caller. A checkpoint is one HDF5 file:
 *   /params/<tensor>, /adam_m/<tensor>, /adam_v/<tensor>  H5T_IEEE_F32LE, PyTorch shapes
 *   (e.g. /params/encoder.conv0.weight (128, 3, 3, 3)), each one chunk with a Fletcher-32
 *   checksum (a corrupted tensor fails to load), so an h5py script loads them into
 *   torch.nn modules as they are; with model.batchnorm also /buffers/encoder.bnI.running_mean
 *   and running_var (width), BatchNorm's running statistics, loaded with the encoder;
 *   root attributes format_version, phase, epoch, step, world_size, seed, config_hash
 *   (H5T_STD_I64LE / strings), eval_set (the held-out images it never saw) and the dataset /config (the resolved config text).
 * Writes are atomic: NAME.tmp is written and closed, fsynced, renamed to NAME, and the
 * directory fsynced; only then is RUN_DIR/LATEST updated (same way). A checkpoint does not
 * exist until its rename. Loads check the format version and every tensor's shape and name
 * the tensor on a mismatch. No MPI here: rank 0 calls these, dist broadcasts. */
#ifndef SIMCLR_CHECKPOINT_H
#define SIMCLR_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"

#define CKPT_FORMAT_VERSION 2 /* 2: eval_set attribute */

typedef struct {
    char phase[16];      /* phase that wrote it: pretrain, linear, finetune, baseline */
    int64_t epoch;       /* completed epochs */
    int64_t step;        /* optimizer steps done (Adam's t) */
    int64_t world_size;  /* ranks of the run that wrote it (informational) */
    int64_t seed;
    uint64_t config_hash;
    char *config_text;   /* resolved config; owned by the caller (free) after ckpt_load */
    char eval_set[256];  /* which images were held out for evaluation when it was trained
                          * (phases.c eval_set_id); "" when unknown */
    int64_t init_step;   /* the checkpoint the run's encoder started from (linear, finetune,
                          * distill): its step, and its config_hash below; -1 when none, or
                          * unknown (files written before these attributes: read as -1) */
    uint64_t init_config_hash;
} ckpt_meta;

/* Disables HDF5 file locking for the files this process opens from now on (for
 * filesystems that refuse it; same effect as HDF5_USE_FILE_LOCKING=FALSE). */
void ckpt_disable_file_locking(void);

/* Writes path atomically (see above) with all parameters and, when with_optimizer, the
 * Adam moments. fatal(EXIT_IO) naming the file when anything fails (disk full: the
 * temporary file is removed, an earlier checkpoint of the same name is untouched). */
void ckpt_save(const char *path, const model *m, const ckpt_meta *meta, int with_optimizer);

/* Atomically sets RUN_DIR/LATEST to `name` (a file name inside run_dir). */
void ckpt_set_latest(const char *run_dir, const char *name);

/* Writes into out the path of the checkpoint named by RUN_DIR/LATEST; returns 0 when there
 * is none (no LATEST, or it names a missing file: then a warning). */
int ckpt_latest(const char *run_dir, char *out, size_t outsz);

/* Reads only the metadata of path (no tensors): phase, epoch, ..., config_text (malloc'd:
 * the caller frees it). Used to build the model a checkpoint needs before loading it (eval
 * of a linear probe on the conv features). fatal(EXIT_CKPT) naming the file as ckpt_load. */
ckpt_meta ckpt_read_meta(const char *path);

/* Loads the parameters of the groups in group_mask (bit 1 << GROUP_*) and, when
 * with_optimizer, their Adam moments, from path into m; fills meta (meta->config_text
 * malloc'd). fatal(EXIT_CKPT) naming the file and tensor: not HDF5, truncated, missing
 * tensor, wrong shape, wrong format version. */
void ckpt_load(const char *path, model *m, unsigned group_mask, int with_optimizer,
               ckpt_meta *meta);

#endif
