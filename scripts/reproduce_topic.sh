#!/usr/bin/env bash
# Reproduces the unseen-topics results in outputs/ (the topic-disjoint validation split): Disfl-QA prepared with
# whole SQuAD articles of train held out (dataset/topic/), the copy and rules baselines, the 200-step reference
# full fine-tune on the topic-disjoint train split and its name-swapped + typo'd, name-swapped and typo'd (with
# noise that never spells a real word, and plain) variants, a soup of the first three, the reference three times
# as long (600 steps) with and without typo'd copies and a soup of those two, each scored on the held-out topics
# (outputs/<run>/topic/, and typo'd: topic/typo/) and on Disfl-QA dev (outputs/<run>/: in-topic), and the
# decoding ablations (copy bonus, order bonus, beams, the CTranslate2 engine), the frozen-embeddings run and the
# dev-tuned soup's five typo-trained runs (~3 h more on a fast 2-core CPU), the clean recipe with a synthetic
# disfluent copy (50 min), its WiSE-FT variants, its soups with the typo'd synthetic run and that run's second
# cycle (56 min), the recommended soup of the three. ~6 h on 2 slow CPU cores
# (no avx512) without them.
# The recommended model (topic-soup-synth3) and its blind-test predictions are this script's (step `blind`); the
# model recommended before it (smollm2-full-typo-soup, tuned on dev) and its blind predictions are scripts/reproduce_cpu.sh's.
#   bash scripts/reproduce_topic.sh [RAW_DISFL_QA_DIR] [STEP ...]    (STEP: only these runs / baselines)
set -euo pipefail
cd "$(dirname "$0")/.."
RAW=${1:-../shared/data/disfl-qa}
shift || true
ONLY=" $* "
. scripts/common.sh  # wanted, q, logged, trained

wanted prepare && logged outputs/logs/prepare_topic.log q prepare --source "$RAW" --out dataset/topic --valid-split topic
# evaluate NAME MODEL [args]: held-out topics -> outputs/NAME/topic/ (+ typo'd: topic/typo/ when TYPO=1),
# Disfl-QA dev (in-topic) -> outputs/NAME/
evaluate() {
  local name=$1 model=$2; shift 2
  logged outputs/$name/topic/evaluate.log q evaluate --model "$model" --data dataset/topic/valid.json \
    --out outputs/$name/topic --name $name --data-label "topic-disjoint valid" "$@"
  if [ -n "${TYPO:-}" ]; then
    logged outputs/$name/topic/typo/evaluate.log q evaluate --model "$model" --data dataset/topic/valid_typo.json \
      --out outputs/$name/topic/typo --name $name --data-label "topic-disjoint valid (typo)" "$@"
  fi
  if [ -n "${CLEAN:-}" ]; then  # the held-out references as inputs: are clean questions left alone?
    logged outputs/$name/topic/clean/evaluate.log q evaluate --model "$model" --data dataset/topic/valid_clean.json \
      --out outputs/$name/topic/clean --name $name --data-label "topic-disjoint valid (clean)" "$@"
  fi
  if [ -z "${TOPIC_ONLY:-}" ]; then
    logged outputs/$name/evaluate.log q evaluate --model "$model" --data dataset/topic/valid_dev.json \
      --out outputs/$name --name $name --data-label "disfl-qa dev" "$@"
  fi
  if [ -n "${DEV_TYPO:-}" ]; then
    logged outputs/$name/typo/evaluate.log q evaluate --model "$model" --data dataset/topic/valid_dev_typo.json \
      --out outputs/$name/typo --name $name --data-label "disfl-qa dev (typo)" "$@"
  fi
}

