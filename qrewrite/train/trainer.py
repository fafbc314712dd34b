"""config -> Trainer -> run directory. The one training implementation (finetune.py and the notebook call it).

The run directory's layout is :mod:`qrewrite.run`'s; batches are :mod:`qrewrite.data.collator`'s.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import os
import random
import sys
import time
from pathlib import Path

import torch
from transformers import Trainer, TrainingArguments, set_seed

from qrewrite.card import write_model_card
from qrewrite.config import RESUMABLE_FIELDS, TrainConfig
from qrewrite.data.collator import make_collator
from qrewrite.data.extra import extra_pairs, normalise
from qrewrite.data.name_swap import name_pool, name_swap_variant
from qrewrite.data.records import load_split
from qrewrite.data.synthetic import synthetic_variant
from qrewrite.data.typos import lexicon_of, typo_variant
from qrewrite.errors import ConfigError, Interrupted, RunStateError, TrainingError
from qrewrite.files import atomic_write_json, check_writable, command_line, file_fingerprint, git_commit, repo_relative
from qrewrite.memory import peak_memory_mb
from qrewrite.models import apply_lora, load_model, load_tokenizer, loading, pick_dtype, resolve_model_source
from qrewrite.progress import interactive
from qrewrite.prompt import PromptSpec, encode_records
from qrewrite.run import Run
from qrewrite.train.callbacks import SampleRouge, StopOnSignal, Throughput
from qrewrite.train.inference_files import save_inference_files


def training_records(cfg: TrainConfig) -> tuple[list[dict], list[dict]]:
    """The train / valid records a config trains on (subset, typo'd, synthetic and name-swapped copies, and the
    pairs made from extra questions; all seeded). :func:`training_data` also gives the extra questions' report."""
    train, valid, _ = training_data(cfg)
    return train, valid


def training_data(cfg: TrainConfig) -> tuple[list[dict], list[dict], dict | None]:
    """:func:`training_records` and the report of the pairs made from ``extra_questions`` (None without)."""
    train = load_split(cfg.train_file) if cfg.train_file else []  # empty: the extra questions' pairs alone
    valid = load_split(cfg.valid_file)
    if cfg.max_train_examples:
        train = random.Random(cfg.seed).sample(train, min(cfg.max_train_examples, len(train)))
    originals = list(train)
    lexicon = lexicon_of(t for r in originals for t in (r["input"], r["target"])) if cfg.typo_nonwords else frozenset()
    for k, rate in enumerate(cfg.typo_copy_rates()):
        train += typo_variant(originals, seed=cfg.seed + k, rate=rate, id_suffix=f"#typo{k + 1}", lexicon=lexicon)
    for k in range(cfg.synthetic_copies):
        train += synthetic_variant(originals, seed=cfg.seed + k, id_suffix=f"#synth{k + 1}")
    pool = name_pool(originals) if cfg.name_swap_copies else []
    for k in range(cfg.name_swap_copies):
        train += name_swap_variant(originals, seed=cfg.seed + k, id_suffix=f"#names{k + 1}", pool=pool)
    extra_report = None
    if cfg.extra_questions:
        exclude = {"leak_valid": {normalise(r["target"]) for r in valid},
                   "in_train": {normalise(r["target"]) for r in originals}}
        pairs, extra_report = extra_pairs(cfg.extra_questions, count=cfg.extra_count, mix=cfg.extra_mix,
                                          seed=cfg.seed, typo_rate=cfg.typo_rate, exclude=exclude)
        train += pairs
        print(f"extra questions: {extra_report['n_pairs']} pairs from {cfg.extra_questions} "
              f"({', '.join(f'{k} {n}' for k, n in extra_report['kinds'].items())}; left out: "
              f"{', '.join(f'{k} {n}' for k, n in extra_report['skipped'].items() if n) or 'none'})")
    if cfg.max_eval_examples:
        valid = valid[:cfg.max_eval_examples]
    n_steps = cfg.max_steps if cfg.max_steps > 0 else math.ceil(
        len(train) / (cfg.batch_size * cfg.grad_accum) * cfg.num_epochs)
    if len(train) < cfg.batch_size or n_steps < 1:
        raise ConfigError(f"{cfg.train_file or cfg.extra_questions}: {len(train)} training examples is too few for "
                          f"batch_size {cfg.batch_size}; training would do nothing. Use more data or a smaller batch.")
    return train, valid, extra_report


