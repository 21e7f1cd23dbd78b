/* checkpoint.c: HDF5 checkpoints, written atomically. */
#define _GNU_SOURCE
#include "checkpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"

static int g_no_locking;

void ckpt_disable_file_locking(void) { g_no_locking = 1; }

static hid_t fapl(void)
{
    hid_t p = H5Pcreate(H5P_FILE_ACCESS);
#if H5_VERSION_GE(1, 10, 7)
    if (g_no_locking) H5Pset_file_locking(p, 0, 1);
#endif
    return p;
}

/* No HDF5 error stack on stderr (we report our own message), and no HDF5 cleanup at exit:
 * after a failed write, fatal() exits with ids still open, and HDF5's atexit handler would
 * crash closing them. */
static void quiet(void)
{
    H5dont_atexit();
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

/* H5Ewalk2 callback: sets *data when HDF5's error stack holds H5E_TRUNCATED (the file ends
 * before the end its superblock records). */
static herr_t find_truncated(unsigned n, const H5E_error2_t *e, void *data)
{
    (void)n;
    if (e->min_num == H5E_TRUNCATED) *(int *)data = 1;
    return 0;
}

static void fsync_path(const char *path, int dir)
{
    int fd = open(path, (dir ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
    if (fd < 0 || fsync(fd) != 0) {
        int e = errno;
        if (fd >= 0) close(fd);
        if (!dir) fatal(EXIT_IO, "%s: fsync failed: %s", path, strerror(e));
        return;
    }
    close(fd);
}

static void parent_dir(const char *path, char *out, size_t n)
{
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s", path);
    snprintf(out, n, "%s", dirname(tmp));
}

static int attr_i64(hid_t loc, const char *name, int64_t v)
{
    hid_t s = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(loc, name, H5T_STD_I64LE, s, H5P_DEFAULT, H5P_DEFAULT);
    herr_t e = a < 0 ? -1 : H5Awrite(a, H5T_NATIVE_INT64, &v);
    if (a >= 0) H5Aclose(a);
    H5Sclose(s);
    return e < 0 ? -1 : 0;
}

static int write_string(hid_t loc, const char *name, const char *text, int as_attr)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, strlen(text) + 1);
    hid_t s = H5Screate(H5S_SCALAR);
    hid_t o = as_attr ? H5Acreate2(loc, name, t, s, H5P_DEFAULT, H5P_DEFAULT)
                      : H5Dcreate2(loc, name, t, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    herr_t e = o < 0 ? -1 : as_attr ? H5Awrite(o, t, text) : H5Dwrite(o, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, text);
    if (o >= 0) as_attr ? H5Aclose(o) : H5Dclose(o);
    H5Sclose(s);
    H5Tclose(t);
    return e < 0 ? -1 : 0;
}

/* Writes the n tensors of list (offsets into buf) as datasets of a new group. */
static int write_tensors(hid_t file, const char *group, const param_tensor *list, int n, const float *buf)
{
    hid_t g = H5Gcreate2(file, group, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0) return -1;
    int err = 0;
    for (int t = 0; t < n && !err; t++) {
        const param_tensor *p = &list[t];
        hsize_t dims[4];
        for (int i = 0; i < p->ndim; i++) dims[i] = (hsize_t)p->shape[i];
        hid_t s = H5Screate_simple(p->ndim, dims, NULL);
        /* one chunk per tensor with a Fletcher-32 checksum: a corrupted tensor fails to read */
        hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
        H5Pset_chunk(dcpl, p->ndim, dims);
        H5Pset_fletcher32(dcpl);
        hid_t d = H5Dcreate2(g, p->name, H5T_IEEE_F32LE, s, H5P_DEFAULT, dcpl, H5P_DEFAULT);
        H5Pclose(dcpl);
        err = d < 0 || H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf + p->offset) < 0;
        if (d >= 0) H5Dclose(d);
        H5Sclose(s);
    }
    H5Gclose(g);
    return err ? -1 : 0;
}

void ckpt_save(const char *path, const model *m, const ckpt_meta *meta, int with_optimizer)
{
    quiet();
    char tmp[PATH_MAX + 8];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    hid_t p = fapl();
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, p);
    H5Pclose(p);
    if (f < 0)
        fatal(EXIT_IO, "%s: cannot create checkpoint (directory missing or not writable; on a "
              "filesystem without locking set run.hdf5_file_locking = false or "
              "HDF5_USE_FILE_LOCKING=FALSE)", tmp);
    int err = attr_i64(f, "format_version", CKPT_FORMAT_VERSION) || attr_i64(f, "epoch", meta->epoch) ||
              attr_i64(f, "step", meta->step) || attr_i64(f, "world_size", meta->world_size) ||
              attr_i64(f, "seed", meta->seed) || attr_i64(f, "config_hash", (int64_t)meta->config_hash) ||
              attr_i64(f, "init_step", meta->init_step) ||
              attr_i64(f, "init_config_hash", (int64_t)meta->init_config_hash) ||
              write_string(f, "phase", meta->phase, 1) || write_string(f, "eval_set", meta->eval_set, 1) ||
              write_string(f, "config", meta->config_text ? meta->config_text : "", 0) ||
              write_tensors(f, "params", m->tensor, m->ntensors, m->params) ||
              (m->nbuffers && write_tensors(f, "buffers", m->buffer, m->nbuffers, m->buffers));
    if (!err && with_optimizer)
        err = write_tensors(f, "adam_m", m->tensor, m->ntensors, m->adam_m) ||
              write_tensors(f, "adam_v", m->tensor, m->ntensors, m->adam_v);
    err |= H5Fclose(f) < 0;
    if (err) {
        unlink(tmp);
        fatal(EXIT_IO, "%s: writing the checkpoint failed (disk full?); the temporary file was "
              "removed and earlier checkpoints are intact", path);
    }
    fsync_path(tmp, 0);
    if (rename(tmp, path) != 0) fatal(EXIT_IO, "%s: rename failed: %s", path, strerror(errno));
    char dir[PATH_MAX];
    parent_dir(path, dir, sizeof dir);
    fsync_path(dir, 1);
}

