"""config -> Trainer -> run directory. The one training implementation (finetune.py and the notebook call it).

A run directory ``weights/<run-name>/`` holds:
  config.yaml          the resolved config (every field, after file + command-line overrides)
  run.json             status (running / interrupted / complete), git commit, data fingerprint, command,
                       steps, train time, peak memory, truncated-example count
  checkpoint-N/        Trainer checkpoints (optimizer, scheduler, RNG state) for --resume
  model/               final weights for inference: the full model, or for LoRA/QLoRA the merged model
  adapter/             LoRA/QLoRA only: the adapter alone (load with peft, base model from its config)
  trainer_log.json     loss / eval history; runs/ holds the TensorBoard logs
"""

from __future__ import annotations

import math
import os
import random
import resource
import signal
import time
from pathlib import Path

import torch
from transformers import DataCollatorForSeq2Seq, Trainer, TrainerCallback, TrainingArguments, set_seed
from transformers.trainer_utils import get_last_checkpoint

from .config import ConfigError, TrainConfig, save_config
from .data import load_split
from .files import (atomic_write_json, check_writable, command_line, file_fingerprint, git_commit, read_json,
                    safe_join)
from .generate import rewrite
from .metrics import rouge_scores
from .models import apply_lora, load_model, load_tokenizer, pick_dtype, resolve_model_source
from .noise import typo_variant
from .prompt import encode_records


def run_dir_for(cfg: TrainConfig) -> Path:
    return safe_join(cfg.output_root, cfg.resolved_run_name())


def peak_memory_mb() -> float:
    """Peak GPU memory allocated by torch when on CUDA, else the process's peak resident set size."""
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def training_records(cfg: TrainConfig) -> tuple[list[dict], list[dict]]:
    """The train / valid records a config trains on (subset and typo augmentation applied, seeded)."""
    train, valid = load_split(cfg.train_file), load_split(cfg.valid_file)
    if cfg.max_train_examples:
        train = random.Random(cfg.seed).sample(train, min(cfg.max_train_examples, len(train)))
    originals = list(train)
    for k in range(cfg.typo_copies):
        train += typo_variant(originals, seed=cfg.seed + k, rate=cfg.typo_rate, id_suffix=f"#typo{k + 1}")
    if cfg.max_eval_examples:
        valid = valid[:cfg.max_eval_examples]
    n_steps = cfg.max_steps if cfg.max_steps > 0 else math.ceil(
        len(train) / (cfg.batch_size * cfg.grad_accum) * cfg.num_epochs)
    if len(train) < cfg.batch_size or n_steps < 1:
        raise ConfigError(f"{cfg.train_file}: {len(train)} training examples is too few for batch_size "
                          f"{cfg.batch_size}; training would do nothing. Use more data or a smaller batch.")
    return train, valid


class SampleRouge(TrainerCallback):
    """Rewrites a fixed sample of validation questions at each evaluation and logs ROUGE-L."""

    def __init__(self, tokenizer, valid: list[dict], cfg: TrainConfig):
        self.tokenizer, self.valid, self.cfg = tokenizer, valid, cfg

    def on_evaluate(self, args, state, control, model=None, metrics=None, **kw):
        cfg = self.cfg
        sample = self.valid[:cfg.eval_sample]
        if not sample or model is None:
            return
        preds = [text for _, text in rewrite(model, self.tokenizer, [r["input"] for r in sample], batch_size=16,
                                             max_new_tokens=cfg.max_new_tokens,
                                             system_prompt=cfg.system_prompt or None)]
        score = rouge_scores(preds, [r["target"] for r in sample])["rougeL"]
        if metrics is not None:
            metrics["eval_rougeL_sample"] = score
        state.log_history.append({"step": state.global_step, "eval_rougeL_sample": score})
        print(f"step {state.global_step}: ROUGE-L on {len(sample)} validation questions = {score:.3f}")


class Throughput(TrainerCallback):
    """Adds examples/s since the first step to every loss log line (progress bar and TensorBoard)."""

    def on_step_begin(self, args, state, control, **kw):
        if not hasattr(self, "t0"):
            self.t0, self.s0 = time.perf_counter(), state.global_step

    def on_log(self, args, state, control, logs=None, **kw):
        if logs is not None and "loss" in logs and hasattr(self, "t0"):
            steps = state.global_step - self.s0
            if steps > 0:
                logs["examples_per_s"] = round(
                    steps * args.train_batch_size * args.gradient_accumulation_steps * args.world_size
                    / (time.perf_counter() - self.t0), 2)


