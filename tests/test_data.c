/* test_data.c: STL-10 binary reader (official column-major layout, labels, 64-bit
 * offsets, every error path), datasets, hold-out/sharding helpers and `import` of image
 * folders (PNG/JPEG/grayscale/RGBA, resize, class folders, bad files, odd names).
 *
 * The STL-10 files are written here byte by byte in the official layout: image after
 * image, 3 planes (R, G, B) of 96x96, each plane column-major, so the byte of plane c,
 * column x, row y is at c*9216 + x*96 + y; labels are uint8 1..10. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "forkutil.h"
#include "testutil.h"

#include <stb/stb_image_write.h>

#include "common.h"
#include "data.h"

#define S STL10_SIZE
#define PLANE (S * S)

/* Offset of (plane c, column x, row y) in an STL-10 record: the official layout. */
static size_t raw_at(int c, int x, int y) { return (size_t)c * PLANE + (size_t)x * S + (size_t)y; }
/* Index of (c, row y, column x) in stl10_read's upright row-major output. */
static size_t img_at(int c, int y, int x) { return ((size_t)c * S + (size_t)y) * S + (size_t)x; }

/* Pixel value of record r: asymmetric in x and y so a transposition is caught. */
static uint8_t pattern(size_t r, int c, int x, int y) { return (uint8_t)(r * 7 + (size_t)c * 31 + (size_t)x * 3 + (size_t)y * 5 + 1); }

/* Writes DIR/SPLIT_X.bin with n records of pattern() (and DIR/SPLIT_y.bin with labels
 * when labels != NULL, nl of them). */
static void write_stl10(const char *dir, const char *split, size_t n, const uint8_t *labels, size_t nl)
{
    char path[4200];
    uint8_t *x = malloc(n * STL10_RECORD + 1);
    for (size_t r = 0; r < n; r++)
        for (int c = 0; c < 3; c++)
            for (int xx = 0; xx < S; xx++)
                for (int y = 0; y < S; y++) x[r * STL10_RECORD + raw_at(c, xx, y)] = pattern(r, c, xx, y);
    pathf(path, sizeof path, "%s/%s_X.bin", dir, split);
    write_file(path, x, n * STL10_RECORD);
    free(x);
    if (labels) {
        pathf(path, sizeof path, "%s/%s_y.bin", dir, split);
        write_file(path, labels, nl);
    }
}

/* ---- reading ---------------------------------------------------------------------- */

static void test_stl10_orientation_and_labels(void **state)
{
    char dir[4096];
    make_tmp_dir(dir, sizeof dir, "stl");
    const uint8_t labels[3] = {1, 10, 4};
    write_stl10(dir, "train", 3, labels, 3);
    /* record 1: all zero except three known pixels */
    char path[4200];
    pathf(path, sizeof path, "%s/train_X.bin", dir);
    uint8_t rec[STL10_RECORD] = {0};
    rec[raw_at(0, 70, 5)] = 200;  /* red,   row 5,  column 70 */
    rec[raw_at(1, 1, 90)] = 17;   /* green, row 90, column 1  */
    rec[raw_at(2, 95, 0)] = 99;   /* blue,  row 0,  column 95 (top right) */
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, rec, sizeof rec, STL10_RECORD), STL10_RECORD);
    close(fd);

    stl10_file f;
    stl10_open(&f, dir, "train", 1, 10);
    assert_int_equal(f.count, 3);
    assert_non_null(f.label);
    assert_int_equal(f.label[0], 0); /* 1-based on disk, 0-based in memory */
    assert_int_equal(f.label[1], 9);
    assert_int_equal(f.label[2], 3);
    assert_string_equal(f.path_x, path);

    uint8_t img[STL10_RECORD];
    stl10_read(&f, 1, img);
    assert_int_equal(img[img_at(0, 5, 70)], 200);
    assert_int_equal(img[img_at(1, 90, 1)], 17);
    assert_int_equal(img[img_at(2, 0, 95)], 99);
    assert_int_equal(img[img_at(0, 70, 5)], 0); /* the transposed positions stay 0 */
    assert_int_equal(img[img_at(1, 1, 90)], 0);
    assert_int_equal(img[img_at(2, 95, 0)], 0);
    size_t nonzero = 0;
    for (size_t i = 0; i < STL10_RECORD; i++) nonzero += img[i] != 0;
    assert_int_equal(nonzero, 3);

    /* records 0 and 2 (the last): every byte */
    for (size_t r = 0; r < 3; r += 2) {
        stl10_read(&f, r, img);
        size_t bad = 0;
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < S; y++)
                for (int x = 0; x < S; x++) bad += img[img_at(c, y, x)] != pattern(r, c, x, y);
        if (bad) fail_msg("record %zu: %zu pixels differ from the written pattern", r, bad);
    }
    stl10_close(&f);

    /* the same file unlabeled: no labels needed or read */
    stl10_open(&f, dir, "train", 0, 10);
    assert_int_equal(f.count, 3);
    assert_null(f.label);
    stl10_close(&f);
}

/* A sparse file over 4 GiB: the last record sits past 2^32 bytes (64-bit offset math). */
static void test_stl10_large_offset(void **state)
{
    char dir[4096], path[4200];
    make_tmp_dir(dir, sizeof dir, "big");
    pathf(path, sizeof path, "%s/unlabeled_X.bin", dir);
    const size_t n = 160000; /* 4.42e9 bytes */
    int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0644);
    assert_true(fd >= 0);
    if (ftruncate(fd, (off_t)(n * (size_t)STL10_RECORD)) != 0) {
        close(fd);
        print_message("  no sparse 4 GiB file here (%s): skipped\n", strerror(errno));
        skip();
    }
    uint8_t rec[STL10_RECORD];
    for (int c = 0; c < 3; c++)
        for (int x = 0; x < S; x++)
            for (int y = 0; y < S; y++) rec[raw_at(c, x, y)] = pattern(n - 1, c, x, y);
    off_t last = (off_t)((n - 1) * (size_t)STL10_RECORD);
    assert_true(last > (off_t)UINT32_MAX);
    assert_int_equal(pwrite(fd, rec, sizeof rec, last), STL10_RECORD);
    close(fd);

    stl10_file f;
    stl10_open(&f, dir, "unlabeled", 0, 10);
    assert_int_equal(f.count, n);
    uint8_t img[STL10_RECORD];
    stl10_read(&f, n - 1, img);
    size_t bad = 0;
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < S; y++)
            for (int x = 0; x < S; x++) bad += img[img_at(c, y, x)] != pattern(n - 1, c, x, y);
    assert_int_equal(bad, 0);
    stl10_read(&f, n - 2, img); /* a hole: zeros */
    for (size_t i = 0; i < STL10_RECORD; i++) bad += img[i] != 0;
    assert_int_equal(bad, 0);
    stl10_close(&f);
    unlink(path);
}

/* ---- reading errors (forked: fatal ends the process) ------------------------------- */

typedef struct {
    const char *dir, *split;
    int need_labels, num_classes;
    size_t read_index; /* stl10_read after opening when != SIZE_MAX */
    const char *truncate_x; /* truncate this file to one record after opening */
} open_args;

static void do_open(void *p)
{
    open_args *a = p;
    stl10_file f;
    stl10_open(&f, a->dir, a->split, a->need_labels, a->num_classes);
    if (a->truncate_x && truncate(a->truncate_x, STL10_RECORD) != 0) _exit(99);
    if (a->read_index != SIZE_MAX) {
        uint8_t img[STL10_RECORD];
        stl10_read(&f, a->read_index, img);
    }
    stl10_close(&f);
}

static void test_stl10_bad_size(void **state)
{
    char dir[4096], px[4200];
    make_tmp_dir(dir, sizeof dir, "badsize");
    pathf(px, sizeof px, "%s/train_X.bin", dir);
    uint8_t *junk = calloc(1, STL10_RECORD + 100);
    write_file(px, junk, STL10_RECORD + 100);
    free(junk);
    open_args a = {dir, "train", 0, 10, SIZE_MAX, NULL};
    expect_exit(do_open, &a, EXIT_DATA, px, "27648", NULL);
}

