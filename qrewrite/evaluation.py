"""Score a model (or the copy-input baseline) on a split and write the evaluation directory.

``outputs/<run>/`` gets:
  predictions.jsonl   id, input, prediction, reference, per-example ROUGE-L and exact match
  valid_io.json       [{input, prediction, reference}] as the original research repo kept them
  train_io.json       the same for a sample of training questions (when asked)
  metrics.json        corpus metrics + provenance (model, method, data fingerprint, command, git commit);
                      written last and atomically, and removed at the start, so it exists only for a
                      finished evaluation
  config.yaml         the training run's resolved config, when the model is a qrewrite run
"""

from __future__ import annotations

import datetime as dt
import random
import shutil
import time
from pathlib import Path

from .config import GENERATION_BATCH_SIZE
from .data import load_split, read_records
from .files import atomic_write_json, atomic_write_jsonl, check_writable, command_line, file_fingerprint, git_commit, \
    read_json
from .metrics import compute_metrics, per_example

COPY_BASELINE = "copy"  # same as qrewrite.models.COPY_BASELINE; torch is imported only when a model is loaded


def _run_of(model_arg: str) -> tuple[dict | None, Path | None]:
    """run.json and run directory when ``model_arg`` is a qrewrite run (or its model/ or adapter/ subdir)."""
    path = Path(model_arg)
    for d in (path, path.parent):
        if (d / "run.json").exists():
            return read_json(d / "run.json"), d
    return None, None


def run_system_prompt(model_arg: str) -> str | None:
    """The system prompt a qrewrite run was trained with, so rewriting prompts as training did (None: not a
    run, or the default prompt)."""
    _, run_dir = _run_of(model_arg)
    if run_dir is None or not (run_dir / "config.yaml").exists():
        return None
    from .config import load_config
    return load_config(run_dir / "config.yaml").system_prompt or None


def predict(model, tokenizer, questions: list[str], *, batch_size: int = GENERATION_BATCH_SIZE,
            max_new_tokens: int = 64, system_prompt: str | None = None, progress=None) -> list[str]:
    from .generate import rewrite
    out = [""] * len(questions)
    for i, text in rewrite(model, tokenizer, questions, batch_size=batch_size, max_new_tokens=max_new_tokens,
                           system_prompt=system_prompt, progress=progress):
        out[i] = text
    return out


def evaluate_model(model_arg: str, data: str | Path, out_dir: str | Path, *,
                   batch_size: int = GENERATION_BATCH_SIZE, max_new_tokens: int = 64, limit: int = 0,
                   train_data: str | Path | None = None, train_sample: int = 100, name: str | None = None,
                   data_label: str | None = None,
                   precision: str = "auto", trust_remote_code: bool = False, system_prompt: str | None = None,
                   show_progress: bool = True) -> dict:
    """Rewrite every question of ``data`` with ``model_arg`` (``copy`` = the copy-input baseline), score, write."""
    out_dir = Path(out_dir)
    check_writable(out_dir)
    (out_dir / "metrics.json").unlink(missing_ok=True)
    records = load_split(data)
    if limit:
        records = records[:limit]
    train_records = []
    if train_data:
        train_records = load_split(train_data)
        train_records = random.Random(0).sample(train_records, min(train_sample, len(train_records)))

    run, run_dir = _run_of(model_arg)
    if system_prompt is None:
        system_prompt = run_system_prompt(model_arg)

    bar = None
    if model_arg == COPY_BASELINE:
        method, source = "copy", COPY_BASELINE

        def infer(questions):
            return list(questions)
    else:
        from .models import load_for_inference
        model, tokenizer, source = load_for_inference(model_arg, precision=precision,
                                                      trust_remote_code=trust_remote_code)
        method = run["method"] if run else "zero-shot"
        bar = _progress_bar(len(records) + len(train_records), show_progress)

        def infer(questions):
            return predict(model, tokenizer, questions, batch_size=batch_size, max_new_tokens=max_new_tokens,
                           system_prompt=system_prompt, progress=bar.update if bar else None)
    start = time.perf_counter()
    predictions = infer([r["input"] for r in records])
    seconds = time.perf_counter() - start
    train_predictions = infer([r["input"] for r in train_records])
    if bar:
        bar.close()

    inputs, refs = [r["input"] for r in records], [r["target"] for r in records]
    metrics = compute_metrics(inputs, predictions, refs)
    rows = per_example(inputs, predictions, refs, ids=[r["id"] for r in records])
    atomic_write_jsonl(out_dir / "predictions.jsonl", rows)
    atomic_write_json(out_dir / "valid_io.json", [
        {"input": r["input"], "prediction": p, "reference": r["target"]} for r, p in zip(records, predictions)])
    if train_records:
        atomic_write_json(out_dir / "train_io.json", [
            {"input": r["input"], "prediction": p, "reference": r["target"]}
            for r, p in zip(train_records, train_predictions)])
    if run_dir is not None and (run_dir / "config.yaml").exists():
        shutil.copyfile(run_dir / "config.yaml", out_dir / "config.yaml")
        if (run_dir / "trainer_log.json").exists():
            shutil.copyfile(run_dir / "trainer_log.json", out_dir / "trainer_log.json")

    result = {
        "metrics": metrics,
        "run": {
            "name": name or out_dir.name,
            "model": run["model"] if run else model_arg,
            "model_path": str(model_arg), "model_source": str(source),
            "method": method,
            "data": data_label or Path(data).stem,
            "data_path": str(data), "data_fingerprint": file_fingerprint(data),
            "n_examples": len(records),
            "steps": run.get("steps") if run else None,
            "train_time_s": run.get("train_time_s") if run else None,
            "peak_memory_mb": run.get("peak_memory_mb") if run else None,
            "training_git_commit": run.get("git_commit") if run else None,
            "training_data_fingerprint": run.get("data_fingerprint") if run else None,
            "git_commit": git_commit(), "command": command_line(),
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        },
        "eval": {"seconds": round(seconds, 2), "questions_per_s": round(len(records) / seconds, 2) if seconds else None,
                 "batch_size": batch_size, "max_new_tokens": max_new_tokens, "decoding": "greedy"},
    }
    atomic_write_json(out_dir / "metrics.json", result)
    return result


def _progress_bar(total: int, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm
    return tqdm(total=total, desc="rewriting", unit="q")


def read_questions(path: str | Path, *, strict: bool = False):
    """Questions to rewrite from any supported file (targets optional), plus the reader's report."""
    return read_records(path, require_target=False, strict=strict)
