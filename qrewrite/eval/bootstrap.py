"""95 % bootstrap intervals over questions, for one set of scores or the paired difference of two.

A score here is a per-question number (ROUGE-L F, exact match as 0/1) whose mean is the reported metric. The
interval is the percentile bootstrap: draw ``RESAMPLES`` sets of n questions with replacement, take each set's
mean, keep the 2.5th and 97.5th percentiles of those means. The draws come from ``numpy.random.default_rng(seed)``,
so the same scores and seed give the same interval. A paired difference resamples the same questions for both
sets: what is compared is the per-question difference, which is far less noisy than two separate intervals.
"""

from __future__ import annotations

import numpy as np

RESAMPLES = 2000
SEED = 0
LEVEL = 0.95
_CHUNK = 250  # resamples drawn at a time: 250 x 3,643 indices stay small


def settings() -> dict:
    """How the intervals were computed, to store beside them."""
    return {"method": "percentile bootstrap over questions", "level": LEVEL, "resamples": RESAMPLES, "seed": SEED}


def _means(values: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = len(values)
    out = []
    for start in range(0, resamples, _CHUNK):
        idx = rng.integers(0, n, size=(min(_CHUNK, resamples - start), n))
        out.append(values[idx].mean(axis=1))
    return np.concatenate(out)


def _scores(values, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.ndim != 1 or not len(array):
        raise ValueError(f"{name}: expected a non-empty list of per-question scores")
    if not np.isfinite(array).all():
        raise ValueError(f"{name}: every score must be a finite number")
    return array


def interval(values, *, resamples: int = RESAMPLES, seed: int = SEED, level: float = LEVEL) -> tuple[float, float]:
    """The ``level`` percentile-bootstrap interval of the mean of ``values`` (one score per question)."""
    means = _means(_scores(values, "scores"), resamples, seed)
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def paired_difference(values, others, *, resamples: int = RESAMPLES, seed: int = SEED,
                      level: float = LEVEL) -> tuple[float, float, float]:
    """``(mean(values) - mean(others), low, high)``: the difference of two score lists over the same questions (in
    the same order) and its paired bootstrap interval."""
    a, b = _scores(values, "scores"), _scores(others, "other scores")
    if len(a) != len(b):
        raise ValueError(f"paired scores need the same questions: {len(a)} against {len(b)}")
    low, high = interval(a - b, resamples=resamples, seed=seed, level=level)
    return float(a.mean() - b.mean()), low, high


def excludes_zero(low: float, high: float) -> bool:
    """True when an interval of a difference lies wholly above or wholly below zero."""
    return low > 0 or high < 0


def metric_intervals(rouge_l, exact) -> dict:
    """``{"rougeL_ci": [low, high], "exact_match_ci": [low, high]}`` from per-question ROUGE-L and exact match."""
    return {"rougeL_ci": _rounded(interval(rouge_l)), "exact_match_ci": _rounded(interval([float(e) for e in exact]))}


def paired_intervals(rouge_l, exact, other_rouge_l, other_exact) -> dict:
    """The differences (first minus other) of mean ROUGE-L and exact match with their paired intervals:
    ``{"rougeL_diff", "rougeL_diff_ci", "exact_match_diff", "exact_match_diff_ci"}``."""
    out = {}
    for key, mine, theirs in (("rougeL", rouge_l, other_rouge_l), ("exact_match", exact, other_exact)):
        diff, low, high = paired_difference([float(v) for v in mine], [float(v) for v in theirs])
        out[f"{key}_diff"], out[f"{key}_diff_ci"] = round(diff, 6) + 0.0, _rounded((low, high))
    return out


def _rounded(pair) -> list[float]:
    return [round(float(v), 6) + 0.0 for v in pair]  # + 0.0: no -0.0 in JSON
