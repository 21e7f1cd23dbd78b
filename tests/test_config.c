/* test_config.c: config_load on temporary libconfig files: a valid file with @include
 * and defaults, the shipped conf/ files, every error class (syntax, wrong type, unknown
 * key, out of range, phase requirements) with its file:line and key in the message,
 * --set overrides of each type, and config_to_text output that reads back to the same
 * struct. Error paths run in forked children (fatal ends the process with EXIT_CONFIG). */
#include <locale.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "forkutil.h"
#include "testutil.h"

#include "common.h"
#include "config.h"

static char g_dir[4096]; /* temporary folder of this program's config files */

/* Writes g_dir/name with text; returns the path in out. */
static void cfg_file(char *out, size_t n, const char *name, const char *text)
{
    if (!g_dir[0]) make_tmp_dir(g_dir, sizeof g_dir, "conf");
    pathf(out, n, "%s/%s", g_dir, name);
    write_text_file(out, text);
}

/* Minimal valid body: the two required keys. */
#define REQUIRED "run_dir = \"runs/t\";\ndata = { dir = \"d\"; };\n"

typedef struct {
    const char *path, *phase;
    char **sets;
    int nsets;
} load_args;

static void do_load(void *p)
{
    load_args *a = p;
    config c;
    config_load(&c, a->path, a->phase, a->sets, a->nsets);
}

/* Loads a config file whose text is `text` in a child; asserts EXIT_CONFIG and that the
 * message holds "FILE:line" and every extra string. */
static void expect_config_error(const char *text, int line, const char *key)
{
    char path[4300], where[4400];
    static int n;
    char name[32];
    pathf(name, sizeof name, "bad%d.cfg", n++);
    cfg_file(path, sizeof path, name, text);
    pathf(where, sizeof where, "%s:%d", path, line);
    load_args a = {path, "pretrain", NULL, 0};
    child_result r = run_child(do_load, &a);
    if (r.status != EXIT_CONFIG || !strstr(r.out, where) || (key && !strstr(r.out, key)))
        print_message("  config text:\n%s", text);
    check_child(&r, EXIT_CONFIG, where, key ? key : "", NULL);
}

/* ---- valid files ------------------------------------------------------------------ */

static void test_valid_with_include(void **state)
{
    char base[4300], main_cfg[4300];
    cfg_file(base, sizeof base, "base.cfg",
             "# base\nseed = 7;\ndata = { dir = \"data dir\"; num_classes = 5; eval_per_class = 3; };\n"
             "model = { width = 8; conv_layers = 3; };\nrun = { threads = 2; hdf5_file_locking = false; };\n");
    cfg_file(main_cfg, sizeof main_cfg, "main.cfg",
             "@include \"base.cfg\"\nrun_dir = \"runs/x\";\n"
             "train = { epochs = 3; batch = 16; lr = 0.0005; schedule = \"cosine\"; eps = 1e-8; };\n"
             "augment = { contrastive = { flip = false; min_area = 0.5; }; };\n"
             "pretrain = { temperature = 0.2; probe_batch = 10; };\n");
    config c;
    config_load(&c, main_cfg, "pretrain", NULL, 0);
    assert_string_equal(c.phase, "pretrain");
    assert_string_equal(c.config_path, main_cfg);
    assert_int_equal(c.seed, 7); /* from base.cfg */
    assert_string_equal(c.data.dir, "data dir");
    assert_int_equal(c.data.num_classes, 5);
    assert_int_equal(c.model.num_classes, 5); /* follows data.num_classes */
    assert_int_equal(c.data.eval_per_class, 3);
    assert_int_equal(c.model.width, 8);
    assert_int_equal(c.model.conv_layers, 3);
    assert_int_equal(c.run.threads, 2);
    assert_int_equal(c.run.hdf5_file_locking, 0);
    assert_string_equal(c.run_dir, "runs/x");
    assert_int_equal(c.train.epochs, 3);
    assert_int_equal(c.train.batch, 16);
    assert_true(c.train.lr == 0.0005);
    assert_true(c.train.eps == 1e-8);
    assert_string_equal(c.train.schedule, "cosine");
    assert_int_equal(c.aug_contrastive.flip, 0);
    assert_true(c.aug_contrastive.min_area == 0.5f);
    assert_true(c.pretrain.temperature == 0.2);
    assert_int_equal(c.pretrain.probe_batch, 10);
    /* untouched keys keep their documented defaults */
    assert_true(c.train.beta1 == 0.9);
    assert_true(c.train.beta2 == 0.999);
    assert_int_equal(c.run.workspace_mb, 64);
    assert_string_equal(c.resume, "auto");
    assert_string_equal(c.data.split, "train");
    assert_int_equal(c.aug_classification.flip, 1);
    assert_true(c.aug_classification.min_area == 0.75f);
    assert_int_equal(c.model.kernel, 3);
    assert_int_equal(c.model.image_size, 96);
}

