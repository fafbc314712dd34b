"""What the server rewrites with: a backend loaded once from ``--model``, and the single-question fast path.

A backend has ``.name``, ``.rewrite(questions) -> rewrites`` (a batch, on the project's batched path with the
shared prompt prefix) and ``.rewrite_one(question) -> rewrite`` (one question, prompt lookup decoding).
:func:`load_backend` is the one place that turns ``--model`` into a backend, so it can later be swapped for
the package's own rewriter abstraction.

Prompt lookup: a rewrite mostly copies the question, so draft tokens are taken from the prompt itself (the
continuation of the last n-gram where it occurs earlier) and checked in one forward pass; greedy verification
keeps exactly the tokens plain greedy decoding would produce, several per pass when the draft is right.
"""

from __future__ import annotations

from pathlib import Path

COPY = "copy"
PROMPT_LOOKUP_TOKENS = 10
LOOKUP_NGRAM = 3  # longer than transformers' default 2, so a draft is less often taken from the system prompt


class CopyBackend:
    """Returns each question unchanged: the copy-the-input baseline, and a server that needs no model."""
    name = COPY

    def rewrite(self, questions: list[str]) -> list[str]:
        return list(questions)

    def rewrite_one(self, question: str) -> str:
        return question


class ModelBackend:
    def __init__(self, model, tokenizer, name: str, *, system_prompt: str | None = None,
                 max_new_tokens: int = 64, prompt_lookup_tokens: int = PROMPT_LOOKUP_TOKENS):
        from .generate import shared_prefix
        self.model, self.tokenizer, self.name = model, tokenizer, name
        self.system_prompt, self.max_new_tokens = system_prompt, max_new_tokens
        self.prompt_lookup_tokens = prompt_lookup_tokens
        self.prefix = shared_prefix(model, tokenizer, system_prompt)

    def rewrite(self, questions: list[str]) -> list[str]:
        from .generate import rewrite_batch
        return rewrite_batch(self.model, self.tokenizer, questions, max_new_tokens=self.max_new_tokens,
                             system_prompt=self.system_prompt, prefix=self.prefix)

    def rewrite_one(self, question: str) -> str:
        return rewrite_one(self.model, self.tokenizer, question, max_new_tokens=self.max_new_tokens,
                           system_prompt=self.system_prompt, prompt_lookup_tokens=self.prompt_lookup_tokens)


def load_backend(model_arg: str, *, max_new_tokens: int = 64, precision: str = "auto",
                 trust_remote_code: bool = False, prompt_lookup_tokens: int = PROMPT_LOOKUP_TOKENS):
    """``copy``, or anything ``rewrite --model`` takes (run dir, checkpoint / adapter dir, hub id, smollm2)."""
    if model_arg == COPY:
        return CopyBackend()
    from .evaluation import run_system_prompt
    from .models import load_for_inference
    model, tokenizer, _ = load_for_inference(model_arg, precision=precision, trust_remote_code=trust_remote_code)
    return ModelBackend(model, tokenizer, model_name(model_arg), system_prompt=run_system_prompt(model_arg),
                        max_new_tokens=max_new_tokens, prompt_lookup_tokens=prompt_lookup_tokens)


def model_name(model_arg: str) -> str:
    """What responses call the model: a run's name (``weights/<run>`` or its ``model/``), else the argument."""
    path = Path(model_arg).expanduser()
    if path.is_dir():
        path = path.resolve()
        if path.name in ("model", "adapter") and (path.parent / "run.json").exists():
            path = path.parent
        return path.name
    return model_arg


def generate_one_ids(model, tokenizer, question: str, *, max_new_tokens: int = 64,
                     system_prompt: str | None = None, prompt_lookup_tokens: int = PROMPT_LOOKUP_TOKENS):
    """Greedy new token ids for one unpadded prompt; ``prompt_lookup_tokens=0`` decodes one token per pass."""
    import torch

    from .generate import _eval_mode, prompt_ids
    from .models import end_of_turn_ids

    ids = torch.tensor(prompt_ids(tokenizer, [question], system_prompt), device=model.device)
    lookup = dict(prompt_lookup_num_tokens=prompt_lookup_tokens, max_matching_ngram_size=LOOKUP_NGRAM) \
        if prompt_lookup_tokens else {}
    with torch.inference_mode(), _eval_mode(model):
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                             do_sample=False, num_beams=1, eos_token_id=end_of_turn_ids(tokenizer),
                             pad_token_id=tokenizer.pad_token_id, use_cache=True, **lookup)
    return out[0, ids.shape[1]:]


def rewrite_one(model, tokenizer, question: str, **kwargs) -> str:
    """One question's rewrite by :func:`generate_one_ids` (prompt lookup unless ``prompt_lookup_tokens=0``)."""
    return tokenizer.decode(generate_one_ids(model, tokenizer, question, **kwargs), skip_special_tokens=True).strip()
