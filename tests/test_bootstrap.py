"""95 % bootstrap intervals (qrewrite.eval.bootstrap), the metrics.json schema that carries them, and adding them
to evaluations made before (qrewrite.eval.intervals)."""

import json
import math

import numpy as np
import pytest

from qrewrite.eval.bootstrap import (
    RESAMPLES,
    excludes_zero,
    interval,
    metric_intervals,
    paired_difference,
    paired_intervals,
)
from qrewrite.eval.intervals import add_intervals
from qrewrite.eval.schema import check_metrics_document, metrics_document


def test_equal_scores_give_a_zero_width_interval():
    assert interval([0.7] * 50) == pytest.approx((0.7, 0.7))
    assert metric_intervals([1.0] * 9, [True] * 9) == {"rougeL_ci": [1.0, 1.0], "exact_match_ci": [1.0, 1.0]}


def test_two_questions_by_hand():
    """Scores 0 and 1: a resample's mean is 0, 0.5 or 1 with chances 1/4, 1/2, 1/4, so the 2.5th and 97.5th
    percentiles of 2,000 of them are 0 and 1, and about half of the means are 0.5."""
    assert interval([0.0, 1.0]) == (0.0, 1.0)
    assert interval([0.0, 1.0], level=0.4) == (0.5, 0.5)  # the middle 40 % are all 0.5


def test_a_large_sample_matches_the_normal_approximation():
    values = np.random.default_rng(1).random(4000) < 0.6
    low, high = interval(values)
    half = 1.96 * math.sqrt(values.mean() * (1 - values.mean()) / len(values))
    assert low == pytest.approx(values.mean() - half, abs=0.003)
    assert high == pytest.approx(values.mean() + half, abs=0.003)
    assert RESAMPLES >= 1000


def test_the_same_seed_gives_the_same_interval_and_another_seed_another():
    values = np.random.default_rng(2).random(300)
    assert interval(values, seed=5) == interval(values, seed=5)
    assert interval(values, seed=5) != interval(values, seed=6)
    assert interval(values) == interval(list(values))


def test_identical_sets_differ_by_zero_with_a_zero_width_interval():
    scores = list(np.random.default_rng(3).random(200))
    assert paired_difference(scores, scores) == (0.0, 0.0, 0.0)
    out = paired_intervals(scores, [s > 0.5 for s in scores], scores, [s > 0.5 for s in scores])
    assert out == {"rougeL_diff": 0.0, "rougeL_diff_ci": [0.0, 0.0], "exact_match_diff": 0.0,
                   "exact_match_diff_ci": [0.0, 0.0]}
    assert not excludes_zero(0.0, 0.0)


def test_a_set_better_on_every_question_has_an_interval_above_zero():
    rng = np.random.default_rng(4)
    base, gain = rng.random(100) * 0.5, rng.random(100) * 0.02 + 0.001
    diff, low, high = paired_difference(base + gain, base)
    assert diff == pytest.approx(gain.mean()) and 0 < low < diff < high
    assert excludes_zero(low, high)
    # the same gain, unpaired, would drown in the spread between questions: pairing is what finds it
    assert interval(base + gain)[0] < interval(base)[1]


def test_a_mixed_difference_keeps_zero_inside():
    rng = np.random.default_rng(5)
    a, b = rng.random(500), rng.random(500)
    _, low, high = paired_difference(a, b)
    assert low < 0 < high and not excludes_zero(low, high)


@pytest.mark.parametrize("values", [[], [[1, 2]], [float("nan")], [0.5, float("inf")]])
def test_bad_scores_are_refused(values):
    with pytest.raises(ValueError):
        interval(values)


def test_paired_sets_must_be_the_same_size():
    with pytest.raises(ValueError, match="same questions: 2 against 3"):
        paired_difference([1, 2], [1, 2, 3])


METRICS = {"n": 2, "rouge1": 1.0, "rouge2": 1.0, "rougeL": 0.75, "rougeLsum": 0.75, "bleu": 50.0,
           "exact_match": 0.5, "changed_input": 1.0, "negation_dropped": 0.0}
RUN = {k: None for k in ("model_path", "model_source", "data_path", "data_fingerprint", "n_examples", "steps",
                         "train_time_s", "peak_memory_mb", "training_git_commit", "training_data_fingerprint",
                         "git_commit", "command", "created")} | {"name": "r", "model": "m", "method": "full",
                                                                  "data": "dev"}
EVAL = {"seconds": 1.0, "questions_per_s": 2.0, "batch_size": 1, "max_new_tokens": 8, "decoding": "greedy",
        "engine": "transformers", "prompt_format": "minimal"}


def test_the_schema_builds_what_it_checks_and_refuses_a_section_short_of_a_field():
    doc = metrics_document(METRICS, metric_intervals([0.5, 1.0], [False, True]), RUN, {**EVAL, "replicas": 2})
    assert check_metrics_document(json.loads(json.dumps(doc)), "x") == doc
    assert list(doc) == ["metrics", "intervals", "run", "eval"] and doc["eval"]["replicas"] == 2
    assert doc["metrics"]["exact_match_ci"] == [0.0, 1.0]
    with pytest.raises(ValueError, match="'run' lacks created"):
        metrics_document(METRICS, metric_intervals([1.0], [True]), {k: v for k, v in RUN.items() if k != "created"},
                         EVAL)
    bad = {**doc, "metrics": {**doc["metrics"], "rougeL_ci": [0.9, 0.1]}}
    with pytest.raises(ValueError, match=r"x: field 'metrics.rougeL_ci' must be \[low, high\]"):
        check_metrics_document(bad, "x")


def _evaluation(directory, rows, metrics):
    directory.mkdir(parents=True)
    (directory / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    path = directory / "metrics.json"
    path.write_text(json.dumps({"metrics": metrics, "run": {"name": "r", "model": "m", "method": "full",
                                                            "data": "dev"}}))
    return path


def test_intervals_are_added_from_the_evaluations_own_predictions_once(tmp_path):
    rows = [{"id": "a", "rougeL": 0.5, "exact_match": False}, {"id": "b", "rougeL": 1.0, "exact_match": True}]
    path = _evaluation(tmp_path / "e", rows, METRICS)
    assert add_intervals([path], {"added_by": "test", "git_commit": "abc"}) == [path]
    doc = json.loads(path.read_text())
    assert doc["metrics"]["rougeL_ci"] == [0.5, 1.0] and doc["metrics"]["rougeL"] == 0.75
    assert doc["intervals"]["added_by"] == "test" and doc["intervals"]["from"] == "predictions.jsonl"
    assert doc["run"]["name"] == "r"
    assert add_intervals([path], {"added_by": "again"}) == []  # already there: left as it is
    assert json.loads(path.read_text())["intervals"]["added_by"] == "test"


def test_intervals_are_refused_when_the_predictions_are_not_the_metrics(tmp_path):
    rows = [{"id": "a", "rougeL": 0.5, "exact_match": False}, {"id": "b", "rougeL": 0.9, "exact_match": True}]
    path = _evaluation(tmp_path / "e", rows, METRICS)
    with pytest.raises(ValueError, match="the mean of 'rougeL' is not"):
        add_intervals([path], {})
    path = _evaluation(tmp_path / "f", rows[:1], METRICS)
    with pytest.raises(ValueError, match="1 rows, but .* scored 2 questions"):
        add_intervals([path], {})
