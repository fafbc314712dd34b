"""A rule-based rewriter: no learning, only editing cues like those :mod:`qrewrite.data.kinds` knows.

Baseline for ``--model rules``: it shows what a trained model adds over hand-written rules. Each question
is split on whitespace and cleaned one *cue block* at a time, left to right, until none is left:

* A cue block is a run of editing terms ("no", "sorry", "I mean", "or rather", "make that", "scratch
  that", "wait", "actually", "oops", ...) and fillers ("um", "uh", "er", ...), with the connectors and
  lead-ins around them ("or no", "oh sorry", "no, sorry, tell me ..."). "or", "like" and "better" count
  only right before a new question ("Who stated or who ordered ..."); a capitalised wh-word mid-question
  or the opening two words said again is a restart with an empty block ("Where was When was ...").
* The words before the block end with the abandoned part (the reparandum), those after it are the repair:
  - a repair that starts a new question (a wh-word, maybe after a preposition) replaces the question, or
    only its end from the wh-word it repeats ("Albert Einstein formulated what theory, or sorry, what
    law?" -> "Albert Einstein formulated what law?");
  - a short repair that shares all but its first word with a span before the cue is swapped in there
    ("the east side of Fresno no west side?" -> "the west side of Fresno?");
  - any other repair is grafted on where its first word (a determiner for a determiner) last occurs in
    the six words before the cue ("in MSPs, oops no, in Parliament" -> "in Parliament"), else in place
    of the last word before the cue ("the capital of France no Germany" -> "the capital of Germany").
    In Disfl-QA a filler mostly marks a one-word reparandum too ("invasion of Burma erm Japan"), so a
    filler cuts that word unless it is a determiner ("the uh capital") or a lone opening wh-word.
* Finally the first letter is capitalised, a "?" the question ended with is kept, ``\\"`` becomes ``"``.

What it does not do: it never reorders, inflects or invents words ("How many provinces ... no sorry how
many did it not contain?" stays a bare second question), it guesses the reparandum from one anchor word,
it does not fix typos, and it may cut a cue word used for its meaning (only "no longer", "no one", "no
more", "rather than" and "instead of" are protected). Tuned on the Disfl-QA train split only. Pure
Python and deterministic: no model, no torch.
"""

from __future__ import annotations

import functools
import re

from qrewrite.data import kinds
from qrewrite.data.kinds import WH_WORDS
from qrewrite.infer.base import Rewriter

# Editing terms; each starts (or continues) a cue block. Lower-case word tuples; the longest match wins.
# kinds.CORRECTION_CUES and its hesitation fillers, plus what the Disfl-QA train split also uses.
# ("like", "well", "so" are no fillers here but connectors: they cut nothing on their own.)
RULE_FILLERS = frozenset(kinds.FILLERS - {"like", "well", "so"}) | {"ummm", "err", "eh", "ahh"}
RULE_CUES = tuple(dict.fromkeys(kinds.CORRECTION_CUES + tuple((f,) for f in sorted(RULE_FILLERS)) + (
    ("nah",), ("instead",), ("oop",), ("correction",), ("nevermind",), ("yeah",), ("darn",), ("shoot",),
    ("gosh",), ("aw",), ("ugh",), ("ack",), ("wow",), ("oh",), ("oy",),
    ("i", "mean", "to", "say"), ("i", "meant", "to", "say"), ("meant", "to", "say"),
    ("change", "that", "to"), ("change", "this", "to"), ("swap", "that", "to"), ("remove", "this"),
    ("that", "should", "be"), ("better", "yet"), ("or", "better"), ("or", "better", "yet"), ("or", "maybe"),
    ("or", "like"), ("or", "really"), ("my", "bad"), ("excuse", "me"), ("pardon", "me"),
    ("let's", "go", "with"), ("hold", "on"), ("never", "mind"), ("dang", "it"), ("i", "guess"),
)))

# Words that join a block only next to a cue: before it ("or no", "oh sorry") or after it ("umm well",
# "no not that but ..."); lead-ins only after one ("no, sorry, tell me who ...").
CONNECTORS = (("or",), ("and",), ("oh",), ("so",), ("well",), ("just",), ("like",), ("but",))
LEAD_INS = (
    ("tell", "me"), ("first", "tell", "me"), ("i", "want", "to", "know"),
    ("what", "i", "want", "to", "know", "is"), ("how", "about"), ("let", "me", "ask"), ("let's", "say"),
    ("not", "that"), ("not", "this"), ("i", "think"),
)
# Words that are a cue only before a new question, maybe after lead-ins ("or just tell me what ...").
RESTART_CUES = frozenset({"or", "like", "better"})
RESTART_LEAD_INS = LEAD_INS + CONNECTORS + (("first",), ("make",), ("yeah",), ("really",), ("about",))

