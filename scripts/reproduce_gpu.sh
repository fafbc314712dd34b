#!/usr/bin/env bash
# The recommended recipe (topic-soup-synth3) for Qwen2-0.5B-Instruct on one GPU, end to end: Disfl-QA prepared
# with whole topics held out (dataset/topic/), the three ingredients of configs/qwen2/ trained (the third continues
# the second; each keeps its best checkpoint on the held-out topics) and each judged on the held-out topics, clean
# and typo'd; their soup averaged and judged on the held-out topics and Disfl-QA dev (clean and typo'd), greedy and
# with the copy bonus of 1; its predictions for the blind test inputs (../shared/data/blind) with both decodings.
# Needs the hub (Qwen/Qwen2-0.5B-Instruct) or its files in the hub cache. Never run on a GPU here: see docs/gpu.md.
#   bash scripts/reproduce_gpu.sh [--smoke] [RAW_DISFL_QA_DIR] [STEP ...]   (STEP: prepare, a run name, blind)
# --smoke: the same steps on a tiny random Qwen2 for a few steps, in a fresh directory ($SMOKE_DIR or a temporary
# one; the repository's dataset/, weights/ and outputs/ are not touched): checks the plumbing, on a CPU, in seconds.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"  # RAW and BLIND are relative to the repository, as in the other reproduce scripts
SMOKE=
if [ "${1:-}" = --smoke ]; then SMOKE=1; shift; fi
RAW=${1:-../shared/data/disfl-qa}
shift || true
ONLY=" $* "
. "$REPO/scripts/common.sh"  # wanted, q, logged, trained
BLIND=${BLIND:-../shared/data/blind}
TRAIN_ARGS=() PREPARE_ARGS=() EVAL_ARGS=()
if [ -n "$SMOKE" ]; then
  RAW=$(realpath "$RAW") BLIND=$(realpath -m "$BLIND")
  SMOKE_DIR=${SMOKE_DIR:-$(mktemp -d -t qrewrite-gpu-smoke.XXXXXX)}
  mkdir -p "$SMOKE_DIR" && cd "$SMOKE_DIR"  # relative paths (dataset/, weights/, outputs/) now mean the smoke's
  export PYTHONPATH=$REPO${PYTHONPATH:+:$PYTHONPATH}  # configs/ are found in the repository (qrewrite.files)
  python -c "from qrewrite.testing import build_tiny_qwen2; build_tiny_qwen2('tiny-qwen2')"
  PREPARE_ARGS=(--valid-size 40)
  TRAIN_ARGS=(--max-steps 4 --eval-steps 2 --save-steps 2 --eval-sample 4 --max-eval-examples 8 --batch-size 4
              --precision fp32 --optim adamw_torch --optim-args "" --gradient-checkpointing false --report-to none)
  EVAL_ARGS=(--limit 8)
  echo "smoke run in $SMOKE_DIR"
elif [ -z "${ALLOW_CPU:-}" ] && ! python -c "import sys, torch; sys.exit(not torch.cuda.is_available())"; then
  echo "error: no CUDA GPU visible to torch: the Qwen2-0.5B recipe would take days on a CPU (--smoke checks the" \
    "plumbing; ALLOW_CPU=1 runs it anyway)" >&2
  exit 2
fi

wanted prepare && logged outputs/logs/prepare_topic.log q prepare --source "$RAW" --out dataset/topic \
  --valid-split topic "${PREPARE_ARGS[@]}"
# evaluate NAME MODEL [args]: held-out topics -> outputs/NAME/topic/ (+ typo'd: topic/typo/), and unless TOPIC_ONLY
# Disfl-QA dev (in-topic) -> outputs/NAME/ (+ typo'd: typo/)
evaluate() {
  local name=$1 model=$2; shift 2
  local splits="topic/valid topic/valid_typo"
  [ -n "${TOPIC_ONLY:-}" ] || splits="$splits dev/valid_dev dev/valid_dev_typo"
  [ -n "$SMOKE" ] && splits=${splits//topic\/valid_typo/} && splits=${splits//dev\/valid_dev_typo/}
  for split in $splits; do
    local file=${split#*/} dir=outputs/$name
    case $split in topic/*) dir=$dir/topic;; esac
    case $file in *_typo) dir=$dir/typo;; esac
    logged $dir/evaluate.log q evaluate --model "$model" --data dataset/topic/$file.json --out $dir --name $name \
      --data-label "$(label $file)" "${EVAL_ARGS[@]}" "$@"
  done
}
label() {
  case $1 in valid) echo "topic-disjoint valid";; valid_typo) echo "topic-disjoint valid (typo)";;
    valid_dev) echo "disfl-qa dev";; valid_dev_typo) echo "disfl-qa dev (typo)";; esac
}

# the three ingredients, in order (the third starts from the second's kept model)
for run in qwen2-topic-full-synth qwen2-topic-full-typo-synth qwen2-topic-full-typo-synth-cycle2; do
  wanted $run || continue
  model=() && [ -n "$SMOKE" ] && [ $run != qwen2-topic-full-typo-synth-cycle2 ] && model=(--model tiny-qwen2)
  trained $run || logged outputs/$run/train.log q train --config configs/qwen2/${run#qwen2-topic-}.yaml \
    "${model[@]}" "${TRAIN_ARGS[@]}" $([ -d weights/$run ] && echo --resume)
  [ -n "$SMOKE" ] || TOPIC_ONLY=1 evaluate $run weights/$run
done
run=qwen2-topic-soup-synth3
if wanted $run; then
  trained $run || logged outputs/$run/average.log q average --config configs/qwen2/soup-synth3.yaml
  evaluate $run weights/$run
  [ -n "$SMOKE" ] || TOPIC_ONLY=1 evaluate $run-copy1 weights/$run --copy-bonus 1
fi
# the soup's predictions for the blind test inputs: greedy, and with the copy bonus of 1 (keep the one the held-out
# topics prefer); the references are scored elsewhere
for variant in "blind $run" "blind-copy1 $run-copy1 --copy-bonus 1"; do
  set -- $variant; step=$1 out=$2; shift 2
  wanted $step && [ -d "$BLIND" ] || continue
  [ -n "$SMOKE" ] && [ $step != blind ] && continue
  for split in test test_typo; do
    [ -n "$SMOKE" ] && [ $split != test ] && continue
    logged outputs/$out/blind/$split.log q rewrite --model weights/$run "$@" \
      --input "$BLIND/${split}_inputs.jsonl" --output outputs/$out/blind/$split.jsonl --no-input --strict
  done
done
[ -n "$SMOKE" ] && echo "smoke run complete: $SMOKE_DIR"
true
