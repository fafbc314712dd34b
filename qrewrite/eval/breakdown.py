"""Scores per disfluency kind (:data:`qrewrite.data.kinds.KINDS`) and the worst rewrites, for the evaluation
notebook."""

from __future__ import annotations

from numbers import Number
from typing import Iterable

from qrewrite.data.kinds import KINDS, classify_input


def _kind_of(row: dict) -> str:
    kind = row.get("kind")
    if kind in KINDS:
        return kind
    return classify_input(row["input"], row["reference"])

def breakdown_by_kind(rows: Iterable[dict]) -> dict[str, dict]:
    """Scores per disfluency kind.

    ``rows`` are like :func:`qrewrite.metrics.per_example` output (``{"id", "input", "prediction",
    "reference", "rougeL", "exact_match"}``); a row that already carries a valid ``"kind"`` keeps it,
    otherwise it is classified with :func:`classify_input` (input vs reference). Returns
    ``{kind: {"n", "rougeL" (mean), "exact_match" (share 0..1)}}`` for the kinds present, in
    :data:`KINDS` order.
    """
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(_kind_of(row), []).append(row)
    out = {}
    for kind in KINDS:
        g = groups.get(kind)
        if g:
            out[kind] = {
                "n": len(g),
                "rougeL": sum(float(r["rougeL"]) for r in g) / len(g),
                "exact_match": sum(bool(r["exact_match"]) for r in g) / len(g),
            }
    return out

def _id_key(value) -> tuple:
    # Numbers sort numerically and before strings; mixed id types never raise.
    if isinstance(value, Number) and not isinstance(value, bool):
        return (0, value, "")
    return (1, 0, str(value))

def worst_rewrites(rows: Iterable[dict], k: int = 10) -> list[dict]:
    """The ``k`` rows with the lowest ROUGE-L, lowest first, ties broken by id; each returned row is a
    copy of the input row with ``"kind"`` added (see :func:`breakdown_by_kind`)."""
    if k <= 0:
        return []
    ordered = sorted(rows, key=lambda r: (float(r["rougeL"]), _id_key(r.get("id"))))
    return [{**r, "kind": _kind_of(r)} for r in ordered[:k]]