void ckpt_set_latest(const char *run_dir, const char *name)
{
    char path[PATH_MAX], tmp[PATH_MAX + 8];
    snprintf(path, sizeof path, "%s/LATEST", run_dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) fatal(EXIT_IO, "%s: cannot write: %s", tmp, strerror(errno));
    int bad = fprintf(f, "%s\n", name) < 0 || fflush(f) != 0 || fsync(fileno(f)) != 0;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path) != 0) {
        unlink(tmp);
        fatal(EXIT_IO, "%s: write failed: %s", path, strerror(errno));
    }
    fsync_path(run_dir, 1);
}

int ckpt_latest(const char *run_dir, char *out, size_t outsz)
{
    char path[PATH_MAX], name[PATH_MAX] = "";
    snprintf(path, sizeof path, "%s/LATEST", run_dir);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    int ok = fgets(name, sizeof name, f) != NULL;
    fclose(f);
    name[strcspn(name, "\r\n")] = 0;
    if (!ok || !name[0] || strchr(name, '/')) {
        warn("%s: empty or invalid, ignored", path);
        return 0;
    }
    snprintf(out, outsz, "%s/%s", run_dir, name);
    struct stat st;
    if (stat(out, &st) != 0) {
        warn("%s names %s, which does not exist: starting without it", path, out);
        return 0;
    }
    return 1;
}

/* Elements in the dataspace of an attribute (as_attr) or dataset; -1 on error. Every
 * scalar we read must hold exactly one: H5Aread/H5Dread write ALL elements into our
 * buffer, so a hostile file with an array there would overflow it. */
static hssize_t npoints(hid_t o, int as_attr)
{
    hid_t s = as_attr ? H5Aget_space(o) : H5Dget_space(o);
    if (s < 0) return -1;
    hssize_t n = H5Sget_simple_extent_npoints(s);
    H5Sclose(s);
    return n;
}

static int64_t read_i64(hid_t f, const char *path, const char *name)
{
    int64_t v = 0;
    hid_t a = H5Aopen(f, name, H5P_DEFAULT);
    if (a < 0) fatal(EXIT_CKPT, "%s: missing attribute '%s' (not a simclr checkpoint?)", path, name);
    hid_t t = H5Aget_type(a);
    int is_int = t >= 0 && H5Tget_class(t) == H5T_INTEGER;
    if (t >= 0) H5Tclose(t);
    if (!is_int || npoints(a, 1) != 1 || H5Aread(a, H5T_NATIVE_INT64, &v) < 0)
        fatal(EXIT_CKPT, "%s: attribute '%s' is not one integer (not a simclr checkpoint?)", path, name);
    H5Aclose(a);
    return v;
}

