/* common.c: the one fatal-error path, allocation, clock and counter-based RNG. */
#include "common.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static int g_rank = -1;
static void (*g_abort_hook)(int) = NULL;

void log_set_rank(int rank) { g_rank = rank; }
void set_abort_hook(void (*hook)(int code)) { g_abort_hook = hook; }

static void vmessage(const char *kind, const char *fmt, va_list ap)
{
    char buf[2048];
    vsnprintf(buf, sizeof buf, fmt, ap);
    if (g_rank >= 0)
        fprintf(stderr, "[rank %d] simclr: %s: %s\n", g_rank, kind, buf);
    else
        fprintf(stderr, "simclr: %s: %s\n", kind, buf);
    fflush(stderr);
}

void fatal(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmessage("error", fmt, ap);
    va_end(ap);
    if (g_abort_hook) g_abort_hook(code);
    exit(code);
}

void warn(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmessage("warning", fmt, ap);
    va_end(ap);
}

void *xcalloc(size_t n, size_t size, const char *what)
{
    if (n == 0 || size == 0) n = size = 1;
    if (n > SIZE_MAX / size) fatal(EXIT_INTERNAL, "size overflow allocating %s", what);
    size_t bytes = n * size;
    size_t rounded = (bytes + 63) / 64 * 64;
    void *p = aligned_alloc(64, rounded);
    if (!p) fatal(EXIT_INTERNAL, "out of memory allocating %zu bytes for %s", bytes, what);
    memset(p, 0, rounded);
    return p;
}

void path_join(char *out, size_t n, const char *a, const char *b)
{
    int len = snprintf(out, n, "%s/%s", a, b);
    if (len < 0 || (size_t)len >= n) fatal(EXIT_DATA, "path too long: %s/%s", a, b);
}

void mkdir_p(const char *path)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp) fatal(EXIT_IO, "path too long: %s", path);
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(tmp, 0755) != 0 && errno != EEXIST) fatal(EXIT_IO, "%s: cannot create: %s", tmp, strerror(errno));
            *p = '/';
        }
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST) fatal(EXIT_IO, "%s: cannot create: %s", tmp, strerror(errno));
}

double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

uint64_t rng_key(uint64_t a, uint64_t b, uint64_t c, uint64_t d)
{
    uint64_t k = mix64(a + 0x9e3779b97f4a7c15ULL);
    k = mix64(k ^ (b + 0x632be59bd9b4e019ULL));
    k = mix64(k ^ (c + 0x85157af5ULL));
    return mix64(k ^ (d + 0xd6e8feb86659fd93ULL));
}

uint64_t rng_u64(uint64_t key, uint64_t i) { return mix64(key + (i + 1) * 0x9e3779b97f4a7c15ULL); }

float rng_uniform(uint64_t key, uint64_t i) { return (float)(rng_u64(key, i) >> 40) * 0x1.0p-24f; }

void permute(int64_t *perm, size_t n, uint64_t key)
{
    for (size_t i = 0; i < n; i++) perm[i] = (int64_t)i;
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)(rng_u64(key, i) % i);
        int64_t t = perm[i - 1];
        perm[i - 1] = perm[j];
        perm[j] = t;
    }
}

int is_training_phase(const char *s)
{
    static const char *const phases[] = {"pretrain", "linear", "finetune", "baseline", "distill"};
    for (size_t i = 0; i < sizeof phases / sizeof phases[0]; i++)
        if (!strcmp(s, phases[i])) return 1;
    return 0;
}

int is_phase_name(const char *s) { return is_training_phase(s) || !strcmp(s, "eval"); }
