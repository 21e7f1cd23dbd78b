/* phases.h: the training and evaluation jobs: pretrain (SimCLR), linear (linear probe on
 * the frozen encoder), finetune (encoder + classifier), baseline (the same network from
 * scratch, supervised only) and eval (top-1, per-class accuracy and confusion matrix of a
 * classifier checkpoint). The only room that uses all the others.
 *
 * Every phase is collective over MPI_COMM_WORLD: rank 0 reads the config and broadcasts
 * it, every rank reads only the images of its shard of each global batch, and rank 0
 * writes the run folder (config.resolved.cfg, metrics.jsonl, checkpoints, LATEST,
 * labeled_indices.txt, eval.json). */
#ifndef SIMCLR_PHASES_H
#define SIMCLR_PHASES_H

/* Runs `phase` with config file cfg_path and `--set key=value` overrides. Returns the
 * process exit code (0; EXIT_REQUEUE when stopped by SIGTERM/SIGUSR1 after a checkpoint);
 * other failures end the job through fatal(). Call between dist_init and dist_finalize. */
int run_phase(const char *phase, const char *cfg_path, char **sets, int nsets);

#endif
