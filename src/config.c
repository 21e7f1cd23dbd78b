/* config.c: libconfig -> typed struct, with a schema of every key. */
#define _GNU_SOURCE /* open_memstream, strdup */
#include "config.h"
#include "common.h"

#include <ctype.h>
#include <errno.h>
#include <libconfig.h>
#include <locale.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common.h"

/* --set values are parsed with strtod, which follows LC_NUMERIC: under a decimal-comma
 * locale "train.lr=0.25" would be refused (or "1,5" accepted). The program never calls
 * setlocale, but a library or an embedding program could. libconfig 1.5 itself parses and
 * writes files in the C locale (its own newlocale/uselocale), but then leaves the thread
 * on LC_GLOBAL_LOCALE. So config_load switches this thread to the C locale for the --set
 * values and afterwards restores the caller's thread locale (uselocale, POSIX 2008). */
static void c_locale_enter(void)
{
    static locale_t c_loc;
    if (!c_loc) c_loc = newlocale(LC_ALL_MASK, "C", (locale_t)0);
    if (!c_loc) fatal(EXIT_INTERNAL, "newlocale(\"C\") failed");
    uselocale(c_loc);
}

typedef enum { T_INT, T_INT64, T_FLOAT, T_BOOL, T_STR } key_type;

typedef struct {
    const char *path;
    key_type type;
    size_t off, size; /* offset in config; size of the char array for T_STR */
    double min, max;
    const char *choices; /* T_STR with a fixed set of values: "a|b|c"; NULL: any string */
} key_spec;

#define K(path, type, field, lo, hi) {path, type, offsetof(config, field), sizeof(((config *)0)->field), lo, hi, NULL}
/* a string key that takes one of the '|'-separated values in `choices` */
#define KS(path, field, choices) {path, T_STR, offsetof(config, field), sizeof(((config *)0)->field), 0, 0, choices}
#define BIG 1e18
/* the six keys of one augment.GROUP (aug_cfg) */
#define AUG_KEYS(group, field)                                                                   \
    K("augment." group ".min_area", T_FLOAT, field.min_area, 1e-3, 1),                           \
    K("augment." group ".brightness", T_FLOAT, field.brightness, 0, 1),                          \
    K("augment." group ".jitter", T_FLOAT, field.jitter, 0, 1),                                  \
    K("augment." group ".flip", T_BOOL, field.flip, 0, 1),                                       \
    K("augment." group ".grayscale", T_FLOAT, field.grayscale, 0, 1),                            \
    K("augment." group ".blur", T_FLOAT, field.blur, 0, 1)
static const key_spec SCHEMA[] = {
    K("run_dir", T_STR, run_dir, 0, 0),
    K("resume", T_STR, resume, 0, 0),
    K("checkpoint", T_STR, checkpoint, 0, 0),
    K("seed", T_INT64, seed, 0, BIG),
    K("data.dir", T_STR, data.dir, 0, 0),
    K("data.split", T_STR, data.split, 0, 0),
    K("data.unlabeled_split", T_STR, data.unlabeled_split, 0, 0),
    K("data.unlabeled_use_train", T_BOOL, data.unlabeled_use_train, 0, 1),
    K("data.eval_split", T_STR, data.eval_split, 0, 0),
    K("data.eval_per_class", T_INT, data.eval_per_class, 0, 1e9),
    K("data.holdout_seed", T_INT64, data.holdout_seed, 0, BIG),
    K("data.labels_per_class", T_INT, data.labels_per_class, 0, 1e9),
    K("data.val_per_class", T_INT, data.val_per_class, 0, 1e9),
    K("data.num_classes", T_INT, data.num_classes, 2, 255),
    K("model.conv_layers", T_INT, model.conv_layers, 1, MODEL_MAX_CONV),
    K("model.width", T_INT, model.width, 1, 4096),
    K("model.kernel", T_INT, model.kernel, 1, 11),
    K("model.embed_dim", T_INT, model.embed_dim, 1, 65536),
    K("model.proj_dim", T_INT, model.proj_dim, 1, 65536),
    K("model.batchnorm", T_BOOL, model.batchnorm, 0, 1),
    KS("model.probe_features", probe_features, "embed|conv"),
    KS("model.finetune_from", finetune_from, "embed|head0"),
    K("train.epochs", T_INT, train.epochs, 1, 1e6),
    K("train.batch", T_INT, train.batch, 1, 1e8),
    K("train.lr", T_FLOAT, train.lr, 1e-12, 10),
    K("train.beta1", T_FLOAT, train.beta1, 0, 0.999999),
    K("train.beta2", T_FLOAT, train.beta2, 0, 0.99999999),
    K("train.eps", T_FLOAT, train.eps, 1e-30, 1),
    K("train.weight_decay", T_FLOAT, train.weight_decay, 0, 1),
    K("train.warmup_epochs", T_INT, train.warmup_epochs, 0, 1e6),
    KS("train.schedule", train.schedule, "constant|cosine"),
    KS("train.optimizer", train.optimizer, "adam|sgd"),
    K("train.momentum", T_FLOAT, train.momentum, 0, 0.999999),
    K("train.eval_every", T_INT, train.eval_every, 1, 1e6),
    K("pretrain.temperature", T_FLOAT, pretrain.temperature, 1e-6, 100),
    K("pretrain.probe_batch", T_INT, pretrain.probe_batch, 0, 1e8),
    K("distill.temperature", T_FLOAT, distill.temperature, 1e-3, 100),
    K("distill.init", T_STR, distill.init, 0, 0),
    AUG_KEYS("contrastive", aug_contrastive),
    AUG_KEYS("classification", aug_classification),
    AUG_KEYS("probe", aug_probe),
    K("run.threads", T_INT, run.threads, 0, 1024),
    K("run.workspace_mb", T_INT, run.workspace_mb, 1, 1 << 20),
    K("run.log_interval_s", T_FLOAT, run.log_interval_s, 0, 1e9),
    K("run.checkpoint_every", T_INT, run.checkpoint_every, 1, 1e6),
    K("run.keep_checkpoints", T_INT, run.keep_checkpoints, 1, 1e6),
    K("run.hdf5_file_locking", T_BOOL, run.hdf5_file_locking, 0, 1),
};
#define NKEYS (sizeof SCHEMA / sizeof SCHEMA[0])
_Static_assert(NKEYS <= sizeof ((config *)0)->origin.file, "config.origin has an entry per schema key");

