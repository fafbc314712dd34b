"""`qrewrite score`: a predictions file against references, and every way the two can fail to match."""

import json

import pytest
from helpers import run_cli

from qrewrite.metrics import compute_metrics

RAW = {"a1": {"original": "Who founded Microsoft?", "disfluent": "Who founded Apple no Microsoft?"},
       "b2": {"original": "Where is Lima?", "disfluent": "Where is um Lima?"},
       "c3": {"original": "When did Rome fall?", "disfluent": "When did uh Rome fall?"}}
GOOD = {"a1": "Who founded Microsoft?", "b2": "Where is Lima Peru?", "c3": "When did Rome fall?"}


def write_predictions(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def refs(tmp_path):
    path = tmp_path / "test.json"
    path.write_text(json.dumps(RAW))
    return path


def test_score_raw_disfl_qa_references_json(tmp_path, refs):
    preds = write_predictions(tmp_path / "p.jsonl", [{"id": k, "prediction": v} for k, v in reversed(GOOD.items())])
    r = run_cli("score", "--predictions", preds, "--references", refs, "--json")
    assert r.returncode == 0, r.stderr
    scores = json.loads(r.stdout)
    ids = list(RAW)
    expected = compute_metrics([RAW[i]["disfluent"] for i in ids], [GOOD[i] for i in ids],
                               [RAW[i]["original"] for i in ids])
    assert scores["exact_match"] == pytest.approx(2 / 3) and scores["n"] == 3
    for key in ("rouge1", "rouge2", "rougeL", "bleu", "exact_match"):
        assert scores[key] == pytest.approx(expected[key])
    assert 0 < scores["rougeL"] < 1
    r = run_cli("score", "--predictions", preds, "--references", refs)
    assert r.returncode == 0 and "ROUGE-L" in r.stdout and "EM 66.67%" in r.stdout


def test_score_other_reference_formats(tmp_path):
    refs = tmp_path / "valid.jsonl"
    refs.write_text("".join(json.dumps({"id": k, "input": v["disfluent"], "target": v["original"]}) + "\n"
                            for k, v in RAW.items()))
    preds = write_predictions(tmp_path / "p.jsonl", [{"id": k, "prediction": RAW[k]["original"]} for k in RAW])
    r = run_cli("score", "--predictions", preds, "--references", refs, "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["exact_match"] == 1.0


@pytest.mark.parametrize("rows, message", [
    ([{"id": "a1", "prediction": "x"}, {"id": "b2", "prediction": "y"}], "1 reference ids have no prediction: c3"),
    ([*({"id": k, "prediction": v} for k, v in GOOD.items()), {"id": "zz9", "prediction": "?"}],
     "1 predicted ids are not in the references: zz9"),
    ([], "no predictions in the file"),
    ([{"id": "a1", "prediction": "x"}, "{not json", {"id": "c3", "prediction": "z"}], "line 2 is not JSON"),
    ([{"id": "a1", "prediction": "x"}, {"id": "a1", "prediction": "y"}], "line 2: id a1 has a prediction already"),
    ([{"id": "a1"}], "line 1: no 'prediction' field"),
    ([{"id": "a1", "prediction": 3}], "'prediction' must be a string"),
    (["[1, 2]"], "line 1: expected an object"),
])
def test_score_bad_predictions(tmp_path, refs, rows, message):
    preds = write_predictions(tmp_path / "p.jsonl", rows)
    r = run_cli("score", "--predictions", preds, "--references", refs, "--json")
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.startswith("error: ") and message in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_score_missing_files(tmp_path, refs):
    r = run_cli("score", "--predictions", tmp_path / "none.jsonl", "--references", refs)
    assert r.returncode == 2 and "predictions file not found" in r.stderr
    preds = write_predictions(tmp_path / "p.jsonl", [{"id": "a1", "prediction": "x"}])
    r = run_cli("score", "--predictions", preds, "--references", tmp_path / "none.json")
    assert r.returncode == 2 and "none.json" in r.stderr


def test_score_reports_95_percent_intervals(tmp_path, refs):
    preds = write_predictions(tmp_path / "p.jsonl", [{"id": k, "prediction": v} for k, v in GOOD.items()])
    scores = json.loads(run_cli("score", "--predictions", preds, "--references", refs, "--json").stdout)
    low, high = scores["rougeL_ci"]
    # 3 questions, 2 rewritten exactly: a resample draws only the imperfect one 1 time in 27 (3.7 %, more than the
    # 2.5 % tail) and only perfect ones 8 times in 27, so the interval runs from the imperfect one's score to 1
    imperfect = compute_metrics(["x"], [GOOD["b2"]], [RAW["b2"]["original"]])["rougeL"]
    assert low == pytest.approx(imperfect) and high == 1.0 and low < scores["rougeL"] < high
    assert scores["exact_match_ci"] == [0.0, 1.0]
    assert scores["intervals"]["resamples"] >= 1000 and scores["intervals"]["seed"] == 0
    again = json.loads(run_cli("score", "--predictions", preds, "--references", refs, "--json").stdout)
    assert again["rougeL_ci"] == scores["rougeL_ci"]  # seeded
    text = run_cli("score", "--predictions", preds, "--references", refs).stdout
    assert f"ROUGE-L [{low:.4f}, {high:.4f}]" in text and "EM [0.00%, 100.00%]" in text


def test_score_against_the_same_predictions_differs_by_zero(tmp_path, refs):
    preds = write_predictions(tmp_path / "p.jsonl", [{"id": k, "prediction": v} for k, v in GOOD.items()])
    same = write_predictions(tmp_path / "q.jsonl", [{"id": k, "prediction": v} for k, v in reversed(GOOD.items())])
    r = run_cli("score", "--predictions", preds, "--references", refs, "--against", same, "--json")
    assert r.returncode == 0, r.stderr
    against = json.loads(r.stdout)["against"]
    assert against["rougeL_diff"] == 0 and against["rougeL_diff_ci"] == [0.0, 0.0]
    assert against["exact_match_diff"] == 0 and against["exact_match_diff_ci"] == [0.0, 0.0]
    assert against["predictions"] == str(same)


def test_score_against_a_worse_set_gives_an_interval_above_zero(tmp_path, refs):
    preds = write_predictions(tmp_path / "p.jsonl", [{"id": k, "prediction": RAW[k]["original"]} for k in RAW])
    worse = write_predictions(tmp_path / "w.jsonl", [{"id": k, "prediction": RAW[k]["disfluent"]} for k in RAW])
    scores = json.loads(run_cli("score", "--predictions", preds, "--references", refs, "--against", worse,
                                "--json").stdout)
    other = scores["against"]
    assert other["rougeL_diff"] == pytest.approx(scores["rougeL"] - other["rougeL"], abs=1e-6)  # stored rounded
    assert 0 < other["rougeL_diff_ci"][0] <= other["rougeL_diff"] <= other["rougeL_diff_ci"][1]
    assert other["exact_match_diff"] == 1.0 and other["exact_match_diff_ci"] == [1.0, 1.0]
    text = run_cli("score", "--predictions", preds, "--references", refs, "--against", worse).stdout
    assert f"against {worse}" in text and "EM +100.00% [100.00%, 100.00%] (interval excludes 0)" in text


def test_score_against_a_set_of_other_questions_is_refused(tmp_path, refs):
    preds = write_predictions(tmp_path / "p.jsonl", [{"id": k, "prediction": v} for k, v in GOOD.items()])
    short = write_predictions(tmp_path / "s.jsonl", [{"id": "a1", "prediction": "x"}])
    r = run_cli("score", "--predictions", preds, "--references", refs, "--against", short)
    assert r.returncode == 2 and r.stdout == "" and "s.jsonl" in r.stderr
    assert "2 reference ids have no prediction: b2, c3" in r.stderr
