"""What the server rewrites with: a backend loaded once from ``--model``, and the single-question fast path.

A backend has ``.name``, ``.rewrite(questions) -> rewrites`` (a batch, on the engine's batched path) and
``.rewrite_one(question) -> rewrite`` (one question: prompt lookup decoding on a transformers model, or a batch of
one). It wraps the rewriter :func:`qrewrite.infer.rewriter.load_rewriter` makes of ``--model``; with
``--lone-question prompt-lookup-bf16`` a lone question goes to a bf16 copy of the model by prompt lookup, whatever
the engine (CTranslate2 batches, bf16 prompt lookup alone: the fastest pair measured on a 2-core CPU).
Prompt lookup itself is :class:`qrewrite.infer.generate.PromptLookup`.
"""

from __future__ import annotations

from pathlib import Path

import torch

from qrewrite.errors import ConfigError
from qrewrite.infer.decoding import GREEDY, PROMPT_LOOKUP_TOKENS, Decoding
from qrewrite.infer.generate import PromptLookup
from qrewrite.infer.rewriter import ModelRewriter, load_rewriter
from qrewrite.models import load_for_inference
from qrewrite.run import Run
from qrewrite.serve.options import LONE_QUESTION_PATHS


class Backend:
    """A :mod:`qrewrite.infer.rewriter` rewriter as the server uses it: a batch as given, and one question by
    ``lone`` (a :class:`PromptLookup`) or, without one, as a batch of one."""

    def __init__(self, rewriter, name: str, lone: PromptLookup | None = None):
        self.rewriter, self.name, self.engine, self.lone = rewriter, name, rewriter.engine, lone
        decoding = getattr(rewriter, "decoding", None)  # copy and rules do not decode
        self.decoding = decoding.name if decoding is not None else None

    @property
    def lone_question(self) -> str | None:
        """How a lone question is rewritten, for /health: ``prompt lookup (float32)``, ``batch of one``, ..."""
        if self.lone is not None:
            how = "prompt lookup" if self.lone.prompt_lookup_tokens else "plain greedy"  # --prompt-lookup-tokens 0
            return f"{how} ({self.lone.dtype})"
        return "batch of one" if self.engine else None

    def rewrite(self, questions: list[str]) -> list[str]:
        return self.rewriter.rewrite_batch(questions)

    def rewrite_one(self, question: str) -> str:
        if self.lone is not None:
            return self.lone(question)
        return self.rewriter.rewrite_batch([question])[0]


class ModelBackend(Backend):
    """A model on the transformers engine: batches on the shared-prefix path; a lone question by prompt lookup (same
    tokens as greedy) when the model decodes greedily, else as a batch of one (beam search, a copy bonus:
    :mod:`qrewrite.infer.decoding`)."""

    def __init__(self, rewriter, name: str, prompt_lookup_tokens: int = PROMPT_LOOKUP_TOKENS,
                 lone: PromptLookup | None = None):
        if lone is None and rewriter.decoding == GREEDY:  # prompt lookup reproduces plain greedy decoding only
            lone = PromptLookup(rewriter.model, rewriter.tokenizer, rewriter.prompt, rewriter.max_new_tokens,
                                prompt_lookup_tokens)
        super().__init__(rewriter, name, lone)
        self.model, self.tokenizer, self.prompt_lookup_tokens = rewriter.model, rewriter.tokenizer, prompt_lookup_tokens
        self.prefix = rewriter.prefix  # computed here, at start-up, rather than on the first request


def load_backend(model_arg: str, *, max_new_tokens: int | None = None, precision: str = "auto",
                 trust_remote_code: bool = False, prompt_lookup_tokens: int = PROMPT_LOOKUP_TOKENS,
                 decoding: Decoding = GREEDY, engine: str = "transformers", quantization: str | None = None,
                 threads: int = 0, replicas: int = 1, lone_question: str = "engine"):
    """What ``rewrite --model`` takes (run dir, model / adapter dir, hub id, smollm2, ``copy``, ``rules``),
    loaded once by :func:`qrewrite.infer.rewriter.load_rewriter` (the model's own prompt and generation budget),
    decoding as ``decoding`` says (greedy by default, as ``rewrite`` and ``evaluate``), with ``engine``.
    ``lone_question``: ``engine`` (the transformers engine by prompt lookup, ``ctranslate2`` as a batch of one) or
    ``prompt-lookup-bf16`` (prompt lookup on a bf16 copy of the model, or on the model itself when it is bf16)."""
    if lone_question not in LONE_QUESTION_PATHS:
        raise ConfigError(f"--lone-question {lone_question}: choose one of {', '.join(LONE_QUESTION_PATHS)}")
    rewriter = load_rewriter(model_arg, precision=precision, trust_remote_code=trust_remote_code,
                             max_new_tokens=max_new_tokens, decoding=decoding, engine=engine,
                             quantization=quantization, threads=threads, replicas=replicas)
    lone = None
    if lone_question == "prompt-lookup-bf16":
        lone = bf16_prompt_lookup(model_arg, rewriter, prompt_lookup_tokens, trust_remote_code)
    if isinstance(rewriter, ModelRewriter):
        return ModelBackend(rewriter, model_name(model_arg), prompt_lookup_tokens, lone)
    return Backend(rewriter, rewriter.name, lone)


def bf16_prompt_lookup(model_arg: str, rewriter, prompt_lookup_tokens: int, trust_remote_code: bool) -> PromptLookup:
    """``--lone-question prompt-lookup-bf16``: prompt lookup on the rewriter's model in bf16 (a copy, unless it is
    bf16 already), with the rewriter's tokenizer, prompt and generation budget."""
    if getattr(rewriter, "engine", None) is None:
        raise ConfigError(f"--lone-question prompt-lookup-bf16: --model {model_arg} is a baseline with no model to "
                          "decode; leave the option out")
    if rewriter.decoding != GREEDY:
        raise ConfigError(f"--lone-question prompt-lookup-bf16 reproduces greedy decoding; it cannot decode "
                          f"{rewriter.decoding.name}: leave the option out or decode greedily")
    model = getattr(rewriter, "model", None)
    if model is None or next(model.parameters()).dtype != torch.bfloat16:
        model, _, _ = load_for_inference(model_arg, precision="bf16", trust_remote_code=trust_remote_code)
    return PromptLookup(model, rewriter.tokenizer, rewriter.prompt, rewriter.max_new_tokens, prompt_lookup_tokens)


def model_name(model_arg: str) -> str:
    """What responses call the model: a run's name (``weights/<run>`` or its ``model/``), else the argument."""
    run = Run.owning(model_arg)
    if run is not None:
        return run.path.resolve().name
    path = Path(model_arg).expanduser()
    return path.resolve().name if path.is_dir() else model_arg
