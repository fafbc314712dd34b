"""Score a predictions file against references: ``python -m qrewrite score --predictions F --references R``.

Predictions are JSON Lines of ``{"id", "prediction"}`` (what ``rewrite --no-input`` writes, e.g. the committed
blind-test predictions); references are any file ``prepare`` reads, the raw Disfl-QA ``{id: {"original",
"disfluent"}}`` included. Every reference must have one prediction and every prediction a reference: an id
missing on either side is an error that names the ids, so a partial predictions file never scores as complete.
The scores are those of ``evaluate`` (:func:`qrewrite.metrics.compute_metrics`: rouge-score with stemming, mean
F; exact match after whitespace normalisation; sacrebleu BLEU), with 95 % bootstrap intervals of ROUGE-L and exact
match over questions (:mod:`qrewrite.eval.bootstrap`). ``--against OTHER`` scores a second predictions file of the
same questions and reports the paired difference (this file minus OTHER) with its interval.
"""

from __future__ import annotations

import json
from pathlib import Path

from qrewrite.data.records import read_records
from qrewrite.errors import DataError
from qrewrite.eval.bootstrap import excludes_zero, metric_intervals, paired_intervals
from qrewrite.eval.bootstrap import settings as bootstrap_settings
from qrewrite.files import file_fingerprint
from qrewrite.metrics import bleu_signature, compute_metrics, per_example

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


def _matched(predictions_path, references_path, report, references: dict) -> dict[str, str]:
    """The predictions of ``predictions_path``, checked to cover exactly the usable references."""
    predictions = read_predictions(predictions_path)
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
    return predictions


def _per_question(predictions: dict[str, str], references: dict, ids: list[str]) -> tuple[list[float], list[bool]]:
    rows = per_example([references[i]["input"] for i in ids], [predictions[i] for i in ids],
                       [references[i]["target"] for i in ids], ids=ids)
    return [r["rougeL"] for r in rows], [r["exact_match"] for r in rows]


def score_predictions(predictions_path, references_path, against=None) -> dict:
    """The scores of a predictions file against a references file, with their 95 % bootstrap intervals
    (``rougeL_ci``, ``exact_match_ci``) and both files' fingerprints. ``against``: a second predictions file of
    the same questions; its scores and the paired differences (this file minus it) go under ``"against"``."""
    records, report = read_records(references_path)
    references = {r["id"]: r for r in records}
    predictions = _matched(predictions_path, references_path, report, references)
    ids = list(references)
    metrics = compute_metrics([references[i]["input"] for i in ids], [predictions[i] for i in ids],
                              [references[i]["target"] for i in ids])
    rouge_l, exact = _per_question(predictions, references, ids)
    scores = {**metrics, **metric_intervals(rouge_l, exact), "intervals": bootstrap_settings(),
              "bleu_signature": bleu_signature(),
              "not_scored": {reason: rids for reason, rids in report.skipped.items() if rids},
              "predictions": str(predictions_path), "references": str(references_path),
              "predictions_fingerprint": file_fingerprint(predictions_path),
              "references_fingerprint": file_fingerprint(references_path)}
    if against is not None:
        other = _matched(against, references_path, report, references)
        other_rouge_l, other_exact = _per_question(other, references, ids)
        scores["against"] = {"predictions": str(against), "predictions_fingerprint": file_fingerprint(against),
                             "rougeL": sum(other_rouge_l) / len(ids), "exact_match": sum(other_exact) / len(ids),
                             **paired_intervals(rouge_l, exact, other_rouge_l, other_exact)}
    return scores


def _interval(pair, kind: str) -> str:
    if kind == "pct":
        return f"[{pair[0]:.2%}, {pair[1]:.2%}]"
    return f"[{pair[0]:.4f}, {pair[1]:.4f}]"


def format_scores(scores: dict) -> str:
    lines = [f"{scores['predictions']} against {scores['references']} ({scores['n']} questions): "
             f"ROUGE-1 {scores['rouge1']:.4f}  ROUGE-2 {scores['rouge2']:.4f}  ROUGE-L {scores['rougeL']:.4f}  "
             f"BLEU {scores['bleu']:.2f}  EM {scores['exact_match']:.2%}",
             f"  95 % intervals (bootstrap over questions): ROUGE-L {_interval(scores['rougeL_ci'], 'rouge')}  "
             f"EM {_interval(scores['exact_match_ci'], 'pct')}"]
    if "against" in scores:
        other = scores["against"]
        verdict = {True: "interval excludes 0", False: "interval includes 0"}
        lines.append(f"  against {other['predictions']}: ROUGE-L {other['rougeL']:.4f}  EM {other['exact_match']:.2%}")
        lines.append(f"  difference (this minus that, paired 95 % interval): "
                     f"ROUGE-L {other['rougeL_diff']:+.4f} {_interval(other['rougeL_diff_ci'], 'rouge')} "
                     f"({verdict[excludes_zero(*other['rougeL_diff_ci'])]})  "
                     f"EM {other['exact_match_diff']:+.2%} {_interval(other['exact_match_diff_ci'], 'pct')} "
                     f"({verdict[excludes_zero(*other['exact_match_diff_ci'])]})")
    for reason, ids in scores["not_scored"].items():
        lines.append(f"  not scored: {len(ids)} unusable reference records ({reason}): {_ids(ids)}")
    return "\n".join(lines)