/* The configs in conf/ load for their phase (run from the repository root). */
static void test_shipped_configs(void **state)
{
    if (!file_exists("conf/base.cfg")) {
        print_message("  conf/ not found from %s: skipped\n", getenv("PWD") ? getenv("PWD") : "?");
        skip();
    }
    const char *phases[] = {"pretrain", "linear", "finetune", "baseline", "eval"};
    for (size_t i = 0; i < 5; i++) {
        char path[64];
        pathf(path, sizeof path, "conf/%s.cfg", phases[i]);
        load_args a = {path, phases[i], NULL, 0};
        child_result r = run_child(do_load, &a);
        if (r.status != 0) fail_msg("%s does not load for phase %s:\n%s", path, phases[i], r.out);
    }
    config c;
    config_load(&c, "conf/pretrain.cfg", "pretrain", NULL, 0);
    assert_int_equal(c.train.batch, 500);
    assert_true(c.pretrain.temperature == 0.1);
    assert_int_equal(c.pretrain.probe_batch, 25);
    assert_int_equal(c.model.width, 128);
    assert_int_equal(c.data.eval_per_class, 100);
}

/* ---- errors in files -------------------------------------------------------------- */

static void test_syntax_error(void **state)
{
    expect_config_error(REQUIRED "train = {\n  epochs = 3;\n  batch = ; };\n", 5, NULL); /* no value */
    expect_config_error(REQUIRED "train = { epochs = 3; \n\n", 5, NULL);                   /* unclosed group: EOF */
    expect_config_error(REQUIRED "seed = 1;\nseed = 2;\n", 4, NULL); /* duplicate */
    /* libconfig: a file cannot redefine a key of a file it @includes (only --set can) */
    char base[4300], over[4300], where0[4400];
    cfg_file(base, sizeof base, "dup-base.cfg", "seed = 1;\n");
    cfg_file(over, sizeof over, "dup-main.cfg", "@include \"dup-base.cfg\"\n" REQUIRED "seed = 2;\n");
    pathf(where0, sizeof where0, "%s:4", over);
    load_args d = {over, "pretrain", NULL, 0};
    expect_exit(do_load, &d, EXIT_CONFIG, where0, "duplicate", NULL);
    /* an error inside an included file names that file (with the main file's folder, where
     * libconfig opened it) and its line */
    char inc[4300], main_cfg[4300], where1[4400];
    cfg_file(inc, sizeof inc, "broken.cfg", "seed = 1;\n\n  oops oops\n");
    cfg_file(main_cfg, sizeof main_cfg, "inc-main.cfg", REQUIRED "@include \"broken.cfg\"\n");
    load_args a = {main_cfg, "pretrain", NULL, 0};
    pathf(where1, sizeof where1, "%s:3", inc);
    expect_exit(do_load, &a, EXIT_CONFIG, where1, NULL);
    /* a missing file is named */
    char missing[4300];
    pathf(missing, sizeof missing, "%s/no-such.cfg", g_dir);
    load_args b = {missing, "pretrain", NULL, 0};
    expect_exit(do_load, &b, EXIT_CONFIG, missing, NULL);
}

static void test_wrong_types(void **state)
{
    expect_config_error(REQUIRED "train = {\n lr = 1;\n};\n", 4, "train.lr must be a float (write 1.0, not 1)");
    expect_config_error(REQUIRED "train = { lr = \"x\"; };\n", 3, "train.lr must be a float\n"); /* no 1.0 hint for a string */
    expect_config_error(REQUIRED "train = { epochs = 2.0; };\n", 3, "train.epochs");  /* float for int */
    expect_config_error("run_dir = \"r\";\ndata = { dir = \"d\";\n  unlabeled_use_train = \"true\"; };\n", 3,
                        "data.unlabeled_use_train"); /* quoted bool */
    expect_config_error(REQUIRED "run = { hdf5_file_locking = 1; };\n", 3, "run.hdf5_file_locking");
    expect_config_error(REQUIRED "seed = 4.0;\n", 3, "seed");
    expect_config_error("data = { dir = \"d\"; };\n\nrun_dir = 5;\n", 3, "run_dir"); /* int for string */
    expect_config_error(REQUIRED "seed = [1, 2];\n", 3, "seed");
    /* an included file's line is named too, with its folder */
    char inc[4300], main_cfg[4300], where[4400];
    cfg_file(inc, sizeof inc, "typed.cfg", "\n\ntrain = { lr = 2; };\n");
    cfg_file(main_cfg, sizeof main_cfg, "typed-main.cfg", REQUIRED "@include \"typed.cfg\"\n");
    load_args a = {main_cfg, "pretrain", NULL, 0};
    pathf(where, sizeof where, "%s:3", inc);
    expect_exit(do_load, &a, EXIT_CONFIG, where, "train.lr", NULL);
}