static char *read_string(hid_t f, const char *path, const char *name, int as_attr)
{
    hid_t o = as_attr ? H5Aopen(f, name, H5P_DEFAULT) : H5Dopen2(f, name, H5P_DEFAULT);
    if (o < 0) fatal(EXIT_CKPT, "%s: missing '%s' (not a simclr checkpoint?)", path, name);
    hid_t t = as_attr ? H5Aget_type(o) : H5Dget_type(o);
    size_t n = H5Tget_size(t);
    if (H5Tget_class(t) != H5T_STRING || H5Tis_variable_str(t) > 0 || n == 0 || n > (1u << 24) ||
        npoints(o, as_attr) != 1)
        fatal(EXIT_CKPT, "%s: '%s' is not one fixed-length string", path, name);
    char *s = xcalloc(n + 1, 1, name);
    herr_t e = as_attr ? H5Aread(o, t, s) : H5Dread(o, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, s);
    if (e < 0) fatal(EXIT_CKPT, "%s: cannot read '%s' (truncated file?)", path, name);
    s[n] = 0;
    H5Tclose(t);
    as_attr ? H5Aclose(o) : H5Dclose(o);
    return s;
}

static void read_tensors(hid_t f, const char *path, const char *group, const param_tensor *list, int n,
                         float *buf, unsigned mask)
{
    for (int t = 0; t < n; t++) {
        const param_tensor *p = &list[t];
        if (!(mask & (1u << p->group))) continue;
        char name[128];
        snprintf(name, sizeof name, "%s/%s", group, p->name);
        hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
        if (d < 0) {
            /* the encoder's first layer tells which model.batchnorm wrote the file: BatchNorm
             * weights (true) or a conv bias (false) */
            int bn = H5Lexists(f, "params/encoder.bn0.weight", H5P_DEFAULT) > 0;
            int plain = H5Lexists(f, "params/encoder.conv0.bias", H5P_DEFAULT) > 0;
            int config_bn = 0, layer = -1;
            for (int i = 0; i < n; i++) config_bn |= strstr(list[i].name, ".bn") != NULL;
            sscanf(p->name, "encoder.conv%d.weight", &layer);
            const char *hint = "";
            if (bn != plain && bn != config_bn)
                hint = bn ? " (the checkpoint was written with model.batchnorm = true: set it, "
                            "e.g. --set model.batchnorm=true)"
                          : " (the checkpoint was written with model.batchnorm = false: set it, "
                            "e.g. --set model.batchnorm=false)";
            else if (layer > 0)
                hint = " (the checkpoint has fewer conv layers than model.conv_layers?)";
            fatal(EXIT_CKPT, "%s: missing tensor %s%s", path, name, hint);
        }
        hid_t s = H5Dget_space(d);
        hsize_t dims[8] = {0};
        int nd = H5Sget_simple_extent_ndims(s);
        int same = nd == p->ndim && nd <= 8 && H5Sget_simple_extent_dims(s, dims, NULL) == nd;
        for (int i = 0; same && i < nd; i++) same = dims[i] == (hsize_t)p->shape[i];
        if (!same) {
            char want[64] = "", have[64] = "";
            for (int i = 0; i < p->ndim; i++) snprintf(want + strlen(want), sizeof want - strlen(want), "%s%lld", i ? "," : "", (long long)p->shape[i]);
            for (int i = 0; i < nd && i < 8; i++) snprintf(have + strlen(have), sizeof have - strlen(have), "%s%llu", i ? "," : "", (unsigned long long)dims[i]);
            fatal(EXIT_CKPT, "%s: tensor %s has shape (%s), the config expects (%s): checkpoint "
                  "from another model configuration?%s", path, name, have, want,
                  strcmp(p->name, "classifier.weight") ? ""
                  : " (a linear probe reads embed_dim features with model.probe_features = \"embed\", "
                    "the flattened conv map with \"conv\")");
        }
        if (H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf + p->offset) < 0)
            fatal(EXIT_CKPT, "%s: cannot read tensor %s (truncated file, or its checksum does not match: corrupted)", path, name);
        /* nothing read from a file is trusted: a NaN/Inf weight (or a negative second
         * moment, whose square root is NaN) would only surface later as "diverged" */
        const float *v = buf + p->offset;
        for (size_t i = 0; i < p->size; i++)
            if (!isfinite(v[i]) || ((!strcmp(group, "adam_v") || strstr(p->name, "running_var")) && v[i] < 0.0f))
                fatal(EXIT_CKPT, "%s: tensor %s has the invalid value %g at element %zu%s", path, name,
                      (double)v[i], i, isfinite(v[i]) ? " (a variance or second moment must be >= 0)" : "");
        H5Sclose(s);
        H5Dclose(d);
    }
}

