"""Every ``metrics.json`` under ``outputs/`` read and checked (:func:`collect_runs`), and the cell formatting
that the results and ablation tables share."""

from __future__ import annotations

import json
import math
from numbers import Real
from pathlib import Path

METHOD_ORDER = ("copy", "rules", "zero-shot", "few-shot", "full", "average", "lora", "qlora")

MISSING = "\u2014"  # em dash

# Fields a metrics.json must have; everything else may be missing (shown as an em dash).
REQUIRED_RUN_FIELDS = ("name", "model", "method", "data")

REQUIRED_METRIC_FIELDS = ("rougeL", "exact_match")

NUMERIC_METRIC_FIELDS = ("n", "rouge1", "rouge2", "rougeL", "rougeLsum", "bleu", "exact_match", "changed_input")

NUMERIC_RUN_FIELDS = ("steps", "train_time_s", "peak_memory_mb")

def _is_number(v) -> bool:
    return isinstance(v, Real) and not isinstance(v, bool) and math.isfinite(v)

def _load_metrics_file(path: Path, rel: str) -> dict:
    try:
        with open(path, encoding="utf-8-sig") as f:
            doc = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from e
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: expected a JSON object with 'metrics' and 'run', got {type(doc).__name__}")
    for section in ("metrics", "run"):
        if section not in doc:
            raise ValueError(f"{path}: missing field '{section}'")
        if not isinstance(doc[section], dict):
            raise ValueError(f"{path}: field '{section}' must be an object")
    for key in REQUIRED_RUN_FIELDS:
        if doc["run"].get(key) in (None, ""):
            raise ValueError(f"{path}: missing field 'run.{key}'")
        if not isinstance(doc["run"][key], str):
            raise ValueError(f"{path}: field 'run.{key}' must be a string")
    for key in REQUIRED_METRIC_FIELDS:
        if doc["metrics"].get(key) is None:
            raise ValueError(f"{path}: missing field 'metrics.{key}'")
    for key in NUMERIC_METRIC_FIELDS:
        v = doc["metrics"].get(key)
        if v is not None and not _is_number(v):
            raise ValueError(f"{path}: field 'metrics.{key}' must be a number, got {v!r}")
    for key in NUMERIC_RUN_FIELDS:
        v = doc["run"].get(key)
        if v is not None and not _is_number(v):
            raise ValueError(f"{path}: field 'run.{key}' must be a number or null, got {v!r}")
    return {**doc, "path": rel}

def _sort_key(run: dict) -> tuple:
    method = run["run"]["method"]
    order = METHOD_ORDER.index(method) if method in METHOD_ORDER else len(METHOD_ORDER)
    return (run["run"]["data"], order, method, run["run"]["name"], run["path"])

def collect_runs(outputs_dir="outputs") -> list[dict]:
    """Every ``metrics.json`` under ``outputs_dir`` (recursively), parsed and sorted deterministically.

    Sorted by data label, then method (copy, zero-shot, full, lora, qlora, then any other), then run
    name, then path. Each dict is the file's content plus ``"path"``: the file's path relative to
    ``outputs_dir`` in posix form (``"smollm2-full/typo/metrics.json"``). A missing ``outputs_dir`` gives
    ``[]``. A malformed file raises ``ValueError`` naming the file and the missing or bad field. A subdirectory
    with its own ``results.md`` is a separate results root (``outputs/quickstart`` from ``bash run.sh``) and is
    left out.
    """
    root = Path(outputs_dir)
    if not root.is_dir():
        return []
    runs = []
    for path in sorted(root.rglob("metrics.json")):
        if not path.is_file() or _under_nested_root(path, root):
            continue
        runs.append(_load_metrics_file(path, path.relative_to(root).as_posix()))
    return sorted(runs, key=_sort_key)

def _under_nested_root(path: Path, root: Path) -> bool:
    return any((d / "results.md").exists() for d in path.parents if d != root and root in d.parents)

def _cell(text) -> str:
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")

def _fmt(value, kind: str) -> str:
    if not _is_number(value):
        return MISSING
    if kind == "rouge":
        return f"{value:.3f}"
    if kind == "bleu":
        return f"{value:.1f}"
    if kind == "pct":
        return f"{100 * value:.1f}%"
    if kind == "int":
        return str(int(value))
    if kind == "time":
        if value < 60:
            return f"{value:.0f} s"
        if value < 3600:
            return f"{value / 60:.1f} min"
        return f"{value / 3600:.2f} h"
    if kind == "mb":
        return f"{value:.0f} MB"
    raise ValueError(kind)