void config_defaults(config *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->resume, sizeof c->resume, "auto");
    c->seed = 42;
    snprintf(c->data.split, sizeof c->data.split, "train");
    snprintf(c->data.unlabeled_split, sizeof c->data.unlabeled_split, "unlabeled");
    c->data.unlabeled_use_train = 1;
    c->data.eval_per_class = 100;
    c->data.holdout_seed = 2011;
    c->data.num_classes = 10;
    c->model = (model_cfg){.image_size = 96, .conv_layers = 4, .width = 128, .kernel = 3,
                           .embed_dim = 128, .proj_dim = 128, .num_classes = 10};
    c->train.epochs = 20;
    c->train.batch = 512;
    c->train.lr = 1e-3, c->train.beta1 = 0.9, c->train.beta2 = 0.999, c->train.eps = 1e-7;
    snprintf(c->train.schedule, sizeof c->train.schedule, "constant");
    snprintf(c->train.optimizer, sizeof c->train.optimizer, "adam");
    c->train.momentum = 0.9;
    c->train.eval_every = 1;
    c->pretrain.temperature = 0.1;
    c->pretrain.probe_batch = 0;
    c->distill.temperature = 1.0;
    c->aug_contrastive = (aug_cfg){0.25f, 0.6f, 0.2f, 1, 0.0f, 0.0f};
    c->aug_classification = (aug_cfg){0.75f, 0.3f, 0.1f, 1, 0.0f, 0.0f};
    c->aug_probe = c->aug_classification;
    snprintf(c->probe_features, sizeof c->probe_features, "embed");
    snprintf(c->finetune_from, sizeof c->finetune_from, "embed");
    c->run.workspace_mb = 64;
    c->run.log_interval_s = 10.0;
    c->run.checkpoint_every = 1;
    c->run.keep_checkpoints = 2;
    c->run.hdf5_file_locking = 1;
}

static const key_spec *find_key(const char *path)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (!strcmp(SCHEMA[i].path, path)) return &SCHEMA[i];
    return NULL;
}

/* Levenshtein distance of a and b (keys are short: one row of at most 256 + 1 entries). */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), row[257];
    if (la > 256 || lb > 256) return (size_t)-1;
    for (size_t j = 0; j <= lb; j++) row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j], best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            diag = up, row[j] = best;
        }
    }
    return row[lb];
}

/* The message part after "unknown key 'PATH'": the nearest keys of the schema, e.g.
 * "; did you mean 'train.lr'?". Nearest: the same last name in another group
 * (train.batchnorm -> model.batchnorm) or a key the name starts (augment.contrastive.gray)
 * count as one edit; otherwise the edit distance, offered within a third of the name's
 * length (at least 2 edits). Up to 3 keys at the same distance are named. */
static const char *suggest_key(const char *path, char *buf, size_t n)
{
    size_t best = (size_t)-1, limit = strlen(path) / 3 > 2 ? strlen(path) / 3 : 2, dist[NKEYS];
    const char *leaf = strrchr(path, '.') ? strrchr(path, '.') + 1 : path;
    for (size_t i = 0; i < NKEYS; i++) {
        const char *k = SCHEMA[i].path, *kleaf = strrchr(k, '.') ? strrchr(k, '.') + 1 : k;
        dist[i] = !strcmp(kleaf, leaf) || (strlen(path) >= 3 && !strncmp(k, path, strlen(path))) ? 1
                                                                                : edit_distance(path, k);
        if (dist[i] < best) best = dist[i];
    }
    if (best > limit) return "";
    int named = 0;
    snprintf(buf, n, "; did you mean");
    for (size_t i = 0; i < NKEYS && named < 3; i++)
        if (dist[i] == best)
            snprintf(buf + strlen(buf), n - strlen(buf), "%s'%s'", named++ ? " or " : " ", SCHEMA[i].path);
    snprintf(buf + strlen(buf), n - strlen(buf), "?");
    return buf;
}

