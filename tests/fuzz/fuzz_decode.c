/* fuzz_decode.c (make fuzz-stb; not part of make fuzz): data.c's decode_record (the
 * stb_image decode, the 67-Mpixel check and the resize) IN this process, with stb_image
 * compiled in and instrumented (stb_impl.c), so libFuzzer is guided by coverage inside the
 * decoders. This finds bugs of stb_image itself: Debian 12's stb_image 2.27 has known ones
 * (tests/fixtures/stb227-dht-overflow.jpg, found here within seconds), which is why the
 * import decodes every file in a child process (data.c, decode_isolated) and why
 * fuzz_import, which goes through data_import, must never fail while this may. */
#include "fuzz_common.h"

#undef _DEFAULT_SOURCE /* data.c defines it (features.h did, for _GNU_SOURCE) */
#include "../../src/data.c" /* for the static decode_record */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) fuzz_init("fuzz-decode"), ready = 1;
    char path[512];
    snprintf(path, sizeof path, "%s/in.img", g_fuzz_dir);
    fuzz_write(path, data, size);
    static uint8_t rec[STL10_RECORD];
    const char *why = NULL;
    decode_record(path, rec, &why);
    return 0;
}
