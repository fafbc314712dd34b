"""Clean questions as a training source: pairs made from questions that have no disfluent version.

Disfl-QA's training questions come from about thirty articles; a file of clean questions on other topics (the
SQuAD v1.1 training questions in ``../shared/data/squad-train/``, CC BY-SA 4.0) gives the rewriter more names
and topics to copy. Each drawn question becomes one training pair whose target is the question itself and
whose input is, by a seeded draw per question:

- ``synthetic``: a correction or restart (:func:`qrewrite.data.synthetic.synthetic_disfluency`), the wrong
  spans and starts borrowed from the other drawn questions;
- ``typo``: the question with typos (:func:`qrewrite.data.typos.add_typos`, at the config's ``typo_rate``);
- ``filler``: the question with a filler or two ("um", "you know");
- ``clean``: the question unchanged: a rewriter in front of a search box sees many questions that need nothing.

A question holding a word a correction cue is made of ("no", "not", "or", "rather", ...) is kept clean at least
half of the time, so the model learns that such words are not always cues ("What do no online pharmacies
allow?" must keep its "no").

The draw is seeded and does not depend on the file's order: questions are drawn by a hash of the seed and
their text, and each question's kind and noise come from a ``random.Random`` seeded the same way. Nothing is
dropped silently: duplicates, questions equal to a validation reference (leaks) or to a training target, and
questions that are empty or too long are counted in the report that ``run.json`` keeps.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from pathlib import Path

from qrewrite.config import EXTRA_KINDS, parse_mix
from qrewrite.data.kinds import SPOKEN_FILLERS
from qrewrite.data.records import read_text
from qrewrite.data.sample import lower_first
from qrewrite.data.synthetic import synthetic_disfluency
from qrewrite.data.typos import add_typos
from qrewrite.errors import DataError
from qrewrite.files import file_fingerprint, repo_relative

__all__ = ["read_questions", "extra_pairs", "normalise", "draw_key", "has_cue_word"]

QUESTION_FIELDS = ("question", "target", "clean", "original")
# words that are correction cues in some questions and plain words in others
CUE_WORDS = frozenset({"no", "not", "or", "rather", "sorry", "mean", "wait", "never", "nor", "none", "nothing"})
CUE_WORD_CLEAN_SHARE = 0.5
MAX_CHARS = 2000
_NORM = re.compile(r"[^\w]+")


def normalise(text: str) -> str:
    """Case, punctuation and spacing removed: the key for duplicates and leaks."""
    return _NORM.sub(" ", text.lower()).strip()


def _question_of(path: Path, line_no: int, line: str) -> str:
    if path.suffix.lower() == ".txt":
        return line
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: line {line_no}: not valid JSON ({e.msg}); expected one object with a "
                        f"'question' field per line (or a .txt file with one question per line)") from None
    if isinstance(obj, str):
        return obj
    if not isinstance(obj, dict):
        raise DataError(f"{path}: line {line_no}: expected an object with a 'question' field, got "
                        f"{type(obj).__name__}")
    name = next((f for f in QUESTION_FIELDS if f in obj), None)
    if name is None:
        raise DataError(f"{path}: line {line_no}: no question field (one of {', '.join(QUESTION_FIELDS)}); "
                        f"the object has {sorted(obj)}")
    if not isinstance(obj[name], str):
        raise DataError(f"{path}: line {line_no}, field {name!r}: expected a string, got "
                        f"{type(obj[name]).__name__}")
    return obj[name]


def read_questions(path: str | Path) -> tuple[list[str], dict]:
    """The distinct clean questions of a JSONL (``{"question": ...}`` per line) or text file, and what was
    skipped: ``{"empty": n, "too_long": n, "duplicate": n}``."""
    path = Path(path)
    text = read_text(path).lstrip("\ufeff")
    questions, seen, skipped = [], set(), {"empty": 0, "too_long": 0, "duplicate": 0}
    for line_no, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        question = " ".join(_question_of(path, line_no, line).split())
        key = normalise(question)
        if not key:
            skipped["empty"] += 1
        elif len(question) > MAX_CHARS:
            skipped["too_long"] += 1
        elif key in seen:
            skipped["duplicate"] += 1
        else:
            seen.add(key)
            questions.append(question)
    if not questions:
        raise DataError(f"extra_questions: {path} holds no usable question (skipped: {skipped})")
    return questions, skipped


def draw_key(seed: int, question: str) -> str:
    """The order questions are drawn in: a hash of seed and text, so a draw does not depend on the file's order."""
    return hashlib.sha256(f"{seed}:{question}".encode()).hexdigest()


