"""The kinds of disfluency (:data:`KINDS`), the cue words that mark them, and :func:`classify_input`: which kind
a question has. The rule baseline edits with these cues; the evaluation's breakdown and the notebooks count by kind.

:func:`classify_input` is a cheap pure-Python heuristic (no model, no regex backtracking over long
texts); it labels the *input* (noisy question vs its clean reference), not the model's prediction, so
the same example always falls in the same bucket whatever model is evaluated.
"""

from __future__ import annotations

import re
from collections import Counter

KINDS = ("typo", "correction", "restart", "filler", "other")

# Single-word fillers, and multi-word ones (matched as token sequences).
FILLERS = frozenset({"um", "umm", "uh", "uhh", "uhm", "er", "erm", "ah", "hmm", "like", "well", "so"})
FILLER_PHRASES = (("you", "know"),)

# Correction cues: a speaker abandons what came before and says what they meant.
CORRECTION_CUES = (
    ("no",), ("nope",), ("sorry",), ("rather",), ("actually",), ("wait",), ("oops",),
    ("i", "mean"), ("i", "meant"), ("make", "that"), ("scratch", "that"), ("or", "rather"),
    ("um", "no"), ("uh", "no"), ("no", "wait"), ("let", "me", "rephrase"), ("i'm", "sorry"),
)
# Correction cues and fillers as the generators write them (the sample set, data/sample; synthetic corrections,
# data/synthetic; the extra questions, data/extra). Their order is part of every seeded sample and copy: append
# nothing.
SPOKEN_CORRECTIONS = ("no", "no sorry", "sorry", "I mean", "rather", "no wait", "or rather", "make that", "um no",
                      "uh I mean", "actually", "no no")
SPOKEN_FILLERS = ("um", "uh", "er", "like", "you know", "well", "hmm", "I guess")

WH_WORDS = frozenset({"what", "when", "where", "who", "whom", "whose", "which", "why", "how"})

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z0-9]+)*")


def _words(text: str) -> list[str]:
    """Lower-cased words with punctuation dropped (apostrophes inside words kept)."""
    return _WORD.findall(text.lower().replace("\u2019", "'"))


def _filler_mask(tokens: list[str]) -> list[bool]:
    mask = [t in FILLERS for t in tokens]
    for phrase in FILLER_PHRASES:
        n = len(phrase)
        for i in range(len(tokens) - n + 1):
            if tuple(tokens[i:i + n]) == phrase:
                for j in range(i, i + n):
                    mask[j] = True
    return mask


def _cue_spans(tokens: list[str]) -> list[tuple[int, int]]:
    """(start, end) token spans of correction cues, longest cue first at each position."""
    spans = []
    cues = sorted(CORRECTION_CUES, key=len, reverse=True)
    for i in range(len(tokens)):
        for cue in cues:
            if tuple(tokens[i:i + len(cue)]) == cue:
                spans.append((i, i + len(cue)))
                break
    return spans


def _deletes_only_fillers(noisy: list[str], clean: list[str]) -> bool:
    """Can ``clean`` be obtained from ``noisy`` by deleting only filler tokens (at least one)?"""
    if len(noisy) <= len(clean):
        return False
    mask = _filler_mask(noisy)
    n, m = len(noisy), len(clean)
    # ok[j] after processing i noisy tokens: the first j clean tokens can be matched by noisy[:i].
    ok = [True] + [False] * m
    for i in range(n):
        new = [ok[0] and mask[i]] + [False] * m
        for j in range(1, m + 1):
            new[j] = (ok[j] and mask[i]) or (ok[j - 1] and noisy[i] == clean[j - 1])
        ok = new
    return ok[m]