# A cue word followed by one of these is used for its meaning, not as a cue.
NOT_A_CUE = {"no": {"longer", "one", "more"}, "rather": {"than"}, "instead": {"of"}}

DETERMINERS = frozenset({"a", "an", "the", "this", "that", "these", "those", "his", "her", "its", "their"})
PREPOSITIONS = frozenset({"of", "in", "on", "at", "for", "to", "by", "with", "from", "during", "after",
                          "before"})
FUNCTION_WORDS = DETERMINERS | PREPOSITIONS | {"many", "much"}
INSERTED_ALONE = frozenset({"not", "never", "also", "only"})  # repair words that add to, not replace
SUBSTITUTE_MAX = 4  # longest repair that may be swapped into the middle of the question
ANCHOR_WINDOW = 6  # how far back before the cue the repair's first word is looked for

_EDGE_PUNCT = re.compile(r"^[^\w']+|[^\w']+$")


@functools.lru_cache(maxsize=None)
def _longest_first(phrases: tuple[tuple[str, ...], ...]) -> tuple[tuple[str, ...], ...]:
    return tuple(sorted(phrases, key=len, reverse=True))


def _norm(token: str) -> str:
    """Lower case, curly apostrophe straightened, punctuation at either end dropped."""
    return _EDGE_PUNCT.sub("", token.lower().replace("\u2019", "'"))


def _match(norms: list[str], i: int, phrases: tuple[tuple[str, ...], ...]) -> int:
    """Length of the longest phrase of ``phrases`` at position ``i`` (0 if none)."""
    for phrase in _longest_first(phrases):
        n = len(phrase)
        if tuple(norms[i:i + n]) == phrase:
            nxt = norms[i + n] if i + n < len(norms) else ""
            if nxt not in NOT_A_CUE.get(phrase[-1], ()):
                return n
    return 0


def _restart_cue(tokens: list[str], norms: list[str], i: int) -> int:
    """Length of a cue that only counts before a new question: "or", "like" or "better", maybe followed by
    lead-ins, right before a wh-word ("Who stated or who ...", "or just tell me what ..."); 0 if none."""
    if i >= len(norms) or norms[i] not in RESTART_CUES:
        return 0
    j = i + 1
    while j < len(norms) and (n := _match(norms, j, RESTART_LEAD_INS)):
        j += n
    return j - i if _starts_question(tokens[j:j + 2]) else 0


def _restarts_here(tokens: list[str], norms: list[str], i: int) -> bool:
    """A new question starts at ``i`` without any cue: a capitalised wh-word mid-question ("Where was When
    was ...") or the opening two words said again ("What is the intrinsic what is the principle ...")."""
    if i == 0 or norms[i] not in WH_WORDS:
        return False
    if sum(1 for n in norms[i:] if n) < 3:  # "... went in What direction?" is no new question
        return False
    return tokens[i][:1].isupper() or (norms[i:i + 2] == norms[:2] and norms[0] in WH_WORDS)


def _cue_at(tokens: list[str], norms: list[str], i: int) -> int:
    """Length of the cue at ``i``: an editing term, possibly after connectors, or a restart cue."""
    j = i
    while not _match(norms, j, RULE_CUES) and _match(norms, j, CONNECTORS):
        j += 1
    n = _match(norms, j, RULE_CUES)
    if n:
        return j - i + n
    return _restart_cue(tokens, norms, i)


def first_block(tokens: list[str]) -> tuple[int, int] | None:
    """(start, end) of the first cue block, extended over further cues, connectors and lead-ins; None
    when none. A restart without a cue is an empty block (start == end) before the new question."""
    norms = [_norm(t) for t in tokens]
    for i in range(len(norms)):
        if _restarts_here(tokens, norms, i):
            return i, i
        n = _cue_at(tokens, norms, i)
        if n:
            end = i + n
            while end < len(norms):
                step = (_cue_at(tokens, norms, end) or _match(norms, end, LEAD_INS)
                        or _match(norms, end, CONNECTORS))
                if not step:
                    break
                end += step
            return i, end
    return None


def _starts_question(repair: list[str]) -> bool:
    """Does the repair start a new question: a wh-word, maybe after a preposition ("in what year ...")?"""
    norms = [_norm(t) for t in repair[:2]] + ["", ""]
    return norms[0] in WH_WORDS or (norms[0] in PREPOSITIONS and norms[1] in WH_WORDS)


