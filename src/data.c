/* data.c: STL-10 binary reader (pread), hold-out and sharding, and image-folder import. */
#define _DEFAULT_SOURCE /* scandir, alphasort, DT_*, strsignal */
#include "data.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <stb/stb_image.h>
#include <stb/stb_image_resize.h>

#include "common.h"

static size_t file_size_or_die(int fd, const char *path)
{
    struct stat st;
    if (fstat(fd, &st) != 0) fatal(EXIT_DATA, "%s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode)) fatal(EXIT_DATA, "%s: not a regular file", path);
    return (size_t)st.st_size;
}

/* Opens one file of split `split` in dir; a missing one names the import that writes it. */
static int open_or_die(const char *path, const char *dir, const char *split)
{
    /* O_NONBLOCK: opening a FIFO named like a data file must not wait for a writer (a hang);
     * file_size_or_die then refuses it as not a regular file. No effect on regular files. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0 && errno == ENOENT)
        fatal(EXIT_DATA, "%s: no such file (a folder of images becomes it with: simclr import FOLDER %s --split %s)",
              path, dir, split);
    if (fd < 0) fatal(EXIT_DATA, "%s: cannot open: %s", path, strerror(errno));
    return fd;
}

void stl10_open(stl10_file *f, const char *dir, const char *split, int need_labels,
                int num_classes)
{
    memset(f, 0, sizeof *f);
    if (snprintf(f->path_x, sizeof f->path_x, "%s/%s_X.bin", dir, split) >= (int)sizeof f->path_x)
        fatal(EXIT_DATA, "data path too long: %s/%s_X.bin", dir, split);
    f->fd = open_or_die(f->path_x, dir, split);
    size_t bytes = file_size_or_die(f->fd, f->path_x);
    if (bytes == 0) fatal(EXIT_DATA, "%s: empty file (no images)", f->path_x);
    if (bytes % STL10_RECORD)
        fatal(EXIT_DATA, "%s: size %zu bytes is not a multiple of %d (3x96x96 per image): "
              "truncated or not an STL-10 file", f->path_x, bytes, STL10_RECORD);
    f->count = bytes / STL10_RECORD;
    if (!need_labels) return;
    char path_y[PATH_MAX + 16];
    snprintf(path_y, sizeof path_y, "%s/%s_y.bin", dir, split);
    int fy = open_or_die(path_y, dir, split);
    size_t ny = file_size_or_die(fy, path_y);
    if (ny != f->count)
        fatal(EXIT_DATA, "%s has %zu labels but %s has %zu images", path_y, ny, f->path_x,
              f->count);
    uint8_t *raw = xcalloc(ny, 1, "labels");
    ssize_t got = pread(fy, raw, ny, 0);
    if (got < 0 || (size_t)got != ny) fatal(EXIT_DATA, "%s: short read", path_y);
    close(fy);
    f->label = xcalloc(ny, sizeof(int32_t), "labels");
    for (size_t i = 0; i < ny; i++) {
        if (raw[i] < 1 || raw[i] > num_classes)
            fatal(EXIT_DATA, "%s: record %zu has label %d, expected 1..%d", path_y, i, raw[i],
                  num_classes);
        f->label[i] = raw[i] - 1;
    }
    free(raw);
}

void stl10_close(stl10_file *f)
{
    if (f->fd > 0) close(f->fd);
    free(f->label);
    memset(f, 0, sizeof *f);
}

void stl10_read(const stl10_file *f, size_t index, uint8_t *img)
{
    uint8_t raw[STL10_RECORD];
    CHECK(index < f->count);
    off_t off = (off_t)index * STL10_RECORD;
    size_t done = 0;
    while (done < STL10_RECORD) {
        ssize_t got = pread(f->fd, raw + done, STL10_RECORD - done, off + (off_t)done);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0)
            fatal(EXIT_DATA, "%s: record %zu: short read (%s)", f->path_x, index,
                  got < 0 ? strerror(errno) : "end of file");
        done += (size_t)got;
    }
    /* each plane is column-major: raw[c][x][y] -> img[c][y][x] */
    for (int c = 0; c < 3; c++)
        for (int x = 0; x < STL10_SIZE; x++)
            for (int y = 0; y < STL10_SIZE; y++)
                img[(c * STL10_SIZE + y) * STL10_SIZE + x] = raw[(c * STL10_SIZE + x) * STL10_SIZE + y];
}

#define CLASS_NAMES_MAX_BYTES (1 << 20)
#define CLASS_NAME_MAX 255 /* a folder name (NAME_MAX) */

char **stl10_class_names(const char *dir, int num_classes)
{
    CHECK(num_classes >= 1 && num_classes <= DATA_MAX_CLASSES);
    char path[PATH_MAX];
    path_join(path, sizeof path, dir, "class_names.txt");
    char *text = NULL;
    size_t len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        if (errno != ENOENT) fatal(EXIT_DATA, "%s: cannot open: %s", path, strerror(errno));
        warn("%s not found: the classes are named \"class 1\" .. \"class %d\"", path, num_classes);
    } else {
        len = file_size_or_die(fd, path);
        if (len > CLASS_NAMES_MAX_BYTES)
            fatal(EXIT_DATA, "%s: %zu bytes, more than a list of %d class names can be (at most %d)", path,
                  len, num_classes, CLASS_NAMES_MAX_BYTES);
        text = xcalloc(len + 1, 1, "class names");
        ssize_t got = len ? pread(fd, text, len, 0) : 0;
        if (got < 0 || (size_t)got != len) fatal(EXIT_DATA, "%s: short read", path);
        close(fd);
        if (memchr(text, 0, len)) {
            free(text); /* freed before each fatal() here: exit-time leak checkers (make asan) */
            fatal(EXIT_DATA, "%s: holds a NUL byte: not a text file of class names", path);
        }
        while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r')) text[--len] = 0; /* trailing empty lines */
    }
    /* one block: the pointer table, then the names */
    char **names = xcalloc(1, (size_t)num_classes * (sizeof(char *) + 16) + len + 1, "class names");
    char *out = (char *)(names + num_classes);
    if (!text) {
        for (int k = 0; k < num_classes; k++) {
            names[k] = out;
            out += snprintf(out, 16, "class %d", k + 1) + 1;
        }
        return names;
    }
    int count = 0;
    for (char *line = len ? text : NULL, *next; line; line = next) { /* an empty file: 0 names */
        next = strchr(line, '\n');
        if (next) *next++ = 0;
        size_t n = strlen(line);
        if (n > 0 && line[n - 1] == '\r') line[--n] = 0;
        count++;
        if (n == 0 || n > CLASS_NAME_MAX) {
            free(text), free(names);
            if (n == 0) fatal(EXIT_DATA, "%s:%d: empty class name (one name per line, line k naming label k)", path, count);
            fatal(EXIT_DATA, "%s:%d: class name longer than %d bytes", path, count, CLASS_NAME_MAX);
        }
        if (count <= num_classes) {
            names[count - 1] = out;
            memcpy(out, line, n + 1);
            out += n + 1;
        }
    }
    free(text);
    if (count != num_classes) {
        free(names);
        fatal(EXIT_DATA, "%s: %d class name%s, but there are %d classes (data.num_classes): one name per line, "
              "line k naming label k", path, count, count == 1 ? "" : "s", num_classes);
    }
    return names;
}

