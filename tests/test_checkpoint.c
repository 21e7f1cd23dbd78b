/* test_checkpoint.c: HDF5 checkpoints of a tiny model: bit-exact round trip of parameters,
 * Adam moments and metadata, the file layout (read back with the HDF5 C API, and with
 * h5py when /usr/bin/python3 has it), LATEST, partial loads, and every error path (wrong
 * shape, truncated, not HDF5, missing, missing moments, wrong version; save failures that
 * must leave the earlier checkpoint intact). Error paths run in forked children. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/resource.h>

#include "forkutil.h"
#include "testutil.h"

#include <hdf5.h>

#include "checkpoint.h"
#include "config.h"
#include "common.h"
#include "gemm.h"
#include "model.h"

static const model_cfg TINY = {.image_size = 17, .conv_layers = 2, .width = 4, .kernel = 3,
                               .embed_dim = 5, .proj_dim = 6, .num_classes = 3};
static const char CONFIG_TEXT[] = "# resolved\ntrain = { lr = 0.001; };\nrun_dir = \"r\";\n";

/* A tiny model with random parameters and Adam moments (seeded). */
static void tiny_model(model *m, const model_cfg *cfg, uint64_t seed)
{
    model_init(m, cfg, 2, 0);
    fill_uniform(m->params, m->nparams, seed);
    fill_uniform(m->adam_m, m->nparams, seed + 1);
    fill_uniform(m->adam_v, m->nparams, seed + 2);
    for (size_t i = 0; i < m->nparams; i++) m->adam_v[i] = m->adam_v[i] * m->adam_v[i];
}

static ckpt_meta tiny_meta(void)
{
    ckpt_meta meta = {.phase = "finetune", .epoch = 7, .step = 1234567890123LL, .world_size = 3,
                      .seed = 9876543210LL, .config_hash = 0, .config_text = (char *)CONFIG_TEXT};
    meta.config_hash = config_hash(CONFIG_TEXT);
    return meta;
}

static void save_tiny(const char *path, uint64_t seed, int with_optimizer)
{
    model m;
    tiny_model(&m, &TINY, seed);
    ckpt_meta meta = tiny_meta();
    ckpt_save(path, &m, &meta, with_optimizer);
    model_free(&m);
}

static int same_floats(const float *a, const float *b, size_t n) { return !memcmp(a, b, n * sizeof(float)); }

/* ---- round trip ------------------------------------------------------------------- */

static void test_roundtrip(void **state)
{
    char dir[4096], path[4200], tmp[4300], latest[4300];
    make_tmp_dir(dir, sizeof dir, "run dir");
    pathf(path, sizeof path, "%s/ckpt-epoch0007.h5", dir);
    model a, b;
    tiny_model(&a, &TINY, 11);
    ckpt_meta meta = tiny_meta();
    ckpt_save(path, &a, &meta, 1);
    assert_true(file_exists(path));
    pathf(tmp, sizeof tmp, "%s.tmp", path);
    assert_false(file_exists(tmp));

    assert_int_equal(ckpt_latest(dir, latest, sizeof latest), 0); /* no LATEST yet */
    ckpt_set_latest(dir, "ckpt-epoch0007.h5");
    pathf(tmp, sizeof tmp, "%s/LATEST.tmp", dir);
    assert_false(file_exists(tmp));
    assert_int_equal(ckpt_latest(dir, latest, sizeof latest), 1);
    assert_string_equal(latest, path);

    model_init(&b, &TINY, 2, 0);
    ckpt_meta got;
    memset(&got, 0x55, sizeof got);
    ckpt_load(latest, &b, (1u << NGROUPS) - 1, 1, &got);
    assert_int_equal(b.nparams, a.nparams);
    assert_true(same_floats(a.params, b.params, a.nparams));
    assert_true(same_floats(a.adam_m, b.adam_m, a.nparams));
    assert_true(same_floats(a.adam_v, b.adam_v, a.nparams));
    assert_string_equal(got.phase, "finetune");
    assert_int_equal(got.epoch, 7);
    assert_int_equal(got.step, 1234567890123LL);
    assert_int_equal(got.world_size, 3);
    assert_int_equal(got.seed, 9876543210LL);
    assert_true(got.config_hash == meta.config_hash);
    assert_non_null(got.config_text);
    assert_string_equal(got.config_text, CONFIG_TEXT);
    free(got.config_text);
    model_free(&a);
    model_free(&b);
}