/* The key_spec of PATH, or exit 3 naming WHERE, the key and the nearest keys. */
static const key_spec *known_key(const char *path, const char *where)
{
    const key_spec *k = find_key(path);
    char hint[300];
    if (!k && strchr(path, ':')) /* jobs/pipeline.sh's per-phase form given to the binary */
        fatal(EXIT_CONFIG, "%s: unknown key '%s': the PHASE:key=value form is read by jobs/pipeline.sh and "
              "jobs/recipes.sh only; here the phase is the command's, so write --set %s", where, path,
              strchr(path, ':') + 1);
    if (!k && !strcmp(path, "phase") && !strncmp(where, "--set", 5)) /* set only by a phase file */
        fatal(EXIT_CONFIG, "%s: 'phase' is not a setting: the phase is the command's first argument "
              "(simclr PHASE CONFIG), and a phase file's `phase = ...;` names the phase it is for", where);
    if (!k)
        fatal(EXIT_CONFIG, "%s: unknown key '%s'%s (see conf/base.cfg for the keys)", where, path,
              suggest_key(path, hint, sizeof hint));
    return k;
}

static const char *type_name(key_type t)
{
    static const char *names[] = {"an integer", "an integer", "a float", "a boolean (true/false, unquoted)",
                                  "a quoted string"};
    return names[t];
}

/* Stores a value into the struct field of spec k; aug float fields are float, others double. */
static void store_float(config *c, const key_spec *k, double v)
{
    if (k->size == sizeof(float)) *(float *)((char *)c + k->off) = (float)v; /* aug_cfg fields */
    else *(double *)((char *)c + k->off) = v;
}

static double load_number(const config *c, const key_spec *k)
{
    const char *p = (const char *)c + k->off;
    switch (k->type) {
    case T_INT: case T_BOOL: return *(const int *)p;
    case T_INT64: return (double)*(const int64_t *)p;
    case T_FLOAT: {
        if (k->size != sizeof(float)) return *(const double *)p;
        char buf[32]; /* the shortest decimal of the float (0.6, not 0.600000023841858) */
        snprintf(buf, sizeof buf, "%.7g", (double)*(const float *)p);
        return strtod(buf, NULL);
    }
    default: return 0;
    }
}

/* s is one of the '|'-separated words of choices */
static int is_choice(const char *choices, const char *s)
{
    const size_t n = strlen(s);
    for (const char *p = choices; n && (p = strstr(p, s)); p++)
        if ((p == choices || p[-1] == '|') && (p[n] == '|' || !p[n])) return 1;
    return 0;
}

static void set_string(config *c, const key_spec *k, const char *s, const char *where)
{
    if (strlen(s) >= k->size) fatal(EXIT_CONFIG, "%s: %s is longer than %zu characters", where, k->path, k->size - 1);
    if (k->choices && !is_choice(k->choices, s)) {
        char list[128] = "", *out = list;
        for (const char *p = k->choices; *p && out < list + sizeof list - 5; p++) /* a|b -> a", "b */
            out += *p == '|' ? (size_t)sprintf(out, "\", \"") : (size_t)(*out = *p, 1);
        fatal(EXIT_CONFIG, "%s: %s = \"%s\": must be one of \"%s\"", where, k->path, s, list);
    }
    memcpy((char *)c + k->off, s, strlen(s) + 1);
}

/* The file a setting came from, as a path the user can open: libconfig 1.5 names an
 * @included file as written in the @include line, relative to include_dir. */
static const char *source_path(const char *file, const char *main_path, const char *include_dir, char *buf, size_t n)
{
    if (!file) return main_path;
    if (file[0] == '/' || !include_dir || !strcmp(file, main_path)) return file;
    snprintf(buf, n, "%s/%s", include_dir, file);
    return buf;
}

/* c->origin: key k was read from file:line (up to 8 files; beyond, the line is not kept) */
static void note_origin(config *c, const key_spec *k, const char *file, int line)
{
    int f = 0;
    while (f < c->origin.nfiles && strcmp(c->origin.files[f], file)) f++;
    if (f == c->origin.nfiles) {
        if (f == (int)(sizeof c->origin.files / sizeof c->origin.files[0])) return;
        snprintf(c->origin.files[f], sizeof c->origin.files[f], "%.*s", (int)sizeof c->origin.files[f] - 1, file);
        c->origin.nfiles++;
    }
    c->origin.line[k - SCHEMA] = line > 0 ? line : 1;
    c->origin.file[k - SCHEMA] = (unsigned char)f;
}