void dataset_init(dataset *d, size_t cap)
{
    d->n = 0;
    d->src = xcalloc(cap, sizeof *d->src, "dataset");
    d->rec = xcalloc(cap, sizeof *d->rec, "dataset");
    d->label = xcalloc(cap, sizeof *d->label, "dataset");
}

void dataset_add(dataset *d, const stl10_file *f, size_t rec)
{
    CHECK(rec < f->count);
    d->src[d->n] = f;
    d->rec[d->n] = (int64_t)rec;
    d->label[d->n] = f->label ? f->label[rec] : -1;
    d->n++;
}

void dataset_free(dataset *d)
{
    free(d->src);
    free(d->rec);
    free(d->label);
    memset(d, 0, sizeof *d);
}

void dataset_read(const dataset *d, size_t i, uint8_t *img)
{
    CHECK(i < d->n);
    stl10_read(d->src[i], (size_t)d->rec[i], img);
}

int stratified_holdout(const int32_t *labels, size_t n, int num_classes, size_t per_class,
                       uint64_t key, uint8_t *held)
{
    int64_t *perm = xcalloc(n, sizeof *perm, "hold-out permutation");
    permute(perm, n, key);
    size_t *taken = xcalloc((size_t)num_classes, sizeof *taken, "hold-out counts");
    size_t *total = xcalloc((size_t)num_classes, sizeof *total, "hold-out counts");
    memset(held, 0, n);
    for (size_t i = 0; i < n; i++) {
        size_t j = (size_t)perm[i];
        int c = labels[j];
        CHECK(c >= 0 && c < num_classes);
        total[c]++;
        if (taken[c] < per_class) taken[c]++, held[j] = 1;
    }
    int bad = 0;
    for (int c = 0; c < num_classes && !bad; c++)
        if (total[c] < per_class + 1) bad = c + 1;
    free(perm);
    free(taken);
    free(total);
    return bad;
}