static void test_unknown_keys(void **state)
{
    expect_config_error(REQUIRED "train = { lr = 0.1; lrate = 0.1; };\n", 3, "train.lrate");
    /* a near miss names the key meant; a far one gets no guess */
    expect_config_error(REQUIRED "model = { batch_norm = true; };\n", 3, "did you mean 'model.batchnorm'?");
    expect_config_error(REQUIRED "train = { lrate = 0.1; };\n", 3, "did you mean 'train.lr'?");
    expect_config_error(REQUIRED "train = { batchnorm = true; };\n", 3, "did you mean 'model.batchnorm'?");
    expect_config_error(REQUIRED "augment = { grayscale = 0.2; };\n", 3,
                        "did you mean 'augment.contrastive.grayscale' or 'augment.classification.grayscale' or "
                        "'augment.probe.grayscale'?");
    expect_config_error(REQUIRED "\nbatch = 5;\n", 4, "'batch'");
    expect_config_error(REQUIRED "pretrain = { batch = 64; };\n", 3, "pretrain.batch");
    expect_config_error(REQUIRED "seed = { a = 1; };\n", 3, "seed.a");
}

static void test_out_of_range_ints(void **state)
{
    expect_config_error(REQUIRED "train = { batch = 0; };\n", 3, "train.batch");
    expect_config_error(REQUIRED "train = { epochs = -1; };\n", 3, "train.epochs");
    expect_config_error(REQUIRED "model = { conv_layers = 9; };\n", 3, "model.conv_layers");
    expect_config_error("run_dir = \"r\";\ndata = { dir = \"d\"; num_classes = 1; };\n", 2, "data.num_classes");
    expect_config_error(REQUIRED "train = { batch = 3000000000; };\n", 3, "train.batch"); /* > INT_MAX */
}

/* Out-of-range floats and int64s: the contract (config.h) is "file:line and the key". */
static void test_out_of_range_floats(void **state)
{
    struct {
        const char *text, *key;
    } cases[] = {
        {REQUIRED "pretrain = { temperature = 0.0; };\n", "pretrain.temperature"},
        {REQUIRED "pretrain = { temperature = -0.5; };\n", "pretrain.temperature"},
        {REQUIRED "train = { lr = 20.0; };\n", "train.lr"},
        {REQUIRED "augment = { contrastive = { min_area = 0.0; }; };\n", "augment.contrastive.min_area"},
        {REQUIRED "seed = -1;\n", "seed"},
    };
    char failures[4096] = "";
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[4300], name[32], where[4400];
        pathf(name, sizeof name, "range%zu.cfg", i);
        cfg_file(path, sizeof path, name, cases[i].text);
        pathf(where, sizeof where, "%s:3", path);
        load_args a = {path, "pretrain", NULL, 0};
        child_result r = run_child(do_load, &a);
        check_child(&r, EXIT_CONFIG, cases[i].key, path, NULL); /* exit code, key, file */
        if (!strstr(r.out, where)) /* and the line: collected, reported together */
            pathf(failures + strlen(failures), sizeof failures - strlen(failures),
                  "  %s: message lacks \"...:3\": %.300s", cases[i].key, r.out);
    }
    if (failures[0]) fail_msg("out-of-range values reported without file:line:\n%s", failures);
}

static void test_cross_key_rules(void **state)
{
    char path[4300];
    cfg_file(path, sizeof path, "norun.cfg", "data = { dir = \"d\"; };\n");
    load_args a = {path, "pretrain", NULL, 0};
    expect_exit(do_load, &a, EXIT_CONFIG, "run_dir", NULL);
    cfg_file(path, sizeof path, "nodata.cfg", "run_dir = \"r\";\n");
    expect_exit(do_load, &a, EXIT_CONFIG, "data.dir", NULL);
    cfg_file(path, sizeof path, "sched.cfg", REQUIRED "train = { schedule = \"linear\"; };\n");
    expect_exit(do_load, &a, EXIT_CONFIG, "sched.cfg:3", "train.schedule", NULL);
    cfg_file(path, sizeof path, "probe.cfg", REQUIRED "model = { probe_features = \"pool\"; };\n");
    expect_exit(do_load, &a, EXIT_CONFIG, "probe.cfg:3", "model.probe_features", "\"embed\", \"conv\"", NULL);
    cfg_file(path, sizeof path, "from.cfg", REQUIRED "model = { finetune_from = \"head1\"; };\n");
    expect_exit(do_load, &a, EXIT_CONFIG, "from.cfg:3", "model.finetune_from", "\"embed\", \"head0\"", NULL);
    cfg_file(path, sizeof path, "opt.cfg", REQUIRED "train = { optimizer = \"adamw\"; };\n");
    expect_exit(do_load, &a, EXIT_CONFIG, "opt.cfg:3", "train.optimizer", "\"adam\", \"sgd\"", NULL);
    cfg_file(path, sizeof path, "evalpc.cfg", "run_dir = \"r\";\ndata = { dir = \"d\"; eval_per_class = 0; };\n");
    expect_exit(do_load, &a, EXIT_CONFIG, "data.eval_per_class", NULL);
    cfg_file(path, sizeof path, "evalsplit.cfg",
             "run_dir = \"r\";\ndata = { dir = \"d\"; eval_per_class = 0; eval_split = \"test\"; };\n");
    expect_exit(do_load, &a, 0, NULL);
    char longs[200];
    memset(longs, 'x', 100);
    longs[100] = 0;
    char text[600];
    pathf(text, sizeof text, "run_dir = \"r\";\ndata = { dir = \"d\"; split = \"%s\"; };\n", longs);
    cfg_file(path, sizeof path, "long.cfg", text);
    expect_exit(do_load, &a, EXIT_CONFIG, "data.split", NULL);
}

