"""Trainer callbacks: sampled ROUGE-L at each evaluation, examples/s in the logs, Ctrl-C and SIGTERM that save
first."""

from __future__ import annotations

import signal
import threading
import time

from transformers import TrainerCallback

from qrewrite.data.typos import typo_variant
from qrewrite.infer.generate import rewrite
from qrewrite.metrics import rouge_scores
from qrewrite.prompt import PromptSpec


class SampleRouge(TrainerCallback):
    """Rewrites a fixed sample of validation questions at each evaluation and logs ROUGE-L.

    When the run trains on typo'd copies (or selects checkpoints on them) it also rewrites a typo'd copy of the
    sample (the project's noise at ``typo_rate``, as in ``valid_typo.json``) and logs ``eval_rougeL_sample_typo``
    and the mean of the two. The scores land in the evaluation metrics, so ``best_metric`` can select on them.
    """

    def __init__(self, tokenizer, valid: list[dict], cfg):
        self.tokenizer, self.cfg = tokenizer, cfg
        self.samples = {"eval_rougeL_sample": valid[:cfg.eval_sample]}
        if cfg.typo_copies or cfg.best_metric in ("rougeL_sample_typo", "rougeL_sample_mean"):
            self.samples["eval_rougeL_sample_typo"] = typo_variant(
                self.samples["eval_rougeL_sample"], seed=cfg.seed, rate=cfg.typo_rate)

    def on_evaluate(self, args, state, control, model=None, metrics=None, **kw):
        if not self.samples["eval_rougeL_sample"] or model is None:
            return
        scores = {key: self._score(model, sample) for key, sample in self.samples.items()}
        if len(scores) == 2:
            scores["eval_rougeL_sample_mean"] = sum(scores.values()) / 2
        if metrics is not None:
            metrics.update(scores)
        state.log_history.append({"step": state.global_step, **scores})
        shown = "  ".join(f"{key.removeprefix('eval_')} {value:.3f}" for key, value in scores.items())
        print(f"step {state.global_step}: {shown} ({len(self.samples['eval_rougeL_sample'])} validation questions)")

    def _score(self, model, sample: list[dict]) -> float:
        preds = [text for _, text in rewrite(model, self.tokenizer, [r["input"] for r in sample], batch_size=16,
                                             max_new_tokens=self.cfg.max_new_tokens,
                                             prompt=PromptSpec.of_config(self.cfg))]
        return rouge_scores(preds, [r["target"] for r in sample])["rougeL"]


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


class StopOnSignal(TrainerCallback):
    """Ctrl-C or SIGTERM (a batch scheduler's, ``docker stop``'s, ``systemctl stop``'s): finish the current step,
    save a checkpoint, stop; ``requested`` then names the signal. A second one aborts at once.

    The handlers are installed when it is made (so a signal while the model loads is not lost either) and the
    previous ones restored by :meth:`restore`; outside the main thread signals cannot be caught, and nothing
    is installed."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.requested: str | None = None
        self.previous = {}
        if threading.current_thread() is threading.main_thread():
            self.previous = {s: signal.signal(s, self._handler) for s in self.SIGNALS}

    def _handler(self, signum, frame):
        self.requested = signal.Signals(signum).name
        self.restore()
        again = "Ctrl-C" if signum == signal.SIGINT else "SIGTERM"
        print(f"\n{self.requested}: saving a checkpoint after this step ({again} again to abort)...", flush=True)

    def on_step_end(self, args, state, control, **kw):
        if self.requested:
            control.should_save = True
            control.should_training_stop = True

    def restore(self) -> None:
        for s, handler in self.previous.items():
            signal.signal(s, handler)
        self.previous = {}


StopOnSigint = StopOnSignal  # the name it had when it caught Ctrl-C only
