"""Batched rewriting: a shared prompt prefix computed once, left-padded batches, stop at end-of-turn.

Every prompt starts with the same tokens (the chat template's system turn up to where the user's text begins;
with the minimal prompt every recipe now uses, ``<|im_start|>user\n``: 3 tokens). Their keys and values are
computed once per call and copied into each batch's cache, so a batch only runs the model over the part of each
prompt that differs. Re-measured with the minimal prompt (benchmarks/results/generate_cpu_shared_prefix.md) it
still pays, if little: 1.05x questions/s over the same batches on whole prompts (1.25x with the chat prompt's
29-token system turn), for 4 % more memory. Rows are laid out ``prefix | padding | question``; the
attention mask hides the padding and generate() derives positions from it, so every row sees the same
positions it would see unpadded. Decoding is greedy unless a :class:`~qrewrite.infer.decoding.Decoding` says
otherwise; beam search (the decoding ablation) runs on whole prompts, as a cached prefix holds one row per
prompt rather than one per beam. One question alone (the server's lone question) may go by prompt lookup
instead (:class:`PromptLookup`): the same tokens as greedy, fewer forward passes. Every ``generate()`` call of the
package is in :func:`generate_ids`.
"""

from __future__ import annotations

import copy
import json
import math
import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from qrewrite.errors import Interrupted, RunStateError
from qrewrite.files import partial_path
from qrewrite.infer.decoding import GENERATION_BATCH_SIZE, GREEDY, PROMPT_LOOKUP_TOKENS, Decoding
from qrewrite.prompt import PromptSpec, build_prompt, end_of_turn_ids

# Questions are sorted by length within windows of this many batches: less padding, results still stream in order.
SORT_WINDOW_BATCHES = 8
LOOKUP_NGRAM = 3  # longer than transformers' default 2, so a draft is less often taken from the template


@dataclass
class SharedPrefix:
    """Token ids that every prompt begins with, and the model's KV cache for them (batch of one)."""
    ids: list[int]
    cache: object


def prompt_ids(tokenizer, questions: list[str], prompt: PromptSpec | None = None) -> list[list[int]]:
    return [tokenizer(build_prompt(tokenizer, q, prompt), add_special_tokens=False)["input_ids"]
            for q in questions]


@torch.inference_mode()
def shared_prefix(model, tokenizer, prompt: PromptSpec | None = None) -> SharedPrefix | None:
    """The prompt tokens that do not depend on the question, run through the model once.

    Found as the common start of two prompts whose questions share no character; None when there is none or
    the model cannot take a cache (then batches run on whole prompts)."""
    first, second = prompt_ids(tokenizer, ["A", "1"], prompt)
    common = 0
    while common < min(len(first), len(second)) - 1 and first[common] == second[common]:
        common += 1
    if common == 0:
        return None
    with eval_mode(model):
        out = model(input_ids=torch.tensor([first[:common]], device=model.device), use_cache=True)
    cache = getattr(out, "cache", None)  # past_key_values before transformers 5.24 (now a deprecation warning)
    if cache is None or not hasattr(cache, "batch_repeat_interleave"):
        return None
    return SharedPrefix(first[:common], cache)