void shard_range(size_t global, int world, int rank, size_t *begin, size_t *count)
{
    CHECK(world > 0 && rank >= 0 && rank < world);
    size_t b = global * (size_t)rank / (size_t)world;
    size_t e = global * (size_t)(rank + 1) / (size_t)world;
    *begin = b;
    *count = e - b;
}

size_t steps_per_epoch(size_t n, size_t global_batch) { return global_batch ? n / global_batch : 0; }

/* ---- import ---------------------------------------------------------------------- */

#ifndef IMPORT_MAX_PIXELS /* the fuzz build lowers it (Makefile FUZZ_FLAGS): ASan decodes slowly */
#define IMPORT_MAX_PIXELS (1u << 26) /* refuse headers claiming more than 67 Mpixel */
#endif

static int is_image_name(const char *name)
{
    const char *dot = strrchr(name, '.');
    if (!dot || name[0] == '.') return 0;
    const char *ext[] = {".jpg", ".jpeg", ".png", ".bmp", ".tga", ".gif", ".pnm", ".ppm", ".pgm"};
    for (size_t i = 0; i < sizeof ext / sizeof ext[0]; i++)
        if (!strcasecmp(dot, ext[i])) return 1;
    return 0;
}

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Sorted entries of dir that are directories (want_dirs) or image files; caller frees. */
static int list_dir(const char *dir, int want_dirs, struct dirent ***out)
{
    int n = scandir(dir, out, NULL, alphasort);
    if (n < 0) fatal(EXIT_DATA, "%s: cannot read directory: %s", dir, strerror(errno));
    int k = 0;
    for (int i = 0; i < n; i++) {
        struct dirent *e = (*out)[i];
        char path[PATH_MAX];
        path_join(path, sizeof path, dir, e->d_name);
        int keep = e->d_name[0] != '.' && (want_dirs ? is_dir(path) : !is_dir(path) && is_image_name(e->d_name));
        if (keep) (*out)[k++] = e;
        else free(e);
    }
    return k;
}

/* The format the first bytes of fp name ("JPEG", "PNG", "GIF", "BMP", "PNM"), or NULL. */
static const char *sniff_format(FILE *fp)
{
    unsigned char b[8] = {0};
    size_t n = fseek(fp, 0, SEEK_SET) == 0 ? fread(b, 1, sizeof b, fp) : 0;
    return n >= 3 && b[0] == 0xff && b[1] == 0xd8 && b[2] == 0xff ? "JPEG"
           : n >= 8 && !memcmp(b, "\x89PNG\r\n\x1a\n", 8)       ? "PNG"
           : n >= 4 && !memcmp(b, "GIF8", 4)                       ? "GIF"
           : n >= 2 && b[0] == 'B' && b[1] == 'M'                  ? "BMP"
           : n >= 2 && b[0] == 'P' && b[1] >= '1' && b[1] <= '6'   ? "PNM"
                                                                   : NULL;
}

/* Why decoding failed, for the message: the format the first bytes name, and stb_image's
 * reason (which is that of the LAST decoder it tried: "bad png sig" for a truncated JPEG,
 * so it alone misleads). Points to a static buffer. */