static void test_stl10_label_count_mismatch(void **state)
{
    char dir[4096], px[4200], py[4200];
    make_tmp_dir(dir, sizeof dir, "count");
    const uint8_t labels[2] = {1, 2};
    write_stl10(dir, "train", 3, labels, 2);
    pathf(px, sizeof px, "%s/train_X.bin", dir);
    pathf(py, sizeof py, "%s/train_y.bin", dir);
    open_args a = {dir, "train", 1, 10, SIZE_MAX, NULL};
    expect_exit(do_open, &a, EXIT_DATA, py, px, NULL);
    /* unlabeled use of the same split does not read the labels */
    a.need_labels = 0;
    expect_exit(do_open, &a, 0, NULL);
}

static void test_stl10_label_out_of_range(void **state)
{
    char dir[4096], py[4200];
    make_tmp_dir(dir, sizeof dir, "labels");
    pathf(py, sizeof py, "%s/train_y.bin", dir);
    open_args a = {dir, "train", 1, 10, SIZE_MAX, NULL};
    const uint8_t zero[3] = {1, 0, 2};
    write_stl10(dir, "train", 3, zero, 3);
    expect_exit(do_open, &a, EXIT_DATA, py, "record 1", NULL);
    const uint8_t eleven[3] = {1, 2, 11};
    write_stl10(dir, "train", 3, eleven, 3);
    expect_exit(do_open, &a, EXIT_DATA, py, "record 2", NULL);
    const uint8_t four[3] = {1, 4, 2}; /* fine for 10 classes, not for 3 */
    write_stl10(dir, "train", 3, four, 3);
    expect_exit(do_open, &a, 0, NULL);
    a.num_classes = 3;
    expect_exit(do_open, &a, EXIT_DATA, py, "record 1", NULL);
}

static void test_stl10_empty_and_missing(void **state)
{
    char dir[4096], px[4200], py[4200];
    make_tmp_dir(dir, sizeof dir, "empty");
    pathf(px, sizeof px, "%s/train_X.bin", dir);
    pathf(py, sizeof py, "%s/train_y.bin", dir);
    open_args a = {dir, "train", 0, 10, SIZE_MAX, NULL};
    expect_exit(do_open, &a, EXIT_DATA, px, NULL); /* missing */
    write_file(px, "", 0);
    expect_exit(do_open, &a, EXIT_DATA, px, "empty", NULL);
    write_stl10(dir, "train", 2, NULL, 0); /* images without labels, labels wanted */
    a.need_labels = 1;
    expect_exit(do_open, &a, EXIT_DATA, py, NULL);
    /* a directory named like the file */
    char d2[4096], px2[4200];
    make_tmp_dir(d2, sizeof d2, "isdir");
    pathf(px2, sizeof px2, "%s/train_X.bin", d2);
    assert_int_equal(mkdir(px2, 0755), 0);
    open_args b = {d2, "train", 0, 10, SIZE_MAX, NULL};
    expect_exit(do_open, &b, EXIT_DATA, px2, NULL);
}

/* The file shrinks after it was opened: the read names file and record. */
static void test_stl10_short_read(void **state)
{
    char dir[4096], px[4200];
    make_tmp_dir(dir, sizeof dir, "short");
    write_stl10(dir, "train", 3, NULL, 0);
    pathf(px, sizeof px, "%s/train_X.bin", dir);
    open_args a = {dir, "train", 0, 10, 2, px};
    expect_exit(do_open, &a, EXIT_DATA, px, "record 2", NULL);
}

/* ---- datasets --------------------------------------------------------------------- */

static void test_dataset(void **state)
{
    char dir[4096];
    make_tmp_dir(dir, sizeof dir, "dataset");
    const uint8_t labels[4] = {3, 1, 2, 10};
    write_stl10(dir, "train", 4, labels, 4);
    write_stl10(dir, "unlabeled", 2, NULL, 0);
    stl10_file f, u;
    stl10_open(&f, dir, "train", 1, 10);
    stl10_open(&u, dir, "unlabeled", 0, 10);
    dataset d;
    dataset_init(&d, 3);
    assert_int_equal(d.n, 0);
    dataset_add(&d, &f, 3);
    dataset_add(&d, &u, 1);
    dataset_add(&d, &f, 0);
    assert_int_equal(d.n, 3);
    assert_ptr_equal(d.src[0], &f);
    assert_ptr_equal(d.src[1], &u);
    assert_int_equal(d.rec[0], 3);
    assert_int_equal(d.rec[1], 1);
    assert_int_equal(d.rec[2], 0);
    assert_int_equal(d.label[0], 9);
    assert_int_equal(d.label[1], -1);
    assert_int_equal(d.label[2], 2);
    uint8_t a[STL10_RECORD], b[STL10_RECORD];
    const size_t want_rec[3] = {3, 1, 0};
    const stl10_file *want_src[3] = {&f, &u, &f};
    for (size_t i = 0; i < 3; i++) {
        dataset_read(&d, i, a);
        stl10_read(want_src[i], want_rec[i], b);
        assert_memory_equal(a, b, STL10_RECORD);
        assert_int_equal(a[img_at(1, 10, 20)], pattern(want_rec[i], 1, 20, 10));
    }
    dataset_free(&d);
    assert_int_equal(d.n, 0);
    assert_null(d.rec);
    stl10_close(&f);
    stl10_close(&u);
}

static void test_stratified_holdout(void **state)
{
    enum { N = 60, C = 3 };
    int32_t labels[N];
    for (int i = 0; i < N; i++) labels[i] = (i * 7) % C; /* 20 per class, interleaved */
    uint8_t held[N], again[N], other[N];
    assert_int_equal(stratified_holdout(labels, N, C, 4, 1234, held), 0);
    int per[C] = {0};
    for (int i = 0; i < N; i++) {
        assert_true(held[i] <= 1);
        if (held[i]) per[labels[i]]++;
    }
    for (int c = 0; c < C; c++) assert_int_equal(per[c], 4);
    assert_int_equal(stratified_holdout(labels, N, C, 4, 1234, again), 0);
    assert_memory_equal(held, again, N); /* a pure function of (labels, key) */
    assert_int_equal(stratified_holdout(labels, N, C, 4, 99, other), 0);
    assert_memory_not_equal(held, other, N);
    /* 20 per class: 19 can be held out and one left to train, 20 cannot */
    assert_int_equal(stratified_holdout(labels, N, C, 19, 5, held), 0);
    int shortfall = stratified_holdout(labels, N, C, 20, 5, held);
    assert_true(shortfall >= 1 && shortfall <= C);
    /* class 2 (index) with only 2 images: reported as 3 */
    int32_t few[10] = {0, 0, 0, 1, 1, 1, 2, 2, 0, 1};
    assert_int_equal(stratified_holdout(few, 10, 3, 2, 1, held), 3);
    assert_int_equal(stratified_holdout(few, 10, 3, 1, 1, held), 0);
}

static void test_shard_range_and_steps(void **state)
{
    for (size_t global = 0; global <= 40; global++)
        for (int world = 1; world <= 7; world++) {
            size_t next = 0, lo = SIZE_MAX, hi = 0;
            for (int rank = 0; rank < world; rank++) {
                size_t b, n;
                shard_range(global, world, rank, &b, &n);
                assert_int_equal(b, next); /* contiguous, in rank order */
                next = b + n;
                lo = n < lo ? n : lo;
                hi = n > hi ? n : hi;
            }
            assert_int_equal(next, global);
            assert_true(hi - lo <= 1);
        }
    assert_int_equal(steps_per_epoch(100, 32), 3);
    assert_int_equal(steps_per_epoch(96, 32), 3);
    assert_int_equal(steps_per_epoch(31, 32), 0);
    assert_int_equal(steps_per_epoch(31, 0), 0);
}

/* ---- import ----------------------------------------------------------------------- */

static void png(const char *dir, const char *name, int w, int h, int comp, const uint8_t *px)
{
    char path[4200];
    pathf(path, sizeof path, "%s/%s", dir, name);
    if (!stbi_write_png(path, w, h, comp, px, w * comp)) fail_msg("stbi_write_png %s failed", path);
}