static void walk(config *c, const config_setting_t *s, const char *file_fallback, const char *include_dir)
{
    int n = config_setting_length(s);
    for (int i = 0; i < n; i++) {
        config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
        char path[256], where[2 * PATH_MAX + 32], full[2 * PATH_MAX];
        const char *file = source_path(config_setting_source_file(e), file_fallback, include_dir, full, sizeof full);
        snprintf(where, sizeof where, "%s:%d", file, config_setting_source_line(e));
        /* the full dotted path of e */
        path[0] = 0;
        const config_setting_t *chain[16];
        int depth = 0;
        for (const config_setting_t *p = e; p && config_setting_name(p) && depth < 16; p = config_setting_parent(p))
            chain[depth++] = p;
        for (int d = depth - 1; d >= 0; d--) {
            strncat(path, config_setting_name(chain[d]), sizeof path - strlen(path) - 1);
            if (d) strncat(path, ".", sizeof path - strlen(path) - 1);
        }
        int type = config_setting_type(e);
        if (type == CONFIG_TYPE_GROUP) {
            walk(c, e, file_fallback, include_dir);
            continue;
        }
        if (!strcmp(path, "phase")) { /* the phase a config file is written for (not a schema key) */
            const char *p = type == CONFIG_TYPE_STRING ? config_setting_get_string(e) : NULL;
            if (!p) fatal(EXIT_CONFIG, "%s: phase must be a string (e.g. \"finetune\")", where);
            if (!is_phase_name(p))
                fatal(EXIT_CONFIG, "%s: phase \"%s\" is not a phase (pretrain, linear, finetune, baseline, "
                      "distill or eval)", where, p);
            if (c->phase[0] && strcmp(p, c->phase))
                fatal(EXIT_CONFIG, "%s: this configuration is written for phase %s, not %s: give %s its own "
                      "(e.g. conf/%s.cfg)", where, p, c->phase, c->phase, c->phase);
            continue;
        }
        const key_spec *k = known_key(path, where);
        note_origin(c, k, file, config_setting_source_line(e));
        char *field = (char *)c + k->off;
        int ok = 0;
        double v = 0.0;
        switch (k->type) {
        case T_INT:
        case T_INT64:
            if (type == CONFIG_TYPE_INT || type == CONFIG_TYPE_INT64) {
                long long iv = config_setting_get_int64(e);
                v = (double)iv;
                if (v < k->min || v > k->max) break;
                if (k->type == T_INT) *(int *)field = (int)iv;
                else *(int64_t *)field = iv;
                ok = 1;
            }
            break;
        case T_FLOAT:
            if (type == CONFIG_TYPE_FLOAT) {
                v = config_setting_get_float(e);
                if (!(v >= k->min && v <= k->max)) break;
                store_float(c, k, v), ok = 1;
            }
            break;
        case T_BOOL:
            if (type == CONFIG_TYPE_BOOL) *(int *)field = config_setting_get_bool(e), ok = 1;
            break;
        case T_STR:
            if (type == CONFIG_TYPE_STRING) set_string(c, k, config_setting_get_string(e), where), ok = 1;
            break;
        }
        int type_ok = (k->type == T_INT || k->type == T_INT64) ? (type == CONFIG_TYPE_INT || type == CONFIG_TYPE_INT64)
                      : k->type == T_FLOAT ? type == CONFIG_TYPE_FLOAT
                      : k->type == T_BOOL  ? type == CONFIG_TYPE_BOOL
                                           : type == CONFIG_TYPE_STRING;
        if (!type_ok) /* the classic libconfig slip: 1 where 1.0 is meant */
            fatal(EXIT_CONFIG, "%s: %s must be %s%s", where, path, type_name(k->type),
                  k->type == T_FLOAT && (type == CONFIG_TYPE_INT || type == CONFIG_TYPE_INT64) ? " (write 1.0, not 1)" : "");
        if (!ok) /* integers in full (%g would print 2147483647 as 2.14748e+09) */
            fatal(EXIT_CONFIG, k->type == T_FLOAT ? "%s: %s = %g is out of range [%g, %g]" : "%s: %s = %.0f is out of range [%g, %g]",
                  where, path, v, k->min, k->max);
    }
}