static const char *decode_failure(FILE *fp)
{
    static char buf[200];
    const char *fmt = sniff_format(fp);
    const char *reason = stbi_failure_reason() ? stbi_failure_reason() : "?";
    if (fmt) snprintf(buf, sizeof buf, "corrupt or truncated %s (stb_image: %s)", fmt, reason);
    else snprintf(buf, sizeof buf, "not a JPEG, PNG, BMP, GIF, PNM or TGA image (stb_image: %s)", reason);
    return buf;
}

/* Checks a binary PNM (P5 gray, P6 RGB) header against stb_image 2.27, which reads only
 * maxval 255 right (it ignores the maxval: 15 reads as near-black; and it takes 16-bit
 * samples in the machine's byte order, not PNM's big-endian one: 32768 reads as 0) and
 * does not notice missing pixel data (zeros). Returns NULL when fp is not a P5/P6 file or
 * is fine, else why (static); rewinds fp. */
static const char *pnm_problem(FILE *fp, size_t file_size)
{
    static char buf[200];
    char h[512];
    size_t n = fseek(fp, 0, SEEK_SET) == 0 ? fread(h, 1, sizeof h - 1, fp) : 0;
    fseek(fp, 0, SEEK_SET);
    h[n] = 0;
    if (n < 2 || h[0] != 'P' || (h[1] != '5' && h[1] != '6')) return NULL;
    long v[3]; /* width, height, maxval */
    size_t i = 2;
    for (int k = 0; k < 3; k++) {
        for (;;) { /* whitespace and # comments */
            while (i < n && (h[i] == ' ' || h[i] == '\t' || h[i] == '\n' || h[i] == '\r' || h[i] == '\v' || h[i] == '\f')) i++;
            if (i < n && h[i] == '#') {
                while (i < n && h[i] != '\n') i++;
            } else
                break;
        }
        if (i >= n || h[i] < '0' || h[i] > '9') return "corrupt PNM header";
        v[k] = 0;
        while (i < n && h[i] >= '0' && h[i] <= '9' && v[k] < 1000000000L) v[k] = v[k] * 10 + (h[i++] - '0');
    }
    if (v[2] != 255) {
        snprintf(buf, sizeof buf, "PNM with maxval %ld: only 8-bit PNM (maxval 255) decodes correctly here; "
                 "convert the file to PNG", v[2]);
        return buf;
    }
    size_t need = i + 1 + (size_t)v[0] * (size_t)v[1] * (h[1] == '6' ? 3 : 1); /* one whitespace, then data */
    if (file_size < need) {
        snprintf(buf, sizeof buf, "truncated PNM: %zu bytes, the header needs %zu", file_size, need);
        return buf;
    }
    return NULL;
}

/* stb_image reads through these callbacks, which note when the decoder asked for bytes
 * past the end of the file: stb_image 2.27 then goes on with zeros, so a truncated BMP,
 * GIF or TGA would import as a silently damaged picture (JPEG and PNG decoders notice
 * themselves). */
typedef struct {
    FILE *fp;
    int read_past_end;
} stb_reader;

static int reader_read(void *user, char *data, int size)
{
    stb_reader *r = user;
    size_t got = size > 0 ? fread(data, 1, (size_t)size, r->fp) : 0;
    if (size > 0 && got == 0) r->read_past_end = 1;
    return (int)got;
}

static void reader_skip(void *user, int n)
{
    stb_reader *r = user;
    if (fseek(r->fp, n, SEEK_CUR) != 0) r->read_past_end = 1;
}

static int reader_eof(void *user) { return feof(((stb_reader *)user)->fp); }