def has_cue_word(question: str) -> bool:
    """Whether the question holds a word correction cues are made of ("no", "or", "rather", ...)."""
    return bool(CUE_WORDS & set(normalise(question).split()))


def _filler(clean: str, rng: random.Random) -> str:
    words = clean.split()
    for _ in range(1 if len(words) < 6 or rng.random() < 0.6 else 2):
        filler = rng.choice(SPOKEN_FILLERS)
        pos = rng.randint(0, max(0, len(words) - 1))  # never after the last word (it carries the "?")
        if pos == 0:
            words = [f"{filler.capitalize()},", *lower_first(" ".join(words)).split()]
        else:
            words = [*words[:pos], filler + ("," if rng.random() < 0.3 else ""), *words[pos:]]
    return " ".join(words)


def _kind(question: str, mix: dict[str, float], rng: random.Random) -> str:
    if has_cue_word(question) and rng.random() < CUE_WORD_CLEAN_SHARE:
        return "clean"
    return rng.choices(EXTRA_KINDS, weights=[mix[k] for k in EXTRA_KINDS])[0]


def _messy(kind: str, question: str, pool: list[str], rng: random.Random, typo_rate: float) -> str:
    if kind == "synthetic":
        return synthetic_disfluency(question, pool, rng)
    if kind == "typo":
        return add_typos(question, rng, rate=typo_rate)
    if kind == "filler":
        return _filler(question, rng)
    return question


def extra_pairs(path: str | Path, *, count: int, mix: str, seed: int, typo_rate: float,
                exclude: dict[str, set[str]]) -> tuple[list[dict], dict]:
    """``count`` training pairs (0: one per question) made from the questions of ``path``, and the report.

    ``exclude``: reason -> normalised texts a question must not equal (e.g. ``{"leak_valid": valid targets,
    "in_train": training targets}``); each match is left out and counted under its reason."""
    questions, skipped = read_questions(path)
    kept = []
    for q in questions:
        reason = next((r for r, texts in exclude.items() if normalise(q) in texts), None)
        if reason:
            skipped[reason] = skipped.get(reason, 0) + 1
        else:
            kept.append(q)
    drawn = sorted(kept, key=lambda q: draw_key(seed, q))[:count or None]
    pool = sorted(drawn)
    shares = parse_mix(mix)
    pairs, kinds = [], dict.fromkeys(EXTRA_KINDS, 0)
    for q in drawn:
        qid = f"extra-{draw_key(0, q)[:12]}"
        rng = random.Random(f"{seed}:{qid}")
        kind = _kind(q, shares, rng)
        messy = _messy(kind, q, pool, rng, typo_rate)
        if messy == q and kind != "clean":  # noise that changed nothing (a typo draw that missed)
            kind = "clean"
        kinds[kind] += 1
        pairs.append({"id": f"{qid}#{kind}", "input": messy, "target": q})
    report = {"file": repo_relative(path), "fingerprint": file_fingerprint(path), "n_questions": len(questions),
              "n_pairs": len(pairs), "asked": count, "mix": shares, "kinds": kinds,
              "clean_with_cue_words": sum(1 for p in pairs if p["id"].endswith("#clean")
                                          and has_cue_word(p["target"])),
              "skipped": skipped}
    if count and len(pairs) < count:
        report["short_by"] = count - len(pairs)
    return pairs, report
