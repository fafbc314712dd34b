#!/usr/bin/env bash
# Reproduces the committed CPU results in outputs/: Disfl-QA prepared from the shared raw files, the copy and
# zero-shot baselines, a full fine-tune and a LoRA run of the offline SmolLM2-135M-Instruct, each evaluated on
# the full dev split (1,000 questions) and its seeded typo'd variant. ~2.5 h on 2 CPU cores.
#   bash scripts/reproduce_cpu.sh [RAW_DISFL_QA_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
RAW=${1:-../shared/data/disfl-qa}
export TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
q() { echo "+ python -m qrewrite $*"; python -m qrewrite "$@"; }
logged() { local log=$1; shift; mkdir -p "$(dirname "$log")"; { echo "# $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD)"; "$@"; } 2>&1 | tee "$log"; }

logged outputs/logs/prepare.log q prepare --source "$RAW" --out dataset
for split in valid valid_typo; do
  label="disfl-qa dev"; [ $split = valid_typo ] && label="disfl-qa dev (typo)"
  logged outputs/copy-baseline/$split.log q evaluate --model copy --data dataset/$split.json \
    --out outputs/copy-baseline/$split --name copy-baseline --data-label "$label"
done
for run in smollm2-full smollm2-lora; do
  method=${run#smollm2-}
  [ -f weights/$run/run.json ] && grep -q '"complete"' weights/$run/run.json || \
    logged outputs/$run/train.log q train --config configs/smollm2-cpu-$method.yaml \
      $([ -d weights/$run ] && echo --resume)
  for split in valid valid_typo; do
    label="disfl-qa dev"; [ $split = valid_typo ] && label="disfl-qa dev (typo)"
    logged outputs/$run/$split.log q evaluate --model weights/$run --data dataset/$split.json \
      --out outputs/$run/$split --name $run --data-label "$label" --train-data dataset/train.json
  done
done
for split in valid valid_typo; do
  label="disfl-qa dev"; [ $split = valid_typo ] && label="disfl-qa dev (typo)"
  logged outputs/smollm2-zero-shot/$split.log q evaluate --model smollm2 --data dataset/$split.json \
    --out outputs/smollm2-zero-shot/$split --name smollm2-zero-shot --data-label "$label"
done
q results --outputs outputs
