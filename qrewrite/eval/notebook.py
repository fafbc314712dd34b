"""Small display helpers for the notebooks in ``notebooks/``: tables of records, reports and scores.

The notebooks call the package's own functions (``prepare_data``, ``load_config``, ``train``,
``evaluate_model``, ...) in the same order as the command line; what lives here only turns their results into
``pandas.DataFrame`` tables, plus two "do not redo finished work" checks (:func:`completed_run`,
:func:`evaluate_or_reuse`) so re-executing a notebook on a finished run shows it instead of recomputing it.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from qrewrite.data.kinds import KINDS, classify_input
from qrewrite.eval.breakdown import breakdown_by_kind
from qrewrite.prompt import IGNORE_INDEX
from qrewrite.run import Run

__all__ = [
    "records_frame", "report_frame", "word_count_frame", "kind_counts", "kind_frame", "kind_examples",
    "finetune_command", "supervised_parts", "completed_run", "loss_history",
    "metrics_frame", "breakdown_frame",
]


def _pandas():
    import pandas as pd  # imported on first use: the package itself does not need pandas
    return pd


# ---- data ---------------------------------------------------------------------------------------------------

def records_frame(records: list[dict], n: int | None = None, columns=("id", "input", "target")):
    """The first ``n`` records (all when ``n`` is None) as a table with the given columns."""
    rows = records if n is None else records[:n]
    return _pandas().DataFrame([{c: r.get(c) for c in columns} for r in rows], columns=list(columns))


def report_frame(report: dict):
    """One row per split of a ``prepare_data`` report: read, kept, and counts per skip / clean / flag reason."""
    rows = []
    for split, rep in report.get("splits", {}).items():
        row = {"split": split, "read": rep.get("n_read"), "kept": rep.get("n_kept")}
        for kind in ("skipped", "cleaned", "flagged"):
            for reason, ids in sorted((rep.get(kind) or {}).items()):
                row[f"{kind}: {reason}"] = len(ids)
        rows.append(row)
    return _pandas().DataFrame(rows).set_index("split").fillna(0).convert_dtypes()


def word_count_frame(splits: dict[str, list[dict]]):
    """Words per input and per target of each split (count, mean, quartiles, max)."""
    pd = _pandas()
    cols = {}
    for name, records in splits.items():
        for field in ("input", "target"):
            cols[f"{name} {field}"] = pd.Series([len(r[field].split()) for r in records], dtype="int64")
    return pd.DataFrame(cols).describe().T[["count", "mean", "min", "25%", "50%", "75%", "max"]].round(1)


def kind_counts(records: list[dict]) -> dict[str, int]:
    """How many records fall in each :data:`qrewrite.data.kinds.KINDS` (input vs target), in that order."""
    counts = Counter(classify_input(r["input"], r["target"]) for r in records)
    return {k: counts.get(k, 0) for k in KINDS}


def kind_frame(splits: dict[str, list[dict]]):
    """Kinds of disfluency per split: counts and shares."""
    pd = _pandas()
    counts = pd.DataFrame({name: kind_counts(recs) for name, recs in splits.items()})
    shares = (counts / counts.sum()).round(3).add_suffix(" share")
    return pd.concat([counts, shares], axis=1)


def kind_examples(records: list[dict]):
    """The first record of each kind, as a table (kind, input, target)."""
    seen: dict[str, dict] = {}
    for r in records:
        kind = classify_input(r["input"], r["target"])
        if kind not in seen:
            seen[kind] = {"kind": kind, "input": r["input"], "target": r["target"]}
        if len(seen) == len(KINDS):
            break
    return _pandas().DataFrame([seen[k] for k in KINDS if k in seen], columns=["kind", "input", "target"])


# ---- training -----------------------------------------------------------------------------------------------

def finetune_command(config, overrides: dict | None = None, resume: bool = False) -> str:
    """The ``python finetune.py ...`` command line that trains with the same arguments as
    ``qrewrite.train.trainer.train(load_config(config, overrides), resume=resume)``."""
    import shlex

    args = ["python", "finetune.py"] + (["--config", str(config)] if config else [])
    for key, value in (overrides or {}).items():
        args.append("--" + key.replace("_", "-"))
        if isinstance(value, (list, tuple)):
            args += [str(v) for v in value]
        else:
            args.append(str(value).lower() if isinstance(value, bool) else str(value))
    if resume:
        args.append("--resume")
    return shlex.join(args)


def supervised_parts(tokenizer, example: dict) -> dict:
    """Split an :func:`qrewrite.prompt.encode_example` result into what the loss ignores and what it trains on.

    Returns ``{"n_tokens", "n_masked", "n_supervised", "masked_text", "supervised_text"}``, decoded with the
    special tokens kept so the end-of-turn token is visible."""

    ids, labels = example["input_ids"], example["labels"]
    masked = [i for i, lab in zip(ids, labels) if lab == IGNORE_INDEX]
    supervised = [lab for lab in labels if lab != IGNORE_INDEX]
    return {"n_tokens": len(ids), "n_masked": len(masked), "n_supervised": len(supervised),
            "masked_text": tokenizer.decode(masked, skip_special_tokens=False),
            "supervised_text": tokenizer.decode(supervised, skip_special_tokens=False)}


def completed_run(cfg) -> Path | None:
    """The run directory of ``cfg`` when it already holds a complete run trained with exactly this config."""

    run = Run.for_config(cfg)
    try:
        same = run.is_complete() and run.config().to_dict() == cfg.to_dict()
    except (OSError, ValueError):
        return None
    return run.path if same else None


def loss_history(run_dir):
    """``trainer_log.json`` of a run as a table indexed by step: loss, eval_loss, eval_rougeL_sample, ..."""
    pd = _pandas()
    log = Run(run_dir).trainer_log()
    keep = ("loss", "eval_loss", "eval_rougeL_sample", "eval_rougeL_sample_typo", "learning_rate", "grad_norm")
    rows = [{"step": e["step"], **{k: e[k] for k in keep if k in e}} for e in log if "step" in e]
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    return frame.groupby("step").first().reindex(columns=[k for k in keep if k in frame.columns])


# ---- evaluation ---------------------------------------------------------------------------------------------


def metrics_frame(results: dict[str, dict]):
    """One row per evaluation (label -> ``metrics.json`` dict): ROUGE, BLEU, exact match, changed share."""
    rows = []
    for label, res in results.items():
        m, run = res["metrics"], res["run"]
        rows.append({"system": label, "data": run.get("data"), "method": run.get("method"), "n": m.get("n"),
                     "ROUGE-1": m.get("rouge1"), "ROUGE-2": m.get("rouge2"), "ROUGE-L": m.get("rougeL"),
                     "BLEU": m.get("bleu"), "EM": m.get("exact_match"), "changed": m.get("changed_input")})
    return _pandas().DataFrame(rows).set_index("system").round(4)


def breakdown_frame(rows_by_system: dict[str, list[dict]]):
    """:func:`qrewrite.data.kinds.breakdown_by_kind` of several systems side by side (n, ROUGE-L, EM per kind)."""
    pd = _pandas()
    parts = {}
    for label, rows in rows_by_system.items():
        parts[label] = pd.DataFrame(breakdown_by_kind(rows)).T.reindex(columns=["n", "rougeL", "exact_match"])
    frame = pd.concat(parts, axis=1)
    return frame.reindex([k for k in KINDS if k in frame.index]).round(4)
