"""``metrics.json``, the record of one evaluation: its fields, built (:func:`metrics_document`) and checked
(:func:`check_metrics_document`) here and nowhere else::

    {"metrics": {"n", "rouge1", "rouge2", "rougeL", "rougeLsum", "bleu", "exact_match", "changed_input",
                 "negation_dropped",
                 "rougeL_ci": [low, high], "exact_match_ci": [low, high]},
     "intervals": {"method", "level", "resamples", "seed", ...},      # how the *_ci were computed
     "run": {"name", "model", "model_path", "model_source", "method", "data", "data_path", "data_fingerprint",
             "n_examples", "steps", "train_time_s", "peak_memory_mb", "training_git_commit",
             "training_data_fingerprint", "git_commit", "command", "created"},
     "eval": {"seconds", "questions_per_s", "batch_size", "max_new_tokens", "decoding", "engine",
              "prompt_format", "quantization"?, "replicas"?, "few_shot"?}}

The metrics are :func:`qrewrite.metrics.compute_metrics`'s; the intervals :mod:`qrewrite.eval.bootstrap`'s. Files
written before the intervals existed may lack them (and ``intervals``); everything but the required fields may be
missing or null.
"""

from __future__ import annotations

import math
from numbers import Real

from qrewrite.eval.bootstrap import settings

METRIC_FIELDS = ("n", "rouge1", "rouge2", "rougeL", "rougeLsum", "bleu", "exact_match", "changed_input",
                 "negation_dropped")
INTERVAL_FIELDS = ("rougeL_ci", "exact_match_ci")
RUN_FIELDS = ("name", "model", "model_path", "model_source", "method", "data", "data_path", "data_fingerprint",
              "n_examples", "steps", "train_time_s", "peak_memory_mb", "training_git_commit",
              "training_data_fingerprint", "git_commit", "command", "created")
EVAL_FIELDS = ("seconds", "questions_per_s", "batch_size", "max_new_tokens", "decoding", "engine", "prompt_format")

REQUIRED_RUN_FIELDS = ("name", "model", "method", "data")
REQUIRED_METRIC_FIELDS = ("rougeL", "exact_match")
NUMERIC_RUN_FIELDS = ("steps", "train_time_s", "peak_memory_mb")


def is_number(v) -> bool:
    return isinstance(v, Real) and not isinstance(v, bool) and math.isfinite(v)


def _exactly(section: str, given: dict, fields: tuple[str, ...]) -> dict:
    missing = [k for k in fields if k not in given]
    if missing:
        raise ValueError(f"metrics.json: section '{section}' lacks {', '.join(missing)}")
    return {k: given[k] for k in fields}


def metrics_document(metrics: dict, intervals: dict, run: dict, evaluation: dict) -> dict:
    """The ``metrics.json`` of one evaluation: ``metrics`` from ``compute_metrics``, ``intervals`` from
    :func:`qrewrite.eval.bootstrap.metric_intervals`, ``run`` with every :data:`RUN_FIELDS`, ``evaluation``
    with every :data:`EVAL_FIELDS` (and any optional ones)."""
    return {"metrics": {**_exactly("metrics", metrics, METRIC_FIELDS), **_exactly("metrics", intervals,
                                                                                   INTERVAL_FIELDS)},
            "intervals": settings(),
            "run": _exactly("run", run, RUN_FIELDS),
            "eval": {**_exactly("eval", evaluation, EVAL_FIELDS), **evaluation}}


def _check_interval(doc: dict, key: str, where) -> None:
    value = doc["metrics"].get(key)
    if value is None:
        return
    if not (isinstance(value, list) and len(value) == 2 and all(is_number(v) for v in value)
            and value[0] <= value[1]):
        raise ValueError(f"{where}: field 'metrics.{key}' must be [low, high], got {value!r}")


def check_metrics_document(doc, where) -> dict:
    """``doc`` when it is a usable ``metrics.json``; else ValueError naming ``where`` and the bad field."""
    if not isinstance(doc, dict):
        raise ValueError(f"{where}: expected a JSON object with 'metrics' and 'run', got {type(doc).__name__}")
    for section in ("metrics", "run"):
        if section not in doc:
            raise ValueError(f"{where}: missing field '{section}'")
        if not isinstance(doc[section], dict):
            raise ValueError(f"{where}: field '{section}' must be an object")
    for key in REQUIRED_RUN_FIELDS:
        if doc["run"].get(key) in (None, ""):
            raise ValueError(f"{where}: missing field 'run.{key}'")
        if not isinstance(doc["run"][key], str):
            raise ValueError(f"{where}: field 'run.{key}' must be a string")
    for key in REQUIRED_METRIC_FIELDS:
        if doc["metrics"].get(key) is None:
            raise ValueError(f"{where}: missing field 'metrics.{key}'")
    for key in METRIC_FIELDS:
        v = doc["metrics"].get(key)
        if v is not None and not is_number(v):
            raise ValueError(f"{where}: field 'metrics.{key}' must be a number, got {v!r}")
    for key in NUMERIC_RUN_FIELDS:
        v = doc["run"].get(key)
        if v is not None and not is_number(v):
            raise ValueError(f"{where}: field 'run.{key}' must be a number or null, got {v!r}")
    for key in INTERVAL_FIELDS:
        _check_interval(doc, key, where)
    return doc
