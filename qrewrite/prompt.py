"""Chat formatting and completion-only labels, shared by training and rewriting.

Training sequences are ``prompt_ids + completion_ids`` where ``prompt_ids`` is exactly what generation starts
from (the chat template with the generation prompt) and ``completion_ids`` is the clean question followed by
the end-of-turn token. Labels are -100 on the prompt (and, after collation, on padding), so the loss is on the
answer and on the token that stops generation.
"""

from __future__ import annotations

from .models import END_OF_TURN, ModelLoadError

# Kept short on purpose: it is part of every training sequence, and with ~30 tokens of question and answer a
# long instruction would double the cost of each step. Fine-tuning teaches the task; the prompt names it.
SYSTEM_PROMPT = "Rewrite the user's question as the clean question they meant. Reply with the question only."
IGNORE_INDEX = -100


def build_messages(question: str, answer: str | None = None, system_prompt: str | None = None) -> list[dict]:
    messages = [{"role": "system", "content": system_prompt or SYSTEM_PROMPT},
                {"role": "user", "content": question}]
    if answer is not None:
        messages.append({"role": "assistant", "content": answer})
    return messages


def build_prompt(tokenizer, question: str, system_prompt: str | None = None) -> str:
    """The text generation starts from: system instruction, the noisy question, the assistant header."""
    return tokenizer.apply_chat_template(build_messages(question, system_prompt=system_prompt),
                                         tokenize=False, add_generation_prompt=True)


def completion_text(tokenizer, question: str, answer: str, system_prompt: str | None = None) -> str:
    """What the assistant turn adds after the prompt, up to and including the end-of-turn token."""
    prompt = build_prompt(tokenizer, question, system_prompt)
    full = tokenizer.apply_chat_template(build_messages(question, answer, system_prompt), tokenize=False)
    if not full.startswith(prompt):
        raise ModelLoadError("the chat template does not render the prompt as a prefix of the full conversation; "
                         "completion-only training needs a template where it does")
    rest = full[len(prompt):]
    end = rest.find(END_OF_TURN, len(answer))
    if end >= 0:
        return rest[:end + len(END_OF_TURN)]
    return rest + (tokenizer.eos_token or "")


def encode_example(tokenizer, question: str, answer: str, max_length: int,
                   system_prompt: str | None = None) -> dict:
    """input_ids / attention_mask / labels for one pair, plus ``truncated`` (cut to max_length from the right)."""
    prompt_ids = tokenizer(build_prompt(tokenizer, question, system_prompt), add_special_tokens=False)["input_ids"]
    answer_ids = tokenizer(completion_text(tokenizer, question, answer, system_prompt),
                           add_special_tokens=False)["input_ids"]
    input_ids = prompt_ids + answer_ids
    labels = [IGNORE_INDEX] * len(prompt_ids) + answer_ids
    truncated = len(input_ids) > max_length
    input_ids, labels = input_ids[:max_length], labels[:max_length]
    return {"input_ids": input_ids, "attention_mask": [1] * len(input_ids), "labels": labels,
            "length": len(input_ids), "truncated": truncated}


def encode_records(tokenizer, records: list[dict], max_length: int, system_prompt: str | None = None):
    """Tokenised ``datasets.Dataset`` for the Trainer and the number of truncated examples."""
    from datasets import Dataset

    rows = [encode_example(tokenizer, r["input"], r["target"], max_length, system_prompt) for r in records]
    n_truncated = sum(r.pop("truncated") for r in rows)
    return Dataset.from_list(rows), n_truncated
