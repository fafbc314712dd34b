"""Scores for question rewriting: ROUGE-1/2/L/Lsum, BLEU, exact match and the changed-input share.

Everything is computed locally (no metric script is fetched from the internet):

* ROUGE uses Google's ``rouge_score`` package directly -- the package that Hugging Face
  ``evaluate.load("rouge")`` wraps -- with ``RougeScorer(["rouge1", "rouge2", "rougeL", "rougeLsum"],
  use_stemmer=True)``. Each example gets its F-measure and the corpus score is the plain mean over
  examples. That equals HF ``evaluate``'s ``rouge.compute(..., use_stemmer=True, use_aggregator=False)``
  followed by a mean; the HF default ``use_aggregator=True`` reports the median of bootstrap resample
  means instead, which is close to but not exactly the mean.
* BLEU is corpus-level ``sacrebleu`` (``sacrebleu.corpus_bleu``: 13a tokenizer, mixed case, ``exp``
  smoothing, one reference per example), on the 0..100 scale; :func:`bleu_signature` gives the exact
  sacrebleu signature string to report next to the number.
* Exact match compares prediction and reference after :func:`normalize_whitespace` (case-sensitive).
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from typing import Sequence

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum")

_WS = re.compile(r"\s+")


def normalize_whitespace(s: str) -> str:
    """Strip ``s`` and collapse every run of whitespace (spaces, tabs, newlines) to one space."""
    return _WS.sub(" ", s).strip()


def exact_match(prediction: str, reference: str) -> bool:
    """True when prediction and reference are equal after :func:`normalize_whitespace` (case-sensitive)."""
    return normalize_whitespace(prediction) == normalize_whitespace(reference)


def _check_texts(name: str, texts: Sequence[str]) -> list[str]:
    texts = list(texts)
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"{name}[{i}] is {type(t).__name__}, expected str")
    return texts


def _check_pair(predictions, references, *, allow_empty: bool = False) -> tuple[list[str], list[str]]:
    if isinstance(predictions, str) or isinstance(references, str):
        raise TypeError("predictions and references must be sequences of strings, not a single string")
    predictions = _check_texts("predictions", predictions)
    references = _check_texts("references", references)
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    if not predictions and not allow_empty:
        raise ValueError("no predictions to score (empty list)")
    return predictions, references


@functools.lru_cache(maxsize=1)
def _scorer():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)


def _rouge_per_example(predictions: list[str], references: list[str]) -> list[dict[str, float]]:
    scorer = _scorer()
    # rouge_score's argument order is (target, prediction). For rougeLsum it splits each text into
    # sentences on "\n" (what the HF metric expects); rouge1/2/L ignore whitespace entirely.
    return [{k: float(v.fmeasure) for k, v in scorer.score(ref, pred).items()}
            for pred, ref in zip(predictions, references)]


def rouge_scores(predictions, references) -> dict:
    """Corpus ROUGE: the mean over examples of each example's F-measure.

    ``rouge_score.RougeScorer(["rouge1", "rouge2", "rougeL", "rougeLsum"], use_stemmer=True)`` (Porter
    stemming, lower-casing, non-alphanumerics dropped). This matches Hugging Face ``evaluate``'s
    ``"rouge"`` metric with ``use_stemmer=True, use_aggregator=False`` followed by a mean over examples.
    For ``rougeLsum`` sentences are separated by newlines, as the HF metric expects; a one-line
    question therefore has rougeLsum == rougeL.

    Returns ``{"rouge1", "rouge2", "rougeL", "rougeLsum"}`` floats in [0, 1]. Raises ``ValueError`` on
    a length mismatch or empty input.
    """
    predictions, references = _check_pair(predictions, references)
    per = _rouge_per_example(predictions, references)
    return {k: sum(p[k] for p in per) / len(per) for k in ROUGE_TYPES}


def per_example_rouge_l(predictions, references) -> list[float]:
    """ROUGE-L F-measure of each prediction against its reference (same scorer as :func:`rouge_scores`)."""
    predictions, references = _check_pair(predictions, references, allow_empty=True)
    return [p["rougeL"] for p in _rouge_per_example(predictions, references)]


def bleu_score(predictions, references) -> float:
    """Corpus-level BLEU, 0..100: ``sacrebleu.corpus_bleu(predictions, [references])``.

    sacrebleu defaults: 13a tokenizer, case-sensitive ("mixed"), ``exp`` smoothing, one reference per
    prediction; the full signature (with the sacrebleu version) is :func:`bleu_signature`. BLEU is
    computed over the whole corpus (n-gram counts summed over examples, one brevity penalty), not
    averaged per sentence.
    """
    import sacrebleu

    predictions, references = _check_pair(predictions, references)
    return float(sacrebleu.corpus_bleu(predictions, [references]).score)


@functools.lru_cache(maxsize=1)
def bleu_signature() -> str:
    """The sacrebleu signature of :func:`bleu_score`.

    E.g. ``nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0``."""
    from sacrebleu.metrics import BLEU

    bleu = BLEU()
    bleu.corpus_score(["a"], [["a"]])  # the signature needs the number of references, known after scoring
    return str(bleu.get_signature())


# words whose loss turns a question's meaning around ("What do no online pharmacies allow?")
NEGATIONS = frozenset({"no", "not", "never", "none", "nobody", "nothing", "neither", "nor", "without", "cannot"})
_WORDS = re.compile(r"[a-z]+(?:'[a-z]+)?")


def _negations(text: str) -> Counter:
    words = _WORDS.findall(text.lower())
    # "not", "cannot" and "-n't" are one negation: "isn't" for "is not" keeps the meaning
    return Counter("not" if w in ("not", "cannot") or w.endswith("n't") else w for w in words
                   if w in NEGATIONS or w.endswith("n't"))


def drops_negation(prediction: str, reference: str) -> bool:
    """True when ``prediction`` has fewer of some negation word ("no", "not", "n't", "never", ...) than
    ``reference``: a rewrite that may have turned the question's meaning around."""
    return bool(_negations(reference) - _negations(prediction))


