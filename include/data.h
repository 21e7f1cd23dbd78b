/* data.h: STL-10 binary files, the evaluation hold-out, label budgets, sharding, and
 * `import` of image folders (stb_image). No MPI: every function is a plain-process one.
 *
 * STL-10 binary layout (Coates, Ng & Lee 2011; the official stl10_binary release):
 * NAME_X.bin holds images back to back, 27,648 bytes each: the red, green then blue
 * 96x96 plane, each stored column-major. NAME_y.bin holds one uint8 label per image in
 * 1..num_classes. Images are read one record at a time with pread and 64-bit offsets, so a
 * rank only ever touches the images of its own shard. */
#ifndef SIMCLR_DATA_H
#define SIMCLR_DATA_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#define STL10_SIZE 96
#define STL10_RECORD (3 * STL10_SIZE * STL10_SIZE)
#define DATA_MAX_SOURCES 8
#define DATA_MAX_CLASSES 255

/* One opened NAME_X.bin (+ NAME_y.bin when labeled). */
typedef struct {
    char path_x[PATH_MAX];
    int fd;
    size_t count;   /* images in the file */
    int32_t *label; /* (count) labels 0..num_classes-1, or NULL when unlabeled */
} stl10_file;

/* Opens DIR/SPLIT_X.bin and, when need_labels, DIR/SPLIT_y.bin (read whole, checked to be
 * in 1..num_classes, stored 0-based). fatal(EXIT_DATA) naming the file when it is missing,
 * unreadable, empty, not a multiple of 27,648 bytes, when the label count differs from the
 * image count, or when a label is out of range (naming the record). Pair with stl10_close. */
void stl10_open(stl10_file *f, const char *dir, const char *split, int need_labels,
                int num_classes);
void stl10_close(stl10_file *f);

/* Reads record `index` (0-based) into img (3, 96, 96) uint8, row-major and upright (the
 * column-major planes are transposed). fatal(EXIT_DATA) naming file and record on a short
 * read. */
void stl10_read(const stl10_file *f, size_t index, uint8_t *img);

/* Class names of the STL-10-layout directory dir: DIR/class_names.txt, one name per line,
 * line k naming label k (1-based), as `import --labels-from-folders` writes it and the
 * official stl10_binary release ships it. Returns num_classes NUL-terminated names in one
 * malloc'd block (the caller frees the returned pointer with free()). A missing file is
 * not an error: a warning, and the names are "class 1" .. "class N". fatal(EXIT_DATA)
 * naming the file (and line) when it is not a regular readable file, is over 1 MiB,
 * holds a NUL byte, has an empty line or a name over 255 bytes, or when the number of
 * names differs from num_classes (trailing empty lines and CR before LF are ignored). */
char **stl10_class_names(const char *dir, int num_classes);

/* A dataset: a list of (file, record) pairs over up to DATA_MAX_SOURCES files. The image
 * index used for augmentation keys is the position in this list. */
typedef struct {
    size_t n;
    const stl10_file **src; /* (n) borrowed */
    int64_t *rec;           /* (n) record in its file */
    int32_t *label;         /* (n) label or -1 */
} dataset;

/* Empty dataset with room for `cap` entries; dataset_add appends record `rec` of f. */
void dataset_init(dataset *d, size_t cap);
void dataset_add(dataset *d, const stl10_file *f, size_t rec);
void dataset_free(dataset *d);

/* Reads dataset entry i into img (3, 96, 96) uint8 upright. */
void dataset_read(const dataset *d, size_t i, uint8_t *img);

/* Seeded stratified hold-out: marks held[i] = 1 for per_class images of each class
 * (labels (n) in 0..num_classes-1), chosen by a permutation keyed by `key`; the rest 0.
 * Returns 0, or the first class with fewer than per_class + 1 images plus 1 (so the
 * caller can name it); held is overwritten. */
int stratified_holdout(const int32_t *labels, size_t n, int num_classes, size_t per_class,
                       uint64_t key, uint8_t *held);

/* Shard of a global batch of `global` items for `rank` of `world`: items
 * [global*rank/world, global*(rank+1)/world). Every item belongs to exactly one rank and
 * counts differ by at most one. */
void shard_range(size_t global, int world, int rank, size_t *begin, size_t *count);

/* Optimizer steps per epoch for n items and a global batch: floor(n / global_batch) (the
 * last partial global batch is dropped, so every rank runs the same number of steps). */
size_t steps_per_epoch(size_t n, size_t global_batch);

/* `simclr import`: decodes every image file (JPEG, PNG, BMP, TGA, GIF, PNM) under src_dir
 * (one subfolder per class when labels_from_folders; class names are the sorted folder
 * names) with stb_image, forces 3 channels, resizes to 96x96 (stb_image_resize) and
 * writes out_dir/SPLIT_X.bin (+ SPLIT_y.bin, class_names.txt when labeled) atomically
 * (temporary file, fsync, rename). Files are taken in sorted name order. An undecodable
 * file is reported by name; skip_bad != 0 skips and counts them, else the import fails
 * with EXIT_DATA after listing them. Undecodable: not a regular file (a FIFO is never
 * opened for blocking reads), empty, not an image, corrupt or truncated (also BMP, TGA,
 * GIF and PNM, whose stb_image decoders do not notice), a PNM with maxval other than 255
 * (stb_image 2.27 misreads it), over 67 Mpixel by its header (refused before decoding),
 * or the decoder crashed or ran over 60 s:
 * each file is decoded in a forked child process (stb_image is not safe on hostile
 * files), so call this only in a process without MPI. Class folder names with control
 * characters (a newline would break class_names.txt) are refused. Returns the number of
 * images written. */
size_t data_import(const char *src_dir, const char *out_dir, const char *split,
                   int labels_from_folders, int skip_bad);

#endif
