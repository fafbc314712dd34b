"""What a model directory needs beyond its weights to rewrite as it was trained to, in qrewrite and in plain
transformers: ``qrewrite.json``, a chat template that renders the training prompt and a generation config that
stops at the end-of-turn token. Written by training (:mod:`qrewrite.train.trainer`) and by averaging
(:mod:`qrewrite.train.soup`), whose ingredients may be checkpoints that still carry the base model's files."""

from __future__ import annotations

import copy
from pathlib import Path

from qrewrite.prompt import CHATML_TEMPLATE, PromptSpec, build_prompt, end_of_turn_ids
from qrewrite.run import write_inference_config


def save_inference_files(model_dir: Path, tokenizer, prompt: PromptSpec, *, max_new_tokens: int,
                         base_model: str | None) -> None:
    """``qrewrite.json`` (prompt format, system prompt, generation budget, base model), the minimal prompt's chat
    template and a generation config that stops at the end-of-turn token."""
    write_inference_config(model_dir, prompt, max_new_tokens=max_new_tokens, base_model=base_model)
    if prompt.format == "minimal" and (model_dir / "tokenizer_config.json").exists():
        _save_minimal_chat_template(model_dir, tokenizer)
    config_file = model_dir / "generation_config.json"
    if config_file.exists():
        from transformers import GenerationConfig
        generation = GenerationConfig.from_pretrained(model_dir)
        generation.eos_token_id = end_of_turn_ids(tokenizer)
        generation.pad_token_id = tokenizer.pad_token_id
        generation.save_pretrained(model_dir)


def _save_minimal_chat_template(model_dir: Path, tokenizer) -> None:
    """Make the saved tokenizer's own chat template render the minimal prompt for a plain user message, so
    ``apply_chat_template([{"role": "user", ...}], add_generation_prompt=True)`` in plain transformers (or a
    server such as vLLM) prompts exactly as training did. Templates that inject a default system turn (SmolLM2,
    Qwen2) are replaced by plain ChatML when that reproduces the prompt; otherwise the template is left alone."""
    probe = "Which city hosted the games?"
    messages = [{"role": "user", "content": probe}]
    wanted = build_prompt(tokenizer, probe, PromptSpec("minimal"))
    if tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) == wanted:
        return
    candidate = copy.copy(tokenizer)
    candidate.chat_template = CHATML_TEMPLATE
    if candidate.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) == wanted:
        candidate.save_pretrained(model_dir)
