"""Score a model (or the copy-input baseline) on a split and write the evaluation directory.

``outputs/<run>/`` gets:
  predictions.jsonl   id, input, prediction, reference, per-example ROUGE-L and exact match
  train_io.json       [{input, prediction, reference}] for a sample of training questions (when asked)
  metrics.json        corpus metrics, their 95 % bootstrap intervals and provenance (model, method, data
                      fingerprint, command, git commit): :mod:`qrewrite.eval.schema`; written last and atomically,
                      so it exists only for a finished evaluation. An older evaluation's files stay as they were
                      until the new one has rewritten every question; one of another model or other data is
                      replaced only with --overwrite
  config.yaml         the training run's resolved config and trainer_log.json its loss history, when the model
                      is a qrewrite run (once per run directory: not repeated in a nested evaluation's directory)
"""

from __future__ import annotations

import datetime as dt
import random
import shutil
import time
from pathlib import Path

from qrewrite.card import write_model_card
from qrewrite.data.records import load_split
from qrewrite.errors import ConfigError, QrewriteError, RunStateError
from qrewrite.eval.bootstrap import metric_intervals
from qrewrite.eval.options import EvaluateOptions
from qrewrite.eval.schema import metrics_document
from qrewrite.files import (
    atomic_write_json,
    atomic_write_jsonl,
    check_writable,
    command_line,
    file_fingerprint,
    git_commit,
    output_dir_targets,
    read_json,
    read_jsonl,
    repo_relative,
    signals_deferred,
)
from qrewrite.infer.base import BASELINES
from qrewrite.infer.decoding import GREEDY, Decoding
from qrewrite.infer.rewriter import load_rewriter
from qrewrite.metrics import compute_metrics, per_example
from qrewrite.progress import progress_bar
from qrewrite.run import Run

EVALUATION_FILES = ("predictions.jsonl", "train_io.json", "metrics.json", "config.yaml", "trainer_log.json")


def evaluate_model(model: str, data: str | Path, out: str | Path, **options) -> dict:
    """Rewrite every question of ``data`` with ``model`` (``copy`` = the copy-input baseline), score, write ``out``.

    ``options`` are :class:`~qrewrite.eval.options.EvaluateOptions`' fields (the ``evaluate`` command's options):
    ``max_new_tokens`` defaults to the model's saved generation budget (64 for an untuned model); ``few_shot=k``
    puts k seeded training pairs of ``shots_from`` in the prompt (earlier user / assistant turns); ``decoding``
    sets beam search and the copy bonus (greedy by default); ``engine`` what decodes (``ctranslate2``: the model
    converted to CTranslate2, ``quantization`` int8 by default)."""
    return evaluate(EvaluateOptions(model=str(model), data=str(data), out=str(out), **options))


def evaluate(opts: EvaluateOptions) -> dict:
    """:func:`evaluate_model` with its options as one :class:`~qrewrite.eval.options.EvaluateOptions`."""
    out_dir = Path(opts.out)
    targets = output_dir_targets(out_dir, EVALUATION_FILES, what="--out",
                                 inputs=(opts.data, opts.train_data, opts.shots_from if opts.few_shot else None))
    check_writable(out_dir)
    commit = git_commit()  # before the old metrics.json goes: deleting a committed file would read as +dirty
    records, train_records = _records(opts)
    if not opts.overwrite:
        refuse_replacing(out_dir, opts.model, opts.data)
    shots = few_shot_examples(opts.shots_from, opts.few_shot) if opts.few_shot else []
    if opts.few_shot and opts.model in BASELINES:
        raise ConfigError(f"--few-shot prompts a model; --model {opts.model} has no prompt")
    rewriter = load_rewriter(opts.model, examples=tuple((r["input"], r["target"]) for r in shots), **opts.loading())
    run = Run.owning(opts.model)
    run_info = run.info() if run else None
    predictions, train_predictions, seconds = _rewrite_all(rewriter, records, train_records, opts.show_progress)

    inputs, refs = [r["input"] for r in records], [r["target"] for r in records]
    metrics = compute_metrics(inputs, predictions, refs)
    rows = per_example(inputs, predictions, refs, ids=[r["id"] for r in records])
    intervals = metric_intervals([r["rougeL"] for r in rows], [r["exact_match"] for r in rows])
    result = metrics_document(metrics, intervals, _run_section(opts, out_dir, rewriter, run_info, len(records), commit),
                              _eval_section(opts, rewriter, shots, len(records), seconds))
    with signals_deferred():  # an older evaluation's files are replaced together, or not at all
        targets["metrics.json"].unlink(missing_ok=True)  # until the new one is written: no finished evaluation
        atomic_write_jsonl(out_dir / "predictions.jsonl", rows)
        if train_records:
            atomic_write_json(out_dir / "train_io.json", [
                {"input": r["input"], "prediction": p, "reference": r["target"]}
                for r, p in zip(train_records, train_predictions)])
        stale = ([] if train_records else ["train_io.json"]) + ([] if run else ["config.yaml", "trainer_log.json"])
        for name in stale:  # an older evaluation's: of another model, or with training questions
            targets[name].unlink(missing_ok=True)
        if run is not None:
            _keep_training_files(run, out_dir)
        atomic_write_json(out_dir / "metrics.json", result)
    if run is not None and run.is_complete() and run.model_dir.is_dir() and not opts.limit:
        write_model_card(run.model_dir, run.config(), run_info, {result["run"]["data"]: metrics})
    return result