def training_arguments(cfg: TrainConfig, run_dir: Path, dtype: torch.dtype):
    evaluate = cfg.eval_steps > 0
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1  # launched by torchrun / accelerate launch
    keep_best = evaluate and cfg.save_steps > 0 and cfg.save_steps % cfg.eval_steps == 0
    return TrainingArguments(
        output_dir=str(run_dir), seed=cfg.seed, data_seed=cfg.seed,
        max_steps=cfg.max_steps, num_train_epochs=cfg.num_epochs,
        per_device_train_batch_size=cfg.batch_size, per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum, learning_rate=cfg.learning_rate,
        # a float below 1 is read by transformers as a share of the total steps: warmup_ratio as a ratio
        lr_scheduler_type=cfg.lr_scheduler, warmup_steps=cfg.warmup_ratio, weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm, optim=cfg.optim, optim_args=cfg.optim_args or None,
        # bf16-mixed: fp32 weights, bf16 autocast via accelerate (on CPU too)
        bf16=(dtype == torch.bfloat16 and cfg.method != "qlora") or cfg.precision == "bf16-mixed",
        fp16=dtype == torch.float16,
        activation_checkpointing=cfg.gradient_checkpointing, torch_compile=cfg.torch_compile,
        activation_checkpointing_kwargs={"use_reentrant": False} if cfg.gradient_checkpointing else None,
        train_sampling_strategy="group_by_length" if cfg.group_by_length else "random",
        eval_strategy="steps" if evaluate else "no", eval_steps=cfg.eval_steps or None,
        save_strategy="steps" if cfg.save_steps else "no", save_steps=cfg.save_steps or None,
        save_total_limit=cfg.save_total_limit or None, load_best_model_at_end=keep_best,
        metric_for_best_model=f"eval_{cfg.best_metric}" if keep_best else None,
        greater_is_better=cfg.best_metric != "loss" if keep_best else None,
        prediction_loss_only=True,  # evaluation needs the loss only; supervised-logits batches hold no full logits
        logging_steps=cfg.logging_steps, logging_first_step=True, disable_tqdm=not interactive(),
        report_to=[] if cfg.report_to == "none" else
        [cfg.report_to], dataloader_num_workers=cfg.dataloader_workers, remove_unused_columns=False,
        ddp_backend="gloo" if distributed and not torch.cuda.is_available() else None,
        ddp_find_unused_parameters=False if distributed else None,
        use_cpu=not torch.cuda.is_available(),
    )


def check_trainer_options(cfg: TrainConfig) -> None:
    """Fail before loading anything on values only transformers can judge (scheduler and optimizer names)."""
    try:
        training_arguments(cfg, Path(cfg.output_root) / ".check", pick_dtype(cfg.precision))
    except ValueError as e:
        raise ConfigError(f"lr_scheduler / optim: transformers refuses the config: {e}") from None


def resume_changes(run: Run, cfg: TrainConfig) -> dict:
    """Fields of ``cfg`` that differ from the run's saved config: ``{field: [saved, new]}``. Only
    :data:`~qrewrite.config.RESUMABLE_FIELDS` (how long to train, how often to evaluate / save / log) may."""
    if not run.config_file.exists():
        return {}
    saved = run.config().to_dict()
    changed = {k: [saved.get(k), v] for k, v in cfg.to_dict().items() if saved.get(k) != v}
    refused = {k: v for k, v in changed.items() if k not in RESUMABLE_FIELDS}
    if refused:
        what = ", ".join(f"{k} ({a!r} -> {b!r})" for k, (a, b) in refused.items())
        raise ConfigError(f"--resume cannot change {what}"
                          f": they change the model, the data or the optimisation saved in {run.config_file}. "
                          f"Resume may change only {', '.join(RESUMABLE_FIELDS)}; start a new --run-name otherwise")
    return changed


def _prepare_run(run: Run, cfg: TrainConfig, resume: bool) -> tuple[str | None, dict]:
    """The checkpoint to resume from (the newest intact one) and the config changes a resume brings."""
    changes = {}
    last = None
    if resume:
        if not run.checkpoints():
            raise RunStateError(f"--resume: no checkpoint in {run.path} to resume from (start without --resume)")
        changes = resume_changes(run, cfg)
        last = run.intact_checkpoint()
    elif run.holds_run():
        raise RunStateError(f"run directory {run.path} already holds a run; pass --resume to continue (or extend) "
                            "it, or choose another --run-name")
    return last, changes


def warn_if_validating_on_training_data(cfg: TrainConfig) -> None:
    if cfg.train_file and file_fingerprint(cfg.train_file) == file_fingerprint(cfg.valid_file):
        print(f"warning: train_file {cfg.train_file} and valid_file {cfg.valid_file} hold the same data: the "
              "evaluation loss and sampled ROUGE-L measure memorisation, not rewriting of unseen questions, and "
              "best_metric selects on them", file=sys.stderr)