static void apply_set(config *c, const char *arg)
{
    const char *eq = strchr(arg, '=');
    if (!eq || eq == arg) fatal(EXIT_USAGE, "--set %s: expected key=value", arg);
    char key[256];
    snprintf(key, sizeof key, "%.*s", (int)(eq - arg), arg);
    const char *val = eq + 1;
    char where[300];
    snprintf(where, sizeof where, "--set %s", key);
    const key_spec *k = known_key(key, where);
    c->origin.line[k - SCHEMA] = -1;
    char *end = NULL;
    errno = 0;
    switch (k->type) {
    case T_INT:
    case T_INT64: {
        long long v = strtoll(val, &end, 10);
        if (!*val || *end || errno) fatal(EXIT_CONFIG, "%s=%s: must be an integer", where, val);
        if ((double)v < k->min || (double)v > k->max)
            fatal(EXIT_CONFIG, "%s=%s: out of range [%g, %g]", where, val, k->min, k->max);
        if (k->type == T_INT) *(int *)((char *)c + k->off) = (int)v;
        else *(int64_t *)((char *)c + k->off) = v;
        break;
    }
    case T_FLOAT: {
        double v = strtod(val, &end);
        if (!*val || *end || errno || !isfinite(v)) fatal(EXIT_CONFIG, "%s=%s: must be a number", where, val);
        if (v < k->min || v > k->max) fatal(EXIT_CONFIG, "%s=%s: out of range [%g, %g]", where, val, k->min, k->max);
        store_float(c, k, v);
        break;
    }
    case T_BOOL:
        if (strcmp(val, "true") && strcmp(val, "false")) fatal(EXIT_CONFIG, "%s=%s: must be true or false", where, val);
        *(int *)((char *)c + k->off) = !strcmp(val, "true");
        break;
    case T_STR: { /* key="text" as a shell passes it: one pair of surrounding quotes is syntax */
        size_t len = strlen(val);
        char unq[PATH_MAX];
        if (len >= 2 && val[0] == '"' && val[len - 1] == '"' && len - 2 < sizeof unq) {
            memcpy(unq, val + 1, len - 2);
            unq[len - 2] = 0;
            val = unq;
        }
        set_string(c, k, val, where);
        break;
    }
    }
}

/* libconfig 1.5 reads an integer literal without an L suffix into 32 bits (atoi or
 * strtoul, then int): "batch = 4294967360;" silently becomes 64 and "seed = 8589934593;"
 * becomes 1 (libconfig 1.7 reports "integer value out of range" instead). So each config
 * file, and each file it @includes, is scanned for integer literals that do not fit in 32
 * bits (decimal beyond +-2^31, hex beyond 0xffffffff) without an L suffix: an error with
 * file:line. Run after libconfig accepted the syntax; comments and strings are skipped. */
static void check_int_literals(const char *path, const char *include_dir, int depth)
{
    if (depth > 10) return; /* libconfig itself refuses deeper @include nesting */
    FILE *f = fopen(path, "r");
    if (!f) return; /* libconfig has read it: cannot happen but for a race */
    size_t cap = 4096, n = 0;
    char *s = malloc(cap);
    for (size_t got; s && (got = fread(s + n, 1, cap - n - 1, f)) > 0;)
        if ((n += got) == cap - 1) s = realloc(s, cap *= 2);
    fclose(f);
    if (!s) fatal(EXIT_INTERNAL, "out of memory reading %s", path);
    s[n] = 0;
    int line = 1, depth_g = 0;
    char group[16][64], key[64] = ""; /* enclosing group names; the last name seen */
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (ch == '\n') line++;
        else if (isalpha((unsigned char)ch) || ch == '*') {
            size_t j = i;
            while (j < n && (isalnum((unsigned char)s[j]) || s[j] == '_' || s[j] == '*' || s[j] == '-')) j++;
            snprintf(key, sizeof key, "%.*s", (int)(j - i), s + i);
            i = j - 1;
        } else if (ch == '{') {
            if (depth_g < 16) snprintf(group[depth_g], sizeof group[0], "%s", key);
            depth_g++;
        } else if (ch == '}' && depth_g > 0) depth_g--;
        else if (ch == '#' || (ch == '/' && s[i + 1] == '/')) {
            while (i + 1 < n && s[i + 1] != '\n') i++;
        } else if (ch == '/' && s[i + 1] == '*') {
            for (i += 2; i + 1 < n && !(s[i] == '*' && s[i + 1] == '/'); i++) line += s[i] == '\n';
            i++;
        } else if (ch == '"') {
            for (i++; i < n && s[i] != '"'; i++) {
                if (s[i] == '\\' && i + 1 < n) i++;
                line += s[i] == '\n';
            }
        } else if (ch == '@' && !strncmp(s + i, "@include", 8)) {
            char *q = strchr(s + i, '"'), *e = q ? strchr(q + 1, '"') : NULL;
            if (!q || !e) continue;
            char inc[PATH_MAX];
            if (q[1] != '/' && include_dir) snprintf(inc, sizeof inc, "%s/%.*s", include_dir, (int)(e - q - 1), q + 1);
            else snprintf(inc, sizeof inc, "%.*s", (int)(e - q - 1), q + 1);
            check_int_literals(inc, include_dir, depth + 1);
            i = (size_t)(e - s);
        } else if (ch >= '0' && ch <= '9') {
            size_t j = i;
            while (j < n && (isalnum((unsigned char)s[j]) || s[j] == '.' || s[j] == '_' ||
                             ((s[j] == '+' || s[j] == '-') && (s[j - 1] == 'e' || s[j - 1] == 'E'))))
                j++;
            int ident = i > 0 && (isalnum((unsigned char)s[i - 1]) || s[i - 1] == '_' || s[i - 1] == '*' ||
                                  s[i - 1] == '.' || (s[i - 1] == '-' && i > 1 && isalnum((unsigned char)s[i - 2])));
            int hex = ch == '0' && (s[i + 1] == 'x' || s[i + 1] == 'X');
            size_t k = hex ? i + 2 : i;
            while (k < j && (hex ? isxdigit((unsigned char)s[k]) : isdigit((unsigned char)s[k]))) k++;
            if (!ident && k == j && j > (hex ? i + 2 : i)) { /* a plain integer: no L, '.', 'e' */
                char name[17 * 64] = ""; /* group names, dots, key */
                for (int g = 0; g < depth_g && g < 16; g++)
                    snprintf(name + strlen(name), sizeof name - strlen(name), "%s.", group[g]);
                snprintf(name + strlen(name), sizeof name - strlen(name), "%s", key);
                errno = 0;
                unsigned long long v = strtoull(s + i, NULL, hex ? 16 : 10);
                int neg = i > 0 && s[i - 1] == '-';
                unsigned long long lim = hex ? 0xffffffffULL : neg ? 2147483648ULL : 2147483647ULL;
                if (errno == ERANGE || v > (unsigned long long)INT64_MAX)
                    fatal(EXIT_CONFIG, "%s:%d: %s = %s%.*s does not fit in 64 bits", path, line, name, neg ? "-" : "",
                          (int)(j - i), s + i);
                if (v > lim)
                    fatal(EXIT_CONFIG, "%s:%d: %s = %s%.*s does not fit in 32 bits, and libconfig would read it "
                          "wrapped around: write %s%.*sL for a 64-bit integer", path, line, name, neg ? "-" : "",
                          (int)(j - i), s + i, neg ? "-" : "", (int)(j - i), s + i);
            }
            i = j - 1;
        }
    }
    free(s);
}

