"""Seeded typo noise: the kind of slips people make when they type a question quickly.

``add_typos`` edits letters only (digits and punctuation are left alone: a changed year or number would change
the question's meaning, which no rewriter could recover). The edits are keyboard-neighbour substitutions on a
QWERTY layout, dropped letters, swapped adjacent letters, doubled letters and case flips. Given a ``lexicon``
(lower-cased words), an edit that would spell another lexicon word ("form" -> "from") is drawn again, and a word
whose edits keep landing on real words is left as it is: the noise then only ever makes non-words, so a model
trained on it learns to repair misspellings, never to replace one real word by another.

``typo_variant`` applies it to records with one ``random.Random`` per record, seeded from the seed and the
record's id, so the noise a record gets does not depend on the order or the company it comes in.
"""

from __future__ import annotations

import random
import re

__all__ = ["QWERTY_NEIGHBOURS", "add_typos", "lexicon_of", "seeded_copies", "typo_variant"]

_ROWS = ["qwertyuiop", "asdfghjkl", "zxcvbnm"]
# Row offsets of a staggered keyboard: a row's key i sits between keys i and i+1 of the row above.


def _neighbours() -> dict[str, str]:
    pos = {c: (r, i) for r, row in enumerate(_ROWS) for i, c in enumerate(row)}
    out: dict[str, str] = {}
    for c, (r, i) in pos.items():
        near = []
        for dr, di in ((0, -1), (0, 1), (-1, 0), (-1, 1), (1, -1), (1, 0)):
            rr, ii = r + dr, i + di
            if 0 <= rr < len(_ROWS) and 0 <= ii < len(_ROWS[rr]):
                near.append(_ROWS[rr][ii])
        out[c] = "".join(near)
    return out


QWERTY_NEIGHBOURS: dict[str, str] = _neighbours()

# (operation, weight)
_OPS = (("substitute", 0.30), ("drop", 0.25), ("swap", 0.20), ("double", 0.15), ("case", 0.10))


def _substitute(c: str, rng: random.Random) -> str:
    near = QWERTY_NEIGHBOURS.get(c.lower())
    if not near:
        return c
    n = rng.choice(near)
    return n.upper() if c.isupper() else n


def _edit_word(word: str, rng: random.Random, rate: float) -> str:
    chars = list(word)
    out: list[str] = []
    i = 0
    while i < len(chars):
        c = chars[i]
        if not c.isalpha() or rng.random() >= rate:
            out.append(c)
            i += 1
            continue
        op = rng.choices([o for o, _ in _OPS], weights=[w for _, w in _OPS])[0]
        nxt = chars[i + 1] if i + 1 < len(chars) else ""
        if op == "swap" and nxt.isalpha() and nxt != c:
            out.extend((nxt, c))
            i += 2
            continue
        if op == "drop" and (out or i + 1 < len(chars)):
            i += 1  # the word keeps at least one character
            continue
        if op == "case" and c.swapcase() != c and len(c.swapcase()) == 1:
            out.append(c.swapcase())
        elif op == "double":
            out.extend((c, c))
        else:  # substitute, or the fallback when the chosen edit is not possible here
            s = _substitute(c, rng)
            out.extend((c, c) if s == c else (s,))
        i += 1
    return "".join(out)


_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")


def lexicon_of(texts) -> frozenset[str]:
    """The lower-cased words (letters, with an inner apostrophe) of ``texts``."""
    return frozenset(w.lower() for t in texts for w in _WORD.findall(t))


def _makes_other_word(before: str, after: str, lexicon) -> bool:
    old, new = _WORD.findall(before.lower()), _WORD.findall(after.lower())
    return any(w in lexicon for w in new if w not in old)


def _edit_word_nonword(word: str, rng: random.Random, rate: float, lexicon, tries: int = 10) -> str:
    for _ in range(tries):
        edited = _edit_word(word, rng, rate)
        if not lexicon or not _makes_other_word(word, edited, lexicon):
            return edited
    return word


def add_typos(text: str, rng: random.Random, rate: float = 0.05, lexicon: frozenset[str] = frozenset()) -> str:
    """Seeded character noise on words (see the module docstring).

    ``rate`` is about the probability that a letter gets an edit. For ``rate > 0`` and a text with letters the
    result always differs from ``text`` (at least one edit is forced), is never empty, and has sane whitespace:
    words joined by single spaces, nothing leading or trailing. ``rate <= 0`` returns ``text`` unchanged, and so
    does a text without letters. With a ``lexicon`` no edit spells a word of it that the text did not have (a
    text whose every possible edit does is returned with its whitespace normalised only).
    """
    if rate <= 0 or not any(c.isalpha() for c in text):
        return text
    words = text.split()
    result = " ".join(_edit_word_nonword(w, rng, rate, lexicon) for w in words)
    if result == " ".join(words):
        # No edit landed (short text or low rate), or edits cancelled out: force one on a random word.
        candidates = [k for k, w in enumerate(words) if any(c.isalpha() for c in w)]
        k = rng.choice(candidates)
        forced = words[:]
        for _ in range(20):
            forced[k] = _edit_word_nonword(words[k], rng, 1.0 / max(1, sum(c.isalpha() for c in words[k])), lexicon)
            if forced[k] != words[k]:
                break
        else:  # doubling a letter always changes the word
            j = next(j for j, c in enumerate(words[k]) if c.isalpha())
            forced[k] = words[k][: j + 1] + words[k][j:]
            if _makes_other_word(words[k], forced[k], lexicon):  # "of" -> "off": every edit tried spells a word
                forced[k] = words[k]
        result = " ".join(forced)
    return result


def seeded_copies(records: list[dict], seed, id_suffix: str, new_input) -> list[dict]:
    """Copies of ``records`` with ``id + id_suffix`` and ``"input"`` set to ``new_input(record, rng)``.

    Each copy gets its own ``random.Random(f"{seed}:{new id}")``, so the result is deterministic for a seed,
    independent of record order, and different for different suffixes. Other fields are copied as they are.
    """
    out = []
    for r in records:
        new_id = f"{r['id']}{id_suffix}"
        out.append({**r, "id": new_id, "input": new_input(r, random.Random(f"{seed}:{new_id}"))})
    return out


def typo_variant(records: list[dict], seed: int = 0, rate: float = 0.05, id_suffix: str = "",
                 lexicon: frozenset[str] = frozenset()) -> list[dict]:
    """New records with typo'd ``"input"``, the same ``"target"`` (never touched) and ``id + id_suffix``
    (seeded per record by :func:`seeded_copies`: several typo'd copies of one record are different copies;
    ``lexicon``: see :func:`add_typos`)."""
    return seeded_copies(records, seed, id_suffix, lambda r, rng: add_typos(r["input"], rng, rate, lexicon))
