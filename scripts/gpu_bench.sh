#!/usr/bin/env bash
# One command that measures a GPU for Qwen2-0.5B (random weights from its public config: no download): the full
# fine-tune as configs/qwen2-0.5b-full.yaml sets it up (its precision and optimizer) with and without gradient
# checkpointing, LoRA and QLoRA at batch 16 (peak allocated / reserved memory, examples/s, tokens/s, MFU against
# the card's dense bf16 peak) and one timed Disfl-QA epoch of the full fine-tune, into
# benchmarks/results/train_gpu.{json,md} with the device name (benchmarks/bench_gpu.py). ~4 min on an H100; needs
# only the repository's tracked files (it reads dataset/train.json and the SmolLM2 tokenizer when present, else
# builds synthetic batches of Disfl-QA's lengths).
#   bash scripts/gpu_bench.sh [--dry-run] [--only full lora ...] [--peak-tflops N]
# --dry-run: a tiny random Qwen2 on the sample data for a few steps, any device (a CPU in tests): plumbing only.
set -euo pipefail
cd "$(dirname "$0")/.."
export TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
exec python benchmarks/bench_gpu.py "$@"
