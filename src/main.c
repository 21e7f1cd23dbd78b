/* main.c: the command line of build/simclr. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "config.h"
#include "data.h"
#include "dist.h"
#include "gemm.h"
#include "phases.h"

#define SIMCLR_VERSION "0.1.0"

static const char *USAGE =
    "simclr " SIMCLR_VERSION ": SimCLR contrastive pretraining and semi-supervised classification on MPI\n"
    "\n"
    "usage:\n"
    "  mpirun -np N build/simclr PHASE CONFIG.cfg [--set key=value ...]\n"
    "  build/simclr PHASE CONFIG.cfg [--set key=value ...] --check   (validate the config only: exit 0, 3, or 2 for a malformed --set)\n"
    "  build/simclr import SRC_DIR OUT_DIR --split NAME [--labels-from-folders] [--skip-bad]\n"
    "  build/simclr --help | --version\n"
    "\n"
    "phases (each its own MPI job):\n"
    "  pretrain   SimCLR: two augmented views, projection head, NT-Xent over the all-gathered global batch\n"
    "  linear     linear probe: classifier on the frozen encoder of `checkpoint`\n"
    "  finetune   encoder of `checkpoint` + classifier, all trained\n"
    "  baseline   the same network from scratch, labeled images only\n"
    "  distill    self-training (SimCLR v2): classifier `checkpoint` soft-labels the unlabeled images, a\n"
    "             student (encoder of distill.init + new classifier) learns them\n"
    "  eval       top-1, per-class accuracy and confusion matrix of classifier `checkpoint` -> RUN_DIR/eval.json\n"
    "\n"
    "import: converts a folder of images (JPEG/PNG/...; one subfolder per class with --labels-from-folders)\n"
    "  to the STL-10 binary layout OUT_DIR/NAME_X.bin (+ NAME_y.bin, class_names.txt); images are resized\n"
    "  to 96x96 RGB. Undecodable files are listed and fail the import unless --skip-bad.\n"
    "\n"
    "common keys (config file or --set): run_dir, data.dir, data.split, seed, checkpoint, resume (auto|none|PATH),\n"
    "  train.epochs, train.batch (global), train.lr, run.threads; all keys: conf/base.cfg;\n"
    "  --set applies in order: a key given twice takes the last value\n"
    "\n"
    "exit codes: 0 ok, 2 usage, 3 config, 4 data, 5 I/O, 6 checkpoint, 7 diverged (non-finite loss),\n"
    "  70 internal error, 75 stopped by SIGTERM/SIGUSR1 after a checkpoint (resume=auto continues)\n";

static int usage_error(const char *msg, const char *arg)
{
    fprintf(stderr, "simclr: error: %s%s%s\n(see build/simclr --help)\n", msg, arg ? ": " : "", arg ? arg : "");
    return EXIT_USAGE;
}

static int cmd_import(int argc, char **argv)
{
    const char *src = NULL, *out = NULL, *split = NULL;
    int labeled = 0, skip = 0;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--split") && i + 1 < argc) split = argv[++i];
        else if (!strcmp(argv[i], "--labels-from-folders")) labeled = 1;
        else if (!strcmp(argv[i], "--skip-bad")) skip = 1;
        else if (argv[i][0] == '-') return usage_error("unknown import option", argv[i]);
        else if (!src) src = argv[i];
        else if (!out) out = argv[i];
        else return usage_error("extra argument", argv[i]);
    }
    if (!src || !out || !split) return usage_error("import needs SRC_DIR OUT_DIR --split NAME", NULL);
    if (!split[0] || strchr(split, '/')) return usage_error("--split must be a plain name", split);
    /* import is serial: under mpirun every rank would write the same files */
    const char *world = getenv("OMPI_COMM_WORLD_SIZE") ? getenv("OMPI_COMM_WORLD_SIZE") : getenv("PMI_SIZE");
    if (world && atoi(world) > 1) { /* one message for the job, from rank 0; every rank exits 2 */
        const char *rank = getenv("OMPI_COMM_WORLD_RANK") ? getenv("OMPI_COMM_WORLD_RANK") : getenv("PMI_RANK");
        if (rank && atoi(rank) != 0) return EXIT_USAGE;
        return usage_error("import is a serial command: run it once, without mpirun (MPI world size)", world);
    }
    data_import(src, out, split, labeled, skip);
    return 0;
}

int main(int argc, char **argv)
{
    /* line-buffered even into a pipe or a batch log: stdout lines and stderr errors keep their order */
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fputs(USAGE, argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_USAGE : 0;
    }
    if (!strcmp(argv[1], "--version")) return puts("simclr " SIMCLR_VERSION), 0;
    if (!strcmp(argv[1], "import")) return cmd_import(argc, argv);
    if (!is_phase_name(argv[1])) return usage_error("unknown phase (pretrain, linear, finetune, baseline, distill, eval, import)", argv[1]);
    if (argc < 3 || argv[2][0] == '-') return usage_error("missing CONFIG.cfg after the phase", argv[1]);
    char *sets[256];
    int nsets = 0, check = 0;
    for (int i = 3; i < argc; i++) {
        if (!strcmp(argv[i], "--check")) check = 1;
        else if (!strcmp(argv[i], "--set") || !strncmp(argv[i], "--set=", 6)) {
            char *kv = argv[i][5] == '=' ? argv[i] + 6 : i + 1 < argc ? argv[++i] : NULL;
            if (!kv) return usage_error("key=value missing after", "--set");
            if (nsets == (int)(sizeof sets / sizeof sets[0]))
                return usage_error("more than 256 --set overrides; the 257th", kv);
            sets[nsets++] = kv;
        } else return usage_error("unexpected argument", argv[i]);
    }
    if (check) { /* no MPI, no data: what config_load and gemm_init refuse (exit 3) is all it checks */
        config c;
        config_load(&c, argv[2], argv[1], sets, nsets);
        config_warn(&c, argv[1], sets, nsets);
        gemm_init(); /* a bad BLIS_ARCH_TYPE in the job's environment */
        printf("simclr %s: %s with %d --set: configuration valid\n", argv[1], argv[2], nsets);
        return 0;
    }
    gemm_init(); /* before MPI_Init: it forks */
    dist_init(&argc, &argv);
    int rc = run_phase(argv[1], argv[2], sets, nsets);
    dist_finalize();
    return rc;
}
