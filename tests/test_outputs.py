"""The committed outputs/ are what the project's commands produce: results.md regenerates byte for byte from
the committed metrics.json files, each of which names its command, commit, model and data; the README's
results table is the regenerated one."""

import json
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT
from qrewrite.results import collect_runs, results_table

OUTPUTS = ROOT / "outputs"


def _tracked() -> set[str] | None:
    """Files under outputs/ that git tracks: what was committed, not what a local run (bash run.sh) added."""
    done = subprocess.run(["git", "ls-files", "outputs"], cwd=ROOT, capture_output=True, text=True)
    return set(done.stdout.split()) if done.returncode == 0 and done.stdout else None


TRACKED = _tracked()
METRICS = sorted(p for p in OUTPUTS.rglob("metrics.json")
                 if TRACKED is None or p.relative_to(ROOT).as_posix() in TRACKED)


def committed_runs():
    return [r for r in collect_runs(OUTPUTS)
            if TRACKED is None or f"outputs/{r['path']}" in TRACKED]


def test_outputs_hold_real_runs():
    assert METRICS, "outputs/ should hold the committed evaluations (bash scripts/reproduce_cpu.sh)"


def test_results_md_is_what_the_results_command_regenerates():
    committed = (OUTPUTS / "results.md").read_text(encoding="utf-8")
    assert results_table(committed_runs()) == committed


@pytest.mark.parametrize("path", METRICS, ids=lambda p: str(p.relative_to(OUTPUTS)))
def test_each_metrics_file_names_its_provenance(path: Path):
    run = json.loads(path.read_text())["run"]
    for key in ("command", "git_commit", "model", "data_fingerprint", "data_path", "created"):
        assert run.get(key), f"{path}: run.{key} missing"
    assert "qrewrite" in run["command"] and run["git_commit"] != "unknown"
    assert (path.parent / "predictions.jsonl").exists() and (path.parent / "valid_io.json").exists()
    n = json.loads(path.read_text())["metrics"]["n"]
    assert len(json.loads((path.parent / "valid_io.json").read_text())) == n


def test_readme_shows_the_regenerated_table():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = [line for line in (OUTPUTS / "results.md").read_text(encoding="utf-8").splitlines()
             if line.startswith("|")]
    assert table and all(line in readme for line in table)
