"""``python -m qrewrite evaluate`` (tiny run and the copy baseline), interrupted evaluations, ``results``."""

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
import yaml
from helpers import SAMPLE, read_jsonl, run_cli

from qrewrite.eval.bootstrap import metric_intervals
from qrewrite.files import file_fingerprint
from qrewrite.metrics import rouge_scores

VALID = SAMPLE / "valid.json"
TRAIN = SAMPLE / "train.json"


def load(path):
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def evaluated(tiny_run, tmp_path_factory):
    """Both evaluations into one outputs directory, run concurrently: (outputs dir, {name: CompletedProcess})."""
    outs = tmp_path_factory.mktemp("outputs")
    calls = {
        "tiny-full": ["evaluate", "--model", tiny_run, "--data", VALID, "--out", outs / "tiny-full",
                      "--train-data", TRAIN, "--train-sample", "10", "--max-new-tokens", "8", "--batch-size", "16",
                      "--data-label", "sample valid"],
        "copy-baseline": ["evaluate", "--model", "copy", "--data", VALID, "--out", outs / "copy-baseline",
                          "--data-label", "sample valid"],
    }
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(run_cli, *args) for name, args in calls.items()}
        results = {name: f.result() for name, f in futures.items()}
    for name, r in results.items():
        assert r.returncode == 0, f"{name}: exit {r.returncode}\n{r.stderr}"
    return outs, results


def test_metrics_json(evaluated, tiny_run):
    outs, results = evaluated
    m = load(outs / "tiny-full" / "metrics.json")
    assert set(m) == {"metrics", "run", "eval", "intervals"}
    assert set(m["metrics"]) == {"n", "rouge1", "rouge2", "rougeL", "rougeLsum", "bleu", "exact_match",
                                 "changed_input", "negation_dropped", "rougeL_ci", "exact_match_ci"}
    rows = read_jsonl(outs / "tiny-full" / "predictions.jsonl")
    assert m["metrics"]["rougeL_ci"] == metric_intervals([r["rougeL"] for r in rows],
                                                         [r["exact_match"] for r in rows])["rougeL_ci"]
    assert m["metrics"]["rougeL_ci"][0] <= m["metrics"]["rougeL"] <= m["metrics"]["rougeL_ci"][1]
    assert m["intervals"]["resamples"] >= 1000 and m["intervals"]["level"] == 0.95
    assert m["metrics"]["n"] == len(load(VALID))
    run = m["run"]
    info = load(tiny_run / "run.json")
    assert run["name"] == "tiny-full" and run["data"] == "sample valid"
    assert run["model"] == info["model"] and run["model_path"] == str(tiny_run)
    assert run["method"] == "full" and run["steps"] == 6
    assert run["data_fingerprint"] == file_fingerprint(VALID)
    assert run["training_data_fingerprint"] == info["data_fingerprint"]
    assert isinstance(run["git_commit"], str) and run["git_commit"]
    assert "evaluate" in run["command"] and "--model" in run["command"]
    assert m["eval"]["decoding"] == "greedy" and m["eval"]["max_new_tokens"] == 8
    # the training run's config travels with the evaluation
    assert yaml.safe_load((outs / "tiny-full" / "config.yaml").read_text())["run_name"] == "tiny-full"
    assert f"written: {outs / 'tiny-full' / 'metrics.json'}" in results["tiny-full"].stdout


def test_predictions_and_io_files(evaluated):
    outs, _ = evaluated
    valid = load(VALID)
    rows = read_jsonl(outs / "tiny-full" / "predictions.jsonl")
    assert [list(r) for r in rows] == [["id", "input", "prediction", "reference", "rougeL", "exact_match"]] * len(valid)
    assert [(r["id"], r["input"], r["reference"]) for r in rows] == [(v["id"], v["input"], v["target"]) for v in valid]
    assert all(0 <= r["rougeL"] <= 1 and isinstance(r["exact_match"], bool) for r in rows)
    assert not (outs / "tiny-full" / "valid_io.json").exists()  # predictions.jsonl holds the same, once
    train_io = load(outs / "tiny-full" / "train_io.json")
    pairs = {(t["input"], t["target"]) for t in load(TRAIN)}
    assert len(train_io) == 10 and all((t["input"], t["reference"]) in pairs for t in train_io)
    assert all(set(t) == {"input", "prediction", "reference"} for t in train_io)
    assert not (outs / "copy-baseline" / "train_io.json").exists()  # only with --train-data


