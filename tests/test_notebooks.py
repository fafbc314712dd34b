"""The notebooks run top to bottom on the tiny model and the shipped sample, in a temporary directory, with
parameters injected after their ``parameters`` cell as papermill does.

The chain mirrors a user's: 01 prepares the sample into tmp/dataset; 02 shows a two-ingredient recipe like the
recommended one (the second continues from the first's weights), reusing the first's complete run that
``finetune.py`` made, training a shortened demonstration of the second (byte-for-byte the config ``finetune.py`` writes
for the command it prints) and averaging the two; 03 evaluates that soup with two decodings beside the rules and copy
baselines, then, given no weights, scores the predictions it committed.
"""

import ast
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml
from helpers import ROOT, SAMPLE, run_cli
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell

NOTEBOOKS = ROOT / "notebooks"
NAMES = ("01_prepare_data.ipynb", "02_finetune.ipynb", "03_evaluate.ipynb")


@pytest.fixture(scope="session")
def python3_kernel() -> str:
    """The ``python3`` kernel spec nbclient starts; installed for this user when it is missing."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec("python3")
    except NoSuchKernel:
        subprocess.run([sys.executable, "-m", "ipykernel", "install", "--user", "--name", "python3"],
                       check=True, capture_output=True, text=True, timeout=120)
    return "python3"


def parameters_cell(nb) -> int:
    tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"expected exactly one cell tagged 'parameters', found {len(tagged)}"
    return tagged[0]


def parameter_names(nb) -> list[str]:
    tree = ast.parse(nb.cells[parameters_cell(nb)].source)
    return [t.id for node in tree.body for t in node.targets]


def execute(name: str, cwd: Path, kernel: str, save_as: Path, **params):
    """Run notebook ``name`` with ``params`` injected after its parameters cell; the executed copy is saved to
    ``save_as`` (also on failure, for reading the traceback)."""
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    unknown = set(params) - set(parameter_names(nb))
    assert not unknown, f"{name} has no parameters {sorted(unknown)}"
    source = "# Parameters\n" + "\n".join(f"{k} = {v!r}" for k, v in params.items())
    nb.cells.insert(parameters_cell(nb) + 1, new_code_cell(source, metadata={"tags": ["injected-parameters"]}))
    try:
        NotebookClient(nb, timeout=600, kernel_name=kernel, resources={"metadata": {"path": str(cwd)}}).execute()
    finally:
        nbformat.write(nb, save_as)
    return nb


def outputs_text(nb) -> str:
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            parts.append(out.get("text", "") + str(out.get("data", {}).get("text/plain", "")))
    return "\n".join(parts)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """The temporary working directory; kernels and finetune.py use one thread (the machine may be busy training)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "1"))
        yield tmp_path_factory.mktemp("notebooks")


@pytest.fixture(scope="module")
def prepared(work, python3_kernel):
    extra = work / "extra.jsonl"
    extra.write_text("".join(json.dumps({"question": q}) + "\n" for q in
                             ("Which river runs through Paris?", "Who wrote the Iliad?", "What is a prime number?",
                              "Why is the sky blue?")))
    nb = execute(NAMES[0], work, python3_kernel, work / "01.ipynb",
                 ROOT=str(ROOT), SOURCE=str(SAMPLE), OUT_DIR=str(work / "dataset"), SEED=0,
                 TOPIC_OUT_DIR=str(work / "dataset" / "topic"), VALID_SIZE=60, EXTRA_QUESTIONS=str(extra), N_EXTRA=3)
    return work / "dataset", nb


@pytest.fixture(scope="module")
def recipe(work, tiny_model):
    """A two-ingredient recipe shaped like the recommended one: ``smoke-b`` continues from ``smoke-a``'s weights."""
    configs = work / "configs"
    configs.mkdir()
    weights = work / "weights"
    (configs / "a.yaml").write_text(f"base: {ROOT / 'configs' / 'smoke.yaml'}\nrun_name: smoke-a\n"
                                    f"model: {tiny_model}\ntypo_copies: 1\nsynthetic_copies: 1\n")
    (configs / "b.yaml").write_text(f"base: a.yaml\nrun_name: smoke-b\nmodel: {weights / 'smoke-a' / 'model'}\n"
                                    "seed: 1\n")
    recipe = configs / "soup.yaml"
    recipe.write_text(f"run_name: smoke-soup\noutput_root: {weights}\nmodels:\n  {weights / 'smoke-a'}: 1\n"
                      f"  {weights / 'smoke-b'}: 1\n")
    return recipe