/* config_hash values with the top bit set survive the int64 attribute. */
static void test_meta_extremes(void **state)
{
    char dir[4096], path[4200];
    make_tmp_dir(dir, sizeof dir, "meta");
    pathf(path, sizeof path, "%s/x.h5", dir);
    model a;
    tiny_model(&a, &TINY, 3);
    ckpt_meta meta = {.phase = "pretrain", .epoch = 0, .step = 0, .world_size = 1, .seed = 0,
                      .config_hash = 0xfedcba9876543210ULL, .config_text = NULL};
    ckpt_save(path, &a, &meta, 0);
    ckpt_meta got;
    ckpt_load(path, &a, (1u << NGROUPS) - 1, 0, &got);
    assert_string_equal(got.phase, "pretrain");
    assert_true(got.config_hash == 0xfedcba9876543210ULL);
    assert_non_null(got.config_text);
    assert_string_equal(got.config_text, ""); /* NULL text is stored as "" */
    free(got.config_text);
    model_free(&a);
}

/* Only the groups in the mask (and moments only when asked) are read. */
static void test_partial_load(void **state)
{
    char dir[4096], path[4200];
    make_tmp_dir(dir, sizeof dir, "partial");
    pathf(path, sizeof path, "%s/p.h5", dir);
    model a, b;
    tiny_model(&a, &TINY, 5);
    ckpt_meta meta = tiny_meta();
    ckpt_save(path, &a, &meta, 1);

    model_cfg other = TINY;
    other.num_classes = 7; /* a different classifier does not matter for an encoder load */
    model_init(&b, &other, 2, 0);
    ckpt_meta got;
    ckpt_load(path, &b, 1u << GROUP_ENCODER, 0, &got);
    free(got.config_text);
    size_t e0 = b.group_begin[GROUP_ENCODER], e1 = b.group_begin[GROUP_ENCODER + 1];
    assert_true(same_floats(a.params + e0, b.params + e0, e1 - e0));
    for (size_t i = e1; i < b.nparams; i++)
        if (b.params[i] != 0.0f) fail_msg("parameter %zu outside the encoder was written", i);
    for (size_t i = 0; i < b.nparams; i++)
        if (b.adam_m[i] != 0.0f || b.adam_v[i] != 0.0f) fail_msg("Adam moment %zu written without with_optimizer", i);
    model_free(&b);

    model_init(&b, &TINY, 2, 0); /* head only, with moments */
    ckpt_load(path, &b, 1u << GROUP_HEAD, 1, &got);
    free(got.config_text);
    size_t h0 = b.group_begin[GROUP_HEAD], h1 = b.group_begin[GROUP_HEAD + 1];
    assert_true(same_floats(a.params + h0, b.params + h0, h1 - h0));
    assert_true(same_floats(a.adam_m + h0, b.adam_m + h0, h1 - h0));
    assert_true(same_floats(a.adam_v + h0, b.adam_v + h0, h1 - h0));
    for (size_t i = 0; i < h0; i++) assert_true(b.params[i] == 0.0f && b.adam_v[i] == 0.0f);
    model_free(&a);
    model_free(&b);
}

static void test_latest_edge_cases(void **state)
{
    char dir[4096], path[4200], out[4300];
    make_tmp_dir(dir, sizeof dir, "latest");
    pathf(path, sizeof path, "%s/LATEST", dir);
    write_text_file(path, "gone.h5\n"); /* names a missing file */
    assert_int_equal(ckpt_latest(dir, out, sizeof out), 0);
    write_text_file(path, "../elsewhere.h5\n"); /* not a plain name */
    assert_int_equal(ckpt_latest(dir, out, sizeof out), 0);
    write_text_file(path, "");
    assert_int_equal(ckpt_latest(dir, out, sizeof out), 0);
    char ck[4300];
    pathf(ck, sizeof ck, "%s/a.h5", dir);
    save_tiny(ck, 1, 0);
    write_text_file(path, "a.h5\r\n"); /* CRLF from an editor is fine */
    assert_int_equal(ckpt_latest(dir, out, sizeof out), 1);
    assert_string_equal(out, ck);
    ckpt_set_latest(dir, "a.h5"); /* replaces the old content */
    char *text = slurp(path, NULL);
    assert_string_equal(text, "a.h5\n");
    free(text);
}

/* ---- file layout ------------------------------------------------------------------ */

static void check_i64_attr(hid_t f, const char *name, int64_t want)
{
    hid_t a = H5Aopen(f, name, H5P_DEFAULT);
    if (a < 0) fail_msg("attribute %s missing", name);
    hid_t t = H5Aget_type(a);
    if (H5Tequal(t, H5T_STD_I64LE) <= 0) fail_msg("attribute %s is not H5T_STD_I64LE", name);
    int64_t v = 0;
    assert_true(H5Aread(a, H5T_NATIVE_INT64, &v) >= 0);
    if (v != want) fail_msg("attribute %s = %lld, expected %lld", name, (long long)v, (long long)want);
    H5Tclose(t);
    H5Aclose(a);
}

