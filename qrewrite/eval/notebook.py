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
    "recommended_name", "average_recipe_of", "config_of_run", "ingredient_name", "plan_ingredients",
    "copy_kind", "copies_frame", "committed_trainer_log",
    "metrics_frame", "breakdown_frame", "paired_row", "evaluations_of", "decoding_of_command",
    "committed_evaluation", "log_frame",
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
    return log_frame(Run(run_dir).trainer_log())


def log_frame(log: list[dict]):
    """A Trainer log history (``trainer_log.json``'s list) as :func:`loss_history`'s table."""
    pd = _pandas()
    keep = ("loss", "eval_loss", "eval_rougeL_sample", "eval_rougeL_sample_typo", "learning_rate", "grad_norm")
    rows = [{"step": e["step"], **{k: e[k] for k in keep if k in e}} for e in log if "step" in e]
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    return frame.groupby("step").first().reindex(columns=[k for k in keep if k in frame.columns])


def committed_trainer_log(outputs_dir, run_name: str) -> Path | None:
    """The ``trainer_log.json`` an evaluation of training run ``run_name`` committed under
    ``outputs_dir/run_name/`` (beside its first evaluation), or None."""
    found = sorted(Path(outputs_dir, run_name).rglob("trainer_log.json"), key=lambda p: len(p.parts))
    return found[0] if found else None


# ---- the recommended recipe ---------------------------------------------------------------------------------

def recommended_name(outputs_dir="outputs") -> str:
    """The recommended model's run name: ``recommended`` in ``outputs_dir/ablations.yaml``."""
    from qrewrite.eval.ablations import SPEC_NAME, load_spec

    spec = load_spec(Path(outputs_dir) / SPEC_NAME)
    if not spec.get("recommended"):
        raise ValueError(f"{Path(outputs_dir) / SPEC_NAME} names no recommended model")
    return spec["recommended"]


def _yaml_mapping(path: Path) -> dict:
    import yaml

    loaded = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    return loaded if isinstance(loaded, dict) else {}


def _the_one(found: list[Path], what: str) -> Path:
    if len(found) != 1:
        raise FileNotFoundError(f"{what}: {len(found)} files found ({', '.join(map(str, found)) or 'none'}), "
                                "expected one")
    return found[0]


def average_recipe_of(name: str, recipes_dir="configs/average") -> Path:
    """The average recipe under ``recipes_dir`` that makes run ``name`` (its ``run_name``)."""
    found = [p for p in sorted(Path(recipes_dir).glob("*.yaml")) if _yaml_mapping(p).get("run_name") == name]
    return _the_one(found, f"the average recipe of {name!r} under {recipes_dir}")


def config_of_run(run_name: str, configs_dir="configs") -> Path:
    """The training config under ``configs_dir`` (recursively; average recipes left out) that sets
    ``run_name: <run_name>``."""
    found = []
    for path in sorted(Path(configs_dir).rglob("*.yaml")):
        values = _yaml_mapping(path)
        if "models" not in values and values.get("run_name") == run_name:
            found.append(path)
    return _the_one(found, f"the training config of run {run_name!r} under {configs_dir}")


def ingredient_name(source: str) -> str:
    """The training run an average recipe's ingredient comes from: ``weights/<run>``, ``.../model`` or
    ``.../checkpoint-N``."""
    path = Path(source)
    return path.parent.name if path.name == "model" or path.name.startswith("checkpoint-") else path.name


def plan_ingredients(recipe, configs_dir, overrides: dict, demo: dict, prefix: str, reuse: bool = True) -> list[dict]:
    """What the notebook does for each ingredient of ``recipe`` (an ``AverageConfig``), in order.

    Each is ``{"name", "source", "weight", "config_file", "config"`` (the full-length ``TrainConfig``, with
    ``overrides``), ``"run_dir"`` (its complete run when ``reuse`` finds one, else None), ``"demo"`` (else: the
    shortened demonstration's config: ``demo``'s fields, run ``prefix + run_name``) and ``"demo_overrides"}``.
    An ingredient that continues from an earlier ingredient's weights continues from that one's demonstration
    when the full-length run is not there."""
    from qrewrite.config import load_config

    plans = []
    for source, weight in zip(recipe.models, recipe.weights()):
        name = ingredient_name(source)
        config_file = config_of_run(name, configs_dir)
        cfg = load_config(config_file, overrides)
        run_dir = completed_run(cfg) if reuse else None
        demo_cfg, demo_overrides = None, None
        if run_dir is None:
            demo_overrides = {**overrides, **demo, "run_name": prefix + cfg.run_name}
            model = _continued_from(cfg.model, plans)
            if model != cfg.model:
                demo_overrides["model"] = model
            demo_cfg = load_config(config_file, demo_overrides)
        plans.append({"name": name, "source": source, "weight": weight, "config_file": config_file,
                      "config": cfg, "run_dir": run_dir, "demo": demo_cfg, "demo_overrides": demo_overrides})
    return plans