def _anchor(prefix: list[str], repair: list[str], window: int) -> int | None:
    """Position of the last of the prefix's last ``window`` words that the repair's first word repeats (a
    determiner matches any determiner); None when there is none."""
    norms = [_norm(t) for t in prefix]
    first = _norm(repair[0])
    for j in range(len(prefix) - 1, max(0, len(prefix) - window) - 1, -1):
        if norms[j] == first or (first in DETERMINERS and norms[j] in DETERMINERS):
            return j
    return None


def _question_start(prefix: list[str], repair: list[str]) -> int:
    """How many prefix words to keep before a repair that starts a new question: those before the last
    word it repeats, or before the last wh-word when no wh-word comes earlier ("Albert Einstein formulated
    what theory, or sorry, what law?" keeps "Albert Einstein formulated"); none when only a preposition
    would remain ("In what year, actually, what college ..." -> "What college ...")."""
    norms = [_norm(t) for t in prefix]
    first = _norm(repair[0])
    for j in range(len(prefix) - 1, -1, -1):
        other_wh = first in WH_WORDS and norms[j] in WH_WORDS and not WH_WORDS.intersection(norms[:j])
        if norms[j] == first or other_wh:
            return 0 if j == 1 and norms[0] in PREPOSITIONS else j
    return 0


def _cut_point(prefix: list[str], repair: list[str], filler_only: bool) -> int:
    """How many prefix words to keep before grafting a fragment repair."""
    j = _anchor(prefix, repair, ANCHOR_WINDOW)
    if j is not None:
        return j
    if filler_only and _norm(prefix[-1]) in DETERMINERS:
        return len(prefix)
    if filler_only and len(prefix) == 1 and _norm(prefix[0]) in WH_WORDS:
        return 1
    return len(prefix) - 1


def _substitute(prefix: list[str], repair: list[str]) -> list[str] | None:
    """A short repair that shares all but its first word with a span of the prefix goes in place of that
    span: its first word replaces the word before the shared part ("the east side
    of Fresno no west side" -> "the west side of Fresno"), or is inserted after it when that word is a
    function word ("the Uprising no November Uprising" -> "the November Uprising"). None if no such span."""
    n = len(repair)
    if not 2 <= n <= SUBSTITUTE_MAX:
        return None
    tail = [_norm(t) for t in repair[1:]]
    norms = [_norm(t) for t in prefix]
    words = [t.rstrip("?") for t in repair]
    first = _norm(repair[0])
    for p in range(len(prefix) - n, 0, -1):  # never at 0: the question's opening word stays
        if norms[p + 1:p + n] != tail or norms[p] == first:
            continue
        if norms[p] in FUNCTION_WORDS or first in INSERTED_ALONE:
            return prefix[:p + 1] + words + prefix[p + n:]
        return prefix[:p] + words + prefix[p + n:]
    return None


def _apply_block(tokens: list[str], start: int, end: int) -> list[str]:
    """The tokens with the block ``tokens[start:end]`` and the reparandum before it removed."""
    prefix, repair = tokens[:start], tokens[end:]
    if not prefix or not repair:
        return prefix + repair
    if _starts_question(repair):
        return prefix[:_question_start(prefix, repair)] + repair
    substituted = _substitute(prefix, repair)
    if substituted is not None:
        return substituted
    filler_only = all(n in RULE_FILLERS or (n,) in CONNECTORS for n in map(_norm, tokens[start:end]))
    return prefix[:_cut_point(prefix, repair, filler_only)] + repair


def _finish(tokens: list[str], had_question_mark: bool) -> str:
    """Join the words, put back a final "?" the cut took away, capitalise the first letter."""
    text = " ".join(tokens)
    if had_question_mark and not text.endswith("?"):
        text = text.rstrip(".!,;:") + "?"
    return text[:1].upper() + text[1:]


def rewrite_question(text: str) -> str:
    """The question with every cue block and the part it abandons removed (see the module docstring)."""
    if not isinstance(text, str):
        raise TypeError(f"expected str, got {type(text).__name__}")
    tokens = text.replace('\\"', '"').split()
    if not tokens:
        return ""
    had_question_mark = text.rstrip().endswith("?")
    for _ in range(len(tokens)):  # each pass removes at least one token, so this always stops
        block = first_block(tokens)
        if block is None:
            break
        tokens = _apply_block(tokens, *block)
        if not tokens:
            return ""
    return _finish(tokens, had_question_mark)


def rewrite_questions(questions: list[str]) -> list[str]:
    """:func:`rewrite_question` on each question, in order."""
    return [rewrite_question(q) for q in questions]


class RulesRewriter(Rewriter):
    """The rule-based rewriter behind ``--model rules``: no model, no learning."""

    name = method = source = "rules"

    def stream(self, questions, progress=None):
        for i, question in enumerate(questions):
            yield i, rewrite_question(question)
        if progress and questions:
            progress(len(questions))
