"""Score a predictions file against references: ``python -m qrewrite score --predictions F --references R``.

Predictions are JSON Lines of ``{"id", "prediction"}`` (what ``rewrite --no-input`` writes, e.g. the committed
blind-test predictions); references are any file ``prepare`` reads, the raw Disfl-QA ``{id: {"original",
"disfluent"}}`` included. Every reference must have one prediction and every prediction a reference: an id
missing on either side is an error that names the ids, so a partial predictions file never scores as complete.
The scores are those of ``evaluate`` (:func:`qrewrite.metrics.compute_metrics`: rouge-score with stemming, mean
F; exact match after whitespace normalisation; sacrebleu BLEU).
"""

from __future__ import annotations

import json
from pathlib import Path

from qrewrite.data.records import read_records
from qrewrite.errors import DataError
from qrewrite.files import file_fingerprint
from qrewrite.metrics import bleu_signature, compute_metrics

_SHOWN = 10


def _ids(ids: list[str]) -> str:
    return ", ".join(ids[:_SHOWN]) + (f" ... ({len(ids)} in all)" if len(ids) > _SHOWN else "")


def read_predictions(path) -> dict[str, str]:
    """id -> prediction from a JSON Lines file of ``{"id", "prediction"}``; any bad line raises DataError."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: predictions file not found")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e})") from None
    predictions: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}: line {n} is not JSON ({e.msg}); expected {{\"id\", \"prediction\"}}") from None
        if not isinstance(row, dict):
            raise DataError(f"{path}: line {n}: expected an object {{\"id\", \"prediction\"}}, "
                            f"got {type(row).__name__}")
        for name in ("id", "prediction"):
            if name not in row:
                raise DataError(f"{path}: line {n}: no '{name}' field (fields: {', '.join(map(str, row)) or 'none'})")
        rid, prediction = row["id"], row["prediction"]
        if isinstance(rid, bool) or not isinstance(rid, (str, int)):
            raise DataError(f"{path}: line {n}: 'id' must be a string, got {type(rid).__name__}")
        if not isinstance(prediction, str):
            raise DataError(f"{path}: line {n} (id {rid}): 'prediction' must be a string, "
                            f"got {type(prediction).__name__}")
        if str(rid) in predictions:
            raise DataError(f"{path}: line {n}: id {rid} has a prediction already (one line per id)")
        predictions[str(rid)] = prediction
    if not predictions:
        raise DataError(f"{path}: no predictions in the file (expected one {{\"id\", \"prediction\"}} per line)")
    return predictions


def score_predictions(predictions_path, references_path) -> dict:
    """The scores of a predictions file against a references file, with both files' fingerprints."""
    predictions = read_predictions(predictions_path)
    records, report = read_records(references_path)
    references = {r["id"]: r for r in records}
    unusable = {rid for ids in report.skipped.values() for rid in ids}
    missing = [rid for rid in references if rid not in predictions]
    unknown = [rid for rid in predictions if rid not in references and rid not in unusable]
    if missing or unknown:
        problems = []
        if missing:
            problems.append(f"{len(missing)} reference ids have no prediction: {_ids(missing)}")
        if unknown:
            problems.append(f"{len(unknown)} predicted ids are not in the references: {_ids(unknown)}")
        raise DataError(f"{predictions_path} against {references_path}: " + "; ".join(problems))
    ids = list(references)
    metrics = compute_metrics([references[i]["input"] for i in ids], [predictions[i] for i in ids],
                              [references[i]["target"] for i in ids])
    return {**metrics, "bleu_signature": bleu_signature(),
            "not_scored": {reason: rids for reason, rids in report.skipped.items() if rids},
            "predictions": str(predictions_path), "references": str(references_path),
            "predictions_fingerprint": file_fingerprint(predictions_path),
            "references_fingerprint": file_fingerprint(references_path)}


def format_scores(scores: dict) -> str:
    lines = [f"{scores['predictions']} against {scores['references']} ({scores['n']} questions): "
             f"ROUGE-1 {scores['rouge1']:.4f}  ROUGE-2 {scores['rouge2']:.4f}  ROUGE-L {scores['rougeL']:.4f}  "
             f"BLEU {scores['bleu']:.2f}  EM {scores['exact_match']:.2%}"]
    for reason, ids in scores["not_scored"].items():
        lines.append(f"  not scored: {len(ids)} unusable reference records ({reason}): {_ids(ids)}")
    return "\n".join(lines)