def checkpoint_bytes(source: str, method: str) -> int:
    """Rough size of one checkpoint, from the weights on disk: a full fine-tune saves the weights and two AdamW
    moments (x3); LoRA saves a small adapter. 0 when unknown (a hub id not yet downloaded)."""
    weights = sum(f.stat().st_size for f in Path(source).glob("*.safetensors")) if Path(source).is_dir() else 0
    return weights * 3 if method == "full" else weights // 10


def load_for_training(cfg: TrainConfig, source: str):
    """(model, tokenizer) as ``cfg`` trains them: dtype, 4-bit base for QLoRA, LoRA adapters."""
    dtype = pick_dtype(cfg.precision)
    tokenizer = load_tokenizer(source, cfg.trust_remote_code)
    # bf16-mixed: a 4-bit base de-quantises to bf16 for its matmuls (autocast does not reach into bitsandbytes)
    model = load_model(source, dtype=dtype, quantize_4bit=cfg.method == "qlora",
                       attn_implementation=cfg.attn_implementation, trust_remote_code=cfg.trust_remote_code,
                       tokenizer=tokenizer,
                       compute_dtype=torch.bfloat16 if cfg.precision == "bf16-mixed" else None)
    if cfg.method in ("lora", "qlora"):
        model = apply_lora(model, r=cfg.lora_r, alpha=cfg.lora_alpha, dropout=cfg.lora_dropout,
                           targets=cfg.lora_targets, quantized=cfg.method == "qlora",
                           gradient_checkpointing=cfg.gradient_checkpointing)
    if cfg.freeze_embeddings:
        freeze_embeddings(model)
    # Training never reads a KV cache; with one, transformers would also ignore padding-free position_ids
    # (rewriting turns the cache on explicitly).
    model.config.use_cache = False
    return model, tokenizer


def freeze_embeddings(model) -> None:
    """Stop training the token embeddings and the output layer (one matrix when tied). The softmax gradient
    lowers the output embedding of every token a batch's targets do not use; over a fine-tune that teaches the
    model to avoid the rare names of topics it has not seen instead of copying them."""
    for layer in (model.get_input_embeddings(), model.get_output_embeddings()):
        if layer is not None:
            layer.weight.requires_grad_(False)


def tied_to_loaded(model, missing_keys) -> set[str]:
    """The ``missing_keys`` whose parameter is the same tensor as a parameter that was loaded (tied weights)."""
    names_of: dict[int, list[str]] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        names_of.setdefault(id(param), []).append(name)
    missing = set(missing_keys)
    return {k for names in names_of.values() if any(n not in missing for n in names) for k in names if k in missing}


class QrewriteTrainer(Trainer):
    """The Trainer, stopping at the first step whose loss is not a finite number (a learning rate too high, a
    precision that overflowed): the run then fails instead of saving weights that are all NaN."""

    def training_step(self, *args, **kwargs):
        loss = super().training_step(*args, **kwargs)
        if not torch.isfinite(loss).all():
            raise TrainingError(f"training diverged: the loss became {float(loss.float().mean())} at step "
                                f"{self.state.global_step + 1} (learning_rate {self.args.learning_rate:g})")
        return loss

    def _issue_warnings_after_load(self, load_result) -> None:
        # SmolLM2 ties lm_head to the token embeddings (tie_word_embeddings): a checkpoint stores the matrix once,
        # so reloading the best checkpoint reports "missing keys ... ['lm_head.weight']" although lm_head is the
        # embedding matrix just loaded. Only such tied keys are dropped; any other missing key is still reported.
        tied = tied_to_loaded(self.model, load_result.missing_keys)
        super()._issue_warnings_after_load(load_result._replace(
            missing_keys=[k for k in load_result.missing_keys if k not in tied]))


def build_trainer(cfg: TrainConfig, model, tokenizer, train_ds, valid_ds, output_dir: str | Path, *,
                  valid_records=(), callbacks=()) -> QrewriteTrainer:
    """The Trainer ``train`` runs (also what the benchmarks time): arguments, collator and callbacks."""
    args = training_arguments(cfg, Path(output_dir), pick_dtype(cfg.precision))
    collator = make_collator(tokenizer, padding_free=cfg.padding_free, supervised_logits=cfg.supervised_logits,
                             pad_to_multiple_of=8 if torch.cuda.is_available() else None)
    return QrewriteTrainer(model=model, args=args, train_dataset=train_ds,
                           eval_dataset=valid_ds if cfg.eval_steps else None, data_collator=collator,
                           processing_class=tokenizer,
                           callbacks=[SampleRouge(tokenizer, list(valid_records), cfg), Throughput(), *callbacks])