static void test_hdf5_layout(void **state)
{
    char dir[4096], path[4200];
    make_tmp_dir(dir, sizeof dir, "layout");
    pathf(path, sizeof path, "%s/c.h5", dir);
    model a;
    tiny_model(&a, &TINY, 21);
    ckpt_meta meta = tiny_meta();
    ckpt_save(path, &a, &meta, 1);

    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    check_i64_attr(f, "format_version", CKPT_FORMAT_VERSION);
    check_i64_attr(f, "epoch", 7);
    check_i64_attr(f, "step", 1234567890123LL);
    check_i64_attr(f, "world_size", 3);
    check_i64_attr(f, "seed", 9876543210LL);
    /* PyTorch shapes: conv (Cout, Cin, K, K), dense (out, in) */
    struct {
        const char *name;
        int ndim;
        hsize_t dims[4];
    } want[] = {{"encoder.conv0.weight", 4, {4, 3, 3, 3}}, {"encoder.conv0.bias", 1, {4}},
                {"encoder.conv1.weight", 4, {4, 4, 3, 3}}, {"encoder.fc.weight", 2, {5, 4 * 3 * 3}},
                {"head.fc0.weight", 2, {6, 5}}, {"head.fc1.weight", 2, {6, 6}},
                {"classifier.weight", 2, {3, 5}}, {"classifier.bias", 1, {3}}};
    const char *groups[] = {"params", "adam_m", "adam_v"};
    const float *bufs[] = {a.params, a.adam_m, a.adam_v};
    for (size_t g = 0; g < 3; g++)
        for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
            char name[128];
            pathf(name, sizeof name, "/%s/%s", groups[g], want[i].name);
            hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
            if (d < 0) fail_msg("dataset %s missing", name);
            hid_t t = H5Dget_type(d), s = H5Dget_space(d);
            if (H5Tequal(t, H5T_IEEE_F32LE) <= 0) fail_msg("%s is not H5T_IEEE_F32LE", name);
            hsize_t dims[8];
            int nd = H5Sget_simple_extent_dims(s, dims, NULL);
            assert_int_equal(nd, want[i].ndim);
            for (int k = 0; k < nd; k++)
                if (dims[k] != want[i].dims[k]) fail_msg("%s dim %d = %llu, expected %llu", name, k, (unsigned long long)dims[k], (unsigned long long)want[i].dims[k]);
            const param_tensor *p = model_find(&a, want[i].name);
            assert_non_null(p);
            float *v = malloc(p->size * sizeof(float));
            assert_true(H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0);
            if (!same_floats(v, bufs[g] + p->offset, p->size)) fail_msg("%s values differ from the model", name);
            free(v);
            H5Sclose(s);
            H5Tclose(t);
            H5Dclose(d);
        }
    /* /config holds the text */
    hid_t d = H5Dopen2(f, "/config", H5P_DEFAULT);
    assert_true(d >= 0);
    hid_t t = H5Dget_type(d);
    assert_int_equal(H5Tget_class(t), H5T_STRING);
    char text[sizeof CONFIG_TEXT + 16] = {0};
    assert_true(H5Tget_size(t) <= sizeof text);
    assert_true(H5Dread(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, text) >= 0);
    assert_string_equal(text, CONFIG_TEXT);
    H5Tclose(t);
    H5Dclose(d);
    H5Fclose(f);
    model_free(&a);
}

/* The same through h5py, as a PyTorch user would read it; skipped without h5py. */
static void test_h5py_reads_it(void **state)
{
    if (system("/usr/bin/python3 -c 'import h5py, numpy' >/dev/null 2>&1") != 0) {
        print_message("  /usr/bin/python3 with h5py and numpy not available: skipped\n");
        skip();
    }
    char dir[4096], path[4200], script[4300], cmd[8800];
    make_tmp_dir(dir, sizeof dir, "h5py");
    pathf(path, sizeof path, "%s/c.h5", dir);
    save_tiny(path, 31, 1);
    pathf(script, sizeof script, "%s/check.py", dir);
    write_text_file(script,
                    "import sys, h5py, numpy as np\n"
                    "f = h5py.File(sys.argv[1], 'r')\n"
                    "w = f['params/encoder.conv0.weight']\n"
                    "assert w.shape == (4, 3, 3, 3) and w.dtype == np.dtype('<f4'), (w.shape, w.dtype)\n"
                    "assert f['params/encoder.fc.weight'].shape == (5, 36)\n"
                    "assert f['adam_v/classifier.weight'].shape == (3, 5)\n"
                    "assert int(f.attrs['format_version']) == 2 and int(f.attrs['epoch']) == 7\n"
                    "assert f.attrs['step'].dtype == np.dtype('<i8')\n"
                    "p = f.attrs['phase']; p = p.decode() if isinstance(p, bytes) else str(p)\n"
                    "assert p == 'finetune', p\n"
                    "c = f['config'][()]; c = c.decode() if isinstance(c, bytes) else str(c)\n"
                    "assert 'lr = 0.001' in c, c\n"
                    "print('h5py ok')\n");
    pathf(cmd, sizeof cmd, "/usr/bin/python3 '%s' '%s' 2>&1", script, path);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char out[2048] = {0};
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = 0;
    int rc = pclose(p);
    if (rc != 0 || !strstr(out, "h5py ok")) fail_msg("h5py check failed:\n%s", out);
}

