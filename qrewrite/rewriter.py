"""What ``--model`` names, ready to rewrite: a fine-tuned run, any causal LM, or a baseline without a model
(``copy`` the input, or the cue ``rules`` of :mod:`qrewrite.rules`).

:func:`load_rewriter` is the one loader behind ``evaluate``, ``rewrite``, the notebooks and the server. Every
rewriter has ``name``, ``method``, ``source`` and ``stream(questions)`` (yields ``(index, rewrite)`` in input
order); :meth:`Rewriter.rewrite` collects that into a list. A model-backed rewriter prompts exactly as the
model was trained (the prompt format and system prompt saved with it, see :mod:`qrewrite.run`).
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

from .config import GENERATION_BATCH_SIZE
from .decoding import GREEDY, Decoding
from .errors import ConfigError
from .prompt import PromptSpec

COPY = "copy"
RULES = "rules"
BASELINES = (COPY, RULES)  # rewriters without a model


class Rewriter:
    name = method = source = ""

    def stream(self, questions: list[str], progress=None):
        raise NotImplementedError

    def rewrite(self, questions: list[str], progress=None) -> list[str]:
        out = [""] * len(questions)
        for i, text in self.stream(questions, progress):
            out[i] = text
        return out

    def rewrite_batch(self, questions: list[str]) -> list[str]:
        """One small batch, as fast as possible (a model-backed rewriter reuses its prompt-prefix cache)."""
        return self.rewrite(questions)


class CopyRewriter(Rewriter):
    """The copy-the-input baseline: the floor any rewriter must clear."""
    name = method = source = COPY

    def stream(self, questions, progress=None):
        if progress and questions:
            progress(len(questions))
        yield from enumerate(questions)


class ModelRewriter(Rewriter):
    """A causal LM with its tokenizer, its prompt and its generation settings (batched; greedy unless
    ``decoding`` says otherwise)."""

    def __init__(self, model, tokenizer, *, name: str, source: str, method: str, prompt: PromptSpec,
                 max_new_tokens: int = 64, batch_size: int = GENERATION_BATCH_SIZE, decoding: Decoding = GREEDY):
        self.model, self.tokenizer = model, tokenizer
        self.name, self.source, self.method, self.prompt = name, source, method, prompt
        self.max_new_tokens, self.batch_size, self.decoding = max_new_tokens, batch_size, decoding

    def stream(self, questions, progress=None):
        from .generate import rewrite
        return rewrite(self.model, self.tokenizer, questions, batch_size=self.batch_size,
                       max_new_tokens=self.max_new_tokens, prompt=self.prompt, progress=progress,
                       decoding=self.decoding)

    @functools.cached_property
    def prefix(self):
        """The prompt tokens every question shares, run through the model once (None where there are none)."""
        from .generate import shared_prefix
        return shared_prefix(self.model, self.tokenizer, self.prompt)

    def rewrite_batch(self, questions: list[str]) -> list[str]:
        """One batch as given (no re-sorting), reusing the shared prompt prefix."""
        from .generate import rewrite_batch
        return rewrite_batch(self.model, self.tokenizer, questions, max_new_tokens=self.max_new_tokens,
                             prompt=self.prompt, prefix=self.prefix if self.decoding.num_beams == 1 else None,
                             decoding=self.decoding)


def load_rewriter(model_arg: str, *, precision: str = "auto", trust_remote_code: bool = False,
                  batch_size: int = GENERATION_BATCH_SIZE, max_new_tokens: int | None = None,
                  prompt: PromptSpec | None = None, examples: tuple[tuple[str, str], ...] = (),
                  decoding: Decoding = GREEDY) -> Rewriter:
    """``copy``, ``rules``, or a run directory / model or adapter directory / hub id / ``smollm2``, ready to
    rewrite.

    ``max_new_tokens`` and ``prompt`` default to what the model was trained with (64 and the chat prompt for
    an untuned model); ``examples`` (question, rewrite) pairs make the prompt few-shot; ``decoding`` other than
    greedy: beam search and / or a copy bonus (:mod:`qrewrite.decoding`)."""
    if decoding != GREEDY and model_arg in BASELINES:
        raise ConfigError(f"--num-beams and --copy-bonus set a model's decoding; --model {model_arg} does not decode")
    if model_arg == COPY:
        return CopyRewriter()
    if model_arg == RULES:
        from .rules import RulesRewriter
        return RulesRewriter()
    from .models import load_for_inference
    from .run import Run, inference_settings

    settings = inference_settings(model_arg)
    model, tokenizer, source = load_for_inference(model_arg, precision=precision,
                                                  trust_remote_code=trust_remote_code)
    run = Run.owning(model_arg)
    method = run.info().get("method", "full") if run else "few-shot" if examples else "zero-shot"
    prompt = dataclasses.replace(prompt or settings["prompt"], examples=tuple(examples))
    return ModelRewriter(model, tokenizer, name=Path(str(model_arg).rstrip("/")).name or str(model_arg),
                         source=str(source), method=method, prompt=prompt,
                         max_new_tokens=max_new_tokens or settings["max_new_tokens"] or 64, batch_size=batch_size,
                         decoding=decoding)
