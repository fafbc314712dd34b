"""Batched greedy rewriting: left padding, the KV cache, stop at the end-of-turn token."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from .data import DataError
from .models import end_of_turn_ids
from .prompt import build_prompt


@torch.inference_mode()
def rewrite_batch(model, tokenizer, questions: list[str], *, max_new_tokens: int = 64,
                  system_prompt: str | None = None) -> list[str]:
    """Rewrite one batch with greedy decoding. Prompts are left-padded so every row generates from its end."""
    if not questions:
        return []
    was_training = model.training
    model.eval()
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        prompts = [build_prompt(tokenizer, q, system_prompt) for q in questions]
        batch = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        batch = {k: v.to(model.device) for k, v in batch.items()}
        out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                             eos_token_id=end_of_turn_ids(tokenizer), pad_token_id=tokenizer.pad_token_id,
                             use_cache=True)
    finally:
        tokenizer.padding_side = side
        if was_training:
            model.train()
    new_tokens = out[:, batch["input_ids"].shape[1]:]
    return [t.strip() for t in tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]


def rewrite(model, tokenizer, questions: list[str], *, batch_size: int = 32, max_new_tokens: int = 64,
            system_prompt: str | None = None, progress=None):
    """Yield ``(index, rewrite)`` in input order, batching questions of similar length together.

    Sorting by length inside a window keeps padding low while results still stream out in order; ``progress``
    is an optional callable receiving the number of questions just finished."""
    window = batch_size * 8
    for start in range(0, len(questions), window):
        chunk = list(range(start, min(start + window, len(questions))))
        chunk_sorted = sorted(chunk, key=lambda i: len(questions[i]))
        done: dict[int, str] = {}
        for b in range(0, len(chunk_sorted), batch_size):
            idx = chunk_sorted[b:b + batch_size]
            for i, text in zip(idx, rewrite_batch(model, tokenizer, [questions[i] for i in idx],
                                                  max_new_tokens=max_new_tokens, system_prompt=system_prompt)):
                done[i] = text
            if progress:
                progress(len(idx))
        for i in chunk:
            yield i, done[i]


def rewrite_file(model, tokenizer, records: list[dict], output: str | Path, *, batch_size: int = 32,
                 max_new_tokens: int = 64, system_prompt: str | None = None, progress=None) -> Path:
    """Write ``{"id", "input", "prediction"}`` JSONL for ``records``, in input order, resumably.

    Lines stream into ``<output>.partial`` (flushed per batch window); a rerun after an interruption checks the
    finished lines against the input (same ids, same order), drops a torn last line and continues. The file is
    renamed to ``output`` only when every record is done, so a complete-looking output is a complete one."""
    output = Path(output)
    partial = output.with_name(output.name + ".partial")
    done = _finished_lines(partial, records)
    with open(partial, "r+" if partial.exists() else "w", encoding="utf-8") as f:
        f.seek(sum(len(line.encode("utf-8")) for line in done))
        f.truncate()
        if progress and done:
            progress(len(done))
        todo = records[len(done):]
        for i, text in rewrite(model, tokenizer, [r["input"] for r in todo], batch_size=batch_size,
                               max_new_tokens=max_new_tokens, system_prompt=system_prompt, progress=progress):
            r = todo[i]
            f.write(json.dumps({"id": r["id"], "input": r["input"], "prediction": text}, ensure_ascii=False) + "\n")
            if (i + 1) % batch_size == 0:
                f.flush()
        f.flush()
        os.fsync(f.fileno())
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
            raise DataError(f"{partial} line {n + 1} (id {row.get('id')!r}) does not match input record {n + 1} "
                            f"(id {records[n]['id'] if n < len(records) else None!r}); it was written for "
                            "another input file: delete it to start over")
        done.append(line)
    return done