/* w x h image of `comp` channels, every pixel = value[0..comp). */
static uint8_t *solid(int w, int h, int comp, const uint8_t *value)
{
    uint8_t *p = malloc((size_t)w * h * comp);
    for (int i = 0; i < w * h; i++) memcpy(p + (size_t)i * comp, value, (size_t)comp);
    return p;
}

typedef struct {
    const char *src, *out, *split;
    int labeled, skip_bad;
} import_args;

static void do_import(void *p)
{
    import_args *a = p;
    size_t n = data_import(a->src, a->out, a->split, a->labeled, a->skip_bad);
    printf("\nreturned %zu\n", n);
}

/* Builds SRC/alpha/{a1.png, a2_ä.png} and SRC/beta gamma/{g.png, j.jpg, rgba.png} plus
 * files import must ignore; returns in src. */
static void make_class_tree(char *src, size_t n)
{
    make_tmp_dir(src, n, "src");
    char alpha[4200], beta[4200], path[4400];
    pathf(alpha, sizeof alpha, "%s/alpha", src);
    pathf(beta, sizeof beta, "%s/beta gamma", src);
    assert_int_equal(mkdir(alpha, 0755), 0);
    assert_int_equal(mkdir(beta, 0755), 0);
    const uint8_t black[4] = {0, 0, 0, 255};
    uint8_t *p = solid(S, S, 3, black); /* 96x96 RGB with two known pixels */
    p[(5 * S + 70) * 3 + 0] = 200;      /* red at row 5, column 70 */
    p[(90 * S + 1) * 3 + 1] = 17;       /* green at row 90, column 1 */
    png(alpha, "a1.png", S, S, 3, p);
    free(p);
    const uint8_t c10[3] = {10, 20, 30};
    p = solid(10, 10, 3, c10); /* resized to 96x96 */
    png(alpha, "a2_\xc3\xa4.png", 10, 10, 3, p); /* a2_ä.png */
    free(p);
    const uint8_t g77 = 77;
    p = solid(S, S, 1, &g77); /* grayscale with one bright pixel at row 60, column 3 */
    p[60 * S + 3] = 250;
    png(beta, "g.png", S, S, 1, p);
    free(p);
    const uint8_t cj[3] = {120, 130, 140};
    p = solid(S, S, 3, cj);
    pathf(path, sizeof path, "%s/j.jpg", beta);
    if (!stbi_write_jpg(path, S, S, 3, p, 95)) fail_msg("stbi_write_jpg failed");
    free(p);
    const uint8_t ca[4] = {40, 50, 60, 128};
    p = solid(S, S, 4, ca);
    png(beta, "rgba.png", S, S, 4, p);
    free(p);
    /* not imported: a text file, a hidden image, a folder inside a class folder */
    pathf(path, sizeof path, "%s/notes.txt", beta);
    write_text_file(path, "not an image\n");
    p = solid(S, S, 3, c10);
    png(beta, ".hidden.png", S, S, 3, p);
    pathf(path, sizeof path, "%s/sub", alpha);
    assert_int_equal(mkdir(path, 0755), 0);
    png(path, "deep.png", S, S, 3, p);
    free(p);
}

static int near(int a, int b, int tol) { return abs(a - b) <= tol; }

/* Lists the files of dir whose names hold ".tmp" (import's NAME.tmp.PID) into out (empty
 * when none). */
static void tmp_files(const char *dir, char *out, size_t n)
{
    out[0] = 0;
    DIR *d = opendir(dir);
    if (!d) return;
    for (struct dirent *e; (e = readdir(d));)
        if (strstr(e->d_name, ".tmp")) snprintf(out + strlen(out), n - strlen(out), "%s ", e->d_name);
    closedir(d);
}

static void test_import_labeled(void **state)
{
    char src[4096], out[4096], path[4300];
    make_class_tree(src, sizeof src);
    make_tmp_dir(out, sizeof out, "out dir");
    import_args a = {src, out, "train", 1, 0};
    child_result r = run_child(do_import, &a);
    check_child(&r, 0, "returned 5", NULL);

    pathf(path, sizeof path, "%s/class_names.txt", out);
    char *names = slurp(path, NULL);
    assert_non_null(names);
    assert_string_equal(names, "alpha\nbeta gamma\n");
    free(names);
    char left0[1024];
    tmp_files(out, left0, sizeof left0);
    assert_string_equal(left0, ""); /* no NAME.tmp.PID left behind */

    /* the on-disk layout itself: column-major planes */
    size_t nx = 0;
    pathf(path, sizeof path, "%s/train_X.bin", out);
    uint8_t *raw = (uint8_t *)slurp(path, &nx);
    assert_non_null(raw);
    assert_int_equal(nx, 5 * STL10_RECORD);
    assert_int_equal(raw[raw_at(0, 70, 5)], 200);
    assert_int_equal(raw[raw_at(1, 1, 90)], 17);
    assert_int_equal(raw[raw_at(0, 5, 70)], 0);
    free(raw);

    stl10_file f;
    stl10_open(&f, out, "train", 1, 2);
    assert_int_equal(f.count, 5);
    const int32_t want[5] = {0, 0, 1, 1, 1}; /* alpha: a1, a2_ä; beta gamma: g, j, rgba */
    for (int i = 0; i < 5; i++) assert_int_equal(f.label[i], want[i]);
    uint8_t img[STL10_RECORD];

    stl10_read(&f, 0, img); /* a1.png: known pixels, upright */
    assert_int_equal(img[img_at(0, 5, 70)], 200);
    assert_int_equal(img[img_at(1, 90, 1)], 17);
    assert_int_equal(img[img_at(0, 70, 5)], 0);
    assert_int_equal(img[img_at(1, 1, 90)], 0);

    stl10_read(&f, 1, img); /* 10x10 solid (10, 20, 30), resized */
    size_t bad = 0;
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < PLANE; i++) bad += !near(img[c * PLANE + i], 10 * (c + 1), 1);
    assert_int_equal(bad, 0);

    stl10_read(&f, 2, img); /* grayscale 77 with 250 at row 60, column 3: gray in all planes */
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < S; y++)
            for (int x = 0; x < S; x++) bad += img[img_at(c, y, x)] != (y == 60 && x == 3 ? 250 : 77);
    assert_int_equal(bad, 0);

    stl10_read(&f, 3, img); /* JPEG (120, 130, 140) */
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < PLANE; i++) bad += !near(img[c * PLANE + i], 120 + 10 * c, 4);
    assert_int_equal(bad, 0);

    stl10_read(&f, 4, img); /* RGBA: alpha dropped, colour kept */
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < PLANE; i++) bad += img[c * PLANE + i] != 40 + 10 * c;
    assert_int_equal(bad, 0);
    stl10_close(&f);

    /* importing again replaces the split (atomic rename), does not append */
    r = run_child(do_import, &a);
    check_child(&r, 0, "returned 5", NULL);
    stl10_open(&f, out, "train", 1, 2);
    assert_int_equal(f.count, 5);
    stl10_close(&f);
}

static void test_import_unlabeled(void **state)
{
    char src[4096], out[4096], path[4300];
    make_tmp_dir(src, sizeof src, "flat");
    make_tmp_dir(out, sizeof out, "out");
    const uint8_t ca[3] = {1, 2, 3}, cb[3] = {200, 100, 50};
    uint8_t *p = solid(S, S, 3, cb);
    png(src, "b.png", S, S, 3, p);
    free(p);
    p = solid(S, S, 3, ca);
    png(src, "a.PNG", S, S, 3, p); /* extension case does not matter */
    pathf(path, sizeof path, "%s/sub", src);
    assert_int_equal(mkdir(path, 0755), 0);
    png(path, "c.png", S, S, 3, p); /* not recursive */
    free(p);
    import_args a = {src, out, "unlabeled", 0, 0};
    child_result r = run_child(do_import, &a);
    check_child(&r, 0, "returned 2", NULL);
    pathf(path, sizeof path, "%s/unlabeled_y.bin", out);
    assert_false(file_exists(path));
    pathf(path, sizeof path, "%s/class_names.txt", out);
    assert_false(file_exists(path));
    stl10_file f;
    stl10_open(&f, out, "unlabeled", 0, 10);
    assert_int_equal(f.count, 2);
    uint8_t img[STL10_RECORD];
    stl10_read(&f, 0, img); /* sorted by name: a.PNG first */
    assert_int_equal(img[img_at(2, 40, 40)], 3);
    stl10_read(&f, 1, img);
    assert_int_equal(img[img_at(0, 40, 40)], 200);
    stl10_close(&f);
}

