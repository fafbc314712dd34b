#!/usr/bin/env bash
# bash run.sh         the main job, offline: install into the project's environment .venv (created on first
#                     use), prepare the sample data, fine-tune SmolLM2-135M briefly on CPU, evaluate, write
#                     outputs/quickstart/ (extra arguments go to `qrewrite quickstart`, e.g. --full --source DIR
#                     for the full CPU recipe on Disfl-QA)
# bash run.sh test    the whole test suite, in the same environment (extra arguments go to pytest)
# PYTHON=/path/to/python bash run.sh ...   install into and run with an environment you bring instead of .venv
set -euo pipefail
cd "$(dirname "$0")"
export HF_HUB_DISABLE_TELEMETRY=1 TOKENIZERS_PARALLELISM=false
PY=${PYTHON:-.venv/bin/python}
if [ "${1:-}" = "test" ]; then
  shift
  QREWRITE_DEV=1 bash scripts/setup.sh
  exec "$PY" -m pytest -q "$@"
fi
bash scripts/setup.sh
exec "$PY" -m qrewrite quickstart "$@"