/* libconfig reads a UTF-8 byte-order mark as a syntax error on line 1: name it instead */
static void refuse_bom(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return;
    unsigned char head[3] = {0};
    const int bom = fread(head, 1, 3, f) == 3 && head[0] == 0xef && head[1] == 0xbb && head[2] == 0xbf;
    fclose(f);
    if (bom)
        fatal(EXIT_CONFIG, "%s:1: starts with a UTF-8 byte-order mark (EF BB BF), which libconfig reads as a "
              "syntax error: save the file without it", path);
}

/* out = " (the line reads: TEXT)" for line `line` of `path`, blanks trimmed; "" if it cannot be read */
static void quote_line(const char *path, int line, char *out, size_t n)
{
    out[0] = 0;
    FILE *f = fopen(path, "r");
    if (!f || line < 1) {
        if (f) fclose(f);
        return;
    }
    char buf[256] = "";
    for (int i = 0; i < line && fgets(buf, sizeof buf, f); i++)
        if (i < line - 1 && !strchr(buf, '\n')) i--; /* the rest of a line longer than buf */
    fclose(f);
    const char *b = buf + strspn(buf, " \t");
    int len = (int)strcspn(b, "\r\n");
    while (len > 0 && (b[len - 1] == ' ' || b[len - 1] == '\t')) len--;
    if (len) snprintf(out, n, " (the line reads: %.*s)", len > 100 ? 100 : len, b);
}

void config_load(config *c, const char *path, const char *phase, char **sets, int nsets)
{
    config_defaults(c);
    snprintf(c->phase, sizeof c->phase, "%s", phase);
    snprintf(c->config_path, sizeof c->config_path, "%s", path);
    FILE *probe = fopen(path, "r");
    if (!probe) fatal(EXIT_CONFIG, "%s: cannot open config: %s", path, strerror(errno));
    struct stat st; /* fopen opens a directory too; libconfig then says "file I/O error" */
    if (fstat(fileno(probe), &st) == 0 && S_ISDIR(st.st_mode))
        fatal(EXIT_CONFIG, "%s: is a directory, not a config file", path);
    fclose(probe);
    refuse_bom(path);
    locale_t old_locale = uselocale((locale_t)0); /* the caller's, restored at the end */
    config_t cf;
    config_init(&cf);
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0, config_set_include_dir(&cf, dir);
    if (config_read_file(&cf, path) != CONFIG_TRUE) {
        char full[2 * PATH_MAX];
        const char *f = source_path(config_error_file(&cf), path, slash ? dir : NULL, full, sizeof full);
        const char *text = config_error_text(&cf);
        const int line = config_error_line(&cf);
        int inc = text && strstr(text, "include") != NULL, dup = text && strstr(text, "duplicate") != NULL;
        if (!inc) refuse_bom(f); /* an @included file with a BOM: libconfig says only "syntax error" */
        char quoted[160] = "";
        if (dup) quote_line(f, line, quoted, sizeof quoted);
        fatal(EXIT_CONFIG, "%s:%d: %s%s%s%s%s%s", f, line, text, quoted,
              inc ? " (libconfig 1.5 opens an @include path relative to the folder of the main config, " : "",
              inc ? (slash ? dir : ".") : "", inc ? ", also when it starts with /)" : "",
              dup ? " (a key is set once across a file and its @includes: to change a key of an included "
                    "file, use --set key=value or edit a copy of that file)" : "");
    }
    check_int_literals(path, slash ? dir : NULL, 0);
    walk(c, config_root_setting(&cf), path, slash ? dir : NULL);
    config_destroy(&cf);
    c_locale_enter();
    for (int i = 0; i < nsets; i++) apply_set(c, sets[i]);

    /* ranges were checked where each value was read; now the rules across keys, whose values
     * may come from the file or a --set */
    char where[PATH_MAX + 32];
    snprintf(where, sizeof where, nsets ? "%s (with its --set overrides)" : "%s", path);
    if (!c->run_dir[0]) fatal(EXIT_CONFIG, "%s: run_dir is required", where);
    if (!c->data.dir[0]) fatal(EXIT_CONFIG, "%s: data.dir is required", where);
    int needs_ckpt = !strcmp(phase, "linear") || !strcmp(phase, "finetune") || !strcmp(phase, "eval") ||
                     !strcmp(phase, "distill");
    if (needs_ckpt && !c->checkpoint[0])
        fatal(EXIT_CONFIG, "%s: phase %s needs 'checkpoint' (the checkpoint to start from)", where, phase);
    if (!c->data.eval_split[0] && c->data.eval_per_class < 1)
        fatal(EXIT_CONFIG, "%s: data.eval_per_class must be >= 1 when data.eval_split is \"\"", where);
    c->model.num_classes = c->data.num_classes;
    uselocale(old_locale);
}