static void test_phase_needs_checkpoint(void **state)
{
    char path[4300];
    cfg_file(path, sizeof path, "phase.cfg", REQUIRED);
    const char *needs[] = {"linear", "finetune", "eval"};
    for (size_t i = 0; i < 3; i++) {
        load_args a = {path, needs[i], NULL, 0};
        expect_exit(do_load, &a, EXIT_CONFIG, "checkpoint", needs[i], NULL);
    }
    const char *fine[] = {"pretrain", "baseline"};
    for (size_t i = 0; i < 2; i++) {
        load_args a = {path, fine[i], NULL, 0};
        expect_exit(do_load, &a, 0, NULL);
    }
    char *set[] = {"checkpoint=runs/p/final.h5"};
    load_args a = {path, "linear", set, 1};
    expect_exit(do_load, &a, 0, NULL);
}

/* ---- --set overrides -------------------------------------------------------------- */

static void test_set_overrides(void **state)
{
    char path[4300];
    cfg_file(path, sizeof path, "set.cfg", REQUIRED "train = { lr = 0.1; epochs = 5; };\n");
    char *sets[] = {"train.lr=2.5e-4", "train.epochs=7", "seed=123456789012", "data.unlabeled_use_train=false",
                    "augment.classification.flip=false", "run_dir=other dir", "data.split=tr=ain",
                    "augment.contrastive.jitter=0.125", "train.lr=0.0003", "checkpoint="};
    config c;
    config_load(&c, path, "pretrain", sets, (int)(sizeof sets / sizeof sets[0]));
    assert_true(c.train.lr == 0.0003); /* the last --set of a key wins */
    assert_int_equal(c.train.epochs, 7);
    assert_int_equal(c.seed, 123456789012LL);
    assert_int_equal(c.data.unlabeled_use_train, 0);
    assert_int_equal(c.aug_classification.flip, 0);
    assert_string_equal(c.run_dir, "other dir");
    assert_string_equal(c.data.split, "tr=ain");
    assert_true(c.aug_contrastive.jitter == 0.125f);
    assert_string_equal(c.checkpoint, "");
    char *t[] = {"data.num_classes=4"};
    config_load(&c, path, "pretrain", t, 1);
    assert_int_equal(c.model.num_classes, 4); /* follows an overridden data.num_classes */
}

static void test_set_errors(void **state)
{
    char path[4300];
    cfg_file(path, sizeof path, "seterr.cfg", REQUIRED);
    struct {
        const char *set, *want1, *want2;
        int code;
    } cases[] = {
        {"train.lrate=0.1", "train.lrate", "unknown", EXIT_CONFIG},
        {"pretrain:train.epochs=3", "jobs/pipeline.sh", "write --set train.epochs", EXIT_CONFIG},
        {"train.epochs=abc", "train.epochs", "abc", EXIT_CONFIG},
        {"train.epochs=5.0", "train.epochs", "integer", EXIT_CONFIG},
        {"train.epochs=", "train.epochs", "integer", EXIT_CONFIG},
        {"train.epochs=99999999999", "train.epochs", "range", EXIT_CONFIG},
        {"train.batch=0", "train.batch", "range", EXIT_CONFIG},
        {"train.lr=abc", "train.lr", "number", EXIT_CONFIG},
        {"train.lr=1,5", "train.lr", "number", EXIT_CONFIG},
        {"train.lr=nan", "train.lr", "number", EXIT_CONFIG},
        {"train.lr=1e400", "train.lr", "number", EXIT_CONFIG},
        {"train.lr=20", "train.lr", "range", EXIT_CONFIG},
        {"pretrain.temperature=0", "pretrain.temperature", "range", EXIT_CONFIG},
        {"pretrain.temperature=-1.0", "pretrain.temperature", "range", EXIT_CONFIG},
        {"seed=-3", "seed", "range", EXIT_CONFIG},
        {"data.unlabeled_use_train=yes", "data.unlabeled_use_train", "true or false", EXIT_CONFIG},
        {"data.unlabeled_use_train=1", "data.unlabeled_use_train", "true or false", EXIT_CONFIG},
        {"train.schedule=step", "train.schedule", "cosine", EXIT_CONFIG},
        {"train.lr", "train.lr", "key=value", EXIT_USAGE},
        {"=1", "--set =1", "key=value", EXIT_USAGE},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *set[] = {(char *)cases[i].set};
        load_args a = {path, "pretrain", set, 1};
        child_result r = run_child(do_load, &a);
        if (r.status != cases[i].code) print_message("  --set %s\n", cases[i].set);
        check_child(&r, cases[i].code, cases[i].want1, cases[i].want2, NULL);
    }
}

