"""What ``--model`` names, ready to rewrite: a fine-tuned run, any causal LM, or a baseline without a model
(``copy`` the input, or the cue ``rules`` of :mod:`qrewrite.infer.rules`).

:func:`load_rewriter` is the one loader behind ``evaluate``, ``rewrite``, the notebooks and the server. Every
rewriter has ``name``, ``method``, ``source`` and ``stream(questions)`` (yields ``(index, rewrite)`` in input
order); :meth:`Rewriter.rewrite` collects that into a list. A model-backed rewriter prompts exactly as the
model was trained (the prompt format and system prompt saved with it, see :mod:`qrewrite.run`).
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

from qrewrite.errors import ConfigError
from qrewrite.infer.base import BASELINES, COPY, RULES, Rewriter
from qrewrite.infer.ct2 import check_convertible, load_ct2_rewriter
from qrewrite.infer.decoding import ENGINES, GENERATION_BATCH_SIZE, GREEDY, Decoding
from qrewrite.infer.generate import Replicas, rewrite, rewrite_batch, shared_prefix
from qrewrite.infer.rules import RulesRewriter
from qrewrite.models import load_for_inference, load_tokenizer, resolve_model_source
from qrewrite.prompt import PromptSpec
from qrewrite.run import Run, inference_settings


class CopyRewriter(Rewriter):
    """The copy-the-input baseline: the floor any rewriter must clear."""
    name = method = source = COPY

    def stream(self, questions, progress=None):
        if progress and questions:
            progress(len(questions))
        yield from enumerate(questions)


class ModelRewriter(Rewriter):
    """A causal LM with its tokenizer, its prompt and its generation settings (batched; greedy unless
    ``decoding`` says otherwise; ``replicas`` > 1: each batch split between that many threads, each with
    ``threads`` torch threads, see :class:`~qrewrite.infer.generate.Replicas`)."""

    engine = "transformers"

    def __init__(self, model, tokenizer, *, name: str, source: str, method: str, prompt: PromptSpec,
                 max_new_tokens: int = 64, batch_size: int = GENERATION_BATCH_SIZE, decoding: Decoding = GREEDY,
                 replicas: int = 1, threads: int = 0):
        self.model, self.tokenizer = model, tokenizer
        self.name, self.source, self.method, self.prompt = name, source, method, prompt
        self.max_new_tokens, self.batch_size, self.decoding = max_new_tokens, batch_size, decoding
        self.replicas = Replicas(replicas, threads) if replicas > 1 else None

    def stream(self, questions, progress=None):
        return rewrite(self.model, self.tokenizer, questions, batch_size=self.batch_size,
                       max_new_tokens=self.max_new_tokens, prompt=self.prompt, progress=progress,
                       decoding=self.decoding, replicas=self.replicas)

    @functools.cached_property
    def prefix(self):
        """The prompt tokens every question shares, run through the model once (None where there are none)."""
        return shared_prefix(self.model, self.tokenizer, self.prompt)

    def rewrite_batch(self, questions: list[str]) -> list[str]:
        """One batch as given (no re-sorting), reusing the shared prompt prefix."""
        return rewrite_batch(self.model, self.tokenizer, questions, max_new_tokens=self.max_new_tokens,
                             prompt=self.prompt, prefix=self.prefix if self.decoding.num_beams == 1 else None,
                             decoding=self.decoding, replicas=self.replicas)


def load_rewriter(model_arg: str, *, precision: str = "auto", trust_remote_code: bool = False,
                  batch_size: int = GENERATION_BATCH_SIZE, max_new_tokens: int | None = None,
                  prompt: PromptSpec | None = None, examples: tuple[tuple[str, str], ...] = (),
                  decoding: Decoding = GREEDY, engine: str = "transformers", quantization: str | None = None,
                  threads: int = 0, replicas: int = 1) -> Rewriter:
    """``copy``, ``rules``, or a run directory / model or adapter directory / hub id / ``smollm2``, ready to
    rewrite.

    ``max_new_tokens`` and ``prompt`` default to what the model was trained with (64 and the chat prompt for
    an untuned model); ``examples`` (question, rewrite) pairs make the prompt few-shot; ``decoding`` other than
    greedy: beam search and / or a copy or order bonus (:mod:`qrewrite.infer.decoding`). ``engine="ctranslate2"``
    rewrites with the model converted to CTranslate2 (``quantization``: int8 by default; see
    :mod:`qrewrite.infer.ct2`). ``replicas``: parts of a batch decoded at once, each with ``threads`` CPU threads
    (0: the cores shared out), on either engine."""
    if engine not in ENGINES:
        raise ConfigError(f"--engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if decoding != GREEDY and model_arg in BASELINES:
        raise ConfigError(f"{', '.join(Decoding.flags())} set a model's decoding; --model {model_arg} does not "
                          "decode")
    if engine != "transformers" and model_arg in BASELINES:
        raise ConfigError(f"--engine {engine} decodes a model; --model {model_arg} has none")
    if replicas != 1 and model_arg in BASELINES:
        raise ConfigError(f"--replicas splits a model's batches; --model {model_arg} has no model")
    if model_arg == COPY:
        return CopyRewriter()
    if model_arg == RULES:
        return RulesRewriter()

    settings = inference_settings(model_arg)
    run = Run.owning(model_arg)
    method = run.info().get("method", "full") if run else "few-shot" if examples else "zero-shot"
    prompt = dataclasses.replace(prompt or settings["prompt"], examples=tuple(examples))
    common = dict(name=Path(str(model_arg).rstrip("/")).name or str(model_arg), method=method, prompt=prompt,
                  max_new_tokens=max_new_tokens or settings["max_new_tokens"] or 64, batch_size=batch_size,
                  decoding=decoding)
    if engine == "ctranslate2":
        model_dir = Path(resolve_model_source(str(Run.model_dir_of(model_arg))))
        if not model_dir.is_dir():
            raise ConfigError(f"--engine ctranslate2 converts a local model: --model {model_arg} is not a run or "
                              "model directory (download it first, or use --engine transformers)")
        check_convertible(model_dir)
        tokenizer = load_tokenizer(str(model_dir), trust_remote_code)
        return load_ct2_rewriter(model_dir, tokenizer, quantization=quantization, threads=threads,
                                 replicas=replicas, source=str(model_dir), **common)
    model, tokenizer, source = load_for_inference(model_arg, precision=precision,
                                                  trust_remote_code=trust_remote_code)
    return ModelRewriter(model, tokenizer, source=str(source), replicas=replicas, threads=threads, **common)