def _continued_from(model: str, earlier: list[dict]) -> str:
    """``model``, or the same path in an earlier ingredient's demonstration run when ``model`` lies in that
    ingredient's full-length run directory, which is not there."""
    for plan in earlier:
        if plan["demo"] is None:
            continue
        full = Path(plan["config"].output_root, plan["config"].run_name).resolve()
        try:
            rest = Path(model).resolve().relative_to(full)
        except ValueError:
            continue
        return str(Path(plan["demo"].output_root, plan["demo"].run_name, rest))
    return model


COPY_KINDS = {"": "original", "typo": "typo'd copy", "synth": "synthetic disfluent copy",
              "names": "name-swapped copy"}


def copy_kind(record_id) -> str:
    """What a training record is, from the id suffix :func:`qrewrite.train.trainer.training_records` gives its
    copies: ``original``, ``typo'd copy`` (``#typo1``), ``synthetic disfluent copy`` (``#synth1``), ... ;
    ``extra question`` for pairs made from ``extra_questions``."""
    rid = str(record_id)
    if rid.startswith("extra-"):
        return "extra question"
    suffix = rid.rpartition("#")[2] if "#" in rid else ""
    return COPY_KINDS.get(suffix.rstrip("0123456789"), "other")


def copies_frame(records_by_run: dict[str, list[dict]]):
    """Training records per kind of copy (:func:`copy_kind`) for each run, with the total."""
    pd = _pandas()
    counts = {name: Counter(copy_kind(r["id"]) for r in records) for name, records in records_by_run.items()}
    frame = pd.DataFrame(counts).fillna(0).astype(int)
    frame.loc["total"] = frame.sum()
    return frame


# ---- evaluation ---------------------------------------------------------------------------------------------


def metrics_frame(results: dict[str, dict]):
    """One row per evaluation (label -> ``metrics.json`` dict): ROUGE, BLEU, exact match with their 95 % intervals
    where the file has them, changed share."""
    rows = []
    for label, res in results.items():
        m, run = res["metrics"], res["run"]
        rows.append({"system": label, "data": run.get("data"), "method": run.get("method"), "n": m.get("n"),
                     "ROUGE-1": m.get("rouge1"), "ROUGE-2": m.get("rouge2"), "ROUGE-L": m.get("rougeL"),
                     "ROUGE-L 95% CI": _interval_text(m.get("rougeL_ci"), "{:.4f}"),
                     "BLEU": m.get("bleu"), "EM": m.get("exact_match"),
                     "EM 95% CI": _interval_text(m.get("exact_match_ci"), "{:.1%}"), "changed": m.get("changed_input")})
    return _pandas().DataFrame(rows).set_index("system").round(4)


def _interval_text(pair, fmt: str) -> str:
    if not (isinstance(pair, (list, tuple)) and len(pair) == 2):
        return "\u2014"
    return f"{fmt.format(pair[0])}\u2013{fmt.format(pair[1])}"


def paired_row(rows: list[dict], other_rows: list[dict]) -> dict:
    """The paired difference (``rows`` minus ``other_rows``, matched by id) of mean ROUGE-L and exact match, with
    95 % bootstrap intervals (:func:`qrewrite.eval.bootstrap.paired_intervals`) and whether each excludes zero."""
    from qrewrite.eval.bootstrap import excludes_zero, paired_intervals

    other = {r["id"]: r for r in other_rows}
    if len(other) != len(rows) or any(r["id"] not in other for r in rows):
        raise ValueError("a paired difference needs predictions of the same questions on both sides")
    mine = [other[r["id"]] for r in rows]
    diff = paired_intervals([r["rougeL"] for r in rows], [r["exact_match"] for r in rows],
                            [r["rougeL"] for r in mine], [r["exact_match"] for r in mine])
    rouge_ci, em_ci = diff["rougeL_diff_ci"], diff["exact_match_diff_ci"]
    return {"n": len(rows), "ROUGE-L diff": diff["rougeL_diff"],
            "ROUGE-L diff 95% CI": _interval_text(rouge_ci, "{:+.4f}"), "ROUGE-L: excludes 0": excludes_zero(*rouge_ci),
            "EM diff": diff["exact_match_diff"], "EM diff 95% CI": _interval_text(em_ci, "{:+.1%}"),
            "EM: excludes 0": excludes_zero(*em_ci)}