/* ---- load errors ------------------------------------------------------------------ */

typedef struct {
    const char *path;
    model_cfg cfg;
    unsigned mask;
    int with_optimizer;
} load_args;

static void do_load(void *p)
{
    load_args *a = p;
    model m;
    model_init(&m, &a->cfg, 2, 0);
    ckpt_meta meta;
    ckpt_load(a->path, &m, a->mask, a->with_optimizer, &meta);
    free(meta.config_text);
    model_free(&m);
}

static void test_load_wrong_shape(void **state)
{
    char dir[4096], path[4200];
    make_tmp_dir(dir, sizeof dir, "shape");
    pathf(path, sizeof path, "%s/w4.h5", dir);
    save_tiny(path, 1, 1);
    load_args a = {path, TINY, (1u << NGROUPS) - 1, 1};
    a.cfg.width = 5;
    expect_exit(do_load, &a, EXIT_CKPT, path, "encoder.conv0.weight", "(4,3,3,3)", "(5,3,3,3)", NULL);
    a.cfg = TINY;
    a.cfg.num_classes = 4; /* the classifier differs: named when it is loaded */
    expect_exit(do_load, &a, EXIT_CKPT, path, "classifier.weight", "(3,5)", "(4,5)", NULL);
    a.mask = 1u << GROUP_ENCODER;
    expect_exit(do_load, &a, 0, NULL);
}

static void test_load_truncated(void **state)
{
    char dir[4096], path[4200];
    make_tmp_dir(dir, sizeof dir, "trunc");
    pathf(path, sizeof path, "%s/t.h5", dir);
    save_tiny(path, 1, 1);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(truncate(path, st.st_size / 2), 0);
    load_args a = {path, TINY, (1u << NGROUPS) - 1, 1};
    child_result r = run_child(do_load, &a);
    check_child(&r, EXIT_CKPT, path, "truncated checkpoint", NULL);
    assert_null(strstr(r.out, "HDF5-DIAG")); /* one clear message, not an HDF5 error stack */
}

static void test_load_not_hdf5_and_missing(void **state)
{
    char dir[4096], path[4200];
    make_tmp_dir(dir, sizeof dir, "nothdf5");
    pathf(path, sizeof path, "%s/text.h5", dir);
    write_text_file(path, "this is not an HDF5 file\n");
    load_args a = {path, TINY, (1u << NGROUPS) - 1, 0};
    expect_exit(do_load, &a, EXIT_CKPT, path, NULL);
    write_text_file(path, "");
    expect_exit(do_load, &a, EXIT_CKPT, path, NULL);
    pathf(path, sizeof path, "%s/missing.h5", dir);
    expect_exit(do_load, &a, EXIT_CKPT, path, "not found", NULL);
}

static void test_load_missing_moments(void **state)
{
    char dir[4096], path[4200];
    make_tmp_dir(dir, sizeof dir, "nomoments");
    pathf(path, sizeof path, "%s/p.h5", dir);
    save_tiny(path, 1, 0); /* parameters only */
    load_args a = {path, TINY, (1u << NGROUPS) - 1, 1};
    expect_exit(do_load, &a, EXIT_CKPT, path, "adam_m/encoder.conv0.weight", NULL);
    a.with_optimizer = 0;
    expect_exit(do_load, &a, 0, NULL);
}

/* A well-formed HDF5 file that is not a simclr checkpoint, and a newer format version. */
static void test_load_foreign_and_version(void **state)
{
    char dir[4096], path[4200];
    make_tmp_dir(dir, sizeof dir, "version");
    pathf(path, sizeof path, "%s/foreign.h5", dir);
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(f >= 0);
    H5Fclose(f);
    load_args a = {path, TINY, (1u << NGROUPS) - 1, 0};
    expect_exit(do_load, &a, EXIT_CKPT, path, "format_version", NULL);

    pathf(path, sizeof path, "%s/v2.h5", dir);
    save_tiny(path, 1, 0);
    f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(f >= 0);
    hid_t at = H5Aopen(f, "format_version", H5P_DEFAULT);
    int64_t v2 = CKPT_FORMAT_VERSION + 1;
    assert_true(H5Awrite(at, H5T_NATIVE_INT64, &v2) >= 0);
    H5Aclose(at);
    H5Fclose(f);
    char want[32];
    pathf(want, sizeof want, "format_version %lld", (long long)v2);
    expect_exit(do_load, &a, EXIT_CKPT, path, want, NULL);
}