/* Decodes path into an STL-10 record (column-major planes). Returns 0, or -1 with why. */
static int decode_record(const char *path, uint8_t *rec, const char **why)
{
    /* Open once, without blocking, and decode from that descriptor: a FIFO or device named
     * like an image (x.png) would otherwise hang stbi_load's fopen or read forever. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        *why = strerror(errno);
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size == 0) {
        *why = fstat(fd, &st) != 0 ? strerror(errno) : !S_ISREG(st.st_mode) ? "not a regular file" : "empty file";
        close(fd);
        return -1;
    }
    FILE *fp = fdopen(fd, "rb");
    if (!fp) {
        *why = strerror(errno);
        close(fd);
        return -1;
    }
    int w, h, ch;
    if (!stbi_info_from_file(fp, &w, &h, &ch)) { /* the header only; rewinds fp */
        *why = decode_failure(fp);
        fclose(fp);
        return -1;
    }
    if (w <= 0 || h <= 0 || (size_t)w * (size_t)h > IMPORT_MAX_PIXELS) {
        static char buf[120];
        snprintf(buf, sizeof buf, "image dimensions %dx%d too large (over %.0f megapixels)", w, h,
                 (double)IMPORT_MAX_PIXELS / 1e6);
        *why = buf;
        fclose(fp);
        return -1;
    }
    const char *pnm = pnm_problem(fp, (size_t)st.st_size);
    if (pnm) {
        *why = pnm;
        fclose(fp);
        return -1;
    }
    /* The file's own channels (desired 0), expanded to RGB below, not stb_image's
     * conversion (desired 3): stb_image 2.27 applies its 8-bit channel converter to
     * 16-bit PNM data (a heap over-read; found by tests/fuzz; such files are refused
     * above anyway). Channels are independent, so resizing before dropping alpha
     * changes nothing. */
    stb_reader reader = {fp, 0};
    const stbi_io_callbacks io = {reader_read, reader_skip, reader_eof};
    fseek(fp, 0, SEEK_SET);
    unsigned char *px = stbi_load_from_callbacks(&io, &reader, &w, &h, &ch, 0);
    if (!px) *why = decode_failure(fp);
    if (px && reader.read_past_end) {
        static char buf[120];
        const char *fmt = sniff_format(fp);
        snprintf(buf, sizeof buf, "truncated %s: the file ends before the picture does", fmt ? fmt : "image"); /* TGA: no magic */
        *why = buf;
        stbi_image_free(px);
        px = NULL;
    }
    fclose(fp);
    if (!px) return -1;
    if (ch < 1 || ch > 4) {
        stbi_image_free(px);
        *why = "unsupported number of channels";
        return -1;
    }
    uint8_t *img = px, small[STL10_SIZE * STL10_SIZE * 4];
    if (w != STL10_SIZE || h != STL10_SIZE) {
        if (!stbir_resize_uint8(px, w, h, 0, small, STL10_SIZE, STL10_SIZE, 0, ch)) {
            stbi_image_free(px);
            *why = "resize failed";
            return -1;
        }
        img = small;
    }
    /* gray (1), gray + alpha (2): the gray value in all three planes; RGB(A): R, G, B */
    for (int c = 0; c < 3; c++)
        for (int x = 0; x < STL10_SIZE; x++)
            for (int y = 0; y < STL10_SIZE; y++)
                rec[(c * STL10_SIZE + x) * STL10_SIZE + y] = img[(y * STL10_SIZE + x) * ch + (ch >= 3 ? c : 0)];
    stbi_image_free(px);
    return 0;
}

/* decode_record in a forked child, which sends the record (or the reason) back through a
 * pipe. stb_image is not safe on hostile files: Debian 12's libstb (stb_image 2.27) writes
 * past its Huffman tables on a JPEG whose DHT segment declares more than 256 codes
 * (found by tests/fuzz, fixed upstream in 2.28), and a decoder bug could as well crash or
 * loop. In a child, such a file costs only itself: a crash, or decoding for more than
 * IMPORT_DECODE_TIMEOUT_S (SIGALRM), is reported by name as undecodable like any other bad
 * file, and the parent's memory is never touched by the decoder. `import` runs without
 * MPI, so fork is safe here. Test-only fault injection (tests/test_data.c):
 * SIMCLR_FAULT="decode-crash@NAME" or "decode-hang@NAME" makes the child crash, or hang
 * (with a 1 s timeout), on the file whose name is NAME. */
#define IMPORT_DECODE_TIMEOUT_S 60

