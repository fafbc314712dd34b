"""Tiny random models for tests and benchmarks (never imported by the package itself)."""

from __future__ import annotations

from pathlib import Path

import torch

from qrewrite.prompt import CHATML_TEMPLATE, END_OF_TURN

_TINY_CORPUS = [
    "Rewrite the question the user meant.",
    "What year no sorry which city hosted the summer games?",
    "Who wrote um who painted the famous portrait in the museum?",
    "How many moons does the planet have, I mean how many rings?",
    "When did the river flood the old town? Where is the bridge? Why was the castle built?",
    "Which team won the cup, no wait, the league in the first season of the club?",
    "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789 .,;:?!'\"()-",
]

def build_tiny_tokenizer(vocab_size: int = 384):
    """A small byte-level BPE tokenizer with ChatML special tokens and Qwen2's chat format."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False,
                                  special_tokens=["<|endoftext|>", "<|im_start|>", END_OF_TURN],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_TINY_CORPUS * 4, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=END_OF_TURN, pad_token="<|endoftext|>",
                                   chat_template=CHATML_TEMPLATE)

def build_tiny_qwen2(out_dir: str | Path, seed: int = 0, hidden_size: int = 64, layers: int = 2) -> Path:
    """Save a randomly initialised ``Qwen2ForCausalLM`` (a few hundred thousand parameters) with a ChatML
    tokenizer to ``out_dir``: the Qwen2 code path, in seconds on a CPU."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tokenizer = build_tiny_tokenizer()
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=hidden_size * 4,
                         num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=512, tie_word_embeddings=True,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                         bos_token_id=None)
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir
