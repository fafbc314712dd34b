#!/usr/bin/env bash
# Reproduces the committed CPU results in outputs/: Disfl-QA prepared from the shared raw files, the copy and
# zero-shot baselines, then a full fine-tune, a LoRA run, a QLoRA run and a LoRA run with typo augmentation of the
# offline SmolLM2-135M-Instruct, each evaluated on the full dev split (1,000 questions) and its seeded typo'd
# variant. ~3 h on 2 CPU cores.
#   bash scripts/reproduce_cpu.sh [RAW_DISFL_QA_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
RAW=${1:-../shared/data/disfl-qa}
export TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
q() { echo "+ python -m qrewrite $*"; python -m qrewrite "$@"; }
logged() { local log=$1; shift; mkdir -p "$(dirname "$log")"; { echo "# $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD)"; "$@"; } 2>&1 | tee "$log"; }

logged outputs/logs/prepare.log q prepare --source "$RAW" --out dataset
# evaluate NAME MODEL [extra args]: clean dev -> outputs/NAME/, typo'd dev -> outputs/NAME/typo/
evaluate() {
  local name=$1 model=$2; shift 2
  logged outputs/$name/evaluate.log q evaluate --model "$model" --data dataset/valid.json --out outputs/$name \
    --name $name --data-label "disfl-qa dev" "$@"
  logged outputs/$name/typo/evaluate.log q evaluate --model "$model" --data dataset/valid_typo.json \
    --out outputs/$name/typo --name $name --data-label "disfl-qa dev (typo)"
}

evaluate copy-baseline copy
for run in smollm2-full smollm2-lora smollm2-qlora smollm2-lora-typo; do
  recipe=${run#smollm2-}
  [ -f weights/$run/run.json ] && grep -q '"complete"' weights/$run/run.json || \
    logged outputs/$run/train.log q train --config configs/smollm2-cpu-$recipe.yaml \
      $([ -d weights/$run ] && echo --resume)
  evaluate $run weights/$run --train-data dataset/train.json
done
evaluate smollm2-zero-shot smollm2
q results --outputs outputs
