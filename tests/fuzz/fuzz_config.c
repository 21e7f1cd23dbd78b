/* fuzz_config.c: config_load on the input as a config file (phase chosen by the input's
 * length: pretrain, linear, finetune, baseline, eval), then config_to_text. Anything but
 * a load or a clean refusal (fatal EXIT_CONFIG) is a finding. A config that loads must
 * satisfy the schema's ranges (checked for a few keys) and write back as text. */
#include "fuzz_common.h"

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) fuzz_init("fuzz-config"), ready = 1;
    if (size > (1u << 16)) return 0;
    char path[512];
    snprintf(path, sizeof path, "%s/in.cfg", g_fuzz_dir);
    fuzz_write(path, data, size);
    static const char *phases[] = {"pretrain", "linear", "finetune", "baseline", "eval"};
    static config c;
    FUZZ_TRY
    {
        config_load(&c, path, phases[size % 5], NULL, 0);
        if (c.train.batch < 1 || c.train.epochs < 1 || !(c.pretrain.temperature > 0) || !(c.train.lr > 0) ||
            c.data.num_classes < 2 || !c.run_dir[0] || !c.data.dir[0])
            abort(); /* a value outside its schema range got through */
        char *text = config_to_text(&c);
        if (!text || !strstr(text, "train")) abort();
        free(text);
    }
    return 0;
}