/* ---- config_to_text --------------------------------------------------------------- */

/* config_text_differs on config_to_text output: equal keys give 0 and the same text for
 * both values; a changed seed, string, float or bool gives 1 and both values as text; a key
 * missing from the text counts as its default. */
static void test_text_differs(void **state)
{
    (void)state;
    config a, b;
    config_defaults(&a);
    snprintf(a.checkpoint, sizeof a.checkpoint, "teacher-1.h5");
    a.seed = 5, a.distill.temperature = 2.0;
    char *text = config_to_text(&a);
    char was[256], now[256];
    b = a;
    assert_int_equal(config_text_differs(text, &b, "seed", was, now, sizeof was), 0);
    assert_string_equal(was, "5");
    assert_string_equal(now, "5");
    b.seed = 7;
    assert_int_equal(config_text_differs(text, &b, "seed", was, now, sizeof was), 1);
    assert_string_equal(was, "5");
    assert_string_equal(now, "7");
    snprintf(b.checkpoint, sizeof b.checkpoint, "teacher-2.h5");
    assert_int_equal(config_text_differs(text, &b, "checkpoint", was, now, sizeof was), 1);
    assert_string_equal(was, "\"teacher-1.h5\"");
    b.distill.temperature = 1.5;
    assert_int_equal(config_text_differs(text, &b, "distill.temperature", was, now, sizeof was), 1);
    assert_string_equal(was, "2");
    assert_int_equal(config_text_differs(text, &b, "data.labels_per_class", was, now, sizeof was), 0);
    b.run.hdf5_file_locking = 0;
    assert_int_equal(config_text_differs(text, &b, "run.hdf5_file_locking", was, now, sizeof was), 1);
    assert_string_equal(now, "false");
    /* absent from the text: the default (seed 42) */
    assert_int_equal(config_text_differs("train = { epochs = 3; };", &b, "seed", was, now, sizeof was), 1);
    assert_string_equal(was, "42");
    free(text);
}

static void test_to_text_reads_back(void **state)
{
    char path[4300], back[4300];
    cfg_file(path, sizeof path, "full.cfg",
             "run_dir = \"runs/with \\\"quote\\\" and \\\\ backslash\";\n"
             "data = { dir = \"data/\xc3\xa4 dir\"; split = \"train\"; unlabeled_split = \"\"; num_classes = 7; "
             "eval_per_class = 2; holdout_seed = 99; labels_per_class = 3; unlabeled_use_train = false; };\n"
             "seed = 8589934593L;\ncheckpoint = \"c.h5\";\nresume = \"none\";\n"
             "model = { conv_layers = 3; width = 32; kernel = 5; embed_dim = 64; proj_dim = 16; };\n"
             "train = { epochs = 11; batch = 96; lr = 0.000375; beta1 = 0.8; beta2 = 0.995; eps = 1e-09; "
             "weight_decay = 0.0001; warmup_epochs = 2; schedule = \"cosine\"; };\n"
             "pretrain = { temperature = 0.07; probe_batch = 12; };\n"
             "augment = { contrastive = { min_area = 0.3; brightness = 0.55; jitter = 0.15; flip = false; }; "
             "classification = { min_area = 0.9; brightness = 0.0; jitter = 0.05; flip = true; }; };\n"
             "run = { threads = 3; workspace_mb = 16; log_interval_s = 2.5; checkpoint_every = 2; "
             "keep_checkpoints = 4; hdf5_file_locking = false; };\n");
    config a, b;
    char *set[] = {"train.lr=0.12345678901234567"};
    config_load(&a, path, "finetune", set, 1);
    char *text = config_to_text(&a);
    assert_non_null(text);
    assert_non_null(strstr(text, "lr = "));
    assert_non_null(strstr(text, "temperature"));
    pathf(back, sizeof back, "%s/resolved.cfg", g_dir);
    write_text_file(back, text);
    load_args la = {back, "finetune", NULL, 0};
    child_result r = run_child(do_load, &la);
    if (r.status != 0) fail_msg("config_to_text output does not load:\n%s\n--- text:\n%s", r.out, text);
    config_load(&b, back, "finetune", NULL, 0);

    assert_string_equal(b.run_dir, a.run_dir);
    assert_string_equal(b.run_dir, "runs/with \"quote\" and \\ backslash");
    assert_string_equal(b.data.dir, a.data.dir);
    assert_string_equal(b.data.unlabeled_split, "");
    assert_int_equal(b.seed, 8589934593LL);
    assert_int_equal(b.data.num_classes, 7);
    assert_int_equal(b.model.width, 32);
    assert_int_equal(b.model.kernel, 5);
    assert_int_equal(b.train.warmup_epochs, 2);
    assert_true(b.train.eps == 1e-9);
    assert_true(b.pretrain.temperature == 0.07);
    assert_true(b.aug_contrastive.brightness == 0.55f);
    assert_true(b.aug_classification.brightness == 0.0f);
    assert_int_equal(b.run.hdf5_file_locking, 0);
    assert_true(b.run.log_interval_s == 2.5);
    /* 17 significant digits: read back to within the last digit or two */
    double rel = fabs(b.train.lr - a.train.lr) / a.train.lr;
    print_message("  train.lr 0.12345678901234567 -> text -> %.17g (rel diff %.2g)\n", b.train.lr, rel);
    assert_true(rel < 1e-14);
    /* where values came from: a's train.lr from its --set, b's from the file */
    char want[4400];
    assert_string_equal(config_origin(&a, "train.lr"), "--set train.lr");
    pathf(want, sizeof want, "%s:1", path); /* run_dir, on the first line of full.cfg */
    assert_string_equal(config_origin(&a, "run_dir"), want);
    assert_non_null(strstr(config_origin(&a, "distill.init"), "the default of distill.init"));
    assert_non_null(strstr(config_origin(&b, "train.lr"), back));
    /* everything else: the same struct, byte for byte (but for that provenance) */
    b.train.lr = a.train.lr;
    memset(a.config_path, 0, sizeof a.config_path);
    memset(b.config_path, 0, sizeof b.config_path);
    memset(&a.origin, 0, sizeof a.origin);
    memset(&b.origin, 0, sizeof b.origin);
    assert_memory_equal(&a, &b, sizeof a);
    char *text2 = config_to_text(&b);
    assert_true(config_hash(text2) != 0);
    free(text);
    free(text2);
}

