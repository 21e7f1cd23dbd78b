/* fuzz_import.c: the image import path as `simclr import` runs it. The input is written as
 * the one file of a temporary image folder (named in.png or in.jpg by the parity of its
 * size: stb_image goes by the content, the extension only lets import pick the file up)
 * and imported with data_import (unlabeled, no --skip-bad): it either writes one 96x96
 * record or refuses the file (fatal EXIT_DATA, caught here). data_import decodes in a
 * child process (data.c, decode_isolated), so a crash of stb_image on the input is a
 * refusal, not a finding; what is fuzzed is that the import itself never crashes, hangs
 * or writes a wrong-sized record. (Coverage inside the child does not reach libFuzzer;
 * fuzz_decode.c, make fuzz-stb, fuzzes the decoder in-process.) stb_image is compiled in
 * (stb_impl.c). */
#include "fuzz_common.h"

#include "data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    static char src[512], out[512];
    if (!ready) {
        fuzz_init("fuzz-import");
        snprintf(src, sizeof src, "%s/src", g_fuzz_dir);
        snprintf(out, sizeof out, "%s/out", g_fuzz_dir);
        mkdir(src, 0755);
        ready = 1;
    }
    char path[600];
    snprintf(path, sizeof path, "%s/in.png", src);
    unlink(path);
    snprintf(path, sizeof path, "%s/in.jpg", src);
    unlink(path);
    snprintf(path, sizeof path, "%s/in.%s", src, size % 2 ? "jpg" : "png");
    fuzz_write(path, data, size);
    FUZZ_TRY
    {
        size_t n = data_import(src, out, "f", 0, 0);
        if (n != 1) abort(); /* one file: one image, or a refusal */
        struct stat st;
        snprintf(path, sizeof path, "%s/f_X.bin", out);
        if (stat(path, &st) != 0 || st.st_size != STL10_RECORD) abort();
    }
    return 0;
}
