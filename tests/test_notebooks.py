"""The notebooks run top to bottom on the tiny model and the shipped sample, in a temporary directory, with
parameters injected after their ``parameters`` cell as papermill does; 02 writes byte-for-byte the same
``config.yaml`` as ``finetune.py`` given the same arguments.

The chain mirrors a user's: 01 prepares the sample into tmp/dataset, 02 trains on it, 03 evaluates that run.
"""

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml
from conftest import ROOT, SAMPLE, run_cli
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
    nb = execute(NAMES[0], work, python3_kernel, work / "01.ipynb",
                 ROOT=str(ROOT), SOURCE=str(SAMPLE), OUT_DIR=str(work / "dataset"), SEED=0,
                 TOPIC_OUT_DIR=str(work / "dataset" / "topic"), VALID_SIZE=60)
    return work / "dataset", nb


@pytest.fixture(scope="module")
def train_overrides(work, prepared, tiny_model):
    dataset, _ = prepared
    return {"model": str(tiny_model), "output_root": str(work / "weights"),
            "train_file": str(dataset / "train.json"), "valid_file": str(dataset / "valid.json")}


@pytest.fixture(scope="module")
def script_run(work, train_overrides):
    """``finetune.py`` with the arguments the notebook gets, into the same output root; its run directory is
    then moved aside so the notebook's run can have exactly the same resolved config (run_name included)."""
    args = ["finetune.py", "--config", "configs/smoke.yaml"]
    for key, value in train_overrides.items():
        args += ["--" + key.replace("_", "-"), value]
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr[-3000:]
    moved = work / "script-run"
    shutil.move(work / "weights" / "smoke", moved)
    return moved


@pytest.fixture(scope="module")
def finetuned(work, train_overrides, script_run, python3_kernel):
    nb = execute(NAMES[1], work, python3_kernel, work / "02.ipynb",
                 ROOT=str(ROOT), CONFIG="configs/smoke.yaml", OVERRIDES=train_overrides, RESUME=False, N_REWRITE=3)
    return work / "weights" / "smoke", nb


@pytest.fixture(scope="module")
def evaluated(work, prepared, finetuned, python3_kernel):
    """03 runs from notebooks/ without ROOT, as Jupyter opens it: the repository is found by walking up."""
    dataset, _ = prepared
    run_dir, _ = finetuned
    params = dict(MODEL=str(run_dir), DATA=str(dataset / "valid.json"), TYPO_DATA=str(dataset / "valid_typo.json"),
                  TRAIN_DATA="", OUT_DIR=str(work / "outputs" / "smoke"),
                  BASELINE_DIR=str(work / "outputs" / "copy-baseline"), OUTPUTS_DIR=str(work / "outputs"),
                  DATA_LABEL="sample valid", LIMIT=12, BATCH_SIZE=16, MAX_NEW_TOKENS=16, WRITE_RESULTS=True)
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
    for name in ("train.json", "valid.json", "valid_typo.json", "prepare_report.json"):
        assert (dataset / name).is_file(), name
    prepare_data(SAMPLE, tmp_path, seed=0)
    for name in ("train.json", "valid.json", "valid_typo.json"):
        assert (dataset / name).read_bytes() == (tmp_path / name).read_bytes(), name
    topic = dataset / "topic"
    prepare_data(SAMPLE, tmp_path / "topic", seed=0, valid_split="topic", valid_size=60)
    for name in ("train.json", "valid.json", "valid_dev.json", "valid_typo.json", "valid_dev_typo.json"):
        assert (topic / name).read_bytes() == (tmp_path / "topic" / name).read_bytes(), name
    text = outputs_text(nb)
    assert "topics held out" in text and "capitalised words seen in train" in text
    assert "train: 300 kept of 300 read" in text
    assert "correction" in text and "image/png" in json.dumps([c.get("outputs") for c in nb.cells])