def compute_metrics(inputs, predictions, references) -> dict:
    """All corpus scores for one evaluation.

    Returns ``{"n", "rouge1", "rouge2", "rougeL", "rougeLsum", "bleu", "exact_match", "changed_input",
    "negation_dropped"}``:
    ROUGE in [0, 1] (see :func:`rouge_scores`), BLEU in [0, 100] (see :func:`bleu_score`),
    ``exact_match`` the share (0..1) of predictions equal to their reference after whitespace
    normalization, ``changed_input`` the share of predictions that differ from their input after
    whitespace normalization (a copy baseline has 0), ``negation_dropped`` the share of predictions that lost a
    negation word of their reference (:func:`drops_negation`). Raises ``ValueError`` when the three lists differ
    in length or are empty.
    """
    if isinstance(inputs, str):
        raise TypeError("inputs must be a sequence of strings, not a single string")
    inputs = _check_texts("inputs", inputs)
    predictions, references = _check_pair(predictions, references, allow_empty=True)
    if not (len(inputs) == len(predictions) == len(references)):
        raise ValueError(f"length mismatch: {len(inputs)} inputs, {len(predictions)} predictions, "
                         f"{len(references)} references")
    if not inputs:
        raise ValueError("no examples to score (empty lists)")
    n = len(inputs)
    out: dict = {"n": n}
    out.update(rouge_scores(predictions, references))
    out["bleu"] = bleu_score(predictions, references)
    out["exact_match"] = sum(exact_match(p, r) for p, r in zip(predictions, references)) / n
    out["changed_input"] = sum(not exact_match(p, i) for p, i in zip(predictions, inputs)) / n
    out["negation_dropped"] = sum(drops_negation(p, r) for p, r in zip(predictions, references)) / n
    return out


def per_example(inputs, predictions, references, ids=None) -> list[dict]:
    """One row per example, in order: ``{"id", "input", "prediction", "reference", "rougeL", "exact_match"}``.

    ``ids`` defaults to the positions 0..n-1. Raises ``ValueError`` on a length mismatch.
    """
    if isinstance(inputs, str):
        raise TypeError("inputs must be a sequence of strings, not a single string")
    inputs = _check_texts("inputs", inputs)
    predictions, references = _check_pair(predictions, references, allow_empty=True)
    ids = list(range(len(inputs))) if ids is None else list(ids)
    if not (len(inputs) == len(predictions) == len(references) == len(ids)):
        raise ValueError(f"length mismatch: {len(ids)} ids, {len(inputs)} inputs, "
                         f"{len(predictions)} predictions, {len(references)} references")
    rl = per_example_rouge_l(predictions, references)
    return [{"id": i, "input": x, "prediction": p, "reference": r, "rougeL": s, "exact_match": exact_match(p, r)}
            for i, x, p, r, s in zip(ids, inputs, predictions, references, rl)]
