"""Add the 95 % bootstrap intervals to ``metrics.json`` files written before ``evaluate`` computed them.

Each interval comes from the evaluation's own ``predictions.jsonl`` (per-question ROUGE-L and exact match), once
the rows are checked to be the ones the metrics were computed from (same count, same means); nothing else in the
file changes. ``intervals`` records the bootstrap settings, the command and the commit that added them.
"""

from __future__ import annotations

from pathlib import Path

from qrewrite.eval.bootstrap import metric_intervals, settings
from qrewrite.eval.schema import INTERVAL_FIELDS
from qrewrite.files import atomic_write_json, read_json, read_jsonl


def _checked_rows(path: Path, metrics: dict) -> list[dict]:
    predictions = path.parent / "predictions.jsonl"
    if not predictions.is_file():
        raise ValueError(f"{path}: no predictions.jsonl beside it to compute intervals from")
    rows = read_jsonl(predictions)
    n = len(rows)
    if n != metrics.get("n"):
        raise ValueError(f"{predictions}: {n} rows, but {path} scored {metrics.get('n')} questions")
    for key in ("rougeL", "exact_match"):
        if abs(sum(float(r[key]) for r in rows) / n - metrics[key]) > 1e-9:
            raise ValueError(f"{predictions}: the mean of '{key}' is not {path}'s metrics.{key}")
    return rows


def with_intervals(doc: dict, path: Path, added_by: dict) -> dict:
    """``doc`` (a ``metrics.json``) with ``metrics.rougeL_ci``, ``metrics.exact_match_ci`` and ``intervals``."""
    rows = _checked_rows(path, doc["metrics"])
    metrics = {k: v for k, v in doc["metrics"].items() if k not in INTERVAL_FIELDS}
    metrics.update(metric_intervals([r["rougeL"] for r in rows], [r["exact_match"] for r in rows]))
    out = {"metrics": metrics, "intervals": {**settings(), "from": "predictions.jsonl", **added_by}}
    return {**out, **{k: v for k, v in doc.items() if k not in out}}


def add_intervals(paths, added_by: dict) -> list[Path]:
    """Rewrite each ``metrics.json`` of ``paths`` that lacks its intervals; returns those rewritten. A file that
    has them already is left as it is (its intervals are checked to be what its predictions give)."""
    written = []
    for path in map(Path, paths):
        doc = read_json(path)
        new = with_intervals(doc, path, added_by)
        if all(k in doc["metrics"] for k in INTERVAL_FIELDS):
            if any(doc["metrics"][k] != new["metrics"][k] for k in INTERVAL_FIELDS):
                raise ValueError(f"{path}: its intervals are not what its predictions.jsonl gives")
            continue
        atomic_write_json(path, new)
        written.append(path)
    return written
