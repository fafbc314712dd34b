#!/usr/bin/env bash
# bash run.sh         the main job, offline: install, prepare the sample data, fine-tune SmolLM2-135M briefly
#                     on CPU, evaluate, write outputs/ (extra arguments go to `python -m qrewrite quickstart`,
#                     e.g. --full for the full CPU recipe on Disfl-QA)
# bash run.sh test    the whole test suite
set -euo pipefail
cd "$(dirname "$0")"
export HF_HUB_DISABLE_TELEMETRY=1 TOKENIZERS_PARALLELISM=false
if [ "${1:-}" = "test" ]; then
  shift
  QREWRITE_DEV=1 bash scripts/setup.sh
  exec python3 -m pytest -q "$@"
fi
bash scripts/setup.sh
exec python3 -m qrewrite quickstart "$@"
