"""Prompt formats and completion-only labels, shared by training and rewriting.

Training sequences are ``prompt_ids + completion_ids`` where ``prompt_ids`` is exactly what generation starts
from (the chat template with the generation prompt) and ``completion_ids`` is the clean question followed by
the end-of-turn token. Labels are -100 on the prompt (and, after collation, on padding), so the loss is on the
answer and on the token that stops generation.

Two formats (:class:`PromptSpec`):
  chat     the model's chat template with a system instruction: right for an untuned model (zero-shot)
  minimal  the template's user and assistant turns and end-of-turn token only, with no system turn (nor the
           default one some templates inject, e.g. SmolLM2's "You are a helpful AI assistant named SmolLM"):
           a fine-tuned model learns the task from the data, and each example costs ~40% fewer tokens
"""

from __future__ import annotations

from dataclasses import dataclass

from qrewrite.errors import ConfigError, TemplateError

# Kept short on purpose: it is part of every chat-format sequence. Fine-tuning teaches the task; the prompt names it.
SYSTEM_PROMPT = "Rewrite the user's question as the clean question they meant. Reply with the question only."
IGNORE_INDEX = -100
END_OF_TURN = "<|im_end|>"
CHATML_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
    "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
PROMPT_FORMATS = ("chat", "minimal")


@dataclass(frozen=True)
class PromptSpec:
    """How a question becomes a prompt: ``format`` (chat | minimal), for chat the system instruction (None =
    :data:`SYSTEM_PROMPT`), and ``examples``: ``(question, rewrite)`` pairs shown as earlier user / assistant
    turns before the question (few-shot prompting of an untuned model; empty for fine-tuned ones)."""
    format: str = "chat"
    system_prompt: str | None = None
    examples: tuple[tuple[str, str], ...] = ()

    def __post_init__(self):
        if self.format not in PROMPT_FORMATS:
            raise ConfigError(f"prompt_format: {self.format!r} is not one of {', '.join(PROMPT_FORMATS)}")
        if self.format == "minimal" and self.system_prompt:
            raise ConfigError("system_prompt: the minimal prompt format has no system turn; leave system_prompt "
                              "empty or use prompt_format: chat")

    @classmethod
    def of_config(cls, cfg) -> "PromptSpec":
        return cls(cfg.prompt_format, cfg.system_prompt or None)


def _render(tokenizer, messages: list[dict], add_generation_prompt: bool) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)


def _turns(question: str, answer: str | None, examples=()) -> list[dict]:
    turns = [{"role": role, "content": text} for shot in examples
             for role, text in zip(("user", "assistant"), shot)]
    turns.append({"role": "user", "content": question})
    if answer is not None:
        turns.append({"role": "assistant", "content": answer})
    return turns


def render(tokenizer, question: str, answer: str | None = None, prompt: PromptSpec | None = None) -> str:
    """The conversation as text: the prompt with the generation header when ``answer`` is None, else the full
    conversation including the answer."""
    spec = prompt or PromptSpec()
    gen = answer is None
    if spec.format == "chat":
        system = [{"role": "system", "content": spec.system_prompt or SYSTEM_PROMPT}]
        return _render(tokenizer, system + _turns(question, answer, spec.examples), gen)
    # minimal: render with a placeholder system turn (so the template injects no default one), then cut it off
    placeholder = [{"role": "system", "content": "S"}]
    head = _render(tokenizer, placeholder, False)
    full = _render(tokenizer, placeholder + _turns(question, answer, spec.examples), gen)
    if not head or not full.startswith(head):
        raise TemplateError("the chat template does not render the system turn as a prefix of the conversation, "
                            "so the minimal prompt format cannot drop it; use prompt_format: chat")
    rest = full[len(head):]
    # A template that opens with a BOS token (Llama 3) keeps it; SmolLM2's "bos" is its turn marker, already there.
    bos = tokenizer.bos_token or ""
    return (bos if bos and head.startswith(bos) and not rest.startswith(bos) else "") + rest


def end_of_turn_ids(tokenizer) -> list[int]:
    """Token ids that end the assistant's answer: the chat end-of-turn token and the tokenizer's eos."""
    ids = []
    vocab = tokenizer.get_vocab()
    if END_OF_TURN in vocab:
        ids.append(vocab[END_OF_TURN])
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return ids


def build_prompt(tokenizer, question: str, prompt: PromptSpec | None = None) -> str:
    """The text generation starts from: (system instruction,) the noisy question, the assistant header."""
    return render(tokenizer, question, None, prompt)


def completion_text(tokenizer, question: str, answer: str, prompt: PromptSpec | None = None) -> str:
    """What the assistant turn adds after the prompt, up to and including the end-of-turn token."""
    head = build_prompt(tokenizer, question, prompt)
    full = render(tokenizer, question, answer, prompt)
    if not full.startswith(head):
        raise TemplateError("the chat template does not render the prompt as a prefix of the full conversation; "
                            "completion-only training needs a template where it does")
    rest = full[len(head):]
    end = rest.find(END_OF_TURN, len(answer))
    if end >= 0:
        return rest[:end + len(END_OF_TURN)]
    return rest + (tokenizer.eos_token or "")


def encode_example(tokenizer, question: str, answer: str, max_length: int, prompt: PromptSpec | None = None) -> dict:
    """input_ids / attention_mask / labels for one pair, plus ``truncated`` (cut to max_length from the right)."""
    prompt_ids = tokenizer(build_prompt(tokenizer, question, prompt), add_special_tokens=False)["input_ids"]
    answer_ids = tokenizer(completion_text(tokenizer, question, answer, prompt), add_special_tokens=False)["input_ids"]
    input_ids = prompt_ids + answer_ids
    labels = [IGNORE_INDEX] * len(prompt_ids) + answer_ids
    truncated = len(input_ids) > max_length
    input_ids, labels = input_ids[:max_length], labels[:max_length]
    return {"input_ids": input_ids, "attention_mask": [1] * len(input_ids), "labels": labels,
            "length": len(input_ids), "truncated": truncated}


def encode_records(tokenizer, records: list[dict], max_length: int, prompt: PromptSpec | None = None):
    """Tokenised ``datasets.Dataset`` for the Trainer and the number of truncated examples."""
    from datasets import Dataset

    rows = [encode_example(tokenizer, r["input"], r["target"], max_length, prompt) for r in records]
    n_truncated = sum(r.pop("truncated") for r in rows)
    return Dataset.from_list(rows), n_truncated