static int decode_isolated(const char *path, uint8_t *rec, const char **why)
{
    static char reason[256];
    const char *fault = getenv("SIMCLR_FAULT"), *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    int crash = fault && !strncmp(fault, "decode-crash@", 13) && !strcmp(fault + 13, base);
    int hang = fault && !strncmp(fault, "decode-hang@", 12) && !strcmp(fault + 12, base);
    int p[2];
    if (pipe(p) != 0) fatal(EXIT_INTERNAL, "pipe: %s", strerror(errno));
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) fatal(EXIT_INTERNAL, "fork: %s", strerror(errno));
    if (pid == 0) {
        close(p[0]);
        signal(SIGALRM, SIG_DFL);
        alarm(hang ? 1 : IMPORT_DECODE_TIMEOUT_S);
        if (crash) raise(SIGSEGV);
        if (hang) for (;;) pause();
        const char *w = "";
        uint8_t status = decode_record(path, rec, &w) == 0 ? 0 : 1;
        size_t n = status ? strlen(w) : STL10_RECORD;
        const uint8_t *src = status ? (const uint8_t *)w : rec;
        int ok = write(p[1], &status, 1) == 1;
        for (size_t done = 0; ok && done < n;) {
            ssize_t got = write(p[1], src + done, n - done);
            ok = got > 0;
            done += ok ? (size_t)got : 0;
        }
        _exit(ok ? 0 : 1);
    }
    close(p[1]);
    uint8_t status = 2;
    size_t n = 0;
    char msg[256];
    int got_status = 0;
    for (;;) {
        ssize_t got;
        if (!got_status) {
            got = read(p[0], &status, 1);
            if (got == 1) got_status = 1;
        } else if (status == 0) {
            got = n < STL10_RECORD ? read(p[0], rec + n, STL10_RECORD - n) : 0;
            if (got > 0) n += (size_t)got;
        } else {
            got = n < sizeof msg - 1 ? read(p[0], msg + n, sizeof msg - 1 - n) : 0;
            if (got > 0) n += (size_t)got;
        }
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) break;
    }
    close(p[0]);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    if (WIFSIGNALED(st)) {
        if (WTERMSIG(st) == SIGALRM)
            snprintf(reason, sizeof reason, "decoding took over %d s (stopped)", hang ? 1 : IMPORT_DECODE_TIMEOUT_S);
        else
            snprintf(reason, sizeof reason, "the image decoder crashed (signal %d: %s) on this malformed file",
                     WTERMSIG(st), strsignal(WTERMSIG(st)));
        *why = reason;
        return -1;
    }
    if (got_status && status == 0 && n == STL10_RECORD && WIFEXITED(st) && WEXITSTATUS(st) == 0) return 0;
    if (got_status && status == 1) {
        msg[n] = 0;
        snprintf(reason, sizeof reason, "%s", msg);
    } else {
        snprintf(reason, sizeof reason, "the image decoder failed (exit status %d)", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    }
    *why = reason;
    return -1;
}

static FILE *open_tmp(const char *path, char *tmp, size_t tmpsz)
{
    snprintf(tmp, tmpsz, "%s.tmp.%ld", path, (long)getpid()); /* two imports never share a temp file */
    FILE *f = fopen(tmp, "wb");
    if (!f) fatal(EXIT_IO, "%s: cannot write: %s", tmp, strerror(errno));
    return f;
}

static void commit_tmp(FILE *f, const char *tmp, const char *path)
{
    if (fflush(f) != 0 || fsync(fileno(f)) != 0 || fclose(f) != 0) {
        int e = errno;
        unlink(tmp);
        fatal(EXIT_IO, "%s: write failed: %s", tmp, strerror(e));
    }
    if (rename(tmp, path) != 0) fatal(EXIT_IO, "%s: rename failed: %s", path, strerror(errno));
}

/* Temporary files of a running import, removed before any failure exit. */
static char g_tmp_x[PATH_MAX + 80], g_tmp_y[PATH_MAX + 80];

static void remove_import_tmp(void)
{
    if (g_tmp_x[0]) unlink(g_tmp_x);
    if (g_tmp_y[0]) unlink(g_tmp_y);
    g_tmp_x[0] = g_tmp_y[0] = 0;
}

#define IMPORT_FAIL(code, ...) (remove_import_tmp(), fatal(code, __VA_ARGS__))

