/* forkutil.h: helpers shared by test_data.c, test_checkpoint.c and test_config.c for
 * testing error paths. The code under test reports user errors with fatal(), which ends
 * the process; so the call runs in a forked child whose stdout and stderr are captured,
 * and the parent checks the exit status and the message text. Also: temporary
 * directories removed at exit, and small file helpers. */
#ifndef SIMCLR_FORKUTIL_H
#define SIMCLR_FORKUTIL_H

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

/* fatal() in the test process itself (an unexpected error) fails the current test instead
 * of ending the whole program; main() installs it, forked children remove it. */
static inline void fail_on_fatal(int code) { fail_msg("fatal() called with exit code %d (message above)", code); }

#define CHILD_OUT_MAX 16384

typedef struct {
    int status; /* exit code; 128 + signal number when killed by a signal */
    char out[CHILD_OUT_MAX]; /* stdout + stderr of the child, NUL-terminated (truncated) */
} child_result;

/* Runs fn(arg) in a forked child (stdout and stderr into one pipe, 60 s alarm). When fn
 * returns, the child exits with 0. */
static inline child_result run_child(void (*fn)(void *), void *arg)
{
    child_result r;
    memset(&r, 0, sizeof r);
    int p[2];
    if (pipe(p) != 0) fail_msg("pipe: %s", strerror(errno));
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) fail_msg("fork: %s", strerror(errno));
    if (pid == 0) {
        close(p[0]);
        dup2(p[1], 1);
        dup2(p[1], 2);
        close(p[1]);
        /* a crash shows as 128 + signal, not as a cmocka failure inside the child */
        const int sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
        for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) signal(sigs[i], SIG_DFL);
        set_abort_hook(NULL); /* fatal() exits with its code */
        alarm(60);
        fn(arg);
        fflush(stdout);
        fflush(stderr);
        _exit(0);
    }
    close(p[1]);
    size_t len = 0;
    char buf[4096];
    for (;;) {
        ssize_t got = read(p[0], buf, sizeof buf);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) break;
        size_t take = (size_t)got;
        if (take > CHILD_OUT_MAX - 1 - len) take = CHILD_OUT_MAX - 1 - len;
        memcpy(r.out + len, buf, take);
        len += take;
    }
    r.out[len] = 0;
    close(p[0]);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : WIFSIGNALED(st) ? 128 + WTERMSIG(st) : -1;
    return r;
}

/* Asserts that the child exited with `code` and that its output contains every one of
 * the NULL-terminated strings; prints the output when it does not. */
static inline void check_child(const child_result *r, int code, ...)
{
    int ok = r->status == code;
    va_list ap;
    va_start(ap, code);
    const char *missing = NULL;
    for (const char *s; (s = va_arg(ap, const char *));)
        if (!strstr(r->out, s) && !missing) missing = s;
    va_end(ap);
    if (!ok || missing) {
        print_message("  child exit status %d (expected %d)%s%s%s\n  child output:\n%s\n", r->status, code,
                      missing ? "; output lacks \"" : "", missing ? missing : "", missing ? "\"" : "", r->out);
        fail();
    }
}

/* run_child + check_child: expect_exit(fn, arg, code, "text", ..., NULL). */
#define expect_exit(fn, arg, code, ...)                   \
    do {                                                  \
        child_result r_ = run_child((fn), (arg));         \
        check_child(&r_, (code), __VA_ARGS__);            \
    } while (0)

/* snprintf for paths that fails the test instead of truncating (and keeps gcc's
 * -Wformat-truncation quiet about buffers that are large enough in practice). */
static inline void pathf(char *out, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static inline void pathf(char *out, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(out, n, fmt, ap);
    va_end(ap);
    if (len < 0 || (size_t)len >= n) fail_msg("path too long: %s...", out);
}

/* ---- temporary directories ------------------------------------------------------- */

static char g_tmp_root[4096];
static pid_t g_tmp_owner; /* forked children that exit through fatal() must not remove it */

static inline void rm_tmp_root(void)
{
    if (!g_tmp_root[0] || getpid() != g_tmp_owner) return;
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp_root);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", g_tmp_root);
}

/* A fresh directory under one per-process temporary root (removed at exit); `name` may
 * contain spaces. Writes its path into out. */
static inline void make_tmp_dir(char *out, size_t n, const char *name)
{
    if (!g_tmp_root[0]) {
        const char *base = getenv("TMPDIR");
        snprintf(g_tmp_root, sizeof g_tmp_root, "%s/simclr-test-XXXXXX", base && base[0] ? base : "/tmp");
        if (!mkdtemp(g_tmp_root)) fail_msg("mkdtemp %s: %s", g_tmp_root, strerror(errno));
        g_tmp_owner = getpid();
        atexit(rm_tmp_root);
    }
    static int counter;
    pathf(out, n, "%s/%d-%s", g_tmp_root, counter++, name);
    if (mkdir(out, 0755) != 0) fail_msg("mkdir %s: %s", out, strerror(errno));
}

/* Writes n bytes to path (created or truncated); fails the test on error. */
static inline void write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) fail_msg("cannot create %s: %s", path, strerror(errno));
    if (n && fwrite(data, 1, n, f) != n) fail_msg("write %s failed", path);
    if (fclose(f) != 0) fail_msg("close %s failed", path);
}

static inline void write_text_file(const char *path, const char *text) { write_file(path, text, strlen(text)); }

/* Whole file into a malloc'd NUL-terminated buffer (size in *n when n != NULL); NULL if
 * it cannot be opened. */
static inline char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    for (size_t got; (got = fread(buf + len, 1, cap - len - 1, f)) > 0;) {
        len += got;
        if (cap - len - 1 == 0) buf = realloc(buf, cap *= 2);
    }
    fclose(f);
    buf[len] = 0;
    if (n) *n = len;
    return buf;
}

static inline int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

#endif
