/* fuzz_ckpt.c: ckpt_load on the input as a checkpoint file, for a tiny model (the one of
 * the seed corpus, gen_ckpt_seed.c: 17x17 input, 2 conv layers of width 4, embed 5,
 * proj 6, 3 classes); with the Adam moments when the input holds the bytes "adam_m" (as
 * a checkpoint with moments does).
 *
 * Each load runs in a forked child, as in the program (rank 0 loads, and a refusal ends
 * the process): after a refusal HDF5 is left with objects open, and closing them is not
 * safe (HDF5 1.10.8 keeps a half-built file object after a failed H5Fopen, and closing it
 * crashes in H5F__close_cb), while leaving them open lets the next input alias the old
 * file. The child must end with exit 0 (loaded) or EXIT_CKPT (refused, one message);
 * anything else (a signal, a sanitizer report, another exit code) is a finding: the
 * harness aborts. The price: libFuzzer gets no coverage feedback from the child, so this
 * is mutation without guidance (HDF5, the system library, is not instrumented anyway).
 *
 * Except when the fault is HDF5's own: the child's sanitizer report goes to a file, and a
 * report whose first frame outside the sanitizer runtime is in libhdf5 (HDF5 1.10.8 reads
 * past its own buffers on some malformed attribute messages, in H5O__msg_iterate_real) is
 * a library bug, not ours: the input is kept as ./hdf5-bug-N.h5 in the working folder
 * (run_fuzz.sh lists them) and fuzzing goes on. */
#include "fuzz_common.h"

#include <signal.h>
#include <sys/wait.h>

#include <sanitizer/common_interface_defs.h>

#include "checkpoint.h"
#include "model.h"

/* fatal() in the child: end it with the code, without the atexit handlers (libFuzzer's
 * would report "fuzz target exited" from the child). */
static void child_exit(int code) __attribute__((noreturn));
static void child_exit(int code) { _exit(code); }

/* 1 when the sanitizer report of child `pid` (file prefix.PID) puts the fault in libhdf5:
 * its first stack frame that is not a sanitizer interceptor is in libhdf5. */
static int fault_in_hdf5(const char *prefix, pid_t pid)
{
    char path[600], line[1024];
    snprintf(path, sizeof path, "%s.%d", prefix, (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    int verdict = 0, seen = 0;
    while (!seen && fgets(line, sizeof line, f)) {
        if (!strstr(line, "    #")) continue;
        if (strstr(line, "__interceptor_") || strstr(line, "__asan") || strstr(line, "__sanitizer")) continue;
        verdict = strstr(line, "libhdf5") != NULL;
        seen = 1;
    }
    fclose(f);
    unlink(path);
    return verdict;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    static model m;
    if (!ready) {
        fuzz_init("fuzz-ckpt");
        const model_cfg tiny = {.image_size = 17, .conv_layers = 2, .width = 4, .kernel = 3,
                                .embed_dim = 5, .proj_dim = 6, .num_classes = 3};
        model_init(&m, &tiny, 2, 0);
        ckpt_disable_file_locking();
        ready = 1;
    }
    char path[512];
    snprintf(path, sizeof path, "%s/in.h5", g_fuzz_dir);
    fuzz_write(path, data, size);
    int with_optimizer = memmem(data, size, "adam_m", 6) != NULL;
    pid_t pid = fork();
    if (pid < 0) abort();
    char report[512];
    snprintf(report, sizeof report, "%s/child-report", g_fuzz_dir);
    if (pid == 0) {
        set_abort_hook(child_exit);
        __sanitizer_set_report_path(report);
        alarm(20);
        ckpt_meta meta;
        ckpt_load(path, &m, (1u << NGROUPS) - 1, with_optimizer, &meta);
        for (size_t i = 0; i < m.nparams; i++)
            if (!(m.params[i] == m.params[i])) abort(); /* a NaN got through */
        free(meta.config_text);
        _exit(0);
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0) {
    }
    int ok = WIFEXITED(st) && (WEXITSTATUS(st) == 0 || WEXITSTATUS(st) == EXIT_CKPT);
    if (!ok && fault_in_hdf5(report, pid)) {
        static int nbugs;
        char keep[64];
        snprintf(keep, sizeof keep, "hdf5-bug-%d.h5", ++nbugs);
        fuzz_write(keep, data, size);
        return 0;
    }
    char leftover[600];
    snprintf(leftover, sizeof leftover, "%s.%d", report, (int)pid);
    if (!ok) { /* ours: the child's report to stderr too */
        FILE *f = fopen(leftover, "r");
        for (int c; f && (c = fgetc(f)) != EOF;) fputc(c, stderr);
        if (f) fclose(f);
    }
    unlink(leftover);
    if (!ok) {
        fprintf(stderr, "fuzz_ckpt: ckpt_load %s (want exit 0 or %d)\n",
                WIFSIGNALED(st) ? strsignal(WTERMSIG(st)) : "exited with another code", EXIT_CKPT);
        if (WIFEXITED(st)) fprintf(stderr, "fuzz_ckpt: exit code %d\n", WEXITSTATUS(st));
        abort();
    }
    return 0;
}