def decoding_of_command(command: str) -> dict:
    """The decoding flags (``--num-beams``, ``--copy-bonus``, ...) of an ``evaluate`` command line, as the
    :class:`qrewrite.infer.decoding.Decoding` fields it sets: ``{}`` for greedy, ``{"copy_bonus": 1.0}``, ..."""
    import argparse
    import dataclasses
    import shlex

    from qrewrite.flags import add_options, from_args
    from qrewrite.infer.decoding import Decoding

    parser = argparse.ArgumentParser(add_help=False)
    add_options(parser, Decoding)
    args, _ = parser.parse_known_args(shlex.split(command or ""))
    decoding, default = from_args(Decoding, args), Decoding()
    return {f.name: getattr(decoding, f.name) for f in dataclasses.fields(Decoding)
            if getattr(decoding, f.name) != getattr(default, f.name)}


def evaluations_of(model_path: str, outputs_dir="outputs") -> dict[str, dict]:
    """The evaluations committed under ``outputs_dir`` of the model at ``model_path`` (metrics.json
    ``run.model_path``): evaluation name -> the decoding flags it used (:func:`decoding_of_command`)."""
    from qrewrite.files import read_json

    found: dict[str, dict] = {}
    for path in sorted(Path(outputs_dir).glob("*/**/metrics.json")):
        run = read_json(path).get("run", {})
        if run.get("model_path") == model_path and run.get("name"):
            found.setdefault(run["name"], decoding_of_command(run.get("command", "")))
    return found


def committed_evaluation(out_dir, data, limit: int = 0) -> tuple[dict, list[dict], str]:
    """A finished evaluation in ``out_dir`` whose model is not at hand: its ``predictions.jsonl`` scored again
    against ``data`` (its first ``limit`` questions when not 0; :func:`qrewrite.eval.scoring.score_predictions`).
    Returns ``(metrics.json with the re-scored metrics, the prediction rows, a sentence saying what was scored and
    whether it matches)``."""
    import tempfile

    from qrewrite.data.records import load_split
    from qrewrite.eval.scoring import score_predictions
    from qrewrite.files import atomic_write_json, file_fingerprint, read_json, read_jsonl

    out_dir = Path(out_dir)
    committed = read_json(out_dir / "metrics.json")
    with tempfile.TemporaryDirectory() as tmp:
        references = data
        if limit:
            references = atomic_write_json(Path(tmp) / "references.json", load_split(data)[:limit])
        scores = score_predictions(out_dir / "predictions.jsonl", references)
    keys = ("n", "rouge1", "rouge2", "rougeL", "rougeLsum", "bleu", "exact_match", "rougeL_ci", "exact_match_ci")
    metrics = {**committed["metrics"], **{k: scores[k] for k in keys if k in scores}}
    same = all(_close(committed["metrics"].get(k), scores.get(k)) for k in ("n", "rougeL", "exact_match"))
    data_note = "" if committed["run"].get("data_fingerprint") == file_fingerprint(data) else \
        f"; {data} is not the file it was evaluated on (data fingerprint differs)"
    run = committed["run"]
    scored = f"scored against {data}" + (f" (its first {limit} questions)" if limit else "")
    verdict = "the same as its committed metrics.json" if same else \
        f"NOT the committed metrics.json's (ROUGE-L {committed['metrics'].get('rougeL')}, " \
        f"EM {committed['metrics'].get('exact_match')})"
    note = (f"{out_dir}/predictions.jsonl ({scores['n']} predictions of {run.get('model_path')}, made by "
            f"`{run.get('command')}` at commit {str(run.get('git_commit'))[:10]}) {scored}: ROUGE-L "
            f"{scores['rougeL']:.4f}, EM {scores['exact_match']:.2%}, {verdict}{data_note}")
    return {**committed, "metrics": metrics}, read_jsonl(out_dir / "predictions.jsonl"), note


def _close(a, b) -> bool:
    return isinstance(a, (int, float)) and isinstance(b, (int, float)) and abs(a - b) < 1e-9


def breakdown_frame(rows_by_system: dict[str, list[dict]]):
    """:func:`qrewrite.data.kinds.breakdown_by_kind` of several systems side by side (n, ROUGE-L, EM per kind)."""
    pd = _pandas()
    parts = {}
    for label, rows in rows_by_system.items():
        parts[label] = pd.DataFrame(breakdown_by_kind(rows)).T.reindex(columns=["n", "rougeL", "exact_match"])
    frame = pd.concat(parts, axis=1)
    return frame.reindex([k for k in KINDS if k in frame.index]).round(4)