const char *config_origin(const config *c, const char *key)
{
    static char where[PATH_MAX + 80];
    const key_spec *k = known_key(key, "config_origin");
    const int line = c->origin.line[k - SCHEMA], f = c->origin.file[k - SCHEMA];
    if (line < 0) snprintf(where, sizeof where, "--set %s", key);
    else if (line > 0 && f < c->origin.nfiles) snprintf(where, sizeof where, "%s:%d", c->origin.files[f], line);
    else if (c->config_path[0])
        snprintf(where, sizeof where, "the default of %s (set neither in %s nor by a --set)", key, c->config_path);
    else return c->config_path;
    return where;
}

/* The value of schema key k in c, as text. */
static void field_text(const config *c, const key_spec *k, char *out, size_t n)
{
    const char *f = (const char *)c + k->off;
    switch (k->type) {
    case T_INT: snprintf(out, n, "%d", *(const int *)f); break;
    case T_INT64: snprintf(out, n, "%lld", (long long)*(const int64_t *)f); break;
    case T_FLOAT: /* float fields (aug_cfg) told by their size, as in store_float and load_number */
        if (k->size == sizeof(float)) snprintf(out, n, "%.7g", (double)*(const float *)f);
        else snprintf(out, n, "%.17g", *(const double *)f);
        break;
    case T_BOOL: snprintf(out, n, "%s", *(const int *)f ? "true" : "false"); break;
    case T_STR: snprintf(out, n, "\"%s\"", f); break;
    }
}

void config_from_text(const char *text, config *o)
{
    config_defaults(o);
    config_t cf;
    config_init(&cf);
    if (config_read_string(&cf, text) != CONFIG_TRUE)
        fatal(EXIT_CKPT, "the configuration stored in the checkpoint does not parse (line %d: %s)",
              config_error_line(&cf), config_error_text(&cf));
    walk(o, config_root_setting(&cf), "the configuration stored in the checkpoint", NULL);
    config_destroy(&cf);
}

int config_text_differs(const char *text, const config *c, const char *key, char *was, char *now, size_t n)
{
    const key_spec *k = find_key(key);
    if (!k) fatal(EXIT_CKPT, "config_text_differs: '%s' is not a config key", key);
    config o;
    config_from_text(text, &o);
    field_text(&o, k, was, n);
    field_text(c, k, now, n);
    return strcmp(was, now) != 0;
}

int config_key_unused(const char *phase, const char *key)
{
    static const struct {
        const char *phase, *unused[10];
    } table[] = {
        {"pretrain", {"distill.", "checkpoint", "model.probe_features", "model.finetune_from", "augment.probe.",
                      "data.val_per_class", NULL}},
        {"linear", {"pretrain.", "distill.", "augment.contrastive.", "augment.classification.", "model.finetune_from",
                    NULL}},
        {"finetune", {"pretrain.", "distill.", "augment.contrastive.", "augment.probe.", "model.probe_features", NULL}},
        {"baseline", {"pretrain.", "distill.", "augment.contrastive.", "augment.probe.", "model.probe_features",
                      "checkpoint", NULL}},
        {"distill", {"pretrain.", "augment.contrastive.", "augment.probe.", "model.probe_features",
                     "model.finetune_from", "data.val_per_class", NULL}},
        {"eval", {"train.", "pretrain.", "distill.", "augment.", "model.probe_features", "model.finetune_from",
                  "data.val_per_class", "data.labels_per_class", NULL}},
    };
    const size_t klen = strcspn(key, "="); /* a --set string: its key part */
    for (size_t p = 0; p < sizeof table / sizeof table[0]; p++) {
        if (strcmp(table[p].phase, phase)) continue;
        for (int k = 0; table[p].unused[k]; k++) {
            const char *u = table[p].unused[k];
            size_t ulen = strlen(u);
            /* a group prefix ("pretrain.") or a whole key ("checkpoint", not "checkpoints") */
            if (u[ulen - 1] == '.' ? klen >= ulen && !strncmp(key, u, ulen) : klen == ulen && !strncmp(key, u, ulen))
                return 1;
        }
    }
    return 0;
}

