/* fuzz_stl10.c: stl10_open + stl10_read on files derived from the input.
 *
 * Input: byte 0 holds flags, the rest is the payload.
 *   bit 0: pad X.bin with zeros to a whole number of 27,648-byte records (else the payload
 *          is X.bin as it is, almost never a valid size), plus (bits 3-4) 0..3 records
 *   bit 1: open with labels (y.bin); bit 2: y.bin gets one label too many
 *   y.bin: one byte per record, taken from the payload (so labels 0 and 11..255 occur)
 * Every record of a file that opens is read (at most 8). */
#include "fuzz_common.h"

#include "data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) fuzz_init("fuzz-stl10"), ready = 1;
    if (size < 1 || size > (1u << 20)) return 0;
    const uint8_t flags = data[0];
    const uint8_t *payload = data + 1;
    size_t n = size - 1, nx = n;
    if (flags & 1) nx = (n + STL10_RECORD - 1) / STL10_RECORD * STL10_RECORD + (size_t)((flags >> 3) & 3) * STL10_RECORD;
    uint8_t *x = calloc(nx ? nx : 1, 1);
    memcpy(x, payload, n < nx ? n : nx);
    char path[512];
    snprintf(path, sizeof path, "%s/f_X.bin", g_fuzz_dir);
    fuzz_write(path, x, nx);
    free(x);
    size_t records = nx / STL10_RECORD, ny = records + ((flags & 4) ? 1 : 0);
    uint8_t *y = calloc(ny ? ny : 1, 1);
    for (size_t i = 0; i < ny; i++) y[i] = i < n ? payload[i] : 1;
    snprintf(path, sizeof path, "%s/f_y.bin", g_fuzz_dir);
    fuzz_write(path, y, ny);
    free(y);

    static stl10_file f; /* static: still valid after a jump */
    static uint8_t img[STL10_RECORD];
    FUZZ_TRY
    {
        stl10_open(&f, g_fuzz_dir, "f", (flags >> 1) & 1, 10);
        unsigned sum = 0;
        for (size_t i = 0; i < f.count && i < 8; i++) {
            stl10_read(&f, i, img);
            sum += img[i];
        }
        if (f.label)
            for (size_t i = 0; i < f.count; i++)
                if (f.label[i] < 0 || f.label[i] >= 10) abort(); /* stl10_open's contract */
        (void)sum;
        stl10_close(&f);
    }
    return 0;
}
