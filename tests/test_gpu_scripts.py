"""The GPU path's scripts on a CPU: scripts/reproduce_gpu.sh --smoke (the recommended recipe for Qwen2-0.5B end to
end on a tiny random Qwen2), scripts/gpu_bench.sh --dry-run, and the pieces they stand on. Never timings."""

import json
import os
import subprocess
import sys

import pytest
from helpers import ROOT, SAMPLE, read_jsonl

sys.path.insert(0, str(ROOT))

RUNS = ("qwen2-topic-full-synth", "qwen2-topic-full-typo-synth", "qwen2-topic-full-typo-synth-cycle2")
SOUP = "qwen2-topic-soup-synth3"


def _raw_disfl_qa(directory):
    """The sample split as raw Disfl-QA files ({id: {original, disfluent}}): what `prepare` reads."""
    directory.mkdir()
    for split, name in (("train", "train"), ("valid", "dev")):
        records = json.loads((SAMPLE / f"{split}.json").read_text())
        (directory / f"{name}.json").write_text(json.dumps(
            {r["id"]: {"original": r["target"], "disfluent": r["input"]} for r in records}))
    return directory


def _run(script, *args, env=None, timeout=600):
    return subprocess.run(["bash", str(ROOT / "scripts" / script), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})


def test_reproduce_gpu_smoke_runs_the_recommended_recipe_end_to_end(tmp_path):
    raw, blind, work = _raw_disfl_qa(tmp_path / "raw"), tmp_path / "blind", tmp_path / "work"
    blind.mkdir()
    questions = json.loads((SAMPLE / "valid.json").read_text())[:5]
    inputs = [{"id": f"b{i}", "input": r["input"]} for i, r in enumerate(questions)]
    (blind / "test_inputs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in inputs))
    r = _run("reproduce_gpu.sh", "--smoke", raw, env={"SMOKE_DIR": str(work), "BLIND": str(blind)})
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    weights, outputs = work / "weights", work / "outputs"
    configs = {run: json.loads((weights / run / "run.json").read_text()) for run in RUNS}
    assert all(info["status"] == "complete" for info in configs.values())
    # the third ingredient continues the second's kept model with seed 1, as the SmolLM2 recipe does
    assert configs[RUNS[2]]["model"] == f"weights/{RUNS[1]}/model" and configs[RUNS[2]]["seed"] == 1
    assert configs[RUNS[0]]["model"] == configs[RUNS[1]]["model"] == "tiny-qwen2"
    # the extra training copies: synthetic in all three, two typo'd copies in the last two (7 / 3 x the clean count)
    n_clean = configs[RUNS[0]]["n_train"] // 2
    assert [configs[run]["n_train"] for run in RUNS] == [2 * n_clean, 4 * n_clean, 4 * n_clean]
    soup = json.loads((weights / SOUP / "run.json").read_text())
    assert soup["status"] == "complete"
    assert [(p["run"], round(p["weight"], 4)) for p in soup["average"]] == [(run, 0.3333) for run in RUNS]
    # the soup judged on both validation splits: the held-out topics and Disfl-QA dev
    for directory, data in ((outputs / SOUP / "topic", "valid.json"), (outputs / SOUP, "valid_dev.json")):
        metrics = json.loads((directory / "metrics.json").read_text())
        assert metrics["run"]["data_path"].endswith(f"dataset/topic/{data}") and metrics["metrics"]["n"] == 8
    blind_out = read_jsonl(outputs / SOUP / "blind" / "test.jsonl")
    assert [row["id"] for row in blind_out] == [row["id"] for row in inputs]
    assert all(isinstance(row["prediction"], str) for row in blind_out)
    assert not any((ROOT / "weights" / run).exists() for run in (*RUNS, SOUP))  # the repository is untouched


def test_gpu_bench_dry_run_measures_every_setting_from_the_qwen2_configs(tmp_path):
    from qrewrite.config import load_config
    r = _run("gpu_bench.sh", "--dry-run", "--out", tmp_path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    result = json.loads((tmp_path / "train_gpu_dry_run.json").read_text())
    md = (tmp_path / "train_gpu_dry_run.md").read_text()
    got = {m["measurement"]: m for m in result["measurements"]}
    assert list(got) == ["full", "full-no-gc", "lora", "qlora", "epoch"]
    assert not [m for m in got.values() if "error" in m]
    cfg = {method: load_config(ROOT / f"configs/qwen2-0.5b-{method}.yaml") for method in ("full", "lora", "qlora")}
    for name, method in (("full", "full"), ("full-no-gc", "full"), ("lora", "lora"), ("qlora", "qlora")):
        m = got[name]
        assert m["method"] == method and m["optim"] == cfg[method].optim
        assert m["gradient_checkpointing"] == (cfg[method].gradient_checkpointing and name != "full-no-gc")
        assert m["examples_per_s"] > 0 and m["tokens_per_s"] > m["supervised_tokens_per_s"] > 0
        assert m["trainable_parameters"] < m["parameters"] if method != "full" else \
            m["trainable_parameters"] == m["parameters"]
        assert f"| {name} |" in md
    epoch = got["epoch"]
    assert epoch["steps"] == -(-epoch["examples"] // result["setup"]["batch_size"]) and epoch["seconds"] > 0
    assert epoch["optim"] == cfg["full"].optim and epoch["precision"] == cfg["full"].precision
    assert result["device_name"] and "plumbing only, no claim" in md


@pytest.mark.parametrize("name,peak", [("NVIDIA H100 80GB HBM3", 989), ("NVIDIA H100 PCIe", 756),
                                       ("NVIDIA H200", 989), ("NVIDIA A100-SXM4-80GB", 312), ("NVIDIA L4", 121),
                                       ("NVIDIA L40S", 362), ("Tesla T4", None)])
def test_mfu_uses_the_cards_dense_bf16_peak(name, peak):
    from benchmarks.bench_gpu import peak_tflops
    assert peak_tflops(name) == peak


def test_synthetic_batches_have_disfl_qa_token_lengths(tmp_path):
    from benchmarks.bench_gpu import LENGTHS, synthetic_split, word_level_tokenizer
    from qrewrite.models import load_tokenizer
    from qrewrite.prompt import PromptSpec, encode_example
    pairs = json.loads(LENGTHS.read_text())["pairs"]
    records = json.loads(synthetic_split(tmp_path / "train.json").read_text())
    tok = load_tokenizer(str(word_level_tokenizer(tmp_path / "tok")))
    assert len(records) == len(pairs) == 7182
    for record, (n_in, n_out) in list(zip(records, pairs))[:50]:
        assert len(tok(record["input"], add_special_tokens=False)["input_ids"]) == n_in
        assert len(tok(record["target"], add_special_tokens=False)["input_ids"]) == n_out
        row = encode_example(tok, record["input"], record["target"], 160, PromptSpec("minimal"))
        assert sum(label != -100 for label in row["labels"]) == n_out + 1  # the answer and its end-of-turn
        assert tok.unk_token_id not in row["input_ids"]


def test_paired_bootstrap_interval_is_seeded_and_brackets_the_mean():
    import numpy as np

    from benchmarks.precision_report import paired_bootstrap
    rng = np.random.default_rng(1)
    b = rng.random(400)
    a = b + 0.05 + rng.normal(0, 0.02, 400)
    d = paired_bootstrap(a, b, 1000, seed=0)
    assert d == paired_bootstrap(a, b, 1000, seed=0)
    assert d["ci95"][0] < d["mean"] < d["ci95"][1] and 0.04 < d["ci95"][0] and d["ci95"][1] < 0.06
    same = paired_bootstrap(b, b, 1000, seed=0)
    assert same["mean"] == 0 and same["ci95"] == [0.0, 0.0]


def test_reproduce_gpu_refuses_a_machine_without_a_gpu_unless_smoke(tmp_path):
    r = _run("reproduce_gpu.sh", tmp_path / "raw", env={"CUDA_VISIBLE_DEVICES": ""})
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1].startswith("error: no CUDA GPU")
    assert not (tmp_path / "raw").exists() and "--smoke" in r.stderr


RECIPE_FIELDS = ("train_file", "valid_file", "synthetic_copies", "typo_copies", "typo_rate", "typo_rate_max",
                 "max_steps", "batch_size", "eval_steps", "eval_sample", "max_eval_examples", "best_metric",
                 "save_steps", "seed", "prompt_format", "max_length")


@pytest.mark.parametrize("qwen2,smollm2", [("full-synth", "smollm2-full-synth"),
                                           ("full-typo-synth", "smollm2-full-typo-synth"),
                                           ("full-typo-synth-cycle2", "smollm2-full-typo-synth-cycle2")])
def test_qwen2_ingredients_mirror_the_recommended_recipes(qwen2, smollm2):
    from qrewrite.config import load_config
    q, s = load_config(ROOT / f"configs/qwen2/{qwen2}.yaml"), load_config(ROOT / f"configs/topic/{smollm2}.yaml")
    assert {f: getattr(q, f) for f in RECIPE_FIELDS} == {f: getattr(s, f) for f in RECIPE_FIELDS}
    full = load_config(ROOT / "configs/qwen2-0.5b-full.yaml")  # Qwen2's own precision, optimizer and learning rate
    assert (q.precision, q.optim, q.optim_args, q.learning_rate, q.gradient_checkpointing) == \
        (full.precision, full.optim, full.optim_args, full.learning_rate, full.gradient_checkpointing)
    if qwen2.endswith("cycle2"):  # continues the second ingredient's kept model
        assert q.model == f"weights/{load_config(ROOT / 'configs/qwen2/full-typo-synth.yaml').run_name}/model"
    else:
        assert q.model == full.model == "Qwen/Qwen2-0.5B-Instruct"


def test_qwen2_soup_averages_the_three_ingredients_like_the_recommended_soup():
    from qrewrite.config import load_average_config, load_config
    q, s = (load_average_config(ROOT / p) for p in ("configs/qwen2/soup-synth3.yaml",
                                                     "configs/average/topic-soup-synth3.yaml"))
    runs = [load_config(ROOT / f"configs/qwen2/{n}.yaml").run_name
            for n in ("full-synth", "full-typo-synth", "full-typo-synth-cycle2")]
    assert list(q.models) == [f"weights/{r}" for r in runs] and q.weights() == s.weights()
    assert q.start_model_weight == s.start_model_weight == 0


@pytest.mark.parametrize("path", sorted((ROOT / "configs" / "precision").glob("*.yaml")), ids=lambda p: p.name)
def test_precision_variants_differ_only_in_precision_and_optimizer(path):
    from qrewrite.config import load_config
    cfg, ref = load_config(path), load_config(ROOT / "configs/precision/bf16-mixed.yaml")
    differ = {k for k, v in cfg.to_dict().items() if ref.to_dict()[k] != v}
    assert differ <= {"run_name", "precision", "optim", "optim_args"}
    full = load_config(ROOT / "configs/qwen2-0.5b-full.yaml")
    assert (cfg.learning_rate, cfg.lr_scheduler, cfg.warmup_ratio, cfg.weight_decay, cfg.max_grad_norm) == \
        (full.learning_rate, full.lr_scheduler, full.warmup_ratio, full.weight_decay, full.max_grad_norm)