def _records(opts: EvaluateOptions) -> tuple[list[dict], list[dict]]:
    """The questions to score (the first ``limit``) and the seeded sample of training questions to rewrite too."""
    records = load_split(opts.data)
    if opts.limit:
        records = records[:opts.limit]
    train_records = []
    if opts.train_data:
        train_records = load_split(opts.train_data)
        train_records = random.Random(0).sample(train_records, min(opts.train_sample, len(train_records)))
    return records, train_records


def _rewrite_all(rewriter, records, train_records, show_progress: bool) -> tuple[list[str], list[str], float]:
    """The predictions for ``records`` and ``train_records``, and the seconds the first took."""
    bar = _progress_bar(len(records), len(train_records), show_progress and rewriter.method not in BASELINES)
    progress = bar.update if bar else None
    start = time.perf_counter()
    predictions = rewriter.rewrite([r["input"] for r in records], progress=progress)
    seconds = time.perf_counter() - start
    train_predictions = rewriter.rewrite([r["input"] for r in train_records], progress=progress)
    if bar:
        bar.close()
    return predictions, train_predictions, seconds


def _keep_training_files(run: Run, out_dir: Path) -> None:
    """The training run's ``config.yaml`` and ``trainer_log.json`` beside the evaluation, once per run directory:
    an evaluation nested in another of the same model (``<run>/typo``, ``<run>/topic/typo``) whose parent
    directories already hold the same file gets no second copy."""
    for source, name in ((run.config_file, "config.yaml"), (run.log_file, "trainer_log.json")):
        if not source.is_file():
            continue
        content = source.read_bytes()
        if any((d / name).is_file() and (d / name).read_bytes() == content for d in out_dir.parents[:2]):
            (out_dir / name).unlink(missing_ok=True)  # a stale copy from before the rule
            continue
        shutil.copyfile(source, out_dir / name)


