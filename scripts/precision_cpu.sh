#!/usr/bin/env bash
# The precision comparison of benchmarks/results/precision_cpu.md: SmolLM2-135M-Instruct fine-tuned with the Qwen2
# full config's optimiser settings in five settings (configs/precision/: bf16-mixed, pure bf16, pure bf16 with
# torchao's stochastic rounding, pure bf16 with bitsandbytes' 8-bit AdamW, bf16-mixed with it), 160 steps each,
# one after another; each scored on the first 512 held-out-topics questions, then the figures written. Runs live
# in runs/precision/ (gitignored); each run's log, trainer log, run.json and config, and its evaluation, in
# benchmarks/results/precision_cpu/. 10-40 min a variant on one shared core (pure bf16 is the fastest).
# bf16-sr-8bit needs torchao (pip install torchao).
#   bash scripts/precision_cpu.sh [VARIANT ...]        (default: all five, then the report)
set -euo pipefail
cd "$(dirname "$0")/.."
ONLY=" $* "
. scripts/common.sh  # wanted, q, logged
ROOT=runs/precision OUT=benchmarks/results/precision_cpu
for v in bf16-mixed bf16 bf16-sr-8bit bf16-bnb-8bit bf16-mixed-bnb-8bit; do
  wanted $v || continue
  run=$ROOT/precision-$v
  if ! { [ -f $run/run.json ] && grep -q '"complete"' $run/run.json; }; then
    logged $OUT/$v/train.log q train --config configs/precision/$v.yaml --output-root $ROOT
  fi
  cp $run/trainer_log.json $run/run.json $run/config.yaml $OUT/$v/
  logged $OUT/$v/evaluate.log q evaluate --model $run --data dataset/topic/valid.json --limit 512 \
    --out $OUT/$v --name precision-$v --data-label "topic-disjoint valid (first 512)"
done
[ "$ONLY" = "  " ] && python benchmarks/precision_report.py --runs $ROOT --results $OUT
true
