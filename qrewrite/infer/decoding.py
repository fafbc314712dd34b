"""How a model picks the tokens of a rewrite: greedy (models are selected with it), beam search, a copy bonus and
an order bonus.

The copy bonus adds a constant to the logits of every token the question itself contains, at every step. A
rewrite mostly keeps the user's words; a small model fine-tuned to fix typos also learns to swap a rare word for
a likelier one ("spurred" -> "sparked"), which the bonus discourages. The order bonus adds a constant to the
question's tokens that come after the last one the rewrite has copied so far: a rewrite is mostly the question
with the disfluency cut out (81 % of Disfl-QA's references are an in-order subsequence of their question), and on
unseen topics a small model also reorders the words it keeps ("Haeckelia prey mostly on what animal?" -> "What
animal prey mostly on haeckelia?") or repeats one. metrics.json names the decoding in
``eval.decoding`` (:attr:`Decoding.name`), so an evaluation decoded one way is never reused for another.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

from qrewrite.errors import ConfigError
from qrewrite.flags import flags_of, non_negative_float, option, positive_int
from qrewrite.prompt import end_of_turn_ids

# questions per rewriting batch: the CPU sweet spot for a 135M model (benchmarks/results/generate_cpu.md)
GENERATION_BATCH_SIZE = 64
# the fields that add to the logits (each needs a logits processor: engines that cannot run one refuse them)
BONUSES = ("copy_bonus", "order_bonus")


@dataclass(frozen=True)
class Decoding:
    """How ``generate`` picks a rewrite's tokens, as the ``--flags`` of every command that rewrites. A new decoding
    option is a field here, its ``generate()`` keywords in :meth:`generate_kwargs`."""
    num_beams: int = option(1, "beam search with this many beams (default: 1 = greedy, as the model was selected "
                               "with)", parse=positive_int)
    copy_bonus: float = option(0.0, "add this to the logits of the question's own tokens: fewer paraphrased words "
                                    "(default: 0 = none)", parse=non_negative_float)
    order_bonus: float = option(0.0, "add this to the logits of the question's tokens that come after the last one "
                                     "the rewrite copied: keeps the question's word order (default: 0 = none)",
                                parse=non_negative_float)

    def __post_init__(self):
        if isinstance(self.num_beams, bool) or not isinstance(self.num_beams, int) or self.num_beams < 1:
            raise ConfigError(f"num_beams must be a positive integer, got {self.num_beams!r}")
        for field in BONUSES:
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or value < 0:
                raise ConfigError(f"{field} must be a finite number >= 0, got {value!r}")

    @property
    def name(self) -> str:
        """``greedy``, ``beam search, 4 beams``, ``greedy, copy bonus 1.0``, ``greedy, order bonus 1.0``, ..."""
        name = "greedy" if self.num_beams == 1 else f"beam search, {self.num_beams} beams"
        for field in BONUSES:
            if getattr(self, field):
                name += f", {field.replace('_', ' ')} {float(getattr(self, field))}"
        return name

    @property
    def adjusts_logits(self) -> bool:
        """Whether decoding needs logits processors (a bonus): engines that cannot run them refuse it."""
        return any(getattr(self, field) for field in BONUSES)

    @classmethod
    def flags(cls) -> list[str]:
        """The command-line flags that set a decoding: ``--num-beams``, ``--copy-bonus``, ..."""
        return flags_of(cls)

    @classmethod
    def bonus_flags(cls) -> list[str]:
        """The flags of the fields that adjust the logits."""
        return flags_of(cls, BONUSES)

    def generate_kwargs(self, tokenizer, questions: list[str]) -> dict:
        """What ``generate()`` takes for this decoding, for a batch of ``questions`` (one row each)."""
        kwargs = {"do_sample": False, "num_beams": self.num_beams}
        processors = self.logits_processors(tokenizer, questions)
        if processors:
            from transformers import LogitsProcessorList  # here, so that --help does not load transformers
            kwargs["logits_processor"] = LogitsProcessorList(processors)
        return kwargs

    def logits_processors(self, tokenizer, questions: list[str]) -> list:
        """The logits processors of the bonuses for a batch of ``questions`` (one row each)."""
        processors = []
        if self.copy_bonus:
            processors.append(InputTokenBonus([question_token_ids(tokenizer, q) for q in questions],
                                              self.copy_bonus))
        if self.order_bonus:
            processors.append(InOrderBonus([question_token_sequence(tokenizer, q) for q in questions],
                                           self.order_bonus, set(tokenizer.all_special_ids),
                                           end_of_turn_ids(tokenizer)))
        return processors


GREEDY = Decoding()
# draft tokens per step of prompt lookup (a lone question on the server: serve --prompt-lookup-tokens)
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


def question_token_sequence(tokenizer, question: str) -> tuple[list[int], dict[int, int]]:
    """The question's tokens in order, as a rewrite would write them after a space, and the token a rewrite that
    starts with the question's first word writes instead (at the start of the answer, no space): ``(ids,
    {first_word_token: 0})``."""
    ids = tokenizer(" " + question, add_special_tokens=False)["input_ids"]
    plain = tokenizer(question, add_special_tokens=False)["input_ids"]
    aliases = {plain[0]: 0} if plain and ids and plain[1:] == ids[1:] and plain[0] != ids[0] else {}
    return ids, aliases


class InOrderBonus:
    """A logits processor for ``generate``: adds ``bonus`` to the scores of the tokens of each row's question
    that lie after the last question token the rewrite has copied (matched at the earliest position, which keeps
    every later in-order copy possible), and to end-of-turn, which comes after them all. A generated token that is
    no question token at that point (a fixed typo, a capital) leaves the position where it was. Rows as for
    :class:`InputTokenBonus`; the position is recomputed from each row's tokens at every step, as beam search
    reorders rows."""

    def __init__(self, sequences: list[tuple[list[int], dict[int, int]]], bonus: float, special_ids=(),
                 end_ids=()):
        self.bonus, self._start = bonus, None
        self._positions = []  # per question: token -> its positions, ascending
        self._ahead = []  # per question: position j -> the tokens a bonus goes to once position j - 1 is copied
        for ids, aliases in sequences:
            positions: dict[int, list[int]] = {}
            for j, token in enumerate(ids):
                positions.setdefault(token, []).append(j)
            for token, j in aliases.items():
                positions.setdefault(token, []).insert(0, j)
            self._positions.append(positions)
            ahead = [set(end_ids)]
            for token in reversed(ids):
                ahead.append(ahead[-1] | ({token} - set(special_ids)))
            ahead.reverse()
            ahead[0] = ahead[0] | (set(aliases) - set(special_ids))  # the first word as the answer's first token
            self._ahead.append(ahead)

    def _copied_up_to(self, question: int, new_tokens: list[int]) -> int:
        """The question position of the last token copied in order (-1: none yet)."""
        at, positions = -1, self._positions[question]
        for token in new_tokens:
            later = positions.get(token)
            if later:
                j = bisect.bisect_right(later, at)
                if j < len(later):
                    at = later[j]
        return at

    def __call__(self, input_ids, scores):
        if self._start is None:  # the first call sees the prompts alone
            self._start = input_ids.shape[1]
        per_row = scores.shape[0] // len(self._ahead)
        rows, columns = [], []
        for row, new_tokens in enumerate(input_ids[:, self._start:].tolist()):
            question = row // per_row
            ahead = [t for t in self._ahead[question][self._copied_up_to(question, new_tokens) + 1]
                     if t < scores.shape[1]]
            rows += [row] * len(ahead)
            columns += ahead
        bonus = scores.new_zeros(scores.shape)
        bonus[rows, columns] = self.bonus
        return scores + bonus