/* SRC/cls/{ok.png, x.jpg (garbage)} */
static void make_bad_tree(char *src, size_t n)
{
    make_tmp_dir(src, n, "badsrc");
    char cls[4200], path[4300];
    pathf(cls, sizeof cls, "%s/cls", src);
    assert_int_equal(mkdir(cls, 0755), 0);
    const uint8_t c[3] = {9, 9, 9};
    uint8_t *p = solid(S, S, 3, c);
    png(cls, "ok.png", S, S, 3, p);
    free(p);
    pathf(path, sizeof path, "%s/x.jpg", cls);
    write_text_file(path, "this is not a JPEG file at all, just text\n");
}


static void test_import_bad_file(void **state)
{
    char src[4096], out[4096], path[4300], bad[4300], left[1024];
    make_bad_tree(src, sizeof src);
    make_tmp_dir(out, sizeof out, "out");
    pathf(bad, sizeof bad, "%s/cls/x.jpg", src);
    import_args a = {src, out, "train", 1, 0};
    expect_exit(do_import, &a, EXIT_DATA, bad, "--skip-bad", NULL);
    pathf(path, sizeof path, "%s/train_X.bin", out);
    assert_false(file_exists(path)); /* nothing written on failure */
    tmp_files(out, left, sizeof left);
    assert_string_equal(left, "");

    a.skip_bad = 1; /* skipped, named and counted */
    expect_exit(do_import, &a, 0, bad, "1 skipped", "returned 1", NULL);
    stl10_file f;
    stl10_open(&f, out, "train", 1, 10);
    assert_int_equal(f.count, 1);
    assert_int_equal(f.label[0], 0);
    stl10_close(&f);
}

/* A header claiming 20000 x 10000 pixels (over the 67 Mpixel limit): refused by name
 * before any decoding (stb_image does not check the PNG CRCs). */
static void test_import_huge_header(void **state)
{
    char src[4096], out[4096], path[4300];
    make_tmp_dir(src, sizeof src, "huge");
    make_tmp_dir(out, sizeof out, "out");
    const uint8_t hdr[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n',
                           0, 0, 0, 13, 'I', 'H', 'D', 'R',
                           0, 0, 0x4e, 0x20, /* width 20000 */
                           0, 0, 0x27, 0x10, /* height 10000 */
                           8, 2, 0, 0, 0, 0, 0, 0, 0,
                           0, 0, 0, 0, 'I', 'E', 'N', 'D', 0xae, 0x42, 0x60, 0x82};
    pathf(path, sizeof path, "%s/bomb.png", src);
    write_file(path, hdr, sizeof hdr);
    import_args a = {src, out, "unlabeled", 0, 0};
    /* unlabeled imports name files as SRC/./NAME: match the folder and the name */
    expect_exit(do_import, &a, EXIT_DATA, src, "bomb.png", "too large", NULL);
}

/* Every failing import removes its temporary files (not only the undecodable-file path). */
static void test_import_failure_leaves_no_tmp(void **state)
{
    char src[4096], out[4096], path[4300], left[1024];
    /* only undecodable files, --skip-bad: "no image could be decoded" */
    make_tmp_dir(src, sizeof src, "allbad");
    make_tmp_dir(out, sizeof out, "out");
    pathf(path, sizeof path, "%s/cls", src);
    assert_int_equal(mkdir(path, 0755), 0);
    pathf(path, sizeof path, "%s/cls/x.jpg", src);
    write_text_file(path, "garbage");
    import_args a = {src, out, "train", 1, 1};
    expect_exit(do_import, &a, EXIT_DATA, src, NULL);
    tmp_files(out, left, sizeof left);
    if (left[0]) fail_msg("failed import (all files undecodable) left temporary files in %s: %s", out, left);

    /* a class folder without images */
    char src2[4096], out2[4096], empty[4300];
    make_bad_tree(src2, sizeof src2);
    make_tmp_dir(out2, sizeof out2, "out");
    pathf(empty, sizeof empty, "%s/empty class", src2);
    assert_int_equal(mkdir(empty, 0755), 0);
    import_args b = {src2, out2, "train", 1, 1};
    expect_exit(do_import, &b, EXIT_DATA, empty, NULL);
    tmp_files(out2, left, sizeof left);
    if (left[0]) fail_msg("failed import (empty class folder) left temporary files in %s: %s", out2, left);
}

static void test_import_missing_source(void **state)
{
    char out[4096], src[4300];
    make_tmp_dir(out, sizeof out, "out");
    pathf(src, sizeof src, "%s/does-not-exist", out);
    import_args a = {src, out, "train", 1, 0};
    expect_exit(do_import, &a, EXIT_DATA, src, NULL);
    char flat[4096];
    make_tmp_dir(flat, sizeof flat, "noclasses"); /* labels from folders, but no folders */
    const uint8_t c[3] = {1, 1, 1};
    uint8_t *p = solid(S, S, 3, c);
    png(flat, "a.png", S, S, 3, p);
    free(p);
    import_args b = {flat, out, "train", 1, 0};
    expect_exit(do_import, &b, EXIT_DATA, flat, NULL);
}

/* ---- hostile inputs (issue 5): STL-10 folders ------------------------------------- */

/* data.dir is a regular file, not a folder: named, EXIT_DATA. */
static void test_stl10_dir_is_file(void **state)
{
    char dir[4096], file[4200], px[4300];
    make_tmp_dir(dir, sizeof dir, "dirfile");
    pathf(file, sizeof file, "%s/not-a-dir", dir);
    write_text_file(file, "x");
    pathf(px, sizeof px, "%s/train_X.bin", file);
    open_args a = {file, "train", 0, 10, SIZE_MAX, NULL};
    expect_exit(do_open, &a, EXIT_DATA, px, "Not a directory", NULL);
}

/* A FIFO named like the image or label file: refused at once as not a regular file
 * (opening a FIFO for reading would otherwise wait forever for a writer). */
static void test_stl10_fifo(void **state)
{
    char dir[4096], px[4200], py[4200];
    make_tmp_dir(dir, sizeof dir, "fifo");
    pathf(px, sizeof px, "%s/train_X.bin", dir);
    pathf(py, sizeof py, "%s/train_y.bin", dir);
    assert_int_equal(mkfifo(px, 0644), 0);
    open_args a = {dir, "train", 0, 10, SIZE_MAX, NULL};
    expect_exit(do_open, &a, EXIT_DATA, px, "not a regular file", NULL);
    unlink(px);
    write_stl10(dir, "train", 2, NULL, 0);
    assert_int_equal(mkfifo(py, 0644), 0);
    a.need_labels = 1;
    expect_exit(do_open, &a, EXIT_DATA, py, "not a regular file", NULL);
}

/* A folder without read/search permission. Root ignores permission bits, so as root the
 * child drops to uid/gid 65534 (nobody) first; skipped when it cannot. */
static void do_open_unprivileged(void *p)
{
    if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0)) _exit(77);
    do_open(p);
}

static void test_stl10_permission_denied(void **state)
{
    char dir[4096], px[4200];
    make_tmp_dir(dir, sizeof dir, "noperm");
    write_stl10(dir, "train", 2, NULL, 0);
    pathf(px, sizeof px, "%s/train_X.bin", dir);
    /* the per-process temporary root is 0700: let nobody reach the folder itself */
    assert_int_equal(chmod(g_tmp_root, 0711), 0);
    assert_int_equal(chmod(dir, 0), 0);
    open_args a = {dir, "train", 0, 10, SIZE_MAX, NULL};
    child_result r = run_child(do_open_unprivileged, &a);
    chmod(dir, 0755);
    chmod(g_tmp_root, 0700);
    if (r.status == 77) {
        print_message("  cannot drop root privileges here: skipped\n");
        skip();
    }
    check_child(&r, EXIT_DATA, px, "Permission denied", NULL);
}