def _is_correction(noisy: list[str], clean: list[str]) -> bool:
    """A correction cue, followed by words the clean question keeps, preceded by words it drops."""
    if not clean:
        return False
    clean_counts = Counter(clean)
    fill = _filler_mask(noisy)
    cue_words = {w for cue in CORRECTION_CUES for w in cue}
    for start, end in _cue_spans(noisy):
        cue = tuple(noisy[start:end])
        # A cue that the clean question itself contains as often is not evidence ("Is there no ...?").
        cue_in_noisy = sum(1 for s, e in _cue_spans(noisy) if tuple(noisy[s:e]) == cue)
        cue_in_clean = sum(1 for s, e in _cue_spans(clean) if tuple(clean[s:e]) == cue)
        if cue_in_noisy <= cue_in_clean:
            continue
        post = [t for t, f in zip(noisy[end:], fill[end:]) if not f and t not in cue_words]
        pre = [t for t, f in zip(noisy[:start], fill[:start]) if not f and t not in cue_words]
        if not post or not pre:
            continue
        kept = sum(1 for t in post if t in clean_counts)
        if kept / len(post) < 0.6:
            continue
        # Something said before the cue is dropped from the clean question: more copies of a word in the
        # noisy question than in the clean one, once the later part is accounted for.
        surplus = Counter(pre + post) - clean_counts
        if any(t in surplus for t in pre):
            return True
    return False


def _is_restart(noisy: list[str], clean: list[str]) -> bool:
    """The speaker starts over: an immediately repeated phrase, a second wh-word, or the opening words
    said again, which the clean question does not repeat."""
    def count(seq: list[str], phrase: tuple[str, ...]) -> int:
        k = len(phrase)
        return sum(1 for i in range(len(seq) - k + 1) if tuple(seq[i:i + k]) == phrase)

    content = [t for t, f in zip(noisy, _filler_mask(noisy)) if not f]
    if len(content) <= len(clean):
        return False
    # 1) an immediately repeated phrase of 1..4 words ("what is what is the ...", "the the").
    for k in range(1, 5):
        for i in range(len(content) - 2 * k + 1):
            phrase = tuple(content[i:i + k])
            if phrase == tuple(content[i + k:i + 2 * k]) and count(content, phrase) > count(clean, phrase):
                return True
    # 2) more wh-words than the clean question has ("what was the when did ...").
    wh_noisy = sum(t in WH_WORDS for t in content)
    wh_clean = sum(t in WH_WORDS for t in clean)
    if wh_noisy >= 2 and wh_noisy > wh_clean:
        return True
    # 3) the opening two words said again later ("in which year in which ...").
    if len(content) >= 4:
        opening = tuple(content[:2])
        if count(content, opening) >= 2 and count(content, opening) > count(clean, opening):
            return True
    return False


def _edit_distance(a: str, b: str, limit: int) -> int:
    """Optimal-string-alignment distance (insert, delete, substitute, swap adjacent), capped at limit+1."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = a[i - 1] != b[j - 1]
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
    return min(prev[-1], limit + 1)


def _is_typo(noisy: str, clean: str) -> bool:
    """Same number of whitespace-separated words, at least one differs, every difference is small
    (at most 2 character edits, or a third of the longer word for long words)."""
    a, b = noisy.split(), clean.split()
    if len(a) != len(b) or a == b:
        return False
    for x, y in zip(a, b):
        if x != y:
            limit = max(2, max(len(x), len(y)) // 3)
            if _edit_distance(x, y, limit) > limit:
                return False
    return True


def classify_input(noisy: str, clean: str) -> str:
    """Heuristic kind of disfluency in ``noisy`` given the clean question meant; one of :data:`KINDS`.

    Checks, in this order of precedence (the first that holds wins):

    1. ``"filler"`` -- deleting filler words (um, uh, er, like, you know, well, so, ...) from the noisy
       question gives exactly the clean one, ignoring case and punctuation. This test is exact, so it
       goes first: nothing else was changed.
    2. ``"correction"`` -- a correction cue (no, sorry, I mean, rather, or rather, actually, wait, make
       that, um no, ...) occurs more often in the noisy question than in the clean one, most words after
       it are kept in the clean question and some word before it is dropped ("What do petrologists no
       what do isotopes indicate?").
    3. ``"restart"`` -- without a cue, the speaker starts over: an immediately repeated phrase, more
       wh-words than the clean question has, or the opening words said again ("What is the what was
       the name ...?").
    4. ``"typo"`` -- same number of words and every differing word is a small character edit away
       ("Waht is teh capital?").
    5. ``"other"`` -- anything else, including a noisy question identical to the clean one.

    Pure Python, linear-ish in the question length; safe to call on every example of a data set.
    """
    nw, cw = _words(noisy), _words(clean)
    if _deletes_only_fillers(nw, cw):
        return "filler"
    if _is_correction(nw, cw):
        return "correction"
    if _is_restart(nw, cw):
        return "restart"
    if _is_typo(noisy, clean):
        return "typo"
    return "other"