static void test_config_hash(void **state)
{
    assert_true(config_hash("") == 0xcbf29ce484222325ULL); /* FNV-1a 64 offset basis */
    assert_true(config_hash("a") == 0xaf63dc4c8601ec8cULL); /* published FNV-1a test vector */
    assert_true(config_hash("foobar") == 0x85944171f73967e8ULL);
    assert_true(config_hash("lr = 0.1;") != config_hash("lr = 0.2;"));
}

/* config_training_hash / config_training_difference: paths, threads and logging do not count,
 * an augmentation probability (a float field) or the epochs do; the differing key is named
 * with both values as written in a config. */
static void test_training_difference(void **state)
{
    config a, b;
    config_defaults(&a);
    config_defaults(&b);
    snprintf(b.run_dir, sizeof b.run_dir, "elsewhere");
    snprintf(b.data.dir, sizeof b.data.dir, "other-data");
    b.run.threads = 7;
    b.run.log_interval_s = 3.0;
    b.train.eval_every = 4;
    assert_true(config_training_hash(&a) == config_training_hash(&b));
    char *text = config_to_text(&a), was[64], now[64];
    assert_null(config_training_difference(text, &b, was, now, sizeof was));
    b.aug_contrastive.blur = 0.5f;
    assert_true(config_training_hash(&a) != config_training_hash(&b));
    assert_string_equal(config_training_difference(text, &b, was, now, sizeof was), "augment.contrastive.blur");
    assert_string_equal(was, "0");
    assert_string_equal(now, "0.5");
    b.aug_contrastive.blur = a.aug_contrastive.blur;
    b.train.epochs = a.train.epochs + 1;
    assert_string_equal(config_training_difference(text, &b, was, now, sizeof was), "train.epochs");
    free(text);
}

/* config_key_unused: keys (and --set strings) a phase never reads; they do not count in the
 * training difference or hash of that phase (a new linear-probe setting must not refuse a
 * finished pretraining), and do count in the phase that reads them. */
static void test_unused_keys(void **state)
{
    assert_true(config_key_unused("finetune", "pretrain.temperature=0.5"));
    assert_true(config_key_unused("linear", "augment.classification.flip"));
    assert_false(config_key_unused("linear", "augment.probe.flip=false"));
    assert_true(config_key_unused("finetune", "augment.probe.min_area"));
    assert_true(config_key_unused("pretrain", "model.probe_features=conv"));
    assert_false(config_key_unused("linear", "model.probe_features=conv"));
    assert_true(config_key_unused("linear", "model.finetune_from=head0"));
    assert_true(config_key_unused("pretrain", "model.finetune_from=head0"));
    assert_true(config_key_unused("eval", "model.finetune_from=head0")); /* eval reads the checkpoint's */
    assert_false(config_key_unused("finetune", "model.finetune_from=head0"));
    assert_false(config_key_unused("baseline", "model.finetune_from=head0"));
    assert_true(config_key_unused("baseline", "checkpoint=x.h5"));
    assert_false(config_key_unused("baseline", "checkpointx=1")); /* a whole key, not a prefix */
    assert_false(config_key_unused("finetune", "checkpoint=x.h5"));
    assert_true(config_key_unused("eval", "train.lr"));
    assert_false(config_key_unused("nosuchphase", "train.lr"));
    config a, b;
    config_defaults(&a);
    snprintf(a.phase, sizeof a.phase, "pretrain");
    char *text = config_to_text(&a), was[64], now[64];
    b = a;
    snprintf(b.probe_features, sizeof b.probe_features, "conv");
    b.aug_probe.min_area = 1.0f;
    assert_true(config_training_hash(&a) == config_training_hash(&b));
    assert_null(config_training_difference(text, &b, was, now, sizeof was));
    free(text);
    snprintf(a.phase, sizeof a.phase, "linear"), snprintf(b.phase, sizeof b.phase, "linear");
    text = config_to_text(&a);
    assert_true(config_training_hash(&a) != config_training_hash(&b));
    assert_string_equal(config_training_difference(text, &b, was, now, sizeof was), "model.probe_features");
    assert_string_equal(now, "\"conv\"");
    b.aug_classification.jitter = 0.5f; /* finetune's augmentation: not the linear probe's */
    snprintf(b.probe_features, sizeof b.probe_features, "embed");
    assert_string_equal(config_training_difference(text, &b, was, now, sizeof was), "augment.probe.min_area");
    free(text);
}