def train(cfg: TrainConfig, *, resume: bool = False, callbacks=(), command: str | None = None) -> Path:
    """Train per ``cfg``; return the run directory. On Ctrl-C or SIGTERM: a checkpoint, then
    :class:`~qrewrite.errors.Interrupted`; a loss that is not finite: :class:`~qrewrite.errors.TrainingError`
    (the run marked failed). One process trains into a run directory at a time (:meth:`Run.lock`)."""
    cfg.validate()
    check_trainer_options(cfg)
    run = Run.for_config(cfg)
    stop = StopOnSignal()
    try:
        # in a multi-process launch each process trains into the same directory: the first one holds it
        with run.lock() if int(os.environ.get("RANK", "0")) == 0 else contextlib.nullcontext():
            return _train(run, cfg, resume, stop, callbacks, command)
    finally:
        stop.restore()


def _train(run: Run, cfg: TrainConfig, resume: bool, stop: StopOnSignal, callbacks, command) -> Path:
    last_checkpoint, changes = _prepare_run(run, cfg, resume)
    train_records, valid_records, extra_report = training_data(cfg)
    warn_if_validating_on_training_data(cfg)
    set_seed(cfg.seed)

    source = resolve_model_source(cfg.model)
    check_writable(run.path, need_bytes=checkpoint_bytes(source, cfg.method))  # before minutes of loading
    with loading(source):
        model, tokenizer = load_for_training(cfg, source)
    prompt = PromptSpec.of_config(cfg)
    train_ds, n_trunc = encode_records(tokenizer, train_records, cfg.max_length, prompt)
    valid_ds, n_trunc_valid = encode_records(tokenizer, valid_records, cfg.max_length, prompt)
    if n_trunc or n_trunc_valid:
        print(f"truncated to max_length={cfg.max_length}: {n_trunc} training and {n_trunc_valid} validation "
              "examples (cut from the right)")

    trainer = build_trainer(cfg, model, tokenizer, train_ds, valid_ds, run.path, valid_records=valid_records,
                            callbacks=[stop, *callbacks])
    is_main_process = trainer.is_world_process_zero()
    info = _initial_info(run, cfg, source, trainer, train_records, valid_records, (n_trunc, n_trunc_valid), command)
    if extra_report:
        info["extra_questions"] = extra_report
    earlier_time = _add_resume(run, info, last_checkpoint, changes) if resume else 0.0
    if is_main_process:
        run.write_config(cfg)
        run.write_info(info)

    start = time.perf_counter()
    try:
        result = trainer.train(resume_from_checkpoint=last_checkpoint)
    except (TrainingError, KeyboardInterrupt) as e:
        _stopped(run, trainer, info, e, is_main_process)
    train_time = time.perf_counter() - start
    info.update(steps=trainer.state.global_step, train_time_s=round(earlier_time + train_time, 1),
                train_loss=result.training_loss, peak_memory_mb=round(peak_memory_mb(), 1),
                best_checkpoint=trainer.state.best_model_checkpoint)
    if is_main_process:
        run.write_trainer_log(trainer.state.log_history)
    if stop.requested:
        if is_main_process:
            info["status"] = "interrupted"
            run.write_info(info)
        raise Interrupted(f"training stopped by {stop.requested} at step {trainer.state.global_step}; checkpoint "
                          f"saved in {run.path}. Continue with: {resume_command(info['command'])}", stop.requested)

    _save_final(trainer, tokenizer, cfg, run, is_main_process)
    if trainer.args.world_size > 1:
        _write_rank_digest(trainer.model, run.path, trainer.args.process_index)
    if is_main_process:
        if run.model_dir.is_dir():
            write_model_card(run.model_dir, cfg, info)
        info["status"] = "complete"
        run.write_info(info)  # written last: a complete run.json means a usable run
    return run.path


def resume_command(command: str) -> str:
    return command if " --resume" in command else command + " --resume"