@pytest.fixture(scope="module")
def overrides(work, prepared):
    dataset, _ = prepared
    return {"output_root": str(work / "weights"), "train_file": str(dataset / "train.json"),
            "valid_file": str(dataset / "valid.json")}


@pytest.fixture(scope="module")
def script_run(work, recipe, overrides):
    """The first ingredient's full-length run, made by ``finetune.py`` with the notebook's OVERRIDES as options."""
    args = ["finetune.py", "--config", recipe.parent / "a.yaml"]
    for key, value in overrides.items():
        args += ["--" + key.replace("_", "-"), value]
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr[-3000:]
    return work / "weights" / "smoke-a"


@pytest.fixture(scope="module")
def finetuned(work, recipe, overrides, script_run, python3_kernel):
    before = (script_run / "run.json").stat().st_mtime_ns
    nb = execute(NAMES[1], work, python3_kernel, work / "02.ipynb",
                 ROOT=str(ROOT), RECIPE=str(recipe), CONFIGS_DIR=str(recipe.parent), OVERRIDES=overrides,
                 DEMO_STEPS=2, DEMO_OVERRIDES={"eval_sample": 2, "max_eval_examples": 8},
                 OUTPUTS_DIR=str(work / "outputs"), N_SHOW=2, N_REWRITE=2)
    assert (script_run / "run.json").stat().st_mtime_ns == before, "the complete run of smoke-a was not reused"
    return work / "weights", nb


@pytest.fixture(scope="module")
def evaluated(work, prepared, finetuned, python3_kernel):
    """03 runs from notebooks/ without ROOT, as Jupyter opens it: the repository is found by walking up."""
    dataset, _ = prepared
    weights, _ = finetuned
    topic = dataset / "topic"
    params = dict(MODEL_NAME="notebook-smoke-soup", WEIGHTS_DIR=str(weights),
                  DECODINGS={"smoke-soup": {}, "smoke-soup-copy1": {"copy_bonus": 1.0}},
                  SPLITS={"topic-disjoint valid": [str(topic / "valid.json"), "topic"],
                          "topic-disjoint valid (typo)": [str(topic / "valid_typo.json"), "topic/typo"],
                          "disfl-qa dev": [str(topic / "valid_dev.json"), ""]},
                  CLEAN_SPLIT=["topic-disjoint valid (clean)", str(topic / "valid_clean.json"), "topic/clean"],
                  OUTPUTS_DIR=str(work / "outputs"), LIMIT=12, BATCH_SIZE=16, MAX_NEW_TOKENS=8, N_BEST=3)
    nb = execute(NAMES[2], NOTEBOOKS, python3_kernel, work / "03.ipynb", **params)
    return params, nb


# ---- structure ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_notebook_structure(name):
    """A markdown title first, one papermill ``parameters`` cell of plain literal assignments, a ROOT parameter."""
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    cell = nb.cells[parameters_cell(nb)]
    assert cell.cell_type == "code"
    for node in ast.parse(cell.source).body:
        assert isinstance(node, ast.Assign), f"{name}: parameters cell holds {ast.dump(node)[:60]}"
        ast.literal_eval(node.value)
    assert "ROOT" in parameter_names(nb)
    assert sum(c.cell_type == "markdown" for c in nb.cells) >= 4


# ---- 01 -----------------------------------------------------------------------------------------------------

def test_prepare_notebook_writes_the_splits_prepare_data_writes(prepared, tmp_path):
    from qrewrite.data.prepare import prepare_data

    dataset, nb = prepared
    for name in ("train.json", "valid.json", "valid_typo.json", "valid_clean.json", "prepare_report.json"):
        assert (dataset / name).is_file(), name
    prepare_data(SAMPLE, tmp_path, seed=0)
    for name in ("train.json", "valid.json", "valid_typo.json", "valid_clean.json"):
        assert (dataset / name).read_bytes() == (tmp_path / name).read_bytes(), name
    topic = dataset / "topic"
    prepare_data(SAMPLE, tmp_path / "topic", seed=0, valid_split="topic", valid_size=60)
    for name in ("train.json", "valid.json", "valid_dev.json", "valid_typo.json", "valid_dev_typo.json",
                 "valid_clean.json"):
        assert (topic / name).read_bytes() == (tmp_path / "topic" / name).read_bytes(), name
    text = outputs_text(nb)
    assert "topics held out" in text and "capitalised words seen in train" in text
    shares = json.loads((topic / "prepare_report.json").read_text())["split_off"]["seen_name_share"]
    assert f"valid: {shares['valid']:.0%} of the capitalised words" in text  # printed from the report, not typed
    assert "train: 300 kept of 300 read" in text
    assert "correction" in text and "image/png" in json.dumps([c.get("outputs") for c in nb.cells])
    clean = json.loads((topic / "valid_clean.json").read_text())
    assert f"valid_clean.json: {len(clean)} questions, input equal to target in {len(clean)}" in text
    assert "3 pairs made" in text and "4 questions in" in text


