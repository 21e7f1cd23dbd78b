#!/bin/bash
# Change 8: warmup 3 epochs + cosine decay in pretraining (60 epochs), seed S (default 42); frozen
# build 08295dc. Seed 42 ran as a standalone copy of this script with ">" logs.
exec "$(dirname "$0")/../pretrain-change.sh" c8 "${1:-42}" --set train.schedule=cosine --set train.warmup_epochs=3