# ---- 02 -----------------------------------------------------------------------------------------------------

def test_finetune_notebook_writes_a_complete_run(finetuned):
    run_dir, nb = finetuned
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "complete" and info["steps"] == 6
    assert info["command"].startswith("python finetune.py --config configs/smoke.yaml --model ")
    assert (run_dir / "config.yaml").is_file() and (run_dir / "model" / "config.json").is_file()
    assert json.loads((run_dir / "trainer_log.json").read_text())
    text = outputs_text(nb)
    assert "label -100" in text and "<|im_end|>" in text  # the supervised part ends with the end-of-turn token


def test_finetune_notebook_and_script_write_the_same_config(finetuned, script_run):
    run_dir, _ = finetuned
    nb_config = (run_dir / "config.yaml").read_bytes()
    assert nb_config == (script_run / "config.yaml").read_bytes()
    cfg = yaml.safe_load(nb_config)
    assert cfg["run_name"] == "smoke" and cfg["max_steps"] == 6 and Path(cfg["output_root"]) == run_dir.parent


def test_completed_run_is_reused_only_for_the_same_config(finetuned):
    from qrewrite.config import load_config
    from qrewrite.eval.notebook import completed_run

    run_dir, _ = finetuned
    cfg = load_config(run_dir / "config.yaml")
    assert completed_run(cfg) == run_dir
    cfg.learning_rate *= 2
    assert completed_run(cfg) is None


# ---- 03 -----------------------------------------------------------------------------------------------------

def test_evaluate_notebook_writes_evaluations_and_results(evaluated, finetuned):
    params, nb = evaluated
    run_dir, _ = finetuned
    out, base = Path(params["OUT_DIR"]), Path(params["BASELINE_DIR"])
    for directory, model in ((out, str(run_dir)), (out / "typo", str(run_dir)), (base, "copy"),
                             (base / "typo", "copy")):
        metrics = json.loads((directory / "metrics.json").read_text())
        assert metrics["run"]["model_path"] == model and metrics["run"]["n_examples"] == 12
        rows = [json.loads(line) for line in (directory / "predictions.jsonl").read_text().splitlines()]
        assert len(rows) == 12
    assert json.loads((out / "metrics.json").read_text())["run"]["data"] == "sample valid"
    assert json.loads((out / "typo" / "metrics.json").read_text())["run"]["data"] == "sample valid (typo)"
    assert (out / "config.yaml").read_bytes() == (run_dir / "config.yaml").read_bytes()
    results = (Path(params["OUTPUTS_DIR"]) / "results.md").read_text()
    assert "| smoke |" in results and "| copy-baseline |" in results
    text = outputs_text(nb)
    assert "correction" in text  # the per-kind breakdown


def test_evaluation_is_reused_for_the_same_model_and_data(evaluated, finetuned):
    from qrewrite.eval.evaluate import evaluate_or_reuse, reusable_evaluation

    params, _ = evaluated
    run_dir, _ = finetuned
    out = Path(params["OUT_DIR"])
    before = (out / "metrics.json").stat().st_mtime_ns
    result, rows, reused = evaluate_or_reuse(str(run_dir), params["DATA"], out, limit=12, max_new_tokens=16)
    assert reused and len(rows) == 12 and result["run"]["n_examples"] == 12
    assert (out / "metrics.json").stat().st_mtime_ns == before
    # Another size, generation budget, data file or model is not the same evaluation.
    assert "12" in reusable_evaluation(str(run_dir), params["DATA"], out, limit=0, max_new_tokens=16)
    assert reusable_evaluation(str(run_dir), params["DATA"], out, limit=12, max_new_tokens=64) is not None
    assert "changed" in reusable_evaluation(str(run_dir), params["TYPO_DATA"], out, limit=12, max_new_tokens=16)
    assert reusable_evaluation("copy", params["DATA"], out, limit=12, max_new_tokens=16) is not None