/* ---- class_names.txt --------------------------------------------------------------- */

typedef struct {
    const char *dir;
    int num_classes;
} names_args;

static void do_names(void *p)
{
    names_args *a = p;
    char **names = stl10_class_names(a->dir, a->num_classes);
    for (int k = 0; k < a->num_classes; k++) printf("name %d: [%s]\n", k + 1, names[k]);
    free(names);
}

static void test_class_names(void **state)
{
    char dir[4096], path[4200];
    make_tmp_dir(dir, sizeof dir, "names");
    pathf(path, sizeof path, "%s/class_names.txt", dir);
    names_args a = {dir, 3};

    /* missing: "class k", with a warning naming the file */
    expect_exit(do_names, &a, 0, path, "not found", "name 3: [class 3]", NULL);

    /* a 100-byte name, spaces, UTF-8, CRLF, trailing empty lines: all fine */
    char text[512], longname[101];
    memset(longname, 'n', 100);
    longname[100] = 0;
    pathf(text, sizeof text, "air plane\r\n%s\nk\xc3\xa4se\n\n\n", longname);
    write_text_file(path, text);
    char **names = stl10_class_names(dir, 3);
    assert_string_equal(names[0], "air plane");
    assert_string_equal(names[1], longname);
    assert_string_equal(names[2], "k\xc3\xa4se");
    free(names);
    write_text_file(path, "a\nb\nc"); /* no final newline */
    names = stl10_class_names(dir, 3);
    assert_string_equal(names[2], "c");
    free(names);

    /* fewer or more names than classes: the file and both counts */
    write_text_file(path, "a\nb\n");
    expect_exit(do_names, &a, EXIT_DATA, path, "2 class names", "3 classes", NULL);
    write_text_file(path, "a\nb\nc\nd\n");
    expect_exit(do_names, &a, EXIT_DATA, path, "4 class names", "3 classes", NULL);
    write_text_file(path, "");
    expect_exit(do_names, &a, EXIT_DATA, path, "0 class names", NULL);
    /* an empty line inside would shift every later name: file:line */
    char where[4300];
    write_text_file(path, "a\n\nb\nc\n");
    pathf(where, sizeof where, "%s:2", path);
    expect_exit(do_names, &a, EXIT_DATA, where, "empty class name", NULL);
    /* a name over 255 bytes, a NUL byte, a directory, a FIFO */
    char huge[400];
    memset(huge, 'x', 300);
    huge[300] = 0;
    pathf(text, sizeof text, "a\n%s\nc\n", huge);
    write_text_file(path, text);
    expect_exit(do_names, &a, EXIT_DATA, where, "longer than 255", NULL);
    write_file(path, "a\nb\0\nc\n", 7);
    expect_exit(do_names, &a, EXIT_DATA, path, "NUL", NULL);
    unlink(path);
    assert_int_equal(mkdir(path, 0755), 0);
    expect_exit(do_names, &a, EXIT_DATA, path, "not a regular file", NULL);
    rmdir(path);
    assert_int_equal(mkfifo(path, 0644), 0);
    expect_exit(do_names, &a, EXIT_DATA, path, "not a regular file", NULL);
}

/* ---- hostile inputs: image folders ------------------------------------------------ */

static void be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

static uint32_t crc32_update(uint32_t c, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
    }
    return c;
}

static void png_chunk(FILE *f, const char *type, const uint8_t *data, size_t n)
{
    uint8_t hdr[8], crc[4];
    be32(hdr, (uint32_t)n);
    memcpy(hdr + 4, type, 4);
    uint32_t c = crc32_update(crc32_update(0xffffffffu, hdr + 4, 4), data, n) ^ 0xffffffffu;
    be32(crc, c);
    if (fwrite(hdr, 1, 8, f) != 8 || (n && fwrite(data, 1, n, f) != n) || fwrite(crc, 1, 4, f) != 4)
        fail_msg("png write failed");
}

/* A PNG of any bit depth and colour type (stb_image_write writes 8-bit RGB(A)/gray only):
 * `rows` holds h packed rows of `rowbytes` bytes (16-bit samples big-endian), stored in
 * uncompressed deflate blocks; plte/trns optional (n bytes each). */
static void write_png_raw(const char *path, int w, int h, int depth, int ctype, const uint8_t *plte, size_t nplte,
                          const uint8_t *trns, size_t ntrns, const uint8_t *rows, size_t rowbytes)
{
    size_t raw_n = (size_t)h * (rowbytes + 1);
    uint8_t *raw = malloc(raw_n);
    for (int y = 0; y < h; y++) {
        raw[(size_t)y * (rowbytes + 1)] = 0; /* filter: none */
        memcpy(raw + (size_t)y * (rowbytes + 1) + 1, rows + (size_t)y * rowbytes, rowbytes);
    }
    size_t nblocks = (raw_n + 65534) / 65535;
    uint8_t *z = malloc(2 + nblocks * 5 + raw_n + 4);
    size_t k = 0;
    z[k++] = 0x78, z[k++] = 0x01;
    for (size_t b = 0, off = 0; b < nblocks; b++) {
        size_t len = raw_n - off < 65535 ? raw_n - off : 65535;
        z[k++] = b + 1 == nblocks; /* BFINAL, BTYPE 00 (stored) */
        z[k++] = (uint8_t)len, z[k++] = (uint8_t)(len >> 8);
        z[k++] = (uint8_t)~len, z[k++] = (uint8_t)(~len >> 8);
        memcpy(z + k, raw + off, len);
        k += len, off += len;
    }
    uint32_t a1 = 1, a2 = 0;
    for (size_t i = 0; i < raw_n; i++) a1 = (a1 + raw[i]) % 65521, a2 = (a2 + a1) % 65521;
    be32(z + k, a2 << 16 | a1);
    k += 4;
    uint8_t ihdr[13];
    be32(ihdr, (uint32_t)w);
    be32(ihdr + 4, (uint32_t)h);
    ihdr[8] = (uint8_t)depth, ihdr[9] = (uint8_t)ctype, ihdr[10] = ihdr[11] = ihdr[12] = 0;
    FILE *f = fopen(path, "wb");
    if (!f) fail_msg("cannot create %s", path);
    if (fwrite("\x89PNG\r\n\x1a\n", 1, 8, f) != 8) fail_msg("png write failed");
    png_chunk(f, "IHDR", ihdr, sizeof ihdr);
    if (plte) png_chunk(f, "PLTE", plte, nplte);
    if (trns) png_chunk(f, "tRNS", trns, ntrns);
    png_chunk(f, "IDAT", z, k);
    png_chunk(f, "IEND", NULL, 0);
    if (fclose(f) != 0) fail_msg("close %s failed", path);
    free(raw);
    free(z);
}

/* Pixels of img (3, 96, 96) whose channel c is farther than tol from want[c]. */
static size_t off_colour(const uint8_t *img, const int want[3], int tol)
{
    size_t bad = 0;
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < PLANE; i++) bad += !near(img[c * PLANE + i], want[c], tol);
    return bad;
}

/* Imports src (unlabeled) into a fresh folder in a child; expects `count` images. */
static void import_ok(const char *src, char *out, size_t outsz, size_t count)
{
    make_tmp_dir(out, outsz, "out");
    import_args a = {src, out, "unlabeled", 0, 0};
    char want[64];
    pathf(want, sizeof want, "returned %zu", count);
    child_result r = run_child(do_import, &a);
    check_child(&r, 0, want, NULL);
}

/* PNG colour types and depths stb_image converts to 8-bit RGB: grayscale + alpha,
 * palette (8-bit with tRNS, and 1-bit), 16-bit RGB, gray and RGBA. 16-bit samples must be
 * scaled to 8 bits (65535 -> 255, 32768 -> 128, 0x00ff -> 0), not truncated to the low
 * byte. File names with spaces and non-ASCII characters. */