/* ---- save errors ------------------------------------------------------------------ */

typedef struct {
    const char *path;
    uint64_t seed;
    rlim_t fsize; /* RLIMIT_FSIZE in the child when != 0: a full disk */
} save_args;

static void do_save(void *p)
{
    save_args *a = p;
    if (a->fsize) {
        signal(SIGXFSZ, SIG_IGN); /* writes past the limit fail with EFBIG instead */
        struct rlimit rl = {a->fsize, a->fsize};
        if (setrlimit(RLIMIT_FSIZE, &rl) != 0) _exit(98);
    }
    save_tiny(a->path, a->seed, 1);
}

/* The checkpoint at path still holds the model of `seed`. */
static void assert_intact(const char *path, uint64_t seed)
{
    model want, got;
    tiny_model(&want, &TINY, seed);
    model_init(&got, &TINY, 2, 0);
    ckpt_meta meta;
    ckpt_load(path, &got, (1u << NGROUPS) - 1, 1, &meta);
    free(meta.config_text);
    assert_true(same_floats(want.params, got.params, want.nparams));
    assert_true(same_floats(want.adam_v, got.adam_v, want.nparams));
    model_free(&want);
    model_free(&got);
}

static void test_save_missing_dir(void **state)
{
    char dir[4096], good[4200], bad[4300];
    make_tmp_dir(dir, sizeof dir, "save");
    pathf(good, sizeof good, "%s/final.h5", dir);
    save_tiny(good, 41, 1);
    pathf(bad, sizeof bad, "%s/no such dir/final.h5", dir);
    save_args a = {bad, 42, 0};
    expect_exit(do_save, &a, EXIT_IO, "no such dir/final.h5", NULL);
    assert_false(file_exists(bad));
    assert_intact(good, 41);
}

/* The temporary file cannot be created (NAME.tmp is a directory): the old NAME stays. */
static void test_save_blocked_tmp(void **state)
{
    char dir[4096], path[4200], tmp[4300];
    make_tmp_dir(dir, sizeof dir, "blocked");
    pathf(path, sizeof path, "%s/final.h5", dir);
    save_tiny(path, 51, 1);
    pathf(tmp, sizeof tmp, "%s.tmp", path);
    assert_int_equal(mkdir(tmp, 0755), 0);
    save_args a = {path, 52, 0};
    expect_exit(do_save, &a, EXIT_IO, path, NULL);
    assert_intact(path, 51);
}

/* Disk full while writing (simulated with RLIMIT_FSIZE): EXIT_IO, the temporary file is
 * removed and the earlier checkpoint of the same name is intact. */
static void test_save_disk_full(void **state)
{
    char dir[4096], path[4200], tmp[4300];
    make_tmp_dir(dir, sizeof dir, "full");
    pathf(path, sizeof path, "%s/final.h5", dir);
    save_tiny(path, 61, 1);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    save_args a = {path, 62, (rlim_t)st.st_size / 3};
    child_result r = run_child(do_save, &a);
    pathf(tmp, sizeof tmp, "%s.tmp", path);
    assert_false(file_exists(tmp));
    assert_intact(path, 61);
    check_child(&r, EXIT_IO, path, "disk full", NULL);
}

/* ---- hostile checkpoint files (issue 5) ------------------------------------------- */

/* A tensor the config needs is absent (a checkpoint of a shallower model): named. */
static void test_load_missing_param_tensor(void **state)
{
    char dir[4096], path[4200];
    make_tmp_dir(dir, sizeof dir, "missing tensor");
    pathf(path, sizeof path, "%s/c.h5", dir);
    save_tiny(path, 1, 0); /* 2 conv layers */
    load_args a = {path, TINY, (1u << NGROUPS) - 1, 0};
    a.cfg.conv_layers = 3; /* 17 -> 8 -> 3 -> 1 */
    expect_exit(do_load, &a, EXIT_CKPT, path, "missing tensor params/encoder.conv2.weight",
                "fewer conv layers than model.conv_layers", NULL);
}

/* model.batchnorm: the BatchNorm weights and the running statistics (/buffers) round-trip
 * bit-exactly and load with the encoder; a checkpoint of the other setting is refused
 * naming the tensor and the setting; a negative running variance is refused. */
