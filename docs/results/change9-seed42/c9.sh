#!/bin/bash
# Change 9: peak rate 2e-3 after a 3-epoch warmup, then constant, in pretraining (60 epochs), seed S
# (default 42); frozen build f94cf19. Seed 42 ran as a standalone copy of this script with ">" logs.
exec "$(dirname "$0")/../pretrain-change.sh" c9 "${1:-42}" --set train.lr=0.002 --set train.warmup_epochs=3
