"""Trainer callbacks: sampled ROUGE-L at each evaluation, examples/s in the logs, Ctrl-C that saves first."""

from __future__ import annotations

import signal
import time

from transformers import TrainerCallback

from .generate import rewrite_all
from .metrics import rouge_scores
from .prompt import PromptSpec


class SampleRouge(TrainerCallback):
    """Rewrites a fixed sample of validation questions at each evaluation and logs ROUGE-L."""

    def __init__(self, tokenizer, valid: list[dict], cfg):
        self.tokenizer, self.valid, self.cfg = tokenizer, valid, cfg

    def on_evaluate(self, args, state, control, model=None, metrics=None, **kw):
        cfg = self.cfg
        sample = self.valid[:cfg.eval_sample]
        if not sample or model is None:
            return
        preds = rewrite_all(model, self.tokenizer, [r["input"] for r in sample], batch_size=16,
                            max_new_tokens=cfg.max_new_tokens, prompt=PromptSpec.of_config(cfg))
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