# train_topic RUN: train configs/topic/<RUN without "topic-">.yaml unless weights/RUN holds a finished run (resumed
# when it holds a partial one), logged to outputs/RUN/train.log
train_topic() {
  trained $1 || logged outputs/$1/train.log q train --config configs/topic/${1#topic-}.yaml \
    $([ -d weights/$1 ] && echo --resume)
}

# average_topic RUN: average the weights configs/average/RUN.yaml names unless weights/RUN holds them already,
# logged to outputs/RUN/average.log
average_topic() {
  trained $1 || logged outputs/$1/average.log q average --config configs/average/$1.yaml
}

# the baselines' Disfl-QA dev evaluations are committed already (scripts/reproduce_cpu.sh)
wanted copy-baseline && TOPIC_ONLY=1 TYPO=1 CLEAN=1 evaluate copy-baseline copy
wanted rules-baseline && TOPIC_ONLY=1 TYPO=1 CLEAN=1 evaluate rules-baseline rules
for run in topic-smollm2-full topic-smollm2-full-typo-names topic-smollm2-full-names topic-smollm2-full-typo-nonwords \
    topic-smollm2-full-typo topic-smollm2-full-600 topic-smollm2-full-typo-600 \
    topic-smollm2-full-typo-1200 topic-smollm2-full-frozen-emb; do
  wanted $run || continue
  train_topic $run
  # the typo'd held-out topics for the runs that bear on typo robustness (the names-only and frozen-embeddings runs
  # saw no typo), and
  # typo'd dev for the typo'd 600- and 1,200-step runs (beside the dev-tuned soup's)
  TYPO=$([[ $run = topic-smollm2-full-names || $run = *-frozen-emb ]] || echo 1) DEV_TYPO=$([[ $run = *-typo-600 || $run = *-typo-1200 ]] && echo 1) \
    evaluate $run weights/$run
done
# the recommended model's recipe without the held-out topics: its five typo-trained runs (4,500 steps; each cycle
# starts from the one before), each judged on the held-out topics, clean and typo'd (their soup: the next step)
for run in topic-smollm2-full-typo-1000 topic-smollm2-full-typo-cycle2 topic-smollm2-full-typo-synth \
    topic-smollm2-full-typo-synth-cycle2 topic-smollm2-full-typo-cycle3; do
  wanted $run || continue
  train_topic $run
  TYPO=1 TOPIC_ONLY=1 evaluate $run weights/$run  # each ingredient on the held-out topics, clean and typo'd
done
# a soup of the first three runs (seconds, no training), judged on the held-out topics like its ingredients
if wanted topic-soup; then
  average_topic topic-soup
  TYPO=1 evaluate topic-soup weights/topic-soup
fi
# a soup of the two 600-step runs, clean and typo'd (one model for both kinds of question)
if wanted topic-soup-600; then
  average_topic topic-soup-600
  TYPO=1 DEV_TYPO=1 evaluate topic-soup-600 weights/topic-soup-600
fi
# the last four checkpoints of the typo'd 1,200-step run averaged (the tail of its schedule)
if wanted topic-typo-1200-last4; then
  average_topic topic-typo-1200-last4
  TYPO=1 DEV_TYPO=1 evaluate topic-typo-1200-last4 weights/topic-typo-1200-last4
fi
# the clean 600-step run averaged with the tail of the typo'd 1,200-step run, half each
if wanted topic-soup-600-typo1200; then
  average_topic topic-soup-600-typo1200
  TYPO=1 DEV_TYPO=1 evaluate topic-soup-600-typo1200 weights/topic-soup-600-typo1200
fi
# the clean 600-step run averaged with the recommended recipe's second typo'd cycle, half each
if wanted topic-soup-600-cycle2; then
  average_topic topic-soup-600-cycle2
  TYPO=1 DEV_TYPO=1 evaluate topic-soup-600-cycle2 weights/topic-soup-600-cycle2
fi
# the clean recipe with a synthetic disfluent copy of every question (1,000 bf16-mixed steps), and without training:
# it moved back toward SmolLM2 by 0.1, 0.2, 0.3 (WiSE-FT: start_model_weight), and averaged with the typo'd synthetic
# run (line 50's weights) for one model of clean and typo'd questions
if wanted topic-smollm2-full-synth; then
  train_topic topic-smollm2-full-synth
  TYPO=1 evaluate topic-smollm2-full-synth weights/topic-smollm2-full-synth
fi
# hundreds of topics (extra_questions): the clean synthetic recipe plus 4,000 clean SQuAD-train questions (~440
# other articles) made training pairs (synthetic disfluencies, typo'd, fillers, left clean), 1,300 steps so that
# Disfl-QA keeps its exposure (~65 min); held-out topics clean, typo'd, and their references as inputs (clean kept?),
# and dev; then decoded with the copy bonus on the held-out topics, clean and kept clean
if wanted topic-smollm2-full-synth-squad4k; then
  train_topic topic-smollm2-full-synth-squad4k
  TYPO=1 CLEAN=1 evaluate topic-smollm2-full-synth-squad4k weights/topic-smollm2-full-synth-squad4k
fi
wanted topic-smollm2-full-synth-squad4k-copy1 && CLEAN=1 TOPIC_ONLY=1 evaluate topic-smollm2-full-synth-squad4k-copy1 \
  weights/topic-smollm2-full-synth-squad4k --copy-bonus 1
# a short second cycle from it with half of the SQuAD pairs left clean: are clean questions then left alone?
if wanted topic-smollm2-full-synth-squad4k-clean; then
  train_topic topic-smollm2-full-synth-squad4k-clean
  TYPO=1 CLEAN=1 TOPIC_ONLY=1 evaluate topic-smollm2-full-synth-squad4k-clean weights/topic-smollm2-full-synth-squad4k-clean
fi
# the same, with the SQuAD questions that hold a plain "or" / "not" / "no" (scripts/cue_word_questions.py)
if wanted topic-smollm2-full-synth-squad4k-cues; then
  python scripts/cue_word_questions.py ../shared/data/squad-train/questions.jsonl dataset/extra/squad-cue-words.jsonl
  train_topic topic-smollm2-full-synth-squad4k-cues
  TYPO=1 CLEAN=1 TOPIC_ONLY=1 evaluate topic-smollm2-full-synth-squad4k-cues weights/topic-smollm2-full-synth-squad4k-cues
fi
# recipe (c): the cue-word questions (+ 1,000 others) from the first cycle on, 1,300 steps (~62 min), then a typo'd
# 400-step second cycle from it (~20 min) and the soup of the two halves; each judged on the held-out topics
if wanted topic-smollm2-full-synth-squad-cues; then
  python scripts/cue_word_questions.py ../shared/data/squad-train/questions.jsonl dataset/extra/squad-cues-others1k.jsonl \
    --others 1000
  train_topic topic-smollm2-full-synth-squad-cues
  TYPO=1 CLEAN=1 TOPIC_ONLY=1 evaluate topic-smollm2-full-synth-squad-cues weights/topic-smollm2-full-synth-squad-cues
fi
if wanted topic-smollm2-full-typo-synth-squad-cues; then
  train_topic topic-smollm2-full-typo-synth-squad-cues
  TYPO=1 TOPIC_ONLY=1 evaluate topic-smollm2-full-typo-synth-squad-cues weights/topic-smollm2-full-typo-synth-squad-cues
fi
if wanted topic-soup-squad-cues; then
  average_topic topic-soup-squad-cues
  TYPO=1 CLEAN=1 evaluate topic-soup-squad-cues weights/topic-soup-squad-cues
fi
wanted topic-soup-squad-cues-copy1 && TYPO=1 CLEAN=1 TOPIC_ONLY=1 \
  evaluate topic-soup-squad-cues-copy1 weights/topic-soup-squad-cues --copy-bonus 1
# a stronger copy bonus: does decoding keep more clean questions clean, and at what cost?
wanted topic-soup-squad-cues-copy2 && TYPO=1 CLEAN=1 TOPIC_ONLY=1 \
  evaluate topic-soup-squad-cues-copy2 weights/topic-soup-squad-cues --copy-bonus 2
# recipe (b): a first stage on SQuAD-derived pairs alone (9,600 pairs, 600 steps, ~25 min), then line 51's recipe
# from its weights (1,000 steps, ~42 min); each judged on the held-out topics (stage 2 also typo'd, kept clean, and
# with the copy bonus)
if wanted topic-smollm2-squad-stage1; then
  train_topic topic-smollm2-squad-stage1
  TOPIC_ONLY=1 evaluate topic-smollm2-squad-stage1 weights/topic-smollm2-squad-stage1
fi
if wanted topic-smollm2-full-synth-squad-stage2; then
  train_topic topic-smollm2-full-synth-squad-stage2
  TYPO=1 CLEAN=1 TOPIC_ONLY=1 evaluate topic-smollm2-full-synth-squad-stage2 weights/topic-smollm2-full-synth-squad-stage2
fi
wanted topic-smollm2-full-synth-squad-stage2-copy1 && CLEAN=1 TOPIC_ONLY=1 \
  evaluate topic-smollm2-full-synth-squad-stage2-copy1 weights/topic-smollm2-full-synth-squad-stage2 --copy-bonus 1
# ... and in a soup with a typo'd 400-step second cycle from stage 2 (~22 min), as recipe (c) did for line 65
if wanted topic-smollm2-full-typo-synth-squad-stage2; then
  train_topic topic-smollm2-full-typo-synth-squad-stage2
  TYPO=1 TOPIC_ONLY=1 evaluate topic-smollm2-full-typo-synth-squad-stage2 weights/topic-smollm2-full-typo-synth-squad-stage2
fi
if wanted topic-soup-squad-stage2; then
  average_topic topic-soup-squad-stage2
  TYPO=1 CLEAN=1 TOPIC_ONLY=1 evaluate topic-soup-squad-stage2 weights/topic-soup-squad-stage2
fi
wanted topic-soup-squad-stage2-copy1 && TYPO=1 CLEAN=1 TOPIC_ONLY=1 \
  evaluate topic-soup-squad-stage2-copy1 weights/topic-soup-squad-stage2 --copy-bonus 1
# the copy bonus (chosen on the held-out topics: 1) on it
wanted topic-smollm2-full-synth-copy1 && TOPIC_ONLY=1 \
  evaluate topic-smollm2-full-synth-copy1 weights/topic-smollm2-full-synth --copy-bonus 1
for wise in 10 20 30; do
  wanted topic-synth-wise$wise || continue
  average_topic topic-synth-wise$wise
  TOPIC_ONLY=1 evaluate topic-synth-wise$wise weights/topic-synth-wise$wise
done
if wanted topic-soup-synth; then
  # line 50's run trained again when its weights are gone (its own evaluation is committed; this log is the retrain's)
  trained topic-smollm2-full-typo-synth || logged outputs/topic-soup-synth/train-typo-synth.log \
    q train --config configs/topic/smollm2-full-typo-synth.yaml $([ -d weights/topic-smollm2-full-typo-synth ] && echo --resume)
  average_topic topic-soup-synth
  TYPO=1 DEV_TYPO=1 evaluate topic-soup-synth weights/topic-soup-synth
fi
# the typo'd synthetic run's second cycle in the soup: with the clean run (half each), and with both typo'd cycles
# (a third each; also on dev, clean and typo'd)
for run in topic-soup-synth-cycle2 topic-soup-synth3; do
  wanted $run || continue
  average_topic $run
  if [ $run = topic-soup-synth3 ]; then TYPO=1 DEV_TYPO=1 evaluate $run weights/$run
  else TYPO=1 TOPIC_ONLY=1 evaluate $run weights/$run; fi
done
# the copy bonus on it, judged on the held-out topics, clean and typo'd
wanted topic-soup-synth3-copy1 && TYPO=1 TOPIC_ONLY=1 \
  evaluate topic-soup-synth3-copy1 weights/topic-soup-synth3 --copy-bonus 1
# the recommended model (topic-soup-synth3: the best mean of clean and typo'd ROUGE-L on the held-out topics) and its
# predictions for the blind test inputs, greedy and with the recommended decoding, the copy bonus of 1 (the better mean
# on the held-out topics); the references are scored elsewhere
BLIND=../shared/data/blind
for variant in "blind topic-soup-synth3" "blind-copy1 topic-soup-synth3-copy1 --copy-bonus 1"; do
  set -- $variant; step=$1 out=$2; shift 2  # step, output run name, decoding flags
  wanted $step && [ -d "$BLIND" ] || continue
  for split in test test_typo; do
    logged outputs/$out/blind/$split.log q rewrite --model weights/topic-soup-synth3 "$@" \
      --input "$BLIND/${split}_inputs.jsonl" --output outputs/$out/blind/$split.jsonl --no-input --strict
  done
done
# the decoding ablation, judged on the held-out topics: the baseline greedy with the copy bonus on the question's
# own tokens (the chosen bonus, 1, also on the typo'd held-out topics and on dev)
for bonus in 1 2; do
  wanted topic-smollm2-full-copy$bonus && \
    TYPO=$([ $bonus = 1 ] && echo 1) TOPIC_ONLY=$([ $bonus = 1 ] || echo 1) \
    evaluate topic-smollm2-full-copy$bonus weights/topic-smollm2-full --copy-bonus $bonus
done
# run-to-run variation: the 600-step run trained again from the same config (the soup and the copy bonus below
# use these weights; a fresh reproduction makes line 30's evaluation twice)
wanted topic-smollm2-full-600-rerun && TOPIC_ONLY=1 \
  evaluate topic-smollm2-full-600-rerun weights/topic-smollm2-full-600
# the copy bonus on the best unseen-topics run (600 steps, clean) and on the soup of the two 600-step runs
wanted topic-smollm2-full-600-copy1 && TOPIC_ONLY=1 \
  evaluate topic-smollm2-full-600-copy1 weights/topic-smollm2-full-600 --copy-bonus 1
wanted topic-soup-600-copy1 && TYPO=1 TOPIC_ONLY=1 evaluate topic-soup-600-copy1 weights/topic-soup-600 --copy-bonus 1
wanted topic-soup-600-typo1200-copy1 && TYPO=1 TOPIC_ONLY=1 \
  evaluate topic-soup-600-typo1200-copy1 weights/topic-soup-600-typo1200 --copy-bonus 1
# the order bonus (on the question's tokens after the last one copied, and end-of-turn) on the 200-step baseline, its
# value chosen on the held-out topics: alone (1, 2) and with the copy bonus of 1
wanted topic-smollm2-full-order1 && TOPIC_ONLY=1 evaluate topic-smollm2-full-order1 weights/topic-smollm2-full --order-bonus 1
wanted topic-smollm2-full-order2 && TOPIC_ONLY=1 evaluate topic-smollm2-full-order2 weights/topic-smollm2-full --order-bonus 2
wanted topic-smollm2-full-copy1-order1 && TOPIC_ONLY=1 \
  evaluate topic-smollm2-full-copy1-order1 weights/topic-smollm2-full --copy-bonus 1 --order-bonus 1
# the dev-tuned soup's best decoding (4 beams with the copy bonus 1, chosen on dev) judged on the held-out topics
wanted topic-smollm2-full-beam4-copy1 && TYPO=1 TOPIC_ONLY=1 \
  evaluate topic-smollm2-full-beam4-copy1 weights/topic-smollm2-full --num-beams 4 --copy-bonus 1
# the CTranslate2 engine (int8, and float32) on the same run, data and greedy decoding: its quality beside the transformers engine's
wanted topic-smollm2-full-ct2 && evaluate topic-smollm2-full-ct2 weights/topic-smollm2-full --engine ctranslate2
wanted topic-smollm2-full-ct2-fp32 && evaluate topic-smollm2-full-ct2-fp32 weights/topic-smollm2-full \
  --engine ctranslate2 --quantization float32
# the same on the typo'd 1,200-step run, int8 with two replicas (the server's recommended engine on 2 cores)
wanted topic-smollm2-full-typo-1200-ct2 && evaluate topic-smollm2-full-typo-1200-ct2 weights/topic-smollm2-full-typo-1200 \
  --engine ctranslate2 --quantization int8 --replicas 2
# bf16 weights on the transformers engine, the same run, data and greedy decoding (the serving benchmark's lone-question
# path: prompt lookup on bf16 weights gives the tokens greedy gives on them)
wanted topic-smollm2-full-bf16 && evaluate topic-smollm2-full-bf16 weights/topic-smollm2-full --precision bf16
# ... and its batches split between two generation threads (the serving benchmark's bf16 server)
wanted topic-smollm2-full-bf16-replicas2 && evaluate topic-smollm2-full-bf16-replicas2 weights/topic-smollm2-full \
  --precision bf16 --replicas 2
q results --outputs outputs