/* Loads a config in the child and checks the parsed numbers itself (printing them would
 * use the decimal comma of the locale under test). */
static void do_load_check_numbers(void *p)
{
    load_args *a = p;
    config c;
    config_load(&c, a->path, a->phase, a->sets, a->nsets);
    int ok = c.train.lr == 0.25 && c.pretrain.temperature == 0.5 && c.aug_contrastive.brightness == 0.75f;
    printf("%s\n", ok ? "numbers ok" : "NUMBERS WRONG");
    char *text = config_to_text(&c);
    printf("%s\n", strstr(text, "lr = 0.25") ? "text ok" : "TEXT WRONG");
    free(text);
}

/* A comma-decimal LC_NUMERIC must not change how files or --set values parse, nor how
 * config_to_text writes them (the program itself never calls setlocale; this checks the
 * functions hold even if something in the process does). When no such locale is
 * installed, one is compiled with localedef into the temporary folder (LOCPATH). */
static void test_locale_independent(void **state)
{
    const char *names[] = {"de_DE.UTF-8", "de_DE.utf8", "de_DE", "fr_FR.UTF-8", "fr_FR.utf8"};
    const char *got = NULL;
    for (size_t i = 0; i < 5 && !got; i++) got = setlocale(LC_NUMERIC, names[i]);
    if (!got && file_exists("/usr/share/i18n/locales/de_DE")) {
        char locdir[4096], cmd[8400];
        make_tmp_dir(locdir, sizeof locdir, "locale");
        pathf(cmd, sizeof cmd, "localedef -i de_DE -f UTF-8 '%s/de_DE.UTF-8' >/dev/null 2>&1", locdir);
        if (system(cmd) == 0) {
            setenv("LOCPATH", locdir, 1);
            got = setlocale(LC_NUMERIC, "de_DE.UTF-8");
            print_message("  compiled de_DE.UTF-8 with localedef into %s\n", locdir);
        }
    }
    if (!got) {
        print_message("  no comma-decimal locale installed and localedef failed: skipped\n");
        skip();
    }
    char probe[16];
    snprintf(probe, sizeof probe, "%.1f", 0.5);
    print_message("  LC_NUMERIC %s: printf(\"%%.1f\", 0.5) gives \"%s\"\n", got, probe);
    char path[4300];
    cfg_file(path, sizeof path, "locale.cfg", REQUIRED "train = { lr = 0.25; };\naugment = { contrastive = { brightness = 0.75; }; };\n");
    char *set[] = {"pretrain.temperature=0.5"};
    load_args a = {path, "pretrain", set, 1};
    child_result r = run_child(do_load_check_numbers, &a);
    char *comma[] = {"pretrain.temperature=0,5"}; /* the locale's own notation is still refused */
    load_args b = {path, "pretrain", comma, 1};
    child_result rb = run_child(do_load, &b);
    setlocale(LC_NUMERIC, "C");
    assert_string_equal(probe, "0,5"); /* the locale really is a decimal-comma one */
    check_child(&r, 0, "numbers ok", "text ok", NULL);
    check_child(&rb, EXIT_CONFIG, "pretrain.temperature", "number", NULL);
}

/* Hostile config files: a folder, an @include of a missing file or of itself, empty,
 * binary, a UTF-8 byte-order mark, zero epochs. */