static void test_import_png_variants(void **state)
{
    char src[4096], out[4096], path[4300];
    make_tmp_dir(src, sizeof src, "pngs");
    const uint8_t ga[2] = {77, 10}; /* gray 77, alpha 10: the alpha is dropped */
    uint8_t *p = solid(S, S, 2, ga);
    png(src, "a gray alpha.png", S, S, 2, p);
    free(p);

    /* palette, 8-bit: index 0 red (left half), 1 green (right half), 2 (10,20,30) on row 0 */
    const uint8_t plte[9] = {255, 0, 0, 0, 255, 0, 10, 20, 30}, trns[3] = {255, 128, 0};
    uint8_t *rows = malloc((size_t)S * S * 8);
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++) rows[y * S + x] = y == 0 ? 2 : x < S / 2 ? 0 : 1;
    pathf(path, sizeof path, "%s/b palette \xc3\xb1" "and\xc3\xba.png", src); /* b palette ñandú.png */
    write_png_raw(path, S, S, 8, 3, plte, 9, trns, 3, rows, S);

    /* palette, 1-bit, 16x16, every pixel index 1 = (200, 100, 50) */
    const uint8_t plte1[6] = {0, 0, 0, 200, 100, 50};
    memset(rows, 0xff, 16 * 2);
    pathf(path, sizeof path, "%s/c_pal1.png", src);
    write_png_raw(path, 16, 16, 1, 3, plte1, 6, NULL, 0, rows, 2);

    /* 16-bit RGB (65535, 32768, 0); row 3, column 5 is (0x00ff, 0x00ff, 0x00ff) */
    for (int i = 0; i < S * S; i++) {
        uint8_t *q = rows + (size_t)i * 6;
        int odd = i == 3 * S + 5;
        q[0] = odd ? 0x00 : 0xff, q[1] = 0xff;
        q[2] = odd ? 0x00 : 0x80, q[3] = odd ? 0xff : 0x00;
        q[4] = 0x00, q[5] = odd ? 0xff : 0x00;
    }
    pathf(path, sizeof path, "%s/d_rgb16.png", src);
    write_png_raw(path, S, S, 16, 2, NULL, 0, NULL, 0, rows, (size_t)S * 6);

    /* 16-bit gray 32768; row 10, column 20 is 65535 */
    for (int i = 0; i < S * S; i++) rows[2 * i] = i == 10 * S + 20 ? 0xff : 0x80, rows[2 * i + 1] = i == 10 * S + 20 ? 0xff : 0x00;
    pathf(path, sizeof path, "%s/e_gray16.png", src);
    write_png_raw(path, S, S, 16, 0, NULL, 0, NULL, 0, rows, (size_t)S * 2);

    /* 16-bit RGBA 8x8 (65535, 0, 32768, alpha 0): resized, alpha dropped */
    for (int i = 0; i < 64; i++) {
        const uint8_t px[8] = {0xff, 0xff, 0, 0, 0x80, 0x00, 0, 0};
        memcpy(rows + i * 8, px, 8);
    }
    pathf(path, sizeof path, "%s/f_rgba16.png", src);
    write_png_raw(path, 8, 8, 16, 6, NULL, 0, NULL, 0, rows, 64);
    free(rows);

    import_ok(src, out, sizeof out, 6);
    stl10_file f;
    stl10_open(&f, out, "unlabeled", 0, 10);
    uint8_t img[STL10_RECORD];
    const int gray77[3] = {77, 77, 77}, c1[3] = {200, 100, 50}, c16[3] = {255, 128, 0}, rgba16[3] = {255, 0, 128};

    stl10_read(&f, 0, img);
    assert_int_equal(off_colour(img, gray77, 0), 0);

    stl10_read(&f, 1, img); /* palette: exact colours where they were put */
    assert_int_equal(img[img_at(0, 50, 10)], 255);
    assert_int_equal(img[img_at(1, 50, 10)], 0);
    assert_int_equal(img[img_at(0, 50, 80)], 0);
    assert_int_equal(img[img_at(1, 50, 80)], 255);
    assert_int_equal(img[img_at(0, 0, 40)], 10);
    assert_int_equal(img[img_at(1, 0, 40)], 20);
    assert_int_equal(img[img_at(2, 0, 40)], 30);

    stl10_read(&f, 2, img);
    assert_int_equal(off_colour(img, c1, 0), 0);

    stl10_read(&f, 3, img); /* 16-bit RGB */
    print_message("  16-bit RGB (65535, 32768, 0) -> (%d, %d, %d); (0x00ff, 0x00ff, 0x00ff) -> (%d, %d, %d)\n",
                  img[img_at(0, 40, 40)], img[img_at(1, 40, 40)], img[img_at(2, 40, 40)], img[img_at(0, 3, 5)],
                  img[img_at(1, 3, 5)], img[img_at(2, 3, 5)]);
    assert_int_equal(img[img_at(0, 3, 5)], 0); /* not the low byte 0xff */
    assert_int_equal(img[img_at(1, 3, 5)], 0);
    img[img_at(0, 3, 5)] = 255, img[img_at(1, 3, 5)] = 128; /* the rest: (255, ~128, 0) */
    assert_int_equal(off_colour(img, c16, 1), 0);

    stl10_read(&f, 4, img); /* 16-bit gray */
    assert_int_equal(img[img_at(0, 10, 20)], 255);
    assert_int_equal(img[img_at(2, 10, 20)], 255);
    assert_true(near(img[img_at(1, 60, 60)], 128, 1));
    for (int c = 0; c < 3; c++) img[img_at(c, 10, 20)] = 128;
    const int g128[3] = {128, 128, 128};
    assert_int_equal(off_colour(img, g128, 1), 0);

    stl10_read(&f, 5, img); /* 16-bit RGBA, resized from 8x8 */
    assert_int_equal(off_colour(img, rgba16, 1), 0);
    stl10_close(&f);
}

/* A CMYK JPEG (Adobe APP14; tests/fixtures, written by PIL): stb_image converts it to
 * RGB, so it imports as the colour it shows. */
static void test_import_cmyk_jpeg(void **state)
{
    const char *fixture = "tests/fixtures/cmyk_30_120_200.jpg";
    size_t n = 0;
    char *bytes = slurp(fixture, &n);
    if (!bytes) {
        print_message("  %s not found (run from the repository root): skipped\n", fixture);
        skip();
    }
    char src[4096], out[4096], path[4300];
    make_tmp_dir(src, sizeof src, "cmyk");
    pathf(path, sizeof path, "%s/cmyk.jpg", src);
    write_file(path, bytes, n);
    free(bytes);
    import_ok(src, out, sizeof out, 1);
    stl10_file f;
    stl10_open(&f, out, "unlabeled", 0, 10);
    uint8_t img[STL10_RECORD];
    stl10_read(&f, 0, img);
    print_message("  CMYK JPEG of (30, 120, 200) -> (%d, %d, %d)\n", img[img_at(0, 48, 48)], img[img_at(1, 48, 48)],
                  img[img_at(2, 48, 48)]);
    const int want[3] = {30, 120, 200};
    assert_int_equal(off_colour(img, want, 6), 0);
    stl10_close(&f);
}

/* Images far smaller (1x1) and far larger (4000x4000, 16 Mpixel) than 96x96, and a
 * 6000x2 strip: all resized to 96x96, colours kept. */
static void test_import_extreme_sizes(void **state)
{
    char src[4096], out[4096], path[4300];
    make_tmp_dir(src, sizeof src, "sizes");
    const uint8_t c1[3] = {250, 5, 128}, c2[3] = {3, 200, 99}, c3[3] = {60, 70, 80};
    uint8_t *p = solid(1, 1, 3, c1);
    png(src, "a_1x1.png", 1, 1, 3, p);
    free(p);
    const int big = 4000;
    uint8_t *rows = malloc((size_t)big * big * 3);
    for (size_t i = 0; i < (size_t)big * big; i++) memcpy(rows + 3 * i, c2, 3);
    pathf(path, sizeof path, "%s/b_4000.png", src);
    double t0 = now_s();
    write_png_raw(path, big, big, 8, 2, NULL, 0, NULL, 0, rows, (size_t)big * 3);
    free(rows);
    p = solid(6000, 2, 3, c3);
    png(src, "c_strip.png", 6000, 2, 3, p);
    free(p);
    double t1 = now_s();
    import_ok(src, out, sizeof out, 3);
    print_message("  wrote a 4000x4000 PNG in %.2f s, imported it in %.2f s\n", t1 - t0, now_s() - t1);
    stl10_file f;
    stl10_open(&f, out, "unlabeled", 0, 10);
    uint8_t img[STL10_RECORD];
    const int w1[3] = {250, 5, 128}, w2[3] = {3, 200, 99}, w3[3] = {60, 70, 80};
    stl10_read(&f, 0, img);
    assert_int_equal(off_colour(img, w1, 1), 0);
    stl10_read(&f, 1, img);
    assert_int_equal(off_colour(img, w2, 1), 0);
    stl10_read(&f, 2, img);
    assert_int_equal(off_colour(img, w3, 1), 0);
    stl10_close(&f);
}