def _run_section(opts: EvaluateOptions, out_dir: Path, rewriter, run_info: dict | None, n: int, commit: str) -> dict:
    """``metrics.json``'s ``run``: what was evaluated on what, with the training run's provenance."""
    info = run_info or {}
    return {
        "name": opts.name or out_dir.name,
        "model": info["model"] if run_info else opts.model,
        "model_path": repo_relative(opts.model), "model_source": repo_relative(rewriter.source),
        "method": rewriter.method,
        "data": opts.data_label or Path(opts.data).stem,
        "data_path": repo_relative(opts.data), "data_fingerprint": file_fingerprint(opts.data),
        "n_examples": n,
        "steps": info.get("steps"), "train_time_s": info.get("train_time_s"),
        "peak_memory_mb": info.get("peak_memory_mb"),
        "training_git_commit": info.get("git_commit"), "training_data_fingerprint": info.get("data_fingerprint"),
        "git_commit": commit, "command": command_line(),
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


def _eval_section(opts: EvaluateOptions, rewriter, shots: list[dict], n: int, seconds: float) -> dict:
    """``metrics.json``'s ``eval``: how the predictions were made and how fast."""
    section = {"seconds": round(seconds, 2), "questions_per_s": round(n / seconds, 2) if seconds else None,
               "batch_size": opts.batch_size, "max_new_tokens": getattr(rewriter, "max_new_tokens", None),
               "decoding": opts.decoding.name, "engine": rewriter.engine,
               "prompt_format": rewriter.prompt.format if hasattr(rewriter, "prompt") else None}
    if rewriter.engine == "ctranslate2":
        section.update(quantization=rewriter.quantization, replicas=rewriter.replicas)
    if shots:
        section["few_shot"] = {"k": len(shots), "from": repo_relative(opts.shots_from),
                               "ids": [r["id"] for r in shots]}
    return section


def refuse_replacing(out_dir: Path, model_arg: str, data) -> None:
    """Refuse to replace a finished evaluation in ``out_dir`` of another model or other data (``--overwrite``
    replaces it); the same model on the same data (a rerun, another decoding) replaces it."""
    old_file = out_dir / "metrics.json"
    if not old_file.is_file():
        return
    try:
        old = read_json(old_file)["run"]
        same = old.get("data_fingerprint") == file_fingerprint(data) and \
            old.get("model_path") in (str(model_arg), repo_relative(model_arg))
        what = f"of {old.get('model_path')} on {old.get('data_path')}"
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        same, what = False, "that cannot be read"
    if not same:
        raise RunStateError(f"--out {out_dir} holds an evaluation {what} (metrics.json), not of {model_arg} on "
                            f"{data}; choose another --out, or pass --overwrite to replace it")


def few_shot_examples(path: str | Path | None, k: int, seed: int = 0) -> list[dict]:
    """``k`` training records for a few-shot prompt: a seeded sample of ``path`` (a canonical split)."""
    if path is None:
        raise ConfigError("--few-shot needs --shots-from: the training split the examples are taken from")
    try:
        records = load_split(path)
    except QrewriteError as e:
        raise type(e)(f"--shots-from: {e}") from None
    if k > len(records):
        raise ConfigError(f"--few-shot {k}: {path} holds only {len(records)} records")
    return random.Random(seed).sample(records, k)


def _progress_bar(n: int, n_train: int, enabled: bool):
    """One bar over the questions scored and the train_io sample after them, saying which is which."""
    if not enabled:
        return None
    desc = f"rewriting {n} questions" + (f" + {n_train} for train_io" if n_train else "")
    return progress_bar(n + n_train, desc=desc)


def reusable_evaluation(model_arg: str, data, out_dir, *, limit: int = 0,
                        max_new_tokens: int | None = None, decoding: Decoding = GREEDY) -> str | None:
    """``None`` when ``out_dir`` already holds a finished evaluation of ``model_arg`` on the same data (same
    bytes: the data fingerprint), of the same size, with the same training run, generation budget and decoding;
    else the reason it cannot be reused."""

    out_dir = Path(out_dir)
    if not (out_dir / "metrics.json").is_file() or not (out_dir / "predictions.jsonl").is_file():
        return f"no finished evaluation in {out_dir}"
    try:
        old = read_json(out_dir / "metrics.json")
        run = old["run"]
        n_rows = len(read_jsonl(out_dir / "predictions.jsonl"))
    except (OSError, ValueError, KeyError, TypeError) as e:
        return f"{out_dir}: unreadable evaluation ({e})"
    if run.get("data_fingerprint") != file_fingerprint(data):
        return f"{data} changed since {out_dir} was evaluated (data fingerprint differs)"
    if run.get("model_path") not in (str(model_arg), repo_relative(model_arg)):
        return f"{out_dir} was evaluated for model {run.get('model_path')!r}, not {str(model_arg)!r}"
    n = len(load_split(data))
    n = min(n, limit) if limit else n
    if run.get("n_examples") != n or n_rows != n:
        return f"{out_dir} holds {n_rows} predictions, {n} wanted"
    generated = str(model_arg) not in BASELINES  # copy and rules generate nothing: no budget, no decoding
    if generated and max_new_tokens is not None and old.get("eval", {}).get("max_new_tokens") != max_new_tokens:
        return f"{out_dir} was generated with max_new_tokens={old.get('eval', {}).get('max_new_tokens')}"
    if generated and old.get("eval", {}).get("decoding", "greedy") != decoding.name:
        return f"{out_dir} was decoded by {old['eval']['decoding']}, not {decoding.name}"
    owner = Run.owning(model_arg)
    training = owner.info() if owner is not None else None
    if training is not None and (run.get("steps"), run.get("training_git_commit"),
                                 run.get("training_data_fingerprint")) != (
            training.get("steps"), training.get("git_commit"), training.get("data_fingerprint")):
        return f"the training run {model_arg} changed since {out_dir} was evaluated"
    return None

def evaluate_or_reuse(model_arg: str, data, out_dir, *, reuse: bool = True, limit: int = 0,
                      max_new_tokens: int = 64, **kwargs) -> tuple[dict, list[dict], bool]:
    """:func:`qrewrite.eval.evaluate.evaluate_model`, unless ``reuse`` and :func:`reusable_evaluation` says the
    evaluation in ``out_dir`` is already this one. Returns ``(metrics.json dict, predictions.jsonl rows,
    reused)`` and prints which it did and why."""

    reason = reusable_evaluation(model_arg, data, out_dir, limit=limit, max_new_tokens=max_new_tokens,
                                 decoding=kwargs.get("decoding", GREEDY)) if reuse else "REUSE is off"
    if reason is None:
        result = read_json(Path(out_dir) / "metrics.json")
        print(f"reusing {out_dir}: {result['run']['n_examples']} predictions of {model_arg} on {data} "
              f"(data fingerprint {result['run']['data_fingerprint']})")
    else:
        print(f"evaluating {model_arg} on {data} -> {out_dir} ({reason})")
        kwargs.setdefault("overwrite", True)  # judged above: what is there is not this evaluation
        result = evaluate_model(model_arg, data, out_dir, limit=limit, max_new_tokens=max_new_tokens, **kwargs)
    return result, read_jsonl(Path(out_dir) / "predictions.jsonl"), reason is None
