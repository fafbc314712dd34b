"""Name-swapped training copies: the same names replaced in input and target, so copying what is new pays.

On questions about topics it has not seen, a rewriter trained on one set of articles turns names it does not
know into names it does ("Abercynon" -> "Abercrombie"). ``name_swap_variant`` makes copies of training pairs
in which every name (a capitalised word after the first) and every number of two or more digits that occurs in
both the input and the target is replaced, consistently, by another: a name of another training question or a
made-up word (half each), a number of as many digits. The loss then rewards copying an unfamiliar word exactly,
whatever it is, rather than recalling the training articles' names. Input and target change the same way, so
the pair stays a correct rewrite; records with nothing to swap get no copy. Seeded per record
(``noise.seeded_copies``): the result does not depend on record order.
"""

from __future__ import annotations

import random
import re

__all__ = ["name_pool", "name_swap_variant", "swappable_words", "swap_names"]

_TOKEN = re.compile(r"[A-Za-z][A-Za-z-]*|\d+")
_NOT_NAMES = frozenset(
    "i what which when where who whom whose why how the a an of in on at to for and or is are was were did does "
    "do no not".split())
_ONSETS = "b c d f g h j k l m n p r s t v z br ch cr dr gr kl pl st tr th".split()
_VOWELS = "a e i o u a e i o ia ou".split()
_CODAS = ["", "", "", "n", "r", "s", "l", "m", "t", "x"]


def _is_name(word: str) -> bool:
    return word[0].isupper() and len(word) >= 3 and word.lower() not in _NOT_NAMES


def swappable_words(record: dict) -> list[str]:
    """Names (capitalised words after the first) and numbers of 2+ digits in both the target and the input."""
    target_tokens = _TOKEN.findall(record["target"])
    input_tokens = set(_TOKEN.findall(record["input"]))
    found = []
    for w in target_tokens[1:]:
        if w in input_tokens and w not in found and ((w.isdigit() and len(w) >= 2) or (w.isalpha() and _is_name(w))):
            found.append(w)
    return found


def name_pool(records: list[dict]) -> list[str]:
    """Every name of the records' targets, sorted: what a swapped name may be drawn from."""
    return sorted({w for r in records for w in _TOKEN.findall(r["target"])[1:] if w.isalpha() and _is_name(w)})


def _made_up(word: str, rng: random.Random) -> str:
    n_syllables = min(4, max(2, len(word) // 3))
    made = "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(n_syllables)) + rng.choice(_CODAS)
    return made[0].upper() + made[1:]


def _replacement(word: str, pool: list[str], taken: set[str], rng: random.Random) -> str:
    for _ in range(20):
        if word.isdigit():
            new = str(rng.randint(1, 9)) + "".join(str(rng.randint(0, 9)) for _ in range(len(word) - 1))
        elif pool and rng.random() < 0.5:
            new = rng.choice(pool)
        else:
            new = _made_up(word, rng)
        if new != word and new not in taken:
            return new
    return _made_up(word, rng) + "a"


def swap_names(record: dict, pool: list[str], rng: random.Random) -> tuple[str, str] | None:
    """(input, target) with the record's swappable words replaced consistently, or None when it has none."""
    words = swappable_words(record)
    if not words:
        return None
    taken = set(_TOKEN.findall(record["input"])) | set(_TOKEN.findall(record["target"]))
    mapping = {}
    for w in words:
        mapping[w] = _replacement(w, pool, taken, rng)
        taken.add(mapping[w])
    pattern = re.compile(r"(?<![A-Za-z0-9-])(" + "|".join(map(re.escape, sorted(words, key=len, reverse=True)))
                         + r")(?![A-Za-z0-9-])")
    return tuple(pattern.sub(lambda m: mapping[m.group(1)], record[k]) for k in ("input", "target"))


def name_swap_variant(records: list[dict], seed: int = 0, id_suffix: str = "", pool: list[str] | None = None
                      ) -> list[dict]:
    """Name-swapped copies (ids ``<id><id_suffix>``) of the records that have a swappable word."""
    pool = name_pool(records) if pool is None else pool
    out = []
    for r in records:
        new_id = f"{r['id']}{id_suffix}"
        swapped = swap_names(r, pool, random.Random(f"{seed}:{new_id}"))
        if swapped is not None:
            out.append({**r, "id": new_id, "input": swapped[0], "target": swapped[1]})
    return out
