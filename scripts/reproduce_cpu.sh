#!/usr/bin/env bash
# Reproduces the committed CPU results in outputs/: Disfl-QA prepared from the shared raw files, the copy,
# rules, zero-shot and few-shot baselines, then the typo-robust full fine-tune (smollm2-full-typo) and its second
# cycle from those weights (smollm2-full-typo-cycle2, with its dev decoded with 4 beams and with a copy bonus)
# and a shorter third cycle with synthetic disfluencies added
# (smollm2-full-typo-cycle3), the typo recipe with a synthetic copy from the start in bf16-mixed precision and its
# second cycle (smollm2-full-typo-synth, -synth-cycle2), the reference full fine-tune and its synthetic-data
# variant (smollm2-full-synth), a LoRA run (rank 16; rank 64
# as an ablation), a QLoRA run and a LoRA run with typo augmentation of the offline SmolLM2-135M-Instruct, each
# evaluated on the full dev split (1,000 questions) and its seeded typo'd variant; then the model recommended before
# the unseen-topics work (now topic-soup-synth3, scripts/reproduce_topic.sh), the weight average of the five
# typo-trained runs (smollm2-full-typo-soup, with its blind-test predictions), and
# outputs/results.md and outputs/ablations.md. ~10 h on 2 CPU cores.
#   bash scripts/reproduce_cpu.sh [RAW_DISFL_QA_DIR] [RUN ...]    (RUN: only these runs / baselines)
set -euo pipefail
cd "$(dirname "$0")/.."
RAW=${1:-../shared/data/disfl-qa}
shift || true
ONLY=" $* "
. scripts/common.sh  # wanted, q, logged, trained
BLIND=../shared/data/blind

wanted prepare && logged outputs/logs/prepare.log q prepare --source "$RAW" --out dataset
# evaluate NAME MODEL [args for both]: clean dev -> outputs/NAME/, typo'd dev -> outputs/NAME/typo/
# (TRAIN_IO=1: the clean evaluation also rewrites a sample of training questions into train_io.json)
evaluate() {
  local name=$1 model=$2; shift 2
  logged outputs/$name/evaluate.log q evaluate --model "$model" --data dataset/valid.json --out outputs/$name \
    --name $name --data-label "disfl-qa dev" "$@" ${TRAIN_IO:+--train-data dataset/train.json}
  logged outputs/$name/typo/evaluate.log q evaluate --model "$model" --data dataset/valid_typo.json \
    --out outputs/$name/typo --name $name --data-label "disfl-qa dev (typo)" "$@"
}

wanted copy-baseline && evaluate copy-baseline copy
wanted rules-baseline && TRAIN_IO=1 evaluate rules-baseline rules
for run in smollm2-full-typo smollm2-full-typo-cycle2 smollm2-full-typo-cycle3 smollm2-full-typo-synth \
    smollm2-full-typo-synth-cycle2 smollm2-full smollm2-full-synth smollm2-lora smollm2-lora-r64 smollm2-qlora smollm2-lora-typo; do
  wanted $run || continue
  recipe=${run#smollm2-}
  trained $run || \
    logged outputs/$run/train.log q train --config configs/smollm2-cpu-$recipe.yaml \
      $([ -d weights/$run ] && echo --resume)
  TRAIN_IO=1 evaluate $run weights/$run
  # the decoding ablations: the same model with beam search, and greedy with a bonus on the question's own tokens
  if [ $run = smollm2-full-typo-cycle2 ]; then
    evaluate $run-beam4 weights/$run --num-beams 4
    evaluate $run-copy1 weights/$run --copy-bonus 1
    evaluate $run-beam4-copy1 weights/$run --num-beams 4 --copy-bonus 1
  fi
done
# the model recommended before the unseen-topics work: the uniform weight average of the five typo-trained runs
# above (seconds, no training),
# with its blind-test predictions and its dev decoded with 4 beams and the copy bonus; and an ablation of it
for run in smollm2-full-typo-soup smollm2-full-typo-soup-last2; do
  wanted $run || continue
  trained $run || \
    logged outputs/$run/average.log q average --config configs/average/$run.yaml
  TRAIN_IO=1 evaluate $run weights/$run
  [ $run = smollm2-full-typo-soup ] || continue
  # the blind test inputs (no references here; they are scored elsewhere)
  if [ -d "$BLIND" ]; then
    for split in test test_typo; do
      logged outputs/$run/blind/$split.log q rewrite --model weights/$run --input "$BLIND/${split}_inputs.jsonl" \
        --output outputs/$run/blind/$split.jsonl --no-input --strict
    done
  fi
  evaluate $run-beam4-copy1 weights/$run --num-beams 4 --copy-bonus 1
done
wanted smollm2-few-shot && evaluate smollm2-few-shot smollm2 --few-shot 5 --shots-from dataset/train.json
wanted smollm2-zero-shot && evaluate smollm2-zero-shot smollm2
q results --outputs outputs
