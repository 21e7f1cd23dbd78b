/* gen_ckpt_seed.c: writes the checkpoint seeds of tests/fuzz/corpus/fuzz_ckpt with the
 * project's own ckpt_save, for the tiny model fuzz_ckpt.c loads:
 *   make build/gen_ckpt_seed && build/gen_ckpt_seed tests/fuzz/corpus/fuzz_ckpt
 * (adam.h5: parameters and Adam moments, 25 KB: HDF5 spends about 1 KB per object. fuzz_ckpt
 * asks for the moments when the input holds the bytes "adam_m".) */
#include <stdio.h>
#include <stdlib.h>

#include "checkpoint.h"
#include "model.h"

int main(int argc, char **argv)
{
    if (argc != 2) return fprintf(stderr, "usage: gen_ckpt_seed OUT_DIR\n"), 2;
    const model_cfg tiny = {.image_size = 17, .conv_layers = 2, .width = 4, .kernel = 3,
                            .embed_dim = 5, .proj_dim = 6, .num_classes = 3};
    model m;
    model_init(&m, &tiny, 2, 0);
    for (size_t i = 0; i < m.nparams; i++) {
        m.params[i] = (float)((int)(i % 17) - 8) / 16.0f;
        m.adam_m[i] = 0.01f * (float)(i % 5);
        m.adam_v[i] = 0.001f * (float)(i % 3);
    }
    ckpt_meta meta = {.phase = "finetune", .epoch = 2, .step = 20, .world_size = 1, .seed = 42,
                      .config_hash = 1, .config_text = "run_dir = \"r\";\n"};
    char path[4096];
    snprintf(path, sizeof path, "%s/adam.h5", argv[1]);
    ckpt_save(path, &m, &meta, 1);
    model_free(&m);
    return 0;
}
