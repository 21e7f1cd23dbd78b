/* fuzz_common.h: shared by the libFuzzer harnesses in tests/fuzz (make fuzz; see README.md).
 *
 * The code under test reports bad input with fatal(), which normally ends the process. In
 * a harness a clean refusal is the expected outcome, not a crash: FUZZ_TRY installs an
 * abort hook (set_abort_hook) that longjmps back into the harness. fatal() is noreturn
 * and the hook never returns either. After such a jump the refused call has left behind
 * what its process exit would have cleaned up: open file descriptors (closed here, all
 * but those open at start-up) and memory (a leak; the harnesses run with
 * ASAN_OPTIONS=detect_leaks=0). Each harness works in its own temporary folder. */
#ifndef SIMCLR_FUZZ_COMMON_H
#define SIMCLR_FUZZ_COMMON_H

#define _GNU_SOURCE
#include <dirent.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"

static sigjmp_buf g_fuzz_jump;
static int g_fuzz_refused; /* refusals seen (exit codes are not checked: any is fine) */
static char g_fuzz_dir[256];
static unsigned char g_fd_open_at_start[1024];

static void fuzz_abort_hook(int code) __attribute__((noreturn, unused));
static void fuzz_abort_hook(int code)
{
    (void)code;
    g_fuzz_refused++;
    siglongjmp(g_fuzz_jump, 1);
}

/* Closes every descriptor that was not open when fuzz_init ran (those a refused call
 * left open; fatal() would have exited). */
__attribute__((unused)) static void fuzz_close_leaked_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d) return;
    int self = dirfd(d), fds[1024], n = 0;
    for (struct dirent *e; (e = readdir(d)) && n < 1024;) {
        int fd = atoi(e->d_name);
        if (e->d_name[0] != '.' && fd != self && fd < 1024 && !g_fd_open_at_start[fd]) fds[n++] = fd;
    }
    closedir(d);
    for (int i = 0; i < n; i++) close(fds[i]);
}

/* A fresh temporary folder for this process; records the descriptors open now. */
static void fuzz_init(const char *name)
{
    snprintf(g_fuzz_dir, sizeof g_fuzz_dir, "%s/simclr-%s-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", name);
    if (!mkdtemp(g_fuzz_dir)) abort();
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        for (struct dirent *e; (e = readdir(d));) {
            int fd = atoi(e->d_name);
            if (e->d_name[0] != '.' && fd < 1024) g_fd_open_at_start[fd] = 1;
        }
        closedir(d);
    }
}

static void fuzz_write(const char *path, const uint8_t *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (n && fwrite(data, 1, n, f) != n) abort();
    fclose(f);
}

/* FUZZ_TRY { call(); } runs the call with fatal() jumping back here; afterwards the
 * leaked descriptors are closed either way. */
#define FUZZ_TRY                                               \
    for (int fuzz_once_ = (set_abort_hook(fuzz_abort_hook), 1); \
         fuzz_once_; fuzz_once_ = 0, set_abort_hook(NULL), fuzz_close_leaked_fds()) \
        if (sigsetjmp(g_fuzz_jump, 1) == 0)

#endif