/* Files with an image extension that are not decodable images: zero bytes, text, a
 * truncated JPEG and PNG, a FIFO (must not hang), a folder named x.png (ignored). Each
 * is listed with its reason; without --skip-bad the import fails (EXIT_DATA) and writes
 * nothing; with it they are counted and the good image is imported. */
static void test_import_hostile_files(void **state)
{
    char src[4096], out[4096], path[4300], left[1024];
    make_tmp_dir(src, sizeof src, "hostile");
    const uint8_t c[3] = {1, 2, 3};
    uint8_t *p = solid(S, S, 3, c);
    png(src, "good.png", S, S, 3, p);
    free(p);
    uint8_t *g = malloc((size_t)S * S * 3);
    for (int i = 0; i < S * S * 3; i++) g[i] = (uint8_t)(i * 7 % 251);
    pathf(path, sizeof path, "%s/full.jpg", src);
    if (!stbi_write_jpg(path, S, S, 3, g, 90)) fail_msg("stbi_write_jpg failed");
    png(src, "full.png", S, S, 3, g);
    free(g);
    size_t nj = 0, np = 0;
    char *jpg = slurp(path, &nj);
    pathf(path, sizeof path, "%s/full.png", src);
    char *pngb = slurp(path, &np);
    unlink(path);
    pathf(path, sizeof path, "%s/full.jpg", src);
    unlink(path);
    pathf(path, sizeof path, "%s/trunc.jpg", src);
    write_file(path, jpg, nj / 2);
    pathf(path, sizeof path, "%s/trunc header.jpg", src);
    write_file(path, jpg, 200);
    pathf(path, sizeof path, "%s/trunc.png", src);
    write_file(path, pngb, np - 20);
    free(jpg);
    free(pngb);
    pathf(path, sizeof path, "%s/zero.png", src);
    write_file(path, "", 0);
    pathf(path, sizeof path, "%s/text.jpg", src);
    write_text_file(path, "GIF? no, plain text\n");
    pathf(path, sizeof path, "%s/fifo.png", src);
    assert_int_equal(mkfifo(path, 0644), 0);
    pathf(path, sizeof path, "%s/dir.png", src);
    assert_int_equal(mkdir(path, 0755), 0);

    make_tmp_dir(out, sizeof out, "out");
    import_args a = {src, out, "unlabeled", 0, 0};
    double t0 = now_s();
    child_result r = run_child(do_import, &a);
    check_child(&r, EXIT_DATA, "6 undecodable", "--skip-bad", "fifo.png: cannot decode: not a regular file",
                "zero.png: cannot decode: empty file", "trunc.jpg: cannot decode: corrupt or truncated JPEG",
                "trunc header.jpg: cannot decode: corrupt or truncated JPEG",
                "trunc.png: cannot decode: corrupt or truncated PNG", "text.jpg: cannot decode: not a JPEG, PNG", NULL);
    assert_null(strstr(r.out, "dir.png"));
    assert_true(now_s() - t0 < 20);
    pathf(path, sizeof path, "%s/unlabeled_X.bin", out);
    assert_false(file_exists(path));
    tmp_files(out, left, sizeof left);
    assert_string_equal(left, "");

    a.skip_bad = 1;
    expect_exit(do_import, &a, 0, "6 skipped", "returned 1", "fifo.png", NULL);
}

/* A class folder whose name holds a newline would shift every later line of
 * class_names.txt: refused, naming it; nothing written. */
static void test_import_control_char_class(void **state)
{
    char src[4096], out[4096], path[4300], left[1024];
    make_bad_tree(src, sizeof src); /* cls/{ok.png, x.jpg} */
    pathf(path, sizeof path, "%s/two\nlines", src);
    assert_int_equal(mkdir(path, 0755), 0);
    const uint8_t c[3] = {5, 5, 5};
    uint8_t *p = solid(S, S, 3, c);
    png(path, "a.png", S, S, 3, p);
    free(p);
    make_tmp_dir(out, sizeof out, "out");
    import_args a = {src, out, "train", 1, 1};
    expect_exit(do_import, &a, EXIT_DATA, "two\nlines", "control character", NULL);
    pathf(path, sizeof path, "%s/class_names.txt", out);
    assert_false(file_exists(path));
    tmp_files(out, left, sizeof left);
    assert_string_equal(left, "");
}

/* Each image is decoded in a child process (data.c, decode_isolated): a decoder that
 * crashes or hangs on a malformed file costs only that file, reported by name; the
 * crash and the hang are injected (SIMCLR_FAULT=decode-crash@NAME / decode-hang@NAME). */
static void do_import_fault(void *p)
{
    import_args *a = p;
    setenv("SIMCLR_FAULT", a->split, 1); /* split doubles as the fault here */
    size_t n = data_import(a->src, a->out, "unlabeled", a->labeled, a->skip_bad);
    printf("\nreturned %zu\n", n);
}

static void test_import_decoder_crash_or_hang(void **state)
{
    char src[4096], out[4096], path[4300];
    make_tmp_dir(src, sizeof src, "crashy");
    make_tmp_dir(out, sizeof out, "out");
    const uint8_t c[3] = {7, 8, 9};
    uint8_t *p = solid(S, S, 3, c);
    png(src, "a.png", S, S, 3, p);
    png(src, "b.png", S, S, 3, p);
    free(p);
    import_args a = {src, out, "decode-crash@a.png", 0, 0};
    expect_exit(do_import_fault, &a, EXIT_DATA, "a.png: cannot decode: the image decoder crashed (signal 11", "1 undecodable", NULL);
    a.skip_bad = 1;
    expect_exit(do_import_fault, &a, 0, "returned 1", "1 skipped", NULL);
    a.split = "decode-hang@b.png";
    double t0 = now_s();
    expect_exit(do_import_fault, &a, 0, "b.png: cannot decode: decoding took over 1 s", "returned 1", NULL);
    assert_true(now_s() - t0 < 10);
    /* the JPEG that makes stb_image 2.27 write past its Huffman table (found by
     * tests/fuzz): refused by name, whatever the decoder did inside its process */
    size_t n = 0;
    char *bytes = slurp("tests/fixtures/stb227-dht-overflow.jpg", &n);
    if (!bytes) {
        print_message("  tests/fixtures/stb227-dht-overflow.jpg not found (run from the repository root)\n");
        return;
    }
    pathf(path, sizeof path, "%s/dht.jpg", src);
    write_file(path, bytes, n);
    free(bytes);
    import_args b = {src, out, "unlabeled", 0, 0};
    expect_exit(do_import, &b, EXIT_DATA, "dht.jpg: cannot decode: corrupt or truncated JPEG", NULL);
}

/* Binary PNM (P5 gray, P6 RGB). stb_image 2.27 reads only maxval 255 correctly: 16-bit
 * samples in the machine's byte order (a 32768 gray read as 0, and as RGB with its 8-bit
 * converter: a heap over-read; found by tests/fuzz) and other maxvals unscaled (15 reads
 * as near-black). So maxval 255 imports, any other maxval is refused by name. */