def test_a_nested_evaluation_of_the_same_run_keeps_no_second_copy_of_its_config_and_log(evaluated, tiny_run):
    outs, _ = evaluated
    nested = outs / "tiny-full" / "typo"
    r = run_cli("evaluate", "--model", tiny_run, "--data", VALID, "--out", nested, "--limit", "2",
                "--max-new-tokens", "4")
    assert r.returncode == 0, r.stderr
    assert (nested / "metrics.json").is_file() and (outs / "tiny-full" / "config.yaml").is_file()
    assert not (nested / "config.yaml").exists() and not (nested / "trainer_log.json").exists()
    elsewhere = outs / "tiny-full-again"
    r = run_cli("evaluate", "--model", tiny_run, "--data", VALID, "--out", elsewhere, "--limit", "2",
                "--max-new-tokens", "4")
    assert r.returncode == 0, r.stderr
    assert (elsewhere / "config.yaml").read_bytes() == (tiny_run / "config.yaml").read_bytes()


def test_baseline_evaluation_is_reusable_whatever_the_generation_budget(evaluated):
    from qrewrite.eval.evaluate import reusable_evaluation
    outs, _ = evaluated
    assert reusable_evaluation("copy", VALID, outs / "copy-baseline", max_new_tokens=64) is None
    assert "was evaluated for model" in reusable_evaluation("rules", VALID, outs / "copy-baseline")


def test_copy_baseline(evaluated):
    outs, _ = evaluated
    valid = load(VALID)
    m = load(outs / "copy-baseline" / "metrics.json")
    assert m["run"]["method"] == "copy" and m["run"]["model"] == "copy"
    assert m["metrics"]["changed_input"] == 0
    inputs, targets = [v["input"] for v in valid], [v["target"] for v in valid]
    assert m["metrics"]["exact_match"] == pytest.approx(sum(i == t for i, t in zip(inputs, targets)) / len(valid))
    for row in read_jsonl(outs / "copy-baseline" / "predictions.jsonl"):
        assert row["prediction"] == row["input"]
        assert row["exact_match"] == (row["input"] == row["reference"])
    expected = rouge_scores(inputs, targets)
    for k, v in expected.items():
        assert m["metrics"][k] == pytest.approx(v, abs=1e-12)


@pytest.mark.parametrize("exc", [KeyboardInterrupt, RuntimeError])
def test_interrupted_evaluation_leaves_no_new_files(tiny_run, tmp_path, monkeypatch, exc):
    from qrewrite.eval import evaluate as evaluation
    out = tmp_path / "eval"
    out.mkdir()
    if exc is RuntimeError:  # an older, complete-looking evaluation is there
        (out / "metrics.json").write_text(json.dumps({"metrics": {"rougeL": 0.9}, "run": {"name": "old"}}))
    calls = []

    def boom(self, questions, progress=None):
        calls.append(len(questions))
        raise exc("interrupted mid-way")
    from qrewrite.infer.rewriter import ModelRewriter
    monkeypatch.setattr(ModelRewriter, "rewrite", boom)
    with pytest.raises(exc):
        evaluation.evaluate_model(str(tiny_run), VALID, out, max_new_tokens=4, show_progress=False, overwrite=True)
    assert calls == [len(load(VALID))]
    # the older evaluation stays whole until a new one is complete (issue 42); none was there: none now
    assert [p.name for p in out.iterdir()] == (["metrics.json"] if exc is RuntimeError else [])
    if exc is RuntimeError:
        assert json.loads((out / "metrics.json").read_text())["run"]["name"] == "old"


def test_results_regenerated(evaluated):
    outs, _ = evaluated
    (outs / "results.md").write_text("stale\n")
    r = run_cli("results", "--outputs", outs)
    assert r.returncode == 0, r.stderr
    md = (outs / "results.md").read_text()
    assert "stale" not in md
    table = [line for line in md.splitlines() if line.startswith("| ") and not line.startswith("| run |")]
    assert len(table) == len(list(outs.rglob("metrics.json")))  # one row per metrics.json
    assert any("tiny-full" in line for line in table) and any("copy-baseline" in line for line in table)
    assert f"written: {outs / 'results.md'}" in r.stdout