size_t data_import(const char *src_dir, const char *out_dir, const char *split,
                   int labels_from_folders, int skip_bad)
{
    if (!is_dir(src_dir)) fatal(EXIT_DATA, "%s: not a directory", src_dir);
    mkdir_p(out_dir);
    char px[PATH_MAX + 64], py[PATH_MAX + 64], tx[PATH_MAX + 80], ty[PATH_MAX + 80];
    snprintf(px, sizeof px, "%s/%s_X.bin", out_dir, split);
    snprintf(py, sizeof py, "%s/%s_y.bin", out_dir, split);
    FILE *fx = open_tmp(px, tx, sizeof tx), *fy = labels_from_folders ? open_tmp(py, ty, sizeof ty) : NULL;
    snprintf(g_tmp_x, sizeof g_tmp_x, "%s", tx);
    if (fy) snprintf(g_tmp_y, sizeof g_tmp_y, "%s", ty);

    struct dirent **classes = NULL;
    int nclass = 1;
    if (labels_from_folders) {
        nclass = list_dir(src_dir, 1, &classes);
        if (nclass == 0) IMPORT_FAIL(EXIT_DATA, "%s: no class subfolders (--labels-from-folders)", src_dir);
        if (nclass > DATA_MAX_CLASSES) IMPORT_FAIL(EXIT_DATA, "%s: %d class folders, at most %d", src_dir, nclass, DATA_MAX_CLASSES);
        /* class_names.txt holds one name per line: a folder name with a newline (or any
         * other control character) would shift every later class name. */
        for (int c = 0; c < nclass; c++)
            for (const unsigned char *q = (const unsigned char *)classes[c]->d_name; *q; q++)
                if (*q < 0x20 || *q == 0x7f)
                    IMPORT_FAIL(EXIT_DATA, "%s/%s: class folder name contains a control character "
                                "(newline?), which class_names.txt cannot hold: rename the folder",
                                src_dir, classes[c]->d_name);
    }
    size_t written = 0, bad = 0;
    uint8_t rec[STL10_RECORD];
    for (int c = 0; c < nclass; c++) {
        char dir[PATH_MAX];
        if (labels_from_folders) path_join(dir, sizeof dir, src_dir, classes[c]->d_name);
        else snprintf(dir, sizeof dir, "%s", src_dir);
        struct dirent **files = NULL;
        int nf = list_dir(dir, 0, &files);
        if (nf == 0) IMPORT_FAIL(EXIT_DATA, "%s: no image files (.jpg .png ...)", dir);
        for (int i = 0; i < nf; i++) {
            char path[PATH_MAX];
            path_join(path, sizeof path, dir, files[i]->d_name);
            const char *why = "";
            if (decode_isolated(path, rec, &why) != 0) {
                fprintf(stderr, "simclr: import: %s: cannot decode: %s\n", path, why);
                bad++;
            } else {
                uint8_t label = (uint8_t)(c + 1);
                if (fwrite(rec, 1, sizeof rec, fx) != sizeof rec || (fy && fwrite(&label, 1, 1, fy) != 1))
                    IMPORT_FAIL(EXIT_IO, "%s: write failed: %s", tx, strerror(errno));
                written++;
            }
            free(files[i]);
        }
        free(files);
    }
    if (bad && !skip_bad) {
        fclose(fx);
        if (fy) fclose(fy);
        IMPORT_FAIL(EXIT_DATA, "%s: %zu undecodable image file(s), listed above (--skip-bad to skip them)",
              src_dir, bad);
    }
    if (written == 0) IMPORT_FAIL(EXIT_DATA, "%s: no image could be decoded", src_dir);
    g_tmp_x[0] = g_tmp_y[0] = 0; /* commit_tmp removes its own file on failure */
    commit_tmp(fx, tx, px);
    if (fy) {
        commit_tmp(fy, ty, py);
        char pn[PATH_MAX + 64], tn[PATH_MAX + 80];
        snprintf(pn, sizeof pn, "%s/class_names.txt", out_dir);
        FILE *fn = open_tmp(pn, tn, sizeof tn);
        for (int c = 0; c < nclass; c++) fprintf(fn, "%s\n", classes[c]->d_name);
        commit_tmp(fn, tn, pn);
    }
    for (int c = 0; labels_from_folders && c < nclass; c++) free(classes[c]);
    free(classes);
    printf("import: %s -> %s: %zu images%s, %zu skipped\n", src_dir, px,
           written, labels_from_folders ? " (labeled)" : "", bad);
    return written;
}