class StopOnSigint(TrainerCallback):
    """First Ctrl-C: finish the current step, save a checkpoint, stop. A second Ctrl-C aborts."""

    def __init__(self):
        self.requested = False

    def on_train_begin(self, args, state, control, **kw):
        self.previous = signal.signal(signal.SIGINT, self._handler)

    def _handler(self, signum, frame):
        self.requested = True
        signal.signal(signal.SIGINT, self.previous)
        print("\nInterrupted: saving a checkpoint after this step (Ctrl-C again to abort)...")

    def on_step_end(self, args, state, control, **kw):
        if self.requested:
            control.should_save = True
            control.should_training_stop = True

    def on_train_end(self, args, state, control, **kw):
        if not self.requested:
            signal.signal(signal.SIGINT, self.previous)


def training_arguments(cfg: TrainConfig, run_dir: Path, dtype: torch.dtype):
    evaluate = cfg.eval_steps > 0
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1  # launched by torchrun / accelerate launch
    keep_best = evaluate and cfg.save_steps > 0 and cfg.save_steps % cfg.eval_steps == 0
    return TrainingArguments(
        output_dir=str(run_dir), seed=cfg.seed, data_seed=cfg.seed,
        max_steps=cfg.max_steps, num_train_epochs=cfg.num_epochs,
        per_device_train_batch_size=cfg.batch_size, per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum, learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_scheduler, warmup_steps=cfg.warmup_ratio, weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm, optim=cfg.optim,
        bf16=dtype == torch.bfloat16 and cfg.method != "qlora", fp16=dtype == torch.float16,
        activation_checkpointing=cfg.gradient_checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False} if cfg.gradient_checkpointing else None,
        train_sampling_strategy="group_by_length" if cfg.group_by_length else "random",
        eval_strategy="steps" if evaluate else "no", eval_steps=cfg.eval_steps or None,
        save_strategy="steps" if cfg.save_steps else "no", save_steps=cfg.save_steps or None,
        save_total_limit=cfg.save_total_limit or None, load_best_model_at_end=keep_best,
        metric_for_best_model="eval_loss" if keep_best else None, greater_is_better=False if keep_best else None,
        logging_steps=cfg.logging_steps, logging_first_step=True, report_to=[] if cfg.report_to == "none" else
        [cfg.report_to], dataloader_num_workers=cfg.dataloader_workers, remove_unused_columns=False,
        ddp_backend="gloo" if distributed and not torch.cuda.is_available() else None,
        ddp_find_unused_parameters=False if distributed else None,
        use_cpu=not torch.cuda.is_available(),
    )


def _prepare_run_dir(cfg: TrainConfig, resume: bool) -> tuple[Path, str | None]:
    run_dir = run_dir_for(cfg)
    last = get_last_checkpoint(str(run_dir)) if run_dir.is_dir() else None
    if resume:
        if last is None:
            raise ConfigError(f"--resume: no checkpoint in {run_dir} to resume from (start without --resume)")
        saved = run_dir / "config.yaml"
        if saved.exists():
            from .config import load_config
            before = load_config(saved).to_dict()
            changed = {k: (before[k], v) for k, v in cfg.to_dict().items() if before.get(k) != v}
            if changed:
                raise ConfigError(f"--resume with a config that differs from {saved}: {changed}; resume with the "
                                  "same config, or start a new --run-name")
    elif last is not None or (run_dir / "model").exists():
        raise ConfigError(f"run directory {run_dir} already holds a run; pass --resume to continue it or choose "
                          "another --run-name")
    # A new run's directory is created only when training starts (config.yaml), not by a run that fails first.
    check_writable(run_dir if run_dir.exists() else run_dir.parent)
    return run_dir, last


def checkpoint_bytes(source: str, method: str) -> int:
    """Rough size of one checkpoint, from the weights on disk: a full fine-tune saves the weights and two AdamW
    moments (x3); LoRA saves a small adapter. 0 when unknown (a hub id not yet downloaded)."""
    weights = sum(f.stat().st_size for f in Path(source).glob("*.safetensors")) if Path(source).is_dir() else 0
    return weights * 3 if method == "full" else weights // 10