static void test_hostile_files(void **state)
{
    load_args a = {g_dir, "pretrain", NULL, 0};
    if (!g_dir[0]) make_tmp_dir(g_dir, sizeof g_dir, "conf");
    a.path = g_dir;
    expect_exit(do_load, &a, EXIT_CONFIG, g_dir, "is a directory", NULL);
    expect_config_error(REQUIRED "\n@include \"no-such-include.cfg\"\n", 4, "include");
    char self[4300], where[4400];
    cfg_file(self, sizeof self, "self.cfg", "\n@include \"self.cfg\"\n");
    pathf(where, sizeof where, "self.cfg:2");
    a.path = self;
    expect_exit(do_load, &a, EXIT_CONFIG, where, "nesting too deep", NULL);
    char empty[4300];
    cfg_file(empty, sizeof empty, "empty.cfg", "");
    a.path = empty;
    expect_exit(do_load, &a, EXIT_CONFIG, empty, "run_dir is required", NULL);
    char bin[4300];
    const char garbage[] = "\x7f" "ELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x03\0>\0\x01\0\0\0";
    pathf(bin, sizeof bin, "%s/binary.cfg", g_dir);
    write_file(bin, garbage, sizeof garbage);
    pathf(where, sizeof where, "%s:1", bin);
    a.path = bin;
    expect_exit(do_load, &a, EXIT_CONFIG, where, "syntax error", NULL);
    expect_config_error("\xef\xbb\xbf" REQUIRED, 1, "byte-order mark");
    expect_config_error(REQUIRED "seed = 1;\nseed = 2;\n", 4, "use --set key=value or edit a copy");
    expect_config_error(REQUIRED "seed = 1;\n  seed   = 2;  \n", 4, "(the line reads: seed   = 2;)");
    /* a byte-order mark in an @included file: that file named, not a bare "syntax error" */
    char inc[4300], main_cfg[4300];
    cfg_file(inc, sizeof inc, "bom-inc.cfg", "\xef\xbb\xbfseed = 3;\n");
    cfg_file(main_cfg, sizeof main_cfg, "bom-main.cfg", REQUIRED "@include \"bom-inc.cfg\"\n");
    pathf(where, sizeof where, "%s:1", inc);
    a.path = main_cfg;
    expect_exit(do_load, &a, EXIT_CONFIG, where, "byte-order mark", NULL);
    expect_config_error(REQUIRED "train = { epochs = 0; };\n", 3, "train.epochs");
}

/* libconfig 1.5 reads integers without an L suffix into 32 bits, wrapping larger ones
 * ("batch = 4294967360" would be 64): refused with file:line and key. */
static void test_big_integers(void **state)
{
    expect_config_error(REQUIRED "train = { batch = 4294967360; };\n", 3, "train.batch = 4294967360 does not fit in 32 bits");
    expect_config_error(REQUIRED "# 99999999999 in a comment is fine\nseed = 8589934593;\n", 4, "seed = 8589934593");
    expect_config_error(REQUIRED "train = { epochs = 0x100000002; };\n", 3, "train.epochs = 0x100000002");
    expect_config_error(REQUIRED "seed = 99999999999999999999;\n", 3, "does not fit in 64 bits");
    expect_config_error(REQUIRED "model = {\n  width = -2147483649; };\n", 4, "model.width = -2147483649");
    /* in an @included file: that file and line */
    char inc[4300], main_cfg[4300];
    cfg_file(inc, sizeof inc, "bigint.cfg", "\n\nseed = 4294967297;\n");
    cfg_file(main_cfg, sizeof main_cfg, "bigint-main.cfg", REQUIRED "@include \"bigint.cfg\"\n");
    load_args a = {main_cfg, "pretrain", NULL, 0};
    expect_exit(do_load, &a, EXIT_CONFIG, "bigint.cfg:3", "seed = 4294967297", NULL);
    /* fine: with L, in strings and comments, as floats, and the 32-bit limits themselves */
    char path[4300];
    cfg_file(path, sizeof path, "bigok.cfg",
             "run_dir = \"r 4294967360\";\ndata = { dir = \"d\"; holdout_seed = 4294967297L; };\n"
             "/* 99999999999\n 88888888888 */ seed = 2147483647; // 77777777777\n"
             "train = { lr = 1.5e-3; eps = 1e-10; };\nrun = { log_interval_s = 65536.0; };\n");
    config c;
    config_load(&c, path, "pretrain", NULL, 0);
    assert_int_equal(c.data.holdout_seed, 4294967297LL);
    assert_int_equal(c.seed, 2147483647LL);
    assert_string_equal(c.run_dir, "r 4294967360");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_with_include),
        cmocka_unit_test(test_shipped_configs),
        cmocka_unit_test(test_syntax_error),
        cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_unknown_keys),
        cmocka_unit_test(test_out_of_range_ints),
        cmocka_unit_test(test_out_of_range_floats),
        cmocka_unit_test(test_cross_key_rules),
        cmocka_unit_test(test_phase_needs_checkpoint),
        cmocka_unit_test(test_set_overrides),
        cmocka_unit_test(test_set_errors),
        cmocka_unit_test(test_to_text_reads_back),
        cmocka_unit_test(test_config_hash),
        cmocka_unit_test(test_training_difference),
        cmocka_unit_test(test_unused_keys),
        cmocka_unit_test(test_locale_independent),
        cmocka_unit_test(test_hostile_files),
        cmocka_unit_test(test_big_integers),
        cmocka_unit_test(test_text_differs),
    };
    set_abort_hook(fail_on_fatal);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