static void test_import_pnm_maxval(void **state)
{
    char src[4096], out[4096], path[4300];
    make_tmp_dir(src, sizeof src, "pnm");
    uint8_t *f = malloc(64 + (size_t)S * S * 6);
    const char hdr5[] = "P5\n# a comment\n96 96\n255\n", hdr6[] = "P6 96 96 255\n";
    size_t n5 = sizeof hdr5 - 1, n6 = sizeof hdr6 - 1;
    memcpy(f, hdr5, n5); /* gray 128; row 7, column 9 is 255 */
    for (int i = 0; i < S * S; i++) f[n5 + i] = i == 7 * S + 9 ? 255 : 128;
    pathf(path, sizeof path, "%s/a.pgm", src);
    write_file(path, f, n5 + (size_t)S * S);
    memcpy(f, hdr6, n6); /* RGB (255, 128, 0) */
    for (int i = 0; i < S * S; i++) f[n6 + 3 * i] = 255, f[n6 + 3 * i + 1] = 128, f[n6 + 3 * i + 2] = 0;
    pathf(path, sizeof path, "%s/b.ppm", src);
    write_file(path, f, n6 + (size_t)S * S * 3);
    import_ok(src, out, sizeof out, 2);
    stl10_file sf;
    stl10_open(&sf, out, "unlabeled", 0, 10);
    uint8_t img[STL10_RECORD];
    stl10_read(&sf, 0, img);
    for (int c = 0; c < 3; c++) assert_int_equal(img[img_at(c, 7, 9)], 255);
    for (int c = 0; c < 3; c++) img[img_at(c, 7, 9)] = 128;
    const int g128[3] = {128, 128, 128}, rgb[3] = {255, 128, 0};
    assert_int_equal(off_colour(img, g128, 0), 0);
    stl10_read(&sf, 1, img);
    assert_int_equal(off_colour(img, rgb, 0), 0);
    stl10_close(&sf);

    char src2[4096];
    make_tmp_dir(src2, sizeof src2, "pnm16");
    const char h16[] = "P5\n96 96\n65535\n", h15[] = "P6\n96 96\n15\n";
    memcpy(f, h16, sizeof h16 - 1);
    for (int i = 0; i < S * S; i++) f[sizeof h16 - 1 + 2 * i] = 0x80, f[sizeof h16 + 2 * i] = 0;
    pathf(path, sizeof path, "%s/g16.pgm", src2);
    write_file(path, f, sizeof h16 - 1 + (size_t)S * S * 2);
    memcpy(f, h15, sizeof h15 - 1);
    memset(f + sizeof h15 - 1, 15, (size_t)S * S * 3);
    pathf(path, sizeof path, "%s/m15.ppm", src2);
    write_file(path, f, sizeof h15 - 1 + (size_t)S * S * 3);
    free(f);
    /* found by fuzzing: 14 bytes that stb_image took for a 5555558x8 picture of zeros
     * (3.6 s to decode and resize); its maxval is not a number */
    pathf(path, sizeof path, "%s/tiny.pgm", src2);
    write_file(path, "P55555558 8\x11\x11\n", 14);
    make_tmp_dir(out, sizeof out, "out");
    import_args a = {src2, out, "unlabeled", 0, 0};
    expect_exit(do_import, &a, EXIT_DATA, "g16.pgm: cannot decode: PNM with maxval 65535",
                "m15.ppm: cannot decode: PNM with maxval 15", "convert the file to PNG",
                "tiny.pgm: cannot decode: corrupt PNM header", "3 undecodable", NULL);
}

/* Truncated files of the formats whose stb_image 2.27 decoder goes on with zeros past the
 * end (BMP, TGA plain and RLE, GIF, PNM): refused as truncated (data.c reads through
 * callbacks that notice a read past the end; PNM by its header's size), while the whole
 * files import. */
static void test_import_truncated_formats(void **state)
{
    char whole[4096], cut[4096], out[4096], path[4300];
    make_tmp_dir(whole, sizeof whole, "whole");
    make_tmp_dir(cut, sizeof cut, "cut");
    uint8_t *g = malloc((size_t)64 * 64 * 3);
    for (int i = 0; i < 64 * 64 * 3; i++) g[i] = (uint8_t)(i * 13 % 251);
    pathf(path, sizeof path, "%s/a.bmp", whole);
    assert_true(stbi_write_bmp(path, 64, 64, 3, g));
    stbi_write_tga_with_rle = 0;
    pathf(path, sizeof path, "%s/b.tga", whole);
    assert_true(stbi_write_tga(path, 64, 64, 3, g));
    stbi_write_tga_with_rle = 1;
    pathf(path, sizeof path, "%s/c_rle.tga", whole);
    assert_true(stbi_write_tga(path, 64, 64, 3, g));
    char hdr[] = "P6\n64 64\n255\n";
    uint8_t *ppm = malloc(sizeof hdr + (size_t)64 * 64 * 3);
    memcpy(ppm, hdr, sizeof hdr - 1);
    memcpy(ppm + sizeof hdr - 1, g, (size_t)64 * 64 * 3);
    pathf(path, sizeof path, "%s/d.ppm", whole);
    write_file(path, ppm, sizeof hdr - 1 + (size_t)64 * 64 * 3);
    free(ppm);
    free(g);
    size_t n = 0;
    char *gif = slurp("tests/fixtures/pal8x8.gif", &n);
    if (gif) {
        pathf(path, sizeof path, "%s/e.gif", whole);
        write_file(path, gif, n);
        free(gif);
    } else
        print_message("  tests/fixtures/pal8x8.gif not found (run from the repository root): GIF not tested\n");
    const char *names[] = {"a.bmp", "b.tga", "c_rle.tga", "d.ppm", "e.gif"};
    size_t have = gif ? 5 : 4;
    import_ok(whole, out, sizeof out, have);
    for (size_t i = 0; i < have; i++) { /* the first two thirds of each */
        char from[4300], to[4300];
        pathf(from, sizeof from, "%s/%s", whole, names[i]);
        pathf(to, sizeof to, "%s/%s", cut, names[i]);
        size_t len = 0;
        char *bytes = slurp(from, &len);
        write_file(to, bytes, len * 2 / 3);
        free(bytes);
    }
    make_tmp_dir(out, sizeof out, "out");
    import_args a = {cut, out, "unlabeled", 0, 0};
    child_result r = run_child(do_import, &a);
    check_child(&r, EXIT_DATA, "a.bmp: cannot decode: truncated BMP", "b.tga: cannot decode: truncated image",
                "c_rle.tga: cannot decode: truncated image", "d.ppm: cannot decode: truncated PNM", NULL);
    if (gif) check_child(&r, EXIT_DATA, "e.gif: cannot decode: ", "truncated GIF", "5 undecodable", NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stl10_orientation_and_labels),
        cmocka_unit_test(test_stl10_large_offset),
        cmocka_unit_test(test_stl10_bad_size),
        cmocka_unit_test(test_stl10_label_count_mismatch),
        cmocka_unit_test(test_stl10_label_out_of_range),
        cmocka_unit_test(test_stl10_empty_and_missing),
        cmocka_unit_test(test_stl10_short_read),
        cmocka_unit_test(test_dataset),
        cmocka_unit_test(test_stratified_holdout),
        cmocka_unit_test(test_shard_range_and_steps),
        cmocka_unit_test(test_import_labeled),
        cmocka_unit_test(test_import_unlabeled),
        cmocka_unit_test(test_import_bad_file),
        cmocka_unit_test(test_import_huge_header),
        cmocka_unit_test(test_import_failure_leaves_no_tmp),
        cmocka_unit_test(test_import_missing_source),
        cmocka_unit_test(test_stl10_dir_is_file),
        cmocka_unit_test(test_stl10_fifo),
        cmocka_unit_test(test_stl10_permission_denied),
        cmocka_unit_test(test_class_names),
        cmocka_unit_test(test_import_png_variants),
        cmocka_unit_test(test_import_cmyk_jpeg),
        cmocka_unit_test(test_import_extreme_sizes),
        cmocka_unit_test(test_import_hostile_files),
        cmocka_unit_test(test_import_control_char_class),
        cmocka_unit_test(test_import_decoder_crash_or_hang),
        cmocka_unit_test(test_import_pnm_maxval),
        cmocka_unit_test(test_import_truncated_formats),
    };
    set_abort_hook(fail_on_fatal);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