def _add_resume(run: Run, info: dict, last_checkpoint: str, changes: dict) -> float:
    """Carry the run's history into ``info`` with this resume added; return the training time before it. A
    run.json that cannot be read is kept aside (``run.json.damaged``) with a warning: its history is lost."""
    if not run.exists():
        return 0.0
    try:
        earlier = run.info()
        earlier_time = float(earlier.get("train_time_s") or 0.0)
    except (OSError, ValueError, AttributeError, TypeError) as e:
        aside = run.info_file.with_name(run.info_file.name + ".damaged")
        run.info_file.replace(aside)
        print(f"warning: --resume: {run.info_file} is damaged ({e}); kept as {aside.name}, and a new run.json "
              "written without the earlier history (resumes, training time)", file=sys.stderr)
        return 0.0
    info["resumes"] = earlier.get("resumes", []) + [{
        "from_checkpoint": Path(last_checkpoint).name, "changed": changes, "command": info["command"],
        "time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "train_time_s_before": earlier_time}]
    return earlier_time


def _stopped(run: Run, trainer, info: dict, e: BaseException, is_main_process: bool):
    """Record why training stopped mid-step (diverged: failed; a second Ctrl-C: interrupted) and re-raise."""
    failed = isinstance(e, TrainingError)
    if is_main_process:
        info.update(status="failed" if failed else "interrupted", steps=trainer.state.global_step)
        if failed:
            info["error"] = str(e)
        run.write_trainer_log(trainer.state.log_history)
        run.write_info(info)
    if failed:
        raise TrainingError(f"{e}; the run {run.path} is marked failed and has no model. Lower learning_rate "
                            "(or max_grad_norm) and train again under a new --run-name") from None
    raise Interrupted.like(e, f"training aborted at step {trainer.state.global_step} (no checkpoint of this step); "
                              f"continue from the last one with: {resume_command(info['command'])}") from None


def _initial_info(run: Run, cfg: TrainConfig, source: str, trainer: Trainer, train_records, valid_records,
                  truncated: tuple[int, int], command: str | None) -> dict:
    return {
        "status": "running", "run_name": run.name, "model": cfg.model, "model_source": repo_relative(source),
        "method": cfg.method, "prompt_format": cfg.prompt_format, "seed": cfg.seed, "git_commit": git_commit(),
        "command": command or command_line(), "train_file": cfg.train_file, "valid_file": cfg.valid_file,
        "data_fingerprint": file_fingerprint(*filter(None, (cfg.train_file, cfg.valid_file))),
        "n_train": len(train_records), "n_valid": len(valid_records),
        "truncated": {"train": truncated[0], "valid": truncated[1]},
        "trainable_parameters": sum(p.numel() for p in trainer.model.parameters() if p.requires_grad),
        "world_size": trainer.args.world_size, "device": str(trainer.args.device),
        "dtype": str(pick_dtype(cfg.precision)).replace("torch.", ""), "autocast": trainer.args.mixed_precision,
    }


def _save_final(trainer, tokenizer, cfg: TrainConfig, run: Run, is_main_process: bool) -> None:
    trainer.model.config.use_cache = True  # off for training only; inference wants it
    if cfg.method == "full":
        trainer.save_model(str(run.model_dir))
        if is_main_process:
            _save_inference_files(run.model_dir, tokenizer, cfg)
        return
    trainer.save_model(str(run.adapter_dir))
    if is_main_process:
        _save_inference_files(run.adapter_dir, tokenizer, cfg)
    if cfg.merge_after and is_main_process:
        _merge_adapter(run, cfg, tokenizer)


def _save_inference_files(model_dir: Path, tokenizer, cfg: TrainConfig) -> None:
    save_inference_files(model_dir, tokenizer, PromptSpec.of_config(cfg), max_new_tokens=cfg.max_new_tokens,
                         base_model=cfg.model)


def _merge_adapter(run: Run, cfg: TrainConfig, tokenizer) -> Path:
    """Reload the base in full precision and merge the adapter: a plain checkpoint for inference."""
    from peft import PeftModel

    base = load_model(resolve_model_source(cfg.model), dtype=pick_dtype(cfg.precision),
                      trust_remote_code=cfg.trust_remote_code, tokenizer=tokenizer)
    merged = PeftModel.from_pretrained(base, str(run.adapter_dir)).merge_and_unload()
    merged.save_pretrained(run.model_dir)
    tokenizer.save_pretrained(run.model_dir)
    _save_inference_files(run.model_dir, tokenizer, cfg)
    return run.model_dir


def _write_rank_digest(model, run_dir: Path, rank: int) -> None:
    """Each rank records a digest of its final weights, so a multi-process run can show the ranks agreed."""
    total = 0.0
    with torch.no_grad():
        for p in model.parameters():
            total += float(p.detach().double().abs().sum())
    atomic_write_json(run_dir / "ranks" / f"rank-{rank}.json", {"rank": rank, "param_abs_sum": total})


def run_info(run_dir: str | Path) -> dict:
    return Run(run_dir).info()
