"""Batches for training: the collator the Trainer uses, shared with the benchmarks.

``make_collator(tokenizer, padding_free=..., supervised_logits=...)``:
  padded        ``DataCollatorForSeq2Seq``: dynamic right padding, labels padded with -100
  padding-free  ``DataCollatorWithFlattening``: the batch as one row, ``position_ids`` restarting per example
                (SDPA then attends only inside each example); no padding tokens at all
  supervised logits (either way) adds ``logits_to_keep``, a boolean mask of the positions whose next token
                carries loss, and ``shift_labels``, those next tokens: transformers then applies the output
                layer only there (``slice_logits_to_keep``) and its causal-LM loss reads ``shift_labels``
                as they are. Loss and gradients equal the full-logits loss; the batch x length x vocab logits
                tensor is never built (on Disfl-QA ~13 of ~40 positions per example carry loss).
"""

from __future__ import annotations

import torch

from qrewrite.prompt import IGNORE_INDEX

MODEL_INPUTS = ("input_ids", "attention_mask", "labels")


class SupervisedLogits:
    """Wraps a collator: adds ``logits_to_keep`` and ``shift_labels`` for the supervised positions only."""

    def __init__(self, collator):
        self.collator = collator

    def __call__(self, features: list[dict]) -> dict:
        batch = self.collator(features)
        labels = batch["labels"]
        # Padding-free rows need no care at example boundaries: each example's first label is -100 (its prompt).
        shifted = torch.nn.functional.pad(labels[:, 1:], (0, 1), value=IGNORE_INDEX)
        keep = shifted != IGNORE_INDEX
        batch["logits_to_keep"] = keep
        batch["shift_labels"] = shifted[keep]
        return batch


class _ModelInputsOnly:
    """Passes only the model's inputs to a collator (the dataset also has ``length`` for length grouping)."""

    def __init__(self, collator):
        self.collator = collator

    def __call__(self, features: list[dict]) -> dict:
        return self.collator([{k: f[k] for k in MODEL_INPUTS if k in f} for f in features])


def make_collator(tokenizer, *, padding_free: bool = False, supervised_logits: bool = True,
                  pad_to_multiple_of: int | None = None):
    """The training collator (see the module docstring); ``pad_to_multiple_of`` applies to padded batches."""
    from transformers import DataCollatorForSeq2Seq, DataCollatorWithFlattening

    if padding_free:
        collator = DataCollatorWithFlattening(return_position_ids=True, separator_id=IGNORE_INDEX)
    else:
        collator = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=IGNORE_INDEX,
                                          pad_to_multiple_of=pad_to_multiple_of, return_tensors="pt")
    collator = _ModelInputsOnly(collator)
    return SupervisedLogits(collator) if supervised_logits else collator
