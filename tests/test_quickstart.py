"""The README's main job, end to end on the tiny model in a scratch directory."""

import json

from helpers import run_cli


def test_quickstart_prepares_trains_evaluates_and_writes_results(tiny_model, tmp_path):
    done = run_cli("quickstart", "--config", "configs/smoke.yaml", "--model", tiny_model, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    for step in ("[1/4] prepare", "[2/4] train", "[3/4] evaluate", "[4/4] results"):
        assert step in done.stdout
    # a log, not a terminal: no redrawn bars (loading, saving), no deprecation notice, each progress line once
    assert "\r" not in done.stderr and "deprecated" not in done.stderr
    progress = [line for line in done.stderr.splitlines() if line.startswith("rewriting")]
    assert progress and len(progress) == len(set(progress)) and "80 questions + 100 for train_io" in progress[-1]
    assert (tmp_path / "dataset" / "quickstart" / "train.json").exists()
    assert json.loads((tmp_path / "weights" / "smoke" / "run.json").read_text())["status"] == "complete"
    metrics = json.loads((tmp_path / "outputs" / "quickstart" / "smoke" / "metrics.json").read_text())
    assert metrics["run"]["method"] == "full" and metrics["metrics"]["n"] == 80
    copy = json.loads((tmp_path / "outputs" / "quickstart" / "smoke-copy-baseline" / "metrics.json").read_text())
    assert copy["run"]["method"] == "copy" and copy["metrics"]["changed_input"] == 0
    results = (tmp_path / "outputs" / "quickstart" / "results.md").read_text()
    assert "smoke" in results and "copy" in results
    assert "`python -m qrewrite results --outputs outputs/quickstart`" in results.splitlines()[0]
    next_steps = done.stdout.split("next:", 1)[1]  # the commands that use what it just trained
    assert "rewrite --model weights/smoke " in next_steps and "serve --model weights/smoke" in next_steps


def test_quickstart_full_needs_the_raw_data_named():
    done = run_cli("quickstart", "--full", env={"QREWRITE_DISFL_QA": ""})
    assert done.returncode == 2 and "--source" in done.stderr and "QREWRITE_DISFL_QA" in done.stderr
    assert "Traceback" not in done.stderr