def train(cfg: TrainConfig, *, resume: bool = False, callbacks=(), command: str | None = None) -> Path:
    """Train per ``cfg``; return the run directory. Raises KeyboardInterrupt after saving on Ctrl-C."""
    cfg.validate()
    run_dir, last_checkpoint = _prepare_run_dir(cfg, resume)
    train_records, valid_records = training_records(cfg)
    set_seed(cfg.seed)

    source = resolve_model_source(cfg.model)
    check_writable(run_dir if run_dir.exists() else run_dir.parent,  # a failed start leaves no run dir
                   need_bytes=checkpoint_bytes(source, cfg.method))  # before minutes of loading
    dtype = pick_dtype(cfg.precision)
    tokenizer = load_tokenizer(source, cfg.trust_remote_code)
    model = load_model(source, dtype=dtype, quantize_4bit=cfg.method == "qlora",
                       attn_implementation=cfg.attn_implementation, trust_remote_code=cfg.trust_remote_code,
                       tokenizer=tokenizer)
    if cfg.method in ("lora", "qlora"):
        model = apply_lora(model, r=cfg.lora_r, alpha=cfg.lora_alpha, dropout=cfg.lora_dropout,
                           targets=cfg.lora_targets, quantized=cfg.method == "qlora",
                           gradient_checkpointing=cfg.gradient_checkpointing)
    if cfg.gradient_checkpointing:
        model.config.use_cache = False

    system_prompt = cfg.system_prompt or None
    train_ds, n_trunc = encode_records(tokenizer, train_records, cfg.max_length, system_prompt)
    valid_ds, n_trunc_valid = encode_records(tokenizer, valid_records, cfg.max_length, system_prompt)
    if n_trunc or n_trunc_valid:
        print(f"truncated to max_length={cfg.max_length}: {n_trunc} training and {n_trunc_valid} validation "
              "examples (cut from the right)")

    args = training_arguments(cfg, run_dir, dtype)
    collator = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100,
                                      pad_to_multiple_of=8 if torch.cuda.is_available() else None)
    sigint = StopOnSigint()
    trainer = Trainer(model=model, args=args, train_dataset=train_ds,
                      eval_dataset=valid_ds if cfg.eval_steps else None, data_collator=collator,
                      processing_class=tokenizer,
                      callbacks=[SampleRouge(tokenizer, valid_records, cfg), Throughput(), sigint, *callbacks])

    main = trainer.is_world_process_zero()
    info = {
        "status": "running", "run_name": run_dir.name, "model": cfg.model, "model_source": source,
        "method": cfg.method, "seed": cfg.seed, "git_commit": git_commit(), "command": command or command_line(),
        "train_file": cfg.train_file, "valid_file": cfg.valid_file,
        "data_fingerprint": file_fingerprint(cfg.train_file, cfg.valid_file),
        "n_train": len(train_records), "n_valid": len(valid_records),
        "truncated": {"train": n_trunc, "valid": n_trunc_valid},
        "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "world_size": args.world_size, "device": str(args.device), "dtype": str(dtype).replace("torch.", ""),
    }
    if main:
        save_config(cfg, run_dir / "config.yaml")
        atomic_write_json(run_dir / "run.json", info)

    start = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=last_checkpoint)
    train_time = time.perf_counter() - start
    info.update(steps=trainer.state.global_step, train_time_s=round(train_time, 1),
                train_loss=result.training_loss, peak_memory_mb=round(peak_memory_mb(), 1),
                best_checkpoint=trainer.state.best_model_checkpoint)
    if main:
        atomic_write_json(run_dir / "trainer_log.json", trainer.state.log_history)
    if sigint.requested:
        if main:
            info["status"] = "interrupted"
            atomic_write_json(run_dir / "run.json", info)
        raise KeyboardInterrupt(f"training interrupted at step {trainer.state.global_step}; "
                                f"checkpoint saved in {run_dir} (continue with --resume)")

    _save_final(trainer, tokenizer, cfg, run_dir, main)
    if args.world_size > 1:
        _write_rank_digest(trainer.model, run_dir, args.process_index)
    if main:
        info["status"] = "complete"
        atomic_write_json(run_dir / "run.json", info)  # written last: a complete run.json means a usable run
    return run_dir


def _save_final(trainer, tokenizer, cfg: TrainConfig, run_dir: Path, main: bool) -> None:
    if cfg.method == "full":
        trainer.save_model(str(run_dir / "model"))
        return
    trainer.save_model(str(run_dir / "adapter"))
    if cfg.merge_after and main:
        _merge_adapter(run_dir, cfg, tokenizer)


def _merge_adapter(run_dir: Path, cfg: TrainConfig, tokenizer) -> Path:
    """Reload the base in full precision and merge the adapter: a plain checkpoint for inference."""
    from peft import PeftModel

    base = load_model(resolve_model_source(cfg.model), dtype=pick_dtype(cfg.precision),
                      trust_remote_code=cfg.trust_remote_code, tokenizer=tokenizer)
    merged = PeftModel.from_pretrained(base, str(run_dir / "adapter")).merge_and_unload()
    merged.save_pretrained(run_dir / "model")
    tokenizer.save_pretrained(run_dir / "model")
    return run_dir / "model"


def _write_rank_digest(model, run_dir: Path, rank: int) -> None:
    """Each rank records a digest of its final weights, so a multi-process run can show the ranks agreed."""
    total = 0.0
    with torch.no_grad():
        for p in model.parameters():
            total += float(p.detach().double().abs().sum())
    atomic_write_json(run_dir / "ranks" / f"rank-{rank}.json", {"rank": rank, "param_abs_sum": total})


def run_info(run_dir: str | Path) -> dict:
    return read_json(Path(run_dir) / "run.json")
