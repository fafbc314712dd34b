"""The committed outputs/ are what the project's commands produce: results.md, ablations.md and headline.md
regenerate byte for byte from the committed metrics.json files, each of which names its command, commit, model and
data; the README's headline table is the regenerated one."""

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from helpers import ROOT

from qrewrite.eval.ablations import SPEC_NAME, TABLE_NAME, ablation_table, load_spec
from qrewrite.eval.collect import collect_runs
from qrewrite.eval.headline import SCORES_NAME, headline_table, load_blind_scores, load_headline_spec
from qrewrite.eval.headline import SPEC_NAME as HEADLINE_SPEC
from qrewrite.eval.headline import TABLE_NAME as HEADLINE_TABLE
from qrewrite.eval.results import results_table

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
    assert results_table(committed_runs(), load_spec(OUTPUTS / SPEC_NAME)) == committed


@pytest.mark.parametrize("path", METRICS, ids=lambda p: str(p.relative_to(OUTPUTS)))
def test_each_metrics_file_names_its_provenance(path: Path):
    run = json.loads(path.read_text())["run"]
    for key in ("command", "git_commit", "model", "data_fingerprint", "data_path", "created"):
        assert run.get(key), f"{path}: run.{key} missing"
    assert "qrewrite" in run["command"] and run["git_commit"] != "unknown"
    for key in ("git_commit", "training_git_commit"):  # commit first, then run: the code that ran is the commit
        assert not str(run.get(key, "")).endswith("+dirty"), f"{path}: run.{key} is {run[key]}: re-run it committed"
    metrics = json.loads(path.read_text())["metrics"]
    rows = (path.parent / "predictions.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(rows) == metrics["n"]
    low, high = metrics["rougeL_ci"]  # every committed evaluation carries its intervals
    assert low <= metrics["rougeL"] <= high and metrics["exact_match_ci"][0] <= metrics["exact_match"]


def test_readme_shows_the_regenerated_headline_table():
    """The README's marked copy of headline.md is what `qrewrite results` writes there; the long tables are
    linked, not copied."""
    from qrewrite.eval.readme_tables import begin_marker, readme_with_tables
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert begin_marker(HEADLINE_TABLE) in readme and "| model | params |" in readme
    assert begin_marker("results.md") not in readme and "outputs/results.md" in readme
    assert readme_with_tables(readme, OUTPUTS, "README.md") == readme, \
        "README tables are stale: run python -m qrewrite results"


def test_the_readmes_example_rewrites_are_the_recommended_models():
    """The README opens with rewrites by the recommended model: each is its prediction for that input, exactly."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("```", 2)[1]
    pairs = re.findall(r"^(\S.*?)\s*\n?\s*-> (.*)$", block, flags=re.M)
    assert len(pairs) == 3, pairs
    first = load_headline_spec(OUTPUTS / HEADLINE_SPEC)["rows"][0]["run"]
    predicted = {}
    for path in (OUTPUTS / first).rglob("predictions.jsonl"):
        predicted.update((row["input"], row["prediction"]) for row in map(json.loads, path.open()))
    for question, rewrite in pairs:
        assert predicted.get(question.strip()) == rewrite.strip(), question


def test_headline_md_is_what_the_results_command_regenerates():
    committed = (OUTPUTS / HEADLINE_TABLE).read_text(encoding="utf-8")
    assert headline_table(load_headline_spec(OUTPUTS / HEADLINE_SPEC), load_blind_scores(OUTPUTS / SCORES_NAME),
                          OUTPUTS) == committed


def test_the_headline_leads_with_the_recommended_model_and_its_ingredients():
    """The headline's first row is the recommended model of ablations.yaml (with a decoding of its own, as
    <recommended>-<decoding>), evaluated on every split the headline names; its training time sums exactly the runs
    its soup recipe averages."""
    spec, recommended = load_headline_spec(OUTPUTS / HEADLINE_SPEC), load_spec(OUTPUTS / SPEC_NAME)["recommended"]
    first = spec["rows"][0]["run"]
    assert first == recommended or first.startswith(f"{recommended}-")
    evaluated = {r["run"]["data"] for r in committed_runs() if r["run"]["name"] == first}
    assert spec["splits"]["held-out topics"] in evaluated
    recipe = yaml.safe_load((ROOT / "configs" / "average" / f"{recommended}.yaml").read_text())
    assert sorted(Path(m).name for m in recipe["models"]) == sorted(spec["training"]["runs"])


def test_each_blind_score_belongs_to_committed_predictions_of_every_test_id():
    """blind_scores.yaml scores predictions that are in the repository, one per test id (the scores cannot be
    checked here: the references are not; the predictions they were computed from can)."""
    scores = load_blind_scores(OUTPUTS / SCORES_NAME)
    assert scores["runs"]
    for run, splits in scores["runs"].items():
        for split in splits:
            path = OUTPUTS / run / "blind" / f"{split}.jsonl"
            assert TRACKED is None or path.relative_to(ROOT).as_posix() in TRACKED, f"{path}: not committed"
            assert sum(1 for _ in path.open()) == scores["n"], path


def test_ablations_md_is_what_the_results_command_regenerates():
    committed = (OUTPUTS / TABLE_NAME).read_text(encoding="utf-8")
    assert ablation_table(load_spec(OUTPUTS / SPEC_NAME), OUTPUTS) == committed


# An absolute path: a slash that starts a path (not after a word, a dot, a colon or another slash, so not
# "and/or", "3/4" or a URL) followed by at least one directory. Installed library code (a Python warning's
# ".../site-packages/transformers/...py:123") names no file of this project and is allowed in logs.
ABSOLUTE_PATH = re.compile(r"(?<![\w.:/~-])/(?:[\w.+-]+/)+[\w.+-]*")
LIBRARY = ("/site-packages/", "/lib/python")
TEXT_SUFFIXES = {".json", ".jsonl", ".yaml", ".md", ".log", ".txt", ".csv"}


def _absolute_paths(text: str) -> list[str]:
    return [m.group(0) for m in ABSOLUTE_PATH.finditer(text) if not any(lib in m.group(0) for lib in LIBRARY)]


def test_the_absolute_path_check_catches_machine_paths():
    assert _absolute_paths('"command": "python /work/main/qrewrite/__main__.py"') == ["/work/main/qrewrite/__main__.py"]
    assert _absolute_paths('"model_source": "/root/models/x"') == ["/root/models/x"]
    assert not _absolute_paths("see https://huggingface.co/HuggingFaceTB/x and/or 3/4 of weights/base/x")
    assert not _absolute_paths("/root/.pyenv/lib/python3.11/site-packages/transformers/a.py:1: FutureWarning")


def test_committed_outputs_carry_no_absolute_paths():
    files = sorted(p for p in OUTPUTS.rglob("*") if p.is_file() and p.suffix in TEXT_SUFFIXES
                   and (TRACKED is None or p.relative_to(ROOT).as_posix() in TRACKED))
    assert files
    found = {p.relative_to(ROOT).as_posix(): paths[:3] for p in files
             if (paths := _absolute_paths(p.read_text(encoding="utf-8", errors="replace")))}
    assert not found, f"absolute paths in committed outputs (re-run them from the repository root): {found}"


def test_committed_notebooks_carry_no_absolute_paths():
    """What the executed notebooks show (their outputs) is read on other machines: no path of this one."""
    found = {}
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        shown = "".join("".join(out.get("text", "")) + "".join(
                            "".join(v) for k, v in out.get("data", {}).items() if k.startswith("text/"))
                        for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]
                        for out in cell.get("outputs", []))
        if paths := _absolute_paths(shown):
            found[path.name] = paths[:3]
    assert not found, f"absolute paths in executed notebooks (re-execute them: scripts/execute_notebooks.py): {found}"


def test_the_recommended_runs_and_only_they_have_blind_predictions_for_every_test_input():
    """The blind test's predictions come from the recommended model (ablations.yaml), greedy and, where the README's
    headline recommends another decoding (its first row, headline.yaml), decoded that way too (an evaluation named
    <recommended>-<decoding>), one line per input id, {"id", "prediction"} only; the models recommended before it
    keep theirs (they were scored from them); no other run's predictions could be taken for them."""
    spec = load_spec(OUTPUTS / SPEC_NAME)
    recommended = [spec["recommended"], *spec.get("previously_recommended", [])]
    blind = sorted(p.parent.name for p in OUTPUTS.glob("*/blind"))
    assert spec["recommended"] in blind
    assert load_headline_spec(OUTPUTS / HEADLINE_SPEC)["rows"][0]["run"] in blind
    assert all(any(name == r or name.startswith(f"{r}-") for r in recommended) for name in blind), blind
    for name in blind:
        _check_blind_predictions(OUTPUTS / name / "blind")


def _check_blind_predictions(directory: Path):
    blind_inputs = ROOT.parent / "shared" / "data" / "blind"
    ids = {}
    for split in ("test", "test_typo"):
        rows = [json.loads(line) for line in (directory / f"{split}.jsonl").open()]
        assert all(set(row) == {"id", "prediction"} and row["prediction"].strip() for row in rows), split
        ids[split] = [row["id"] for row in rows]
        assert len(set(ids[split])) == len(ids[split]) > 1000, split
        if blind_inputs.is_dir():  # the inputs live beside the repository, not in it
            wanted = [json.loads(line)["id"] for line in (blind_inputs / f"{split}_inputs.jsonl").open()]
            assert ids[split] == wanted, split
    assert set(ids["test"]) == set(ids["test_typo"])
