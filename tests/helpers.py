"""What several test files use: the repository's paths, running the CLI, a smoke config, writing data files.

Fixtures (the tiny model, its smoke-trained run) are in conftest.py; plain functions are here, imported by name
(``from helpers import run_cli``): pytest puts tests/ on the import path."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "dataset" / "sample"
SMOKE = ROOT / "configs" / "smoke.yaml"


def run_cli(*args, cwd=ROOT, input=None, timeout=600, env=None):
    """Run ``python -m qrewrite ...`` (or a script when args[0] ends in .py) in a subprocess."""
    cmd = [sys.executable, *args] if str(args[0]).endswith(".py") else [sys.executable, "-m", "qrewrite", *args]
    return subprocess.run([str(c) for c in cmd], cwd=cwd, input=input, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})


def smoke_config(tiny_model, output_root, **overrides):
    """configs/smoke.yaml on the tiny model and the sample data, writing under ``output_root``."""
    from qrewrite.config import load_config
    values = {"model": str(tiny_model), "output_root": str(output_root),
              "train_file": str(SAMPLE / "train.json"), "valid_file": str(SAMPLE / "valid.json")}
    values.update(overrides)
    return load_config(SMOKE, values)


def write(path: Path, content) -> Path:
    """``content`` at ``path`` (its folders made): bytes as they are, text as UTF-8, anything else as JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_text(json.dumps(content, ensure_ascii=False), encoding="utf-8")
    return path


def canon(n, prefix="t", start=0):
    """``n`` canonical records (id, disfluent input, clean target), ids ``<prefix><i>`` from ``start``."""
    return [{"id": f"{prefix}{i}", "input": f"Um what uh is {prefix} question {i}?",
             "target": f"What is {prefix} question {i}?"} for i in range(start, start + n)]


def read_jsonl(path: Path) -> list:
    """The records of a JSON Lines file (blank lines skipped)."""
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
