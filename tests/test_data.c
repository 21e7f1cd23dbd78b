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
    pathf(path, sizeof path, "%s/train_X.bin.tmp", out);
    assert_false(file_exists(path));

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

/* Lists the files of dir that end in .tmp into out (empty when none). */
static void tmp_files(const char *dir, char *out, size_t n)
{
    out[0] = 0;
    DIR *d = opendir(dir);
    if (!d) return;
    for (struct dirent *e; (e = readdir(d));) {
        size_t l = strlen(e->d_name);
        if (l > 4 && !strcmp(e->d_name + l - 4, ".tmp"))
            snprintf(out + strlen(out), n - strlen(out), "%s ", e->d_name);
    }
    closedir(d);
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
    };
    set_abort_hook(fail_on_fatal);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
