"""Shared fixtures: a tiny random Qwen2 (the Qwen2 code path in seconds) and a smoke-trained run of it.

Tests never touch the network: HF_HUB_OFFLINE is set before transformers is imported. The scripts tests run
(`bash scripts/...`, which call `python`) get the interpreter running the tests, as in an activated environment."""

import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])

import pytest  # noqa: E402
from helpers import smoke_config  # noqa: E402


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    from qrewrite.testing import build_tiny_qwen2
    return build_tiny_qwen2(tmp_path_factory.mktemp("models") / "tiny-qwen2")


@pytest.fixture(scope="session")
def tiny_run(tiny_model, tmp_path_factory) -> Path:
    """A complete 6-step full fine-tune of the tiny model on the sample data (weights/<run> layout)."""
    from qrewrite.train.trainer import train
    return train(smoke_config(tiny_model, tmp_path_factory.mktemp("weights"), run_name="tiny-full"))
