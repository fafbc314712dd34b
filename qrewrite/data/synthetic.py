"""Synthetic disfluencies built from clean training questions: more corrections to learn from.

On clean dev the recommended model's commonest fixable misses are corrections where it keeps the wrong side
("Besides Germany ugh Africa, where ...?" -> "Besides Germany, where ...?") or keeps part of the abandoned
start. Disfl-QA has one disfluent version of each training question; ``synthetic_variant`` makes more from the
clean questions (the targets) themselves, in the two shapes Disfl-QA is built from:

- ``correction``: a span of the question said wrong first, a cue, then the right span
  ("What did Iqbal fear would weaken I mean strengthen ...?"); the wrong span is a span of the same length
  from another training question, capitalised like the right one, and the word before the span is sometimes
  said again after the cue ("the prime elements no the analytic property");
- ``restart``: the opening words of another training question, a cue, then the question
  ("Who did no what did the government want Thoreau to do?").

The target is never touched: the clean question is always the input with the abandoned words and the cue cut
out (first letter's case aside), so the copies teach which side of a cue to keep and to copy the rest.
Each record gets its own ``random.Random`` seeded from the seed and its new id (``noise.seeded_copies``, as the
typo'd copies), so the result does not depend on record order.
"""

from __future__ import annotations

import random

from qrewrite.data.kinds import SPOKEN_CORRECTIONS
from qrewrite.data.sample import lower_first
from qrewrite.data.typos import seeded_copies

__all__ = ["SYNTHETIC_CUES", "synthetic_disfluency", "synthetic_variant"]

# The generators' correction cues plus longer ones Disfl-QA's annotators use.
SYNTHETIC_CUES = (*SPOKEN_CORRECTIONS, "I meant", "scratch that", "no scratch that I mean", "or wait",
                  "oh no I meant", "nope not that but", "or no make that", "ugh", "uh no", "sorry I meant",
                  "no I'm sorry")
_ARTICLES = {"a", "an", "the", "of", "in", "on", "for", "to", "by", "with", "his", "her", "its", "their"}


def _span_words(words: list[str]) -> list[int]:
    """Positions a span may cover: not the first word (the question word) and not the last (it has the '?')."""
    return list(range(1, len(words) - 1))


def _wrong_span(length: int, capitalised: bool, right: list[str], right_question: list[str], pool: list[str],
                rng: random.Random) -> list[str] | None:
    """A span of ``length`` words from another question of ``pool``, capitalised like the right span."""
    for _ in range(8):
        other = rng.choice(pool).split()
        if other == right_question:
            continue
        starts = [i for i in _span_words(other)[: max(0, len(other) - 1 - length)]
                  if other[i][:1].isupper() == capitalised]
        if not starts:
            continue
        i = rng.choice(starts)
        span = [w.strip(",;:") for w in other[i:i + length]]
        if [w.lower() for w in span] != [w.lower() for w in right] and all(span):
            return span
    return None


def _correction(clean: str, pool: list[str], rng: random.Random) -> str | None:
    words = clean.split()
    positions = _span_words(words)
    if not positions:
        return None
    named = [i for i in positions if words[i][:1].isupper()]
    content = [i for i in positions if len(words[i]) > 3 and words[i].lower() not in _ARTICLES]
    i = rng.choice(named if named and rng.random() < 0.6 else content or positions)
    length = min(rng.choice((1, 1, 2, 2, 3)), len(words) - 1 - i)
    right = words[i:i + length]
    wrong = _wrong_span(length, right[0][:1].isupper(), right, words, pool, rng)
    if wrong is None:
        return None
    cue = rng.choice(SYNTHETIC_CUES)
    said_again = [words[i - 1]] if words[i - 1].lower() in _ARTICLES and rng.random() < 0.4 else []
    if rng.random() < 0.25:
        middle = [*wrong[:-1], wrong[-1] + ",", *cue.split()[:-1], cue.split()[-1] + ","]
    else:
        middle = [*wrong, *cue.split()]
    return " ".join([*words[:i], *middle, *said_again, *words[i:]])


def _restart(clean: str, pool: list[str], rng: random.Random) -> str | None:
    first = clean.split()[0].lower()
    for _ in range(8):
        other = rng.choice(pool).split()
        if len(other) >= 3 and other[0].lower() != first and other != clean.split():
            start = other[: rng.randint(1, min(4, len(other) - 2))]
            return f"{' '.join(start)} {rng.choice(SYNTHETIC_CUES)} {lower_first(clean)}"
    return None


def synthetic_disfluency(clean: str, pool: list[str], rng: random.Random) -> str:
    """A disfluent version of ``clean`` (a correction or a restart); ``pool``: clean questions to borrow from."""
    if not pool:
        raise ValueError("synthetic_disfluency needs a pool of other questions for the wrong starts and spans")
    make_first = _correction if rng.random() < 0.6 else _restart
    for make in (make_first, _restart, _correction):
        messy = make(clean, pool, rng)
        if messy and messy != clean:
            return messy
    return f"{rng.choice(SYNTHETIC_CUES).capitalize()} {lower_first(clean)}"


def synthetic_variant(records: list[dict], seed: int = 0, id_suffix: str = "#synth") -> list[dict]:
    """New records whose ``"input"`` is a synthetic disfluency of their ``"target"`` (never touched).

    Wrong spans and starts come from the other records' targets. Ids get ``id_suffix``; other fields are copied.
    """
    pool = sorted({r["target"] for r in records})  # sorted: the copies do not depend on record order
    return seeded_copies(records, seed, id_suffix, lambda r, rng: synthetic_disfluency(r["target"], pool, rng))