/* Opens path read-only after checking it is a regular HDF5 file of this format version, and
 * reads its metadata into meta (meta->config_text malloc'd). fatal(EXIT_CKPT) naming the file. */
static hid_t open_meta(const char *path, ckpt_meta *meta)
{
    quiet();
    struct stat st;
    if (stat(path, &st) != 0) fatal(EXIT_CKPT, "%s: checkpoint not found: %s", path, strerror(errno));
    /* a FIFO would block HDF5's open forever; a directory gives a vague HDF5 error */
    if (!S_ISREG(st.st_mode)) fatal(EXIT_CKPT, "%s: not a regular file", path);
    if (H5Fis_hdf5(path) <= 0) fatal(EXIT_CKPT, "%s: not an HDF5 file (or truncated)", path);
    hid_t p = fapl();
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, p);
    int truncated = 0; /* read HDF5's error stack before the next call clears it */
    if (f < 0) H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, find_truncated, &truncated);
    H5Pclose(p);
    if (f < 0) {
        if (truncated)
            fatal(EXIT_CKPT, "%s: truncated checkpoint: the file (%lld bytes) ends before the end "
                  "HDF5 recorded in it (an interrupted copy?)", path, (long long)st.st_size);
        fatal(EXIT_CKPT, "%s: cannot open checkpoint (if the filesystem refuses locks, set "
              "run.hdf5_file_locking = false or HDF5_USE_FILE_LOCKING=FALSE)", path);
    }
    int64_t version = read_i64(f, path, "format_version");
    if (version != CKPT_FORMAT_VERSION)
        fatal(EXIT_CKPT, "%s: format_version %lld, this build reads %d", path, (long long)version,
              CKPT_FORMAT_VERSION);
    memset(meta, 0, sizeof *meta);
    char *phase = read_string(f, path, "phase", 1);
    snprintf(meta->phase, sizeof meta->phase, "%s", phase);
    free(phase);
    char *eval_set = read_string(f, path, "eval_set", 1);
    snprintf(meta->eval_set, sizeof meta->eval_set, "%s", eval_set);
    free(eval_set);
    meta->epoch = read_i64(f, path, "epoch");
    meta->step = read_i64(f, path, "step");
    meta->world_size = read_i64(f, path, "world_size");
    meta->seed = read_i64(f, path, "seed");
    meta->config_hash = (uint64_t)read_i64(f, path, "config_hash");
    meta->init_step = -1; /* optional: absent in files of earlier builds */
    if (H5Aexists(f, "init_step") > 0 && H5Aexists(f, "init_config_hash") > 0) {
        meta->init_step = read_i64(f, path, "init_step");
        meta->init_config_hash = (uint64_t)read_i64(f, path, "init_config_hash");
    }
    /* the metadata steers the resume (phases.c): refuse values no run can have written */
    if (!is_training_phase(meta->phase))
        fatal(EXIT_CKPT, "%s: attribute 'phase' is \"%s\", not pretrain, linear, finetune, baseline or distill", path,
              meta->phase);
    if (meta->epoch < 0 || meta->epoch > INT_MAX || meta->step < 0 || meta->world_size < 1)
        fatal(EXIT_CKPT, "%s: invalid metadata: epoch %lld, step %lld, world_size %lld", path,
              (long long)meta->epoch, (long long)meta->step, (long long)meta->world_size);
    meta->config_text = read_string(f, path, "config", 0);
    return f;
}

ckpt_meta ckpt_read_meta(const char *path)
{
    ckpt_meta meta;
    hid_t f = open_meta(path, &meta);
    if (H5Fclose(f) < 0) fatal(EXIT_CKPT, "%s: close failed", path);
    return meta;
}

void ckpt_load(const char *path, model *m, unsigned group_mask, int with_optimizer,
               ckpt_meta *meta)
{
    hid_t f = open_meta(path, meta);
    read_tensors(f, path, "params", m->tensor, m->ntensors, m->params, group_mask);
    read_tensors(f, path, "buffers", m->buffer, m->nbuffers, m->buffers, group_mask);
    if (with_optimizer) {
        read_tensors(f, path, "adam_m", m->tensor, m->ntensors, m->adam_m, group_mask);
        read_tensors(f, path, "adam_v", m->tensor, m->ntensors, m->adam_v, group_mask);
    }
    if (H5Fclose(f) < 0) fatal(EXIT_CKPT, "%s: close failed", path);
}
