"""Shared fixtures: a tiny random Qwen2 (the Qwen2 code path in seconds) and a smoke-trained run of it.

Tests never touch the network: HF_HUB_OFFLINE is set before transformers is imported."""

import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TQDM_DISABLE", "1")

import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "dataset" / "sample"


def run_cli(*args, cwd=ROOT, input=None, timeout=600, env=None):
    """Run ``python -m qrewrite ...`` (or a script when args[0] ends in .py) in a subprocess."""
    cmd = [sys.executable, *args] if str(args[0]).endswith(".py") else [sys.executable, "-m", "qrewrite", *args]
    return subprocess.run([str(c) for c in cmd], cwd=cwd, input=input, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    from qrewrite.testing import build_tiny_qwen2
    return build_tiny_qwen2(tmp_path_factory.mktemp("models") / "tiny-qwen2")


def smoke_config(tiny_model, output_root, **overrides):
    from qrewrite.config import load_config
    values = {"model": str(tiny_model), "output_root": str(output_root),
              "train_file": str(SAMPLE / "train.json"), "valid_file": str(SAMPLE / "valid.json")}
    values.update(overrides)
    return load_config(ROOT / "configs" / "smoke.yaml", values)


@pytest.fixture(scope="session")
def tiny_run(tiny_model, tmp_path_factory) -> Path:
    """A complete 6-step full fine-tune of the tiny model on the sample data (weights/<run> layout)."""
    from qrewrite.train.trainer import train
    return train(smoke_config(tiny_model, tmp_path_factory.mktemp("weights"), run_name="tiny-full"))