static void test_batchnorm_buffers(void **state)
{
    char dir[4096], path[4200], plain[4200];
    make_tmp_dir(dir, sizeof dir, "batchnorm");
    pathf(path, sizeof path, "%s/bn.h5", dir);
    pathf(plain, sizeof plain, "%s/plain.h5", dir);
    model_cfg bn = TINY;
    bn.batchnorm = 1;
    model a, b;
    tiny_model(&a, &bn, 21);
    assert_int_equal(a.nbuffers, 4);
    assert_non_null(model_find(&a, "encoder.bn1.weight"));
    assert_null(model_find(&a, "encoder.conv0.bias"));
    fill_uniform(a.buffers, a.nbuffer_floats, 22);
    for (size_t i = 0; i < a.nbuffer_floats; i++) a.buffers[i] = fabsf(a.buffers[i]);
    ckpt_meta meta = tiny_meta();
    ckpt_save(path, &a, &meta, 1);
    model_init(&b, &bn, 2, 0);
    ckpt_meta got;
    ckpt_load(path, &b, 1u << GROUP_ENCODER, 0, &got);
    free(got.config_text);
    assert_true(same_floats(a.buffers, b.buffers, a.nbuffer_floats));
    size_t e1 = a.group_begin[GROUP_ENCODER + 1];
    assert_true(same_floats(a.params, b.params, e1));
    model_free(&b);

    load_args l = {path, TINY, 1u << GROUP_ENCODER, 0}; /* BN checkpoint, plain config */
    expect_exit(do_load, &l, EXIT_CKPT, path, "missing tensor params/encoder.conv0.bias",
                "written with model.batchnorm = true", NULL);
    save_tiny(plain, 1, 0);
    l.path = plain, l.cfg = bn; /* plain checkpoint, BatchNorm config */
    expect_exit(do_load, &l, EXIT_CKPT, plain, "missing tensor params/encoder.bn0.weight",
                "written with model.batchnorm = false", NULL);

    a.buffers[a.buffer[1].offset + 2] = -0.5f; /* running_var of bn0 */
    ckpt_save(path, &a, &meta, 0);
    l.path = path;
    expect_exit(do_load, &l, EXIT_CKPT, path, "encoder.bn0.running_var", "must be >= 0", NULL);
    model_free(&a);
}

/* A FIFO (would block HDF5's open forever) or a folder where the checkpoint should be. */
static void test_load_not_regular(void **state)
{
    char dir[4096], path[4200];
    make_tmp_dir(dir, sizeof dir, "special");
    pathf(path, sizeof path, "%s/fifo.h5", dir);
    assert_int_equal(mkfifo(path, 0644), 0);
    load_args a = {path, TINY, (1u << NGROUPS) - 1, 0};
    expect_exit(do_load, &a, EXIT_CKPT, path, "not a regular file", NULL);
    pathf(path, sizeof path, "%s/dir.h5", dir);
    assert_int_equal(mkdir(path, 0755), 0);
    expect_exit(do_load, &a, EXIT_CKPT, path, "not a regular file", NULL);
}

/* Rewrites one piece of a valid checkpoint with the HDF5 C API (what a hostile or
 * damaged file could hold). */
typedef enum { H_ARRAY_ATTR, H_STRING_EPOCH, H_ARRAY_CONFIG, H_PHASE, H_NEG_EPOCH, H_NAN, H_NEG_V, H_INT_TENSOR } hostile_kind;

