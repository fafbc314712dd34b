"""Every ``metrics.json`` under ``outputs/`` read and checked (:func:`collect_runs`), and the cell formatting
that the results and ablation tables share."""

from __future__ import annotations

import json
from pathlib import Path

from qrewrite.eval.schema import check_metrics_document, is_number

METHOD_ORDER = ("copy", "rules", "zero-shot", "few-shot", "full", "average", "lora", "qlora")

MISSING = "\u2014"  # em dash

_is_number = is_number  # the name the table modules import

def _load_metrics_file(path: Path, rel: str) -> dict:
    try:
        with open(path, encoding="utf-8-sig") as f:
            doc = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from e
    return {**check_metrics_document(doc, path), "path": rel}

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


def soup_ingredients(run: dict) -> list[str]:
    """The training runs a soup (method ``average``) averaged, from its model name ``average of a + b/checkpoint-N +
    smollm2 (the start, 0.1)``: ``["a", "b"]`` (each run once; the untrained start model left out)."""
    model = run["run"].get("model") or ""
    if run["run"]["method"] != "average" or not model.startswith("average of "):
        return []
    names = [part.split("/")[0].strip() for part in model[len("average of "):].split(" + ")
             if "(the start" not in part]
    return list(dict.fromkeys(names))


def train_time_cell(run: dict, runs) -> str:
    """A run's training time; for a soup, ``soup of N`` and its ingredients' training time added up (each run's
    own steps: a second cycle's time is that cycle's), when every ingredient's evaluation records one."""
    if run["run"]["method"] != "average":
        return _fmt(run["run"].get("train_time_s"), "time")
    parts, model = soup_ingredients(run), run["run"].get("model") or ""
    if not parts:
        return "soup"
    n = model.count(" + ") + 1  # the start model too, for a WiSE-FT average
    times = {r["run"]["name"]: r["run"].get("train_time_s") for r in runs if r["run"]["method"] != "average"}
    found = [times.get(name) for name in parts]
    total = f": {_fmt(sum(found), 'time')}" if all(_is_number(t) for t in found) else ""
    return f"soup of {n}{total}"
