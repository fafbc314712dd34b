"""How a model picks the tokens of a rewrite: greedy (models are selected with it), beam search, and a copy bonus.

The copy bonus adds a constant to the logits of every token the question itself contains, at every step. A
rewrite mostly keeps the user's words; a small model fine-tuned to fix typos also learns to swap a rare word for
a likelier one ("spurred" -> "sparked"), which the bonus discourages. metrics.json names the decoding in
``eval.decoding`` (:attr:`Decoding.name`), so an evaluation decoded one way is never reused for another.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from qrewrite.errors import ConfigError
from qrewrite.options import non_negative_float, option, positive_int


@dataclass(frozen=True)
class Decoding:
    num_beams: int = option(1, "beam search with this many beams (default: 1 = greedy, as the model was selected "
                               "with)", parse=positive_int)
    copy_bonus: float = option(0.0, "add this to the logits of the question's own tokens: fewer paraphrased words "
                                    "(default: 0 = none)", parse=non_negative_float)

    def __post_init__(self):
        if isinstance(self.num_beams, bool) or not isinstance(self.num_beams, int) or self.num_beams < 1:
            raise ConfigError(f"num_beams must be a positive integer, got {self.num_beams!r}")
        if isinstance(self.copy_bonus, bool) or not isinstance(self.copy_bonus, (int, float)) \
                or not math.isfinite(self.copy_bonus) or self.copy_bonus < 0:
            raise ConfigError(f"copy_bonus must be a finite number >= 0, got {self.copy_bonus!r}")

    @property
    def name(self) -> str:
        """``greedy``, ``beam search, 4 beams``, ``greedy, copy bonus 1.0``, ..."""
        name = "greedy" if self.num_beams == 1 else f"beam search, {self.num_beams} beams"
        return f"{name}, copy bonus {float(self.copy_bonus)}" if self.copy_bonus else name

    def logits_processors(self, tokenizer, questions: list[str]) -> list:
        """What ``generate(logits_processor=...)`` needs for a batch of ``questions`` (one row each)."""
        if not self.copy_bonus:
            return []
        return [InputTokenBonus([question_token_ids(tokenizer, q) for q in questions], self.copy_bonus)]


GREEDY = Decoding()
# draft tokens per step of prompt lookup (a lone question: the server's and rewrite's fast path)
PROMPT_LOOKUP_TOKENS = 10
# what decodes (--engine), and the CTranslate2 engine's weights and compute types (--quantization); here, free of
# torch, so that --help stays fast
ENGINES = ("transformers", "ctranslate2")
QUANTIZATIONS = ("int8", "int8_float32", "bfloat16", "int8_bfloat16", "float32")


def question_token_ids(tokenizer, question: str) -> list[int]:
    """The tokens a rewrite of ``question`` would copy: its own, at the start of the answer and after a space,
    without special tokens (end-of-turn must keep its own score)."""
    ids = set(tokenizer(question, add_special_tokens=False)["input_ids"])
    ids |= set(tokenizer(" " + question, add_special_tokens=False)["input_ids"])
    return sorted(ids - set(tokenizer.all_special_ids))


class InputTokenBonus:
    """A logits processor for ``generate``: adds ``bonus`` to the scores of each row's question tokens. Rows are
    the batch's questions in order; under beam search each question's beams are consecutive rows, so the mask is
    repeated per beam."""

    def __init__(self, token_ids: list[list[int]], bonus: float):
        self.token_ids, self.bonus = token_ids, bonus
        self._mask = None

    def __call__(self, input_ids, scores):
        if self._mask is None or self._mask.shape[1] != scores.shape[1]:
            mask = scores.new_zeros(len(self.token_ids), scores.shape[1])
            for row, ids in enumerate(self.token_ids):
                mask[row, [i for i in ids if i < scores.shape[1]]] = self.bonus
            self._mask = mask
        per_row = scores.shape[0] // len(self.token_ids)
        return scores + (self._mask if per_row == 1 else self._mask.repeat_interleave(per_row, dim=0))