static void make_hostile(const char *path, hostile_kind kind)
{
    save_tiny(path, 7, 1);
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(f >= 0);
    if (kind == H_ARRAY_ATTR || kind == H_STRING_EPOCH || kind == H_NEG_EPOCH) {
        assert_true(H5Adelete(f, "epoch") >= 0);
        hsize_t n = 64;
        hid_t sp = kind == H_ARRAY_ATTR ? H5Screate_simple(1, &n, NULL) : H5Screate(H5S_SCALAR);
        hid_t t = kind == H_STRING_EPOCH ? H5Tcopy(H5T_C_S1) : H5Tcopy(H5T_STD_I64LE);
        if (kind == H_STRING_EPOCH) H5Tset_size(t, 8);
        hid_t at = H5Acreate2(f, "epoch", t, sp, H5P_DEFAULT, H5P_DEFAULT);
        assert_true(at >= 0);
        int64_t v[64];
        for (int i = 0; i < 64; i++) v[i] = kind == H_NEG_EPOCH ? -5 : 3;
        assert_true(H5Awrite(at, kind == H_STRING_EPOCH ? t : H5T_NATIVE_INT64, kind == H_STRING_EPOCH ? (const void *)"seven!!" : (const void *)v) >= 0);
        H5Aclose(at), H5Tclose(t), H5Sclose(sp);
    } else if (kind == H_ARRAY_CONFIG) { /* /config as 1000 strings of 64 bytes */
        assert_true(H5Ldelete(f, "config", H5P_DEFAULT) >= 0);
        hsize_t n = 1000;
        hid_t sp = H5Screate_simple(1, &n, NULL), t = H5Tcopy(H5T_C_S1);
        H5Tset_size(t, 64);
        hid_t d = H5Dcreate2(f, "config", t, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        char *junk = calloc(1000, 64);
        memset(junk, 'A', 1000 * 64);
        assert_true(H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, junk) >= 0);
        free(junk);
        H5Dclose(d), H5Tclose(t), H5Sclose(sp);
    } else if (kind == H_PHASE) {
        assert_true(H5Adelete(f, "phase") >= 0);
        hid_t sp = H5Screate(H5S_SCALAR), t = H5Tcopy(H5T_C_S1);
        H5Tset_size(t, 7);
        hid_t at = H5Acreate2(f, "phase", t, sp, H5P_DEFAULT, H5P_DEFAULT);
        assert_true(H5Awrite(at, t, "hacked") >= 0);
        H5Aclose(at), H5Tclose(t), H5Sclose(sp);
    } else if (kind == H_NAN || kind == H_NEG_V) {
        const char *name = kind == H_NAN ? "params/encoder.conv0.bias" : "adam_v/head.fc1.bias";
        hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
        assert_true(d >= 0);
        float v[6] = {0.5f, 0.25f, kind == H_NAN ? NAN : -1.0f, 0.0f, 0.0f, 0.0f};
        assert_true(H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0);
        H5Dclose(d);
    } else if (kind == H_INT_TENSOR) { /* integers where floats belong: converted, loads */
        assert_true(H5Ldelete(f, "params/classifier.bias", H5P_DEFAULT) >= 0);
        hsize_t n = 3;
        hid_t sp = H5Screate_simple(1, &n, NULL);
        hid_t d = H5Dcreate2(f, "params/classifier.bias", H5T_STD_I32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        const int32_t v[3] = {1, -2, 3};
        assert_true(H5Dwrite(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0);
        H5Dclose(d), H5Sclose(sp);
    }
    assert_true(H5Fclose(f) >= 0);
}

/* Metadata or tensors that no run writes: one EXIT_CKPT message naming file and item, and
 * never an overflow (an array where one value belongs: H5Aread/H5Dread would write all
 * of it into a one-value buffer). */
static void test_load_hostile_contents(void **state)
{
    char dir[4096], path[4200];
    make_tmp_dir(dir, sizeof dir, "hostile");
    struct {
        hostile_kind kind;
        const char *name, *want1, *want2;
        int with_optimizer;
    } cases[] = {
        {H_ARRAY_ATTR, "array-attr.h5", "'epoch'", "not one integer", 0},
        {H_STRING_EPOCH, "string-epoch.h5", "'epoch'", "not one integer", 0},
        {H_ARRAY_CONFIG, "array-config.h5", "'config'", "not one fixed-length string", 0},
        {H_PHASE, "phase.h5", "\"hacked\"", "phase", 0},
        {H_NEG_EPOCH, "neg-epoch.h5", "epoch -5", "invalid metadata", 0},
        {H_NAN, "nan.h5", "params/encoder.conv0.bias", "invalid value nan at element 2", 0},
        {H_NEG_V, "neg-v.h5", "adam_v/head.fc1.bias", "must be >= 0", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pathf(path, sizeof path, "%s/%s", dir, cases[i].name);
        make_hostile(path, cases[i].kind);
        load_args a = {path, TINY, (1u << NGROUPS) - 1, cases[i].with_optimizer};
        child_result r = run_child(do_load, &a);
        check_child(&r, EXIT_CKPT, path, cases[i].want1, cases[i].want2, NULL);
    }
    pathf(path, sizeof path, "%s/int-tensor.h5", dir);
    make_hostile(path, H_INT_TENSOR);
    model m;
    model_init(&m, &TINY, 2, 0);
    ckpt_meta meta;
    ckpt_load(path, &m, (1u << NGROUPS) - 1, 1, &meta);
    free(meta.config_text);
    const param_tensor *p = model_find(&m, "classifier.bias");
    assert_true(m.params[p->offset] == 1.0f && m.params[p->offset + 1] == -2.0f);
    model_free(&m);
}

/* HDF5 file locking refused: another process holds an exclusive lock on the checkpoint
 * (what a filesystem that refuses locks looks like to HDF5). The load fails with
 * EXIT_CKPT and the hint; with locking disabled (run.hdf5_file_locking = false calls
 * ckpt_disable_file_locking) it loads. HDF5 1.10.8 reads HDF5_USE_FILE_LOCKING once, when
 * the library starts (before the fork here), so that variable is tested by test_cli.sh. */
typedef struct {
    load_args load;
    int mode; /* 0 locking on, 1 ckpt_disable_file_locking */
} lock_args;

static void do_load_locking(void *p)
{
    lock_args *a = p;
    if (a->mode == 1) ckpt_disable_file_locking();
    do_load(&a->load);
    printf("loaded\n");
}

static void test_file_locking(void **state)
{
    char dir[4096], path[4200];
    make_tmp_dir(dir, sizeof dir, "locking");
    pathf(path, sizeof path, "%s/c.h5", dir);
    save_tiny(path, 3, 1);
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(flock(fd, LOCK_EX | LOCK_NB), 0);
    lock_args a = {{path, TINY, (1u << NGROUPS) - 1, 1}, 0};
    expect_exit(do_load_locking, &a, EXIT_CKPT, path, "run.hdf5_file_locking = false", "HDF5_USE_FILE_LOCKING=FALSE", NULL);
    a.mode = 1;
    expect_exit(do_load_locking, &a, 0, "loaded", NULL);
    flock(fd, LOCK_UN);
    close(fd);
}

/* Saving and loading with locking disabled round-trips (the run.hdf5_file_locking =
 * false path), in a child: the switch is process-wide. */
static void do_roundtrip_no_locking(void *p)
{
    const char *path = p;
    ckpt_disable_file_locking();
    save_tiny(path, 77, 1);
    model m;
    model_init(&m, &TINY, 2, 0);
    ckpt_meta meta;
    ckpt_load(path, &m, (1u << NGROUPS) - 1, 1, &meta);
    model want;
    tiny_model(&want, &TINY, 77);
    printf("%s\n", same_floats(want.adam_v, m.adam_v, m.nparams) ? "same" : "DIFFERENT");
    free(meta.config_text);
}

static void test_no_locking_roundtrip(void **state)
{
    char dir[4096], path[4200];
    make_tmp_dir(dir, sizeof dir, "nolock");
    pathf(path, sizeof path, "%s/c.h5", dir);
    expect_exit(do_roundtrip_no_locking, path, 0, "same", NULL);
}

/* kill -9 during a checkpoint write leaves NAME.tmp (and maybe LATEST.tmp) behind, while
 * LATEST still names the previous complete checkpoint: that one is found and loads, and
 * the next save and LATEST update replace the stale temporary files. */
static void test_stale_tmp_after_kill(void **state)
{
    char dir[4096], a_path[4200], b_path[4200], b_tmp[4300], l_tmp[4300], out[4300];
    make_tmp_dir(dir, sizeof dir, "killed");
    pathf(a_path, sizeof a_path, "%s/ckpt-epoch0001.h5", dir);
    pathf(b_path, sizeof b_path, "%s/ckpt-epoch0002.h5", dir);
    pathf(b_tmp, sizeof b_tmp, "%s.tmp", b_path);
    pathf(l_tmp, sizeof l_tmp, "%s/LATEST.tmp", dir);
    save_tiny(a_path, 81, 1);
    ckpt_set_latest(dir, "ckpt-epoch0001.h5");
    save_tiny(b_path, 82, 1); /* a half-written epoch-2 file, as kill -9 leaves it */
    struct stat st;
    assert_int_equal(stat(b_path, &st), 0);
    assert_int_equal(truncate(b_path, st.st_size / 2), 0);
    assert_int_equal(rename(b_path, b_tmp), 0);
    write_text_file(l_tmp, "ckpt-epoch00"); /* a torn LATEST.tmp */

    assert_int_equal(ckpt_latest(dir, out, sizeof out), 1);
    assert_string_equal(out, a_path);
    assert_intact(out, 81);

    save_tiny(b_path, 83, 1);
    ckpt_set_latest(dir, "ckpt-epoch0002.h5");
    assert_false(file_exists(b_tmp));
    assert_false(file_exists(l_tmp));
    assert_int_equal(ckpt_latest(dir, out, sizeof out), 1);
    assert_string_equal(out, b_path);
    assert_intact(out, 83);
}

int main(void)
{
    gemm_init(); /* the trainer's BLIS kernels */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_meta_extremes),
        cmocka_unit_test(test_partial_load),
        cmocka_unit_test(test_latest_edge_cases),
        cmocka_unit_test(test_hdf5_layout),
        cmocka_unit_test(test_h5py_reads_it),
        cmocka_unit_test(test_load_wrong_shape),
        cmocka_unit_test(test_load_truncated),
        cmocka_unit_test(test_load_not_hdf5_and_missing),
        cmocka_unit_test(test_load_missing_moments),
        cmocka_unit_test(test_load_foreign_and_version),
        cmocka_unit_test(test_save_missing_dir),
        cmocka_unit_test(test_save_blocked_tmp),
        cmocka_unit_test(test_save_disk_full),
        cmocka_unit_test(test_load_missing_param_tensor),
        cmocka_unit_test(test_load_not_regular),
        cmocka_unit_test(test_load_hostile_contents),
        cmocka_unit_test(test_file_locking),
        cmocka_unit_test(test_no_locking_roundtrip),
        cmocka_unit_test(test_stale_tmp_after_kill),
        cmocka_unit_test(test_batchnorm_buffers),
    };
    set_abort_hook(fail_on_fatal);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