# ---- 02 -----------------------------------------------------------------------------------------------------

def test_finetune_notebook_reuses_the_full_run_demonstrates_the_other_and_averages(finetuned, script_run):
    weights, nb = finetuned
    text = outputs_text(nb)
    assert "smoke-a: the complete full-length run" in text and "reused" in text
    assert "SHORTENED DEMONSTRATION" in text
    demo = json.loads((weights / "notebook-smoke-b" / "run.json").read_text())
    assert demo["status"] == "complete" and demo["steps"] == 2
    assert demo["model"] == str(script_run / "model")  # the second cycle starts from the first's weights
    cfg = yaml.safe_load((weights / "notebook-smoke-b" / "config.yaml").read_text())
    assert cfg["max_steps"] == 2 and cfg["seed"] == 1 and cfg["eval_sample"] == 2
    soup = json.loads((weights / "notebook-smoke-soup" / "run.json").read_text())
    assert soup["status"] == "complete" and [p["run"] for p in soup["average"]] == ["smoke-a", "notebook-smoke-b"]
    assert (weights / "notebook-smoke-soup" / "model" / "model.safetensors").is_file()
    assert not (weights / "smoke-b").exists() and not (weights / "smoke-soup").exists()
    assert "label -100" in text and "<|im_end|>" in text  # the supervised part ends with the end-of-turn token
    assert "typo'd copy" in text and "synthetic disfluent copy" in text  # what the recipe trains on
    assert f"steps from {script_run / 'model'}" in text  # figures printed from run.json


def test_finetune_notebook_and_script_write_the_same_config(finetuned):
    """The demonstration's printed ``same as:`` command, run as a script, writes the same config.yaml."""
    weights, nb = finetuned
    command = next(line.removeprefix("same as: ") for line in outputs_text(nb).splitlines()
                   if line.startswith("same as: python finetune.py"))
    run_dir, aside = weights / "notebook-smoke-b", weights.parent / "notebook-smoke-b-aside"
    shutil.move(run_dir, aside)
    try:
        result = run_cli(*shlex.split(command)[1:])
        assert result.returncode == 0, result.stderr[-3000:]
        assert (run_dir / "config.yaml").read_bytes() == (aside / "config.yaml").read_bytes()
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
        shutil.move(aside, run_dir)


def test_completed_run_is_reused_only_for_the_same_config(script_run):
    from qrewrite.config import load_config
    from qrewrite.eval.notebook import completed_run

    cfg = load_config(script_run / "config.yaml")
    assert completed_run(cfg) == script_run
    cfg.learning_rate *= 2
    assert completed_run(cfg) is None


def test_a_second_cycle_continues_from_the_first_ones_demonstration(recipe, overrides):
    """With no run of either ingredient used, the second's demonstration starts from the first's demonstration."""
    from qrewrite.config import load_average_config
    from qrewrite.eval.notebook import plan_ingredients

    plans = plan_ingredients(load_average_config(recipe), recipe.parent, overrides, {"max_steps": 2}, "demo-",
                             reuse=False)
    assert [p["name"] for p in plans] == ["smoke-a", "smoke-b"] and all(p["run_dir"] is None for p in plans)
    assert plans[0]["demo"].run_name == "demo-smoke-a" and plans[0]["demo"].max_steps == 2
    assert Path(plans[1]["demo"].model) == Path(overrides["output_root"]) / "demo-smoke-a" / "model"
    assert plans[1]["config"].model == str(Path(overrides["output_root"]) / "smoke-a" / "model")