class Replicas:
    """A batch split into ``n`` parts rewritten at once, each in its own thread with ``threads`` torch threads
    (default: the cores shared out), as CTranslate2's replicas do: on 2 cores, two halves of a bf16 batch on one
    thread each were measured 1.2-1.4x the whole batch on two threads (torch's threads scale poorly on a batch's
    small matrices). The model's weights are shared; each part gets its own copy of the prefix cache."""

    def __init__(self, n: int, threads: int = 0):
        self.n = n
        self.threads = threads or max(1, (os.cpu_count() or 1) // n)
        self._pool = ThreadPoolExecutor(n, thread_name_prefix="qrewrite-replica", initializer=torch.set_num_threads,
                                        initargs=(self.threads,))

    def map(self, fn, rows: list) -> list:
        """``fn(part)`` for the parts of ``rows`` at once, concatenated in order (one part: ``fn(rows)``)."""
        size = math.ceil(len(rows) / self.n) if rows else 1
        parts = [rows[i:i + size] for i in range(0, len(rows), size)]
        if len(parts) < 2:
            return fn(rows)
        return [x for future in [self._pool.submit(fn, part) for part in parts] for x in future.result()]


@torch.inference_mode()
def generate_ids(model, tokenizer, rows: list[list[int]], *, max_new_tokens: int = 64,
                 prefix: SharedPrefix | None = None, eos_token_id=None, decoding: Decoding = GREEDY,
                 questions: list[str] = (), prompt_lookup_tokens: int = 0) -> torch.Tensor:
    """The continuation of tokenised prompts, one row each, decoded as ``decoding`` says: the new tokens, padded
    with pad_token_id.

    ``prefix`` is used when every row starts with its ids (greedy only); ``eos_token_id`` defaults to end-of-turn;
    ``questions`` (the rows' questions) are what a copy or order bonus favours; ``prompt_lookup_tokens`` > 0
    decodes one greedy row by prompt lookup (:class:`PromptLookup`)."""
    if decoding.adjusts_logits and len(questions) != len(rows):
        raise ValueError(f"{decoding.name}: a bonus needs the rows' questions ({len(questions)} for {len(rows)} rows)")
    n_prefix = len(prefix.ids) if prefix is not None and decoding.num_beams == 1 else 0
    shared = n_prefix if n_prefix and all(len(r) > n_prefix and r[:n_prefix] == prefix.ids for r in rows) else 0
    width = max(len(r) - shared for r in rows)  # the longest question part; shorter ones are left-padded to it
    input_ids = torch.full((len(rows), shared + width), tokenizer.pad_token_id, dtype=torch.long)
    attention = torch.zeros_like(input_ids)
    for i, row in enumerate(rows):
        start = shared + width - (len(row) - shared)
        input_ids[i, :shared] = torch.tensor(row[:shared])
        input_ids[i, start:] = torch.tensor(row[shared:])
        attention[i, :shared] = 1
        attention[i, start:] = 1
    kwargs = decoding.generate_kwargs(tokenizer, list(questions))
    if shared:
        cache = copy.deepcopy(prefix.cache)
        cache.batch_repeat_interleave(len(rows))
        kwargs["cache"] = cache  # generate's name for it since transformers 5.24 (was past_key_values)
    if prompt_lookup_tokens:
        kwargs.update(prompt_lookup_num_tokens=prompt_lookup_tokens, max_matching_ngram_size=LOOKUP_NGRAM)
    with eval_mode(model):
        out = model.generate(input_ids=input_ids.to(model.device), attention_mask=attention.to(model.device),
                             max_new_tokens=max_new_tokens,
                             eos_token_id=end_of_turn_ids(tokenizer) if eos_token_id is None else eos_token_id,
                             pad_token_id=tokenizer.pad_token_id, use_cache=True, **kwargs)
    return out[:, shared + width:]


def rewrite_batch(model, tokenizer, questions: list[str], *, max_new_tokens: int = 64,
                  prompt: PromptSpec | None = None, prefix: SharedPrefix | None = None,
                  decoding: Decoding = GREEDY, replicas: Replicas | None = None) -> list[str]:
    """Rewrite one batch as given (``prefix``: from shared_prefix, computed here when not given; ``replicas``:
    split between them)."""
    if not questions:
        return []
    if prefix is None and decoding.num_beams == 1:
        prefix = shared_prefix(model, tokenizer, prompt)
    return _rewrite_rows(model, tokenizer, questions, prefix, max_new_tokens, prompt, decoding, replicas)


def _rewrite_rows(model, tokenizer, questions, prefix, max_new_tokens, prompt, decoding: Decoding,
                  replicas: Replicas | None = None) -> list[str]:
    if replicas is not None:
        return replicas.map(lambda part: _rewrite_rows(model, tokenizer, part, prefix, max_new_tokens, prompt,
                                                       decoding), questions)
    new_tokens = generate_ids(model, tokenizer, prompt_ids(tokenizer, questions, prompt),
                              max_new_tokens=max_new_tokens, prefix=prefix, decoding=decoding, questions=questions)
    return [t.strip() for t in tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]


def rewrite(model, tokenizer, questions: list[str], *, batch_size: int = GENERATION_BATCH_SIZE,
            max_new_tokens: int = 64, prompt: PromptSpec | None = None, progress=None, share_prefix: bool = True,
            decoding: Decoding = GREEDY, replicas: Replicas | None = None):
    """Yield ``(index, rewrite)`` in input order, batching questions of similar length together.

    Sorting by length inside a window keeps padding low while results still stream out in order; ``progress``
    is an optional callable receiving the number of questions just finished. The shared prompt prefix is
    computed once for all batches (``share_prefix=False`` turns that off, for comparison); ``replicas`` split each
    batch between them."""
    prefix = shared_prefix(model, tokenizer, prompt) if questions and share_prefix and decoding.num_beams == 1 \
        else None
    window = batch_size * SORT_WINDOW_BATCHES
    for start in range(0, len(questions), window):
        chunk = list(range(start, min(start + window, len(questions))))
        chunk_sorted = sorted(chunk, key=lambda i: len(questions[i]))
        done: dict[int, str] = {}
        for b in range(0, len(chunk_sorted), batch_size):
            idx = chunk_sorted[b:b + batch_size]
            for i, text in zip(idx, _rewrite_rows(model, tokenizer, [questions[i] for i in idx], prefix,
                                                  max_new_tokens, prompt, decoding, replicas)):
                done[i] = text
            if progress:
                progress(len(idx))
        for i in chunk:
            yield i, done[i]


@contextmanager
def eval_mode(model):
    """model.eval() inside the block, the previous mode after it (rewriting is also called mid-training)."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        if was_training:
            model.train()


class PromptLookup:
    """A lone question rewritten by prompt lookup (the tokens plain greedy would give): a rewrite mostly copies the
    question, so draft tokens are taken from the prompt itself (the continuation of the last n-gram where it occurs
    earlier) and checked in one forward pass; greedy verification keeps exactly the tokens plain greedy decoding
    would produce, several per pass when the draft is right. ``prompt_lookup_tokens=0``: one token per pass."""

    def __init__(self, model, tokenizer, prompt: PromptSpec | None, max_new_tokens: int,
                 prompt_lookup_tokens: int = PROMPT_LOOKUP_TOKENS):
        self.model, self.tokenizer, self.prompt = model, tokenizer, prompt
        self.max_new_tokens, self.prompt_lookup_tokens = max_new_tokens, prompt_lookup_tokens
        self.dtype = str(next(model.parameters()).dtype).removeprefix("torch.")

    def ids(self, question: str) -> torch.Tensor:
        """The new token ids of ``question``'s rewrite."""
        return generate_ids(self.model, self.tokenizer, prompt_ids(self.tokenizer, [question], self.prompt),
                            max_new_tokens=self.max_new_tokens, prompt_lookup_tokens=self.prompt_lookup_tokens)[0]

    def __call__(self, question: str) -> str:
        return self.tokenizer.decode(self.ids(question), skip_special_tokens=True).strip()


def rewrite_file(rewriter, records: list[dict], output: str | Path, *, progress=None, with_input: bool = True) -> Path:
    """Write ``{"id", "input", "prediction"}`` JSONL for ``records`` with a :mod:`qrewrite.infer.rewriter`, in input
    order, resumably (``{"id", "prediction"}`` with ``with_input=False``: inputs that must not be copied).

    Lines stream into ``<output>.partial`` (flushed per batch window); a rerun after an interruption checks the
    finished lines against the input (same ids, same order), drops a torn last line and continues. The file is
    renamed to ``output`` only when every record is done, so a complete-looking output is a complete one. On
    Ctrl-C or SIGTERM the finished lines stay in ``.partial`` (removed when there are none) and
    :class:`~qrewrite.errors.Interrupted` says how many."""
    output = Path(output)
    partial = partial_path(output)
    done = _finished_lines(partial, records)
    written = len(done)
    try:
        with open(partial, "r+" if partial.exists() else "w", encoding="utf-8") as f:
            f.seek(sum(len(line.encode("utf-8")) for line in done))
            f.truncate()
            if progress and done:
                progress(len(done))
            todo = records[len(done):]
            for i, text in rewriter.stream([r["input"] for r in todo], progress=progress):
                r = todo[i]
                row = {"id": r["id"], "input": r["input"], "prediction": text} if with_input else \
                    {"id": r["id"], "prediction": text}
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
                written += 1
                if (i + 1) % GENERATION_BATCH_SIZE == 0:
                    f.flush()
            f.flush()
            os.fsync(f.fileno())
    except KeyboardInterrupt as e:
        if written == 0:
            partial.unlink(missing_ok=True)
            raise Interrupted.like(e, f"no question finished; nothing written (the old {output.name}, if any, is "
                                      "as it was)") from None
        raise Interrupted.like(e, f"{written} of {len(records)} questions written to {partial}; run the same "
                                  f"command again to continue from there (the old {output.name}, if any, is as "
                                  "it was)") from None
    os.replace(partial, output)
    return output


def _finished_lines(partial: Path, records: list[dict]) -> list[str]:
    if not partial.exists():
        return []
    lines = partial.read_text(encoding="utf-8").splitlines(keepends=True)
    done = []
    for n, line in enumerate(lines):
        if not line.endswith("\n"):
            break  # torn last line: redo it
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            break
        if n >= len(records) or row.get("id") != records[n]["id"]:
            raise RunStateError(f"{partial} line {n + 1} (id {row.get('id')!r}) does not match input record {n + 1} "
                            f"(id {records[n]['id'] if n < len(records) else None!r}); it was written for "
                            "another input file: delete it to start over")
        done.append(line)
    return done