void config_warn(const config *c, const char *phase, char *const *sets, int nsets)
{
    for (int i = 0; i < nsets; i++)
        if (config_key_unused(phase, sets[i])) warn("--set %s: phase %s does not use this key (ignored)", sets[i], phase);
    if (!config_key_unused(phase, "train.warmup_epochs") && c->train.warmup_epochs > c->train.epochs)
        warn("train.warmup_epochs = %d is more than train.epochs = %d: the learning rate rises for the whole run "
             "and ends at %.3g, below train.lr = %g (set train.warmup_epochs to at most %d)",
             c->train.warmup_epochs, c->train.epochs,
             c->train.lr * (double)c->train.epochs / (double)c->train.warmup_epochs, c->train.lr, c->train.epochs);
}

/* Keys that can change what a run of `phase` trains: not where files are, how it runs and
 * reports, or keys the phase never reads. */
static int training_key(const char *phase, const char *path)
{
    static const char *const skip[] = {"run_dir", "resume", "checkpoint", "data.dir", "distill.init",
                                       "train.eval_every"};
    for (size_t i = 0; i < sizeof skip / sizeof skip[0]; i++)
        if (!strcmp(path, skip[i])) return 0;
    return strncmp(path, "run.", 4) != 0 && !config_key_unused(phase, path);
}

const char *config_training_difference(const char *text, const config *c, char *was, char *now, size_t n)
{
    config o;
    config_from_text(text, &o);
    for (size_t i = 0; i < NKEYS; i++) {
        if (!training_key(c->phase, SCHEMA[i].path)) continue;
        field_text(&o, &SCHEMA[i], was, n);
        field_text(c, &SCHEMA[i], now, n);
        if (strcmp(was, now)) return SCHEMA[i].path;
    }
    return NULL;
}

uint64_t config_hash(const char *text)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) h = (h ^ *p) * 0x100000001b3ULL;
    return h;
}

uint64_t config_training_hash(const config *c)
{
    char *lines = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&lines, &len);
    if (!mem) fatal(EXIT_INTERNAL, "config_training_hash: out of memory");
    for (size_t i = 0; i < NKEYS; i++) {
        if (!training_key(c->phase, SCHEMA[i].path)) continue;
        char value[PATH_MAX + 8];
        field_text(c, &SCHEMA[i], value, sizeof value);
        fprintf(mem, "%s=%s\n", SCHEMA[i].path, value);
    }
    fclose(mem);
    uint64_t h = config_hash(lines);
    free(lines);
    return h;
}

char *config_to_text(const config *c)
{
    config_t cf;
    config_init(&cf);
    config_setting_t *root = config_root_setting(&cf);
    for (size_t i = 0; i < NKEYS; i++) {
        const key_spec *k = &SCHEMA[i];
        config_setting_t *parent = root;
        char buf[256];
        snprintf(buf, sizeof buf, "%s", k->path);
        char *name = buf, *dot;
        while ((dot = strchr(name, '.'))) {
            *dot = 0;
            config_setting_t *g = config_setting_get_member(parent, name);
            parent = g ? g : config_setting_add(parent, name, CONFIG_TYPE_GROUP);
            name = dot + 1;
        }
        const char *field = (const char *)c + k->off;
        static const int ctype[] = {CONFIG_TYPE_INT, CONFIG_TYPE_INT64, CONFIG_TYPE_FLOAT, CONFIG_TYPE_BOOL, CONFIG_TYPE_STRING};
        config_setting_t *s = config_setting_add(parent, name, ctype[k->type]);
        switch (k->type) {
        case T_INT: config_setting_set_int(s, *(const int *)field); break;
        case T_INT64: config_setting_set_int64(s, *(const int64_t *)field); break;
        case T_FLOAT: config_setting_set_float(s, load_number(c, k)); break;
        case T_BOOL: config_setting_set_bool(s, *(const int *)field); break;
        case T_STR: config_setting_set_string(s, field); break;
        }
    }
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    if (!mem) fatal(EXIT_INTERNAL, "open_memstream failed");
    fprintf(mem, "# simclr-mpi resolved configuration: phase %s, from %s\n", c->phase, c->config_path);
    config_write(&cf, mem);
    fclose(mem);
    config_destroy(&cf);
    return text;
}