def test_copy_kinds_and_decodings_are_read_back():
    from qrewrite.eval.notebook import copy_kind, decoding_of_command

    assert [copy_kind(i) for i in ("5a1", "5a1#typo2", "5a1#synth1", "5a1#names1", "extra-ab#clean")] == \
        ["original", "typo'd copy", "synthetic disfluent copy", "name-swapped copy", "extra question"]
    assert decoding_of_command("python -m qrewrite evaluate --model m --data d --out o") == {}
    assert decoding_of_command("python -m qrewrite evaluate --model m --copy-bonus 1 --num-beams 4") == \
        {"num_beams": 4, "copy_bonus": 1.0}


# ---- 03 -----------------------------------------------------------------------------------------------------

def test_evaluate_notebook_writes_evaluations_and_results(evaluated, finetuned):
    params, nb = evaluated
    weights, _ = finetuned
    out = Path(params["OUTPUTS_DIR"])
    model = str(weights / "notebook-smoke-soup")
    for system, decoding in (("smoke-soup", "greedy"), ("smoke-soup-copy1", "greedy, copy bonus 1.0")):
        for sub in ("topic", "topic/typo", "", "topic/clean"):
            metrics = json.loads((out / system / sub / "metrics.json").read_text())
            assert metrics["run"]["model_path"] == model and metrics["run"]["n_examples"] == 12
            assert metrics["eval"]["decoding"] == decoding and len(metrics["metrics"]["rougeL_ci"]) == 2
            assert len((out / system / sub / "predictions.jsonl").read_text().splitlines()) == 12
    for baseline in ("rules-baseline", "copy-baseline"):
        for sub in ("topic", "topic/typo", "", "topic/clean"):
            assert json.loads((out / baseline / sub / "metrics.json").read_text())["run"]["model_path"] == \
                baseline.split("-")[0]
    results = (out / "results.md").read_text()
    assert "| smoke-soup |" in results and "| rules-baseline |" in results
    text = outputs_text(nb)
    assert "is here: it rewrites every question" in text
    assert "smoke-soup-copy1 minus smoke-soup" in text  # the paired difference of the decodings
    assert "correction" in text and "kept unchanged (EM)" in text


def test_evaluate_notebook_scores_the_committed_predictions_without_the_weights(evaluated, python3_kernel, work):
    params, _ = evaluated
    out = Path(params["OUTPUTS_DIR"])
    before = {p: p.stat().st_mtime_ns for p in out.rglob("metrics.json")}
    nb = execute(NAMES[2], NOTEBOOKS, python3_kernel, work / "03-committed.ipynb",
                 **{**params, "WEIGHTS_DIR": str(work / "no-weights")})
    text = outputs_text(nb)
    assert "is NOT on this machine: the committed predictions are scored" in text
    assert text.count("the same as its committed metrics.json") == 2 * 3 + 2  # 2 decodings x 3 splits + clean
    assert "NOT the committed" not in text and "not evaluated" not in text
    assert {p: p.stat().st_mtime_ns for p in out.rglob("metrics.json")} == before  # nothing rewritten


def test_evaluation_is_reused_for_the_same_model_and_data(evaluated, finetuned):
    from qrewrite.eval.evaluate import evaluate_or_reuse, reusable_evaluation

    params, _ = evaluated
    weights, _ = finetuned
    model = str(weights / "notebook-smoke-soup")
    data, sub = params["SPLITS"]["topic-disjoint valid"]
    out = Path(params["OUTPUTS_DIR"]) / "smoke-soup" / sub
    before = (out / "metrics.json").stat().st_mtime_ns
    result, rows, reused = evaluate_or_reuse(model, data, out, limit=12, max_new_tokens=8)
    assert reused and len(rows) == 12 and result["run"]["n_examples"] == 12
    assert (out / "metrics.json").stat().st_mtime_ns == before
    # Another size, generation budget, decoding, data file or model is not the same evaluation.
    assert "12" in reusable_evaluation(model, data, out, limit=0, max_new_tokens=8)
    assert reusable_evaluation(model, data, out, limit=12, max_new_tokens=64) is not None
    assert "copy bonus" not in str(reusable_evaluation(model, data, out, limit=12, max_new_tokens=8))
    typo_data = params["SPLITS"]["topic-disjoint valid (typo)"][0]
    assert "changed" in reusable_evaluation(model, typo_data, out, limit=12, max_new_tokens=8)
    assert reusable_evaluation("copy", data, out, limit=12, max_new_tokens=8) is not None
